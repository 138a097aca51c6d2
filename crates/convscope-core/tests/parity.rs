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
fn resnet50_matches_torchvision() {
    check_arch("resnet50");
}

#[test]
fn resnet20_matches_its_pytorch_twin() {
    check_arch("resnet20");
}

#[test]
fn plain20_matches_its_pytorch_twin() {
    check_arch("plain20");
}
