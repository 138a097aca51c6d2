//! The architectures along the timeline, grouped by year, and the selected one's card.

use std::sync::Arc;

use crate::{Command, LoadedModel, theme};
use convscope_core::engine::{self, device_label};
use convscope_core::format::grouped;
use convscope_core::graph::Graph;
use convscope_core::manifest::{Manifest, Provenance};
use convscope_core::paths;
use convscope_core::shapes::ShapeReport;
use convscope_core::zoo::ArchSpec;

/// Facts about an architecture for its card, computed once per architecture.
pub struct ArchFacts {
    pub graph: Arc<Graph>,
    pub shapes: Option<ShapeReport>,
    pub shape_error: Option<String>,
    pub weights: WeightsState,
}

#[derive(Clone, Debug, PartialEq)]
pub enum WeightsState {
    Pretrained { source: String },
    TrainedHere { source: String },
    Random,
}

impl ArchFacts {
    pub fn new(spec: &ArchSpec) -> Self {
        let graph = spec.graph();
        let (shapes, shape_error) = match graph.infer_shapes(spec.input[1], spec.input[2]) {
            Ok(report) => (Some(report), None),
            Err(e) => (None, Some(e.to_string())),
        };
        Self { graph, shapes, shape_error, weights: weights_state(spec.id) }
    }
}

/// Where an architecture's weights come from, from the weights folder and its manifest.
pub(crate) fn weights_state(id: &str) -> WeightsState {
    if engine::installed_weights(id).is_none() {
        return WeightsState::Random;
    }
    let manifest = Manifest::load(&paths::weights_dir()).unwrap_or_default();
    match manifest.weights.get(id) {
        Some(entry) if entry.provenance == Provenance::TrainedHere => {
            WeightsState::TrainedHere { source: entry.source.clone() }
        }
        Some(entry) => WeightsState::Pretrained { source: entry.source.clone() },
        None => WeightsState::Pretrained { source: "no manifest entry".to_owned() },
    }
}

/// What the card shows besides the architecture's own story.
pub struct CardState<'a> {
    pub facts: Option<&'a ArchFacts>,
    /// A model is being loaded.
    pub loading: bool,
    /// The architecture whose weights are being downloaded.
    pub fetching: Option<&'static str>,
    pub loaded: Option<&'a LoadedModel>,
}

/// The picker panel: the timeline of architectures and the selected one's card.
#[derive(Default)]
pub struct Picker {
    /// What the list is filtered by: part of an id, a name or a year.
    filter: String,
}

impl Picker {
    /// The list of `specs`, filtered, with `selected` marked, and its card.
    pub fn ui(
        &mut self,
        ui: &mut egui::Ui,
        specs: &[ArchSpec],
        selected: Option<&str>,
        card: &CardState<'_>,
        commands: &mut Vec<Command>,
    ) {
        let Self { filter } = self;
        ui.add(egui::TextEdit::singleline(filter).hint_text("filter architectures").desired_width(f32::INFINITY));
        let needle = filter.trim().to_lowercase();
        let matches = |spec: &ArchSpec| {
            needle.is_empty()
                || spec.id.contains(&needle)
                || spec.card.name.to_lowercase().contains(&needle)
                || spec.card.year.to_string().contains(&needle)
        };
        egui::ScrollArea::vertical().id_salt("picker_list").max_height(ui.available_height() * 0.45).show(ui, |ui| {
            let mut year = None;
            for spec in specs.iter().filter(|s| matches(s)) {
                if year != Some(spec.card.year) {
                    year = Some(spec.card.year);
                    ui.add_space(4.0);
                    ui.label(egui::RichText::new(spec.card.year.to_string()).strong());
                }
                ui.horizontal(|ui| {
                    let response =
                        ui.selectable_label(selected == Some(spec.id), spec.id).on_hover_text(spec.card.name);
                    if response.clicked() && selected != Some(spec.id) {
                        commands.push(Command::SelectArch(spec.id));
                    }
                    ui.weak(spec.card.name);
                });
            }
        });
        ui.separator();
        let Some(spec) = selected.and_then(|id| specs.iter().find(|s| s.id == id)) else {
            ui.weak("Pick an architecture above.");
            return;
        };
        egui::ScrollArea::vertical().id_salt("card").show(ui, |ui| card_ui(ui, spec, card, commands));
    }
}

fn card_ui(ui: &mut egui::Ui, spec: &ArchSpec, state: &CardState<'_>, commands: &mut Vec<Command>) {
    let CardState { facts, loading, fetching, loaded } = *state;
    let card = &spec.card;
    ui.heading(card.name);
    ui.label(format!("{} · {}", card.year, card.authors));
    ui.label(egui::RichText::new(card.paper).italics());
    ui.add_space(4.0);
    ui.label(egui::RichText::new("Problem").strong());
    ui.label(card.problem);
    ui.label(egui::RichText::new("Design answer").strong());
    ui.label(card.answer);
    ui.add_space(4.0);
    egui::Grid::new("card_facts").num_columns(2).show(ui, |ui| {
        if let Some(facts) = facts {
            match (&facts.shapes, &facts.shape_error) {
                (Some(shapes), _) => {
                    ui.label("Parameters");
                    ui.label(grouped(facts.graph.parameter_count()));
                    ui.end_row();
                    ui.label("MACs");
                    ui.label(format!(
                        "{} at {}×{}×{}",
                        convscope_core::format::human_count(shapes.total_macs()),
                        spec.input[0],
                        spec.input[1],
                        spec.input[2]
                    ));
                    ui.end_row();
                }
                (None, Some(error)) => {
                    ui.label("Shapes");
                    ui.colored_label(ui.visuals().error_fg_color, error);
                    ui.end_row();
                }
                (None, None) => {}
            }
            ui.label("Nodes");
            ui.label(format!("{} in {} blocks", facts.graph.nodes.len(), facts.graph.blocks.len()));
            ui.end_row();
        }
        if let Some(top1) = card.top1_paper {
            ui.label("Top-1, paper");
            ui.label(format!("{top1:.1}%"));
            ui.end_row();
        }
        if let Some(top1) = card.top1_reference {
            ui.label("Top-1, reference");
            ui.label(format!("{top1:.2}%"));
            ui.end_row();
        }
        ui.label("Weights");
        match facts.map(|f| &f.weights) {
            Some(WeightsState::Pretrained { source }) => {
                ui.colored_label(theme::WEIGHTS_PRETRAINED, "pretrained").on_hover_text(source);
            }
            Some(WeightsState::TrainedHere { source }) => {
                ui.colored_label(theme::WEIGHTS_TRAINED, "trained here").on_hover_text(source);
            }
            Some(WeightsState::Random) | None => {
                ui.colored_label(theme::WEIGHTS_RANDOM, "random initialisation").on_hover_text(format!(
                    "No weights installed: predictions are noise. `convscope weights fetch {}` downloads \
                     the reference's (needs internet); `convscope weights import FILE --arch {}` installs a file.",
                    spec.id, spec.id
                ));
            }
        }
        ui.end_row();
    });
    if facts.is_some_and(|f| f.weights == WeightsState::Random) {
        if fetching == Some(spec.id) {
            ui.horizontal(|ui| {
                theme::spinner(ui);
                ui.weak("fetching the reference's weights…");
            });
        } else {
            let button = ui
                .add_enabled(fetching.is_none(), egui::Button::new("Fetch pretrained weights"))
                .on_hover_text(format!(
                    "`convscope weights fetch {}`: downloads the reference's weights through the project's \
                     venv (needs internet) and checks them against the architecture",
                    spec.id
                ))
                .on_disabled_hover_text("Another download is running");
            if button.clicked() {
                commands.push(Command::FetchWeights(spec.id));
            }
        }
    }
    ui.add_space(4.0);
    match loaded {
        Some(model) if model.spec.id == spec.id && !loading => {
            ui.weak(format!("Loaded on {} with {}", device_label(model.device), model.origin));
        }
        _ if loading => {
            ui.horizontal(|ui| {
                theme::spinner(ui);
                ui.weak(match loaded {
                    Some(model) => format!("loading… {} serves meanwhile", model.spec.id),
                    None => "loading…".to_owned(),
                });
            });
        }
        _ => {}
    }
    ui.weak(format!("Reference: {}", card.reference));
}
