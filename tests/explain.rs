//! `convscope explain` end to end: every stage's Grad-CAM in one run equals each layer asked
//! alone, the files of --out (PNG strip, safetensors, .npy), targets by number and by name,
//! Integrated Gradients' completeness in the JSON, and one-line errors that name the problem.
//! The maps' numbers themselves are checked against captum in the core's attribution tests;
//! here ResNet-18 with its random initialisation on the bundled cat keeps each run short.

mod common;

use std::path::Path;

use common::*;
use tch::Tensor;

const CAT: &str = "assets/chelsea.png";

fn cat() -> String {
    manifest_dir().join(CAT).display().to_string()
}

fn explain(extra: &[&str]) -> std::process::Output {
    let image = cat();
    let mut args = vec!["explain", "resnet18", image.as_str(), "--random"];
    args.extend_from_slice(extra);
    run_ok(&args)
}

fn explain_json(extra: &[&str]) -> serde_json::Value {
    let mut args = extra.to_vec();
    args.push("--json");
    let output = explain(&args);
    serde_json::from_str(&stdout(&output)).unwrap_or_else(|e| panic!("JSON from explain: {e}\n{}", stdout(&output)))
}

fn fails_with(extra: &[&str], expected: &str) {
    let image = cat();
    let mut args = vec!["explain", "resnet18", image.as_str(), "--random"];
    args.extend_from_slice(extra);
    let output = convscope().args(&args).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "convscope {} should fail", args.join(" "));
    assert!(stderr.contains(expected), "convscope {}: expected {expected:?} in:\n{stderr}", args.join(" "));
    assert_eq!(stderr.trim().lines().count(), 1, "errors are one line:\n{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

fn path_str(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[test]
fn every_stage_in_one_run_equals_each_layer_alone() {
    let dir = tempfile::tempdir().unwrap();
    let all = dir.path().join("stages.safetensors");
    let json = explain_json(&["--method", "gradcam", "--layer", "stages", "--out", path_str(&all)]);
    let maps = json["maps"].as_array().unwrap();
    // ResNet-18 at 224×224, coarse to fine: 7 (layer4), 14, 28, 56 and 112 (the stem).
    let sides: Vec<i64> = maps.iter().map(|m| m["shape"][3].as_i64().unwrap()).collect();
    assert_eq!(sides, [7, 14, 28, 56, 112], "{json}");
    let stored = read(&all);
    assert_eq!(stored.len(), maps.len() + 1, "a map per stage and the logits");
    let logits = &stored["logits"];
    assert_eq!(logits.argmax(-1, false).int64_value(&[0]), json["target"].as_i64().unwrap(), "the predicted class");
    for map in maps {
        let node = map["node"].as_str().unwrap();
        let ours = &stored[map["name"].as_str().unwrap()];
        assert_eq!(map["name"], format!("map.{node}"));
        let alone = dir.path().join(format!("{node}.npy"));
        explain(&["--method", "gradcam", "--layer", node, "--out", path_str(&alone)]);
        let theirs = Tensor::read_npy(&alone).unwrap();
        assert_eq!(ours.size(), theirs.size(), "{node}");
        assert!(ours.equal(&theirs), "{node}: the map of every stage at once differs from the layer's alone");
        let max = theirs.max().double_value(&[]);
        assert!((map["max"].as_f64().unwrap() - max).abs() <= 1e-12 * max.abs(), "{node}: the JSON's max");
    }
}

#[test]
fn the_png_is_the_image_under_its_maps() {
    let dir = tempfile::tempdir().unwrap();
    let plain = dir.path().join("plain.png");
    let shown = dir.path().join("shown.png");
    explain(&["--method", "gradcam", "--layer", "layer3", "--opacity", "0", "--out", path_str(&plain)]);
    let text = stdout(&explain(&["--method", "gradcam", "--layer", "layer3", "--out", path_str(&shown)]));
    assert!(text.contains("Grad-CAM") && text.contains("at layer3") && text.contains("wrote"), "{text}");
    let plain = image::open(&plain).unwrap().to_rgb8();
    let shown = image::open(&shown).unwrap().to_rgb8();
    assert_eq!(plain.dimensions(), (224, 224), "the input as the network saw it");
    assert_eq!(shown.dimensions(), plain.dimensions());
    // Opacity 0 leaves the image; the network's view of the cat is not one flat colour.
    let first = plain.get_pixel(0, 0);
    assert!(plain.pixels().any(|p| p != first), "the image was drawn");
    let changed = plain.pixels().zip(shown.pixels()).filter(|(a, b)| a != b).count();
    assert!(changed > 224 * 224 / 2, "a CAM covers the image: {changed} pixels changed");

    let strip = dir.path().join("strip.png");
    explain(&["--method", "gradcampp", "--layer", "stages", "--out", path_str(&strip)]);
    let strip = image::open(&strip).unwrap().to_rgb8();
    assert_eq!(strip.dimensions(), (5 * 224 + 4 * 4, 224), "five stages side by side");
}

#[test]
fn a_target_by_name_is_the_target_by_number() {
    let by_number = explain_json(&["--method", "saliency", "--target", "281"]);
    let by_name = explain_json(&["--method", "saliency", "--target", "tabby cat"]);
    assert_eq!(by_number["target"], 281);
    assert_eq!(by_name["target"], 281);
    assert_eq!(by_name["target_label"], "tabby, tabby cat");
    assert_eq!(by_number["maps"], by_name["maps"]);
    let difference = explain_json(&["--method", "saliency", "--target", "281", "--minus", "tiger cat"]);
    assert_eq!(difference["minus"], 282);
    assert_ne!(difference["maps"], by_number["maps"], "the difference's gradient is another map");
}

#[test]
fn integrated_gradients_report_their_completeness() {
    let json = explain_json(&["--method", "ig", "--steps", "16", "--baseline", "mean"]);
    let c = &json["completeness"];
    let (sum, input, baseline, gap) = (
        c["attribution_sum"].as_f64().unwrap(),
        c["score_input"].as_f64().unwrap(),
        c["score_baseline"].as_f64().unwrap(),
        c["gap"].as_f64().unwrap(),
    );
    assert!((gap - (sum - (input - baseline))).abs() < 1e-9, "{c}");
    assert!((input - json["score"].as_f64().unwrap()).abs() < 1e-4, "f(input) is the target's logit: {json}");
    assert_eq!(json["maps"][0]["shape"], serde_json::json!([1, 3, 224, 224]));
    let text = stdout(&explain(&["--method", "ig", "--steps", "4", "--integration", "trapezoid"]));
    assert!(text.contains("completeness: Σ attributions"), "{text}");
}

#[test]
fn occlusion_and_smoothgrad_take_their_parameters() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("occlusion.npy");
    explain(&["--method", "occlusion", "--window", "112", "--stride", "112", "--out", path_str(&out)]);
    let map = Tensor::read_npy(&out).unwrap();
    assert_eq!(map.size(), [1, 3, 224, 224]);
    // Four windows that do not overlap: the map takes one value per quadrant.
    let quadrant = map.narrow(2, 0, 112).narrow(3, 0, 112);
    assert!(quadrant.equal(&quadrant.flatten(0, -1).get(0).expand_as(&quadrant)), "one value in a window");
    let a = explain_json(&["--method", "smoothgrad", "--samples", "3", "--sigma", "0.1", "--noise-seed", "1"]);
    let b = explain_json(&["--method", "smoothgrad", "--samples", "3", "--sigma", "0.1", "--noise-seed", "2"]);
    assert_ne!(a["maps"], b["maps"], "the noise's seed changes the map");
}

#[test]
fn guided_backprop_says_when_nothing_is_guided() {
    let text = stdout(&explain(&["--method", "guided"]));
    assert!(!text.contains("plain gradient"), "ResNet-18 has ReLUs: {text}");
    let image = cat();
    let output = run_ok(&["explain", "efficientnet_lite0", image.as_str(), "--random", "--method", "guided"]);
    assert!(stdout(&output).contains("no ReLU to guide"), "{}", stdout(&output));
}

#[test]
fn explain_errors_are_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    fails_with(&["--method", "gradcam", "--layer", "layer9"], "resnet18 has no node or block named \"layer9\"");
    fails_with(&["--method", "gradcam", "--layer", "avgpool"], "avgpool has no spatial output");
    fails_with(&["--method", "gradcam", "--layer", "fc"], "fc has no spatial output");
    fails_with(&["--method", "saliency", "--layer", "layer3"], "--layer does not apply to Saliency");
    fails_with(&["--method", "gradcam", "--steps", "8"], "--steps does not apply to Grad-CAM");
    fails_with(&["--method", "saliency", "--target", "1000"], "class 1000 is outside 0..1000");
    fails_with(&["--method", "saliency", "--target", "cat"], "names 16 classes");
    fails_with(&["--method", "saliency", "--target", "unicorn"], "no class is called \"unicorn\"");
    fails_with(&["--method", "saliency", "--minus", "3"], "--minus needs --target");
    fails_with(&["--method", "gradcam", "--opacity", "2"], "--opacity is a fraction");
    let npy = dir.path().join("stages.npy");
    fails_with(&["--method", "gradcam", "--layer", "stages", "--out", path_str(&npy)], "an .npy file holds one array");
    assert!(!npy.exists(), "nothing written");
    let txt = dir.path().join("map.txt");
    fails_with(&["--method", "saliency", "--out", path_str(&txt)], "name it .png");
    fails_with(&["--method", "occlusion", "--window", "0"], "window");
    fails_with(&["--method", "ig", "--steps", "0"], "at least 1 step");
    fails_with(&["--method", "smoothgrad", "--samples", "0"], "at least 1 sample");
    fails_with(&["--method", "gradcam", "--no-skip", "layer9"], "layer9");
    // clap's own errors add a line pointing at --help.
    let output = convscope().args(["explain", "resnet18", CAT, "--method", "heatmap"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success() && stderr.contains("no method \"heatmap\": one of gradcam"), "{stderr}");
    let output =
        convscope().args(["explain", "resnet18", "missing.png", "--random", "--method", "saliency"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success() && stderr.contains("missing.png"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
}
