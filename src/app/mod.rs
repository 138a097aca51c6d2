//! The desktop explorer: pick a network, drop an image, step through its layers, switch
//! its residual connections off and watch the gradients.
//!
//! - `worker`: the model thread and its bounded channels; the only place libtorch runs.
//! - `picker`: the timeline of architectures and the selected one's card.
//! - `prediction`: the input as the network sees it, top-5, timings, device.
//! - `layers`: stepping through nodes; feature maps as heatmaps or bars.
//! - `gradients`: gradient norms along depth, residual switches, ghost of the last curve.
//! - `diagram`: the architecture graph inside a pan/zoom scene.
//! - `theme`: every colour.
//!
//! State is split as in egui's demo app: `Settings` is saved with eframe's storage, `Runtime`
//! is not. UI code reads state and pushes `Command`s; `App::apply` changes the world, once,
//! at the end of the frame.

mod diagram;
mod gradients;
mod layers;
mod picker;
mod prediction;
pub mod theme;
pub mod worker;

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, TryRecvError, sync_channel};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tch::Device;

use crate::engine::{self, WeightsChoice};
use crate::graph::{BlockKind, Graph, NodeId};
use crate::shapes::ShapeReport;
use crate::zoo::{self, ArchSpec};
use worker::{ImageInput, Payload, Reply, Request, RequestKind, WorkerHandle};

/// How long the play button shows each node.
const PLAY_STEP: Duration = Duration::from_millis(600);

/// What is kept between runs.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct Settings {
    pub arch: Option<String>,
    pub device: DeviceChoice,
    pub image: Option<PathBuf>,
    pub show_picker: bool,
    pub show_prediction: bool,
    pub show_gradients: bool,
    pub central: CentralView,
    pub theme: ThemeChoice,
    /// Feature maps normalised per channel (else over the whole layer).
    pub per_channel: bool,
    /// How many channels the grid shows at most.
    pub channel_limit: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            arch: None,
            device: DeviceChoice::Cpu,
            image: None,
            show_picker: true,
            show_prediction: true,
            show_gradients: true,
            central: CentralView::FeatureMaps,
            theme: ThemeChoice::System,
            per_channel: true,
            channel_limit: 64,
        }
    }
}

#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub enum DeviceChoice {
    #[default]
    Cpu,
    Cuda,
}

impl DeviceChoice {
    pub fn device(self) -> Device {
        match self {
            DeviceChoice::Cpu => Device::Cpu,
            DeviceChoice::Cuda => Device::Cuda(0),
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            DeviceChoice::Cpu => "CPU",
            DeviceChoice::Cuda => "CUDA",
        }
    }
}

#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub enum ThemeChoice {
    #[default]
    System,
    Light,
    Dark,
}

impl ThemeChoice {
    fn preference(self) -> egui::ThemePreference {
        match self {
            ThemeChoice::System => egui::ThemePreference::System,
            ThemeChoice::Light => egui::ThemePreference::Light,
            ThemeChoice::Dark => egui::ThemePreference::Dark,
        }
    }
}

#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub enum CentralView {
    #[default]
    FeatureMaps,
    Diagram,
}

/// What the window opens with: the command line first, then the saved settings, then the
/// fallbacks.
#[derive(Clone, Debug, Default)]
pub struct Start {
    pub arch: Option<String>,
    pub image: Option<PathBuf>,
    pub fallback_arch: Option<String>,
    pub fallback_image: Option<PathBuf>,
    /// Ignore saved settings (tests, and a clean start).
    pub ignore_storage: bool,
}

/// What UI code asks for; `App::apply` carries it out at the end of the frame.
#[must_use]
#[derive(Clone, Debug)]
pub enum Command {
    SelectArch(&'static str),
    SetDevice(DeviceChoice),
    OpenImage(ImageInput),
    OpenDialog,
    SelectNode(NodeId),
    StepNode(i64),
    TogglePlay,
    SetResiduals(BTreeSet<NodeId>),
    SetTarget(Option<i64>),
    SetTheme(ThemeChoice),
    /// `convscope weights fetch ID`, on its own thread: it may take minutes, or fail at once
    /// without internet.
    FetchWeights(&'static str),
    /// Saves the gradient table through a file dialog.
    ExportGradients,
    DismissMessage,
}

/// A sentence for the user, shown in a banner until dismissed or replaced.
#[derive(Clone, Debug, PartialEq)]
pub struct Message {
    pub text: String,
    pub is_error: bool,
}

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

/// The model the worker holds now (not the one being loaded).
pub struct LoadedModel {
    pub spec: ArchSpec,
    pub graph: Arc<Graph>,
    pub shapes: Option<ShapeReport>,
    pub origin: String,
    pub device: Device,
    pub residuals: gradients::ResidualGroups,
}

/// Everything not saved: the worker, results, textures.
pub struct Runtime {
    pub specs: Vec<ArchSpec>,
    worker: WorkerHandle,
    facts: HashMap<&'static str, ArchFacts>,
    pub model: Option<LoadedModel>,
    /// The image the current prediction is of.
    pub image: Option<ImageInput>,
    pub prediction: Option<prediction::PredictionView>,
    pub message: Option<Message>,
    pub layers: layers::LayerView,
    pub gradients: gradients::GradientView,
    pub diagram: diagram::DiagramView,
    pub picker_filter: String,
    pub cuda_available: bool,
    /// An image waiting for the model to finish loading.
    pending_image: Option<ImageInput>,
    playing: bool,
    last_play_step: f64,
    /// Set by a command, applied to the context at the start of the next frame.
    theme_changed: bool,
    /// The gradient panel was just opened: compute what it shows.
    wants_gradients: bool,
    /// A weights download in progress: the architecture and where its outcome arrives.
    pub fetching: Option<(&'static str, Receiver<Result<String, String>>)>,
}

pub struct App {
    settings: Settings,
    runtime: Runtime,
}

impl App {
    pub fn new(cc: &eframe::CreationContext<'_>, start: Start) -> std::io::Result<Self> {
        let saved: Option<Settings> = if start.ignore_storage {
            None
        } else {
            cc.storage.and_then(|storage| eframe::get_value(storage, eframe::APP_KEY))
        };
        let mut settings = saved.unwrap_or_default();
        let ctx = cc.egui_ctx.clone();
        let worker = WorkerHandle::spawn(move || ctx.request_repaint())?;
        let cuda_available = tch::Cuda::is_available();
        if !cuda_available {
            settings.device = DeviceChoice::Cpu;
        }
        cc.egui_ctx.set_theme(settings.theme.preference());
        let specs = zoo::all();
        let mut app = Self {
            settings,
            runtime: Runtime {
                specs,
                worker,
                facts: HashMap::new(),
                model: None,
                image: None,
                prediction: None,
                message: None,
                layers: layers::LayerView::default(),
                gradients: gradients::GradientView::default(),
                diagram: diagram::DiagramView::default(),
                picker_filter: String::new(),
                cuda_available,
                pending_image: None,
                playing: false,
                last_play_step: 0.0,
                theme_changed: false,
                wants_gradients: false,
                fetching: None,
            },
        };
        let known = |id: &Option<String>| id.as_deref().and_then(|id| zoo::all().into_iter().find(|s| s.id == id));
        let spec = known(&start.arch)
            .or_else(|| known(&app.settings.arch))
            .or_else(|| known(&start.fallback_arch))
            .or_else(|| app.runtime.specs.first().cloned());
        let image = start
            .image
            .or_else(|| if start.arch.is_none() { app.settings.image.clone() } else { None })
            .filter(|p| p.is_file())
            .or_else(|| {
                // A photo means nothing to a digit reader: LeNet opens on a bundled digit.
                let digits = spec.as_ref().is_some_and(|s| s.labels == zoo::Labels::Digits);
                let digit = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/digits/digit_3.png");
                if digits && start.fallback_image.is_some() && digit.is_file() {
                    Some(digit)
                } else {
                    start.fallback_image
                }
            });
        if let Some(spec) = spec {
            app.apply(vec![Command::SelectArch(spec.id)]);
        }
        if let Some(path) = image {
            app.runtime.pending_image = Some(ImageInput::Path(path));
        }
        Ok(app)
    }

    // Read-only views for tests and for the shell.

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    pub fn loaded_arch(&self) -> Option<&'static str> {
        self.runtime.model.as_ref().map(|m| m.spec.id)
    }

    pub fn prediction(&self) -> Option<&prediction::PredictionView> {
        self.runtime.prediction.as_ref()
    }

    pub fn message(&self) -> Option<&Message> {
        self.runtime.message.as_ref()
    }

    pub fn selected_node(&self) -> NodeId {
        self.runtime.layers.selected
    }

    pub fn activation_node(&self) -> Option<NodeId> {
        self.runtime.layers.activation.as_ref().map(|a| a.data.node)
    }

    pub fn gradient_flow(&self) -> Option<&worker::GradientFlow> {
        self.runtime.gradients.current.as_ref()
    }

    pub fn ghost_flow(&self) -> Option<&worker::GradientFlow> {
        self.runtime.gradients.ghost.as_ref()
    }

    /// The residual merges switched off.
    pub fn disabled_residuals(&self) -> Vec<NodeId> {
        self.disabled()
    }

    /// Whether the worker still owes an answer.
    pub fn busy(&self) -> bool {
        self.runtime.worker.any_pending() || self.runtime.pending_image.is_some() || self.runtime.fetching.is_some()
    }

    fn facts(&mut self, id: &'static str) -> Option<&ArchFacts> {
        if !self.runtime.facts.contains_key(id) {
            let spec = self.runtime.specs.iter().find(|s| s.id == id)?;
            let graph = spec.graph();
            let (shapes, shape_error) = match graph.infer_shapes(spec.input[1], spec.input[2]) {
                Ok(report) => (Some(report), None),
                Err(e) => (None, Some(e.to_string())),
            };
            let facts = ArchFacts { graph, shapes, shape_error, weights: weights_state(id) };
            self.runtime.facts.insert(id, facts);
        }
        self.runtime.facts.get(id)
    }

    /// Carries out the frame's commands, in order.
    fn apply(&mut self, commands: Vec<Command>) {
        for command in commands {
            self.apply_one(command);
        }
    }

    fn apply_one(&mut self, command: Command) {
        let rt = &mut self.runtime;
        match command {
            Command::SelectArch(id) => {
                let Some(spec) = rt.specs.iter().find(|s| s.id == id).cloned() else {
                    return;
                };
                self.settings.arch = Some(id.to_owned());
                rt.worker.send(Request::Load {
                    spec: Box::new(spec),
                    weights: WeightsChoice::Installed { seed: engine::DEFAULT_SEED },
                    device: self.settings.device.device(),
                });
            }
            Command::SetDevice(choice) => {
                if choice == DeviceChoice::Cuda && !rt.cuda_available {
                    return;
                }
                self.settings.device = choice;
                rt.worker.send(Request::Device(choice.device()));
            }
            Command::OpenImage(image) => {
                if rt.model.is_some() {
                    self.classify(image);
                } else {
                    // The model is still loading: run the image once it is ready.
                    rt.pending_image = Some(image);
                }
            }
            Command::OpenDialog => {
                // rfd returns at once with None where no desktop portal runs.
                let picked = rfd::FileDialog::new()
                    .add_filter("images", &["png", "jpg", "jpeg", "gif", "bmp", "webp", "tif", "tiff", "pgm", "ppm"])
                    .pick_file();
                if let Some(path) = picked {
                    self.apply_one(Command::OpenImage(ImageInput::Path(path)));
                }
            }
            Command::SelectNode(node) => {
                let Some(model) = &rt.model else { return };
                let node = node.min(model.graph.nodes.len().saturating_sub(1));
                rt.layers.select(node);
                rt.diagram.follow(node);
                if rt.prediction.is_some() {
                    rt.worker.send(Request::Activation { node });
                }
            }
            Command::StepNode(delta) => {
                let Some(model) = &rt.model else { return };
                let last = model.graph.nodes.len().saturating_sub(1) as i64;
                let next = (rt.layers.selected as i64 + delta).clamp(0, last) as NodeId;
                if next != rt.layers.selected {
                    self.apply_one(Command::SelectNode(next));
                } else if rt.playing {
                    rt.playing = false;
                }
            }
            Command::TogglePlay => {
                rt.playing = !rt.playing;
                if let Some(model) = &rt.model
                    && rt.playing
                    && rt.layers.selected + 1 >= model.graph.nodes.len()
                {
                    self.apply_one(Command::SelectNode(0));
                }
            }
            Command::SetResiduals(disabled) => {
                rt.gradients.disabled = disabled;
                self.rerun();
            }
            Command::SetTarget(target) => {
                rt.gradients.target = target;
                self.request_gradients();
            }
            Command::SetTheme(theme) => {
                self.settings.theme = theme;
                // The context is reached through the next frame; see `ui`.
                rt.theme_changed = true;
            }
            Command::FetchWeights(id) => {
                if rt.fetching.is_some() {
                    return;
                }
                let Some(spec) = rt.specs.iter().find(|s| s.id == id).cloned() else { return };
                let (sender, receiver) = sync_channel(1);
                let spawned = std::thread::Builder::new().name("convscope-fetch".into()).spawn(move || {
                    let outcome = crate::store::fetch(&spec).map(|entry| entry.source).map_err(|e| e.to_string());
                    // The window may have closed meanwhile; nobody is left to tell.
                    let _ = sender.send(outcome);
                });
                match spawned {
                    Ok(_) => rt.fetching = Some((id, receiver)),
                    Err(e) => {
                        rt.message =
                            Some(Message { text: format!("Could not start the download: {e}"), is_error: true })
                    }
                }
            }
            Command::ExportGradients => {
                let (Some(model), Some(flow)) = (&rt.model, &rt.gradients.current) else { return };
                let csv = gradients::gradients_csv(&model.graph, flow);
                // rfd returns at once with None where no desktop portal runs.
                let picked = rfd::FileDialog::new()
                    .set_file_name(format!("{}_gradients.csv", model.spec.id))
                    .add_filter("CSV", &["csv"])
                    .save_file();
                if let Some(path) = picked {
                    rt.message = Some(match std::fs::write(&path, csv) {
                        Ok(()) => Message { text: format!("Saved {}", path.display()), is_error: false },
                        Err(e) => Message { text: format!("Could not save {}: {e}", path.display()), is_error: true },
                    });
                }
            }
            Command::DismissMessage => rt.message = None,
        }
    }

    /// The outcome of a weights download, once it lands.
    fn receive_fetch(&mut self) -> Vec<Command> {
        let Some((id, receiver)) = &self.runtime.fetching else { return Vec::new() };
        let id = *id;
        let outcome = match receiver.try_recv() {
            Ok(outcome) => outcome,
            Err(TryRecvError::Empty) => return Vec::new(),
            Err(TryRecvError::Disconnected) => Err("the download thread stopped unexpectedly".into()),
        };
        self.runtime.fetching = None;
        // The card reads the weights folder again.
        self.runtime.facts.remove(id);
        match outcome {
            Ok(source) => {
                self.runtime.message =
                    Some(Message { text: format!("Installed {id} weights from {source}"), is_error: false });
                if self.settings.arch.as_deref() == Some(id) {
                    return vec![Command::SelectArch(id)];
                }
            }
            Err(e) => self.runtime.message = Some(Message { text: e, is_error: true }),
        }
        Vec::new()
    }

    fn disabled(&self) -> Vec<NodeId> {
        self.runtime.gradients.disabled.iter().copied().collect()
    }

    /// Runs an image; its gradients follow once it has run, so a file that fails to decode
    /// leaves everything as it was.
    fn classify(&mut self, image: ImageInput) {
        let disabled = self.disabled();
        self.runtime.worker.send(Request::Classify { image, disabled });
    }

    fn request_gradients(&mut self) {
        if self.settings.show_gradients && self.runtime.prediction.is_some() {
            let (disabled, target) = (self.disabled(), self.runtime.gradients.target);
            self.runtime.worker.send(Request::Gradients { disabled, target });
        }
    }

    /// Runs the current image again (after a device move or a residual switch).
    fn rerun(&mut self) {
        if let Some(image) = self.runtime.image.clone() {
            self.classify(image);
        }
    }

    fn receive(&mut self, ctx: &egui::Context) {
        for reply in self.runtime.worker.poll() {
            if !self.runtime.worker.is_latest(&reply) {
                continue;
            }
            self.receive_one(ctx, reply);
        }
    }

    fn receive_one(&mut self, ctx: &egui::Context, reply: Reply) {
        let payload = match reply.result {
            Ok(payload) => payload,
            Err(error) => {
                let text = match (reply.kind, error.image) {
                    (RequestKind::Classify, Some(image)) => format!("Could not use {image}: {}", error.message),
                    (RequestKind::Load, _) => format!("Could not load the model: {}", error.message),
                    (RequestKind::Device, _) => format!("Could not move the model: {}", error.message),
                    _ => error.message,
                };
                self.runtime.message = Some(Message { text, is_error: true });
                if reply.kind == RequestKind::Load
                    && let Some(image) = self.runtime.pending_image.take()
                    && self.runtime.model.is_some()
                {
                    // The previous model is still there: the image runs on it.
                    self.classify(image);
                }
                if reply.kind == RequestKind::Device {
                    // The model stayed where it was.
                    if let Some(model) = &self.runtime.model {
                        self.settings.device =
                            if model.device == Device::Cpu { DeviceChoice::Cpu } else { DeviceChoice::Cuda };
                    }
                }
                return;
            }
        };
        match payload {
            Payload::Loaded(loaded) => {
                let Some(spec) = self.runtime.specs.iter().find(|s| s.id == loaded.id).cloned() else { return };
                let facts_weights = weights_state(spec.id);
                let (graph, shapes) = match self.facts(spec.id) {
                    Some(f) => (Arc::clone(&f.graph), f.shapes.clone()),
                    None => (spec.graph(), None),
                };
                if let Some(facts) = self.runtime.facts.get_mut(spec.id) {
                    facts.weights = facts_weights;
                }
                let residuals = gradients::ResidualGroups::new(&graph);
                let rt = &mut self.runtime;
                rt.layers = layers::LayerView::for_graph(&graph, &rt.layers);
                rt.gradients = gradients::GradientView { target: None, ..Default::default() };
                rt.diagram.reset();
                rt.prediction = None;
                rt.message = (!loaded.warnings.is_empty())
                    .then(|| Message { text: loaded.warnings.join("\n"), is_error: false });
                rt.model =
                    Some(LoadedModel { spec, graph, shapes, origin: loaded.origin, device: loaded.device, residuals });
                let image = rt.pending_image.take().or_else(|| rt.image.clone());
                if let Some(image) = image {
                    self.classify(image);
                }
            }
            Payload::Moved(device) => {
                if let Some(model) = &mut self.runtime.model {
                    model.device = device;
                }
                self.rerun();
            }
            Payload::Predicted(predicted) => {
                let rt = &mut self.runtime;
                let Some(model) = &rt.model else { return };
                if predicted.arch != model.spec.id {
                    return;
                }
                if let ImageInput::Path(path) = &predicted.image {
                    self.settings.image = Some(path.clone());
                }
                rt.image = Some(predicted.image.clone());
                rt.message = rt.message.take().filter(|m| !m.is_error);
                rt.prediction = Some(prediction::PredictionView::new(ctx, *predicted));
                rt.layers.activation = None;
                let node = rt.layers.selected;
                rt.worker.send(Request::Activation { node });
                self.request_gradients();
            }
            Payload::Gradients(flow) => {
                let rt = &mut self.runtime;
                let Some(model) = &rt.model else { return };
                if flow.arch != model.spec.id {
                    return;
                }
                if let Some(prediction) = &mut rt.prediction {
                    prediction.top5 = flow.top5.clone();
                    prediction.timings.backward_ms = flow.timings.backward_ms;
                }
                rt.gradients.receive(*flow);
                // The feature maps now reflect the switches.
                let node = rt.layers.selected;
                rt.worker.send(Request::Activation { node });
            }
            Payload::Activation(data) => {
                let rt = &mut self.runtime;
                let Some(model) = &rt.model else { return };
                if data.arch != model.spec.id || data.node != rt.layers.selected {
                    return;
                }
                rt.layers.receive(*data);
            }
        }
    }

    fn keyboard(&mut self, ctx: &egui::Context) -> Vec<Command> {
        let mut commands = Vec::new();
        if ctx.text_edit_focused() {
            return commands;
        }
        ctx.input_mut(|i| {
            if i.consume_key(egui::Modifiers::NONE, egui::Key::ArrowRight) {
                commands.push(Command::StepNode(1));
            }
            if i.consume_key(egui::Modifiers::NONE, egui::Key::ArrowLeft) {
                commands.push(Command::StepNode(-1));
            }
            if i.consume_key(egui::Modifiers::NONE, egui::Key::Space) {
                commands.push(Command::TogglePlay);
            }
            if i.consume_key(egui::Modifiers::COMMAND, egui::Key::O) {
                commands.push(Command::OpenDialog);
            }
            if i.consume_key(egui::Modifiers::NONE, egui::Key::F) {
                self.runtime.diagram.request_fit();
            }
        });
        commands
    }

    fn dropped_files(ctx: &egui::Context) -> Vec<Command> {
        let dropped = ctx.input(|i| i.raw.dropped_files.clone());
        // One image at a time: the last file dropped wins.
        let Some(file) = dropped.last() else { return Vec::new() };
        let path = file.path();
        let image = if path.is_file() {
            ImageInput::Path(path.to_owned())
        } else {
            let name = path.file_name().map_or_else(|| "dropped file".to_owned(), |n| n.to_string_lossy().into_owned());
            match file.bytes() {
                Ok(bytes) => ImageInput::Bytes { name, bytes: bytes.into() },
                Err(e) => {
                    return vec![Command::OpenImage(ImageInput::Bytes {
                        name: format!("{name} ({e})"),
                        bytes: Arc::from([]),
                    })];
                }
            }
        };
        vec![Command::OpenImage(image)]
    }

    fn play(&mut self, ctx: &egui::Context) -> Vec<Command> {
        if !self.runtime.playing {
            return Vec::new();
        }
        let now = ctx.input(|i| i.time);
        ctx.request_repaint_after(PLAY_STEP);
        let waiting = self.runtime.worker.is_pending(RequestKind::Activation);
        if waiting || now - self.runtime.last_play_step < PLAY_STEP.as_secs_f64() {
            return Vec::new();
        }
        self.runtime.last_play_step = now;
        vec![Command::StepNode(1)]
    }

    fn top_bar_ui(&mut self, ui: &mut egui::Ui, commands: &mut Vec<Command>) {
        let Self { settings, runtime } = self;
        ui.horizontal_wrapped(|ui| {
            ui.strong("convscope");
            ui.separator();
            if ui.button("Open…").on_hover_text("Open an image file (Ctrl+O); or drop one on the window").clicked() {
                commands.push(Command::OpenDialog);
            }
            ui.menu_button("Samples", |ui| {
                for (label, path) in sample_images() {
                    if ui.button(label).clicked() {
                        commands.push(Command::OpenImage(ImageInput::Path(path)));
                        ui.close();
                    }
                }
            });
            ui.separator();
            prediction::device_ui(ui, settings.device, runtime.cuda_available, commands);
            ui.separator();
            ui.toggle_value(&mut settings.show_picker, "Architectures").on_hover_text("Show the picker and card");
            ui.toggle_value(&mut settings.show_prediction, "Prediction").on_hover_text("Show the input and top-5");
            let before = settings.show_gradients;
            ui.toggle_value(&mut settings.show_gradients, "Gradients").on_hover_text("Show the gradient flow");
            if settings.show_gradients && !before {
                runtime.wants_gradients = true;
            }
            ui.selectable_value(&mut settings.central, CentralView::FeatureMaps, "Feature maps");
            ui.selectable_value(&mut settings.central, CentralView::Diagram, "Diagram");
            ui.separator();
            let (label, next) = match settings.theme {
                ThemeChoice::System => ("Theme: system", ThemeChoice::Dark),
                ThemeChoice::Dark => ("Theme: dark", ThemeChoice::Light),
                ThemeChoice::Light => ("Theme: light", ThemeChoice::System),
            };
            if ui.button(label).on_hover_text("Theme: system, dark or light").clicked() {
                commands.push(Command::SetTheme(next));
            }
            if runtime.worker.any_pending() || runtime.pending_image.is_some() {
                ui.spinner();
                ui.weak(status_text(&runtime.worker));
            }
            if runtime.worker.stopped() {
                ui.colored_label(ui.visuals().error_fg_color, "the model worker stopped; restart convscope");
            }
        });
        if let Some(message) = &runtime.message {
            ui.horizontal(|ui| {
                let color = if message.is_error { ui.visuals().error_fg_color } else { ui.visuals().warn_fg_color };
                ui.colored_label(color, &message.text);
                if ui.small_button("×").on_hover_text("Dismiss this message").clicked() {
                    commands.push(Command::DismissMessage);
                }
            });
        }
    }
}

fn status_text(worker: &WorkerHandle) -> &'static str {
    if worker.is_pending(RequestKind::Load) {
        "loading the model…"
    } else if worker.is_pending(RequestKind::Device) {
        "moving the model…"
    } else if worker.is_pending(RequestKind::Classify) {
        "classifying…"
    } else if worker.is_pending(RequestKind::Gradients) {
        "computing gradients…"
    } else if worker.is_pending(RequestKind::Activation) {
        "reading the layer…"
    } else {
        "waiting for the model…"
    }
}

/// The bundled images, one click away.
pub fn sample_images() -> Vec<(String, PathBuf)> {
    let assets = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets");
    let mut samples = vec![
        ("cat (chelsea.png)".to_owned(), assets.join("chelsea.png")),
        ("coffee (coffee.png)".to_owned(), assets.join("coffee.png")),
    ];
    samples.extend((0..10).map(|d| (format!("digit {d}"), assets.join("digits").join(format!("digit_{d}.png")))));
    samples.retain(|(_, path)| path.is_file());
    samples
}

/// Where an architecture's weights come from, from the weights folder and its manifest.
fn weights_state(id: &str) -> WeightsState {
    if engine::installed_weights(id).is_none() {
        return WeightsState::Random;
    }
    let manifest = crate::manifest::Manifest::load(&engine::weights_dir()).unwrap_or_default();
    let source = manifest.weights.get(id).map_or_else(|| "no manifest entry".to_owned(), |e| e.source.clone());
    if source.contains("trained by convscope") {
        WeightsState::TrainedHere { source }
    } else {
        WeightsState::Pretrained { source }
    }
}

/// The nearest enclosing block of a kind, or the outermost one.
pub(crate) fn stage_of(graph: &Graph, node: NodeId) -> Option<usize> {
    let mut current = graph.nodes.get(node)?.block;
    let mut outermost = current;
    while let Some(id) = current {
        if graph.blocks[id].kind == BlockKind::Stage {
            return Some(id);
        }
        outermost = Some(id);
        current = graph.blocks[id].parent;
    }
    outermost
}

impl eframe::App for App {
    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        let ctx = ui.ctx().clone();
        if std::mem::take(&mut self.runtime.theme_changed) {
            ctx.set_theme(self.settings.theme.preference());
        }
        self.receive(&ctx);
        let mut commands = Vec::new();
        if std::mem::take(&mut self.runtime.wants_gradients) {
            self.request_gradients();
        }
        commands.extend(self.keyboard(&ctx));
        commands.extend(Self::dropped_files(&ctx));
        commands.extend(self.play(&ctx));
        commands.extend(self.receive_fetch());

        egui::Panel::top("top_bar").show(ui, |ui| self.top_bar_ui(ui, &mut commands));
        // Before the side panels, so the plot spans the whole window.
        if self.settings.show_gradients {
            egui::Panel::bottom("gradients").resizable(true).default_size(300.0).min_size(220.0).show(ui, |ui| {
                gradients::gradients_ui(ui, &mut self.runtime, &mut commands);
            });
        }
        if self.settings.show_picker {
            egui::Panel::left("picker").resizable(true).default_size(300.0).show(ui, |ui| {
                let selected = self.settings.arch.clone();
                let loading = self.runtime.worker.is_pending(RequestKind::Load);
                let id =
                    selected.as_deref().and_then(|id| self.runtime.specs.iter().find(|s| s.id == id)).map(|s| s.id);
                if let Some(id) = id {
                    self.facts(id);
                }
                let facts = id.and_then(|id| self.runtime.facts.get(id));
                let fetching = self.runtime.fetching.as_ref().map(|(id, _)| *id);
                let state = picker::CardState { facts, loading, fetching, loaded: self.runtime.model.as_ref() };
                picker::picker_ui(
                    ui,
                    &self.runtime.specs,
                    selected.as_deref(),
                    &mut self.runtime.picker_filter,
                    &state,
                    &mut commands,
                );
            });
        }
        if self.settings.show_prediction {
            egui::Panel::right("prediction").resizable(true).default_size(280.0).show(ui, |ui| {
                prediction::prediction_ui(ui, &self.runtime, &mut commands);
            });
        }
        egui::CentralPanel::default().show(ui, |ui| match self.settings.central {
            CentralView::FeatureMaps => layers::layers_ui(ui, &mut self.settings, &mut self.runtime, &mut commands),
            CentralView::Diagram => diagram::diagram_ui(ui, &mut self.runtime, &mut commands),
        });
        prediction::drop_overlay_ui(&ctx);

        self.apply(commands);
        if self.busy() {
            // Replies also wake the window; this keeps the spinner turning meanwhile.
            ctx.request_repaint_after(Duration::from_millis(100));
        }
    }

    fn save(&mut self, storage: &mut dyn eframe::Storage) {
        eframe::set_value(storage, eframe::APP_KEY, &self.settings);
    }
}
