//! The fast layout of plain forward on the CPU: convolutions channels-last, each batch norm
//! that alone reads a convolution folded into it, made once and cached per model.

use std::sync::PoisonError;

use tch::{Kind, Tensor};

use super::Model;
use crate::error::{Result, TorchContext};
use crate::graph::{Graph, NodeId, Op};

impl Model {
    /// Every convolution's fast form (see `FastConv`), per node: the cached one, remade where a
    /// tensor it was made from changed in place since.
    pub(super) fn fast_convs(&self) -> Result<Vec<Option<FastConv>>> {
        let graph = &*self.graph;
        let mut cache = self.fast_convs.lock().unwrap_or_else(PoisonError::into_inner);
        let mut convs: Vec<Option<FastConv>> = (0..graph.nodes.len()).map(|_| None).collect();
        for (id, node) in graph.nodes.iter().enumerate() {
            let Op::Conv2d(conv) = &node.op else { continue };
            let conv_params = &self.params[self.first_param[id]..][..if conv.bias { 2 } else { 1 }];
            let fold = self.batch_norm_after[id].map(|(bn, eps)| (&self.params[self.first_param[bn]..][..4], eps));
            let versions = conv_params
                .iter()
                .chain(fold.iter().flat_map(|(bn_params, _)| bn_params.iter()))
                .map(Tensor::f_internal_version)
                .collect::<Result<Vec<_>, _>>()
                .context(|| node.name.clone())?;
            let slot = &mut cache[id];
            if slot.as_ref().is_none_or(|(made_from, _)| *made_from != versions) {
                let made = FastConv::new(&conv_params[0], conv_params.get(1), fold)
                    .context(|| format!("preparing {} for the fast layout", node.name))?;
                *slot = Some((versions, made));
            }
            convs[id] = slot.as_ref().map(|(_, c)| c.shallow_clone());
        }
        Ok(convs)
    }

    /// Whether the fast layout folds batch norm `bn` into the convolution it reads.
    pub(super) fn is_folded(&self, bn: NodeId) -> bool {
        let conv = self.graph.nodes[bn].inputs.first().map(|e| e.from);
        conv.and_then(|c| self.batch_norm_after[c]).is_some_and(|(folded, _)| folded == bn)
    }

    pub(super) fn forget_fast_convs(&mut self) {
        let cache = self.fast_convs.get_mut().unwrap_or_else(PoisonError::into_inner);
        *cache = (0..self.graph.nodes.len()).map(|_| None).collect();
    }
}

/// Something made from tensors, with their in-place versions when it was made.
pub(super) type MadeFrom<T> = (Vec<i64>, T);

/// Per node: for a convolution whose output only a batch norm reads (and that batch norm
/// nothing else), that batch norm and its ε.
pub(super) fn batch_norm_after(graph: &Graph) -> Vec<Option<(NodeId, f64)>> {
    let mut readers: Vec<Vec<NodeId>> = vec![Vec::new(); graph.nodes.len()];
    for (id, node) in graph.nodes.iter().enumerate() {
        for edge in &node.inputs {
            readers[edge.from].push(id);
        }
    }
    graph
        .nodes
        .iter()
        .zip(&readers)
        .map(|(node, readers)| match (&node.op, readers.as_slice()) {
            (Op::Conv2d(_), &[bn]) => match graph.nodes[bn].op {
                Op::BatchNorm2d { eps, .. } if graph.nodes[bn].inputs.len() == 1 => Some((bn, eps)),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

/// A convolution as `Layout::Fast` runs it: its weight channels-last (oneDNN's convolutions
/// run about a fifth faster so), with the batch norm after it folded in where it has one:
/// `w·γ/√(σ²+ε)` and `(b−μ)·γ/√(σ²+ε)+β`, worked out in float64, which saves a pass over
/// every such activation (torch.nn.utils.fusion.fuse_conv_bn_eval's arithmetic).
pub(super) struct FastConv {
    pub(super) weight: Tensor,
    pub(super) bias: Option<Tensor>,
}

impl FastConv {
    /// `fold`: the batch norm's weight, bias, running mean and running variance, and its ε.
    fn new(weight: &Tensor, bias: Option<&Tensor>, fold: Option<(&[Tensor], f64)>) -> Result<Self, tch::TchError> {
        let (weight, bias) = match fold {
            Some(([gamma, beta, mean, var], eps)) => {
                let double = |t: &Tensor| t.f_detach()?.f_to_kind(Kind::Double);
                let scale = double(gamma)?.f_div(&double(var)?.f_add_scalar(eps)?.f_sqrt()?)?;
                let weight = double(weight)?.f_mul(&scale.f_view([-1, 1, 1, 1])?)?;
                let shift = match bias {
                    Some(b) => double(b)?.f_sub(&double(mean)?)?,
                    None => double(mean)?.f_neg()?,
                };
                let bias = shift.f_mul(&scale)?.f_add(&double(beta)?)?;
                (weight.f_to_kind(Kind::Float)?, Some(bias.f_to_kind(Kind::Float)?))
            }
            _ => (weight.f_detach()?, bias.map(Tensor::f_detach).transpose()?),
        };
        Ok(Self { weight: channels_last(weight)?, bias })
    }

    fn shallow_clone(&self) -> Self {
        Self { weight: self.weight.shallow_clone(), bias: self.bias.as_ref().map(Tensor::shallow_clone) }
    }
}

/// The same N×C×H×W tensor with N×H×W×C strides (PyTorch's `channels_last`); others as they are.
pub(super) fn channels_last(t: Tensor) -> Result<Tensor, tch::TchError> {
    if t.dim() != 4 || is_channels_last(&t) {
        return Ok(t);
    }
    t.f_permute([0, 2, 3, 1])?.f_contiguous()?.f_permute([0, 3, 1, 2])
}

fn is_channels_last(t: &Tensor) -> bool {
    let (size, stride) = (t.size(), t.stride());
    let &[_, c, _, w] = size.as_slice() else { return false };
    stride.get(1) == Some(&1) && stride.get(3) == Some(&c) && stride.get(2) == Some(&(c * w))
}
