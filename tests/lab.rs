//! `convscope lab` end to end: the table, --json, the files of --out, image folders, and its
//! errors. Small networks (8 layers of width 4) and a few steps keep each run to seconds.

mod common;

use common::*;

fn stdout_of(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A small lab's arguments, then `extra`.
fn small(extra: &[&str]) -> Vec<String> {
    let base =
        ["lab", "--nets", "plain8,resnet8", "--width", "4", "--steps", "3", "--batch", "32", "--eval-every", "2"];
    base.iter().chain(extra).map(|s| (*s).to_owned()).collect()
}

fn run_small(extra: &[&str]) -> std::process::Output {
    let args = small(extra);
    run_ok(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

fn fails_with(args: &[&str], expected: &str) {
    let output = convscope().args(args).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "convscope {} should fail", args.join(" "));
    assert!(stderr.contains(expected), "convscope {}: expected {expected:?} in:\n{stderr}", args.join(" "));
    assert_eq!(stderr.trim().lines().count(), 1, "errors are one line:\n{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn lab_prints_a_row_per_run_after_training() {
    let output = run_small(&[]);
    let text = stdout_of(&output);
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("run") && lines[0].contains("held-out") && lines[0].contains("steps/s"), "{text}");
    for (line, id) in lines[1..3].iter().zip(["plain8-w4", "resnet8-w4"]) {
        let cells: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(cells[0], id, "{text}");
        assert_eq!(cells[1], "3", "three steps: {text}");
        let loss: f64 = cells[2].parse().unwrap_or_else(|_| panic!("a loss in {line}"));
        assert!(loss > 0.1 && loss < 10.0, "{line}");
        assert!(cells[3].ends_with('%') && cells[4].ends_with('%'), "{line}");
    }
    assert!(lines[3].contains("mean of the last 20 steps"), "{text}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("MNIST digits") && stderr.contains("16×16"), "{stderr}");
    // Without a terminal the bars are hidden: a line per held-out evaluation instead.
    assert!(stderr.contains("plain8-w4 step 2") && stderr.contains("resnet8-w4 step 3"), "{stderr}");
}

#[test]
fn lab_json_has_the_settings_and_every_run() {
    let json: serde_json::Value = serde_json::from_str(&stdout_of(&run_small(&["--json", "--seed", "7"]))).unwrap();
    assert_eq!(json["settings"]["seed"], 7);
    assert_eq!(json["settings"]["sgd"]["lr"], 0.02, "the presets' rate");
    let runs = json["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[1]["id"], "resnet8-w4");
    assert_eq!(runs[1]["steps"], 3);
    assert_eq!(runs[1]["status"], "finished");
    assert!(runs[0]["smoothed_loss"].as_f64().unwrap() > 0.0);
    let held: Vec<i64> =
        json["held_out"][0]["held_out"].as_array().unwrap().iter().map(|h| h["step"].as_i64().unwrap()).collect();
    assert_eq!(held, vec![2, 3]);
}

#[test]
fn lab_out_saves_curves_settings_and_weights_under_the_zoos_names() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let output = run_small(&["--out", out.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&output.stderr).contains("wrote settings.json"));

    let settings: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("settings.json")).unwrap()).unwrap();
    assert_eq!(settings["runs"][0]["weights"], "plain8-w4.safetensors");
    assert_eq!(settings["runs"][0]["config"]["width"], 4);
    assert_eq!(settings["train_images"], 4000);

    let csv = std::fs::read_to_string(out.join("curves.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1 + 2 * 3, "{csv}");
    let curves: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("curves.json")).unwrap()).unwrap();
    assert_eq!(curves[0]["steps"][0]["grad_norms"].as_array().unwrap().len(), 8);

    let weights = read(&out.join("resnet8-w4.safetensors"));
    for key in ["conv1.weight", "bn1.running_var", "layer2.0.conv1.weight", "layer3.0.bn2.bias", "fc.weight"] {
        assert!(weights.contains_key(key), "{key} missing from {:?}", weights.keys());
    }
    assert_eq!(weights["layer3.0.conv2.weight"].size(), vec![16, 16, 3, 3], "width 4: stages of 4, 8, 16");
    assert_eq!(weights["fc.weight"].size(), vec![10, 16]);
}

#[test]
fn lab_trains_on_an_image_folder_and_counts_unreadable_files() {
    let dir = tempfile::tempdir().unwrap();
    for (class, colour) in [("circles", 40u8), ("squares", 200u8)] {
        std::fs::create_dir_all(dir.path().join(class)).unwrap();
        for i in 0..12u8 {
            let img = image::RgbImage::from_fn(24, 20, |x, y| image::Rgb([colour, (x as u8) * 9, (y as u8) * 11 + i]));
            img.save(dir.path().join(class).join(format!("{i}.png"))).unwrap();
        }
    }
    std::fs::write(dir.path().join("squares/truncated.png"), b"\x89PNG\r\n\x1a\n not really").unwrap();
    let path = dir.path().to_str().unwrap();
    let output = run_ok(&["lab", "--nets", "plain8", "--width", "4", "--steps", "2", "--batch", "8", "--data", path]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("1 unreadable file skipped") && stderr.contains("truncated.png"), "{stderr}");
    assert!(stderr.contains("24 images in 2 classes"), "{stderr}");
    assert!(stdout_of(&output).contains("plain8-w4-c2"), "a two-way classifier");
}

#[test]
fn lab_errors_are_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let nowhere = dir.path().join("nowhere");
    fails_with(&["lab", "--data", nowhere.to_str().unwrap()], "no such folder or file");
    fails_with(&["lab", "--data", dir.path().to_str().unwrap()], "no class folders");
    std::fs::create_dir_all(dir.path().join("only/cats")).unwrap();
    image::RgbImage::new(8, 8).save(dir.path().join("only/cats/a.png")).unwrap();
    fails_with(&["lab", "--data", dir.path().join("only").to_str().unwrap()], "at least two classes");
    fails_with(&["lab", "--preset", "fig9"], "unknown preset");
    fails_with(&["lab", "--nets", "plain21"], "6n+2");
    fails_with(&["lab", "--nets", "plain8,plain8,plain8,plain8,plain8"], "1 to 4 networks");
    fails_with(&["lab", "--nets", "plain8", "--lr=-1"], "lr must be positive");
    fails_with(&["lab", "--nets", "plain8", "--resolution", "4"], "resolution 4");
}

#[test]
fn lab_without_batch_norm_says_so_and_stops_a_run_that_diverges() {
    // A 110-layer residual net without batch norm: each block adds its branch's variance to
    // the signal's, which grows past float32 within a step or two.
    let output = run_ok(&["lab", "--nets", "resnet110", "--no-bn", "--steps", "5"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("without batch norm"), "{stderr}");
    assert!(stderr.contains("resnet110-w8-nobn diverged at step"), "{stderr}");
    let text = stdout_of(&output);
    let row = text.lines().find(|l| l.starts_with("resnet110-w8-nobn")).unwrap_or_else(|| panic!("{text}"));
    assert!(row.contains("diverged at step"), "{row}");
    let steps: usize = row.split_whitespace().nth(1).unwrap().parse().unwrap();
    assert!(steps < 5, "it stopped where its loss stopped being a number: {row}");
}
