//! The input as the network sees it, the top-5 with probability bars, timings and device.

use convscope_core::engine::{Prediction, device_label};
use convscope_core::session::{ImageInput, Predicted, Timings};

use crate::stopwatch::Round;
use crate::{Command, DeviceChoice, theme};

/// One image classified: what the prediction panel shows and the other views read.
pub struct Classification {
    pub image: ImageInput,
    /// The residual merges the run skipped.
    pub disabled: Vec<convscope_core::graph::NodeId>,
    pub top5: Vec<Prediction>,
    pub timings: Timings,
    pub device: tch::Device,
    /// Made once per prediction, never per frame.
    pub preview: egui::TextureHandle,
    pub preview_size: [usize; 2],
}

impl Classification {
    pub fn new(ctx: &egui::Context, predicted: Predicted) -> Self {
        let Predicted { image, disabled, top5, preview, timings, device, .. } = predicted;
        let color_image = egui::ColorImage::from_rgb(preview.size, &preview.rgb);
        let texture = ctx.load_texture("network_input", color_image, egui::TextureOptions::NEAREST);
        Self { image, disabled, top5, timings, device, preview: texture, preview_size: preview.size }
    }
}

/// The prediction panel; it holds the classification on show, which the other views read.
#[derive(Default)]
pub struct PredictionView {
    /// `None` until an image has run on the current model.
    pub shown: Option<Classification>,
}

pub fn device_ui(ui: &mut egui::Ui, current: DeviceChoice, cuda_available: bool, commands: &mut Vec<Command>) {
    ui.label("Device");
    for choice in [DeviceChoice::Cpu, DeviceChoice::Cuda] {
        let enabled = choice == DeviceChoice::Cpu || cuda_available;
        let response = ui.add_enabled(enabled, egui::Button::selectable(current == choice, choice.label()));
        let response = if choice == DeviceChoice::Cuda {
            response
                .on_hover_text("Run the model on the first CUDA GPU")
                .on_disabled_hover_text("No CUDA device: libtorch reports none on this machine")
        } else {
            response.on_hover_text("Run the model on the CPU")
        };
        if response.clicked() && current != choice {
            commands.push(Command::SetDevice(choice));
        }
    }
}

/// Wide enough for every label and figure of the timings.
const TIMING_COLUMN: f32 = 120.0;

impl PredictionView {
    /// `target`: the class the gradients are taken for, marked on its row.
    /// `on_screen`: the last image's way to the screen, once it has got there.
    pub fn ui(
        &mut self,
        ui: &mut egui::Ui,
        target: Option<i64>,
        on_screen: Option<&Round>,
        commands: &mut Vec<Command>,
    ) {
        let Self { shown } = self;
        ui.heading("Prediction");
        let Some(prediction) = shown else {
            ui.weak("Drop an image on the window, press Open…, or pick a sample.");
            return;
        };
        ui.label(format!("Image: {}", prediction.image.name()));
        let side = ui.available_width().min(224.0);
        let [w, h] = prediction.preview_size;
        ui.add(
            egui::Image::from_texture(&prediction.preview)
                .fit_to_exact_size(egui::vec2(side, side * h as f32 / (w.max(1) as f32)))
                .alt_text("the input as the network sees it"),
        )
        .on_hover_text(format!("{w}×{h} after resize, crop and normalisation (shown de-normalised)"));
        ui.add_space(6.0);
        // Measured outside the rows: a bar sized from inside its own row would widen the
        // resizable panel a little every frame.
        let bar_width = (ui.available_width() - 40.0).max(80.0);
        for p in &prediction.top5 {
            let is_target = target == Some(p.class);
            ui.horizontal(|ui| {
                ui.add(
                    egui::ProgressBar::new(p.probability as f32)
                        .fill(theme::ACCENT)
                        .desired_width(bar_width)
                        .text(format!("{:.1}%  {}", p.probability * 100.0, p.label)),
                );
                let button = egui::Button::selectable(is_target, "∂").small();
                if ui.add(button).on_hover_text(format!("Take gradients for class {} ({})", p.class, p.label)).clicked()
                {
                    commands.push(Command::SetTarget(if is_target { None } else { Some(p.class) }));
                }
            });
        }
        ui.add_space(6.0);
        // The same rows and column widths whatever the figures: a grid that changes size
        // lays itself out again in one more frame, which costs a window drawn without a GPU
        // as much as a forward pass.
        egui::Grid::new("timings").num_columns(2).min_col_width(TIMING_COLUMN).show(ui, |ui| {
            let t = &prediction.timings;
            let ms = |value: Option<f64>| value.map_or_else(|| "–".to_owned(), |ms| format!("{ms:.1} ms"));
            for (label, value) in [
                ("decode", t.decode_ms),
                ("preprocess", t.preprocess_ms),
                ("forward", t.forward_ms),
                ("maps", t.activation_ms),
                ("forward + backward", t.backward_ms),
            ] {
                ui.weak(label);
                ui.weak(ms(value));
                ui.end_row();
            }
            ui.weak("device");
            ui.weak(device_label(prediction.device));
            ui.end_row();
            ui.weak("on screen").on_hover_text(
                "From the image asked for to its top-5, the feature maps on view and the gradient curve painted",
            );
            ui.weak(
                on_screen
                    .and_then(|round| round.painted_ms)
                    .map_or_else(|| "…".to_owned(), |painted| format!("{painted:.0} ms")),
            );
            ui.end_row();
        });
    }
}

/// A hint over the whole window while a file is dragged over it.
pub fn drop_overlay_ui(ctx: &egui::Context) {
    if ctx.input(|i| i.raw.hovered_files.is_empty()) {
        return;
    }
    let painter = ctx.layer_painter(egui::LayerId::new(egui::Order::Foreground, egui::Id::unique("drop_overlay")));
    let rect = ctx.content_rect();
    painter.rect_filled(rect, 0.0, theme::DROP_OVERLAY);
    painter.text(
        rect.center(),
        egui::Align2::CENTER_CENTER,
        "Drop an image to classify it",
        egui::FontId::proportional(24.0),
        theme::DROP_TEXT,
    );
}
