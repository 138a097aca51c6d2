//! Runs a graph on libtorch in three modes: plain forward, forward keeping every node's
//! output, and forward + backward giving the gradient norm of every node and parameter.
//!
//! A `Model` owns its tensors and is `Send` but not `Sync`, like a tch module: the GUI keeps
//! it on a worker thread.

use std::sync::{Arc, Mutex, PoisonError};

use tch::{Device, Kind, Reduction, Tensor};

use crate::error::{Error, Result, TorchContext};
use crate::graph::{Activation, Graph, NodeId, Op, ParamSpec, WeightInit};

/// Where the weights of a model came from; every output says so.
#[derive(Clone, Debug, PartialEq)]
pub enum WeightsOrigin {
    Random { seed: i64 },
    File(std::path::PathBuf),
}

impl std::fmt::Display for WeightsOrigin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WeightsOrigin::Random { seed } => write!(f, "random weights (seed {seed})"),
            WeightsOrigin::File(path) => write!(f, "weights from {}", path.display()),
        }
    }
}

/// Per-run switches.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// Residual merges whose shortcut is switched off for this run.
    pub disabled_residuals: Vec<NodeId>,
    /// Batch norm uses batch statistics, dropout drops, auxiliary classifiers run.
    pub train: bool,
    /// The memory layout of a plain forward pass. Capturing and gradient runs always use
    /// `Layout::Reference`: what the explorer shows is PyTorch's own numbers, bit for bit.
    pub layout: Layout,
}

/// How a plain forward pass lays out its activations and convolution weights.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Layout {
    /// On the CPU, channels-last (N×H×W×C strides, PyTorch's `channels_last`), where oneDNN's
    /// convolutions run about a fifth faster than on NCHW on this project's machines (README,
    /// Benchmarks), with each batch norm that alone reads a convolution folded into it. The
    /// kernels sum in another order, so logits agree with the reference within 1e-4 (the
    /// parity tests check every architecture), not bit for bit. On CUDA, the same as
    /// `Reference`.
    #[default]
    Fast,
    /// torchvision's default NCHW: the kernels PyTorch's `model(x)` runs, bit for bit.
    Reference,
}

/// Every node's output from one forward pass (`None` for nodes the run did not need).
pub struct Capture {
    pub outputs: Vec<Option<Tensor>>,
    pub logits: Tensor,
}

pub struct GradientReport {
    pub logits: Tensor,
    /// The class whose cross-entropy loss was differentiated, per sample.
    pub targets: Vec<i64>,
    pub loss: f64,
    /// L2 norm of d loss / d output, per node (`None` where the node took no part).
    pub node_grad_norms: Vec<Option<f64>>,
    /// L2 norm of d loss / d parameter, per entry of `graph.params` (`None` for buffers).
    pub param_grad_norms: Vec<Option<f64>>,
    pub outputs: Vec<Option<Tensor>>,
}

pub struct Model {
    graph: Arc<Graph>,
    /// Parallel to `graph.params`. Trainable ones are autograd leaves, like nn.Parameter.
    params: Vec<Tensor>,
    /// Index of each node's first tensor in `params`.
    first_param: Vec<usize>,
    device: Device,
    origin: WeightsOrigin,
    /// Plain forward's convolutions in the fast layout, per node, made on first use, each with
    /// the in-place versions of the tensors it was made from, so one a training step changed
    /// in place is made again.
    fast_convs: Mutex<Vec<Option<MadeFrom<FastConv>>>>,
    /// Per convolution, the batch norm that alone reads it, which plain forward folds in.
    batch_norm_after: Vec<Option<(NodeId, f64)>>,
}

impl Model {
    /// A model with the reference's random initialisation, seeded.
    pub fn random(graph: Arc<Graph>, device: Device, seed: i64) -> Result<Self> {
        check_device(device)?;
        tch::manual_seed(seed);
        let _guard = tch::no_grad_guard();
        let params = graph
            .params
            .iter()
            .map(|spec| init_param(&graph, spec).and_then(|t| finish_param(t, spec, device)))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self::assemble(graph, params, device, WeightsOrigin::Random { seed }))
    }

    /// A model holding `values`, parallel to `graph.params` (the caller has checked keys,
    /// shapes and dtypes): loading a file pays for no initialisation it would overwrite.
    pub(crate) fn from_params(
        graph: Arc<Graph>,
        values: Vec<Tensor>,
        device: Device,
        origin: WeightsOrigin,
    ) -> Result<Self> {
        check_device(device)?;
        let _guard = tch::no_grad_guard();
        let params = placed_params(&graph, values, device)?;
        Ok(Self::assemble(graph, params, device, origin))
    }

    fn assemble(graph: Arc<Graph>, params: Vec<Tensor>, device: Device, origin: WeightsOrigin) -> Self {
        let mut first_param = Vec::with_capacity(graph.nodes.len());
        let mut next = 0;
        for id in 0..graph.nodes.len() {
            first_param.push(next);
            next += graph.params[next..].iter().take_while(|p| p.node == id).count();
        }
        let fast_convs = Mutex::new((0..graph.nodes.len()).map(|_| None).collect());
        let batch_norm_after = batch_norm_after(&graph);
        Self { graph, params, first_param, device, origin, fast_convs, batch_norm_after }
    }

    pub fn graph(&self) -> &Arc<Graph> {
        &self.graph
    }

    pub fn device(&self) -> Device {
        self.device
    }

    pub fn origin(&self) -> &WeightsOrigin {
        &self.origin
    }

    pub fn params(&self) -> &[Tensor] {
        &self.params
    }

    /// Replaces every tensor at once; the caller has checked keys, shapes and dtypes.
    pub(crate) fn replace_params(&mut self, values: Vec<Tensor>, origin: WeightsOrigin) -> Result<()> {
        let _guard = tch::no_grad_guard();
        self.params = placed_params(&self.graph, values, self.device)?;
        self.origin = origin;
        self.forget_fast_convs();
        Ok(())
    }

    /// Moves the weights to another device; on failure the model stays where it was.
    pub fn to_device(&mut self, device: Device) -> Result<()> {
        check_device(device)?;
        let _guard = tch::no_grad_guard();
        let moved = self
            .params
            .iter()
            .zip(&self.graph.params)
            .map(|(t, spec)| finish_param(t.f_detach().context(|| spec.key.clone())?, spec, device))
            .collect::<Result<Vec<_>>>()?;
        self.params = moved;
        self.device = device;
        self.forget_fast_convs();
        Ok(())
    }

    /// Plain forward under `no_grad` in `opts.layout`, freeing each value after its last use.
    pub fn forward(&self, input: &Tensor, opts: &RunOptions) -> Result<Tensor> {
        let _guard = tch::no_grad_guard();
        let fast = (opts.layout == Layout::Fast && !opts.train && self.device == Device::Cpu)
            .then(|| self.fast_convs())
            .transpose()?;
        let plan = RunPlan { keep_all: false, in_place: true, fast_convs: fast.as_deref(), until: None };
        let mut values = self.execute(input, opts, &plan)?;
        take_output(&mut values, self.graph.output)
    }

    /// Forward recording the autograd graph, for a training step.
    pub fn forward_with_grad(&self, input: &Tensor, opts: &RunOptions) -> Result<Tensor> {
        let plan = RunPlan { keep_all: false, in_place: false, fast_convs: None, until: None };
        let mut values = self.execute(input, opts, &plan)?;
        take_output(&mut values, self.graph.output)
    }

    /// One node's output, in the reference layout, running only the nodes it depends on and
    /// keeping nothing else: what the explorer shows when it does not keep every output.
    pub fn forward_to(&self, input: &Tensor, opts: &RunOptions, node: NodeId) -> Result<Tensor> {
        if node >= self.graph.nodes.len() {
            return Err(Error::Input(format!("{} has no node {node}", self.graph.arch)));
        }
        let _guard = tch::no_grad_guard();
        let plan = RunPlan { keep_all: false, in_place: true, fast_convs: None, until: Some(node) };
        let mut values = self.execute(input, opts, &plan)?;
        take_output(&mut values, node)
    }

    /// Whether a run with `opts` computes `node` on its way to the logits (not a switched-off
    /// shortcut's branch, nor an auxiliary classifier outside training).
    pub fn runs_node(&self, node: NodeId, opts: &RunOptions) -> bool {
        let schedule = Schedule::new(&self.graph, &self.switched_off(opts), opts.train, self.graph.output);
        schedule.needed.get(node).copied().unwrap_or(false)
    }

    /// Forward keeping every node's output, in the reference layout.
    pub fn forward_capture(&self, input: &Tensor, opts: &RunOptions) -> Result<Capture> {
        let _guard = tch::no_grad_guard();
        let outputs = self.execute(input, opts, &RunPlan::KEEP_ALL)?;
        let logits = outputs[self.graph.output]
            .as_ref()
            .map(Tensor::shallow_clone)
            .ok_or_else(|| Error::Input("the output was not computed".into()))?;
        Ok(Capture { outputs, logits })
    }

    /// Forward + backward of the cross-entropy loss for `target` (default: each sample's
    /// predicted class), giving the gradient norm of every node's output and parameter.
    pub fn gradients(&self, input: &Tensor, target: Option<i64>, opts: &RunOptions) -> Result<GradientReport> {
        self.gradients_interruptible(input, target, opts, &|| false)?.ok_or_else(interrupted)
    }

    /// `gradients`, asking `interrupt` before every node of the forward pass and once more
    /// before the backward pass; `None` when it said stop. libtorch cannot stop a backward
    /// pass midway, so a caller waits at most for one.
    pub fn gradients_interruptible(
        &self,
        input: &Tensor,
        target: Option<i64>,
        opts: &RunOptions,
        interrupt: &dyn Fn() -> bool,
    ) -> Result<Option<GradientReport>> {
        let input =
            input.f_detach().and_then(|x| x.f_set_requires_grad(true)).context(|| "preparing the input".into())?;
        let Some(outputs) = self.execute_interruptible(&input, opts, &RunPlan::KEEP_ALL, interrupt)? else {
            return Ok(None);
        };
        let logits = outputs[self.graph.output]
            .as_ref()
            .map(Tensor::shallow_clone)
            .ok_or_else(|| Error::Input("the output was not computed".into()))?;
        let classes = *logits.size().last().unwrap_or(&0);
        let batch = logits.size().first().copied().unwrap_or(0);
        let targets: Vec<i64> = match target {
            Some(t) if !(0..classes).contains(&t) => {
                return Err(Error::Input(format!("target class {t} is outside 0..{classes}")));
            }
            Some(t) => vec![t; batch as usize],
            None => {
                let predicted = logits.f_argmax(-1, false).context(|| "argmax".into())?;
                Vec::<i64>::try_from(&predicted).context(|| "reading the prediction".into())?
            }
        };
        let target_tensor =
            Tensor::f_from_slice(&targets).and_then(|t| t.f_to(self.device)).context(|| "target".into())?;
        let loss = logits
            .f_cross_entropy_loss::<Tensor>(&target_tensor, None, Reduction::Mean, -100, 0.0)
            .context(|| "cross-entropy loss".into())?;

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
            if spec.trainable {
                wrt.push(t);
                slots.push((false, i));
            }
        }
        if interrupt() {
            return Ok(None);
        }
        let grads = Tensor::f_run_backward(&[&loss], &wrt, false, false).context(|| "backward pass".into())?;
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
        let outputs = outputs.into_iter().map(|o| o.map(|t| t.detach())).collect();
        Ok(Some(GradientReport { logits: logits.detach(), targets, loss, node_grad_norms, param_grad_norms, outputs }))
    }

    /// Checks an `N×C×H×W` input against the graph before any libtorch call, so a wrong
    /// size is reported with the node it breaks rather than a libtorch message.
    pub fn check_input(&self, input: &Tensor) -> Result<()> {
        let size = input.size();
        let &[_, c, h, w] = size.as_slice() else {
            return Err(Error::Input(format!("expected an N×C×H×W tensor, got shape {size:?}")));
        };
        let channels = self.graph.input_channels();
        if c != channels {
            return Err(Error::Input(format!("{} takes {channels} input channels, got {c}", self.graph.arch)));
        }
        self.graph.infer_shapes(h, w).map(|_| ())
    }

    /// Per node, whether `opts` switches its residual shortcut off (ids past the graph, from
    /// another model's switches, switch nothing).
    fn switched_off(&self, opts: &RunOptions) -> Vec<bool> {
        let n = self.graph.nodes.len();
        let mut disabled = vec![false; n];
        for &id in opts.disabled_residuals.iter().filter(|&&id| id < n) {
            disabled[id] = true;
        }
        disabled
    }

    /// Every convolution's fast form (see `FastConv`), per node: the cached one, remade where a
    /// tensor it was made from changed in place since.
    fn fast_convs(&self) -> Result<Vec<Option<FastConv>>> {
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
    fn is_folded(&self, bn: NodeId) -> bool {
        let conv = self.graph.nodes[bn].inputs.first().map(|e| e.from);
        conv.and_then(|c| self.batch_norm_after[c]).is_some_and(|(folded, _)| folded == bn)
    }

    fn forget_fast_convs(&mut self) {
        let cache = self.fast_convs.get_mut().unwrap_or_else(PoisonError::into_inner);
        *cache = (0..self.graph.nodes.len()).map(|_| None).collect();
    }

    fn execute(&self, input: &Tensor, opts: &RunOptions, plan: &RunPlan) -> Result<Vec<Option<Tensor>>> {
        self.execute_interruptible(input, opts, plan, &|| false)?.ok_or_else(interrupted)
    }

    /// Runs the nodes in order, asking `interrupt` before each; `None` when it said stop.
    fn execute_interruptible(
        &self,
        input: &Tensor,
        opts: &RunOptions,
        plan: &RunPlan,
        interrupt: &dyn Fn() -> bool,
    ) -> Result<Option<Vec<Option<Tensor>>>> {
        let fast_convs = plan.fast_convs;
        self.check_input(input)?;
        let input = input
            .f_to_device_(self.device, Kind::Float, false, false)
            .and_then(|t| if fast_convs.is_some() { channels_last(t) } else { Ok(t) })
            .context(|| format!("moving the input to {:?}", self.device))?;
        let graph = &*self.graph;
        let disabled = self.switched_off(opts);
        let target = plan.until.unwrap_or(graph.output);
        let schedule = Schedule::new(graph, &disabled, opts.train, target);
        let mut values: Vec<Option<Tensor>> = (0..graph.nodes.len()).map(|_| None).collect();
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
                    if plan.in_place
                        && owns_memory[edge.from]
                        && schedule.uses[edge.from] == 1
                        && edge.from != target =>
                {
                    Some((*a, edge.from))
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
                self.eval_node(id, &inputs, disabled[id], opts.train, fast_convs)
                    .context(|| format!("{} ({})", node.name, node.op.kind_name()))?
            };
            values[id] = Some(output);
            owns_memory[id] = overwritable.is_some() || makes_new_tensor(&node.op, disabled[id]);
            if !plan.keep_all {
                for edge in &node.inputs {
                    if schedule.last_use[edge.from] == id && edge.from != target {
                        values[edge.from] = None;
                    }
                }
            }
        }
        Ok(Some(values))
    }

    fn eval_node(
        &self,
        id: NodeId,
        x: &[&Tensor],
        residual_off: bool,
        train: bool,
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
            Op::BatchNorm2d { eps, momentum, .. } => Tensor::f_batch_norm(
                x[0],
                Some(&p[0]),
                Some(&p[1]),
                Some(&p[2]),
                Some(&p[3]),
                train,
                *momentum,
                *eps,
                true,
            ),
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
                if train {
                    x[0].f_dropout(*p, true)
                } else {
                    Ok(x[0].shallow_clone())
                }
            }
            Op::StochasticDepth { p } => {
                if train && *p > 0.0 {
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
            Op::ZeroPad { pad } => x[0].f_constant_pad_nd(pad),
        }
    }
}

/// How one run treats its values.
struct RunPlan<'a> {
    /// Keep every node's output (capture, gradients); otherwise free each after its last use.
    keep_all: bool,
    /// Let activations overwrite their input (plain forward: no autograd, nothing kept).
    in_place: bool,
    /// Per node, the convolutions of `Layout::Fast`: the input and the convolutions run
    /// channels-last, and batch norms folded into their convolution pass its output on.
    fast_convs: Option<&'a [Option<FastConv>]>,
    /// Run only what this node needs (default: the logits).
    until: Option<NodeId>,
}

impl RunPlan<'_> {
    const KEEP_ALL: RunPlan<'static> = RunPlan { keep_all: true, in_place: false, fast_convs: None, until: None };
}

/// Whether `eval_node` gives `op` a tensor of its own rather than a view or the input itself,
/// so overwriting it cannot change another value.
fn makes_new_tensor(op: &Op, residual_off: bool) -> bool {
    match op {
        Op::Conv2d(_)
        | Op::BatchNorm2d { .. }
        | Op::Linear { .. }
        | Op::Activation(_)
        | Op::MaxPool2d(_)
        | Op::AvgPool2d(_)
        | Op::AdaptiveAvgPool2d { .. }
        | Op::ScaledAdd { .. }
        | Op::Concat
        | Op::Scale
        | Op::LocalResponseNorm { .. }
        | Op::ChannelAffine { .. } => true,
        Op::Add => !residual_off,
        // Views or the input itself (and `contiguous` may return its input unchanged).
        Op::Input { .. }
        | Op::Dropout { .. }
        | Op::StochasticDepth { .. }
        | Op::Flatten
        | Op::ChannelShuffle { .. }
        | Op::ChannelSlice { .. }
        | Op::ZeroPad { .. } => false,
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

/// Which nodes a run needs, how many needed nodes read each value and where it is read last,
/// so plain forward can free activations as early as PyTorch does.
struct Schedule {
    needed: Vec<bool>,
    uses: Vec<u32>,
    last_use: Vec<NodeId>,
}

impl Schedule {
    /// The run that computes `output` (and in training, the auxiliary classifiers).
    fn new(graph: &Graph, disabled: &[bool], train: bool, output: NodeId) -> Self {
        let n = graph.nodes.len();
        let mut needed = vec![false; n];
        needed[output] = true;
        if train {
            for &aux in &graph.aux_outputs {
                needed[aux] = true;
            }
        }
        let mut last_use = vec![0; n];
        let mut uses = vec![0; n];
        for id in (0..n).rev() {
            if !needed[id] {
                continue;
            }
            let node = &graph.nodes[id];
            for (i, edge) in node.inputs.iter().enumerate() {
                // A switched-off merge ignores its shortcut, so the shortcut path is not run.
                if disabled[id] && node.op.is_residual_merge() && i == 1 {
                    continue;
                }
                needed[edge.from] = true;
                uses[edge.from] += 1;
                last_use[edge.from] = last_use[edge.from].max(id);
            }
        }
        Self { needed, uses, last_use }
    }
}

fn interrupted() -> Error {
    Error::Input("the run was interrupted".into())
}

fn take_output(values: &mut [Option<Tensor>], output: NodeId) -> Result<Tensor> {
    values[output].take().ok_or_else(|| Error::Input("the output was not computed".into()))
}

/// Something made from tensors, with their in-place versions when it was made.
type MadeFrom<T> = (Vec<i64>, T);

/// Per node: for a convolution whose output only a batch norm reads (and that batch norm
/// nothing else), that batch norm and its ε.
fn batch_norm_after(graph: &Graph) -> Vec<Option<(NodeId, f64)>> {
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
struct FastConv {
    weight: Tensor,
    bias: Option<Tensor>,
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
fn channels_last(t: Tensor) -> Result<Tensor, tch::TchError> {
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

pub fn check_device(device: Device) -> Result<()> {
    match device {
        Device::Cuda(i) if !tch::Cuda::is_available() => Err(Error::Device(format!(
            "CUDA device {i} was asked for, but no CUDA device is available on this machine (use --device cpu)"
        ))),
        Device::Cuda(i) if i >= tch::Cuda::device_count() as usize => {
            Err(Error::Device(format!("CUDA device {i} does not exist ({} present)", tch::Cuda::device_count())))
        }
        Device::Mps | Device::Vulkan => Err(Error::Device("only CPU and CUDA are supported".into())),
        _ => Ok(()),
    }
}

/// File tensors (any float dtype) as the model's parameters on `device`.
fn placed_params(graph: &Graph, values: Vec<Tensor>, device: Device) -> Result<Vec<Tensor>> {
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
fn finish_param(t: Tensor, spec: &ParamSpec, device: Device) -> Result<Tensor> {
    t.f_to_device_(device, Kind::Float, false, false)
        .and_then(|t| t.f_detach())
        .and_then(|t| t.f_set_requires_grad(spec.trainable))
        .context(|| format!("placing {} on {device:?}", spec.key))
}

fn init_param(graph: &Graph, spec: &ParamSpec) -> Result<Tensor> {
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
