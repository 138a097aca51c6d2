//! What the app and the worker say to each other: requests, replies and their payloads.

use std::path::PathBuf;
use std::sync::Arc;

use tch::Device;

use crate::attribution::{self, ExplanationData};
use crate::compare::Comparison;
use crate::engine::batch::BatchSummary;
use crate::engine::{GradientSettings, Prediction, ResolvedGradientSettings, WeightsChoice};
use crate::executor::GradientMode;
use crate::graph::NodeId;
use crate::latency::{Machine, Rounds, Timing};
use crate::zoo::ArchSpec;

/// An image as the user gave it: a file, bytes (a drop without a readable path), or pixels
/// already decoded (a pasted image).
#[derive(Clone, Debug)]
pub enum ImageInput {
    Path(PathBuf),
    Bytes {
        name: String,
        bytes: Arc<[u8]>,
    },
    /// 8-bit RGBA, not premultiplied, row after row.
    Pixels {
        name: String,
        size: [u32; 2],
        rgba: Arc<[u8]>,
    },
}

impl ImageInput {
    pub fn name(&self) -> String {
        match self {
            ImageInput::Path(path) => {
                path.file_name().map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into_owned())
            }
            ImageInput::Bytes { name, .. } | ImageInput::Pixels { name, .. } => name.clone(),
        }
    }

    pub fn path(&self) -> Option<&std::path::Path> {
        match self {
            ImageInput::Path(path) => Some(path),
            ImageInput::Bytes { .. } | ImageInput::Pixels { .. } => None,
        }
    }
}

/// What the UI asks of the worker.
#[derive(Clone, Debug)]
pub enum Request {
    /// Builds the architecture with its weights; the previous model serves until it is ready.
    Load { spec: Box<ArchSpec>, weights: WeightsChoice, device: Device },
    /// Moves the model to another device.
    Device(Device),
    /// Decodes, preprocesses and runs an image, keeping outputs for the layer view as asked;
    /// the output of `show`, the node on view, comes back with the prediction, so the top-5
    /// and the feature maps land in one reply and one frame.
    Classify { image: ImageInput, disabled: Vec<NodeId>, retention: Retention, show: Option<NodeId> },
    /// Forward + backward on the current image (alone or in a batch, as `settings` say; their
    /// `None`s take the defaults for the loaded weights): gradient norms along depth.
    /// `with_image`: sent together with a `Classify`, to follow it without a round trip
    /// through the UI; skipped, answered as dropped, when that image fails.
    Gradients {
        disabled: Vec<NodeId>,
        target: Option<i64>,
        retention: Retention,
        settings: GradientSettings,
        with_image: bool,
    },
    /// An attribution map of the current image (`attribution::explain`), with progress in
    /// `WorkerHandle::attribution_progress`; it yields to a new model, image or gradient pass
    /// and to a newer attribution request, and stops at `WorkerHandle::cancel_attribution`.
    Attribution { disabled: Vec<NodeId>, settings: attribution::Settings },
    /// One node's output from the last run.
    Activation { node: NodeId },
    /// What channels of `node` look for (`featvis::visualize`, one image each, together), with
    /// progress and a preview
    /// in `WorkerHandle::featvis_progress`; it yields as an attribution does and stops at
    /// `WorkerHandle::cancel_featvis`.
    FeatureVis { node: NodeId, channels: Vec<i64>, settings: crate::featvis::Settings },
    /// The images of `source` on which each of `channels` peaks highest, cropped to what the
    /// peak sees (`featvis::examples`); it yields as a feature visualisation does.
    TopExamples { node: NodeId, channels: Vec<i64>, source: crate::featvis::examples::Source },
    /// Runs one image through two architectures (installed weights, else random) and sets
    /// them side by side (`compare`).
    Compare { specs: Box<[ArchSpec; 2]>, image: ImageInput, device: Device },
    /// Times the forward pass of each architecture of the job in turn (`latency`). The worker
    /// times one per turn and puts the job back, so other requests pass in between; each
    /// timing comes back as it lands.
    Measure(Box<MeasureJob>),
    /// Stops a measurement: it replaces the job waiting its next turn.
    CancelMeasure,
}

/// A measurement of this machine under way.
#[derive(Clone, Debug)]
pub struct MeasureJob {
    /// The architectures to time, in order.
    pub ids: Vec<&'static str>,
    pub device: Device,
    pub rounds: Rounds,
    /// Where each timing is recorded as it lands (`paths::latency_cache`); `None` keeps none.
    pub cache: Option<PathBuf>,
    /// How many of `ids` are timed: the worker puts the job back with this advanced.
    pub done: usize,
}

/// Where a measurement stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MeasureState {
    Running,
    Finished,
    Cancelled,
}

/// One step of a measurement.
#[derive(Clone, Debug)]
pub struct MeasureProgress {
    /// What the timings depend on, as the worker saw it.
    pub machine: Machine,
    /// The architecture just timed: its timing, or why it could not be timed.
    pub timed: Option<(&'static str, Result<Timing, String>)>,
    pub done: usize,
    pub total: usize,
    pub state: MeasureState,
    /// Why a timing could not be written to the cache, if it could not.
    pub cache_error: Option<String>,
}

/// Which outputs of a run the worker keeps for the layer view. They stay on the model's
/// device either way; only the node on show is copied to the CPU.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Retention {
    /// Every node's output: picking another layer shows it at once.
    #[default]
    EveryLayer,
    /// Only the node on show: picking another runs the network again, up to that node.
    /// EfficientNet-B7's outputs at 600×600 take 4 GB; this keeps one of them (a gradient
    /// pass still holds them all while it runs, as autograd needs them).
    ViewedLayer,
}

/// Kinds of request, in the order one drained batch is worked through: a new model first,
/// then the image on it, then what depends on the image.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RequestKind {
    Load,
    Device,
    Classify,
    Gradients,
    Attribution,
    Activation,
    FeatureVis,
    TopExamples,
    Compare,
    /// A measurement and its cancellation: the newest of the two wins.
    Measure,
}

impl Request {
    pub fn kind(&self) -> RequestKind {
        match self {
            Request::Load { .. } => RequestKind::Load,
            Request::Device(_) => RequestKind::Device,
            Request::Classify { .. } => RequestKind::Classify,
            Request::Gradients { .. } => RequestKind::Gradients,
            Request::Attribution { .. } => RequestKind::Attribution,
            Request::Activation { .. } => RequestKind::Activation,
            Request::FeatureVis { .. } => RequestKind::FeatureVis,
            Request::TopExamples { .. } => RequestKind::TopExamples,
            Request::Compare { .. } => RequestKind::Compare,
            Request::Measure(_) | Request::CancelMeasure => RequestKind::Measure,
        }
    }
}

/// Milliseconds spent in each stage of the last run.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize)]
pub struct Timings {
    pub decode_ms: Option<f64>,
    pub preprocess_ms: Option<f64>,
    pub forward_ms: Option<f64>,
    /// Copying the output on view to the CPU for the feature maps.
    pub activation_ms: Option<f64>,
    pub backward_ms: Option<f64>,
}

#[derive(Clone, Debug)]
pub struct Loaded {
    pub id: &'static str,
    pub origin: String,
    /// The gradient mode these weights take by default (`engine::default_gradient_mode`).
    pub gradient_mode: GradientMode,
    pub warnings: Vec<String>,
    pub device: Device,
    pub load_ms: f64,
}

/// The input as the network sees it, de-normalised to 8-bit RGB.
#[derive(Clone, Debug)]
pub struct Preview {
    pub size: [usize; 2],
    pub rgb: Vec<u8>,
}

#[derive(Clone, Debug)]
pub struct Predicted {
    pub arch: &'static str,
    pub image: ImageInput,
    /// The residual merges the run skipped.
    pub disabled: Vec<NodeId>,
    pub top5: Vec<Prediction>,
    pub preview: Preview,
    pub timings: Timings,
    pub device: Device,
    /// The output of the node the request asked to show; an error reading it is said here,
    /// not in place of the prediction.
    pub activation: Option<Result<ActivationData, String>>,
}

#[derive(Clone, Debug)]
pub struct GradientFlow {
    pub arch: &'static str,
    pub disabled: Vec<NodeId>,
    /// The class asked for, `None` for the prediction.
    pub requested_target: Option<i64>,
    /// The class differentiated for, for the image.
    pub target: i64,
    /// The cross-entropy over the batch, whatever the objective.
    pub loss: f64,
    /// The targets' logits averaged over the batch, whatever the objective.
    pub logit: f64,
    /// The mode, objective and batch the pass ran with, defaults resolved.
    pub settings: ResolvedGradientSettings,
    /// Which batch it ran on: a sentence and counts.
    pub batch: BatchSummary,
    /// The cross-entropy's gradient underflowed to exactly zero everywhere (a saturated
    /// softmax): the curve says nothing, and `Objective::Logit` would.
    pub saturated: bool,
    /// Per node, in execution order: the norm over the whole batch.
    pub node_norms: Vec<Option<f64>>,
    /// Per node: the L2 norm over all its trainable parameters' gradients.
    pub param_norms: Vec<Option<f64>>,
    /// The image's top classes in this pass (in a training step, with the batch's statistics).
    pub top5: Vec<Prediction>,
    /// `preprocess_ms`: building the batch (`None`: it was kept from the last pass);
    /// `backward_ms`: the forward and backward pass.
    pub timings: Timings,
    pub device: Device,
}

#[derive(Clone, Debug)]
pub struct ActivationData {
    pub arch: &'static str,
    pub node: NodeId,
    /// One sample's shape: `[C, H, W]` or `[F]`.
    pub shape: Vec<i64>,
    pub values: Vec<f32>,
}

/// An attribution map of the current image, and what it was asked for with.
#[derive(Clone, Debug)]
pub struct Attributed {
    pub arch: &'static str,
    pub disabled: Vec<NodeId>,
    pub settings: attribution::Settings,
    pub explanation: ExplanationData,
    /// The input the maps are over, as the network saw it.
    pub preview: Preview,
    pub compute_ms: f64,
}

/// How far the attribution under way has come (`WorkerHandle::attribution_progress`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AttributionProgress {
    /// The request it answers.
    pub seq: u64,
    pub progress: attribution::Progress,
}

#[derive(Clone, Debug)]
pub enum Payload {
    Loaded(Loaded),
    Moved(Device),
    Predicted(Box<Predicted>),
    Gradients(Box<GradientFlow>),
    Attributed(Box<Attributed>),
    Activation(Box<ActivationData>),
    Visualized(Box<super::Visualized>),
    TopExamples(Box<super::TopExamplesFound>),
    Compared(Box<Comparison>),
    Measured(Box<MeasureProgress>),
}

/// The answer to one request; errors are sentences for the user.
#[derive(Debug)]
pub struct Reply {
    pub seq: u64,
    pub kind: RequestKind,
    pub result: Result<Payload, ReplyError>,
}

#[derive(Clone, Debug)]
pub struct ReplyError {
    pub message: String,
    /// The image that failed, for a failed classification.
    pub image: Option<String>,
}

/// What the worker sends back: an answer, or word that a request was dropped unanswered
/// (its model was replaced before its turn), so the handle stops waiting for it.
pub(crate) enum Outgoing {
    Reply(Reply),
    Dropped { seq: u64, kind: RequestKind },
}
