//! The residual lab (issue 14): plain and residual networks of He et al.'s CIFAR family
//! trained side by side on the lab's own thread (`worker`), their curves and gradient
//! heatmaps drawn live (`charts`), with pause, single steps, shortcut switches and learning
//! rate changes during training; afterwards a run is saved (`convscope_core::lab::Lab::save`)
//! and its network opened in the explorer through the model worker's usual `Load`.

mod charts;
mod worker;

use std::collections::{BTreeSet, VecDeque};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use convscope_core::engine::WeightsChoice;
use convscope_core::graph::NodeId;
use convscope_core::lab::{
    DataSource, HeldOut, LabEvent, LabSettings, MAX_RUNS, NetSpec, Preset, SavedLab, StepRecord,
};
use convscope_core::paths;
use convscope_core::session::{ImageInput, Request};
use convscope_core::zoo::resnet::cifar;
use convscope_core::zoo::{ArchSpec, Labels};

use crate::app::{App, Message};
use crate::command::Command;
use crate::gradients::ResidualGroups;
use crate::picker::ArchFacts;
use crate::settings::CentralView;
use crate::theme;

use worker::{LabHandle, LabUpdate};
pub use worker::{LabRequest, LabStarted, RunInfo};

/// While training, the window redraws this often (and not every frame): curves a tenth of
/// a second old are live enough, and the lab's thread keeps the cores.
const TRAINING_REPAINT: Duration = Duration::from_millis(100);
/// The depths offered: 6n+2, the paper's five and the quick 8.
const DEPTHS: [usize; 6] = [8, 20, 32, 44, 56, 110];
/// The window of the steps-per-second figure.
const RATE_WINDOW: Duration = Duration::from_secs(3);

/// What the lab view asks for; `App::apply_lab` carries it out.
#[derive(Clone, Debug)]
pub enum LabCommand {
    /// Starts a lab with the form's settings (replacing one under way).
    Start,
    Request(LabRequest),
    /// Picks the image folder to train on (a file dialog).
    ChooseDataFolder,
    /// Picks a folder with a file dialog and saves the lab there.
    SaveAs,
    /// Saves the lab into the folder typed in the view.
    Save,
    /// Picks a saved lab's folder with a file dialog, to open its networks.
    OpenSaved,
    /// Loads run `run` of the lab saved in `dir` into the explorer.
    OpenRun {
        dir: PathBuf,
        run: usize,
    },
    DismissNote,
}

/// Which networks the form trains.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Setup {
    Preset(Preset),
    Custom,
}

/// One run as the window has seen it so far.
pub struct RunState {
    pub info: RunInfo,
    groups: ResidualGroups,
    pub steps: Vec<StepRecord>,
    /// Running means of loss and error over the lab's smoothing window, kept step by step
    /// exactly as `convscope_core::lab::running_mean` computes them.
    pub smoothed_loss: Vec<f64>,
    pub smoothed_error: Vec<f64>,
    sums: (f64, f64),
    pub held_out: Vec<HeldOut>,
    /// The residual merges switched off now.
    pub disabled: BTreeSet<NodeId>,
    pub lr: f64,
    pub diverged: Option<usize>,
    /// (steps done, what changed).
    pub interventions: Vec<(usize, String)>,
}

impl RunState {
    fn new(info: RunInfo, lr: f64) -> Self {
        let groups = ResidualGroups::new(&cifar(&info.config));
        Self {
            info,
            groups,
            steps: Vec::new(),
            smoothed_loss: Vec::new(),
            smoothed_error: Vec::new(),
            sums: (0.0, 0.0),
            held_out: Vec::new(),
            disabled: BTreeSet::new(),
            lr,
            diverged: None,
            interventions: Vec::new(),
        }
    }

    fn push(&mut self, record: StepRecord, window: usize) {
        let window = window.max(1);
        let i = self.steps.len();
        self.sums.0 += record.loss;
        self.sums.1 += record.error;
        if i >= window {
            self.sums.0 -= self.steps[i - window].loss;
            self.sums.1 -= self.steps[i - window].error;
        }
        let n = (i + 1).min(window) as f64;
        self.smoothed_loss.push(self.sums.0 / n);
        self.smoothed_error.push(self.sums.1 / n);
        self.steps.push(record);
    }

    /// Steps per second of this run's own compute (its steps' time, evaluations aside).
    pub fn steps_per_second(&self) -> f64 {
        let seconds: f64 = self.steps.iter().map(|s| s.seconds).sum();
        if seconds > 0.0 { self.steps.len() as f64 / seconds } else { 0.0 }
    }
}

/// A lab started from this window.
pub struct LabState {
    pub settings: LabSettings,
    pub started: Option<LabStarted>,
    pub runs: Vec<RunState>,
    pub paused: bool,
    pub finished: bool,
    /// The lab could not be built; nothing trains.
    pub failed: Option<String>,
    /// Images read so far while loading a folder.
    pub loading: Option<(usize, usize)>,
    /// When training began (the lab built) and when every run was done.
    pub training_since: Option<Instant>,
    pub finished_at: Option<Instant>,
    /// The folder the lab was last saved to.
    pub saved: Option<PathBuf>,
    /// (when, steps of all runs): the recent past, for steps per second.
    rate_samples: VecDeque<(Instant, usize)>,
    /// log10 of the smallest and largest positive gradient norm seen, for one colour scale.
    norm_range: Option<(f32, f32)>,
}

impl LabState {
    fn new(settings: LabSettings, paused: bool) -> Self {
        Self {
            settings,
            started: None,
            runs: Vec::new(),
            paused,
            finished: false,
            failed: None,
            loading: None,
            training_since: None,
            finished_at: None,
            saved: None,
            rate_samples: VecDeque::new(),
            norm_range: None,
        }
    }

    pub fn total_steps(&self) -> usize {
        self.runs.iter().map(|r| r.steps.len()).sum()
    }

    /// Whether the lab thread is training now (built, not paused, not done).
    pub fn training(&self) -> bool {
        self.started.is_some() && !self.paused && !self.finished && self.failed.is_none()
    }

    /// Steps of all runs per second of wall-clock time over the last few seconds.
    pub fn recent_rate(&self) -> Option<f64> {
        let (first, last) = (self.rate_samples.front()?, self.rate_samples.back()?);
        let seconds = last.0.duration_since(first.0).as_secs_f64();
        (seconds > 0.5).then(|| (last.1 - first.1) as f64 / seconds)
    }

    fn sample_rate(&mut self, now: Instant) {
        let total = self.total_steps();
        self.rate_samples.push_back((now, total));
        while self.rate_samples.len() > 2 && self.rate_samples.front().is_some_and(|s| now - s.0 > RATE_WINDOW) {
            self.rate_samples.pop_front();
        }
    }

    fn receive(&mut self, update: LabUpdate) {
        match update {
            LabUpdate::Loading { done, total } => self.loading = Some((done, total)),
            LabUpdate::Started(started) => {
                let lr = self.settings.sgd.lr;
                self.runs = started.runs.iter().cloned().map(|info| RunState::new(info, lr)).collect();
                self.started = Some(started);
                self.loading = None;
                self.training_since = Some(Instant::now());
            }
            LabUpdate::Failed(text) => self.failed = Some(text),
            LabUpdate::Event(event) => self.receive_event(event),
            LabUpdate::StepFailed(_) => {}
            LabUpdate::Paused(paused) => self.paused = paused,
            LabUpdate::Lr { run, lr, steps } => {
                for (i, state) in self.runs.iter_mut().enumerate() {
                    if run.is_none_or(|r| r == i) && state.lr != lr {
                        state.lr = lr;
                        state.interventions.push((steps[i], format!("learning rate {lr}")));
                    }
                }
            }
            LabUpdate::Shortcuts { run, step, what, result: Ok(disabled) } => {
                if let Some(state) = self.runs.get_mut(run) {
                    let disabled: BTreeSet<NodeId> = disabled.into_iter().collect();
                    if disabled != state.disabled {
                        state.interventions.push((step, what));
                    }
                    state.disabled = disabled;
                }
            }
            LabUpdate::Shortcuts { result: Err(_), .. } => {}
            LabUpdate::Extended { steps } => {
                self.settings.steps = steps;
                self.finished = false;
                self.finished_at = None;
            }
            LabUpdate::Saved(Ok(dir)) => self.saved = Some(dir),
            LabUpdate::Saved(Err(_)) => {}
            LabUpdate::Finished => {
                self.finished = true;
                self.finished_at = Some(Instant::now());
            }
        }
    }

    fn receive_event(&mut self, event: LabEvent) {
        let window = self.settings.smoothing;
        match event {
            LabEvent::Step { run, record } => {
                for &norm in &record.grad_norms {
                    if norm > 0.0 && norm.is_finite() {
                        let log = norm.log10();
                        self.norm_range =
                            Some(self.norm_range.map_or((log, log), |(lo, hi)| (lo.min(log), hi.max(log))));
                    }
                }
                if let Some(state) = self.runs.get_mut(run) {
                    state.push(record, window);
                }
            }
            LabEvent::HeldOut { run, held_out } => {
                if let Some(state) = self.runs.get_mut(run) {
                    state.held_out.push(held_out);
                }
            }
            LabEvent::Diverged { run, step } => {
                if let Some(state) = self.runs.get_mut(run) {
                    state.diverged = Some(step);
                }
            }
        }
    }
}

/// Which curves the plot shows.
#[derive(Clone, Copy, Debug)]
struct Shown {
    loss: bool,
    error: bool,
    held_out: bool,
}

/// The lab view: the form, the lab under way and what it has drawn.
pub struct LabView {
    form: LabSettings,
    setup: Setup,
    /// The image folder typed or chosen (used when `use_folder`).
    folder: String,
    use_folder: bool,
    threads: usize,
    /// Where "Save" writes.
    save_folder: String,
    /// The learning rate the next "Set" applies to every run.
    lr: f64,
    more_steps: usize,
    shown: Shown,
    handle: Option<LabHandle>,
    pub(crate) lab: Option<LabState>,
    /// A saved lab opened from disk, whose networks can be opened in the explorer.
    opened: Option<(PathBuf, SavedLab)>,
    /// The network last opened in the explorer: the model worker's `Loaded` names it.
    pub(crate) opened_spec: Option<ArchSpec>,
    note: Option<Message>,
    heatmaps: charts::Heatmaps,
    ctx: Option<egui::Context>,
}

impl Default for LabView {
    fn default() -> Self {
        let form = Preset::Fig6.settings();
        let lr = form.sgd.lr;
        Self {
            form,
            setup: Setup::Preset(Preset::Fig6),
            folder: String::new(),
            use_folder: false,
            threads: 1,
            save_folder: String::new(),
            lr,
            more_steps: 100,
            shown: Shown { loss: true, error: false, held_out: true },
            handle: None,
            lab: None,
            opened: None,
            opened_spec: None,
            note: None,
            heatmaps: charts::Heatmaps::default(),
            ctx: None,
        }
    }
}

impl LabView {
    /// The lab started from this window, if any.
    pub fn state(&self) -> Option<&LabState> {
        self.lab.as_ref()
    }

    /// The view's own message line (a refused folder, a failed save).
    pub fn note(&self) -> Option<&Message> {
        self.note.as_ref()
    }

    /// The settings the form would start a lab with.
    pub fn form(&self) -> &LabSettings {
        &self.form
    }

    /// Whether a lab thread is busy now (loading or training).
    pub fn working(&self) -> bool {
        self.lab.as_ref().is_some_and(|lab| lab.failed.is_none() && (lab.started.is_none() || lab.training()))
    }

    fn say(&mut self, text: impl Into<String>, is_error: bool) {
        self.note = Some(Message { text: text.into(), is_error });
    }

    fn send(&mut self, request: LabRequest) {
        let sent = self.handle.as_mut().is_some_and(|h| h.send(request));
        if !sent {
            self.say("The lab did not take the request: start a lab first (or wait a moment and try again)", true);
        }
    }

    /// Takes in what the lab thread sent; asks for the next frame while it trains.
    fn receive(&mut self, ctx: &egui::Context) {
        self.ctx = Some(ctx.clone());
        let Some(handle) = &mut self.handle else { return };
        let updates = handle.poll();
        let stopped = handle.stopped();
        let mut notes = Vec::new();
        if let Some(lab) = &mut self.lab {
            for update in updates {
                match &update {
                    LabUpdate::Failed(text) => notes.push((format!("The lab could not start: {text}"), true)),
                    LabUpdate::StepFailed(text) => notes.push((format!("The lab paused: {text}"), true)),
                    LabUpdate::Shortcuts { result: Err(text), .. } => notes.push((text.clone(), true)),
                    LabUpdate::Saved(Ok(dir)) => {
                        notes.push((format!("Saved the curves, weights and settings to {}", dir.display()), false))
                    }
                    LabUpdate::Saved(Err(text)) => notes.push((format!("Could not save the lab: {text}"), true)),
                    LabUpdate::Event(LabEvent::Diverged { run, step }) => {
                        let id = lab.runs.get(*run).map_or("a run", |r| r.info.id.as_str());
                        notes.push((format!("{id} diverged at step {step}: its loss is no longer a number"), true));
                    }
                    _ => {}
                }
                lab.receive(update);
            }
            if stopped && lab.failed.is_none() && lab.started.is_none() {
                lab.failed = Some("the lab thread stopped".into());
            }
            lab.sample_rate(Instant::now());
            if lab.training() || lab.started.is_none() && lab.failed.is_none() {
                ctx.request_repaint_after(TRAINING_REPAINT);
            }
        }
        for (text, is_error) in notes {
            self.say(text, is_error);
        }
    }

    /// The whole view.
    pub(crate) fn ui(&mut self, ui: &mut egui::Ui, commands: &mut Vec<Command>) {
        let mut lab_commands = Vec::new();
        egui::ScrollArea::vertical().id_salt("lab_scroll").auto_shrink([false, false]).show(ui, |ui| {
            ui.horizontal_wrapped(|ui| {
                ui.heading("Residual lab");
                ui.weak(
                    "plain and residual networks trained side by side: watch degradation happen, and shortcuts cure it",
                );
            });
            if let Some(note) = &self.note {
                ui.horizontal_wrapped(|ui| {
                    let color = if note.is_error { ui.visuals().error_fg_color } else { ui.visuals().warn_fg_color };
                    ui.colored_label(color, &note.text);
                    let dismiss = ui.small_button("×");
                    dismiss.widget_info(|| {
                        egui::WidgetInfo::labeled(egui::Role::Button, true, "Dismiss the lab's message")
                    });
                    if dismiss.clicked() {
                        lab_commands.push(LabCommand::DismissNote);
                    }
                });
            }
            let open = self.lab.as_ref().is_none_or(|lab| lab.started.is_none() && lab.failed.is_some());
            egui::CollapsingHeader::new("Set up")
                .id_salt("lab_setup")
                .default_open(true)
                .open(open.then_some(true))
                .show(ui, |ui| self.form_ui(ui, &mut lab_commands));
            self.controls_ui(ui, &mut lab_commands);
            self.opened_ui(ui, &mut lab_commands);
            if let Some(lab) = &self.lab {
                runs_ui(ui, lab, &mut lab_commands);
                if !lab.runs.is_empty() {
                    ui.horizontal(|ui| {
                        ui.label("Show:");
                        ui.checkbox(&mut self.shown.loss, "training loss");
                        ui.checkbox(&mut self.shown.error, "training error");
                        ui.checkbox(&mut self.shown.held_out, "held-out accuracy");
                        ui.weak(format!("smoothed over {} steps; hover for the raw values", lab.settings.smoothing));
                    });
                    charts::curves_ui(ui, lab, self.shown.loss, self.shown.error, self.shown.held_out);
                    ui.separator();
                    self.heatmaps.ui(ui, lab);
                }
            }
        });
        commands.extend(lab_commands.into_iter().map(Command::Lab));
    }

    fn form_ui(&mut self, ui: &mut egui::Ui, commands: &mut Vec<LabCommand>) {
        ui.horizontal_wrapped(|ui| {
            ui.label("Networks:");
            for preset in Preset::ALL {
                if ui.selectable_label(self.setup == Setup::Preset(preset), preset.title()).clicked() {
                    self.setup = Setup::Preset(preset);
                    let settings = preset.settings();
                    self.form.preset = Some(preset);
                    self.form.nets = settings.nets;
                }
            }
            if ui.selectable_label(self.setup == Setup::Custom, "Custom").clicked() && self.setup != Setup::Custom {
                self.setup = Setup::Custom;
                self.form.preset = None;
            }
        });
        if self.setup == Setup::Custom {
            self.custom_nets_ui(ui);
        } else {
            let names: Vec<String> = self.form.nets.iter().map(net_name).collect();
            ui.weak(format!("trains {}", names.join(", ")));
        }
        ui.horizontal_wrapped(|ui| {
            let mut width = self.form.nets.first().map_or(8, |n| n.width);
            let hint = "Channels of the first stage (the paper's 16; the presets use 8 to train in minutes)";
            if number_ui(ui, "width", egui::DragValue::new(&mut width).range(1..=64)).on_hover_text(hint).changed() {
                self.form.nets.iter_mut().for_each(|n| n.width = width);
            }
            let mut batch_norm = self.form.nets.iter().all(|n| n.batch_norm);
            if ui.checkbox(&mut batch_norm, "batch norm").on_hover_text(NO_BN_EXPLAINED).changed() {
                self.form.nets.iter_mut().for_each(|n| n.batch_norm = batch_norm);
            }
            ui.separator();
            number_ui(ui, "steps", egui::DragValue::new(&mut self.form.steps).range(1..=100_000))
                .on_hover_text("Training steps per network");
            number_ui(ui, "batch", egui::DragValue::new(&mut self.form.batch).range(1..=1024));
            number_ui(ui, "resolution", egui::DragValue::new(&mut self.form.resolution).range(8..=64).suffix(" px"))
                .on_hover_text("Square input side: the digits are averaged down from 32×32 below 32");
            number_ui(ui, "lr", egui::DragValue::new(&mut self.form.sgd.lr).range(1e-5..=1.0).speed(0.001))
                .on_hover_text("SGD learning rate (constant); momentum 0.9 and weight decay 1e-4 as the paper's");
            number_ui(ui, "seed", egui::DragValue::new(&mut self.form.seed))
                .on_hover_text("Seeds the weights, the held-out split and the order of the batches");
            number_ui(ui, "threads", egui::DragValue::new(&mut self.threads).range(1..=64)).on_hover_text(
                "libtorch threads for the lab: one is the fastest for networks this small, as in the CLI",
            );
        });
        if !self.form.nets.iter().all(|n| n.batch_norm) {
            ui.colored_label(theme::WARNING, NO_BN_EXPLAINED);
        }
        ui.horizontal_wrapped(|ui| {
            ui.label("Data:");
            ui.radio_value(&mut self.use_folder, false, "the bundled MNIST digits (4,000 train, 1,000 held out)");
            ui.radio_value(&mut self.use_folder, true, "an image folder");
            if self.use_folder {
                let label = ui.label("folder");
                ui.add(
                    egui::TextEdit::singleline(&mut self.folder)
                        .hint_text("a folder with one subfolder per class")
                        .desired_width(260.0),
                )
                .labelled_by(label.id);
                if ui.button("Choose…").on_hover_text("Pick the image folder").clicked() {
                    commands.push(LabCommand::ChooseDataFolder);
                }
            }
        });
        ui.horizontal(|ui| {
            let label = if self.lab.is_some() { "Start again" } else { "Start" };
            if ui.button(label).on_hover_text("Build the networks and train them side by side").clicked() {
                commands.push(LabCommand::Start);
            }
            if let Err(e) = self.form.check() {
                ui.colored_label(ui.visuals().error_fg_color, e.to_string());
            }
        });
    }

    fn custom_nets_ui(&mut self, ui: &mut egui::Ui) {
        let mut remove = None;
        let count = self.form.nets.len();
        for (i, net) in self.form.nets.iter_mut().enumerate() {
            ui.horizontal(|ui| {
                ui.label(format!("network {}", i + 1));
                ui.selectable_value(&mut net.residual, false, "plain");
                ui.selectable_value(&mut net.residual, true, "residual");
                egui::ComboBox::from_id_salt(("lab_depth", i))
                    .selected_text(format!("{} layers", net.depth))
                    .show_ui(ui, |ui| {
                        for depth in DEPTHS {
                            ui.selectable_value(&mut net.depth, depth, format!("{depth} layers"));
                        }
                    })
                    .response
                    .widget_info(|| {
                        egui::WidgetInfo::labeled(egui::Role::ComboBox, true, format!("network {} depth", i + 1))
                    });
                if count > 2 && ui.small_button("remove").clicked() {
                    remove = Some(i);
                }
            });
        }
        if let Some(i) = remove {
            self.form.nets.remove(i);
        }
        if self.form.nets.len() < MAX_RUNS && ui.button("add a network").clicked() {
            let last = self.form.nets.last().copied().unwrap_or(NetSpec {
                depth: 20,
                residual: true,
                width: 8,
                batch_norm: true,
            });
            self.form.nets.push(last);
        }
    }

    fn controls_ui(&mut self, ui: &mut egui::Ui, commands: &mut Vec<LabCommand>) {
        let Some(lab) = &self.lab else { return };
        ui.separator();
        ui.horizontal_wrapped(|ui| {
            if let Some((done, total)) = lab.loading {
                theme::spinner(ui);
                ui.label(format!("reading images {done}/{total}"));
            } else if lab.started.is_none() && lab.failed.is_none() {
                theme::spinner(ui);
                ui.label("loading the data and building the networks…");
            }
            if lab.started.is_none() {
                return;
            }
            if lab.paused {
                if ui.button("Resume").on_hover_text("Train on").clicked() {
                    commands.push(LabCommand::Request(LabRequest::Resume));
                }
                if ui.button("Step once").on_hover_text("One step of the run furthest behind").clicked() {
                    commands.push(LabCommand::Request(LabRequest::StepOnce));
                }
            } else if !lab.finished && ui.button("Pause").on_hover_text("Stop after the current step").clicked() {
                commands.push(LabCommand::Request(LabRequest::Pause));
            }
            ui.separator();
            let done = lab.runs.iter().map(|r| r.steps.len()).min().unwrap_or(0);
            ui.label(format!("step {done} of {}", lab.settings.steps));
            if lab.finished {
                ui.label("· finished");
            } else if lab.paused {
                ui.label("· paused");
            }
            match (lab.finished_at, lab.training_since) {
                (Some(end), Some(start)) => {
                    let seconds = (end - start).as_secs_f64();
                    let rate = lab.total_steps() as f64 / seconds.max(1e-9);
                    ui.label(format!("· {} steps in {seconds:.1} s: {rate:.1} steps/s (all runs)", lab.total_steps()));
                }
                _ => {
                    if let Some(rate) = lab.recent_rate() {
                        ui.label(format!("· {rate:.1} steps/s (all runs)"));
                    }
                }
            }
            if let Some(started) = &lab.started {
                ui.weak(format!("· {} thread(s)", started.threads));
            }
        });
        if lab.started.is_none() {
            return;
        }
        ui.horizontal_wrapped(|ui| {
            number_ui(ui, "learning rate", egui::DragValue::new(&mut self.lr).range(1e-5..=1.0).speed(0.001));
            if ui.button("Set for all runs").on_hover_text("From each run's next step on").clicked() {
                commands.push(LabCommand::Request(LabRequest::SetLr { run: None, lr: self.lr }));
            }
            ui.separator();
            number_ui(ui, "more steps", egui::DragValue::new(&mut self.more_steps).range(1..=100_000));
            if ui.button("Extend").on_hover_text("Train every run that has not diverged this many steps more").clicked()
            {
                commands.push(LabCommand::Request(LabRequest::Extend(self.more_steps)));
            }
            ui.separator();
            let label = ui.label("save to");
            ui.add(
                egui::TextEdit::singleline(&mut self.save_folder)
                    .hint_text("a folder to save into")
                    .desired_width(220.0),
            )
            .labelled_by(label.id);
            if ui.button("Save").on_hover_text("Curves (CSV, JSON), weights (safetensors) and settings").clicked() {
                commands.push(LabCommand::Save);
            }
            if ui.button("Save to…").clicked() {
                commands.push(LabCommand::SaveAs);
            }
            if ui.button("Open a saved lab…").clicked() {
                commands.push(LabCommand::OpenSaved);
            }
        });
    }

    fn opened_ui(&self, ui: &mut egui::Ui, commands: &mut Vec<LabCommand>) {
        let Some((dir, saved)) = &self.opened else { return };
        ui.horizontal_wrapped(|ui| {
            ui.label(format!("Saved lab {}:", dir.display()));
            for (i, run) in saved.runs.iter().enumerate() {
                if ui.button(format!("Open {} in the explorer", run.id)).clicked() {
                    commands.push(LabCommand::OpenRun { dir: dir.clone(), run: i });
                }
            }
        });
    }
}

/// What a network without batch norm does here, said before anyone waits for a picture
/// that will not come.
const NO_BN_EXPLAINED: &str = "Without batch norm these networks barely train at the presets' learning rate. \
     Measured here (Fig. 6's four at width 8, lr 0.02, 60 steps): ResNet-56's loss stops being a number at step 2 \
     (each block adds its output to a growing signal, which blows up in the forward pass) and the run stops \
     there; plain-20, plain-56 and ResNet-20 stay near chance (loss 2.29–2.30, training error about 89%), the \
     plain networks' signal fading layer by layer. Not the textbook 'vanishing gradient' picture: the heatmaps \
     show what does happen.";

/// A number with its label before it, named by it for screen readers and tests.
fn number_ui(ui: &mut egui::Ui, label: &str, value: egui::DragValue<'_>) -> egui::Response {
    let label = ui.label(label);
    ui.add(value).labelled_by(label.id)
}

fn net_name(net: &NetSpec) -> String {
    format!("{}-{}", if net.residual { "ResNet" } else { "plain" }, net.depth)
}

/// A row per run: its numbers, its learning rate, its shortcut switches, and once saved, a
/// way into the explorer.
fn runs_ui(ui: &mut egui::Ui, lab: &LabState, commands: &mut Vec<LabCommand>) {
    let Some(started) = &lab.started else { return };
    ui.weak(format!(
        "{}{} · {} steps per epoch",
        started.description,
        if started.skipped > 0 { format!(" ({} skipped)", started.skipped) } else { String::new() },
        started.steps_per_epoch
    ));
    let window = lab.settings.smoothing;
    egui::Grid::new("lab_runs").striped(true).num_columns(9).show(ui, |ui| {
        for heading in ["run", "steps", "loss", "error", "held-out", "steps/s", "lr", "shortcuts", ""] {
            ui.strong(heading);
        }
        ui.end_row();
        for (i, run) in lab.runs.iter().enumerate() {
            ui.colored_label(theme::lab_run(i), &run.info.id)
                .on_hover_text(format!("{} parameters", convscope_core::format::grouped(run.info.parameters)));
            ui.label(format!("{}", run.steps.len()));
            let percent = |v: Option<&f64>| v.map_or("–".to_owned(), |v| format!("{:.1}%", v * 100.0));
            ui.label(run.smoothed_loss.last().map_or("–".to_owned(), |l| format!("{l:.4}")))
                .on_hover_text(format!("training loss, mean of the last {window} steps"));
            ui.label(percent(run.smoothed_error.last()));
            ui.label(percent(run.held_out.last().map(|h| &h.accuracy)));
            ui.label(format!("{:.1}", run.steps_per_second()));
            ui.label(format!("{}", run.lr));
            ui.vertical(|ui| shortcuts_ui(ui, i, run, commands));
            ui.horizontal(|ui| {
                if let Some(step) = run.diverged {
                    ui.colored_label(ui.visuals().error_fg_color, format!("diverged at step {step}"));
                }
                if let Some(dir) = &lab.saved {
                    let open = ui.button(format!("Open {} in the explorer", run.info.id)).on_hover_text(
                        "Its diagram, feature maps on a digit, gradient flow and shortcut switch, as saved",
                    );
                    if open.clicked() {
                        commands.push(LabCommand::OpenRun { dir: dir.clone(), run: i });
                    }
                }
            });
            ui.end_row();
        }
    });
}

/// A run's shortcut switches: all, per stage, and per block under a fold.
fn shortcuts_ui(ui: &mut egui::Ui, run_index: usize, run: &RunState, commands: &mut Vec<LabCommand>) {
    if run.groups.all.is_empty() {
        ui.weak("none (plain)");
        return;
    }
    let id = &run.info.id;
    let switch = |ui: &mut egui::Ui, name: &str, label: String, nodes: &[NodeId], commands: &mut Vec<LabCommand>| {
        let off = nodes.iter().filter(|n| run.disabled.contains(n)).count();
        let mut on = off == 0;
        let checkbox = egui::Checkbox::new(&mut on, label).indeterminate(off > 0 && off < nodes.len());
        let response =
            ui.add(checkbox).on_hover_text(format!("{} shortcut(s); off from the next step on", nodes.len()));
        if response.changed() {
            commands.push(LabCommand::Request(LabRequest::SetShortcuts {
                run: run_index,
                names: vec![name.to_owned()],
                enabled: on,
            }));
        }
    };
    ui.horizontal(|ui| {
        switch(ui, "all", format!("{id}: all shortcuts"), &run.groups.all, commands);
        for (name, nodes) in &run.groups.stages {
            switch(ui, name, format!("{id}: {name}"), nodes, commands);
        }
    });
    egui::CollapsingHeader::new(format!("per block ({})", run.groups.blocks.len()))
        .id_salt(("lab_blocks", run_index))
        .show(ui, |ui| {
            ui.horizontal_wrapped(|ui| {
                for (name, nodes) in &run.groups.blocks {
                    switch(ui, name, format!("{id}: {name}"), nodes, commands);
                }
            });
        });
}

impl App {
    /// The lab view, for tests and the shell.
    pub fn lab(&self) -> &LabView {
        &self.runtime.lab
    }

    /// Takes in what the lab thread sent since the last frame.
    pub(crate) fn receive_lab(&mut self, ctx: &egui::Context) {
        self.runtime.lab.receive(ctx);
    }

    /// Carries out one of the lab view's commands.
    pub(crate) fn apply_lab(&mut self, command: LabCommand) {
        let view = &mut self.runtime.lab;
        match command {
            LabCommand::Start => {
                let mut settings = view.form.clone();
                settings.data = if view.use_folder {
                    let folder = view.folder.trim();
                    if folder.is_empty() {
                        view.say("Choose an image folder first, or train on the bundled digits", true);
                        return;
                    }
                    DataSource::Folder { path: PathBuf::from(folder) }
                } else {
                    DataSource::Digits { path: None }
                };
                if let Err(e) = settings.check() {
                    view.say(e.to_string(), true);
                    return;
                }
                let wake = {
                    let ctx = view.ctx.clone();
                    move || {
                        if let Some(ctx) = &ctx {
                            ctx.request_repaint_after(crate::theme::REPLY_WAKE);
                        }
                    }
                };
                // The previous lab's thread ends after its current step, its handle dropped.
                view.handle = None;
                view.lr = settings.sgd.lr;
                match LabHandle::spawn(settings.clone(), view.threads, false, wake) {
                    Ok(handle) => {
                        view.handle = Some(handle);
                        view.lab = Some(LabState::new(settings, false));
                        view.heatmaps = charts::Heatmaps::default();
                        view.note = None;
                    }
                    Err(e) => view.say(format!("Could not start the lab's thread: {e}"), true),
                }
            }
            LabCommand::Request(request) => view.send(request),
            LabCommand::ChooseDataFolder => {
                // rfd returns at once with None where no desktop portal runs.
                if let Some(dir) =
                    rfd::FileDialog::new().set_title("An image folder: one subfolder per class").pick_folder()
                {
                    view.folder = dir.display().to_string();
                    view.use_folder = true;
                }
            }
            LabCommand::Save => {
                let folder = view.save_folder.trim().to_owned();
                if folder.is_empty() {
                    view.say("Type a folder to save into, or use Save to…", true);
                    return;
                }
                view.send(LabRequest::Save(PathBuf::from(folder)));
            }
            LabCommand::SaveAs => {
                if let Some(dir) = rfd::FileDialog::new().set_title("Save the lab into").pick_folder() {
                    view.save_folder = dir.display().to_string();
                    view.send(LabRequest::Save(dir));
                }
            }
            LabCommand::OpenSaved => {
                if let Some(dir) = rfd::FileDialog::new().set_title("A saved lab's folder").pick_folder() {
                    match SavedLab::read(&dir) {
                        Ok(saved) => view.opened = Some((dir, saved)),
                        Err(e) => view.say(format!("Could not open the saved lab: {e}"), true),
                    }
                }
            }
            LabCommand::OpenRun { dir, run } => self.open_lab_run(dir, run),
            LabCommand::DismissNote => view.note = None,
        }
    }

    /// Loads a saved run into the explorer through the model worker's usual `Load`, with a
    /// digit to look at when it learned digits.
    fn open_lab_run(&mut self, dir: PathBuf, run: usize) {
        let opened = SavedLab::read(&dir).and_then(|saved| {
            let spec = saved.arch_spec(run)?;
            Ok((spec, dir.join(&saved.runs[run].weights)))
        });
        let (spec, weights) = match opened {
            Ok(opened) => opened,
            Err(e) => {
                self.runtime.lab.say(format!("Could not open the run: {e}"), true);
                return;
            }
        };
        let rt = &mut self.runtime;
        rt.facts.insert(spec.id, ArchFacts::new(&spec));
        if spec.labels == Labels::Digits {
            let digit = paths::asset("digits/digit_3.png");
            if digit.is_file() {
                rt.pending_image = Some(ImageInput::Path(digit));
            }
        }
        rt.lab.opened_spec = Some(spec.clone());
        rt.worker.send(Request::Load {
            spec: Box::new(spec),
            weights: WeightsChoice::File(weights),
            device: self.settings.device.device(),
        });
        self.settings.central = CentralView::FeatureMaps;
    }
}
