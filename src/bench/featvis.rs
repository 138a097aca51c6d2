//! `convscope bench --featvis`: feature visualisation's seconds per step against Lucent
//! (torch-lucent 0.1.8) on the same libtorch, in the same run, at several depths of a network.
//!
//! Both sides load the same random weights (what a step costs does not depend on them), make
//! a 128-pixel image from a spectrum, apply Lucid's transforms, resize to the network's input
//! and take Adam steps on one channel's mean activation, or on a batch of channels together
//! (one image each). Lucent runs the whole network and differentiates every weight, as its
//! notebooks do; convscope runs the graph up to the node and differentiates the image alone.
//! Runs alternate between the sides (who goes first alternates too); the figure that counts is
//! the median of the paired ratios. The fixed parts' equality with Lucent is the featvis
//! tests' business (crates/convscope-core/tests/featvis.rs).

use std::io::Write;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use serde::Serialize;
use serde_json::json;
use tch::Device;

use convscope_core::engine::{self, WeightsChoice};
use convscope_core::featvis::{self, Control, Settings};
use convscope_core::zoo::{self, ArchSpec};

use super::BenchArgs;
use super::machine::{Machine, load_average, utc_now};
use super::reference::Reference;
use super::stats::{Stats, paired_ratios};

/// The cases when none are named.
pub const FEATVIS_CASES: [&str; 2] = ["efficientnet_lite0", "vgg16"];
/// The optimised image's side, Lucent's default.
const SIZE: i64 = 128;
/// Channels optimised together in the batched rows.
const BATCH: usize = 16;
/// The cases that also time a batch of `BATCH` channels (at their second depth): on VGG-16,
/// Lucent's batched step takes 16 times its 2–3 s single one on a thread.
const BATCHED_CASES: [&str; 1] = ["efficientnet_lite0"];

/// The depths of a case: our node or block, Lucent's module, and whether it is the last layer
/// (the target there is parity, not half).
fn depths(case: &str) -> Result<Vec<(&'static str, &'static str, bool)>> {
    Ok(match case {
        "efficientnet_lite0" => vec![
            ("_blocks.1", "_blocks.1", false),
            ("_blocks.5", "_blocks.5", false),
            ("_blocks.10", "_blocks.10", false),
            // The head's activation; Lucent's hook on the shared `_swish` keeps its last call.
            ("_swish_head", "_swish", true),
        ],
        "vgg16" => vec![
            ("features.8", "features.8", false),
            ("features.15", "features.15", false),
            ("features.22", "features.22", false),
            ("features.29", "features.29", true),
        ],
        other => bail!("no depths are set for {other} in the feature visualisation benchmark"),
    })
}

#[derive(Serialize)]
struct Row {
    case: String,
    node: String,
    last_layer: bool,
    channels: usize,
    steps: usize,
    /// Seconds per step, each side.
    convscope: Stats,
    lucent: Stats,
    paired_ratio: Stats,
    target: f64,
    /// convscope's seconds per channel at `DEFAULT_STEPS` steps, from the median step.
    seconds_per_channel: f64,
    lucent_seconds_per_channel: f64,
}

#[derive(Serialize)]
struct Report {
    date: String,
    machine: Machine,
    threads: usize,
    rounds: usize,
    warmup: usize,
    torch: String,
    lucent: String,
    kornia: String,
    size: i64,
    default_steps: usize,
    rows: Vec<Row>,
}

pub(super) fn run(args: &BenchArgs) -> Result<()> {
    let mut machine = Machine::probe();
    let threads = args.threads.unwrap_or(machine.cpus).max(1);
    let (rounds, warmup, steps) = if args.quick { (1, 1, 2) } else { (args.rounds.max(1), args.warmup, 8) };
    tch::set_num_threads(threads as i32);
    let cases: Vec<String> = if args.cases.is_empty() {
        FEATVIS_CASES.iter().map(|s| (*s).to_owned()).collect()
    } else {
        args.cases.clone()
    };
    let root = convscope_core::paths::checkout();
    let dir = root.join("target").join("bench");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut reference = Reference::start(&convscope_core::paths::venv_python(), &root.join("bench/featvis.py"))?;
    let setup = reference.ask(json!({"cmd": "setup", "threads": threads}))?;
    let text = |key: &str| setup[key].as_str().unwrap_or("?").to_owned();
    let (torch, lucent, kornia) = (text("torch"), text("lucent"), text("kornia"));
    eprintln!(
        "bench --featvis: {} case(s), {threads} thread(s) each side, {warmup} warm-up + {rounds} rounds of {steps} \
         steps; PyTorch {torch}, torch-lucent {lucent}, kornia {kornia}",
        cases.len()
    );
    let mut rows = Vec::new();
    for case in &cases {
        let spec = zoo::find(case)?;
        let case_rows = bench_case(&spec, &dir, rounds, warmup, steps, &mut reference).with_context(|| spec.id)?;
        rows.extend(case_rows);
    }
    drop(reference);
    machine.load_average_end = load_average();
    let report = Report {
        date: utc_now(),
        machine,
        threads,
        rounds,
        warmup,
        torch,
        lucent,
        kornia,
        size: SIZE,
        default_steps: Settings::default().steps,
        rows,
    };
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)
            .with_context(|| format!("writing {}", path.display()))?;
        eprintln!("results written to {}", path.display());
    }
    let mut out = crate::output::stdout();
    writeln!(
        out,
        "{:<20} {:<14} {:>3} {:>12} {:>12} {:>8} {:>7} {:>14} {:>14}",
        "case", "node", "ch", "convscope", "Lucent", "ratio", "target", "s/channel", "Lucent s/ch"
    )?;
    for r in &report.rows {
        writeln!(
            out,
            "{:<20} {:<14} {:>3} {:>10.3}s {:>10.3}s {:>8.3} {:>7} {:>14.1} {:>14.1}",
            r.case,
            r.node,
            r.channels,
            r.convscope.median,
            r.lucent.median,
            r.paired_ratio.median,
            format!("≤{:.1}", r.target),
            r.seconds_per_channel,
            r.lucent_seconds_per_channel
        )?;
    }
    writeln!(
        out,
        "(seconds per step, medians; s/channel: at {} steps, a batched row's step shared by its channels)",
        report.default_steps
    )?;
    Ok(())
}

fn bench_case(
    spec: &ArchSpec,
    dir: &std::path::Path,
    rounds: usize,
    warmup: usize,
    steps: usize,
    reference: &mut Reference,
) -> Result<Vec<Row>> {
    let weights = super::weights_file(spec, dir, super::SEED)?;
    let (model, _) = engine::load_model(spec, &WeightsChoice::File(weights.clone()), Device::Cpu)?;
    let (mean, std) = spec.preprocess.mean_std();
    let channels_in = model.graph().input_channels() as usize;
    reference.ask(json!({
        "cmd": "prepare",
        "case": spec.id,
        "weights": weights,
        "mean": &mean[..channels_in],
        "std": &std[..channels_in],
        "input_size": spec.preprocess.output_size()[0],
    }))?;
    let depths = depths(spec.id)?;
    // Every depth one channel at a time, and the second also as a batch of 16.
    let mut plan: Vec<(&str, &str, bool, usize)> = depths.iter().map(|&(o, t, last)| (o, t, last, 1)).collect();
    if BATCHED_CASES.contains(&spec.id) {
        let (o, t, last) = depths[1];
        plan.push((o, t, last, BATCH));
    }
    let default_steps = Settings::default().steps as f64;
    let bar = super::case_bar(&format!("{} featvis", spec.id), (warmup + rounds) * plan.len())?;
    let mut rows = Vec::new();
    for (ours, theirs, last, batch) in plan {
        let node = featvis::resolve_node(model.graph(), ours)?;
        let channels: Vec<i64> = (0..batch as i64).collect();
        let mut ours_t = Vec::new();
        let mut theirs_t = Vec::new();
        for round in 0..warmup + rounds {
            bar.set_message(format!("{ours} ×{batch} · round {}", round + 1));
            let settings = Settings { steps, size: SIZE, seed: round as i64, preview_every: 0, ..Settings::default() };
            let mut pair = [0.0; 2];
            for turn in 0..2 {
                // The other side's OpenMP threads stop spinning first.
                std::thread::sleep(Duration::from_millis(20));
                if (turn == 0) == (round % 2 == 0) {
                    let mut control = Control { progress: &mut |_| {}, interrupt: &|| false };
                    let run = featvis::visualize(&model, &spec.preprocess, node, &channels, &settings, &mut control)?
                        .ok_or_else(|| anyhow!("interrupted"))?;
                    pair[0] = run.seconds / steps as f64;
                } else {
                    let answer = reference.ask(json!({
                        "cmd": "run", "layer": theirs, "channels": channels, "size": SIZE, "steps": steps,
                        "seed": round,
                    }))?;
                    let seconds = answer["seconds"].as_f64().ok_or_else(|| anyhow!("no time in {answer}"))?;
                    pair[1] = seconds / steps as f64;
                }
            }
            if round >= warmup {
                ours_t.push(pair[0]);
                theirs_t.push(pair[1]);
            }
            bar.inc(1);
        }
        let (convscope, lucent) = (
            Stats::of(&ours_t).ok_or_else(|| anyhow!("no rounds"))?,
            Stats::of(&theirs_t).ok_or_else(|| anyhow!("no rounds"))?,
        );
        rows.push(Row {
            case: spec.id.to_owned(),
            node: ours.to_owned(),
            last_layer: last,
            channels: batch,
            steps,
            seconds_per_channel: convscope.median * default_steps / batch as f64,
            lucent_seconds_per_channel: lucent.median * default_steps / batch as f64,
            paired_ratio: Stats::of(&paired_ratios(&ours_t, &theirs_t)).unwrap_or_default(),
            convscope,
            lucent,
            target: if last { 1.0 } else { 0.5 },
        });
    }
    bar.finish_with_message("done");
    Ok(rows)
}
