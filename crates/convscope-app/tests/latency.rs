//! The way from an image to the screen: one reply carries the top-5 and the maps on view, the
//! gradient pass is queued with the image, the stopwatch says where the time went, and a
//! busy worker does not make the window repaint at frame rate.

use std::sync::Arc;
use std::time::Duration;

mod app_harness;

use app_harness::{SavedSettings, TestFile};
use convscope_app::{App, LatencyRun, Settings, Start, theme};
use egui_kittest::Harness;

const TIMEOUT: Duration = Duration::from_secs(180);

/// LeNet-5 with the gradient panel open and the feature maps on view.
fn lenet_with_gradients() -> Harness<'static, App> {
    let settings = Settings { arch: Some("lenet5".into()), show_gradients: true, ..Settings::default() };
    let text = ron::to_string(&settings).expect("settings as RON");
    let storage: &'static SavedSettings = Box::leak(Box::new(SavedSettings(text)));
    Harness::builder().with_size(egui::vec2(1400.0, 900.0)).build_eframe(move |cc| {
        cc.storage = Some(storage);
        App::new(cc, Start { arch: Some("lenet5".into()), ..Start::default() }).expect("the model worker thread starts")
    })
}

#[test]
fn a_dropped_image_brings_its_maps_with_its_top5_and_the_curve_without_a_round_trip() {
    let mut harness = lenet_with_gradients();
    app_harness::step_until(&mut harness, TIMEOUT, "lenet5 to load", |app| app.loaded_arch() == Some("lenet5"));
    let path = convscope_core::paths::asset("digits/digit_7.png");
    harness.input_mut().dropped_files.push(Arc::new(TestFile { path, bytes: None }));
    harness.step();
    let node = harness.state().selected_node();

    // The frame that first shows the prediction already holds the maps of the node on view.
    let deadline = std::time::Instant::now() + TIMEOUT;
    while harness.state().prediction().is_none_or(|p| p.image.name() != "digit_7.png") {
        assert!(std::time::Instant::now() < deadline, "no prediction: {:?}", harness.state().message());
        std::thread::sleep(Duration::from_millis(5));
        harness.step();
    }
    assert_eq!(harness.state().activation_node(), Some(node), "the maps came with the top-5");

    app_harness::step_until(&mut harness, TIMEOUT, "the round on screen", |app| {
        app.stopwatch().last().is_some_and(|r| r.image == "digit_7.png") && !app.busy()
    });
    let app = harness.state();
    assert!(app.gradient_flow().is_some(), "the gradient pass ran without being asked again");
    let round = app.stopwatch().last().expect("a finished round").clone();
    let worker = round.worker;
    for (stage, ms) in [
        ("decode", worker.decode_ms),
        ("preprocess", worker.preprocess_ms),
        ("forward", worker.forward_ms),
        ("maps copy", worker.activation_ms),
        ("backward", worker.backward_ms),
    ] {
        assert!(ms.is_some_and(|ms| ms >= 0.0), "{stage}: {ms:?}");
    }
    let (top5, maps, curve) = (round.top5_ms.unwrap(), round.maps_ms.unwrap(), round.curve_ms.unwrap());
    assert_eq!(top5, maps, "the top-5 and the maps are drawn in the same frame");
    assert!(curve >= top5, "the curve follows the prediction");
    assert_eq!(round.done_ms, Some(curve));
    let engine: f64 =
        [worker.decode_ms, worker.preprocess_ms, worker.forward_ms, worker.backward_ms].iter().flatten().sum();
    assert!(round.done_ms.unwrap() >= engine, "the screen cannot be ahead of the work: {round:?}");
    assert!(round.frames >= 2 && round.ui_ms > 0.0, "{round:?}");
    let first_frame = app.stopwatch().first_frame.expect("the process's age is known on Linux");
    assert!(first_frame > Duration::ZERO);
    // The frame after the round's last one times its paint.
    harness.step();
    let painted =
        harness.state().stopwatch().last().and_then(|r| r.painted_ms).expect("the next frame timed the paint");
    assert!(painted >= round.done_ms.unwrap(), "painted {painted} ms, laid out {:?}", round.done_ms);
}

/// `convscope gui --latency-run` headless: the images opened in turn, each once the last is on
/// screen, the rounds after the warm-up reported, then frames drawn back to back and timed.
#[test]
fn a_latency_run_reports_its_rounds_then_times_a_frame() {
    let settings = Settings { arch: Some("lenet5".into()), show_gradients: true, ..Settings::default() };
    let text = ron::to_string(&settings).expect("settings as RON");
    let storage: &'static SavedSettings = Box::leak(Box::new(SavedSettings(text)));
    let images = ["chelsea.png", "coffee.png"].map(convscope_core::paths::asset).to_vec();
    let run = LatencyRun { images, warmup: 1, rounds: 2, out: None };
    let mut harness = Harness::builder().with_size(egui::vec2(1400.0, 900.0)).build_eframe(move |cc| {
        cc.storage = Some(storage);
        let start = Start { arch: Some("lenet5".into()), latency_run: Some(run), ..Start::default() };
        App::new(cc, start).expect("the model worker thread starts")
    });
    app_harness::step_until(&mut harness, TIMEOUT, "the latency report", |app| app.latency_report().is_some());
    let report = harness.state().latency_report().expect("the report").clone();
    assert_eq!(report.arch, "lenet5");
    assert_eq!(report.rounds.len(), 2, "the warm-up round is not reported: {report:?}");
    for round in &report.rounds {
        assert!(round.done_ms.is_some_and(|ms| ms > 0.0), "{round:?}");
        assert!(round.painted_ms >= round.done_ms, "{round:?}");
    }
    let frame = report.frame_ms.expect("frames timed after the rounds");
    assert!(frame > 0.0 && frame < 1000.0, "a headless frame: {frame} ms");
}

/// A reply from the worker wakes the window for one frame (`theme::REPLY_WAKE`): egui answers
/// a request with no delay with two, and the second would be rasterised beside the gradient
/// pass where there is no GPU.
#[test]
fn a_reply_wakes_the_window_for_one_frame_not_two() {
    let frames_after = |delay: Duration| {
        let ctx = egui::Context::default();
        for _ in 0..3 {
            ctx.run_ui(egui::RawInput::default(), |_| {}).textures_delta.clear();
        }
        ctx.request_repaint_after(delay);
        let mut frames = 0;
        loop {
            let mut output = ctx.run_ui(egui::RawInput::default(), |_| {});
            output.textures_delta.clear();
            frames += 1;
            let wants = output.viewport_output.get(&egui::ViewportId::ROOT).expect("the root viewport").repaint_delay;
            if wants > Duration::ZERO || frames == 5 {
                return frames;
            }
        }
    };
    assert_eq!(frames_after(Duration::ZERO), 2, "egui's rule the wake avoids");
    assert_eq!(frames_after(theme::REPLY_WAKE), 1);
}

/// What a frame asks of the event loop, in a bare egui context.
fn repaint_delay(draw: impl FnMut(&mut egui::Ui)) -> Duration {
    let ctx = egui::Context::default();
    // The first passes load fonts and ask for more; the steady state follows.
    let mut draw = draw;
    for _ in 0..3 {
        ctx.run_ui(egui::RawInput::default(), &mut draw).textures_delta.clear();
    }
    let mut output = ctx.run_ui(egui::RawInput::default(), &mut draw);
    output.textures_delta.clear();
    output.viewport_output.get(&egui::ViewportId::ROOT).expect("the root viewport").repaint_delay
}

#[test]
fn a_spinner_asks_for_frames_at_the_busy_rate_not_at_frame_rate() {
    // egui's spinner, for contrast: a frame at once, every frame.
    assert_eq!(repaint_delay(|ui| drop(ui.spinner())), Duration::ZERO);
    let ours = repaint_delay(|ui| drop(theme::spinner(ui)));
    assert!(ours > theme::BUSY_REPAINT / 2 && ours <= theme::BUSY_REPAINT, "{ours:?}");
}
