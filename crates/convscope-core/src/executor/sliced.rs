//! A run to one node when only some of its channels count (feature visualisation's mean of a
//! channel): walking back from the node through ops that map channel c to channel c (batch
//! norm, activations, pooling, residual additions, depthwise convolutions, concatenation,
//! dropout in eval), every value on that tail is computed for the needed channels only, down
//! to the ordinary convolutions that make them, which compute those output channels alone.
//! Everything before the tail runs as `Model::forward_to_with_grad` runs it, but for ReLUs,
//! which overwrite their input where autograd allows (torchvision's `inplace=True`). The
//! weights are constants here: the gradient reaches the input only.

use tch::{Device, Kind, Tensor};

use super::fast::{FastConv, channels_last};
use super::plan::{BatchNorm, Behaviour, Schedule};
use super::{Layout, Model, RunOptions};
use crate::error::{Error, Result, TorchContext};
use crate::graph::{Activation, NodeId, Op};

/// Which of a node's output channels a run needs.
#[derive(Clone, Debug, PartialEq)]
enum Demand {
    Unused,
    Full,
    /// Sorted, without repeats; the value holds these channels in this order.
    Channels(Vec<i64>),
}

impl Demand {
    fn merge(&mut self, other: Demand) {
        *self = match (std::mem::replace(self, Demand::Unused), other) {
            (Demand::Unused, d) | (d, Demand::Unused) => d,
            (Demand::Channels(mut a), Demand::Channels(b)) => {
                a.extend(b);
                a.sort_unstable();
                a.dedup();
                Demand::Channels(a)
            }
            _ => Demand::Full,
        }
    }
}

/// How a node that needs only some channels computes them.
enum Sliced {
    /// A convolution of the whole input giving these output channels (weight and bias cut).
    Conv { weight: Tensor, bias: Option<Tensor> },
    /// A depthwise convolution of the input's same channels.
    Depthwise { weight: Tensor, bias: Option<Tensor> },
    /// Batch norm with its four tensors cut.
    BatchNorm { params: [Tensor; 4] },
    /// Folded into the convolution before it (the fast layout): that already gave the output.
    Folded,
    /// `ChannelAffine` with its scale and shift cut.
    Affine { scale: Tensor, shift: Tensor },
    /// Channel c from channel c of every input read, without parameters (activations,
    /// pooling, dropout in eval, additions, the squeeze-and-excitation scale, spatial padding).
    SameChannels,
    /// Concatenation: the channels that fall in each input, in order.
    Concat,
    /// `ChannelSlice`: channel c from the input's channel c + start.
    Offset(i64),
    /// Anything else: the whole output, then the channels taken from it.
    WholeThenSelect,
}

/// A prepared run of `Model::channel_tail`.
pub struct ChannelTail<'a> {
    model: &'a Model,
    target: NodeId,
    channels: Vec<i64>,
    behaviour: Behaviour,
    disabled: Vec<bool>,
    /// Per node: what the run needs of its output.
    demand: Vec<Demand>,
    /// Per node with a `Channels` demand: how it computes them.
    sliced: Vec<Option<Sliced>>,
    /// Per node, the channel count of its output.
    widths: Vec<i64>,
    /// Per node, the last node that reads it.
    last_use: Vec<NodeId>,
    /// Per node, whether it is an activation that overwrites its input.
    in_place: Vec<bool>,
    fast_convs: Option<Vec<Option<FastConv>>>,
}

impl Model {
    /// Prepares runs from an input of `input_size` (height, width) to `channels` of `node`'s
    /// output (`None`: all of it, nothing cut), recording autograd to the input only: the
    /// output is `N×K×H×W` with the K channels of `ChannelTail::channels` (the ones asked for,
    /// sorted, once each).
    /// In `Layout::Fast` on the CPU in inference, the convolutions run channels-last with batch
    /// norms folded, as plain forward's; `Layout::Reference` keeps PyTorch's kernels.
    pub fn channel_tail(
        &self,
        node: NodeId,
        channels: Option<&[i64]>,
        input_size: [i64; 2],
        opts: &RunOptions,
        layout: Layout,
    ) -> Result<ChannelTail<'_>> {
        let graph = &*self.graph;
        if node >= graph.nodes.len() {
            return Err(Error::Input(format!("{} has no node {node}", graph.arch)));
        }
        let report = graph.infer_shapes(input_size[0], input_size[1])?;
        let widths: Vec<i64> = report.nodes.iter().map(|n| n.shape.first().copied().unwrap_or(0)).collect();
        let mut wanted = channels.map_or_else(|| (0..widths[node]).collect(), <[i64]>::to_vec);
        wanted.sort_unstable();
        wanted.dedup();
        if wanted.is_empty() {
            return Err(Error::Input("no channel asked for".into()));
        }
        if report.nodes[node].shape.len() != 3 || wanted.iter().any(|&c| !(0..widths[node]).contains(&c)) {
            return Err(Error::Input(format!(
                "{} gives {:?}: no channels {wanted:?}",
                graph.nodes[node].name, report.nodes[node].shape
            )));
        }
        let behaviour = Behaviour::of(opts);
        let disabled = self.switched_off(opts);
        let schedule = Schedule::new(graph, &disabled, behaviour.auxiliary, node);
        let fast = layout == Layout::Fast && self.device == Device::Cpu && behaviour == Behaviour::INFERENCE;
        let fast_convs = fast.then(|| self.fast_convs()).transpose()?;

        let n = graph.nodes.len();
        let mut demand = vec![Demand::Unused; n];
        demand[node] = if channels.is_some() { Demand::Channels(wanted.clone()) } else { Demand::Full };
        let mut sliced: Vec<Option<Sliced>> = (0..n).map(|_| None).collect();
        let mut last_use = vec![0; n];
        let mut readers = vec![0u32; n];
        let _guard = tch::no_grad_guard();
        for id in (0..=node).rev() {
            if !schedule.needed[id] || demand[id] == Demand::Unused {
                continue;
            }
            let spec = &graph.nodes[id];
            let reads = if disabled[id] && spec.op.is_residual_merge() { 1 } else { spec.inputs.len() };
            let inputs = &spec.inputs[..reads];
            let Demand::Channels(wanted) = demand[id].clone() else {
                for edge in inputs {
                    demand[edge.from].merge(Demand::Full);
                    last_use[edge.from] = last_use[edge.from].max(id);
                    readers[edge.from] += 1;
                }
                continue;
            };
            let (how, asks) = self
                .slice(id, &wanted, &widths, fast_convs.as_deref(), behaviour)
                .context(|| format!("{} ({}), channels {wanted:?}", spec.name, spec.op.kind_name()))?;
            for (edge, ask) in inputs.iter().zip(asks) {
                if ask != Demand::Unused {
                    last_use[edge.from] = last_use[edge.from].max(id);
                    readers[edge.from] += 1;
                }
                demand[edge.from].merge(ask);
            }
            sliced[id] = Some(how);
        }
        // Like torchvision's `inplace=True`: a ReLU (or ReLU6) overwrites its input when it
        // alone reads it, reads it as it is, and the node that made it keeps no copy of it for
        // its own gradient (a convolution keeps its input, batch norm its input, an addition
        // nothing). ReLU's gradient needs only its output, so autograd allows it.
        let in_place = (0..n)
            .map(|id| {
                let spec = &graph.nodes[id];
                let (Op::Activation(Activation::Relu | Activation::Relu6), [edge]) = (&spec.op, spec.inputs.as_slice())
                else {
                    return false;
                };
                let from = edge.from;
                let owns = match &graph.nodes[from].op {
                    Op::Conv2d(_) | Op::BatchNorm2d { .. } | Op::ScaledAdd { .. } => true,
                    Op::Add => !disabled[from],
                    _ => false,
                };
                owns && readers[from] == 1 && from != node && from != graph.input && demand[from] == demand[id]
            })
            .collect();
        Ok(ChannelTail {
            model: self,
            target: node,
            channels: wanted,
            behaviour,
            disabled,
            demand,
            sliced,
            widths,
            last_use,
            in_place,
            fast_convs,
        })
    }

    /// How node `id` gives channels `wanted`, and what it then needs of each input.
    fn slice(
        &self,
        id: NodeId,
        wanted: &[i64],
        widths: &[i64],
        fast_convs: Option<&[Option<FastConv>]>,
        behaviour: Behaviour,
    ) -> Result<(Sliced, Vec<Demand>), tch::TchError> {
        let spec = &self.graph.nodes[id];
        let p = &self.params[self.first_param[id]..];
        let index = index_tensor(wanted, self.device)?;
        let cut = |t: &Tensor| t.f_detach()?.f_index_select(0, &index);
        let same = || vec![Demand::Channels(wanted.to_vec()); spec.inputs.len()];
        let whole = || (Sliced::WholeThenSelect, vec![Demand::Full; spec.inputs.len()]);
        Ok(match &spec.op {
            _ if id == self.graph.input => whole(),
            Op::Conv2d(c) if c.groups == 1 || c.is_depthwise() => {
                let (weight, bias) = match fast_convs.and_then(|f| f[id].as_ref()) {
                    Some(fast) => (channels_last(cut(&fast.weight)?)?, fast.bias.as_ref().map(cut).transpose()?),
                    None => (cut(&p[0])?, c.bias.then(|| cut(&p[1])).transpose()?),
                };
                if c.groups == 1 {
                    (Sliced::Conv { weight, bias }, vec![Demand::Full])
                } else {
                    (Sliced::Depthwise { weight, bias }, same())
                }
            }
            Op::BatchNorm2d { .. } if fast_convs.is_some() && self.is_folded(id) => (Sliced::Folded, same()),
            Op::BatchNorm2d { .. } => {
                let params = [cut(&p[0])?, cut(&p[1])?, cut(&p[2])?, cut(&p[3])?];
                (Sliced::BatchNorm { params }, same())
            }
            Op::ChannelAffine { scale, shift } => {
                let pick = |v: &[f64]| -> Result<Tensor, tch::TchError> {
                    let values: Vec<f32> = wanted.iter().map(|&c| v[c as usize] as f32).collect();
                    Tensor::f_from_slice(&values)?.f_to_device(self.device)?.f_view([1, -1, 1, 1])
                };
                (Sliced::Affine { scale: pick(scale)?, shift: pick(shift)? }, same())
            }
            Op::Dropout { .. } | Op::StochasticDepth { .. } if behaviour.drop => whole(),
            Op::Activation(_)
            | Op::MaxPool2d(_)
            | Op::AvgPool2d(_)
            | Op::AdaptiveAvgPool2d { .. }
            | Op::Dropout { .. }
            | Op::StochasticDepth { .. }
            | Op::Add
            | Op::ScaledAdd { .. }
            | Op::Scale => (Sliced::SameChannels, same()),
            Op::ZeroPad { pad } if pad[4] == 0 && pad[5] == 0 => (Sliced::SameChannels, same()),
            Op::ChannelSlice { start, .. } => {
                (Sliced::Offset(*start), vec![Demand::Channels(wanted.iter().map(|c| c + start).collect())])
            }
            Op::Concat => {
                let mut offset = 0;
                let asks = spec
                    .inputs
                    .iter()
                    .map(|edge| {
                        let width = widths[edge.from];
                        let mine: Vec<i64> = wanted
                            .iter()
                            .filter(|&&c| (offset..offset + width).contains(&c))
                            .map(|c| c - offset)
                            .collect();
                        offset += width;
                        if mine.is_empty() { Demand::Unused } else { Demand::Channels(mine) }
                    })
                    .collect();
                (Sliced::Concat, asks)
            }
            _ => whole(),
        })
    }
}

impl ChannelTail<'_> {
    /// The output's channels, in order: the ones asked for, sorted, once each.
    pub fn channels(&self) -> &[i64] {
        &self.channels
    }

    /// The nodes computed for some channels only, by name: what the tail covers.
    pub fn sliced_nodes(&self) -> Vec<&str> {
        let graph = &*self.model.graph;
        (0..graph.nodes.len())
            .filter(|&id| matches!(self.sliced[id], Some(ref s) if !matches!(s, Sliced::WholeThenSelect)))
            .map(|id| graph.nodes[id].name.as_str())
            .collect()
    }

    /// The convolutions (ordinary or depthwise) computed for some output channels only.
    pub fn sliced_convolutions(&self) -> Vec<&str> {
        let graph = &*self.model.graph;
        (0..graph.nodes.len())
            .filter(|&id| matches!(self.sliced[id], Some(Sliced::Conv { .. } | Sliced::Depthwise { .. })))
            .map(|id| graph.nodes[id].name.as_str())
            .collect()
    }

    /// The node's output for `input` at `channels()`, recording autograd to the input.
    pub fn forward_with_grad(&self, input: &Tensor) -> Result<Tensor> {
        let model = self.model;
        let graph = &*model.graph;
        model.check_input_for(input, self.behaviour.auxiliary)?;
        let fast_convs = self.fast_convs.as_deref();
        let input = input
            .f_to_device_(model.device, Kind::Float, false, false)
            .and_then(|t| if fast_convs.is_some() { channels_last(t) } else { Ok(t) })
            .context(|| format!("moving the input to {:?}", model.device))?;
        let mut values: Vec<Option<Tensor>> = (0..graph.nodes.len()).map(|_| None).collect();
        for id in 0..=self.target {
            if self.demand[id] == Demand::Unused {
                continue;
            }
            let spec = &graph.nodes[id];
            let output = if id == graph.input {
                Ok(input.shallow_clone())
            } else if self.in_place[id] {
                match (values[spec.inputs[0].from].take(), &spec.op) {
                    (Some(mut x), Op::Activation(Activation::Relu)) => x.f_relu_(),
                    (Some(mut x), _) => x.f_relu6_(),
                    (None, _) => Err(tch::TchError::Kind(format!("{}: an input was not computed", spec.name))),
                }
            } else {
                self.node(id, &values, fast_convs)
            };
            let output = output
                .and_then(|t| match (&self.demand[id], &self.sliced[id]) {
                    (Demand::Channels(wanted), Some(Sliced::WholeThenSelect)) => {
                        t.f_index_select(1, &index_tensor(wanted, model.device)?)
                    }
                    _ => Ok(t),
                })
                .context(|| format!("{} ({})", spec.name, spec.op.kind_name()))?;
            values[id] = Some(output);
            for edge in &spec.inputs {
                if self.last_use[edge.from] == id && edge.from != self.target {
                    values[edge.from] = None;
                }
            }
        }
        values[self.target].take().ok_or_else(|| Error::Input("the node was not computed".into()))
    }

    /// Node `id`'s output: whole, or its demanded channels as `sliced` says.
    fn node(
        &self,
        id: NodeId,
        values: &[Option<Tensor>],
        fast_convs: Option<&[Option<FastConv>]>,
    ) -> Result<Tensor, tch::TchError> {
        let model = self.model;
        let spec = &model.graph.nodes[id];
        let reads = if self.disabled[id] && spec.op.is_residual_merge() { 1 } else { spec.inputs.len() };
        let value = |from: NodeId| {
            values[from]
                .as_ref()
                .ok_or_else(|| tch::TchError::Kind(format!("{}: an input was not computed", spec.name)))
        };
        let (wanted, how) = match (&self.demand[id], &self.sliced[id]) {
            (Demand::Channels(wanted), Some(how)) if !matches!(how, Sliced::WholeThenSelect) => (wanted, how),
            _ => {
                let inputs = spec.inputs[..reads].iter().map(|e| value(e.from)).collect::<Result<Vec<_>, _>>()?;
                return model.eval_node(id, &inputs, self.disabled[id], self.behaviour, fast_convs);
            }
        };
        // Input `from`'s channels `want`, from what the run keeps of it.
        let pick = |from: NodeId, want: &[i64]| -> Result<Tensor, tch::TchError> {
            let have = value(from)?;
            match &self.demand[from] {
                Demand::Channels(kept) if kept == want => Ok(have.shallow_clone()),
                Demand::Channels(kept) => {
                    let positions: Vec<i64> = want
                        .iter()
                        .map(|c| kept.binary_search(c).map(|i| i as i64))
                        .collect::<Result<_, _>>()
                        .map_err(|_| tch::TchError::Kind(format!("{}: a channel was not kept", spec.name)))?;
                    have.f_index_select(1, &index_tensor(&positions, model.device)?)
                }
                _ => have.f_index_select(1, &index_tensor(want, model.device)?),
            }
        };
        let conv = match &spec.op {
            Op::Conv2d(c) => Some(c),
            _ => None,
        };
        match how {
            Sliced::Conv { weight, bias } => {
                let c = conv.ok_or_else(|| tch::TchError::Kind("not a convolution".into()))?;
                value(spec.inputs[0].from)?.f_conv2d(weight, bias.as_ref(), c.stride, c.padding, c.dilation, 1)
            }
            Sliced::Depthwise { weight, bias } => {
                let c = conv.ok_or_else(|| tch::TchError::Kind("not a convolution".into()))?;
                let x = pick(spec.inputs[0].from, wanted)?;
                let groups = wanted.len() as i64;
                x.f_conv2d(weight, bias.as_ref(), c.stride, c.padding, c.dilation, groups)
            }
            Sliced::BatchNorm { params } => {
                let Op::BatchNorm2d { eps, momentum, .. } = spec.op else {
                    return Err(tch::TchError::Kind("not a batch norm".into()));
                };
                // As `eval_node`; a training step's batch statistics are per channel, so a cut
                // batch norm gives the same channels.
                let running = self.behaviour.batch_norm != BatchNorm::Batch;
                Tensor::f_batch_norm(
                    &pick(spec.inputs[0].from, wanted)?,
                    Some(&params[0]),
                    Some(&params[1]),
                    running.then(|| &params[2]),
                    running.then(|| &params[3]),
                    self.behaviour.batch_norm != BatchNorm::Running,
                    momentum,
                    eps,
                    true,
                )
            }
            Sliced::Folded => pick(spec.inputs[0].from, wanted),
            Sliced::Affine { scale, shift } => pick(spec.inputs[0].from, wanted)?.f_mul(scale)?.f_add(shift),
            Sliced::SameChannels => {
                let inputs =
                    spec.inputs[..reads].iter().map(|e| pick(e.from, wanted)).collect::<Result<Vec<_>, _>>()?;
                let inputs: Vec<&Tensor> = inputs.iter().collect();
                model.eval_node(id, &inputs, self.disabled[id], self.behaviour, fast_convs)
            }
            Sliced::Offset(start) => {
                let shifted: Vec<i64> = wanted.iter().map(|c| c + start).collect();
                pick(spec.inputs[0].from, &shifted)
            }
            Sliced::Concat => {
                let mut offset = 0;
                let mut parts = Vec::new();
                for edge in &spec.inputs {
                    let width = self.widths[edge.from];
                    let mine: Vec<i64> =
                        wanted.iter().filter(|&&c| (offset..offset + width).contains(&c)).map(|c| c - offset).collect();
                    offset += width;
                    if !mine.is_empty() {
                        parts.push(pick(edge.from, &mine)?);
                    }
                }
                Tensor::f_cat(&parts, 1)
            }
            Sliced::WholeThenSelect => Err(tch::TchError::Kind("the whole output was asked for".into())),
        }
    }
}

fn index_tensor(values: &[i64], device: Device) -> Result<Tensor, tch::TchError> {
    Tensor::f_from_slice(values)?.f_to_device(device)
}
