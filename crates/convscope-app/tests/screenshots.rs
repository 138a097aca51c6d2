//! `make screenshots`: the README's pictures, rendered from the real app as a user would
//! see it, headless (egui_kittest's wgpu renderer; Mesa's software Vulkan where there is no
//! GPU). Ignored by `cargo test`; run with
//! `cargo test --test screenshots -- --ignored --test-threads=1`.
//!
//! Only EfficientNet-Lite0 has real weights here; the ResNets, Inception v3 and DenseNet
//! run with their reference's random initialisation, which the diagrams do not depend on and
//! the gradient pictures say.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

mod app_harness;

use convscope_app::{App, Start};
use egui_kittest::Harness;
use egui_kittest::kittest::{AccessKitNode, NodeT as _, Queryable};

const TIMEOUT: Duration = Duration::from_secs(600);
const SIZE: egui::Vec2 = egui::vec2(1400.0, 900.0);
/// The README shows them scaled down; above this they slow its page for nothing.
const MAX_BYTES: u64 = 400 * 1024;

/// A file dropped on the window.
#[derive(Debug)]
struct Dropped(PathBuf);

impl egui::DroppedFile for Dropped {
    fn path(&self) -> &Path {
        &self.0
    }

    fn bytes(&self) -> Result<Vec<u8>, String> {
        std::fs::read(&self.0).map_err(|e| e.to_string())
    }
}

fn root() -> &'static Path {
    convscope_core::paths::checkout()
}

fn harness(arch: &str) -> Harness<'static, App> {
    let mut harness = Harness::builder().with_size(SIZE).build_eframe(|cc| {
        let start = Start { arch: Some(arch.to_owned()), ignore_storage: true, ..Start::default() };
        App::new(cc, start).expect("the model worker thread starts")
    });
    // The same look whatever the machine's theme.
    harness.ctx.set_theme(egui::Theme::Dark);
    step_until(&mut harness, &format!("{arch} to load"), |app| app.loaded_arch().is_some());
    harness
}

/// Waits as the tests do, then lets a picture settle over a few more frames.
#[track_caller]
fn step_until(harness: &mut Harness<'static, App>, what: &str, done: impl Fn(&App) -> bool) {
    app_harness::step_until(harness, TIMEOUT, what, done);
    harness.run_steps(3);
}

fn idle(harness: &mut Harness<'static, App>) {
    step_until(harness, "an idle app", |app| !app.busy());
}

fn click(harness: &mut Harness<'static, App>, label: &str) {
    harness.get_by_label(label).click_accesskit();
    harness.run_steps(2);
}

/// Shows or hides the panels and picks the central view, through the top bar's toggles.
fn layout(harness: &mut Harness<'static, App>, picker: bool, prediction: bool, gradients: bool, diagram: bool) {
    let settings = harness.state().settings().clone();
    let toggles = [
        ("Architectures", settings.show_picker != picker),
        ("Prediction", settings.show_prediction != prediction),
        ("Gradients", settings.show_gradients != gradients),
    ];
    for (label, flip) in toggles {
        if flip {
            harness.get_by_role_and_label(egui::accesskit::Role::Button, label).click_accesskit();
            harness.step();
        }
    }
    let central = if diagram { "Diagram" } else { "Feature maps" };
    harness.get_by_role_and_label(egui::accesskit::Role::Button, central).click_accesskit();
    harness.run_steps(2);
}

fn drop_image(harness: &mut Harness<'static, App>, path: PathBuf) {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    harness.input_mut().dropped_files.push(Arc::new(Dropped(path)));
    harness.step();
    step_until(harness, &format!("a prediction for {name}"), |app| {
        app.prediction().is_some_and(|p| p.image.name() == name) && !app.busy()
    });
}

fn select_node(harness: &mut Harness<'static, App>, arch: &str, name: &str) {
    let spec = convscope_core::zoo::find(arch).expect("a known architecture");
    let graph = spec.graph();
    let index = graph.nodes.iter().position(|n| n.name == name).unwrap_or_else(|| panic!("{arch} has no {name}"));
    harness.get_by_role_and_label(egui::accesskit::Role::Slider, "node").set_value_accesskit(index as f64);
    harness.step();
    step_until(harness, &format!("{name}'s output"), |app| app.activation_node() == Some(index));
}

/// A label's text, which AccessKit keeps in its label or its value.
fn text_of(node: &AccessKitNode<'_>) -> String {
    node.label().or_else(|| node.value()).unwrap_or_default()
}

/// The diagram's zoom as its toolbar shows it (`zoom 38%`), as a factor.
fn diagram_zoom(harness: &Harness<'static, App>) -> f32 {
    let label = harness
        .query_all_by(|n| text_of(n).starts_with("zoom "))
        .next()
        .map(|n| text_of(&n.accesskit_node()))
        .expect("the diagram shows its zoom");
    let percent: f32 = label.trim_start_matches("zoom ").trim_end_matches('%').parse().expect("a percentage");
    percent / 100.0
}

/// Fits the diagram to its canvas (the F key), then zooms as a user's pinch would, over the
/// top middle of the canvas (where the input sits after a fit) until boxes are drawn at
/// `scale`.
fn frame_diagram(harness: &mut Harness<'static, App>, scale: f32) {
    harness.key_press(egui::Key::F);
    harness.run_steps(3);
    // The canvas spans from the toolbar's first button to the window's right edge.
    let fit = harness.get_by_label("Fit").rect();
    let legend = harness.query_all_by(|n| text_of(n) == "other").next().expect("the legend's last entry").rect();
    let at = egui::pos2((fit.left() + SIZE.x) / 2.0, legend.bottom() + 16.0);
    let factor = scale / diagram_zoom(harness);
    harness.hover_at(at);
    harness.step();
    harness.event(egui::Event::Zoom(factor));
    harness.run_steps(2);
    harness.remove_cursor();
    harness.run_steps(3);
    let zoom = diagram_zoom(harness);
    assert!((zoom - scale).abs() < 0.02, "zoomed to {zoom}, not {scale}");
}

/// Writes the frame as a PNG, in full colour where that stays small; otherwise (photos and
/// heatmaps) with 256 colours, which NeuQuant picks so that text, plots and maps look the
/// same to the eye at about a third of the bytes.
fn save(harness: &mut Harness<'static, App>, name: &str) {
    harness.run_steps(4);
    let image = harness.render().expect("the frame renders");
    let dir = root().join("screenshots");
    std::fs::create_dir_all(&dir).expect("screenshots/ can be made");
    let path = dir.join(format!("{name}.png"));
    let rgb: Vec<u8> = image.pixels().flat_map(|p| [p[0], p[1], p[2]]).collect();
    write_png(&path, image.dimensions(), png::ColorType::Rgb, &rgb, None);
    if file_size(&path) >= MAX_BYTES {
        let palette = color_quant::NeuQuant::new(1, 256, image.as_raw());
        let indices: Vec<u8> = image.pixels().map(|p| palette.index_of(&p.0) as u8).collect();
        write_png(&path, image.dimensions(), png::ColorType::Indexed, &indices, Some(palette.color_map_rgb()));
    }
    let bytes = file_size(&path);
    println!("{}: {} KB", path.display(), bytes / 1024);
    assert!(bytes < MAX_BYTES, "{name}.png is {} KB, over {} KB", bytes / 1024, MAX_BYTES / 1024);
}

fn write_png(path: &Path, (w, h): (u32, u32), color: png::ColorType, data: &[u8], palette: Option<Vec<u8>>) {
    let file = std::fs::File::create(path).expect("the PNG can be created");
    let mut encoder = png::Encoder::new(std::io::BufWriter::new(file), w, h);
    encoder.set_color(color);
    encoder.set_depth(png::BitDepth::Eight);
    if let Some(palette) = palette {
        encoder.set_palette(palette);
    }
    encoder.set_compression(png::Compression::High);
    let mut writer = encoder.write_header().expect("the PNG header is written");
    writer.write_image_data(data).expect("the PNG is written");
    writer.finish().expect("the PNG is complete");
}

fn file_size(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(u64::MAX)
}

/// Drags with the primary button, in steps, as a hand would.
fn drag(harness: &mut Harness<'static, App>, from: egui::Pos2, to: egui::Pos2) {
    harness.hover_at(from);
    harness.step();
    harness.drag_at(from);
    harness.step();
    for i in 1..=6 {
        harness.hover_at(from.lerp(to, i as f32 / 6.0));
        harness.step();
    }
    harness.drop_at(to);
    harness.run_steps(2);
}

#[test]
#[ignore = "writes the README's screenshots: make screenshots"]
fn resnet50_diagram_with_its_skip_arcs() {
    let mut harness = harness("resnet50");
    layout(&mut harness, true, false, false, true);
    // The first bottleneck open: its shortcut (a projection here) bypasses the three convs.
    click(&mut harness, "+ layer1.0 · bottleneck");
    idle(&mut harness);
    frame_diagram(&mut harness, 0.9);
    save(&mut harness, "resnet50_diagram");
}

#[test]
#[ignore = "writes the README's screenshots: make screenshots"]
fn inception_v3_diagram_with_a_module_open() {
    let mut harness = harness("inception_v3");
    layout(&mut harness, true, false, false, true);
    click(&mut harness, "collapse stem");
    click(&mut harness, "+ Mixed_5b · Inception module");
    idle(&mut harness);
    frame_diagram(&mut harness, 1.0);
    save(&mut harness, "inception_v3_diagram");
}

#[test]
#[ignore = "writes the README's screenshots: make screenshots"]
fn densenet121_diagram_with_a_dense_block_open() {
    let mut harness = harness("densenet121");
    layout(&mut harness, true, false, false, true);
    click(&mut harness, "+ denseblock1 · dense block");
    idle(&mut harness);
    frame_diagram(&mut harness, 0.9);
    save(&mut harness, "densenet121_diagram");
}

#[test]
#[ignore = "writes the README's screenshots: make screenshots"]
fn explorer_with_every_panel() {
    // The README's first picture: the picker and card, the stem convolution's maps, the top-5
    // for the cat and the gradient flow along depth.
    let mut harness = harness("efficientnet_lite0");
    layout(&mut harness, true, true, true, false);
    drop_image(&mut harness, root().join("assets/chelsea.png"));
    step_until(&mut harness, "the gradient flow", |app| app.gradient_flow().is_some() && !app.busy());
    save(&mut harness, "explorer");
}

#[test]
#[ignore = "writes the README's screenshots: make screenshots"]
fn feature_maps_of_an_early_and_a_late_layer() {
    let arch = "efficientnet_lite0";
    let mut harness = harness(arch);
    layout(&mut harness, true, true, false, false);
    drop_image(&mut harness, root().join("assets/chelsea.png"));
    select_node(&mut harness, arch, "_blocks.1._swish");
    // Seven full rows of nine.
    harness.get_by_role_and_label(egui::accesskit::Role::SpinButton, "show").set_value_accesskit(63.0);
    harness.step();
    idle(&mut harness);
    save(&mut harness, "feature_maps_early");

    select_node(&mut harness, arch, "_blocks.10._swish");
    // The most active channels first: what the late layer sees in the cat.
    click(&mut harness, "sort by mean");
    idle(&mut harness);
    save(&mut harness, "feature_maps_late");
}

#[test]
#[ignore = "writes the README's screenshots: make screenshots"]
fn gradient_flow_with_and_without_residuals() {
    let mut harness = harness("efficientnet_lite0");
    layout(&mut harness, true, true, true, false);
    drop_image(&mut harness, root().join("assets/chelsea.png"));
    step_until(&mut harness, "the gradient flow", |app| app.gradient_flow().is_some() && !app.busy());
    // The plot's panel pulled up by its top edge, to give the curves room.
    let heading = harness.query_all_by(|n| text_of(n) == "Gradient flow").next().expect("the panel's heading").rect();
    let edge = egui::pos2(SIZE.x / 2.0, heading.top() - 3.0);
    drag(&mut harness, edge, edge - egui::vec2(0.0, 260.0));
    save(&mut harness, "gradients_with_residuals");

    click(&mut harness, "all shortcuts");
    step_until(&mut harness, "the gradient flow without shortcuts", |app| {
        app.gradient_flow().is_some_and(|f| !f.disabled.is_empty()) && !app.busy()
    });
    save(&mut harness, "gradients_without_residuals");
}

#[test]
#[ignore = "writes the README's screenshots: make screenshots"]
fn resnet56_at_initialisation_in_a_training_step_with_and_without_shortcuts() {
    // Random weights take a training step on the cat among MNIST digits by default: batch norm
    // normalises with the batch's statistics, as at the start of He et al.'s training.
    let mut harness = harness("resnet56");
    layout(&mut harness, false, true, true, false);
    drop_image(&mut harness, root().join("assets/chelsea.png"));
    step_until(&mut harness, "the gradient flow", |app| app.gradient_flow().is_some() && !app.busy());
    let heading = harness.query_all_by(|n| text_of(n) == "Gradient flow").next().expect("the panel's heading").rect();
    let edge = egui::pos2(SIZE.x / 2.0, heading.top() - 3.0);
    drag(&mut harness, edge, edge - egui::vec2(0.0, 300.0));
    save(&mut harness, "resnet56_training_step_with_shortcuts");

    click(&mut harness, "all shortcuts");
    step_until(&mut harness, "the gradient flow without shortcuts", |app| {
        app.gradient_flow().is_some_and(|f| !f.disabled.is_empty()) && !app.busy()
    });
    save(&mut harness, "resnet56_training_step_without_shortcuts");
}

#[test]
#[ignore = "writes the README's screenshots: make screenshots"]
fn history_chart_of_accuracy_against_cost() {
    let mut harness = harness("resnet50");
    layout(&mut harness, false, false, false, false);
    click(&mut harness, "History");
    idle(&mut harness);
    save(&mut harness, "history");
    // With this machine's latencies, where `convscope bench --zoo` (or the view's own button)
    // measured them.
    click(&mut harness, "latency here (log)");
    let measured = convscope_core::zoo::all().iter().filter(|s| harness.state().history_bubble(s.id).is_some()).count();
    if measured * 4 >= convscope_core::zoo::all().len() * 3 {
        save(&mut harness, "history_latency");
    } else {
        println!("history_latency.png not written: {measured} networks measured here; run `convscope bench --zoo`");
    }
    click(&mut harness, "GMACs (log)");
}

/// The Lab view after a run of `preset` as it ships (every step of it), with the final numbers
/// printed for the README.
fn lab_after_its_run(preset: convscope_core::lab::Preset) -> Harness<'static, App> {
    let mut harness = harness("lenet5");
    layout(&mut harness, false, false, false, false);
    harness.get_by_role_and_label(egui::accesskit::Role::Button, "Lab").click_accesskit();
    harness.run_steps(2);
    click(&mut harness, preset.title());
    assert_eq!(harness.state().lab().form(), &preset.settings(), "the preset as it ships");
    click(&mut harness, "Start");
    step_until(&mut harness, &format!("{} to finish", preset.title()), |app| {
        app.lab().state().is_some_and(|lab| lab.finished)
    });
    let lab = harness.state().lab().state().expect("a lab");
    let seconds = lab.finished_at.zip(lab.training_since).map(|(end, start)| (end - start).as_secs_f64());
    for run in &lab.runs {
        println!(
            "{}: {} steps, training loss {:.4}, error {:.1}% (mean of the last {}), held-out {:.1}%, {:.2} steps/s",
            run.info.id,
            run.steps.len(),
            run.smoothed_loss.last().copied().unwrap_or(f64::NAN),
            run.smoothed_error.last().copied().unwrap_or(f64::NAN) * 100.0,
            lab.settings.smoothing,
            run.held_out.last().map_or(f64::NAN, |h| h.accuracy * 100.0),
            run.steps_per_second()
        );
    }
    println!("{}: {:.1} s of training", preset.title(), seconds.unwrap_or(f64::NAN));
    harness
}

/// The training loss at the end of the run named `id` (the mean of the last steps).
fn final_loss(harness: &Harness<'static, App>, id: &str) -> f64 {
    let lab = harness.state().lab().state().expect("a lab");
    let run = lab.runs.iter().find(|r| r.info.id == id).unwrap_or_else(|| panic!("no run {id}"));
    run.smoothed_loss.last().copied().expect("a loss")
}

#[test]
#[ignore = "writes the README's screenshots: make screenshots (trains the Fig. 6 preset: minutes)"]
fn lab_fig6_after_its_run() {
    let mut harness = lab_after_its_run(convscope_core::lab::Preset::Fig6);
    // The picture shows the paper's two lessons, or it is not worth showing.
    let loss = |id| final_loss(&harness, id);
    assert!(loss("plain56-w8") > loss("plain20-w8"), "degradation: the deeper plain network trains worse");
    assert!(loss("resnet56-w8") < loss("resnet20-w8"), "with shortcuts the deeper network trains better");
    idle(&mut harness);
    save(&mut harness, "lab_fig6");
}

#[test]
#[ignore = "writes the README's screenshots: make screenshots"]
fn attribution_of_the_cat_at_every_stage_and_under_ig_and_occlusion() {
    use convscope_core::attribution::Method;

    let mut harness = harness(convscope_app::DEFAULT_ARCH);
    layout(&mut harness, false, true, false, false);
    drop_image(&mut harness, root().join("assets/chelsea.png"));
    harness.get_by_role_and_label(egui::accesskit::Role::Button, "Attribution").click_accesskit();
    harness.run_steps(2);
    click(&mut harness, "every stage");
    step_until(&mut harness, "Grad-CAM at every stage", |app| {
        app.attribution().is_some_and(|a| a.explanation.maps.len() > 1) && !app.busy()
    });
    save(&mut harness, "attribution_stages");

    for (method, name) in
        [(Method::IntegratedGradients, "attribution_ig"), (Method::Occlusion, "attribution_occlusion")]
    {
        // A signed map is drawn with opacity in proportion to each value: at full opacity the
        // few pixels that matter show.
        let view = harness.state_mut().attribution_view_mut();
        view.settings.method = method;
        view.opacity = 1.0;
        harness.step();
        step_until(&mut harness, method.label(), |app| {
            app.attribution().is_some_and(|a| a.explanation.method == method) && !app.busy()
        });
        save(&mut harness, name);
    }
}

#[test]
#[ignore = "writes the README's screenshots: make screenshots"]
fn lenet_live_a_drawn_seven_moved_aside() {
    let mut harness = harness("lenet5");
    // The explorer's own panels say nothing about the pad.
    for panel in ["Prediction", "Gradients"] {
        harness.get_by_role_and_label(egui::accesskit::Role::Button, panel).click_accesskit();
        harness.run_steps(1);
    }
    harness.get_by_role_and_label(egui::accesskit::Role::Button, "Draw").click_accesskit();
    step_until(&mut harness, "the held-out digits", |app| app.draw().samples().is_some());
    let rect = harness.state().draw().pad_rect().expect("the pad is on screen");
    let at = |x: f32, y: f32| rect.min + egui::vec2(x, y) * (rect.width() / 28.0);
    // A 7, drawn with the pointer.
    let strokes: [&[(f32, f32)]; 1] =
        [&[(7.0, 6.0), (12.0, 5.5), (17.0, 5.0), (21.0, 5.0), (18.0, 11.0), (15.0, 17.0), (13.0, 24.0)]];
    for stroke in strokes {
        harness.hover_at(at(stroke[0].0, stroke[0].1));
        harness.step();
        harness.drag_at(at(stroke[0].0, stroke[0].1));
        harness.step();
        for &(x, y) in &stroke[1..] {
            harness.hover_at(at(x, y));
            harness.step();
        }
        harness.drop_at(at(stroke[stroke.len() - 1].0, stroke[stroke.len() - 1].1));
        harness.step();
    }
    harness.get_by_role_and_label(egui::accesskit::Role::Slider, "shift x").set_value_accesskit(4.0);
    harness.run_steps(2);
    step_until(&mut harness, "the moved 7 and its plot", |app| {
        let draw = app.draw();
        draw.up_to_date() && draw.sweep().is_some_and(|s| s.generation + 1 >= draw.generation())
    });
    save(&mut harness, "lenet_live");
}

#[test]
#[ignore = "writes the README's screenshots: make screenshots"]
fn what_a_channel_looks_for_beside_its_feature_map() {
    let arch = "efficientnet_lite0";
    let mut harness = harness(arch);
    layout(&mut harness, false, true, false, false);
    drop_image(&mut harness, root().join("assets/chelsea.png"));
    select_node(&mut harness, arch, "_blocks.5._bn2");
    harness.get_by_label("channel 7").click();
    harness.run_steps(2);
    click(&mut harness, "Visualise");
    step_until(&mut harness, "channel 7's image", |app| app.featvis_shown().is_some() && !app.busy());
    click(&mut harness, "Bundled images");
    idle(&mut harness);
    save(&mut harness, "featvis_panel");
}
