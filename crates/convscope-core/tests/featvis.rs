//! Feature visualisation against torch-lucent 0.1.8 (kornia 0.4.1): the fixed parts equal
//! Lucent's within 1e-5 (the image from a fixed spectrum, each transform with fixed draws,
//! three Adam steps on the pretrained EfficientNet-Lite0, the diversity term), and the random
//! whole lands within ±20% of Lucent's objective over three seeds. The references come from
//! tests/fixtures/make_featvis_fixtures.py (its docstring gives the format), run by
//! `make fixtures`. Every reference is checked to be well above the tolerance first.

mod common;

use std::cell::Cell;
use std::collections::HashMap;
use std::path::PathBuf;

use common::read;
use convscope_core::engine::{self, WeightsChoice};
use convscope_core::executor::Model;
use convscope_core::featvis::{
    self, Control, Objective, Pipeline, Settings, adam::Adam, param::FftImage, transform, transform::Draws,
};
use convscope_core::zoo;
use tch::{Device, Kind, Tensor};

const TOLERANCE: f64 = 1e-5;

fn dir() -> PathBuf {
    let dir = convscope_core::paths::fixtures_dir().join("featvis");
    assert!(
        dir.join("stamp").is_file(),
        "no featvis fixtures in {}: run `make fixtures` (tests/fixtures/make_featvis_fixtures.py)",
        dir.display()
    );
    dir
}

fn meta() -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir().join("meta.json")).unwrap()).unwrap()
}

fn fixture(name: &str) -> HashMap<String, Tensor> {
    read(&dir().join(name))
}

fn max_difference(ours: &Tensor, theirs: &Tensor) -> f64 {
    assert_eq!(ours.size(), theirs.size(), "shapes differ");
    (ours - theirs).abs().max().double_value(&[])
}

fn assert_within(what: &str, ours: &Tensor, theirs: &Tensor, tolerance: f64) {
    let difference = max_difference(ours, theirs);
    assert!(difference <= tolerance, "{what}: differs from Lucent's by {difference:e} (tolerance {tolerance:e})");
}

fn lite0() -> (Model, zoo::ArchSpec) {
    let spec = zoo::find("efficientnet_lite0").unwrap();
    let weights = convscope_core::paths::weights_dir().join("efficientnet_lite0.safetensors");
    assert!(weights.is_file(), "{} is missing: the bootstrap converts it", weights.display());
    let (model, _) = engine::load_model(&spec, &WeightsChoice::File(weights), Device::Cpu).unwrap();
    (model, spec)
}

#[test]
fn image_from_a_fixed_spectrum_equals_lucents() {
    let tensors = fixture("image.safetensors");
    let cases = meta()["images"].as_object().unwrap().clone();
    assert_eq!(cases.len(), 3);
    for (name, dims) in cases {
        let [h, w, c, b] = std::array::from_fn(|i| dims[i].as_i64().unwrap());
        let fft = FftImage::new(b, c, h, w, Device::Cpu).unwrap();
        let spectrum = &tensors[&format!("spectrum.{name}")];
        assert_eq!(spectrum.size(), fft.spectrum_shape().to_vec(), "{name}: spectrum shape");
        let theirs = &tensors[&format!("image.{name}")];
        // Far from sigmoid's flat middle, or the comparison would say little.
        let spread = (theirs - 0.5).abs().max().double_value(&[]);
        assert!(spread > 0.1, "{name}: Lucent's image is within {spread} of grey");
        let ours = fft.image(spectrum).unwrap();
        assert_within(&format!("image {name}"), &ours, theirs, TOLERANCE);
    }
}

#[test]
fn each_transform_equals_lucents_given_the_same_draws() {
    let t = fixture("transforms.safetensors");
    let x = &t["input"];
    let check = |what: &str, ours: Tensor, moved: bool| {
        let theirs = &t[what];
        if moved {
            // The transform did something the comparison can see.
            let change = if theirs.size() == x.size() { max_difference(theirs, x) } else { 1.0 };
            assert!(change > 0.05, "{what}: Lucent's output is the input within {change}");
        }
        assert_within(what, &ours, theirs, TOLERANCE);
    };
    check("pad12", transform::pad(x, 12, 0.5).unwrap(), true);
    check("jitter8", transform::translate(x, 3, 6).unwrap(), true);
    check("jitter4", transform::translate(x, 1, 3).unwrap(), true);
    for scale in [0.9, 0.96, 1.06, 1.1] {
        check(&format!("scale_{scale}"), transform::scale(x, scale).unwrap(), true);
    }
    for angle in [-10, 7] {
        check(&format!("rotate_{angle}"), transform::rotate(x, angle).unwrap(), true);
    }
    check("rotate_0", transform::rotate(x, 0).unwrap(), false);
    let draws = Draws { jitter8: (3, 6), scale: 1.06, angle: 7, jitter4: (1, 3) };
    check("compose", transform::standard(x, &draws).unwrap(), true);
}

#[test]
fn diversity_term_equals_lucents() {
    let t = fixture("diversity.safetensors");
    let ours = featvis::diversity(&t["activations"]).unwrap();
    let theirs = t["loss"].reshape([]);
    assert!(theirs.abs().double_value(&[]) > 0.01, "the reference diversity is near zero");
    assert_within("diversity", &ours, &theirs, TOLERANCE);
}

#[test]
fn three_adam_steps_on_lite0_equal_lucents() {
    let meta = meta();
    let t = fixture("adam.safetensors");
    let (model, spec) = lite0();
    let node = featvis::resolve_node(model.graph(), meta["adam_node"].as_str().unwrap()).unwrap();
    let channel = meta["adam_channel"].as_i64().unwrap();
    let size = meta["adam_size"].as_i64().unwrap();
    let pipeline = Pipeline::new(&model, &spec.preprocess, node, vec![channel]).unwrap();
    let fft = FftImage::new(1, 3, size, size, Device::Cpu).unwrap();
    let mut spectrum = t["param0"].copy().set_requires_grad(true);
    // PyTorch's own kernels on the whole node, as Lucent's; the sliced tail in the same layout
    // is compared below. The fast layout sums in another order, which Adam's sign-like first
    // steps amplify entry by entry: featvis_sliced.rs compares its steps with these.
    let settings = Settings { fast_layout: false, sliced: false, ..Settings::default() };
    let mut fast = t["param0"].copy().set_requires_grad(true);
    let fast_settings = Settings { sliced: true, ..settings.clone() };
    let mut fast_adam = Adam::new(&fast, settings.lr).unwrap();
    let mut adam = Adam::new(&spectrum, settings.lr).unwrap();
    let pair = |v: &serde_json::Value| (v[0].as_i64().unwrap(), v[1].as_i64().unwrap());
    for (step, d) in meta["adam_draws"].as_array().unwrap().iter().enumerate() {
        let draws = Draws {
            jitter8: pair(&d[0]),
            scale: d[1].as_f64().unwrap(),
            angle: d[2].as_i64().unwrap(),
            jitter4: pair(&d[3]),
        };
        let before = spectrum.detach().copy();
        let activation = featvis::adam_step(&pipeline, &fft, &mut spectrum, &mut adam, &draws, &settings).unwrap();
        let k = step + 1;
        let loss = t[&format!("loss{k}")].double_value(&[0]);
        assert!(loss.abs() > 0.1, "step {k}: Lucent's loss {loss} is near zero");
        assert!(
            (activation + loss).abs() <= 1e-4 * loss.abs(),
            "step {k}: activation {activation}, Lucent's loss {loss}"
        );
        let theirs = &t[&format!("param{k}")];
        // Adam moves each entry by about lr: far above the tolerance.
        let moved = max_difference(theirs, &before);
        assert!(moved > 0.01, "step {k}: Lucent's parameter moved by {moved} only");
        assert_within(&format!("parameter after step {k}"), &spectrum.detach(), theirs, TOLERANCE);
        let fast_activation =
            featvis::adam_step(&pipeline, &fft, &mut fast, &mut fast_adam, &draws, &fast_settings).unwrap();
        assert!((fast_activation - activation).abs() <= 1e-4 * activation.abs(), "step {k}: sliced activation");
        assert_within(&format!("sliced tail's parameter after step {k}"), &fast.detach(), theirs, TOLERANCE);
    }
}

#[test]
fn objective_over_three_seeds_is_within_20_percent_of_lucents() {
    let meta = meta();
    let (model, spec) = lite0();
    let node = featvis::resolve_node(model.graph(), meta["adam_node"].as_str().unwrap()).unwrap();
    let channel = meta["adam_channel"].as_i64().unwrap();
    let seeds = meta["seeds"].as_array().unwrap();
    assert_eq!(seeds.len(), 3);
    let theirs = seeds.iter().map(|s| s["activation"].as_f64().unwrap()).sum::<f64>() / 3.0;
    assert!(theirs > 1.0, "Lucent's mean activation {theirs} is too small to compare");
    let mut ours = Vec::new();
    for s in seeds {
        let settings = Settings {
            steps: meta["seed_steps"].as_u64().unwrap() as usize,
            size: meta["seed_size"].as_i64().unwrap(),
            seed: s["seed"].as_i64().unwrap(),
            preview_every: 0,
            ..Settings::default()
        };
        let mut control = Control { progress: &mut |_| {}, interrupt: &|| false };
        let run =
            featvis::visualize(&model, &spec.preprocess, node, &[channel], &settings, &mut control).unwrap().unwrap();
        ours.push(run.activations[0]);
    }
    let mean = ours.iter().sum::<f64>() / 3.0;
    let ratio = mean / theirs;
    eprintln!(
        "final activation over three seeds: ours {ours:?} (mean {mean:.3}), Lucent's mean {theirs:.3}, ratio {ratio:.3}"
    );
    assert!((0.8..=1.2).contains(&ratio), "ours {mean} against Lucent's {theirs}: ratio {ratio}");
}

#[test]
fn optimisation_raises_or_lowers_the_channel_on_a_grey_network() {
    // LeNet-5 (one input channel: no colour decorrelation), random weights.
    let spec = zoo::find("lenet5").unwrap();
    let model = Model::random(spec.graph(), Device::Cpu, 1).unwrap();
    let node = model.graph().node_id("tanh2").unwrap();
    let run = |objective| {
        let settings = Settings { steps: 48, size: 32, seed: 2, objective, preview_every: 0, ..Settings::default() };
        let mut first = None;
        let mut control = Control {
            progress: &mut |p| {
                first.get_or_insert(p.activation);
            },
            interrupt: &|| false,
        };
        let v = featvis::visualize(&model, &spec.preprocess, node, &[3], &settings, &mut control).unwrap().unwrap();
        assert_eq!(v.images.size(), [1, 1, 32, 32]);
        (first.unwrap(), *v.curve.last().unwrap())
    };
    let (start, end) = run(Objective::Maximise);
    assert!(end > start + 0.02, "maximising went from {start} to {end}");
    let (start, end) = run(Objective::Minimise);
    assert!(end < start - 0.02, "minimising went from {start} to {end}");
}

#[test]
fn progress_previews_stop_and_errors() {
    let spec = zoo::find("lenet5").unwrap();
    let model = Model::random(spec.graph(), Device::Cpu, 1).unwrap();
    let graph = model.graph().clone();
    let node = graph.node_id("conv2").unwrap();
    let settings = Settings { steps: 5, size: 16, preview_every: 2, ..Settings::default() };

    // A batch of channels, one image each; previews at 2, 4 and the last step.
    let mut steps = Vec::new();
    let mut previews = Vec::new();
    let mut control = Control {
        progress: &mut |p| {
            steps.push(p.step);
            if let Some(image) = p.preview {
                previews.push((p.step, image.size()));
            }
        },
        interrupt: &|| false,
    };
    let v = featvis::visualize(&model, &spec.preprocess, node, &[0, 5, 15], &settings, &mut control).unwrap().unwrap();
    assert_eq!(steps, [1, 2, 3, 4, 5]);
    assert_eq!(previews, [(2, vec![3, 1, 16, 16]), (4, vec![3, 1, 16, 16]), (5, vec![3, 1, 16, 16])]);
    assert_eq!(v.channels, [0, 5, 15]);
    assert_eq!(v.activations.len(), 3);
    let (lo, hi) = (v.images.min().double_value(&[]), v.images.max().double_value(&[]));
    assert!((0.0..=1.0).contains(&lo) && (0.0..=1.0).contains(&hi) && hi > lo);

    // Diversity: four images of one channel, different from each other.
    let diverse = Settings { objective: Objective::Diversity, ..settings.clone() };
    let mut control = Control { progress: &mut |_| {}, interrupt: &|| false };
    let v = featvis::visualize(&model, &spec.preprocess, node, &[2], &diverse, &mut control).unwrap().unwrap();
    assert_eq!(v.images.size(), [4, 1, 16, 16]);
    assert!(max_difference(&v.images.get(0), &v.images.get(1)) > 1e-3);

    // Stopped before the third step: no result.
    let asked = Cell::new(0);
    let mut control = Control {
        progress: &mut |_| {},
        interrupt: &|| {
            asked.set(asked.get() + 1);
            asked.get() > 2
        },
    };
    assert!(featvis::visualize(&model, &spec.preprocess, node, &[0], &settings, &mut control).unwrap().is_none());
    assert_eq!(asked.get(), 3);

    // Errors, not panics.
    let mut control = Control { progress: &mut |_| {}, interrupt: &|| false };
    let mut error = |node, channels: &[i64], settings: &Settings| {
        featvis::visualize(&model, &spec.preprocess, node, channels, settings, &mut control).err().unwrap().to_string()
    };
    assert!(error(node, &[16], &settings).contains("no channel 16"));
    assert!(error(graph.node_id("fc2").unwrap(), &[0], &settings).contains("spatial"));
    assert!(error(node, &[0, 1], &diverse).contains("one channel"));
    assert!(error(node, &[0], &Settings { steps: 0, ..settings.clone() }).contains("steps"));
    assert!(error(node, &[], &settings).contains("no channel"));
}

#[test]
fn png_grid_lays_images_out_in_rows() {
    let images = Tensor::cat(
        &[
            Tensor::zeros([2, 3, 4, 5], (Kind::Float, Device::Cpu)),
            Tensor::ones([1, 3, 4, 5], (Kind::Float, Device::Cpu)),
        ],
        0,
    );
    let grid = featvis::grid(&images, 2, 1).unwrap();
    assert_eq!(grid.dimensions(), (11, 9));
    assert_eq!(grid.get_pixel(0, 0).0, [0, 0, 0]);
    assert_eq!(grid.get_pixel(5, 0).0, [255, 255, 255]); // the gap
    assert_eq!(grid.get_pixel(0, 5).0, [255, 255, 255]); // the third image, white
    assert_eq!(grid.get_pixel(6, 5).0, [255, 255, 255]); // no fourth: background
}
