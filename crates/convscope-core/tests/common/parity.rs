//! Parity with the reference implementations: the same state-dict keys, the same parameter
//! count, logits and every recorded intermediate output within rtol 1e-4 / atol 1e-4, and
//! gradient norms within 1e-3 relative; with residuals on, and switched off.
//!
//! The reference side comes from tests/fixtures/make_fixtures.py; this side runs exactly
//! what `convscope export --grads` runs (`export::named_tensors`).

use std::collections::HashMap;

use convscope_core::engine::{self, WeightsChoice};
use convscope_core::executor::{Layout, RunOptions};
use convscope_core::export::{self, Contents};
use convscope_core::graph::Graph;
use tch::{Device, Tensor};

use super::{assert_close, fixture_dir, read, scalar};

const RTOL: f64 = 1e-4;
const ATOL: f64 = 1e-4;
const GRAD_RTOL: f64 = 1e-3;

/// Our export key for a reference module: the node of that name, or the block's output.
fn our_key(graph: &Graph, module: &str) -> Option<String> {
    if graph.node_id(module).is_some() {
        return Some(module.to_owned());
    }
    let block = graph.block_id(module)?;
    graph.block_output(block).map(|id| graph.nodes[id].name.clone())
}

/// What `convscope export --grads [--no-skip all]` writes for the fixture's weights and input.
fn export(arch: &str, no_skip: bool) -> HashMap<String, Tensor> {
    let dir = fixture_dir(arch);
    let spec = convscope_core::zoo::find(arch).unwrap();
    let weights = WeightsChoice::File(dir.join("weights.safetensors"));
    let (model, _) = engine::load_model(&spec, &weights, Device::Cpu).unwrap();
    let input = engine::tensor_input(&dir.join("input.safetensors")).unwrap();
    let disabled_residuals =
        if no_skip { model.graph().resolve_residuals(&["all".into()]).unwrap() } else { Vec::new() };
    let opts = RunOptions { disabled_residuals, ..RunOptions::default() };
    let contents = Contents::WithGradients { target: None };
    export::named_tensors(&model, &input, &opts, contents).unwrap().into_iter().collect()
}

pub fn check_arch(arch: &str) {
    let dir = fixture_dir(arch);
    let spec = convscope_core::zoo::find(arch).unwrap();
    let graph = spec.graph();
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("meta.json")).unwrap()).unwrap();

    // Same parameter count and the same state-dict keys.
    assert_eq!(graph.parameter_count(), meta["params"].as_i64().unwrap(), "{arch}: parameter count");
    let reference_keys: std::collections::BTreeSet<String> =
        read(&dir.join("weights.safetensors")).into_keys().filter(|k| !k.ends_with("num_batches_tracked")).collect();
    let our_keys: std::collections::BTreeSet<String> = graph.params.iter().map(|p| p.key.clone()).collect();
    assert_eq!(our_keys, reference_keys, "{arch}: state-dict keys");

    let reference = read(&dir.join("reference.safetensors"));
    let variants: &[(bool, &str)] =
        if meta["has_residuals"].as_bool().unwrap() { &[(false, ""), (true, "noskip.")] } else { &[(false, "")] };
    for &(no_skip, prefix) in variants {
        let ours = export(arch, no_skip);
        let label = |what: &str| format!("{arch}{}: {what}", if no_skip { " without residuals" } else { "" });
        assert_close(&label("logits"), &ours["logits"], &reference[&format!("{prefix}logits")], RTOL, ATOL);
        check_plain_forward(arch, no_skip, &ours["logits"], &reference[&format!("{prefix}logits")], &label);
        assert_eq!(
            Vec::<i64>::try_from(&ours["target"]).unwrap(),
            Vec::<i64>::try_from(&reference[&format!("{prefix}target")]).unwrap(),
            "{}",
            label("predicted classes")
        );

        let mut compared = 0;
        for module in meta["recorded"].as_array().unwrap().iter().map(|m| m.as_str().unwrap()) {
            let Some(key) = our_key(&graph, module) else {
                panic!("{}: reference module {module} has no node or block here", label("outputs"));
            };
            let Some(theirs) = reference.get(&format!("{prefix}out.{module}")) else {
                // A module the no-skip forward does not run (a downsample branch).
                assert!(no_skip && module.contains("downsample"), "{}: {module} missing", label("reference"));
                continue;
            };
            assert_close(&label(module), &ours[&key], theirs, RTOL, ATOL);
            compared += 1;

            let grad_key = format!("{prefix}grad_norm.{module}");
            if let Some(theirs) = reference.get(&grad_key) {
                let mine = ours.get(&format!("grad_norm.{key}")).unwrap_or_else(|| panic!("no gradient for {key}"));
                let (a, b) = (scalar(mine), scalar(theirs));
                assert!(
                    (a - b).abs() <= GRAD_RTOL * b.abs() + 1e-9,
                    "{}: {a:e} vs {b:e}",
                    label(&format!("gradient norm at {module}"))
                );
            }
        }
        assert!(compared >= graph.params.len() / 3, "{}: only {compared} outputs compared", label("outputs"));

        let (a, b) = (scalar(&ours["grad_norm.input"]), scalar(&reference[&format!("{prefix}grad_norm.input")]));
        assert!((a - b).abs() <= GRAD_RTOL * b.abs() + 1e-12, "{}: {a:e} vs {b:e}", label("input gradient norm"));

        let mut param_grads = 0;
        for spec in graph.params.iter().filter(|p| p.trainable) {
            let ours_norm = ours.get(&format!("param_grad_norm.{}", spec.key)).map(scalar).unwrap_or(0.0);
            let theirs = reference.get(&format!("{prefix}param_grad_norm.{}", spec.key)).map(scalar).unwrap_or(0.0);
            assert!(
                (ours_norm - theirs).abs() <= GRAD_RTOL * theirs.abs() + 1e-9,
                "{}: {ours_norm:e} vs {theirs:e}",
                label(&format!("gradient norm of {}", spec.key))
            );
            param_grads += 1;
        }
        assert!(param_grads > 0);
    }
}

/// Plain forward (`classify`'s path) on the same weights and input: in the reference layout
/// it gives the export's logits bit for bit; in the fast channels-last one, logits within
/// 1e-4 of the reference's (plus 1e-6 of the largest logit).
fn check_plain_forward(arch: &str, no_skip: bool, exported: &Tensor, theirs: &Tensor, label: &dyn Fn(&str) -> String) {
    let dir = fixture_dir(arch);
    let spec = convscope_core::zoo::find(arch).unwrap();
    let weights = WeightsChoice::File(dir.join("weights.safetensors"));
    let (model, _) = engine::load_model(&spec, &weights, Device::Cpu).unwrap();
    let input = engine::tensor_input(&dir.join("input.safetensors")).unwrap();
    let disabled_residuals =
        if no_skip { model.graph().resolve_residuals(&["all".into()]).unwrap() } else { Vec::new() };
    let run = |layout| {
        let opts = RunOptions { disabled_residuals: disabled_residuals.clone(), layout, ..RunOptions::default() };
        model.forward(&input, &opts).unwrap()
    };
    let reference_layout = run(Layout::Reference);
    assert!(reference_layout.equal(exported), "{}", label("plain forward in the reference layout is not bit for bit"));
    // Summing in another order errs in proportion to the largest values the network makes,
    // not to each logit: a randomly initialised Inception v3's logits reach 1.7e12, where the
    // fast layout is 6e-7 off relative to them. Hence 1e-6 of the largest logit on top of the
    // usual tolerance, which for real logits (tens at most) adds under 1e-4.
    let scale = theirs.abs().max().double_value(&[]);
    assert_close(&label("plain forward, fast layout"), &run(Layout::Fast), theirs, RTOL, ATOL + 1e-6 * scale);
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
