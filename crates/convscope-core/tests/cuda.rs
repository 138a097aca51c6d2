//! `make test-cuda`: the engine on `cuda:0`. Every test here is ignored by `make test` (which
//! must not slow down for them) and, where no CUDA device exists, says so and returns.

mod common;

use std::time::{Duration, Instant};

use common::parity::{Check, check_arch_on};
use convscope_core::engine::WeightsChoice;
use convscope_core::session::{Payload, Request, WorkerHandle};
use convscope_core::zoo;
use tch::Device;

/// Whether CUDA is here; if not, says why the test does nothing.
fn cuda() -> bool {
    let available = tch::Cuda::is_available();
    if !available {
        eprintln!("skipped: no CUDA device on this machine (tch::Cuda::is_available() is false)");
    }
    available
}

/// A third of the parity suite with every family: residual, plain, branched, dense, fire,
/// depthwise, inverted residual, squeeze-and-excitation, shuffle, scaled residual, the twins.
const REPRESENTATIVES: [&str; 19] = [
    "lenet5",
    "alexnet",
    "alexnet_2012",
    "vgg16_bn",
    "resnet18",
    "resnet50",
    "resnet56",
    "plain20",
    "googlenet",
    "inception_v3",
    "inception_resnet_v2",
    "densenet121",
    "squeezenet1_1",
    "mobilenet_v1_050_160",
    "mobilenet_v2",
    "mobilenet_v3_small",
    "shufflenet_v2_x1_0",
    "efficientnet_b0",
    "efficientnet_lite0",
];

#[test]
#[ignore = "make test-cuda"]
fn a_third_of_the_parity_suite_matches_on_cuda_within_1e_3() {
    if !cuda() {
        return;
    }
    for arch in REPRESENTATIVES {
        let start = Instant::now();
        check_arch_on(arch, Check::CUDA);
        eprintln!("{arch}: parity on cuda:0 in {:.1} s", start.elapsed().as_secs_f64());
    }
}

/// Sends `request` and waits for its answer.
fn ask(worker: &mut WorkerHandle, request: Request) -> Result<Payload, String> {
    let kind = request.kind();
    worker.send(request);
    let start = Instant::now();
    loop {
        assert!(start.elapsed() < Duration::from_secs(300), "no answer to a {kind:?} request");
        for reply in worker.poll() {
            if reply.kind == kind && worker.is_latest(&reply) {
                return reply.result.map_err(|e| e.message);
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
#[ignore = "make test-cuda"]
fn the_apps_device_switch_moves_a_loaded_model_and_back() {
    if !cuda() {
        return;
    }
    let mut worker = WorkerHandle::spawn(|| {}).unwrap();
    let spec = zoo::find("resnet18").unwrap();
    let load = Request::Load { spec: Box::new(spec), weights: WeightsChoice::Random { seed: 1 }, device: Device::Cpu };
    assert!(matches!(ask(&mut worker, load), Ok(Payload::Loaded(_))));
    let image = convscope_core::session::ImageInput::Path(convscope_core::paths::asset("chelsea.png"));
    let classify = |retention| Request::Classify { image: image.clone(), disabled: Vec::new(), retention, show: None };
    let Ok(Payload::Predicted(on_cpu)) = ask(&mut worker, classify(Default::default())) else {
        panic!("no prediction on the CPU")
    };
    assert!(matches!(ask(&mut worker, Request::Device(Device::Cuda(0))), Ok(Payload::Moved(Device::Cuda(0)))));
    let Ok(Payload::Predicted(on_cuda)) = ask(&mut worker, classify(Default::default())) else {
        panic!("no prediction on CUDA")
    };
    assert_eq!(on_cuda.device, Device::Cuda(0));
    assert_eq!(
        on_cpu.top5.iter().map(|p| p.class).collect::<Vec<_>>(),
        on_cuda.top5.iter().map(|p| p.class).collect::<Vec<_>>()
    );
    for (a, b) in on_cpu.top5.iter().zip(&on_cuda.top5) {
        assert!((a.probability - b.probability).abs() < 1e-3, "{a:?} vs {b:?}");
    }
    assert!(matches!(ask(&mut worker, Request::Device(Device::Cpu)), Ok(Payload::Moved(Device::Cpu))));
}
