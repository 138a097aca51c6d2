//! The architecture as data: a graph of named nodes from which execution, the diagram,
//! the tables, activation capture, gradient norms and residual toggles all derive.
//!
//! A node's name is the state-dict prefix of the reference implementation (`layer1.0.conv1`),
//! so a parameter's key is `<node>.<suffix>` and pretrained weights load with no renaming.
//! Nodes are stored in execution order: every input precedes its consumers.

use std::collections::HashMap;

use serde::Serialize;

pub type NodeId = usize;
pub type BlockId = usize;

/// How a value reaches a node; the diagram draws each kind differently.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum EdgeKind {
    Sequence,
    /// The identity (or projection) shortcut into a residual addition.
    Residual,
    /// One parallel branch of an Inception or fire module.
    Branch,
    /// An earlier layer's output fanned into a dense block's concatenation.
    Dense,
    /// Into an auxiliary classifier, which runs only in training.
    Aux,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Edge {
    pub from: NodeId,
    pub kind: EdgeKind,
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub enum Activation {
    Relu,
    Relu6,
    Sigmoid,
    Tanh,
    HardSigmoid,
    HardSwish,
    /// Also called swish.
    Silu,
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Conv2d {
    pub in_channels: i64,
    pub out_channels: i64,
    pub kernel: [i64; 2],
    pub stride: [i64; 2],
    pub padding: [i64; 2],
    pub dilation: [i64; 2],
    pub groups: i64,
    pub bias: bool,
}

impl Conv2d {
    pub fn new(in_channels: i64, out_channels: i64, kernel: i64) -> Self {
        Self {
            in_channels,
            out_channels,
            kernel: [kernel, kernel],
            stride: [1, 1],
            padding: [0, 0],
            dilation: [1, 1],
            groups: 1,
            bias: true,
        }
    }
    pub fn stride(mut self, stride: i64) -> Self {
        self.stride = [stride, stride];
        self
    }
    pub fn padding(mut self, padding: i64) -> Self {
        self.padding = [padding, padding];
        self
    }
    pub fn padding_hw(mut self, padding: [i64; 2]) -> Self {
        self.padding = padding;
        self
    }
    pub fn kernel_hw(mut self, kernel: [i64; 2]) -> Self {
        self.kernel = kernel;
        self
    }
    pub fn groups(mut self, groups: i64) -> Self {
        self.groups = groups;
        self
    }
    pub fn no_bias(mut self) -> Self {
        self.bias = false;
        self
    }
    /// One filter per input channel: the first half of a depthwise separable convolution.
    pub fn is_depthwise(&self) -> bool {
        self.groups > 1 && self.groups == self.in_channels && self.in_channels == self.out_channels
    }
    pub fn is_pointwise(&self) -> bool {
        self.kernel == [1, 1] && self.groups == 1
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Pool2d {
    pub kernel: [i64; 2],
    pub stride: [i64; 2],
    pub padding: [i64; 2],
    pub ceil_mode: bool,
    /// Average pooling only: whether zero padding counts in the divisor (PyTorch's default).
    pub count_include_pad: bool,
}

impl Pool2d {
    pub fn new(kernel: i64, stride: i64) -> Self {
        Self {
            kernel: [kernel, kernel],
            stride: [stride, stride],
            padding: [0, 0],
            ceil_mode: false,
            count_include_pad: true,
        }
    }
    pub fn padding(mut self, padding: i64) -> Self {
        self.padding = [padding, padding];
        self
    }
    pub fn ceil_mode(mut self) -> Self {
        self.ceil_mode = true;
        self
    }
    pub fn exclude_pad(mut self) -> Self {
        self.count_include_pad = false;
        self
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub enum Op {
    Input {
        channels: i64,
    },
    Conv2d(Conv2d),
    /// Evaluated with running statistics (eval mode) unless the run is a training step.
    BatchNorm2d {
        channels: i64,
        eps: f64,
        momentum: f64,
    },
    Linear {
        in_features: i64,
        out_features: i64,
        bias: bool,
    },
    Activation(Activation),
    MaxPool2d(Pool2d),
    AvgPool2d(Pool2d),
    AdaptiveAvgPool2d {
        output: [i64; 2],
    },
    /// Identity in eval; kept as a node because the reference has it.
    Dropout {
        p: f64,
    },
    /// Drops a whole sample's residual branch with probability `p` in training (EfficientNet's
    /// stochastic depth); identity in eval.
    StochasticDepth {
        p: f64,
    },
    Flatten,
    /// `inputs[0] + inputs[1]` where `inputs[1]` is the residual shortcut.
    /// Switched off, the node outputs `inputs[0]` alone.
    Add,
    /// `inputs[1] + scale * inputs[0]` (Inception-ResNet); switched off, `scale * inputs[0]`.
    ScaledAdd {
        scale: f64,
    },
    /// Concatenation along channels.
    Concat,
    /// `inputs[0] * inputs[1]`, the gate broadcast over space (squeeze-and-excitation).
    Scale,
    ChannelShuffle {
        groups: i64,
    },
    /// Channels `start..end` of the input (ShuffleNet v2's split).
    ChannelSlice {
        start: i64,
        end: i64,
    },
    LocalResponseNorm {
        size: i64,
        alpha: f64,
        beta: f64,
        k: f64,
    },
    /// `x[:, c] * scale[c] + shift[c]`: Inception's `transform_input`.
    ChannelAffine {
        scale: Vec<f64>,
        shift: Vec<f64>,
    },
    /// Zero padding `[left, right, top, bottom, channels before, channels after]`:
    /// TensorFlow's "same" padding, or the zero-filled channels of a CIFAR ResNet shortcut.
    ZeroPad {
        pad: [i64; 6],
    },
}

impl Op {
    /// Short label for tables and the diagram.
    pub fn kind_name(&self) -> &'static str {
        match self {
            Op::Input { .. } => "Input",
            Op::Conv2d(c) if c.is_depthwise() => "DepthwiseConv2d",
            Op::Conv2d(_) => "Conv2d",
            Op::BatchNorm2d { .. } => "BatchNorm2d",
            Op::Linear { .. } => "Linear",
            Op::Activation(a) => match a {
                Activation::Relu => "ReLU",
                Activation::Relu6 => "ReLU6",
                Activation::Sigmoid => "Sigmoid",
                Activation::Tanh => "Tanh",
                Activation::HardSigmoid => "Hardsigmoid",
                Activation::HardSwish => "Hardswish",
                Activation::Silu => "SiLU",
            },
            Op::MaxPool2d(_) => "MaxPool2d",
            Op::AvgPool2d(_) => "AvgPool2d",
            Op::AdaptiveAvgPool2d { .. } => "AdaptiveAvgPool2d",
            Op::Dropout { .. } => "Dropout",
            Op::StochasticDepth { .. } => "StochasticDepth",
            Op::Flatten => "Flatten",
            Op::Add => "Add",
            Op::ScaledAdd { .. } => "ScaledAdd",
            Op::Concat => "Concat",
            Op::Scale => "Scale",
            Op::ChannelShuffle { .. } => "ChannelShuffle",
            Op::ChannelSlice { .. } => "ChannelSlice",
            Op::LocalResponseNorm { .. } => "LocalResponseNorm",
            Op::ChannelAffine { .. } => "ChannelAffine",
            Op::ZeroPad { .. } => "ZeroPad",
        }
    }

    /// Whether switching the node off removes a shortcut (the residual toggle).
    pub fn is_residual_merge(&self) -> bool {
        matches!(self, Op::Add | Op::ScaledAdd { .. })
    }

    /// The tensors this op owns, as (suffix, shape, trainable). Buffers are not trainable.
    pub fn param_shapes(&self) -> Vec<(&'static str, Vec<i64>, bool)> {
        match self {
            Op::Conv2d(c) => {
                let mut shapes =
                    vec![("weight", vec![c.out_channels, c.in_channels / c.groups, c.kernel[0], c.kernel[1]], true)];
                if c.bias {
                    shapes.push(("bias", vec![c.out_channels], true));
                }
                shapes
            }
            Op::BatchNorm2d { channels, .. } => vec![
                ("weight", vec![*channels], true),
                ("bias", vec![*channels], true),
                ("running_mean", vec![*channels], false),
                ("running_var", vec![*channels], false),
            ],
            Op::Linear { in_features, out_features, bias } => {
                let mut shapes = vec![("weight", vec![*out_features, *in_features], true)];
                if *bias {
                    shapes.push(("bias", vec![*out_features], true));
                }
                shapes
            }
            _ => Vec::new(),
        }
    }
}

/// What a block is, so the diagram can draw each family's idea.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum BlockKind {
    Stem,
    Stage,
    Head,
    Features,
    Classifier,
    BasicBlock,
    Bottleneck,
    Inception,
    InceptionResidual,
    DenseBlock,
    DenseLayer,
    Transition,
    Fire,
    DepthwiseSeparable,
    InvertedResidual,
    MbConv,
    SqueezeExcite,
    ShuffleUnit,
    AuxClassifier,
}

impl BlockKind {
    /// The name people use for the block, as the diagram and the tables show it.
    pub fn label(self) -> &'static str {
        match self {
            BlockKind::Stem => "stem",
            BlockKind::Stage => "stage",
            BlockKind::Head => "head",
            BlockKind::Features => "features",
            BlockKind::Classifier => "classifier",
            BlockKind::BasicBlock => "basic block",
            BlockKind::Bottleneck => "bottleneck",
            BlockKind::Inception => "Inception module",
            BlockKind::InceptionResidual => "Inception-ResNet block",
            BlockKind::DenseBlock => "dense block",
            BlockKind::DenseLayer => "dense layer",
            BlockKind::Transition => "transition",
            BlockKind::Fire => "fire module",
            BlockKind::DepthwiseSeparable => "depthwise separable",
            BlockKind::InvertedResidual => "inverted residual",
            BlockKind::MbConv => "MBConv",
            BlockKind::SqueezeExcite => "squeeze-and-excitation",
            BlockKind::ShuffleUnit => "ShuffleNet unit",
            BlockKind::AuxClassifier => "auxiliary classifier",
        }
    }
}

/// A shape as people write it: `64×56×56`.
pub fn shape_label(shape: &[i64]) -> String {
    shape.iter().map(i64::to_string).collect::<Vec<_>>().join("×")
}

#[derive(Clone, Debug, Serialize)]
pub struct Block {
    pub name: String,
    pub kind: BlockKind,
    pub parent: Option<BlockId>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Node {
    pub name: String,
    pub op: Op,
    pub inputs: Vec<Edge>,
    /// The innermost block holding this node.
    pub block: Option<BlockId>,
    /// Part of an auxiliary classifier: computed in training runs only, like the reference.
    pub aux: bool,
}

/// How the reference initialises weights when no pretrained file is loaded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub enum WeightInit {
    /// PyTorch's layer default: kaiming-uniform with a = √5, bias uniform in ±1/√fan_in.
    #[default]
    PytorchDefault,
    /// Kaiming-normal over fan-out for ReLU, bias zero (torchvision's ResNet, VGG convs).
    KaimingNormalFanOut,
    /// Kaiming-normal over fan-in for ReLU, bias zero (torchvision's DenseNet).
    KaimingNormalFanIn,
    /// Normal(0, std), bias zero (torchvision's VGG and MobileNet classifiers).
    Normal(f64),
    /// `torch.nn.init.kaiming_uniform_` with its defaults (fan-in, gain √2): uniform in
    /// ±√(6 / fan_in), bias zero (torchvision's SqueezeNet).
    KaimingUniformFanIn,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct InitScheme {
    pub conv: WeightInit,
    pub linear: WeightInit,
}

/// One tensor of the state dict the graph expects.
#[derive(Clone, Debug, Serialize)]
pub struct ParamSpec {
    pub key: String,
    pub node: NodeId,
    pub shape: Vec<i64>,
    pub trainable: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct Graph {
    pub arch: String,
    pub nodes: Vec<Node>,
    pub blocks: Vec<Block>,
    pub input: NodeId,
    pub output: NodeId,
    /// The outputs of auxiliary classifiers (training only).
    pub aux_outputs: Vec<NodeId>,
    pub params: Vec<ParamSpec>,
    pub init: InitScheme,
    /// Layers the reference initialises apart from the rest of their kind (SqueezeNet's last conv).
    pub init_overrides: Vec<(NodeId, WeightInit)>,
    index: HashMap<String, NodeId>,
}

impl Graph {
    pub fn node_id(&self, name: &str) -> Option<NodeId> {
        self.index.get(name).copied()
    }

    pub fn block_id(&self, name: &str) -> Option<BlockId> {
        self.blocks.iter().position(|b| b.name == name)
    }

    pub fn input_channels(&self) -> i64 {
        match self.nodes[self.input].op {
            Op::Input { channels } => channels,
            _ => unreachable!("the builder makes node 0 the input"),
        }
    }

    /// Whether `block` is `ancestor` or nested inside it.
    pub fn block_within(&self, block: BlockId, ancestor: BlockId) -> bool {
        let mut current = Some(block);
        while let Some(id) = current {
            if id == ancestor {
                return true;
            }
            current = self.blocks[id].parent;
        }
        false
    }

    /// The last node of a block in execution order: what the reference's module returns.
    pub fn block_output(&self, block: BlockId) -> Option<NodeId> {
        self.nodes.iter().rposition(|n| n.block.is_some_and(|b| self.block_within(b, block)))
    }

    /// The nodes whose shortcut can be switched off.
    pub fn residual_nodes(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.nodes.iter().enumerate().filter(|(_, n)| n.op.is_residual_merge()).map(|(i, _)| i)
    }

    /// Resolves `--no-skip` names: `all`, a merge node, a block (`layer1.0`) or a stage
    /// (`layer1`), each selecting every residual merge inside it.
    pub fn resolve_residuals(&self, names: &[String]) -> Result<Vec<NodeId>, String> {
        let residuals: Vec<NodeId> = self.residual_nodes().collect();
        let mut chosen = Vec::new();
        for name in names {
            let name = name.trim();
            if name.is_empty() {
                continue;
            }
            let matched: Vec<NodeId> = if name == "all" {
                residuals.clone()
            } else if let Some(id) = self.node_id(name).filter(|id| residuals.contains(id)) {
                vec![id]
            } else if let Some(block) = self.block_id(name) {
                residuals
                    .iter()
                    .copied()
                    .filter(|&r| self.nodes[r].block.is_some_and(|b| self.block_within(b, block)))
                    .collect()
            } else {
                Vec::new()
            };
            if matched.is_empty() {
                let examples: Vec<&str> = self
                    .residual_nodes()
                    .filter_map(|r| self.nodes[r].block.map(|b| self.blocks[b].name.as_str()))
                    .take(4)
                    .collect();
                return Err(if residuals.is_empty() {
                    format!("{} has no residual connections to switch off", self.arch)
                } else {
                    format!(
                        "no residual connection named {name:?} in {}; use `all`, a block or a stage (e.g. {})",
                        self.arch,
                        examples.join(", ")
                    )
                });
            }
            chosen.extend(matched);
        }
        chosen.sort_unstable();
        chosen.dedup();
        Ok(chosen)
    }

    pub fn parameter_count(&self) -> i64 {
        self.params.iter().filter(|p| p.trainable).map(|p| p.shape.iter().product::<i64>()).sum()
    }
}

/// Builds a graph in execution order. Family files use it like a PyTorch `forward`:
/// each call adds a node and returns its id.
pub struct GraphBuilder {
    arch: String,
    nodes: Vec<Node>,
    blocks: Vec<Block>,
    open_blocks: Vec<BlockId>,
    index: HashMap<String, NodeId>,
    aux_outputs: Vec<NodeId>,
    in_aux: bool,
    init: InitScheme,
    init_overrides: Vec<(NodeId, WeightInit)>,
}

impl GraphBuilder {
    /// Starts a graph whose node 0 is the input image with `channels` channels.
    pub fn new(arch: &str, channels: i64) -> (Self, NodeId) {
        let mut builder = Self {
            arch: arch.to_owned(),
            nodes: Vec::new(),
            blocks: Vec::new(),
            open_blocks: Vec::new(),
            index: HashMap::new(),
            aux_outputs: Vec::new(),
            in_aux: false,
            init: InitScheme::default(),
            init_overrides: Vec::new(),
        };
        let input = builder.push("input", Op::Input { channels }, Vec::new());
        (builder, input)
    }

    /// Adds a node fed in sequence by `inputs`.
    pub fn add(&mut self, name: impl Into<String>, op: Op, inputs: &[NodeId]) -> NodeId {
        let kind = if self.in_aux { EdgeKind::Aux } else { EdgeKind::Sequence };
        let edges = inputs.iter().map(|&from| Edge { from, kind }).collect();
        self.push(name, op, edges)
    }

    /// Adds a node with explicitly typed input edges.
    pub fn add_edges(&mut self, name: impl Into<String>, op: Op, inputs: Vec<Edge>) -> NodeId {
        self.push(name, op, inputs)
    }

    /// `branch + shortcut`, the shortcut drawn (and switchable) as a residual edge.
    pub fn residual_add(&mut self, name: impl Into<String>, branch: NodeId, shortcut: NodeId) -> NodeId {
        let edges =
            vec![Edge { from: branch, kind: EdgeKind::Sequence }, Edge { from: shortcut, kind: EdgeKind::Residual }];
        self.push(name, Op::Add, edges)
    }

    /// Concatenates parallel branches (edge kind `Branch`) or dense links (`Dense`).
    pub fn concat(&mut self, name: impl Into<String>, inputs: &[NodeId], kind: EdgeKind) -> NodeId {
        let edges = inputs.iter().map(|&from| Edge { from, kind }).collect();
        self.push(name, Op::Concat, edges)
    }

    pub fn conv(&mut self, name: impl Into<String>, conv: Conv2d, input: NodeId) -> NodeId {
        self.add(name, Op::Conv2d(conv), &[input])
    }

    pub fn batch_norm(&mut self, name: impl Into<String>, channels: i64, input: NodeId) -> NodeId {
        self.batch_norm_eps(name, channels, 1e-5, input)
    }

    pub fn batch_norm_eps(&mut self, name: impl Into<String>, channels: i64, eps: f64, input: NodeId) -> NodeId {
        self.add(name, Op::BatchNorm2d { channels, eps, momentum: 0.1 }, &[input])
    }

    pub fn act(&mut self, name: impl Into<String>, activation: Activation, input: NodeId) -> NodeId {
        self.add(name, Op::Activation(activation), &[input])
    }

    pub fn relu(&mut self, name: impl Into<String>, input: NodeId) -> NodeId {
        self.act(name, Activation::Relu, input)
    }

    pub fn linear(&mut self, name: impl Into<String>, in_features: i64, out_features: i64, input: NodeId) -> NodeId {
        self.add(name, Op::Linear { in_features, out_features, bias: true }, &[input])
    }

    /// The reference's initialisation for random weights.
    pub fn set_init(&mut self, init: InitScheme) {
        self.init = init;
    }

    /// Initialises one layer's weight differently from the scheme for its kind.
    pub fn set_node_init(&mut self, node: NodeId, init: WeightInit) {
        self.init_overrides.push((node, init));
    }

    pub fn begin_block(&mut self, name: impl Into<String>, kind: BlockKind) -> BlockId {
        let id = self.blocks.len();
        self.blocks.push(Block { name: name.into(), kind, parent: self.open_blocks.last().copied() });
        self.open_blocks.push(id);
        id
    }

    pub fn end_block(&mut self) {
        self.open_blocks.pop();
    }

    /// Nodes added until `end_aux` form an auxiliary classifier, run only in training.
    pub fn begin_aux(&mut self) {
        self.in_aux = true;
    }

    pub fn end_aux(&mut self, aux_output: NodeId) {
        self.in_aux = false;
        self.aux_outputs.push(aux_output);
    }

    /// Finishes the graph; `output` is the node whose value is the logits.
    pub fn finish(self, output: NodeId) -> Graph {
        let params = self
            .nodes
            .iter()
            .enumerate()
            .flat_map(|(id, node)| {
                node.op.param_shapes().into_iter().map(move |(suffix, shape, trainable)| ParamSpec {
                    key: format!("{}.{suffix}", node.name),
                    node: id,
                    shape,
                    trainable,
                })
            })
            .collect();
        Graph {
            arch: self.arch,
            nodes: self.nodes,
            blocks: self.blocks,
            input: 0,
            output,
            aux_outputs: self.aux_outputs,
            params,
            init: self.init,
            init_overrides: self.init_overrides,
            index: self.index,
        }
    }

    fn push(&mut self, name: impl Into<String>, op: Op, inputs: Vec<Edge>) -> NodeId {
        let name = name.into();
        let id = self.nodes.len();
        debug_assert!(inputs.iter().all(|e| e.from < id), "inputs must precede their consumer");
        let previous = self.index.insert(name.clone(), id);
        assert!(previous.is_none(), "{}: node name {name:?} used twice", self.arch);
        self.nodes.push(Node { name, op, inputs, block: self.open_blocks.last().copied(), aux: self.in_aux });
        id
    }
}
