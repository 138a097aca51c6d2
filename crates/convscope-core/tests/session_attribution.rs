//! Attribution through the model worker, as the app's Attribution view asks for it: the
//! answer equals `attribution::explain_all` on the same image, progress is readable while a
//! chunked method runs, a cancelled request is answered as dropped, and a newer request
//! supersedes an older one.

use std::time::{Duration, Instant};

use convscope_core::attribution::{self, Method, Settings};
use convscope_core::engine::{self, WeightsChoice};
use convscope_core::executor::RunOptions;
use convscope_core::session::{Attributed, ImageInput, Payload, Request, RequestKind, Retention, WorkerHandle};
use convscope_core::zoo;
use tch::Device;

const TIMEOUT: Duration = Duration::from_secs(300);

fn wait_until(worker: &mut WorkerHandle, what: &str, mut done: impl FnMut(&mut WorkerHandle, Vec<Payload>) -> bool) {
    let start = Instant::now();
    loop {
        assert!(start.elapsed() < TIMEOUT, "no {what} in {TIMEOUT:?}");
        assert!(!worker.stopped(), "the worker thread stopped");
        let payloads = worker
            .poll()
            .into_iter()
            .filter(|r| worker.is_latest(r))
            .map(|r| r.result.unwrap_or_else(|e| panic!("{what}: {}", e.message)))
            .collect();
        if done(worker, payloads) {
            return;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// ResNet-20 with random weights, the cat classified.
fn worker() -> WorkerHandle {
    let spec = zoo::find("resnet20").unwrap();
    let mut worker = WorkerHandle::spawn(|| {}).unwrap();
    worker.send(Request::Load {
        spec: Box::new(spec),
        weights: WeightsChoice::Random { seed: 5 },
        device: Device::Cpu,
    });
    let image = ImageInput::Path(convscope_core::paths::asset("chelsea.png"));
    worker.send(Request::Classify { image, disabled: Vec::new(), retention: Retention::EveryLayer, show: None });
    wait_until(&mut worker, "prediction", |w, _| !w.any_pending());
    worker
}

fn ig(steps: usize) -> Settings {
    Settings { method: Method::IntegratedGradients, steps, batch: Some(1), ..Settings::default() }
}

#[test]
fn the_worker_answers_what_explain_computes_with_progress() {
    let mut worker = worker();
    let settings = ig(48);
    worker.send(Request::Attribution { disabled: Vec::new(), settings: settings.clone() });
    let mut seen = Vec::new();
    let mut answer: Option<Attributed> = None;
    wait_until(&mut worker, "an attribution", |w, payloads| {
        seen.extend(w.attribution_progress());
        for payload in payloads {
            if let Payload::Attributed(a) = payload {
                answer = Some(*a);
            }
        }
        answer.is_some()
    });
    let answer = answer.unwrap();
    assert!(!worker.is_pending(RequestKind::Attribution));
    assert_eq!(worker.attribution_progress(), None, "no progress once answered");
    assert!(!seen.is_empty(), "progress is readable while it runs");
    assert!(seen.iter().all(|p| p.total == 48 && p.done <= 48 && p.what == "steps"), "{seen:?}");
    assert!(seen.windows(2).all(|w| w[0].done <= w[1].done), "progress only grows: {seen:?}");

    // The same map as explain_all on the same model and image.
    let spec = zoo::find("resnet20").unwrap();
    let (model, _) = engine::load_model(&spec, &WeightsChoice::Random { seed: 5 }, Device::Cpu).unwrap();
    let input = engine::image_input(&spec, &convscope_core::paths::asset("chelsea.png")).unwrap();
    let ours = attribution::explain_all(&model, &input, &RunOptions::default(), &spec.preprocess, &settings).unwrap();
    let values = Vec::<f32>::try_from(&ours.maps[0].raw.flatten(0, -1)).unwrap();
    assert_eq!(answer.explanation.maps[0].raw, values, "the worker's map is explain's");
    assert_eq!(answer.explanation.maps[0].shape, [1, 3, 32, 32]);
    assert_eq!(answer.preview.size, [32, 32]);
    assert_eq!(answer.settings, settings);
}

#[test]
fn cancelled_and_superseded_requests_go_unanswered() {
    let mut worker = worker();
    worker.send(Request::Attribution { disabled: Vec::new(), settings: ig(200) });
    worker.cancel_attribution();
    let mut answered = 0;
    wait_until(&mut worker, "the cancelled request to be dropped", |w, payloads| {
        answered += payloads.iter().filter(|p| matches!(p, Payload::Attributed(_))).count();
        !w.is_pending(RequestKind::Attribution)
    });
    assert_eq!(answered, 0, "a cancelled request has no answer");

    // Two in a row: the older yields to the newer, which alone is answered.
    worker.send(Request::Attribution { disabled: Vec::new(), settings: ig(200) });
    let newer = Settings { method: Method::Saliency, ..Settings::default() };
    worker.send(Request::Attribution { disabled: Vec::new(), settings: newer.clone() });
    let mut methods = Vec::new();
    wait_until(&mut worker, "the newer attribution", |w, payloads| {
        methods.extend(payloads.into_iter().filter_map(|p| match p {
            Payload::Attributed(a) => Some(a.settings.method),
            _ => None,
        }));
        !w.is_pending(RequestKind::Attribution)
    });
    assert_eq!(methods, [Method::Saliency], "only the newest request is answered");

    // A request that cannot be met is an error, not a panic.
    let bad = Settings { method: Method::GradCam, layers: attribution::Layers::Node(10_000), ..Settings::default() };
    worker.send(Request::Attribution { disabled: Vec::new(), settings: bad });
    let start = Instant::now();
    loop {
        assert!(start.elapsed() < TIMEOUT);
        if let Some(reply) = worker.poll().into_iter().find(|r| r.kind == RequestKind::Attribution) {
            let error = reply.result.expect_err("no map for a node that does not exist");
            assert!(error.message.contains("does not run"), "{}", error.message);
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}
