//! ShuffleNet V2 (Ma, Zhang, Zheng, Sun 2018): torchvision's 0.5× and 1.0× widths.
//!
//! Names follow torchvision: `conv1.0/1/2` and `maxpool` (stem), units `stage2.0` … `stage4.3`
//! whose layers are `branch1.N` (the strided units' left branch) and `branch2.N`, then
//! `conv5.0/1/2` and `fc`. Inside a unit the parameterless steps are `split1` and `split2`
//! (the two channel halves of a stride-1 unit), `cat` and `shuffle`. torchvision's global
//! pool, `x.mean([2, 3])`, is here `globalpool` (an adaptive average pool) and `flatten`.

use crate::graph::{BlockKind, Conv2d, EdgeKind, Graph, GraphBuilder, NodeId, Op, Pool2d};
use crate::zoo::{ArchSpec, Card};

fn card(name: &'static str, top1_paper: f32, top1_reference: f32) -> Card {
    Card {
        name,
        year: 2018,
        authors: "Ningning Ma, Xiangyu Zhang, Hai-Tao Zheng, Jian Sun",
        paper: "ShuffleNet V2: Practical Guidelines for Efficient CNN Architecture Design",
        problem: "Grouped 1×1 convolutions make small networks cheap in FLOPs, but each group only \
                  sees its own channels, so information stops flowing between groups; and FLOPs alone \
                  mispredict speed (memory access and fragmentation cost time too).",
        answer: "Channel shuffle: after the branches are concatenated, the channels are interleaved so \
                 the next unit's halves mix both. A V2 unit splits the channels in two, passes one half \
                 through untouched and the other through 1×1, depthwise 3×3 and 1×1 convolutions of \
                 equal width, concatenates and shuffles; a strided unit runs both halves through \
                 branches and doubles the channels.",
        top1_paper: Some(top1_paper),
        top1_reference: Some(top1_reference),
        reference: "torchvision.models.shufflenetv2",
    }
}

pub fn specs() -> Vec<ArchSpec> {
    // Paper figures: Table 8, top-1 error 39.7% (0.5×, 41M FLOPs) and 30.6% (1×, 146M FLOPs).
    vec![
        ArchSpec::imagenet("shufflenet_v2_x0_5", card("ShuffleNet V2 0.5×", 60.3, 60.552), shufflenet_v2_x0_5),
        ArchSpec::imagenet("shufflenet_v2_x1_0", card("ShuffleNet V2 1.0×", 69.4, 69.362), shufflenet_v2_x1_0),
    ]
}

const REPEATS: [usize; 3] = [4, 8, 4];

pub fn shufflenet_v2_x0_5() -> Graph {
    shufflenet_v2("shufflenet_v2_x0_5", [24, 48, 96, 192, 1024])
}

pub fn shufflenet_v2_x1_0() -> Graph {
    shufflenet_v2("shufflenet_v2_x1_0", [24, 116, 232, 464, 1024])
}

fn conv_bn(g: &mut GraphBuilder, prefix: &str, index: usize, conv: Conv2d, x: NodeId) -> NodeId {
    let channels = conv.out_channels;
    let x = g.conv(format!("{prefix}.{index}"), conv, x);
    g.batch_norm(format!("{prefix}.{}", index + 1), channels, x)
}

fn depthwise(channels: i64, stride: i64) -> Conv2d {
    Conv2d::new(channels, channels, 3).stride(stride).padding(1).groups(channels).no_bias()
}

/// `widths`: the stem's maps, the three stages' output channels, conv5's maps.
fn shufflenet_v2(arch: &str, widths: [i64; 5]) -> Graph {
    let (mut g, x) = GraphBuilder::new(arch, 3);
    g.begin_block("stem", BlockKind::Stem);
    let x = conv_bn(&mut g, "conv1", 0, Conv2d::new(3, widths[0], 3).stride(2).padding(1).no_bias(), x);
    let x = g.relu("conv1.2", x);
    let mut x = g.add("maxpool", Op::MaxPool2d(Pool2d::new(3, 2).padding(1)), &[x]);
    g.end_block();

    let mut in_channels = widths[0];
    for (stage, &repeats) in REPEATS.iter().enumerate() {
        let stage_name = format!("stage{}", stage + 2);
        let out_channels = widths[stage + 1];
        g.begin_block(&stage_name, BlockKind::Stage);
        for unit in 0..repeats {
            let stride = if unit == 0 { 2 } else { 1 };
            x = shuffle_unit(&mut g, &format!("{stage_name}.{unit}"), x, in_channels, out_channels, stride);
            in_channels = out_channels;
        }
        g.end_block();
    }

    g.begin_block("head", BlockKind::Head);
    let x = conv_bn(&mut g, "conv5", 0, Conv2d::new(in_channels, widths[4], 1).no_bias(), x);
    let x = g.relu("conv5.2", x);
    let x = g.add("globalpool", Op::AdaptiveAvgPool2d { output: [1, 1] }, &[x]);
    let x = g.add("flatten", Op::Flatten, &[x]);
    let x = g.linear("fc", widths[4], 1000, x);
    g.end_block();
    g.finish(x)
}

/// torchvision's `InvertedResidual` (the ShuffleNet V2 unit; no residual addition despite the name).
fn shuffle_unit(
    g: &mut GraphBuilder,
    name: &str,
    input: NodeId,
    in_channels: i64,
    out_channels: i64,
    stride: i64,
) -> NodeId {
    let half = out_channels / 2;
    g.begin_block(name, BlockKind::ShuffleUnit);
    // Stride 1: one half passes untouched, the other goes through branch2.
    // Stride 2: both branches see the whole input, each giving half the output channels.
    let (left, right) = if stride == 1 {
        let left = g.add(format!("{name}.split1"), Op::ChannelSlice { start: 0, end: half }, &[input]);
        let right = g.add(format!("{name}.split2"), Op::ChannelSlice { start: half, end: 2 * half }, &[input]);
        (left, right)
    } else {
        let b1 = format!("{name}.branch1");
        let x = conv_bn(g, &b1, 0, depthwise(in_channels, stride), input);
        let x = conv_bn(g, &b1, 2, Conv2d::new(in_channels, half, 1).no_bias(), x);
        (g.relu(format!("{b1}.4"), x), input)
    };
    let b2 = format!("{name}.branch2");
    let branch_in = if stride == 1 { half } else { in_channels };
    let x = conv_bn(g, &b2, 0, Conv2d::new(branch_in, half, 1).no_bias(), right);
    let x = g.relu(format!("{b2}.2"), x);
    let x = conv_bn(g, &b2, 3, depthwise(half, stride), x);
    let x = conv_bn(g, &b2, 5, Conv2d::new(half, half, 1).no_bias(), x);
    let x = g.relu(format!("{b2}.7"), x);
    let x = g.concat(format!("{name}.cat"), &[left, x], EdgeKind::Branch);
    let x = g.add(format!("{name}.shuffle"), Op::ChannelShuffle { groups: 2 }, &[x]);
    g.end_block();
    x
}
