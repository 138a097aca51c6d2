//! The engine without the CLI: graph facts, executor modes, residual switches, weights checks.

mod common;

use std::sync::Arc;

use convscope_core::executor::{Layout, Model, RunOptions};
use convscope_core::graph::Op;
use convscope_core::zoo;
use tch::{Device, Kind, Tensor};

fn model(arch: &str) -> Model {
    Model::random(zoo::find(arch).unwrap().graph(), Device::Cpu, 7).unwrap()
}

#[test]
fn parameter_counts_and_macs_match_torchvision() {
    assert_eq!(zoo::find("lenet5").unwrap().graph().parameter_count(), 61_706);
    // torchvision's weight metadata: num_params and _ops (GMACs at 224×224).
    common::parity::assert_reference_figures(&[
        ("resnet18", 11_689_512, 1.814e9),
        ("resnet34", 21_797_672, 3.664e9),
        ("resnet50", 25_557_032, 4.089e9),
        ("resnet101", 44_549_160, 7.801e9),
        ("resnet152", 60_192_808, 11.514e9),
    ]);
}

#[test]
fn every_architecture_infers_shapes_at_its_native_size() {
    for spec in zoo::all() {
        let graph = spec.graph();
        let report = graph.infer_shapes(spec.input[1], spec.input[2]).unwrap();
        let classes = report.nodes[graph.output].shape.clone();
        assert_eq!(classes.len(), 1, "{}: logits are flat", spec.id);
        assert_eq!(report.total_params(), graph.parameter_count(), "{}", spec.id);
        assert!(
            graph.nodes.iter().all(|n| n.block.is_some() || n.name == "input"),
            "{}: every node sits in a block",
            spec.id
        );
    }
}

#[test]
fn residual_names_resolve_to_blocks_and_stages() {
    let graph = zoo::find("resnet18").unwrap().graph();
    let all = graph.resolve_residuals(&["all".into()]).unwrap();
    assert_eq!(all.len(), 8);
    assert_eq!(graph.resolve_residuals(&["layer2".into()]).unwrap().len(), 2);
    assert_eq!(graph.resolve_residuals(&["layer2.1".into(), "layer2.1.add".into()]).unwrap().len(), 1);
    let err = graph.resolve_residuals(&["layer7".into()]).unwrap_err();
    assert!(err.contains("layer1.0"), "{err}");
    assert!(zoo::find("plain20").unwrap().graph().resolve_residuals(&["all".into()]).is_err());
}

#[test]
fn the_three_modes_agree_and_switches_change_the_result() {
    let model = model("resnet20");
    tch::manual_seed(3);
    let x = Tensor::randn([2, 3, 32, 32], (Kind::Float, Device::Cpu));
    let plain = model.forward(&x, &REFERENCE_LAYOUT).unwrap();
    let capture = model.forward_capture(&x, &RunOptions::default()).unwrap();
    let grads = model.gradients(&x, Some(4), &RunOptions::default()).unwrap();
    assert!(plain.equal(&capture.logits), "plain and capture are the same computation");
    assert!(plain.allclose(&grads.logits, 1e-6, 1e-6, false));
    assert_eq!(grads.targets, vec![4, 4]);
    assert!((0..capture.outputs.len()).all(|node| capture.outputs.has(node)));
    assert!(grads.param_grad_norms.iter().zip(&model.graph().params).all(|(g, p)| g.is_some() == p.trainable));

    let off = RunOptions {
        disabled_residuals: model.graph().resolve_residuals(&["all".into()]).unwrap(),
        ..REFERENCE_LAYOUT
    };
    let without = model.forward(&x, &off).unwrap();
    assert!(!plain.allclose(&without, 1e-3, 1e-3, false), "switching the shortcuts off must change the logits");
    // A disabled merge outputs its residual branch alone.
    let cap = model.forward_capture(&x, &off).unwrap();
    let graph = model.graph();
    let add = graph.node_id("layer1.0.add").unwrap();
    let bn2 = graph.node_id("layer1.0.bn2").unwrap();
    assert!(cap.outputs.get(add).unwrap().unwrap().equal(&cap.outputs.get(bn2).unwrap().unwrap()));
    assert!(model.gradients(&x, Some(10), &RunOptions::default()).is_err(), "class 10 of 10 is out of range");
}

/// A capture lets activations overwrite the batch norms and residual sums they alone read, and
/// lets go of convolutions once the batch norm that alone reads them has run, as a plain
/// forward does, and makes those outputs again when asked: each must be what a capture that
/// keeps everything computed, bit for bit.
#[test]
fn outputs_made_again_are_the_ones_a_capture_keeping_all_computed() {
    let cases = [
        ("resnet18", Vec::new()),
        ("resnet18", vec!["all".to_owned()]),
        ("mobilenet_v2", Vec::new()),
        ("densenet121", Vec::new()),
        ("efficientnet_lite0", Vec::new()),
        ("inception_v3", Vec::new()),
    ];
    for (arch, switches) in cases {
        let model = model(arch);
        tch::manual_seed(9);
        let x = Tensor::randn([2, 3, 96, 96], (Kind::Float, Device::Cpu));
        let opts =
            RunOptions { disabled_residuals: model.graph().resolve_residuals(&switches).unwrap(), ..REFERENCE_LAYOUT };
        let capture = model.forward_capture(&x, &opts).unwrap();
        let _guard = tch::no_grad_guard();
        let every = model.forward_autograd_capture(&x, &opts, &|| false).unwrap().unwrap();
        assert!(capture.logits.equal(&every.logits), "{arch}");
        let mut remade = 0;
        let mut remade_convs = 0;
        let mut remade_pads = 0;
        for node in 0..capture.outputs.len() {
            let name = &model.graph().nodes[node].name;
            let expected = every.outputs.held(node);
            let got = capture.outputs.get(node).unwrap();
            assert_eq!(got.is_some(), expected.is_some(), "{arch}: {name}");
            if let (Some(got), Some(expected)) = (got, expected) {
                assert!(got.equal(expected), "{arch}: {name} made again differs");
            }
            if capture.outputs.is_remade(node) {
                // Random weights shrink activations with depth, but an output of zeros would
                // compare nothing.
                let largest = every.outputs.held(node).unwrap().abs().max().double_value(&[]);
                assert!(largest > 0.0, "{arch}: {name} is all zeros");
                remade += 1;
                remade_convs += usize::from(matches!(model.graph().nodes[node].op, Op::Conv2d(_)));
                remade_pads += usize::from(matches!(model.graph().nodes[node].op, Op::ZeroPad { .. }));
            }
        }
        // Every one of these has convolutions that a batch norm alone reads.
        assert!(remade_convs >= 5, "{arch} {switches:?}: only {remade_convs} convolutions were let go");
        // Lite0 pads like TensorFlow before each convolution: the 3×3 and 5×5 ones copy.
        if arch == "efficientnet_lite0" {
            assert!(remade_pads >= 5, "only {remade_pads} padded copies were let go");
        }
        // Each has an activation after most batch norms (ResNet-18 without its shortcuts: one in
        // each block, and the stem's).
        assert!(remade >= 9, "{arch} {switches:?}: only {remade} outputs were left to be made again");
    }
}

/// A batch norm's output made again after its weights changed in place (a training step)
/// would be another number: it is refused.
#[test]
fn an_output_is_not_made_again_from_changed_weights() {
    let model = model("resnet20");
    tch::manual_seed(3);
    let x = Tensor::randn([1, 3, 32, 32], (Kind::Float, Device::Cpu));
    let capture = model.forward_capture(&x, &REFERENCE_LAYOUT).unwrap();
    let graph = model.graph();
    let bn = graph.node_id("layer1.0.bn1").unwrap();
    assert!(capture.outputs.is_remade(bn), "the ReLU after it overwrote it");
    let before = capture.outputs.get(bn).unwrap().unwrap();
    let weight = graph.params.iter().position(|p| p.node == bn).unwrap();
    {
        let _guard = tch::no_grad_guard();
        let mut gamma = model.params()[weight].shallow_clone();
        drop(gamma.f_mul_scalar_(2.0).unwrap());
    }
    let refused = capture.outputs.get(bn).expect_err("changed weights are refused").to_string();
    assert!(refused.contains("layer1.0.bn1") && refused.contains("changed"), "{refused}");
    assert!(before.abs().max().double_value(&[]) > 1e-3);

    // Likewise a convolution's output, let go once its batch norm read it, and the batch norm
    // made again from it.
    let capture = model.forward_capture(&x, &REFERENCE_LAYOUT).unwrap();
    let conv = graph.node_id("layer1.0.conv1").unwrap();
    assert!(capture.outputs.is_remade(conv), "its batch norm alone reads it");
    let before = capture.outputs.get(conv).unwrap().unwrap();
    assert!(before.abs().max().double_value(&[]) > 1e-3);
    assert!(capture.outputs.get(bn).unwrap().is_some(), "unchanged weights make it again");
    let weight = graph.params.iter().position(|p| p.node == conv).unwrap();
    {
        let _guard = tch::no_grad_guard();
        let mut kernel = model.params()[weight].shallow_clone();
        drop(kernel.f_mul_scalar_(2.0).unwrap());
    }
    for node in [conv, bn] {
        let refused = capture.outputs.get(node).expect_err("changed weights are refused").to_string();
        assert!(refused.contains("layer1.0.conv1") && refused.contains("changed"), "{refused}");
    }
}

const REFERENCE_LAYOUT: RunOptions =
    RunOptions { disabled_residuals: Vec::new(), train: false, layout: Layout::Reference };

/// Plain forward overwrites activations' inputs and, in the fast layout, runs channels-last on
/// cached weight copies with batch norms folded in: none of it may change what the reference
/// computes beyond float rounding.
#[test]
fn plain_forward_in_either_layout_computes_what_capture_computes() {
    // Shortcuts, channel shuffles and slices, squeeze-excitation, dense concatenations, and
    // every activation kind the zoo uses.
    for arch in ["resnet18", "shufflenet_v2_x0_5", "mobilenet_v3_small", "efficientnet_b0", "densenet121"] {
        let model = model(arch);
        tch::manual_seed(5);
        let x = Tensor::randn([1, 3, 224, 224], (Kind::Float, Device::Cpu));
        let untouched = x.copy();
        let captured = model.forward_capture(&x, &RunOptions::default()).unwrap().logits;
        let reference = model.forward(&x, &REFERENCE_LAYOUT).unwrap();
        assert!(reference.equal(&captured), "{arch}: the reference layout is the capture's computation, bit for bit");
        let fast = model.forward(&x, &RunOptions::default()).unwrap();
        assert!(fast.allclose(&reference, 1e-4, 1e-4, false), "{arch}: the fast layout agrees within 1e-4");
        assert!(model.forward(&x, &RunOptions::default()).unwrap().equal(&fast), "{arch}: a second run agrees");
        assert!(x.equal(&untouched), "{arch}: the caller's input is never overwritten");
    }
}

/// What the explorer shows when it keeps only the layer on show: each node's output from a run
/// up to that node alone, the same numbers the capture kept, and none for nodes it skips.
#[test]
fn a_run_up_to_one_node_gives_what_the_capture_kept() {
    for (arch, switches) in [("resnet18", vec!["all".to_owned()]), ("mobilenet_v3_small", Vec::new())] {
        let model = model(arch);
        tch::manual_seed(8);
        let x = Tensor::randn([1, 3, 96, 96], (Kind::Float, Device::Cpu));
        let opts =
            RunOptions { disabled_residuals: model.graph().resolve_residuals(&switches).unwrap(), ..REFERENCE_LAYOUT };
        let capture = model.forward_capture(&x, &opts).unwrap();
        let mut compared = 0;
        for node in 0..capture.outputs.len() {
            let kept = capture.outputs.get(node).unwrap();
            assert_eq!(model.runs_node(node, &opts), kept.is_some(), "{arch}: node {node}");
            let Some(kept) = kept else { continue };
            // Every third node keeps the test quick; each run recomputes from the input.
            if node % 3 == 0 || node == model.graph().output {
                let alone = model.forward_to(&x, &opts, node).unwrap();
                assert!(alone.equal(&kept), "{arch}: {}", model.graph().nodes[node].name);
                compared += 1;
            }
        }
        assert!(compared > 10, "{arch}: {compared} nodes compared");
        if arch == "resnet18" {
            let skipped = model.graph().node_id("layer2.0.downsample.0").unwrap();
            assert!(!model.runs_node(skipped, &opts), "a switched-off shortcut's branch does not run");
        }
    }
    assert!(
        model("lenet5")
            .forward_to(&Tensor::zeros([1, 1, 32, 32], (Kind::Float, Device::Cpu)), &REFERENCE_LAYOUT, 10_000)
            .is_err()
    );
}

#[test]
fn the_fast_layout_sees_weights_changed_in_place() {
    let model = model("resnet18");
    tch::manual_seed(6);
    let x = Tensor::randn([1, 3, 64, 64], (Kind::Float, Device::Cpu));
    let before = model.forward(&x, &RunOptions::default()).unwrap();
    // What an optimiser step does: the weight tensor itself changes, in place.
    let conv1 = model.graph().params.iter().position(|p| p.key == "conv1.weight").unwrap();
    {
        let _guard = tch::no_grad_guard();
        let _ = model.params()[conv1].shallow_clone().f_mul_scalar_(0.5).unwrap();
    }
    let fast = model.forward(&x, &RunOptions::default()).unwrap();
    let reference = model.forward(&x, &REFERENCE_LAYOUT).unwrap();
    assert!(!fast.allclose(&before, 1e-3, 1e-3, false), "the cached channels-last copy was remade");
    assert!(fast.allclose(&reference, 1e-4, 1e-4, false));

    // A training step's batch norm updates its running statistics in place too; the fast
    // layout folds them into the convolution before it.
    let bn1_mean = model.graph().params.iter().position(|p| p.key == "bn1.running_mean").unwrap();
    {
        let _guard = tch::no_grad_guard();
        let _ = model.params()[bn1_mean].shallow_clone().f_add_scalar_(0.25).unwrap();
    }
    let refolded = model.forward(&x, &RunOptions::default()).unwrap();
    assert!(!refolded.allclose(&fast, 1e-3, 1e-3, false), "the folded batch norm was folded again");
    assert!(refolded.allclose(&model.forward(&x, &REFERENCE_LAYOUT).unwrap(), 1e-4, 1e-4, false));
}

#[test]
fn wrong_weights_are_refused_and_the_model_is_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let mut model = model("lenet5");
    let before = model.params()[0].copy();
    let graph = Arc::clone(model.graph());
    let good: Vec<(String, Tensor)> = graph
        .params
        .iter()
        .map(|p| (p.key.clone(), Tensor::ones(p.shape.as_slice(), (Kind::Float, Device::Cpu))))
        .collect();

    let write = |name: &str, tensors: &[(String, Tensor)]| {
        let path = dir.path().join(name);
        Tensor::write_safetensors(tensors, &path).unwrap();
        path
    };
    let missing = write("missing.safetensors", &good[1..]);
    let mut shaped: Vec<(String, Tensor)> = good.iter().map(|(k, t)| (k.clone(), t.shallow_clone())).collect();
    shaped[0].1 = Tensor::ones([6, 1, 3, 3], (Kind::Float, Device::Cpu));
    let shaped = write("shape.safetensors", &shaped);
    let mut typed: Vec<(String, Tensor)> = good.iter().map(|(k, t)| (k.clone(), t.shallow_clone())).collect();
    typed[0].1 = Tensor::ones([6, 1, 5, 5], (Kind::Int64, Device::Cpu));
    let typed = write("dtype.safetensors", &typed);
    let mut extra: Vec<(String, Tensor)> = good.iter().map(|(k, t)| (k.clone(), t.shallow_clone())).collect();
    extra.push(("classifier.weight".into(), Tensor::ones([2], (Kind::Float, Device::Cpu))));
    extra.push(("bn.num_batches_tracked".into(), Tensor::from(3i64)));
    let extra = write("extra.safetensors", &extra);
    let truncated = dir.path().join("truncated.safetensors");
    let bytes = std::fs::read(write("whole.safetensors", &good)).unwrap();
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();

    for (path, expected) in [
        (&missing, "1 missing (conv1.weight)"),
        (&shaped, "conv1.weight: shape [6, 1, 3, 3]"),
        (&typed, "dtype Int64"),
        (&extra, "1 unexpected (classifier.weight)"),
        (&truncated, "not a valid safetensors file"),
    ] {
        let err = convscope_core::weights::load_into(&mut model, path).unwrap_err().to_string();
        assert!(err.contains(expected), "{}: {err}", path.display());
        assert!(model.params()[0].equal(&before), "a refused file must leave the model as it was");
    }
    let whole = dir.path().join("whole.safetensors");
    convscope_core::weights::load_into(&mut model, &whole).unwrap();
    assert!(model.params()[0].equal(&Tensor::ones([6, 1, 5, 5], (Kind::Float, Device::Cpu))));
    assert!(model.params()[0].requires_grad(), "loaded weights stay trainable leaves");
}

#[test]
fn an_interrupted_gradient_pass_stops_where_asked_and_changes_nothing() {
    let model = model("resnet20");
    tch::manual_seed(5);
    let x = Tensor::randn([1, 3, 32, 32], (Kind::Float, Device::Cpu));
    let opts = RunOptions::default();
    let whole = model.gradients(&x, None, &opts).unwrap();
    // Asked once before every node and once before the backward pass.
    let asked = std::cell::Cell::new(0);
    let never = || {
        asked.set(asked.get() + 1);
        false
    };
    let uninterrupted = model.gradients_interruptible(&x, None, &opts, &never).unwrap().expect("not interrupted");
    let nodes = model.graph().nodes.len();
    assert_eq!(asked.get(), nodes + 1);
    assert_eq!(uninterrupted.loss, whole.loss);
    assert_eq!(uninterrupted.node_grad_norms, whole.node_grad_norms);
    for stop_at in [1, nodes / 2, nodes + 1] {
        let asked = std::cell::Cell::new(0);
        let stop = || {
            asked.set(asked.get() + 1);
            asked.get() >= stop_at
        };
        let report = model.gradients_interruptible(&x, None, &opts, &stop).unwrap();
        assert!(report.is_none(), "stopped at question {stop_at}");
        assert_eq!(asked.get(), stop_at, "nothing ran after the stop");
    }
    // The parameters hold no gradients from the abandoned passes: the next one is the same.
    assert!(model.params().iter().all(|p| !p.grad().defined()));
    assert_eq!(model.gradients(&x, None, &opts).unwrap().loss, whole.loss);
}

#[test]
fn an_input_too_small_for_the_auxiliary_classifiers_alone_runs_outside_training() {
    // torchvision's Inception v3 takes 171×171 in eval mode, which skips AuxLogits, whose 5×5
    // convolution would see a 2×2 map; in training it fails. So here.
    let model = model("inception_v3");
    let x = Tensor::randn([1, 3, 171, 171], (Kind::Float, Device::Cpu));
    let logits = model.forward(&x, &RunOptions::default()).unwrap();
    assert_eq!(logits.size(), vec![1, 1000]);
    let report = model.graph().infer_shapes(171, 171).unwrap();
    assert!(report.aux_error.as_deref().is_some_and(|e| e.contains("AuxLogits")), "{:?}", report.aux_error);
    let training = RunOptions { train: true, ..RunOptions::default() };
    let err = model.forward_with_grad(&x, &training).unwrap_err().to_string();
    assert!(err.contains("auxiliary classifiers") && err.contains("AuxLogits"), "{err}");
}
