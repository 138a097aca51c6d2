//! Attribution maps: where in the image, or in a layer, the network found its answer. Each
//! method is defined as captum 0.9.0 defines it (pytorch-grad-cam 1.5.7 for Grad-CAM++, LayerCAM
//! and the displayed Grad-CAM), so that a notebook and convscope agree; the attribution tests
//! compare every map with theirs (tests/fixtures/make_attribution_fixtures.py).
//!
//! - `cam`: Grad-CAM, Grad-CAM++ and LayerCAM at any node with a spatial output, several nodes
//!   (the end of every stage, `stages`) in one backward pass.
//! - `guided`: Guided Backprop, a reverse pass over the graph node by node with captum's rule
//!   at every ReLU (tch has no custom autograd functions), and Guided Grad-CAM.
//! - `gradient`: Saliency, SmoothGrad and Integrated Gradients, the input gradients of batches
//!   of images processed in chunks that fit `MEMORY_BUDGET`.
//! - `occlusion`: batched forward passes without gradients.
//! - `display`: the maps as people look at them (upsampled, normalised, over the image).
//! - `export`: the overlay as a PNG, the raw maps as safetensors or .npy.
//!
//! `explain` runs one method for one image; it reports progress between chunks (IG steps,
//! SmoothGrad samples, occlusion windows, guided nodes) and asks whether to stop, so that a
//! worker thread can show a bar and drop a computation the user no longer wants.

mod cam;
pub mod display;
pub mod export;
mod gradient;
mod guided;
mod occlusion;

use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

use crate::error::{Error, Result, TorchContext};
use crate::executor::{Model, RunOptions};
use crate::graph::{Graph, NodeId, Op};
use crate::preprocess::Preprocess;
use crate::zoo::Labels;

pub use gradient::{gauss_legendre, smoothgrad_noise};

/// What a batch of chunked passes may hold in memory: a chunk of IG steps, SmoothGrad samples
/// or occlusion windows is as large as fits (`Settings::batch` overrides it).
pub const MEMORY_BUDGET: u64 = 1 << 30;
/// Never more images in one pass than this: beyond it a pass is no faster per image.
const MAX_BATCH: usize = 32;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Method {
    GradCam,
    GradCamPlusPlus,
    LayerCam,
    Saliency,
    GuidedBackprop,
    GuidedGradCam,
    IntegratedGradients,
    SmoothGrad,
    Occlusion,
}

impl Method {
    pub const ALL: [Method; 9] = [
        Method::GradCam,
        Method::GradCamPlusPlus,
        Method::LayerCam,
        Method::Saliency,
        Method::GuidedBackprop,
        Method::GuidedGradCam,
        Method::IntegratedGradients,
        Method::SmoothGrad,
        Method::Occlusion,
    ];

    /// The command line's name.
    pub fn id(self) -> &'static str {
        match self {
            Method::GradCam => "gradcam",
            Method::GradCamPlusPlus => "gradcampp",
            Method::LayerCam => "layercam",
            Method::Saliency => "saliency",
            Method::GuidedBackprop => "guided",
            Method::GuidedGradCam => "guided-gradcam",
            Method::IntegratedGradients => "ig",
            Method::SmoothGrad => "smoothgrad",
            Method::Occlusion => "occlusion",
        }
    }

    /// The name people use.
    pub fn label(self) -> &'static str {
        match self {
            Method::GradCam => "Grad-CAM",
            Method::GradCamPlusPlus => "Grad-CAM++",
            Method::LayerCam => "LayerCAM",
            Method::Saliency => "Saliency",
            Method::GuidedBackprop => "Guided Backprop",
            Method::GuidedGradCam => "Guided Grad-CAM",
            Method::IntegratedGradients => "Integrated Gradients",
            Method::SmoothGrad => "SmoothGrad",
            Method::Occlusion => "Occlusion",
        }
    }

    pub fn from_id(id: &str) -> Option<Method> {
        Method::ALL.into_iter().find(|m| m.id() == id)
    }

    /// Whether the method reads a layer (`Settings::layers`).
    pub fn uses_layer(self) -> bool {
        matches!(self, Method::GradCam | Method::GradCamPlusPlus | Method::LayerCam | Method::GuidedGradCam)
    }

    /// A class activation map (at a layer's resolution), not a map over the input's pixels.
    pub fn is_cam(self) -> bool {
        matches!(self, Method::GradCam | Method::GradCamPlusPlus | Method::LayerCam)
    }

    /// Whether the map has both signs (shown with a diverging colormap).
    pub fn is_signed(self) -> bool {
        matches!(self, Method::GuidedBackprop | Method::GuidedGradCam | Method::IntegratedGradients | Method::Occlusion)
    }
}

/// What is explained: the logit of a class, or the difference of two classes' logits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Target {
    /// The predicted class.
    #[default]
    Predicted,
    Class(i64),
    /// `logit[class] − logit[minus]`: what makes it this class rather than that one.
    Difference {
        class: i64,
        minus: i64,
    },
}

/// A target with the predicted class resolved.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Objective {
    pub class: i64,
    pub minus: Option<i64>,
}

impl Objective {
    fn resolve(target: Target, logits: &Tensor) -> Result<Self> {
        let classes = *logits.size().last().unwrap_or(&0);
        let check = |c: i64| {
            if (0..classes).contains(&c) {
                Ok(c)
            } else {
                Err(Error::Input(format!("target class {c} is outside 0..{classes}")))
            }
        };
        Ok(match target {
            Target::Predicted => {
                let class = logits
                    .f_argmax(-1, false)
                    .and_then(|t| t.f_int64_value(&[0]))
                    .context(|| "reading the prediction".into())?;
                Objective { class, minus: None }
            }
            Target::Class(c) => Objective { class: check(c)?, minus: None },
            Target::Difference { class, minus } => Objective { class: check(class)?, minus: Some(check(minus)?) },
        })
    }

    /// The explained value per sample (`[N]`), what the gradients are taken of.
    fn score(&self, logits: &Tensor) -> Result<Tensor> {
        let class = logits.f_select(1, self.class);
        match self.minus {
            None => class,
            Some(minus) => class.and_then(|c| c.f_sub(&logits.f_select(1, minus)?)),
        }
        .context(|| "the target's logit".into())
    }

    /// ∂score/∂logits for a batch of `n` (`[n, classes]`).
    fn seed(&self, logits: &Tensor) -> Result<Tensor> {
        let seed = logits.f_zeros_like().context(|| "seed".into())?;
        let _ = seed.f_select(1, self.class).and_then(|mut t| t.f_fill_(1.0)).context(|| "seed".into())?;
        if let Some(minus) = self.minus {
            let _ = seed.f_select(1, minus).and_then(|mut t| t.f_fill_(-1.0)).context(|| "seed".into())?;
        }
        Ok(seed)
    }
}

/// The classes whose label contains `query` (case ignored), those where it is a whole name
/// (one of a label's comma-separated synonyms) first, each group in class order.
pub fn search_classes(labels: Labels, classes: i64, query: &str) -> Vec<i64> {
    let query = query.trim().to_lowercase();
    if query.is_empty() {
        return Vec::new();
    }
    let (mut whole, mut partial) = (Vec::new(), Vec::new());
    for class in 0..classes {
        let label = labels.name(class).to_lowercase();
        if label.split(',').any(|name| name.trim() == query) {
            whole.push(class);
        } else if label.contains(&query) {
            partial.push(class);
        }
    }
    whole.extend(partial);
    whole
}

/// The class `text` names for a network of `classes` outputs: its number, or a name that
/// `search_classes` finds once (a whole name found once wins over partial ones).
pub fn parse_class(labels: Labels, classes: i64, text: &str) -> Result<i64> {
    if let Ok(class) = text.trim().parse::<i64>() {
        return if (0..classes).contains(&class) {
            Ok(class)
        } else {
            Err(Error::Input(format!("class {class} is outside 0..{classes}")))
        };
    }
    let query = text.trim().to_lowercase();
    let found = search_classes(labels, classes, &query);
    let whole: Vec<i64> = found
        .iter()
        .copied()
        .filter(|&c| labels.name(c).to_lowercase().split(',').any(|name| name.trim() == query))
        .collect();
    match (whole.as_slice(), found.as_slice()) {
        ([class], _) | ([], [class]) => Ok(*class),
        (_, []) => {
            Err(Error::Input(format!("no class is called {:?}: give its number or part of its name", text.trim())))
        }
        (_, many) => {
            let shown: Vec<String> = many.iter().take(5).map(|&c| format!("{c} {}", labels.name(c))).collect();
            let more = if many.len() > 5 { format!(" and {} more", many.len() - 5) } else { String::new() };
            Err(Error::Input(format!(
                "{:?} names {} classes ({}{more}): give the number",
                text.trim(),
                many.len(),
                shown.join("; ")
            )))
        }
    }
}

/// Which layers a CAM method (and Guided Grad-CAM) reads.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Layers {
    /// The end of the last stage (`stages`), where Grad-CAM is usually taken.
    #[default]
    Last,
    Node(NodeId),
    /// The end of every stage, coarse to fine (the last stage first), in one backward pass.
    Stages,
}

/// How Integrated Gradients sums along the path (captum's `method`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Integration {
    /// Gauss–Legendre nodes and weights (captum's default, `gausslegendre`).
    #[default]
    GaussLegendre,
    /// captum's `riemann_trapezoid`: n points from 0 to 1, each weighing 1/n, the two ends
    /// 1/(2n) (so the weights add up to 1 − 1/n, as captum's do).
    Trapezoid,
}

/// Where Integrated Gradients starts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Baseline {
    /// A black image, through the network's normalisation.
    #[default]
    Black,
    /// Zero after normalisation: the dataset's mean colour.
    Mean,
}

/// One run's method and parameters: the command line's arguments, the app's form and the
/// key of a cached map.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    pub method: Method,
    pub target: Target,
    pub layers: Layers,
    /// Integrated Gradients: points along the path.
    pub steps: usize,
    pub integration: Integration,
    pub baseline: Baseline,
    /// SmoothGrad: noisy copies of the image.
    pub samples: usize,
    /// SmoothGrad: the noise's standard deviation as a fraction of the input's range
    /// (max − min), Smilkov et al.'s 10–20%, not captum's absolute 1.0.
    pub sigma: f64,
    /// SmoothGrad's noise: `tch::manual_seed(seed)`, then one `randn` for all samples.
    pub seed: i64,
    /// Occlusion: the square window (over every channel) and its stride, in pixels.
    pub window: i64,
    pub stride: i64,
    /// Images per pass for the chunked methods; `None`: as many as `MEMORY_BUDGET` holds.
    pub batch: Option<usize>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            method: Method::GradCam,
            target: Target::Predicted,
            layers: Layers::Last,
            steps: 32,
            integration: Integration::GaussLegendre,
            baseline: Baseline::Black,
            samples: 16,
            sigma: 0.15,
            seed: 0,
            window: 32,
            stride: 16,
            batch: None,
        }
    }
}

impl Settings {
    /// Refuses parameters that would compute nothing or nonsense, naming the one at fault.
    pub fn check(&self) -> Result<()> {
        let bad = |what: String| Err(Error::Input(what));
        match self.method {
            Method::IntegratedGradients if self.steps == 0 => bad("Integrated Gradients needs at least 1 step".into()),
            Method::SmoothGrad if self.samples == 0 => bad("SmoothGrad needs at least 1 sample".into()),
            Method::SmoothGrad if !(self.sigma.is_finite() && self.sigma >= 0.0) => {
                bad(format!("SmoothGrad's sigma is a fraction of the input's range, at least 0, got {}", self.sigma))
            }
            _ if self.batch == Some(0) => bad("a batch holds at least 1 image".into()),
            _ => Ok(()),
        }
    }
}

/// How far a run has come, in passes of its own kind (`what`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Progress {
    pub done: usize,
    pub total: usize,
    pub what: &'static str,
}

/// What a caller hears and says during a run: progress after every chunk, and whether to
/// stop (asked before every chunk; libtorch cannot stop a pass midway).
pub struct Control<'a> {
    pub progress: &'a mut dyn FnMut(Progress),
    pub interrupt: &'a dyn Fn() -> bool,
}

impl Control<'_> {
    fn report(&mut self, done: usize, total: usize, what: &'static str) {
        (self.progress)(Progress { done, total, what });
    }
}

/// One map: captum's shape, on the CPU. CAMs: `1×1×h×w` at the node's resolution; the others
/// `1×C×H×W` over the input.
pub struct LayerMap {
    /// The node a CAM (or Guided Grad-CAM) was taken at; `None` for input maps.
    pub node: Option<NodeId>,
    pub raw: Tensor,
}

/// Integrated Gradients' completeness: Σ attributions against f(input) − f(baseline).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Completeness {
    pub attribution_sum: f64,
    pub score_input: f64,
    pub score_baseline: f64,
}

impl Completeness {
    /// Σ attributions − (f(input) − f(baseline)), captum's convergence delta.
    pub fn gap(&self) -> f64 {
        self.attribution_sum - (self.score_input - self.score_baseline)
    }

    /// The gap as a fraction of f(input) − f(baseline).
    pub fn relative_gap(&self) -> f64 {
        self.gap().abs() / (self.score_input - self.score_baseline).abs().max(f64::MIN_POSITIVE)
    }
}

pub struct Explanation {
    pub method: Method,
    pub objective: Objective,
    /// The logits of the image itself, `1×classes`, on the CPU.
    pub logits: Tensor,
    /// One map, or one per stage from the last to the first (`Layers::Stages`).
    pub maps: Vec<LayerMap>,
    /// Integrated Gradients only.
    pub completeness: Option<Completeness>,
    /// Guided methods: how many ReLUs the guided rule applied to. Zero (ReLU6, SiLU or
    /// hardswish networks): the guided map is the plain gradient.
    pub guided_relus: Option<usize>,
}

/// One map as plain values, for a thread without libtorch and for files.
#[derive(Clone, Debug)]
pub struct MapData {
    pub node: Option<NodeId>,
    /// captum's shape (`LayerMap::raw`).
    pub shape: Vec<i64>,
    pub raw: Vec<f32>,
    /// As people look at it, at the input's size.
    pub shown: display::DisplayMap,
}

/// An explanation as plain values (what the session sends the app, and what `export` writes).
#[derive(Clone, Debug)]
pub struct ExplanationData {
    pub method: Method,
    pub objective: Objective,
    /// The image's logits.
    pub logits: Vec<f32>,
    pub maps: Vec<MapData>,
    pub completeness: Option<Completeness>,
    pub guided_relus: Option<usize>,
}

impl ExplanationData {
    /// The explained value: the target's logit, less the other class's for a difference.
    pub fn score(&self) -> f64 {
        let logit = |c: i64| self.logits.get(c as usize).copied().map_or(f64::NAN, f64::from);
        logit(self.objective.class) - self.objective.minus.map_or(0.0, logit)
    }
}

impl Explanation {
    /// The maps' values, and each shown for an `height`×`width` input.
    pub fn data(&self, height: i64, width: i64) -> Result<ExplanationData> {
        let values = |t: &Tensor| -> Result<Vec<f32>> {
            let flat = t.f_contiguous().and_then(|t| t.f_view([-1])).context(|| "reading a map".into())?;
            Vec::<f32>::try_from(&flat).context(|| "reading a map".into())
        };
        let maps = self
            .maps
            .iter()
            .map(|m| {
                Ok(MapData {
                    node: m.node,
                    shape: m.raw.size(),
                    raw: values(&m.raw)?,
                    shown: display::display(self.method, &m.raw, height, width)?,
                })
            })
            .collect::<Result<_>>()?;
        Ok(ExplanationData {
            method: self.method,
            objective: self.objective,
            logits: values(&self.logits)?,
            maps,
            completeness: self.completeness,
            guided_relus: self.guided_relus,
        })
    }
}

/// `explain` with no progress and no way to stop it.
pub fn explain_all(
    model: &Model,
    input: &Tensor,
    opts: &RunOptions,
    preprocess: &Preprocess,
    settings: &Settings,
) -> Result<Explanation> {
    let mut control = Control { progress: &mut |_| {}, interrupt: &|| false };
    explain(model, input, opts, preprocess, settings, &mut control)?.ok_or_else(interrupted)
}

/// One method's maps for one image (`1×C×H×W`, normalised as `preprocess` normalises);
/// `None` when `control` said stop.
pub fn explain(
    model: &Model,
    input: &Tensor,
    opts: &RunOptions,
    preprocess: &Preprocess,
    settings: &Settings,
    control: &mut Control,
) -> Result<Option<Explanation>> {
    settings.check()?;
    model.check_input(input)?;
    if input.size()[0] != 1 {
        return Err(Error::Input(format!(
            "attribution explains one image at a time, got a batch of {}",
            input.size()[0]
        )));
    }
    let opts = RunOptions { train: false, ..opts.clone() };
    let input = input
        .f_detach()
        .and_then(|x| x.f_to_device_(model.device(), Kind::Float, false, false))
        .context(|| format!("moving the input to {:?}", model.device()))?;
    match settings.method {
        Method::GradCam | Method::GradCamPlusPlus | Method::LayerCam => {
            cam::explain(model, &input, &opts, settings, control)
        }
        Method::GuidedBackprop | Method::GuidedGradCam => guided::explain(model, &input, &opts, settings, control),
        Method::Saliency | Method::SmoothGrad | Method::IntegratedGradients => {
            gradient::explain(model, &input, &opts, preprocess, settings, control)
        }
        Method::Occlusion => occlusion::explain(model, &input, &opts, settings, control),
    }
}

/// Which nodes a run with `opts` computes on its way to the logits (no auxiliary classifier,
/// no switched-off shortcut's branch).
fn needed_nodes(graph: &Graph, opts: &RunOptions) -> Vec<bool> {
    let n = graph.nodes.len();
    let mut needed = vec![false; n];
    needed[graph.output] = true;
    for id in (0..n).rev() {
        if needed[id] {
            for edge in used_inputs(graph, opts, id) {
                needed[edge] = true;
            }
        }
    }
    needed
}

/// The nodes whose outputs node `id` reads in a run with `opts` (a switched-off residual
/// merge reads its branch alone).
fn used_inputs(graph: &Graph, opts: &RunOptions, id: NodeId) -> Vec<NodeId> {
    let node = &graph.nodes[id];
    let off = node.op.is_residual_merge() && opts.disabled_residuals.contains(&id);
    node.inputs.iter().take(if off { 1 } else { node.inputs.len() }).map(|e| e.from).collect()
}

/// The nodes with a spatial output (`C×H×W`, more than one position) that a run with `opts`
/// computes for an `height`×`width` input: where a CAM can be taken.
pub fn spatial_nodes(graph: &Graph, opts: &RunOptions, height: i64, width: i64) -> Result<Vec<NodeId>> {
    let shapes = graph.infer_shapes(height, width)?;
    let needed = needed_nodes(graph, opts);
    Ok((0..graph.nodes.len())
        .filter(|&id| needed[id] && id != graph.input)
        .filter(|&id| matches!(shapes.nodes[id].shape.as_slice(), [_, h, w] if h * w > 1))
        .collect())
}

/// The end of every stage, in execution order: for each spatial resolution along the network,
/// the last node that every path from the input to the logits passes through (a block's
/// output, not a branch inside it) before the resolution changes. Padding, the input's
/// transform and operations that pass their input through (an adaptive pooling to the size it
/// already has, dropout) are skipped.
pub fn stages(graph: &Graph, opts: &RunOptions, height: i64, width: i64) -> Result<Vec<NodeId>> {
    let shapes = graph.infer_shapes(height, width)?;
    let needed = needed_nodes(graph, opts);
    let n = graph.nodes.len();
    // A node is on every path when no edge of the run jumps over it (nodes are in execution order).
    let mut reach = vec![0; n];
    for id in (0..n).filter(|&id| needed[id]) {
        for from in used_inputs(graph, opts, id) {
            reach[from] = reach[from].max(id);
        }
    }
    let mut furthest = 0;
    let mut cuts = Vec::new();
    for id in 0..n {
        if !needed[id] {
            continue;
        }
        if furthest <= id {
            cuts.push(id);
        }
        furthest = furthest.max(reach[id]);
    }
    let passes_through = |id: NodeId| {
        let node = &graph.nodes[id];
        let same_shape = node.inputs.first().is_some_and(|e| shapes.nodes[e.from].shape == shapes.nodes[id].shape);
        match node.op {
            Op::Input { .. } | Op::ZeroPad { .. } | Op::ChannelAffine { .. } => true,
            Op::Dropout { .. } | Op::StochasticDepth { .. } => true,
            Op::AdaptiveAvgPool2d { .. } => same_shape,
            _ => false,
        }
    };
    let resolution = |id: NodeId| match shapes.nodes[id].shape.as_slice() {
        [_, h, w] if h * w > 1 => Some((*h, *w)),
        _ => None,
    };
    let spatial: Vec<(NodeId, (i64, i64))> =
        cuts.into_iter().filter(|&id| !passes_through(id)).filter_map(|id| resolution(id).map(|r| (id, r))).collect();
    Ok(spatial
        .iter()
        .enumerate()
        .filter(|(i, (_, r))| spatial.get(i + 1).is_none_or(|(_, next)| next != r))
        .map(|(_, (id, _))| *id)
        .collect())
}

/// The nodes `layers` names for an `height`×`width` input, checked: each runs and is spatial.
pub fn resolve_layers(
    graph: &Graph,
    opts: &RunOptions,
    layers: Layers,
    height: i64,
    width: i64,
) -> Result<Vec<NodeId>> {
    let spatial = spatial_nodes(graph, opts, height, width)?;
    match layers {
        Layers::Node(id) => {
            let name = graph.nodes.get(id).map(|n| n.name.as_str()).unwrap_or("?");
            if id >= graph.nodes.len() || !needed_nodes(graph, opts)[id] {
                return Err(Error::Input(format!("{name} does not run on the way to the logits in this run")));
            }
            if !spatial.contains(&id) {
                return Err(Error::Input(format!(
                    "{name} has no spatial output (C×H×W with more than one position) to take a CAM at"
                )));
            }
            Ok(vec![id])
        }
        Layers::Stages => {
            let mut stages = stages(graph, opts, height, width)?;
            if stages.is_empty() {
                return Err(Error::Input(format!("{} has no spatial stage", graph.arch)));
            }
            // Coarse to fine: the last stage's map, the one Grad-CAM is known by, comes first,
            // and each next one is sharper and less about the class.
            stages.reverse();
            Ok(stages)
        }
        Layers::Last => {
            let last = stages(graph, opts, height, width)?.pop();
            last.map(|id| vec![id]).ok_or_else(|| Error::Input(format!("{} has no spatial stage", graph.arch)))
        }
    }
}

/// How many images of this input's size one chunked pass holds within `MEMORY_BUDGET`:
/// every output kept for the backward pass with gradients, the largest few without.
fn batch_size(graph: &Graph, opts: &RunOptions, input: &Tensor, with_gradients: bool, settings: &Settings) -> usize {
    if let Some(batch) = settings.batch {
        return batch.max(1);
    }
    let size = input.size();
    let Ok(shapes) = graph.infer_shapes(size[2], size[3]) else { return 1 };
    let needed = needed_nodes(graph, opts);
    let mut numels: Vec<u64> = shapes
        .nodes
        .iter()
        .zip(&needed)
        .filter(|(_, n)| **n)
        .map(|(info, _)| info.shape.iter().product::<i64>().max(0) as u64)
        .collect();
    let per_image = if with_gradients {
        // Each output is kept for the backward pass, and its gradient lives for a while.
        2 * numels.iter().sum::<u64>()
    } else {
        numels.sort_unstable_by(|a, b| b.cmp(a));
        numels.iter().take(4).sum::<u64>()
    } * 4;
    ((MEMORY_BUDGET / per_image.max(1)) as usize).clamp(1, MAX_BATCH)
}

/// A tensor on the CPU, detached, contiguous: what a caller reads.
fn to_cpu(t: &Tensor) -> Result<Tensor> {
    t.f_detach().and_then(|t| t.f_to(Device::Cpu)).and_then(|t| t.f_contiguous()).context(|| "copying a map".into())
}

fn interrupted() -> Error {
    Error::Input("the run was interrupted".into())
}
