//! The parameters of a model: the reference's random initialisation, and tensors placed on
//! the device as autograd leaves.

use tch::{Device, Kind, Tensor};

use crate::error::{Error, Result, TorchContext};
use crate::graph::{Graph, Op, ParamSpec, WeightInit};

/// File tensors (any float dtype) as the model's parameters on `device`.
pub(super) fn placed_params(graph: &Graph, values: Vec<Tensor>, device: Device) -> Result<Vec<Tensor>> {
    values
        .into_iter()
        .zip(&graph.params)
        .map(|(t, spec)| {
            let t = t.f_to_dtype(Kind::Float, false, false).context(|| format!("converting {}", spec.key))?;
            finish_param(t, spec, device)
        })
        .collect()
}

/// Puts a tensor on the device as float and makes trainable ones autograd leaves.
pub(super) fn finish_param(t: Tensor, spec: &ParamSpec, device: Device) -> Result<Tensor> {
    t.f_to_device_(device, Kind::Float, false, false)
        .and_then(|t| t.f_detach())
        .and_then(|t| t.f_set_requires_grad(spec.trainable))
        .context(|| format!("placing {} on {device:?}", spec.key))
}

pub(super) fn init_param(graph: &Graph, spec: &ParamSpec) -> Result<Tensor> {
    let node = &graph.nodes[spec.node];
    let suffix = spec.key.rsplit('.').next().unwrap_or("");
    let context = || format!("initialising {}", spec.key);
    let mut t = Tensor::f_empty(spec.shape.as_slice(), (Kind::Float, Device::Cpu)).context(context)?;
    // fan_in / fan_out as torch.nn.init computes them from the weight's shape.
    let fan = |weight: &[i64]| {
        let receptive: i64 = weight[2..].iter().product();
        (weight[1] * receptive, weight[0] * receptive)
    };
    let (scheme, weight_shape) = match &node.op {
        Op::Conv2d(c) => (graph.init.conv, vec![c.out_channels, c.in_channels / c.groups, c.kernel[0], c.kernel[1]]),
        Op::Linear { in_features, out_features, .. } => (graph.init.linear, vec![*out_features, *in_features]),
        Op::BatchNorm2d { .. } => {
            let value = if matches!(suffix, "weight" | "running_var") { 1.0 } else { 0.0 };
            let _ = t.f_fill_(value).context(context)?;
            return Ok(t);
        }
        _ => return Err(Error::Input(format!("{} has no parameters to initialise", node.name))),
    };
    let scheme = graph.init_overrides.iter().find(|(id, _)| *id == spec.node).map_or(scheme, |(_, init)| *init);
    let (fan_in, fan_out) = fan(&weight_shape);
    let is_weight = suffix == "weight";
    match (scheme, is_weight) {
        (WeightInit::PytorchDefault, _) => {
            let bound = 1.0 / (fan_in.max(1) as f64).sqrt();
            let _ = t.f_uniform_(-bound, bound).context(context)?;
        }
        (WeightInit::KaimingNormalFanOut, true) => {
            let _ = t.f_normal_(0.0, (2.0 / fan_out.max(1) as f64).sqrt()).context(context)?;
        }
        (WeightInit::KaimingNormalFanIn, true) => {
            let _ = t.f_normal_(0.0, (2.0 / fan_in.max(1) as f64).sqrt()).context(context)?;
        }
        (WeightInit::Normal(std), true) => {
            let _ = t.f_normal_(0.0, std).context(context)?;
        }
        (WeightInit::KaimingUniformFanIn, true) => {
            let bound = (6.0 / fan_in.max(1) as f64).sqrt();
            let _ = t.f_uniform_(-bound, bound).context(context)?;
        }
        (_, false) => {
            let _ = t.f_zero_().context(context)?;
        }
    }
    Ok(t)
}
