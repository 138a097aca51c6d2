//! The gradient flow's two modes: every network has a gradient at every layer in its default
//! mode, the training step shows He et al.'s lesson about residual connections, and its
//! numbers are PyTorch's `model.train()` ones.

mod common;

use std::time::Instant;

use convscope_core::engine::batch::{self, BatchImage, BatchKind};
use convscope_core::engine::{self, GradientSettings, WeightsChoice};
use convscope_core::executor::{GradientMode, GradientOptions, GradientReport, Model, Objective, RunOptions, Targets};
use convscope_core::graph::{Graph, Op};
use convscope_core::{paths, preprocess, zoo};
use tch::Device;

/// One intra-op thread: the tests of this file run side by side on a machine of two cores
/// shared with other work, where libtorch's threads waiting on each other at every small
/// operation cost ten times the arithmetic (DenseNet-121's pass: 15 s on two threads, 1.5 s
/// on one, measured under load).
fn one_thread() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| tch::set_num_threads(1));
}

/// The first convolution's weight-gradient norm over the last one's.
fn first_last_ratio(graph: &Graph, report: &GradientReport) -> f64 {
    let conv_weights: Vec<usize> = graph
        .params
        .iter()
        .enumerate()
        .filter(|(_, p)| matches!(graph.nodes[p.node].op, Op::Conv2d(_)) && p.key.ends_with(".weight"))
        .map(|(i, _)| i)
        .collect();
    let norm = |i: usize| report.param_grad_norms[i].expect("a convolution's weight has a gradient");
    let (first, last) = (conv_weights[0], conv_weights[conv_weights.len() - 1]);
    norm(first) / norm(last)
}

/// The geometric mean over three initialisations of the first/last ratio of a training step
/// on 128 MNIST digits, with `switches` off.
fn training_step_ratio(arch: &str, switches: &[&str]) -> (f64, Vec<f64>) {
    let spec = zoo::find(arch).unwrap();
    let (input, labels) = batch::digits(&spec, 128, batch::BATCH_SEED).unwrap();
    let targets = Targets::PerSample(labels.into_iter().map(Some).collect());
    let pass = GradientOptions { mode: GradientMode::TrainingStep, ..GradientOptions::default() };
    let ratios: Vec<f64> = (0..3)
        .map(|seed| {
            let model = Model::random(spec.graph(), Device::Cpu, seed).unwrap();
            let names: Vec<String> = switches.iter().map(|s| (*s).to_owned()).collect();
            let disabled_residuals = model.graph().resolve_residuals(&names).unwrap_or_default();
            let opts = RunOptions { disabled_residuals, ..RunOptions::default() };
            let report = model.gradient_pass(&input, &targets, &opts, &pass, &|| false).unwrap().unwrap();
            assert!(!report.saturated && report.loss.is_finite(), "{arch} seed {seed}: loss {}", report.loss);
            first_last_ratio(model.graph(), &report)
        })
        .collect();
    let mean = (ratios.iter().map(|r| r.ln()).sum::<f64>() / ratios.len() as f64).exp();
    (mean, ratios)
}

/// He et al. 2016 (§4.2, Fig. 6), in the gradient of one training step at initialisation:
/// through 56 layers the plain network's gradient grows toward the input by well over an
/// order of magnitude, the residual network's stays within one of the last layer's, and
/// switching the residual network's shortcuts off makes it a plain network again.
#[test]
fn residual_connections_keep_a_training_step_s_gradient_flat_through_depth() {
    one_thread();
    let start = Instant::now();
    let (res56, res56_each) = training_step_ratio("resnet56", &[]);
    let (plain56, plain56_each) = training_step_ratio("plain56", &[]);
    let (res56_off, res56_off_each) = training_step_ratio("resnet56", &["all"]);
    let (res20, _) = training_step_ratio("resnet20", &[]);
    let (plain20, _) = training_step_ratio("plain20", &[]);
    eprintln!(
        "first/last conv weight-gradient norm, training step on 128 digits, 3 seeds: \
         res-56 {res56:.3} {res56_each:.3?}, plain-56 {plain56:.1} {plain56_each:.1?}, \
         res-56 without shortcuts {res56_off:.1} {res56_off_each:.1?}, res-20 {res20:.3}, plain-20 {plain20:.3} \
         ({:.1} s)",
        start.elapsed().as_secs_f64()
    );
    assert!((0.1..=10.0).contains(&res56), "res-56: {res56}");
    assert!(plain56 > 30.0, "plain-56: {plain56}");
    // Toward plain-56: at least a third of the way there on a log scale, and above ten.
    assert!(
        res56_off > 10.0 && res56_off.ln() - res56.ln() > (plain56.ln() - res56.ln()) / 3.0,
        "res-56 without shortcuts: {res56_off} (with: {res56}, plain-56: {plain56})"
    );
    assert!(plain20 > res20, "plain-20 {plain20} against res-20 {res20}");
    // The shortcuts are parameter-free (option A), so res-56 with every one off is plain-56 with
    // the same weights: the same gradient.
    for (off, plain) in res56_off_each.iter().zip(&plain56_each) {
        assert!((off - plain).abs() <= 1e-6 * plain, "res-56 without shortcuts {off} against plain-56 {plain}");
    }
}

/// Whether a training step's pass changes the model: it must not (the running statistics are
/// neither read nor updated), and a second pass gives the same numbers.
#[test]
fn a_training_step_leaves_the_model_as_it_was() {
    one_thread();
    let spec = zoo::find("resnet20").unwrap();
    let model = Model::random(spec.graph(), Device::Cpu, 3).unwrap();
    let before: Vec<tch::Tensor> = model.params().iter().map(|p| p.detach().copy()).collect();
    let (input, labels) = batch::digits(&spec, 16, 1).unwrap();
    let targets = Targets::PerSample(labels.into_iter().map(Some).collect());
    let pass = GradientOptions { mode: GradientMode::TrainingStep, ..GradientOptions::default() };
    let first = model.gradient_pass(&input, &targets, &RunOptions::default(), &pass, &|| false).unwrap().unwrap();
    for (p, b) in model.params().iter().zip(&before) {
        assert!(p.equal(b), "a training step's pass changed a parameter or running statistic");
    }
    let again = model.gradient_pass(&input, &targets, &RunOptions::default(), &pass, &|| false).unwrap().unwrap();
    assert_eq!(first.node_grad_norms, again.node_grad_norms);
    let inference =
        model.gradient_pass(&input, &targets, &RunOptions::default(), &GradientOptions::default(), &|| false).unwrap();
    let inference = inference.unwrap();
    assert_ne!(first.loss, inference.loss, "the training step normalises with the batch's statistics");
    // The logit objective differentiates the targets' logits: its gradient at the logits is
    // 1/N at each sample's target.
    let logit = GradientOptions { objective: Objective::Logit, ..pass };
    let by_logit = model.gradient_pass(&input, &targets, &RunOptions::default(), &logit, &|| false).unwrap().unwrap();
    let at_logits = by_logit.node_grad_norms[model.graph().output].unwrap();
    assert!((at_logits - 1.0 / 4.0).abs() < 1e-6, "‖∂mean logit/∂logits‖ = √16/16, got {at_logits}");
    assert_eq!(by_logit.loss, first.loss, "the loss is reported whatever the objective");
}

/// A softmax saturated at its target: the cross-entropy's gradient underflows to exactly
/// zero and the report says so; the logit objective still has a gradient.
#[test]
fn a_saturated_loss_is_flagged_and_the_logit_objective_still_has_a_gradient() {
    one_thread();
    let spec = zoo::find("lenet5").unwrap();
    let model = Model::random(spec.graph(), Device::Cpu, 0).unwrap();
    // The classifier's bias decides the prediction whatever the input.
    {
        let _guard = tch::no_grad_guard();
        let graph = model.graph();
        let bias = graph.params.iter().position(|p| p.key == "fc2.bias").unwrap();
        let mut b = model.params()[bias].shallow_clone();
        let _ = b.fill_(0.0);
        let _ = b.get(3).fill_(1000.0);
    }
    tch::manual_seed(2);
    let input = tch::Tensor::randn([1, 1, 32, 32], (tch::Kind::Float, Device::Cpu));
    let loss = GradientOptions::default();
    let report = model.gradient_pass(&input, &Targets::All(None), &RunOptions::default(), &loss, &|| false).unwrap();
    let report = report.unwrap();
    assert_eq!(report.targets, vec![3]);
    assert!(report.saturated, "loss {}", report.loss);
    assert!(report.node_grad_norms.iter().flatten().all(|&n| n == 0.0));
    let logit = GradientOptions { objective: Objective::Logit, ..loss };
    let report = model.gradient_pass(&input, &Targets::All(None), &RunOptions::default(), &logit, &|| false).unwrap();
    let report = report.unwrap();
    assert!(!report.saturated);
    assert!(report.param_grad_norms.iter().flatten().all(|&n| n > 0.0 && n.is_finite()));
}

/// The weights the app and the command line use when none are asked for, on a fresh
/// checkout: LeNet-5 trained here (in git) and EfficientNet-Lite0 (the bootstrap converts
/// it); every other network random. The user's installed folder plays no part.
fn default_weights(id: &str) -> WeightsChoice {
    let bundled = paths::checkout().join("weights").join(format!("{id}.safetensors"));
    match id {
        "lenet5" | "efficientnet_lite0" if bundled.is_file() => WeightsChoice::File(bundled),
        _ => WeightsChoice::Random { seed: engine::DEFAULT_SEED },
    }
}

/// The samples a network's batch holds here: its default kind and mode, the default 128
/// digits, but at most 2 ImageNet-sized samples (the image and a photo), and the image alone
/// for the networks over 8 GMACs a sample, to keep the test's time in reason on two cores.
fn test_batch_size(spec: &zoo::ArchSpec) -> usize {
    let graph = spec.graph();
    let report = graph.infer_shapes(spec.input[1], spec.input[2]).unwrap();
    let macs = report.total_macs() - report.aux_macs();
    let imagenet = if macs > 8_000_000_000 { 1 } else { 2 };
    let default = batch::default_batch_size(spec, Device::Cpu);
    if matches!(spec.preprocess, preprocess::Preprocess::ImageNet { .. }) { default.min(imagenet) } else { default }
}

/// The promise: whatever network and weights, the default gradient flow of the
/// bundled cat has a finite, non-zero gradient at every layer with parameters.
#[test]
fn every_network_has_a_gradient_at_every_layer_in_its_default_mode() {
    one_thread();
    let decoded = preprocess::load_image(&paths::asset("chelsea.png")).unwrap();
    let mut failures = Vec::new();
    let start = Instant::now();
    for spec in zoo::all() {
        let started = Instant::now();
        let (model, _) = engine::load_model(&spec, &default_weights(spec.id), Device::Cpu).unwrap();
        let settings = GradientSettings { batch_size: Some(test_batch_size(&spec)), ..GradientSettings::default() };
        let settings = settings.resolve(&spec, &model);
        let mode = engine::default_gradient_mode(model.origin());
        assert_eq!(settings.options.mode, mode, "{}", spec.id);
        assert_eq!(settings.batch, engine::default_batch(mode), "{}", spec.id);
        let input = spec.preprocess.apply(&decoded).unwrap();
        let image = BatchImage { input: &input, decoded: Some(&decoded) };
        let flow = engine::gradient_flow(&model, &spec, &image, &settings, None, &RunOptions::default(), &|| false)
            .unwrap_or_else(|e| panic!("{}: {e}", spec.id))
            .unwrap();
        let (graph, report) = (model.graph(), &flow.report);
        let mut squared = vec![None::<f64>; graph.nodes.len()];
        for (p, norm) in graph.params.iter().zip(&report.param_grad_norms) {
            if let Some(n) = norm {
                *squared[p.node].get_or_insert(0.0) += n * n;
            }
        }
        let mut checked = 0;
        for (id, node) in graph.nodes.iter().enumerate() {
            let has_params = graph.params.iter().any(|p| p.node == id && p.trainable);
            let Some(node_norm) = report.node_grad_norms[id] else { continue };
            let param_norm = squared[id].map(f64::sqrt);
            if !node_norm.is_finite() || (has_params && !param_norm.is_some_and(|n| n.is_finite() && n > 0.0)) {
                failures
                    .push(format!("{}: {} has ‖∂/∂out‖ {node_norm:e}, ‖∂/∂params‖ {param_norm:?}", spec.id, node.name));
            }
            checked += usize::from(has_params);
        }
        assert!(checked > 0, "{}: no layer with parameters ran", spec.id);
        if report.saturated {
            failures.push(format!("{}: the loss saturated", spec.id));
        }
        eprintln!(
            "{:<22} {:<9} {} ({}), loss {:.3}, {checked} layers, {:.1} s",
            spec.id,
            settings.options.mode.id(),
            flow.batch.kind.id(),
            flow.batch.counts.total(),
            report.loss,
            started.elapsed().as_secs_f64()
        );
        if spec.input[1] > 32 && settings.batch == BatchKind::Dataset && flow.batch.counts.total() > 1 {
            assert!(flow.batch.counts.photos > 0, "{}: {}", spec.id, flow.batch.description);
        }
    }
    eprintln!("every network: {:.0} s", start.elapsed().as_secs_f64());
    assert!(failures.is_empty(), "{} layers without a gradient:\n{}", failures.len(), failures.join("\n"));
}

/// One architecture of every family, at a small valid input, with a batch of `n`; the
/// families with residual connections also with every one switched off.
const PARITY_CASES: &[(&str, i64, i64, bool)] = &[
    // (arch, batch, side, residual switches)
    ("lenet5", 8, 32, false),
    ("alexnet", 2, 96, false),
    ("vgg16_bn", 2, 64, false),
    ("googlenet", 2, 96, false),
    ("resnet18", 4, 64, true),
    ("resnet20", 16, 32, true),
    ("plain20", 16, 32, false),
    ("inception_resnet_v2", 2, 123, true),
    ("squeezenet1_1", 2, 96, false),
    ("densenet121", 2, 64, false),
    ("mobilenet_v1", 2, 96, false),
    ("mobilenet_v2", 2, 96, true),
    ("mobilenet_v3_small", 2, 96, true),
    ("shufflenet_v2_x0_5", 2, 96, false),
    ("efficientnet_b0", 2, 96, true),
    ("efficientnet_lite0", 2, 96, true),
];

/// Our node for a reference module: the node of that name, or the block's output.
fn our_node(graph: &Graph, module: &str) -> Option<usize> {
    graph.node_id(module).or_else(|| graph.block_id(module).and_then(|b| graph.block_output(b)))
}

/// A model with random weights whose batch norms are not at their initial values either, and
/// whose running statistics are far from the batch's: a training step that read them would
/// show.
fn randomised(arch: &str) -> Model {
    let spec = zoo::find(arch).unwrap();
    let model = Model::random(spec.graph(), Device::Cpu, 11).unwrap();
    let _guard = tch::no_grad_guard();
    tch::manual_seed(12);
    for (p, spec) in model.params().iter().zip(&model.graph().params) {
        if !matches!(model.graph().nodes[spec.node].op, Op::BatchNorm2d { .. }) {
            continue;
        }
        let mut p = p.shallow_clone();
        let _ = match spec.key.rsplit('.').next().unwrap() {
            "weight" => p.uniform_(0.5, 1.5),
            "bias" => p.normal_(0.0, 0.2),
            "running_mean" => p.normal_(0.0, 3.0),
            _ => p.uniform_(5.0, 9.0),
        };
    }
    model
}

/// In training-step mode, every node's and parameter's gradient norm is PyTorch's own of
/// `model.train()` with the batch norms' momentum at 0, within 1e-3 relative, on gradients
/// well above zero; the logits and loss within 1e-4.
#[test]
fn a_training_step_s_gradients_are_pytorch_s() {
    one_thread();
    let python = paths::venv_python();
    assert!(python.is_file(), "no venv at {}: run scripts/bootstrap.sh", python.display());
    let dir = tempfile::tempdir().unwrap();
    let start = Instant::now();
    let mut manifest = Vec::new();
    let mut ours = Vec::new();
    for &(arch, n, side, switches) in PARITY_CASES {
        let case_start = Instant::now();
        let model = randomised(arch);
        let weights = dir.path().join(format!("{arch}.weights.safetensors"));
        convscope_core::weights::save(&model, &weights).unwrap();
        let graph = model.graph().clone();
        tch::manual_seed(13);
        let input = tch::Tensor::randn([n, graph.input_channels(), side, side], (tch::Kind::Float, Device::Cpu));
        let classes = graph.infer_shapes(side, side).unwrap().nodes[graph.output].shape[0];
        let targets: Vec<i64> = (0..n).map(|i| (i * 7919 + 13) % classes).collect();
        let batch_path = dir.path().join(format!("{arch}.batch.safetensors"));
        tch::Tensor::write_safetensors(
            &[("input", &input), ("targets", &tch::Tensor::from_slice(&targets))],
            &batch_path,
        )
        .unwrap();
        let pass = GradientOptions { mode: GradientMode::TrainingStep, ..GradientOptions::default() };
        let targets = Targets::PerSample(targets.into_iter().map(Some).collect());
        for noskip in if switches { vec![false, true] } else { vec![false] } {
            let disabled_residuals =
                if noskip { graph.resolve_residuals(&["all".into()]).unwrap() } else { Vec::new() };
            let opts = RunOptions { disabled_residuals, ..RunOptions::default() };
            let report = model.gradient_pass(&input, &targets, &opts, &pass, &|| false).unwrap().unwrap();
            let out = dir.path().join(format!("{arch}.{noskip}.reference.safetensors"));
            manifest.push(serde_json::json!({
                "arch": arch, "weights": weights, "batch": batch_path, "out": out, "noskip": noskip,
            }));
            ours.push((arch, noskip, graph.clone(), report, out));
        }
        eprintln!("{arch}: {:.1} s", case_start.elapsed().as_secs_f64());
    }
    let ours_s = start.elapsed().as_secs_f64();
    let manifest_path = dir.path().join("manifest.json");
    std::fs::write(&manifest_path, serde_json::to_vec(&manifest).unwrap()).unwrap();
    let script = paths::checkout().join("tests/fixtures/training_step_reference.py");
    let output = std::process::Command::new(&python).arg(&script).arg(&manifest_path).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    eprint!("{}", String::from_utf8_lossy(&output.stderr));
    eprintln!("convscope {ours_s:.1} s, PyTorch {:.1} s", start.elapsed().as_secs_f64() - ours_s);

    for (arch, noskip, graph, report, out) in ours {
        let label = format!("{arch}{}", if noskip { " without residuals" } else { "" });
        let reference = common::read(&out);
        assert_eq!(common::scalar(&reference["running_changed"]), 0.0, "{label}: the reference's statistics moved");
        let scale = reference["logits"].abs().max().double_value(&[]);
        common::assert_close(&format!("{label}: logits"), &report.logits, &reference["logits"], 1e-4, 1e-4 * scale);
        let loss = common::scalar(&reference["loss"]);
        assert!((report.loss - loss).abs() <= 1e-4 * loss.abs(), "{label}: loss {} vs {loss}", report.loss);

        let close = |what: &str, a: f64, b: f64| {
            assert!((a - b).abs() <= 1e-3 * b.abs() + 1e-12, "{label}: {what}: {a:e} vs PyTorch's {b:e}");
        };
        let mut compared = Vec::new();
        for (key, theirs) in &reference {
            let Some(module) = key.strip_prefix("grad_norm.") else { continue };
            let theirs = common::scalar(theirs);
            let node = if module == "input" { Some(graph.input) } else { our_node(&graph, module) };
            let node = node.unwrap_or_else(|| panic!("{label}: reference module {module} has no node here"));
            let mine = report.node_grad_norms[node].unwrap_or_else(|| panic!("{label}: no gradient at {module}"));
            close(&format!("‖∂L/∂{module}‖"), mine, theirs);
            compared.push(theirs);
        }
        for (i, spec) in graph.params.iter().enumerate().filter(|(_, p)| p.trainable) {
            let theirs = reference.get(&format!("param_grad_norm.{}", spec.key)).map(common::scalar);
            let mine = report.param_grad_norms[i];
            close(&format!("‖∂L/∂{}‖", spec.key), mine.unwrap_or(0.0), theirs.unwrap_or(0.0));
            compared.extend(theirs);
        }
        let above = compared.iter().filter(|&&n| n > 1e-6).count();
        assert!(
            compared.len() > graph.params.len() / 2 && above * 10 >= compared.len() * 9,
            "{label}: {above} of {} compared norms above 1e-6",
            compared.len()
        );
    }
}
