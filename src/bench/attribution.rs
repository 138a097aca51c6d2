//! `convscope bench --attribution`: Grad-CAM, Saliency, Integrated Gradients (32 steps) and
//! Occlusion against captum 0.9.0 on the same libtorch, in the same run.
//!
//! Both sides load the same random weights and input (written by the main benchmark's
//! helpers), explain the same class at the same layer with the same parameters, and are
//! checked to compute the same maps before anything is timed. Runs alternate between the
//! sides (who goes first alternates too); the figure that counts is the median of the paired
//! ratios. A baseline, PyTorch's forward and backward of the target's logit to the input, says
//! what Grad-CAM and Saliency cost over the gradient they need.

use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use serde::Serialize;
use serde_json::{Value, json};
use tch::Device;

use convscope_core::attribution::{self, Baseline, Layers, Method, Settings, Target};
use convscope_core::engine::{self, WeightsChoice};
use convscope_core::executor::RunOptions;
use convscope_core::zoo::{self, ArchSpec};

use super::BenchArgs;
use super::machine::{Machine, load_average, utc_now};
use super::reference::Reference;
use super::stats::{Stats, paired_ratios};

/// The cases when none are named: a residual network and the pretrained explorer's default.
pub const ATTRIBUTION_CASES: [&str; 2] = ["resnet18", "efficientnet_lite0"];

/// Integrated Gradients' points along the path, as the target names it.
const IG_STEPS: usize = 32;
/// Images per pass for IG and occlusion, on both sides.
const BATCH: usize = 16;
const WINDOW: i64 = 32;
const STRIDE: i64 = 16;

/// The layer of a case's Grad-CAM: our node or block, and captum's module.
fn layer_of(case: &str) -> Result<(&'static str, &'static str)> {
    Ok(match case {
        "resnet18" | "resnet34" | "resnet50" | "resnet101" | "resnet152" => ("layer4", "layer4"),
        // torchvision's in-place ReLU follows: its output is the ReLU's, the same tensor.
        "vgg16" => ("features.29", "features.29"),
        "densenet121" => ("features", "features"),
        "mobilenet_v2" => ("features.18", "features.18"),
        // The head's activation; captum's hook on the shared `_swish` keeps its last call, the head's.
        "efficientnet_lite0" => ("_swish_head", "_swish"),
        other => bail!("no Grad-CAM layer is set for {other} in the attribution benchmark"),
    })
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
enum Timed {
    GradCam,
    Saliency,
    Ig,
    Occlusion,
}

impl Timed {
    const ALL: [Timed; 4] = [Timed::GradCam, Timed::Saliency, Timed::Ig, Timed::Occlusion];

    fn name(self) -> &'static str {
        match self {
            Timed::GradCam => "gradcam",
            Timed::Saliency => "saliency",
            Timed::Ig => "ig",
            Timed::Occlusion => "occlusion",
        }
    }

    /// convscope / captum at most, the targets.
    fn target(self) -> f64 {
        match self {
            Timed::GradCam | Timed::Saliency | Timed::Ig | Timed::Occlusion => 1.0,
        }
    }
}

#[derive(Serialize)]
struct MethodResult {
    method: Timed,
    convscope: Stats,
    captum: Stats,
    paired_ratio: Stats,
    target: f64,
    /// convscope's median over PyTorch's forward + backward median (Grad-CAM's target 1.2,
    /// Saliency's 1.1).
    over_forward_backward: f64,
    /// max |ours − captum's| / max |captum's|, checked before timing.
    relative_difference: f64,
}

#[derive(Serialize)]
struct CaseResult {
    case: String,
    layer: String,
    target_class: i64,
    /// PyTorch's forward and gradient of the target's logit to the input alone.
    forward_backward: Stats,
    methods: Vec<MethodResult>,
}

#[derive(Serialize)]
struct Report {
    date: String,
    machine: Machine,
    threads: usize,
    rounds: usize,
    warmup: usize,
    torch: String,
    captum: String,
    ig_steps: usize,
    batch: usize,
    occlusion_window: i64,
    occlusion_stride: i64,
    cases: Vec<CaseResult>,
}

fn settings(spec: &ArchSpec, timed: Timed, target: i64) -> Result<Settings> {
    let graph = spec.graph();
    let (ours, _) = layer_of(spec.id)?;
    let node = graph
        .node_id(ours)
        .or_else(|| graph.block_id(ours).and_then(|b| graph.block_output(b)))
        .ok_or_else(|| anyhow!("{}: no node or block {ours}", spec.id))?;
    let method = match timed {
        Timed::GradCam => Method::GradCam,
        Timed::Saliency => Method::Saliency,
        Timed::Ig => Method::IntegratedGradients,
        Timed::Occlusion => Method::Occlusion,
    };
    Ok(Settings {
        method,
        target: Target::Class(target),
        layers: Layers::Node(node),
        steps: IG_STEPS,
        baseline: Baseline::Mean,
        window: WINDOW,
        stride: STRIDE,
        batch: Some(BATCH),
        ..Settings::default()
    })
}

pub(super) fn run(args: &BenchArgs) -> Result<()> {
    let mut machine = Machine::probe();
    let threads = args.threads.unwrap_or(machine.cpus).max(1);
    let (rounds, warmup) = if args.quick { (3, 1) } else { (args.rounds.max(1), args.warmup) };
    tch::set_num_threads(threads as i32);
    let cases: Vec<String> = if args.cases.is_empty() {
        ATTRIBUTION_CASES.iter().map(|s| (*s).to_owned()).collect()
    } else {
        args.cases.clone()
    };
    let root = convscope_core::paths::checkout();
    let dir = root.join("target").join("bench");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut reference = Reference::start(&convscope_core::paths::venv_python(), &root.join("bench/attribution.py"))?;
    let setup = reference.ask(json!({"cmd": "setup", "threads": threads}))?;
    let torch = setup["torch"].as_str().unwrap_or("?").to_owned();
    let captum = setup["captum"].as_str().unwrap_or("?").to_owned();
    eprintln!(
        "bench --attribution: {} case(s), {threads} thread(s) each side, {warmup} warm-up + {rounds} rounds; \
         PyTorch {torch}, captum {captum}",
        cases.len()
    );
    let mut results = Vec::new();
    for case in &cases {
        let spec = zoo::find(case)?;
        results.push(bench_case(&spec, &dir, rounds, warmup, &mut reference).with_context(|| spec.id.to_owned())?);
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
        captum,
        ig_steps: IG_STEPS,
        batch: BATCH,
        occlusion_window: WINDOW,
        occlusion_stride: STRIDE,
        cases: results,
    };
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)
            .with_context(|| format!("writing {}", path.display()))?;
        eprintln!("results written to {}", path.display());
    }
    let mut out = crate::output::stdout();
    writeln!(
        out,
        "{:<20} {:<10} {:>12} {:>12} {:>14} {:>8} {:>12} {:>10}",
        "case", "method", "convscope", "captum", "paired ratio", "target", "÷ fwd+bwd", "max diff"
    )?;
    for case in &report.cases {
        for m in &case.methods {
            writeln!(
                out,
                "{:<20} {:<10} {:>10.1}ms {:>10.1}ms {:>14.3} {:>8} {:>12.2} {:>10.1e}",
                case.case,
                m.method.name(),
                m.convscope.median * 1e3,
                m.captum.median * 1e3,
                m.paired_ratio.median,
                format!("≤{:.1}", m.target),
                m.over_forward_backward,
                m.relative_difference
            )?;
        }
        writeln!(
            out,
            "{:<20} {:<10} {:>12} {:>10.1}ms   (PyTorch: the target's logit, forward and its gradient to the input)",
            case.case,
            "fwd+bwd",
            "",
            case.forward_backward.median * 1e3
        )?;
    }
    Ok(())
}

fn bench_case(
    spec: &ArchSpec,
    dir: &std::path::Path,
    rounds: usize,
    warmup: usize,
    reference: &mut Reference,
) -> Result<CaseResult> {
    let weights = super::weights_file(spec, dir, super::SEED)?;
    let (x, input_path) = super::input_file(spec, dir, super::SEED)?;
    let (model, _) = engine::load_model(spec, &WeightsChoice::File(weights.clone()), Device::Cpu)?;
    let opts = RunOptions::default();
    let logits = model.forward(&x, &opts)?;
    let target = logits.f_argmax(-1, false)?.f_int64_value(&[0])?;
    let (ours_layer, their_layer) = layer_of(spec.id)?;
    let prepared = reference.ask(json!({
        "cmd": "prepare",
        "case": spec.id,
        "weights": weights,
        "input": input_path,
        "layer": their_layer,
        "target": target,
        "steps": IG_STEPS,
        "window": WINDOW,
        "stride": STRIDE,
        "batch": BATCH,
    }))?;
    // The same maps on both sides, or the times compare different work.
    let mut differences = Vec::new();
    for timed in Timed::ALL {
        let settings = settings(spec, timed, target)?;
        let ours = attribution::explain_all(&model, &x, &opts, &spec.preprocess, &settings)?;
        let ours = Vec::<f32>::try_from(&ours.maps[0].raw.f_flatten(0, -1)?)?;
        let theirs: Vec<f64> = prepared["maps"][timed.name()]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_f64).collect())
            .unwrap_or_default();
        if theirs.len() != ours.len() {
            bail!("{}: {} values here, {} in captum's map", timed.name(), ours.len(), theirs.len());
        }
        let scale = theirs.iter().fold(0.0f64, |m, v| m.max(v.abs())).max(f64::MIN_POSITIVE);
        let diff = ours.iter().zip(&theirs).fold(0.0f64, |m, (a, b)| m.max((f64::from(*a) - b).abs()));
        differences.push(diff / scale);
    }

    let bar = super::case_bar(&format!("{} attribution", spec.id), (warmup + rounds) * (Timed::ALL.len() + 1))?;
    let mut ours_t = vec![Vec::new(); Timed::ALL.len()];
    let mut theirs_t = vec![Vec::new(); Timed::ALL.len()];
    let mut forward_backward = Vec::new();
    for round in 0..warmup + rounds {
        let timed_round = round >= warmup;
        // As before every timed run: the other side's OpenMP threads stop spinning first.
        std::thread::sleep(Duration::from_millis(20));
        let answer = reference.ask(json!({"cmd": "run", "method": "fwdbwd"}))?;
        if timed_round {
            forward_backward.push(answer["seconds"].as_f64().unwrap_or(f64::NAN));
        }
        bar.inc(1);
        for (i, timed) in Timed::ALL.into_iter().enumerate() {
            bar.set_message(format!("round {} · {}", round + 1, timed.name()));
            let settings = settings(spec, timed, target)?;
            let mut pair = [0.0; 2];
            for turn in 0..2 {
                std::thread::sleep(Duration::from_millis(20));
                if (turn == 0) == (round % 2 == 0) {
                    let start = Instant::now();
                    attribution::explain_all(&model, &x, &opts, &spec.preprocess, &settings)?;
                    pair[0] = start.elapsed().as_secs_f64();
                } else {
                    let answer = reference.ask(json!({"cmd": "run", "method": timed.name()}))?;
                    pair[1] = answer["seconds"].as_f64().ok_or_else(|| anyhow!("no time in {answer}"))?;
                }
            }
            if timed_round {
                ours_t[i].push(pair[0]);
                theirs_t[i].push(pair[1]);
            }
            bar.inc(1);
        }
    }
    bar.finish_with_message("done");
    let forward_backward = Stats::of(&forward_backward).ok_or_else(|| anyhow!("no rounds"))?;
    let methods = Timed::ALL
        .into_iter()
        .enumerate()
        .filter_map(|(i, method)| {
            let (ours, theirs) = (Stats::of(&ours_t[i])?, Stats::of(&theirs_t[i])?);
            Some(MethodResult {
                method,
                over_forward_backward: ours.median / forward_backward.median.max(1e-12),
                paired_ratio: Stats::of(&paired_ratios(&ours_t[i], &theirs_t[i])).unwrap_or_default(),
                convscope: ours,
                captum: theirs,
                target: method.target(),
                relative_difference: differences[i],
            })
        })
        .collect();
    Ok(CaseResult {
        case: spec.id.to_owned(),
        layer: ours_layer.to_owned(),
        target_class: target,
        forward_backward,
        methods,
    })
}
