//! Class activation maps from one forward pass that keeps every node's output and one
//! backward pass to every chosen node at once.
//!
//! - Grad-CAM (captum's `LayerGradCam(..., relu_attributions=True)`): channel weights are the
//!   spatial mean of ∂score/∂A, the map is ReLU(Σ_c w_c·A_c).
//! - Grad-CAM++ (pytorch-grad-cam's `GradCAMPlusPlus`): weights Σ_xy ReLU(g)·α with
//!   α = g² / (2g² + Σ_xy A · g³ + 1e-6), and α = 0 where g = 0.
//! - LayerCAM (pytorch-grad-cam's `LayerCAM`): ReLU(Σ_c ReLU(g_c)·A_c), position by position.
//!
//! A node's output is its own: convscope never overwrites a kept output, so where the reference
//! runs an in-place activation after the node (VGG's last convolution, DenseNet's `features`)
//! the map is of the node's output before it, which is captum's answer (its layer hook returns
//! a clone for the network to go on with).

use tch::Tensor;

use super::{Control, Explanation, LayerMap, Method, Objective, Settings, resolve_layers, to_cpu};
use crate::error::{Error, Result, TorchContext};
use crate::executor::{Model, RunOptions};
use crate::graph::NodeId;

pub(super) fn explain(
    model: &Model,
    input: &Tensor,
    opts: &RunOptions,
    settings: &Settings,
    control: &mut Control,
) -> Result<Option<Explanation>> {
    let Some(cams) = layer_cams(model, input, opts, settings, control)? else { return Ok(None) };
    let (objective, logits, maps) = cams;
    Ok(Some(Explanation { method: settings.method, objective, logits, maps, completeness: None, guided_relus: None }))
}

/// The CAMs of `settings.method` (Grad-CAM for Guided Grad-CAM) at the layers
/// `settings.layers` names, with the objective and the logits (CPU).
pub(super) fn layer_cams(
    model: &Model,
    input: &Tensor,
    opts: &RunOptions,
    settings: &Settings,
    control: &mut Control,
) -> Result<Option<(Objective, Tensor, Vec<LayerMap>)>> {
    let size = input.size();
    let nodes = resolve_layers(model.graph(), opts, settings.layers, size[2], size[3])?;
    control.report(0, 2, "passes");
    // So that a layer before any weight (the input's padding) has a gradient too; the
    // backward pass still stops at the layers asked for.
    let input = input.f_detach().and_then(|x| x.f_set_requires_grad(true)).context(|| "the input".into())?;
    let Some(capture) = model.forward_autograd_capture(&input, opts, control.interrupt)? else { return Ok(None) };
    control.report(1, 2, "passes");
    if (control.interrupt)() {
        return Ok(None);
    }
    let objective = Objective::resolve(settings.target, &capture.logits)?;
    let score = objective.score(&capture.logits)?;
    let activations: Vec<&Tensor> =
        nodes.iter().map(|&id| capture.outputs.held(id).ok_or_else(|| not_run(model, id))).collect::<Result<_>>()?;
    // One backward pass to every layer at once, as torch.autograd.grad with several inputs.
    let grads = Tensor::f_run_backward(&[&score], &activations, false, false).context(|| "backward pass".into())?;
    let method = if settings.method == Method::GuidedGradCam { Method::GradCam } else { settings.method };
    let maps = nodes
        .iter()
        .zip(activations)
        .zip(grads)
        .map(|((&id, a), g)| {
            let a = a.f_detach().context(|| "activation".into())?;
            let g = if g.defined() { g } else { a.f_zeros_like().context(|| "gradient".into())? };
            let raw =
                cam(method, &a, &g).context(|| format!("{} at {}", method.label(), model.graph().nodes[id].name))?;
            Ok(LayerMap { node: Some(id), raw: to_cpu(&raw)? })
        })
        .collect::<Result<Vec<_>>>()?;
    control.report(2, 2, "passes");
    Ok(Some((objective, to_cpu(&capture.logits)?, maps)))
}

/// One CAM, `N×1×h×w`, from a layer's output `a` and the score's gradient `g` there.
pub(super) fn cam(method: Method, a: &Tensor, g: &Tensor) -> Result<Tensor, tch::TchError> {
    let spatial = [2i64, 3];
    let map = match method {
        Method::GradCamPlusPlus => {
            let g2 = g.f_mul(g)?;
            let g3 = g2.f_mul(g)?;
            let sum_a = a.f_sum_dim_intlist(spatial.as_slice(), true, None)?;
            let alpha = g2.f_div(&g2.f_mul_scalar(2.0)?.f_add(&sum_a.f_mul(&g3)?)?.f_add_scalar(1e-6)?)?;
            let alpha = alpha.f_where_self(&g.f_ne(0.0)?, &alpha.f_zeros_like()?)?;
            let weights = g.f_relu()?.f_mul(&alpha)?.f_sum_dim_intlist(spatial.as_slice(), true, None)?;
            weights.f_mul(a)?.f_sum_dim_intlist([1i64].as_slice(), true, None)?
        }
        Method::LayerCam => g.f_relu()?.f_mul(a)?.f_sum_dim_intlist([1i64].as_slice(), true, None)?,
        _ => {
            let weights = g.f_mean_dim(spatial.as_slice(), true, None)?;
            weights.f_mul(a)?.f_sum_dim_intlist([1i64].as_slice(), true, None)?
        }
    };
    map.f_relu()
}

fn not_run(model: &Model, id: NodeId) -> Error {
    Error::Input(format!("{} was not computed in this run", model.graph().nodes[id].name))
}
