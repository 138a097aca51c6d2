//! The model worker without a window: what the layer view receives when every layer's output
//! is kept, and when only the one on show is.

use std::time::{Duration, Instant};

use convscope_core::engine::batch::BatchKind;
use convscope_core::engine::{GradientSettings, WeightsChoice};
use convscope_core::executor::{GradientMode, Objective};
use convscope_core::session::{ActivationData, GradientFlow, ImageInput, Payload, Request, Retention, WorkerHandle};
use convscope_core::zoo;
use tch::Device;

const TIMEOUT: Duration = Duration::from_secs(300);

/// Sends `request` and waits for its answer (a message for an error).
fn ask(worker: &mut WorkerHandle, request: Request) -> Result<Payload, String> {
    let kind = request.kind();
    worker.send(request);
    let start = Instant::now();
    loop {
        assert!(start.elapsed() < TIMEOUT, "no answer to a {kind:?} request in {TIMEOUT:?}");
        assert!(!worker.stopped(), "the worker thread stopped");
        for reply in worker.poll() {
            if reply.kind == kind && worker.is_latest(&reply) {
                return reply.result.map_err(|e| e.message);
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn activation(worker: &mut WorkerHandle, node: usize) -> Result<ActivationData, String> {
    match ask(worker, Request::Activation { node })? {
        Payload::Activation(data) => Ok(*data),
        other => panic!("an activation request answered {other:?}"),
    }
}

#[test]
fn keeping_only_the_viewed_layer_shows_the_same_numbers() {
    let spec = zoo::find("resnet18").unwrap();
    let graph = spec.graph();
    let mut worker = WorkerHandle::spawn(|| {}).unwrap();
    let load = Request::Load { spec: Box::new(spec), weights: WeightsChoice::Random { seed: 3 }, device: Device::Cpu };
    assert!(matches!(ask(&mut worker, load), Ok(Payload::Loaded(_))));
    let image = ImageInput::Path(convscope_core::paths::asset("chelsea.png"));
    let disabled = graph.resolve_residuals(&["layer2".into()]).unwrap();
    let nodes: Vec<usize> = ["input", "conv1", "layer1.0.add", "layer2.0.conv2", "layer4.1.relu", "fc"]
        .iter()
        .map(|name| graph.node_id(name).unwrap_or_else(|| panic!("resnet18 has {name}")))
        .collect();
    let skipped = graph.node_id("layer2.0.downsample.0").unwrap();

    let mut shown = Vec::new();
    for retention in [Retention::EveryLayer, Retention::ViewedLayer] {
        // The node on show comes back with the prediction, as the layer view would ask for it.
        let show = Some(nodes[3]);
        let classify = Request::Classify { image: image.clone(), disabled: disabled.clone(), retention, show };
        let Ok(Payload::Predicted(predicted)) = ask(&mut worker, classify) else {
            panic!("{retention:?}: no prediction")
        };
        assert_eq!(predicted.disabled, disabled);
        assert!(predicted.timings.activation_ms.is_some());
        let with_prediction = match &predicted.activation {
            Some(Ok(data)) => data.clone(),
            other => panic!("{retention:?}: the node on show came back as {other:?}"),
        };
        let data: Vec<ActivationData> = nodes.iter().map(|&n| activation(&mut worker, n).unwrap()).collect();
        assert_eq!((with_prediction.node, &with_prediction.shape), (data[3].node, &data[3].shape));
        assert!(with_prediction.values == data[3].values, "{retention:?}: the prediction's maps are the node's output");
        // The shortcut switched off in layer2 does not run its downsample branch either way.
        let refused = activation(&mut worker, skipped).expect_err("a node the run skipped has no output");
        assert!(refused.contains("no output"), "{refused}");
        shown.push((predicted.top5.clone(), data));
    }
    let (every, viewed) = (&shown[0], &shown[1]);
    assert_eq!(every.0, viewed.0, "the same top-5");
    for (a, b) in every.1.iter().zip(&viewed.1) {
        assert_eq!((a.node, &a.shape), (b.node, &b.shape));
        assert!(a.values == b.values, "{}: the values differ", graph.nodes[a.node].name);
    }

    // The gradients view then keeps nothing either, and the layer view still answers.
    let gradients = Request::Gradients {
        disabled,
        target: None,
        retention: Retention::ViewedLayer,
        settings: GradientSettings::default(),
        with_image: false,
    };
    assert!(matches!(ask(&mut worker, gradients), Ok(Payload::Gradients(_))));
    let again = activation(&mut worker, nodes[3]).unwrap();
    assert!(again.values == every.1[3].values);
}

fn gradients(worker: &mut WorkerHandle, disabled: Vec<usize>, settings: GradientSettings) -> GradientFlow {
    let request =
        Request::Gradients { disabled, target: None, retention: Retention::EveryLayer, settings, with_image: false };
    match ask(worker, request) {
        Ok(Payload::Gradients(flow)) => *flow,
        other => panic!("a gradients request answered {other:?}"),
    }
}

/// A gradient flow says which mode, batch and objective it ran with, the defaults for random
/// weights being a training step on a batch of digits; the batch is built once for an image;
/// and the layer view keeps showing the image as the network predicts it.
#[test]
fn gradients_run_in_the_mode_asked_and_say_which() {
    let spec = zoo::find("resnet20").unwrap();
    let graph = spec.graph();
    let mut worker = WorkerHandle::spawn(|| {}).unwrap();
    let load = Request::Load { spec: Box::new(spec), weights: WeightsChoice::Random { seed: 1 }, device: Device::Cpu };
    let Ok(Payload::Loaded(loaded)) = ask(&mut worker, load) else { panic!("no model") };
    assert_eq!(loaded.gradient_mode, GradientMode::TrainingStep, "random weights take a training step");
    let image = ImageInput::Path(convscope_core::paths::asset("chelsea.png"));
    let classify = Request::Classify { image, disabled: Vec::new(), retention: Retention::EveryLayer, show: None };
    assert!(matches!(ask(&mut worker, classify), Ok(Payload::Predicted(_))));
    let node = graph.node_id("layer2.0.conv1").unwrap();
    let shown = activation(&mut worker, node).unwrap();

    let flow = gradients(&mut worker, Vec::new(), GradientSettings::default());
    assert_eq!(flow.settings.options.mode, GradientMode::TrainingStep);
    assert_eq!(flow.settings.options.objective, Objective::CrossEntropy);
    assert_eq!(flow.batch.kind, BatchKind::Dataset);
    assert_eq!((flow.batch.counts.image, flow.batch.counts.digits), (1, 127), "{}", flow.batch.description);
    assert!(flow.timings.preprocess_ms.is_some(), "the batch was built");
    assert!(!flow.saturated && flow.node_norms.iter().flatten().all(|n| n.is_finite() && *n > 0.0));
    assert!(activation(&mut worker, node).unwrap().values == shown.values, "the layer view shows the prediction's run");

    let all = graph.resolve_residuals(&["all".into()]).unwrap();
    let off = gradients(&mut worker, all, GradientSettings::default());
    assert!(off.timings.preprocess_ms.is_none(), "switching shortcuts builds no new batch");
    assert_eq!(off.batch, flow.batch);
    let first = graph.node_id("conv1").unwrap();
    assert_ne!(off.param_norms[first], flow.param_norms[first], "the shortcuts change a training step's gradient");

    let inference = GradientSettings { mode: Some(GradientMode::Inference), ..GradientSettings::default() };
    let flow = gradients(&mut worker, Vec::new(), inference);
    assert_eq!((flow.settings.options.mode, flow.batch.kind), (GradientMode::Inference, BatchKind::Image));
    assert_eq!(flow.batch.counts.total(), 1);
    let logit = GradientSettings { objective: Objective::Logit, batch: Some(BatchKind::Image), ..inference };
    let flow = gradients(&mut worker, Vec::new(), logit);
    assert_eq!(flow.settings.options.objective, Objective::Logit);
    let output = graph.output;
    assert!((flow.node_norms[output].unwrap() - 1.0).abs() < 1e-6, "∂logit/∂logits is one-hot");
}
