//! The feature-visualisation panel driven through egui_kittest: the real `App` and model
//! worker, LeNet-5 on a bundled digit. A click on a feature map enlarges it and offers
//! "Visualise"; the image comes back from the worker with a live preview on the way, is kept
//! (asked again, nothing is recomputed), can be stopped, and is saved as a PNG. A search for
//! top-activating examples in a folder shows a bar of the images read, stops, and is kept.

use std::sync::Arc;
use std::time::{Duration, Instant};

mod app_harness;

use app_harness::TestFile;
use convscope_app::{App, Start};
use convscope_core::featvis::Objective;
use convscope_core::featvis::examples::Source;
use egui_kittest::Harness;
use egui_kittest::kittest::{NodeT, Queryable};

const TIMEOUT: Duration = Duration::from_secs(180);

fn harness(arch: &str) -> Harness<'static, App> {
    Harness::builder().with_size(egui::vec2(1400.0, 900.0)).build_eframe(|cc| {
        let start = Start { arch: Some(arch.to_owned()), ignore_storage: true, ..Start::default() };
        App::new(cc, start).expect("the model worker thread starts")
    })
}

#[track_caller]
fn step_until(harness: &mut Harness<'static, App>, what: &str, done: impl Fn(&App) -> bool) {
    app_harness::step_until(harness, TIMEOUT, what, done);
}

#[test]
fn a_channel_is_visualised_live_kept_stopped_and_saved() {
    let mut harness = harness("lenet5");
    step_until(&mut harness, "lenet5 to load", |app| app.loaded_arch() == Some("lenet5"));
    let digit = convscope_core::paths::asset("digits/digit_3.png");
    harness.input_mut().dropped_files.push(Arc::new(TestFile { path: digit, bytes: None }));
    harness.step();
    step_until(&mut harness, "the digit classified", |app| {
        app.prediction().is_some() && app.activation_node().is_some() && !app.busy()
    });
    assert!(harness.query_by_label("Visualise").is_none(), "nothing to visualise before a channel is enlarged");
    harness.get_by_label("channel 2").click();
    harness.step();
    harness.step();
    {
        let view = harness.state_mut().featvis_view_mut();
        view.settings.steps = 48;
        view.settings.size = 32;
        view.settings.preview_every = 4;
    }
    harness.step();

    // Asked, it runs on the worker; a preview shows on the way.
    harness.get_by_label("Visualise").click();
    harness.step();
    let deadline = Instant::now() + TIMEOUT;
    let mut saw_preview = false;
    while harness.state().featvis_shown().is_none() {
        assert!(Instant::now() < deadline, "timed out waiting for the visualisation: {:?}", harness.state().message());
        saw_preview |= harness.query_by_label("channel 2, in progress").is_some();
        harness.step();
        std::thread::sleep(Duration::from_millis(5));
    }
    harness.step();
    assert!(saw_preview, "a live preview was shown while it ran");
    let shown = harness.state().featvis_shown().unwrap();
    let v = &shown.visualized;
    assert_eq!((v.channels.as_slice(), v.settings.steps, v.image.size), (&[2][..], 48, [32, 32]));
    assert_eq!(v.activations.len(), 1);
    assert_eq!(v.curve.len(), 48);
    assert!(harness.query_by_label("what channel 2 looks for").is_some(), "the image is drawn");
    assert!(harness.query_by_label("Visualise").is_none(), "a kept result is not asked for again");

    // Saved as the PNG it is.
    let dir = tempfile::tempdir().unwrap();
    let png = dir.path().join("c2.png");
    harness.state().save_featvis(&png).expect("the image is saved");
    let saved = image::open(&png).unwrap().to_rgb8();
    assert_eq!(saved.dimensions(), (32, 32));
    assert_eq!(saved.as_raw(), &harness.state().featvis_shown().unwrap().visualized.image.rgb);

    // Other settings: another result, stopped midway, leaves nothing kept.
    {
        let view = harness.state_mut().featvis_view_mut();
        view.settings.steps = 100_000;
        view.settings.objective = Objective::Minimise;
    }
    harness.step();
    assert!(harness.state().featvis_shown().is_none());
    harness.get_by_label("Visualise").click();
    harness.step();
    step_until(&mut harness, "the long run to start", |app| app.busy());
    for _ in 0..5 {
        harness.step();
        std::thread::sleep(Duration::from_millis(20));
    }
    harness.get_by_label("Stop").click();
    harness.step();
    step_until(&mut harness, "the stopped run to end", |app| !app.busy());
    assert!(harness.state().featvis_shown().is_none(), "a stopped run keeps nothing");
    assert!(harness.query_by_label("Visualise").is_some(), "and can be asked again");

    // Back to the first settings: the kept image, at once.
    {
        let view = harness.state_mut().featvis_view_mut();
        view.settings.steps = 48;
        view.settings.objective = Objective::Maximise;
    }
    harness.step();
    assert!(harness.state().featvis_shown().is_some());
    assert!(!harness.state().busy());

    // The layer: conv1's channels from 2 on (it has six), together, in a grid.
    harness.get_by_label("16 channels from here, together").click();
    harness.step();
    assert!(harness.state().featvis_shown().is_none(), "another request, not yet made");
    harness.get_by_label("Visualise").click();
    harness.step();
    step_until(&mut harness, "the layer's images", |app| app.featvis_shown().is_some() && !app.busy());
    let v = &harness.state().featvis_shown().unwrap().visualized;
    assert_eq!(v.channels, [2, 3, 4, 5]);
    assert_eq!(v.activations.len(), 4);
    assert_eq!(v.image.size, [4 * 34 - 2, 32], "four 32-pixel images in a row, 2 pixels apart");

    // Top-activating examples among 1,000 MNIST digits, kept: asked again, shown at once.
    assert!(harness.state_mut().featvis_examples().is_none());
    harness.get_by_label("MNIST digits").click();
    harness.step();
    step_until(&mut harness, "the top examples", |app| !app.busy());
    harness.step();
    let found = harness.state_mut().featvis_examples().expect("examples for channel 2").clone();
    assert_eq!(found.images, 1000);
    let strip = &found.strips[0];
    assert_eq!(strip.channel, 2);
    assert_eq!(strip.values.len(), 9);
    assert!(strip.values.windows(2).all(|w| w[0] >= w[1]), "ranked: {:?}", strip.values);
    assert_eq!(strip.strip.size, [9 * 66 - 2, 64]);
    assert!(harness.query_by_label("channel 2's top examples").is_some(), "the strip is drawn");
    harness.get_by_label("MNIST digits").click();
    harness.step();
    assert!(!harness.state().busy(), "kept examples are not searched for again");
}

#[test]
fn a_search_for_examples_shows_its_progress_stops_and_is_kept() {
    let mut harness = harness("lenet5");
    step_until(&mut harness, "lenet5 to load", |app| app.loaded_arch() == Some("lenet5"));
    let digit = convscope_core::paths::asset("digits/digit_3.png");
    harness.input_mut().dropped_files.push(Arc::new(TestFile { path: digit, bytes: None }));
    harness.step();
    step_until(&mut harness, "the digit classified", |app| {
        app.prediction().is_some() && app.activation_node().is_some() && !app.busy()
    });
    harness.get_by_label("channel 2").click();
    harness.step();
    harness.step();
    let node = harness.state().selected_node();

    // Folders of the bundled digits linked many times over (the Folder… button's dialog is
    // skipped: the app is asked as the button asks it).
    let digits: Vec<_> = (0..10).map(|d| convscope_core::paths::asset(&format!("digits/digit_{d}.png"))).collect();
    let folder = |count: usize| {
        let dir = tempfile::tempdir().unwrap();
        for i in 0..count {
            std::fs::hard_link(&digits[i % 10], dir.path().join(format!("{i:05}.png"))).unwrap();
        }
        dir
    };
    let big = folder(20_000);
    let big_source = Source::Folder(big.path().to_owned());

    // A big folder: the bar counts the images read, of all of them; Stop ends the search and
    // keeps nothing.
    harness.state_mut().find_examples(node, 2, big_source.clone());
    harness.step();
    let deadline = Instant::now() + TIMEOUT;
    let label = loop {
        assert!(Instant::now() < deadline, "no progress bar: {:?}", harness.state().message());
        let shown = harness.query_by_label_contains("/20000").and_then(|n| n.accesskit_node().label());
        if let Some(label) = shown.filter(|l| !l.starts_with("images 0/")) {
            break label;
        }
        harness.step();
        std::thread::sleep(Duration::from_millis(5));
    };
    let done: usize = label.trim_start_matches("images ").split('/').next().unwrap().parse().unwrap();
    assert!((1..20_000).contains(&done), "the bar says {label:?}");
    harness.get_by_label("Stop search").click();
    harness.step();
    step_until(&mut harness, "the stopped search to end", |app| !app.busy());
    harness.step();
    assert!(harness.state_mut().featvis_examples().is_none(), "a stopped search keeps nothing");
    assert!(harness.query_by_label_contains("/20000").is_none(), "the bar is gone");
    assert!(harness.query_by_label("Stop search").is_none());

    // A small folder runs to the end and is kept: asked again, shown at once.
    let small = folder(200);
    let small_source = Source::Folder(small.path().to_owned());
    harness.state_mut().find_examples(node, 2, small_source.clone());
    harness.step();
    step_until(&mut harness, "the small folder's examples", |app| !app.busy());
    harness.step();
    let found = harness.state_mut().featvis_examples().expect("examples for channel 2").clone();
    assert_eq!((found.images, found.source.clone()), (200, small_source.clone()));
    let strip = &found.strips[0];
    assert_eq!((strip.channel, strip.values.len()), (2, 9));
    assert!(strip.values.windows(2).all(|w| w[0] >= w[1]), "ranked: {:?}", strip.values);
    assert!(strip.names.iter().all(|n| n.starts_with(&small.path().display().to_string())));
    assert!(harness.query_by_label("channel 2's top examples").is_some(), "the strip is drawn");
    harness.state_mut().find_examples(node, 2, small_source);
    harness.step();
    assert!(!harness.state().busy(), "kept examples are not searched for again");
    assert!(harness.state_mut().featvis_examples().is_some());
}
