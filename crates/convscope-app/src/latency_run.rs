//! `convscope gui --latency-run FILE`: the window opens images by itself, one after another,
//! as a person dropping them would, and writes how long each took to reach the screen
//! (`stopwatch`), then closes. The latency benchmark runs it under Xvfb, and drives the same
//! run headless through egui_kittest.

use std::path::PathBuf;
use std::time::Instant;

use convscope_core::session::ImageInput;

use crate::command::Command;
use crate::stopwatch::{Round, Stopwatch};

/// What a latency run does; given to the window through `Start`.
#[derive(Clone, Debug)]
pub struct LatencyRun {
    /// Opened in turn, each after the previous one is on screen.
    pub images: Vec<PathBuf>,
    /// Rounds first run and not reported (the first pays for the fast layout's weight copy
    /// and libtorch's first allocations).
    pub warmup: usize,
    pub rounds: usize,
    /// Where the report goes; `None` keeps it in the app (headless runs read it there).
    pub out: Option<PathBuf>,
}

/// What the run reports.
#[derive(Clone, Debug, serde::Serialize)]
pub struct LatencyReport {
    pub arch: String,
    /// libtorch's intra-op threads on the window's model worker.
    pub threads: usize,
    /// The process's age when the first frame was drawn.
    pub first_frame_ms: Option<f64>,
    pub rounds: Vec<Round>,
    /// What one frame of the window as the last round left it costs, drawn back to back
    /// with the worker idle (`TIMED_FRAMES`, median of the intervals): in a window without a
    /// GPU, mostly Mesa rasterising it on the CPU.
    pub frame_ms: Option<f64>,
}

/// Frames drawn back to back after the rounds to time one.
const TIMED_FRAMES: usize = 30;

/// A latency run under way.
#[derive(Debug)]
pub(crate) struct Driver {
    run: LatencyRun,
    opened: usize,
    /// When each frame after the rounds began.
    frame_starts: Vec<Instant>,
    pub(crate) report: Option<LatencyReport>,
}

impl Driver {
    pub(crate) fn new(run: LatencyRun) -> Self {
        Self { run, opened: 0, frame_starts: Vec::new(), report: None }
    }

    /// A run with a report file is the real window's, which closes when done.
    pub(crate) fn writes_file(&self) -> bool {
        self.run.out.is_some()
    }

    /// Whether the run is timing frames and wants the next one at once.
    pub(crate) fn timing_frames(&self) -> bool {
        self.report.is_none() && !self.frame_starts.is_empty()
    }

    /// The next image to open once the last one is on screen and the worker idle; then frames
    /// back to back; at the end, the report, written where asked.
    pub(crate) fn frame(
        &mut self,
        arch: Option<&str>,
        idle: bool,
        threads: usize,
        stopwatch: &Stopwatch,
    ) -> Result<Vec<Command>, String> {
        let Some(arch) = arch else { return Ok(Vec::new()) };
        if self.report.is_some() || !idle || stopwatch.running() || self.run.images.is_empty() {
            return Ok(Vec::new());
        }
        let total = self.run.warmup + self.run.rounds;
        if self.opened < total {
            let image = self.run.images[self.opened % self.run.images.len()].clone();
            self.opened += 1;
            return Ok(vec![Command::OpenImage(ImageInput::Path(image))]);
        }
        if self.frame_starts.len() <= TIMED_FRAMES {
            self.frame_starts.push(Instant::now());
            return Ok(Vec::new());
        }
        let mut intervals: Vec<f64> = self.frame_starts.windows(2).map(|w| (w[1] - w[0]).as_secs_f64() * 1e3).collect();
        intervals.sort_by(f64::total_cmp);
        let finished = &stopwatch.finished;
        let rounds = finished[finished.len().saturating_sub(self.run.rounds)..].to_vec();
        let report = LatencyReport {
            arch: arch.to_owned(),
            threads,
            first_frame_ms: stopwatch.first_frame.map(|d| d.as_secs_f64() * 1e3),
            rounds,
            frame_ms: intervals.get(intervals.len() / 2).copied(),
        };
        if let Some(path) = &self.run.out {
            let text = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
            std::fs::write(path, text).map_err(|e| format!("writing {}: {e}", path.display()))?;
        }
        self.report = Some(report);
        Ok(Vec::new())
    }
}
