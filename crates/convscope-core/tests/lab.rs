//! The residual lab: reproducible curves, interventions between steps, saving and reopening
//! a run, and the ImageFolder reader on good and bad folders. (The SGD step's parity with
//! PyTorch is `lab_sgd.rs`.)

use std::path::Path;

use convscope_core::lab::{Dataset, Lab, LabEvent, LabSettings, NetSpec, RunStatus, SavedLab, StepRecord};
use tch::{Device, Kind};

fn net(depth: usize, residual: bool) -> NetSpec {
    NetSpec { depth, residual, width: 4, batch_norm: true }
}

/// Small networks and batches: every test here takes seconds.
fn settings(nets: Vec<NetSpec>, steps: usize) -> LabSettings {
    LabSettings { nets, batch: 32, steps, eval_every: 2, resolution: 16, ..LabSettings::default() }
}

fn lab(settings: LabSettings) -> Lab {
    Lab::load(settings, &mut |_, _| {}).expect("the MNIST digits in the venv (scripts/bootstrap.sh installs them)")
}

fn run_to_end(lab: &mut Lab) -> Vec<LabEvent> {
    let mut events = Vec::new();
    while !lab.finished() {
        events.extend(lab.advance().unwrap());
    }
    events
}

/// What must repeat bit for bit: everything but the time a step took.
fn curve(records: &[StepRecord]) -> Vec<(u64, u64, u64, Vec<u32>)> {
    records
        .iter()
        .map(|r| {
            (r.loss.to_bits(), r.error.to_bits(), r.lr.to_bits(), r.grad_norms.iter().map(|g| g.to_bits()).collect())
        })
        .collect()
}

#[test]
fn the_same_seed_gives_the_same_curves_bit_for_bit() {
    let nets = vec![net(8, false), net(8, true)];
    let mut first = lab(settings(nets.clone(), 4));
    let mut second = lab(settings(nets.clone(), 4));
    run_to_end(&mut first);
    run_to_end(&mut second);
    for (a, b) in first.runs().iter().zip(second.runs()) {
        assert_eq!(a.steps.len(), 4);
        assert_eq!(curve(&a.steps), curve(&b.steps), "{}", a.id);
        assert_eq!(a.held_out, b.held_out, "{}", a.id);
        assert_eq!(a.layer_names().len(), 8, "{}: one gradient norm per weighted layer", a.id);
        assert!(a.steps.iter().all(|s| s.grad_norms.iter().all(|g| g.is_finite() && *g > 0.0)));
    }
    let mut other = lab(LabSettings { seed: 2, ..settings(nets, 4) });
    run_to_end(&mut other);
    assert_ne!(curve(&first.runs()[0].steps), curve(&other.runs()[0].steps), "another seed, other curves");
}

#[test]
fn runs_advance_in_turn_over_the_same_batches() {
    let mut lab = lab(settings(vec![net(8, false), net(14, true)], 3));
    let order: Vec<(usize, usize)> = run_to_end(&mut lab)
        .into_iter()
        .filter_map(|e| match e {
            LabEvent::Step { run, record } => Some((run, record.step)),
            _ => None,
        })
        .collect();
    assert_eq!(order, vec![(0, 1), (1, 1), (0, 2), (1, 2), (0, 3), (1, 3)]);
    assert!(lab.runs().iter().all(|r| r.status == RunStatus::Finished));
    // Held out every 2 steps and after the last.
    let steps: Vec<usize> = lab.runs()[0].held_out.iter().map(|h| h.step).collect();
    assert_eq!(steps, vec![2, 3]);
    assert_eq!(lab.batch_indices(0).len(), 32);
    assert_ne!(lab.batch_indices(0), lab.batch_indices(1));
    // Epoch 2 starts with another shuffle of the same training set.
    let per_epoch = lab.steps_per_epoch();
    assert_eq!(per_epoch, 4000 / 32);
    let mut a: Vec<usize> = (0..per_epoch).flat_map(|s| lab.batch_indices(s)).collect();
    let mut b: Vec<usize> = (per_epoch..2 * per_epoch).flat_map(|s| lab.batch_indices(s)).collect();
    assert_ne!(a, b);
    a.sort_unstable();
    b.sort_unstable();
    assert_eq!(a, b, "each epoch sees every training image once");
}

#[test]
fn switching_shortcuts_off_mid_run_changes_that_run_alone() {
    // Two identical residual runs: the same weights, the same batches, the same first step.
    let mut lab = lab(settings(vec![net(14, true), net(14, true)], 3));
    assert_eq!(lab.runs()[1].id, "resnet14-w4-2");
    lab.step_run(0).unwrap();
    lab.step_run(1).unwrap();
    assert_eq!(curve(&lab.runs()[0].steps), curve(&lab.runs()[1].steps));

    let off = lab.set_shortcuts(1, &["layer2".into()], false).unwrap();
    assert_eq!(off.len(), 2, "layer2 of ResNet-14 has two blocks");
    lab.step_run(0).unwrap();
    lab.step_run(1).unwrap();
    let (a, b) = (&lab.runs()[0].steps[1], &lab.runs()[1].steps[1]);
    assert_ne!(a.loss, b.loss, "the run without layer2's shortcuts took another step");
    assert_eq!(lab.runs()[1].interventions.len(), 1);
    assert_eq!(lab.runs()[1].interventions[0].step, 1);
    assert!(lab.runs()[0].interventions.is_empty());

    assert!(lab.set_shortcuts(1, &["all".into()], true).unwrap().is_empty());
    assert!(lab.set_shortcuts(1, &["layer9".into()], false).is_err());
    let mut plain = self::lab(settings(vec![net(8, false)], 1));
    let err = plain.set_shortcuts(0, &["all".into()], false).unwrap_err().to_string();
    assert!(err.contains("no residual connections"), "{err}");
}

#[test]
fn the_learning_rate_changes_between_steps() {
    let mut lab = lab(settings(vec![net(8, false), net(8, true)], 3));
    lab.step_run(0).unwrap();
    lab.set_lr(Some(0), 0.2).unwrap();
    lab.step_run(0).unwrap();
    lab.step_run(1).unwrap();
    let default = LabSettings::default().sgd.lr;
    assert_eq!(lab.runs()[0].steps[0].lr, default);
    assert_eq!(lab.runs()[0].steps[1].lr, 0.2);
    assert_eq!(lab.runs()[1].steps[0].lr, default, "only run 0 changed");
    assert!(lab.set_lr(None, -1.0).is_err());
    assert!(lab.set_lr(Some(7), 0.1).is_err());
    lab.set_lr(None, 0.05).unwrap();
    assert!(lab.runs().iter().all(|r| r.lr() == 0.05));
}

#[test]
fn a_saved_lab_has_its_curves_settings_and_weights_and_reopens() {
    let mut lab = lab(settings(vec![net(8, false), net(8, true)], 3));
    run_to_end(&mut lab);
    let dir = tempfile::tempdir().unwrap();
    lab.save(dir.path()).unwrap();

    let saved = SavedLab::read(dir.path()).unwrap();
    assert_eq!(&saved.settings, lab.settings());
    assert_eq!((saved.train_images, saved.held_out_images), (4000, 1000));
    assert!(matches!(saved.normalisation, convscope_core::lab::Normalisation::Digits { .. }));
    assert_eq!(saved.runs.len(), 2);
    for (run, saved_run) in lab.runs().iter().zip(&saved.runs) {
        let model = saved_run.load(dir.path(), Device::Cpu).unwrap();
        assert_eq!(model.graph().arch, run.id);
        for (a, b) in model.params().iter().zip(run.model().params()) {
            assert!(a.equal(b), "{}: the saved weights are the trained ones", run.id);
        }
    }
    let csv = std::fs::read_to_string(dir.path().join("curves.csv")).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert!(lines[0].starts_with("run,step,loss,smoothed_loss"));
    assert_eq!(lines.len(), 1 + 2 * 3);
    assert!(lines[3].starts_with("plain8-w4,3,"), "{}", lines[3]);
    assert!(!lines[3].ends_with(','), "the last step has a held-out accuracy: {}", lines[3]);
    let curves: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("curves.json")).unwrap()).unwrap();
    assert_eq!(curves[1]["id"], "resnet8-w4");
    assert_eq!(curves[1]["layers"].as_array().unwrap().len(), 8);
    assert_eq!(curves[1]["steps"].as_array().unwrap().len(), 3);
}

#[test]
fn settings_that_cannot_work_are_refused_before_training() {
    let refuse = |s: LabSettings, expected: &str| {
        let err = Lab::load(s, &mut |_, _| {}).err().expect("refused").to_string();
        assert!(err.contains(expected), "expected {expected:?} in {err:?}");
    };
    refuse(settings(vec![], 3), "1 to 4 networks");
    refuse(settings(vec![net(21, false)], 3), "6n+2");
    refuse(LabSettings { batch: 0, ..settings(vec![net(8, false)], 3) }, "positive");
    refuse(LabSettings { batch: 5000, ..settings(vec![net(8, false)], 3) }, "larger than the 4000 training images");
    refuse(LabSettings { resolution: 4, ..settings(vec![net(8, false)], 3) }, "resolution 4");
}

// ---- ImageFolder ---------------------------------------------------------------------------

fn png(path: &Path, width: u32, height: u32, colour: [u8; 3]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    image::RgbImage::from_fn(width, height, |x, y| {
        image::Rgb([colour[0].wrapping_add(x as u8), colour[1].wrapping_add(y as u8), colour[2]])
    })
    .save(path)
    .unwrap();
}

#[test]
fn an_image_folder_gives_sorted_classes_and_skips_unreadable_files() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    for i in 0..6 {
        png(&root.join(format!("zebra/{i}.png")), 40 + i, 30, [200, 10, 10]);
        png(&root.join(format!("apple/{i}.PNG")), 20, 20 + i, [10, 200, 10]);
    }
    png(&root.join("apple/nested/deep.png"), 64, 64, [10, 10, 200]);
    std::fs::write(root.join("zebra/broken.png"), b"not a png at all").unwrap();
    std::fs::write(root.join("zebra/notes.txt"), b"ignored: not an image extension").unwrap();
    std::fs::write(root.join("zebra/.DS_Store"), b"hidden").unwrap();
    png(&root.join(".hidden/0.png"), 8, 8, [0, 0, 0]);

    let mut calls = 0;
    let data = Dataset::from_folder(root, 16, 1, &mut |_, total| {
        calls += 1;
        assert_eq!(total, 14, "13 images and the broken one");
    })
    .unwrap();
    assert_eq!(calls, 14);
    assert_eq!(data.classes, vec!["apple", "zebra"]);
    assert_eq!(data.len(), 13);
    assert_eq!(data.skipped.len(), 1);
    assert!(data.skipped[0].0.ends_with("zebra/broken.png"));
    assert!(data.description.contains("(1 unreadable file skipped)"), "{}", data.description);
    assert_eq!(data.train.len() + data.held_out.len(), 13);
    assert_eq!(data.held_out.len(), 3, "a fifth held out");

    let (x, y) = data.batch(&data.train, Device::Cpu).unwrap();
    assert_eq!(x.size(), vec![data.train.len() as i64, 3, 16, 16]);
    assert_eq!(x.kind(), Kind::Float);
    // Normalised with the training images' own statistics: mean 0 per channel.
    let means = Vec::<f64>::try_from(x.mean_dim([0i64, 2, 3].as_slice(), false, Kind::Double)).unwrap();
    assert!(means.iter().all(|m| m.abs() < 1e-4), "{means:?}");
    let labels = Vec::<i64>::try_from(&y).unwrap();
    assert!(labels.contains(&0) && labels.contains(&1));

    let convscope_core::lab::Normalisation::PerChannel { mean, std } = data.normalisation() else {
        panic!("a folder is normalised with its own statistics")
    };
    assert!(mean.iter().chain(&std).all(|v| *v > 0.0 && *v < 1.0), "{mean:?} {std:?}");

    // The same folder trains: a lab over it has a two-way classifier.
    let lab_settings = LabSettings { batch: 4, ..settings(vec![net(8, true)], 2) };
    let mut lab = Lab::new(lab_settings, data).unwrap();
    assert_eq!(lab.runs()[0].id, "resnet8-w4-c2");
    run_to_end(&mut lab);
    assert!(lab.runs()[0].steps.iter().all(|s| s.loss.is_finite()));
}

fn folder_error(root: &Path) -> String {
    Dataset::from_folder(root, 16, 1, &mut |_, _| {}).expect_err("refused").to_string()
}

#[test]
fn bad_image_folders_are_refused_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();

    let missing = folder_error(&root.join("nowhere"));
    assert!(missing.contains("nowhere"), "{missing}");

    png(&root.join("loose/a.png"), 8, 8, [1, 2, 3]);
    let loose = folder_error(&root.join("loose"));
    assert!(loose.contains("holds an image but no class folders"), "{loose}");

    let file = folder_error(&root.join("loose/a.png"));
    assert!(file.contains("is a file"), "{file}");

    png(&root.join("one/cats/a.png"), 8, 8, [1, 2, 3]);
    let one = folder_error(&root.join("one"));
    assert!(one.contains("one class folder") && one.contains("cats"), "{one}");

    png(&root.join("empty/cats/a.png"), 8, 8, [1, 2, 3]);
    std::fs::create_dir_all(root.join("empty/dogs")).unwrap();
    std::fs::write(root.join("empty/birds.txt"), b"").unwrap();
    let empty = folder_error(&root.join("empty"));
    assert!(empty.contains("\"dogs\"") && empty.contains("no readable image"), "{empty}");

    png(&root.join("broken/cats/a.png"), 8, 8, [1, 2, 3]);
    std::fs::create_dir_all(root.join("broken/dogs")).unwrap();
    std::fs::write(root.join("broken/dogs/a.jpg"), b"garbage").unwrap();
    let broken = folder_error(&root.join("broken"));
    assert!(broken.contains("\"dogs\"") && broken.contains("(1 unreadable file skipped)"), "{broken}");

    std::fs::create_dir_all(root.join("nothing")).unwrap();
    let nothing = folder_error(&root.join("nothing"));
    assert!(nothing.contains("no class folders"), "{nothing}");
}

#[test]
fn a_lab_can_move_to_a_worker_thread() {
    fn send<T: Send + 'static>(_: &T) {}
    let lab = lab(settings(vec![net(8, true)], 2));
    send(&lab);
    let mut lab = std::thread::Builder::new()
        .name("lab".into())
        .spawn(move || {
            let mut lab = lab;
            lab.advance().unwrap();
            lab
        })
        .unwrap()
        .join()
        .unwrap();
    assert_eq!(lab.runs()[0].step_count(), 1);
    lab.advance().unwrap();
    assert!(lab.finished());
}

/// The largest difference between two tensors of the same shape.
fn max_difference(a: &tch::Tensor, b: &tch::Tensor) -> f64 {
    assert_eq!(a.size(), b.size());
    (a - b).abs().max().double_value(&[])
}

#[test]
fn a_saved_run_opens_as_an_architecture_fed_as_it_learned() {
    use convscope_core::engine::{WeightsChoice, load_model};
    use convscope_core::zoo::Labels;

    // Digits at 16×16: the explorer's preprocessing of a digit is the lab's training input.
    let mut lab = lab(settings(vec![net(8, false), net(8, true)], 2));
    run_to_end(&mut lab);
    let dir = tempfile::tempdir().unwrap();
    lab.save(dir.path()).unwrap();
    let saved = SavedLab::read(dir.path()).unwrap();
    let spec = saved.arch_spec(1).unwrap();
    assert_eq!(spec.id, "resnet8-w4 (lab)");
    assert_eq!((spec.input, spec.labels), ([3, 16, 16], Labels::Digits));
    assert!(saved.arch_spec(2).is_err(), "two runs only");
    let digits = convscope_core::train::load_digits(&convscope_core::train::default_mnist_path().unwrap()).unwrap();
    for i in [0usize, 7, 4999] {
        let grey = image::GrayImage::from_raw(28, 28, digits.pixels[i].to_vec()).unwrap();
        let input = spec.preprocess.apply(&image::DynamicImage::ImageLuma8(grey)).unwrap();
        let (trained_on, _) = lab.data().batch(&[i], Device::Cpu).unwrap();
        assert_eq!(max_difference(&input, &trained_on), 0.0, "digit {i}");
    }
    // Through the explorer's own loading path, with the saved weights.
    let weights = dir.path().join(&saved.runs[1].weights);
    let (model, warnings) = load_model(&spec, &WeightsChoice::File(weights), Device::Cpu).unwrap();
    assert!(warnings.is_empty());
    for (a, b) in model.params().iter().zip(lab.runs()[1].model().params()) {
        assert!(a.equal(b));
    }

    // A folder: resized and normalised with its own statistics, its classes by name.
    let folder = tempfile::tempdir().unwrap();
    for i in 0..3 {
        png(&folder.path().join(format!("apple/{i}.png")), 20 + i, 24, [10, 200, 10]);
        png(&folder.path().join(format!("zebra/{i}.png")), 30, 17 + i, [200, 10, 10]);
    }
    let data = Dataset::from_folder(folder.path(), 12, 1, &mut |_, _| {}).unwrap();
    let mut lab = Lab::new(LabSettings { batch: 2, resolution: 12, ..settings(vec![net(8, true)], 1) }, data).unwrap();
    run_to_end(&mut lab);
    let out = tempfile::tempdir().unwrap();
    lab.save(out.path()).unwrap();
    let spec = SavedLab::read(out.path()).unwrap().arch_spec(0).unwrap();
    assert_eq!(spec.labels, Labels::Named(&["apple", "zebra"]));
    assert_eq!(spec.labels.name(1), "zebra");
    // Images are stacked class by class, files sorted: index 4 is zebra/1.png.
    let image = convscope_core::preprocess::load_image(&folder.path().join("zebra/1.png")).unwrap();
    let input = spec.preprocess.apply(&image).unwrap();
    let (trained_on, _) = lab.data().batch(&[4], Device::Cpu).unwrap();
    assert!(max_difference(&input, &trained_on) < 1e-6, "{}", max_difference(&input, &trained_on));
}
