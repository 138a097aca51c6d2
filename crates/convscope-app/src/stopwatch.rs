//! How long a person waits: from an image asked for (dropped, opened, pasted, or run again
//! after a switch) to its top-5, the feature maps on view and the gradient curve all drawn,
//! with where the time went. The prediction panel shows the last figure; the latency
//! benchmark (`make bench-latency`) reads every round.

use std::time::{Duration, Instant};

use convscope_core::session::Timings;

/// One image's way to the screen. Times are milliseconds from the request, each taken at
/// the end of the frame that first drew the thing (egui paints that frame next).
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Round {
    pub image: String,
    /// The worker's stages: decode, preprocess, forward with capture, the maps' copy, and
    /// the forward + backward of the gradient curve.
    pub worker: Timings,
    pub top5_ms: Option<f64>,
    /// `None` when no feature maps were on view (another central view, or a flat output).
    pub maps_ms: Option<f64>,
    /// `None` when the gradient panel was closed.
    pub curve_ms: Option<f64>,
    /// Everything asked for laid out: the largest of the three.
    pub done_ms: Option<f64>,
    /// Everything asked for painted: the start of the next frame, which the window asks for
    /// at once and eframe begins only once the last frame's paint and buffer swap returned
    /// (with Mesa's software GL, the swap rasterises and hands the pixels to the X server).
    /// `None` until that frame; headless, where nothing is painted, the next step's start.
    pub painted_ms: Option<f64>,
    /// UI time spent drawing the feature maps (textures made from the values, the grid) and
    /// the gradient plot in this round's frames.
    pub maps_ui_ms: f64,
    pub plot_ui_ms: f64,
    /// Frames drawn while the round was under way, and the UI time of all of them.
    pub frames: u32,
    pub ui_ms: f64,
}

/// What a round waits for, fixed when it starts.
#[derive(Clone, Copy, Debug)]
struct Wants {
    maps: bool,
    curve: bool,
}

/// A round under way: what has arrived from the worker and is still to be drawn.
#[derive(Debug)]
struct Running {
    round: Round,
    started: Instant,
    wants: Wants,
    top5_arrived: bool,
    maps_arrived: bool,
    curve_arrived: bool,
}

/// How many finished rounds are kept for the benchmark.
const KEPT: usize = 256;

#[derive(Debug, Default)]
pub struct Stopwatch {
    running: Option<Running>,
    pub finished: Vec<Round>,
    /// The process's age when its first frame was drawn.
    pub first_frame: Option<Duration>,
    /// When the last finished round started, until the frame after its last one begins.
    unpainted: Option<Instant>,
}

impl Stopwatch {
    /// A new image is on its way; a round still running is abandoned (its image was replaced).
    pub fn start(&mut self, image: String, maps: bool, curve: bool) {
        self.running = Some(Running {
            round: Round {
                image,
                worker: Timings::default(),
                top5_ms: None,
                maps_ms: None,
                curve_ms: None,
                done_ms: None,
                painted_ms: None,
                maps_ui_ms: 0.0,
                plot_ui_ms: 0.0,
                frames: 0,
                ui_ms: 0.0,
            },
            started: Instant::now(),
            wants: Wants { maps, curve },
            top5_arrived: false,
            maps_arrived: false,
            curve_arrived: false,
        });
    }

    /// The image failed: nothing of it will be drawn.
    pub fn abandon(&mut self) {
        self.running = None;
    }

    pub fn predicted(&mut self, timings: &Timings, with_maps: bool) {
        if let Some(run) = &mut self.running {
            let t = &mut run.round.worker;
            (t.decode_ms, t.preprocess_ms, t.forward_ms, t.activation_ms) =
                (timings.decode_ms, timings.preprocess_ms, timings.forward_ms, timings.activation_ms);
            run.top5_arrived = true;
            run.maps_arrived |= with_maps;
        }
    }

    /// The feature maps of the node on view arrived on their own (the node was changed).
    pub fn maps(&mut self) {
        if let Some(run) = &mut self.running {
            run.maps_arrived = true;
        }
    }

    pub fn curve(&mut self, backward_ms: Option<f64>) {
        if let Some(run) = &mut self.running
            && run.top5_arrived
        {
            run.round.worker.backward_ms = backward_ms;
            run.curve_arrived = true;
        }
    }

    /// The maps have no grid to draw (a flat output, or an error): the round does not wait.
    pub fn no_maps(&mut self) {
        if let Some(run) = &mut self.running {
            run.wants.maps = false;
        }
    }

    pub fn view_times(&mut self, maps_ui: Duration, plot_ui: Duration) {
        if let Some(run) = &mut self.running {
            run.round.maps_ui_ms += maps_ui.as_secs_f64() * 1e3;
            run.round.plot_ui_ms += plot_ui.as_secs_f64() * 1e3;
        }
    }

    /// The start of a frame: the last one is painted.
    pub fn frame_begin(&mut self) {
        if let Some(started) = self.unpainted.take()
            && let Some(round) = self.finished.last_mut()
        {
            round.painted_ms = Some(started.elapsed().as_secs_f64() * 1e3);
        }
    }

    /// Whether a round finished in this frame and waits for the next to time its paint.
    pub fn awaits_paint(&self) -> bool {
        self.unpainted.is_some()
    }

    /// The end of a frame: what arrived before it is now drawn. `maps_shown` and
    /// `curve_shown`: whether the central view showed the maps and the gradient panel was open.
    pub fn frame_end(&mut self, frame_ui: Duration, maps_shown: bool, curve_shown: bool) {
        if self.first_frame.is_none() {
            self.first_frame = process_age();
        }
        let Some(run) = &mut self.running else { return };
        let now = run.started.elapsed().as_secs_f64() * 1e3;
        let round = &mut run.round;
        round.frames += 1;
        round.ui_ms += frame_ui.as_secs_f64() * 1e3;
        if run.top5_arrived && round.top5_ms.is_none() {
            round.top5_ms = Some(now);
        }
        run.wants.maps &= maps_shown;
        run.wants.curve &= curve_shown;
        if run.wants.maps && run.maps_arrived && round.maps_ms.is_none() {
            round.maps_ms = Some(now);
        }
        if run.wants.curve && run.curve_arrived && round.curve_ms.is_none() {
            round.curve_ms = Some(now);
        }
        let complete = round.top5_ms.is_some()
            && (!run.wants.maps || round.maps_ms.is_some())
            && (!run.wants.curve || round.curve_ms.is_some());
        if complete {
            let started = run.started;
            let mut round = self.running.take().map(|r| r.round).unwrap_or_else(|| unreachable!());
            self.unpainted = Some(started);
            round.done_ms = [round.top5_ms, round.maps_ms, round.curve_ms].into_iter().flatten().reduce(f64::max);
            if self.finished.len() == KEPT {
                self.finished.remove(0);
            }
            self.finished.push(round);
        }
    }

    pub fn last(&self) -> Option<&Round> {
        self.finished.last()
    }

    /// The round the prediction panel shows: the last finished, unless a newer is under way.
    pub fn shown(&self) -> Option<&Round> {
        if self.running.is_some() { None } else { self.finished.last() }
    }

    pub fn running(&self) -> bool {
        self.running.is_some()
    }
}

/// How long ago this process started, from the kernel's records (Linux), so the time to the
/// first frame includes loading libtorch's libraries, which happens before `main`.
pub fn process_age() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name may hold spaces and parentheses: fields are counted after its last ')'.
    let after_name = &stat[stat.rfind(')')? + 2..];
    // Field 22, `starttime`, in clock ticks after boot; fields from 3 on follow the name.
    let start_ticks: f64 = after_name.split_whitespace().nth(22 - 3)?.parse().ok()?;
    let uptime: f64 = std::fs::read_to_string("/proc/uptime").ok()?.split_whitespace().next()?.parse().ok()?;
    // SAFETY: sysconf only reads a configuration value.
    let ticks_per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks_per_second <= 0 {
        return None;
    }
    Some(Duration::from_secs_f64((uptime - start_ticks / ticks_per_second as f64).max(0.0)))
}
