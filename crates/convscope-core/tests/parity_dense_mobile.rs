//! Parity of DenseNet (torchvision), MobileNet v1 (timm) and MobileNet v2/v3 (torchvision) with
//! their references (see common/parity.rs and tests/fixtures/cases_dense_mobile.py), and their
//! parameter counts and multiply-accumulates against the published figures.

mod common;

use common::parity::{assert_reference_figures, check_arch};
use convscope_core::graph::{EdgeKind, Op};
use convscope_core::zoo::mobilenet::V1Config;

#[test]
fn densenet121_matches_torchvision() {
    check_arch("densenet121");
}

#[test]
fn densenet169_matches_torchvision() {
    check_arch("densenet169");
}

#[test]
fn densenet201_matches_torchvision() {
    check_arch("densenet201");
}

#[test]
fn densenet161_matches_torchvision() {
    check_arch("densenet161");
}

#[test]
fn mobilenet_v1_matches_timm() {
    check_arch("mobilenet_v1");
}

#[test]
fn mobilenet_v1_100_192_matches_timm() {
    check_arch("mobilenet_v1_100_192");
}

#[test]
fn mobilenet_v1_100_160_matches_timm() {
    check_arch("mobilenet_v1_100_160");
}

#[test]
fn mobilenet_v1_100_128_matches_timm() {
    check_arch("mobilenet_v1_100_128");
}

#[test]
fn mobilenet_v1_075_224_matches_timm() {
    check_arch("mobilenet_v1_075_224");
}

#[test]
fn mobilenet_v1_075_192_matches_timm() {
    check_arch("mobilenet_v1_075_192");
}

#[test]
fn mobilenet_v1_075_160_matches_timm() {
    check_arch("mobilenet_v1_075_160");
}

#[test]
fn mobilenet_v1_075_128_matches_timm() {
    check_arch("mobilenet_v1_075_128");
}

#[test]
fn mobilenet_v1_050_224_matches_timm() {
    check_arch("mobilenet_v1_050_224");
}

#[test]
fn mobilenet_v1_050_192_matches_timm() {
    check_arch("mobilenet_v1_050_192");
}

#[test]
fn mobilenet_v1_050_160_matches_timm() {
    check_arch("mobilenet_v1_050_160");
}

#[test]
fn mobilenet_v1_050_128_matches_timm() {
    check_arch("mobilenet_v1_050_128");
}

#[test]
fn mobilenet_v1_025_224_matches_timm() {
    check_arch("mobilenet_v1_025_224");
}

#[test]
fn mobilenet_v1_025_192_matches_timm() {
    check_arch("mobilenet_v1_025_192");
}

#[test]
fn mobilenet_v1_025_160_matches_timm() {
    check_arch("mobilenet_v1_025_160");
}

#[test]
fn mobilenet_v1_025_128_matches_timm() {
    check_arch("mobilenet_v1_025_128");
}

#[test]
fn mobilenet_v2_matches_torchvision() {
    check_arch("mobilenet_v2");
}

#[test]
fn mobilenet_v3_large_matches_torchvision() {
    check_arch("mobilenet_v3_large");
}

#[test]
fn mobilenet_v3_small_matches_torchvision() {
    check_arch("mobilenet_v3_small");
}

/// (id, parameters, multiply-accumulates at the native input).
///
/// DenseNet and MobileNet v2/v3: torchvision 0.28's weight enums, `meta["num_params"]` and
/// `meta["_ops"]` (GFLOPS, i.e. GMACs, at 224×224), IMAGENET1K_V1.
///
/// MobileNet v1: the MACs are the paper's Mult-Adds where it gives them (Table 6: widths at
/// 224; Table 7: resolutions at α = 1: 569M, 325M, 149M, 41M; 418M, 290M, 186M). timm publishes
/// no figures, so the parameters (which equal the paper's 4.2M / 2.6M / 1.3M / 0.5M) and the
/// MACs of the other combinations were counted on timm 1.0.31's model in Python
/// (`sum(p.numel())`, and torch.utils.flop_counter.FlopCounterMode's total halved).
const FIGURES: &[(&str, i64, f64)] = &[
    ("densenet121", 7_978_856, 2.834e9),
    ("densenet169", 14_149_480, 3.36e9),
    ("densenet201", 20_013_928, 4.291e9),
    ("densenet161", 28_681_000, 7.728e9),
    ("mobilenet_v2", 3_504_872, 0.301e9),
    ("mobilenet_v3_large", 5_483_032, 0.217e9),
    ("mobilenet_v3_small", 2_542_856, 0.057e9),
    // The paper's figures.
    ("mobilenet_v1", 4_231_976, 569e6),
    ("mobilenet_v1_100_192", 4_231_976, 418e6),
    ("mobilenet_v1_100_160", 4_231_976, 290e6),
    ("mobilenet_v1_100_128", 4_231_976, 186e6),
    ("mobilenet_v1_075_224", 2_585_560, 325e6),
    ("mobilenet_v1_050_224", 1_331_592, 149e6),
    ("mobilenet_v1_025_224", 470_072, 41e6),
    // Counted on timm's model (FlopCounterMode / 2).
    ("mobilenet_v1_075_192", 2_585_560, 239_273_472.0),
    ("mobilenet_v1_075_160", 2_585_560, 166_396_800.0),
    ("mobilenet_v1_075_128", 2_585_560, 106_770_432.0),
    ("mobilenet_v1_050_192", 1_331_592, 109_970_432.0),
    ("mobilenet_v1_050_160", 1_331_592, 76_524_800.0),
    ("mobilenet_v1_050_128", 1_331_592, 49_160_192.0),
    ("mobilenet_v1_025_192", 470_072, 30_212_608.0),
    ("mobilenet_v1_025_160", 470_072, 21_059_200.0),
    ("mobilenet_v1_025_128", 470_072, 13_570_048.0),
];

#[test]
fn parameters_and_macs_match_the_published_figures() {
    assert_reference_figures(FIGURES);
}

#[test]
fn mobilenet_v1_registers_every_width_and_resolution() {
    for width in [25, 50, 75, 100] {
        for resolution in [128, 160, 192, 224] {
            let id = if (width, resolution) == (100, 224) {
                "mobilenet_v1".to_owned()
            } else {
                format!("mobilenet_v1_{width:03}_{resolution}")
            };
            let spec = convscope_core::zoo::find(&id).unwrap();
            assert_eq!(spec.input, [3, resolution, resolution], "{id}: input");
            let config = V1Config::preset(&id).unwrap();
            assert_eq!((config.width_percent, i64::from(config.resolution)), (width, resolution), "{id}");
            // The resolution multiplier changes the input only, the width multiplier every layer.
            let graph = spec.graph();
            let stem = graph.node_id("conv_stem").map(|n| &graph.nodes[n].op);
            assert!(matches!(stem, Some(Op::Conv2d(c)) if c.out_channels == 32 * width / 100), "{id}: stem width");
        }
    }
    assert_eq!(FIGURES.iter().filter(|f| f.0.starts_with("mobilenet_v1")).count(), 16);
}

#[test]
fn mobilenet_v1_depthwise_convs_have_one_filter_per_channel() {
    let graph = convscope_core::zoo::find("mobilenet_v1_050_160").unwrap().graph();
    let depthwise: Vec<_> = graph.nodes.iter().filter(|n| n.name.ends_with(".conv_dw")).collect();
    assert_eq!(depthwise.len(), 13);
    for node in depthwise {
        let Op::Conv2d(conv) = &node.op else { panic!("{} is not a convolution", node.name) };
        assert!(conv.is_depthwise() && conv.groups == conv.in_channels, "{}: groups {}", node.name, conv.groups);
    }
}

#[test]
fn densenet_layers_read_the_concatenation_of_everything_before_them() {
    let graph = convscope_core::zoo::find("densenet121").unwrap().graph();
    let block_input = graph.node_id("features.pool0").unwrap();
    let layer_outputs: Vec<usize> =
        (1..=6).map(|l| graph.node_id(&format!("features.denseblock1.denselayer{l}.conv2")).unwrap()).collect();
    // Layer 1 reads the block input itself; layer ℓ a concatenation of the input and layers 1..ℓ-1.
    let norm1 = graph.node_id("features.denseblock1.denselayer1.norm1").unwrap();
    assert_eq!(graph.nodes[norm1].inputs[0].from, block_input);
    for l in 2..=6 {
        let concat = &graph.nodes[graph.node_id(&format!("features.denseblock1.denselayer{l}.concat")).unwrap()];
        assert_eq!(concat.op, Op::Concat);
        let sources: Vec<usize> = concat.inputs.iter().map(|e| e.from).collect();
        let expected: Vec<usize> = std::iter::once(block_input).chain(layer_outputs[..l - 1].iter().copied()).collect();
        assert_eq!(sources, expected, "denselayer{l}");
        assert!(concat.inputs.iter().all(|e| e.kind == EdgeKind::Dense));
    }
    let out = &graph.nodes[graph.node_id("features.denseblock1.concat").unwrap()];
    assert_eq!(out.inputs.len(), 7);
    assert!(graph.residual_nodes().next().is_none(), "DenseNet has no residual additions");
}
