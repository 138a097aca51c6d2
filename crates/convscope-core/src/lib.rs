//! convscope's engine, with no window and no command line: the classic convolutional
//! networks as graphs of named nodes (`graph`, `shapes`, one file per family under `zoo`),
//! run on libtorch by the `executor` (plain forward, every node's output, gradient norms),
//! with weights read and written under the reference's state-dict names (`weights`, and the
//! installed folder in `manifest` and `store`), images turned into tensors exactly as
//! PIL + torchvision do (`preprocess`, libjpeg-turbo's JPEG decoding with Pillow's settings in
//! `jpeg`, Pillow's resampling in `resample`), LeNet-5 trained on MNIST digits (`train`), the
//! residual lab (`lab`: plain and residual CIFAR networks trained side by side with PyTorch's
//! SGD, on the digits or a folder of images), attribution maps defined as captum defines them
//! (`attribution`: Grad-CAM and its kin at any node, Saliency, Guided Backprop, Integrated
//! Gradients, SmoothGrad, Occlusion), and the `session`: the worker thread that owns a model
//! and answers requests over bounded channels, which the app and the tests drive. `engine`
//! holds what every face shares above the executor, `paths` where the checkout keeps things,
//! `format` the numbers as both faces print them. Nothing here links egui, eframe, wgpu or clap.

pub mod attribution;
pub mod calculators;
pub mod compare;
pub mod drawing;
pub mod engine;
pub mod error;
pub mod executor;
pub mod export;
pub mod featvis;
pub mod format;
pub mod graph;
pub mod history;
mod jpeg;
pub mod lab;
pub mod latency;
pub mod manifest;
pub mod memory;
pub mod paths;
pub mod preprocess;
pub mod resample;
pub mod session;
pub mod shapes;
pub mod store;
pub mod train;
pub mod weights;
pub mod zoo;

pub use error::{Error, Result};
