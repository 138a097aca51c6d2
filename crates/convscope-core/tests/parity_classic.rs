//! Parity of AlexNet, VGG, SqueezeNet and ShuffleNet V2 with their references (see
//! common/parity.rs; the cases are tests/fixtures/cases_classic.py), and their parameter and
//! MAC counts against the references' published figures.

mod common;

use common::parity::{assert_reference_figures, check_arch};
use convscope_core::executor::Model;
use convscope_core::zoo;
use tch::Device;

#[test]
fn alexnet_matches_torchvision() {
    check_arch("alexnet");
}

#[test]
fn alexnet_2012_matches_its_pytorch_twin() {
    check_arch("alexnet_2012");
}

#[test]
fn vgg16_matches_torchvision() {
    check_arch("vgg16");
}

#[test]
fn vgg19_bn_matches_torchvision() {
    check_arch("vgg19_bn");
}

#[test]
fn vgg11_matches_torchvision() {
    check_arch("vgg11");
}

#[test]
fn vgg19_matches_torchvision() {
    check_arch("vgg19");
}

#[test]
fn vgg16_bn_matches_torchvision() {
    check_arch("vgg16_bn");
}

#[test]
fn squeezenet1_0_matches_torchvision() {
    check_arch("squeezenet1_0");
}

#[test]
fn squeezenet1_1_matches_torchvision() {
    check_arch("squeezenet1_1");
}

#[test]
fn shufflenet_v2_x0_5_matches_torchvision() {
    check_arch("shufflenet_v2_x0_5");
}

#[test]
fn shufflenet_v2_x1_0_matches_torchvision() {
    check_arch("shufflenet_v2_x1_0");
}

#[test]
fn parameter_counts_and_macs_match_the_references() {
    // (arch, parameters, GMACs at the native input): torchvision's weight metadata
    // (`meta["num_params"]` and `meta["_ops"]` in torchvision/models/{alexnet,vgg,squeezenet,
    // shufflenetv2}.py). torchvision has no alexnet_2012: its figures were computed from the
    // PyTorch twin in tests/fixtures/cases_classic.py (parameters summed; MACs from
    // torch.utils.flop_counter at 1×3×227×227, halved: 724,406,816).
    let figures = [
        ("alexnet", 61_100_840, 0.714),
        ("alexnet_2012", 60_965_224, 0.724_406_816),
        ("vgg11", 132_863_336, 7.609),
        ("vgg16", 138_357_544, 15.47),
        ("vgg19", 143_667_240, 19.632),
        ("vgg16_bn", 138_365_992, 15.47),
        ("vgg19_bn", 143_678_248, 19.632),
        ("squeezenet1_0", 1_248_424, 0.819),
        ("squeezenet1_1", 1_235_496, 0.349),
        ("shufflenet_v2_x0_5", 1_366_792, 0.04),
        ("shufflenet_v2_x1_0", 2_278_604, 0.145),
    ];
    let figures = figures.map(|(arch, params, gmacs)| (arch, params, gmacs * 1e9));
    assert_reference_figures(&figures);
}

#[test]
fn the_families_have_no_residual_connections() {
    for arch in ["alexnet", "alexnet_2012", "vgg16_bn", "squeezenet1_1", "shufflenet_v2_x1_0"] {
        let graph = zoo::find(arch).unwrap().graph();
        assert_eq!(graph.residual_nodes().count(), 0, "{arch}");
    }
}

#[test]
fn squeezenet_random_weights_follow_torchvisions_initialisation() {
    // torchvision/models/squeezenet.py: kaiming_uniform_ (fan-in, gain √2: uniform in ±√(6/fan_in),
    // standard deviation √(2/fan_in)) for every convolution but the last, Normal(0, 0.01) for
    // `classifier.1`, biases zero.
    let model = Model::random(zoo::find("squeezenet1_0").unwrap().graph(), Device::Cpu, 5).unwrap();
    let graph = model.graph();
    let mut checked = 0;
    for (spec, t) in graph.params.iter().zip(model.params()) {
        if spec.key.ends_with(".bias") {
            assert_eq!(t.abs().max().double_value(&[]), 0.0, "{}", spec.key);
            continue;
        }
        let fan_in = spec.shape[1..].iter().product::<i64>() as f64;
        let (std, bound) = if spec.key == "classifier.1.weight" {
            (0.01, f64::INFINITY)
        } else {
            ((2.0 / fan_in).sqrt(), (6.0 / fan_in).sqrt())
        };
        let ours = t.std(true).double_value(&[]);
        assert!((ours / std - 1.0).abs() < 0.1, "{}: std {ours} vs {std}", spec.key);
        assert!(t.abs().max().double_value(&[]) <= bound, "{}: beyond ±{bound}", spec.key);
        checked += 1;
    }
    assert_eq!(checked, 26, "the 25 fire and stem convolutions and the classifier");
}
