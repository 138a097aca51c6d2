//! `make test-cuda`: the command line with `--device cuda`. Ignored by `make test`; where no
//! CUDA device exists, each test says so and returns.

mod common;

use common::*;

fn cuda() -> bool {
    let available = tch::Cuda::is_available();
    if !available {
        eprintln!("skipped: no CUDA device on this machine (tch::Cuda::is_available() is false)");
    }
    available
}

#[test]
#[ignore = "make test-cuda"]
fn classify_export_and_gradients_run_on_cuda() {
    if !cuda() {
        return;
    }
    let cat = manifest_dir().join("assets/chelsea.png");
    let cat = cat.to_str().unwrap();
    let json: serde_json::Value =
        serde_json::from_str(&stdout(&run_ok(&["classify", "resnet18", cat, "--device", "cuda", "--json"]))).unwrap();
    assert_eq!(json[0]["device"], "cuda:0");

    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("export.safetensors");
    run_ok(&["export", "resnet18", "--image", cat, "--device", "cuda", "--grads", "--out", out.to_str().unwrap()]);
    let tensors = read(&out);
    assert!(tensors.contains_key("logits") && tensors.contains_key("grad_norm.conv1"));

    let text = stdout(&run_ok(&["gradients", "resnet18", "--image", cat, "--device", "cuda", "--json"]));
    let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    let norms: Vec<f64> = doc["nodes"].as_array().unwrap().iter().map(|n| n["grad_norm"].as_f64().unwrap()).collect();
    assert!(!norms.is_empty() && norms.iter().all(|n| n.is_finite()), "{text}");
}

#[test]
#[ignore = "make test-cuda"]
fn asking_for_cuda_without_it_is_one_clear_line() {
    if tch::Cuda::is_available() {
        eprintln!("skipped: this machine has CUDA");
        return;
    }
    let cat = manifest_dir().join("assets/chelsea.png");
    let output =
        convscope().args(["classify", "resnet18", cat.to_str().unwrap(), "--device", "cuda"]).output().unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("no CUDA device") && stderr.lines().count() == 1, "{stderr}");
}
