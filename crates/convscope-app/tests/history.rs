//! The History view driven through egui_kittest: the chart holds every network, hovering a
//! bubble tells its story, clicking it opens it in the explorer; a calculator's link opens the
//! diagram on its node; two networks compared; a measurement started and cancelled.

use std::path::PathBuf;
use std::time::Duration;

mod app_harness;

use convscope_app::{App, CentralView, Start, XAxis};
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;

const TIMEOUT: Duration = Duration::from_secs(180);

fn harness_with(arch: &str, latency_cache: Option<PathBuf>) -> Harness<'static, App> {
    let arch = arch.to_owned();
    let mut harness = Harness::builder().with_size(egui::vec2(1400.0, 900.0)).build_eframe(move |cc| {
        let start = Start { arch: Some(arch), ignore_storage: true, latency_cache, ..Start::default() };
        App::new(cc, start).expect("the model worker thread starts")
    });
    harness.step();
    harness
}

fn harness(arch: &str) -> Harness<'static, App> {
    // Never the checkout's own cache: an empty file of the test's.
    let dir = std::env::temp_dir().join(format!("convscope-history-test-{}", std::process::id()));
    harness_with(arch, Some(dir.join(format!("{arch}-latency.json"))))
}

#[track_caller]
fn step_until(harness: &mut Harness<'static, App>, what: &str, done: impl Fn(&App) -> bool) {
    app_harness::step_until(harness, TIMEOUT, what, done);
}

fn loaded(harness: &mut Harness<'static, App>, arch: &'static str) {
    step_until(harness, &format!("{arch} to load"), |app| app.loaded_arch() == Some(arch));
}

fn open_history(harness: &mut Harness<'static, App>) {
    harness.get_by_role_and_label(egui::accesskit::Role::Button, "History").click_accesskit();
    harness.run_steps(3);
    assert_eq!(harness.state().settings().central, CentralView::History);
}

#[test]
fn the_chart_holds_every_network_and_a_click_opens_one_in_the_explorer() {
    let mut harness = harness("lenet5");
    loaded(&mut harness, "lenet5");
    open_history(&mut harness);
    assert_eq!(harness.state().settings().history.x_axis, XAxis::Macs, "GMACs across by default");

    for spec in convscope_core::zoo::all() {
        assert!(harness.state().history_bubble(spec.id).is_some(), "{} is on the chart", spec.id);
    }
    let labelled = harness.state().history_labelled().to_vec();
    assert!(labelled.len() >= 15, "many labels find room at the default zoom: {labelled:?}");
    assert!(labelled.contains(&"vgg19_bn") || labelled.contains(&"vgg19"), "the biggest first: {labelled:?}");

    // Hover: the bubble is ringed and its story told under the chart.
    let target = "mobilenet_v3_small";
    let bubble = harness.state().history_bubble(target).expect("a bubble");
    harness.hover_at(bubble.center);
    harness.run_steps(2);
    assert_eq!(harness.state().history_hovered(), Some(target));
    assert!(harness.query_by_label_contains("MobileNet v3 Small (2019): ").is_some(), "its name and year");
    assert!(harness.query_by_label_contains("top-1 67.4% paper, 67.7% reference weights").is_some(), "its numbers");

    // The year axis keeps every network too.
    harness.get_by_label("year").click_accesskit();
    harness.run_steps(2);
    assert_eq!(harness.state().settings().history.x_axis, XAxis::Year);
    assert!(harness.state().history_bubble("lenet5").is_some(), "1998, in the band without an ImageNet top-1");
    harness.get_by_label("GMACs (log)").click_accesskit();
    harness.run_steps(2);

    // Click: the network loads and the explorer shows it.
    let bubble = harness.state().history_bubble(target).expect("a bubble");
    harness.hover_at(bubble.center);
    harness.step();
    harness.drag_at(bubble.center);
    harness.step();
    harness.drop_at(bubble.center);
    harness.step();
    assert_eq!(harness.state().settings().central, CentralView::FeatureMaps, "back in the explorer");
    assert_eq!(harness.state().settings().arch.as_deref(), Some(target));
    loaded(&mut harness, "mobilenet_v3_small");
}

#[test]
fn a_calculators_link_opens_the_diagram_on_its_node() {
    let mut harness = harness("lenet5");
    loaded(&mut harness, "lenet5");
    open_history(&mut harness);
    harness.get_by_label("The calculations").click_accesskit();
    harness.run_steps(2);
    // The seed's figures, as the defaults give them.
    for figure in ["120,422,400", "2,408,448", "10,035,200", "614,400", "29,376"] {
        assert!(harness.query_by_label_contains(figure).is_some(), "{figure} is shown");
    }
    assert!(harness.query_by_label_contains("DIFFER").is_none(), "every formula agrees with the graph");
    // GoogLeNet's branch: 2,408,448 for the 1×1 + 3,612,672 for torchvision's 3×3.
    assert!(harness.query_by_label_contains("MACs agree: the formula gives 6,021,120").is_some());

    harness.get_by_label("googlenet › inception3a.branch3.0.conv").click_accesskit();
    harness.step();
    assert_eq!(harness.state().settings().central, CentralView::Diagram);
    loaded(&mut harness, "googlenet");
    let graph = convscope_core::zoo::find("googlenet").expect("zoo").graph();
    let node = graph.node_id("inception3a.branch3.0.conv").expect("the 1×1 reduction");
    step_until(&mut harness, "the link's node to be selected", |app| app.selected_node() == node);
    harness.run_steps(2);
    assert!(harness.query_by_label_contains("zoom ").is_some(), "the diagram is drawn");
}

#[test]
fn two_networks_are_compared_side_by_side() {
    let mut harness = harness("resnet20");
    loaded(&mut harness, "resnet20");
    // The picker's list names every network too; the comparison's list alone is wanted.
    harness.get_by_role_and_label(egui::accesskit::Role::Button, "Architectures").click_accesskit();
    harness.step();
    open_history(&mut harness);
    harness.get_by_label("Compare two networks").click_accesskit();
    harness.run_steps(2);

    harness.get_by_label("second network").click();
    harness.run_steps(2);
    harness.get_by_label("plain20").click_accesskit();
    harness.run_steps(2);
    harness.get_by_label("Compare").click_accesskit();
    harness.step();
    step_until(&mut harness, "the comparison", |app| app.comparison().is_some() && !app.busy());
    let comparison = harness.state().comparison().expect("a comparison").clone();
    assert_eq!([comparison.nets[0].arch, comparison.nets[1].arch], ["resnet20", "plain20"]);
    assert_eq!(comparison.image, "chelsea.png", "the bundled cat when no image is open");
    assert_eq!(comparison.stages.len(), 3, "32×32, 16×16, 8×8");
    for net in &comparison.nets {
        let best = &net.top5[0];
        let row = format!("{:.1}%  {}", best.probability * 100.0, best.label);
        assert!(harness.query_by_label(&row).is_some(), "{}'s top class {row:?} is shown", net.arch);
    }
    for row in ["forward pass", "parameters", "MACs", "activations kept"] {
        assert!(harness.query_by_label(row).is_some(), "the {row} row");
    }
    let last = &comparison.stages[2][0];
    let caption = format!("{} · 64×8×8 · ", last.name);
    // The plain twin names its layers alike: one caption per network.
    assert_eq!(harness.query_all_by_label_contains(&caption).count(), 2, "the last stage's maps: {caption}");
}

#[test]
fn measuring_this_machine_shows_progress_and_can_be_cancelled() {
    let dir = tempfile::tempdir().expect("temp dir");
    let cache = dir.path().join("latency.json");
    let mut harness = harness_with("lenet5", Some(cache.clone()));
    loaded(&mut harness, "lenet5");
    open_history(&mut harness);
    assert!(harness.query_by_label_contains("0/56 measured on ").is_some());
    harness.get_by_label("Measure this machine").click_accesskit();
    harness.step();
    step_until(&mut harness, "the first network timed", |app| app.measuring().is_some_and(|(done, _)| done >= 1));
    // However many landed by now (the small networks take milliseconds each), the bar says
    // what the app holds.
    let (done, total) = harness.state().measuring().expect("still measuring");
    assert_eq!(total, 56);
    assert!(harness.query_by_label_contains(&format!("{done}/56 timed, last ")).is_some(), "on the bar");
    harness.get_by_label("Cancel").click_accesskit();
    harness.step();
    assert_eq!(harness.state().measuring(), None, "cancelled at once");
    step_until(&mut harness, "the worker to settle", |app| !app.busy());
    let saved = convscope_core::latency::Cache::load(&cache);
    // Kept for this machine as the worker runs it: its thread count, not this thread's.
    let here = convscope_core::latency::Machine::current(tch::Device::Cpu);
    let machine = convscope_core::latency::Machine { threads: harness.state().worker_threads(), ..here };
    assert!(saved.timing(&machine, "lenet5").is_some(), "the cheapest first, and kept for this machine");

    // The latency axis shows what was measured, and a later run goes on with the rest.
    harness.get_by_label("latency here (log)").click_accesskit();
    harness.run_steps(2);
    assert!(harness.state().history_bubble("lenet5").is_some());
    // How many landed before the cancel depends on this machine's speed; the whole zoo takes
    // seconds for its big networks alone, so not all of them.
    let shown = convscope_core::zoo::all().iter().filter(|s| harness.state().history_bubble(s.id).is_some()).count();
    assert!(shown < 56, "only what was measured: {shown}");
    assert!(harness.query_by_label(&format!("Measure the other {}", 56 - shown)).is_some(), "{shown} measured");
}
