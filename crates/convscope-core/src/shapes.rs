//! Static shape inference: output shape, parameters and multiply-accumulates of every node
//! for a given input size, without touching libtorch.
//!
//! MACs follow the convention of torchvision's model tables: the multiply-accumulates of
//! convolutions and linear layers. Everything else is counted apart as `elementwise`
//! arithmetic so the totals stay comparable with the published figures.

use serde::Serialize;

use crate::error::Error;
use crate::graph::{Graph, Op, Pool2d};

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct NodeInfo {
    /// Output shape for a batch of one, channels first (`[C, H, W]` or `[F]`).
    pub shape: Vec<i64>,
    pub params: i64,
    pub macs: i64,
    /// Other arithmetic (normalisation, activations, additions, pooling), one per operation.
    pub elementwise: i64,
    /// In an auxiliary classifier: runs in training only, so left out of the totals.
    pub aux: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct ShapeReport {
    pub input: [i64; 3],
    pub nodes: Vec<NodeInfo>,
    /// Why the auxiliary classifiers cannot take this input (their nodes then have an empty
    /// shape). The reference skips them outside training, so an inference run still can, as
    /// torchvision's Inception v3 takes 171×171 in eval mode but not in training.
    #[serde(skip)]
    pub aux_error: Option<String>,
}

impl ShapeReport {
    pub fn total_params(&self) -> i64 {
        self.nodes.iter().map(|n| n.params).sum()
    }
    /// MACs of an inference pass (auxiliary classifiers excluded, as the references count).
    pub fn total_macs(&self) -> i64 {
        self.nodes.iter().filter(|n| !n.aux).map(|n| n.macs).sum()
    }
    /// MACs the auxiliary classifiers add in training.
    pub fn aux_macs(&self) -> i64 {
        self.nodes.iter().filter(|n| n.aux).map(|n| n.macs).sum()
    }
}

fn pool_out(size: i64, kernel: i64, stride: i64, padding: i64, dilation: i64, ceil_mode: bool) -> i64 {
    let span = size + 2 * padding - dilation * (kernel - 1) - 1;
    if span < 0 {
        return 0;
    }
    let mut out = if ceil_mode { (span + stride - 1) / stride + 1 } else { span / stride + 1 };
    // PyTorch drops a last window that would start inside the right padding.
    if ceil_mode && (out - 1) * stride >= size + padding {
        out -= 1;
    }
    out
}

fn spatial(shape: &[i64], node: &str, op: &str) -> Result<(i64, i64, i64), Error> {
    match shape {
        [c, h, w] => Ok((*c, *h, *w)),
        _ => {
            Err(Error::Shape { node: node.to_owned(), reason: format!("{op} needs a [C, H, W] input, got {shape:?}") })
        }
    }
}

fn pooled(shape: &[i64], pool: &Pool2d, node: &str, op: &str) -> Result<Vec<i64>, Error> {
    let (c, h, w) = spatial(shape, node, op)?;
    if pool.padding[0] * 2 > pool.kernel[0] || pool.padding[1] * 2 > pool.kernel[1] {
        return Err(Error::Shape { node: node.to_owned(), reason: "padding exceeds half the kernel".into() });
    }
    let oh = pool_out(h, pool.kernel[0], pool.stride[0], pool.padding[0], 1, pool.ceil_mode);
    let ow = pool_out(w, pool.kernel[1], pool.stride[1], pool.padding[1], 1, pool.ceil_mode);
    if oh < 1 || ow < 1 {
        return Err(too_small(node, op, h, w, pool.kernel));
    }
    Ok(vec![c, oh, ow])
}

fn too_small(node: &str, op: &str, h: i64, w: i64, kernel: [i64; 2]) -> Error {
    Error::Shape {
        node: node.to_owned(),
        reason: format!(
            "the input is too small here: {op} with a {}×{} window gets a {h}×{w} map; use a larger --input",
            kernel[0], kernel[1]
        ),
    }
}

impl Graph {
    /// Infers every node's output for a `channels × height × width` input.
    pub fn infer_shapes(&self, height: i64, width: i64) -> Result<ShapeReport, Error> {
        let channels = self.input_channels();
        if height < 1 || width < 1 {
            return Err(Error::Input(format!("input size {height}×{width} is empty")));
        }
        let mut nodes: Vec<NodeInfo> = Vec::with_capacity(self.nodes.len());
        let mut aux_error = None;
        for node in &self.nodes {
            let name = node.name.as_str();
            let input_shape = |i: usize| -> &[i64] { &nodes[node.inputs[i].from].shape };
            let numel = |s: &[i64]| s.iter().product::<i64>();
            let inferred = || -> Result<(Vec<i64>, i64, i64), Error> {
                Ok(match &node.op {
                    Op::Input { channels } => (vec![*channels, height, width], 0, 0),
                    Op::Conv2d(conv) => {
                        let (c, h, w) = spatial(input_shape(0), name, "Conv2d")?;
                        if c != conv.in_channels {
                            return Err(Error::Shape {
                                node: name.to_owned(),
                                reason: format!("expects {} input channels, gets {c}", conv.in_channels),
                            });
                        }
                        let oh = pool_out(h, conv.kernel[0], conv.stride[0], conv.padding[0], conv.dilation[0], false);
                        let ow = pool_out(w, conv.kernel[1], conv.stride[1], conv.padding[1], conv.dilation[1], false);
                        if oh < 1 || ow < 1 {
                            return Err(too_small(name, "Conv2d", h, w, conv.kernel));
                        }
                        let out = vec![conv.out_channels, oh, ow];
                        let per_output = (conv.in_channels / conv.groups) * conv.kernel[0] * conv.kernel[1];
                        let macs = numel(&out) * per_output;
                        let bias = if conv.bias { numel(&out) } else { 0 };
                        (out, macs, bias)
                    }
                    Op::BatchNorm2d { channels: expected, .. } => {
                        let shape = input_shape(0).to_vec();
                        if shape.first() != Some(expected) {
                            return Err(Error::Shape {
                                node: name.to_owned(),
                                reason: format!("normalises {expected} channels, gets {shape:?}"),
                            });
                        }
                        let n = numel(&shape);
                        (shape, 0, 2 * n)
                    }
                    Op::Linear { in_features, out_features, bias } => {
                        let features = match input_shape(0) {
                            [f] => *f,
                            other => {
                                return Err(Error::Shape {
                                    node: name.to_owned(),
                                    reason: format!("Linear needs a flat input, got {other:?}"),
                                });
                            }
                        };
                        if features != *in_features {
                            return Err(Error::Shape {
                                node: name.to_owned(),
                                reason: format!(
                                    "expects {in_features} features, gets {features}: the input size does not fit this classifier"
                                ),
                            });
                        }
                        (vec![*out_features], in_features * out_features, if *bias { *out_features } else { 0 })
                    }
                    Op::Activation(_) => {
                        let shape = input_shape(0).to_vec();
                        let n = numel(&shape);
                        (shape, 0, n)
                    }
                    Op::Dropout { .. } | Op::StochasticDepth { .. } => (input_shape(0).to_vec(), 0, 0),
                    Op::MaxPool2d(pool) => {
                        let out = pooled(input_shape(0), pool, name, "MaxPool2d")?;
                        let n = numel(&out) * pool.kernel[0] * pool.kernel[1];
                        (out, 0, n)
                    }
                    Op::AvgPool2d(pool) => {
                        let out = pooled(input_shape(0), pool, name, "AvgPool2d")?;
                        let n = numel(&out) * pool.kernel[0] * pool.kernel[1];
                        (out, 0, n)
                    }
                    Op::AdaptiveAvgPool2d { output } => {
                        let (c, h, w) = spatial(input_shape(0), name, "AdaptiveAvgPool2d")?;
                        (vec![c, output[0], output[1]], 0, c * h * w)
                    }
                    Op::Flatten => (vec![numel(input_shape(0))], 0, 0),
                    Op::Add | Op::ScaledAdd { .. } | Op::Scale => {
                        let a = input_shape(0).to_vec();
                        let b = input_shape(1);
                        let compatible = if matches!(node.op, Op::Scale) {
                            b.len() == a.len() && b[0] == a[0] && b[1..].iter().all(|&d| d == 1)
                        } else {
                            a == b
                        };
                        if !compatible {
                            return Err(Error::Shape {
                                node: name.to_owned(),
                                reason: format!("{} of {a:?} and {b:?}", node.op.kind_name()),
                            });
                        }
                        let n = numel(&a);
                        let factor = if matches!(node.op, Op::ScaledAdd { .. }) { 2 } else { 1 };
                        (a, 0, factor * n)
                    }
                    Op::Concat => {
                        let first = input_shape(0).to_vec();
                        let mut channels = 0;
                        for i in 0..node.inputs.len() {
                            let s = input_shape(i);
                            if s.len() != first.len() || s[1..] != first[1..] {
                                return Err(Error::Shape {
                                    node: name.to_owned(),
                                    reason: format!("cannot concatenate {first:?} with {s:?}"),
                                });
                            }
                            channels += s[0];
                        }
                        let mut out = first;
                        out[0] = channels;
                        (out, 0, 0)
                    }
                    Op::ChannelShuffle { groups } => {
                        let shape = input_shape(0).to_vec();
                        if shape[0] % groups != 0 {
                            return Err(Error::Shape {
                                node: name.to_owned(),
                                reason: format!("{} channels do not split into {groups} groups", shape[0]),
                            });
                        }
                        (shape, 0, 0)
                    }
                    Op::ChannelSlice { start, end } => {
                        let mut shape = input_shape(0).to_vec();
                        if *end > shape[0] || start >= end {
                            return Err(Error::Shape {
                                node: name.to_owned(),
                                reason: format!("channels {start}..{end} of {}", shape[0]),
                            });
                        }
                        shape[0] = end - start;
                        (shape, 0, 0)
                    }
                    Op::LocalResponseNorm { size, .. } => {
                        let shape = input_shape(0).to_vec();
                        let n = numel(&shape);
                        (shape, 0, n * (size + 3))
                    }
                    Op::ChannelAffine { scale, .. } => {
                        let shape = input_shape(0).to_vec();
                        if shape[0] != scale.len() as i64 {
                            return Err(Error::Shape {
                                node: name.to_owned(),
                                reason: format!("transforms {} channels, gets {}", scale.len(), shape[0]),
                            });
                        }
                        let n = numel(&shape);
                        (shape, 0, 2 * n)
                    }
                    Op::ZeroPad { pad } => {
                        let (c, h, w) = spatial(input_shape(0), name, "ZeroPad")?;
                        (vec![c + pad[4] + pad[5], h + pad[2] + pad[3], w + pad[0] + pad[1]], 0, 0)
                    }
                })
            };
            let (shape, macs, elementwise) = match inferred() {
                Ok(inferred) => inferred,
                // Everything downstream of an auxiliary node is auxiliary too: each gets an
                // empty shape and the first reason is kept.
                Err(error) if node.aux => {
                    aux_error.get_or_insert(error.to_string());
                    (Vec::new(), 0, 0)
                }
                Err(error) => return Err(error),
            };
            let params = node.op.param_shapes().iter().filter(|p| p.2).map(|p| p.1.iter().product::<i64>()).sum();
            nodes.push(NodeInfo { shape, params, macs, elementwise, aux: node.aux });
        }
        if nodes[self.input].shape[0] != channels {
            return Err(Error::Input(format!("{} takes {channels}-channel input", self.arch)));
        }
        Ok(ShapeReport { input: [channels, height, width], nodes, aux_error })
    }
}

#[cfg(test)]
mod tests {
    use super::pool_out;

    #[test]
    fn pool_output_matches_pytorch_formula() {
        // resnet's stem: 112 -> 56 with k3 s2 p1
        assert_eq!(pool_out(112, 3, 2, 1, 1, false), 56);
        // googlenet's ceil-mode pooling: 112 -> 56, 28 -> 14 (k3 s2 p0 ceil)
        assert_eq!(pool_out(112, 3, 2, 0, 1, true), 56);
        assert_eq!(pool_out(27, 3, 2, 0, 1, true), 13);
        // a ceil-mode window that would start in the padding is dropped
        assert_eq!(pool_out(5, 2, 2, 1, 1, true), 3);
        assert_eq!(pool_out(2, 3, 1, 0, 1, false), 0);
    }
}
