//! The seed's calculations (../shared/HISTORY.md), live: each design idea's arithmetic as a
//! small calculator whose default inputs give the figure the history quotes, and a check of
//! the formula against the zoo: the same formula with the sizes of the node where the design
//! appears, set against the MACs (or parameters) shape inference computes for that node.
//!
//! MACs are multiply-accumulates of convolutions and linear layers (`shapes`), the
//! "multiplies" of the papers; parameters count biases where the layers have them.

use std::sync::Arc;

use crate::error::{Error, Result};
use crate::graph::{BlockKind, Conv2d, Graph, Op};
use crate::shapes::{NodeInfo, ShapeReport};
use crate::zoo::{self, efficientnet, mobilenet};

/// A node of the zoo where a design appears: the diagram opens there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ZooLink {
    pub arch: &'static str,
    pub node: &'static str,
    /// What is there, as a person names it.
    pub label: &'static str,
}

/// A formula set against shape inference, with the sizes the formula read from the graph.
#[derive(Clone, Debug, PartialEq)]
pub struct GraphCheck {
    pub link: ZooLink,
    /// What is compared: "MACs", "parameters", "channels".
    pub quantity: &'static str,
    /// The formula's figure with the node's own sizes.
    pub formula: i64,
    /// What shape inference computes for the node(s).
    pub graph: i64,
    /// The sizes the formula took from the graph, as people write them.
    pub sizes: String,
}

impl GraphCheck {
    pub fn agrees(&self) -> bool {
        self.formula == self.graph
    }
}

/// An architecture's graph with its shapes at the native input.
struct Inspected {
    arch: &'static str,
    graph: Arc<Graph>,
    report: ShapeReport,
}

impl Inspected {
    fn new(arch: &'static str) -> Result<Self> {
        let spec = zoo::find(arch)?;
        let graph = spec.graph();
        let report = graph.infer_shapes(spec.input[1], spec.input[2])?;
        Ok(Self { arch, graph, report })
    }

    fn node(&self, name: &str) -> Result<(usize, &NodeInfo)> {
        let id = self.graph.node_id(name).ok_or_else(|| Error::Input(format!("{} has no node {name}", self.arch)))?;
        Ok((id, &self.report.nodes[id]))
    }

    /// A convolution node: its settings, its input's shape and what shape inference gives it.
    fn conv(&self, name: &str) -> Result<(Conv2d, Vec<i64>, &NodeInfo)> {
        let (id, info) = self.node(name)?;
        let node = &self.graph.nodes[id];
        let Op::Conv2d(conv) = node.op else {
            return Err(Error::Input(format!("{}'s {name} is not a convolution", self.arch)));
        };
        let input = self.report.nodes[node.inputs[0].from].shape.clone();
        Ok((conv, input, info))
    }

    fn channels(&self, name: &str) -> Result<i64> {
        let (_, info) = self.node(name)?;
        Ok(info.shape[0])
    }
}

fn square(x: i64) -> i64 {
    x * x
}

/// A convolution's output side: `(size + 2·padding − kernel) / stride + 1`, zero when the
/// kernel does not fit.
pub fn conv_output(size: i64, kernel: i64, stride: i64, padding: i64) -> i64 {
    let span = size + 2 * padding - kernel;
    if span < 0 || stride < 1 { 0 } else { span / stride + 1 }
}

// ---- Inception's 1×1 bottleneck ----------------------------------------------------------------

/// A k×k convolution on a `size × size × in_channels` map to `out_channels` maps, directly or
/// after a 1×1 reduction to `reduced` channels (Szegedy et al. 2014, §5).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Bottleneck {
    pub size: i64,
    pub in_channels: i64,
    pub out_channels: i64,
    pub kernel: i64,
    pub reduced: i64,
}

impl Default for Bottleneck {
    /// The seed's example: 5×5 on 28×28×192 to 32 maps, through 16.
    fn default() -> Self {
        Self { size: 28, in_channels: 192, out_channels: 32, kernel: 5, reduced: 16 }
    }
}

impl Bottleneck {
    /// The k×k convolution straight on the input.
    pub fn direct_macs(&self) -> i64 {
        square(self.size) * self.out_channels * square(self.kernel) * self.in_channels
    }
    /// The 1×1 reduction.
    pub fn reduce_macs(&self) -> i64 {
        square(self.size) * self.reduced * self.in_channels
    }
    /// The k×k convolution on the reduced map.
    pub fn reduced_conv_macs(&self) -> i64 {
        square(self.size) * self.out_channels * square(self.kernel) * self.reduced
    }
    pub fn bottleneck_macs(&self) -> i64 {
        self.reduce_macs() + self.reduced_conv_macs()
    }

    pub const LINKS: [ZooLink; 2] = [
        ZooLink {
            arch: "googlenet",
            node: "inception3a.branch3.0.conv",
            label: "GoogLeNet inception3a, the reduced branch (3×3 in torchvision's port, 5×5 in the paper)",
        },
        ZooLink {
            arch: "inception_v3", node: "Mixed_5b.branch5x5_1.conv", label: "Inception v3 Mixed_5b, 5×5 branch"
        },
    ];

    /// The formula with each linked branch's sizes against the MACs of its two convolutions.
    pub fn checks() -> Result<Vec<GraphCheck>> {
        let branches = [
            (Self::LINKS[0], "inception3a.branch3.0.conv", "inception3a.branch3.1.conv"),
            (Self::LINKS[1], "Mixed_5b.branch5x5_1.conv", "Mixed_5b.branch5x5_2.conv"),
        ];
        branches
            .into_iter()
            .map(|(link, reduce, conv)| {
                let net = Inspected::new(link.arch)?;
                let (r, _, r_info) = net.conv(reduce)?;
                let (c, _, c_info) = net.conv(conv)?;
                let size = c_info.shape[1];
                let b = Bottleneck {
                    size,
                    in_channels: r.in_channels,
                    out_channels: c.out_channels,
                    kernel: c.kernel[0],
                    reduced: r.out_channels,
                };
                Ok(GraphCheck {
                    link,
                    quantity: "MACs",
                    formula: b.bottleneck_macs(),
                    graph: r_info.macs + c_info.macs,
                    sizes: format!(
                        "{size}×{size}×{}, 1×1 to {}, then {k}×{k} to {}",
                        b.in_channels,
                        b.reduced,
                        b.out_channels,
                        k = b.kernel
                    ),
                })
            })
            .collect()
    }
}

// ---- MobileNet's depthwise separable convolution ----------------------------------------------

/// A k×k convolution from `in_channels` (M) to `out_channels` (N) maps, standard or depthwise
/// separable (Howard et al. 2017, §3.1).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Separable {
    pub in_size: i64,
    pub in_channels: i64,
    pub kernel: i64,
    pub out_channels: i64,
    pub stride: i64,
    pub padding: i64,
}

impl Default for Separable {
    /// The seed's example: 12×12×3, 5×5 kernels, 128 maps of 8×8.
    fn default() -> Self {
        Self { in_size: 12, in_channels: 3, kernel: 5, out_channels: 128, stride: 1, padding: 0 }
    }
}

impl Separable {
    pub fn out_size(&self) -> i64 {
        conv_output(self.in_size, self.kernel, self.stride, self.padding)
    }
    pub fn standard_macs(&self) -> i64 {
        square(self.out_size()) * self.out_channels * square(self.kernel) * self.in_channels
    }
    /// One k×k filter per input channel.
    pub fn depthwise_macs(&self) -> i64 {
        square(self.out_size()) * self.in_channels * square(self.kernel)
    }
    /// The 1×1 convolution mixing the channels.
    pub fn pointwise_macs(&self) -> i64 {
        square(self.out_size()) * self.in_channels * self.out_channels
    }
    pub fn separable_macs(&self) -> i64 {
        self.depthwise_macs() + self.pointwise_macs()
    }
    /// Separable over standard, as counted.
    pub fn ratio(&self) -> f64 {
        self.separable_macs() as f64 / self.standard_macs().max(1) as f64
    }
    /// The paper's 1/N + 1/D_K², which the count equals for any sizes.
    pub fn ratio_formula(&self) -> f64 {
        1.0 / self.out_channels as f64 + 1.0 / square(self.kernel) as f64
    }

    pub const LINK: ZooLink = ZooLink {
        arch: "mobilenet_v1",
        node: "blocks.1.0.conv_dw",
        label: "MobileNet v1 blocks.1.0, depthwise then pointwise",
    };

    pub fn check() -> Result<GraphCheck> {
        let net = Inspected::new(Self::LINK.arch)?;
        let (dw, input, dw_info) = net.conv("blocks.1.0.conv_dw")?;
        let (pw, _, pw_info) = net.conv("blocks.1.0.conv_pw")?;
        let s = Separable {
            in_size: input[1],
            in_channels: dw.in_channels,
            kernel: dw.kernel[0],
            out_channels: pw.out_channels,
            stride: dw.stride[0],
            padding: dw.padding[0],
        };
        Ok(GraphCheck {
            link: Self::LINK,
            quantity: "MACs",
            formula: s.separable_macs(),
            graph: dw_info.macs + pw_info.macs,
            sizes: format!(
                "{0}×{0}×{1}, {2}×{2} stride {3} padding {4}, to {5} maps of {6}×{6}",
                s.in_size,
                s.in_channels,
                s.kernel,
                s.stride,
                s.padding,
                s.out_channels,
                s.out_size()
            ),
        })
    }
}

/// MobileNet v1's width multiplier α (in percent) and input side 224·ρ, applied to the whole
/// network: its parameters and MACs recomputed from the graph.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Multipliers {
    pub width_percent: i64,
    pub resolution: i64,
}

impl Default for Multipliers {
    fn default() -> Self {
        Self { width_percent: 100, resolution: 224 }
    }
}

/// A whole network's size.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NetFigures {
    pub params: i64,
    pub macs: i64,
}

/// The paper's Tables 6 and 7: α (percent), input side, million mult-adds, million parameters.
pub const MOBILENET_V1_PAPER: [(i64, i64, f64, f64); 7] = [
    (100, 224, 569.0, 4.2),
    (75, 224, 325.0, 2.6),
    (50, 224, 149.0, 1.3),
    (25, 224, 41.0, 0.5),
    (100, 192, 418.0, 4.2),
    (100, 160, 290.0, 4.2),
    (100, 128, 186.0, 4.2),
];

impl Multipliers {
    pub fn figures(&self) -> Result<NetFigures> {
        if !(1..=400).contains(&self.width_percent) {
            return Err(Error::Input(format!("α = {}%: use 1 to 400%", self.width_percent)));
        }
        let resolution = u32::try_from(self.resolution)
            .map_err(|_| Error::Input(format!("an input side of {} pixels", self.resolution)))?;
        let config = mobilenet::V1Config { id: "mobilenet_v1", width_percent: self.width_percent, resolution };
        let graph = mobilenet::mobilenet_v1_with(&config);
        let report = graph.infer_shapes(self.resolution, self.resolution)?;
        Ok(NetFigures { params: report.total_params(), macs: report.total_macs() })
    }

    /// The paper's figures for these multipliers, where its tables give them.
    pub fn paper(&self) -> Option<(f64, f64)> {
        MOBILENET_V1_PAPER
            .iter()
            .find(|(w, r, _, _)| *w == self.width_percent && *r == self.resolution)
            .map(|&(_, _, macs, params)| (macs, params))
    }

    /// The zoo's preset for these multipliers, if there is one.
    pub fn preset(&self) -> Option<&'static str> {
        zoo::mobilenet::specs().into_iter().map(|s| s.id).find(|id| {
            mobilenet::V1Config::preset(id)
                .is_some_and(|c| c.width_percent == self.width_percent && i64::from(c.resolution) == self.resolution)
        })
    }
}

// ---- VGG's small filters -----------------------------------------------------------------------

/// `stacked` 3×3 convolutions of C channels against the one larger filter with the same
/// receptive field (Simonyan, Zisserman 2014, §2.3), on a `size × size` map.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SmallFilters {
    pub channels: i64,
    pub stacked: i64,
    pub size: i64,
}

impl Default for SmallFilters {
    fn default() -> Self {
        Self { channels: 256, stacked: 2, size: 56 }
    }
}

impl SmallFilters {
    /// The side of the single filter seeing as far: 1 + 2 per 3×3 layer.
    pub fn receptive_field(&self) -> i64 {
        1 + 2 * self.stacked
    }
    /// The coefficients of C² in the weights: 9·n for the stack, (1 + 2n)² for one filter.
    pub fn coefficients(&self) -> (i64, i64) {
        (9 * self.stacked, square(self.receptive_field()))
    }
    pub fn stacked_weights(&self) -> i64 {
        self.coefficients().0 * square(self.channels)
    }
    pub fn single_weights(&self) -> i64 {
        self.coefficients().1 * square(self.channels)
    }
    pub fn stacked_macs(&self) -> i64 {
        square(self.size) * self.stacked_weights()
    }
    pub fn single_macs(&self) -> i64 {
        square(self.size) * self.single_weights()
    }

    pub const LINK: ZooLink = ZooLink {
        arch: "vgg19",
        node: "features.12",
        label: "VGG-19 conv3: 3×3 convolutions of 256 channels at 56×56",
    };

    /// Two and three stacked layers of VGG-19's third stage against the formula.
    pub fn checks() -> Result<Vec<GraphCheck>> {
        let net = Inspected::new(Self::LINK.arch)?;
        let layers = ["features.12", "features.14", "features.16"];
        [2usize, 3]
            .into_iter()
            .map(|n| {
                let mut graph = 0;
                let mut first = None;
                for name in &layers[..n] {
                    let (conv, _, info) = net.conv(name)?;
                    first.get_or_insert((conv, info.shape[1]));
                    graph += info.macs;
                }
                let (conv, size) = first.ok_or_else(|| Error::Input("no layer".into()))?;
                let s = SmallFilters { channels: conv.out_channels, stacked: n as i64, size };
                Ok(GraphCheck {
                    link: Self::LINK,
                    quantity: "MACs",
                    formula: s.stacked_macs(),
                    graph,
                    sizes: format!("{n} × 3×3, {0} to {0} channels at {1}×{1}", s.channels, size),
                })
            })
            .collect()
    }
}

/// Where a network's parameters live.
#[derive(Clone, Debug, PartialEq)]
pub struct ParamBreakdown {
    pub arch: &'static str,
    pub total: i64,
    pub conv: i64,
    pub linear: i64,
    /// Normalisation and anything else with weights.
    pub other: i64,
    /// The largest layer: its name and parameters.
    pub largest: (String, i64),
}

pub fn param_breakdown(arch: &'static str) -> Result<ParamBreakdown> {
    let net = Inspected::new(arch)?;
    let (mut conv, mut linear, mut other) = (0, 0, 0);
    let mut largest = (String::new(), 0);
    for (node, info) in net.graph.nodes.iter().zip(&net.report.nodes) {
        match node.op {
            Op::Conv2d(_) => conv += info.params,
            Op::Linear { .. } => linear += info.params,
            _ => other += info.params,
        }
        if info.params > largest.1 {
            largest = (node.name.clone(), info.params);
        }
    }
    Ok(ParamBreakdown { arch, total: net.report.total_params(), conv, linear, other, largest })
}

/// VGG-19's first fully connected layer: 7·7·512 features to 4096, plus biases.
pub const VGG19_FC1: ZooLink =
    ZooLink { arch: "vgg19", node: "classifier.0", label: "VGG-19 classifier.0, the first fully connected layer" };

pub fn vgg19_fc1_check() -> Result<GraphCheck> {
    let net = Inspected::new(VGG19_FC1.arch)?;
    let (id, info) = net.node(VGG19_FC1.node)?;
    let flat = net.report.nodes[net.graph.nodes[id].inputs[0].from].shape[0];
    let pooled = net.report.nodes[net.graph.node_id("features.36").unwrap_or(0)].shape.clone();
    let out = info.shape[0];
    Ok(GraphCheck {
        link: VGG19_FC1,
        quantity: "parameters",
        formula: flat * out + out,
        graph: info.params,
        sizes: format!("{} = {flat} features to {out}, plus {out} biases", crate::graph::shape_label(&pooled)),
    })
}

// ---- SqueezeNet's fire module ------------------------------------------------------------------

/// A fire module: a 1×1 squeeze to `squeeze` channels, then 1×1 and 3×3 expansions side by side
/// (Iandola et al. 2016, §3.2), against one 3×3 convolution with the same input and output.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Fire {
    pub in_channels: i64,
    pub squeeze: i64,
    pub expand1x1: i64,
    pub expand3x3: i64,
    pub size: i64,
}

impl Default for Fire {
    /// SqueezeNet 1.0's fire2 (torchvision's `features.3`) at its 54×54.
    fn default() -> Self {
        Self { in_channels: 96, squeeze: 16, expand1x1: 64, expand3x3: 64, size: 54 }
    }
}

impl Fire {
    pub fn out_channels(&self) -> i64 {
        self.expand1x1 + self.expand3x3
    }
    /// With biases, as the module has them.
    pub fn fire_params(&self) -> i64 {
        let s = self.squeeze;
        (self.in_channels * s + s) + (s * self.expand1x1 + self.expand1x1) + (9 * s * self.expand3x3 + self.expand3x3)
    }
    pub fn conv3x3_params(&self) -> i64 {
        9 * self.in_channels * self.out_channels() + self.out_channels()
    }
    pub fn fire_macs(&self) -> i64 {
        let s = self.squeeze;
        square(self.size) * (self.in_channels * s + s * self.expand1x1 + 9 * s * self.expand3x3)
    }
    pub fn conv3x3_macs(&self) -> i64 {
        square(self.size) * 9 * self.in_channels * self.out_channels()
    }

    pub const LINK: ZooLink =
        ZooLink { arch: "squeezenet1_0", node: "features.3.squeeze", label: "SqueezeNet 1.0 fire2 (features.3)" };

    pub fn checks() -> Result<Vec<GraphCheck>> {
        let net = Inspected::new(Self::LINK.arch)?;
        let (squeeze, input, s_info) = net.conv("features.3.squeeze")?;
        let (e1, _, e1_info) = net.conv("features.3.expand1x1")?;
        let (e3, _, e3_info) = net.conv("features.3.expand3x3")?;
        let fire = Fire {
            in_channels: squeeze.in_channels,
            squeeze: squeeze.out_channels,
            expand1x1: e1.out_channels,
            expand3x3: e3.out_channels,
            size: input[1],
        };
        let sizes = format!(
            "{0}×{0}×{1}, squeeze {2}, expand {3} + {4}",
            fire.size, fire.in_channels, fire.squeeze, fire.expand1x1, fire.expand3x3
        );
        let infos = [s_info, e1_info, e3_info];
        Ok(vec![
            GraphCheck {
                link: Self::LINK,
                quantity: "parameters",
                formula: fire.fire_params(),
                graph: infos.iter().map(|i| i.params).sum(),
                sizes: sizes.clone(),
            },
            GraphCheck {
                link: Self::LINK,
                quantity: "MACs",
                formula: fire.fire_macs(),
                graph: infos.iter().map(|i| i.macs).sum(),
                sizes,
            },
        ])
    }
}

/// SqueezeNet's Table 2: bits per weight, the model's size (MB) and its reduction against
/// AlexNet's 240 MB, as the paper reports them (Deep Compression: pruning, quantisation to the
/// bits shown, Huffman coding).
pub const SQUEEZENET_PAPER_SIZES: [(u32, f64, u32); 3] = [(32, 4.8, 50), (8, 0.66, 363), (6, 0.47, 510)];
/// AlexNet's size in the same table (32-bit).
pub const ALEXNET_PAPER_MB: f64 = 240.0;

/// SqueezeNet's size at a number of bits per weight, against AlexNet's.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Compression {
    pub bits: u32,
}

impl Default for Compression {
    /// The seed's 0.47 MB: 6 bits per weight after Deep Compression.
    fn default() -> Self {
        Self { bits: 6 }
    }
}

/// The parameters of the two networks, from their graphs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CompressionFigures {
    pub squeezenet_params: i64,
    pub alexnet_params: i64,
}

impl CompressionFigures {
    pub fn from_zoo() -> Result<Self> {
        let params = |arch: &'static str| Inspected::new(arch).map(|n| n.report.total_params());
        Ok(Self { squeezenet_params: params("squeezenet1_0")?, alexnet_params: params("alexnet")? })
    }
}

impl Compression {
    /// Every weight stored at `bits`, none pruned, in MB (10⁶ bytes).
    pub fn dense_megabytes(&self, params: i64) -> f64 {
        params as f64 * f64::from(self.bits) / 8.0 / 1e6
    }
    /// The paper's size (MB) and reduction against AlexNet at these bits, if it reports one.
    pub fn paper(&self) -> Option<(f64, u32)> {
        SQUEEZENET_PAPER_SIZES.iter().find(|(b, _, _)| *b == self.bits).map(|&(_, mb, x)| (mb, x))
    }
    /// The bits each parameter takes in the paper's file: its "4.8 MB" for 1.25 M float32
    /// parameters (4.99 × 10⁶ bytes) reads MB as 2²⁰ bytes.
    pub fn paper_bits_per_param(&self, params: i64) -> Option<f64> {
        self.paper().map(|(mb, _)| mb * 1_048_576.0 * 8.0 / params as f64)
    }
}

// ---- EfficientNet's compound scaling -----------------------------------------------------------

/// Depth α^φ, width β^φ and resolution γ^φ from one coefficient φ (Tan, Le 2019, §3.3), with
/// α·β²·γ² ≈ 2 so that each step of φ about doubles the FLOPs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Compound {
    pub alpha: f64,
    pub beta: f64,
    pub gamma: f64,
    pub base_resolution: i64,
}

impl Default for Compound {
    fn default() -> Self {
        Self { alpha: 1.2, beta: 1.1, gamma: 1.15, base_resolution: 224 }
    }
}

/// An EfficientNet as built: multipliers, resolution, and what its graph gives.
#[derive(Clone, Debug, PartialEq)]
pub struct ScaledNet {
    pub depth: f64,
    pub width: f64,
    pub resolution: i64,
    /// MBConv blocks, after rounding each stage's count up.
    pub blocks: usize,
    /// Channels of the 1×1 head convolution.
    pub head_channels: i64,
    pub params: i64,
    pub macs: i64,
}

impl ScaledNet {
    fn from_graph(graph: &Graph, depth: f64, width: f64, resolution: i64) -> Result<Self> {
        let report = graph.infer_shapes(resolution, resolution)?;
        let blocks = graph.blocks.iter().filter(|b| b.kind == BlockKind::MbConv).count();
        let head = graph.node_id("features.8.0").map_or(0, |id| report.nodes[id].shape[0]);
        Ok(Self {
            depth,
            width,
            resolution,
            blocks,
            head_channels: head,
            params: report.total_params(),
            macs: report.total_macs(),
        })
    }
}

/// One φ: what the formula gives, and the zoo's B_φ.
#[derive(Clone, Debug, PartialEq)]
pub struct CompoundRow {
    pub phi: u32,
    /// (α·β²·γ²)^φ: the FLOPs factor the constraint aims at.
    pub flops_factor: f64,
    pub scaled: ScaledNet,
    pub actual: ScaledNet,
    pub actual_id: &'static str,
}

impl Compound {
    pub fn constraint(&self) -> f64 {
        self.alpha * self.beta * self.beta * self.gamma * self.gamma
    }

    /// B0 scaled by the formula at φ, built and rounded as torchvision builds its variants.
    pub fn scaled(&self, phi: u32) -> Result<ScaledNet> {
        let p = f64::from(phi);
        let (depth, width) = (self.alpha.powf(p), self.beta.powf(p));
        if !(depth.is_finite() && width.is_finite()) || depth <= 0.0 || width <= 0.0 || depth > 20.0 || width > 20.0 {
            return Err(Error::Input(format!("depth ×{depth:.2}, width ×{width:.2}: keep both within 0–20")));
        }
        let resolution = (self.base_resolution as f64 * self.gamma.powf(p)).round() as i64;
        if !(32..=2048).contains(&resolution) {
            return Err(Error::Input(format!("a {resolution}-pixel input: keep it within 32–2048")));
        }
        let graph = efficientnet::efficientnet_scaled("efficientnet_phi", width, depth);
        ScaledNet::from_graph(&graph, depth, width, resolution)
    }

    /// φ = 0..=7 against the zoo's B0..B7.
    pub fn rows(&self) -> Result<Vec<CompoundRow>> {
        efficientnet::TORCHVISION_MULTIPLIERS
            .iter()
            .enumerate()
            .map(|(phi, &(id, width, depth))| {
                let phi = phi as u32;
                let spec = zoo::find(id)?;
                let actual = ScaledNet::from_graph(&spec.graph(), depth, width, spec.input[1])?;
                Ok(CompoundRow {
                    phi,
                    flops_factor: self.constraint().powf(f64::from(phi)),
                    scaled: self.scaled(phi)?,
                    actual,
                    actual_id: spec.id,
                })
            })
            .collect()
    }

    pub const LINK: ZooLink =
        ZooLink { arch: "efficientnet_b0", node: "features.1.0.block.0.0", label: "EfficientNet-B0, the first MBConv" };
}

// ---- DenseNet's growth rate --------------------------------------------------------------------

/// A dense block: layer i receives the block's input and every earlier layer's k new maps
/// (Huang et al. 2017, §3), through a 1×1 bottleneck to `bottleneck`·k channels.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Growth {
    pub growth: i64,
    pub initial: i64,
    pub layers: i64,
    pub bottleneck: i64,
    pub size: i64,
}

impl Default for Growth {
    /// DenseNet-121's first block.
    fn default() -> Self {
        Self::PRESETS[1].1
    }
}

impl Growth {
    /// The three growth rates of the paper, each with the block it is known for.
    pub const PRESETS: [(&'static str, Growth, Option<ZooLink>); 3] = [
        (
            "k = 12: DenseNet-BC on CIFAR (not in the zoo)",
            Growth { growth: 12, initial: 24, layers: 16, bottleneck: 4, size: 32 },
            None,
        ),
        (
            "k = 32: DenseNet-121/169/201, first block",
            Growth { growth: 32, initial: 64, layers: 6, bottleneck: 4, size: 56 },
            Some(ZooLink {
                arch: "densenet121",
                node: "features.denseblock1.denselayer1.norm1",
                label: "DenseNet-121 denseblock1",
            }),
        ),
        (
            "k = 48: DenseNet-161, first block",
            Growth { growth: 48, initial: 96, layers: 6, bottleneck: 4, size: 56 },
            Some(ZooLink {
                arch: "densenet161",
                node: "features.denseblock1.denselayer1.norm1",
                label: "DenseNet-161 denseblock1",
            }),
        ),
    ];

    /// The channels entering each layer: k₀ + (i − 1)·k.
    pub fn channels_entering(&self) -> Vec<i64> {
        (0..self.layers.max(0)).map(|i| self.initial + i * self.growth).collect()
    }
    /// What the block hands on: k₀ + L·k.
    pub fn output_channels(&self) -> i64 {
        self.initial + self.layers * self.growth
    }
    /// The block's 1×1 bottleneck convolutions, whose input grows with each layer.
    pub fn bottleneck_macs(&self) -> i64 {
        let width = self.bottleneck * self.growth;
        self.channels_entering().iter().map(|c| square(self.size) * width * c).sum()
    }

    /// Per linked block: the channels entering its last layer and its 1×1 MACs, formula against graph.
    pub fn checks() -> Result<Vec<GraphCheck>> {
        let mut checks = Vec::new();
        for (_, preset, link) in Self::PRESETS {
            let Some(link) = link else { continue };
            let net = Inspected::new(link.arch)?;
            let layer = |i: i64, part: &str| format!("features.denseblock1.denselayer{i}.{part}");
            let mut entering = Vec::new();
            let mut macs = 0;
            let mut i = 1;
            while net.graph.node_id(&layer(i, "norm1")).is_some() {
                entering.push(net.channels(&layer(i, "norm1"))?);
                macs += net.conv(&layer(i, "conv1"))?.2.macs;
                i += 1;
            }
            let (conv1, input, _) = net.conv(&layer(1, "conv1"))?;
            let growth = net.conv(&layer(1, "conv2"))?.0.out_channels;
            let g = Growth {
                growth,
                initial: entering.first().copied().unwrap_or(0),
                layers: entering.len() as i64,
                bottleneck: conv1.out_channels / growth.max(1),
                size: input[1],
            };
            let sizes = format!("k = {}, k₀ = {}, {} layers at {3}×{3}", g.growth, g.initial, g.layers, g.size);
            checks.push(GraphCheck {
                link,
                quantity: "channels entering the last layer",
                formula: g.channels_entering().last().copied().unwrap_or(0),
                graph: entering.last().copied().unwrap_or(0),
                sizes: sizes.clone(),
            });
            checks.push(GraphCheck {
                link,
                quantity: "MACs of the 1×1 bottlenecks",
                formula: g.bottleneck_macs(),
                graph: macs,
                sizes,
            });
            debug_assert_eq!(preset.growth, g.growth);
        }
        Ok(checks)
    }
}

/// Every check of every calculator, for the tests and the panel's summary.
pub fn all_checks() -> Result<Vec<GraphCheck>> {
    let mut checks = Bottleneck::checks()?;
    checks.push(Separable::check()?);
    checks.extend(SmallFilters::checks()?);
    checks.push(vgg19_fc1_check()?);
    checks.extend(Fire::checks()?);
    checks.extend(Growth::checks()?);
    Ok(checks)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn millions(n: i64) -> f64 {
        n as f64 / 1e6
    }

    #[test]
    fn the_bottleneck_reproduces_120m_against_2_4m_plus_10m() {
        let b = Bottleneck::default();
        assert_eq!(b.direct_macs(), 120_422_400);
        assert_eq!(millions(b.direct_macs()).round(), 120.0);
        assert_eq!(b.reduce_macs(), 2_408_448);
        assert_eq!((millions(b.reduce_macs()) * 10.0).round() / 10.0, 2.4);
        assert_eq!(b.reduced_conv_macs(), 10_035_200);
        assert_eq!(millions(b.reduced_conv_macs()).round(), 10.0);
    }

    #[test]
    fn the_separable_convolution_reproduces_614400_against_29376() {
        let s = Separable::default();
        assert_eq!(s.out_size(), 8);
        assert_eq!(s.standard_macs(), 614_400);
        assert_eq!(s.separable_macs(), 29_376);
        assert_eq!(s.depthwise_macs() + s.pointwise_macs(), 29_376);
        // 1/N + 1/D_K² is exact for any sizes.
        for s in [s, Separable { in_size: 112, in_channels: 64, kernel: 3, out_channels: 128, stride: 2, padding: 1 }] {
            assert!((s.ratio() - s.ratio_formula()).abs() < 1e-12, "{s:?}");
        }
    }

    #[test]
    fn mobilenet_multipliers_recomputed_from_the_graph_match_the_papers_tables() {
        for &(width_percent, resolution, macs, params) in &MOBILENET_V1_PAPER {
            let m = Multipliers { width_percent, resolution };
            let figures = m.figures().expect("builds");
            assert!((millions(figures.macs) - macs).abs() < 1.0, "{m:?}: {} M MACs, paper {macs}", figures.macs);
            assert!(
                (millions(figures.params) - params).abs() < 0.05,
                "{m:?}: {} params, paper {params} M",
                figures.params
            );
            let preset = m.preset().expect("every paper point is a zoo preset");
            let spec = zoo::find(preset).expect("preset");
            let zoo_macs = spec.graph().infer_shapes(resolution, resolution).expect("shapes").total_macs();
            assert_eq!(zoo_macs, figures.macs, "{preset}");
        }
        assert!(Multipliers { width_percent: 0, resolution: 224 }.figures().is_err());
        assert!(Multipliers { width_percent: 100, resolution: 0 }.figures().is_err(), "no input");
    }

    #[test]
    fn small_filters_give_18_25_and_27_49_and_vgg19_holds_144m() {
        let two = SmallFilters::default();
        assert_eq!((two.receptive_field(), two.coefficients()), (5, (18, 25)));
        let three = SmallFilters { stacked: 3, ..two };
        assert_eq!((three.receptive_field(), three.coefficients()), (7, (27, 49)));
        assert_eq!(three.stacked_weights(), 27 * 256 * 256);

        let vgg = param_breakdown("vgg19").expect("vgg19");
        assert_eq!(vgg.total, 143_667_240);
        assert_eq!(millions(vgg.total).round(), 144.0);
        assert_eq!(vgg.conv + vgg.linear + vgg.other, vgg.total);
        assert_eq!(vgg.largest, ("classifier.0".to_owned(), 102_764_544));
        assert_eq!(vgg.other, 0, "VGG-19 has no batch norm");
        let vgg16 = param_breakdown("vgg16").expect("vgg16");
        assert_eq!(millions(vgg16.total).round(), 138.0);
    }

    #[test]
    fn the_fire_module_and_squeezenets_compressed_size() {
        let fire = Fire::default();
        assert_eq!(fire.fire_params(), 11_920);
        assert_eq!(fire.conv3x3_params(), 110_720);
        let c = Compression::default();
        assert_eq!(c.paper(), Some((0.47, 510)));
        // The reduction is the paper's 240 MB over its 0.47 MB.
        assert_eq!((ALEXNET_PAPER_MB / 0.47).floor(), 510.0);
        let figures = CompressionFigures::from_zoo().expect("zoo");
        assert_eq!(figures.squeezenet_params, 1_248_424);
        assert_eq!((Compression { bits: 32 }.dense_megabytes(figures.squeezenet_params) * 100.0).round(), 499.0);
        // 4.8 "MB" for 1.25 M float32 weights is 4.76 MiB: the paper's MB is 2^20 bytes.
        let bits32 = Compression { bits: 32 }.paper_bits_per_param(figures.squeezenet_params).expect("paper");
        assert!((bits32 - 32.0).abs() < 1.0, "{bits32}");
        let bits6 = c.paper_bits_per_param(figures.squeezenet_params).expect("paper");
        assert!((3.0..3.3).contains(&bits6), "0.47 MB is about 3.2 bits per parameter: {bits6}");
    }

    #[test]
    fn compound_scaling_at_phi_0_is_b0_and_the_zoos_b7_holds_66m() {
        let c = Compound::default();
        assert!((c.constraint() - 2.0).abs() < 0.1, "α·β²·γ² = {}", c.constraint());
        let rows = c.rows().expect("rows");
        assert_eq!(rows.len(), 8);
        let b0 = &rows[0];
        assert_eq!(b0.scaled, b0.actual, "φ = 0 is B0 itself");
        assert_eq!((b0.actual.blocks, b0.actual.head_channels, b0.actual.resolution), (16, 1280, 224));
        let b7 = &rows[7];
        assert_eq!(b7.actual_id, "efficientnet_b7");
        assert_eq!(millions(b7.actual.params).round(), 66.0);
        assert_eq!((b7.actual.blocks, b7.actual.head_channels, b7.actual.resolution), (55, 2560, 600));
        // The formula at φ = 7: 1.2^7 = 3.58 (torchvision's B7 has 3.1), 1.1^7 = 1.95 (2.0),
        // 224 · 1.15^7 = 596 (600).
        assert_eq!(b7.scaled.resolution, 596);
        assert!(b7.scaled.blocks > b7.actual.blocks);
        // torchvision's multipliers rebuild the zoo's variants exactly.
        for row in &rows {
            let spec = zoo::find(row.actual_id).expect("zoo");
            let zoo_net =
                ScaledNet::from_graph(&spec.graph(), row.actual.depth, row.actual.width, spec.input[1]).expect("b");
            let rebuilt = efficientnet::efficientnet_scaled("x", row.actual.width, row.actual.depth);
            let rebuilt =
                ScaledNet::from_graph(&rebuilt, row.actual.depth, row.actual.width, spec.input[1]).expect("b");
            assert_eq!(rebuilt, zoo_net, "{}", row.actual_id);
        }
    }

    #[test]
    fn growth_rates_12_32_48_give_the_channels_of_each_layer() {
        let [(_, k12, _), (_, k32, _), (_, k48, _)] = Growth::PRESETS;
        assert_eq!(k32, Growth::default());
        assert_eq!(k32.channels_entering(), vec![64, 96, 128, 160, 192, 224]);
        assert_eq!(k32.output_channels(), 256);
        assert_eq!(k48.channels_entering(), vec![96, 144, 192, 240, 288, 336]);
        assert_eq!(k48.output_channels(), 384);
        assert_eq!(k12.channels_entering().len(), 16);
        assert_eq!(k12.output_channels(), 24 + 16 * 12);
    }

    #[test]
    fn every_formula_matches_what_shape_inference_computes_for_its_node() {
        let checks = all_checks().expect("every linked node exists");
        assert_eq!(checks.len(), 2 + 1 + 2 + 1 + 2 + 4);
        for check in &checks {
            assert!(
                check.agrees(),
                "{} {}: formula {} vs graph {} ({})",
                check.link.arch,
                check.quantity,
                check.formula,
                check.graph,
                check.sizes
            );
            let spec = zoo::find(check.link.arch).expect("linked arch");
            assert!(spec.graph().node_id(check.link.node).is_some(), "{} has {}", check.link.arch, check.link.node);
        }
        // The seed's own sizes are the ones GoogLeNet's 1×1 reduction has.
        let googlenet = &checks[0];
        assert_eq!(googlenet.sizes, "28×28×192, 1×1 to 16, then 3×3 to 32");
        let defaults = Bottleneck::default();
        assert_eq!(defaults.reduce_macs(), 2_408_448, "inception3a.branch3.0.conv's MACs");
        for link in [Separable::LINK, SmallFilters::LINK, VGG19_FC1, Fire::LINK, Compound::LINK] {
            assert!(zoo::find(link.arch).expect("arch").graph().node_id(link.node).is_some(), "{link:?}");
        }
    }
}
