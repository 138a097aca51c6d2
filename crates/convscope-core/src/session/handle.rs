//! The app's end of the worker: sends without blocking, coalesces, and tracks what is pending.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError, TrySendError, sync_channel};

use crate::attribution;

use super::protocol::{AttributionProgress, Outgoing, Reply, Request, RequestKind};
use super::serve::{AttributionShared, Worker};

/// How many requests may wait in the channel; the outbox holds the overflow.
const REQUEST_CAPACITY: usize = 8;
/// Replies wait here until the next frame reads them.
const REPLY_CAPACITY: usize = 16;

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
    attribution: Arc<AttributionShared>,
    featvis: Arc<super::featvis::FeatvisShared>,
}

impl WorkerHandle {
    /// Starts the worker; `repaint` wakes the window when a reply lands.
    pub fn spawn(repaint: impl Fn() + Send + 'static) -> std::io::Result<Self> {
        Self::spawn_with_threads(None, repaint)
    }

    /// `spawn`, with libtorch's intra-op threads on the worker set to `threads` (`None`:
    /// libtorch's default, one per physical core).
    pub fn spawn_with_threads(threads: Option<usize>, repaint: impl Fn() + Send + 'static) -> std::io::Result<Self> {
        let (request_tx, request_rx) = sync_channel(REQUEST_CAPACITY);
        let (reply_tx, reply_rx) = sync_channel(REPLY_CAPACITY);
        let worker = Worker::default();
        let attribution = Arc::clone(&worker.attribution);
        let featvis = Arc::clone(&worker.featvis);
        std::thread::Builder::new().name("convscope-model".into()).spawn(move || {
            if let Some(threads) = threads {
                tch::set_num_threads(i32::try_from(threads.max(1)).unwrap_or(1));
            }
            worker.run(&request_rx, &reply_tx, &repaint);
        })?;
        Ok(Self {
            requests: request_tx,
            replies: reply_rx,
            outbox: BTreeMap::new(),
            next_seq: 1,
            last_sent: BTreeMap::new(),
            last_answered: BTreeMap::new(),
            stopped: false,
            attribution,
            featvis,
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

    /// How far the newest attribution request has come, while it runs.
    pub fn attribution_progress(&self) -> Option<attribution::Progress> {
        let latest = self.last_sent.get(&RequestKind::Attribution).copied()?;
        self.attribution
            .progress()
            .filter(|p| p.seq == latest && self.is_pending(RequestKind::Attribution))
            .map(|AttributionProgress { progress, .. }| progress)
    }

    /// Stops the attribution requests sent so far: the one under way between two chunks, the
    /// others before they start. The worker answers them as dropped.
    pub fn cancel_attribution(&mut self) {
        let Some(latest) = self.last_sent.get(&RequestKind::Attribution).copied() else { return };
        self.attribution.cancel_up_to(latest);
        if self.outbox.remove(&RequestKind::Attribution).is_some() {
            // Never sent: nobody will answer it.
            let answered = self.last_answered.entry(RequestKind::Attribution).or_default();
            *answered = (*answered).max(latest);
        }
    }

    /// How far the newest feature visualisation has come, while it runs.
    pub fn featvis_progress(&self) -> Option<super::FeatvisProgress> {
        let latest = self.last_sent.get(&RequestKind::FeatureVis).copied()?;
        self.featvis.progress().filter(|p| p.seq == latest && self.is_pending(RequestKind::FeatureVis))
    }

    /// Stops the feature visualisations sent so far, as `cancel_attribution` does.
    pub fn cancel_featvis(&mut self) {
        let Some(latest) = self.last_sent.get(&RequestKind::FeatureVis).copied() else { return };
        self.featvis.cancel_up_to(latest);
        if self.outbox.remove(&RequestKind::FeatureVis).is_some() {
            let answered = self.last_answered.entry(RequestKind::FeatureVis).or_default();
            *answered = (*answered).max(latest);
        }
    }

    /// How far the newest search for top-activating examples has come, while it runs.
    pub fn examples_progress(&self) -> Option<super::ExamplesProgress> {
        let latest = self.last_sent.get(&RequestKind::TopExamples).copied()?;
        self.featvis.examples_progress().filter(|p| p.seq == latest && self.is_pending(RequestKind::TopExamples))
    }

    /// Stops the searches for examples sent so far, as `cancel_attribution` does.
    pub fn cancel_examples(&mut self) {
        let Some(latest) = self.last_sent.get(&RequestKind::TopExamples).copied() else { return };
        self.featvis.cancel_examples_up_to(latest);
        if self.outbox.remove(&RequestKind::TopExamples).is_some() {
            let answered = self.last_answered.entry(RequestKind::TopExamples).or_default();
            *answered = (*answered).max(latest);
        }
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
