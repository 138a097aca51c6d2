//! convscope: the classic convolutional networks as data, run on libtorch.
//!
//! - `graph`: architectures as graphs of named nodes; `shapes`: static shape inference.
//! - `executor`: runs a graph (plain, capturing, with gradients); `weights`: safetensors I/O.
//! - `zoo`: one file per family; `preprocess`: image decoding and transforms, `resample`:
//!   Pillow's resize.
//! - `manifest`, `store`: the installed weights folder; `train`: LeNet-5 on MNIST digits.
//! - `memory`: the allocator policy that lets repeated captures reuse their pages.
//! - `engine`: what the CLI, the GUI and the tests share; `cli`, `gui`: the faces.

pub mod app;
pub mod bench;
pub mod cli;
pub mod crash;
pub mod engine;
pub mod error;
pub mod executor;
pub mod graph;
pub mod gui;
pub mod manifest;
pub mod memory;
pub mod preprocess;
pub mod resample;
pub mod shapes;
pub mod store;
pub mod train;
pub mod weights;
pub mod zoo;

pub use error::{Error, Result};
