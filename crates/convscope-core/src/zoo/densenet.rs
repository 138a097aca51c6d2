//! DenseNet (Huang, Liu, van der Maaten, Weinberger 2017): torchvision's DenseNet-121/169/201
//! (growth rate k = 32) and DenseNet-161 (k = 48).
//!
//! A dense block's layer does not add to its input like a residual block, it appends:
//! layer ℓ sees the concatenation of the block input and the k-channel outputs of layers
//! 1…ℓ−1, and the block outputs the concatenation of all of them. Each layer is BN-ReLU-conv
//! twice (a 1×1 bottleneck to 4k channels, then a 3×3 to k channels); between blocks a
//! transition (BN-ReLU, 1×1 conv halving the channels, 2×2 average pool) shrinks the maps.
//!
//! Names follow torchvision: `features.conv0`, `features.norm0`, `features.relu0`,
//! `features.pool0`; `features.denseblockN.denselayerM.{norm1,relu1,conv1,norm2,relu2,conv2}`;
//! `features.transitionN.{norm,relu,conv,pool}`; `features.norm5`; `classifier`.
//! torchvision's `torch.cat` calls are nodes of their own: `<layer>.concat` gathers a layer's
//! input (layer 1 reads the block input directly: a concatenation of one tensor is that
//! tensor), `<block>.concat` is the block's output. Its functional tail gets the names
//! `features.relu_final`, `avgpool` and `flatten`.

use crate::graph::{BlockKind, Conv2d, EdgeKind, Graph, GraphBuilder, InitScheme, NodeId, Op, Pool2d, WeightInit};
use crate::zoo::{ArchSpec, Card};

const PROBLEM: &str = "In deep networks the input signal and the gradient fade on their way through many \
     layers, and each layer recomputes features its predecessors already found.";
const ANSWER: &str = "Dense connectivity: inside a block every layer receives the concatenated outputs of all \
     earlier layers and adds only k new maps (the growth rate), so features are reused and every layer has a \
     short path to the loss; BN-ReLU-conv layers, 1×1 bottlenecks and halving transitions keep it compact.";

fn card(name: &'static str, top1_paper: Option<f32>, top1_reference: f32) -> Card {
    Card {
        name,
        year: 2017,
        authors: "Gao Huang, Zhuang Liu, Laurens van der Maaten, Kilian Q. Weinberger",
        paper: "Densely Connected Convolutional Networks",
        problem: PROBLEM,
        answer: ANSWER,
        top1_paper,
        top1_reference: Some(top1_reference),
        reference: "torchvision.models.densenet",
    }
}

pub fn specs() -> Vec<ArchSpec> {
    // top1_paper: the paper's Table 3, single-crop top-1 error 25.02 / 23.80 / 22.58 %.
    // DenseNet-161 is not in the paper's table (its authors released it with the code).
    // top1_reference: torchvision's IMAGENET1K_V1 `acc@1`.
    vec![
        ArchSpec::imagenet("densenet121", card("DenseNet-121", Some(74.98), 74.434), densenet121),
        ArchSpec::imagenet("densenet169", card("DenseNet-169", Some(76.20), 75.600), densenet169),
        ArchSpec::imagenet("densenet201", card("DenseNet-201", Some(77.42), 76.896), densenet201),
        ArchSpec::imagenet("densenet161", card("DenseNet-161 (k=48)", None, 77.138), densenet161),
    ]
}

pub fn densenet121() -> Graph {
    densenet("densenet121", 32, [6, 12, 24, 16], 64)
}
pub fn densenet169() -> Graph {
    densenet("densenet169", 32, [6, 12, 32, 32], 64)
}
pub fn densenet201() -> Graph {
    densenet("densenet201", 32, [6, 12, 48, 32], 64)
}
pub fn densenet161() -> Graph {
    densenet("densenet161", 48, [6, 12, 36, 24], 96)
}

/// torchvision's bottleneck width: the 1×1 conv produces `BN_SIZE × growth` channels.
const BN_SIZE: i64 = 4;

fn densenet(arch: &str, growth: i64, blocks: [usize; 4], init_features: i64) -> Graph {
    let (mut g, x) = GraphBuilder::new(arch, 3);
    // torchvision: kaiming_normal_ (fan-in) for convolutions; the classifier keeps PyTorch's
    // default weight (its bias is zeroed there, uniform here: the one difference).
    g.set_init(InitScheme { conv: WeightInit::KaimingNormalFanIn, linear: WeightInit::PytorchDefault });

    g.begin_block("features", BlockKind::Features);
    let x = g.conv("features.conv0", Conv2d::new(3, init_features, 7).stride(2).padding(3).no_bias(), x);
    let x = g.batch_norm("features.norm0", init_features, x);
    let x = g.relu("features.relu0", x);
    let mut x = g.add("features.pool0", Op::MaxPool2d(Pool2d::new(3, 2).padding(1)), &[x]);

    let mut channels = init_features;
    for (i, &layers) in blocks.iter().enumerate() {
        let block = format!("features.denseblock{}", i + 1);
        x = dense_block(&mut g, &block, x, channels, growth, layers);
        channels += layers as i64 * growth;
        if i + 1 < blocks.len() {
            x = transition(&mut g, &format!("features.transition{}", i + 1), x, channels, channels / 2);
            channels /= 2;
        }
    }
    let x = g.batch_norm("features.norm5", channels, x);
    g.end_block();

    g.begin_block("head", BlockKind::Head);
    let x = g.relu("features.relu_final", x);
    let x = g.add("avgpool", Op::AdaptiveAvgPool2d { output: [1, 1] }, &[x]);
    let x = g.add("flatten", Op::Flatten, &[x]);
    let x = g.linear("classifier", channels, 1000, x);
    g.end_block();
    g.finish(x)
}

/// `layers` dense layers; returns the block's output, the concatenation of its input and
/// every layer's `growth` new channels.
fn dense_block(
    g: &mut GraphBuilder,
    name: &str,
    input: NodeId,
    in_channels: i64,
    growth: i64,
    layers: usize,
) -> NodeId {
    g.begin_block(name, BlockKind::DenseBlock);
    let mut features = vec![input];
    for l in 0..layers {
        let layer = format!("{name}.denselayer{}", l + 1);
        let channels = in_channels + l as i64 * growth;
        features.push(dense_layer(g, &layer, &features, channels, growth));
    }
    let out = g.concat(format!("{name}.concat"), &features, EdgeKind::Dense);
    g.end_block();
    out
}

/// BN-ReLU-conv1×1 (to `BN_SIZE × growth`), BN-ReLU-conv3×3 (to `growth`), on the
/// concatenation of everything before it in the block.
fn dense_layer(g: &mut GraphBuilder, name: &str, features: &[NodeId], in_channels: i64, growth: i64) -> NodeId {
    g.begin_block(name, BlockKind::DenseLayer);
    let x = match features {
        [only] => *only,
        _ => g.concat(format!("{name}.concat"), features, EdgeKind::Dense),
    };
    let width = BN_SIZE * growth;
    let x = g.batch_norm(format!("{name}.norm1"), in_channels, x);
    let x = g.relu(format!("{name}.relu1"), x);
    let x = g.conv(format!("{name}.conv1"), Conv2d::new(in_channels, width, 1).no_bias(), x);
    let x = g.batch_norm(format!("{name}.norm2"), width, x);
    let x = g.relu(format!("{name}.relu2"), x);
    let x = g.conv(format!("{name}.conv2"), Conv2d::new(width, growth, 3).padding(1).no_bias(), x);
    g.end_block();
    x
}

/// BN-ReLU, a 1×1 conv to `out_channels` (half), and a 2×2 average pool.
fn transition(g: &mut GraphBuilder, name: &str, x: NodeId, in_channels: i64, out_channels: i64) -> NodeId {
    g.begin_block(name, BlockKind::Transition);
    let x = g.batch_norm(format!("{name}.norm"), in_channels, x);
    let x = g.relu(format!("{name}.relu"), x);
    let x = g.conv(format!("{name}.conv"), Conv2d::new(in_channels, out_channels, 1).no_bias(), x);
    let x = g.add(format!("{name}.pool"), Op::AvgPool2d(Pool2d::new(2, 2)), &[x]);
    g.end_block();
    x
}
