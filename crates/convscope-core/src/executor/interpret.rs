//! Carrying out a run: the nodes in order, each on libtorch, as the run's plan says.

use tch::{Kind, Tensor};

use super::fast::{FastConv, channels_last};
use super::outputs::{Outputs, Recipe};
use super::plan::{BatchNorm, Behaviour, InPlace, RunPlan, Schedule, makes_new_tensor};
use super::{Model, RunOptions, interrupted};
use crate::error::{Error, Result, TorchContext};
use crate::graph::{Activation, NodeId, Op};

impl Model {
    pub(super) fn execute(&self, input: &Tensor, opts: &RunOptions, plan: &RunPlan) -> Result<Vec<Option<Tensor>>> {
        self.execute_interruptible(input, opts, plan, &|| false)?.ok_or_else(interrupted)
    }

    /// Runs the nodes in order, asking `interrupt` before each; `None` when it said stop.
    pub(super) fn execute_interruptible(
        &self,
        input: &Tensor,
        opts: &RunOptions,
        plan: &RunPlan,
        interrupt: &dyn Fn() -> bool,
    ) -> Result<Option<Vec<Option<Tensor>>>> {
        debug_assert!(plan.in_place != InPlace::Remakeable, "a run that remakes outputs returns `Outputs`");
        Ok(self.run_nodes(input, opts, plan, interrupt)?.map(|(values, _)| values))
    }

    /// A run whose activations may overwrite what can be made again (`InPlace::Remakeable`).
    pub(super) fn execute_remaking(&self, input: &Tensor, opts: &RunOptions, plan: &RunPlan) -> Result<Outputs> {
        let (values, recipes) = self.run_nodes(input, opts, plan, &|| false)?.ok_or_else(interrupted)?;
        Ok(Outputs::new(values, recipes, self.graph.clone()))
    }

    /// The nodes in order, with the recipes of the outputs overwritten that can be made again.
    #[allow(clippy::type_complexity)]
    fn run_nodes(
        &self,
        input: &Tensor,
        opts: &RunOptions,
        plan: &RunPlan,
        interrupt: &dyn Fn() -> bool,
    ) -> Result<Option<(Vec<Option<Tensor>>, Vec<Option<Recipe>>)>> {
        let fast_convs = plan.fast_convs;
        self.check_input_for(input, plan.behaviour.auxiliary)?;
        let input = input
            .f_to_device_(self.device, Kind::Float, false, false)
            .and_then(|t| if fast_convs.is_some() { channels_last(t) } else { Ok(t) })
            .context(|| format!("moving the input to {:?}", self.device))?;
        let graph = &*self.graph;
        let disabled = self.switched_off(opts);
        let target = plan.until.unwrap_or(graph.output);
        let schedule = Schedule::new(graph, &disabled, plan.behaviour.auxiliary, target);
        let mut values: Vec<Option<Tensor>> = (0..graph.nodes.len()).map(|_| None).collect();
        let mut recipes: Vec<Option<Recipe>> = (0..graph.nodes.len()).map(|_| None).collect();
        // Whether a value's memory is its own, not shared with a live input it aliases.
        let mut owns_memory = vec![false; graph.nodes.len()];
        for (id, node) in graph.nodes.iter().enumerate() {
            if !schedule.needed[id] {
                continue;
            }
            if interrupt() {
                return Ok(None);
            }
            // Like torchvision's `inplace=True`: an activation overwrites its input when no
            // other node reads it and its memory is its own (one allocation and pass fewer).
            let overwritable = match (&node.op, node.inputs.as_slice()) {
                (Op::Activation(a), [edge])
                    if plan.in_place != InPlace::Never
                        && owns_memory[edge.from]
                        && schedule.uses[edge.from] == 1
                        && edge.from != target =>
                {
                    match plan.in_place {
                        InPlace::Remakeable => match self.recipe(edge.from, disabled[edge.from], plan.behaviour) {
                            Some(recipe) => {
                                recipes[edge.from] = Some(recipe.context(|| graph.nodes[edge.from].name.clone())?);
                                Some((*a, edge.from))
                            }
                            None => None,
                        },
                        _ => Some((*a, edge.from)),
                    }
                }
                _ => None,
            };
            let output = if id == graph.input {
                input.shallow_clone()
            } else if let Some((activation, from)) = overwritable {
                let x = values[from]
                    .take()
                    .ok_or_else(|| Error::Input(format!("{}: an input was not computed", node.name)))?;
                activate_in_place(x, activation).context(|| format!("{} ({})", node.name, node.op.kind_name()))?
            } else {
                // A switched-off merge reads its branch alone; the shortcut was not run.
                let used = if disabled[id] && node.op.is_residual_merge() { 1 } else { node.inputs.len() };
                let inputs: Vec<&Tensor> = node.inputs[..used]
                    .iter()
                    .map(|e| values[e.from].as_ref())
                    .collect::<Option<_>>()
                    .ok_or_else(|| Error::Input(format!("{}: an input was not computed", node.name)))?;
                self.eval_node(id, &inputs, disabled[id], plan.behaviour, fast_convs)
                    .context(|| format!("{} ({})", node.name, node.op.kind_name()))?
            };
            values[id] = Some(output);
            owns_memory[id] = overwritable.is_some() || makes_new_tensor(&node.op, disabled[id]);
            // A padded copy or a scaled output that this node alone reads, or a convolution
            // that this batch norm alone reads, is let go once read, as a plain forward lets it go: the next
            // convolution then writes into memory still in the cache, not a fresh buffer. It is
            // made again from its input when asked.
            if plan.in_place == InPlace::Remakeable
                && fast_convs.is_none()
                && let [edge] = node.inputs.as_slice()
                && schedule.uses[edge.from] == 1
                && edge.from != target
                && let Some(recipe) = self.let_go_recipe(edge.from, &node.op)
            {
                recipes[edge.from] = Some(recipe.context(|| graph.nodes[edge.from].name.clone())?);
                values[edge.from] = None;
            }
            if !plan.keep_all {
                for edge in &node.inputs {
                    if schedule.last_use[edge.from] == id && edge.from != target {
                        values[edge.from] = None;
                    }
                }
            }
        }
        Ok(Some((values, recipes)))
    }

    /// How to make `id`'s output again from its inputs, bit for bit, where that is cheap and
    /// its inputs stay as they are (each is read by `id`, so no activation overwrites it).
    fn recipe(&self, id: NodeId, residual_off: bool, behaviour: Behaviour) -> Option<Result<Recipe, tch::TchError>> {
        let node = &self.graph.nodes[id];
        let from = |i: usize| node.inputs.get(i).map(|e| e.from);
        match &node.op {
            Op::BatchNorm2d { eps, momentum, .. } if behaviour.batch_norm == BatchNorm::Running => {
                let input = from(0)?;
                let p = &self.params[self.first_param[id]..][..4];
                let params = [&p[0], &p[1], &p[2], &p[3]].map(Tensor::shallow_clone);
                let versions = match params.each_ref().map(Tensor::f_internal_version) {
                    [Ok(a), Ok(b), Ok(c), Ok(d)] => [a, b, c, d],
                    versions => return versions.into_iter().find_map(Result::err).map(Err),
                };
                Some(Ok(Recipe::BatchNorm { input, params, versions, momentum: *momentum, eps: *eps }))
            }
            Op::Add if !residual_off => Some(Ok(Recipe::Add { a: from(0)?, b: from(1)? })),
            Op::ScaledAdd { scale } if !residual_off => {
                Some(Ok(Recipe::ScaledAdd { a: from(0)?, b: from(1)?, scale: *scale }))
            }
            _ => None,
        }
    }

    /// How to make `id`'s output again once `reader`, its only reader, has run, where a plain
    /// forward would let it go: a padded copy, a squeeze-and-excitation's scaled output, or a
    /// convolution read by a batch norm.
    fn let_go_recipe(&self, id: NodeId, reader: &Op) -> Option<Result<Recipe, tch::TchError>> {
        let node = &self.graph.nodes[id];
        let from = |i: usize| node.inputs.get(i).map(|e| e.from);
        let conv = match (&node.op, reader) {
            (Op::ZeroPad { pad }, _) if pad.iter().any(|&p| p != 0) => {
                return Some(Ok(Recipe::ZeroPad { input: from(0)?, pad: *pad }));
            }
            (Op::Scale, _) => return Some(Ok(Recipe::Scale { x: from(0)?, scale: from(1)? })),
            (Op::Conv2d(conv), Op::BatchNorm2d { .. }) => conv,
            _ => return None,
        };
        let p = &self.params[self.first_param[id]..];
        let params: Vec<Tensor> = p[..if conv.bias { 2 } else { 1 }].iter().map(Tensor::shallow_clone).collect();
        let versions = match params.iter().map(Tensor::f_internal_version).collect::<Result<Vec<_>, _>>() {
            Ok(versions) => versions,
            Err(e) => return Some(Err(e)),
        };
        Some(Ok(Recipe::Conv { input: from(0)?, params, versions, conv: *conv }))
    }

    pub(super) fn eval_node(
        &self,
        id: NodeId,
        x: &[&Tensor],
        residual_off: bool,
        behaviour: Behaviour,
        fast_convs: Option<&[Option<FastConv>]>,
    ) -> Result<Tensor, tch::TchError> {
        let p = &self.params[self.first_param[id]..];
        let node = &self.graph.nodes[id];
        match &node.op {
            Op::Input { .. } => Ok(x[0].shallow_clone()),
            Op::Conv2d(c) => match fast_convs.and_then(|f| f[id].as_ref()) {
                Some(conv) => {
                    x[0].f_conv2d(&conv.weight, conv.bias.as_ref(), c.stride, c.padding, c.dilation, c.groups)
                }
                None => x[0].f_conv2d(&p[0], c.bias.then(|| &p[1]), c.stride, c.padding, c.dilation, c.groups),
            },
            // Folded into the convolution before it, which already gave its output.
            Op::BatchNorm2d { .. } if fast_convs.is_some() && self.is_folded(id) => Ok(x[0].shallow_clone()),
            Op::BatchNorm2d { eps, momentum, .. } => {
                let running = behaviour.batch_norm != BatchNorm::Batch;
                Tensor::f_batch_norm(
                    x[0],
                    Some(&p[0]),
                    Some(&p[1]),
                    running.then(|| &p[2]),
                    running.then(|| &p[3]),
                    behaviour.batch_norm != BatchNorm::Running,
                    *momentum,
                    *eps,
                    true,
                )
            }
            Op::Linear { bias, .. } => x[0].f_linear(&p[0], bias.then(|| &p[1])),
            Op::Activation(a) => match a {
                Activation::Relu => x[0].f_relu(),
                // ATen's relu6 (hardtanh underneath): its backward is much cheaper than clamp's,
                // and its gradient at exactly 0 and 6 is the reference's.
                Activation::Relu6 => x[0].f_relu6(),
                Activation::Sigmoid => x[0].f_sigmoid(),
                Activation::Tanh => x[0].f_tanh(),
                Activation::HardSigmoid => x[0].f_hardsigmoid(),
                Activation::HardSwish => x[0].f_hardswish(),
                Activation::Silu => x[0].f_silu(),
            },
            Op::MaxPool2d(pool) => x[0].f_max_pool2d(pool.kernel, pool.stride, pool.padding, [1, 1], pool.ceil_mode),
            Op::AvgPool2d(pool) => {
                x[0].f_avg_pool2d(pool.kernel, pool.stride, pool.padding, pool.ceil_mode, pool.count_include_pad, None)
            }
            Op::AdaptiveAvgPool2d { output } => x[0].f_adaptive_avg_pool2d(output),
            Op::Dropout { p } => {
                if behaviour.drop {
                    x[0].f_dropout(*p, true)
                } else {
                    Ok(x[0].shallow_clone())
                }
            }
            Op::StochasticDepth { p } => {
                if behaviour.drop && *p > 0.0 {
                    // torchvision.ops.stochastic_depth, mode "row": one coin per sample.
                    let survival = 1.0 - p;
                    let n = x[0].size()[0];
                    let mask =
                        Tensor::f_empty([n, 1, 1, 1], (x[0].kind(), x[0].device()))?.f_bernoulli_float_(survival)?;
                    x[0].f_mul(&mask.f_div_scalar(survival)?)
                } else {
                    Ok(x[0].shallow_clone())
                }
            }
            Op::Flatten => x[0].f_flatten(1, -1),
            Op::Add if residual_off => Ok(x[0].shallow_clone()),
            Op::Add => x[0].f_add(x[1]),
            Op::ScaledAdd { scale } => {
                let scaled = x[0].f_mul_scalar(*scale)?;
                if residual_off { Ok(scaled) } else { scaled.f_add(x[1]) }
            }
            Op::Concat => Tensor::f_cat(x, 1),
            Op::Scale => x[0].f_mul(x[1]),
            Op::ChannelShuffle { groups } => {
                let &[n, c, h, w] = x[0].size().as_slice() else {
                    return Err(tch::TchError::Shape("channel shuffle needs N×C×H×W".into()));
                };
                x[0].f_view_([n, *groups, c / groups, h, w])?.f_transpose(1, 2)?.f_contiguous()?.f_view_([n, c, h, w])
            }
            Op::ChannelSlice { start, end } => x[0].f_narrow(1, *start, end - start),
            Op::LocalResponseNorm { size, alpha, beta, k } => {
                // torch.nn.functional.local_response_norm, step for step.
                let div = x[0].f_mul(x[0])?.f_unsqueeze(1)?;
                let div = div.f_constant_pad_nd([0, 0, 0, 0, size / 2, (size - 1) / 2])?;
                let div = div.f_avg_pool3d([*size, 1, 1], [1, 1, 1], [0, 0, 0], false, true, None)?.f_squeeze_dim(1)?;
                let div = div.f_mul_scalar(*alpha)?.f_add_scalar(*k)?.f_pow_tensor_scalar(*beta)?;
                x[0].f_div(&div)
            }
            Op::ChannelAffine { scale, shift } => {
                let shape = [1, scale.len() as i64, 1, 1];
                let options = (Kind::Float, x[0].device());
                let scale = Tensor::f_from_slice(&scale.iter().map(|&v| v as f32).collect::<Vec<_>>())?
                    .f_to_device_(options.1, options.0, false, false)?
                    .f_view_(shape)?;
                let shift = Tensor::f_from_slice(&shift.iter().map(|&v| v as f32).collect::<Vec<_>>())?
                    .f_to_device_(options.1, options.0, false, false)?
                    .f_view_(shape)?;
                x[0].f_mul(&scale)?.f_add(&shift)
            }
            // The reference's `Identity` where the padding is zero-wide (EfficientNet-Lite's 1×1
            // convolutions): a view of the input, where ATen's `constant_pad_nd` would copy it.
            // A view, not the input itself, so that autograd gives the node its readers'
            // gradient alone, as the reference's hooks see it.
            Op::ZeroPad { pad } if pad.iter().all(|&p| p == 0) => x[0].f_alias(),
            Op::ZeroPad { pad } => x[0].f_constant_pad_nd(pad),
        }
    }
}

fn activate_in_place(mut x: Tensor, activation: Activation) -> Result<Tensor, tch::TchError> {
    match activation {
        Activation::Relu => x.f_relu_(),
        Activation::Relu6 => x.f_relu6_(),
        Activation::Sigmoid => x.f_sigmoid_(),
        Activation::Tanh => x.f_tanh_(),
        Activation::HardSigmoid => x.f_hardsigmoid_(),
        Activation::HardSwish => x.f_hardswish_(),
        Activation::Silu => x.f_silu_(),
    }
}
