//! The Attribution view driven through egui_kittest: the real `App` and model worker,
//! ResNet-20 (32×32 inputs keep every map quick) on the bundled cat. A map is computed when
//! the view opens, every stage side by side, kept maps shown again without asking the worker,
//! the residual switches part of what is kept, a target found by name, a cancelled run, and
//! the overlay and the raw map saved.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

mod app_harness;

use app_harness::TestFile;
use convscope_app::{App, Start};
use convscope_core::attribution::{self, Method};
use convscope_core::executor::RunOptions;
use egui::accesskit::Role;
use egui_kittest::Harness;
use egui_kittest::kittest::{NodeT as _, Queryable};

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

fn cat() -> PathBuf {
    convscope_core::paths::asset("chelsea.png")
}

fn raw_maps(app: &App) -> Vec<Vec<f32>> {
    app.attribution().map(|a| a.explanation.maps.iter().map(|m| m.raw.clone()).collect()).unwrap_or_default()
}

#[test]
fn attribution_view_computes_caches_and_saves_maps() {
    let mut harness = harness("resnet20");
    step_until(&mut harness, "resnet20 to load", |app| app.loaded_arch() == Some("resnet20"));
    harness.input_mut().dropped_files.push(Arc::new(TestFile { path: cat(), bytes: None }));
    harness.step();
    step_until(&mut harness, "the cat classified", |app| app.prediction().is_some() && !app.busy());

    let graph = convscope_core::zoo::find("resnet20").unwrap().graph();
    let stages = attribution::stages(&graph, &RunOptions::default(), 32, 32).unwrap();
    assert_eq!(stages.len(), 3, "ResNet-20's stages: 32, 16 and 8 pixels");

    // Opening the view asks for Grad-CAM at the last stage.
    harness.get_by_label("Attribution").click_accesskit();
    harness.step();
    step_until(&mut harness, "a Grad-CAM", |app| app.attribution().is_some() && !app.busy());
    let first = harness.state().attribution().unwrap().clone();
    assert_eq!(first.explanation.method, Method::GradCam);
    let nodes: Vec<_> = first.explanation.maps.iter().map(|m| m.node).collect();
    assert_eq!(nodes, [stages.last().copied()], "the last stage's map");
    assert_eq!(first.explanation.maps[0].shape, [1, 1, 8, 8]);
    // The prediction of the image alone in inference (the panel's top-5 may come from the
    // gradient pass's training step, whose batch statistics differ).
    let logits = &first.explanation.logits;
    let predicted = (0..logits.len()).max_by(|&a, &b| logits[a].total_cmp(&logits[b])).unwrap() as i64;
    assert_eq!(first.explanation.objective.class, predicted, "the prediction is explained by default");
    let last_stage = &graph.nodes[stages[2]].name;
    assert!(harness.query_all_by_label_contains(last_stage).next().is_some(), "the map is labelled with its layer");

    // Every stage at once, then back: the kept map comes back without the worker.
    harness.get_by_label("every stage").click_accesskit();
    harness.step();
    step_until(&mut harness, "every stage", |app| raw_maps(app).len() == 3 && !app.busy());
    let nodes: Vec<_> = harness.state().attribution().unwrap().explanation.maps.iter().map(|m| m.node).collect();
    assert_eq!(nodes, stages.iter().rev().map(|&s| Some(s)).collect::<Vec<_>>(), "one map per stage, coarse to fine");
    harness.get_by_label("last stage").click_accesskit();
    harness.step();
    assert!(!harness.state().busy(), "a kept map is shown without asking the worker");
    assert_eq!(raw_maps(harness.state()), raw_maps_of(&first));

    // Shortcuts off: another map; on again: the first one, kept.
    harness.get_by_label("all shortcuts").click_accesskit();
    harness.step();
    step_until(&mut harness, "the map without shortcuts", |app| {
        app.attribution().is_some_and(|a| !a.disabled.is_empty()) && !app.busy()
    });
    assert_eq!(harness.state().attribution().unwrap().disabled.len(), 9);
    assert_ne!(raw_maps(harness.state()), raw_maps_of(&first), "the shortcuts change the map");
    harness.get_by_label("all shortcuts").click_accesskit();
    harness.step();
    step_until(&mut harness, "the map with shortcuts again", |app| {
        app.attribution().is_some_and(|a| a.disabled.is_empty()) && !app.busy()
    });
    assert_eq!(raw_maps(harness.state()), raw_maps_of(&first), "the kept map, bit for bit");

    // A class found by name: one the top-5 does not offer.
    let top5: Vec<i64> = harness.state().prediction().unwrap().top5.iter().map(|p| p.class).collect();
    let class = (0..10).find(|c| !top5.contains(c)).unwrap();
    let name = convscope_core::zoo::Labels::Cifar10.name(class);
    let field = "find a class";
    let is_input = |n: &egui_kittest::Node<'_>| n.accesskit_node().role() == Role::TextInput;
    harness.query_all_by_label(field).find(is_input).expect("the search field is labelled").focus();
    harness.step();
    harness.query_all_by_label(field).find(is_input).expect("the search field").type_text(&name);
    harness.step();
    harness.step();
    harness.get_by_label(&format!("{name} ({class})")).click_accesskit();
    harness.step();
    step_until(&mut harness, "the map for a class found by name", |app| {
        app.attribution().is_some_and(|a| a.explanation.objective.class == class) && !app.busy()
    });

    // A long run cancelled: nothing is kept for it, and Compute asks again.
    {
        let view = harness.state_mut().attribution_view_mut();
        view.settings.method = Method::IntegratedGradients;
        view.settings.steps = 64;
        view.settings.batch = Some(4);
    }
    harness.step();
    harness.step();
    harness.get_by_label("Cancel").click_accesskit();
    harness.step();
    step_until(&mut harness, "the cancelled run to stop", |app| !app.busy());
    assert!(harness.query_by_label("Cancelled.").is_some(), "the view says it was cancelled");
    assert_ne!(harness.state().attribution().unwrap().explanation.method, Method::IntegratedGradients);
    harness.get_by_label("Compute").click_accesskit();
    harness.step();
    step_until(&mut harness, "Integrated Gradients", |app| {
        app.attribution().is_some_and(|a| a.explanation.method == Method::IntegratedGradients) && !app.busy()
    });
    let ig = harness.state().attribution().unwrap().explanation.clone();
    let completeness = ig.completeness.expect("IG says how complete it is");
    assert!(completeness.relative_gap() < 0.05, "64 steps: {completeness:?}");
    assert!(harness.query_by_label_contains("completeness").is_some(), "and the view shows it");

    // Saved: the overlay as drawn, the raw map as captum's shape.
    let dir = tempfile::tempdir().unwrap();
    let png = dir.path().join("ig.png");
    harness.state().save_attribution(&png).expect("the overlay is saved");
    let image = image::open(&png).unwrap().to_rgb8();
    assert_eq!(image.dimensions(), (32, 32), "the input as the network saw it");
    let npy = dir.path().join("ig.npy");
    harness.state().save_attribution(&npy).expect("the map is saved");
    let saved = tch::Tensor::read_npy(&npy).unwrap();
    assert_eq!(saved.size(), [1, 3, 32, 32]);
    let values = Vec::<f32>::try_from(&saved.flatten(0, -1)).unwrap();
    assert_eq!(values, ig.maps[0].raw, "the raw values");
    let error = harness.state().save_attribution(&dir.path().join("ig.txt")).unwrap_err();
    assert!(error.contains("name it .png"), "{error}");
}

fn raw_maps_of(attributed: &convscope_core::session::Attributed) -> Vec<Vec<f32>> {
    attributed.explanation.maps.iter().map(|m| m.raw.clone()).collect()
}
