//! The explorer's CPU time per frame, headless: the real app in an egui_kittest harness,
//! its real worker and model, on the two heaviest views the issue names: the feature-map
//! grid showing 256 channels, and DenseNet-201's diagram with every block expanded.
//!
//! Run with `make bench-ui` (or `cargo bench --bench ui_frames`). A benchmark, not a test:
//! it prints figures and asserts nothing about time. Per frame it reports the app's update
//! with egui's layout (`Harness::step`, which also builds the AccessKit tree kittest needs,
//! so it overstates a real frame a little), the tessellation of the frame's shapes into
//! meshes (what eframe does next on the CPU), and how many textures the frame uploaded.

#[path = "../tests/app_harness/mod.rs"]
mod app_harness;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use app_harness::SavedSettings;
use convscope_app::{App, CentralView, Settings, Start};
use egui_kittest::{Harness, TestRenderer};

const FRAMES: usize = 300;
const WARMUP: usize = 30;
const TIMEOUT: Duration = Duration::from_secs(600);

/// A renderer that draws nothing and counts the textures each frame sends.
struct UploadCounter(Arc<AtomicUsize>);

impl TestRenderer for UploadCounter {
    fn handle_delta(&mut self, delta: &mut egui::TexturesDelta) {
        self.0.fetch_add(delta.set.len(), Ordering::Relaxed);
        delta.clear();
    }

    fn render(&mut self, _ctx: &egui::Context, _output: &egui::FullOutput) -> Result<image::RgbaImage, String> {
        Err("the frame benchmark does not render".into())
    }
}

fn harness(settings: Settings, uploads: &Arc<AtomicUsize>) -> Harness<'static, App> {
    let text = ron::to_string(&settings).unwrap_or_else(|e| panic!("settings as RON: {e}"));
    let storage: &'static SavedSettings = Box::leak(Box::new(SavedSettings(text)));
    let image = convscope_core::paths::asset("chelsea.png");
    Harness::builder().with_size(egui::vec2(1600.0, 1000.0)).renderer(UploadCounter(Arc::clone(uploads))).build_eframe(
        move |cc| {
            cc.storage = Some(storage);
            let start = Start { arch: settings.arch.clone(), image: Some(image), ..Start::default() };
            App::new(cc, start).unwrap_or_else(|e| panic!("the worker thread starts: {e}"))
        },
    )
}

fn step_until(harness: &mut Harness<'static, App>, what: &str, done: impl Fn(&App) -> bool) {
    app_harness::step_until(harness, TIMEOUT, what, done);
}

struct Figures {
    step: Vec<f64>,
    tessellate: Vec<f64>,
    uploads: usize,
    primitives: usize,
}

fn measure(harness: &mut Harness<'static, App>, uploads: &AtomicUsize) -> Figures {
    for _ in 0..WARMUP {
        harness.step();
    }
    uploads.store(0, Ordering::Relaxed);
    let mut figures = Figures { step: Vec::new(), tessellate: Vec::new(), uploads: 0, primitives: 0 };
    let ctx = harness.ctx.clone();
    for _ in 0..FRAMES {
        let start = Instant::now();
        harness.step();
        figures.step.push(start.elapsed().as_secs_f64() * 1e3);
        let shapes = harness.output().shapes.clone();
        let start = Instant::now();
        let primitives = ctx.tessellate(shapes, harness.output().pixels_per_point);
        figures.tessellate.push(start.elapsed().as_secs_f64() * 1e3);
        figures.primitives = primitives.len();
    }
    figures.uploads = uploads.load(Ordering::Relaxed);
    figures
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn report(case: &str, mut figures: Figures) {
    figures.step.sort_by(f64::total_cmp);
    figures.tessellate.sort_by(f64::total_cmp);
    let total: Vec<f64> = {
        let mut t: Vec<f64> = figures.step.iter().zip(&figures.tessellate).map(|(a, b)| a + b).collect();
        t.sort_by(f64::total_cmp);
        t
    };
    println!(
        "{case:<44} update+layout median {:>6.2} ms (p90 {:>6.2}) · tessellate {:>5.2} ms · total median {:>6.2} ms, max {:>6.2} · {} textures uploaded in {FRAMES} frames · {} clipped primitives",
        percentile(&figures.step, 0.5),
        percentile(&figures.step, 0.9),
        percentile(&figures.tessellate, 0.5),
        percentile(&total, 0.5),
        percentile(&total, 1.0),
        figures.uploads,
        figures.primitives,
    );
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --all-targets` (what `make test` runs) builds
    // this file too and runs it without: a debug-build timing there would only cost CI time.
    if !std::env::args().any(|a| a == "--bench") {
        println!("ui_frames: a benchmark; run it with `make bench-ui` (cargo bench --bench ui_frames)");
        return;
    }
    // Only the UI is measured: libtorch keeps to one thread so the worker stays out of the way.
    tch::set_num_threads(1);
    println!("convscope UI frame benchmark: {FRAMES} frames after {WARMUP} of warm-up, 1600×1000 points");

    // The grid: DenseNet-201's first dense block ends in a 256-channel concatenation at 56×56.
    let uploads = Arc::new(AtomicUsize::new(0));
    let settings = Settings {
        arch: Some("densenet201".into()),
        central: CentralView::FeatureMaps,
        channel_limit: 256,
        ..Settings::default()
    };
    let mut grid = harness(settings, &uploads);
    step_until(&mut grid, "the prediction", |app| app.prediction().is_some() && !app.busy());
    let graph = convscope_core::zoo::find("densenet201").unwrap_or_else(|e| panic!("{e}")).graph();
    let shapes = graph.infer_shapes(224, 224).unwrap_or_else(|e| panic!("shapes: {e}"));
    let target = (0..graph.nodes.len())
        .find(|&id| shapes.nodes[id].shape.len() == 3 && shapes.nodes[id].shape[0] == 256)
        .unwrap_or_else(|| panic!("a 256-channel node"));
    while grid.state().selected_node() < target {
        grid.key_press(egui::Key::ArrowRight);
        grid.step();
    }
    step_until(&mut grid, "the 256-channel activation", |app| app.activation_node() == Some(target) && !app.busy());
    report(&format!("feature maps: {} (256 ch)", graph.nodes[target].name), measure(&mut grid, &uploads));
    drop(grid);

    let uploads = Arc::new(AtomicUsize::new(0));
    let settings = Settings { arch: Some("densenet201".into()), central: CentralView::Diagram, ..Settings::default() };
    let mut diagram = harness(settings, &uploads);
    step_until(&mut diagram, "the prediction", |app| app.prediction().is_some() && !app.busy());
    use egui_kittest::kittest::Queryable as _;
    diagram.get_by_label("Expand all").click();
    diagram.step();
    diagram.get_by_label("Fit").click();
    diagram.step();
    report(&format!("diagram: densenet201, all {} nodes expanded", graph.nodes.len()), measure(&mut diagram, &uploads));
}
