//! The gradient pass: one forward keeping every output, the objective, one backward for every
//! node and parameter at once.

use tch::{Kind, Reduction, Tensor};

use super::plan::{Behaviour, RunPlan};
use super::{GradientOptions, GradientReport, Model, Objective, RunOptions, Targets};
use crate::error::{Error, Result, TorchContext};

impl Model {
    pub(super) fn run_gradient_pass(
        &self,
        input: &Tensor,
        targets: &Targets,
        opts: &RunOptions,
        pass: &GradientOptions,
        interrupt: &dyn Fn() -> bool,
    ) -> Result<Option<GradientReport>> {
        let input =
            input.f_detach().and_then(|x| x.f_set_requires_grad(true)).context(|| "preparing the input".into())?;
        let plan = RunPlan::keep_all(Behaviour::of_gradient_pass(pass.mode, pass.dropout));
        let Some(outputs) = self.execute_interruptible(&input, opts, &plan, interrupt)? else {
            return Ok(None);
        };
        let output = self.graph.output;
        let logits = outputs[output]
            .as_ref()
            .map(Tensor::shallow_clone)
            .ok_or_else(|| Error::Input("the output was not computed".into()))?;
        let targets = resolve_targets(&logits, targets)?;
        let target_tensor =
            Tensor::f_from_slice(&targets).and_then(|t| t.f_to(self.device)).context(|| "target".into())?;
        let loss = logits
            .f_cross_entropy_loss::<Tensor>(&target_tensor, None, Reduction::Mean, -100, 0.0)
            .context(|| "cross-entropy loss".into())?;
        let logit = target_tensor
            .f_unsqueeze(1)
            .and_then(|t| logits.f_gather(1, &t, false))
            .and_then(|t| t.f_mean(Kind::Float))
            .context(|| "the targets' logits".into())?;
        let objective = match pass.objective {
            Objective::CrossEntropy => &loss,
            Objective::Logit => &logit,
        };

        // One backward pass for all nodes and parameters, like torch.autograd.grad.
        let mut wrt: Vec<&Tensor> = Vec::new();
        let mut slots: Vec<(bool, usize)> = Vec::new();
        for (id, value) in outputs.iter().enumerate() {
            if let Some(t) = value.as_ref().filter(|t| t.requires_grad()) {
                wrt.push(t);
                slots.push((true, id));
            }
        }
        for (i, (t, spec)) in self.params.iter().zip(&self.graph.params).enumerate() {
            // A node the run skipped has no gradient to give, rather than a zero one.
            if spec.trainable && outputs[spec.node].is_some() {
                wrt.push(t);
                slots.push((false, i));
            }
        }
        if interrupt() {
            return Ok(None);
        }
        let grads = Tensor::f_run_backward(&[objective], &wrt, false, false).context(|| "backward pass".into())?;
        let mut node_grad_norms = vec![None; self.graph.nodes.len()];
        let mut param_grad_norms = vec![None; self.graph.params.len()];
        for ((is_node, index), grad) in slots.into_iter().zip(grads) {
            let norm = if grad.defined() {
                grad.f_norm().and_then(|n| n.f_double_value(&[])).context(|| "gradient norm".into())?
            } else {
                0.0
            };
            if is_node {
                node_grad_norms[index] = Some(norm);
            } else {
                param_grad_norms[index] = Some(norm);
            }
        }
        let loss = loss.f_double_value(&[]).context(|| "loss".into())?;
        let logit = logit.f_double_value(&[]).context(|| "logit".into())?;
        let saturated = pass.objective == Objective::CrossEntropy && node_grad_norms[output] == Some(0.0);
        let outputs = outputs.into_iter().map(|o| o.map(|t| t.detach())).collect();
        Ok(Some(GradientReport {
            logits: logits.detach(),
            targets,
            loss,
            logit,
            options: *pass,
            saturated,
            node_grad_norms,
            param_grad_norms,
            outputs,
        }))
    }
}

/// Each sample's class: the one asked for, or its own prediction.
fn resolve_targets(logits: &Tensor, targets: &Targets) -> Result<Vec<i64>> {
    let classes = *logits.size().last().unwrap_or(&0);
    let batch = logits.size().first().copied().unwrap_or(0) as usize;
    let asked: Vec<Option<i64>> = match targets {
        Targets::All(t) => vec![*t; batch],
        Targets::PerSample(each) if each.len() == batch => each.clone(),
        Targets::PerSample(each) => {
            return Err(Error::Input(format!("{} targets for a batch of {batch}", each.len())));
        }
    };
    if let Some(t) = asked.iter().flatten().find(|t| !(0..classes).contains(*t)) {
        return Err(Error::Input(format!("target class {t} is outside 0..{classes}")));
    }
    let predicted = if asked.iter().any(Option::is_none) {
        let argmax = logits.f_argmax(-1, false).context(|| "argmax".into())?;
        Vec::<i64>::try_from(&argmax).context(|| "reading the prediction".into())?
    } else {
        Vec::new()
    };
    Ok(asked.iter().enumerate().map(|(i, t)| t.unwrap_or_else(|| predicted[i])).collect())
}
