//! VGG (Simonyan, Zisserman 2014): torchvision's VGG-11, -16 and -19, and VGG-16/19 with batch
//! normalisation.
//!
//! Names follow torchvision's `nn.Sequential` indices: `features.N` counts every layer (conv,
//! batch norm where present, ReLU, max pool), then `avgpool`, `flatten` and `classifier.0` …
//! `classifier.6`. The five groups of convolutions that end at a max pool are blocks `block1` …
//! `block5` inside `features`; torchvision has no module for them.

use crate::graph::{BlockKind, Conv2d, Graph, GraphBuilder, InitScheme, Op, Pool2d, WeightInit};
use crate::zoo::{ArchSpec, Card};

/// The paper's configurations (Table 1): each group's convolution widths; a max pool ends each group.
const CFG_A: [&[i64]; 5] = [&[64], &[128], &[256, 256], &[512, 512], &[512, 512]];
const CFG_D: [&[i64]; 5] = [&[64, 64], &[128, 128], &[256, 256, 256], &[512, 512, 512], &[512, 512, 512]];
const CFG_E: [&[i64]; 5] =
    [&[64, 64], &[128, 128], &[256, 256, 256, 256], &[512, 512, 512, 512], &[512, 512, 512, 512]];

fn card(name: &'static str, layers: u32, batch_norm: bool, top1_paper: Option<f32>, top1_reference: f32) -> Card {
    Card {
        name,
        year: 2014,
        authors: "Karen Simonyan, Andrew Zisserman",
        paper: "Very Deep Convolutional Networks for Large-Scale Image Recognition",
        problem: "AlexNet mixed large filters (11×11, 5×5) with few layers. How far does plain depth go, \
                  everything else held fixed?",
        answer: match (layers, batch_norm) {
            (11, _) => {
                "Configuration A, the shallowest of the paper's stacks: 8 convolutions, all 3×3 with \
                 stride 1, in five groups that each end in a 2×2 max pool, then 4096-4096-1000 fully \
                 connected layers. Two stacked 3×3 layers see 5×5, three see 7×7, with fewer \
                 weights and more non-linearities."
            }
            (_, false) => {
                "Only 3×3 convolutions, stacked deep (13 or 16 of them in five groups, each group \
                 ending in a 2×2 max pool and doubling the maps up to 512), then 4096-4096-1000 fully \
                 connected layers. Depth pays, at a price: ~140M parameters, most of them in the \
                 first fully connected layer."
            }
            (_, true) => {
                "The paper's deep 3×3 stack with batch normalisation after every convolution \
                 (torchvision's later variant, not in the paper): the same layers train from scratch \
                 without the paper's staged initialisation and reach a higher accuracy."
            }
        },
        top1_paper,
        top1_reference: Some(top1_reference),
        reference: "torchvision.models.vgg",
    }
}

pub fn specs() -> Vec<ArchSpec> {
    // Paper figures: Table 3, single-scale test, training scale S = 256 (top-1 error 29.6, 27.0, 27.3).
    vec![
        ArchSpec::imagenet("vgg11", card("VGG-11", 11, false, Some(70.4), 69.020), vgg11),
        ArchSpec::imagenet("vgg16", card("VGG-16", 16, false, Some(73.0), 71.592), vgg16),
        ArchSpec::imagenet("vgg19", card("VGG-19", 19, false, Some(72.7), 72.376), vgg19),
        ArchSpec::imagenet("vgg16_bn", card("VGG-16 with batch norm", 16, true, None, 73.360), vgg16_bn),
        ArchSpec::imagenet("vgg19_bn", card("VGG-19 with batch norm", 19, true, None, 74.218), vgg19_bn),
    ]
}

pub fn vgg11() -> Graph {
    vgg("vgg11", &CFG_A, false)
}
pub fn vgg16() -> Graph {
    vgg("vgg16", &CFG_D, false)
}
pub fn vgg19() -> Graph {
    vgg("vgg19", &CFG_E, false)
}
pub fn vgg16_bn() -> Graph {
    vgg("vgg16_bn", &CFG_D, true)
}
pub fn vgg19_bn() -> Graph {
    vgg("vgg19_bn", &CFG_E, true)
}

fn vgg(arch: &str, groups: &[&[i64]; 5], batch_norm: bool) -> Graph {
    let (mut g, mut x) = GraphBuilder::new(arch, 3);
    g.set_init(InitScheme { conv: WeightInit::KaimingNormalFanOut, linear: WeightInit::Normal(0.01) });
    g.begin_block("features", BlockKind::Features);
    let mut index = 0;
    let mut next = || {
        index += 1;
        format!("features.{}", index - 1)
    };
    let mut in_channels = 3;
    for (group, widths) in groups.iter().enumerate() {
        g.begin_block(format!("block{}", group + 1), BlockKind::Stage);
        for &width in widths.iter() {
            x = g.conv(next(), Conv2d::new(in_channels, width, 3).padding(1), x);
            if batch_norm {
                x = g.batch_norm(next(), width, x);
            }
            x = g.relu(next(), x);
            in_channels = width;
        }
        x = g.add(next(), Op::MaxPool2d(Pool2d::new(2, 2)), &[x]);
        g.end_block();
    }
    g.end_block();

    g.begin_block("head", BlockKind::Head);
    let x = g.add("avgpool", Op::AdaptiveAvgPool2d { output: [7, 7] }, &[x]);
    let x = g.add("flatten", Op::Flatten, &[x]);
    g.begin_block("classifier", BlockKind::Classifier);
    let x = g.linear("classifier.0", 512 * 7 * 7, 4096, x);
    let x = g.relu("classifier.1", x);
    let x = g.add("classifier.2", Op::Dropout { p: 0.5 }, &[x]);
    let x = g.linear("classifier.3", 4096, 4096, x);
    let x = g.relu("classifier.4", x);
    let x = g.add("classifier.5", Op::Dropout { p: 0.5 }, &[x]);
    let x = g.linear("classifier.6", 4096, 1000, x);
    g.end_block();
    g.end_block();
    g.finish(x)
}
