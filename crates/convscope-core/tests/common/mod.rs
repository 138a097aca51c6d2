//! Helpers shared by the engine's tests: fixtures made by tests/fixtures/make_fixtures.py,
//! and tensor comparisons.
#![allow(dead_code)]

pub mod parity;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use tch::Tensor;

/// The checkout's root, where the assets, the venv and the fixtures are.
pub fn manifest_dir() -> PathBuf {
    convscope_core::paths::checkout().to_owned()
}

/// The fixture folder of an architecture; fails loudly when `make test` has not made it.
pub fn fixture_dir(arch: &str) -> PathBuf {
    let dir = convscope_core::paths::fixtures_dir().join(arch);
    assert!(
        dir.join("stamp").is_file(),
        "no reference fixtures for {arch} in {}: run `make test` (or `make fixtures`), which makes them with the venv's PyTorch",
        dir.display()
    );
    dir
}

pub fn read(path: &Path) -> HashMap<String, Tensor> {
    Tensor::read_safetensors(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display())).into_iter().collect()
}

/// `|ours - theirs| <= atol + rtol * |theirs|` everywhere, like torch.allclose.
pub fn assert_close(what: &str, ours: &Tensor, theirs: &Tensor, rtol: f64, atol: f64) {
    assert_eq!(ours.size(), theirs.size(), "{what}: shapes differ");
    let excess = (ours - theirs).abs() - (theirs.abs() * rtol + atol);
    let worst = excess.max().double_value(&[]);
    if worst > 0.0 {
        let max_diff = (ours - theirs).abs().max().double_value(&[]);
        panic!("{what}: differs from the reference by up to {max_diff:e} (beyond rtol {rtol:e} / atol {atol:e})");
    }
}

pub fn scalar(t: &Tensor) -> f64 {
    t.double_value(&[])
}
