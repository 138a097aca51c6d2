//! What UI code asks for, and the one place it is carried out: `App::apply`, at the end of
//! the frame. Only here are requests sent to the worker.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::mpsc::sync_channel;

use convscope_core::engine::{self, GradientSettings, WeightsChoice};
use convscope_core::graph::NodeId;
use convscope_core::latency::Rounds;
use convscope_core::session::{ImageInput, MeasureJob, Request, RequestKind, Retention};

use crate::app::{App, Message};
use crate::clipboard::{image_from_pasted, read_clipboard};
use crate::export::saved_message;
use crate::gradients;
use crate::history::Measuring;
use crate::settings::{CentralView, DeviceChoice, ThemeChoice};

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
    /// The gradient pass's mode, batch and objective (`None` fields: the loaded weights' defaults).
    SetGradientSettings(GradientSettings),
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
    /// Loads an architecture (a bubble of the History chart) and shows it in the explorer.
    OpenInExplorer(&'static str),
    /// Loads `arch` with the weights in `weights` (LeNet-5 trained and saved in the Draw view)
    /// into the explorer, and runs `image` on it.
    ExploreWeights {
        arch: &'static str,
        weights: PathBuf,
        image: Option<ImageInput>,
    },
    /// Opens the diagram of `arch` on the node named `node` (a calculator's link), loading
    /// the architecture first if need be.
    ShowNode {
        arch: &'static str,
        node: &'static str,
    },
    /// Times every architecture on this machine (`again`), or those not measured yet.
    MeasureMachine {
        again: bool,
    },
    CancelMeasure,
    /// Runs the current image (else the bundled cat) through two architectures.
    Compare([&'static str; 2]),
    /// The lab view's own commands (`lab::LabCommand`).
    Lab(crate::lab::LabCommand),
    /// What the Attribution view asks for (`attribution::AttributionCommand`).
    Attribution(crate::attribution::AttributionCommand),
    /// What the feature-visualisation panel asks for (`featvis::FeatvisCommand`).
    Featvis(crate::featvis::FeatvisCommand),
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

impl App {
    /// Carries out the frame's commands, in order.
    pub(crate) fn apply(&mut self, commands: Vec<Command>) {
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
                if rt.prediction.shown.is_some() {
                    rt.worker.send(Request::Activation { node });
                }
            }
            Command::StepNode(delta) => {
                let Some(model) = &rt.model else { return };
                let last = model.graph.nodes.len().saturating_sub(1) as i64;
                let next = (rt.layers.selected as i64 + delta).clamp(0, last) as NodeId;
                if next != rt.layers.selected {
                    self.apply_one(Command::SelectNode(next));
                } else if rt.layers.playing {
                    rt.layers.playing = false;
                }
            }
            Command::TogglePlay => {
                rt.layers.playing = !rt.layers.playing;
                if let Some(model) = &rt.model
                    && rt.layers.playing
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
            Command::SetGradientSettings(settings) => {
                rt.gradients.settings = settings;
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
            Command::ExploreWeights { arch, weights, image } => {
                let Some(spec) = rt.specs.iter().find(|s| s.id == arch).cloned() else {
                    return;
                };
                self.settings.arch = Some(arch.to_owned());
                self.settings.central = CentralView::FeatureMaps;
                // Runs once the model is loaded, as an image dropped while it loads does.
                rt.pending_image = image;
                rt.worker.send(Request::Load {
                    spec: Box::new(spec),
                    weights: WeightsChoice::File(weights),
                    device: self.settings.device.device(),
                });
            }
            Command::OpenInExplorer(id) => {
                self.settings.central = CentralView::FeatureMaps;
                if self.settings.arch.as_deref() != Some(id) {
                    self.apply_one(Command::SelectArch(id));
                }
            }
            Command::ShowNode { arch, node } => {
                self.settings.central = CentralView::Diagram;
                let loaded = rt.model.as_ref().is_some_and(|m| m.spec.id == arch);
                if loaded && !rt.worker.is_pending(RequestKind::Load) {
                    self.show_node(node);
                } else {
                    rt.pending_node = Some(node);
                    if self.settings.arch.as_deref() != Some(arch) {
                        self.apply_one(Command::SelectArch(arch));
                    }
                }
            }
            Command::MeasureMachine { again } => {
                let device = self.settings.device.device();
                let ids = rt.history.measurement_ids(device, again);
                if ids.is_empty() {
                    return;
                }
                rt.history.latency.failures.clear();
                rt.history.latency.measuring = Some(Measuring { done: 0, total: ids.len(), last: None });
                let cache = Some(rt.history.latency.path.clone());
                let job = MeasureJob { ids, device, rounds: Rounds::default(), cache, done: 0 };
                rt.worker.send(Request::Measure(Box::new(job)));
            }
            Command::CancelMeasure => {
                rt.history.latency.measuring = None;
                rt.worker.send(Request::CancelMeasure);
            }
            Command::Compare(ids) => {
                let specs = ids.map(|id| rt.specs.iter().find(|s| s.id == id).cloned());
                let [Some(a), Some(b)] = specs else { return };
                let image =
                    rt.image.clone().unwrap_or_else(|| ImageInput::Path(convscope_core::paths::asset("chelsea.png")));
                let device = self.settings.device.device();
                rt.worker.send(Request::Compare { specs: Box::new([a, b]), image, device });
            }
            Command::Lab(command) => self.apply_lab(command),
            Command::Attribution(command) => self.apply_attribution(command),
            Command::Featvis(command) => self.apply_featvis(command),
        }
    }

    /// Selects the node named `node` of the loaded model and opens the diagram on it.
    pub(crate) fn show_node(&mut self, node: &str) {
        let Some(model) = &self.runtime.model else { return };
        let Some(id) = model.graph.node_id(node) else {
            self.runtime.message =
                Some(Message { text: format!("{} has no node {node}", model.spec.id), is_error: true });
            return;
        };
        let graph = std::sync::Arc::clone(&model.graph);
        self.runtime.diagram.reveal(&graph, id);
        self.apply_one(Command::SelectNode(id));
    }

    pub(crate) fn disabled(&self) -> Vec<NodeId> {
        self.runtime.gradients.disabled.iter().copied().collect()
    }

    /// Runs an image; its gradients follow once it has run, so a file that fails to decode
    /// leaves everything as it was.
    /// Runs an image, and asks for everything it changes at once: the node on view comes
    /// back with the prediction, and the gradient pass (when its panel is open) is queued
    /// behind it, so the worker goes from one to the next without waiting for a frame. Should
    /// the image fail, the worker skips that pass.
    pub(crate) fn classify(&mut self, image: ImageInput) {
        let (disabled, retention) = (self.disabled(), self.settings.retention);
        let show = Some(self.runtime.layers.selected);
        let maps = self.settings.central == CentralView::FeatureMaps;
        self.runtime.stopwatch.start(image.name(), maps, self.settings.show_gradients);
        self.runtime.worker.send(Request::Classify { image, disabled, retention, show });
        if self.settings.show_gradients {
            self.send_gradients(true);
        }
    }

    pub(crate) fn request_gradients(&mut self) {
        if self.settings.show_gradients && self.runtime.prediction.shown.is_some() {
            self.send_gradients(false);
        }
    }

    fn send_gradients(&mut self, with_image: bool) {
        let (disabled, target, retention) = (self.disabled(), self.runtime.gradients.target, self.settings.retention);
        let settings = self.runtime.gradients.settings;
        self.runtime.worker.send(Request::Gradients { disabled, target, retention, settings, with_image });
    }

    /// Runs the current image again (after a device move or a residual switch).
    pub(crate) fn rerun(&mut self) {
        if let Some(image) = self.runtime.image.clone() {
            self.classify(image);
        }
    }
}
