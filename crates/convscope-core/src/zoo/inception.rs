//! GoogLeNet / Inception v1 (Szegedy et al. 2014) and Inception v3 (Szegedy et al. 2015),
//! both as torchvision builds them for its pretrained weights: `transform_input` on, the
//! auxiliary classifiers present (run in training only, like the reference).
//!
//! Names follow torchvision's state dict. Every convolution is a `BasicConv2d`
//! (`<module>.conv`, `<module>.bn` with eps 0.001, and the functional ReLU `<module>.relu`).
//! GoogLeNet: `conv1`…`conv3`, `maxpool1`…`maxpool4`, `inception3a`…`inception5b` with
//! `branch1`, `branch2.0/1`, `branch3.0/1`, `branch4.0` (pool) / `branch4.1`, the auxiliary
//! classifiers `aux1`, `aux2` and `fc`. Inception v3: `Conv2d_1a_3x3`…`Conv2d_4a_3x3`,
//! `Mixed_5b`…`Mixed_7c` with torchvision's branch names, `AuxLogits` and `fc`.
//! Steps torchvision writes as functions get names of their own: each Inception block's
//! pooling branch `<block>.pool`, its output `<block>.concat`, Inception v3's inner splits
//! `Mixed_7b.branch3x3` / `Mixed_7b.branch3x3dbl` (the variables of torchvision's forward).

use crate::graph::{
    BlockKind, Conv2d, Edge, EdgeKind, Graph, GraphBuilder, InitScheme, NodeId, Op, Pool2d, WeightInit,
};
use crate::preprocess::Preprocess;
use crate::zoo::{ArchSpec, Build, Card, Labels};

pub fn specs() -> Vec<ArchSpec> {
    vec![
        ArchSpec {
            id: "googlenet",
            card: Card {
                name: "GoogLeNet (Inception v1)",
                year: 2014,
                authors: "Christian Szegedy, Wei Liu, Yangqing Jia, Pierre Sermanet, Scott Reed, Dragomir Anguelov, \
                          Dumitru Erhan, Vincent Vanhoucke, Andrew Rabinovich",
                paper: "Going Deeper with Convolutions",
                problem: "Which filter size should a layer use, 1×1, 3×3 or 5×5? And going deeper and wider by \
                          stacking big convolutions makes the computation explode.",
                answer: "Use them all in parallel branches and concatenate the results (the Inception module); \
                         1×1 convolutions first shrink the channels so the 3×3 and 5×5 branches stay cheap. \
                         Two side classifiers on intermediate layers add gradient and regularisation in training.",
                // The paper reports top-5 error only (6.67% for its 7-model ensemble).
                top1_paper: None,
                top1_reference: Some(69.778),
                reference: "torchvision.models.googlenet (aux_logits=True, transform_input=True)",
            },
            input: [3, 224, 224],
            preprocess: Preprocess::imagenet(256, 224),
            labels: Labels::ImageNet,
            build: Build::Zoo(googlenet),
        },
        ArchSpec {
            id: "inception_v3",
            card: Card {
                name: "Inception v3",
                year: 2015,
                authors: "Christian Szegedy, Vincent Vanhoucke, Sergey Ioffe, Jonathon Shlens, Zbigniew Wojna",
                paper: "Rethinking the Inception Architecture for Computer Vision",
                problem: "Inception blocks were still expensive: large filters cost quadratically in their size, \
                          and the grid reductions between stages either lost information or cost a lot.",
                answer: "Factorise convolutions: a 5×5 becomes two 3×3, an n×n becomes 1×n followed by n×1; \
                         reduce the grid with parallel strided convolution and pooling branches; batch-normalise \
                         everything and feed a 299×299 input; one auxiliary classifier acts as a regulariser.",
                // Table 3: 21.2% single-crop top-1 error for the full Inception-v3.
                top1_paper: Some(78.8),
                top1_reference: Some(77.294),
                reference: "torchvision.models.inception_v3 (aux_logits=True, transform_input=True)",
            },
            input: [3, 299, 299],
            preprocess: Preprocess::imagenet(342, 299),
            labels: Labels::ImageNet,
            build: Build::Zoo(inception_v3),
        },
    ]
}

/// The convolution and batch norm of a `BasicConv2d`: no bias, eps 0.001 (TensorFlow's).
fn basic_conv(g: &mut GraphBuilder, name: &str, conv: Conv2d, x: NodeId, edge: EdgeKind) -> NodeId {
    let channels = conv.out_channels;
    let conv = conv.no_bias();
    let x = match edge {
        // `add` keeps the auxiliary-classifier edge kind inside `begin_aux`/`end_aux`.
        EdgeKind::Sequence => g.conv(format!("{name}.conv"), conv, x),
        kind => g.add_edges(format!("{name}.conv"), Op::Conv2d(conv), vec![Edge { from: x, kind }]),
    };
    let x = g.batch_norm_eps(format!("{name}.bn"), channels, 1e-3, x);
    g.relu(format!("{name}.relu"), x)
}

/// A chain of `BasicConv2d`s, the first fed as a parallel branch of the block input.
fn branch(g: &mut GraphBuilder, x: NodeId, convs: &[(&str, Conv2d)]) -> NodeId {
    let mut x = x;
    for (i, (name, conv)) in convs.iter().enumerate() {
        let edge = if i == 0 { EdgeKind::Branch } else { EdgeKind::Sequence };
        x = basic_conv(g, name, *conv, x, edge);
    }
    x
}

fn pool_branch(g: &mut GraphBuilder, name: String, op: Op, x: NodeId) -> NodeId {
    g.add_edges(name, op, vec![Edge { from: x, kind: EdgeKind::Branch }])
}

/// torchvision's `transform_input`: its pretrained weights were ported from TensorFlow and
/// expect inputs scaled to [-1, 1], so an ImageNet-normalised image is mapped back to
/// `(pixel - 0.5) / 0.5`, channel by channel, with exactly torchvision's constants.
fn transform_input(g: &mut GraphBuilder, x: NodeId) -> NodeId {
    let scale = vec![0.229 / 0.5, 0.224 / 0.5, 0.225 / 0.5];
    let shift = vec![(0.485 - 0.5) / 0.5, (0.456 - 0.5) / 0.5, (0.406 - 0.5) / 0.5];
    g.add("transform_input", Op::ChannelAffine { scale, shift }, &[x])
}

fn c(in_channels: i64, out_channels: i64, kernel: i64) -> Conv2d {
    Conv2d::new(in_channels, out_channels, kernel)
}

/// An asymmetric `kh × kw` convolution padded to keep the grid (Inception v3's factorisation).
fn c_hw(in_channels: i64, out_channels: i64, kernel: [i64; 2]) -> Conv2d {
    Conv2d::new(in_channels, out_channels, 1).kernel_hw(kernel).padding_hw([kernel[0] / 2, kernel[1] / 2])
}

// ---- GoogLeNet ----------------------------------------------------------------------------

pub fn googlenet() -> Graph {
    let (mut g, x) = GraphBuilder::new("googlenet", 3);
    // torchvision: trunc_normal(std 0.01, cut at ±2, i.e. ±200σ: a plain normal) for every
    // conv and linear weight. (Its linear biases keep PyTorch's default; ours start at zero.)
    g.set_init(InitScheme { conv: WeightInit::Normal(0.01), linear: WeightInit::Normal(0.01) });
    let pool = |k, s| Op::MaxPool2d(Pool2d::new(k, s).ceil_mode());

    g.begin_block("stem", BlockKind::Stem);
    let x = transform_input(&mut g, x);
    let x = basic_conv(&mut g, "conv1", c(3, 64, 7).stride(2).padding(3), x, EdgeKind::Sequence);
    let x = g.add("maxpool1", pool(3, 2), &[x]);
    let x = basic_conv(&mut g, "conv2", c(64, 64, 1), x, EdgeKind::Sequence);
    let x = basic_conv(&mut g, "conv3", c(64, 192, 3).padding(1), x, EdgeKind::Sequence);
    let x = g.add("maxpool2", pool(3, 2), &[x]);
    g.end_block();

    let x = inception_v1(&mut g, "inception3a", x, [192, 64, 96, 128, 16, 32, 32]);
    let x = inception_v1(&mut g, "inception3b", x, [256, 128, 128, 192, 32, 96, 64]);
    // torchvision keeps the pools between stages as top-level modules: one-node transitions.
    g.begin_block("maxpool3", BlockKind::Transition);
    let x = g.add("maxpool3", pool(3, 2), &[x]);
    g.end_block();
    let x = inception_v1(&mut g, "inception4a", x, [480, 192, 96, 208, 16, 48, 64]);
    googlenet_aux(&mut g, "aux1", x, 512);
    let x = inception_v1(&mut g, "inception4b", x, [512, 160, 112, 224, 24, 64, 64]);
    let x = inception_v1(&mut g, "inception4c", x, [512, 128, 128, 256, 24, 64, 64]);
    let x = inception_v1(&mut g, "inception4d", x, [512, 112, 144, 288, 32, 64, 64]);
    googlenet_aux(&mut g, "aux2", x, 528);
    let x = inception_v1(&mut g, "inception4e", x, [528, 256, 160, 320, 32, 128, 128]);
    g.begin_block("maxpool4", BlockKind::Transition);
    let x = g.add("maxpool4", pool(2, 2), &[x]);
    g.end_block();
    let x = inception_v1(&mut g, "inception5a", x, [832, 256, 160, 320, 32, 128, 128]);
    let x = inception_v1(&mut g, "inception5b", x, [832, 384, 192, 384, 48, 128, 128]);

    g.begin_block("head", BlockKind::Head);
    let x = g.add("avgpool", Op::AdaptiveAvgPool2d { output: [1, 1] }, &[x]);
    let x = g.add("flatten", Op::Flatten, &[x]);
    let x = g.add("dropout", Op::Dropout { p: 0.2 }, &[x]);
    let x = g.linear("fc", 1024, 1000, x);
    g.end_block();
    g.finish(x)
}

/// The Inception module: 1×1 | 1×1→3×3 | 1×1→"5×5" | 3×3 max pool→1×1, concatenated.
/// `[in, 1×1, 3×3 reduce, 3×3, 5×5 reduce, 5×5, pool proj]` as in the paper's Table 1.
fn inception_v1(g: &mut GraphBuilder, name: &str, x: NodeId, ch: [i64; 7]) -> NodeId {
    let [cin, ch1, ch3red, ch3, ch5red, ch5, pool_proj] = ch;
    g.begin_block(name, BlockKind::Inception);
    let b1 = branch(g, x, &[(&format!("{name}.branch1"), c(cin, ch1, 1))]);
    let b2 = branch(
        g,
        x,
        &[
            (&format!("{name}.branch2.0"), c(cin, ch3red, 1)),
            (&format!("{name}.branch2.1"), c(ch3red, ch3, 3).padding(1)),
        ],
    );
    // The "5×5" branch is a 3×3 in torchvision's port (pytorch/vision#906), kept for the weights.
    let b3 = branch(
        g,
        x,
        &[
            (&format!("{name}.branch3.0"), c(cin, ch5red, 1)),
            (&format!("{name}.branch3.1"), c(ch5red, ch5, 3).padding(1)),
        ],
    );
    let pooled =
        pool_branch(g, format!("{name}.branch4.0"), Op::MaxPool2d(Pool2d::new(3, 1).padding(1).ceil_mode()), x);
    let b4 = basic_conv(g, &format!("{name}.branch4.1"), c(cin, pool_proj, 1), pooled, EdgeKind::Sequence);
    let out = g.concat(format!("{name}.concat"), &[b1, b2, b3, b4], EdgeKind::Branch);
    g.end_block();
    out
}

/// A side classifier on a 14×14 map: 4×4 average pool, 1×1 conv to 128, two linear layers.
fn googlenet_aux(g: &mut GraphBuilder, name: &str, x: NodeId, in_channels: i64) {
    g.begin_block(name, BlockKind::AuxClassifier);
    g.begin_aux();
    let x = g.add(format!("{name}.pool"), Op::AdaptiveAvgPool2d { output: [4, 4] }, &[x]);
    let x = basic_conv(g, &format!("{name}.conv"), c(in_channels, 128, 1), x, EdgeKind::Sequence);
    let x = g.add(format!("{name}.flatten"), Op::Flatten, &[x]);
    let x = g.linear(format!("{name}.fc1"), 2048, 1024, x);
    let x = g.relu(format!("{name}.relu"), x);
    let x = g.add(format!("{name}.dropout"), Op::Dropout { p: 0.7 }, &[x]);
    let x = g.linear(format!("{name}.fc2"), 1024, 1000, x);
    g.end_aux(x);
    g.end_block();
}

// ---- Inception v3 -------------------------------------------------------------------------

pub fn inception_v3() -> Graph {
    let (mut g, x) = GraphBuilder::new("inception_v3", 3);
    // torchvision: trunc_normal(std 0.1, cut at ±2) for conv and linear weights, which is
    // a plain normal at 20σ; its AuxLogits.conv1 (std 0.01) and AuxLogits.fc (0.001) have
    // smaller deviations that a per-graph scheme cannot express.
    g.set_init(InitScheme { conv: WeightInit::Normal(0.1), linear: WeightInit::Normal(0.1) });
    let seq = EdgeKind::Sequence;

    g.begin_block("stem", BlockKind::Stem);
    let x = transform_input(&mut g, x);
    let x = basic_conv(&mut g, "Conv2d_1a_3x3", c(3, 32, 3).stride(2), x, seq);
    let x = basic_conv(&mut g, "Conv2d_2a_3x3", c(32, 32, 3), x, seq);
    let x = basic_conv(&mut g, "Conv2d_2b_3x3", c(32, 64, 3).padding(1), x, seq);
    let x = g.add("maxpool1", Op::MaxPool2d(Pool2d::new(3, 2)), &[x]);
    let x = basic_conv(&mut g, "Conv2d_3b_1x1", c(64, 80, 1), x, seq);
    let x = basic_conv(&mut g, "Conv2d_4a_3x3", c(80, 192, 3), x, seq);
    let x = g.add("maxpool2", Op::MaxPool2d(Pool2d::new(3, 2)), &[x]);
    g.end_block();

    // 35×35
    let x = inception_a(&mut g, "Mixed_5b", x, 192, 32);
    let x = inception_a(&mut g, "Mixed_5c", x, 256, 64);
    let x = inception_a(&mut g, "Mixed_5d", x, 288, 64);
    // 17×17
    let x = inception_b(&mut g, "Mixed_6a", x, 288);
    let x = inception_c(&mut g, "Mixed_6b", x, 128);
    let x = inception_c(&mut g, "Mixed_6c", x, 160);
    let x = inception_c(&mut g, "Mixed_6d", x, 160);
    let x = inception_c(&mut g, "Mixed_6e", x, 192);
    inception_v3_aux(&mut g, x);
    // 8×8
    let x = inception_d(&mut g, "Mixed_7a", x);
    let x = inception_e(&mut g, "Mixed_7b", x, 1280);
    let x = inception_e(&mut g, "Mixed_7c", x, 2048);

    g.begin_block("head", BlockKind::Head);
    let x = g.add("avgpool", Op::AdaptiveAvgPool2d { output: [1, 1] }, &[x]);
    let x = g.add("dropout", Op::Dropout { p: 0.5 }, &[x]);
    let x = g.add("flatten", Op::Flatten, &[x]);
    let x = g.linear("fc", 2048, 1000, x);
    g.end_block();
    g.finish(x)
}

/// torchvision's functional 3×3 average pool (stride 1, zero padding counted).
fn avg_pool_branch(g: &mut GraphBuilder, name: &str, x: NodeId) -> NodeId {
    pool_branch(g, format!("{name}.pool"), Op::AvgPool2d(Pool2d::new(3, 1).padding(1)), x)
}

/// InceptionA (35×35): 1×1 | 1×1→5×5 | 1×1→3×3→3×3 | avg pool→1×1.
fn inception_a(g: &mut GraphBuilder, name: &str, x: NodeId, cin: i64, pool_features: i64) -> NodeId {
    let n = |branch: &str| format!("{name}.{branch}");
    g.begin_block(name, BlockKind::Inception);
    let b1 = branch(g, x, &[(&n("branch1x1"), c(cin, 64, 1))]);
    let b5 = branch(g, x, &[(&n("branch5x5_1"), c(cin, 48, 1)), (&n("branch5x5_2"), c(48, 64, 5).padding(2))]);
    let b3 = branch(
        g,
        x,
        &[
            (&n("branch3x3dbl_1"), c(cin, 64, 1)),
            (&n("branch3x3dbl_2"), c(64, 96, 3).padding(1)),
            (&n("branch3x3dbl_3"), c(96, 96, 3).padding(1)),
        ],
    );
    let pooled = avg_pool_branch(g, name, x);
    let bp = basic_conv(g, &n("branch_pool"), c(cin, pool_features, 1), pooled, EdgeKind::Sequence);
    let out = g.concat(n("concat"), &[b1, b5, b3, bp], EdgeKind::Branch);
    g.end_block();
    out
}

/// InceptionB, the 35→17 grid reduction: strided 3×3 | 1×1→3×3→strided 3×3 | max pool.
fn inception_b(g: &mut GraphBuilder, name: &str, x: NodeId, cin: i64) -> NodeId {
    let n = |branch: &str| format!("{name}.{branch}");
    g.begin_block(name, BlockKind::Inception);
    let b3 = branch(g, x, &[(&n("branch3x3"), c(cin, 384, 3).stride(2))]);
    let bd = branch(
        g,
        x,
        &[
            (&n("branch3x3dbl_1"), c(cin, 64, 1)),
            (&n("branch3x3dbl_2"), c(64, 96, 3).padding(1)),
            (&n("branch3x3dbl_3"), c(96, 96, 3).stride(2)),
        ],
    );
    let bp = pool_branch(g, n("pool"), Op::MaxPool2d(Pool2d::new(3, 2)), x);
    let out = g.concat(n("concat"), &[b3, bd, bp], EdgeKind::Branch);
    g.end_block();
    out
}

/// InceptionC (17×17): 7×7 factorised into 1×7 and 7×1, once and twice.
fn inception_c(g: &mut GraphBuilder, name: &str, x: NodeId, c7: i64) -> NodeId {
    let n = |branch: &str| format!("{name}.{branch}");
    let cin = 768;
    g.begin_block(name, BlockKind::Inception);
    let b1 = branch(g, x, &[(&n("branch1x1"), c(cin, 192, 1))]);
    let b7 = branch(
        g,
        x,
        &[
            (&n("branch7x7_1"), c(cin, c7, 1)),
            (&n("branch7x7_2"), c_hw(c7, c7, [1, 7])),
            (&n("branch7x7_3"), c_hw(c7, 192, [7, 1])),
        ],
    );
    let bd = branch(
        g,
        x,
        &[
            (&n("branch7x7dbl_1"), c(cin, c7, 1)),
            (&n("branch7x7dbl_2"), c_hw(c7, c7, [7, 1])),
            (&n("branch7x7dbl_3"), c_hw(c7, c7, [1, 7])),
            (&n("branch7x7dbl_4"), c_hw(c7, c7, [7, 1])),
            (&n("branch7x7dbl_5"), c_hw(c7, 192, [1, 7])),
        ],
    );
    let pooled = avg_pool_branch(g, name, x);
    let bp = basic_conv(g, &n("branch_pool"), c(cin, 192, 1), pooled, EdgeKind::Sequence);
    let out = g.concat(n("concat"), &[b1, b7, bd, bp], EdgeKind::Branch);
    g.end_block();
    out
}

/// InceptionD, the 17→8 grid reduction.
fn inception_d(g: &mut GraphBuilder, name: &str, x: NodeId) -> NodeId {
    let n = |branch: &str| format!("{name}.{branch}");
    let cin = 768;
    g.begin_block(name, BlockKind::Inception);
    let b3 = branch(g, x, &[(&n("branch3x3_1"), c(cin, 192, 1)), (&n("branch3x3_2"), c(192, 320, 3).stride(2))]);
    let b7 = branch(
        g,
        x,
        &[
            (&n("branch7x7x3_1"), c(cin, 192, 1)),
            (&n("branch7x7x3_2"), c_hw(192, 192, [1, 7])),
            (&n("branch7x7x3_3"), c_hw(192, 192, [7, 1])),
            (&n("branch7x7x3_4"), c(192, 192, 3).stride(2)),
        ],
    );
    let bp = pool_branch(g, n("pool"), Op::MaxPool2d(Pool2d::new(3, 2)), x);
    let out = g.concat(n("concat"), &[b3, b7, bp], EdgeKind::Branch);
    g.end_block();
    out
}

/// InceptionE (8×8): the 3×3s split into parallel 1×3 and 3×1 halves, concatenated.
fn inception_e(g: &mut GraphBuilder, name: &str, x: NodeId, cin: i64) -> NodeId {
    let n = |branch: &str| format!("{name}.{branch}");
    let split = |g: &mut GraphBuilder, x: NodeId, a: &str, b: &str, out: &str| {
        let a = branch(g, x, &[(&n(a), c_hw(384, 384, [1, 3]))]);
        let b = branch(g, x, &[(&n(b), c_hw(384, 384, [3, 1]))]);
        g.concat(n(out), &[a, b], EdgeKind::Branch)
    };
    g.begin_block(name, BlockKind::Inception);
    let b1 = branch(g, x, &[(&n("branch1x1"), c(cin, 320, 1))]);
    let b3 = branch(g, x, &[(&n("branch3x3_1"), c(cin, 384, 1))]);
    let b3 = split(g, b3, "branch3x3_2a", "branch3x3_2b", "branch3x3");
    let bd = branch(g, x, &[(&n("branch3x3dbl_1"), c(cin, 448, 1)), (&n("branch3x3dbl_2"), c(448, 384, 3).padding(1))]);
    let bd = split(g, bd, "branch3x3dbl_3a", "branch3x3dbl_3b", "branch3x3dbl");
    let pooled = avg_pool_branch(g, name, x);
    let bp = basic_conv(g, &n("branch_pool"), c(cin, 192, 1), pooled, EdgeKind::Sequence);
    let out = g.concat(n("concat"), &[b1, b3, bd, bp], EdgeKind::Branch);
    g.end_block();
    out
}

/// The auxiliary classifier on the 17×17 map after Mixed_6e.
fn inception_v3_aux(g: &mut GraphBuilder, x: NodeId) {
    g.begin_block("AuxLogits", BlockKind::AuxClassifier);
    g.begin_aux();
    let x = g.add("AuxLogits.pool", Op::AvgPool2d(Pool2d::new(5, 3)), &[x]);
    let x = basic_conv(g, "AuxLogits.conv0", c(768, 128, 1), x, EdgeKind::Sequence);
    let x = basic_conv(g, "AuxLogits.conv1", c(128, 768, 5), x, EdgeKind::Sequence);
    let x = g.add("AuxLogits.avgpool", Op::AdaptiveAvgPool2d { output: [1, 1] }, &[x]);
    let x = g.add("AuxLogits.flatten", Op::Flatten, &[x]);
    let x = g.linear("AuxLogits.fc", 768, 1000, x);
    g.end_aux(x);
    g.end_block();
}
