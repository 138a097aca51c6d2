//! Peak memory of keeping every node's output (the explorer's default), against the project's
//! budget: weights + activations + 25%. Each case runs in a fresh process (`convscope bench
//! --memory` starts one per case), so no earlier case's pages or high-water mark count.

use std::io::Write;
use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

use super::machine::{peak_rss, reset_peak_rss, status_bytes, utc_now};
use super::table::mb;
use convscope_core::executor::{Layout, Model, RunOptions};
use convscope_core::graph::Op;
use convscope_core::zoo;

/// The two cases: the most weights, and the most activations.
pub const DEFAULT_CASES: [&str; 2] = ["vgg19", "efficientnet_b7"];

/// The budget over weights + activations.
const BUDGET: f64 = 1.25;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MemoryResult {
    pub case: String,
    pub input: [i64; 3],
    /// RSS with libtorch loaded and initialised, before the model: what every process pays.
    pub baseline_bytes: u64,
    /// float32 parameters and buffers.
    pub weights_bytes: u64,
    /// The distinct tensors a capture holds (a view shares its input's memory).
    pub activations_bytes: u64,
    /// Peak RSS over the baseline while building the model and capturing every output.
    pub capture_peak_bytes: u64,
    /// Peak RSS over the baseline of a run up to the largest output alone, as the explorer
    /// does when it keeps only the layer on show.
    pub viewed_peak_bytes: u64,
    pub capture_ms: f64,
}

impl MemoryResult {
    pub fn ratio(&self) -> f64 {
        self.capture_peak_bytes as f64 / (self.weights_bytes + self.activations_bytes).max(1) as f64
    }
}

/// Runs each case in a child process and prints the table.
pub fn run(cases: &[String], threads: usize, json: Option<&PathBuf>) -> Result<()> {
    let cases: Vec<String> =
        if cases.is_empty() { DEFAULT_CASES.iter().map(|s| (*s).to_owned()).collect() } else { cases.to_vec() };
    for case in &cases {
        zoo::find(case)?;
    }
    let exe = std::env::current_exe().context("finding the convscope executable")?;
    let mut results = Vec::new();
    for case in &cases {
        eprintln!("bench: memory of {case}, in a fresh process");
        let output = Command::new(&exe)
            .args(["bench", "--memory-child", "--threads", &threads.to_string(), case])
            .output()
            .with_context(|| format!("starting {}", exe.display()))?;
        if !output.status.success() {
            bail!("measuring {case} failed: {}", String::from_utf8_lossy(&output.stderr).trim());
        }
        let result: MemoryResult =
            serde_json::from_slice(&output.stdout).with_context(|| format!("reading the measurement of {case}"))?;
        results.push(result);
    }
    if let Some(path) = json {
        std::fs::write(path, serde_json::to_string_pretty(&results)?)
            .with_context(|| format!("writing {}", path.display()))?;
        eprintln!("results written to {}", path.display());
    }
    write!(crate::output::stdout(), "{}", render(&results, threads))?;
    Ok(())
}

/// The child's side: measures one case and writes it as JSON on stdout.
pub fn child(case: &str, threads: usize) -> Result<()> {
    let result = measure(case, threads)?;
    writeln!(crate::output::stdout(), "{}", serde_json::to_string(&result)?)?;
    Ok(())
}

fn measure(case: &str, threads: usize) -> Result<MemoryResult> {
    let spec = zoo::find(case)?;
    tch::set_num_threads(threads as i32);
    // libtorch initialised (its allocator, thread pool and kernels' first use) before the baseline.
    let warm = Tensor::f_ones([1, 3, 8, 8], (Kind::Float, Device::Cpu))?;
    let _ = warm.f_conv2d(&Tensor::f_ones([1, 3, 3, 3], (Kind::Float, Device::Cpu))?, None::<Tensor>, 1, 1, 1, 1)?;
    let baseline = status_bytes("VmRSS:");
    reset_peak_rss();

    let graph = spec.graph();
    let shapes = graph.infer_shapes(spec.input[1], spec.input[2])?;
    let model = Model::random(graph.clone(), Device::Cpu, 0)?;
    let weights_bytes: u64 = model.params().iter().map(|t| t.numel() as u64 * 4).sum();
    let [c, h, w] = spec.input;
    tch::manual_seed(0);
    let x = Tensor::f_randn([1, c, h, w], (Kind::Float, Device::Cpu))?;
    let opts = RunOptions { layout: Layout::Reference, ..RunOptions::default() };

    // The explorer keeping only the layer on show: the worst layer to show is the largest.
    let largest = (0..graph.nodes.len()).max_by_key(|&id| shapes.nodes[id].shape.iter().product::<i64>()).unwrap_or(0);
    drop(model.forward_to(&x, &opts, largest)?);
    let viewed_peak = peak_rss();

    let start = Instant::now();
    let capture = model.forward_capture(&x, &opts)?;
    let capture_ms = start.elapsed().as_secs_f64() * 1e3;
    let capture_peak = peak_rss();
    let mut seen = std::collections::HashSet::new();
    // The outputs held (those made again on demand take no memory until shown).
    let activations_bytes = (0..capture.outputs.len())
        .zip(&graph.nodes)
        // A channel slice is a view into its input's memory.
        .filter(|(_, node)| !matches!(node.op, Op::ChannelSlice { .. }))
        .filter_map(|(id, _)| capture.outputs.held(id))
        .filter(|t| seen.insert(t.data_ptr() as usize))
        .map(|t| t.numel() as u64 * 4)
        .sum();
    drop(capture);
    Ok(MemoryResult {
        case: case.to_owned(),
        input: spec.input,
        baseline_bytes: baseline,
        weights_bytes,
        activations_bytes,
        capture_peak_bytes: capture_peak.saturating_sub(baseline),
        viewed_peak_bytes: viewed_peak.saturating_sub(baseline),
        capture_ms,
    })
}

pub fn render(results: &[MemoryResult], threads: usize) -> String {
    let mut out = format!(
        "convscope bench --memory · {} · {threads} thread(s) · one fresh process per case, random weights, batch 1 at the native size\n\n",
        utc_now()
    );
    out.push_str(&format!(
        "{:<18} {:>11} {:>10} {:>12} {:>12} {:>14} {:>13} {:>14} {:>10}\n",
        "case",
        "input",
        "weights",
        "activations",
        "budget ×1.25",
        "capture peak",
        "peak/(w+a)",
        "viewed-layer",
        "baseline"
    ));
    for r in results {
        let verdict = if r.ratio() <= BUDGET { " " } else { "✗" };
        out.push_str(&format!(
            "{:<18} {:>11} {:>10} {:>12} {:>12} {:>14} {:>12.2}{} {:>14} {:>10}\n",
            r.case,
            format!("{}×{}×{}", r.input[0], r.input[1], r.input[2]),
            mb(r.weights_bytes),
            mb(r.activations_bytes),
            mb(((r.weights_bytes + r.activations_bytes) as f64 * BUDGET) as u64),
            mb(r.capture_peak_bytes),
            r.ratio(),
            verdict,
            mb(r.viewed_peak_bytes),
            mb(r.baseline_bytes),
        ));
    }
    out.push_str(
        "\npeaks are VmHWM over the baseline (the RSS of a process with libtorch loaded and initialised, before any model); \
         capture peak includes building the model; viewed-layer = a run up to the largest output alone (the explorer keeping only the layer on show)\n",
    );
    out
}
