//! The lab's pictures: every run's curves on one plot (smoothed, the raw value on hover) and
//! a depth × step heatmap of each run's gradient norms.

use egui::{ColorImage, TextureHandle, TextureOptions};

use super::{LabState, RunState};
use crate::theme;

/// A heatmap keeps at most this many columns; longer runs average neighbouring steps.
const MAX_COLUMNS: usize = 600;
const HEATMAP_HEIGHT: f32 = 150.0;
/// The most decades of gradient norm the heatmaps' colour scale spans.
const DECADES: f32 = 6.0;

/// The curves of every run on one plot.
pub(super) fn curves_ui(ui: &mut egui::Ui, lab: &LabState, loss: bool, error: bool, held_out: bool) {
    let runs = &lab.runs;
    let height = (ui.available_height() - HEATMAP_HEIGHT - 60.0).max(260.0);
    egui_plot::Plot::new("lab_curves")
        .height(height)
        .legend(egui_plot::Legend::default().position(egui_plot::Corner::RightTop))
        .allow_scroll(false)
        .x_axis_label("step")
        .y_axis_label("loss (nats) · error and accuracy (fraction)")
        .include_y(0.0)
        .include_x(0.0)
        .label_formatter(|hover| {
            let (name, point) = match hover {
                egui_plot::HoverPosition::NearDataPoint { plot_name, position, .. } => (*plot_name, *position),
                egui_plot::HoverPosition::Elsewhere { position } => ("", *position),
            };
            Some(hover_text(runs, name, point.x, point.y))
        })
        .show(ui, |plot| {
            for (i, run) in runs.iter().enumerate() {
                let color = theme::lab_run(i);
                let id = &run.info.id;
                let at_step = |values: &[f64]| -> Vec<[f64; 2]> {
                    values
                        .iter()
                        .enumerate()
                        .filter(|(_, v)| v.is_finite())
                        .map(|(s, &v)| [(s + 1) as f64, v])
                        .collect()
                };
                if loss {
                    plot.line(
                        egui_plot::Line::new(format!("{id} loss"), at_step(&run.smoothed_loss)).color(color).width(2.0),
                    );
                }
                if error {
                    plot.line(
                        egui_plot::Line::new(format!("{id} error"), at_step(&run.smoothed_error))
                            .color(color)
                            .style(egui_plot::LineStyle::dashed_loose()),
                    );
                }
                if held_out && !run.held_out.is_empty() {
                    let points: Vec<[f64; 2]> = run.held_out.iter().map(|h| [h.step as f64, h.accuracy]).collect();
                    plot.line(
                        egui_plot::Line::new(format!("{id} held-out accuracy"), points.clone())
                            .color(color)
                            .style(egui_plot::LineStyle::dotted_dense()),
                    );
                    plot.points(
                        egui_plot::Points::new(format!("{id} held-out accuracy"), points).color(color).radius(3.0),
                    );
                }
                for (step, what) in &run.interventions {
                    plot.vline(
                        egui_plot::VLine::new(format!("{id}: {what}"), *step as f64)
                            .color(color)
                            .style(egui_plot::LineStyle::dashed_dense()),
                    );
                }
            }
        });
}

/// What the pointer is over: the run and curve, the step, the smoothed and the raw value.
fn hover_text(runs: &[RunState], name: &str, x: f64, y: f64) -> String {
    let step = x.round().max(1.0) as usize;
    let Some(run) = runs.iter().find(|r| name.starts_with(&format!("{} ", r.info.id))) else {
        return format!("step {step}\n{y:.4}");
    };
    let curve = &name[run.info.id.len() + 1..];
    let raw = run.steps.get(step - 1);
    match curve {
        "loss" => format!(
            "{}\nstep {step}\nloss {:.4} (smoothed)\nraw {}",
            run.info.id,
            run.smoothed_loss.get(step - 1).copied().unwrap_or(y),
            raw.map_or("–".into(), |s| format!("{:.4}", s.loss))
        ),
        "error" => format!(
            "{}\nstep {step}\nerror {:.1}% (smoothed)\nraw {}",
            run.info.id,
            run.smoothed_error.get(step - 1).copied().unwrap_or(y) * 100.0,
            raw.map_or("–".into(), |s| format!("{:.1}%", s.error * 100.0))
        ),
        _ => format!("{}\nstep {step}\n{curve} {:.1}%", run.info.id, y * 100.0),
    }
}

/// One texture per run, redrawn when its steps or the colour scale change.
#[derive(Default)]
pub(super) struct Heatmaps {
    textures: Vec<(TextureHandle, (usize, u32, u32))>,
}

impl Heatmaps {
    pub(super) fn ui(&mut self, ui: &mut egui::Ui, lab: &LabState) {
        let Some((lowest, hi)) = lab.norm_range else {
            ui.weak("The gradient heatmaps fill in as the runs train.");
            return;
        };
        // A vanishing gradient reaches 1e-10 and would squeeze every other run into a few
        // shades: the scale spans at most this many decades, anything lower at its darkest.
        let lo = lowest.max(hi - DECADES);
        ui.horizontal_wrapped(|ui| {
            ui.strong("Gradient flow during training");
            ui.weak(format!(
                "each layer's |∂L/∂W| (rows: input at the top, classifier at the bottom) at every step; \
                 one colour scale for all runs, log10 from {lo:.1} (dark{}) to {hi:.1} (bright)",
                if lowest < lo { format!(", down to {lowest:.1} drawn as dark") } else { String::new() }
            ));
        });
        let count = lab.runs.len().max(1);
        let spacing = ui.spacing().item_spacing.x;
        let width = ((ui.available_width() - spacing * (count as f32 - 1.0)) / count as f32).max(80.0);
        self.textures.truncate(lab.runs.len());
        ui.horizontal(|ui| {
            for (i, run) in lab.runs.iter().enumerate() {
                ui.vertical(|ui| {
                    ui.colored_label(theme::lab_run(i), &run.info.id);
                    if run.steps.is_empty() {
                        ui.allocate_space(egui::vec2(width, HEATMAP_HEIGHT));
                        return;
                    }
                    let key = (run.steps.len(), lo.to_bits(), hi.to_bits());
                    let texture = self.texture(ui.ctx(), i, run, (lo, hi), key);
                    let response = ui.add(
                        egui::Image::new((texture.id(), egui::vec2(width, HEATMAP_HEIGHT))).sense(egui::Sense::hover()),
                    );
                    if let Some(pos) = response.hover_pos() {
                        let rect = response.rect;
                        let layers = run.info.layers.len().max(1);
                        let row = (((pos.y - rect.top()) / rect.height()) * layers as f32) as usize;
                        let step = (((pos.x - rect.left()) / rect.width()) * run.steps.len() as f32) as usize;
                        let (row, step) = (row.min(layers - 1), step.min(run.steps.len() - 1));
                        let norm = run.steps[step].grad_norms.get(row).copied().unwrap_or(f32::NAN);
                        let layer = run.info.layers.get(row).map_or("", String::as_str);
                        response.on_hover_text(format!("{layer}\nstep {}\n|∂L/∂W| {norm:.3e}", step + 1));
                    }
                });
            }
        });
    }

    fn texture(
        &mut self,
        ctx: &egui::Context,
        index: usize,
        run: &RunState,
        range: (f32, f32),
        key: (usize, u32, u32),
    ) -> &TextureHandle {
        let image = || heatmap_image(run, range);
        if index >= self.textures.len() {
            let texture = ctx.load_texture(format!("lab_heatmap_{index}"), image(), TextureOptions::NEAREST);
            self.textures.push((texture, key));
        } else if self.textures[index].1 != key {
            self.textures[index].0.set(image(), TextureOptions::NEAREST);
            self.textures[index].1 = key;
        }
        &self.textures[index].0
    }
}

/// Rows are layers in depth order, columns steps (neighbours averaged past `MAX_COLUMNS`);
/// viridis of log10 of the norm over `range`.
fn heatmap_image(run: &RunState, (lo, hi): (f32, f32)) -> ColorImage {
    let rows = run.info.layers.len().max(1);
    let steps = run.steps.len().max(1);
    let per_column = steps.div_ceil(MAX_COLUMNS);
    let columns = steps.div_ceil(per_column);
    let span = (hi - lo).max(1e-6);
    let mut pixels = vec![theme::GHOST; rows * columns];
    for column in 0..columns {
        let chunk = &run.steps[column * per_column..((column + 1) * per_column).min(run.steps.len())];
        for row in 0..rows {
            let logs: Vec<f32> = chunk
                .iter()
                .filter_map(|s| s.grad_norms.get(row).copied())
                .filter(|n| *n > 0.0 && n.is_finite())
                .map(f32::log10)
                .collect();
            if !logs.is_empty() {
                let mean = logs.iter().sum::<f32>() / logs.len() as f32;
                pixels[row * columns + column] = theme::viridis((mean - lo) / span);
            }
        }
    }
    ColorImage::new([columns, rows], pixels)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::RunInfo;
    use convscope_core::lab::{NetSpec, StepRecord};
    use convscope_core::zoo::resnet::CifarConfig;

    fn run(steps: usize) -> RunState {
        let config = CifarConfig { blocks: 1, width: 2, residual: true, batch_norm: true, classes: 10 };
        let info = RunInfo {
            id: "resnet8-w2".into(),
            spec: NetSpec { depth: 8, residual: true, width: 2, batch_norm: true },
            config,
            layers: vec!["conv1".into(), "fc".into()],
            parameters: 0,
        };
        let mut state = RunState::new(info, 0.1);
        for s in 0..steps {
            let record = StepRecord {
                step: s + 1,
                loss: s as f64,
                error: 0.5,
                lr: 0.1,
                seconds: 0.01,
                grad_norms: vec![10f32.powi(s as i32 % 3), 0.0],
            };
            state.push(record, 4);
        }
        state
    }

    #[test]
    fn a_heatmap_has_a_row_per_layer_and_averages_steps_past_its_width() {
        let short = heatmap_image(&run(5), (0.0, 2.0));
        assert_eq!(short.size, [5, 2]);
        // Step 3's norm is 100: log10 2, the top of the range; step 1's is 1, the bottom.
        assert_eq!(short.pixels[2], theme::viridis(1.0));
        assert_eq!(short.pixels[0], theme::viridis(0.0));
        // A zero norm has no logarithm: the row of `fc` stays grey.
        assert!(short.pixels[5..].iter().all(|&p| p == theme::GHOST));
        let long = heatmap_image(&run(1500), (0.0, 2.0));
        assert_eq!(long.size, [500, 2], "three steps a column");
        assert_eq!(long.pixels[0], theme::viridis(0.5), "the mean of log10 1, 10 and 100");
    }

    #[test]
    fn hovering_a_curve_gives_its_raw_value() {
        let runs = vec![run(10)];
        let text = hover_text(&runs, "resnet8-w2 loss", 6.0, 0.0);
        // Losses are 0, 1, …; step 6's raw loss is 5, its mean over four steps 3.5.
        assert!(text.contains("loss 3.5000 (smoothed)") && text.contains("raw 5.0000"), "{text}");
        let smoothed = convscope_core::lab::running_mean(&(0..10).map(f64::from).collect::<Vec<_>>(), 4);
        assert_eq!(runs[0].smoothed_loss, smoothed, "the view smooths as the core does");
    }
}
