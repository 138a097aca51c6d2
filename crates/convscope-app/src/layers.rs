//! Stepping through the nodes in execution order, and the selected node's output: a grid
//! of channel heatmaps (viridis) for spatial outputs, a bar plot for flat ones.
//!
//! Textures are made lazily, only for channels scrolled into view, and once per activation
//! and normalisation: stepping back to a channel or repainting costs nothing.

use std::collections::HashMap;

use crate::{Command, LoadedModel, theme};
use convscope_core::graph::{Graph, NodeId, Op, shape_label};
use convscope_core::session::{ActivationData, Retention};
use convscope_core::shapes::ShapeReport;

#[derive(Default)]
pub struct LayerView {
    pub selected: NodeId,
    pub activation: Option<ActivationView>,
    pub sort_by_mean: bool,
    pub first_channel: usize,
    pub enlarged: Option<usize>,
    /// The play button walks through the nodes, one every `PLAY_STEP`.
    pub playing: bool,
    /// When the walk last stepped, in egui's time (seconds).
    pub last_play_step: f64,
}

/// The feature-map settings the layer view shows and changes, borrowed from `Settings`.
pub struct MapSettings<'a> {
    pub per_channel: &'a mut bool,
    pub channel_limit: &'a mut usize,
    pub retention: Retention,
}

impl LayerView {
    /// A fresh view for a new graph, keeping the user's display choices and a walk under way;
    /// starts on the first convolution, whose maps are the most telling.
    pub fn for_graph(graph: &Graph, previous: &LayerView) -> Self {
        let selected = graph.nodes.iter().position(|n| matches!(n.op, Op::Conv2d(_))).unwrap_or(0);
        Self {
            selected,
            sort_by_mean: previous.sort_by_mean,
            playing: previous.playing,
            last_play_step: previous.last_play_step,
            ..Self::default()
        }
    }

    pub fn select(&mut self, node: NodeId) {
        if node != self.selected {
            self.selected = node;
            self.enlarged = None;
            self.first_channel = 0;
        }
    }

    pub fn receive(&mut self, data: ActivationData) {
        self.activation = Some(ActivationView::new(data));
        if self.enlarged.is_some_and(|c| self.activation.as_ref().is_some_and(|a| c >= a.channels())) {
            self.enlarged = None;
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Stats {
    pub min: f32,
    pub max: f32,
    pub mean: f32,
    pub std: f32,
}

impl Stats {
    fn of(values: &[f32]) -> Self {
        if values.is_empty() {
            return Self::default();
        }
        let (mut min, mut max, mut sum) = (f32::INFINITY, f32::NEG_INFINITY, 0.0f64);
        for &v in values {
            min = min.min(v);
            max = max.max(v);
            sum += f64::from(v);
        }
        let mean = sum / values.len() as f64;
        let var = values.iter().map(|&v| (f64::from(v) - mean).powi(2)).sum::<f64>() / values.len() as f64;
        Self { min, max, mean: mean as f32, std: var.sqrt() as f32 }
    }
}

pub struct ActivationView {
    pub data: ActivationData,
    /// `(channels, height, width)` for a spatial output.
    spatial: Option<(usize, usize, usize)>,
    channel_stats: Vec<Stats>,
    layer_stats: Stats,
    /// Channel indices by decreasing mean activation.
    by_mean: Vec<usize>,
    textures: HashMap<usize, egui::TextureHandle>,
    /// The normalisation the cached textures were made with.
    textures_per_channel: bool,
}

impl ActivationView {
    fn new(data: ActivationData) -> Self {
        let spatial = match data.shape.as_slice() {
            &[c, h, w] if h * w > 1 => Some((c as usize, h as usize, w as usize)),
            _ => None,
        };
        let plane = spatial.map_or(1, |(_, h, w)| h * w);
        let channel_stats: Vec<Stats> = data.values.chunks(plane.max(1)).map(Stats::of).collect();
        let layer_stats = Stats::of(&data.values);
        let mut by_mean: Vec<usize> = (0..channel_stats.len()).collect();
        by_mean.sort_by(|&a, &b| channel_stats[b].mean.total_cmp(&channel_stats[a].mean));
        Self {
            data,
            spatial,
            channel_stats,
            layer_stats,
            by_mean,
            textures: HashMap::new(),
            textures_per_channel: true,
        }
    }

    pub fn channels(&self) -> usize {
        self.channel_stats.len()
    }

    /// The channels the grid shows, in its order.
    pub fn shown(&self, sort_by_mean: bool, first: usize, limit: usize) -> Vec<usize> {
        let channels = self.channels();
        let first = first.min(channels.saturating_sub(1));
        let take = limit.max(1);
        if sort_by_mean {
            self.by_mean.iter().copied().skip(first).take(take).collect()
        } else {
            (first..channels).take(take).collect()
        }
    }

    /// One channel's map in the colour map, stretched over the channel's range or the
    /// layer's: what the grid draws and what its export writes.
    ///
    /// Viridis, not the diverging map, though a convolution's output can be negative: the map
    /// is stretched from its minimum to its maximum, so zero has no fixed place on the scale,
    /// and after a ReLU most outputs are never negative; a map centred on zero would spend half
    /// its colours on values that do not occur. The diverging map is for signed values whose
    /// zero means something: gradients and attributions.
    fn channel_colors(&self, channel: usize, per_channel: bool) -> Option<Vec<egui::Color32>> {
        let (_, h, w) = self.spatial?;
        let plane = self.data.values.get(channel * h * w..(channel + 1) * h * w)?;
        let stats = if per_channel { self.channel_stats.get(channel)? } else { &self.layer_stats };
        let range = stats.max - stats.min;
        Some(plane.iter().map(|&v| theme::viridis(if range > 0.0 { (v - stats.min) / range } else { 0.5 })).collect())
    }

    fn texture(&mut self, ctx: &egui::Context, channel: usize, per_channel: bool) -> Option<egui::TextureHandle> {
        let (_, h, w) = self.spatial?;
        if per_channel != self.textures_per_channel {
            self.textures.clear();
            self.textures_per_channel = per_channel;
        }
        if let Some(texture) = self.textures.get(&channel) {
            return Some(texture.clone());
        }
        let image = egui::ColorImage::new([w, h], self.channel_colors(channel, per_channel)?);
        let name = format!("activation_{}_{channel}", self.data.node);
        let texture = ctx.load_texture(name, image, egui::TextureOptions::NEAREST);
        self.textures.insert(channel, texture.clone());
        Some(texture)
    }
}

/// Pixels between maps in an exported grid.
const GRID_GAP: u32 = 2;

/// The grid as one picture at the maps' own resolution, one pixel per value, in rows of
/// about equal count and length; `None` for a flat output.
pub fn grid_image(activation: &ActivationView, channels: &[usize], per_channel: bool) -> Option<image::RgbImage> {
    let (_, h, w) = activation.spatial?;
    let count = channels.len().max(1);
    // Columns so the picture comes out about square whatever the maps' aspect.
    let columns = ((count as f64 * h as f64 / w.max(1) as f64).sqrt().ceil() as usize).clamp(1, count);
    let rows = count.div_ceil(columns);
    let (w32, h32) = (u32::try_from(w).ok()?, u32::try_from(h).ok()?);
    let width = columns as u32 * (w32 + GRID_GAP) - GRID_GAP;
    let height = rows as u32 * (h32 + GRID_GAP) - GRID_GAP;
    let [r, g, b, _] = theme::EXPORT_GAP.to_array();
    let mut grid = image::RgbImage::from_pixel(width, height, image::Rgb([r, g, b]));
    for (i, &channel) in channels.iter().enumerate() {
        let colors = activation.channel_colors(channel, per_channel)?;
        let x0 = (i % columns) as u32 * (w32 + GRID_GAP);
        let y0 = (i / columns) as u32 * (h32 + GRID_GAP);
        for (j, color) in colors.iter().enumerate() {
            let (x, y) = ((j % w) as u32, (j / w) as u32);
            grid.put_pixel(x0 + x, y0 + y, image::Rgb([color.r(), color.g(), color.b()]));
        }
    }
    Some(grid)
}

impl LayerView {
    /// The stepper and the selected node's output; `classified` whether an image has run on
    /// the model, `pending` whether the worker still owes this node's output.
    pub fn ui(
        &mut self,
        ui: &mut egui::Ui,
        model: Option<&LoadedModel>,
        classified: bool,
        pending: bool,
        mut maps: MapSettings<'_>,
        commands: &mut Vec<Command>,
    ) {
        let Some(model) = model else {
            ui.weak("Loading the model…");
            return;
        };
        let graph = &model.graph;
        let last = graph.nodes.len().saturating_sub(1);
        let selected = self.selected.min(last);
        ui.horizontal(|ui| {
            if ui.button("‹").on_hover_text("Previous node (Left arrow)").clicked() {
                commands.push(Command::StepNode(-1));
            }
            let mut index = selected;
            let slider = egui::Slider::new(&mut index, 0..=last).text("node").clamping(egui::SliderClamping::Always);
            if ui.add(slider).on_hover_text("Nodes in execution order; the Left and Right arrows step").changed() {
                commands.push(Command::SelectNode(index));
            }
            if ui.button("›").on_hover_text("Next node (Right arrow)").clicked() {
                commands.push(Command::StepNode(1));
            }
            let play = if self.playing { "Pause" } else { "Play" };
            if ui.button(play).on_hover_text("Walk through the nodes (Space)").clicked() {
                commands.push(Command::TogglePlay);
            }
        });
        let Some(node) = graph.nodes.get(selected) else { return };
        let block = node.block.map(|b| graph.blocks[b].name.as_str()).unwrap_or("-");
        let info = model.shapes.as_ref().and_then(|s| s.nodes.get(selected));
        ui.horizontal_wrapped(|ui| {
            ui.strong(&node.name);
            ui.label(node.op.kind_name());
            ui.weak(format!("in {block}"));
            if let Some(info) = info {
                ui.weak(format!(
                    "· output {} · {} params · {} MACs (native size)",
                    shape_label(&info.shape),
                    convscope_core::format::human_count(info.params),
                    convscope_core::format::human_count(info.macs)
                ));
            }
        });
        ui.separator();
        if !classified {
            ui.weak("Open an image to see what each layer makes of it.");
            return;
        }
        retention_ui(ui, maps.retention, model.shapes.as_ref(), commands);
        let layers = self;
        let Some(activation) = &mut layers.activation else {
            if pending {
                theme::spinner(ui);
            }
            return;
        };
        let shown = graph.nodes.get(activation.data.node).map_or("?", |n| n.name.as_str());
        ui.horizontal(|ui| {
            ui.label(format!("Output of {shown}: {}", shape_label(&activation.data.shape)));
            if pending {
                theme::spinner(ui);
            }
        });
        if activation.spatial.is_some() {
            feature_maps_ui(ui, &mut maps, layers, commands);
        } else {
            flat_output_ui(ui, activation);
        }
    }
}

/// Every layer's output in memory, or only the one on show (EfficientNet-B7's take 4 GB).
fn retention_ui(ui: &mut egui::Ui, retention: Retention, shapes: Option<&ShapeReport>, commands: &mut Vec<Command>) {
    let mut keep_every = retention == Retention::EveryLayer;
    let checkbox = ui.checkbox(&mut keep_every, "keep every layer's output");
    // Worked out only while hovered, not every frame.
    let checkbox = checkbox.on_hover_ui(|ui| {
        // One sample's float32 outputs at the native size, views and all: an upper bound.
        let bytes = shapes.map(|s| s.nodes.iter().map(|n| n.shape.iter().product::<i64>()).sum::<i64>() * 4);
        let size = bytes.map_or_else(String::new, |b| {
            if b >= 1 << 30 {
                format!(" ({:.1} GB here)", b as f64 / f64::from(1u32 << 30))
            } else {
                format!(" ({} MB here)", b >> 20)
            }
        });
        ui.label(format!(
            "On: every layer's output from the last run stays in memory{size}, so picking a layer shows it at once.\n\
             Off: only the layer on show is kept, and picking another runs the network again up to it."
        ));
    });
    if checkbox.changed() {
        let retention = if keep_every { Retention::EveryLayer } else { Retention::ViewedLayer };
        commands.push(Command::SetRetention(retention));
    }
}

fn feature_maps_ui(ui: &mut egui::Ui, maps: &mut MapSettings<'_>, layers: &mut LayerView, commands: &mut Vec<Command>) {
    let Some(activation) = &mut layers.activation else { return };
    let channels = activation.channels();
    ui.horizontal_wrapped(|ui| {
        ui.radio_value(&mut *maps.per_channel, true, "per channel")
            .on_hover_text("Each map stretched over its own range");
        ui.radio_value(&mut *maps.per_channel, false, "per layer")
            .on_hover_text("One range for the whole layer: maps compare");
        ui.checkbox(&mut layers.sort_by_mean, "sort by mean");
        let label = ui.label("show");
        // Shown within this layer's count, kept as set: a 32-channel layer must not cut the
        // limit the user chose for the 672-channel one after it.
        let mut limit = (*maps.channel_limit).min(channels.max(1));
        let response = ui
            .add(egui::DragValue::new(&mut limit).range(1..=channels.max(1)))
            .labelled_by(label.id)
            .on_hover_text("How many channels to show");
        if response.changed() {
            *maps.channel_limit = limit;
        }
        let label = ui.label("from");
        ui.add(egui::DragValue::new(&mut layers.first_channel).range(0..=channels.saturating_sub(1)))
            .labelled_by(label.id)
            .on_hover_text("First channel shown (in the current order)");
        ui.weak(format!("of {channels}"));
        let export = ui
            .button("Export PNG…")
            .on_hover_text("Save the maps shown (same channels, order and scale) as one PNG, one pixel per value");
        if export.clicked() {
            commands.push(Command::ExportFeatureMaps);
        }
    });
    scale_ui(ui, *maps.per_channel, &activation.layer_stats);

    if let Some(channel) = layers.enlarged {
        let stats = activation.channel_stats.get(channel).copied().unwrap_or_default();
        let texture = activation.texture(ui.ctx(), channel, *maps.per_channel);
        ui.horizontal(|ui| {
            if let Some(texture) = texture {
                let side = 256.0f32.min(ui.available_width() * 0.5);
                ui.add(
                    egui::Image::from_texture(&texture)
                        .fit_to_exact_size(egui::vec2(side, side))
                        .alt_text(format!("channel {channel}, enlarged")),
                );
            }
            ui.vertical(|ui| {
                ui.strong(format!("channel {channel}"));
                ui.label(format!("min {:.4}", stats.min));
                ui.label(format!("max {:.4}", stats.max));
                ui.label(format!("mean {:.4}", stats.mean));
                ui.label(format!("std {:.4}", stats.std));
                if ui.button("Close").on_hover_text("Back to the grid alone").clicked() {
                    layers.enlarged = None;
                }
            });
        });
        ui.separator();
    }

    let shown = activation.shown(layers.sort_by_mean, layers.first_channel, *maps.channel_limit);
    let (_, h, w) = activation.spatial.unwrap_or((0, 1, 1));
    let cell_width = 80.0f32;
    let cell = egui::vec2(cell_width, cell_width * h as f32 / w.max(1) as f32);
    let mut clicked = None;
    egui::ScrollArea::vertical().id_salt("feature_maps").auto_shrink([false, false]).show(ui, |ui| {
        ui.horizontal_wrapped(|ui| {
            ui.spacing_mut().item_spacing = egui::vec2(4.0, 4.0);
            for &channel in &shown {
                let (rect, response) = ui.allocate_exact_size(cell, egui::Sense::click());
                let response = response.on_hover_text(format!(
                    "channel {channel}: mean {:.3}; click to enlarge",
                    activation.channel_stats.get(channel).map_or(0.0, |s| s.mean)
                ));
                response
                    .widget_info(|| egui::WidgetInfo::labeled(egui::Role::Button, true, format!("channel {channel}")));
                // Off-screen cells get no texture until they scroll into view.
                if !ui.is_rect_visible(rect) {
                    continue;
                }
                if let Some(texture) = activation.texture(ui.ctx(), channel, *maps.per_channel) {
                    let uv = egui::Rect::from_min_max(egui::pos2(0.0, 0.0), egui::pos2(1.0, 1.0));
                    ui.painter().image(texture.id(), rect, uv, egui::Color32::WHITE);
                }
                if layers.enlarged == Some(channel) {
                    ui.painter().rect_stroke(
                        rect,
                        0.0,
                        egui::Stroke::new(2.0, theme::HIGHLIGHT),
                        egui::StrokeKind::Inside,
                    );
                }
                if response.clicked() {
                    clicked = Some(channel);
                }
            }
        });
    });
    if let Some(channel) = clicked {
        layers.enlarged = if layers.enlarged == Some(channel) { None } else { Some(channel) };
    }
}

/// The colour bar and what its ends mean.
fn scale_ui(ui: &mut egui::Ui, per_channel: bool, layer: &Stats) {
    ui.horizontal(|ui| {
        let (low, high) = if per_channel {
            ("channel min".to_owned(), "channel max".to_owned())
        } else {
            (format!("{:.3}", layer.min), format!("{:.3}", layer.max))
        };
        ui.weak(low);
        let (rect, _) = ui.allocate_exact_size(egui::vec2(160.0, 12.0), egui::Sense::hover());
        let steps = 32;
        for i in 0..steps {
            let t0 = i as f32 / steps as f32;
            let t1 = (i + 1) as f32 / steps as f32;
            let segment = egui::Rect::from_x_y_ranges(
                rect.left() + t0 * rect.width()..=rect.left() + t1 * rect.width(),
                rect.y_range(),
            );
            ui.painter().rect_filled(segment, 0.0, theme::viridis((t0 + t1) / 2.0));
        }
        ui.weak(high);
        ui.weak(format!("(layer mean {:.3}, std {:.3})", layer.mean, layer.std));
    });
}

/// Logits, linear outputs and 1×1 pooled maps: one bar per value.
fn flat_output_ui(ui: &mut egui::Ui, activation: &ActivationView) {
    let stats = &activation.layer_stats;
    ui.weak(format!(
        "{} values · min {:.4} · max {:.4} · mean {:.4}",
        activation.data.values.len(),
        stats.min,
        stats.max,
        stats.mean
    ));
    let bars: Vec<egui_plot::Bar> = activation
        .data
        .values
        .iter()
        .enumerate()
        .map(|(i, &v)| egui_plot::Bar::new(i as f64, f64::from(v)).width(0.8).fill(theme::ACCENT))
        .collect();
    egui_plot::Plot::new("flat_output")
        .allow_scroll(false)
        .x_axis_label("index")
        .y_axis_label("value")
        .show(ui, |plot| plot.bar_chart(egui_plot::BarChart::new("values", bars).color(theme::ACCENT)));
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Three 4×5 maps: a ramp rising left to right, the same ramp falling, and a constant
    /// ten times larger.
    fn activation() -> ActivationView {
        let (h, w) = (4usize, 5usize);
        let mut values = Vec::new();
        for channel in 0..3 {
            for _ in 0..h {
                for x in 0..w {
                    values.push(match channel {
                        0 => x as f32,
                        1 => (w - 1 - x) as f32,
                        _ => 40.0,
                    });
                }
            }
        }
        ActivationView::new(ActivationData { arch: "test", node: 7, shape: vec![3, h as i64, w as i64], values })
    }

    fn rgb(color: egui::Color32) -> image::Rgb<u8> {
        image::Rgb([color.r(), color.g(), color.b()])
    }

    #[test]
    fn the_exported_grid_is_the_maps_at_their_own_resolution() {
        let activation = activation();
        let shown = activation.shown(false, 0, 64);
        assert_eq!(shown, [0, 1, 2]);
        let grid = grid_image(&activation, &shown, true).expect("a spatial output has a grid");
        let dir = tempfile::tempdir().expect("a temporary folder");
        let path = dir.path().join("maps.png");
        grid.save_with_format(&path, image::ImageFormat::Png).expect("the PNG is written");
        let decoded = image::open(&path).expect("the PNG decodes").to_rgb8();
        // Three 5×4 maps make two columns and two rows, two pixels apart.
        assert_eq!(decoded.dimensions(), (5 + GRID_GAP + 5, 4 + GRID_GAP + 4));
        assert_eq!(decoded, grid);
        let (x1, y1) = (5 + GRID_GAP, 4 + GRID_GAP);
        // Per channel, the rising ramp starts dark and the falling one bright.
        assert_eq!(*decoded.get_pixel(0, 0), rgb(theme::viridis(0.0)));
        assert_eq!(*decoded.get_pixel(4, 3), rgb(theme::viridis(1.0)));
        assert_eq!(*decoded.get_pixel(x1, 0), rgb(theme::viridis(1.0)));
        assert_eq!(*decoded.get_pixel(x1 + 4, 0), rgb(theme::viridis(0.0)));
        assert_ne!(decoded.get_pixel(1, 1), decoded.get_pixel(x1 + 1, 1), "channels differ");
        // A constant map has no range of its own: the middle of the scale.
        assert_eq!(*decoded.get_pixel(0, y1), rgb(theme::viridis(0.5)));
        assert_eq!(*decoded.get_pixel(x1, y1), rgb(theme::EXPORT_GAP), "the fourth cell is empty");
        assert_eq!(*decoded.get_pixel(5, 0), rgb(theme::EXPORT_GAP), "maps are set apart");
    }

    #[test]
    fn the_exported_grid_follows_the_views_order_and_normalisation() {
        let activation = activation();
        // Per layer, the ramps span 0..4 of a 0..40 range and the constant is the top.
        let grid = grid_image(&activation, &[0, 1, 2], false).expect("a grid");
        assert_eq!(*grid.get_pixel(0, 4 + GRID_GAP), rgb(theme::viridis(1.0)));
        assert_eq!(*grid.get_pixel(4, 0), rgb(theme::viridis(0.1)));
        // Sorted by mean, the constant comes first; `from` and `show` cut the list.
        assert_eq!(activation.shown(true, 0, 64), [2, 0, 1]);
        assert_eq!(activation.shown(true, 1, 1), [0]);
        let single = grid_image(&activation, &activation.shown(true, 0, 1), true).expect("a grid");
        assert_eq!(single.dimensions(), (5, 4));
        let flat =
            ActivationView::new(ActivationData { arch: "test", node: 0, shape: vec![10], values: vec![0.0; 10] });
        assert!(grid_image(&flat, &[0], true).is_none(), "a flat output has no grid");
    }
}
