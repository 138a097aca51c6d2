//! The history view's requests to the model worker, without a window: measuring this machine
//! (progress, the cache, cancelling, other requests passing in between) and comparing two
//! networks. Only small networks are timed here; timing the whole zoo is `convscope bench --zoo`.

use std::time::{Duration, Instant};

use convscope_core::engine::WeightsChoice;
use convscope_core::latency::{Cache, Machine, Rounds};
use convscope_core::session::{
    ImageInput, MeasureJob, MeasureProgress, MeasureState, Payload, Reply, Request, RequestKind, WorkerHandle,
};
use convscope_core::zoo;
use tch::Device;

const TIMEOUT: Duration = Duration::from_secs(300);

/// Polls until `done` says stop, handing it every reply of the newest requests.
fn poll_until(worker: &mut WorkerHandle, mut done: impl FnMut(Reply) -> bool) {
    let start = Instant::now();
    loop {
        assert!(start.elapsed() < TIMEOUT, "no end in {TIMEOUT:?}");
        assert!(!worker.stopped(), "the worker thread stopped");
        for reply in worker.poll() {
            if worker.is_latest(&reply) && done(reply) {
                return;
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn progress(reply: Reply) -> Option<MeasureProgress> {
    match reply.result {
        Ok(Payload::Measured(progress)) => Some(*progress),
        _ => None,
    }
}

fn quick() -> Rounds {
    Rounds { warmup: 1, min_runs: 2, max_runs: 2, min_seconds: 0.0 }
}

#[test]
fn measuring_times_each_network_in_turn_and_keeps_the_timings() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("latency.json");
    let ids = vec!["lenet5", "resnet20", "mobilenet_v1_025_128"];
    let mut worker = WorkerHandle::spawn(|| {}).unwrap();
    let job =
        MeasureJob { ids: ids.clone(), device: Device::Cpu, rounds: quick(), cache: Some(cache.clone()), done: 0 };
    worker.send(Request::Measure(Box::new(job)));
    let mut steps = Vec::new();
    poll_until(&mut worker, |reply| {
        let step = progress(reply).expect("measurement progress");
        let finished = step.state == MeasureState::Finished;
        steps.push(step);
        finished
    });
    assert_eq!(steps.len(), 3, "one reply per network");
    for (i, step) in steps.iter().enumerate() {
        assert_eq!((step.done, step.total), (i + 1, 3));
        let (id, timing) = step.timed.clone().expect("a network was timed");
        assert_eq!(id, ids[i], "in the order asked");
        let timing = timing.expect("timed");
        assert!(timing.median_ms > 0.0 && timing.runs == 2);
        assert_eq!(step.cache_error, None);
    }
    // The worker saw the same machine the test sees.
    let machine = Machine::current(Device::Cpu);
    assert_eq!(steps[0].machine, machine);
    let saved = Cache::load(&cache);
    let table = saved.table(&machine).expect("the timings are cached for this machine");
    assert_eq!(
        table.timings.keys().map(String::as_str).collect::<Vec<_>>(),
        ["lenet5", "mobilenet_v1_025_128", "resnet20"]
    );
}

#[test]
fn a_measurement_can_be_cancelled_and_lets_other_requests_pass() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("latency.json");
    let mut worker = WorkerHandle::spawn(|| {}).unwrap();
    let spec = zoo::find("lenet5").unwrap();
    worker.send(Request::Load {
        spec: Box::new(spec),
        weights: WeightsChoice::Random { seed: 0 },
        device: Device::Cpu,
    });
    poll_until(&mut worker, |reply| matches!(reply.result, Ok(Payload::Loaded(_))));

    // More work than the test's timeout holds (a tenth of a second each), so that however slow
    // this machine or its scheduler, the measurement is still running when it is cancelled.
    const QUEUED: usize = 10_000;
    let ids = vec!["resnet56"; QUEUED];
    let rounds = Rounds { warmup: 1, min_runs: 2, max_runs: 50, min_seconds: 0.1 };
    let job = MeasureJob { ids, device: Device::Cpu, rounds, cache: Some(cache.clone()), done: 0 };
    worker.send(Request::Measure(Box::new(job)));
    // A digit to classify meanwhile: it is answered before the measurement ends.
    let digit = ImageInput::Path(convscope_core::paths::asset("digits/digit_7.png"));
    worker.send(Request::Classify { image: digit, disabled: Vec::new(), retention: Default::default(), show: None });
    let mut measured = 0;
    let mut predicted_after = None;
    poll_until(&mut worker, |reply| {
        match reply.kind {
            RequestKind::Classify => {
                assert!(matches!(reply.result, Ok(Payload::Predicted(_))), "the digit is classified");
                predicted_after = Some(measured);
            }
            RequestKind::Measure => {
                let step = progress(reply).expect("progress");
                assert_eq!(step.state, MeasureState::Running, "not finished before the cancel");
                measured = step.done;
            }
            other => panic!("unexpected {other:?}"),
        }
        predicted_after.is_some() && measured >= 1
    });
    assert!(predicted_after.is_some_and(|n| n < QUEUED), "the prediction came during the measurement");
    worker.send(Request::CancelMeasure);
    let mut cancelled = false;
    poll_until(&mut worker, |reply| {
        // Progress of the cancelled job is no longer the newest of its kind: `is_latest` drops it.
        let step = progress(reply).expect("progress");
        cancelled = step.state == MeasureState::Cancelled;
        true
    });
    assert!(cancelled, "the cancel is answered");
    // Nothing more comes: the job is gone.
    std::thread::sleep(Duration::from_millis(800));
    assert!(worker.poll().iter().all(|r| !worker.is_latest(r)), "no progress after the cancel");
    let timed = Cache::load(&cache).timing(&Machine::current(Device::Cpu), "resnet56");
    assert!(timed.is_some(), "what was timed before the cancel stays cached");
}

#[test]
fn two_networks_are_compared_on_one_image_on_the_worker() {
    let mut worker = WorkerHandle::spawn(|| {}).unwrap();
    let a = zoo::find("resnet20").unwrap();
    let b = zoo::find("mobilenet_v1_025_128").unwrap();
    worker.send(Request::Load {
        spec: Box::new(a.clone()),
        weights: WeightsChoice::Random { seed: 0 },
        device: Device::Cpu,
    });
    poll_until(&mut worker, |reply| matches!(reply.result, Ok(Payload::Loaded(_))));
    let image = ImageInput::Path(convscope_core::paths::asset("chelsea.png"));
    for round in 0..2 {
        let request =
            Request::Compare { specs: Box::new([a.clone(), b.clone()]), image: image.clone(), device: Device::Cpu };
        worker.send(request);
        let mut compared = None;
        poll_until(&mut worker, |reply| match reply.result {
            Ok(Payload::Compared(c)) => {
                compared = Some(c);
                true
            }
            Err(e) => panic!("round {round}: {}", e.message),
            _ => false,
        });
        let c = compared.expect("a comparison");
        assert_eq!([c.nets[0].arch, c.nets[1].arch], ["resnet20", "mobilenet_v1_025_128"]);
        assert!(c.nets[0].origin.contains("seed 0"), "the explorer's own model serves: {}", c.nets[0].origin);
        assert_eq!(c.image, "chelsea.png");
        // CIFAR's 32×32 has three stages, MobileNet at 128 five: three rows, ends matched.
        assert_eq!(c.stages.len(), 3);
        assert_eq!(c.stages[2][1].shape[1..], [4, 4]);
        assert!(c.nets[1].macs < c.nets[0].macs * 2);
    }
    let bad = ImageInput::Path("/nonexistent/cat.png".into());
    worker.send(Request::Compare { specs: Box::new([a, b]), image: bad, device: Device::Cpu });
    poll_until(&mut worker, |reply| {
        let error = reply.result.expect_err("a missing image is an error");
        assert_eq!(error.image.as_deref(), Some("cat.png"));
        true
    });
}
