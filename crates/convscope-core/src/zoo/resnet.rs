//! ResNet (He, Zhang, Ren, Sun 2015): torchvision's ResNet-18/34/50/101/152, and the CIFAR
//! ResNet-20/56 of the paper's §4.2 with their plain twins (the same layers, no shortcuts).
//!
//! Names follow torchvision: `conv1`, `bn1`, `layer2.0.conv1`, `layer2.0.downsample.0`, `fc`.
//! Inside a block the parameterless steps are `relu1`, `relu2`, (`relu3`), the residual
//! merge `add` and the output `relu`.

use serde::{Deserialize, Serialize};

use crate::graph::{BlockKind, Conv2d, Graph, GraphBuilder, InitScheme, NodeId, Op, Pool2d, WeightInit};
use crate::preprocess::Preprocess;
use crate::zoo::{ArchSpec, Build, Card, Labels};

const PROBLEM: &str = "Deeper plain networks trained worse, not better: past ~20 layers the training \
     error itself rose (degradation), as the signal and its gradient faded through many multiplications.";
const ANSWER: &str = "An identity shortcut around every block: the block outputs F(x) + x, so it only has \
     to learn a residual, and the signal and its gradient pass straight through even when F's weights are tiny.";

fn imagenet_card(name: &'static str, top1_paper: Option<f32>, top1_reference: f32) -> Card {
    Card {
        name,
        year: 2015,
        authors: "Kaiming He, Xiangyu Zhang, Shaoqing Ren, Jian Sun",
        paper: "Deep Residual Learning for Image Recognition",
        problem: PROBLEM,
        answer: ANSWER,
        top1_paper,
        top1_reference: Some(top1_reference),
        reference: "torchvision.models.resnet",
    }
}

fn cifar_card(name: &'static str, plain: bool) -> Card {
    Card {
        name,
        year: 2015,
        authors: "Kaiming He, Xiangyu Zhang, Shaoqing Ren, Jian Sun",
        paper: "Deep Residual Learning for Image Recognition (§4.2, CIFAR-10)",
        problem: PROBLEM,
        answer: if plain {
            "The control experiment: the same stack as the CIFAR ResNet with every shortcut removed. \
             The 56-layer plain net trains worse than the 20-layer one; watch its gradients fade."
        } else {
            "Three stages of 16/32/64-channel basic blocks (6n+2 layers) with identity shortcuts \
             (zero-padded channels where the width doubles): the deeper net now trains better."
        },
        top1_paper: None,
        top1_reference: None,
        reference: "convscope's own, after the paper (tests/fixtures/make_fixtures.py holds the PyTorch twin)",
    }
}

pub fn specs() -> Vec<ArchSpec> {
    let cifar = |id, card, build| ArchSpec {
        id,
        card,
        input: [3, 32, 32],
        preprocess: Preprocess::cifar(),
        labels: Labels::Cifar10,
        build: Build::Zoo(build),
    };
    vec![
        ArchSpec::imagenet("resnet18", imagenet_card("ResNet-18", Some(72.12), 69.758), resnet18),
        ArchSpec::imagenet("resnet34", imagenet_card("ResNet-34", Some(75.48), 73.314), resnet34),
        ArchSpec::imagenet("resnet50", imagenet_card("ResNet-50", Some(77.15), 76.130), resnet50),
        ArchSpec::imagenet("resnet101", imagenet_card("ResNet-101", Some(78.25), 77.374), resnet101),
        ArchSpec::imagenet("resnet152", imagenet_card("ResNet-152", Some(78.57), 78.312), resnet152),
        cifar("resnet20", cifar_card("ResNet-20 (CIFAR)", false), resnet20),
        cifar("resnet56", cifar_card("ResNet-56 (CIFAR)", false), resnet56),
        cifar("plain20", cifar_card("Plain-20 (CIFAR)", true), plain20),
        cifar("plain56", cifar_card("Plain-56 (CIFAR)", true), plain56),
    ]
}

pub fn resnet18() -> Graph {
    imagenet_resnet("resnet18", Block::Basic, [2, 2, 2, 2])
}
pub fn resnet34() -> Graph {
    imagenet_resnet("resnet34", Block::Basic, [3, 4, 6, 3])
}
pub fn resnet50() -> Graph {
    imagenet_resnet("resnet50", Block::Bottleneck, [3, 4, 6, 3])
}
pub fn resnet101() -> Graph {
    imagenet_resnet("resnet101", Block::Bottleneck, [3, 4, 23, 3])
}
pub fn resnet152() -> Graph {
    imagenet_resnet("resnet152", Block::Bottleneck, [3, 8, 36, 3])
}
pub fn resnet20() -> Graph {
    cifar(&CifarConfig::paper(3, true))
}
pub fn resnet56() -> Graph {
    cifar(&CifarConfig::paper(9, true))
}
pub fn plain20() -> Graph {
    cifar(&CifarConfig::paper(3, false))
}
pub fn plain56() -> Graph {
    cifar(&CifarConfig::paper(9, false))
}

#[derive(Clone, Copy, PartialEq)]
enum Block {
    Basic,
    Bottleneck,
}

impl Block {
    fn expansion(self) -> i64 {
        match self {
            Block::Basic => 1,
            Block::Bottleneck => 4,
        }
    }
}

fn conv_bn(g: &mut GraphBuilder, prefix: &str, index: usize, conv: Conv2d, x: NodeId) -> NodeId {
    let channels = conv.out_channels;
    let x = g.conv(format!("{prefix}.conv{index}"), conv, x);
    g.batch_norm(format!("{prefix}.bn{index}"), channels, x)
}

fn imagenet_resnet(arch: &str, block: Block, layers: [usize; 4]) -> Graph {
    let (mut g, x) = GraphBuilder::new(arch, 3);
    g.set_init(InitScheme { conv: WeightInit::KaimingNormalFanOut, linear: WeightInit::PytorchDefault });
    g.begin_block("stem", BlockKind::Stem);
    let x = g.conv("conv1", Conv2d::new(3, 64, 7).stride(2).padding(3).no_bias(), x);
    let x = g.batch_norm("bn1", 64, x);
    let x = g.relu("relu", x);
    let mut x = g.add("maxpool", Op::MaxPool2d(Pool2d::new(3, 2).padding(1)), &[x]);
    g.end_block();

    let mut in_channels = 64;
    for (stage, &blocks) in layers.iter().enumerate() {
        let planes = 64 << stage;
        let stage_name = format!("layer{}", stage + 1);
        g.begin_block(&stage_name, BlockKind::Stage);
        for b in 0..blocks {
            let stride = if b == 0 && stage > 0 { 2 } else { 1 };
            let name = format!("{stage_name}.{b}");
            x = match block {
                Block::Basic => {
                    let block =
                        Basic { in_channels, planes, stride, shortcut: Shortcut::Projection, norm: Norm::Batch };
                    basic_block(&mut g, &name, x, block)
                }
                Block::Bottleneck => bottleneck(&mut g, &name, x, in_channels, planes, stride),
            };
            in_channels = planes * block.expansion();
        }
        g.end_block();
    }

    g.begin_block("head", BlockKind::Head);
    let x = g.add("avgpool", Op::AdaptiveAvgPool2d { output: [1, 1] }, &[x]);
    let x = g.add("flatten", Op::Flatten, &[x]);
    let x = g.linear("fc", in_channels, 1000, x);
    g.end_block();
    g.finish(x)
}

/// How a block's shortcut matches a change of shape.
#[derive(Clone, Copy, PartialEq)]
enum Shortcut {
    /// torchvision: a strided 1×1 convolution and batch norm (`downsample.0/1`).
    Projection,
    /// The paper's CIFAR option A: subsample, then zero-fill the new channels; no parameters.
    ZeroPad,
    /// No shortcut at all: the plain twin.
    None,
}

/// Whether each convolution of a block is followed by a batch norm.
#[derive(Clone, Copy, PartialEq)]
enum Norm {
    Batch,
    /// No normalisation: the convolutions carry a bias (the lab's no-BN option).
    None,
}

/// The shape of one basic block.
#[derive(Clone, Copy)]
struct Basic {
    in_channels: i64,
    planes: i64,
    stride: i64,
    shortcut: Shortcut,
    norm: Norm,
}

/// A 3×3 convolution and, with `Norm::Batch`, its batch norm (`{prefix}.conv{index}`, `{prefix}.bn{index}`).
fn conv_norm(g: &mut GraphBuilder, prefix: &str, index: usize, conv: Conv2d, norm: Norm, x: NodeId) -> NodeId {
    match norm {
        Norm::Batch => conv_bn(g, prefix, index, conv.no_bias(), x),
        Norm::None => g.conv(format!("{prefix}.conv{index}"), conv, x),
    }
}

fn basic_block(g: &mut GraphBuilder, name: &str, input: NodeId, block: Basic) -> NodeId {
    let Basic { in_channels, planes, stride, shortcut, norm } = block;
    g.begin_block(name, BlockKind::BasicBlock);
    let x = conv_norm(g, name, 1, Conv2d::new(in_channels, planes, 3).stride(stride).padding(1), norm, input);
    let x = g.relu(format!("{name}.relu1"), x);
    let x = conv_norm(g, name, 2, Conv2d::new(planes, planes, 3).padding(1), norm, x);
    let reshaped = stride != 1 || in_channels != planes;
    let x = match shortcut {
        Shortcut::None => x,
        Shortcut::Projection if reshaped => {
            let identity = downsample(g, name, input, in_channels, planes, stride);
            g.residual_add(format!("{name}.add"), x, identity)
        }
        Shortcut::ZeroPad if reshaped => {
            let sub = g.add(format!("{name}.shortcut.subsample"), Op::MaxPool2d(Pool2d::new(1, stride)), &[input]);
            let extra = planes - in_channels;
            let pad = [0, 0, 0, 0, extra / 2, extra - extra / 2];
            let identity = g.add(format!("{name}.shortcut.pad"), Op::ZeroPad { pad }, &[sub]);
            g.residual_add(format!("{name}.add"), x, identity)
        }
        _ => g.residual_add(format!("{name}.add"), x, input),
    };
    let x = g.relu(format!("{name}.relu"), x);
    g.end_block();
    x
}

fn bottleneck(g: &mut GraphBuilder, name: &str, input: NodeId, in_channels: i64, planes: i64, stride: i64) -> NodeId {
    let out_channels = planes * 4;
    g.begin_block(name, BlockKind::Bottleneck);
    let x = conv_bn(g, name, 1, Conv2d::new(in_channels, planes, 1).no_bias(), input);
    let x = g.relu(format!("{name}.relu1"), x);
    // torchvision (v1.5) strides the 3×3 convolution, not the first 1×1.
    let x = conv_bn(g, name, 2, Conv2d::new(planes, planes, 3).stride(stride).padding(1).no_bias(), x);
    let x = g.relu(format!("{name}.relu2"), x);
    let x = conv_bn(g, name, 3, Conv2d::new(planes, out_channels, 1).no_bias(), x);
    let identity = if stride != 1 || in_channels != out_channels {
        downsample(g, name, input, in_channels, out_channels, stride)
    } else {
        input
    };
    let x = g.residual_add(format!("{name}.add"), x, identity);
    let x = g.relu(format!("{name}.relu"), x);
    g.end_block();
    x
}

fn downsample(g: &mut GraphBuilder, name: &str, x: NodeId, in_channels: i64, out_channels: i64, stride: i64) -> NodeId {
    let x =
        g.conv(format!("{name}.downsample.0"), Conv2d::new(in_channels, out_channels, 1).stride(stride).no_bias(), x);
    g.batch_norm(format!("{name}.downsample.1"), out_channels, x)
}

/// One member of the CIFAR family of §4.2: 6n+2 weighted layers (a 3×3 stem, three stages of
/// n basic blocks, a classifier), stage widths w, 2w, 4w.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CifarConfig {
    /// Basic blocks per stage (n): depth 6n+2.
    pub blocks: usize,
    /// Channels of the first stage (the paper's 16).
    pub width: i64,
    /// Identity shortcuts (option A: subsample and zero-filled channels where the shape changes),
    /// or none: the plain twin.
    pub residual: bool,
    /// A batch norm after every convolution, as in the paper. Without it the convolutions get
    /// a bias instead, and nothing else changes.
    pub batch_norm: bool,
    pub classes: i64,
}

impl CifarConfig {
    /// The paper's network for CIFAR-10: width 16, batch norm, 10 classes.
    pub fn paper(blocks: usize, residual: bool) -> Self {
        Self { blocks, width: 16, residual, batch_norm: true, classes: 10 }
    }

    /// The number of weighted layers, 6n+2.
    pub fn depth(&self) -> usize {
        6 * self.blocks + 2
    }

    /// The blocks per stage giving `depth` layers, if it is 6n+2 with n ≥ 1.
    pub fn blocks_for_depth(depth: usize) -> Option<usize> {
        (depth >= 8 && (depth - 2).is_multiple_of(6)).then(|| (depth - 2) / 6)
    }

    /// The zoo's id for the paper's networks (`resnet56`, `plain20`), with what differs from
    /// the paper after it: `plain56-w8`, `resnet20-w8-nobn`, `resnet20-c2`.
    pub fn id(&self) -> String {
        let mut id = format!("{}{}", if self.residual { "resnet" } else { "plain" }, self.depth());
        if self.width != 16 {
            id.push_str(&format!("-w{}", self.width));
        }
        if !self.batch_norm {
            id.push_str("-nobn");
        }
        if self.classes != 10 {
            id.push_str(&format!("-c{}", self.classes));
        }
        id
    }
}

/// 6n+2 layers on 32×32 (or any size the three stages can halve): a 3×3 stem, three stages of
/// n basic blocks (w, 2w, 4w channels), global average pooling and a linear classifier.
pub fn cifar(config: &CifarConfig) -> Graph {
    let &CifarConfig { blocks, width, residual, batch_norm, classes } = config;
    let (mut g, x) = GraphBuilder::new(&config.id(), 3);
    g.set_init(InitScheme { conv: WeightInit::KaimingNormalFanOut, linear: WeightInit::PytorchDefault });
    g.begin_block("stem", BlockKind::Stem);
    let x = if batch_norm {
        let x = g.conv("conv1", Conv2d::new(3, width, 3).padding(1).no_bias(), x);
        g.batch_norm("bn1", width, x)
    } else {
        g.conv("conv1", Conv2d::new(3, width, 3).padding(1), x)
    };
    let mut x = g.relu("relu", x);
    g.end_block();
    let shortcut = if residual { Shortcut::ZeroPad } else { Shortcut::None };
    let norm = if batch_norm { Norm::Batch } else { Norm::None };
    let mut in_channels = width;
    for stage in 0..3 {
        let planes = width << stage;
        let stage_name = format!("layer{}", stage + 1);
        g.begin_block(&stage_name, BlockKind::Stage);
        for b in 0..blocks {
            let stride = if b == 0 && stage > 0 { 2 } else { 1 };
            let block = Basic { in_channels, planes, stride, shortcut, norm };
            x = basic_block(&mut g, &format!("{stage_name}.{b}"), x, block);
            in_channels = planes;
        }
        g.end_block();
    }
    g.begin_block("head", BlockKind::Head);
    let x = g.add("avgpool", Op::AdaptiveAvgPool2d { output: [1, 1] }, &[x]);
    let x = g.add("flatten", Op::Flatten, &[x]);
    let x = g.linear("fc", in_channels, classes, x);
    g.end_block();
    g.finish(x)
}
