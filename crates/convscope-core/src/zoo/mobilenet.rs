//! MobileNet v1 (Howard et al. 2017), v2 (Sandler et al. 2018) and v3 (Howard et al. 2019).
//!
//! - v1 follows timm's `mobilenetv1_100` (`timm.models.efficientnet._gen_mobilenet_v1`): a 3×3
//!   stem and 13 depthwise separable blocks (a 3×3 depthwise conv with one filter per channel,
//!   then a 1×1 pointwise conv, each with BN and ReLU6), global pooling and one linear layer.
//!   The paper's two knobs are here: the width multiplier α scales every layer's channels
//!   (timm's `channel_multiplier`, rounded to multiples of 8), the resolution multiplier ρ only
//!   the input (224ρ). One constructor, [`mobilenet_v1_with`], takes a [`V1Config`]; the 16
//!   presets are registered as `mobilenet_v1` (α = 1, 224) and `mobilenet_v1_<α×100>_<res>`.
//!   Names: `conv_stem`, `bn1`, `bn1.act`; `blocks.S.B.{conv_dw,bn1,bn1.act,conv_pw,bn2,bn2.act}`;
//!   `global_pool.pool`, `global_pool.flatten`, `classifier`. (timm's do-nothing placeholders,
//!   `nn.Identity` modules such as `aa`, `se`, `drop_path` or `bn1.drop`, have no nodes.)
//! - v2 and v3 follow torchvision. Inverted residual blocks `features.N`: a 1×1 expansion,
//!   a depthwise conv, (v3: squeeze-and-excitation), a linear 1×1 projection, and the identity
//!   shortcut `features.N.add` where the shape allows. v2's layers are `features.N.conv.M`
//!   (`features.N.conv.M.{0,1,2}` for conv-BN-activation triples), v3's `features.N.block.M`;
//!   v3's SE is `features.N.block.M.{avgpool,fc1,activation,fc2,scale_activation}` and the gate
//!   multiply `features.N.block.M.scale`. torchvision's functional pooling and flatten are
//!   named `avgpool` (v2 only; v3 has the module) and `flatten`.

use crate::graph::{Activation, BlockKind, Conv2d, Graph, GraphBuilder, InitScheme, NodeId, Op, WeightInit};
use crate::preprocess::{Interpolation, Preprocess};
use crate::zoo::{ArchSpec, Build, Card, Labels};

// ---- MobileNet v1 ---------------------------------------------------------------------------

const V1_PROBLEM: &str = "Accurate CNNs were too big and slow for phones and embedded devices, where every \
     multiply-add costs time and battery.";
const V1_ANSWER: &str = "Depthwise separable convolutions: a 3×3 filter per channel, then a 1×1 convolution \
     mixing channels, 8–9× fewer multiply-adds than a full 3×3 convolution for ~1% accuracy. Two knobs trade \
     accuracy for cost: the width multiplier α thins every layer, the resolution multiplier ρ shrinks the input.";

/// MobileNet v1's two hyper-parameters (the paper's §3.3 and §3.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct V1Config {
    pub id: &'static str,
    /// The width multiplier α, in percent (25, 50, 75 or 100): every layer's channels × α.
    pub width_percent: i64,
    /// The input side, 224·ρ (128, 160, 192 or 224). The layers do not depend on it.
    pub resolution: u32,
}

impl V1Config {
    /// A layer's channels at this width, rounded like timm's `round_channels`: to the nearest
    /// multiple of 8, at least 8, and never more than 10% below the exact value.
    pub fn channels(&self, base: i64) -> i64 {
        make_divisible(base as f64 * self.width_percent as f64 / 100.0)
    }

    /// The preset registered under `id`.
    pub fn preset(id: &str) -> Option<V1Config> {
        V1_PRESETS.iter().find(|p| p.config.id == id).map(|p| p.config)
    }

    /// timm's preprocessing for `mobilenetv1_100`: bicubic, crop fraction 0.875, mean = std = 0.5.
    fn preprocess(&self) -> Preprocess {
        let resize = (f64::from(self.resolution) / 0.875).floor() as u32;
        Preprocess::ImageNet {
            resize,
            crop: self.resolution,
            interpolation: Interpolation::Bicubic,
            mean: [0.5; 3],
            std: [0.5; 3],
        }
    }
}

struct V1Preset {
    config: V1Config,
    name: &'static str,
    build: fn() -> Graph,
}

/// Declares the presets: one public builder per id (the registry holds plain `fn() -> Graph`)
/// and the table [`V1Config::preset`] reads.
macro_rules! v1_presets {
    ($($id:ident: $width:literal, $resolution:literal, $name:literal;)*) => {
        $(
            pub fn $id() -> Graph {
                mobilenet_v1_with(&V1Config { id: stringify!($id), width_percent: $width, resolution: $resolution })
            }
        )*
        const V1_PRESETS: &[V1Preset] = &[$(V1Preset {
            config: V1Config { id: stringify!($id), width_percent: $width, resolution: $resolution },
            name: $name,
            build: $id,
        }),*];
    };
}

v1_presets! {
    mobilenet_v1: 100, 224, "MobileNet v1";
    mobilenet_v1_100_192: 100, 192, "MobileNet v1 α=1.0 @192";
    mobilenet_v1_100_160: 100, 160, "MobileNet v1 α=1.0 @160";
    mobilenet_v1_100_128: 100, 128, "MobileNet v1 α=1.0 @128";
    mobilenet_v1_075_224: 75, 224, "MobileNet v1 α=0.75 @224";
    mobilenet_v1_075_192: 75, 192, "MobileNet v1 α=0.75 @192";
    mobilenet_v1_075_160: 75, 160, "MobileNet v1 α=0.75 @160";
    mobilenet_v1_075_128: 75, 128, "MobileNet v1 α=0.75 @128";
    mobilenet_v1_050_224: 50, 224, "MobileNet v1 α=0.5 @224";
    mobilenet_v1_050_192: 50, 192, "MobileNet v1 α=0.5 @192";
    mobilenet_v1_050_160: 50, 160, "MobileNet v1 α=0.5 @160";
    mobilenet_v1_050_128: 50, 128, "MobileNet v1 α=0.5 @128";
    mobilenet_v1_025_224: 25, 224, "MobileNet v1 α=0.25 @224";
    mobilenet_v1_025_192: 25, 192, "MobileNet v1 α=0.25 @192";
    mobilenet_v1_025_160: 25, 160, "MobileNet v1 α=0.25 @160";
    mobilenet_v1_025_128: 25, 128, "MobileNet v1 α=0.25 @128";
}

/// The paper's ImageNet top-1: Table 6 (widths at 224) and Table 7 (resolutions at α = 1).
/// The other combinations appear only as points of its Figures 4 and 5.
fn v1_top1_paper(config: &V1Config) -> Option<f32> {
    match (config.width_percent, config.resolution) {
        (100, 224) => Some(70.6),
        (100, 192) => Some(69.1),
        (100, 160) => Some(67.2),
        (100, 128) => Some(64.4),
        (75, 224) => Some(68.4),
        (50, 224) => Some(63.7),
        (25, 224) => Some(50.6),
        _ => None,
    }
}

fn v1_spec(preset: &V1Preset) -> ArchSpec {
    let config = preset.config;
    ArchSpec {
        id: config.id,
        card: Card {
            name: preset.name,
            year: 2017,
            authors: "Andrew G. Howard, Menglong Zhu, Bo Chen, Dmitry Kalenichenko, Weijun Wang, Tobias Weyand, \
                      Marco Andreetto, Hartwig Adam",
            paper: "MobileNets: Efficient Convolutional Neural Networks for Mobile Vision Applications",
            problem: V1_PROBLEM,
            answer: V1_ANSWER,
            top1_paper: v1_top1_paper(&config),
            // timm's pretrained configs carry no accuracy figure.
            top1_reference: None,
            reference: "timm mobilenetv1_100 (timm.models.efficientnet._gen_mobilenet_v1, channel_multiplier = α); \
                        ReLU6 where the paper has ReLU. 4,231,976 parameters at α = 1: the paper's 4.2M",
        },
        input: [3, i64::from(config.resolution), i64::from(config.resolution)],
        preprocess: config.preprocess(),
        labels: Labels::ImageNet,
        build: Build::Zoo(preset.build),
    }
}

/// MobileNet v1 at any width: timm's stages of depthwise separable blocks,
/// (channels, repeats, first stride).
pub fn mobilenet_v1_with(config: &V1Config) -> Graph {
    const STAGES: [(i64, usize, i64); 5] = [(64, 1, 1), (128, 2, 2), (256, 2, 2), (512, 6, 2), (1024, 2, 2)];
    let (mut g, x) = GraphBuilder::new(config.id, 3);
    // timm's own init differs slightly (depthwise fan-out counted per group, a uniform
    // classifier over fan-out); this is the nearest available scheme.
    g.set_init(InitScheme { conv: WeightInit::KaimingNormalFanOut, linear: WeightInit::PytorchDefault });

    let stem = config.channels(32);
    g.begin_block("stem", BlockKind::Stem);
    let x = g.conv("conv_stem", Conv2d::new(3, stem, 3).stride(2).padding(1).no_bias(), x);
    let x = g.batch_norm("bn1", stem, x);
    let mut x = g.act("bn1.act", Activation::Relu6, x);
    g.end_block();

    let mut channels = stem;
    g.begin_block("blocks", BlockKind::Features);
    for (s, &(base, repeats, stride)) in STAGES.iter().enumerate() {
        let stage = format!("blocks.{s}");
        g.begin_block(&stage, BlockKind::Stage);
        let out = config.channels(base);
        for b in 0..repeats {
            let stride = if b == 0 { stride } else { 1 };
            x = depthwise_separable(&mut g, &format!("{stage}.{b}"), x, channels, out, stride);
            channels = out;
        }
        g.end_block();
    }
    g.end_block();

    g.begin_block("head", BlockKind::Head);
    let x = g.add("global_pool.pool", Op::AdaptiveAvgPool2d { output: [1, 1] }, &[x]);
    let x = g.add("global_pool.flatten", Op::Flatten, &[x]);
    let x = g.linear("classifier", channels, 1000, x);
    g.end_block();
    g.finish(x)
}

/// The paper's Figure 3: 3×3 depthwise conv-BN-ReLU6, then 1×1 pointwise conv-BN-ReLU6.
/// No shortcut (timm's `dsa` blocks have none).
fn depthwise_separable(g: &mut GraphBuilder, name: &str, x: NodeId, in_channels: i64, out: i64, stride: i64) -> NodeId {
    g.begin_block(name, BlockKind::DepthwiseSeparable);
    let dw = Conv2d::new(in_channels, in_channels, 3).stride(stride).padding(1).groups(in_channels).no_bias();
    let x = g.conv(format!("{name}.conv_dw"), dw, x);
    let x = g.batch_norm(format!("{name}.bn1"), in_channels, x);
    let x = g.act(format!("{name}.bn1.act"), Activation::Relu6, x);
    let x = g.conv(format!("{name}.conv_pw"), Conv2d::new(in_channels, out, 1).no_bias(), x);
    let x = g.batch_norm(format!("{name}.bn2"), out, x);
    let x = g.act(format!("{name}.bn2.act"), Activation::Relu6, x);
    g.end_block();
    x
}

// ---- MobileNet v2 and v3 (torchvision) ------------------------------------------------------

pub fn specs() -> Vec<ArchSpec> {
    let mut specs: Vec<ArchSpec> = V1_PRESETS.iter().map(v1_spec).collect();
    // top1_reference: torchvision's IMAGENET1K_V1 `acc@1` (the weights read at 256 → 224).
    specs.push(ArchSpec::imagenet(
        "mobilenet_v2",
        Card {
            name: "MobileNet v2",
            year: 2018,
            authors: "Mark Sandler, Andrew Howard, Menglong Zhu, Andrey Zhmoginov, Liang-Chieh Chen",
            paper: "MobileNetV2: Inverted Residuals and Linear Bottlenecks",
            problem: "Make mobile networks cheaper still: thin layers save work, but ReLU on a thin \
                      representation destroys information, and deep stacks of them train poorly.",
            answer: "Inverted residual blocks: expand a thin bottleneck 6× with a 1×1 conv, filter it \
                     depthwise, project back linearly (no ReLU on the bottleneck), and add an identity \
                     shortcut between the thin ends.",
            top1_paper: Some(72.0),
            top1_reference: Some(71.878),
            reference: "torchvision.models.mobilenetv2",
        },
        mobilenet_v2,
    ));
    let v3_card = |name, top1_paper, top1_reference| Card {
        name,
        year: 2019,
        authors: "Andrew Howard, Mark Sandler, Grace Chu, Liang-Chieh Chen, Bo Chen, Mingxing Tan, Weijun Wang, \
                  Yukun Zhu, Ruoming Pang, Vijay Vasudevan, Quoc V. Le, Hartwig Adam",
        paper: "Searching for MobileNetV3",
        problem: "Hand-designed mobile blocks leave accuracy on the table at a given phone latency.",
        answer: "Architecture search over MobileNet v2's inverted residuals (3×3 or 5×5 depthwise), with \
                 squeeze-and-excitation gating the channels, the cheap hard-swish activation in the deeper \
                 layers, and a slimmer last stage; Large and Small for two latency budgets.",
        top1_paper: Some(top1_paper),
        top1_reference: Some(top1_reference),
        reference: "torchvision.models.mobilenetv3",
    };
    specs.push(ArchSpec::imagenet(
        "mobilenet_v3_large",
        v3_card("MobileNet v3 Large", 75.2, 74.042),
        mobilenet_v3_large,
    ));
    specs.push(ArchSpec::imagenet(
        "mobilenet_v3_small",
        v3_card("MobileNet v3 Small", 67.4, 67.668),
        mobilenet_v3_small,
    ));
    specs
}

/// torchvision's `_make_divisible` (timm's `make_divisible` too): the nearest multiple of 8,
/// at least 8, never more than 10% below `v`.
fn make_divisible(v: f64) -> i64 {
    let mut rounded = ((v + 4.0) as i64 / 8 * 8).max(8);
    if (rounded as f64) < 0.9 * v {
        rounded += 8;
    }
    rounded
}

/// BatchNorm as torchvision's MobileNets make it: v2 the default, v3 eps 0.001 and momentum 0.01.
#[derive(Clone, Copy)]
struct Norm {
    eps: f64,
    momentum: f64,
}

const V2_NORM: Norm = Norm { eps: 1e-5, momentum: 0.1 };
const V3_NORM: Norm = Norm { eps: 1e-3, momentum: 0.01 };

/// torchvision's `Conv2dNormActivation` named `prefix`: `prefix.0` conv (padding (k−1)/2, no
/// bias), `prefix.1` BN, `prefix.2` the activation when there is one.
fn conv_norm_act(
    g: &mut GraphBuilder,
    prefix: &str,
    conv: Conv2d,
    norm: Norm,
    activation: Option<Activation>,
    x: NodeId,
) -> NodeId {
    let channels = conv.out_channels;
    let conv = conv.padding((conv.kernel[0] - 1) / 2).no_bias();
    let x = g.conv(format!("{prefix}.0"), conv, x);
    let x = g.add(format!("{prefix}.1"), Op::BatchNorm2d { channels, eps: norm.eps, momentum: norm.momentum }, &[x]);
    match activation {
        Some(a) => g.act(format!("{prefix}.2"), a, x),
        None => x,
    }
}

fn torchvision_init(g: &mut GraphBuilder) {
    // torchvision's MobileNets: kaiming-normal fan-out convs, N(0, 0.01) linear layers, zero biases.
    g.set_init(InitScheme { conv: WeightInit::KaimingNormalFanOut, linear: WeightInit::Normal(0.01) });
}

pub fn mobilenet_v2() -> Graph {
    // (expansion t, channels c, repeats n, first stride s): the paper's Table 2.
    const SETTING: [(i64, i64, usize, i64); 7] =
        [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)];
    let (mut g, x) = GraphBuilder::new("mobilenet_v2", 3);
    torchvision_init(&mut g);
    let relu6 = Some(Activation::Relu6);

    g.begin_block("features", BlockKind::Features);
    g.begin_block("features.0", BlockKind::Stem);
    let mut x = conv_norm_act(&mut g, "features.0", Conv2d::new(3, 32, 3).stride(2), V2_NORM, relu6, x);
    g.end_block();
    let mut channels = 32;
    let mut index = 1;
    for &(t, c, n, s) in &SETTING {
        for i in 0..n {
            let stride = if i == 0 { s } else { 1 };
            x = inverted_residual_v2(&mut g, &format!("features.{index}"), x, channels, c, stride, t);
            channels = c;
            index += 1;
        }
    }
    let last = format!("features.{index}");
    g.begin_block(&last, BlockKind::Head);
    let x = conv_norm_act(&mut g, &last, Conv2d::new(channels, 1280, 1), V2_NORM, relu6, x);
    g.end_block();
    g.end_block();

    g.begin_block("head", BlockKind::Head);
    let x = g.add("avgpool", Op::AdaptiveAvgPool2d { output: [1, 1] }, &[x]);
    let x = g.add("flatten", Op::Flatten, &[x]);
    g.begin_block("classifier", BlockKind::Classifier);
    let x = g.add("classifier.0", Op::Dropout { p: 0.2 }, &[x]);
    let x = g.linear("classifier.1", 1280, 1000, x);
    g.end_block();
    g.end_block();
    g.finish(x)
}

/// v2's block: 1×1 expansion to `t × in` (skipped when t = 1), 3×3 depthwise, both with ReLU6,
/// then the linear 1×1 projection and its BN; the identity shortcut when the shape is kept.
fn inverted_residual_v2(
    g: &mut GraphBuilder,
    name: &str,
    input: NodeId,
    in_channels: i64,
    out: i64,
    stride: i64,
    t: i64,
) -> NodeId {
    let hidden = in_channels * t;
    let relu6 = Some(Activation::Relu6);
    g.begin_block(name, BlockKind::InvertedResidual);
    let mut layer = 0;
    let mut x = input;
    if t != 1 {
        x = conv_norm_act(g, &format!("{name}.conv.{layer}"), Conv2d::new(in_channels, hidden, 1), V2_NORM, relu6, x);
        layer += 1;
    }
    let dw = Conv2d::new(hidden, hidden, 3).stride(stride).groups(hidden);
    x = conv_norm_act(g, &format!("{name}.conv.{layer}"), dw, V2_NORM, relu6, x);
    let x = g.conv(format!("{name}.conv.{}", layer + 1), Conv2d::new(hidden, out, 1).no_bias(), x);
    let x = g.batch_norm(format!("{name}.conv.{}", layer + 2), out, x);
    let x = if stride == 1 && in_channels == out { g.residual_add(format!("{name}.add"), x, input) } else { x };
    g.end_block();
    x
}

/// One row of torchvision's `_mobilenet_v3_conf`.
struct Bneck {
    kernel: i64,
    expanded: i64,
    out: i64,
    se: bool,
    hardswish: bool,
    stride: i64,
}

const fn bneck(kernel: i64, expanded: i64, out: i64, se: bool, hardswish: bool, stride: i64) -> Bneck {
    Bneck { kernel, expanded, out, se, hardswish, stride }
}

const RE: bool = false;
const HS: bool = true;

pub fn mobilenet_v3_large() -> Graph {
    const SETTING: [Bneck; 15] = [
        bneck(3, 16, 16, false, RE, 1),
        bneck(3, 64, 24, false, RE, 2),
        bneck(3, 72, 24, false, RE, 1),
        bneck(5, 72, 40, true, RE, 2),
        bneck(5, 120, 40, true, RE, 1),
        bneck(5, 120, 40, true, RE, 1),
        bneck(3, 240, 80, false, HS, 2),
        bneck(3, 200, 80, false, HS, 1),
        bneck(3, 184, 80, false, HS, 1),
        bneck(3, 184, 80, false, HS, 1),
        bneck(3, 480, 112, true, HS, 1),
        bneck(3, 672, 112, true, HS, 1),
        bneck(5, 672, 160, true, HS, 2),
        bneck(5, 960, 160, true, HS, 1),
        bneck(5, 960, 160, true, HS, 1),
    ];
    mobilenet_v3("mobilenet_v3_large", &SETTING, 1280)
}

pub fn mobilenet_v3_small() -> Graph {
    const SETTING: [Bneck; 11] = [
        bneck(3, 16, 16, true, RE, 2),
        bneck(3, 72, 24, false, RE, 2),
        bneck(3, 88, 24, false, RE, 1),
        bneck(5, 96, 40, true, HS, 2),
        bneck(5, 240, 40, true, HS, 1),
        bneck(5, 240, 40, true, HS, 1),
        bneck(5, 120, 48, true, HS, 1),
        bneck(5, 144, 48, true, HS, 1),
        bneck(5, 288, 96, true, HS, 2),
        bneck(5, 576, 96, true, HS, 1),
        bneck(5, 576, 96, true, HS, 1),
    ];
    mobilenet_v3("mobilenet_v3_small", &SETTING, 1024)
}

fn mobilenet_v3(arch: &str, setting: &[Bneck], last_channel: i64) -> Graph {
    let (mut g, x) = GraphBuilder::new(arch, 3);
    torchvision_init(&mut g);
    let hardswish = Some(Activation::HardSwish);

    g.begin_block("features", BlockKind::Features);
    g.begin_block("features.0", BlockKind::Stem);
    let mut x = conv_norm_act(&mut g, "features.0", Conv2d::new(3, 16, 3).stride(2), V3_NORM, hardswish, x);
    g.end_block();
    let mut channels = 16;
    for (i, cfg) in setting.iter().enumerate() {
        x = inverted_residual_v3(&mut g, &format!("features.{}", i + 1), x, channels, cfg);
        channels = cfg.out;
    }
    let last = format!("features.{}", setting.len() + 1);
    let last_conv = 6 * channels;
    g.begin_block(&last, BlockKind::Head);
    let x = conv_norm_act(&mut g, &last, Conv2d::new(channels, last_conv, 1), V3_NORM, hardswish, x);
    g.end_block();
    g.end_block();

    g.begin_block("head", BlockKind::Head);
    let x = g.add("avgpool", Op::AdaptiveAvgPool2d { output: [1, 1] }, &[x]);
    let x = g.add("flatten", Op::Flatten, &[x]);
    g.begin_block("classifier", BlockKind::Classifier);
    let x = g.linear("classifier.0", last_conv, last_channel, x);
    let x = g.act("classifier.1", Activation::HardSwish, x);
    let x = g.add("classifier.2", Op::Dropout { p: 0.2 }, &[x]);
    let x = g.linear("classifier.3", last_channel, 1000, x);
    g.end_block();
    g.end_block();
    g.finish(x)
}

/// v3's block: 1×1 expansion (when it widens), k×k depthwise, optional squeeze-and-excitation
/// on the expanded maps, linear 1×1 projection; ReLU or hard-swish; identity shortcut when the
/// shape is kept.
fn inverted_residual_v3(g: &mut GraphBuilder, name: &str, input: NodeId, in_channels: i64, cfg: &Bneck) -> NodeId {
    let activation = Some(if cfg.hardswish { Activation::HardSwish } else { Activation::Relu });
    g.begin_block(name, BlockKind::InvertedResidual);
    let mut layer = 0;
    let mut x = input;
    if cfg.expanded != in_channels {
        let expand = Conv2d::new(in_channels, cfg.expanded, 1);
        x = conv_norm_act(g, &format!("{name}.block.{layer}"), expand, V3_NORM, activation, x);
        layer += 1;
    }
    let dw = Conv2d::new(cfg.expanded, cfg.expanded, cfg.kernel).stride(cfg.stride).groups(cfg.expanded);
    x = conv_norm_act(g, &format!("{name}.block.{layer}"), dw, V3_NORM, activation, x);
    layer += 1;
    if cfg.se {
        x = squeeze_excite(g, &format!("{name}.block.{layer}"), x, cfg.expanded);
        layer += 1;
    }
    let project = Conv2d::new(cfg.expanded, cfg.out, 1);
    let x = conv_norm_act(g, &format!("{name}.block.{layer}"), project, V3_NORM, None, x);
    let x = if cfg.stride == 1 && in_channels == cfg.out { g.residual_add(format!("{name}.add"), x, input) } else { x };
    g.end_block();
    x
}

/// torchvision's `SqueezeExcitation` with a hard-sigmoid gate: global average, 1×1 conv down
/// to a quarter (rounded to 8), ReLU, 1×1 conv back, hard sigmoid, and the channel-wise multiply.
fn squeeze_excite(g: &mut GraphBuilder, name: &str, x: NodeId, channels: i64) -> NodeId {
    let squeeze = make_divisible((channels / 4) as f64);
    g.begin_block(name, BlockKind::SqueezeExcite);
    let s = g.add(format!("{name}.avgpool"), Op::AdaptiveAvgPool2d { output: [1, 1] }, &[x]);
    let s = g.conv(format!("{name}.fc1"), Conv2d::new(channels, squeeze, 1), s);
    let s = g.relu(format!("{name}.activation"), s);
    let s = g.conv(format!("{name}.fc2"), Conv2d::new(squeeze, channels, 1), s);
    let s = g.act(format!("{name}.scale_activation"), Activation::HardSigmoid, s);
    let out = g.add(format!("{name}.scale"), Op::Scale, &[x, s]);
    g.end_block();
    out
}
