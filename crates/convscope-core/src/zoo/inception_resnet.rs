//! Inception-ResNet v2 (Szegedy, Ioffe, Vanhoucke, Alemi 2016) as timm builds it
//! (`timm.create_model("inception_resnet_v2")`, the TensorFlow weights ported by Cadene).
//!
//! Names follow timm's state dict. Every convolution is a timm `ConvNormAct`: `<module>.conv`
//! (no bias), `<module>.bn` (eps 0.001), then timm's `BatchNormAct2d` children `<module>.bn.drop`
//! (a drop slot that is empty here: a dropout of p 0) and `<module>.bn.act` (ReLU).
//! Stem `conv2d_1a`…`conv2d_4a`, `maxpool_3a`, `maxpool_5a`; `mixed_5b`; ten Block35
//! `repeat.0`…`repeat.9`; `mixed_6a`; twenty Block17 `repeat_1.*`; `mixed_7a`; nine Block8
//! `repeat_2.*` and a last one `block8` without ReLU; `conv2d_7b`; `global_pool.pool`,
//! `global_pool.flatten`, `head_drop`, `classif`. In a residual block the branches are
//! `branchN` / `branchN.M`, their concatenation `<block>.concat`, the 1×1 up-projection
//! `<block>.conv2d`, the scaled residual merge `<block>.add` and the output `act` (Block35,
//! Block17) or `relu` (Block8), as timm names them.

use crate::graph::{BlockKind, Conv2d, Edge, EdgeKind, Graph, GraphBuilder, NodeId, Op, Pool2d};
use crate::preprocess::{Interpolation, Preprocess};
use crate::zoo::{ArchSpec, Build, Card, Labels};

pub fn specs() -> Vec<ArchSpec> {
    vec![ArchSpec {
        id: "inception_resnet_v2",
        card: Card {
            name: "Inception-ResNet v2",
            year: 2016,
            authors: "Christian Szegedy, Sergey Ioffe, Vincent Vanhoucke, Alex Alemi",
            paper: "Inception-v4, Inception-ResNet and the Impact of Residual Connections on Learning",
            problem: "Residual shortcuts had just made very deep networks trainable; would they help the \
                      already carefully engineered Inception networks, and could such wide blocks be stacked \
                      deep without training going unstable?",
            answer: "Put a shortcut around every Inception block: the concatenated branches are projected \
                     back to the block's width by a 1×1 convolution and added to the input. The branch is \
                     scaled down (by 0.1–0.2) before the addition, which kept the deep stack from dying early \
                     in training; the shortcuts mainly made training converge much faster.",
            // Table 2: 19.9% single-crop top-1 error (on the paper's non-blacklisted validation subset).
            top1_paper: Some(80.1),
            // timm's results tables are not part of the installed package, so no figure is copied here.
            top1_reference: None,
            reference: "timm.models.inception_resnet_v2 (pretrained cfg tf_in1k)",
        },
        input: [3, 299, 299],
        // timm's pretrained cfg: bicubic, crop_pct 0.8975 (resize floor(299 / 0.8975) = 333),
        // mean = std = 0.5, i.e. TensorFlow's [-1, 1] inputs.
        preprocess: Preprocess::ImageNet {
            resize: 333,
            crop: 299,
            interpolation: Interpolation::Bicubic,
            mean: [0.5, 0.5, 0.5],
            std: [0.5, 0.5, 0.5],
        },
        labels: Labels::ImageNet,
        build: Build::Zoo(inception_resnet_v2),
    }]
}

/// timm's `ConvNormAct`: conv (no bias), batch norm (eps 0.001), the empty drop slot, ReLU.
fn conv_norm_act(g: &mut GraphBuilder, name: &str, conv: Conv2d, x: NodeId, edge: EdgeKind) -> NodeId {
    let channels = conv.out_channels;
    let conv = Op::Conv2d(conv.no_bias());
    let x = g.add_edges(format!("{name}.conv"), conv, vec![Edge { from: x, kind: edge }]);
    let x = g.batch_norm_eps(format!("{name}.bn"), channels, 1e-3, x);
    let x = g.add(format!("{name}.bn.drop"), Op::Dropout { p: 0.0 }, &[x]);
    g.relu(format!("{name}.bn.act"), x)
}

/// A branch: either one `ConvNormAct` named `name`, or a sequence named `name.0`, `name.1`, …
/// whose first step is fed by the block input as a parallel branch.
fn branch(g: &mut GraphBuilder, name: &str, x: NodeId, convs: &[Conv2d]) -> NodeId {
    if let [conv] = convs {
        return conv_norm_act(g, name, *conv, x, EdgeKind::Branch);
    }
    let mut x = x;
    for (i, conv) in convs.iter().enumerate() {
        let edge = if i == 0 { EdgeKind::Branch } else { EdgeKind::Sequence };
        x = conv_norm_act(g, &format!("{name}.{i}"), *conv, x, edge);
    }
    x
}

fn c(in_channels: i64, out_channels: i64, kernel: i64) -> Conv2d {
    Conv2d::new(in_channels, out_channels, kernel)
}

/// An asymmetric `kh × kw` convolution padded to keep the grid.
fn c_hw(in_channels: i64, out_channels: i64, kernel: [i64; 2]) -> Conv2d {
    Conv2d::new(in_channels, out_channels, 1).kernel_hw(kernel).padding_hw([kernel[0] / 2, kernel[1] / 2])
}

fn branch_op(g: &mut GraphBuilder, name: String, op: Op, x: NodeId) -> NodeId {
    g.add_edges(name, op, vec![Edge { from: x, kind: EdgeKind::Branch }])
}

pub fn inception_resnet_v2() -> Graph {
    let (mut g, x) = GraphBuilder::new("inception_resnet_v2", 3);
    // timm leaves PyTorch's default initialisation in place for this model.
    let seq = EdgeKind::Sequence;

    g.begin_block("stem", BlockKind::Stem);
    let x = conv_norm_act(&mut g, "conv2d_1a", c(3, 32, 3).stride(2), x, seq);
    let x = conv_norm_act(&mut g, "conv2d_2a", c(32, 32, 3), x, seq);
    let x = conv_norm_act(&mut g, "conv2d_2b", c(32, 64, 3).padding(1), x, seq);
    let x = g.add("maxpool_3a", Op::MaxPool2d(Pool2d::new(3, 2)), &[x]);
    let x = conv_norm_act(&mut g, "conv2d_3b", c(64, 80, 1), x, seq);
    let x = conv_norm_act(&mut g, "conv2d_4a", c(80, 192, 3), x, seq);
    let x = g.add("maxpool_5a", Op::MaxPool2d(Pool2d::new(3, 2)), &[x]);
    g.end_block();

    // 35×35
    let x = mixed_5b(&mut g, x);
    let mut x = x;
    g.begin_block("repeat", BlockKind::Stage);
    for i in 0..10 {
        x = block35(&mut g, &format!("repeat.{i}"), x);
    }
    g.end_block();
    // 17×17
    let mut x = mixed_6a(&mut g, x);
    g.begin_block("repeat_1", BlockKind::Stage);
    for i in 0..20 {
        x = block17(&mut g, &format!("repeat_1.{i}"), x);
    }
    g.end_block();
    // 8×8
    let mut x = mixed_7a(&mut g, x);
    g.begin_block("repeat_2", BlockKind::Stage);
    for i in 0..9 {
        x = block8(&mut g, &format!("repeat_2.{i}"), x, 0.2, true);
    }
    g.end_block();
    let x = block8(&mut g, "block8", x, 1.0, false);

    g.begin_block("head", BlockKind::Head);
    let x = conv_norm_act(&mut g, "conv2d_7b", c(2080, 1536, 1), x, seq);
    let x = g.add("global_pool.pool", Op::AdaptiveAvgPool2d { output: [1, 1] }, &[x]);
    let x = g.add("global_pool.flatten", Op::Flatten, &[x]);
    let x = g.add("head_drop", Op::Dropout { p: 0.0 }, &[x]);
    let x = g.linear("classif", 1536, 1000, x);
    g.end_block();
    g.finish(x)
}

/// The 35×35 Inception block that widens the stem's 192 channels to 320.
fn mixed_5b(g: &mut GraphBuilder, x: NodeId) -> NodeId {
    let name = "mixed_5b";
    g.begin_block(name, BlockKind::Inception);
    let b0 = branch(g, "mixed_5b.branch0", x, &[c(192, 96, 1)]);
    let b1 = branch(g, "mixed_5b.branch1", x, &[c(192, 48, 1), c(48, 64, 5).padding(2)]);
    let b2 = branch(g, "mixed_5b.branch2", x, &[c(192, 64, 1), c(64, 96, 3).padding(1), c(96, 96, 3).padding(1)]);
    // timm's average pool leaves the zero padding out of the divisor (count_include_pad=False).
    let pooled =
        branch_op(g, format!("{name}.branch3.0"), Op::AvgPool2d(Pool2d::new(3, 1).padding(1).exclude_pad()), x);
    let b3 = conv_norm_act(g, "mixed_5b.branch3.1", c(192, 64, 1), pooled, EdgeKind::Sequence);
    let out = g.concat(format!("{name}.concat"), &[b0, b1, b2, b3], EdgeKind::Branch);
    g.end_block();
    out
}

/// The 35→17 reduction (320 → 1088 channels).
fn mixed_6a(g: &mut GraphBuilder, x: NodeId) -> NodeId {
    let name = "mixed_6a";
    g.begin_block(name, BlockKind::Inception);
    let b0 = branch(g, "mixed_6a.branch0", x, &[c(320, 384, 3).stride(2)]);
    let b1 = branch(g, "mixed_6a.branch1", x, &[c(320, 256, 1), c(256, 256, 3).padding(1), c(256, 384, 3).stride(2)]);
    let b2 = branch_op(g, format!("{name}.branch2"), Op::MaxPool2d(Pool2d::new(3, 2)), x);
    let out = g.concat(format!("{name}.concat"), &[b0, b1, b2], EdgeKind::Branch);
    g.end_block();
    out
}

/// The 17→8 reduction (1088 → 2080 channels).
fn mixed_7a(g: &mut GraphBuilder, x: NodeId) -> NodeId {
    let name = "mixed_7a";
    g.begin_block(name, BlockKind::Inception);
    let b0 = branch(g, "mixed_7a.branch0", x, &[c(1088, 256, 1), c(256, 384, 3).stride(2)]);
    let b1 = branch(g, "mixed_7a.branch1", x, &[c(1088, 256, 1), c(256, 288, 3).stride(2)]);
    let b2 = branch(g, "mixed_7a.branch2", x, &[c(1088, 256, 1), c(256, 288, 3).padding(1), c(288, 320, 3).stride(2)]);
    let b3 = branch_op(g, format!("{name}.branch3"), Op::MaxPool2d(Pool2d::new(3, 2)), x);
    let out = g.concat(format!("{name}.concat"), &[b0, b1, b2, b3], EdgeKind::Branch);
    g.end_block();
    out
}

/// The residual end of every Inception-ResNet block: concatenate the branches, project back
/// to the input width with a biased 1×1 convolution, then `x + scale * branch`.
fn residual_merge(
    g: &mut GraphBuilder,
    name: &str,
    x: NodeId,
    branches: &[NodeId],
    concat_channels: i64,
    channels: i64,
    scale: f64,
) -> NodeId {
    let cat = g.concat(format!("{name}.concat"), branches, EdgeKind::Branch);
    let up = g.conv(format!("{name}.conv2d"), c(concat_channels, channels, 1), cat);
    let edges = vec![Edge { from: up, kind: EdgeKind::Sequence }, Edge { from: x, kind: EdgeKind::Residual }];
    g.add_edges(format!("{name}.add"), Op::ScaledAdd { scale }, edges)
}

/// Block35 (Inception-ResNet-A) on the 35×35×320 grid, scale 0.17.
fn block35(g: &mut GraphBuilder, name: &str, x: NodeId) -> NodeId {
    let n = |branch: &str| format!("{name}.{branch}");
    g.begin_block(name, BlockKind::InceptionResidual);
    let b0 = branch(g, &n("branch0"), x, &[c(320, 32, 1)]);
    let b1 = branch(g, &n("branch1"), x, &[c(320, 32, 1), c(32, 32, 3).padding(1)]);
    let b2 = branch(g, &n("branch2"), x, &[c(320, 32, 1), c(32, 48, 3).padding(1), c(48, 64, 3).padding(1)]);
    let out = residual_merge(g, name, x, &[b0, b1, b2], 128, 320, 0.17);
    let out = g.relu(n("act"), out);
    g.end_block();
    out
}

/// Block17 (Inception-ResNet-B) on the 17×17×1088 grid, scale 0.1.
fn block17(g: &mut GraphBuilder, name: &str, x: NodeId) -> NodeId {
    let n = |branch: &str| format!("{name}.{branch}");
    g.begin_block(name, BlockKind::InceptionResidual);
    let b0 = branch(g, &n("branch0"), x, &[c(1088, 192, 1)]);
    let b1 = branch(g, &n("branch1"), x, &[c(1088, 128, 1), c_hw(128, 160, [1, 7]), c_hw(160, 192, [7, 1])]);
    let out = residual_merge(g, name, x, &[b0, b1], 384, 1088, 0.1);
    let out = g.relu(n("act"), out);
    g.end_block();
    out
}

/// Block8 (Inception-ResNet-C) on the 8×8×2080 grid: scale 0.2 in `repeat_2`; the last one,
/// `block8`, has scale 1 and no ReLU.
fn block8(g: &mut GraphBuilder, name: &str, x: NodeId, scale: f64, relu: bool) -> NodeId {
    let n = |branch: &str| format!("{name}.{branch}");
    g.begin_block(name, BlockKind::InceptionResidual);
    let b0 = branch(g, &n("branch0"), x, &[c(2080, 192, 1)]);
    let b1 = branch(g, &n("branch1"), x, &[c(2080, 192, 1), c_hw(192, 224, [1, 3]), c_hw(224, 256, [3, 1])]);
    let mut out = residual_merge(g, name, x, &[b0, b1], 448, 2080, scale);
    if relu {
        out = g.relu(n("relu"), out);
    }
    g.end_block();
    out
}
