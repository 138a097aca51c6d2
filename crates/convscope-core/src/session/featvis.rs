//! Feature visualisation on the worker: a request's payload, its progress with a live
//! preview (read by the UI through `WorkerHandle::featvis_progress`), and its cancellation.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use crate::executor::Model;
use crate::featvis::{self, Control, Progress, examples};
use crate::graph::NodeId;
use crate::zoo::ArchSpec;

use super::protocol::Preview;

/// The images of one channel and what they were asked for with.
#[derive(Clone, Debug)]
pub struct Visualized {
    pub arch: &'static str,
    /// The weights, as `Model::origin` says them.
    pub origin: String,
    pub node: NodeId,
    /// One image each (a diversity run: one channel, four images).
    pub channels: Vec<i64>,
    pub settings: featvis::Settings,
    /// The images in rows of four (one alone as it is).
    pub image: Preview,
    /// Per image, the channel's mean activation on it.
    pub activations: Vec<f64>,
    /// Per step, the mean activation on the transformed image.
    pub curve: Vec<f64>,
    pub compute_ms: f64,
}

/// How far the visualisation under way has come.
#[derive(Clone, Debug)]
pub struct FeatvisProgress {
    /// The request it answers.
    pub seq: u64,
    pub step: usize,
    pub steps: usize,
    pub activation: f64,
    /// The newest preview (every `Settings::preview_every` steps).
    pub preview: Option<Arc<Preview>>,
}

/// How far the search for top-activating examples under way has come.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExamplesProgress {
    /// The request it answers.
    pub seq: u64,
    /// Images read and run so far, of `total`.
    pub done: usize,
    pub total: usize,
}

/// What the worker and the handle share: progress read by the UI, and the newest request the
/// UI cancelled (asked between steps), for visualisations and for searches of examples.
#[derive(Default)]
pub(super) struct FeatvisShared {
    progress: Mutex<Option<FeatvisProgress>>,
    cancelled_up_to: AtomicU64,
    examples_progress: Mutex<Option<ExamplesProgress>>,
    examples_cancelled_up_to: AtomicU64,
}

impl FeatvisShared {
    pub(super) fn examples_progress(&self) -> Option<ExamplesProgress> {
        self.examples_progress.lock().ok().and_then(|p| *p)
    }

    pub(super) fn set_examples_progress(&self, progress: Option<ExamplesProgress>) {
        if let Ok(mut slot) = self.examples_progress.lock() {
            *slot = progress;
        }
    }

    pub(super) fn cancel_examples_up_to(&self, seq: u64) {
        self.examples_cancelled_up_to.fetch_max(seq, Ordering::Relaxed);
    }

    pub(super) fn is_examples_cancelled(&self, seq: u64) -> bool {
        seq <= self.examples_cancelled_up_to.load(Ordering::Relaxed)
    }

    pub(super) fn progress(&self) -> Option<FeatvisProgress> {
        self.progress.lock().ok().and_then(|p| p.clone())
    }

    pub(super) fn set_progress(&self, progress: Option<FeatvisProgress>) {
        if let Ok(mut slot) = self.progress.lock() {
            *slot = progress;
        }
    }

    pub(super) fn cancel_up_to(&self, seq: u64) {
        self.cancelled_up_to.fetch_max(seq, Ordering::Relaxed);
    }

    pub(super) fn is_cancelled(&self, seq: u64) -> bool {
        seq <= self.cancelled_up_to.load(Ordering::Relaxed)
    }
}

fn preview_of(images: &tch::Tensor) -> Result<Preview, String> {
    let grid = featvis::grid(images, 4, 2).map_err(|e| e.to_string())?;
    Ok(Preview { size: [grid.width() as usize, grid.height() as usize], rgb: grid.into_raw() })
}

/// Visualises `channels` of `node` together; `None` when `interrupt` stopped it.
pub(super) fn run(
    spec: &ArchSpec,
    model: &Model,
    shared: &FeatvisShared,
    seq: u64,
    (node, channels): (NodeId, &[i64]),
    settings: &featvis::Settings,
    interrupt: &dyn Fn() -> bool,
) -> Result<Option<Visualized>, String> {
    let start = Instant::now();
    let mut last_preview: Option<Arc<Preview>> = None;
    let mut progress = |p: Progress| {
        if let Some(images) = p.preview
            && let Ok(preview) = preview_of(images)
        {
            last_preview = Some(Arc::new(preview));
        }
        shared.set_progress(Some(FeatvisProgress {
            seq,
            step: p.step,
            steps: p.steps,
            activation: p.activation,
            preview: last_preview.clone(),
        }));
    };
    let mut control = Control { progress: &mut progress, interrupt };
    let Some(run) = featvis::visualize(model, &spec.preprocess, node, channels, settings, &mut control)
        .map_err(|e| e.to_string())?
    else {
        return Ok(None);
    };
    Ok(Some(Visualized {
        arch: spec.id,
        origin: model.origin().to_string(),
        node,
        channels: channels.to_vec(),
        settings: settings.clone(),
        image: preview_of(&run.images)?,
        activations: run.activations,
        curve: run.curve,
        compute_ms: start.elapsed().as_secs_f64() * 1e3,
    }))
}

/// How many examples the worker finds per channel.
pub const TOP_EXAMPLES: usize = 9;

/// One channel's top-activating examples.
#[derive(Clone, Debug)]
pub struct ExampleStrip {
    pub channel: i64,
    /// The crops side by side (`examples::strip`, 64 pixels each).
    pub strip: Preview,
    /// Per crop, highest first: the channel's largest value on the image, and its name.
    pub values: Vec<f64>,
    pub names: Vec<String>,
}

/// The answer to `Request::TopExamples`.
#[derive(Clone, Debug)]
pub struct TopExamplesFound {
    pub arch: &'static str,
    pub origin: String,
    pub node: NodeId,
    pub source: examples::Source,
    /// How many images were looked through.
    pub images: usize,
    /// Whether the images were searched for this answer; false when the worker's last search
    /// (of the same network, weights, node and set) already ranked the channels.
    pub searched: bool,
    pub strips: Vec<ExampleStrip>,
    pub compute_ms: f64,
}

/// The last search's ranking of every channel of a node, kept on the worker: another channel
/// of the same node and set is answered from it, reading only its examples' images again.
pub(super) struct KeptSearch {
    /// The network, its weights, the node and the set searched.
    key: (&'static str, String, NodeId, examples::Source),
    set: examples::ImageSet,
    /// Per channel of the node, its best `TOP_EXAMPLES`.
    ranked: Vec<Vec<examples::Example>>,
}

/// The top-activating examples of `channels` of `node` in `source`. A search ranks every
/// channel of the node at once (the node's output is computed whole anyway), reading each
/// image as it reaches it, with progress after each in `shared`, and is kept in `kept`;
/// `None` when `interrupt` stopped it.
#[allow(clippy::too_many_arguments)]
pub(super) fn top(
    spec: &ArchSpec,
    model: &Model,
    shared: &FeatvisShared,
    seq: u64,
    (node, channels): (NodeId, &[i64]),
    source: &examples::Source,
    interrupt: &dyn Fn() -> bool,
    kept: &mut Option<KeptSearch>,
) -> Result<Option<TopExamplesFound>, String> {
    let start = Instant::now();
    let key = (spec.id, model.origin().to_string(), node, source.clone());
    let searched = kept.as_ref().is_none_or(|k| k.key != key);
    if searched {
        *kept = None;
        let set = examples::ImageSet::open(spec, source).map_err(|e| e.to_string())?;
        if set.is_empty() {
            return Err("no images to look through".into());
        }
        let [h, w] = spec.preprocess.output_size();
        let shapes = model.graph().infer_shapes(h, w).map_err(|e| e.to_string())?;
        let width = shapes.nodes.get(node).and_then(|n| n.shape.first().copied()).unwrap_or(0);
        let every: Vec<i64> = (0..width).collect();
        shared.set_examples_progress(Some(ExamplesProgress { seq, done: 0, total: set.len() }));
        let mut progress =
            |p: Progress| shared.set_examples_progress(Some(ExamplesProgress { seq, done: p.step, total: p.steps }));
        let mut control = Control { progress: &mut progress, interrupt };
        let Some(ranked) = examples::top_examples_in(model, node, &set, &every, TOP_EXAMPLES, &mut control)
            .map_err(|e| e.to_string())?
        else {
            return Ok(None);
        };
        *kept = Some(KeptSearch { key, set, ranked });
    }
    let Some(KeptSearch { set, ranked, .. }) = kept.as_ref() else {
        return Err("the search was not kept".into());
    };
    let strips = channels
        .iter()
        .map(|&channel| {
            let found = usize::try_from(channel).ok().and_then(|c| ranked.get(c)).ok_or_else(|| {
                format!("{} has {} channels, no channel {channel}", model.graph().nodes[node].name, ranked.len())
            })?;
            let strip = examples::strip_in(set, found, 64).map_err(|e| e.to_string())?;
            Ok(ExampleStrip {
                channel,
                strip: Preview { size: [strip.width() as usize, strip.height() as usize], rgb: strip.into_raw() },
                values: found.iter().map(|e| e.value).collect(),
                names: found.iter().map(|e| set.names()[e.image].clone()).collect(),
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    Ok(Some(TopExamplesFound {
        arch: spec.id,
        origin: model.origin().to_string(),
        node,
        source: source.clone(),
        images: set.len(),
        searched,
        strips,
        compute_ms: start.elapsed().as_secs_f64() * 1e3,
    }))
}
