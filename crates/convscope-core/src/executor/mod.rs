//! Runs a graph on libtorch in three ways: plain forward, forward keeping every node's
//! output, and forward + backward giving the gradient norm of every node and parameter. A
//! gradient pass runs in one of two `GradientMode`s (batch norm with its running statistics,
//! or with the batch's, as one step of training) and differentiates an `Objective` (the
//! cross-entropy, or the target's logit).
//!
//! A `Model` owns its tensors and is `Send` but not `Sync`, like a tch module: the GUI keeps
//! it on a worker thread.
//!
//! Here the `Model` API; `plan` decides what a run computes, keeps and overwrites,
//! `interpret` carries the nodes out on libtorch, `fast` is plain forward's channels-last
//! layout with batch norms folded in, `init` the reference's initialisation.

mod fast;
mod gradients;
mod init;
mod interpret;
mod outputs;
mod plan;
mod sliced;

use std::sync::{Arc, Mutex};

use tch::{Device, Tensor};

use crate::error::{Error, Result, TorchContext};
use crate::graph::{Graph, NodeId};

use fast::{FastConv, MadeFrom, batch_norm_after};
use init::{finish_param, init_param, placed_params};
pub use outputs::Outputs;
use plan::{Behaviour, InPlace, RunPlan, Schedule};
pub use sliced::ChannelTail;

/// Where the weights of a model came from; every output says so.
#[derive(Clone, Debug, PartialEq)]
pub enum WeightsOrigin {
    Random { seed: i64 },
    File(std::path::PathBuf),
}

impl std::fmt::Display for WeightsOrigin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WeightsOrigin::Random { seed } => write!(f, "random weights (seed {seed})"),
            WeightsOrigin::File(path) => write!(f, "weights from {}", path.display()),
        }
    }
}

/// Per-run switches.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// Residual merges whose shortcut is switched off for this run.
    pub disabled_residuals: Vec<NodeId>,
    /// Training proper (`train::train`): batch norm normalises with the batch's statistics and
    /// folds them into its running statistics, dropout drops, auxiliary classifiers run. A
    /// gradient pass ignores it: its `GradientMode` says how the layers behave.
    pub train: bool,
    /// The memory layout of a plain forward pass. Capturing and gradient runs always use
    /// `Layout::Reference`: what the explorer shows is PyTorch's own numbers, bit for bit.
    pub layout: Layout,
}

/// How a plain forward pass lays out its activations and convolution weights.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Layout {
    /// On the CPU, channels-last (N×H×W×C strides, PyTorch's `channels_last`), where oneDNN's
    /// convolutions run about a fifth faster than on NCHW on this project's machines (README,
    /// Benchmarks), with each batch norm that alone reads a convolution folded into it. The
    /// kernels sum in another order, so logits agree with the reference within 1e-4 (the
    /// parity tests check every architecture), not bit for bit. On CUDA, the same as
    /// `Reference`.
    #[default]
    Fast,
    /// torchvision's default NCHW: the kernels PyTorch's `model(x)` runs, bit for bit.
    Reference,
}

/// Every node's output from one forward pass, and the logits.
pub struct Capture {
    pub outputs: Outputs,
    pub logits: Tensor,
}

/// How a gradient pass runs the layers that act differently in training: which question
/// its gradient answers. Serialised as its `id`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GradientMode {
    /// Batch norm normalises with its running statistics, dropout and stochastic depth pass
    /// everything: `model.eval()`. The right question for trained weights; on random ones the
    /// running statistics are untrained (mean 0, variance 1), batch norm does nothing, and
    /// activations grow or shrink freely through depth.
    #[default]
    Inference,
    /// One step of training at these weights: batch norm normalises with the batch's own
    /// statistics (the running statistics are neither read nor updated, so the model is the
    /// same afterwards), dropout and stochastic depth pass everything unless asked
    /// (`GradientOptions::dropout`), and the auxiliary classifiers of GoogLeNet and
    /// Inception v3 do not run: the gradient shown is the main output's alone, as in the
    /// inference mode, so the two modes differ in batch norm only. This is the gradient of
    /// He et al.'s figures, and what the residual switches are compared in.
    #[serde(rename = "training")]
    TrainingStep,
}

impl GradientMode {
    pub const ALL: [GradientMode; 2] = [GradientMode::Inference, GradientMode::TrainingStep];

    /// How the command line and JSON name it: `inference`, `training`.
    pub fn id(self) -> &'static str {
        match self {
            GradientMode::Inference => "inference",
            GradientMode::TrainingStep => "training",
        }
    }

    pub fn parse(text: &str) -> Result<Self> {
        match text.trim().to_lowercase().as_str() {
            "inference" | "eval" => Ok(GradientMode::Inference),
            "training" | "train" | "training-step" => Ok(GradientMode::TrainingStep),
            other => Err(Error::Input(format!("unknown gradient mode {other:?}: use inference or training"))),
        }
    }

    /// A short name for a switch: "Inference", "Training step".
    pub fn label(self) -> &'static str {
        match self {
            GradientMode::Inference => "Inference",
            GradientMode::TrainingStep => "Training step",
        }
    }

    /// What the mode's gradient tells, in words for the user.
    pub fn meaning(self) -> &'static str {
        match self {
            GradientMode::Inference => {
                "How does this prediction depend on each layer? Batch norm uses its running statistics, \
                 dropout is off: the network as it predicts."
            }
            GradientMode::TrainingStep => {
                "How would one step of training reach each layer? Batch norm normalises with the batch's \
                 own statistics (the model is left unchanged), dropout is off: the gradient of He et al.'s \
                 figures, where residual connections matter."
            }
        }
    }
}

/// What a gradient pass differentiates. Serialised as its `id`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Objective {
    /// The cross-entropy of each sample's target class, averaged over the batch: a training
    /// step's loss. A confident softmax can saturate it: its gradient then underflows to
    /// exactly zero (`GradientReport::saturated`).
    #[default]
    #[serde(rename = "loss")]
    CrossEntropy,
    /// The target class's logit itself, averaged over the batch: how each layer moves that
    /// score. It never saturates.
    Logit,
}

impl Objective {
    /// How the command line and JSON name it: `loss`, `logit`.
    pub fn id(self) -> &'static str {
        match self {
            Objective::CrossEntropy => "loss",
            Objective::Logit => "logit",
        }
    }

    pub fn parse(text: &str) -> Result<Self> {
        match text.trim().to_lowercase().as_str() {
            "loss" | "cross-entropy" | "cross_entropy" => Ok(Objective::CrossEntropy),
            "logit" => Ok(Objective::Logit),
            other => Err(Error::Input(format!("unknown objective {other:?}: use loss or logit"))),
        }
    }

    /// In words: "the cross-entropy loss", "the target's logit".
    pub fn describe(self) -> &'static str {
        match self {
            Objective::CrossEntropy => "the cross-entropy loss",
            Objective::Logit => "the target's logit",
        }
    }
}

/// The class each sample of a gradient pass is differentiated for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Targets {
    /// Every sample: this class, or where `None` each sample's own predicted class.
    All(Option<i64>),
    /// One per sample; `None`: that sample's predicted class.
    PerSample(Vec<Option<i64>>),
}

/// How a gradient pass runs and what it differentiates.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct GradientOptions {
    pub mode: GradientMode,
    pub objective: Objective,
    /// In a training step, dropout and stochastic depth drop at random as in training (two
    /// passes then differ). Ignored in inference.
    pub dropout: bool,
}

pub struct GradientReport {
    pub logits: Tensor,
    /// The class differentiated for, per sample.
    pub targets: Vec<i64>,
    /// The cross-entropy of the targets, averaged over the batch (whatever the objective).
    pub loss: f64,
    /// The targets' logits, averaged over the batch (whatever the objective).
    pub logit: f64,
    pub options: GradientOptions,
    /// The objective is the cross-entropy and its gradient underflowed to exactly zero at the
    /// logits, so everywhere: the softmax is saturated at the targets. `Objective::Logit`
    /// gives a gradient that means something.
    pub saturated: bool,
    /// L2 norm of d objective / d output, per node (`None` where the node took no part).
    pub node_grad_norms: Vec<Option<f64>>,
    /// L2 norm of d objective / d parameter, per entry of `graph.params` (`None` for buffers
    /// and for the parameters of nodes the run did not compute: a switched-off shortcut's
    /// projection, an auxiliary classifier).
    pub param_grad_norms: Vec<Option<f64>>,
    pub outputs: Vec<Option<Tensor>>,
}

pub struct Model {
    graph: Arc<Graph>,
    /// Parallel to `graph.params`. Trainable ones are autograd leaves, like nn.Parameter.
    params: Vec<Tensor>,
    /// Index of each node's first tensor in `params`.
    first_param: Vec<usize>,
    device: Device,
    origin: WeightsOrigin,
    /// Plain forward's convolutions in the fast layout, per node, made on first use, each with
    /// the in-place versions of the tensors it was made from, so one a training step changed
    /// in place is made again.
    fast_convs: Mutex<Vec<Option<MadeFrom<FastConv>>>>,
    /// Per convolution, the batch norm that alone reads it, which plain forward folds in.
    batch_norm_after: Vec<Option<(NodeId, f64)>>,
}

impl Model {
    /// A model with the reference's random initialisation, seeded.
    pub fn random(graph: Arc<Graph>, device: Device, seed: i64) -> Result<Self> {
        check_device(device)?;
        let _guard = tch::no_grad_guard();
        let params = seeded(seed, || {
            graph
                .params
                .iter()
                .map(|spec| init_param(&graph, spec).and_then(|t| finish_param(t, spec, device)))
                .collect::<Result<Vec<_>>>()
        })?;
        Ok(Self::assemble(graph, params, device, WeightsOrigin::Random { seed }))
    }

    /// A model holding `values`, parallel to `graph.params` (the caller has checked keys,
    /// shapes and dtypes): loading a file pays for no initialisation it would overwrite.
    pub(crate) fn from_params(
        graph: Arc<Graph>,
        values: Vec<Tensor>,
        device: Device,
        origin: WeightsOrigin,
    ) -> Result<Self> {
        check_device(device)?;
        let _guard = tch::no_grad_guard();
        let params = placed_params(&graph, values, device)?;
        Ok(Self::assemble(graph, params, device, origin))
    }

    fn assemble(graph: Arc<Graph>, params: Vec<Tensor>, device: Device, origin: WeightsOrigin) -> Self {
        let mut first_param = Vec::with_capacity(graph.nodes.len());
        let mut next = 0;
        for id in 0..graph.nodes.len() {
            first_param.push(next);
            next += graph.params[next..].iter().take_while(|p| p.node == id).count();
        }
        let fast_convs = Mutex::new((0..graph.nodes.len()).map(|_| None).collect());
        let batch_norm_after = batch_norm_after(&graph);
        Self { graph, params, first_param, device, origin, fast_convs, batch_norm_after }
    }

    pub fn graph(&self) -> &Arc<Graph> {
        &self.graph
    }

    pub fn device(&self) -> Device {
        self.device
    }

    pub fn origin(&self) -> &WeightsOrigin {
        &self.origin
    }

    pub fn params(&self) -> &[Tensor] {
        &self.params
    }

    /// Replaces every tensor at once; the caller has checked keys, shapes and dtypes.
    pub(crate) fn replace_params(&mut self, values: Vec<Tensor>, origin: WeightsOrigin) -> Result<()> {
        let _guard = tch::no_grad_guard();
        self.params = placed_params(&self.graph, values, self.device)?;
        self.origin = origin;
        self.forget_fast_convs();
        Ok(())
    }

    /// Moves the weights to another device; on failure the model stays where it was.
    pub fn to_device(&mut self, device: Device) -> Result<()> {
        check_device(device)?;
        let _guard = tch::no_grad_guard();
        let moved = self
            .params
            .iter()
            .zip(&self.graph.params)
            .map(|(t, spec)| finish_param(t.f_detach().context(|| spec.key.clone())?, spec, device))
            .collect::<Result<Vec<_>>>()?;
        self.params = moved;
        self.device = device;
        self.forget_fast_convs();
        Ok(())
    }

    /// Plain forward under `no_grad` in `opts.layout`, freeing each value after its last use.
    pub fn forward(&self, input: &Tensor, opts: &RunOptions) -> Result<Tensor> {
        let _guard = tch::no_grad_guard();
        let fast = (opts.layout == Layout::Fast && !opts.train && self.device == Device::Cpu)
            .then(|| self.fast_convs())
            .transpose()?;
        let plan = RunPlan {
            keep_all: false,
            in_place: InPlace::Any,
            fast_convs: fast.as_deref(),
            until: None,
            behaviour: Behaviour::of(opts),
        };
        let mut values = self.execute(input, opts, &plan)?;
        take_output(&mut values, self.graph.output)
    }

    /// Forward recording the autograd graph, for a training step.
    pub fn forward_with_grad(&self, input: &Tensor, opts: &RunOptions) -> Result<Tensor> {
        let plan = RunPlan {
            keep_all: false,
            in_place: InPlace::Never,
            fast_convs: None,
            until: None,
            behaviour: Behaviour::of(opts),
        };
        let mut values = self.execute(input, opts, &plan)?;
        take_output(&mut values, self.graph.output)
    }

    /// One node's output, in the reference layout, running only the nodes it depends on and
    /// keeping nothing else: what the explorer shows when it does not keep every output.
    pub fn forward_to(&self, input: &Tensor, opts: &RunOptions, node: NodeId) -> Result<Tensor> {
        if node >= self.graph.nodes.len() {
            return Err(Error::Input(format!("{} has no node {node}", self.graph.arch)));
        }
        let _guard = tch::no_grad_guard();
        let plan = RunPlan {
            keep_all: false,
            in_place: InPlace::Any,
            fast_convs: None,
            until: Some(node),
            behaviour: Behaviour::of(opts),
        };
        let mut values = self.execute(input, opts, &plan)?;
        take_output(&mut values, node)
    }

    /// `forward_to` recording the autograd graph (nothing overwritten in place): what feature
    /// visualisation differentiates, from one node back to an input that requires grad.
    pub fn forward_to_with_grad(&self, input: &Tensor, opts: &RunOptions, node: NodeId) -> Result<Tensor> {
        if node >= self.graph.nodes.len() {
            return Err(Error::Input(format!("{} has no node {node}", self.graph.arch)));
        }
        let plan = RunPlan {
            keep_all: false,
            in_place: InPlace::Never,
            fast_convs: None,
            until: Some(node),
            behaviour: Behaviour::of(opts),
        };
        let mut values = self.execute(input, opts, &plan)?;
        take_output(&mut values, node)
    }

    /// Whether a run with `opts` computes `node` on its way to the logits (not a switched-off
    /// shortcut's branch, nor an auxiliary classifier outside training).
    pub fn runs_node(&self, node: NodeId, opts: &RunOptions) -> bool {
        let auxiliary = Behaviour::of(opts).auxiliary;
        let schedule = Schedule::new(&self.graph, &self.switched_off(opts), auxiliary, self.graph.output);
        schedule.needed.get(node).copied().unwrap_or(false)
    }

    /// Forward keeping every node's output, in the reference layout. Activations overwrite
    /// the batch norms and residual sums they alone read, as in a plain forward; those
    /// outputs are made again, bit for bit, when asked for (`Outputs::get`).
    pub fn forward_capture(&self, input: &Tensor, opts: &RunOptions) -> Result<Capture> {
        let _guard = tch::no_grad_guard();
        let plan = RunPlan { in_place: InPlace::Remakeable, ..RunPlan::keep_all(Behaviour::of(opts)) };
        let outputs = self.execute_remaking(input, opts, &plan)?;
        let logits = outputs.held(self.graph.output).map(Tensor::shallow_clone).ok_or_else(not_computed_output)?;
        Ok(Capture { outputs, logits })
    }

    /// Forward in the reference layout keeping every node's output with its autograd graph
    /// (nothing overwritten in place), so that anything can be differentiated with respect to
    /// any node's output, or to an input that requires grad: what attribution maps need.
    /// Asks `interrupt` before every node; `None` when it said stop.
    pub fn forward_autograd_capture(
        &self,
        input: &Tensor,
        opts: &RunOptions,
        interrupt: &dyn Fn() -> bool,
    ) -> Result<Option<Capture>> {
        let plan = RunPlan::keep_all(Behaviour::of(opts));
        let Some(outputs) = self.execute_interruptible(input, opts, &plan, interrupt)? else {
            return Ok(None);
        };
        let logits = outputs[self.graph.output].as_ref().map(Tensor::shallow_clone).ok_or_else(not_computed_output)?;
        Ok(Some(Capture { outputs: Outputs::from_tensors(outputs), logits }))
    }

    /// Forward + backward of the cross-entropy loss for `target` (default: each sample's
    /// predicted class) in inference mode, giving the gradient norm of every node's output and
    /// parameter.
    pub fn gradients(&self, input: &Tensor, target: Option<i64>, opts: &RunOptions) -> Result<GradientReport> {
        self.gradients_interruptible(input, target, opts, &|| false)?.ok_or_else(interrupted)
    }

    /// `gradients`, asking `interrupt` before every node of the forward pass and once more
    /// before the backward pass; `None` when it said stop. libtorch cannot stop a backward
    /// pass midway, so a caller waits at most for one.
    pub fn gradients_interruptible(
        &self,
        input: &Tensor,
        target: Option<i64>,
        opts: &RunOptions,
        interrupt: &dyn Fn() -> bool,
    ) -> Result<Option<GradientReport>> {
        self.gradient_pass(input, &Targets::All(target), opts, &GradientOptions::default(), interrupt)
    }

    /// Forward + backward of `pass.objective` in `pass.mode`, for `targets`, giving the
    /// gradient norm of every node's output and parameter; asks `interrupt` as
    /// `gradients_interruptible` does. `opts.train` and `opts.layout` play no part: the mode
    /// says how the layers behave, and the layout is always the reference's.
    pub fn gradient_pass(
        &self,
        input: &Tensor,
        targets: &Targets,
        opts: &RunOptions,
        pass: &GradientOptions,
        interrupt: &dyn Fn() -> bool,
    ) -> Result<Option<GradientReport>> {
        self.run_gradient_pass(input, targets, opts, pass, interrupt)
    }

    /// Checks an `N×C×H×W` input against the graph before any libtorch call, so a wrong
    /// size is reported with the node it breaks rather than a libtorch message.
    pub fn check_input(&self, input: &Tensor) -> Result<()> {
        self.check_input_for(input, false)
    }

    /// `check_input` for a run that does (`auxiliary`) or does not run the auxiliary
    /// classifiers: outside training they are skipped, as the reference skips them, so an
    /// input too small for them alone is fine.
    pub(super) fn check_input_for(&self, input: &Tensor, auxiliary: bool) -> Result<()> {
        let size = input.size();
        let &[_, c, h, w] = size.as_slice() else {
            return Err(Error::Input(format!("expected an N×C×H×W tensor, got shape {size:?}")));
        };
        let channels = self.graph.input_channels();
        if c != channels {
            return Err(Error::Input(format!("{} takes {channels} input channels, got {c}", self.graph.arch)));
        }
        let report = self.graph.infer_shapes(h, w)?;
        match report.aux_error {
            Some(reason) if auxiliary => Err(Error::Input(format!(
                "the auxiliary classifiers, which run in training, need a larger input: {reason}"
            ))),
            _ => Ok(()),
        }
    }

    /// Per node, whether `opts` switches its residual shortcut off (ids past the graph, from
    /// another model's switches, switch nothing).
    fn switched_off(&self, opts: &RunOptions) -> Vec<bool> {
        let n = self.graph.nodes.len();
        let mut disabled = vec![false; n];
        for &id in opts.disabled_residuals.iter().filter(|&&id| id < n) {
            disabled[id] = true;
        }
        disabled
    }
}

/// libtorch's default generator is one per process, so two threads that each seed it and draw
/// can interleave and draw each other's numbers (two seeded models made side by side came out
/// different from the same models made one after the other). Every seeded draw of the engine,
/// and of its tests, runs inside this: `tch::manual_seed(seed)`, then `draw`, with no other
/// `seeded` call in between. A draw outside it (an unseeded `randn`, dropout in a training
/// run) can still land in between: code that must reproduce a seeded draw (the parity tests'
/// regenerated weights) needs every other draw of its process inside `seeded` too. Not
/// reentrant: `draw` must not call `seeded` (nor `Model::random`).
pub fn seeded<T>(seed: i64, draw: impl FnOnce() -> T) -> T {
    static GENERATOR: Mutex<()> = Mutex::new(());
    let _only_us = GENERATOR.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    tch::manual_seed(seed);
    draw()
}

pub fn check_device(device: Device) -> Result<()> {
    match device {
        Device::Cuda(i) if !tch::Cuda::is_available() => Err(Error::Device(format!(
            "CUDA device {i} was asked for, but no CUDA device is available on this machine (use --device cpu)"
        ))),
        Device::Cuda(i) if i >= tch::Cuda::device_count() as usize => {
            Err(Error::Device(format!("CUDA device {i} does not exist ({} present)", tch::Cuda::device_count())))
        }
        Device::Mps | Device::Vulkan => Err(Error::Device("only CPU and CUDA are supported".into())),
        _ => Ok(()),
    }
}

fn interrupted() -> Error {
    Error::Input("the run was interrupted".into())
}

fn take_output(values: &mut [Option<Tensor>], output: NodeId) -> Result<Tensor> {
    values[output].take().ok_or_else(not_computed_output)
}

fn not_computed_output() -> Error {
    Error::Input("the output was not computed".into())
}
