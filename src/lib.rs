//! convscope: the classic convolutional networks as data, run on libtorch.
//!
//! - `graph`: architectures as graphs of named nodes; `shapes`: static shape inference.
//! - `executor`: runs a graph (plain, capturing, with gradients); `weights`: safetensors I/O.
//! - `zoo`: one file per family; `preprocess`: image decoding and transforms.
//! - `engine`: what the CLI, the GUI and the tests share; `cli`, `gui`: the faces.

pub mod cli;
pub mod engine;
pub mod error;
pub mod executor;
pub mod graph;
pub mod gui;
pub mod preprocess;
pub mod shapes;
pub mod weights;
pub mod zoo;

pub use error::{Error, Result};
