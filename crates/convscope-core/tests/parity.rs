//! Parity of the foundation's architectures with their references (see common/parity.rs).

mod common;

use common::parity::check_arch;

#[test]
fn lenet5_matches_its_pytorch_twin() {
    check_arch("lenet5");
}

#[test]
fn resnet18_matches_torchvision() {
    check_arch("resnet18");
}

#[test]
fn resnet34_matches_torchvision() {
    check_arch("resnet34");
}

#[test]
fn resnet50_matches_torchvision() {
    check_arch("resnet50");
}

#[test]
fn resnet101_matches_torchvision() {
    check_arch("resnet101");
}

#[test]
fn resnet152_matches_torchvision() {
    check_arch("resnet152");
}

#[test]
fn resnet20_matches_its_pytorch_twin() {
    check_arch("resnet20");
}

#[test]
fn resnet56_matches_its_pytorch_twin() {
    check_arch("resnet56");
}

#[test]
fn plain20_matches_its_pytorch_twin() {
    check_arch("plain20");
}

#[test]
fn plain56_matches_its_pytorch_twin() {
    check_arch("plain56");
}
