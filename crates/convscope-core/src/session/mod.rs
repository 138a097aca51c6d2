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

mod featvis;
mod handle;
mod protocol;
mod serve;

pub use featvis::{ExampleStrip, ExamplesProgress, FeatvisProgress, TOP_EXAMPLES, TopExamplesFound, Visualized};
pub use handle::WorkerHandle;
pub use protocol::*;
