//! The explorer driven through egui_kittest: the real `App`, its real model worker, input
//! injected as a user would give it (dropped files, clicks, keys). No file dialog: rfd
//! returns at once without a desktop portal, so nothing here depends on it.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

mod app_harness;

use app_harness::{SavedSettings, TestFile};
use convscope_app::{App, Start};
use convscope_core::session::Retention;
use egui_kittest::kittest::{NodeT as _, Queryable};
use egui_kittest::{Harness, SnapshotOptions};

/// How long a test waits for the worker before failing; generous for a loaded CI machine.
const TIMEOUT: Duration = Duration::from_secs(180);

fn asset(name: &str) -> PathBuf {
    convscope_core::paths::asset(name)
}

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

fn drop_file(harness: &mut Harness<'static, App>, file: TestFile) {
    harness.input_mut().dropped_files.push(Arc::new(file));
    harness.step();
}

fn loaded(harness: &mut Harness<'static, App>, arch: &'static str) {
    step_until(harness, &format!("{arch} to load"), |app| app.loaded_arch() == Some(arch));
}

fn predicted(harness: &mut Harness<'static, App>, image: &str) {
    step_until(harness, &format!("a prediction for {image}"), |app| {
        app.prediction().is_some_and(|p| p.image.name() == image) && !app.busy()
    });
}

/// LeNet-5 loaded, with one of the bundled digits dropped on it and classified.
fn lenet_with_digit(digit: &str) -> Harness<'static, App> {
    let mut harness = harness("lenet5");
    loaded(&mut harness, "lenet5");
    drop_file(&mut harness, TestFile { path: asset(&format!("digits/{digit}")), bytes: None });
    predicted(&mut harness, digit);
    harness
}

#[test]
fn dropped_digit_is_classified_and_layers_step_with_the_arrow_keys() {
    let mut harness = lenet_with_digit("digit_3.png");

    let prediction = harness.state().prediction().expect("a prediction");
    assert_eq!(prediction.top5.len(), 5);
    let total: f64 = prediction.top5.iter().map(|p| p.probability).sum();
    assert!(total > 0.0 && total <= 1.0 + 1e-6, "top-5 probabilities sum to {total}");
    let best = &prediction.top5[0].label;
    assert!(harness.query_by_label_contains(best).is_some(), "the top class {best} is on screen");
    assert!(harness.query_by_label("forward").is_some(), "timings are shown");

    // LeNet's view starts on its first convolution, whose output is six 28×28 maps.
    let first = harness.state().selected_node();
    step_until(&mut harness, "conv1's feature maps", |app| app.activation_node() == Some(first));
    assert!(harness.query_by_label("channel 5").is_some(), "conv1's six channels are drawn");
    assert!(harness.query_by_label("channel 6").is_none(), "conv1 has six channels only");

    harness.key_press(egui::Key::ArrowRight);
    harness.step();
    harness.key_press(egui::Key::ArrowRight);
    harness.step();
    assert_eq!(harness.state().selected_node(), first + 2);
    step_until(&mut harness, "the activation of the node two steps on", |app| app.activation_node() == Some(first + 2));
    harness.key_press(egui::Key::ArrowLeft);
    harness.step();
    assert_eq!(harness.state().selected_node(), first + 1);
    step_until(&mut harness, "the activation one step back", |app| app.activation_node() == Some(first + 1));

    // A click on a channel enlarges it with its statistics.
    harness.get_by_label("channel 2").click();
    harness.step();
    harness.step();
    assert!(harness.query_by_label("channel 2, enlarged").is_some(), "channel 2 is enlarged");
    for stat in ["min ", "max ", "mean ", "std "] {
        // AccessKit keeps a label's text in its value.
        let mut found = harness.query_all_by(move |n| n.value().is_some_and(|l| l.starts_with(stat)));
        assert!(found.next().is_some(), "the enlarged channel's {stat}is shown");
    }
    assert!(harness.query_by_label("Close").is_some(), "the enlarged view can be closed");
    harness.check_accessibility();
}

#[test]
fn keeping_only_the_viewed_layer_still_shows_every_layer_picked() {
    let mut harness = lenet_with_digit("digit_3.png");
    let first = harness.state().selected_node();
    step_until(&mut harness, "conv1's feature maps", |app| app.activation_node() == Some(first));

    harness.get_by_label("keep every layer's output").click();
    harness.step();
    assert_eq!(harness.state().settings().retention, Retention::ViewedLayer, "the setting is kept");
    // The image runs again, keeping nothing; each layer picked is run up to on demand.
    step_until(&mut harness, "the image to run again", |app| !app.busy());
    for step in 1..=3 {
        harness.key_press(egui::Key::ArrowRight);
        harness.step();
        step_until(&mut harness, "the next layer's output, run up to it alone", |app| {
            app.activation_node() == Some(first + step)
        });
    }
    assert!(harness.state().message().is_none(), "no error on the way");
}

#[test]
fn space_plays_through_the_layers_and_pauses() {
    let mut harness = lenet_with_digit("digit_1.png");
    let first = harness.state().selected_node();
    harness.key_press(egui::Key::Space);
    harness.step();
    step_until(&mut harness, "the walk to move two nodes on", |app| app.selected_node() >= first + 2);
    harness.key_press(egui::Key::Space);
    harness.step();
    let paused = harness.state().selected_node();
    harness.run_steps(12);
    assert_eq!(harness.state().selected_node(), paused, "Space paused the walk");
}

#[test]
fn the_default_start_shows_the_pretrained_efficientnet_calling_the_cat_a_tiger_cat() {
    let weights = convscope_core::paths::weights_dir().join("efficientnet_lite0.safetensors");
    assert!(weights.is_file(), "{} is missing: `make test` runs the bootstrap, which converts it", weights.display());
    // What `convscope gui` opens on a first start: nothing named on the command line, nothing
    // saved (the harness has no storage).
    let mut harness = Harness::builder()
        .with_size(egui::vec2(1400.0, 900.0))
        .build_eframe(|cc| App::new(cc, Start::window(None, None)).expect("the model worker thread starts"));
    loaded(&mut harness, convscope_app::DEFAULT_ARCH);
    predicted(&mut harness, "chelsea.png");
    let top = harness.state().prediction().expect("a prediction").top5[0].clone();
    assert_eq!(top.label, "tiger cat", "the top prediction: {top:?}");
    let row = format!("{:.1}%  tiger cat", top.probability * 100.0);
    assert!(harness.query_by_label(&row).is_some(), "the top row reads {row:?}");
    assert!(harness.query_by_label_contains("pretrained").is_some(), "the card says the weights are pretrained");
}

#[test]
fn picking_an_architecture_in_the_picker_loads_it() {
    let mut harness = harness("lenet5");
    loaded(&mut harness, "lenet5");
    // The list scrolls; an accessibility click reaches the entry wherever it is.
    harness.get_by_label("resnet20").click_accesskit();
    harness.step();
    assert_eq!(harness.state().settings().arch.as_deref(), Some("resnet20"));
    loaded(&mut harness, "resnet20");
    assert!(harness.query_by_label_contains("Deep Residual Learning").is_some(), "the card names the paper");
    assert!(harness.query_by_label("all shortcuts").is_some(), "resnet20 offers residual switches");
}

#[test]
fn switching_residuals_off_redraws_the_gradient_flow_with_a_ghost() {
    let mut harness = harness("resnet20");
    loaded(&mut harness, "resnet20");
    drop_file(&mut harness, TestFile { path: asset("chelsea.png"), bytes: None });
    predicted(&mut harness, "chelsea.png");
    step_until(&mut harness, "the gradient flow", |app| app.gradient_flow().is_some() && !app.busy());
    let before = harness.state().gradient_flow().expect("a gradient flow").clone();
    assert!(before.disabled.is_empty());
    assert!(harness.state().ghost_flow().is_none());
    let merges = before.node_norms.len();
    assert!(before.node_norms.iter().filter(|n| n.is_some()).count() > merges / 2, "most nodes have a gradient");

    harness.get_by_label("all shortcuts").click_accesskit();
    harness.step();
    step_until(&mut harness, "the gradient flow without shortcuts", |app| {
        app.gradient_flow().is_some_and(|f| !f.disabled.is_empty()) && !app.busy()
    });
    let state = harness.state();
    let after = state.gradient_flow().expect("a gradient flow");
    assert_eq!(after.disabled.len(), 9, "resnet20 has nine residual merges");
    let ghost = state.ghost_flow().expect("the previous curve is kept as a ghost");
    assert!(ghost.disabled.is_empty(), "the ghost is the curve with shortcuts on");
    assert_ne!(after.node_norms, before.node_norms, "the curve changed");
    assert_ne!(after.loss, before.loss, "the loss changed");
    // In the direction the lesson says: without shortcuts the gradient grows toward the input
    // (the first convolution's weight gradient over the last's: 4.1 with them, 5.4 without, in
    // the app's training step on the cat among MNIST digits; resnet56's 9 against 1,584 is
    // asserted by the CLI's test).
    let graph = convscope_core::zoo::find("resnet20").unwrap().graph();
    let ratio = |flow: &convscope_core::session::GradientFlow| {
        let weight = |name: &str| flow.param_norms[graph.node_id(name).unwrap()].expect("a weight gradient");
        weight("conv1") / weight("layer3.2.conv2")
    };
    assert!(ratio(after) > 1.2 * ratio(&before), "{} with shortcuts, {} without", ratio(&before), ratio(after));
    let shown = state.prediction().expect("a prediction");
    assert_eq!(shown.top5, after.top5, "the top-5 follows the switch");
    assert!(harness.query_by_label_contains("9 shortcut(s) off").is_some(), "the plot header says so");

    // Back on: the curve returns to the first one, and the no-shortcut curve is the ghost.
    harness.get_by_label("all shortcuts").click_accesskit();
    harness.step();
    step_until(&mut harness, "the gradient flow with shortcuts again", |app| {
        app.gradient_flow().is_some_and(|f| f.disabled.is_empty()) && !app.busy()
    });
    let again = harness.state().gradient_flow().expect("a gradient flow");
    assert_eq!(again.loss, before.loss, "the same image and switches give the same loss");
    assert_eq!(harness.state().ghost_flow().map(|g| g.disabled.len()), Some(9));
}

#[test]
fn random_weights_show_a_training_step_and_the_mode_switch_says_and_does_what_it_means() {
    use convscope_core::engine::batch::BatchKind;
    use convscope_core::executor::{GradientMode, Objective};
    let mut harness = harness("resnet20");
    loaded(&mut harness, "resnet20");
    drop_file(&mut harness, TestFile { path: asset("chelsea.png"), bytes: None });
    predicted(&mut harness, "chelsea.png");
    step_until(&mut harness, "the gradient flow", |app| app.gradient_flow().is_some() && !app.busy());
    // Random weights: a training step on the image among MNIST digits, said in words.
    let flow = harness.state().gradient_flow().expect("a gradient flow").clone();
    assert_eq!(flow.settings.options.mode, GradientMode::TrainingStep);
    assert_eq!(flow.settings.batch, BatchKind::Dataset);
    assert!(flow.batch.counts.digits > 0, "{:?}", flow.batch);
    assert!(harness.query_by_label_contains(&flow.batch.description).is_some(), "the batch is said");
    assert!(harness.query_by_label("Training step (default for these weights)").is_some());

    harness.get_by_label("Inference").click_accesskit();
    harness.step();
    step_until(&mut harness, "the inference gradient flow", |app| {
        app.gradient_flow().is_some_and(|f| f.settings.options.mode == GradientMode::Inference) && !app.busy()
    });
    let inference = harness.state().gradient_flow().expect("a gradient flow").clone();
    assert_eq!(inference.settings.batch, BatchKind::Image, "inference takes the image alone by default");
    assert_ne!(inference.node_norms, flow.node_norms, "batch norm's statistics change the curve");
    assert!(harness.state().ghost_flow().is_none(), "a curve of another mode is no ghost to compare with");

    harness.get_by_label("the target's logit").click_accesskit();
    harness.step();
    step_until(&mut harness, "the logit's gradient flow", |app| {
        app.gradient_flow().is_some_and(|f| f.settings.options.objective == Objective::Logit) && !app.busy()
    });
    let logit = harness.state().gradient_flow().expect("a gradient flow");
    assert_eq!(logit.settings.options.mode, GradientMode::Inference, "the mode stays as picked");
    assert!(logit.node_norms.iter().flatten().any(|&n| n > 0.0));
}

#[test]
fn a_corrupt_file_shows_an_error_and_keeps_the_previous_prediction() {
    let mut harness = lenet_with_digit("digit_7.png");
    let before = harness.state().prediction().expect("a prediction").top5.clone();
    let flow_before = harness.state().gradient_flow().expect("a gradient flow").clone();

    // A PNG signature followed by garbage, dropped without a readable path.
    let mut bytes = b"\x89PNG\r\n\x1a\n".to_vec();
    bytes.extend_from_slice(&[0x42; 64]);
    drop_file(&mut harness, TestFile { path: PathBuf::from("/nonexistent/broken.png"), bytes: Some(bytes) });
    step_until(&mut harness, "the error about broken.png", |app| {
        app.message().is_some_and(|m| m.is_error && m.text.contains("broken.png")) && !app.busy()
    });
    assert!(harness.query_by_label_contains("Could not use broken.png").is_some(), "the error is on screen");
    let after = harness.state().prediction().expect("the previous prediction stays");
    assert_eq!(after.image.name(), "digit_7.png");
    assert_eq!(after.top5, before);
    let flow = harness.state().gradient_flow().expect("the gradient flow stays");
    // The pass queued with the broken image was skipped: the same flow, its own timing too.
    assert_eq!(flow.loss, flow_before.loss);
    assert_eq!(flow.timings, flow_before.timings, "the gradients were not recomputed for nothing");
    let round = harness.state().stopwatch().last().expect("digit_7's round");
    assert_eq!(round.image, "digit_7.png", "a broken image has no way to the screen to time");

    // Text that is no image at all, from a real path.
    let dir = tempfile::tempdir().expect("a temporary folder");
    let text = dir.path().join("notes.png");
    std::fs::write(&text, "not a picture").expect("writing the file");
    drop_file(&mut harness, TestFile { path: text, bytes: None });
    step_until(&mut harness, "the error about notes.png", |app| {
        app.message().is_some_and(|m| m.text.contains("notes.png")) && !app.busy()
    });
    assert_eq!(harness.state().prediction().expect("the prediction stays").image.name(), "digit_7.png");
}

#[test]
fn the_diagram_expands_blocks_and_selects_nodes() {
    let mut harness = harness("resnet20");
    loaded(&mut harness, "resnet20");
    harness.get_by_label("Diagram").click_accesskit();
    harness.step();
    harness.step();
    // Basic blocks start collapsed to one box each; the stem's convolution is a box of its own.
    let block = "+ layer1.0 · basic block";
    assert!(harness.query_by_label(block).is_some(), "layer1.0 is one collapsed box");
    assert!(harness.query_by_label("conv1 · Conv2d").is_some(), "the stem's conv is drawn");
    harness.get_by_label(block).click_accesskit();
    harness.step();
    harness.step();
    assert!(harness.query_by_label(block).is_none(), "layer1.0 expanded");
    assert!(harness.query_by_label("collapse layer1.0").is_some(), "its frame can collapse it again");
    assert!(harness.query_by_label("layer1.0.conv1 · Conv2d").is_some(), "its layers are drawn");

    let conv = harness.get_by_label("layer1.0.conv1 · Conv2d");
    conv.click_accesskit();
    harness.step();
    harness.step();
    let selected = harness.state().selected_node();
    assert_eq!(selected, 4, "a click on a box selects its node (input, conv1, bn1, relu, layer1.0.conv1)");

    harness.get_by_label("collapse layer1.0").click_accesskit();
    harness.step();
    harness.step();
    assert!(harness.query_by_label(block).is_some(), "layer1.0 collapsed again");

    // A click on a skip arc switches that shortcut off, as the gradient panel's switch would.
    harness.get_by_label("shortcut of layer2.1.add").click_accesskit();
    harness.step();
    harness.step();
    let merge = harness.state().gradient_flow().map(|f| f.disabled.clone());
    assert_eq!(merge, None, "no image yet, so no gradients");
    assert_eq!(harness.state().disabled_residuals().len(), 1, "one shortcut is off");
    assert!(harness.query_by_label("shortcut of layer2.1.add").is_some(), "and its arc stays clickable");
    harness.get_by_label("shortcut of layer2.1.add").click_accesskit();
    harness.step();
    harness.step();
    assert!(harness.state().disabled_residuals().is_empty(), "a second click switches it back on");
    harness.check_accessibility();
}

#[test]
fn snapshot_of_the_resnet20_diagram() {
    let mut harness = harness("resnet20");
    loaded(&mut harness, "resnet20");
    // The diagram alone: the card and prediction panels say which weights this machine has.
    for toggle in ["Architectures", "Prediction", "Gradients", "Diagram"] {
        harness.get_by_role_and_label(egui::accesskit::Role::Button, toggle).click_accesskit();
        harness.step();
    }
    step_until(&mut harness, "an idle app", |app| !app.busy());
    harness.run_steps(4);
    // Measured against this snapshot, in kittest's counts (which leave out pixels that only
    // anti-aliasing moved): a one-digit label change (layer2.1 shown as layer2.4) fails 15
    // pixels at any per-pixel threshold up to 10, one residual arc left out 56, one box's fill
    // 12 levels redder about 3,200. Rendered through Mesa's OpenGL driver (llvmpipe) instead of
    // its Vulkan one (lavapipe), the diagram fails none. A threshold of 5 (weighted squared YIQ
    // distance) lets each pixel drift about three grey levels, as another driver's blending or
    // sampling may round; 5 failing pixels, a third of the smallest change above, leave room
    // for a few rasterised differently.
    let options = SnapshotOptions::new().threshold(5.0).max_failed_pixels(5);
    harness.snapshot_options("resnet20_diagram", &options);
}

#[test]
fn cuda_is_offered_only_where_libtorch_sees_it() {
    let mut harness = harness("lenet5");
    loaded(&mut harness, "lenet5");
    let cuda = harness.get_by_label("CUDA");
    assert_eq!(
        cuda.accesskit_node().is_disabled(),
        !tch::Cuda::is_available(),
        "the CUDA button is enabled exactly when a CUDA device is present"
    );
    assert_eq!(harness.state().settings().device, convscope_app::DeviceChoice::Cpu);
}

#[test]
fn saved_settings_from_an_older_version_keep_their_defaults() {
    // As eframe's storage holds them (RON), from a version with a field this one does not know
    // and most of its own missing.
    let text = r#"(arch: Some("resnet20"), per_channel: false, panel_from_the_future: 3)"#;
    let (settings, notice) = convscope_app::Settings::from_storage(Some(&SavedSettings(text.into())));
    assert_eq!(notice, None, "nothing to tell the user");
    assert_eq!(settings.arch.as_deref(), Some("resnet20"));
    assert!(!settings.per_channel);
    let defaults = convscope_app::Settings::default();
    assert_eq!(settings.channel_limit, defaults.channel_limit);
    assert_eq!(settings.show_gradients, defaults.show_gradients);
    assert_eq!(settings.theme, defaults.theme);

    // And the app starts on them.
    let storage: &'static SavedSettings = Box::leak(Box::new(SavedSettings(text.into())));
    let mut harness = Harness::builder().with_size(egui::vec2(1400.0, 900.0)).build_eframe(|cc| {
        cc.storage = Some(storage);
        let start = Start { fallback_arch: Some("lenet5".into()), ..Start::default() };
        App::new(cc, start).expect("the model worker thread starts")
    });
    loaded(&mut harness, "resnet20");
    assert_eq!(harness.state().settings(), &settings, "the saved settings, as read");
    assert!(harness.state().notice().is_none());
}

#[test]
fn pasting_the_path_of_an_image_opens_it_and_other_text_says_why_not() {
    let mut harness = harness("lenet5");
    loaded(&mut harness, "lenet5");
    // Ctrl+V reaches the app as the clipboard's text; a file manager copies a `file://` URI.
    let digit = asset("digits/digit_4.png");
    harness.input_mut().events.push(egui::Event::Paste(format!("file://{}\n", digit.display())));
    harness.step();
    predicted(&mut harness, "digit_4.png");
    assert_eq!(harness.state().settings().image.as_deref(), Some(digit.as_path()), "the path is remembered");

    harness.input_mut().events.push(egui::Event::Paste("just some words".into()));
    harness.step();
    step_until(&mut harness, "the message about pasted text", |app| app.message().is_some_and(|m| m.is_error));
    assert!(harness.query_by_label_contains("The clipboard holds text").is_some(), "the message is on screen");

    harness.input_mut().events.push(egui::Event::Paste("/nonexistent/cat.png".into()));
    harness.step();
    step_until(&mut harness, "the message about a missing file", |app| {
        app.message().is_some_and(|m| m.text.contains("/nonexistent/cat.png"))
    });
    assert_eq!(harness.state().prediction().expect("the prediction stays").image.name(), "digit_4.png");
}

#[test]
fn a_pasted_image_is_classified_as_its_file_is() {
    let mut harness = harness("lenet5");
    loaded(&mut harness, "lenet5");
    let path = asset("digits/digit_8.png");
    drop_file(&mut harness, TestFile { path: path.clone(), bytes: None });
    predicted(&mut harness, "digit_8.png");
    let from_file = harness.state().prediction().expect("a prediction").top5.clone();

    // What egui-winit hands over when the clipboard holds an image and no text.
    let rgba = image::open(&path).expect("the digit decodes").to_rgba8();
    let size = [rgba.width() as usize, rgba.height() as usize];
    let pasted = egui::ColorImage::from_rgba_unmultiplied(size, rgba.as_raw());
    harness.input_mut().events.push(egui::Event::PasteImage(Arc::new(pasted)));
    harness.step();
    predicted(&mut harness, convscope_app::PASTED_IMAGE);
    let from_paste = &harness.state().prediction().expect("a prediction").top5;
    assert_eq!(from_paste.len(), 5);
    for (a, b) in from_paste.iter().zip(&from_file) {
        assert_eq!(a.class, b.class, "the same classes in the same order");
        assert!((a.probability - b.probability).abs() < 1e-6, "{a:?} against {b:?}");
    }
    assert_eq!(
        harness.state().settings().image.as_deref(),
        Some(path.as_path()),
        "a pasted image has no path to remember"
    );
}

#[test]
fn the_paste_button_says_what_the_clipboard_gave() {
    let mut harness = harness("lenet5");
    loaded(&mut harness, "lenet5");
    harness.get_by_label("Paste").click_accesskit();
    harness.step();
    // Here there is no X server, hence no clipboard; under Xvfb it is empty. Either way a
    // sentence, and the app goes on.
    step_until(&mut harness, "the clipboard's answer", |app| {
        !app.busy() && (app.message().is_some() || app.prediction().is_some())
    });
    let state = harness.state();
    if let Some(message) = state.message() {
        assert!(message.text.to_lowercase().contains("clipboard"), "{message:?}");
        assert!(harness.query_by_label_contains(&message.text).is_some(), "the message is on screen");
    }
}

#[test]
fn the_feature_map_grid_exports_as_a_png_at_the_maps_resolution() {
    let mut harness = harness("lenet5");
    loaded(&mut harness, "lenet5");
    let dir = tempfile::tempdir().expect("a temporary folder");
    let path = dir.path().join("maps.png");
    assert!(harness.state().export_feature_maps(&path).is_err(), "nothing to export before an image");
    drop_file(&mut harness, TestFile { path: asset("digits/digit_5.png"), bytes: None });
    predicted(&mut harness, "digit_5.png");
    let first = harness.state().selected_node();
    step_until(&mut harness, "conv1's feature maps", |app| app.activation_node() == Some(first));
    assert!(harness.query_by_label("Export PNG…").is_some(), "the grid offers its export");

    let size = harness.state().export_feature_maps(&path).expect("the grid is saved");
    // conv1's six 28×28 maps: three columns and two rows, two pixels apart.
    assert_eq!(size, [3 * 28 + 2 * 2, 2 * 28 + 2]);
    let decoded = image::open(&path).expect("the PNG decodes").to_rgb8();
    assert_eq!([decoded.width(), decoded.height()], size);
    let first_map = image::imageops::crop_imm(&decoded, 0, 0, 28, 28).to_image();
    let second_map = image::imageops::crop_imm(&decoded, 30, 0, 28, 28).to_image();
    assert_ne!(first_map, second_map, "two channels, two pictures");
}

#[test]
fn the_diagram_exports_as_a_png_of_its_canvas() {
    let mut harness = harness("resnet20");
    loaded(&mut harness, "resnet20");
    let dir = tempfile::tempdir().expect("a temporary folder");
    let path = dir.path().join("diagram.png");
    // The feature maps are shown: there is no diagram to take.
    harness.state_mut().export_diagram(path.clone());
    harness.step();
    assert!(harness.state().message().is_some_and(|m| m.is_error && m.text.contains("Show the diagram")));

    harness.get_by_label("Diagram").click_accesskit();
    harness.step();
    harness.step();
    assert!(harness.query_by_label("Export PNG…").is_some(), "the diagram offers its export");
    harness.state_mut().export_diagram(path.clone());
    step_until(&mut harness, "the diagram saved", |app| app.message().is_some_and(|m| m.text.starts_with("Saved")));
    let decoded = image::open(&path).expect("the PNG decodes").to_rgba8();
    // The canvas fills the central panel: most of a 1400×900 window, less the side panels.
    assert!(decoded.width() > 300 && decoded.width() < 1400, "width {}", decoded.width());
    assert!(decoded.height() > 200 && decoded.height() < 900, "height {}", decoded.height());
    let colours: std::collections::HashSet<_> = decoded.pixels().map(|p| p.0).collect();
    assert!(colours.len() > 20, "boxes, text and arcs, not a blank canvas: {} colours", colours.len());
}

#[test]
fn corrupt_saved_settings_start_the_app_on_defaults_with_a_notice() {
    // Written by an older version: a view this one no longer has.
    let storage: &'static SavedSettings =
        Box::leak(Box::new(SavedSettings("(arch: Some(\"resnet20\"), central: Table, channel_limit: 9)".into())));
    let mut harness = Harness::builder().with_size(egui::vec2(1400.0, 900.0)).build_eframe(|cc| {
        cc.storage = Some(storage);
        let start = Start { fallback_arch: Some("lenet5".into()), ..Start::default() };
        App::new(cc, start).expect("the model worker thread starts")
    });
    loaded(&mut harness, "lenet5");
    let notice = harness.state().notice().expect("a notice").to_owned();
    assert!(notice.contains("saved settings could not be read"), "{notice}");
    assert!(harness.query_by_label_contains("saved settings could not be read").is_some(), "the notice is on screen");
    assert_eq!(harness.state().settings().channel_limit, convscope_app::Settings::default().channel_limit);
    harness.get_by_label("Dismiss this notice").click_accesskit();
    harness.step();
    assert!(harness.state().notice().is_none(), "the notice can be dismissed");
}
