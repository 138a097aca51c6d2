//! What a capture keeps: every node's output, some of them as a recipe rather than a tensor.
//!
//! Keeping every output forbids the in-place activations that make a plain forward cheap: a
//! ReLU may not overwrite the batch norm output it reads if that output is to be shown. On
//! memory-bound networks (MobileNet v2, EfficientNet-Lite0) the fresh buffers cost a capture
//! about a fifth more than a plain forward (README, Benchmarks). So a capture lets an
//! activation overwrite its input where that input is cheap to make again, bit for bit, from
//! values the capture keeps anyway: a batch norm on its running statistics (from the
//! convolution's output) or a residual sum (from its two terms). And it lets go of a
//! convolution's output once the batch norm that alone reads it has run, and of a padded copy
//! or a squeeze-and-excitation's output once its convolution has run, as a plain forward does, so the next convolution writes into
//! memory still in the cache rather than a fresh buffer: those are made again from their kept
//! inputs. Each is made again,
//! by the same ATen call on the same tensors in the same thread, only when someone asks for
//! it.

use std::sync::Arc;

use tch::Tensor;

use crate::error::{Error, Result, TorchContext};
use crate::graph::{Conv2d, Graph, NodeId};

/// How to make a node's output again from other outputs the capture keeps.
pub(super) enum Recipe {
    /// `conv2d` as `eval_node` runs it in the reference layout, with the in-place versions
    /// of its weight and bias when the capture ran.
    Conv { input: NodeId, params: Vec<Tensor>, versions: Vec<i64>, conv: Conv2d },
    /// `constant_pad_nd` with zeros.
    ZeroPad { input: NodeId, pad: [i64; 6] },
    /// `x · scale`, a squeeze-and-excitation's output.
    Scale { x: NodeId, scale: NodeId },
    /// `batch_norm` with running statistics, as `eval_node` runs it: weight, bias, running
    /// mean, running variance, with their in-place versions when the capture ran, so that a
    /// training step since is refused rather than answered with other numbers.
    BatchNorm { input: NodeId, params: [Tensor; 4], versions: [i64; 4], momentum: f64, eps: f64 },
    /// `a + b`.
    Add { a: NodeId, b: NodeId },
    /// `a · scale + b`.
    ScaledAdd { a: NodeId, b: NodeId, scale: f64 },
}

/// Every node's output from one forward pass: `None` for nodes the run did not need.
#[derive(Default)]
pub struct Outputs {
    kept: Vec<Option<Tensor>>,
    remade: Vec<Option<Recipe>>,
    /// For naming nodes in errors; only outputs with recipes have it.
    graph: Option<Arc<Graph>>,
}

impl Outputs {
    pub(super) fn new(kept: Vec<Option<Tensor>>, remade: Vec<Option<Recipe>>, graph: Arc<Graph>) -> Self {
        Self { kept, remade, graph: Some(graph) }
    }

    /// Outputs held as tensors, none to remake (a gradient pass's, one layer's).
    pub fn from_tensors(kept: Vec<Option<Tensor>>) -> Self {
        let n = kept.len();
        Self { kept, remade: (0..n).map(|_| None).collect(), graph: None }
    }

    /// `n` nodes of which only `node` has an output.
    pub fn only(n: usize, node: NodeId, output: Tensor) -> Self {
        let mut kept: Vec<Option<Tensor>> = (0..n).map(|_| None).collect();
        if let Some(slot) = kept.get_mut(node) {
            *slot = Some(output);
        }
        Self::from_tensors(kept)
    }

    /// Nodes counted, run or not.
    pub fn len(&self) -> usize {
        self.kept.len()
    }

    pub fn is_empty(&self) -> bool {
        self.kept.is_empty()
    }

    /// Whether the run gave `node` an output, held or to be made again.
    pub fn has(&self, node: NodeId) -> bool {
        self.kept.get(node).is_some_and(Option::is_some) || self.remade.get(node).is_some_and(Option::is_some)
    }

    /// The output held as a tensor, with whatever autograd graph it has; `None` for one to
    /// be made again (never so in a gradient pass or an autograd capture, which keep all).
    pub fn held(&self, node: NodeId) -> Option<&Tensor> {
        self.kept.get(node).and_then(Option::as_ref)
    }

    /// Whether `node`'s output is made again when asked for rather than held.
    pub fn is_remade(&self, node: NodeId) -> bool {
        self.remade.get(node).is_some_and(Option::is_some)
    }

    /// `node`'s output: the tensor held, or one made again now, equal bit for bit to what
    /// the run computed.
    pub fn get(&self, node: NodeId) -> Result<Option<Tensor>> {
        if let Some(t) = self.held(node) {
            return Ok(Some(t.shallow_clone()));
        }
        let Some(recipe) = self.remade.get(node).and_then(Option::as_ref) else { return Ok(None) };
        let name =
            || self.graph.as_ref().and_then(|g| g.nodes.get(node)).map_or(format!("node {node}"), |n| n.name.clone());
        // An input may itself be made again: a batch norm's convolution.
        let input =
            |from: NodeId| self.get(from)?.ok_or_else(|| Error::Input(format!("{}: an input was not kept", name())));
        let unchanged = |params: &[Tensor], versions: &[i64]| -> Result<()> {
            for (t, &version) in params.iter().zip(versions) {
                if t.f_internal_version().context(name)? != version {
                    return Err(Error::Input(format!(
                        "{}: the model's weights changed since this output was computed; run it again",
                        name()
                    )));
                }
            }
            Ok(())
        };
        let _guard = tch::no_grad_guard();
        let made = match recipe {
            Recipe::Conv { input: from, params, versions, conv } => {
                unchanged(params, versions)?;
                input(*from)?.f_conv2d(&params[0], params.get(1), conv.stride, conv.padding, conv.dilation, conv.groups)
            }
            Recipe::ZeroPad { input: from, pad } => input(*from)?.f_constant_pad_nd(pad),
            Recipe::Scale { x, scale } => input(*x)?.f_mul(&input(*scale)?),
            Recipe::BatchNorm { input: from, params, versions, momentum, eps } => {
                unchanged(params, versions)?;
                let [weight, bias, mean, var] = params;
                Tensor::f_batch_norm(
                    &input(*from)?,
                    Some(weight),
                    Some(bias),
                    Some(mean),
                    Some(var),
                    false,
                    *momentum,
                    *eps,
                    true,
                )
            }
            Recipe::Add { a, b } => input(*a)?.f_add(&input(*b)?),
            Recipe::ScaledAdd { a, b, scale } => {
                let b = input(*b)?;
                input(*a)?.f_mul_scalar(*scale).and_then(|t| t.f_add(&b))
            }
        }
        .context(name)?;
        Ok(Some(made))
    }

    /// Every output as a tensor, those to be made again made now.
    pub fn into_tensors(self) -> Result<Vec<Option<Tensor>>> {
        (0..self.len()).map(|node| self.get(node)).collect()
    }

    /// The same outputs, sharing their memory.
    pub fn shallow_clone(&self) -> Self {
        let remade = self
            .remade
            .iter()
            .map(|r| {
                r.as_ref().map(|r| match r {
                    Recipe::Conv { input, params, versions, conv } => Recipe::Conv {
                        input: *input,
                        params: params.iter().map(Tensor::shallow_clone).collect(),
                        versions: versions.clone(),
                        conv: *conv,
                    },
                    Recipe::ZeroPad { input, pad } => Recipe::ZeroPad { input: *input, pad: *pad },
                    Recipe::Scale { x, scale } => Recipe::Scale { x: *x, scale: *scale },
                    Recipe::BatchNorm { input, params, versions, momentum, eps } => Recipe::BatchNorm {
                        input: *input,
                        params: params.each_ref().map(Tensor::shallow_clone),
                        versions: *versions,
                        momentum: *momentum,
                        eps: *eps,
                    },
                    Recipe::Add { a, b } => Recipe::Add { a: *a, b: *b },
                    Recipe::ScaledAdd { a, b, scale } => Recipe::ScaledAdd { a: *a, b: *b, scale: *scale },
                })
            })
            .collect();
        let kept = self.kept.iter().map(|t| t.as_ref().map(Tensor::shallow_clone)).collect();
        Self { kept, remade, graph: self.graph.clone() }
    }
}
