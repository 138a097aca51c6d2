//! Helpers shared by the command line's tests: the convscope binary, and tensor comparisons.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use tch::Tensor;

pub fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn convscope() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_convscope"));
    // Tests never pick up weights a user installed.
    cmd.env("CONVSCOPE_WEIGHTS", manifest_dir().join("target/no-installed-weights"));
    cmd
}

/// Runs convscope with arguments; panics with its output if it fails.
pub fn run_ok(args: &[&str]) -> Output {
    let output = convscope().args(args).output().expect("the convscope binary runs");
    assert!(
        output.status.success(),
        "convscope {} failed:\n{}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
    output
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

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}
