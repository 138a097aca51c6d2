//! The model worker without a window: what the layer view receives when every layer's output
//! is kept, and when only the one on show is.

use std::time::{Duration, Instant};

use convscope_core::engine::WeightsChoice;
use convscope_core::session::{ActivationData, ImageInput, Payload, Request, Retention, WorkerHandle};
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
        let classify = Request::Classify { image: image.clone(), disabled: disabled.clone(), retention };
        let Ok(Payload::Predicted(predicted)) = ask(&mut worker, classify) else {
            panic!("{retention:?}: no prediction")
        };
        let data: Vec<ActivationData> = nodes.iter().map(|&n| activation(&mut worker, n).unwrap()).collect();
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
    let gradients = Request::Gradients { disabled, target: None, retention: Retention::ViewedLayer };
    assert!(matches!(ask(&mut worker, gradients), Ok(Payload::Gradients(_))));
    let again = activation(&mut worker, nodes[3]).unwrap();
    assert!(again.values == every.1[3].values);
}
