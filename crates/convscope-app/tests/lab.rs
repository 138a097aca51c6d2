//! The Lab view driven through egui_kittest: the real app, its lab thread training real
//! (tiny) networks on the bundled digits, and its model worker loading what was saved.
//! Networks of 8 layers at width 2 on 8×8 digits train a step in milliseconds, so each test
//! takes seconds.

use std::time::{Duration, Instant};

mod app_harness;

use convscope_app::{App, Start};
use convscope_core::executor::RunOptions;
use convscope_core::lab::SavedLab;
use egui::accesskit::Role;
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;
use tch::Device;

const TIMEOUT: Duration = Duration::from_secs(120);
/// Enough steps that a pause lands mid-run.
const TWIN_STEPS: usize = 300;

#[track_caller]
fn step_until(harness: &mut Harness<'static, App>, what: &str, done: impl Fn(&App) -> bool) {
    app_harness::step_until(harness, TIMEOUT, what, done);
}

/// The app on LeNet-5 (the quickest to load), showing the Lab view.
fn lab_harness() -> Harness<'static, App> {
    let mut harness = Harness::builder().with_size(egui::vec2(1400.0, 1000.0)).build_eframe(|cc| {
        let start = Start { arch: Some("lenet5".into()), ignore_storage: true, ..Start::default() };
        App::new(cc, start).expect("the model worker thread starts")
    });
    step_until(&mut harness, "lenet5 to load", |app| app.loaded_arch() == Some("lenet5"));
    harness.get_by_role_and_label(Role::Button, "Lab").click_accesskit();
    harness.run_steps(2);
    harness
}

fn click(harness: &mut Harness<'static, App>, label: &str) {
    harness.get_by_label(label).click_accesskit();
    harness.run_steps(2);
}

fn set_number(harness: &mut Harness<'static, App>, label: &str, value: f64) {
    harness.get_by_role_and_label(Role::SpinButton, label).set_value_accesskit(value);
    harness.run_steps(2);
}

fn set_text(harness: &mut Harness<'static, App>, label: &str, text: &str) {
    harness.get_by_role_and_label(Role::TextInput, label).set_text_value_accesskit(text);
    harness.run_steps(2);
}

/// A custom lab of two 8-layer networks (`residual` says which are), width 2, 8×8 digits,
/// batches of 16, `steps` steps.
fn tiny_lab(harness: &mut Harness<'static, App>, residual: [bool; 2], steps: usize) {
    click(harness, "Custom");
    for (i, residual) in residual.into_iter().enumerate() {
        let kind = if residual { "residual" } else { "plain" };
        let switch = harness.query_all_by_label(kind).nth(i).expect("each network's kind");
        switch.click_accesskit();
        harness.run_steps(2);
        harness.get_by_label(&format!("network {} depth", i + 1)).click_accesskit();
        harness.run_steps(2);
        // The open list's entry, after any combo box already showing it.
        harness.query_all_by_label("8 layers").last().expect("the depths listed").click_accesskit();
        harness.run_steps(2);
    }
    // Custom starts from the preset's networks: two are kept.
    while harness.state().lab().form().nets.len() > 2 {
        harness.query_all_by_label("remove").last().expect("a network to remove").click_accesskit();
        harness.run_steps(2);
    }
    set_number(harness, "width", 2.0);
    set_number(harness, "resolution", 8.0);
    set_number(harness, "batch", 16.0);
    set_number(harness, "steps", steps as f64);
    let form = harness.state().lab().form().clone();
    let nets: Vec<_> = form.nets.iter().map(|n| (n.depth, n.residual, n.width)).collect();
    assert_eq!(nets, vec![(8, residual[0], 2), (8, residual[1], 2)], "the form took the clicks");
    assert_eq!((form.resolution, form.batch, form.steps), (8, 16, steps));
}

fn steps_of(app: &App) -> Vec<usize> {
    app.lab().state().map(|lab| lab.runs.iter().map(|r| r.steps.len()).collect()).unwrap_or_default()
}

#[test]
fn twins_train_alike_until_one_loses_its_shortcuts_mid_run() {
    let started = Instant::now();
    let mut harness = lab_harness();
    // Two identical residual networks: the same seed draws the same weights, and every run
    // sees the same batches, so their curves agree bit for bit until one is changed.
    tiny_lab(&mut harness, [true, true], TWIN_STEPS);
    click(&mut harness, "Start");
    step_until(&mut harness, "a few steps of both runs", |app| {
        let steps = steps_of(app);
        steps.len() == 2 && steps.iter().all(|&s| s >= 5)
    });
    let ids: Vec<String> = harness.state().lab().state().unwrap().runs.iter().map(|r| r.info.id.clone()).collect();
    assert_eq!(ids, ["resnet8-w2", "resnet8-w2-2"]);

    click(&mut harness, "Pause");
    step_until(&mut harness, "the lab to pause", |app| app.lab().state().is_some_and(|l| l.paused));
    let paused_at = steps_of(harness.state());
    let until = Instant::now() + Duration::from_millis(400);
    while Instant::now() < until {
        harness.step();
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(steps_of(harness.state()), paused_at, "nothing trains while paused");
    assert!(harness.query_by_label("Resume").is_some() && harness.query_by_label("Pause").is_none());

    // One step of the run furthest behind (the first on a tie), until the twins are level.
    let behind = if paused_at[1] < paused_at[0] { 1 } else { 0 };
    click(&mut harness, "Step once");
    step_until(&mut harness, "one step", |app| {
        steps_of(app).iter().sum::<usize>() == paused_at.iter().sum::<usize>() + 1
    });
    let mut expected = paused_at.clone();
    expected[behind] += 1;
    assert_eq!(steps_of(harness.state()), expected, "the run furthest behind took one step");
    if expected[0] != expected[1] {
        click(&mut harness, "Step once");
        step_until(&mut harness, "the twins level", |app| {
            let s = steps_of(app);
            s[0] == s[1]
        });
    }
    let switched_at = steps_of(harness.state())[1];

    // The second twin's shortcuts go off, from its next step on.
    harness.get_by_label("resnet8-w2-2: all shortcuts").click_accesskit();
    harness.run_steps(2);
    step_until(&mut harness, "the switch to take", |app| {
        app.lab().state().is_some_and(|l| !l.runs[1].disabled.is_empty())
    });
    click(&mut harness, "Resume");
    step_until(&mut harness, "the lab to finish", |app| app.lab().state().is_some_and(|l| l.finished));

    let lab = harness.state().lab().state().unwrap();
    let (a, b) = (&lab.runs[0], &lab.runs[1]);
    assert_eq!((a.steps.len(), b.steps.len()), (TWIN_STEPS, TWIN_STEPS));
    assert_eq!(b.disabled.len(), 3, "resnet8 has one block per stage: three shortcuts off");
    assert!(a.disabled.is_empty() && a.interventions.is_empty(), "the first twin was left alone");
    assert_eq!(b.interventions.len(), 1);
    assert_eq!(b.interventions[0].0, switched_at, "the switch is marked where it happened");
    for s in 0..switched_at {
        assert_eq!(a.steps[s].loss.to_bits(), b.steps[s].loss.to_bits(), "step {}: twins agree", s + 1);
        assert_eq!(a.steps[s].grad_norms, b.steps[s].grad_norms, "step {}", s + 1);
    }
    // The first step without shortcuts already computes another function of the same weights.
    assert_ne!(a.steps[switched_at].loss, b.steps[switched_at].loss, "the switched twin's curve changed");
    let differing = (switched_at..TWIN_STEPS).filter(|&s| a.steps[s].loss != b.steps[s].loss).count();
    assert_eq!(differing, TWIN_STEPS - switched_at, "and stays apart");
    // The held-out accuracy of the last step, for both.
    for run in [a, b] {
        let last = run.held_out.last().expect("a held-out accuracy at the end");
        assert_eq!(last.step, TWIN_STEPS);
        assert!((0.0..=1.0).contains(&last.accuracy));
    }
    assert!(lab.recent_rate().is_some() || lab.finished, "a rate while training");
    assert!(harness.query_by_label_contains("Gradient flow during training").is_some(), "the heatmaps are drawn");
    eprintln!("twins: {:.1} s", started.elapsed().as_secs_f64());
}

#[test]
fn a_bad_folder_is_refused_in_words_and_a_saved_run_opens_in_the_explorer() {
    let started = Instant::now();
    let mut harness = lab_harness();
    let temp = tempfile::tempdir().unwrap();

    // One class is no classifier: the lab says so and trains nothing.
    let one_class = temp.path().join("one_class");
    std::fs::create_dir_all(one_class.join("cats")).unwrap();
    image::RgbImage::new(8, 8).save(one_class.join("cats/a.png")).unwrap();
    click(&mut harness, "an image folder");
    set_text(&mut harness, "folder", &one_class.display().to_string());
    click(&mut harness, "Start");
    step_until(&mut harness, "the refusal", |app| app.lab().state().is_some_and(|l| l.failed.is_some()));
    let note = harness.state().lab().note().expect("a message").clone();
    assert!(note.is_error && note.text.contains("one class folder"), "{}", note.text);
    assert!(harness.query_by_label_contains("one class folder").is_some(), "the reason is on screen");

    // Digits, then: a plain and a residual network, trained, saved and opened.
    click(&mut harness, "the bundled MNIST digits (4,000 train, 1,000 held out)");
    tiny_lab(&mut harness, [false, true], 20);
    click(&mut harness, "Start again");
    step_until(&mut harness, "the lab to finish", |app| app.lab().state().is_some_and(|l| l.finished));
    // Five steps more at another learning rate.
    set_number(&mut harness, "learning rate", 0.05);
    click(&mut harness, "Set for all runs");
    set_number(&mut harness, "more steps", 5.0);
    click(&mut harness, "Extend");
    step_until(&mut harness, "five steps more", |app| {
        app.lab().state().is_some_and(|l| l.finished && l.runs.iter().all(|r| r.steps.len() == 25))
    });
    for run in &harness.state().lab().state().unwrap().runs {
        let rates: Vec<f64> = run.steps.iter().map(|s| s.lr).collect();
        assert!(rates[..20].iter().all(|&lr| lr == 0.02) && rates[20..].iter().all(|&lr| lr == 0.05), "{rates:?}");
        assert_eq!(run.interventions, vec![(20, "learning rate 0.05".to_owned())], "{}", run.info.id);
    }
    let out = temp.path().join("saved");
    set_text(&mut harness, "save to", &out.display().to_string());
    click(&mut harness, "Save");
    step_until(&mut harness, "the save", |app| app.lab().state().is_some_and(|l| l.saved.is_some()));
    for file in ["settings.json", "curves.csv", "curves.json", "plain8-w2.safetensors", "resnet8-w2.safetensors"] {
        assert!(out.join(file).is_file(), "{file} saved");
    }
    let saved = SavedLab::read(&out).unwrap();
    let lab = harness.state().lab().state().unwrap();
    for (summary, run) in saved.summary.iter().zip(&lab.runs) {
        assert_eq!(summary.steps, 25);
        // serde_json reads a float back within an ulp of what it wrote (exactly only with its
        // float_roundtrip feature).
        let (saved_loss, shown) = (summary.smoothed_loss.unwrap(), *run.smoothed_loss.last().unwrap());
        assert!(
            (saved_loss - shown).abs() <= 1e-12 * shown.abs(),
            "{}: the view's curve is the saved one",
            run.info.id
        );
    }

    click(&mut harness, "Open resnet8-w2 in the explorer");
    let spec = saved.arch_spec(1).unwrap();
    let id = spec.id;
    step_until(&mut harness, "the trained network in the explorer, on a digit", |app| {
        app.loaded_arch() == Some(id)
            && app.prediction().is_some_and(|p| p.image.name() == "digit_3.png")
            && !app.busy()
    });
    // Its prediction is the saved network's on the digit, fed as its training digits were.
    let model = saved.runs[1].load(&out, Device::Cpu).unwrap();
    let digit = convscope_core::preprocess::load_image(&convscope_core::paths::asset("digits/digit_3.png")).unwrap();
    let input = spec.preprocess.apply(&digit).unwrap();
    assert_eq!(input.size(), [1, 3, 8, 8]);
    let logits = model.forward(&input, &RunOptions::default()).unwrap();
    let expected = convscope_core::engine::top_k(&logits, spec.labels, 5).unwrap();
    let shown = &harness.state().prediction().unwrap().top5;
    assert_eq!(shown[0].class, expected[0].class);
    assert!((shown[0].probability - expected[0].probability).abs() < 1e-5, "{shown:?} vs {expected:?}");
    step_until(&mut harness, "its gradient flow", |app| app.gradient_flow().is_some_and(|f| f.arch == id));
    assert!(harness.query_by_label("all shortcuts").is_some(), "the shortcut switch of a residual network");
    assert!(!harness.state().settings().central.eq(&convscope_app::CentralView::Lab), "the explorer shows it");
    eprintln!("save and open: {:.1} s", started.elapsed().as_secs_f64());
}

/// A measurement, not a test: the Fig. 6 preset trained with the Lab view open (the window
/// redrawn every `LAB_FRAME_MS`, 100 by default: its rate while training), for `LAB_STEPS`
/// steps (40 by default), to set beside `convscope lab --preset fig6 --steps N --json`.
#[test]
#[ignore = "a measurement: cargo test -p convscope-app --test lab -- --ignored --nocapture"]
fn throughput_with_the_lab_view_open() {
    let number = |name: &str, default: u64| std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default);
    let (steps, frame_ms) = (number("LAB_STEPS", 40), number("LAB_FRAME_MS", 100));
    let mut harness = lab_harness();
    click(&mut harness, convscope_core::lab::Preset::Fig6.title());
    set_number(&mut harness, "steps", steps as f64);
    click(&mut harness, "Start");
    let deadline = Instant::now() + Duration::from_secs(3600);
    let (mut frames, mut in_frames) = (0u64, Duration::ZERO);
    while !harness.state().lab().state().is_some_and(|l| l.finished) {
        assert!(Instant::now() < deadline, "the preset did not finish");
        let frame = Instant::now();
        harness.step();
        in_frames += frame.elapsed();
        frames += 1;
        std::thread::sleep(Duration::from_millis(frame_ms));
    }
    let lab = harness.state().lab().state().unwrap();
    let wall = (lab.finished_at.unwrap() - lab.training_since.unwrap()).as_secs_f64();
    println!(
        "Lab view, Fig. 6, {steps} steps, a frame every {frame_ms} ms ({frames} frames, {:.1} ms each on the UI \
         thread, AccessKit's tree included, which a window builds only for a screen reader):",
        in_frames.as_secs_f64() * 1e3 / frames.max(1) as f64
    );
    println!(
        "  {} steps in {wall:.2} s of training: {:.2} steps/s (all runs)",
        lab.total_steps(),
        lab.total_steps() as f64 / wall
    );
    for run in &lab.runs {
        println!("  {}: {:.3} steps/s (its steps' own time)", run.info.id, run.steps_per_second());
    }
}
