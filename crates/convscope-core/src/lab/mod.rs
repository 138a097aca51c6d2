//! The residual lab: plain and residual networks of He et al.'s CIFAR family (§4.2) trained
//! side by side on the same data, so that degradation (the deeper plain network training
//! *worse*) and its cure (shortcuts) happen in front of the user.
//!
//! A `Lab` holds one to four `Run`s, each a network with its own SGD state. `Lab::advance`
//! takes one training step of the run that is furthest behind, so the runs move together,
//! one step each, over the same batches in the same order (the batch of step s depends on
//! the seed and s alone). It returns small `LabEvent`s (a step's loss, error and per-layer
//! gradient norms, a held-out accuracy) that a caller draws or prints; between two calls it
//! may pause, stop, change a run's learning rate or switch its shortcuts off and on, which is
//! all a worker thread needs for a live view. The same seed gives the same curves bit for bit
//! on the same machine and thread count.
//!
//! Training is PyTorch's: the executor's forward in training mode (batch norm on batch
//! statistics, its running statistics updated), the mean cross-entropy, one backward pass and
//! `torch.optim.SGD`'s update (`sgd`). No augmentation. The last partial batch of an epoch is
//! dropped so that every step sees the same number of images.

pub mod data;
pub mod sgd;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Reduction, Tensor};

use crate::error::{Error, Result, TorchContext};
use crate::executor::{Model, RunOptions};
use crate::graph::{Graph, NodeId, Op};
use crate::preprocess::Preprocess;
use crate::train::shuffled_indices;
use crate::zoo::resnet::{CifarConfig, cifar};
use crate::zoo::{ArchSpec, Build, Card, Labels};

pub use data::{DataSource, Dataset, Normalisation};
pub use sgd::{Sgd, SgdConfig};

/// The most runs a lab trains side by side.
pub const MAX_RUNS: usize = 4;

/// One network of a lab, before the data says how many classes it has.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetSpec {
    /// 6n+2: 20, 32, 44, 56, 110, …
    pub depth: usize,
    pub residual: bool,
    /// Channels of the first stage (the paper's 16).
    pub width: i64,
    pub batch_norm: bool,
}

impl NetSpec {
    /// Reads `plain20`, `resnet56`, `res110` (width and batch norm given apart).
    pub fn parse(text: &str, width: i64, batch_norm: bool) -> Result<Self> {
        let text = text.trim().to_ascii_lowercase();
        let (residual, digits) = if let Some(d) = text.strip_prefix("plain") {
            (false, d)
        } else if let Some(d) = text.strip_prefix("resnet").or_else(|| text.strip_prefix("res")) {
            (true, d)
        } else {
            return Err(Error::Input(format!(
                "unknown network {text:?}: write plain or resnet and a depth, e.g. plain56"
            )));
        };
        let depth: usize = digits.trim_start_matches('-').parse().map_err(|_| {
            Error::Input(format!("{text:?}: the depth after {:?} is not a number", &text[..text.len() - digits.len()]))
        })?;
        let spec = Self { depth, residual, width, batch_norm };
        spec.config(10)?;
        Ok(spec)
    }

    /// The network's configuration for `classes` classes.
    pub fn config(&self, classes: i64) -> Result<CifarConfig> {
        let blocks = CifarConfig::blocks_for_depth(self.depth).filter(|&n| n <= 200).ok_or_else(|| {
            Error::Input(format!(
                "depth {} is not 6n+2 (the CIFAR family has 8, 14, 20, 26, 32, 44, 56, 110, … layers)",
                self.depth
            ))
        })?;
        if !(1..=256).contains(&self.width) {
            return Err(Error::Input(format!("width {} is outside 1..=256 channels", self.width)));
        }
        if classes < 2 {
            return Err(Error::Input("a classifier needs at least two classes".into()));
        }
        Ok(CifarConfig { blocks, width: self.width, residual: self.residual, batch_norm: self.batch_norm, classes })
    }
}

/// The paper's figures, as runs on this data.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Preset {
    /// Fig. 1: plain-20 against plain-56. The deeper one trains worse.
    Fig1,
    /// Fig. 6: plain and residual at 20 and 56 layers. Shortcuts make depth pay.
    Fig6,
}

impl Preset {
    pub const ALL: [Preset; 2] = [Preset::Fig1, Preset::Fig6];

    pub fn name(self) -> &'static str {
        match self {
            Preset::Fig1 => "fig1",
            Preset::Fig6 => "fig6",
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            Preset::Fig1 => "Fig. 1: plain-20 vs plain-56",
            Preset::Fig6 => "Fig. 6: plain vs residual at 20 and 56 layers",
        }
    }

    pub fn parse(text: &str) -> Result<Self> {
        Preset::ALL.into_iter().find(|p| p.name() == text.trim().to_ascii_lowercase()).ok_or_else(|| {
            Error::Input(format!("unknown preset {text:?}: use {}", Preset::ALL.map(Preset::name).join(" or ")))
        })
    }

    /// The preset's runs and settings.
    pub fn settings(self) -> LabSettings {
        let net = |depth, residual| NetSpec { depth, residual, width: 8, batch_norm: true };
        let nets = match self {
            Preset::Fig1 => vec![net(20, false), net(56, false)],
            Preset::Fig6 => vec![net(20, false), net(56, false), net(20, true), net(56, true)],
        };
        LabSettings { preset: Some(self), nets, ..LabSettings::default() }
    }
}

/// Everything that decides a lab's curves: the CLI's arguments, the app's form and the saved
/// record of a run are this one struct.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LabSettings {
    pub preset: Option<Preset>,
    pub nets: Vec<NetSpec>,
    pub data: DataSource,
    /// Square input side in pixels.
    pub resolution: i64,
    /// Training steps per run.
    pub steps: usize,
    pub batch: usize,
    pub sgd: SgdConfig,
    /// Seeds the weights, the train / held-out split and the order of the batches.
    pub seed: u64,
    /// Held-out accuracy every this many steps (0: once per epoch) and after the last step.
    pub eval_every: usize,
    /// The window of the running mean the curves and the final numbers are smoothed with.
    pub smoothing: usize,
}

impl Default for LabSettings {
    /// Width 8, digits at 16×16, batch 128, SGD with momentum 0.9 and weight decay 1e-4 at a
    /// constant 0.02, 200 steps: the presets' settings, about 2½ minutes for Fig. 6 on one
    /// core of this project's machine.
    ///
    /// Measured with this lab (Fig. 6, training loss as the mean of the last 20 steps, seeds
    /// 1 / 2 / 3, after 200 steps): plain-20 0.30 / 0.25 / 0.18, plain-56 1.83 / 1.83 / 1.55,
    /// ResNet-20 0.087 / 0.072 / 0.056, ResNet-56 0.028 / 0.030 / 0.023. Plain-56 stays more
    /// than 0.3 above plain-20 from step 48–61 on and more than 1 from step 97–111; ResNet-56
    /// is at or below ResNet-20 at every step from step 20–22. At 0.05 the plain gap opens
    /// sooner (over 1 from step 65–82) but the residual curves cross until step 84–176; at 0.01
    /// (the rate first measured in PyTorch) it passes 1 only from step 163–178.
    fn default() -> Self {
        Self {
            preset: None,
            nets: Vec::new(),
            data: DataSource::default(),
            resolution: 16,
            steps: 200,
            batch: 128,
            sgd: SgdConfig { lr: 0.02, momentum: 0.9, weight_decay: 1e-4 },
            seed: 1,
            eval_every: 0,
            smoothing: 20,
        }
    }
}

impl LabSettings {
    /// Checks what can be checked before the data is read.
    pub fn check(&self) -> Result<()> {
        if self.nets.is_empty() || self.nets.len() > MAX_RUNS {
            return Err(Error::Input(format!("a lab trains 1 to {MAX_RUNS} networks, not {}", self.nets.len())));
        }
        for net in &self.nets {
            net.config(10)?;
        }
        data::check_resolution(self.resolution)?;
        if self.steps == 0 || self.batch == 0 || self.smoothing == 0 {
            return Err(Error::Input("steps, batch and smoothing must be positive".into()));
        }
        self.sgd.check()
    }
}

/// One training step of one run, as it happened.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    /// Steps done, this one included (1 for the first).
    pub step: usize,
    /// Mean cross-entropy of the batch, before the update.
    pub loss: f64,
    /// Share of the batch misclassified, before the update.
    pub error: f64,
    pub lr: f64,
    /// Seconds the step took (batch, forward, backward, update).
    pub seconds: f64,
    /// ‖∂loss/∂W‖ of every weighted layer (`Run::layers`), in depth order.
    pub grad_norms: Vec<f32>,
}

/// Held-out accuracy after a step.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct HeldOut {
    pub step: usize,
    pub accuracy: f64,
}

/// Something a user changed during training, after `step` steps.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Intervention {
    pub step: usize,
    pub what: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Training,
    Finished,
    /// The loss stopped being a finite number at this step; the run stopped there.
    Diverged {
        step: usize,
    },
}

/// What a step or an evaluation reports to whoever drives the lab.
#[derive(Clone, Debug, PartialEq)]
pub enum LabEvent {
    Step {
        run: usize,
        record: StepRecord,
    },
    HeldOut {
        run: usize,
        held_out: HeldOut,
    },
    /// The run's loss became infinite or NaN; it takes no more steps.
    Diverged {
        run: usize,
        step: usize,
    },
}

/// One network being trained.
pub struct Run {
    /// `plain56-w8`, unique within the lab.
    pub id: String,
    pub spec: NetSpec,
    pub config: CifarConfig,
    model: Model,
    sgd: Sgd,
    /// Indices into `graph.params` of the trainable tensors, in order.
    trainable: Vec<usize>,
    /// The weighted layers (convolutions and the classifier) whose gradient norms are
    /// recorded: node name, and the index of its weight in `trainable`.
    layers: Vec<(String, usize)>,
    disabled: Vec<NodeId>,
    pub status: RunStatus,
    pub steps: Vec<StepRecord>,
    pub held_out: Vec<HeldOut>,
    pub interventions: Vec<Intervention>,
}

impl Run {
    fn new(id: String, spec: NetSpec, config: CifarConfig, seed: u64, sgd: SgdConfig) -> Result<Self> {
        let graph: Arc<Graph> = Arc::new(cifar(&config));
        // Seeded under the engine's lock on libtorch's one generator (`executor::seeded`).
        let model = Model::random(Arc::clone(&graph), Device::Cpu, seed as i64)?;
        let trainable: Vec<usize> =
            graph.params.iter().enumerate().filter(|(_, p)| p.trainable).map(|(i, _)| i).collect();
        let layers = trainable
            .iter()
            .enumerate()
            .filter_map(|(slot, &i)| {
                let spec = &graph.params[i];
                let node = &graph.nodes[spec.node];
                let weighted = matches!(node.op, Op::Conv2d(_) | Op::Linear { .. });
                (weighted && spec.key.ends_with(".weight")).then(|| (node.name.clone(), slot))
            })
            .collect();
        let sgd = Sgd::new(sgd, trainable.len())?;
        Ok(Self {
            id,
            spec,
            config,
            model,
            sgd,
            trainable,
            layers,
            disabled: Vec::new(),
            status: RunStatus::Training,
            steps: Vec::new(),
            held_out: Vec::new(),
            interventions: Vec::new(),
        })
    }

    pub fn model(&self) -> &Model {
        &self.model
    }

    /// Steps done.
    pub fn step_count(&self) -> usize {
        self.steps.len()
    }

    /// The weighted layers in depth order: the rows of the gradient-norm heatmap.
    pub fn layer_names(&self) -> Vec<&str> {
        self.layers.iter().map(|(name, _)| name.as_str()).collect()
    }

    /// The residual merges whose shortcut is switched off now.
    pub fn disabled_shortcuts(&self) -> &[NodeId] {
        &self.disabled
    }

    pub fn lr(&self) -> f64 {
        self.sgd.config.lr
    }

    /// Running mean of the last `window` losses at every step.
    pub fn smoothed_loss(&self, window: usize) -> Vec<f64> {
        running_mean(&self.steps.iter().map(|s| s.loss).collect::<Vec<_>>(), window)
    }

    pub fn smoothed_error(&self, window: usize) -> Vec<f64> {
        running_mean(&self.steps.iter().map(|s| s.error).collect::<Vec<_>>(), window)
    }

    /// Steps per second over the steps so far (evaluations not counted).
    pub fn steps_per_second(&self) -> f64 {
        let seconds: f64 = self.steps.iter().map(|s| s.seconds).sum();
        if seconds > 0.0 { self.steps.len() as f64 / seconds } else { 0.0 }
    }

    /// One step on `(x, y)`: forward in training mode, loss, backward, SGD.
    fn train_step(&mut self, x: &Tensor, y: &Tensor, started: Instant) -> Result<StepRecord> {
        let opts = RunOptions { train: true, disabled_residuals: self.disabled.clone(), ..RunOptions::default() };
        let logits = self.model.forward_with_grad(x, &opts)?;
        let loss = logits
            .f_cross_entropy_loss::<Tensor>(y, None, Reduction::Mean, -100, 0.0)
            .context(|| "cross-entropy loss".into())?;
        let loss_value = loss.f_double_value(&[]).context(|| "loss".into())?;
        let params: Vec<&Tensor> = self.trainable.iter().map(|&i| &self.model.params()[i]).collect();
        let grads = Tensor::f_run_backward(&[&loss], &params, false, false).context(|| "backward pass".into())?;
        let error = batch_error(&logits, y)?;
        let grad_norms = self.grad_norms(&grads)?;
        let step = self.steps.len() + 1;
        // A step whose loss is no number would only spread NaN through the weights.
        if loss_value.is_finite() {
            self.sgd.step(&params, &grads)?;
        }
        Ok(StepRecord {
            step,
            loss: loss_value,
            error,
            lr: self.sgd.config.lr,
            seconds: started.elapsed().as_secs_f64(),
            grad_norms,
        })
    }

    /// Every weighted layer's gradient norm, read back in one transfer.
    fn grad_norms(&self, grads: &[Tensor]) -> Result<Vec<f32>> {
        let norms = || -> std::result::Result<Vec<f32>, tch::TchError> {
            let each = self
                .layers
                .iter()
                .map(|&(_, slot)| {
                    let g = &grads[slot];
                    if g.defined() { g.f_norm() } else { Tensor::f_zeros([], (Kind::Float, Device::Cpu)) }
                })
                .collect::<std::result::Result<Vec<_>, _>>()?;
            Vec::<f32>::try_from(&Tensor::f_stack(&each, 0)?.f_to_kind(Kind::Float)?)
        };
        norms().context(|| "gradient norms".into())
    }

    /// Held-out accuracy of the network as it is now (batch norm on its running statistics,
    /// the same shortcuts switched off as in training).
    fn accuracy(&self, data: &Dataset) -> Result<f64> {
        let opts = RunOptions { disabled_residuals: self.disabled.clone(), ..RunOptions::default() };
        let mut correct = 0i64;
        for chunk in data.held_out.chunks(500) {
            let (x, y) = data.batch(chunk, self.model.device())?;
            let logits = self.model.forward(&x, &opts)?;
            correct += count_correct(&logits, &y)?;
        }
        Ok(correct as f64 / data.held_out.len().max(1) as f64)
    }
}

/// Several runs over one dataset, advanced in turn.
pub struct Lab {
    settings: LabSettings,
    data: Dataset,
    runs: Vec<Run>,
}

impl Lab {
    /// Builds the runs' networks (each initialised from the same seed) over `data`, which
    /// `settings.data` should describe; the resolution is the data's.
    pub fn new(mut settings: LabSettings, data: Dataset) -> Result<Self> {
        settings.resolution = data.resolution;
        settings.check()?;
        if data.train.len() < settings.batch {
            return Err(Error::Input(format!(
                "batch {} is larger than the {} training images",
                settings.batch,
                data.train.len()
            )));
        }
        let classes = data.classes.len() as i64;
        let mut runs: Vec<Run> = Vec::new();
        for net in &settings.nets {
            let config = net.config(classes)?;
            let mut id = config.id();
            let same = runs.iter().filter(|r| r.config == config).count();
            if same > 0 {
                id = format!("{id}-{}", same + 1);
            }
            let run = Run::new(id, *net, config, settings.seed, settings.sgd)?;
            run.model.check_input(
                &Tensor::f_zeros([1, 3, data.resolution, data.resolution], (Kind::Float, Device::Cpu))
                    .context(|| "probe".into())?,
            )?;
            runs.push(run);
        }
        Ok(Self { settings, data, runs })
    }

    /// Loads the data the settings name, then builds the lab.
    pub fn load(settings: LabSettings, progress: &mut dyn FnMut(usize, usize)) -> Result<Self> {
        settings.check()?;
        let data = Dataset::load(&settings.data, settings.resolution, settings.seed, progress)?;
        Self::new(settings, data)
    }

    pub fn settings(&self) -> &LabSettings {
        &self.settings
    }

    pub fn data(&self) -> &Dataset {
        &self.data
    }

    pub fn runs(&self) -> &[Run] {
        &self.runs
    }

    /// Full batches per epoch (the last partial one is dropped).
    pub fn steps_per_epoch(&self) -> usize {
        (self.data.train.len() / self.settings.batch).max(1)
    }

    /// The training images of step `step` (0-based): epoch e's order is a seeded shuffle of
    /// the training set, the same for every run.
    pub fn batch_indices(&self, step: usize) -> Vec<usize> {
        let per_epoch = self.steps_per_epoch();
        let (epoch, within) = (step / per_epoch, step % per_epoch);
        let order = shuffled_indices(self.data.train.len(), self.settings.seed.wrapping_add(1 + epoch as u64));
        let batch = self.settings.batch;
        order[within * batch..(within + 1) * batch].iter().map(|&i| self.data.train[i]).collect()
    }

    /// Whether every run has finished or diverged.
    pub fn finished(&self) -> bool {
        self.runs.iter().all(|r| r.status != RunStatus::Training)
    }

    /// The run that takes the next step: the one with the fewest steps still training.
    pub fn next_run(&self) -> Option<usize> {
        (0..self.runs.len())
            .filter(|&i| self.runs[i].status == RunStatus::Training)
            .min_by_key(|&i| self.runs[i].step_count())
    }

    /// One step of the run furthest behind, and its held-out accuracy when one is due. Empty
    /// once the lab has finished.
    pub fn advance(&mut self) -> Result<Vec<LabEvent>> {
        match self.next_run() {
            Some(run) => self.step_run(run),
            None => Ok(Vec::new()),
        }
    }

    /// One step of `run` on its next batch.
    pub fn step_run(&mut self, run: usize) -> Result<Vec<LabEvent>> {
        let index = self.run_index(run)?;
        if self.runs[index].status != RunStatus::Training {
            return Ok(Vec::new());
        }
        let started = Instant::now();
        let step = self.runs[index].step_count();
        let indices = self.batch_indices(step);
        let (x, y) = self.data.batch(&indices, self.runs[index].model.device())?;
        let record = self.runs[index].train_step(&x, &y, started)?;
        let mut events = Vec::new();
        let done = record.step;
        let diverged = !record.loss.is_finite();
        self.runs[index].steps.push(record.clone());
        events.push(LabEvent::Step { run: index, record });
        if diverged {
            self.runs[index].status = RunStatus::Diverged { step: done };
            events.push(LabEvent::Diverged { run: index, step: done });
            return Ok(events);
        }
        let every = if self.settings.eval_every == 0 { self.steps_per_epoch() } else { self.settings.eval_every };
        let last = done >= self.settings.steps;
        if done % every == 0 || last {
            let held_out = HeldOut { step: done, accuracy: self.runs[index].accuracy(&self.data)? };
            self.runs[index].held_out.push(held_out);
            events.push(LabEvent::HeldOut { run: index, held_out });
        }
        if last {
            self.runs[index].status = RunStatus::Finished;
        }
        Ok(events)
    }

    /// More steps for every run still going or finished (not diverged): the lab's end moves.
    pub fn extend(&mut self, steps: usize) {
        self.settings.steps += steps;
        for run in &mut self.runs {
            if run.status == RunStatus::Finished {
                run.status = RunStatus::Training;
            }
        }
    }

    /// Changes the learning rate of one run, or of all (`None`), from the next step on.
    pub fn set_lr(&mut self, run: Option<usize>, lr: f64) -> Result<()> {
        SgdConfig { lr, ..self.settings.sgd }.check()?;
        let chosen: Vec<usize> = match run {
            Some(run) => vec![self.run_index(run)?],
            None => (0..self.runs.len()).collect(),
        };
        for i in chosen {
            let run = &mut self.runs[i];
            if run.sgd.config.lr != lr {
                run.sgd.config.lr = lr;
                run.interventions.push(Intervention { step: run.steps.len(), what: format!("learning rate {lr}") });
            }
        }
        Ok(())
    }

    /// Switches shortcuts of `run` off (`enabled` false) or back on from its next step:
    /// `names` are `all`, stages (`layer2`), blocks (`layer2.0`) or merges (`layer2.0.add`), as
    /// `--no-skip` takes them. Gives the merges switched off afterwards.
    pub fn set_shortcuts(&mut self, run: usize, names: &[String], enabled: bool) -> Result<Vec<NodeId>> {
        let index = self.run_index(run)?;
        let run = &mut self.runs[index];
        let chosen = run.model.graph().resolve_residuals(names).map_err(Error::Input)?;
        let before = run.disabled.clone();
        if enabled {
            run.disabled.retain(|id| !chosen.contains(id));
        } else {
            run.disabled.extend(chosen);
            run.disabled.sort_unstable();
            run.disabled.dedup();
        }
        if run.disabled != before {
            let what = format!(
                "shortcuts {} {} ({} of {} off)",
                names.join(","),
                if enabled { "on" } else { "off" },
                run.disabled.len(),
                run.model.graph().residual_nodes().count()
            );
            run.interventions.push(Intervention { step: run.steps.len(), what });
        }
        Ok(run.disabled.clone())
    }

    fn run_index(&self, run: usize) -> Result<usize> {
        if run < self.runs.len() {
            Ok(run)
        } else {
            Err(Error::Input(format!("the lab has {} runs, no run {run}", self.runs.len())))
        }
    }

    /// Per run, the numbers a table shows at the end.
    pub fn summary(&self) -> Vec<RunSummary> {
        let window = self.settings.smoothing;
        self.runs
            .iter()
            .map(|run| RunSummary {
                id: run.id.clone(),
                steps: run.steps.len(),
                status: run.status,
                smoothed_loss: run.smoothed_loss(window).last().copied(),
                smoothed_error: run.smoothed_error(window).last().copied(),
                held_out_accuracy: run.held_out.last().map(|h| h.accuracy),
                steps_per_second: run.steps_per_second(),
                parameters: run.model.graph().parameter_count(),
            })
            .collect()
    }

    /// Writes the lab to `dir`: `settings.json` (the settings, the data, each run's network and
    /// interventions), `curves.csv` and `curves.json` (every step, held-out accuracies,
    /// gradient norms per layer) and `<run>.safetensors` (each network's weights under the
    /// zoo's state-dict names).
    pub fn save(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| Error::file(dir, e))?;
        let write = |name: &str, text: String| {
            let path = dir.join(name);
            std::fs::write(&path, text).map_err(|e| Error::file(&path, e))
        };
        let mut runs = Vec::new();
        for run in &self.runs {
            let file = format!("{}.safetensors", run.id);
            crate::weights::save(&run.model, &dir.join(&file))?;
            runs.push(SavedRun {
                id: run.id.clone(),
                net: run.spec,
                config: run.config,
                weights: file,
                steps: run.steps.len(),
                status: run.status,
                lr: run.lr(),
                disabled_shortcuts: run.disabled.iter().map(|&id| run.model.graph().nodes[id].name.clone()).collect(),
                interventions: run.interventions.clone(),
            });
        }
        let saved = SavedLab {
            settings: self.settings.clone(),
            data: self.data.description.clone(),
            classes: self.data.classes.clone(),
            normalisation: self.data.normalisation(),
            train_images: self.data.train.len(),
            held_out_images: self.data.held_out.len(),
            skipped_files: self.data.skipped.len(),
            runs,
            summary: self.summary(),
        };
        write("settings.json", to_json(&saved)?)?;
        write("curves.json", to_json(&self.curves())?)?;
        write("curves.csv", self.curves_csv())?;
        Ok(())
    }

    fn curves(&self) -> Vec<Curves<'_>> {
        let window = self.settings.smoothing;
        self.runs
            .iter()
            .map(|run| Curves {
                id: &run.id,
                layers: run.layer_names(),
                smoothing: window,
                smoothed_loss: run.smoothed_loss(window),
                smoothed_error: run.smoothed_error(window),
                steps: &run.steps,
                held_out: &run.held_out,
                interventions: &run.interventions,
            })
            .collect()
    }

    fn curves_csv(&self) -> String {
        let window = self.settings.smoothing;
        let mut csv = String::from("run,step,loss,smoothed_loss,error,smoothed_error,lr,seconds,held_out_accuracy\n");
        for run in &self.runs {
            let (loss, error) = (run.smoothed_loss(window), run.smoothed_error(window));
            for (i, s) in run.steps.iter().enumerate() {
                let held =
                    run.held_out.iter().find(|h| h.step == s.step).map(|h| h.accuracy.to_string()).unwrap_or_default();
                csv.push_str(&format!(
                    "{},{},{},{},{},{},{},{},{held}\n",
                    run.id, s.step, s.loss, loss[i], s.error, error[i], s.lr, s.seconds
                ));
            }
        }
        csv
    }
}

fn to_json<T: Serialize>(value: &T) -> Result<String> {
    serde_json::to_string_pretty(value).map_err(|e| Error::Input(format!("writing JSON: {e}")))
}

/// A run's end, as the final table shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunSummary {
    pub id: String,
    pub steps: usize,
    pub status: RunStatus,
    /// The running means at the last step (`None` before the first).
    pub smoothed_loss: Option<f64>,
    pub smoothed_error: Option<f64>,
    pub held_out_accuracy: Option<f64>,
    pub steps_per_second: f64,
    pub parameters: i64,
}

/// `settings.json` of a saved lab: enough to build each network again (`CifarConfig` →
/// `zoo::resnet::cifar`) and load its weights file.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SavedLab {
    pub settings: LabSettings,
    pub data: String,
    pub classes: Vec<String>,
    /// How an image becomes the input the networks learned on.
    pub normalisation: Normalisation,
    pub train_images: usize,
    pub held_out_images: usize,
    pub skipped_files: usize,
    pub runs: Vec<SavedRun>,
    pub summary: Vec<RunSummary>,
}

impl SavedLab {
    pub fn read(dir: &Path) -> Result<Self> {
        let path = dir.join("settings.json");
        let text = std::fs::read_to_string(&path).map_err(|e| Error::file(&path, e))?;
        serde_json::from_str(&text).map_err(|e| Error::file(&path, format!("not a saved lab: {e}")))
    }

    /// Run `run` as the explorer takes an architecture: its network built from its
    /// configuration, fed images the way its training images were made (`normalisation`), its
    /// classes named as the data named them. Its weights are `dir.join(&runs[run].weights)`.
    ///
    /// The explorer names architectures with `&'static str`s; a lab network's id, card and
    /// class names are made static once per distinct text (a few bytes per network opened).
    pub fn arch_spec(&self, run: usize) -> Result<ArchSpec> {
        let saved = self
            .runs
            .get(run)
            .ok_or_else(|| Error::Input(format!("the saved lab has {} runs, no run {run}", self.runs.len())))?;
        data::check_resolution(self.settings.resolution)?;
        let size = self.settings.resolution as u32;
        let (preprocess, labels) = match self.normalisation {
            Normalisation::Digits { .. } => (Preprocess::LabDigit { size }, Labels::Digits),
            Normalisation::PerChannel { mean, std } => {
                (Preprocess::Resized { size, mean, std }, Labels::Named(intern_list(&self.classes)))
            }
        };
        let id = intern(&format!("{} (lab)", saved.id));
        let status = match saved.status {
            RunStatus::Diverged { step } => format!(", diverged at step {step}"),
            RunStatus::Training | RunStatus::Finished => String::new(),
        };
        let card = Card {
            name: id,
            year: 2015,
            authors: "Kaiming He, Xiangyu Zhang, Shaoqing Ren, Jian Sun",
            paper: "Deep Residual Learning for Image Recognition (§4.2), trained in convscope's lab",
            problem: intern(&format!(
                "Trained here for {} steps{status} on {} (lr {}, seed {}).",
                saved.steps, self.data, saved.lr, self.settings.seed
            )),
            answer: if saved.config.residual {
                "Identity shortcuts around every block, as the zoo's CIFAR ResNets: switch them off to see what                  the network learned to rely on."
            } else {
                "The plain twin: the same layers without shortcuts."
            },
            top1_paper: None,
            top1_reference: None,
            reference: "convscope's lab (settings.json beside the weights)",
        };
        let side = self.settings.resolution;
        Ok(ArchSpec { id, card, input: [3, side, side], preprocess, labels, build: Build::Cifar(saved.config) })
    }
}

/// `text` as a `&'static str`, leaked once per distinct text.
fn intern(text: &str) -> &'static str {
    static SEEN: std::sync::Mutex<std::collections::BTreeSet<&'static str>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    let mut seen = SEEN.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(&kept) = seen.get(text) {
        return kept;
    }
    let leaked: &'static str = Box::leak(text.to_owned().into_boxed_str());
    seen.insert(leaked);
    leaked
}

/// A list of names as a static slice, leaked once per distinct list.
fn intern_list(names: &[String]) -> &'static [&'static str] {
    static SEEN: std::sync::Mutex<Vec<&'static [&'static str]>> = std::sync::Mutex::new(Vec::new());
    let names: Vec<&'static str> = names.iter().map(|n| intern(n)).collect();
    let mut seen = SEEN.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(&kept) = seen.iter().find(|&&kept| kept == names.as_slice()) {
        return kept;
    }
    let leaked: &'static [&'static str] = Box::leak(names.into_boxed_slice());
    seen.push(leaked);
    leaked
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SavedRun {
    pub id: String,
    pub net: NetSpec,
    pub config: CifarConfig,
    /// The weights file, relative to the saved folder.
    pub weights: String,
    pub steps: usize,
    pub status: RunStatus,
    pub lr: f64,
    pub disabled_shortcuts: Vec<String>,
    pub interventions: Vec<Intervention>,
}

impl SavedRun {
    /// The trained network, ready for the explorer.
    pub fn load(&self, dir: &Path, device: Device) -> Result<Model> {
        let path: PathBuf = dir.join(&self.weights);
        Ok(crate::weights::load(Arc::new(cifar(&self.config)), device, &path)?.0)
    }
}

#[derive(Serialize)]
struct Curves<'a> {
    id: &'a str,
    layers: Vec<&'a str>,
    smoothing: usize,
    smoothed_loss: Vec<f64>,
    smoothed_error: Vec<f64>,
    steps: &'a [StepRecord],
    held_out: &'a [HeldOut],
    interventions: &'a [Intervention],
}

/// The mean of the last `window` values (fewer at the start) at every position.
pub fn running_mean(values: &[f64], window: usize) -> Vec<f64> {
    let window = window.max(1);
    let mut sum = 0.0;
    values
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            sum += v;
            if i >= window {
                sum -= values[i - window];
            }
            sum / (i + 1).min(window) as f64
        })
        .collect()
}

fn count_correct(logits: &Tensor, labels: &Tensor) -> Result<i64> {
    logits
        .f_argmax(-1, false)
        .and_then(|predicted| predicted.f_eq_tensor(labels))
        .and_then(|hits| hits.f_sum(Kind::Int64))
        .and_then(|sum| sum.f_int64_value(&[]))
        .context(|| "counting correct predictions".into())
}

fn batch_error(logits: &Tensor, labels: &Tensor) -> Result<f64> {
    let n = labels.size().first().copied().unwrap_or(0).max(1);
    Ok(1.0 - count_correct(logits, labels)? as f64 / n as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn running_mean_averages_what_it_has_then_the_window() {
        let m = running_mean(&[1.0, 3.0, 5.0, 7.0], 2);
        assert_eq!(m, vec![1.0, 2.0, 4.0, 6.0]);
    }

    #[test]
    fn nets_parse_from_zoo_ids() {
        let net = NetSpec::parse("plain56", 8, true).unwrap();
        assert_eq!((net.depth, net.residual), (56, false));
        assert!(NetSpec::parse("resnet110", 8, true).unwrap().residual);
        assert!(NetSpec::parse("resnet21", 8, true).is_err(), "21 is not 6n+2");
        assert!(NetSpec::parse("vgg16", 8, true).is_err());
    }
}
