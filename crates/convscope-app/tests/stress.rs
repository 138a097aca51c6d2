//! Bursts as an impatient user makes them: 200 images and 50 architecture switches fired
//! without waiting, at the model worker and at the whole app. Nothing may deadlock or panic,
//! the queues stay bounded, the newest request wins, and resident memory comes back to where
//! it was after the same burst once warmed up. And a device or architecture switch during a
//! gradient pass is served first, the pass put back or dropped without an error.
//!
//! The tests measure the whole process's memory, so they take turns (`SERIAL`).

mod app_harness;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use app_harness::TestFile;
use convscope_app::{App, Start};
use convscope_core::engine::WeightsChoice;
use convscope_core::preprocess::Preprocess;
use convscope_core::session::{ImageInput, Payload, Reply, Request, RequestKind, Retention, WorkerHandle};
use convscope_core::zoo::{self, ArchSpec};
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;
use tch::Device;

/// Resident memory is the process's: the tests here run one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

/// How long a burst may take to settle before the test calls it a deadlock; generous for a
/// loaded CI machine (a settled burst takes seconds).
const TIMEOUT: Duration = Duration::from_secs(300);

enum Event {
    Switch(usize),
    Image(usize),
}

/// 200 images and 50 switches, each switch between images so that some images land while a
/// model loads; the last image comes right after the last switch.
fn events() -> Vec<Event> {
    let per_switch = IMAGES / SWITCHES;
    let mut events = Vec::new();
    for switch in 0..SWITCHES {
        let first = switch * per_switch;
        events.extend((first..first + per_switch - 1).map(Event::Image));
        events.push(Event::Switch(switch));
        events.push(Event::Image(first + per_switch - 1));
    }
    events
}

/// Architectures cycled through, in this order.
const ARCHS: [&str; 4] = ["lenet5", "resnet20", "squeezenet1_1", "mobilenet_v3_small"];
const IMAGES: usize = 200;
const SWITCHES: usize = 50;

fn serial() -> std::sync::MutexGuard<'static, ()> {
    // A failed test poisons the lock; the others still measure alone.
    SERIAL.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Resident pages, from /proc/self/statm; only ratios are compared, so the page size cancels.
/// glibc is first asked to hand its free lists back: what they hold depends on which threads
/// freed what, which varies from run to run and machine to machine, and is not a leak.
fn resident_pages() -> u64 {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        unsafe extern "C" {
            fn malloc_trim(pad: usize) -> std::ffi::c_int;
        }
        // SAFETY: malloc_trim only releases free memory; it takes no pointers.
        unsafe { malloc_trim(0) };
    }
    let statm = std::fs::read_to_string("/proc/self/statm").expect("/proc/self/statm is readable");
    statm.split_whitespace().nth(1).and_then(|v| v.parse().ok()).expect("statm's second field is a number")
}

#[track_caller]
fn assert_memory_settled(what: &str, before: u64, after: u64) {
    let ratio = after as f64 / before as f64;
    eprintln!("{what}: {before} resident pages before the burst, {after} after ({:+.1}%)", (ratio - 1.0) * 100.0);
    assert!(ratio <= 1.10, "{what}: resident memory grew from {before} to {after} pages over the burst");
}

/// The burst's images: mostly small PNGs of many sizes, every tenth a bundled digit file,
/// every seventeenth broken. The last is a valid one, named so it cannot be confused.
fn burst_images() -> Vec<ImageInput> {
    let digits = convscope_core::paths::asset("digits");
    (0..IMAGES)
        .map(|i| {
            if i % 17 == 5 {
                let mut bytes = b"\x89PNG\r\n\x1a\n".to_vec();
                bytes.extend_from_slice(&[i as u8; 40]);
                ImageInput::Bytes { name: format!("broken-{i}.png"), bytes: bytes.into() }
            } else if i % 10 == 3 {
                ImageInput::Path(digits.join(format!("digit_{}.png", i % 10)))
            } else {
                ImageInput::Bytes { name: format!("burst-{i}.png"), bytes: png(i).into() }
            }
        })
        .collect()
}

fn png(i: usize) -> Vec<u8> {
    let (w, h) = (20 + (i as u32 * 13) % 90, 16 + (i as u32 * 7) % 70);
    let image = image::RgbImage::from_fn(w, h, |x, y| image::Rgb([(x * 3) as u8, (y * 5) as u8, i as u8]));
    let mut bytes = Vec::new();
    image.write_to(&mut std::io::Cursor::new(&mut bytes), image::ImageFormat::Png).expect("encoding a PNG");
    bytes
}

fn is_broken(name: &str) -> bool {
    name.starts_with("broken-")
}

/// The ImageNet architectures at 64×64 crops: the same layers, a fraction of the work.
fn small(id: &str) -> ArchSpec {
    let mut spec = zoo::find(id).expect("a zoo architecture");
    if let Preprocess::ImageNet { interpolation, mean, std, .. } = spec.preprocess {
        spec.preprocess = Preprocess::ImageNet { resize: 72, crop: 64, interpolation, mean, std };
        spec.input = [3, 64, 64];
    }
    spec
}

/// The worker driven the way the app drives it: a model's arrival re-runs the newest image,
/// a prediction asks for its gradients and a layer, and answers to superseded requests are
/// ignored.
struct Driver {
    worker: WorkerHandle,
    loaded: Option<&'static str>,
    newest_image: Option<ImageInput>,
    /// The architecture and image of the last prediction taken.
    shown: Option<(&'static str, String)>,
    gradients_for: Option<&'static str>,
    unexpected_errors: Vec<String>,
    most_queued: usize,
    /// Replies per kind, answers to superseded requests included.
    answered: BTreeMap<RequestKind, usize>,
}

impl Driver {
    fn new() -> Self {
        Self {
            worker: WorkerHandle::spawn(|| {}).expect("the worker thread starts"),
            loaded: None,
            newest_image: None,
            shown: None,
            gradients_for: None,
            unexpected_errors: Vec::new(),
            most_queued: 0,
            answered: BTreeMap::new(),
        }
    }

    fn send(&mut self, request: Request) {
        if let Request::Classify { image, .. } = &request {
            self.newest_image = Some(image.clone());
        }
        self.worker.send(request);
        self.most_queued = self.most_queued.max(self.worker.queued());
    }

    fn load(&mut self, spec: ArchSpec) {
        self.send(Request::Load {
            spec: Box::new(spec),
            weights: WeightsChoice::Random { seed: 0 },
            device: Device::Cpu,
        });
    }

    /// Before the first model, the image waits for it, as in the app.
    fn classify(&mut self, image: ImageInput) {
        if self.loaded.is_none() {
            self.newest_image = Some(image);
            return;
        }
        self.send(Request::Classify { image, disabled: Vec::new(), retention: Retention::EveryLayer, show: None });
    }

    /// One frame's worth of replies.
    fn pump(&mut self) -> Vec<Reply> {
        assert!(!self.worker.stopped(), "the worker thread stopped");
        let replies = self.worker.poll();
        for reply in &replies {
            *self.answered.entry(reply.kind).or_default() += 1;
            if !self.worker.is_latest(reply) {
                continue;
            }
            match &reply.result {
                Ok(Payload::Loaded(loaded)) => {
                    self.loaded = Some(loaded.id);
                    if let Some(image) = self.newest_image.clone() {
                        self.classify(image);
                    }
                }
                Ok(Payload::Predicted(predicted)) if Some(predicted.arch) == self.loaded => {
                    self.shown = Some((predicted.arch, predicted.image.name()));
                    self.send(Request::Activation { node: 1 });
                    self.send(Request::Gradients {
                        disabled: Vec::new(),
                        target: None,
                        retention: Retention::EveryLayer,
                        settings: Default::default(),
                        with_image: false,
                    });
                }
                Ok(Payload::Gradients(flow)) => self.gradients_for = Some(flow.arch),
                Ok(_) => {}
                Err(error) if error.image.as_deref().is_some_and(is_broken) => {}
                Err(error) => self.unexpected_errors.push(format!("{:?}: {}", reply.kind, error.message)),
            }
        }
        replies
    }

    /// Pumps until the worker owes nothing; a bounded wait, so a deadlock fails the test.
    #[track_caller]
    fn settle(&mut self) -> Vec<Reply> {
        let deadline = Instant::now() + TIMEOUT;
        let mut replies = Vec::new();
        loop {
            replies.extend(self.pump());
            if !self.worker.any_pending() {
                return replies;
            }
            assert!(Instant::now() < deadline, "the worker still owes answers after {TIMEOUT:?}: deadlocked?");
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// The burst's events a millisecond apart, one poll after each (a frame's worth).
    fn burst(&mut self, specs: &[ArchSpec], images: &[ImageInput]) {
        for event in events() {
            match event {
                Event::Switch(n) => self.load(specs[n % specs.len()].clone()),
                Event::Image(n) => self.classify(images[n].clone()),
            }
            self.pump();
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

#[test]
fn the_worker_survives_a_burst_and_the_newest_request_wins() {
    let _serial = serial();
    let specs: Vec<ArchSpec> = ARCHS.iter().map(|id| small(id)).collect();
    let images = burst_images();
    let last_arch = specs[(SWITCHES - 1) % specs.len()].id;
    let last_image = images.last().expect("images").name();
    let mut driver = Driver::new();

    // The first burst warms up: libtorch's pools, the allocator's arenas, every layer kind.
    driver.burst(&specs, &images);
    driver.settle();
    let before = resident_pages();
    let start = Instant::now();
    driver.answered.clear();
    driver.burst(&specs, &images);
    driver.settle();
    eprintln!(
        "a burst of {IMAGES} images and {SWITCHES} switches settled in {:?}; replies: {:?}",
        start.elapsed(),
        driver.answered
    );
    // Let libtorch's and glibc's deferred frees land.
    std::thread::sleep(Duration::from_millis(500));
    assert_memory_settled("worker", before, resident_pages());

    assert!(driver.unexpected_errors.is_empty(), "errors besides the broken images: {:#?}", driver.unexpected_errors);
    assert!(driver.most_queued <= 5, "the outbox held {} requests; one per kind at most", driver.most_queued);
    assert_eq!(driver.loaded, Some(last_arch), "the last switch wins");
    assert_eq!(driver.shown, Some((last_arch, last_image)), "the last image, on the last architecture, wins");
    assert_eq!(driver.gradients_for, Some(last_arch), "the gradients follow the last prediction");
}

#[test]
fn a_switch_during_a_gradient_pass_is_served_first() {
    let _serial = serial();
    // ResNet-50 at 224×224: a gradient pass long enough to land in (0.3–3 s on this VM's CPU).
    let mut driver = Driver::new();
    driver.load(zoo::find("resnet50").expect("resnet50"));
    driver.classify(ImageInput::Bytes { name: "first.png".into(), bytes: png(1).into() });
    driver.settle();
    assert_eq!(driver.gradients_for, Some("resnet50"), "the prediction's gradients ran");
    let start = Instant::now();
    driver.send(Request::Gradients {
        disabled: Vec::new(),
        target: None,
        retention: Retention::EveryLayer,
        settings: Default::default(),
        with_image: false,
    });
    driver.settle();
    let full_pass = start.elapsed();

    // A device move sent while the pass runs is answered first; the pass, put back behind
    // it, then runs on the moved model.
    driver.gradients_for = None;
    driver.send(Request::Gradients {
        disabled: Vec::new(),
        target: None,
        retention: Retention::EveryLayer,
        settings: Default::default(),
        with_image: false,
    });
    driver.send(Request::Device(Device::Cpu));
    let order: Vec<(RequestKind, bool)> = driver.settle().iter().map(|r| (r.kind, r.result.is_ok())).collect();
    assert_eq!(
        order,
        [(RequestKind::Device, true), (RequestKind::Gradients, true)],
        "the move first, then the whole pass"
    );
    assert_eq!(driver.gradients_for, Some("resnet50"));

    // A new architecture sent while the pass runs is loaded without waiting for it; the pass,
    // about a model that is gone, is dropped without an answer or an error. (The driver then
    // runs the image on the new model, with its own gradients, as the app does.)
    driver.send(Request::Gradients {
        disabled: Vec::new(),
        target: None,
        retention: Retention::EveryLayer,
        settings: Default::default(),
        with_image: false,
    });
    let sent = Instant::now();
    driver.load(zoo::find("lenet5").expect("lenet5"));
    let mut loaded_after = None;
    let deadline = Instant::now() + TIMEOUT;
    while driver.worker.any_pending() {
        assert!(Instant::now() < deadline, "the worker still owes answers after {TIMEOUT:?}");
        for reply in driver.pump() {
            if reply.kind == RequestKind::Load {
                loaded_after.get_or_insert(sent.elapsed());
            }
            if let Ok(Payload::Gradients(flow)) = &reply.result {
                assert_eq!(flow.arch, "lenet5", "the pass on the replaced model was answered");
            }
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let loaded_after = loaded_after.expect("the new model loaded");
    eprintln!("a whole gradient pass took {full_pass:?}; the switch landing in one was served in {loaded_after:?}");
    assert!(driver.unexpected_errors.is_empty(), "{:#?}", driver.unexpected_errors);
    assert!(loaded_after < full_pass, "the switch waited for the pass ({loaded_after:?}, a pass {full_pass:?})");
    assert_eq!(driver.loaded, Some("lenet5"));
    assert_eq!(driver.shown, Some(("lenet5", "first.png".to_owned())), "the image runs on the new model");
    assert_eq!(driver.gradients_for, Some("lenet5"), "with its own gradients");
}

#[test]
fn the_app_survives_a_burst_of_drops_and_switches() {
    let _serial = serial();
    let mut harness = Harness::builder().with_size(egui::vec2(1400.0, 900.0)).build_eframe(|cc| {
        let start = Start { arch: Some(ARCHS[0].to_owned()), ignore_storage: true, ..Start::default() };
        App::new(cc, start).expect("the model worker thread starts")
    });
    let settle = |harness: &mut Harness<'static, App>| {
        app_harness::step_until(harness, TIMEOUT, "the app to finish its work (deadlocked?)", |app| !app.busy());
    };
    // Drops come as bytes under a path nobody can read, so each one is its own image.
    let drops: Vec<(String, Vec<u8>)> = (0..IMAGES)
        .map(|i| {
            if i % 17 == 5 {
                (format!("broken-{i}.png"), b"\x89PNG\r\n\x1a\nnot really".to_vec())
            } else {
                (format!("drop-{i}.png"), png(i))
            }
        })
        .collect();
    // The app starts on ARCHS[0], and a click on the selected entry does nothing.
    let arch_of_switch = |n: usize| ARCHS[(n + 1) % ARCHS.len()];
    let burst = |harness: &mut Harness<'static, App>| {
        for event in events() {
            match event {
                Event::Switch(n) => harness.get_by_label(arch_of_switch(n)).click_accesskit(),
                Event::Image(n) => {
                    let (name, bytes) = &drops[n];
                    let path = PathBuf::from("/nonexistent").join(name);
                    harness.input_mut().dropped_files.push(Arc::new(TestFile { path, bytes: Some(bytes.clone()) }));
                }
            }
            harness.step();
        }
    };
    settle(&mut harness);

    // Two bursts warm up (the renderer's caches fill over more than one); two are measured,
    // so that memory kept by every burst would show twice over.
    for _ in 0..2 {
        burst(&mut harness);
        settle(&mut harness);
    }
    std::thread::sleep(Duration::from_millis(500));
    let before = resident_pages();
    for _ in 0..2 {
        burst(&mut harness);
        settle(&mut harness);
    }
    std::thread::sleep(Duration::from_millis(500));
    assert_memory_settled("app", before, resident_pages());

    let app = harness.state();
    let last_arch = arch_of_switch(SWITCHES - 1);
    assert_eq!(app.loaded_arch(), Some(last_arch), "the last switch wins");
    // The burst ends on a drop right after the last switch, while that model loads: the app
    // keeps the newest image until the model is there, then runs it.
    let last_drop = events().iter().rev().find_map(|e| match e {
        Event::Image(n) => Some(drops[*n].0.as_str()),
        Event::Switch(_) => None,
    });
    assert_eq!(last_drop, Some("drop-199.png"), "the burst ends on a valid drop");
    let shown = app.prediction().map(|p| p.image.name());
    assert_eq!(shown.as_deref(), last_drop, "the last image dropped is the one shown");
    assert!(app.message().is_none_or(|m| !m.is_error), "no error is left on screen: {:?}", app.message());
    assert!(harness.query_by_label_contains("the model worker stopped").is_none());
}

#[test]
fn an_image_dropped_while_a_model_loads_is_the_one_shown() {
    let _serial = serial();
    let mut harness = Harness::builder().with_size(egui::vec2(1400.0, 900.0)).build_eframe(|cc| {
        let start = Start { arch: Some("lenet5".to_owned()), ignore_storage: true, ..Start::default() };
        App::new(cc, start).expect("the model worker thread starts")
    });
    let drop = |harness: &mut Harness<'static, App>, name: &str, i: usize| {
        let path = PathBuf::from("/nonexistent").join(name);
        harness.input_mut().dropped_files.push(Arc::new(TestFile { path, bytes: Some(png(i)) }));
        harness.step();
    };
    let settle = |harness: &mut Harness<'static, App>| {
        app_harness::step_until(harness, TIMEOUT, "the app to finish its work (deadlocked?)", |app| !app.busy());
    };
    settle(&mut harness);
    drop(&mut harness, "before.png", 1);
    settle(&mut harness);
    // VGG-11's 133 million random weights take a while to make: the drop lands meanwhile.
    harness.get_by_label("vgg11").click_accesskit();
    harness.step();
    drop(&mut harness, "during.png", 2);
    settle(&mut harness);
    assert_eq!(harness.state().loaded_arch(), Some("vgg11"));
    let shown = harness.state().prediction().map(|p| p.image.name());
    assert_eq!(shown.as_deref(), Some("during.png"), "the image dropped last is shown, on the new model");
}
