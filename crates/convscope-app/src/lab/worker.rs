//! The lab's own thread: it owns the `Lab` (its networks and their optimisers), trains it
//! step after step and tells the window what happened over a bounded channel; the window
//! asks for a pause, a step, a switch or a save over another. The explorer's model worker is
//! left alone: training never waits on a classification, nor the other way round.

use std::path::PathBuf;
use std::sync::mpsc::{Receiver, RecvError, SyncSender, TryRecvError, TrySendError, sync_channel};

use convscope_core::graph::NodeId;
use convscope_core::lab::{Lab, LabEvent, LabSettings, NetSpec};
use convscope_core::zoo::resnet::CifarConfig;

/// Requests wait here; the window sends a handful per click at most.
const REQUEST_CAPACITY: usize = 32;
/// Updates wait here for the next frame. Steps of a small network come in hundreds per
/// second, frames at ten while training: when the window falls this far behind, training
/// waits for it rather than queueing without end.
const UPDATE_CAPACITY: usize = 1024;

/// What the window asks of the lab thread.
#[derive(Clone, Debug)]
pub enum LabRequest {
    Pause,
    Resume,
    /// One step of the run furthest behind, while paused.
    StepOnce,
    /// From the next step on; `None`: every run.
    SetLr {
        run: Option<usize>,
        lr: f64,
    },
    /// `names` as `Lab::set_shortcuts` takes them: `all`, stages, blocks.
    SetShortcuts {
        run: usize,
        names: Vec<String>,
        enabled: bool,
    },
    /// More steps for every run that has not diverged.
    Extend(usize),
    Save(PathBuf),
}

/// One network of a started lab, as the window needs to know it.
#[derive(Clone, Debug)]
pub struct RunInfo {
    pub id: String,
    pub spec: NetSpec,
    pub config: CifarConfig,
    /// The rows of the gradient heatmap, in depth order.
    pub layers: Vec<String>,
    pub parameters: i64,
}

#[derive(Clone, Debug)]
pub struct LabStarted {
    pub runs: Vec<RunInfo>,
    pub description: String,
    pub skipped: usize,
    pub steps_per_epoch: usize,
    pub threads: i32,
}

/// What the lab thread tells the window.
#[derive(Debug)]
pub enum LabUpdate {
    /// Images of a folder read so far.
    Loading {
        done: usize,
        total: usize,
    },
    Started(LabStarted),
    /// The lab could not be built (a bad folder, settings out of range): nothing trains.
    Failed(String),
    Event(LabEvent),
    /// A step failed (libtorch said why); the lab pauses.
    StepFailed(String),
    Paused(bool),
    /// A new learning rate, with each run's steps done when it took effect.
    Lr {
        run: Option<usize>,
        lr: f64,
        steps: Vec<usize>,
    },
    /// The merges of `run` switched off now (after `step` steps; `what` says what changed),
    /// or why the switch was refused.
    Shortcuts {
        run: usize,
        step: usize,
        what: String,
        result: Result<Vec<NodeId>, String>,
    },
    Extended {
        steps: usize,
    },
    Saved(Result<PathBuf, String>),
    /// Every run finished or diverged.
    Finished,
}

/// The window's end of a lab thread. Dropping it ends the thread after its current step.
pub struct LabHandle {
    requests: SyncSender<LabRequest>,
    updates: Receiver<LabUpdate>,
    stopped: bool,
}

impl LabHandle {
    /// Starts a thread that loads the data, builds the lab and trains it (running from the
    /// start unless `paused`) with `threads` intra-op threads; `wake` is called after updates
    /// the window should show at once (not after every step: while training, the window
    /// repaints at its own bounded rate).
    pub fn spawn(
        settings: LabSettings,
        threads: usize,
        paused: bool,
        wake: impl Fn() + Send + 'static,
    ) -> std::io::Result<Self> {
        let (request_tx, request_rx) = sync_channel(REQUEST_CAPACITY);
        let (update_tx, update_rx) = sync_channel(UPDATE_CAPACITY);
        std::thread::Builder::new().name("convscope-lab".into()).spawn(move || {
            // libtorch's intra-op threads: one is the fastest for networks this small, and
            // the CLI's default (see `convscope lab --threads`).
            tch::set_num_threads(threads.max(1) as i32);
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                serve(settings, paused, &request_rx, &update_tx, &wake)
            }));
            if let Err(panic) = outcome {
                let text = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                    .unwrap_or_else(|| "unknown failure".into());
                let _ = update_tx.send(LabUpdate::Failed(format!("the lab thread failed: {text}")));
                wake();
            }
        })?;
        Ok(Self { requests: request_tx, updates: update_rx, stopped: false })
    }

    /// Never blocks: a request that finds the channel full is dropped and the caller told.
    pub fn send(&mut self, request: LabRequest) -> bool {
        match self.requests.try_send(request) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) => false,
            Err(TrySendError::Disconnected(_)) => {
                self.stopped = true;
                false
            }
        }
    }

    /// What has arrived since the last frame.
    pub fn poll(&mut self) -> Vec<LabUpdate> {
        let mut updates = Vec::new();
        loop {
            match self.updates.try_recv() {
                Ok(update) => updates.push(update),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    self.stopped = true;
                    break;
                }
            }
        }
        updates
    }

    /// Whether the thread has ended (the window's handle outlived it).
    pub fn stopped(&self) -> bool {
        self.stopped
    }
}

/// The thread's loop: build the lab, then train while running, waiting for requests while
/// paused or finished. Returns when the window drops its handle.
fn serve(
    settings: LabSettings,
    paused: bool,
    requests: &Receiver<LabRequest>,
    updates: &SyncSender<LabUpdate>,
    wake: &dyn Fn(),
) {
    let send = |update: LabUpdate| updates.send(update).is_ok();
    let mut last_told = 0;
    let lab = Lab::load(settings, &mut |done, total| {
        // A progress report is worth nothing late: one that finds the channel full is dropped.
        if done == total || done >= last_told + total.div_ceil(100) {
            last_told = done;
            let _ = updates.try_send(LabUpdate::Loading { done, total });
            wake();
        }
    });
    let mut lab = match lab {
        Ok(lab) => lab,
        Err(e) => {
            send(LabUpdate::Failed(e.to_string()));
            wake();
            return;
        }
    };
    let started = LabStarted {
        runs: lab
            .runs()
            .iter()
            .map(|run| RunInfo {
                id: run.id.clone(),
                spec: run.spec,
                config: run.config,
                layers: run.layer_names().into_iter().map(str::to_owned).collect(),
                parameters: run.model().graph().parameter_count(),
            })
            .collect(),
        description: lab.data().description.clone(),
        skipped: lab.data().skipped.len(),
        steps_per_epoch: lab.steps_per_epoch(),
        threads: tch::get_num_threads(),
    };
    if !send(LabUpdate::Started(started)) {
        return;
    }
    wake();
    let mut running = !paused;
    let mut told_finished = false;
    loop {
        let training = running && !lab.finished();
        // While training, requests are taken between steps; otherwise the thread sleeps
        // until one comes.
        let request = if training {
            match requests.try_recv() {
                Ok(request) => Some(request),
                Err(TryRecvError::Empty) => None,
                Err(TryRecvError::Disconnected) => return,
            }
        } else {
            match requests.recv() {
                Ok(request) => Some(request),
                Err(RecvError) => return,
            }
        };
        let mut step_once = false;
        if let Some(request) = request {
            let reply = match request {
                LabRequest::Pause => {
                    running = false;
                    Some(LabUpdate::Paused(true))
                }
                LabRequest::Resume => {
                    running = true;
                    Some(LabUpdate::Paused(false))
                }
                LabRequest::StepOnce => {
                    step_once = !running;
                    None
                }
                LabRequest::SetLr { run, lr } => Some(match lab.set_lr(run, lr) {
                    Ok(()) => LabUpdate::Lr { run, lr, steps: lab.runs().iter().map(|r| r.step_count()).collect() },
                    Err(e) => LabUpdate::StepFailed(format!("learning rate {lr}: {e}")),
                }),
                LabRequest::SetShortcuts { run, names, enabled } => {
                    let step = lab.runs().get(run).map_or(0, |r| r.step_count());
                    let what = format!("shortcuts {} {}", names.join(", "), if enabled { "on" } else { "off" });
                    let result = lab.set_shortcuts(run, &names, enabled).map_err(|e| e.to_string());
                    Some(LabUpdate::Shortcuts { run, step, what, result })
                }
                LabRequest::Extend(steps) => {
                    lab.extend(steps);
                    told_finished = false;
                    Some(LabUpdate::Extended { steps: lab.settings().steps })
                }
                LabRequest::Save(dir) => {
                    Some(LabUpdate::Saved(lab.save(&dir).map(|()| dir.clone()).map_err(|e| e.to_string())))
                }
            };
            if let Some(reply) = reply {
                if !send(reply) {
                    return;
                }
                wake();
            }
            if !step_once {
                continue;
            }
        }
        if !(training || step_once) {
            continue;
        }
        match lab.advance() {
            Ok(events) => {
                for event in events {
                    let discrete = !matches!(event, LabEvent::Step { .. });
                    if !send(LabUpdate::Event(event)) {
                        return;
                    }
                    if discrete || step_once {
                        wake();
                    }
                }
            }
            Err(e) => {
                running = false;
                if !send(LabUpdate::StepFailed(e.to_string())) {
                    return;
                }
                wake();
            }
        }
        if lab.finished() && !told_finished {
            told_finished = true;
            if !send(LabUpdate::Finished) {
                return;
            }
            wake();
        }
    }
}
