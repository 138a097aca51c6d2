//! LeNet live through egui_kittest: the real app, strokes drawn with simulated pointer events
//! on the pad, read by the shipped LeNet-5 on the pad's own thread; clear, undo, a shift of
//! the digit, the held-out mistakes, and a training run from the view.

use std::time::{Duration, Instant};

mod app_harness;

use convscope_app::{App, Start};
use egui::accesskit::Role;
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;

const TIMEOUT: Duration = Duration::from_secs(120);

#[track_caller]
fn step_until(harness: &mut Harness<'static, App>, what: &str, done: impl Fn(&App) -> bool) {
    app_harness::step_until(harness, TIMEOUT, what, done);
}

/// The app on LeNet-5, showing the drawing pad, its weights and held-out digits read.
fn pad_harness() -> Harness<'static, App> {
    let mut harness = Harness::builder().with_size(egui::vec2(1400.0, 1400.0)).build_eframe(|cc| {
        let start = Start { arch: Some("lenet5".into()), ignore_storage: true, ..Start::default() };
        App::new(cc, start).expect("the model worker thread starts")
    });
    step_until(&mut harness, "lenet5 to load", |app| app.loaded_arch() == Some("lenet5"));
    harness.get_by_role_and_label(Role::Button, "Draw").click_accesskit();
    step_until(&mut harness, "the held-out digits", |app| app.draw().samples().is_some());
    harness
}

/// A stroke through `points` (grid coordinates, 0–28), one pointer event a frame.
fn stroke(harness: &mut Harness<'static, App>, points: &[[f32; 2]]) {
    let rect = harness.state().draw().pad_rect().expect("the pad is on screen");
    let at = |p: [f32; 2]| rect.min + egui::vec2(p[0], p[1]) * (rect.width() / 28.0);
    let (first, last) = (points[0], points[points.len() - 1]);
    harness.hover_at(at(first));
    harness.step();
    harness.drag_at(at(first));
    harness.step();
    for &p in &points[1..] {
        harness.hover_at(at(p));
        harness.step();
    }
    harness.drop_at(at(last));
    harness.step();
}

/// Steps until the pad's reading is on screen and gives its class.
fn read(harness: &mut Harness<'static, App>) -> usize {
    step_until(harness, "the pad to be read", |app| app.draw().up_to_date());
    harness.state().draw().predicted().expect("a reading of the pad as it is")
}

fn click(harness: &mut Harness<'static, App>, label: &str) {
    harness.get_by_role_and_label(Role::Button, label).click_accesskit();
    harness.run_steps(2);
}

fn one() -> Vec<[f32; 2]> {
    (0..=10).map(|i| [14.0, 4.0 + 2.0 * i as f32]).collect()
}

fn seven() -> Vec<Vec<[f32; 2]>> {
    let bar: Vec<[f32; 2]> = (0..=7).map(|i| [7.0 + 2.0 * i as f32, 5.0]).collect();
    let leg: Vec<[f32; 2]> = (0..=9).map(|i| [21.0 - 0.9 * i as f32, 5.0 + 2.0 * i as f32]).collect();
    vec![bar, leg]
}

fn zero() -> Vec<[f32; 2]> {
    (0..=32)
        .map(|i| {
            let t = i as f32 / 32.0 * std::f32::consts::TAU;
            [14.0 + 7.0 * t.sin(), 14.0 - 10.0 * t.cos()]
        })
        .collect()
}

#[test]
fn strokes_drawn_on_the_pad_read_as_digits_and_clear_and_undo_work() {
    let mut harness = pad_harness();
    assert!(harness.state().draw().pixels().iter().all(|&p| p == 0));

    stroke(&mut harness, &one());
    assert_eq!(read(&mut harness), 1, "a vertical stroke is a 1");
    // The maps of every shown layer came with it.
    let reading = harness.state().draw().reading().unwrap();
    let shapes: Vec<_> = reading.maps.iter().map(|m| (m.label, m.shape)).collect();
    assert_eq!(shapes, vec![("C1", [6, 28, 28]), ("S2", [6, 14, 14]), ("C3", [16, 10, 10]), ("S4", [16, 5, 5])]);

    // The eraser cuts the stroke where it passes, and only there.
    let drawn = harness.state().draw().pixels();
    assert_eq!(drawn[14 * 28 + 13], 255);
    click(&mut harness, "Eraser");
    stroke(&mut harness, &[[8.0, 14.0], [20.0, 14.0]]);
    let erased = harness.state().draw().pixels();
    assert_eq!(erased[14 * 28 + 13], 0);
    assert_eq!(erased[6 * 28 + 13], drawn[6 * 28 + 13]);
    click(&mut harness, "Pen");
    click(&mut harness, "Undo");
    assert_eq!(harness.state().draw().pixels(), drawn);

    click(&mut harness, "Clear");
    assert!(harness.state().draw().pixels().iter().all(|&p| p == 0), "Clear empties the pad");
    for part in seven() {
        stroke(&mut harness, &part);
    }
    assert_eq!(read(&mut harness), 7, "a bar and a slanted leg are a 7");
    let seven_pixels = harness.state().draw().pixels();

    click(&mut harness, "Clear");
    read(&mut harness);
    assert!(harness.state().draw().pixels().iter().all(|&p| p == 0));
    click(&mut harness, "Undo");
    assert_eq!(harness.state().draw().pixels(), seven_pixels, "Undo brings the cleared 7 back");
    assert_eq!(read(&mut harness), 7);
    // Undo again takes the leg away: what is left is not read as the 7.
    click(&mut harness, "Undo");
    assert_ne!(harness.state().draw().pixels(), seven_pixels);
    assert_ne!(read(&mut harness), 7, "a bar alone is no 7");

    click(&mut harness, "Clear");
    stroke(&mut harness, &zero());
    assert_eq!(read(&mut harness), 0, "a loop is a 0");
}

#[test]
fn a_shift_moves_the_input_tensor_by_as_many_pixels() {
    let mut harness = pad_harness();
    for part in seven() {
        stroke(&mut harness, &part);
    }
    read(&mut harness);
    let still = harness.state().draw().reading().unwrap().input.clone();
    let side = harness.state().draw().reading().unwrap().input_side;
    harness.get_by_role_and_label(Role::Slider, "shift x").set_value_accesskit(3.0);
    harness.run_steps(2);
    harness.get_by_role_and_label(Role::Slider, "shift y").set_value_accesskit(-2.0);
    harness.run_steps(2);
    read(&mut harness);
    let moved = &harness.state().draw().reading().unwrap().input;
    assert_ne!(moved, &still);
    for y in 0..side {
        for x in 0..side {
            let (sx, sy) = (x as i64 - 3, y as i64 + 2);
            let inside = (0..side as i64).contains(&sx) && (0..side as i64).contains(&sy);
            let expected = if inside { still[sy as usize * side + sx as usize] } else { 0.0 };
            assert_eq!(moved[y * side + x], expected, "({x}, {y})");
        }
    }
    // The plot: each class's probability at each horizontal shift, the vertical one kept; at
    // shift 3 it is the reading's.
    step_until(&mut harness, "the plot", |app| {
        app.draw().sweep().is_some_and(|s| s.generation == app.draw().generation())
    });
    let sweep = harness.state().draw().sweep().unwrap();
    assert_eq!(sweep.points.len(), 25);
    let (_, at_three) = sweep.points.iter().find(|(s, _)| *s == 3.0).unwrap();
    let reading = harness.state().draw().reading().unwrap();
    assert!(at_three.iter().zip(&reading.probabilities).all(|(a, b)| (a - b).abs() < 1e-4));
}

#[test]
fn a_mistake_is_one_click_away_and_read_as_wrongly() {
    let mut harness = pad_harness();
    click(&mut harness, "Show me its mistakes");
    let mistake = harness.state().draw().samples().unwrap().mistakes.first().cloned().expect("some mistakes");
    let label = format!("{} read as {}", mistake.label, mistake.predicted);
    harness.query_all_by_label(&label).next().expect("the mistake's button").click_accesskit();
    harness.run_steps(2);
    assert_eq!(read(&mut harness) as i64, mistake.predicted);
    // Held-out digits: the first one, with its true label.
    click(&mut harness, "Held-out digits");
    let first = harness.state().draw().samples().unwrap().held_out[0].clone();
    let label = first.label.to_string();
    harness
        .query_all_by_role_and_label(Role::Button, &label)
        .next()
        .expect("a held-out digit's button")
        .click_accesskit();
    harness.run_steps(2);
    read(&mut harness);
    // The digit as MNIST has it is on the pad (MNIST's digits pass the normalisation as they are).
    assert_eq!(harness.state().draw().pixels(), first.pixels);
}

#[test]
fn training_from_the_pad_reports_progress_and_finishes_with_new_weights() {
    let mut harness = pad_harness();
    stroke(&mut harness, &one());
    read(&mut harness);
    let before = harness.state().draw().reading().unwrap().probabilities.clone();
    harness.get_by_role_and_label(Role::SpinButton, "epochs").set_value_accesskit(1.0);
    harness.run_steps(2);
    click(&mut harness, "Train LeNet-5");
    step_until(&mut harness, "training progress", |app| app.draw().training().is_some_and(|t| !t.losses.is_empty()));
    assert!(harness.state().draw().is_training());
    assert!(harness.query_by_label("Cancel training").is_some());
    step_until(&mut harness, "the run to finish", |app| app.draw().training().is_some_and(|t| t.report.is_some()));
    let training = harness.state().draw().training().unwrap();
    let report = training.report.as_ref().unwrap();
    assert_eq!(training.held_out.len(), 1, "one epoch, one held-out accuracy");
    assert_eq!(training.held_out[0][1], report.test_accuracy);
    assert!(report.test_accuracy > 0.5, "{}", report.test_accuracy);
    assert!(harness.state().draw().weights().unwrap().contains("not saved"));
    // The pad reads with the new weights at once.
    let after = read(&mut harness);
    let now = harness.state().draw().reading().unwrap().probabilities.clone();
    assert_ne!(now, before, "the new weights read the 1 differently");
    assert!(after < 10);
    assert!(harness.query_by_label("Save weights…").is_some());

    // A long run cancelled after its first batches: the pad keeps the weights it had.
    harness.get_by_role_and_label(Role::SpinButton, "epochs").set_value_accesskit(30.0);
    harness.run_steps(2);
    click(&mut harness, "Train LeNet-5");
    step_until(&mut harness, "the long run's progress", |app| {
        app.draw().training().is_some_and(|t| !t.losses.is_empty())
    });
    click(&mut harness, "Cancel training");
    step_until(&mut harness, "the run to stop", |app| !app.draw().is_training());
    let training = harness.state().draw().training().unwrap();
    assert!(training.cancelled && training.report.is_none());
    assert!(training.held_out.is_empty(), "stopped within its first epoch");
    stroke(&mut harness, &[[3.0, 3.0], [4.0, 3.0]]);
    click(&mut harness, "Undo");
    read(&mut harness);
    assert_eq!(harness.state().draw().reading().unwrap().probabilities, now, "the same weights read the 1 alike");
}

/// LeNet-5 trained on the pad and saved opens in the explorer with those weights, on the
/// digit on the pad, and reads it as the pad does.
#[test]
fn weights_trained_and_saved_on_the_pad_open_in_the_explorer() {
    let mut harness = pad_harness();
    stroke(&mut harness, &one());
    read(&mut harness);
    let installed = harness.state().draw().reading().unwrap().probabilities.clone();
    assert!(harness.query_by_label("Open in the explorer").is_none(), "nothing saved yet");
    harness.get_by_role_and_label(Role::SpinButton, "epochs").set_value_accesskit(1.0);
    harness.run_steps(2);
    click(&mut harness, "Train LeNet-5");
    step_until(&mut harness, "the run to finish", |app| app.draw().training().is_some_and(|t| t.report.is_some()));
    read(&mut harness);
    let trained = harness.state().draw().reading().unwrap().probabilities.clone();
    assert_ne!(trained, installed, "the new weights read the 1 differently");

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("lenet5-drawn.safetensors");
    harness.state_mut().draw_mut().save_to(file.clone());
    step_until(&mut harness, "the weights saved", |app| {
        app.draw().weights() == Some(file.display().to_string().as_str())
    });
    click(&mut harness, "Open in the explorer");
    step_until(&mut harness, "the explorer's LeNet-5 on the pad's digit", |app| {
        app.prediction().is_some_and(|p| p.image.name() == "the pad's digit") && !app.busy()
    });
    let app = harness.state();
    assert_eq!(app.settings().central, convscope_app::CentralView::FeatureMaps);
    assert_eq!(app.loaded_arch(), Some("lenet5"));
    let origin = app.loaded_origin().unwrap();
    assert!(origin.contains("lenet5-drawn.safetensors"), "{origin}");
    // The explorer's top-5 is the pad's reading with these weights, not the installed ones'.
    let top = &app.prediction().unwrap().top5[0];
    let class = usize::try_from(top.class).unwrap();
    let best = (0..trained.len()).max_by(|&a, &b| trained[a].total_cmp(&trained[b])).unwrap();
    assert_eq!(class, best);
    assert!(
        (top.probability - f64::from(trained[class])).abs() < 1e-4,
        "explorer {} against the pad's {}",
        top.probability,
        trained[class]
    );
    assert!((f64::from(installed[class]) - top.probability).abs() > 1e-3, "the installed weights read it alike");
}

/// The figure for the README: from a pointer event on the pad to the frame that paints the
/// maps it changed. Run on its own: `cargo test -p convscope-app --test draw -- --ignored
/// --nocapture latency`.
#[test]
#[ignore]
fn latency_from_stroke_to_maps_on_screen() {
    let mut harness = pad_harness();
    let rect = harness.state().draw().pad_rect().unwrap();
    let at = |p: [f32; 2]| rect.min + egui::vec2(p[0], p[1]) * (rect.width() / 28.0);
    let mut frames = Vec::new();
    let mut compute_ms = Vec::new();
    let mut frame_ms = Vec::new();
    let started = Instant::now();
    for round in 0..20 {
        let path = zero();
        harness.hover_at(at(path[0]));
        harness.step();
        harness.drag_at(at(path[0]));
        harness.step();
        for &p in &path[1..] {
            harness.hover_at(at(p));
            let generation_before = harness.state().draw().generation();
            let frame = Instant::now();
            harness.step();
            frame_ms.push(frame.elapsed().as_secs_f64() * 1e3);
            let mut steps = 1;
            if harness.state().draw().generation() > generation_before {
                while !harness.state().draw().up_to_date() {
                    let frame = Instant::now();
                    harness.step();
                    frame_ms.push(frame.elapsed().as_secs_f64() * 1e3);
                    steps += 1;
                }
                compute_ms.push(harness.state().draw().reading().unwrap().compute_ms);
            }
            frames.push(steps);
        }
        harness.drop_at(at(path[path.len() - 1]));
        harness.step();
        if round % 2 == 1 {
            click(&mut harness, "Clear");
        }
    }
    let mut latencies = harness.state().draw().latencies_ms().to_vec();
    latencies.sort_by(f64::total_cmp);
    let pick = |q: f64| latencies[((latencies.len() - 1) as f64 * q).round() as usize];
    frames.sort_unstable();
    compute_ms.sort_by(f64::total_cmp);
    frame_ms.sort_by(f64::total_cmp);
    println!(
        "the pad's thread: median {:.2} ms a reading (forward, softmax, the maps copied out); a UI frame: median {:.2} ms, p90 {:.2} ms",
        compute_ms[compute_ms.len() / 2],
        frame_ms[frame_ms.len() / 2],
        frame_ms[frame_ms.len() * 9 / 10]
    );
    println!(
        "{} changes in {:.1} s: latency median {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms; frames to show: median {}, max {}",
        latencies.len(),
        started.elapsed().as_secs_f64(),
        pick(0.5),
        pick(0.9),
        pick(0.99),
        pick(1.0),
        frames[frames.len() / 2],
        frames[frames.len() - 1]
    );
    assert!(latencies.len() >= 20 * 30);
}
