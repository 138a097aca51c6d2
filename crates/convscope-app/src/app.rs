//! The app itself: what it holds (saved settings, the runtime state that is not saved) and
//! its frame: poll what came back, gather the frame's commands from input and views, apply
//! them.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use tch::Device;

use convscope_core::engine;
use convscope_core::executor::GradientMode;
use convscope_core::graph::{Graph, NodeId};
use convscope_core::paths;
use convscope_core::session::{self as worker, ImageInput, RequestKind, WorkerHandle};
use convscope_core::shapes::ShapeReport;
use convscope_core::zoo::{self, ArchSpec};

use crate::clipboard;
use crate::command::{Command, Pasted};
use crate::export::DiagramExport;
use crate::latency_run::{Driver, LatencyReport, LatencyRun};
use crate::picker::{self, ArchFacts};
use crate::settings::{CentralView, DeviceChoice, Settings};
use crate::stopwatch::Stopwatch;
use crate::{diagram, gradients, history, lab, layers, prediction, top_bar};

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
    /// Where the History chart keeps this machine's latencies; `None`: `paths::latency_cache`.
    pub latency_cache: Option<PathBuf>,
    /// Open images by themselves and time each one's way to the screen (the latency benchmark).
    pub latency_run: Option<LatencyRun>,
}

/// What `convscope` opens when no architecture is named and nothing was saved: the pretrained
/// EfficientNet-Lite0 on the bundled cat where its weights are installed.
pub const DEFAULT_ARCH: &str = "efficientnet_lite0";
/// The fallback when those weights are missing: random ResNet-18 still shows every view.
pub const FALLBACK_ARCH: &str = "resnet18";

impl Start {
    /// What `convscope gui` opens: `arch` and `image` from the command line, else the saved
    /// settings, else `DEFAULT_ARCH` (or `FALLBACK_ARCH`) on the bundled cat.
    pub fn window(arch: Option<String>, image: Option<PathBuf>) -> Self {
        let fallback_arch =
            if engine::installed_weights(DEFAULT_ARCH).is_some() { DEFAULT_ARCH } else { FALLBACK_ARCH };
        let cat = paths::asset("chelsea.png");
        Self {
            arch,
            image,
            fallback_arch: Some(fallback_arch.to_owned()),
            fallback_image: cat.is_file().then_some(cat),
            ignore_storage: false,
            latency_cache: None,
            latency_run: None,
        }
    }
}

/// A sentence for the user, shown in a banner until dismissed or replaced.
#[derive(Clone, Debug, PartialEq)]
pub struct Message {
    pub text: String,
    pub is_error: bool,
}

/// The model the worker holds now (not the one being loaded).
pub struct LoadedModel {
    pub spec: ArchSpec,
    pub graph: Arc<Graph>,
    pub shapes: Option<ShapeReport>,
    pub origin: String,
    pub device: Device,
    pub residuals: gradients::ResidualGroups,
    /// The gradient mode these weights take unless the user picks one.
    pub default_gradient_mode: GradientMode,
}

/// Everything not saved: the worker, the views with their own state, work under way.
pub(crate) struct Runtime {
    pub(crate) specs: Vec<ArchSpec>,
    pub(crate) worker: WorkerHandle,
    pub(crate) facts: HashMap<&'static str, ArchFacts>,
    pub(crate) model: Option<LoadedModel>,
    /// The image the current prediction is of.
    pub(crate) image: Option<ImageInput>,
    pub(crate) prediction: prediction::PredictionView,
    pub(crate) message: Option<Message>,
    /// Said once at start-up (saved settings replaced); model loads do not replace it.
    pub(crate) notice: Option<String>,
    pub(crate) layers: layers::LayerView,
    pub(crate) gradients: gradients::GradientView,
    pub(crate) diagram: diagram::DiagramView,
    pub(crate) history: history::HistoryView,
    /// A node to show in the diagram once its architecture has loaded (a calculator's link).
    pub(crate) pending_node: Option<&'static str>,
    pub(crate) picker: picker::Picker,
    pub(crate) cuda_available: bool,
    /// An image waiting for the model to finish loading.
    pub(crate) pending_image: Option<ImageInput>,
    /// Set by a command, applied to the context at the start of the next frame.
    pub(crate) theme_changed: bool,
    /// The gradient panel was just opened: compute what it shows.
    pub(crate) wants_gradients: bool,
    /// A weights download in progress: the architecture and where its outcome arrives.
    pub(crate) fetching: Option<(&'static str, Receiver<Result<String, String>>)>,
    /// A clipboard read in progress (the Paste button).
    pub(crate) pasting: Option<Receiver<Result<Pasted, String>>>,
    pub(crate) diagram_export: Option<DiagramExport>,
    pub(crate) lab: lab::LabView,
    pub(crate) attribution: crate::attribution::AttributionView,
    /// How long the last images took to reach the screen.
    pub(crate) stopwatch: Stopwatch,
    /// The panels' colours (dark, light) where the window clears to them instead of painting
    /// the panels (`App::clear_panels`).
    pub(crate) cleared_panels: Option<[egui::Color32; 2]>,
    pub(crate) latency_run: Option<Driver>,
    /// libtorch's threads on the model worker.
    pub(crate) worker_threads: usize,
    pub(crate) draw: crate::draw::DrawView,
    pub(crate) featvis: crate::featvis::FeatvisView,
}

pub struct App {
    pub(crate) settings: Settings,
    pub(crate) runtime: Runtime,
}

impl App {
    /// In a window: the panels are not painted, the window is cleared in their colour. The
    /// same picture, one layer fewer: without a GPU (a VM, a remote desktop) Mesa rasterises
    /// the window on the CPU, where each pixel a shape covers costs (one layer over this
    /// window took about 70 ms a frame on this project's machines, more than Lite0's forward
    /// pass), and the panels cover all of it.
    pub fn clear_panels(&mut self, ctx: &egui::Context) {
        let fill = |theme| ctx.style_of(theme).visuals.panel_fill;
        self.runtime.cleared_panels = Some([fill(egui::Theme::Dark), fill(egui::Theme::Light)]);
        ctx.all_styles_mut(|style| style.visuals.panel_fill = egui::Color32::TRANSPARENT);
    }

    pub fn new(cc: &eframe::CreationContext<'_>, start: Start) -> std::io::Result<Self> {
        let (mut settings, notice) =
            if start.ignore_storage { (Settings::default(), None) } else { Settings::from_storage(cc.storage) };
        let ctx = cc.egui_ctx.clone();
        let threads = worker_threads();
        let worker =
            WorkerHandle::spawn_with_threads(threads, move || ctx.request_repaint_after(crate::theme::REPLY_WAKE))?;
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
                prediction: prediction::PredictionView::default(),
                message: None,
                notice,
                layers: layers::LayerView::default(),
                gradients: gradients::GradientView::default(),
                diagram: diagram::DiagramView::default(),
                history: history::HistoryView::default(),
                pending_node: None,
                picker: picker::Picker::default(),
                cuda_available,
                pending_image: None,
                theme_changed: false,
                wants_gradients: false,
                fetching: None,
                pasting: None,
                diagram_export: None,
                lab: lab::LabView::default(),
                attribution: Default::default(),
                stopwatch: Stopwatch::default(),
                cleared_panels: None,
                latency_run: start.latency_run.map(Driver::new),
                worker_threads: threads.unwrap_or_else(|| usize::try_from(tch::get_num_threads()).unwrap_or(1)),
                draw: Default::default(),
                featvis: Default::default(),
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
        app.runtime.history.latency.path = start.latency_cache.unwrap_or_else(paths::latency_cache);
        app.runtime.history.latency.threads = Some(app.runtime.worker_threads);
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

    pub fn prediction(&self) -> Option<&prediction::Classification> {
        self.runtime.prediction.shown.as_ref()
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

    /// Where the History chart drew an architecture's bubble last frame, in screen points.
    pub fn history_bubble(&self, id: &str) -> Option<history::Drawn> {
        self.runtime.history.bubble(id)
    }

    /// The bubble under the pointer on the History chart.
    pub fn history_hovered(&self) -> Option<&'static str> {
        self.runtime.history.hovered()
    }

    /// The architectures whose label found room on the chart last frame.
    pub fn history_labelled(&self) -> &[&'static str] {
        self.runtime.history.labelled()
    }

    /// The drawing pad (LeNet live).
    pub fn draw(&self) -> &crate::draw::DrawView {
        &self.runtime.draw
    }

    /// The Draw view, to act on as its dialogs would (a test picks the file Save weights… asks for).
    pub fn draw_mut(&mut self) -> &mut crate::draw::DrawView {
        &mut self.runtime.draw
    }

    /// Where the explorer's weights came from, as its card says.
    pub fn loaded_origin(&self) -> Option<&str> {
        self.runtime.model.as_ref().map(|m| m.origin.as_str())
    }

    /// The last comparison of two networks.
    pub fn comparison(&self) -> Option<&convscope_core::compare::Comparison> {
        self.runtime.history.compare.shown.as_ref().map(|s| &s.comparison)
    }

    /// A measurement of this machine under way: architectures timed, and to time.
    pub fn measuring(&self) -> Option<(usize, usize)> {
        self.runtime.history.latency.measuring.as_ref().map(|m| (m.done, m.total))
    }

    /// The residual merges switched off.
    pub fn disabled_residuals(&self) -> Vec<NodeId> {
        self.disabled()
    }

    /// How long images took to reach the screen, per stage, and when the first frame came.
    pub fn stopwatch(&self) -> &Stopwatch {
        &self.runtime.stopwatch
    }

    /// libtorch's threads on the model worker (one core is left to the window).
    pub fn worker_threads(&self) -> usize {
        self.runtime.worker_threads
    }

    /// A latency run's report, once it has finished.
    pub fn latency_report(&self) -> Option<&LatencyReport> {
        self.runtime.latency_run.as_ref().and_then(|run| run.report.as_ref())
    }

    /// Whether the worker still owes an answer.
    pub fn busy(&self) -> bool {
        let rt = &self.runtime;
        rt.worker.any_pending() || rt.pending_image.is_some() || rt.fetching.is_some() || rt.pasting.is_some()
    }

    pub(crate) fn facts(&mut self, id: &'static str) -> Option<&ArchFacts> {
        if !self.runtime.facts.contains_key(id) {
            let spec = self.runtime.specs.iter().find(|s| s.id == id)?;
            self.runtime.facts.insert(id, ArchFacts::new(spec));
        }
        self.runtime.facts.get(id)
    }

    /// Every panel, each view given only what it shows; what they ask for lands in `commands`.
    fn views_ui(&mut self, ui: &mut egui::Ui, commands: &mut Vec<Command>) {
        let arch = self.settings.arch.as_deref();
        let arch = arch.and_then(|id| self.runtime.specs.iter().find(|s| s.id == id)).map(|s| s.id);
        if self.settings.show_picker
            && let Some(id) = arch
        {
            // Worked out once per architecture, the first time its card shows.
            self.facts(id);
        }
        let Self { settings, runtime } = self;
        let Runtime {
            specs,
            worker,
            facts,
            model,
            prediction,
            message,
            notice,
            layers,
            gradients,
            diagram,
            history,
            picker,
            cuda_available,
            pending_image,
            wants_gradients,
            fetching,
            image,
            lab,
            attribution,
            stopwatch,
            draw,
            featvis,
            ..
        } = runtime;
        let (mut maps_time, mut plot_time) = (Duration::ZERO, Duration::ZERO);
        let model = model.as_ref();

        let status = top_bar::Status {
            cuda_available: *cuda_available,
            working: (worker.any_pending() || pending_image.is_some()).then(|| top_bar::status_text(worker)),
            measuring: history.latency.measuring.as_ref().map(|m| (m.done, m.total)),
            worker_stopped: worker.stopped(),
            message: message.as_ref(),
            notice: notice.as_deref(),
            digits: arch.and_then(|id| specs.iter().find(|s| s.id == id)).is_some_and(crate::draw::takes_digits),
        };
        let gradients_were_shown = settings.show_gradients;
        egui::Panel::top("top_bar").show(ui, |ui| top_bar::top_bar_ui(ui, settings, &status, commands));
        if settings.show_gradients && !gradients_were_shown {
            // The gradient panel was just opened: what it shows is asked for next frame.
            *wants_gradients = true;
        }
        // Before the side panels, so the plot spans the whole window.
        if settings.show_gradients {
            let pending = worker.is_pending(RequestKind::Gradients);
            egui::Panel::bottom("gradients").resizable(true).default_size(300.0).min_size(220.0).show(ui, |ui| {
                let start = Instant::now();
                gradients.ui(ui, model, prediction.shown.as_ref(), pending, layers.selected, commands);
                plot_time = start.elapsed();
            });
        }
        if settings.show_picker {
            let card = picker::CardState {
                facts: arch.and_then(|id| facts.get(id)),
                loading: worker.is_pending(RequestKind::Load),
                fetching: fetching.as_ref().map(|(id, _)| *id),
                loaded: model,
            };
            egui::Panel::left("picker").resizable(true).default_size(300.0).show(ui, |ui| {
                picker.ui(ui, specs, settings.arch.as_deref(), &card, commands);
            });
        }
        if settings.show_prediction {
            egui::Panel::right("prediction").resizable(true).default_size(280.0).show(ui, |ui| {
                // A tall gradient panel leaves less height than the top-5 and timings need.
                egui::ScrollArea::vertical().id_salt("prediction_scroll").auto_shrink([false, true]).show(ui, |ui| {
                    prediction.ui(ui, gradients.target, stopwatch.shown(), commands);
                });
            });
        }
        diagram.forget_canvas();
        egui::CentralPanel::default().show(ui, |ui| match settings.central {
            CentralView::FeatureMaps => {
                if let (Some(channel), Some(loaded)) = (layers.enlarged, model) {
                    let pending =
                        [worker.is_pending(RequestKind::FeatureVis), worker.is_pending(RequestKind::TopExamples)];
                    let progress = (worker.featvis_progress(), worker.examples_progress());
                    egui::Panel::right("featvis").resizable(true).default_size(280.0).show(ui, |ui| {
                        featvis.ui(ui, loaded, layers.selected, channel, pending, progress, commands);
                    });
                }
                let Settings { per_channel, channel_limit, retention, .. } = settings;
                let maps = layers::MapSettings { per_channel, channel_limit, retention: *retention };
                let pending = worker.is_pending(RequestKind::Activation);
                let start = Instant::now();
                layers.ui(ui, model, prediction.shown.is_some(), pending, maps, commands);
                maps_time = start.elapsed();
            }
            CentralView::Diagram => diagram.ui(ui, model, layers.selected, &gradients.disabled, commands),
            CentralView::History => {
                let input = history::HistoryInput {
                    specs,
                    device: settings.device.device(),
                    loaded: model.map(|m| m.spec.id),
                    image: runtime_image_name(image.as_ref()),
                    compare_pending: worker.is_pending(RequestKind::Compare),
                };
                history.ui(ui, &mut settings.history, &input, commands);
            }
            CentralView::Lab => lab.ui(ui, commands),
            CentralView::Attribution => {
                let pending = worker.is_pending(RequestKind::Attribution);
                let progress = worker.attribution_progress();
                attribution.ui(ui, model, prediction.shown.as_ref(), layers.selected, pending, progress, commands);
            }
            CentralView::Draw => draw.ui(ui, commands),
        });
        stopwatch.view_times(maps_time, plot_time);
    }
}

impl App {
    fn latency_run_frame(&mut self, ctx: &egui::Context) -> Vec<Command> {
        let idle = !self.busy() && self.loaded_arch().is_some() && self.loaded_arch() == self.settings.arch.as_deref();
        let arch = self.loaded_arch();
        let Some(driver) = &mut self.runtime.latency_run else { return Vec::new() };
        let had_report = driver.report.is_some();
        match driver.frame(arch, idle, self.runtime.worker_threads, &self.runtime.stopwatch) {
            Ok(commands) => {
                if !had_report && driver.report.is_some() && driver.writes_file() {
                    ctx.send_viewport_cmd(egui::ViewportCommand::Close);
                }
                if driver.timing_frames() {
                    ctx.request_repaint();
                }
                commands
            }
            Err(text) => {
                self.runtime.message = Some(Message { text, is_error: true });
                self.runtime.latency_run = None;
                Vec::new()
            }
        }
    }
}

/// libtorch's threads on the model worker: one core fewer than libtorch would take, so the
/// window has one to draw on. OpenMP's threads wait for each other at every layer; when the
/// window's frames (rasterised on the CPU under Xvfb or a remote desktop) take one of their
/// cores, every layer waits for the descheduled thread. On this project's 2-core machine,
/// under Xvfb, one thread brought an image's way to the screen from 470 ms to 230 ms
/// (EfficientNet-Lite0, `make bench-latency`). An `OMP_NUM_THREADS` set by the user is kept.
fn worker_threads() -> Option<usize> {
    if std::env::var_os("OMP_NUM_THREADS").is_some() {
        return None;
    }
    let all = usize::try_from(tch::get_num_threads()).unwrap_or(1);
    (all > 1).then(|| all - 1)
}

/// The name of the image a comparison runs on.
fn runtime_image_name(image: Option<&ImageInput>) -> Option<String> {
    image.map(ImageInput::name)
}

impl eframe::App for App {
    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        let frame_start = Instant::now();
        self.runtime.stopwatch.frame_begin();
        let ctx = ui.ctx().clone();
        if std::mem::take(&mut self.runtime.theme_changed) {
            ctx.set_theme(self.settings.theme.preference());
        }
        self.receive(&ctx);
        self.receive_lab(&ctx);
        self.runtime.draw.receive(&ctx);
        let mut commands = Vec::new();
        if std::mem::take(&mut self.runtime.wants_gradients) {
            self.request_gradients();
        }
        commands.extend(self.keyboard(&ctx));
        commands.extend(Self::dropped_files(&ctx));
        commands.extend(clipboard::pasted(&ctx));
        commands.extend(self.receive_paste());
        commands.extend(self.play(&ctx));
        commands.extend(self.receive_fetch());
        commands.extend(self.latency_run_frame(&ctx));

        self.views_ui(ui, &mut commands);
        prediction::drop_overlay_ui(&ctx);

        self.apply(commands);
        self.attribution_frame();
        self.featvis_frame();
        self.diagram_export_frame(&ctx);
        let maps_shown = self.settings.central == CentralView::FeatureMaps;
        self.runtime.stopwatch.frame_end(frame_start.elapsed(), maps_shown, self.settings.show_gradients);
        if self.runtime.stopwatch.awaits_paint() {
            // One more frame, at once, times this one's paint (`Round::painted_ms`).
            ctx.request_repaint_after(crate::theme::REPLY_WAKE);
        }
        if self.busy() {
            // Replies wake the window; meanwhile the spinner turns at a bounded rate, leaving
            // the cores to libtorch.
            ctx.request_repaint_after(crate::theme::BUSY_REPAINT);
        }
    }

    fn clear_color(&self, visuals: &egui::Visuals) -> [f32; 4] {
        match self.runtime.cleared_panels {
            Some([dark, light]) => if visuals.dark_mode { dark } else { light }.to_normalized_gamma_f32(),
            // eframe's own default.
            None => egui::Color32::from_rgba_unmultiplied(12, 12, 12, 180).to_normalized_gamma_f32(),
        }
    }

    fn save(&mut self, storage: &mut dyn eframe::Storage) {
        eframe::set_value(storage, eframe::APP_KEY, &self.settings);
    }
}
