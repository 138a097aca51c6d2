//! Two networks on one image: their top-5, forward time, parameters, MACs and activation
//! memory side by side, and their feature maps at matched relative depth (the end of each
//! stage, as the mean absolute activation over channels).

use convscope_core::compare::{ComparedNet, Comparison};
use convscope_core::engine::device_label;
use convscope_core::format::{grouped, human_count};
use convscope_core::graph::shape_label;

use super::HistoryInput;
use crate::{Command, theme};

/// The comparison shown, with a texture per stage map.
pub struct Shown {
    pub comparison: Comparison,
    textures: Vec<[egui::TextureHandle; 2]>,
}

pub struct CompareView {
    /// The first network; `None` follows the explorer's.
    pub first: Option<&'static str>,
    pub second: &'static str,
    pub shown: Option<Shown>,
}

impl Default for CompareView {
    fn default() -> Self {
        Self { first: None, second: "mobilenet_v2", shown: None }
    }
}

/// A map normalised over its own range, through viridis.
fn map_image(map: &[f32], shape: &[i64]) -> egui::ColorImage {
    let [_, h, w] = shape[..] else { return egui::ColorImage::new([1, 1], vec![egui::Color32::BLACK]) };
    let (lo, hi) = map.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    let span = if hi > lo { hi - lo } else { 1.0 };
    let pixels = map.iter().map(|&v| theme::viridis((v - lo) / span)).collect();
    egui::ColorImage::new([w as usize, h as usize], pixels)
}

impl CompareView {
    pub fn receive(&mut self, ctx: &egui::Context, comparison: Comparison) {
        let textures = comparison
            .stages
            .iter()
            .enumerate()
            .map(|(row, pair)| {
                [0, 1].map(|side| {
                    let map = &pair[side];
                    let name = format!("compare_{row}_{side}_{}", map.name);
                    ctx.load_texture(name, map_image(&map.map, &map.shape), egui::TextureOptions::NEAREST)
                })
            })
            .collect();
        self.shown = Some(Shown { comparison, textures });
    }

    pub fn ui(&mut self, ui: &mut egui::Ui, input: &HistoryInput<'_>, commands: &mut Vec<Command>) {
        let first = self.first.or(input.loaded).unwrap_or("resnet18");
        ui.horizontal_wrapped(|ui| {
            let mut chosen = first;
            network_choice_ui(ui, "first network", &mut chosen, input);
            if chosen != first {
                self.first = Some(chosen);
            }
            ui.label("against");
            network_choice_ui(ui, "second network", &mut self.second, input);
            let image = input.image.clone().unwrap_or_else(|| "chelsea.png".to_owned());
            let button = ui.add_enabled(!input.compare_pending, egui::Button::new("Compare")).on_hover_text(format!(
                "Run {image} through both on {} (installed weights, else random) and set them side by side",
                device_label(input.device)
            ));
            if button.clicked() {
                commands.push(Command::Compare([first, self.second]));
            }
            if input.compare_pending {
                theme::spinner(ui);
                ui.weak("running both…");
            }
        });
        let Some(shown) = &self.shown else {
            ui.weak(
                "Pick two networks of any family: both classify the same image (the explorer's, or the bundled \
                 cat), each with its own preprocessing, on the current device.",
            );
            return;
        };
        let c = &shown.comparison;
        ui.weak(format!("{} on {}", c.image, device_label(c.device)));
        egui::ScrollArea::vertical().id_salt("compare_scroll").auto_shrink([false, false]).show(ui, |ui| {
            facts_ui(ui, c);
            ui.add_space(6.0);
            ui.strong("Feature maps at matched relative depth: the end of each stage, mean |activation| over channels");
            let side = ((ui.available_width() - 40.0) / 2.0).clamp(60.0, 200.0);
            egui::Grid::new("compare_maps").num_columns(2).spacing([24.0, 8.0]).show(ui, |ui| {
                for (pair, textures) in c.stages.iter().zip(&shown.textures) {
                    for (map, texture) in pair.iter().zip(textures) {
                        ui.vertical(|ui| {
                            let size = texture.size_vec2();
                            let scale = side / size.x.max(size.y).max(1.0);
                            ui.image((texture.id(), size * scale));
                            ui.weak(format!(
                                "{} · {} · {:.0}% deep",
                                map.name,
                                shape_label(&map.shape),
                                map.depth * 100.0
                            ));
                        });
                    }
                    ui.end_row();
                }
            });
        });
    }
}

fn network_choice_ui(ui: &mut egui::Ui, label: &str, choice: &mut &'static str, input: &HistoryInput<'_>) {
    egui::ComboBox::from_label(label).selected_text(*choice).height(400.0).show_ui(ui, |ui| {
        for spec in input.specs {
            ui.selectable_value(choice, spec.id, spec.id).on_hover_text(spec.card.name);
        }
    });
}

/// One row of the facts table: a network's figure as text.
type Fact = fn(&ComparedNet) -> String;

fn facts_ui(ui: &mut egui::Ui, c: &Comparison) {
    let [a, b] = &c.nets;
    egui::Grid::new("compare_facts").num_columns(3).striped(true).spacing([24.0, 4.0]).show(ui, |ui| {
        ui.label("");
        ui.strong(a.arch);
        ui.strong(b.arch);
        ui.end_row();
        for rank in 0..5 {
            ui.label(if rank == 0 { "top-5" } else { "" });
            for net in [a, b] {
                match net.top5.get(rank) {
                    Some(p) => ui.label(format!("{:.1}%  {}", p.probability * 100.0, p.label)),
                    None => ui.label(""),
                };
            }
            ui.end_row();
        }
        let rows: [(&str, Fact); 6] = [
            ("forward pass", |n| format!("{:.1} ms", n.forward_ms)),
            ("parameters", |n| grouped(n.params)),
            ("MACs", |n| format!("{}MACs", human_count(n.macs))),
            ("activations kept", |n| format!("{:.1} MB", n.activation_bytes as f64 / 1e6)),
            ("input", |n| shape_label(&n.input)),
            ("weights", |n| n.origin.clone()),
        ];
        for (label, value) in rows {
            ui.label(label);
            ui.label(value(a));
            ui.label(value(b));
            ui.end_row();
        }
    });
}
