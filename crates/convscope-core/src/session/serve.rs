//! The worker thread: owns the model, works through requests newest-first by kind, and
//! yields a long gradient pass to what arrives meanwhile.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tch::{Device, Kind, Tensor};

use super::protocol::*;
use crate::attribution::{self, Control};
use crate::engine::batch::{self, Batch, BatchImage, BatchKind};
use crate::engine::{self, GradientSettings, WeightsChoice};
use crate::executor::{GradientMode, Layout, Model, Outputs, RunOptions, Targets};
use crate::graph::NodeId;
use crate::zoo::ArchSpec;
use crate::{compare, latency, preprocess, zoo};

/// A decoded image kept for augmented crops is cut down to this on its longer side: crops of
/// a 50-megapixel photo need not all be resampled from 50 megapixels.
const KEPT_IMAGE_SIDE: u32 = 2048;

/// What a batch was built for: the image is the one of the last classification.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct BatchKey {
    kind: BatchKind,
    size: usize,
    target: Option<i64>,
}

/// Requests that have reached the worker and wait their turn, the newest of each kind only.
struct Inbox<'a> {
    requests: &'a Receiver<(u64, Request)>,
    waiting: RefCell<BTreeMap<RequestKind, (u64, Request)>>,
    /// The window has gone: nobody is left to answer.
    closed: Cell<bool>,
}

impl<'a> Inbox<'a> {
    fn new(requests: &'a Receiver<(u64, Request)>) -> Self {
        Self { requests, waiting: RefCell::new(BTreeMap::new()), closed: Cell::new(false) }
    }

    /// Takes in whatever has arrived, without waiting.
    fn collect(&self) {
        loop {
            match self.requests.try_recv() {
                Ok(entry) => self.keep(entry),
                Err(TryRecvError::Empty) => return,
                Err(TryRecvError::Disconnected) => {
                    self.closed.set(true);
                    return;
                }
            }
        }
    }

    fn keep(&self, entry: (u64, Request)) {
        self.waiting.borrow_mut().insert(entry.1.kind(), entry);
    }

    /// The next request to work on, in kind order, waiting for one if need be; `None` once
    /// the window has gone.
    fn next(&self) -> Option<(u64, Request)> {
        self.collect();
        if self.waiting.borrow().is_empty() && !self.closed.get() {
            match self.requests.recv() {
                Ok(entry) => self.keep(entry),
                Err(_) => self.closed.set(true),
            }
            self.collect();
        }
        if self.closed.get() {
            return None;
        }
        self.waiting.borrow_mut().pop_first().map(|(_, entry)| entry)
    }

    /// Whether a request has arrived that the work of `kind` should yield to: one of an
    /// earlier kind (a new model, a device move, a new image) or a newer one of the same kind.
    fn should_yield(&self, kind: RequestKind) -> bool {
        self.collect();
        self.closed.get() || self.waiting.borrow().keys().any(|&k| k <= kind && k != RequestKind::Activation)
    }

    /// Queues an interrupted request again, unless a newer one of its kind took its place.
    fn put_back(&self, seq: u64, request: Request) {
        self.waiting.borrow_mut().entry(request.kind()).or_insert((seq, request));
    }
}

/// What the worker and the handle share about attribution runs: progress read by the UI, and
/// the newest request the UI cancelled (asked between chunks).
#[derive(Default)]
pub(super) struct AttributionShared {
    progress: Mutex<Option<AttributionProgress>>,
    cancelled_up_to: AtomicU64,
}

impl AttributionShared {
    pub(super) fn progress(&self) -> Option<AttributionProgress> {
        self.progress.lock().ok().and_then(|p| *p)
    }

    fn set_progress(&self, progress: Option<AttributionProgress>) {
        if let Ok(mut slot) = self.progress.lock() {
            *slot = progress;
        }
    }

    /// Cancels every attribution request up to `seq`.
    pub(super) fn cancel_up_to(&self, seq: u64) {
        self.cancelled_up_to.fetch_max(seq, Ordering::Relaxed);
    }

    fn is_cancelled(&self, seq: u64) -> bool {
        seq <= self.cancelled_up_to.load(Ordering::Relaxed)
    }
}

/// The worker's own state: the model and what the last run left behind.
#[derive(Default)]
pub(super) struct Worker {
    pub(super) attribution: Arc<AttributionShared>,
    pub(super) featvis: Arc<super::featvis::FeatvisShared>,
    spec: Option<ArchSpec>,
    model: Option<Model>,
    /// The request that built the model: gradients and layers asked for before it were
    /// about the previous model.
    model_seq: u64,
    /// The preprocessed current image (`1×C×H×W`, on the CPU).
    input: Option<Tensor>,
    /// The current image decoded, for the augmented crops of an ImageNet network's batch
    /// (at most `KEPT_IMAGE_SIDE` on its longer side).
    decoded: Option<image::DynamicImage>,
    /// The batch of the last gradient pass, with what it was built for: switching a shortcut
    /// builds no new one.
    batch: Option<(BatchKey, Batch)>,
    /// The outputs kept from the last run (or, keeping only the viewed layer, the one last
    /// shown), for the layer view.
    outputs: Outputs,
    /// The residual switches and retention of the last run, to run it again up to a node.
    disabled: Vec<NodeId>,
    retention: Retention,
    /// The models of the last comparison that were not the explorer's, kept for the next.
    compared: Vec<Model>,
    /// The last image asked for failed: a gradient pass sent with it is not wanted.
    last_image_failed: bool,
    /// The last search for top-activating examples, every channel of its node ranked.
    kept_search: Option<super::featvis::KeptSearch>,
}

impl Worker {
    pub(super) fn run(
        mut self,
        requests: &Receiver<(u64, Request)>,
        replies: &SyncSender<Outgoing>,
        repaint: &dyn Fn(),
    ) {
        let inbox = Inbox::new(requests);
        while let Some((seq, request)) = inbox.next() {
            let kind = request.kind();
            let unwanted = matches!(request, Request::Gradients { with_image: true, .. }) && self.last_image_failed;
            if unwanted || self.is_stale(seq, kind) {
                if replies.send(Outgoing::Dropped { seq, kind }).is_err() {
                    return;
                }
                repaint();
                continue;
            }
            let retry = (kind == RequestKind::Gradients).then(|| request.clone());
            // A libtorch call that panics (they are meant to return errors, but a bug in
            // a binding should not take the whole app down) becomes a message.
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.turn(seq, request, &inbox)))
                .unwrap_or_else(|panic| {
                    let text = panic
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                        .unwrap_or_else(|| "unknown failure".into());
                    Err(ReplyError { message: format!("the model worker failed: {text}"), image: None })
                });
            let result = match result {
                Ok(Some(payload)) => {
                    if kind == RequestKind::Load {
                        self.model_seq = seq;
                    }
                    Ok(payload)
                }
                Ok(None) => {
                    if let Some(request) = retry {
                        inbox.put_back(seq, request);
                    } else if matches!(
                        kind,
                        RequestKind::Attribution | RequestKind::FeatureVis | RequestKind::TopExamples
                    ) {
                        // Cancelled, or superseded by what it yielded to: the UI asks again
                        // for what it still wants to see.
                        if replies.send(Outgoing::Dropped { seq, kind }).is_err() {
                            return;
                        }
                        repaint();
                    }
                    continue;
                }
                Err(error) => Err(error),
            };
            if replies.send(Outgoing::Reply(Reply { seq, kind, result })).is_err() {
                return;
            }
            repaint();
        }
    }

    /// Whether a request is about the image or the layers of a model that has been replaced
    /// since the UI asked: asked before the load, or asked after it but for a prediction
    /// the old model made (no image has run on the new one yet). The UI drops such answers
    /// anyway; answering would only show it an error about a model it no longer has.
    fn is_stale(&self, seq: u64, kind: RequestKind) -> bool {
        matches!(kind, RequestKind::Gradients | RequestKind::Attribution | RequestKind::Activation)
            && (seq < self.model_seq || (self.model.is_some() && self.input.is_none()))
            // Needs no image: only a replaced model makes it stale.
            || (matches!(kind, RequestKind::FeatureVis | RequestKind::TopExamples) && seq < self.model_seq)
    }

    /// Carries out one request; `Ok(None)` when it yielded to newer requests midway.
    fn handle(&mut self, seq: u64, request: Request, inbox: &Inbox) -> Result<Option<Payload>, ReplyError> {
        let payload = match request {
            Request::Load { spec, weights, device } => self.load(*spec, &weights, device)?,
            Request::Device(device) => {
                let model = self.model_mut()?;
                model.to_device(device).map_err(plain)?;
                Payload::Moved(device)
            }
            Request::Classify { image, disabled, retention, show } => {
                let classified = self.classify(&image, &disabled, retention);
                self.last_image_failed = classified.is_err();
                let mut predicted = classified.map_err(|message| ReplyError { message, image: Some(image.name()) })?;
                if let Some(node) = show {
                    let start = Instant::now();
                    predicted.activation = Some(self.activation(node).map_err(|e| e.message));
                    predicted.timings.activation_ms = Some(elapsed_ms(start));
                }
                Payload::Predicted(Box::new(predicted))
            }
            Request::Gradients { disabled, target, retention, settings, .. } => {
                let interrupt = || inbox.should_yield(RequestKind::Gradients);
                match self.gradients(&disabled, target, retention, &settings, &interrupt).map_err(plain)? {
                    Some(flow) => Payload::Gradients(Box::new(flow)),
                    None => return Ok(None),
                }
            }
            Request::Attribution { disabled, settings } => {
                let shared = Arc::clone(&self.attribution);
                let interrupt = || shared.is_cancelled(seq) || inbox.should_yield(RequestKind::Attribution);
                let outcome = self.attribute(seq, &disabled, settings, &interrupt);
                self.attribution.set_progress(None);
                match outcome.map_err(plain)? {
                    Some(attributed) => Payload::Attributed(Box::new(attributed)),
                    None => return Ok(None),
                }
            }
            Request::Activation { node } => Payload::Activation(Box::new(self.activation(node)?)),
            Request::TopExamples { node, channels, source } => {
                let shared = Arc::clone(&self.featvis);
                let interrupt = || shared.is_examples_cancelled(seq) || inbox.should_yield(RequestKind::TopExamples);
                let (Some(spec), Some(model)) = (&self.spec, &self.model) else {
                    return Err(plain("no model is loaded yet".to_owned()));
                };
                let kept = &mut self.kept_search;
                let asked = (node, channels.as_slice());
                let outcome = super::featvis::top(spec, model, &shared, seq, asked, &source, &interrupt, kept);
                self.featvis.set_examples_progress(None);
                match outcome.map_err(plain)? {
                    Some(found) => Payload::TopExamples(Box::new(found)),
                    None => return Ok(None),
                }
            }
            Request::FeatureVis { node, channels, settings } => {
                let shared = Arc::clone(&self.featvis);
                let interrupt = || shared.is_cancelled(seq) || inbox.should_yield(RequestKind::FeatureVis);
                let (spec, model) = self.loaded().map_err(plain)?;
                let outcome = super::featvis::run(spec, model, &shared, seq, (node, &channels), &settings, &interrupt);
                self.featvis.set_progress(None);
                match outcome.map_err(plain)? {
                    Some(visualized) => Payload::Visualized(Box::new(visualized)),
                    None => return Ok(None),
                }
            }
            Request::Compare { specs, image, device } => {
                let [a, b] = *specs;
                let comparison = self
                    .compare([a, b], &image, device)
                    .map_err(|message| ReplyError { message, image: Some(image.name()) })?;
                Payload::Compared(Box::new(comparison))
            }
            // Reached only when no job waits: the cancel replaced it in the inbox.
            Request::CancelMeasure | Request::Measure(_) => Payload::Measured(Box::new(MeasureProgress {
                machine: latency::Machine::current(Device::Cpu),
                timed: None,
                done: 0,
                total: 0,
                state: MeasureState::Cancelled,
                cache_error: None,
            })),
        };
        Ok(Some(payload))
    }

    fn model_mut(&mut self) -> Result<&mut Model, ReplyError> {
        self.model.as_mut().ok_or_else(|| plain("no model is loaded yet"))
    }

    fn loaded(&self) -> Result<(&ArchSpec, &Model), String> {
        match (&self.spec, &self.model) {
            (Some(spec), Some(model)) => Ok((spec, model)),
            _ => Err("no model is loaded yet".into()),
        }
    }

    fn load(&mut self, spec: ArchSpec, weights: &WeightsChoice, device: Device) -> Result<Payload, ReplyError> {
        let start = Instant::now();
        let (model, warnings) = engine::load_model(&spec, weights, device).map_err(plain)?;
        let loaded = Loaded {
            id: spec.id,
            origin: model.origin().to_string(),
            gradient_mode: engine::default_gradient_mode(model.origin()),
            warnings,
            device,
            load_ms: elapsed_ms(start),
        };
        // Only now does the previous model go: it served every request until here.
        self.model = Some(model);
        // Another model (or the same file, rewritten) ranks the images anew.
        self.kept_search = None;
        self.spec = Some(spec);
        self.input = None;
        self.decoded = None;
        self.batch = None;
        self.outputs = Outputs::default();
        crate::memory::release_freed_memory();
        Ok(Payload::Loaded(loaded))
    }

    fn classify(&mut self, image: &ImageInput, disabled: &[NodeId], retention: Retention) -> Result<Predicted, String> {
        let (spec, model) = self.loaded()?;
        let start = Instant::now();
        let decoded = match image {
            ImageInput::Path(path) => preprocess::load_image(path).map_err(|e| e.to_string())?,
            ImageInput::Bytes { name, bytes } => {
                if bytes.len() as u64 > preprocess::MAX_FILE_BYTES {
                    return Err(format!(
                        "{name}: the file is {} MB; images over {} MB are refused",
                        bytes.len() >> 20,
                        preprocess::MAX_FILE_BYTES >> 20
                    ));
                }
                preprocess::decode_image_named(bytes, Some(std::path::Path::new(name)))
                    .map_err(|e| format!("{name}: {e}"))?
            }
            ImageInput::Pixels { name, size, rgba } => {
                image_from_rgba(*size, rgba).map_err(|e| format!("{name}: {e}"))?
            }
        };
        let decode_ms = elapsed_ms(start);
        let start = Instant::now();
        let input = spec.preprocess.apply(&decoded).map_err(|e| e.to_string())?;
        let preview = spec.preprocess.to_rgb8(&input).map_err(|e| e.to_string())?;
        let preview = Preview { size: [preview.width() as usize, preview.height() as usize], rgb: preview.into_raw() };
        let preprocess_ms = elapsed_ms(start);
        let start = Instant::now();
        let options = shown_run(disabled);
        let (logits, outputs) = match retention {
            Retention::EveryLayer => {
                let capture = model.forward_capture(&input, &options).map_err(|e| e.to_string())?;
                (capture.logits, capture.outputs)
            }
            Retention::ViewedLayer => (model.forward(&input, &options).map_err(|e| e.to_string())?, Outputs::default()),
        };
        let top5 = engine::top_k(&logits, spec.labels, 5).map_err(|e| e.to_string())?;
        let forward_ms = elapsed_ms(start);
        let predicted = Predicted {
            arch: spec.id,
            image: image.clone(),
            disabled: disabled.to_vec(),
            top5,
            preview,
            timings: Timings {
                decode_ms: Some(decode_ms),
                preprocess_ms: Some(preprocess_ms),
                forward_ms: Some(forward_ms),
                ..Timings::default()
            },
            device: model.device(),
            activation: None,
        };
        // Only an ImageNet network's batch takes crops of the image.
        let crops_of_image = matches!(spec.preprocess, preprocess::Preprocess::ImageNet { .. });
        self.decoded = crops_of_image.then(|| {
            if decoded.width().max(decoded.height()) > KEPT_IMAGE_SIDE {
                decoded.resize(KEPT_IMAGE_SIDE, KEPT_IMAGE_SIDE, image::imageops::FilterType::Triangle)
            } else {
                decoded
            }
        });
        self.input = Some(input);
        self.batch = None;
        self.outputs = outputs;
        self.disabled = disabled.to_vec();
        self.retention = retention;
        Ok(predicted)
    }

    /// The gradient flow, or `None` when `interrupt` stopped it.
    fn gradients(
        &mut self,
        disabled: &[NodeId],
        target: Option<i64>,
        retention: Retention,
        settings: &GradientSettings,
        interrupt: &dyn Fn() -> bool,
    ) -> Result<Option<GradientFlow>, String> {
        let (spec, model) = self.loaded()?;
        let input = self.input.as_ref().ok_or("open an image first: gradients are taken for an image")?;
        let settings = settings.resolve(spec, model);
        let key = BatchKey { kind: settings.batch, size: settings.batch_size, target };
        let mut preprocess_ms = None;
        if self.batch.as_ref().is_none_or(|(kept, _)| *kept != key) {
            let start = Instant::now();
            let image = BatchImage { input, decoded: self.decoded.as_ref() };
            let built =
                batch::build(spec, &image, settings.batch, settings.batch_size, target).map_err(|e| e.to_string())?;
            self.batch = Some((key, built));
            preprocess_ms = Some(elapsed_ms(start));
        }
        let (spec, model) = self.loaded()?;
        let Some((_, built)) = self.batch.as_ref() else { return Err("the batch was not built".into()) };
        let graph = model.graph();
        let options = RunOptions { disabled_residuals: disabled.to_vec(), ..RunOptions::default() };
        let targets = Targets::PerSample(built.targets.clone());
        let start = Instant::now();
        let Some(report) = model
            .gradient_pass(&built.input, &targets, &options, &settings.options, interrupt)
            .map_err(|e| e.to_string())?
        else {
            return Ok(None);
        };
        let backward_ms = elapsed_ms(start);
        let mut squared: Vec<Option<f64>> = vec![None; graph.nodes.len()];
        for (spec_param, norm) in graph.params.iter().zip(&report.param_grad_norms) {
            if let Some(norm) = norm {
                let slot = squared[spec_param.node].get_or_insert(0.0);
                *slot += norm * norm;
            }
        }
        let top5 = engine::top_k(&report.logits, spec.labels, 5).map_err(|e| e.to_string())?;
        // The layer view shows the image as the network predicts it, with these switches: the
        // pass's own outputs where they are exactly that (inference on the image alone), else
        // a capture of the image, made only when the switches changed.
        let image_alone = settings.options.mode == GradientMode::Inference && built.summary.counts.total() == 1;
        let outputs = match retention {
            Retention::ViewedLayer => Outputs::default(),
            Retention::EveryLayer if image_alone => Outputs::from_tensors(report.outputs),
            Retention::EveryLayer
                if self.retention == Retention::EveryLayer && self.disabled == disabled && !self.outputs.is_empty() =>
            {
                self.outputs.shallow_clone()
            }
            Retention::EveryLayer => {
                model.forward_capture(input, &shown_run(disabled)).map_err(|e| e.to_string())?.outputs
            }
        };
        let flow = GradientFlow {
            arch: spec.id,
            disabled: disabled.to_vec(),
            requested_target: target,
            target: report.targets.first().copied().unwrap_or(0),
            loss: report.loss,
            logit: report.logit,
            settings,
            batch: built.summary.clone(),
            saturated: report.saturated,
            node_norms: report.node_grad_norms,
            param_norms: squared.into_iter().map(|s| s.map(f64::sqrt)).collect(),
            top5,
            timings: Timings { preprocess_ms, backward_ms: Some(backward_ms), ..Timings::default() },
            device: model.device(),
        };
        self.outputs = outputs;
        self.disabled = disabled.to_vec();
        self.retention = retention;
        Ok(Some(flow))
    }

    /// An attribution map of the current image, or `None` when `interrupt` stopped it.
    fn attribute(
        &self,
        seq: u64,
        disabled: &[NodeId],
        settings: attribution::Settings,
        interrupt: &dyn Fn() -> bool,
    ) -> Result<Option<Attributed>, String> {
        let (spec, model) = self.loaded()?;
        let input = self.input.as_ref().ok_or("open an image first: attribution explains an image")?;
        if interrupt() {
            return Ok(None);
        }
        let start = Instant::now();
        let shared = &self.attribution;
        let mut progress = |progress| shared.set_progress(Some(AttributionProgress { seq, progress }));
        let mut control = Control { progress: &mut progress, interrupt };
        let options = shown_run(disabled);
        let Some(explanation) = attribution::explain(model, input, &options, &spec.preprocess, &settings, &mut control)
            .map_err(|e| e.to_string())?
        else {
            return Ok(None);
        };
        let size = input.size();
        let explanation = explanation.data(size[2], size[3]).map_err(|e| e.to_string())?;
        let preview = spec.preprocess.to_rgb8(input).map_err(|e| e.to_string())?;
        let preview = Preview { size: [preview.width() as usize, preview.height() as usize], rgb: preview.into_raw() };
        Ok(Some(Attributed {
            arch: spec.id,
            disabled: disabled.to_vec(),
            settings,
            explanation,
            preview,
            compute_ms: elapsed_ms(start),
        }))
    }

    fn activation(&mut self, node: NodeId) -> Result<ActivationData, ReplyError> {
        let (spec, model) = self.loaded().map_err(plain)?;
        let arch = spec.id;
        let kept = self.outputs.has(node);
        if !kept && self.retention == Retention::ViewedLayer {
            let input = self.input.as_ref().ok_or_else(|| plain("open an image first"))?;
            let options = shown_run(&self.disabled);
            // A node the switched network does not run has no output, as with every layer kept.
            if model.runs_node(node, &options) {
                let output = model.forward_to(input, &options, node).map_err(plain)?;
                // One layer is kept at a time: the previous one goes.
                self.outputs = Outputs::only(model.graph().nodes.len(), node, output);
            }
        }
        let tensor = self.outputs.get(node).map_err(plain)?.ok_or_else(|| {
            plain("this node has no output yet: open an image (nodes off the path of the last run have none)")
        })?;
        let sample = tensor
            .f_get(0)
            .and_then(|t| t.f_to_device_(Device::Cpu, Kind::Float, false, false))
            .and_then(|t| t.f_contiguous())
            .map_err(|e| plain(format!("reading the output: {e}")))?;
        let shape = sample.size();
        let values = sample
            .f_flatten(0, -1)
            .map_err(|e| plain(e.to_string()))
            .and_then(|flat| Vec::<f32>::try_from(&flat).map_err(|e| plain(e.to_string())))?;
        Ok(ActivationData { arch, node, shape, values })
    }
}

impl Worker {
    /// Carries out one request: a measurement's turn, which needs its sequence number to put
    /// itself back, or any other through `handle`.
    fn turn(&mut self, seq: u64, request: Request, inbox: &Inbox) -> Result<Option<Payload>, ReplyError> {
        match request {
            Request::Measure(job) => self.measure_turn(seq, *job, inbox),
            other => self.handle(seq, other, inbox),
        }
    }

    /// One turn of a measurement: times the next architecture of `job`, then puts the job back
    /// for its next turn; `Ok(None)` when newer requests interrupted the timing (the job waits
    /// behind them, the architecture to be timed again).
    fn measure_turn(&mut self, seq: u64, mut job: MeasureJob, inbox: &Inbox) -> Result<Option<Payload>, ReplyError> {
        let machine = latency::Machine::current(job.device);
        let total = job.ids.len();
        let progress = |timed, done, state, cache_error| {
            Payload::Measured(Box::new(MeasureProgress {
                machine: machine.clone(),
                timed,
                done,
                total,
                state,
                cache_error,
            }))
        };
        let Some(&id) = job.ids.get(job.done) else {
            return Ok(Some(progress(None, total, MeasureState::Finished, None)));
        };
        let interrupt = || inbox.should_yield(RequestKind::Measure);
        let outcome = zoo::find(id)
            .and_then(|spec| latency::time_forward(&spec, job.device, &job.rounds, &interrupt))
            .map_err(|e| e.to_string());
        let timing = match outcome {
            Ok(None) => {
                inbox.put_back(seq, Request::Measure(Box::new(job)));
                return Ok(None);
            }
            Ok(Some(timing)) => Ok(timing),
            // One network that cannot run here (out of memory on a small GPU) ends nothing.
            Err(message) => Err(message),
        };
        let cache_error = match (&job.cache, &timing) {
            (Some(path), Ok(timing)) => latency::record_in(path, &machine, id, *timing).err().map(|e| e.to_string()),
            _ => None,
        };
        job.done += 1;
        let done = job.done;
        let state = if done < total { MeasureState::Running } else { MeasureState::Finished };
        if state == MeasureState::Running {
            inbox.put_back(seq, Request::Measure(Box::new(job)));
        }
        Ok(Some(progress(Some((id, timing)), done, state, cache_error)))
    }

    /// Two networks on one image. Each is the explorer's model when it is the same network on
    /// the same device, else one kept from the last comparison, else loaded (installed
    /// weights, else random).
    fn compare(
        &mut self,
        specs: [ArchSpec; 2],
        image: &ImageInput,
        device: Device,
    ) -> Result<compare::Comparison, String> {
        let decoded = decode_image(image)?;
        let is = |model: &Model, spec: &ArchSpec| model.graph().arch == spec.id && model.device() == device;
        let mut kept = std::mem::take(&mut self.compared);
        let mut own = Vec::new();
        for spec in &specs {
            let explorer = self.model.as_ref().is_some_and(|m| is(m, spec));
            if explorer || own.iter().any(|m: &Model| is(m, spec)) {
                continue;
            }
            let model = match kept.iter().position(|m| is(m, spec)) {
                Some(i) => kept.swap_remove(i),
                None => {
                    let weights = WeightsChoice::Installed { seed: engine::DEFAULT_SEED };
                    engine::load_model(spec, &weights, device).map_err(|e| e.to_string())?.0
                }
            };
            own.push(model);
        }
        drop(kept);
        let pick = |spec: &ArchSpec| -> Result<&Model, String> {
            self.model
                .as_ref()
                .filter(|m| is(m, spec))
                .or_else(|| own.iter().find(|m| is(m, spec)))
                .ok_or_else(|| format!("{} could not be prepared", spec.id))
        };
        let models = [pick(&specs[0])?, pick(&specs[1])?];
        let comparison =
            compare::compare([&specs[0], &specs[1]], models, &decoded, &image.name()).map_err(|e| e.to_string())?;
        self.compared = own;
        Ok(comparison)
    }
}

/// An image as the user gave it, decoded within the limits `classify` sets.
fn decode_image(image: &ImageInput) -> Result<image::DynamicImage, String> {
    match image {
        ImageInput::Path(path) => preprocess::load_image(path).map_err(|e| e.to_string()),
        ImageInput::Bytes { name, bytes } => {
            if bytes.len() as u64 > preprocess::MAX_FILE_BYTES {
                return Err(format!(
                    "{name}: the file is {} MB; images over {} MB are refused",
                    bytes.len() >> 20,
                    preprocess::MAX_FILE_BYTES >> 20
                ));
            }
            preprocess::decode_image_named(bytes, Some(std::path::Path::new(name))).map_err(|e| format!("{name}: {e}"))
        }
        ImageInput::Pixels { name, size, rgba } => image_from_rgba(*size, rgba).map_err(|e| format!("{name}: {e}")),
    }
}

/// A run whose outputs the layer view shows: in the reference layout, PyTorch's numbers.
fn shown_run(disabled: &[NodeId]) -> RunOptions {
    RunOptions { disabled_residuals: disabled.to_vec(), layout: Layout::Reference, ..RunOptions::default() }
}

fn plain(message: impl std::fmt::Display) -> ReplyError {
    ReplyError { message: message.to_string(), image: None }
}

/// Pasted pixels as an image, within the limits a decoded file gets.
fn image_from_rgba([w, h]: [u32; 2], rgba: &[u8]) -> Result<image::DynamicImage, String> {
    if w == 0 || h == 0 || w > preprocess::MAX_DIMENSION || h > preprocess::MAX_DIMENSION {
        return Err(format!("{w}×{h} pixels; images up to {0}×{0} are accepted", preprocess::MAX_DIMENSION));
    }
    image::RgbaImage::from_raw(w, h, rgba.to_vec())
        .map(image::DynamicImage::ImageRgba8)
        .ok_or_else(|| format!("{} bytes do not make {w}×{h} RGBA pixels", rgba.len()))
}

fn elapsed_ms(start: Instant) -> f64 {
    start.elapsed().as_secs_f64() * 1e3
}
