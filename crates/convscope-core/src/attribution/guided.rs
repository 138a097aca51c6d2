//! Guided Backprop and Guided Grad-CAM, as captum defines them.
//!
//! captum's `GuidedBackprop` hooks every `torch.nn.ReLU` module: the gradient reaching the
//! ReLU's input tensor (all of it, from every reader of that tensor) goes on as ReLU of itself,
//! so only positive gradient flows back through positive activations. tch has no custom
//! autograd functions and no tensor hooks, so this is a reverse pass over the graph, node by
//! node: a one-input node's vector-Jacobian product is the gradient of `output · g` with respect
//! to its input, taken on the autograd graph of one forward pass that kept every output; the
//! merges (addition, concatenation, scaling) are worked out directly; at a ReLU the product is
//! its plain backward (`threshold_backward`), and the gradient of a value that a ReLU reads is
//! clamped at zero once every reader has added its share, as captum's hook does.
//!
//! Every `Activation::Relu` node is guided, including those the reference calls as
//! `F.relu` (torchvision's GoogLeNet, Inception v3, DenseNet's last ReLU), which captum itself
//! would leave unguided because it only finds modules. ReLU6, SiLU and hardswish are not ReLUs,
//! to captum nor here: in networks made of them (MobileNet v2/v3, EfficientNet) nothing is
//! guided and the map is the plain gradient (`Explanation::guided_relus` is then zero).
//!
//! Guided Grad-CAM (captum's `GuidedGradCam`): the guided gradient times the layer's Grad-CAM
//! upsampled to the input by nearest neighbour.

use tch::Tensor;

use super::cam::layer_cams;
use super::{Control, Explanation, LayerMap, Method, Objective, Settings, Target, needed_nodes, to_cpu, used_inputs};
use crate::error::{Error, Result, TorchContext};
use crate::executor::{Model, RunOptions};
use crate::graph::{Activation, NodeId, Op};

pub(super) fn explain(
    model: &Model,
    input: &Tensor,
    opts: &RunOptions,
    settings: &Settings,
    control: &mut Control,
) -> Result<Option<Explanation>> {
    let cams = if settings.method == Method::GuidedGradCam {
        let Some((_, _, maps)) = layer_cams(model, input, opts, settings, control)? else { return Ok(None) };
        Some(maps)
    } else {
        None
    };
    let Some(guided) = guided_gradient(model, input, opts, settings.target, control)? else { return Ok(None) };
    let size = input.size();
    let maps = match cams {
        None => vec![LayerMap { node: None, raw: to_cpu(&guided.gradient)? }],
        Some(cams) => {
            let gradient = to_cpu(&guided.gradient)?;
            cams.into_iter()
                .map(|cam| {
                    let upsampled = cam
                        .raw
                        .f_upsample_nearest2d([size[2], size[3]], None, None)
                        .and_then(|up| gradient.f_mul(&up))
                        .context(|| "Guided Grad-CAM".into())?;
                    Ok(LayerMap { node: cam.node, raw: upsampled })
                })
                .collect::<Result<Vec<_>>>()?
        }
    };
    Ok(Some(Explanation {
        method: settings.method,
        objective: guided.objective,
        logits: guided.logits,
        maps,
        completeness: None,
        guided_relus: Some(guided.relus),
    }))
}

struct Guided {
    objective: Objective,
    /// CPU.
    logits: Tensor,
    /// On the model's device, like the input.
    gradient: Tensor,
    relus: usize,
}

/// The guided gradient of the target's score with respect to the input.
fn guided_gradient(
    model: &Model,
    input: &Tensor,
    opts: &RunOptions,
    target: Target,
    control: &mut Control,
) -> Result<Option<Guided>> {
    let graph = &**model.graph();
    let n = graph.nodes.len();
    let x = input.f_detach().and_then(|x| x.f_set_requires_grad(true)).context(|| "the input".into())?;
    let Some(capture) = model.forward_autograd_capture(&x, opts, control.interrupt)? else { return Ok(None) };
    let objective = Objective::resolve(target, &capture.logits)?;
    let needed = needed_nodes(graph, opts);
    let is_relu = |id: NodeId| needed[id] && matches!(graph.nodes[id].op, Op::Activation(Activation::Relu));
    let mut read_by_relu = vec![false; n];
    let mut relus = 0;
    for id in (0..n).filter(|&id| is_relu(id)) {
        relus += 1;
        for from in used_inputs(graph, opts, id) {
            read_by_relu[from] = true;
        }
    }
    let total = needed.iter().filter(|&&n| n).count();
    let mut done = 0;
    let mut grads: Vec<Option<Tensor>> = (0..n).map(|_| None).collect();
    grads[graph.output] = Some(objective.seed(&capture.logits)?);
    let mut gradient = None;
    for id in (0..n).rev() {
        let Some(mut g) = grads[id].take() else { continue };
        if (control.interrupt)() {
            return Ok(None);
        }
        let name = || graph.nodes[id].name.clone();
        if read_by_relu[id] {
            g = g.f_relu().context(name)?;
        }
        if id == graph.input {
            gradient = Some(g);
            break;
        }
        let output = capture.outputs.held(id).ok_or_else(|| not_computed(graph, id))?;
        let froms = used_inputs(graph, opts, id);
        let value = |from: NodeId| capture.outputs.held(from).ok_or_else(|| not_computed(graph, from));
        // Several inputs: worked out here, because autograd from this node's output would also
        // run back through any path from one input to another (a residual block's branch, a
        // dense block's earlier features) without the guided rule.
        let shares: Vec<(NodeId, Tensor)> = match (&graph.nodes[id].op, froms.as_slice()) {
            (Op::Activation(Activation::Relu), &[from]) if is_relu(id) => {
                vec![(from, output.f_threshold_backward(&g, 0.0).context(name)?)]
            }
            (Op::Add, _) => froms.iter().map(|&f| (f, g.shallow_clone())).collect(),
            (Op::ScaledAdd { scale }, _) => froms
                .iter()
                .enumerate()
                .map(|(i, &f)| Ok((f, if i == 0 { g.f_mul_scalar(*scale)? } else { g.shallow_clone() })))
                .collect::<Result<_, tch::TchError>>()
                .context(name)?,
            (Op::Concat, _) => {
                let sizes = froms.iter().map(|&f| Ok(value(f)?.size()[1])).collect::<Result<Vec<_>>>()?;
                froms.iter().copied().zip(g.f_split_with_sizes(&sizes, 1).context(name)?).collect()
            }
            (Op::Scale, &[x, gate]) => {
                // MulBackward's arithmetic: g·gate, and g·x summed to the gate's shape.
                let (xv, gatev) = (value(x)?, value(gate)?);
                let to_x = g.f_mul(gatev).context(name)?;
                let to_gate = g.f_mul(xv).and_then(|t| t.f_sum_to_size(gatev.size().as_slice())).context(name)?;
                vec![(x, to_x), (gate, to_gate)]
            }
            (_, &[from]) => {
                // One input: the node's own backward, from `output · g`.
                let input = value(from)?;
                if input.requires_grad() {
                    let root = output.f_mul(&g).context(name)?;
                    let gs = Tensor::f_run_backward(&[&root], &[input], true, false).context(name)?;
                    gs.into_iter().filter(Tensor::defined).map(|gi| (from, gi)).collect()
                } else {
                    Vec::new()
                }
            }
            (op, _) => {
                return Err(Error::Input(format!(
                    "{}: no guided backward pass for {} with {} inputs",
                    graph.nodes[id].name,
                    op.kind_name(),
                    froms.len()
                )));
            }
        };
        for (from, share) in shares {
            add(&mut grads[from], share).context(name)?;
        }
        done += 1;
        if done % 16 == 0 {
            control.report(done, total, "nodes");
        }
    }
    control.report(total, total, "nodes");
    let gradient = match gradient {
        Some(g) => g,
        None => x.f_zeros_like().context(|| "gradient".into())?,
    };
    Ok(Some(Guided { objective, logits: to_cpu(&capture.logits)?, gradient, relus }))
}

fn add(slot: &mut Option<Tensor>, g: Tensor) -> Result<(), tch::TchError> {
    *slot = Some(match slot.take() {
        Some(previous) => previous.f_add(&g)?,
        None => g,
    });
    Ok(())
}

fn not_computed(graph: &crate::graph::Graph, id: NodeId) -> Error {
    Error::Input(format!("{} was not computed", graph.nodes[id].name))
}
