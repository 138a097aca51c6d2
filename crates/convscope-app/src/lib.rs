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

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, TryRecvError, sync_channel};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tch::Device;

use convscope_core::engine::{self, WeightsChoice};
use convscope_core::graph::{BlockKind, Graph, NodeId};
use convscope_core::manifest::{Manifest, Provenance};
use convscope_core::paths;
use convscope_core::session::{
    self as worker, ImageInput, Payload, Reply, Request, RequestKind, Retention, WorkerHandle,
};
use convscope_core::shapes::ShapeReport;
use convscope_core::zoo::{self, ArchSpec};

/// How long the play button shows each node.
const PLAY_STEP: Duration = Duration::from_millis(600);
/// How long a diagram export waits for the window's screenshot before giving up.
const SCREENSHOT_TIMEOUT_S: f64 = 5.0;
/// The name a pasted image goes by.
pub const PASTED_IMAGE: &str = "pasted image";

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
    /// Which outputs of a run stay in memory for the layer view.
    pub retention: Retention,
}

impl Settings {
    /// The settings eframe saved, or the defaults with a notice for the user when they
    /// cannot be read: a damaged file, or one written by a version whose settings this one
    /// does not understand. Either way the app starts.
    pub fn from_storage(storage: Option<&dyn eframe::Storage>) -> (Self, Option<String>) {
        let Some(saved) = storage.and_then(|s| s.get_string(eframe::APP_KEY)) else {
            return (Self::default(), None);
        };
        // eframe writes them as RON (`eframe::set_value`); reading them here rather than
        // through `eframe::get_value` keeps the reason, which that function only logs.
        match ron::from_str::<Self>(&saved) {
            Ok(settings) => (settings, None),
            Err(e) => (
                Self::default(),
                Some(format!(
                    "The saved settings could not be read ({e}), perhaps from another version of \
                     convscope: the defaults are used and replace them on exit."
                )),
            ),
        }
    }
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
            retention: Retention::EveryLayer,
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
    /// What Ctrl+V or the clipboard thread brought: an image, or a file to open.
    Paste(Pasted),
    /// Reads the system clipboard on its own thread (the Paste button).
    PasteClipboard,
    SelectNode(NodeId),
    StepNode(i64),
    TogglePlay,
    SetResiduals(BTreeSet<NodeId>),
    SetTarget(Option<i64>),
    SetTheme(ThemeChoice),
    /// Keeps every layer's output, or only the one on show, and runs the image again.
    SetRetention(Retention),
    /// `convscope weights fetch ID`, on its own thread: it may take minutes, or fail at once
    /// without internet.
    FetchWeights(&'static str),
    /// Saves the gradient table through a file dialog.
    ExportGradients,
    /// Saves the feature-map grid as shown, as a PNG, through a file dialog.
    ExportFeatureMaps,
    /// Saves the diagram as it is on screen, as a PNG, through a file dialog.
    ExportDiagram,
    DismissMessage,
    DismissNotice,
}

/// Something pasted.
#[derive(Clone, Debug)]
pub enum Pasted {
    Image(ImageInput),
    /// Text, which may name an image file (a path, or a file manager's `file://` URI).
    Text(String),
    /// Files copied in a file manager; the first is opened.
    Files(Vec<PathBuf>),
}

/// A diagram export on its way: the window renders, then hands over its pixels.
enum DiagramExport {
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
    /// Said once at start-up (saved settings replaced); model loads do not replace it.
    pub notice: Option<String>,
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
    /// A clipboard read in progress (the Paste button).
    pasting: Option<Receiver<Result<Pasted, String>>>,
    diagram_export: Option<DiagramExport>,
}

pub struct App {
    settings: Settings,
    runtime: Runtime,
}

impl App {
    pub fn new(cc: &eframe::CreationContext<'_>, start: Start) -> std::io::Result<Self> {
        let (mut settings, notice) =
            if start.ignore_storage { (Settings::default(), None) } else { Settings::from_storage(cc.storage) };
        let ctx = cc.egui_ctx.clone();
        let worker = WorkerHandle::spawn(move || ctx.request_repaint())?;
        let cuda_available = tch::Cuda::is_available();
        let mut notice = notice;
        if !cuda_available && settings.device != DeviceChoice::Cpu {
            settings.device = DeviceChoice::Cpu;
            let cpu = "The saved settings ask for CUDA, but libtorch sees no CUDA device here: running on the CPU.";
            notice = Some(notice.map_or_else(|| cpu.to_owned(), |earlier| format!("{earlier} {cpu}")));
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
                notice,
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
                pasting: None,
                diagram_export: None,
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
                let digit = paths::asset("digits/digit_3.png");
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

    pub fn notice(&self) -> Option<&str> {
        self.runtime.notice.as_deref()
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
        let rt = &self.runtime;
        rt.worker.any_pending() || rt.pending_image.is_some() || rt.fetching.is_some() || rt.pasting.is_some()
    }

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
                if rt.model.is_some() && !rt.worker.is_pending(RequestKind::Load) {
                    self.classify(image);
                } else {
                    // A model is loading: the newest image runs on it once it is ready.
                    rt.pending_image = Some(image);
                }
            }
            Command::Paste(pasted) => match image_from_pasted(pasted) {
                Ok(image) => self.apply_one(Command::OpenImage(image)),
                Err(text) => rt.message = Some(Message { text, is_error: true }),
            },
            Command::PasteClipboard => {
                if rt.pasting.is_some() {
                    return;
                }
                let (sender, receiver) = sync_channel(1);
                let spawned = std::thread::Builder::new().name("convscope-clipboard".into()).spawn(move || {
                    // The window may have closed meanwhile; nobody is left to tell.
                    let _ = sender.send(read_clipboard());
                });
                match spawned {
                    Ok(_) => rt.pasting = Some(receiver),
                    Err(e) => {
                        rt.message =
                            Some(Message { text: format!("Could not read the clipboard: {e}"), is_error: true })
                    }
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
            Command::SetRetention(retention) => {
                self.settings.retention = retention;
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
                    let outcome =
                        convscope_core::store::fetch(&spec).map(|entry| entry.source).map_err(|e| e.to_string());
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
            Command::ExportFeatureMaps => {
                let (Some(model), Some(activation)) = (&rt.model, &rt.layers.activation) else { return };
                let name = model.graph.nodes.get(activation.data.node).map_or("node", |n| n.name.as_str());
                // rfd returns at once with None where no desktop portal runs.
                let picked = rfd::FileDialog::new()
                    .set_file_name(format!("{}_{name}_maps.png", model.spec.id))
                    .add_filter("PNG", &["png"])
                    .save_file();
                if let Some(path) = picked {
                    let text = self.export_feature_maps(&path);
                    self.runtime.message = Some(saved_message(&path, text));
                }
            }
            Command::ExportDiagram => {
                let Some(model) = &rt.model else { return };
                let picked = rfd::FileDialog::new()
                    .set_file_name(format!("{}_diagram.png", model.spec.id))
                    .add_filter("PNG", &["png"])
                    .save_file();
                if let Some(path) = picked {
                    self.export_diagram(path);
                }
            }
            Command::DismissMessage => rt.message = None,
            Command::DismissNotice => rt.notice = None,
        }
    }

    /// The clipboard's content, once the Paste button's thread has read it.
    fn receive_paste(&mut self) -> Vec<Command> {
        let Some(receiver) = &self.runtime.pasting else { return Vec::new() };
        let outcome = match receiver.try_recv() {
            Ok(outcome) => outcome,
            Err(TryRecvError::Empty) => return Vec::new(),
            Err(TryRecvError::Disconnected) => Err("reading the clipboard stopped unexpectedly".into()),
        };
        self.runtime.pasting = None;
        match outcome {
            Ok(pasted) => vec![Command::Paste(pasted)],
            Err(text) => {
                self.runtime.message = Some(Message { text, is_error: true });
                Vec::new()
            }
        }
    }

    /// Asks the window for a screenshot once the diagram is drawn, and saves its canvas when
    /// the pixels arrive.
    fn diagram_export_frame(&mut self, ctx: &egui::Context) {
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
                    let saved = diagram::save_region_png(&image, rect, pixels_per_point, &path);
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
        let (disabled, retention) = (self.disabled(), self.settings.retention);
        self.runtime.worker.send(Request::Classify { image, disabled, retention });
    }

    fn request_gradients(&mut self) {
        if self.settings.show_gradients && self.runtime.prediction.is_some() {
            let (disabled, target, retention) =
                (self.disabled(), self.runtime.gradients.target, self.settings.retention);
            self.runtime.worker.send(Request::Gradients { disabled, target, retention });
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

    /// Ctrl+V: egui's integration reads the clipboard and hands over an image or text.
    fn pasted(ctx: &egui::Context) -> Vec<Command> {
        // A focused text field (the picker's filter) takes pasted text as text.
        if ctx.text_edit_focused() {
            return Vec::new();
        }
        let pasted = ctx.input(|i| {
            i.events.iter().rev().find_map(|event| match event {
                egui::Event::PasteImage(image) => Some(Pasted::Image(image_input_from_color(image))),
                egui::Event::Paste(text) => Some(Pasted::Text(text.clone())),
                _ => None,
            })
        });
        pasted.map(Command::Paste).into_iter().collect()
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
            let paste = ui.button("Paste").on_hover_text(
                "Classify the image on the clipboard, or open the image file whose path is copied (Ctrl+V)",
            );
            if paste.clicked() {
                commands.push(Command::PasteClipboard);
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
                if dismiss_button_ui(ui, "Dismiss this message").clicked() {
                    commands.push(Command::DismissMessage);
                }
            });
        }
        if let Some(notice) = &runtime.notice {
            ui.horizontal(|ui| {
                ui.colored_label(ui.visuals().warn_fg_color, notice);
                if dismiss_button_ui(ui, "Dismiss this notice").clicked() {
                    commands.push(Command::DismissNotice);
                }
            });
        }
    }
}

/// A small "×", named for screen readers and tests by what it dismisses.
fn dismiss_button_ui(ui: &mut egui::Ui, what: &str) -> egui::Response {
    let response = ui.small_button("×");
    response.widget_info(|| egui::WidgetInfo::labeled(egui::Role::Button, true, what));
    response.on_hover_text(what)
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

fn saved_message(path: &Path, saved: Result<[u32; 2], String>) -> Message {
    match saved {
        Ok([w, h]) => Message { text: format!("Saved {} ({w}×{h} pixels)", path.display()), is_error: false },
        Err(text) => Message { text, is_error: true },
    }
}

/// egui's pasted image (premultiplied colours) as the worker takes pixels.
fn image_input_from_color(image: &egui::ColorImage) -> ImageInput {
    let rgba: Vec<u8> = image.pixels.iter().flat_map(|c| c.to_srgba_unmultiplied()).collect();
    let [w, h] = image.size.map(|s| u32::try_from(s).unwrap_or(u32::MAX));
    ImageInput::Pixels { name: PASTED_IMAGE.to_owned(), size: [w, h], rgba: rgba.into() }
}

/// What a paste opens, or why it opens nothing.
fn image_from_pasted(pasted: Pasted) -> Result<ImageInput, String> {
    let path = match pasted {
        Pasted::Image(image) => return Ok(image),
        Pasted::Files(files) => files.into_iter().next().ok_or("The clipboard names no file")?,
        Pasted::Text(text) => path_from_pasted_text(&text)
            .ok_or_else(|| "The clipboard holds text, not an image nor the path of an image file".to_owned())?,
    };
    if path.is_file() {
        Ok(ImageInput::Path(path))
    } else {
        Err(format!("Pasted {}, which is not a file", path.display()))
    }
}

/// The path a pasted text names: its first line, unquoted, a `file://` URI decoded, `~`
/// expanded. Text that cannot be a path (several words on lines, nothing) gives `None`.
pub fn path_from_pasted_text(text: &str) -> Option<PathBuf> {
    let line = text.lines().map(str::trim).find(|l| !l.is_empty())?;
    let line = line.trim_matches(|c| c == '"' || c == '\'');
    if let Some(uri) = line.strip_prefix("file://") {
        // `file:///home/me/cat%20photo.png`, or with a host: `file://localhost/…`.
        let path = uri.strip_prefix("localhost").unwrap_or(uri);
        return path.starts_with('/').then(|| PathBuf::from(percent_decoded(path)));
    }
    if let Some(rest) = line.strip_prefix("~/")
        && let Some(home) = std::env::var_os("HOME")
    {
        return Some(Path::new(&home).join(rest));
    }
    let extension = Path::new(line).extension().and_then(|e| e.to_str()).unwrap_or("");
    let has_extension = (1..=5).contains(&extension.len()) && extension.chars().all(char::is_alphanumeric);
    let looks_like_a_path = line.contains(['/', '\\']) || has_extension;
    looks_like_a_path.then(|| PathBuf::from(line))
}

/// `%20` and friends back to bytes; a malformed escape stays as it is.
fn percent_decoded(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| bytes.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok());
        match escaped {
            Some(byte) => {
                out.push(byte);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The system clipboard, read off the UI thread: an X11 owner that is slow to answer must
/// not freeze the window. Every failure is a sentence for the user.
fn read_clipboard() -> Result<Pasted, String> {
    let mut clipboard = arboard::Clipboard::new().map_err(|e| format!("No clipboard to paste from: {e}"))?;
    match clipboard.get_image() {
        Ok(image) => {
            let size = [u32::try_from(image.width), u32::try_from(image.height)];
            let [Ok(w), Ok(h)] = size else { return Err("The image on the clipboard is too large".into()) };
            let rgba = image.bytes.into_owned();
            return Ok(Pasted::Image(ImageInput::Pixels {
                name: PASTED_IMAGE.to_owned(),
                size: [w, h],
                rgba: rgba.into(),
            }));
        }
        Err(arboard::Error::ContentNotAvailable) => {}
        Err(e) => return Err(format!("Could not read the image on the clipboard: {e}")),
    }
    if let Ok(files) = clipboard.get().file_list()
        && !files.is_empty()
    {
        return Ok(Pasted::Files(files));
    }
    match clipboard.get_text() {
        Ok(text) => Ok(Pasted::Text(text)),
        Err(arboard::Error::ContentNotAvailable) => Err("The clipboard holds no image, file or text".into()),
        Err(e) => Err(format!("Could not read the clipboard: {e}")),
    }
}

/// The bundled images, one click away.
pub fn sample_images() -> Vec<(String, PathBuf)> {
    let assets = paths::assets();
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
    let manifest = Manifest::load(&paths::weights_dir()).unwrap_or_default();
    match manifest.weights.get(id) {
        Some(entry) if entry.provenance == Provenance::TrainedHere => {
            WeightsState::TrainedHere { source: entry.source.clone() }
        }
        Some(entry) => WeightsState::Pretrained { source: entry.source.clone() },
        None => WeightsState::Pretrained { source: "no manifest entry".to_owned() },
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
        commands.extend(Self::pasted(&ctx));
        commands.extend(self.receive_paste());
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
                // A tall gradient panel leaves less height than the top-5 and timings need.
                egui::ScrollArea::vertical().id_salt("prediction_scroll").auto_shrink([false, true]).show(ui, |ui| {
                    prediction::prediction_ui(ui, &self.runtime, &mut commands);
                });
            });
        }
        self.runtime.diagram.forget_canvas();
        egui::CentralPanel::default().show(ui, |ui| match self.settings.central {
            CentralView::FeatureMaps => layers::layers_ui(ui, &mut self.settings, &mut self.runtime, &mut commands),
            CentralView::Diagram => diagram::diagram_ui(ui, &mut self.runtime, &mut commands),
        });
        prediction::drop_overlay_ui(&ctx);

        self.apply(commands);
        self.diagram_export_frame(&ctx);
        if self.busy() {
            // Replies also wake the window; this keeps the spinner turning meanwhile.
            ctx.request_repaint_after(Duration::from_millis(100));
        }
    }

    fn save(&mut self, storage: &mut dyn eframe::Storage) {
        eframe::set_value(storage, eframe::APP_KEY, &self.settings);
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    /// eframe's storage, in memory.
    #[derive(Default)]
    struct MemoryStorage(HashMap<String, String>);

    impl eframe::Storage for MemoryStorage {
        fn get_string(&self, key: &str) -> Option<String> {
            self.0.get(key).cloned()
        }

        fn set_string(&mut self, key: &str, value: String) {
            self.0.insert(key.to_owned(), value);
        }

        fn remove_string(&mut self, key: &str) {
            self.0.remove(key);
        }

        fn flush(&mut self) {}
    }

    fn saved(text: &str) -> MemoryStorage {
        let mut storage = MemoryStorage::default();
        eframe::Storage::set_string(&mut storage, eframe::APP_KEY, text.to_owned());
        storage
    }

    #[test]
    fn saved_settings_come_back_as_saved() {
        let settings = Settings {
            arch: Some("resnet50".into()),
            theme: ThemeChoice::Dark,
            central: CentralView::Diagram,
            channel_limit: 12,
            ..Settings::default()
        };
        let mut storage = MemoryStorage::default();
        eframe::set_value(&mut storage, eframe::APP_KEY, &settings);
        assert_eq!(Settings::from_storage(Some(&storage)), (settings, None));
        assert_eq!(Settings::from_storage(None), (Settings::default(), None), "a first start says nothing");
    }

    #[test]
    fn unreadable_settings_give_the_defaults_and_a_notice() {
        for (what, text) in [
            ("cut short", r#"(arch: Some("resnet"#),
            ("not RON at all", "\u{0}\u{1}garbage"),
            ("JSON from elsewhere", r#"{"arch": "resnet20", "theme": "Dark"}"#),
            ("a view an older version had", "(arch: Some(\"resnet20\"), central: Table)"),
            ("a field of another type", "(channel_limit: \"many\")"),
        ] {
            let (settings, notice) = Settings::from_storage(Some(&saved(text)));
            assert_eq!(settings, Settings::default(), "{what}: the defaults");
            let notice = notice.unwrap_or_else(|| panic!("{what}: a notice"));
            assert!(notice.contains("saved settings could not be read"), "{what}: {notice}");
        }
    }

    #[test]
    fn settings_with_fields_missing_or_unknown_keep_what_they_can() {
        let (settings, notice) =
            Settings::from_storage(Some(&saved("(arch: Some(\"resnet20\"), per_channel: false, from_the_future: 3)")));
        assert_eq!(notice, None);
        assert_eq!(settings.arch.as_deref(), Some("resnet20"));
        assert!(!settings.per_channel);
        assert_eq!(settings.channel_limit, Settings::default().channel_limit);
    }

    #[test]
    fn pasted_text_names_a_file_as_file_managers_and_shells_copy_it() {
        let path = |text: &str| path_from_pasted_text(text);
        assert_eq!(path("/home/me/cat.png"), Some(PathBuf::from("/home/me/cat.png")));
        assert_eq!(path("  '/home/me/cat photo.png'\n"), Some(PathBuf::from("/home/me/cat photo.png")));
        assert_eq!(path("\"/tmp/a.jpg\""), Some(PathBuf::from("/tmp/a.jpg")));
        assert_eq!(path("file:///home/me/cat%20photo.png"), Some(PathBuf::from("/home/me/cat photo.png")));
        assert_eq!(path("file://localhost/tmp/x.png"), Some(PathBuf::from("/tmp/x.png")));
        assert_eq!(path("file:///tmp/first.png\nfile:///tmp/second.png"), Some(PathBuf::from("/tmp/first.png")));
        assert_eq!(path("cat.png"), Some(PathBuf::from("cat.png")));
        assert_eq!(path("file:///tmp/100%.png"), Some(PathBuf::from("/tmp/100%.png")), "a bare % stays");
        assert_eq!(path("hello there"), None);
        assert_eq!(path("Thanks, Mr. Smith"), None, "a sentence with a full stop is no file name");
        assert_eq!(path("   \n  "), None);
        assert_eq!(path("file://server"), None, "a host without a path");
    }

    #[test]
    fn pastes_that_open_nothing_say_why() {
        let text = |t: &str| image_from_pasted(Pasted::Text(t.to_owned())).map(|i| i.name());
        assert!(text("hello there").is_err_and(|e| e.contains("holds text")));
        assert!(text("/nonexistent/cat.png").is_err_and(|e| e.contains("not a file")));
        let cat = paths::asset("chelsea.png");
        assert_eq!(text(&format!("file://{}", cat.display())), Ok("chelsea.png".to_owned()));
        let files = image_from_pasted(Pasted::Files(vec![cat.clone(), PathBuf::from("/other.png")]));
        assert_eq!(files.map(|i| i.name()), Ok("chelsea.png".to_owned()));
        assert!(image_from_pasted(Pasted::Files(Vec::new())).is_err());
    }

    #[test]
    fn a_pasted_egui_image_reaches_the_worker_unpremultiplied() {
        let color = egui::ColorImage::from_rgba_unmultiplied([2, 1], &[255, 0, 0, 255, 10, 20, 30, 128]);
        let ImageInput::Pixels { name, size, rgba } = image_input_from_color(&color) else {
            panic!("pixels, not a path or bytes")
        };
        assert_eq!(name, PASTED_IMAGE);
        assert_eq!(size, [2, 1]);
        assert_eq!(&rgba[..4], &[255, 0, 0, 255]);
        // Premultiplied and back loses a little precision at half alpha.
        assert!(rgba[4..].iter().zip([10u8, 20, 30, 128]).all(|(&a, b)| a.abs_diff(b) <= 1), "{rgba:?}");
    }
}

/// Opens the explorer in a native window and runs it until the window closes.
pub fn run_window(start: Start) -> Result<(), String> {
    let options = eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default()
            .with_inner_size([1400.0, 900.0])
            .with_min_inner_size([800.0, 500.0])
            .with_title("convscope")
            .with_app_id("convscope")
            .with_drag_and_drop(true),
        ..Default::default()
    };
    eframe::run_native("convscope", options, Box::new(move |cc| Ok(Box::new(App::new(cc, start)?))))
        .map_err(|e| e.to_string())
}
