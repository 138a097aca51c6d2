//! Feature visualisation through the model worker, as the app's panel asks for it: the answer
//! equals `featvis::visualize` on the same model, progress (with a preview) is readable while
//! it runs, a cancelled request is answered as dropped, a newer one supersedes an older one,
//! an impossible channel is an error, and top-activating examples equal the direct search,
//! report their progress and stop when cancelled.

use std::time::{Duration, Instant};

use convscope_core::engine::{self, WeightsChoice};
use convscope_core::featvis::examples::{self, Source};
use convscope_core::featvis::{self, Control, Settings};
use convscope_core::session::{
    ExamplesProgress, FeatvisProgress, Payload, Request, RequestKind, TOP_EXAMPLES, TopExamplesFound, Visualized,
    WorkerHandle,
};
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
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// LeNet-5 with random weights; no image is needed.
fn worker() -> WorkerHandle {
    let mut worker = WorkerHandle::spawn(|| {}).unwrap();
    let spec = zoo::find("lenet5").unwrap();
    worker.send(Request::Load {
        spec: Box::new(spec),
        weights: WeightsChoice::Random { seed: 5 },
        device: Device::Cpu,
    });
    wait_until(&mut worker, "the model", |w, _| !w.any_pending());
    worker
}

fn settings(steps: usize) -> Settings {
    Settings { steps, size: 32, preview_every: 4, ..Settings::default() }
}

#[test]
fn the_worker_answers_what_visualize_computes_with_progress() {
    let mut worker = worker();
    let node = zoo::find("lenet5").unwrap().graph().node_id("conv2").unwrap();
    worker.send(Request::FeatureVis { node, channels: vec![3], settings: settings(200) });
    let mut seen: Vec<FeatvisProgress> = Vec::new();
    let mut answer: Option<Visualized> = None;
    wait_until(&mut worker, "a visualisation", |w, payloads| {
        seen.extend(w.featvis_progress());
        for payload in payloads {
            if let Payload::Visualized(v) = payload {
                answer = Some(*v);
            }
        }
        answer.is_some()
    });
    let answer = answer.unwrap();
    assert!(worker.featvis_progress().is_none(), "no progress once answered");
    assert!(!seen.is_empty(), "progress is readable while it runs");
    assert!(seen.iter().all(|p| p.steps == 200 && p.step <= 200));
    assert!(seen.windows(2).all(|w| w[0].step <= w[1].step), "progress only grows");
    assert!(seen.iter().any(|p| p.preview.as_ref().is_some_and(|i| i.size == [32, 32])), "a preview came");

    // The same image as visualize on the same model.
    let spec = zoo::find("lenet5").unwrap();
    let (model, _) = engine::load_model(&spec, &WeightsChoice::Random { seed: 5 }, Device::Cpu).unwrap();
    let mut control = Control { progress: &mut |_| {}, interrupt: &|| false };
    let ours = featvis::visualize(&model, &spec.preprocess, node, &[3], &settings(200), &mut control).unwrap().unwrap();
    let rgb = featvis::grid(&ours.images, 4, 2).unwrap();
    assert_eq!(answer.image.rgb, rgb.into_raw(), "the worker's image is visualize's");
    assert_eq!(answer.activations, ours.activations);
    assert_eq!((answer.node, answer.channels.as_slice(), answer.settings.steps), (node, &[3][..], 200));
}

#[test]
fn cancelled_and_superseded_requests_go_unanswered() {
    let mut worker = worker();
    let node = zoo::find("lenet5").unwrap().graph().node_id("conv2").unwrap();
    worker.send(Request::FeatureVis { node, channels: vec![1], settings: settings(100_000) });
    wait_until(&mut worker, "the run to start", |w, _| w.featvis_progress().is_some());
    worker.cancel_featvis();
    let mut answered = 0;
    wait_until(&mut worker, "the cancelled request to be dropped", |w, payloads| {
        answered += payloads.iter().filter(|p| matches!(p, Payload::Visualized(_))).count();
        !w.is_pending(RequestKind::FeatureVis)
    });
    assert_eq!(answered, 0, "a cancelled request has no answer");

    // Two in a row: the older yields to the newer, which alone is answered.
    worker.send(Request::FeatureVis { node, channels: vec![1], settings: settings(100_000) });
    // A layer's channels together, one image each.
    worker.send(Request::FeatureVis { node, channels: vec![2, 5, 9, 11, 14], settings: settings(8) });
    let mut channels = Vec::new();
    wait_until(&mut worker, "the newer visualisation", |w, payloads| {
        channels.extend(payloads.into_iter().filter_map(|p| match p {
            Payload::Visualized(v) => Some((v.channels.clone(), v.image.size, v.activations.len())),
            _ => None,
        }));
        !w.is_pending(RequestKind::FeatureVis)
    });
    // Five 32-pixel images in rows of four, 2 pixels apart.
    assert_eq!(channels, [(vec![2, 5, 9, 11, 14], [4 * 34 - 2, 2 * 34 - 2], 5)], "only the newest request is answered");

    // A channel the node does not have is an error, not a panic.
    worker.send(Request::FeatureVis { node, channels: vec![16], settings: settings(8) });
    let start = Instant::now();
    loop {
        assert!(start.elapsed() < TIMEOUT);
        if let Some(reply) = worker.poll().into_iter().find(|r| r.kind == RequestKind::FeatureVis) {
            let error = reply.result.expect_err("no image for a channel that does not exist");
            assert!(error.message.contains("no channel 16"), "{}", error.message);
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn top_examples_through_the_worker_equal_the_direct_search() {
    let mut worker = worker();
    let node = zoo::find("lenet5").unwrap().graph().node_id("conv2").unwrap();
    let source = Source::Folder(convscope_core::paths::asset("digits"));
    worker.send(Request::TopExamples { node, channels: vec![4, 9], source: source.clone() });
    let mut answer: Option<TopExamplesFound> = None;
    wait_until(&mut worker, "top examples", |_, payloads| {
        for payload in payloads {
            if let Payload::TopExamples(found) = payload {
                answer = Some(*found);
            }
        }
        answer.is_some()
    });
    let answer = answer.unwrap();
    assert_eq!((answer.images, answer.source, answer.strips.len()), (10, source.clone(), 2));

    let spec = zoo::find("lenet5").unwrap();
    let (model, _) = engine::load_model(&spec, &WeightsChoice::Random { seed: 5 }, Device::Cpu).unwrap();
    let (names, inputs) = examples::inputs(&spec, &source).unwrap();
    let mut control = Control { progress: &mut |_| {}, interrupt: &|| false };
    let direct = examples::top_examples(&model, node, &inputs, &[4, 9], TOP_EXAMPLES, &mut control).unwrap().unwrap();
    for (strip, found) in answer.strips.iter().zip(&direct) {
        assert_eq!(strip.values, found.iter().map(|e| e.value).collect::<Vec<_>>());
        assert_eq!(strip.names, found.iter().map(|e| names[e.image].clone()).collect::<Vec<_>>());
        assert_eq!(strip.strip.size, [9 * 66 - 2, 64]);
    }
}

/// A search through a big folder: its progress (images read, of all) is readable while it
/// runs and only grows; cancelled, it is answered as dropped, with no examples.
#[test]
fn a_search_for_examples_reports_progress_and_stops_when_cancelled() {
    let mut worker = worker();
    let node = zoo::find("lenet5").unwrap().graph().node_id("conv2").unwrap();
    let dir = tempfile::tempdir().unwrap();
    for i in 0..20_000 {
        let digit = convscope_core::paths::asset(&format!("digits/digit_{}.png", i % 10));
        std::fs::hard_link(digit, dir.path().join(format!("{i:05}.png"))).unwrap();
    }
    worker.send(Request::TopExamples { node, channels: vec![4], source: Source::Folder(dir.path().to_owned()) });
    let mut seen: Vec<ExamplesProgress> = Vec::new();
    wait_until(&mut worker, "progress past the first images", |w, payloads| {
        assert!(payloads.is_empty(), "answered before it was cancelled");
        seen.extend(w.examples_progress());
        seen.last().is_some_and(|p| p.done >= 10)
    });
    worker.cancel_examples();
    wait_until(&mut worker, "the cancelled search to end", |w, payloads| {
        assert!(!payloads.iter().any(|p| matches!(p, Payload::TopExamples(_))), "a cancelled search answered");
        !w.is_pending(RequestKind::TopExamples)
    });
    assert!(worker.examples_progress().is_none(), "no progress once it ended");
    assert!(seen.iter().all(|p| p.total == 20_000));
    assert!(seen.windows(2).all(|w| w[0].done <= w[1].done), "progress only grows");
    let last = seen.last().unwrap().done;
    assert!(last < 20_000, "it stopped before the end ({last} read)");
}

/// One search ranks every channel of the node: another channel of the same node and folder is
/// answered from it without searching again, and equals the direct search; another node, or a
/// model loaded since, searches again.
#[test]
fn one_search_answers_every_channel_of_its_node() {
    let mut worker = worker();
    let graph = zoo::find("lenet5").unwrap().graph();
    let (conv1, conv2) = (graph.node_id("conv1").unwrap(), graph.node_id("conv2").unwrap());
    let source = Source::Folder(convscope_core::paths::asset("digits"));
    let ask = |worker: &mut WorkerHandle, node, channel| {
        worker.send(Request::TopExamples { node, channels: vec![channel], source: source.clone() });
        let mut answer: Option<TopExamplesFound> = None;
        wait_until(worker, "top examples", |_, payloads| {
            for payload in payloads {
                if let Payload::TopExamples(found) = payload {
                    answer = Some(*found);
                }
            }
            answer.is_some()
        });
        answer.unwrap()
    };
    assert!(ask(&mut worker, conv2, 4).searched, "the first search reads the images");
    let second = ask(&mut worker, conv2, 11);
    assert!(!second.searched, "another channel of the same node is answered from the kept search");
    assert!(ask(&mut worker, conv1, 2).searched, "another node searches again");

    let spec = zoo::find("lenet5").unwrap();
    let (model, _) = engine::load_model(&spec, &WeightsChoice::Random { seed: 5 }, Device::Cpu).unwrap();
    let (names, inputs) = examples::inputs(&spec, &source).unwrap();
    let mut control = Control { progress: &mut |_| {}, interrupt: &|| false };
    let direct = examples::top_examples(&model, conv2, &inputs, &[11], TOP_EXAMPLES, &mut control).unwrap().unwrap();
    assert_eq!(second.strips[0].values, direct[0].iter().map(|e| e.value).collect::<Vec<_>>());
    assert_eq!(second.strips[0].names, direct[0].iter().map(|e| names[e.image].clone()).collect::<Vec<_>>());

    // The same id and origin (a file may be rewritten under the same name): searched anew.
    worker.send(Request::Load {
        spec: Box::new(spec),
        weights: WeightsChoice::Random { seed: 5 },
        device: Device::Cpu,
    });
    wait_until(&mut worker, "the new model", |w, _| !w.any_pending());
    assert!(ask(&mut worker, conv1, 3).searched, "a model loaded since searches again");
    assert!(!ask(&mut worker, conv1, 4).searched);

    // An impossible channel is an error, from the kept search too.
    worker.send(Request::TopExamples { node: conv1, channels: vec![6], source: source.clone() });
    let mut error = None;
    let start = Instant::now();
    while error.is_none() {
        assert!(start.elapsed() < TIMEOUT, "no answer");
        for reply in worker.poll() {
            if let Err(e) = reply.result {
                error = Some(e.message);
            }
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    assert!(error.unwrap().contains("no channel 6"));
}
