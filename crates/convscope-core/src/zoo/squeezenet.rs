//! SqueezeNet (Iandola, Han, Moskewicz, Ashraf, Dally, Keutzer 2016): torchvision's
//! SqueezeNet 1.0 (the paper's) and 1.1 (the authors' later, cheaper revision).
//!
//! Names follow torchvision: `features.N` for the stem and pools, each fire module a block
//! `features.N` (kind Fire) holding `features.N.squeeze`, `.squeeze_activation`, `.expand1x1`,
//! `.expand1x1_activation`, `.expand3x3`, `.expand3x3_activation` and the concatenation
//! `.cat`; then `classifier.0` (dropout), `classifier.1` (the 1×1 convolution to 1000 maps),
//! `classifier.2` (ReLU), `classifier.3` (global average pool) and `flatten`.

use crate::graph::{BlockKind, Conv2d, EdgeKind, Graph, GraphBuilder, InitScheme, NodeId, Op, Pool2d, WeightInit};
use crate::zoo::{ArchSpec, Card};

fn card(name: &'static str, v1_1: bool, top1_paper: Option<f32>, top1_reference: f32) -> Card {
    Card {
        name,
        year: 2016,
        authors: "Forrest N. Iandola, Song Han, Matthew W. Moskewicz, Khalid Ashraf, William J. Dally, Kurt Keutzer",
        paper: "SqueezeNet: AlexNet-level accuracy with 50x fewer parameters and <0.5MB model size",
        problem: "AlexNet's accuracy needed ~61M parameters: too much to ship over the air to a car or \
                  fit on an FPGA. How small can a network with that accuracy be?",
        answer: if v1_1 {
            "The authors' revision of SqueezeNet 1.0: a 3×3 stem with 64 maps and the pools moved \
             earlier, so the fire modules run on smaller maps: 2.4× less computation for the same \
             accuracy and parameters."
        } else {
            "Fire modules: a 1×1 \"squeeze\" layer cuts the channels, then parallel 1×1 and 3×3 \
             \"expand\" layers are concatenated, so most filters are 1×1 and the 3×3 ones see few \
             inputs; pooling late keeps maps large, and a 1×1 convolution with global average \
             pooling replaces the fully connected layers. ~1.2M parameters."
        },
        top1_paper,
        top1_reference: Some(top1_reference),
        reference: "torchvision.models.squeezenet",
    }
}

pub fn specs() -> Vec<ArchSpec> {
    vec![
        // The paper's Table 2: 57.5% top-1 for SqueezeNet (1.0); 1.1 has no paper.
        ArchSpec::imagenet("squeezenet1_0", card("SqueezeNet 1.0", false, Some(57.5), 58.092), squeezenet1_0),
        ArchSpec::imagenet("squeezenet1_1", card("SqueezeNet 1.1", true, None, 58.178), squeezenet1_1),
    ]
}

/// One entry of torchvision's `features`: a max pool or a fire module (squeeze, expand1x1, expand3x3).
#[derive(Clone, Copy)]
enum Layer {
    Pool,
    Fire(i64, i64, i64),
}
use Layer::{Fire, Pool};

pub fn squeezenet1_0() -> Graph {
    let stem = Conv2d::new(3, 96, 7).stride(2);
    let layers = [
        Fire(16, 64, 64),
        Fire(16, 64, 64),
        Fire(32, 128, 128),
        Pool,
        Fire(32, 128, 128),
        Fire(48, 192, 192),
        Fire(48, 192, 192),
        Fire(64, 256, 256),
        Pool,
        Fire(64, 256, 256),
    ];
    squeezenet("squeezenet1_0", stem, &layers)
}

pub fn squeezenet1_1() -> Graph {
    let stem = Conv2d::new(3, 64, 3).stride(2);
    let layers = [
        Fire(16, 64, 64),
        Fire(16, 64, 64),
        Pool,
        Fire(32, 128, 128),
        Fire(32, 128, 128),
        Pool,
        Fire(48, 192, 192),
        Fire(48, 192, 192),
        Fire(64, 256, 256),
        Fire(64, 256, 256),
    ];
    squeezenet("squeezenet1_1", stem, &layers)
}

fn max_pool() -> Op {
    // ceil_mode: the last window may hang over the edge, as in the original Caffe model.
    Op::MaxPool2d(Pool2d::new(3, 2).ceil_mode())
}

fn squeezenet(arch: &str, stem: Conv2d, layers: &[Layer]) -> Graph {
    let (mut g, x) = GraphBuilder::new(arch, 3);
    g.set_init(InitScheme { conv: WeightInit::KaimingUniformFanIn, linear: WeightInit::PytorchDefault });
    g.begin_block("features", BlockKind::Features);
    let mut channels = stem.out_channels;
    let x = g.conv("features.0", stem, x);
    let x = g.relu("features.1", x);
    let mut x = g.add("features.2", max_pool(), &[x]);
    for (i, layer) in layers.iter().enumerate() {
        let name = format!("features.{}", i + 3);
        x = match *layer {
            Pool => g.add(name, max_pool(), &[x]),
            Fire(squeeze, expand1x1, expand3x3) => {
                let out = fire(&mut g, &name, x, channels, squeeze, expand1x1, expand3x3);
                channels = expand1x1 + expand3x3;
                out
            }
        };
    }
    g.end_block();

    g.begin_block("head", BlockKind::Head);
    g.begin_block("classifier", BlockKind::Classifier);
    let x = g.add("classifier.0", Op::Dropout { p: 0.5 }, &[x]);
    let x = g.conv("classifier.1", Conv2d::new(channels, 1000, 1), x);
    // torchvision starts the final convolution small, unlike the other (Kaiming) layers.
    g.set_node_init(x, WeightInit::Normal(0.01));
    let x = g.relu("classifier.2", x);
    let x = g.add("classifier.3", Op::AdaptiveAvgPool2d { output: [1, 1] }, &[x]);
    g.end_block();
    let x = g.add("flatten", Op::Flatten, &[x]);
    g.end_block();
    g.finish(x)
}

fn fire(
    g: &mut GraphBuilder,
    name: &str,
    input: NodeId,
    in_channels: i64,
    squeeze: i64,
    expand1x1: i64,
    expand3x3: i64,
) -> NodeId {
    g.begin_block(name, BlockKind::Fire);
    let s = g.conv(format!("{name}.squeeze"), Conv2d::new(in_channels, squeeze, 1), input);
    let s = g.relu(format!("{name}.squeeze_activation"), s);
    let a = g.conv(format!("{name}.expand1x1"), Conv2d::new(squeeze, expand1x1, 1), s);
    let a = g.relu(format!("{name}.expand1x1_activation"), a);
    let b = g.conv(format!("{name}.expand3x3"), Conv2d::new(squeeze, expand3x3, 3).padding(1), s);
    let b = g.relu(format!("{name}.expand3x3_activation"), b);
    let x = g.concat(format!("{name}.cat"), &[a, b], EdgeKind::Branch);
    g.end_block();
    x
}
