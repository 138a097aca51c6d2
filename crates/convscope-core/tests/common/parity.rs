//! Parity with the reference implementations: the same state-dict keys, the same parameter
//! count, logits and every recorded intermediate output within rtol 1e-4 / atol 1e-4, and
//! gradient norms within 1e-3 relative; with residuals on, and switched off.
//!
//! The reference side comes from tests/fixtures/make_fixtures.py (its docstring gives the
//! format): weights of order one, batch norms calibrated on the input, logits of order one, and
//! a loss target ranked in the middle of the logits, so that every gradient compared here is
//! well above zero (this side checks that too). The big weight tensors are not stored but
//! regenerated from their seed with the same libtorch, bit for bit (checked by their
//! SHA-256). This side runs exactly what `convscope export --grads` runs
//! (`export::named_tensors`) on a weights file holding the whole state dict.

use std::collections::{BTreeSet, HashMap};

use convscope_core::engine::{self, WeightsChoice};
use convscope_core::executor::{Layout, Model, RunOptions, Targets};
use convscope_core::export::{self, Contents};
use convscope_core::graph::Graph;
use sha2::{Digest, Sha256};
use tch::{Device, Kind, Tensor};

use super::{assert_close, fixture_dir, read, scalar};

/// Where a parity check runs and how close it must come.
#[derive(Clone, Copy, Debug)]
pub struct Check {
    pub device: Device,
    /// Outputs and logits: `|ours - theirs| <= atol + rtol * |theirs|`.
    pub rtol: f64,
    pub atol: f64,
    /// Gradient norms, relative.
    pub grad_rtol: f64,
}

impl Check {
    /// The CPU: the reference's own kernels, 1e-4.
    pub const CPU: Check = Check { device: Device::Cpu, rtol: 1e-4, atol: 1e-4, grad_rtol: 1e-3 };
    /// `make test-cuda`: cuDNN's kernels sum in other orders than the CPU reference, 1e-3.
    pub const CUDA: Check = Check { device: Device::Cuda(0), rtol: 1e-3, atol: 1e-3, grad_rtol: 1e-3 };
}
/// A reference gradient norm at or below this compares nothing worth having.
const GRAD_FLOOR: f64 = 1e-6;
/// The share of reference gradient norms that must be above the floor, per variant.
const ABOVE_FLOOR: f64 = 0.9;

/// Our export key for a reference module: the node of that name, or the block's output.
fn our_key(graph: &Graph, module: &str) -> Option<String> {
    if graph.node_id(module).is_some() {
        return Some(module.to_owned());
    }
    let block = graph.block_id(module)?;
    graph.block_output(block).map(|id| graph.nodes[id].name.clone())
}

/// One architecture's fixture, with its whole state dict written where `--weights` can read it.
struct Fixture {
    meta: serde_json::Value,
    /// Every key of the reference's state dict.
    keys: BTreeSet<String>,
    weights: tempfile::TempPath,
    input: Tensor,
    reference: HashMap<String, Tensor>,
}

impl Fixture {
    fn load(arch: &str) -> Self {
        let dir = fixture_dir(arch);
        let meta: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("meta.json")).unwrap()).unwrap();
        let (weights, keys) = whole_state_dict(arch, &meta);
        let input = engine::tensor_input(&dir.join("input.safetensors")).unwrap();
        let reference = read(&dir.join("reference.safetensors"));
        Self { meta, keys, weights, input, reference }
    }

    fn model(&self, arch: &str, device: Device) -> Model {
        let spec = convscope_core::zoo::find(arch).unwrap();
        engine::load_model(&spec, &WeightsChoice::File(self.weights.to_path_buf()), device).unwrap().0
    }

    /// The reference's loss target, per sample (the same with residuals off).
    fn targets(&self, prefix: &str) -> Vec<i64> {
        Vec::<i64>::try_from(&self.reference[&format!("{prefix}target")]).unwrap()
    }
}

/// A fixture's whole state dict, its stored tensors and those regenerated from their seeds
/// (each proved the fixture's by its SHA-256), written where `--weights` can read it; with
/// every key. `meta` is the fixture's meta.json.
pub fn whole_state_dict(arch: &str, meta: &serde_json::Value) -> (tempfile::TempPath, BTreeSet<String>) {
    let dir = fixture_dir(arch);
    let mut state: Vec<(String, Tensor)> = read(&dir.join("weights.safetensors")).into_iter().collect();
    let generated = meta["generated"].as_object().expect("meta.json lists the generated tensors");
    for (key, recipe) in generated {
        let tensor = regenerate(recipe);
        let expected = recipe["sha256"].as_str().unwrap();
        assert_eq!(
            sha256_of(&tensor),
            expected,
            "{arch}: {key} regenerated from its seed differs from the fixture's (make the fixtures again on this machine)"
        );
        state.push((key.clone(), tensor));
    }
    let keys = state.iter().map(|(k, _)| k.clone()).collect();
    let weights = tempfile::Builder::new().suffix(".safetensors").tempfile().unwrap().into_temp_path();
    Tensor::write_safetensors(&state, &weights).unwrap();
    (weights, keys)
}

/// `torch.manual_seed(seed); torch.randn(shape) * std`, as make_fixtures.py generates it; under
/// the engine's lock on libtorch's one generator, which `Model::random` in another test of the
/// same binary also takes.
fn regenerate(recipe: &serde_json::Value) -> Tensor {
    let shape: Vec<i64> = recipe["shape"].as_array().unwrap().iter().map(|d| d.as_i64().unwrap()).collect();
    convscope_core::executor::seeded(recipe["seed"].as_i64().unwrap(), || {
        Tensor::randn(shape.as_slice(), (Kind::Float, Device::Cpu))
    }) * recipe["std"].as_f64().unwrap()
}

/// The SHA-256 of a float32 tensor's little-endian bytes, in row-major order.
pub fn sha256_of(tensor: &Tensor) -> String {
    let values = Vec::<f32>::try_from(&tensor.contiguous().view([-1])).unwrap();
    let mut hasher = Sha256::new();
    for chunk in values.chunks(1 << 16) {
        let bytes: Vec<u8> = chunk.iter().flat_map(|v| v.to_le_bytes()).collect();
        hasher.update(&bytes);
    }
    hasher.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// What `convscope export --grads [--no-skip all]` writes for the fixture's weights, input
/// and targets.
fn export(model: &Model, fixture: &Fixture, no_skip: bool, targets: Vec<i64>) -> HashMap<String, Tensor> {
    let opts = RunOptions { disabled_residuals: switched_off(model, no_skip), ..RunOptions::default() };
    let targets = Targets::PerSample(targets.into_iter().map(Some).collect());
    let contents = Contents::WithGradients { targets };
    let input = fixture.input.to_device(model.device());
    export::named_tensors(model, &input, &opts, contents).unwrap().into_iter().collect()
}

fn switched_off(model: &Model, no_skip: bool) -> Vec<usize> {
    if no_skip { model.graph().resolve_residuals(&["all".into()]).unwrap() } else { Vec::new() }
}

/// Counts reference gradient norms, and those above the floor.
#[derive(Default)]
struct Floors {
    compared: usize,
    above: usize,
}

impl Floors {
    fn count(&mut self, reference: f64) {
        self.compared += 1;
        self.above += usize::from(reference > GRAD_FLOOR);
    }

    #[track_caller]
    fn assert_meaningful(&self, what: &str) {
        assert!(self.compared > 0, "{what}: nothing compared");
        assert!(
            self.above as f64 >= ABOVE_FLOOR * self.compared as f64,
            "{what}: only {} of {} reference gradient norms are above {GRAD_FLOOR:e}: the check would compare zeros",
            self.above,
            self.compared
        );
    }
}

#[track_caller]
fn assert_grad_close(what: &str, ours: f64, theirs: f64, grad_rtol: f64) {
    // The reference norms are of order one or well above the floor (checked by `Floors`); the
    // tiny absolute term only spares the few exact zeros, where both sides must say zero.
    assert!((ours - theirs).abs() <= grad_rtol * theirs.abs() + 1e-12, "{what}: {ours:e} vs {theirs:e}");
}

/// The whole parity check of one architecture on the CPU.
pub fn check_arch(arch: &str) {
    check_arch_on(arch, Check::CPU);
}

pub fn check_arch_on(arch: &str, check: Check) {
    let Check { device, rtol, atol, grad_rtol } = check;
    let fixture = Fixture::load(arch);
    let spec = convscope_core::zoo::find(arch).unwrap();
    let graph = spec.graph();
    let meta = &fixture.meta;

    // Same parameter count and the same state-dict keys.
    assert_eq!(graph.parameter_count(), meta["params"].as_i64().unwrap(), "{arch}: parameter count");
    let reference_keys: BTreeSet<&String> =
        fixture.keys.iter().filter(|k| !k.ends_with("num_batches_tracked")).collect();
    let our_keys: BTreeSet<&String> = graph.params.iter().map(|p| &p.key).collect();
    assert_eq!(our_keys, reference_keys, "{arch}: state-dict keys");

    let model = fixture.model(arch, device);
    let variants: &[(bool, &str)] =
        if meta["has_residuals"].as_bool().unwrap() { &[(false, ""), (true, "noskip.")] } else { &[(false, "")] };
    for &(no_skip, prefix) in variants {
        let reference = |key: &str| fixture.reference.get(&format!("{prefix}{key}"));
        let targets = fixture.targets(prefix);
        let ours = export(&model, &fixture, no_skip, targets.clone());
        let label = |what: &str| format!("{arch}{}: {what}", if no_skip { " without residuals" } else { "" });
        let theirs_logits = reference("logits").unwrap();
        assert_close(&label("logits"), &ours["logits"], theirs_logits, rtol, atol);
        check_plain_forward(&model, &fixture, no_skip, &ours["logits"], theirs_logits, check, &label);
        assert_eq!(Vec::<i64>::try_from(&ours["target"]).unwrap(), targets, "{}", label("loss targets"));

        let mut compared = 0;
        let mut node_floors = Floors::default();
        for module in meta["recorded"].as_array().unwrap().iter().map(|m| m.as_str().unwrap()) {
            let Some(key) = our_key(&graph, module) else {
                panic!("{}: reference module {module} has no node or block here", label("outputs"));
            };
            let Some(theirs) = reference(&format!("out.{module}")) else {
                // A module the no-skip forward does not run (a downsample branch).
                assert!(no_skip && module.contains("downsample"), "{}: {module} missing", label("reference"));
                continue;
            };
            assert_close(&label(module), &ours[&key], theirs, rtol, atol);
            compared += 1;

            if let Some(theirs) = reference(&format!("grad_norm.{module}")) {
                let mine = ours.get(&format!("grad_norm.{key}")).unwrap_or_else(|| panic!("no gradient for {key}"));
                node_floors.count(scalar(theirs));
                assert_grad_close(
                    &label(&format!("gradient norm at {module}")),
                    scalar(mine),
                    scalar(theirs),
                    grad_rtol,
                );
            }
        }
        assert!(compared >= graph.params.len() / 3, "{}: only {compared} outputs compared", label("outputs"));
        node_floors.assert_meaningful(&label("node gradients"));

        let theirs_input = scalar(reference("grad_norm.input").expect("the reference has the input's gradient"));
        assert!(theirs_input > GRAD_FLOOR, "{}: {theirs_input:e}", label("the reference's input gradient"));
        assert_grad_close(&label("input gradient norm"), scalar(&ours["grad_norm.input"]), theirs_input, grad_rtol);

        let mut param_floors = Floors::default();
        for spec in graph.params.iter().filter(|p| p.trainable) {
            let what = label(&format!("gradient norm of {}", spec.key));
            let theirs =
                scalar(reference(&format!("param_grad_norm.{}", spec.key)).unwrap_or_else(|| {
                    panic!("{what}: the reference has none (it records every trainable parameter)")
                }));
            match ours.get(&format!("param_grad_norm.{}", spec.key)) {
                Some(mine) => {
                    param_floors.count(theirs);
                    assert_grad_close(&what, scalar(mine), theirs, grad_rtol);
                }
                // Only a parameter neither side ran (a switched-off shortcut's projection, an
                // auxiliary classifier outside training) has no norm here, and 0 there.
                None => assert_eq!(theirs, 0.0, "{what}: convscope has no gradient, the reference has"),
            }
        }
        param_floors.assert_meaningful(&label("parameter gradients"));
    }
}

/// Plain forward (`classify`'s path) on the same weights and input: in the reference layout
/// it gives the export's logits bit for bit; in the fast channels-last one, logits within the
/// same 1e-4 of the reference's (the fixtures' logits are of order one, and make_fixtures.py
/// checks that float32 itself is well within this of float64 for every case).
fn check_plain_forward(
    model: &Model,
    fixture: &Fixture,
    no_skip: bool,
    exported: &Tensor,
    theirs: &Tensor,
    check: Check,
    label: &dyn Fn(&str) -> String,
) {
    let input = fixture.input.to_device(model.device());
    let run = |layout| {
        let opts = RunOptions { disabled_residuals: switched_off(model, no_skip), layout, ..RunOptions::default() };
        model.forward(&input, &opts).unwrap().to_device(Device::Cpu)
    };
    let reference_layout = run(Layout::Reference);
    if check.device == Device::Cpu {
        assert!(
            reference_layout.equal(exported),
            "{}",
            label("plain forward in the reference layout is not bit for bit")
        );
    } else {
        // cuDNN may pick other algorithms for a run that frees and overwrites its values.
        assert_close(&label("plain forward, reference layout"), &reference_layout, theirs, check.rtol, check.atol);
    }
    assert_close(&label("plain forward, fast layout"), &run(Layout::Fast), theirs, check.rtol, check.atol);
}

/// Each `(arch, parameters, MACs at the native input)` is the reference's published figure:
/// the parameter count must be equal, the MACs within 2%.
pub fn assert_reference_figures(figures: &[(&str, i64, f64)]) {
    for &(arch, params, macs) in figures {
        let spec = convscope_core::zoo::find(arch).unwrap();
        let graph = spec.graph();
        assert_eq!(graph.parameter_count(), params, "{arch}: parameters");
        let [_, h, w] = spec.input;
        let ours = graph.infer_shapes(h, w).unwrap().total_macs() as f64;
        assert!((ours / macs - 1.0).abs() <= 0.02, "{arch}: {ours:e} MACs at {h}×{w}, the reference says {macs:e}");
    }
}
