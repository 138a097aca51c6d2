//! The model worker: a named thread that owns the `Model` (tch modules are `Send`, not
//! `Sync`) and answers requests over bounded channels, so the window never waits on libtorch.
//!
//! Requests queue in a small bounded channel. Before working, the worker drains the queue
//! and keeps only the newest request of each kind: a user holding → asks for forty layers,
//! but only the last one is worth computing. The UI keeps its own outbox, coalesced the same
//! way, for the rare frame when the channel is full.
//!
//! A gradient pass is the longest request. It looks at the queue between layers and before
//! its backward pass: a new model, a device move, a new image or newer switches put it back
//! behind them instead of making them wait. Requests about the image and the layers of a
//! model that has since been replaced are dropped unanswered, not answered with errors.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError, TrySendError, sync_channel};
use std::time::Instant;

use tch::{Device, Kind, Tensor};

use crate::engine::{self, Prediction, WeightsChoice};
use crate::executor::{Layout, Model, RunOptions};
use crate::graph::NodeId;
use crate::preprocess::{self, MNIST_MEAN, MNIST_STD, Preprocess};
use crate::zoo::ArchSpec;

/// How many requests may wait in the channel; the outbox holds the overflow.
const REQUEST_CAPACITY: usize = 8;
/// Replies wait here until the next frame reads them.
const REPLY_CAPACITY: usize = 16;

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
    /// Decodes, preprocesses and runs an image, keeping outputs for the layer view as asked.
    Classify { image: ImageInput, disabled: Vec<NodeId>, retention: Retention },
    /// Forward + backward on the current image: gradient norms along depth.
    Gradients { disabled: Vec<NodeId>, target: Option<i64>, retention: Retention },
    /// One node's output from the last run.
    Activation { node: NodeId },
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
    Activation,
}

impl Request {
    pub fn kind(&self) -> RequestKind {
        match self {
            Request::Load { .. } => RequestKind::Load,
            Request::Device(_) => RequestKind::Device,
            Request::Classify { .. } => RequestKind::Classify,
            Request::Gradients { .. } => RequestKind::Gradients,
            Request::Activation { .. } => RequestKind::Activation,
        }
    }
}

/// Milliseconds spent in each stage of the last run.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Timings {
    pub decode_ms: Option<f64>,
    pub preprocess_ms: Option<f64>,
    pub forward_ms: Option<f64>,
    pub backward_ms: Option<f64>,
}

#[derive(Clone, Debug)]
pub struct Loaded {
    pub id: &'static str,
    pub origin: String,
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
    pub top5: Vec<Prediction>,
    pub preview: Preview,
    pub timings: Timings,
    pub device: Device,
}

#[derive(Clone, Debug)]
pub struct GradientFlow {
    pub arch: &'static str,
    pub disabled: Vec<NodeId>,
    /// The class asked for, `None` for the prediction.
    pub requested_target: Option<i64>,
    /// The class whose loss was differentiated.
    pub target: i64,
    pub loss: f64,
    /// Per node, in execution order.
    pub node_norms: Vec<Option<f64>>,
    /// Per node: the L2 norm over all its trainable parameters' gradients.
    pub param_norms: Vec<Option<f64>>,
    pub top5: Vec<Prediction>,
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

#[derive(Clone, Debug)]
pub enum Payload {
    Loaded(Loaded),
    Moved(Device),
    Predicted(Box<Predicted>),
    Gradients(Box<GradientFlow>),
    Activation(Box<ActivationData>),
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

/// The UI's end of the worker.
pub struct WorkerHandle {
    requests: SyncSender<(u64, Request)>,
    replies: Receiver<Outgoing>,
    /// Requests the channel had no room for, newest of each kind only.
    outbox: BTreeMap<RequestKind, (u64, Request)>,
    next_seq: u64,
    last_sent: BTreeMap<RequestKind, u64>,
    last_answered: BTreeMap<RequestKind, u64>,
    stopped: bool,
}

impl WorkerHandle {
    /// Starts the worker; `repaint` wakes the window when a reply lands.
    pub fn spawn(repaint: impl Fn() + Send + 'static) -> std::io::Result<Self> {
        let (request_tx, request_rx) = sync_channel(REQUEST_CAPACITY);
        let (reply_tx, reply_rx) = sync_channel(REPLY_CAPACITY);
        std::thread::Builder::new().name("convscope-model".into()).spawn(move || {
            Worker::default().run(&request_rx, &reply_tx, &repaint);
        })?;
        Ok(Self {
            requests: request_tx,
            replies: reply_rx,
            outbox: BTreeMap::new(),
            next_seq: 1,
            last_sent: BTreeMap::new(),
            last_answered: BTreeMap::new(),
            stopped: false,
        })
    }

    /// Queues a request, replacing an unsent one of the same kind; never blocks.
    pub fn send(&mut self, request: Request) {
        let seq = self.next_seq;
        self.next_seq += 1;
        let kind = request.kind();
        self.last_sent.insert(kind, seq);
        self.outbox.insert(kind, (seq, request));
        self.flush();
    }

    /// Hands queued requests to the worker, in kind order, until the channel is full.
    pub fn flush(&mut self) {
        while let Some((kind, entry)) = self.outbox.pop_first() {
            match self.requests.try_send(entry) {
                Ok(()) => {}
                Err(TrySendError::Full(entry)) => {
                    self.outbox.insert(kind, entry);
                    return;
                }
                Err(TrySendError::Disconnected(_)) => {
                    self.stopped = true;
                    self.outbox.clear();
                    return;
                }
            }
        }
    }

    /// The replies that have landed since the last frame.
    pub fn poll(&mut self) -> Vec<Reply> {
        self.flush();
        let mut replies = Vec::new();
        loop {
            match self.replies.try_recv() {
                Ok(outgoing) => {
                    let (seq, kind) = match &outgoing {
                        Outgoing::Reply(reply) => (reply.seq, reply.kind),
                        Outgoing::Dropped { seq, kind } => (*seq, *kind),
                    };
                    let answered = self.last_answered.entry(kind).or_default();
                    *answered = (*answered).max(seq);
                    if let Outgoing::Reply(reply) = outgoing {
                        replies.push(reply);
                    }
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    self.stopped = true;
                    break;
                }
            }
        }
        replies
    }

    /// Whether the newest request of this kind is still unanswered.
    pub fn is_pending(&self, kind: RequestKind) -> bool {
        !self.stopped
            && self.last_sent.get(&kind).copied().unwrap_or(0) > self.last_answered.get(&kind).copied().unwrap_or(0)
    }

    pub fn any_pending(&self) -> bool {
        self.last_sent.keys().any(|&kind| self.is_pending(kind))
    }

    /// Whether the worker thread has gone (it only stops if it panicked outside a request).
    pub fn stopped(&self) -> bool {
        self.stopped
    }

    /// Requests waiting here for room in the channel: at most one per kind.
    pub fn queued(&self) -> usize {
        self.outbox.len()
    }

    /// Whether a reply is the answer to the newest request of its kind; older answers of a
    /// superseded request are dropped by the caller.
    pub fn is_latest(&self, reply: &Reply) -> bool {
        self.last_sent.get(&reply.kind).is_none_or(|&seq| reply.seq >= seq)
    }
}

/// What the worker sends back: an answer, or word that a request was dropped unanswered
/// (its model was replaced before its turn), so the handle stops waiting for it.
enum Outgoing {
    Reply(Reply),
    Dropped { seq: u64, kind: RequestKind },
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

/// The worker's own state: the model and what the last run left behind.
#[derive(Default)]
struct Worker {
    spec: Option<ArchSpec>,
    model: Option<Model>,
    /// The request that built the model: gradients and layers asked for before it were
    /// about the previous model.
    model_seq: u64,
    /// The preprocessed current image (`1×C×H×W`, on the CPU).
    input: Option<Tensor>,
    /// The outputs kept from the last run (or, keeping only the viewed layer, the one last
    /// shown), for the layer view.
    outputs: Vec<Option<Tensor>>,
    /// The residual switches and retention of the last run, to run it again up to a node.
    disabled: Vec<NodeId>,
    retention: Retention,
}

impl Worker {
    fn run(mut self, requests: &Receiver<(u64, Request)>, replies: &SyncSender<Outgoing>, repaint: &dyn Fn()) {
        let inbox = Inbox::new(requests);
        while let Some((seq, request)) = inbox.next() {
            let kind = request.kind();
            if self.is_stale(seq, kind) {
                if replies.send(Outgoing::Dropped { seq, kind }).is_err() {
                    return;
                }
                repaint();
                continue;
            }
            let retry = (kind == RequestKind::Gradients).then(|| request.clone());
            // A libtorch call that panics (they are meant to return errors, but a bug in
            // a binding should not take the whole app down) becomes a message.
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.handle(request, &inbox)))
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
        matches!(kind, RequestKind::Gradients | RequestKind::Activation)
            && (seq < self.model_seq || (self.model.is_some() && self.input.is_none()))
    }

    /// Carries out one request; `Ok(None)` when it yielded to newer requests midway.
    fn handle(&mut self, request: Request, inbox: &Inbox) -> Result<Option<Payload>, ReplyError> {
        let payload = match request {
            Request::Load { spec, weights, device } => self.load(*spec, &weights, device)?,
            Request::Device(device) => {
                let model = self.model_mut()?;
                model.to_device(device).map_err(plain)?;
                Payload::Moved(device)
            }
            Request::Classify { image, disabled, retention } => {
                let predicted = self
                    .classify(&image, &disabled, retention)
                    .map_err(|message| ReplyError { message, image: Some(image.name()) })?;
                Payload::Predicted(Box::new(predicted))
            }
            Request::Gradients { disabled, target, retention } => {
                let interrupt = || inbox.should_yield(RequestKind::Gradients);
                match self.gradients(&disabled, target, retention, &interrupt).map_err(plain)? {
                    Some(flow) => Payload::Gradients(Box::new(flow)),
                    None => return Ok(None),
                }
            }
            Request::Activation { node } => Payload::Activation(Box::new(self.activation(node)?)),
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
        let loaded =
            Loaded { id: spec.id, origin: model.origin().to_string(), warnings, device, load_ms: elapsed_ms(start) };
        // Only now does the previous model go: it served every request until here.
        self.model = Some(model);
        self.spec = Some(spec);
        self.input = None;
        self.outputs.clear();
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
        let preview = preview(&input, &spec.preprocess)?;
        let preprocess_ms = elapsed_ms(start);
        let start = Instant::now();
        let options = shown_run(disabled);
        let (logits, outputs) = match retention {
            Retention::EveryLayer => {
                let capture = model.forward_capture(&input, &options).map_err(|e| e.to_string())?;
                (capture.logits, capture.outputs)
            }
            Retention::ViewedLayer => (model.forward(&input, &options).map_err(|e| e.to_string())?, Vec::new()),
        };
        let top5 = engine::top_k(&logits, spec.labels, 5).map_err(|e| e.to_string())?;
        let forward_ms = elapsed_ms(start);
        let predicted = Predicted {
            arch: spec.id,
            image: image.clone(),
            top5,
            preview,
            timings: Timings {
                decode_ms: Some(decode_ms),
                preprocess_ms: Some(preprocess_ms),
                forward_ms: Some(forward_ms),
                backward_ms: None,
            },
            device: model.device(),
        };
        self.input = Some(input);
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
        interrupt: &dyn Fn() -> bool,
    ) -> Result<Option<GradientFlow>, String> {
        let (spec, model) = self.loaded()?;
        let input = self.input.as_ref().ok_or("open an image first: gradients are taken for an image")?;
        let graph = model.graph();
        let options = RunOptions { disabled_residuals: disabled.to_vec(), ..RunOptions::default() };
        let start = Instant::now();
        let Some(report) =
            model.gradients_interruptible(input, target, &options, interrupt).map_err(|e| e.to_string())?
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
        let flow = GradientFlow {
            arch: spec.id,
            disabled: disabled.to_vec(),
            requested_target: target,
            target: report.targets.first().copied().unwrap_or(0),
            loss: report.loss,
            node_norms: report.node_grad_norms,
            param_norms: squared.into_iter().map(|s| s.map(f64::sqrt)).collect(),
            top5,
            timings: Timings { backward_ms: Some(backward_ms), ..Timings::default() },
            device: model.device(),
        };
        // The layer view now shows the network as switched.
        self.outputs = match retention {
            Retention::EveryLayer => report.outputs,
            Retention::ViewedLayer => Vec::new(),
        };
        self.disabled = disabled.to_vec();
        self.retention = retention;
        Ok(Some(flow))
    }

    fn activation(&mut self, node: NodeId) -> Result<ActivationData, ReplyError> {
        let (spec, model) = self.loaded().map_err(plain)?;
        let arch = spec.id;
        let kept = self.outputs.get(node).is_some_and(Option::is_some);
        if !kept && self.retention == Retention::ViewedLayer {
            let input = self.input.as_ref().ok_or_else(|| plain("open an image first"))?;
            let options = shown_run(&self.disabled);
            // A node the switched network does not run has no output, as with every layer kept.
            if model.runs_node(node, &options) {
                let output = model.forward_to(input, &options, node).map_err(plain)?;
                // One layer is kept at a time: the previous one goes.
                let mut outputs: Vec<Option<Tensor>> = (0..model.graph().nodes.len()).map(|_| None).collect();
                outputs[node] = Some(output);
                self.outputs = outputs;
            }
        }
        let tensor = self.outputs.get(node).and_then(Option::as_ref).ok_or_else(|| {
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

/// The preprocessed tensor back in 0..255, as the network sees it after resize and crop.
fn preview(input: &Tensor, preprocess: &Preprocess) -> Result<Preview, String> {
    let size = input.size();
    let &[_, channels, h, w] = size.as_slice() else {
        return Err(format!("unexpected input shape {size:?}"));
    };
    let values = input
        .f_get(0)
        .and_then(|t| t.f_contiguous())
        .and_then(|t| t.f_flatten(0, -1))
        .and_then(|t| Vec::<f32>::try_from(&t))
        .map_err(|e| format!("reading the input: {e}"))?;
    let plane = (h * w) as usize;
    let channels = (channels as usize).max(1);
    // Per channel, `value * std + mean` undoes the normalisation. CIFAR's statistics are
    // private to preprocess.rs; a per-channel stretch to 0..1 shows the same picture.
    let mut mean = vec![0.0f32; channels];
    let mut std = vec![1.0f32; channels];
    for c in 0..channels {
        match *preprocess {
            Preprocess::ImageNet { mean: m, std: s, .. } => {
                mean[c] = m[c.min(2)];
                std[c] = s[c.min(2)];
            }
            Preprocess::Digit { .. } => {
                mean[c] = MNIST_MEAN;
                std[c] = MNIST_STD;
            }
            Preprocess::Cifar => {
                let slice = values.get(c * plane..(c + 1) * plane).unwrap_or(&[]);
                let (lo, hi) = slice.iter().fold((f32::MAX, f32::MIN), |(lo, hi), &v| (lo.min(v), hi.max(v)));
                let range = (hi - lo).max(1e-6);
                std[c] = 1.0 / range;
                mean[c] = -lo / range;
            }
        }
    }
    let mut rgb = vec![0u8; plane * 3];
    for i in 0..plane {
        for out in 0..3 {
            let c = out.min(channels - 1);
            let v = values.get(c * plane + i).copied().unwrap_or(0.0) * std[c] + mean[c];
            rgb[i * 3 + out] = (v.clamp(0.0, 1.0) * 255.0).round() as u8;
        }
    }
    Ok(Preview { size: [w as usize, h as usize], rgb })
}
