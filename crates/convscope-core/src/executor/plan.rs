//! What a run computes and keeps: which nodes it needs, which values it frees after their
//! last use, and which it may overwrite.

use super::fast::FastConv;
use super::{GradientMode, RunOptions};
use crate::graph::{Graph, NodeId, Op};

/// What the layers that act differently in training do in one run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Behaviour {
    pub(super) batch_norm: BatchNorm,
    /// Dropout and stochastic depth drop (at random).
    pub(super) drop: bool,
    /// The auxiliary classifiers run.
    pub(super) auxiliary: bool,
}

/// Which statistics a batch norm normalises with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum BatchNorm {
    /// Its running statistics: the network as it predicts (`model.eval()`).
    Running,
    /// The batch's own, leaving the running statistics unread and unchanged (ATen's
    /// `batch_norm(training=true)` without running statistics).
    Batch,
    /// The batch's own, folded into the running statistics with the layer's momentum
    /// (`model.train()`: training proper).
    BatchUpdatingRunning,
}

impl Behaviour {
    pub(super) const INFERENCE: Behaviour = Behaviour { batch_norm: BatchNorm::Running, drop: false, auxiliary: false };

    /// `opts.train`: everything as in training, the running statistics updated.
    pub(super) fn of(opts: &RunOptions) -> Self {
        if opts.train {
            Behaviour { batch_norm: BatchNorm::BatchUpdatingRunning, drop: true, auxiliary: true }
        } else {
            Behaviour::INFERENCE
        }
    }

    /// A gradient pass in `mode`; the auxiliary classifiers do not run in either (see
    /// `GradientMode::TrainingStep`).
    pub(super) fn of_gradient_pass(mode: GradientMode, dropout: bool) -> Self {
        match mode {
            GradientMode::Inference => Behaviour::INFERENCE,
            GradientMode::TrainingStep => Behaviour { batch_norm: BatchNorm::Batch, drop: dropout, auxiliary: false },
        }
    }
}

/// How one run treats its values.
pub(super) struct RunPlan<'a> {
    /// Keep every node's output (capture, gradients); otherwise free each after its last use.
    pub(super) keep_all: bool,
    /// Which inputs activations may overwrite.
    pub(super) in_place: InPlace,
    /// Per node, the convolutions of `Layout::Fast`: the input and the convolutions run
    /// channels-last, and batch norms folded into their convolution pass its output on.
    pub(super) fast_convs: Option<&'a [Option<FastConv>]>,
    /// Run only what this node needs (default: the logits).
    pub(super) until: Option<NodeId>,
    pub(super) behaviour: Behaviour,
}

impl RunPlan<'_> {
    /// Every output kept, nothing overwritten: a capture, or a gradient pass's forward.
    pub(super) fn keep_all(behaviour: Behaviour) -> RunPlan<'static> {
        RunPlan { keep_all: true, in_place: InPlace::Never, fast_convs: None, until: None, behaviour }
    }
}

/// Which inputs an activation may overwrite, when no other node reads them and their memory
/// is their own (torchvision's `inplace=True`: one allocation and pass fewer).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum InPlace {
    /// None: autograd needs them, or the caller keeps them.
    Never,
    /// Any: nothing is kept (plain forward).
    Any,
    /// Those a capture can make again bit for bit from what it keeps (`outputs::Recipe`).
    Remakeable,
}

/// Whether `eval_node` gives `op` a tensor of its own rather than a view or the input itself,
/// so overwriting it cannot change another value.
pub(super) fn makes_new_tensor(op: &Op, residual_off: bool) -> bool {
    match op {
        Op::Conv2d(_)
        | Op::BatchNorm2d { .. }
        | Op::Linear { .. }
        | Op::Activation(_)
        | Op::MaxPool2d(_)
        | Op::AvgPool2d(_)
        | Op::AdaptiveAvgPool2d { .. }
        | Op::ScaledAdd { .. }
        | Op::Concat
        | Op::Scale
        | Op::LocalResponseNorm { .. }
        | Op::ChannelAffine { .. } => true,
        Op::Add => !residual_off,
        // Views or the input itself (and `contiguous` may return its input unchanged).
        Op::Input { .. }
        | Op::Dropout { .. }
        | Op::StochasticDepth { .. }
        | Op::Flatten
        | Op::ChannelShuffle { .. }
        | Op::ChannelSlice { .. }
        | Op::ZeroPad { .. } => false,
    }
}

/// Which nodes a run needs, how many needed nodes read each value and where it is read last,
/// so plain forward can free activations as early as PyTorch does.
pub(super) struct Schedule {
    pub(super) needed: Vec<bool>,
    pub(super) uses: Vec<u32>,
    pub(super) last_use: Vec<NodeId>,
}

impl Schedule {
    /// The run that computes `output` (and with `auxiliary`, the auxiliary classifiers).
    pub(super) fn new(graph: &Graph, disabled: &[bool], auxiliary: bool, output: NodeId) -> Self {
        let n = graph.nodes.len();
        let mut needed = vec![false; n];
        needed[output] = true;
        if auxiliary {
            for &aux in &graph.aux_outputs {
                needed[aux] = true;
            }
        }
        let mut last_use = vec![0; n];
        let mut uses = vec![0; n];
        for id in (0..n).rev() {
            if !needed[id] {
                continue;
            }
            let node = &graph.nodes[id];
            for (i, edge) in node.inputs.iter().enumerate() {
                // A switched-off merge ignores its shortcut, so the shortcut path is not run.
                if disabled[id] && node.op.is_residual_merge() && i == 1 {
                    continue;
                }
                needed[edge.from] = true;
                uses[edge.from] += 1;
                last_use[edge.from] = last_use[edge.from].max(id);
            }
        }
        Self { needed, uses, last_use }
    }
}
