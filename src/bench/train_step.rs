//! `convscope bench --train-step`: one training step of the lab (`convscope lab`) against
//! PyTorch's on the same libtorch, for plain-56 and ResNet-56 at the Fig. 6 preset's size
//! (width 8, 16×16 digits, batch 128, SGD with momentum and weight decay).
//!
//! Both sides start from the same weights (written here), train on the same images in the
//! same order and do the same work per step: the batch's rows, forward in train mode, the
//! cross-entropy, backward, every weighted layer's gradient norm (the lab's heatmap), the SGD
//! update, and the loss and error read back. Ours is `Lab::step_run` itself; theirs is
//! `bench/train_step.py`. Steps alternate between the sides (who goes first alternates too),
//! and the figure that counts is the median of the paired ratios.

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::Serialize;
use serde_json::json;
use tch::Device;

use convscope_core::lab::{Lab, LabEvent, LabSettings, Preset};

use super::BenchArgs;
use super::machine::{Machine, load_average, utc_now};
use super::reference::Reference;
use super::stats::{Stats, paired_ratios};

/// The ratio the project aims for.
const TARGET: f64 = 1.05;

#[derive(Serialize)]
struct NetResult {
    net: String,
    params: i64,
    /// Seconds per step.
    convscope: Stats,
    pytorch: Stats,
    paired_ratio: Stats,
    /// The first step's loss on each side: the same weights and batch give the same number.
    first_loss: [f64; 2],
    /// The largest |Δ loss| over every step (the sides drift apart by rounding only).
    max_loss_diff: f64,
    /// Every step's loss, convscope and PyTorch.
    losses: Vec<[f64; 2]>,
}

#[derive(Serialize)]
struct Report {
    date: String,
    machine: Machine,
    threads: usize,
    rounds: usize,
    warmup: usize,
    torch: String,
    settings: LabSettings,
    nets: Vec<NetResult>,
}

pub(super) fn run(args: &BenchArgs) -> Result<()> {
    let mut machine = Machine::probe();
    // One thread unless told: what `convscope lab` runs with.
    let threads = args.threads.unwrap_or(1).max(1);
    let (rounds, warmup) = if args.quick { (3, 1) } else { (args.rounds.max(1), args.warmup) };
    tch::set_num_threads(threads as i32);

    let mut settings = Preset::Fig6.settings();
    settings.nets.retain(|n| n.depth == 56);
    // No held-out evaluation inside the timed steps.
    settings.steps = warmup + rounds + 1;
    settings.eval_every = usize::MAX;
    let mut lab = Lab::load(settings, &mut |_, _| {})?;

    let root = convscope_core::paths::checkout();
    let dir = root.join("target").join("bench");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let data_path = dir.join("lab_digits.safetensors");
    let every: Vec<usize> = (0..lab.data().len()).collect();
    let (images, labels) = lab.data().batch(&every, Device::Cpu)?;
    tch::Tensor::write_safetensors(&[("images", &images), ("labels", &labels)], &data_path)
        .with_context(|| format!("writing {}", data_path.display()))?;

    let python = convscope_core::paths::venv_python();
    let mut reference = Reference::start(&python, &root.join("bench/train_step.py"))?;
    let torch = reference.ask(json!({"cmd": "setup", "threads": threads}))?["torch"].as_str().unwrap_or("?").to_owned();
    for run in lab.runs() {
        let weights = dir.join(format!("lab_{}.safetensors", run.id));
        convscope_core::weights::save(run.model(), &weights)?;
        let s = lab.settings();
        reference.ask(json!({
            "cmd": "prepare",
            "name": run.id,
            "config": run.config,
            "weights": weights,
            "data": data_path,
            "lr": s.sgd.lr,
            "momentum": s.sgd.momentum,
            "weight_decay": s.sgd.weight_decay,
        }))?;
    }
    let side = lab.settings().resolution;
    eprintln!(
        "bench: one lab training step of {} (the same weights, batches and work on both sides), batch {} at {side}×{side}, {threads} thread(s) each side, {warmup} warm-up + {rounds} rounds; PyTorch {torch}",
        lab.runs().iter().map(|r| r.id.as_str()).collect::<Vec<_>>().join(" and "),
        lab.settings().batch,
    );

    let n = lab.runs().len();
    let mut ours: Vec<Vec<f64>> = vec![Vec::new(); n];
    let mut theirs: Vec<Vec<f64>> = vec![Vec::new(); n];
    let mut losses: Vec<Vec<[f64; 2]>> = vec![Vec::new(); n];
    for round in 0..warmup + rounds {
        for (i, (ours_t, theirs_t)) in ours.iter_mut().zip(&mut theirs).enumerate() {
            let indices = lab.batch_indices(lab.runs()[i].step_count());
            let name = lab.runs()[i].id.clone();
            let ours_first = round % 2 == 0;
            let (mut mine, mut other) = ((0.0, f64::NAN), (0.0, f64::NAN));
            for turn in 0..2 {
                // As the main bench: let the other side's OpenMP threads go to sleep first.
                std::thread::sleep(Duration::from_millis(20));
                if (turn == 0) == ours_first {
                    let start = Instant::now();
                    let events = lab.step_run(i)?;
                    let seconds = start.elapsed().as_secs_f64();
                    let Some(LabEvent::Step { record, .. }) = events.first() else {
                        bail!("{name}: no step was taken")
                    };
                    mine = (seconds, record.loss);
                } else {
                    let answer = reference.ask(json!({"cmd": "run", "name": name, "indices": indices}))?;
                    other =
                        (answer["seconds"].as_f64().unwrap_or(f64::NAN), answer["loss"].as_f64().unwrap_or(f64::NAN));
                }
            }
            losses[i].push([mine.1, other.1]);
            if round >= warmup {
                ours_t.push(mine.0);
                theirs_t.push(other.0);
            }
        }
    }
    drop(reference);
    machine.load_average_end = load_average();

    let mut nets = Vec::new();
    for (i, run) in lab.runs().iter().enumerate() {
        let (Some(a), Some(b)) = (Stats::of(&ours[i]), Stats::of(&theirs[i])) else { bail!("{}: no timings", run.id) };
        nets.push(NetResult {
            net: run.id.clone(),
            params: run.model().graph().parameter_count(),
            convscope: a,
            pytorch: b,
            paired_ratio: Stats::of(&paired_ratios(&ours[i], &theirs[i])).unwrap_or_default(),
            first_loss: losses[i][0],
            max_loss_diff: losses[i].iter().map(|[a, b]| (a - b).abs()).fold(0.0, f64::max),
            losses: losses[i].clone(),
        });
    }
    let report =
        Report { date: utc_now(), machine, threads, rounds, warmup, torch, settings: lab.settings().clone(), nets };
    if let Some(path) = &args.json {
        write_json(&report, path)?;
    }
    write!(crate::output::stdout(), "{}", render(&report))?;
    Ok(())
}

fn write_json(report: &Report, path: &Path) -> Result<()> {
    std::fs::write(path, serde_json::to_string_pretty(report)?)
        .with_context(|| format!("writing {}", path.display()))?;
    eprintln!("results written to {}", path.display());
    Ok(())
}

fn render(report: &Report) -> String {
    let ms = |s: &Stats| format!("{:.1} ({:.1}–{:.1})", s.median * 1e3, s.min * 1e3, s.max * 1e3);
    let mut out = format!(
        "convscope bench --train-step · {} · PyTorch {} (same libtorch) · {} · {} thread(s) each side · {} warm-up + {} rounds · load average {} → {}\n\n",
        report.date,
        report.torch,
        report.machine.cpu_model,
        report.threads,
        report.warmup,
        report.rounds,
        report.machine.load_average_start,
        report.machine.load_average_end,
    );
    out.push_str(&format!(
        "{:<14} {:>9} {:>24} {:>24} {:>20} {:>7} {:>22}\n",
        "net",
        "params",
        "convscope ms (min–max)",
        "PyTorch ms (min–max)",
        "ratio (pairs)",
        "target",
        "first loss (both)"
    ));
    for r in &report.nets {
        let verdict = if r.paired_ratio.median <= TARGET { " " } else { "✗" };
        out.push_str(&format!(
            "{:<14} {:>9} {:>24} {:>24} {:>20} {:>6}{verdict} {:>22}\n",
            r.net,
            r.params,
            ms(&r.convscope),
            ms(&r.pytorch),
            format!("{:.3} ({:.2}–{:.2})", r.paired_ratio.median, r.paired_ratio.min, r.paired_ratio.max),
            format!("≤{TARGET}"),
            format!("{:.6} / {:.6}", r.first_loss[0], r.first_loss[1]),
        ));
    }
    let drift = report.nets.iter().map(|r| r.max_loss_diff).fold(0.0, f64::max);
    out.push_str(&format!(
        "\nratio = median of the per-step ratios convscope/PyTorch (✗: above target); a step = batch rows, forward, \
         cross-entropy, backward, per-layer gradient norms, SGD, loss and error read; largest |Δ loss| between the sides over all steps: {drift:.1e}\n"
    ));
    out
}
