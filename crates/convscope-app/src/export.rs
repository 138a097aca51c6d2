//! Saving what is on screen: the feature-map grid as computed, the diagram from a screenshot
//! of the window.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, TryRecvError, sync_channel};
use std::time::Duration;

use crate::app::{App, Message};
use crate::layers;

/// How long a diagram export waits for the window's screenshot before giving up.
const SCREENSHOT_TIMEOUT_S: f64 = 5.0;

/// A diagram export on its way: the window renders, then hands over its pixels.
pub(crate) enum DiagramExport {
    Requested(PathBuf),
    Waiting {
        path: PathBuf,
        /// The diagram's canvas, in points.
        rect: egui::Rect,
        pixels_per_point: f32,
        since_s: f64,
        receiver: Receiver<Arc<egui::ColorImage>>,
    },
}

impl App {
    /// Writes the feature-map grid as it is shown (channels, order, normalisation) to `path`
    /// as a PNG at the maps' own resolution; returns its size in pixels.
    pub fn export_feature_maps(&self, path: &Path) -> Result<[u32; 2], String> {
        let rt = &self.runtime;
        let activation = rt.layers.activation.as_ref().ok_or("no feature maps are shown yet")?;
        let shown = activation.shown(rt.layers.sort_by_mean, rt.layers.first_channel, self.settings.channel_limit);
        let grid = layers::grid_image(activation, &shown, self.settings.per_channel)
            .ok_or("this node's output is not spatial: there is no grid to export")?;
        grid.save_with_format(path, image::ImageFormat::Png)
            .map_err(|e| format!("Could not save {}: {e}", path.display()))?;
        Ok([grid.width(), grid.height()])
    }

    /// Saves the diagram as drawn to `path` as a PNG, from a screenshot of the next frame;
    /// the outcome arrives as the message.
    pub fn export_diagram(&mut self, path: PathBuf) {
        self.runtime.diagram_export = Some(DiagramExport::Requested(path));
    }

    /// Asks the window for a screenshot once the diagram is drawn, and saves its canvas when
    /// the pixels arrive.
    pub(crate) fn diagram_export_frame(&mut self, ctx: &egui::Context) {
        let rt = &mut self.runtime;
        let Some(export) = rt.diagram_export.take() else { return };
        let now_s = ctx.input(|i| i.time);
        match export {
            DiagramExport::Requested(path) => {
                let Some(rect) = rt.diagram.canvas_rect() else {
                    let text = "Show the diagram to export it".to_owned();
                    rt.message = Some(Message { text, is_error: true });
                    return;
                };
                let (sender, receiver) = sync_channel(1);
                let repaint = ctx.clone();
                ctx.request_screenshot(move |image| {
                    // The export may have been given up meanwhile.
                    let _ = sender.send(image);
                    repaint.request_repaint();
                });
                let pixels_per_point = ctx.pixels_per_point();
                rt.diagram_export =
                    Some(DiagramExport::Waiting { path, rect, pixels_per_point, since_s: now_s, receiver });
            }
            DiagramExport::Waiting { path, rect, pixels_per_point, since_s, receiver } => match receiver.try_recv() {
                Ok(image) => {
                    let saved = save_region_png(&image, rect, pixels_per_point, &path);
                    rt.message = Some(saved_message(&path, saved));
                }
                Err(TryRecvError::Empty) if now_s - since_s < SCREENSHOT_TIMEOUT_S => {
                    ctx.request_repaint_after(Duration::from_millis(100));
                    rt.diagram_export =
                        Some(DiagramExport::Waiting { path, rect, pixels_per_point, since_s, receiver });
                }
                Err(_) => {
                    let text = "Could not export the diagram: the window gave no screenshot".to_owned();
                    rt.message = Some(Message { text, is_error: true });
                }
            },
        }
    }
}

pub(crate) fn saved_message(path: &Path, saved: Result<[u32; 2], String>) -> Message {
    match saved {
        Ok([w, h]) => Message { text: format!("Saved {} ({w}×{h} pixels)", path.display()), is_error: false },
        Err(text) => Message { text, is_error: true },
    }
}

/// Saves the part of a window screenshot under `rect` (in points) as a PNG; returns its size
/// in pixels.
fn save_region_png(
    screenshot: &egui::ColorImage,
    rect: egui::Rect,
    pixels_per_point: f32,
    path: &std::path::Path,
) -> Result<[u32; 2], String> {
    let [width, height] = screenshot.size;
    // Whole pixels inside the screenshot: a rect reaching past the window edge is cut there.
    let to_pixels = |v: f32, max: usize| ((v * pixels_per_point).round().max(0.0) as usize).min(max);
    let (x0, x1) = (to_pixels(rect.min.x, width), to_pixels(rect.max.x, width));
    let (y0, y1) = (to_pixels(rect.min.y, height), to_pixels(rect.max.y, height));
    if x1 <= x0 || y1 <= y0 {
        return Err("Could not export the diagram: it is not on screen".into());
    }
    let (w, h) = (x1 - x0, y1 - y0);
    let mut rgba = Vec::with_capacity(w * h * 4);
    for row in y0..y1 {
        let line = screenshot
            .pixels
            .get(row * width + x0..row * width + x1)
            .ok_or("Could not export the diagram: the screenshot is smaller than it says")?;
        rgba.extend(line.iter().flat_map(|c| c.to_srgba_unmultiplied()));
    }
    let size = [w as u32, h as u32];
    let image = image::RgbaImage::from_raw(size[0], size[1], rgba)
        .ok_or("Could not export the diagram: the screenshot has the wrong size")?;
    image
        .save_with_format(path, image::ImageFormat::Png)
        .map_err(|e| format!("Could not save {}: {e}", path.display()))?;
    Ok(size)
}
