//! `convscope export`: every node's output of one run, and with gradients their norms, as
//! named tensors. The parity tests compare exactly these with the reference's.

use tch::Tensor;

use crate::error::{Result, TorchContext};
use crate::executor::{GradientOptions, Model, RunOptions, Targets};

/// What an export holds beside the outputs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Contents {
    /// Every node's output and the logits.
    Outputs,
    /// Also `grad_norm.<node>`, `param_grad_norm.<key>` and `target`, from one backward pass
    /// in inference mode of the cross-entropy for `targets` (`None`: a sample's predicted
    /// class).
    WithGradients { targets: Targets },
}

/// Runs `input` through `model` and names every tensor of the run: `<node>` for each node's
/// output, `logits`, and with gradients their norms (CPU, contiguous, ready to write).
pub fn named_tensors(
    model: &Model,
    input: &Tensor,
    opts: &RunOptions,
    contents: Contents,
) -> Result<Vec<(String, Tensor)>> {
    let graph = model.graph().clone();
    let mut named: Vec<(String, Tensor)> = Vec::new();
    let (outputs, logits) = match contents {
        Contents::WithGradients { targets } => {
            let pass = GradientOptions::default();
            let report = model
                .gradient_pass(input, &targets, opts, &pass, &|| false)?
                .ok_or_else(|| crate::Error::Input("the export was interrupted".into()))?;
            for (node, norm) in graph.nodes.iter().zip(&report.node_grad_norms) {
                if let Some(norm) = norm {
                    named.push((format!("grad_norm.{}", node.name), Tensor::from(*norm as f32)));
                }
            }
            for (spec, norm) in graph.params.iter().zip(&report.param_grad_norms) {
                if let Some(norm) = norm {
                    named.push((format!("param_grad_norm.{}", spec.key), Tensor::from(*norm as f32)));
                }
            }
            named.push(("target".into(), Tensor::from_slice(&report.targets)));
            (report.outputs, report.logits)
        }
        Contents::Outputs => {
            let capture = model.forward_capture(input, opts)?;
            (capture.outputs.into_tensors()?, capture.logits)
        }
    };
    for (node, value) in graph.nodes.iter().zip(&outputs) {
        if let Some(t) = value {
            named.push((node.name.clone(), cpu_contiguous(t)?));
        }
    }
    named.push(("logits".into(), cpu_contiguous(&logits)?));
    Ok(named)
}

fn cpu_contiguous(t: &Tensor) -> Result<Tensor> {
    t.f_detach().and_then(|t| t.f_to(tch::Device::Cpu)).and_then(|t| t.f_contiguous()).context(|| "exporting".into())
}
