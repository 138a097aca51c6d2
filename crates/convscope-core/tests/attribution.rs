//! Attribution maps against captum 0.9.0 and pytorch-grad-cam 1.5.7, on the pretrained
//! EfficientNet-Lite0 (the bundled cat) and on the parity fixtures' seeded-random ResNet-18,
//! GoogLeNet, DenseNet-121 and VGG-16 (logits of order one). The reference maps come from
//! tests/fixtures/make_attribution_fixtures.py (its docstring gives the format), run by
//! `make fixtures` after the parity fixtures, whose state dicts and inputs these tests share.
//!
//! Raw maps must be within 1e-4 · max |reference| of captum's, displayed CAMs within 1e-4 of
//! pytorch-grad-cam's (on [0, 1]); every reference is checked to be well above zero first.

mod common;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use common::parity::{sha256_of, whole_state_dict};
use common::read;
use convscope_core::attribution::{
    self, Baseline, Control, Integration, Layers, Method, Settings, Target, display, explain_all,
};
use convscope_core::engine::{self, WeightsChoice};
use convscope_core::executor::{Model, RunOptions};
use convscope_core::graph::{Graph, NodeId};
use convscope_core::preprocess::Preprocess;
use convscope_core::zoo;
use tch::{Device, Kind, Tensor};

/// A raw map: |ours − captum's| ≤ this × max |captum's|.
const RAW_TOLERANCE: f64 = 1e-4;
/// A displayed map (on [0, 1]): |ours − pytorch-grad-cam's| ≤ this.
const DISPLAY_TOLERANCE: f64 = 1e-4;
/// A reference whose largest magnitude is below this compares nothing worth having.
const FLOOR: f64 = 1e-4;

struct Case {
    arch: &'static str,
    meta: serde_json::Value,
    maps: HashMap<String, Tensor>,
    model: Model,
    input: Tensor,
    preprocess: Preprocess,
    /// Keeps the whole state dict's file alive while the model is loaded.
    _weights: Option<tempfile::TempPath>,
}

fn attribution_dir(case: &str) -> PathBuf {
    let dir = convscope_core::paths::fixtures_dir().join("attribution").join(case);
    assert!(
        dir.join("stamp").is_file(),
        "no attribution fixtures for {case} in {}: run `make fixtures` (tests/fixtures/make_attribution_fixtures.py)",
        dir.display()
    );
    dir
}

impl Case {
    fn load(arch: &'static str) -> Self {
        let dir = attribution_dir(arch);
        let meta: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("meta.json")).unwrap()).unwrap();
        let maps = read(&dir.join("maps.safetensors"));
        let spec = zoo::find(arch).unwrap();
        let (weights, temp, input) = if arch == "efficientnet_lite0" {
            let weights = convscope_core::paths::weights_dir().join("efficientnet_lite0.safetensors");
            assert!(weights.is_file(), "{} is missing: the bootstrap converts it", weights.display());
            // The zoo's preprocessing is PIL + torchvision's, bit for bit.
            let input = engine::image_input(&spec, &convscope_core::paths::asset("chelsea.png")).unwrap();
            let theirs = &maps["input"];
            let difference = (&input - theirs).abs().max().double_value(&[]);
            assert!(difference == 0.0, "the preprocessed cat differs from torchvision's by {difference:e}");
            (weights, None, input)
        } else {
            // The parity fixture's model: its stored tensors and the generated ones.
            let parity = convscope_core::paths::fixtures_dir().join(arch);
            let parity_meta: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(parity.join("meta.json")).unwrap()).unwrap();
            let (temp, _) = whole_state_dict(arch, &parity_meta);
            let input = engine::tensor_input(&parity.join("input.safetensors")).unwrap();
            (temp.to_path_buf(), Some(temp), input)
        };
        let (model, _) = engine::load_model(&spec, &WeightsChoice::File(weights), Device::Cpu).unwrap();
        Case { arch, meta, maps, model, input, preprocess: spec.preprocess, _weights: temp }
    }

    /// A model with the reference's random initialisation and a seeded random input, no
    /// fixture: for what does not compare with captum.
    fn random(arch: &'static str, size: i64) -> Self {
        let spec = zoo::find(arch).unwrap();
        let model = Model::random(spec.graph(), Device::Cpu, 3).unwrap();
        let input = convscope_core::executor::seeded(4, || {
            Tensor::randn([1, spec.input[0], size, size], (Kind::Float, Device::Cpu))
        });
        let target = model.forward(&input, &RunOptions::default()).unwrap().argmax(-1, false).int64_value(&[0]);
        let meta = serde_json::json!({ "target": target, "settings": {} });
        Case { arch, meta, maps: HashMap::new(), model, input, preprocess: spec.preprocess, _weights: None }
    }

    fn graph(&self) -> &Arc<Graph> {
        self.model.graph()
    }

    fn setting(&self, key: &str) -> &serde_json::Value {
        &self.meta["settings"][key]
    }

    fn has(&self, method: &str) -> bool {
        self.setting("methods").as_array().unwrap().iter().any(|m| m == method)
    }

    fn target(&self) -> i64 {
        self.meta["target"].as_i64().unwrap()
    }

    /// (reference module, our node, what pytorch-grad-cam can show there: "clean", "in_place"
    /// or "reused", see the fixture script).
    fn layers(&self) -> Vec<(String, NodeId, String)> {
        let graph = self.graph();
        self.meta["layers"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(module, layer)| {
                let name = layer["node"].as_str().unwrap();
                let node = graph
                    .node_id(name)
                    .or_else(|| graph.block_id(name).and_then(|b| graph.block_output(b)))
                    .unwrap_or_else(|| panic!("{}: no node or block {name}", self.arch));
                (module.clone(), node, layer["shown"].as_str().unwrap().to_owned())
            })
            .collect()
    }

    fn settings(&self, method: Method) -> Settings {
        let int = |key: &str, default: i64| self.setting(key).as_i64().unwrap_or(default);
        Settings {
            method,
            target: Target::Class(self.target()),
            steps: int("steps", 16) as usize,
            baseline: if self.setting("baseline") == "black" { Baseline::Black } else { Baseline::Mean },
            samples: int("samples", 4) as usize,
            sigma: self.setting("sigma").as_f64().unwrap_or(0.15),
            seed: int("seed", 0),
            window: int("window", 32),
            stride: int("stride", 16),
            batch: Some(int("batch", 8) as usize),
            ..Settings::default()
        }
    }

    fn explain(&self, settings: &Settings) -> attribution::Explanation {
        explain_all(&self.model, &self.input, &RunOptions::default(), &self.preprocess, settings).unwrap()
    }

    fn reference(&self, key: &str) -> &Tensor {
        self.maps.get(key).unwrap_or_else(|| panic!("{}: the fixture has no {key}", self.arch))
    }

    /// Every map the case's fixture holds, each compared with ours.
    fn check_all(&self) {
        let graph = self.graph().clone();
        let ours = self.explain(&Settings { target: Target::Predicted, ..self.settings(Method::Saliency) });
        assert_eq!(ours.objective.class, self.target(), "{}: the predicted class", self.arch);
        assert_close_raw(&format!("{}: logits", self.arch), &ours.logits, self.reference("logits"));
        let size = self.input.size();
        let guided_layer = self.setting("guided_layer").as_str();
        for (module, node, shown) in self.layers() {
            let what = |method: &str| format!("{} {method} at {module} ({})", self.arch, graph.nodes[node].name);
            let at = |method| Settings { layers: Layers::Node(node), ..self.settings(method) };
            if self.has("gradcam") {
                let cam = self.explain(&at(Method::GradCam));
                assert_close_raw(&what("Grad-CAM"), &cam.maps[0].raw, self.reference(&format!("gradcam.{module}")));
                if self.has("gradcam_display") && shown != "reused" {
                    let ours = display::cam_display(&cam.maps[0].raw, size[2], size[3]).unwrap();
                    if shown == "in_place" {
                        // The reference overwrites this layer's output in place: pytorch-grad-cam
                        // then shows something else than the layer's own map (captum's, ours).
                        let theirs = self.reference(&format!("gradcam_display_in_place.{module}"));
                        let difference = max_difference(&ours, &theirs.view([size[2], size[3]]));
                        eprintln!("{}: {difference:.3} from pytorch-grad-cam's map", what("displayed Grad-CAM"));
                        assert!(difference > 1e-2, "{}: the in-place case shows nothing", what("Grad-CAM"));
                    } else {
                        for (method, key) in [
                            (Method::GradCam, "gradcam_display"),
                            (Method::GradCamPlusPlus, "gradcampp_display"),
                            (Method::LayerCam, "layercam_display"),
                        ] {
                            let map = if method == Method::GradCam {
                                cam.maps[0].raw.shallow_clone()
                            } else {
                                self.explain(&at(method)).maps.remove(0).raw
                            };
                            let shown = display::cam_display(&map, size[2], size[3]).unwrap();
                            let theirs = self.reference(&format!("{key}.{module}")).view([size[2], size[3]]);
                            assert_close_display(&what(&format!("displayed {}", method.label())), &shown, &theirs);
                        }
                    }
                }
            }
            if guided_layer == Some(module.as_str()) {
                if self.has("guided_gradcam") {
                    let map = self.explain(&at(Method::GuidedGradCam));
                    let theirs = self.reference(&format!("guided_gradcam.{module}"));
                    assert_close_raw(&what("Guided Grad-CAM"), &map.maps[0].raw, theirs);
                }
                if self.has("gradcam_difference") {
                    let minus = self.setting("difference_minus").as_i64().unwrap();
                    let target = Target::Difference { class: self.target(), minus };
                    let map = self.explain(&Settings { target, ..at(Method::GradCam) });
                    let theirs = self.reference(&format!("gradcam_difference.{module}"));
                    assert_close_raw(&what("Grad-CAM of a difference"), &map.maps[0].raw, theirs);
                }
            }
        }
        let methods = [
            ("saliency", Method::Saliency, None),
            ("guided", Method::GuidedBackprop, None),
            ("ig_gausslegendre", Method::IntegratedGradients, Some(Integration::GaussLegendre)),
            ("ig_trapezoid", Method::IntegratedGradients, Some(Integration::Trapezoid)),
            ("smoothgrad", Method::SmoothGrad, None),
            ("occlusion", Method::Occlusion, None),
        ];
        for (key, method, integration) in methods {
            if !self.has(key) {
                continue;
            }
            let mut settings = self.settings(method);
            if let Some(integration) = integration {
                settings.integration = integration;
            }
            if method == Method::SmoothGrad {
                let stdev = self.meta["stdev"].as_f64().unwrap();
                let noise = attribution::smoothgrad_noise(&self.input, settings.sigma, settings.seed, settings.samples)
                    .unwrap();
                let range = (self.input.max() - self.input.min()).double_value(&[]);
                assert!((settings.sigma * range - stdev).abs() <= 1e-12 * stdev, "{}: SmoothGrad's σ", self.arch);
                assert_eq!(
                    sha256_of(&noise),
                    self.meta["noise_sha256"].as_str().unwrap(),
                    "{}: SmoothGrad's noise differs from captum's draw",
                    self.arch
                );
            }
            let map = self.explain(&settings);
            assert_close_raw(&format!("{} {key}", self.arch), &map.maps[0].raw, self.reference(key));
            if let Some(integration) = integration {
                // The completeness gap shown is captum's convergence delta.
                let name = if integration == Integration::Trapezoid { "trapezoid" } else { "gausslegendre" };
                let theirs = self.meta["ig_delta"][name].as_f64().unwrap();
                let c = map.completeness.unwrap();
                let change = c.score_input - c.score_baseline;
                eprintln!("{} {key}: gap {:.5} (captum {theirs:.5}) of {change:.4}", self.arch, c.gap());
                assert!((c.gap() - theirs).abs() <= 1e-3 * change.abs(), "{} {key}: completeness gap", self.arch);
            }
            if method == Method::GuidedBackprop {
                let relus = map.guided_relus.unwrap();
                assert_eq!(relus == 0, self.arch == "efficientnet_lite0", "{}: {relus} ReLUs guided", self.arch);
            }
        }
    }
}

fn max_difference(ours: &Tensor, theirs: &Tensor) -> f64 {
    (ours - theirs).abs().max().double_value(&[])
}

#[track_caller]
fn assert_close_raw(what: &str, ours: &Tensor, theirs: &Tensor) {
    assert_eq!(ours.size(), theirs.size(), "{what}: shapes differ");
    let scale = theirs.abs().max().double_value(&[]);
    assert!(scale > FLOOR, "{what}: the reference is {scale:e} at most: the comparison would compare zeros");
    let difference = max_difference(ours, theirs);
    eprintln!("{what}: {:.2e} of max |captum| ({scale:.3e})", difference / scale);
    assert!(
        difference <= RAW_TOLERANCE * scale,
        "{what}: differs from the reference by {difference:e}, {:.2e} of its largest magnitude {scale:e}",
        difference / scale
    );
}

#[track_caller]
fn assert_close_display(what: &str, ours: &Tensor, theirs: &Tensor) {
    assert_eq!(ours.size(), theirs.size(), "{what}: shapes differ");
    let scale = theirs.abs().max().double_value(&[]);
    assert!(scale > 0.5, "{what}: the reference's largest value is {scale}, not the 1 of a normalised map");
    let difference = max_difference(ours, theirs);
    eprintln!("{what}: {difference:.2e} from pytorch-grad-cam");
    assert!(difference <= DISPLAY_TOLERANCE, "{what}: differs from pytorch-grad-cam's by {difference:e}");
}

#[test]
fn efficientnet_lite0_maps_match_captum() {
    Case::load("efficientnet_lite0").check_all();
}

#[test]
fn resnet18_maps_match_captum() {
    Case::load("resnet18").check_all();
}

#[test]
fn googlenet_maps_match_captum() {
    Case::load("googlenet").check_all();
}

#[test]
fn densenet121_maps_match_captum() {
    Case::load("densenet121").check_all();
}

#[test]
fn vgg16_maps_match_captum_after_in_place_relus() {
    Case::load("vgg16").check_all();
}

#[test]
fn integrated_gradients_are_complete_within_one_percent_at_64_steps() {
    // Where the path's integrand is smooth enough for 64 points: on the pretrained
    // EfficientNet-Lite0 and the cat, captum's gap at 64 steps is 16.7% (Gauss–Legendre) and 4.4%
    // (trapezoid), 0.10% at 256 (the fixture checks that convscope's gaps are captum's).
    let arch = "densenet121";
    let case = Case::load(arch);
    let settings = Settings {
        steps: 64,
        batch: Some(16),
        baseline: Baseline::Black,
        ..case.settings(Method::IntegratedGradients)
    };
    let map = case.explain(&settings);
    let c = map.completeness.unwrap();
    let sum = map.maps[0].raw.sum(Kind::Double).double_value(&[]);
    assert!((sum - c.attribution_sum).abs() <= 1e-9 * sum.abs().max(1.0), "{arch}: the sum reported");
    let change = c.score_input - c.score_baseline;
    assert!(change.abs() > 0.5, "{arch}: f(input) − f(baseline) is {change}: nothing to attribute");
    eprintln!("{arch}: Σ attributions {:.4} against {change:.4}, gap {:.2e}", c.attribution_sum, c.relative_gap());
    assert!(c.relative_gap() <= 0.01, "{arch}: completeness gap {:.3}% at 64 steps", 100.0 * c.relative_gap());
}

#[test]
fn every_stage_in_one_pass_equals_each_layer_alone() {
    let case = Case::random("resnet18", 112);
    let graph = case.graph().clone();
    let size = case.input.size();
    let stages = attribution::stages(&graph, &RunOptions::default(), size[2], size[3]).unwrap();
    let names: Vec<&str> = stages.iter().map(|&id| graph.nodes[id].name.as_str()).collect();
    let block_ends: Vec<String> = ["layer1", "layer2", "layer3", "layer4"]
        .iter()
        .map(|b| graph.nodes[graph.block_output(graph.block_id(b).unwrap()).unwrap()].name.clone())
        .collect();
    assert_eq!(names[0], "relu", "resnet18: the stem's end");
    assert_eq!(&names[1..], block_ends.iter().map(String::as_str).collect::<Vec<_>>().as_slice(), "resnet18: stages");
    for method in [Method::GradCam, Method::GradCamPlusPlus, Method::LayerCam, Method::GuidedGradCam] {
        let all = case.explain(&Settings { layers: Layers::Stages, ..case.settings(method) });
        let coarse_to_fine: Vec<_> = stages.iter().rev().copied().collect();
        assert_eq!(all.maps.iter().map(|m| m.node.unwrap()).collect::<Vec<_>>(), coarse_to_fine);
        for map in &all.maps {
            let alone = case.explain(&Settings { layers: Layers::Node(map.node.unwrap()), ..case.settings(method) });
            let what = format!("{} at {}", method.label(), graph.nodes[map.node.unwrap()].name);
            let scale = alone.maps[0].raw.abs().max().double_value(&[]);
            assert!(scale > 0.0, "{what}: an empty map");
            assert!(max_difference(&map.raw, &alone.maps[0].raw) <= 1e-6 * scale, "{what}: differs when taken alone");
        }
    }
    // The default layer is the last stage.
    let last = case.explain(&case.settings(Method::GradCam));
    assert_eq!(last.maps[0].node, stages.last().copied());

    // EfficientNet-Lite0: its stages end at 112, 56, 28, 14 and 7 pixels, the last at the head.
    let graph = zoo::find("efficientnet_lite0").unwrap().graph();
    let stages = attribution::stages(&graph, &RunOptions::default(), 224, 224).unwrap();
    let shapes = graph.infer_shapes(224, 224).unwrap();
    let sides: Vec<i64> = stages.iter().map(|&id| shapes.nodes[id].shape[1]).collect();
    assert_eq!(sides, [112, 56, 28, 14, 7]);
    assert_eq!(graph.nodes[*stages.last().unwrap()].name, "_swish_head");
}

#[test]
fn guided_backprop_without_relus_is_the_plain_gradient() {
    let case = Case::load("efficientnet_lite0");
    let guided = case.explain(&case.settings(Method::GuidedBackprop));
    assert_eq!(guided.guided_relus, Some(0), "EfficientNet-Lite0 has ReLU6, which is not guided");
    let saliency = case.explain(&case.settings(Method::Saliency));
    assert_close_raw("|guided| against saliency", &guided.maps[0].raw.abs(), &saliency.maps[0].raw);
    // With ReLUs, guiding changes the map.
    let resnet = Case::random("resnet18", 64);
    let guided = resnet.explain(&resnet.settings(Method::GuidedBackprop));
    let saliency = resnet.explain(&resnet.settings(Method::Saliency));
    assert!(guided.guided_relus.unwrap() > 10);
    let difference = max_difference(&guided.maps[0].raw.abs(), &saliency.maps[0].raw);
    assert!(difference > 0.1 * saliency.maps[0].raw.abs().max().double_value(&[]), "resnet18: guiding changed nothing");
}

#[test]
fn chunked_methods_report_progress_and_stop_when_asked() {
    let case = Case::random("resnet20", 32);
    for (method, total) in [(Method::IntegratedGradients, 16), (Method::SmoothGrad, 4), (Method::Occlusion, 4)] {
        let settings = Settings { batch: Some(2), window: 16, stride: 16, ..case.settings(method) };
        let mut seen = Vec::new();
        let mut control = Control { progress: &mut |p| seen.push(p), interrupt: &|| false };
        let done = attribution::explain(
            &case.model,
            &case.input,
            &RunOptions::default(),
            &case.preprocess,
            &settings,
            &mut control,
        )
        .unwrap();
        assert!(done.is_some());
        assert!(seen.windows(2).all(|w| w[0].done <= w[1].done), "{method:?}: progress goes forward");
        let last = seen.last().unwrap();
        assert_eq!((last.done, last.total), (total, total), "{method:?}: the last report");
        assert!(seen.len() >= total.div_ceil(2), "{method:?}: a report per chunk");

        // Asked to stop after the first chunk: no map.
        let calls = std::cell::Cell::new(0);
        let interrupt = || {
            calls.set(calls.get() + 1);
            calls.get() > 1
        };
        let mut control = Control { progress: &mut |_| {}, interrupt: &interrupt };
        let stopped = attribution::explain(
            &case.model,
            &case.input,
            &RunOptions::default(),
            &case.preprocess,
            &settings,
            &mut control,
        )
        .unwrap();
        assert!(stopped.is_none(), "{method:?}: went on after being asked to stop");
    }
}

#[test]
fn bad_requests_are_errors_not_panics() {
    let case = Case::random("resnet18", 64);
    let opts = RunOptions::default();
    let graph = case.graph().clone();
    let batch = Tensor::cat(&[&case.input, &case.input], 0);
    let err = |settings: &Settings, input: &Tensor| {
        attribution::explain_all(&case.model, input, &opts, &case.preprocess, settings).err().unwrap().to_string()
    };
    assert!(err(&case.settings(Method::GradCam), &batch).contains("one image"));
    let far = Settings { target: Target::Class(1000), ..case.settings(Method::Saliency) };
    assert!(err(&far, &case.input).contains("outside 0..1000"));
    let fc = Settings { layers: Layers::Node(graph.node_id("fc").unwrap()), ..case.settings(Method::GradCam) };
    assert!(err(&fc, &case.input).contains("no spatial output"));
    let huge = Settings { window: 500, ..case.settings(Method::Occlusion) };
    assert!(err(&huge, &case.input).contains("does not fit"));
    let sparse = Settings { window: 8, stride: 16, ..case.settings(Method::Occlusion) };
    assert!(err(&sparse, &case.input).contains("skip pixels"));
    // A layer on a switched-off shortcut's branch does not run.
    let off = RunOptions { disabled_residuals: graph.resolve_residuals(&["layer2".into()]).unwrap(), ..opts.clone() };
    let downsample = graph.node_id("layer2.0.downsample.0").unwrap();
    let settings = Settings { layers: Layers::Node(downsample), ..case.settings(Method::GradCam) };
    let message = attribution::explain_all(&case.model, &case.input, &off, &case.preprocess, &settings)
        .err()
        .unwrap()
        .to_string();
    assert!(message.contains("does not run"), "{message}");
}

#[test]
fn gauss_legendre_matches_numpy() {
    // numpy.polynomial.legendre.leggauss(5).
    let (x, w) = attribution::gauss_legendre(5);
    let nodes = [-0.906_179_845_938_664, -0.538_469_310_105_683, 0.0, 0.538_469_310_105_683, 0.906_179_845_938_664];
    let weights = [
        0.236_926_885_056_189_1,
        0.478_628_670_499_366_5,
        0.568_888_888_888_888_9,
        0.478_628_670_499_366_5,
        0.236_926_885_056_189_1,
    ];
    for i in 0..5 {
        assert!((x[i] - nodes[i]).abs() < 1e-14 && (w[i] - weights[i]).abs() < 1e-14, "point {i}: {} {}", x[i], w[i]);
    }
    for n in [1, 2, 16, 32, 64, 100] {
        let (x, w) = attribution::gauss_legendre(n);
        assert!((w.iter().sum::<f64>() - 2.0).abs() < 1e-13, "{n} points: the weights add up to 2");
        assert!(x.windows(2).all(|p| p[0] < p[1]), "{n} points: ascending");
        // Exact on x^(2n−2).
        let moment: f64 = x.iter().zip(&w).map(|(x, w)| w * x.powi(2 * n as i32 - 2)).sum();
        assert!((moment - 2.0 / (2.0 * n as f64 - 1.0)).abs() < 1e-12, "{n} points: ∫x^(2n−2)");
    }
}
