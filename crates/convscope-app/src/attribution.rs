//! The Attribution view: where in the image the network found its answer. The input with a
//! map over it (opacity, colormap), the method and its parameters, the class explained (the
//! prediction, one of the top-5, or any class found by name), and the layer of the CAM methods
//! (the last stage, every stage side by side, or the node selected on the diagram or with the
//! arrow keys). Maps are computed on the model worker, with progress and a Cancel button, and
//! kept per network, weights, image, method, parameters, target and residual switches: going
//! back to settings seen before shows their map at once.

use std::collections::HashMap;
use std::sync::Arc;

use convscope_core::attribution::display::{self, Colormap};
use convscope_core::attribution::{self, Baseline, Integration, Layers, Method, Progress, Settings, Target};
use convscope_core::graph::NodeId;
use convscope_core::session::{Attributed, ImageInput, Request, RequestKind};

use crate::app::{App, LoadedModel, Message};
use crate::command::Command;
use crate::prediction::Classification;

/// Which layer a CAM is taken at.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LayerChoice {
    /// The end of the last stage, where Grad-CAM is usually taken.
    #[default]
    Last,
    /// The end of every stage, side by side: which layer to use, answered by looking.
    Stages,
    /// The node selected on the diagram or in the feature-map view.
    Selected,
}

/// What the Attribution view asks `App::apply` for.
#[derive(Clone, Debug)]
pub enum AttributionCommand {
    /// Stops the computation under way.
    Cancel,
    /// Asks again for a map that was cancelled or failed.
    Retry,
    /// Saves the overlay (PNG) or the raw map (safetensors, .npy) through a file dialog.
    Export { raw: bool },
}

/// One computed explanation, with its pictures made for the current opacity and colormap.
pub struct Shown {
    pub attributed: Attributed,
    /// One texture per map, with the opacity and colormap they were drawn with.
    textures: Vec<egui::TextureHandle>,
    drawn_with: Option<(f32, Colormap)>,
}

impl Shown {
    fn new(attributed: Attributed) -> Self {
        Self { attributed, textures: Vec::new(), drawn_with: None }
    }

    fn preview(&self) -> Option<image::RgbImage> {
        let [w, h] = self.attributed.preview.size;
        image::RgbImage::from_raw(w as u32, h as u32, self.attributed.preview.rgb.clone())
    }

    fn textures(&mut self, ctx: &egui::Context, opacity: f32, colormap: Colormap) -> &[egui::TextureHandle] {
        if self.drawn_with != Some((opacity, colormap)) {
            self.textures.clear();
            if let Some(image) = self.preview() {
                for (i, map) in self.attributed.explanation.maps.iter().enumerate() {
                    let shown = display::overlay(&image, &map.shown, opacity, &|v| colormap.rgb(v, map.shown.shading));
                    let size = [shown.width() as usize, shown.height() as usize];
                    let pixels = egui::ColorImage::from_rgb(size, shown.as_raw());
                    self.textures.push(ctx.load_texture(
                        format!("attribution_{i}"),
                        pixels,
                        egui::TextureOptions::LINEAR,
                    ));
                }
            }
            self.drawn_with = Some((opacity, colormap));
        }
        &self.textures
    }
}

/// The view's own state; nothing here is saved between runs.
pub struct AttributionView {
    /// Method and parameters; the target and layers are filled in from the choices below.
    pub settings: Settings,
    pub layer: LayerChoice,
    /// `None`: the predicted class.
    pub target: Option<i64>,
    /// Explain the target's logit less this class's.
    pub minus: Option<i64>,
    pub search: String,
    pub opacity: f32,
    /// `None`: the map's own default (diverging for signed maps).
    pub colormap: Option<Colormap>,
    cache: HashMap<String, Shown>,
    /// The key on show (in `cache`).
    current: Option<String>,
    /// The key of the request in flight.
    requested: Option<String>,
    /// A key the user cancelled, or that failed (with why): not asked again until Retry.
    stopped: Option<(String, Option<String>)>,
}

impl Default for AttributionView {
    fn default() -> Self {
        Self {
            settings: Settings::default(),
            layer: LayerChoice::Last,
            target: None,
            minus: None,
            search: String::new(),
            opacity: 0.5,
            colormap: None,
            cache: HashMap::new(),
            current: None,
            requested: None,
            stopped: None,
        }
    }
}

/// The maps kept at most; the oldest-looking go first (any one: they are cheap to recompute).
const CACHE_LIMIT: usize = 64;

impl AttributionView {
    /// The request the view wants, and the key that names its answer: `None` until a model
    /// has classified an image.
    fn wanted(
        &self,
        model: &LoadedModel,
        image: &ImageInput,
        disabled: &[NodeId],
        selected: NodeId,
    ) -> (String, Settings) {
        let layers = match self.layer {
            LayerChoice::Last => Layers::Last,
            LayerChoice::Stages => Layers::Stages,
            LayerChoice::Selected => Layers::Node(selected),
        };
        let target = match (self.target, self.minus) {
            (None, _) => Target::Predicted,
            (Some(class), None) => Target::Class(class),
            (Some(class), Some(minus)) => Target::Difference { class, minus },
        };
        let settings = relevant(Settings { target, layers, ..self.settings.clone() });
        let key = format!("{}|{}|{}|{settings:?}|{disabled:?}", model.spec.id, model.origin, image_key(image));
        (key, settings)
    }

    /// The explanation on show, if any.
    pub fn current(&self) -> Option<&Attributed> {
        self.current.as_ref().and_then(|k| self.cache.get(k)).map(|s| &s.attributed)
    }

    /// Forgets everything about the previous model.
    pub fn reset(&mut self) {
        self.cache.clear();
        self.current = None;
        self.requested = None;
        self.stopped = None;
        self.target = None;
        self.minus = None;
    }

    pub(crate) fn receive(&mut self, attributed: Attributed) {
        let Some(key) = self.requested.take() else { return };
        if self.cache.len() >= CACHE_LIMIT
            && let Some(old) = self.cache.keys().find(|k| Some(*k) != self.current.as_ref()).cloned()
        {
            self.cache.remove(&old);
        }
        self.cache.insert(key.clone(), Shown::new(attributed));
        self.current = Some(key);
    }

    pub(crate) fn failed(&mut self, message: String) {
        if let Some(key) = self.requested.take() {
            self.stopped = Some((key, Some(message)));
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub fn ui(
        &mut self,
        ui: &mut egui::Ui,
        model: Option<&LoadedModel>,
        prediction: Option<&Classification>,
        selected: NodeId,
        pending: bool,
        progress: Option<Progress>,
        commands: &mut Vec<Command>,
    ) {
        let (Some(model), Some(prediction)) = (model, prediction) else {
            ui.weak("Open an image to see where the network looks.");
            return;
        };
        egui::ScrollArea::vertical().id_salt("attribution_scroll").auto_shrink([false, false]).show(ui, |ui| {
            self.controls_ui(ui, model, prediction, selected);
            ui.separator();
            self.status_ui(ui, pending, progress, commands);
            self.maps_ui(ui, model);
        });
    }

    fn controls_ui(&mut self, ui: &mut egui::Ui, model: &LoadedModel, prediction: &Classification, selected: NodeId) {
        let method = &mut self.settings.method;
        ui.horizontal_wrapped(|ui| {
            egui::ComboBox::from_label("method").selected_text(method.label()).show_ui(ui, |ui| {
                for m in Method::ALL {
                    ui.selectable_value(method, m, m.label());
                }
            });
            ui.separator();
            ui.add(egui::Slider::new(&mut self.opacity, 0.0..=1.0).text("opacity"));
            let default = Colormap::default_for(display::shading(*method));
            let current = self.colormap.unwrap_or(default);
            egui::ComboBox::from_label("colormap").selected_text(current.id()).show_ui(ui, |ui| {
                for c in Colormap::ALL {
                    if ui.selectable_label(current == c, c.id()).clicked() {
                        self.colormap = (c != default).then_some(c);
                    }
                }
            });
        });
        let method = self.settings.method;
        ui.horizontal_wrapped(|ui| {
            if method.uses_layer() {
                ui.label("layer");
                ui.radio_value(&mut self.layer, LayerChoice::Last, "last stage");
                ui.radio_value(&mut self.layer, LayerChoice::Stages, "every stage");
                let name = model.graph.nodes.get(selected).map_or("?", |n| n.name.as_str());
                ui.radio_value(&mut self.layer, LayerChoice::Selected, format!("selected node: {name}"))
                    .on_hover_text("Click a node on the Diagram view, or step with ← and →");
            }
            match method {
                Method::IntegratedGradients => {
                    ui.add(egui::Slider::new(&mut self.settings.steps, 1..=128).text("steps"));
                    ui.radio_value(&mut self.settings.integration, Integration::GaussLegendre, "Gauss-Legendre");
                    ui.radio_value(&mut self.settings.integration, Integration::Trapezoid, "trapezoid");
                    ui.label("baseline");
                    ui.radio_value(&mut self.settings.baseline, Baseline::Black, "black");
                    ui.radio_value(&mut self.settings.baseline, Baseline::Mean, "mean");
                }
                Method::SmoothGrad => {
                    ui.add(egui::Slider::new(&mut self.settings.samples, 1..=64).text("samples"));
                    ui.add(egui::Slider::new(&mut self.settings.sigma, 0.0..=0.5).text("σ (of the range)"));
                    ui.add(egui::DragValue::new(&mut self.settings.seed).prefix("seed "));
                }
                Method::Occlusion => {
                    ui.add(egui::Slider::new(&mut self.settings.window, 4..=112).text("window"));
                    ui.add(egui::Slider::new(&mut self.settings.stride, 2..=112).text("stride"));
                }
                _ => {}
            }
        });
        self.target_ui(ui, model, prediction);
    }

    fn target_ui(&mut self, ui: &mut egui::Ui, model: &LoadedModel, prediction: &Classification) {
        let labels = model.spec.labels;
        let name = |class: i64| format!("{} ({class})", labels.name(class));
        ui.horizontal_wrapped(|ui| {
            ui.label("target");
            if ui.selectable_label(self.target.is_none(), "the prediction").clicked() {
                self.target = None;
                self.minus = None;
            }
            for p in &prediction.top5 {
                if ui.selectable_label(self.target == Some(p.class), name(p.class)).clicked() {
                    self.target = Some(p.class);
                }
            }
            if let Some(class) = self.target
                && !prediction.top5.iter().any(|p| p.class == class)
            {
                let _ = ui.selectable_label(true, name(class));
            }
        });
        ui.horizontal_wrapped(|ui| {
            let label = ui.label("find a class");
            ui.add(egui::TextEdit::singleline(&mut self.search).hint_text("part of its name").desired_width(180.0))
                .labelled_by(label.id)
                .on_hover_text("Any class, by part of its name");
            let classes = classes(model);
            for class in attribution::search_classes(labels, classes, &self.search).into_iter().take(8) {
                if ui.selectable_label(self.target == Some(class), name(class)).clicked() {
                    self.target = Some(class);
                }
            }
        });
        if let Some(class) = self.target {
            ui.horizontal_wrapped(|ui| {
                let mut difference = self.minus.is_some();
                let other = prediction.top5.iter().map(|p| p.class).find(|&c| c != class).unwrap_or(0);
                if ui.checkbox(&mut difference, "less another class's logit").changed() {
                    self.minus = difference.then_some(self.minus.unwrap_or(other));
                }
                if let Some(minus) = &mut self.minus {
                    egui::ComboBox::from_id_salt("attribution_minus").selected_text(name(*minus)).show_ui(ui, |ui| {
                        for p in prediction.top5.iter().filter(|p| p.class != class) {
                            ui.selectable_value(minus, p.class, name(p.class));
                        }
                    });
                }
            });
        }
    }

    fn status_ui(&self, ui: &mut egui::Ui, pending: bool, progress: Option<Progress>, commands: &mut Vec<Command>) {
        ui.horizontal_wrapped(|ui| {
            if pending {
                crate::theme::spinner(ui);
                match progress {
                    Some(p) if p.total > 0 => {
                        let fraction = p.done as f32 / p.total as f32;
                        ui.add(
                            egui::ProgressBar::new(fraction)
                                .desired_width(200.0)
                                .text(format!("{} of {} {}", p.done, p.total, p.what)),
                        );
                    }
                    _ => {
                        ui.label("computing…");
                    }
                }
                if ui.button("Cancel").clicked() {
                    commands.push(Command::Attribution(AttributionCommand::Cancel));
                }
            } else if let Some((_, why)) = &self.stopped {
                match why {
                    Some(message) => ui.colored_label(ui.visuals().error_fg_color, message),
                    None => ui.label("Cancelled."),
                };
                if ui.button("Compute").clicked() {
                    commands.push(Command::Attribution(AttributionCommand::Retry));
                }
            }
            if self.current().is_some() {
                if ui.button("Save overlay…").on_hover_text("The picture, as a PNG").clicked() {
                    commands.push(Command::Attribution(AttributionCommand::Export { raw: false }));
                }
                if ui.button("Save map…").on_hover_text("The raw values: safetensors or .npy").clicked() {
                    commands.push(Command::Attribution(AttributionCommand::Export { raw: true }));
                }
            }
        });
    }

    fn maps_ui(&mut self, ui: &mut egui::Ui, model: &LoadedModel) {
        let (opacity, colormap) = (self.opacity, self.colormap);
        let Some(shown) = self.current.as_ref().and_then(|k| self.cache.get_mut(k)) else { return };
        let explanation = &shown.attributed.explanation;
        let labels = model.spec.labels;
        let objective = explanation.objective;
        let mut about = format!(
            "{} of {} ({}), {:.0} ms",
            explanation.method.label(),
            labels.name(objective.class),
            objective.class,
            shown.attributed.compute_ms
        );
        if let Some(minus) = objective.minus {
            about.push_str(&format!(" less {} ({minus})", labels.name(minus)));
        }
        ui.label(about);
        if let Some(c) = explanation.completeness {
            ui.label(format!(
                "completeness: Σ attributions {:.4} against f(x) − f(baseline) = {:.4}: gap {:.2}%",
                c.attribution_sum,
                c.score_input - c.score_baseline,
                c.relative_gap() * 100.0
            ));
        }
        if explanation.guided_relus == Some(0) {
            ui.label(format!(
                "{} has no ReLU to guide (its activations are others): this map is the plain gradient.",
                model.spec.card.name
            ));
        }
        let names: Vec<String> = explanation
            .maps
            .iter()
            .map(|m| {
                let at = m.node.and_then(|n| model.graph.nodes.get(n)).map(|n| n.name.clone()).unwrap_or_default();
                let side = m.shape.iter().rev().take(2).map(i64::to_string).collect::<Vec<_>>().join("×");
                if at.is_empty() { side } else { format!("{at} ({side})") }
            })
            .collect();
        let colormap = colormap.unwrap_or_else(|| Colormap::default_for(display::shading(explanation.method)));
        let textures = shown.textures(ui.ctx(), opacity, colormap).to_vec();
        let count = textures.len().max(1) as f32;
        let spacing = ui.spacing().item_spacing.x;
        let side = ((ui.available_width() - spacing * (count - 1.0)) / count).clamp(64.0, 512.0);
        ui.horizontal_wrapped(|ui| {
            for (texture, name) in textures.iter().zip(&names) {
                ui.vertical(|ui| {
                    ui.add(egui::Image::from_texture(texture).fit_to_exact_size(egui::vec2(side, side)))
                        .on_hover_text(name);
                    ui.label(name);
                });
            }
        });
    }
}

/// `settings` with what its method does not read set to the defaults, so that a parameter
/// of another method does not make a kept map look new.
fn relevant(settings: Settings) -> Settings {
    let defaults = Settings::default();
    let method = settings.method;
    let ig = method == Method::IntegratedGradients;
    let smooth = method == Method::SmoothGrad;
    let occlusion = method == Method::Occlusion;
    Settings {
        layers: if method.uses_layer() { settings.layers } else { defaults.layers },
        steps: if ig { settings.steps } else { defaults.steps },
        integration: if ig { settings.integration } else { defaults.integration },
        baseline: if ig { settings.baseline } else { defaults.baseline },
        samples: if smooth { settings.samples } else { defaults.samples },
        sigma: if smooth { settings.sigma } else { defaults.sigma },
        seed: if smooth { settings.seed } else { defaults.seed },
        window: if occlusion { settings.window } else { defaults.window },
        stride: if occlusion { settings.stride } else { defaults.stride },
        ..settings
    }
}

/// How many classes the loaded network tells apart.
fn classes(model: &LoadedModel) -> i64 {
    model
        .shapes
        .as_ref()
        .and_then(|s| s.nodes.get(model.graph.output))
        .map(|info| info.shape.iter().product::<i64>())
        .unwrap_or(1000)
}

/// Names an image for the cache: a file by its path, bytes and pixels by their buffer (kept
/// for as long as the image is the current one).
fn image_key(image: &ImageInput) -> String {
    match image {
        ImageInput::Path(path) => path.display().to_string(),
        ImageInput::Bytes { name, bytes } => format!("{name}@{:p}", Arc::as_ptr(bytes)),
        ImageInput::Pixels { name, rgba, .. } => format!("{name}@{:p}", Arc::as_ptr(rgba)),
    }
}

impl App {
    /// Asks the worker for the map the Attribution view wants when it is on screen and the
    /// map is neither kept nor on its way; shows a kept one at once.
    pub(crate) fn attribution_frame(&mut self) {
        if self.settings.central != crate::settings::CentralView::Attribution {
            return;
        }
        let disabled = self.disabled();
        let rt = &mut self.runtime;
        let (Some(model), Some(prediction)) = (&rt.model, &rt.prediction.shown) else { return };
        let view = &mut rt.attribution;
        let (key, settings) = view.wanted(model, &prediction.image, &disabled, rt.layers.selected);
        if view.cache.contains_key(&key) {
            view.current = Some(key);
            return;
        }
        let in_flight = rt.worker.is_pending(RequestKind::Attribution);
        if (in_flight && view.requested.as_ref() == Some(&key)) || view.stopped.as_ref().is_some_and(|(k, _)| *k == key)
        {
            return;
        }
        view.stopped = None;
        view.requested = Some(key);
        rt.worker.send(Request::Attribution { disabled, settings });
    }

    pub(crate) fn apply_attribution(&mut self, command: AttributionCommand) {
        let rt = &mut self.runtime;
        match command {
            AttributionCommand::Cancel => {
                rt.worker.cancel_attribution();
                if let Some(key) = rt.attribution.requested.take() {
                    rt.attribution.stopped = Some((key, None));
                }
            }
            AttributionCommand::Retry => rt.attribution.stopped = None,
            AttributionCommand::Export { raw } => {
                let (Some(model), Some(shown)) =
                    (&rt.model, rt.attribution.current.as_ref().and_then(|k| rt.attribution.cache.get(k)))
                else {
                    return;
                };
                let method = shown.attributed.explanation.method;
                let base = format!("{}_{}", model.spec.id, method.id());
                let dialog = if raw {
                    rfd::FileDialog::new()
                        .set_file_name(format!("{base}.safetensors"))
                        .add_filter("safetensors", &["safetensors"])
                        .add_filter("NumPy", &["npy"])
                } else {
                    rfd::FileDialog::new().set_file_name(format!("{base}.png")).add_filter("PNG", &["png"])
                };
                // rfd returns at once with None where no desktop portal runs.
                let Some(path) = dialog.save_file() else { return };
                self.runtime.message = Some(match self.save_attribution(&path) {
                    Ok(text) => Message { text, is_error: false },
                    Err(text) => Message { text, is_error: true },
                });
            }
        }
    }

    /// Writes the map on show to `path`: the overlay as drawn (PNG), or the raw maps.
    pub fn save_attribution(&self, path: &std::path::Path) -> Result<String, String> {
        let rt = &self.runtime;
        let view = &rt.attribution;
        let (Some(model), Some(shown)) = (&rt.model, view.current.as_ref().and_then(|k| view.cache.get(k))) else {
            return Err("no map is shown".into());
        };
        let image = shown.preview().ok_or("the image the map is over is missing")?;
        let explanation = &shown.attributed.explanation;
        let colormap = view.colormap.unwrap_or_else(|| Colormap::default_for(display::shading(explanation.method)));
        attribution::export::save(explanation, &model.graph, &image, view.opacity, colormap, path)
            .map(|()| format!("Saved {}", path.display()))
            .map_err(|e| e.to_string())
    }

    /// The explanation the Attribution view shows.
    pub fn attribution(&self) -> Option<&Attributed> {
        self.runtime.attribution.current()
    }

    /// The Attribution view's state, for tests and the shell.
    pub fn attribution_view_mut(&mut self) -> &mut AttributionView {
        &mut self.runtime.attribution
    }
}
