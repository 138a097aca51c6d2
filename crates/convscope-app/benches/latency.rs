//! From an image asked for to everything on screen (its top-5, the feature maps of the
//! selected layer and the gradient curve), in the real app, against the engine doing the same
//! work and PyTorch doing it, in one run (`make bench-latency`). A benchmark: it prints figures
//! and asserts nothing about time.
//!
//! - Headless: the app in an egui_kittest harness, stepped as eframe's event loop steps it: a
//!   frame when the app or its worker asks for one, at the delay asked, never in a busy loop.
//! - A real window: `convscope gui --latency-run` (the release binary beside this one), where
//!   there is a display; `make bench-latency` gives it Xvfb's, software-rendered, when there
//!   is none. Drawn by OpenGL (the default), then again by wgpu for scale. Everything
//!   "painted" is the start of the frame after the round's last, which eframe begins once
//!   that frame's paint and buffer swap have returned.
//! - The engine and PyTorch: `convscope bench CASE --modes top5,capture,gradients` with the
//!   app's thread count: decode, preprocess, the keep-every-output forward and the gradient
//!   pass, each side's medians, interleaved round by round; once before the windows' runs
//!   and once after, and the ratios against the mean of the two.
//!
//! The app runs open the bundled photos in turn, each once the last is on screen, after one
//! round of warm-up; `LATENCY_ROUNDS` (default 10) sets the rounds, `LATENCY_ARCH` the network.

#[path = "../tests/app_harness/mod.rs"]
mod app_harness;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use convscope_app::stopwatch::Round;
use convscope_app::{App, LatencyReport, LatencyRun, Settings, Start};
use egui_kittest::Harness;
use serde_json::Value;

const TIMEOUT: Duration = Duration::from_secs(900);

/// When the next frame is due, as eframe's loop keeps it: the earliest delay any repaint
/// request asked for, from the UI thread or the worker's.
#[derive(Default)]
struct NextFrame {
    due: Mutex<Option<Instant>>,
    woken: Condvar,
}

impl NextFrame {
    fn ask(&self, delay: Duration) {
        let at = Instant::now() + delay;
        if let Ok(mut due) = self.due.lock() {
            *due = Some(due.map_or(at, |d| d.min(at)));
            self.woken.notify_all();
        }
    }

    /// Sleeps until a frame is due.
    fn wait(&self, deadline: Instant) {
        let Ok(mut due) = self.due.lock() else { return };
        loop {
            let now = Instant::now();
            match *due {
                Some(at) if at <= now => break,
                Some(at) => {
                    due = self.woken.wait_timeout(due, at - now).map(|(g, _)| g).unwrap_or_else(|e| e.into_inner().0)
                }
                None if now >= deadline => break,
                None => {
                    due = self
                        .woken
                        .wait_timeout(due, deadline - now)
                        .map(|(g, _)| g)
                        .unwrap_or_else(|e| e.into_inner().0)
                }
            }
        }
        *due = None;
    }
}

fn headless(arch: &str, run: LatencyRun) -> LatencyReport {
    let settings = Settings { arch: Some(arch.to_owned()), show_gradients: true, ..Settings::default() };
    let text = ron::to_string(&settings).unwrap_or_else(|e| panic!("settings as RON: {e}"));
    let storage: &'static app_harness::SavedSettings = Box::leak(Box::new(app_harness::SavedSettings(text)));
    let arch = arch.to_owned();
    let mut harness = Harness::builder().with_size(egui::vec2(1600.0, 1000.0)).build_eframe(move |cc| {
        cc.storage = Some(storage);
        let start = Start { arch: Some(arch), latency_run: Some(run), ..Start::default() };
        App::new(cc, start).unwrap_or_else(|e| panic!("the worker thread starts: {e}"))
    });
    let next = Arc::new(NextFrame::default());
    let wake = Arc::clone(&next);
    harness.ctx.set_request_repaint_callback(move |info| wake.ask(info.delay));
    let started = Instant::now();
    loop {
        harness.step();
        if let Some(report) = harness.state().latency_report() {
            return report.clone();
        }
        assert!(started.elapsed() < TIMEOUT, "the headless latency run did not finish in {TIMEOUT:?}");
        next.wait(started + TIMEOUT);
    }
}

/// The release `convscope` binary built beside this benchmark (`target/release/`).
fn convscope_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_else(|e| panic!("this benchmark's path: {e}"));
    let release =
        exe.parent().and_then(Path::parent).unwrap_or_else(|| panic!("{} has no release folder", exe.display()));
    release.join("convscope")
}

fn window(binary: &Path, arch: &str, renderer: &str, rounds: usize, out: &Path) -> Result<LatencyReport, String> {
    if std::env::var_os("DISPLAY").is_none() && std::env::var_os("WAYLAND_DISPLAY").is_none() {
        return Err("no display: run under Xvfb (`make bench-latency` does)".into());
    }
    let status = Command::new(binary)
        .args(["gui", arch, "--renderer", renderer, "--latency-run"])
        .arg(out)
        .args(["--latency-rounds", &rounds.to_string()])
        .status()
        .map_err(|e| format!("starting {}: {e}", binary.display()))?;
    if !status.success() {
        return Err(format!("convscope gui --latency-run ended with {status}"));
    }
    let text = std::fs::read_to_string(out).map_err(|e| format!("reading {}: {e}", out.display()))?;
    let value: Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
    report_from_json(&value).ok_or_else(|| format!("{} is not a latency report", out.display()))
}

fn report_from_json(value: &Value) -> Option<LatencyReport> {
    let rounds = value["rounds"]
        .as_array()?
        .iter()
        .map(|r| {
            let ms = |key: &str| r[key].as_f64();
            let worker = &r["worker"];
            let wms = |key: &str| worker[key].as_f64();
            Some(Round {
                image: r["image"].as_str()?.to_owned(),
                worker: convscope_core::session::Timings {
                    decode_ms: wms("decode_ms"),
                    preprocess_ms: wms("preprocess_ms"),
                    forward_ms: wms("forward_ms"),
                    activation_ms: wms("activation_ms"),
                    backward_ms: wms("backward_ms"),
                },
                top5_ms: ms("top5_ms"),
                maps_ms: ms("maps_ms"),
                curve_ms: ms("curve_ms"),
                done_ms: ms("done_ms"),
                painted_ms: ms("painted_ms"),
                maps_ui_ms: ms("maps_ui_ms")?,
                plot_ui_ms: ms("plot_ui_ms")?,
                frames: u32::try_from(r["frames"].as_u64()?).ok()?,
                ui_ms: ms("ui_ms")?,
            })
        })
        .collect::<Option<Vec<_>>>()?;
    Some(LatencyReport {
        arch: value["arch"].as_str()?.to_owned(),
        threads: usize::try_from(value["threads"].as_u64()?).ok()?,
        first_frame_ms: value["first_frame_ms"].as_f64(),
        rounds,
        frame_ms: value["frame_ms"].as_f64(),
    })
}

/// One side of `convscope bench`'s JSON: medians in milliseconds of decode, preprocess, the
/// keep-every-output forward and the gradient pass.
struct SameWork {
    decode: f64,
    preprocess: f64,
    capture: f64,
    gradients: f64,
}

impl SameWork {
    fn total(&self) -> f64 {
        self.decode + self.preprocess + self.capture + self.gradients
    }
}

fn same_work(binary: &Path, arch: &str, threads: usize, rounds: usize, out: &Path) -> Result<[SameWork; 2], String> {
    let status = Command::new(binary)
        .args(["bench", arch, "--modes", "top5,capture,gradients", "--threads", &threads.to_string()])
        .args(["--rounds", &rounds.to_string(), "--json"])
        .arg(out)
        .status()
        .map_err(|e| format!("starting {}: {e}", binary.display()))?;
    if !status.success() {
        return Err(format!("convscope bench ended with {status}"));
    }
    let text = std::fs::read_to_string(out).map_err(|e| format!("reading {}: {e}", out.display()))?;
    let value: Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
    let case = &value["cases"][0];
    let median = |mode: &str, side: &str| -> Option<f64> {
        let found = case["modes"].as_array()?.iter().find(|m| m["mode"] == mode)?;
        Some(found[side]["median"].as_f64()? * 1e3)
    };
    let side = |name: &str, parts: &str| -> Option<SameWork> {
        Some(SameWork {
            decode: case[parts][0].as_f64()?,
            preprocess: case[parts][1].as_f64()?,
            capture: median("capture", name)?,
            gradients: median("gradients", name)?,
        })
    };
    match (side("convscope", "top5_parts_convscope"), side("pytorch", "top5_parts_pytorch")) {
        (Some(ours), Some(theirs)) => Ok([ours, theirs]),
        _ => Err(format!("{} lacks the modes asked for", out.display())),
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    if values.is_empty() { f64::NAN } else { values[values.len() / 2] }
}

/// Prints one place's medians; returns everything laid out and everything painted.
fn print_app(label: &str, report: &LatencyReport) -> (f64, f64) {
    let of = |f: &dyn Fn(&Round) -> Option<f64>| median(report.rounds.iter().filter_map(f).collect());
    let done = of(&|r| r.done_ms);
    let painted = of(&|r| r.painted_ms);
    println!(
        "{label:<18} decode {:>5.1} · preprocess {:>5.1} · forward+capture {:>6.1} · maps copy {:>4.1} · backward {:>6.1} · maps UI {:>5.1} · plot UI {:>4.1} · top-5 on screen {:>6.1} · everything laid out {:>6.1}, painted {:>6.1} ms · {:>4.1} frames ({:>5.1} ms UI)",
        of(&|r| r.worker.decode_ms),
        of(&|r| r.worker.preprocess_ms),
        of(&|r| r.worker.forward_ms),
        of(&|r| r.worker.activation_ms),
        of(&|r| r.worker.backward_ms),
        of(&|r| Some(r.maps_ui_ms)),
        of(&|r| Some(r.plot_ui_ms)),
        of(&|r| r.top5_ms),
        done,
        painted,
        of(&|r| Some(f64::from(r.frames))),
        of(&|r| Some(r.ui_ms)),
    );
    (done, painted)
}

fn main() {
    // `cargo test --all-targets` builds this file and would run it without --bench.
    if !std::env::args().any(|a| a == "--bench") {
        println!("latency: a benchmark; run it with `make bench-latency`");
        return;
    }
    let arch = std::env::var("LATENCY_ARCH").unwrap_or_else(|_| "efficientnet_lite0".into());
    let rounds: usize = std::env::var("LATENCY_ROUNDS").ok().and_then(|r| r.parse().ok()).unwrap_or(10);
    let images: Vec<PathBuf> = ["chelsea.png", "coffee.png"].map(convscope_core::paths::asset).to_vec();
    let binary = convscope_binary();
    let scratch = tempfile::tempdir().unwrap_or_else(|e| panic!("a scratch folder: {e}"));
    println!("convscope latency: {arch}, {rounds} rounds after 1 of warm-up, the bundled photos in turn; medians");

    let run = LatencyRun { images, warmup: 1, rounds, out: None };
    let headless = headless(&arch, run);
    let threads = headless.threads;
    // The engine's same work before and after the windows' runs: on a shared machine whose
    // load changes meanwhile, the two bracket what the windows had.
    let same_before = same_work(&binary, &arch, threads, rounds, &scratch.path().join("bench_before.json"));
    let window_glow = window(&binary, &arch, "glow", rounds, &scratch.path().join("window.json"));
    // The other renderer, for scale: without a GPU its frames cost more.
    let window_wgpu = window(&binary, &arch, "wgpu", rounds, &scratch.path().join("window_wgpu.json"));
    let same_after = same_work(&binary, &arch, threads, rounds, &scratch.path().join("bench_after.json"));
    // The app leaves a core to the window; what the engine does with every core, for scale.
    let all_cores = usize::try_from(tch::get_num_threads()).unwrap_or(threads);
    let same_all_cores = (all_cores != threads)
        .then(|| same_work(&binary, &arch, all_cores, rounds, &scratch.path().join("bench_all.json")));

    println!("libtorch threads on the app's model worker: {threads} (the engine and PyTorch below run with as many)");
    let app_headless = print_app("app, headless", &headless);
    let app_window = match &window_glow {
        Ok(report) => Some(print_app("app, window", report)),
        Err(e) => {
            println!("app, window: not measured: {e}");
            None
        }
    };
    let app_window_wgpu = match &window_wgpu {
        Ok(report) => Some(print_app("app, window, wgpu", report)),
        Err(e) => {
            println!("app, window, wgpu: not measured: {e}");
            None
        }
    };
    match (&same_before, &same_after) {
        (Ok(before), Ok(after)) => {
            for (label, side) in [
                ("engine (CLI), 1st", &before[0]),
                ("engine (CLI), 2nd", &after[0]),
                ("PyTorch, 1st", &before[1]),
                ("PyTorch, 2nd", &after[1]),
            ] {
                println!(
                    "{label:<18} decode {:>5.1} · preprocess {:>5.1} · forward+capture {:>6.1} · backward {:>6.1} · total {:>6.1} ms",
                    side.decode,
                    side.preprocess,
                    side.capture,
                    side.gradients,
                    side.total()
                );
            }
            let engines = [before[0].total(), after[0].total()];
            let engine = (engines[0] + engines[1]) / 2.0;
            // The ratio against the mean of the two engine runs, and against each.
            let ratio = |app: f64| {
                let [a, b] = engines.map(|e| app / e);
                format!("{:.2} ({:.2}–{:.2})", app / engine, a.min(b), a.max(b))
            };
            println!(
                "everything painted / engine's same work (target ≤ 1.2; the mean of the engine's two runs, each in brackets): headless {}{}{}; engine / PyTorch {:.2}",
                ratio(app_headless.1),
                app_window.map_or(String::new(), |w| format!(", window {} (laid out {})", ratio(w.1), ratio(w.0))),
                app_window_wgpu.map_or(String::new(), |w| format!(", window with wgpu {}", ratio(w.1))),
                engine / ((before[1].total() + after[1].total()) / 2.0)
            );
        }
        (Err(e), _) | (_, Err(e)) => println!("engine and PyTorch: not measured: {e}"),
    }
    match same_all_cores {
        Some(Ok([ours, theirs])) => println!(
            "with {all_cores} threads: engine (CLI) total {:.1} ms, PyTorch {:.1} ms; everything painted / this engine: headless {:.2}{}",
            ours.total(),
            theirs.total(),
            app_headless.1 / ours.total(),
            app_window.map_or(String::new(), |w| format!(", window {:.2}", w.1 / ours.total()))
        ),
        Some(Err(e)) => println!("with {all_cores} threads: not measured: {e}"),
        None => {}
    }
    if let Some(ms) = headless.frame_ms {
        println!("a frame back to back, headless: {ms:.1} ms (egui's layout and kittest's steps, nothing rasterised)");
    }
    if let Ok(report) = &window_wgpu
        && let Some(ms) = report.frame_ms
    {
        println!("a frame back to back, in the window with wgpu: {ms:.1} ms");
    }
    if let Ok(report) = &window_glow {
        if let Some(ms) = report.frame_ms {
            println!(
                "a frame back to back, in the window: {ms:.1} ms (layout, and rasterisation where there is no GPU)"
            );
        }
        match report.first_frame_ms {
            Some(ms) => println!("first frame of the window: {ms:.0} ms after the process started (target ≤ 1000)"),
            None => println!("first frame of the window: unknown (no /proc here)"),
        }
    }
}
