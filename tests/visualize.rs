//! `convscope visualize` end to end on LeNet-5 with its random initialisation (short runs):
//! a PNG per channel, `--all` in batches with a grid, the run seeded (the same seed, the same
//! picture; another seed, another), diversity's four images, the reference layout on the whole
//! node reaching the default run's activations, and one-line errors. The
//! optimisation's numbers are checked against Lucent in the core's featvis tests.

mod common;

use common::*;

fn visualize_json(args: &[&str]) -> serde_json::Value {
    let mut all = vec!["visualize", "lenet5"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--random", "--steps", "8", "--size", "24", "--json"]);
    let output = run_ok(&all);
    serde_json::from_str(&stdout(&output)).unwrap_or_else(|e| panic!("JSON from visualize: {e}\n{}", stdout(&output)))
}

fn fails_with(args: &[&str], expected: &str) {
    let mut all = vec!["visualize", "lenet5"];
    all.extend_from_slice(args);
    all.push("--random");
    let output = convscope().args(&all).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "convscope {} should fail", all.join(" "));
    assert!(stderr.contains(expected), "convscope {}: expected {expected:?} in:\n{stderr}", all.join(" "));
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn channels_become_pngs_and_the_seed_decides_the_picture() {
    let dir = tempfile::tempdir().unwrap();
    let out = |name: &str| dir.path().join(name).display().to_string();
    let first = visualize_json(&["conv2", "--channel", "3,7", "--out", &out("a")]);
    assert_eq!(first["node"], "conv2");
    let channels = first["channels"].as_array().unwrap();
    assert_eq!(channels.len(), 2);
    let files: Vec<String> = channels.iter().map(|c| c["file"].as_str().unwrap().to_owned()).collect();
    assert!(files[0].ends_with("conv2_c3.png") && files[1].ends_with("conv2_c7.png"), "{files:?}");
    let png = |path: &str| image::open(path).unwrap().to_rgb8();
    assert_eq!(png(&files[0]).dimensions(), (24, 24));
    let grid = png(first["grid"].as_str().unwrap());
    assert!(first["grid"].as_str().unwrap().ends_with("conv2_c3-7.png"));
    assert_eq!(grid.dimensions(), (2 * 24 + 2, 24), "two tiles side by side");

    let again = visualize_json(&["conv2", "--channel", "3,7", "--out", &out("b")]);
    let again_file = again["channels"][0]["file"].as_str().unwrap();
    assert_eq!(png(&files[0]), png(again_file), "the same seed gave another picture");
    let other = visualize_json(&["conv2", "--channel", "3,7", "--seed", "9", "--out", &out("c")]);
    assert_ne!(png(&files[0]), png(other["channels"][0]["file"].as_str().unwrap()));
}

#[test]
fn all_channels_in_batches_with_a_grid_and_diversity() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("all").display().to_string();
    let json = visualize_json(&["conv1", "--all", "--batch", "4", "--out", &out]);
    let channels: Vec<i64> =
        json["channels"].as_array().unwrap().iter().map(|c| c["channel"].as_i64().unwrap()).collect();
    assert_eq!(channels, [0, 1, 2, 3, 4, 5]);
    // Six tiles of 24 in rows of three (ceil √6), 2 px apart.
    let grid = image::open(json["grid"].as_str().unwrap()).unwrap();
    assert_eq!((grid.width(), grid.height()), (3 * 24 + 4, 2 * 24 + 2));

    let out = dir.path().join("diverse").display().to_string();
    let json = visualize_json(&["conv1", "--channel", "2", "--objective", "diversity", "--out", &out]);
    let row = &json["channels"][0];
    assert_eq!(row["activations"].as_array().unwrap().len(), 4);
    let strip = image::open(row["file"].as_str().unwrap()).unwrap();
    assert_eq!((strip.width(), strip.height()), (4 * 24 + 6, 24));
}

#[test]
fn bad_requests_are_one_line_errors() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().display().to_string();
    fails_with(&["conv2", "--channel", "16", "--out", &out], "no channel 16");
    fails_with(&["fc2", "--channel", "0", "--out", &out], "not channels × height × width");
    fails_with(&["nowhere", "--channel", "0", "--out", &out], "no node or block");
    fails_with(&["conv2", "--channel", "1,2", "--objective", "diversity", "--out", &out], "one channel");
    fails_with(&["conv2", "--out", &out], "--channel");
    fails_with(&["conv2", "--channel", "0", "--steps", "0", "--out", &out], "steps");
}

#[test]
fn top_examples_rank_a_folder_and_write_a_strip_of_crops() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().display().to_string();
    let digits = manifest_dir().join("assets/digits").display().to_string();
    let args = ["top-examples", "lenet5", "conv1", "--channel", "1,4", "--images", &digits, "--k", "3"];
    let mut all = args.to_vec();
    all.extend_from_slice(&["--random", "--out", &out, "--json"]);
    let output = run_ok(&all);
    let json: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(json["images"], 10);
    for row in json["channels"].as_array().unwrap() {
        let values: Vec<f64> =
            row["examples"].as_array().unwrap().iter().map(|e| e["value"].as_f64().unwrap()).collect();
        assert_eq!(values.len(), 3);
        assert!(values.windows(2).all(|w| w[0] >= w[1]), "ranked: {values:?}");
        let strip = image::open(row["file"].as_str().unwrap()).unwrap();
        assert_eq!((strip.width(), strip.height()), (3 * 96 + 4, 96));
        // conv1's 5-pixel field, cut by no edge or by one.
        let crop: Vec<i64> =
            row["examples"][0]["crop"].as_array().unwrap().iter().map(|v| v.as_i64().unwrap()).collect();
        assert!(crop[2] - crop[0] < 5 && crop[3] - crop[1] < 5, "{crop:?}");
    }
    let output = convscope()
        .args(["top-examples", "lenet5", "fc1", "--channel", "0", "--images", &digits, "--random", "--out", &out])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success() && stderr.contains("flat"), "{stderr}");
}

#[test]
fn the_reference_layout_and_the_whole_node_reach_the_same_activations() {
    let dir = tempfile::tempdir().unwrap();
    let out = |name: &str| dir.path().join(name).display().to_string();
    let activations = |json: &serde_json::Value| -> Vec<f64> {
        json["channels"].as_array().unwrap().iter().map(|c| c["activation"].as_f64().unwrap()).collect()
    };
    let fast = visualize_json(&["conv2", "--channel", "3,7", "--out", &out("fast")]);
    let reference =
        visualize_json(&["conv2", "--channel", "3,7", "--reference-layout", "--unsliced", "--out", &out("reference")]);
    let (ours, theirs) = (activations(&fast), activations(&reference));
    assert_eq!(ours.len(), 2);
    for (a, b) in ours.iter().zip(&theirs) {
        assert!(b.abs() > 1e-3, "activation {b} too near zero to compare");
        assert!((a - b).abs() <= 1e-3 * b.abs(), "sliced, fast layout {ours:?} against the reference's {theirs:?}");
    }
}
