//! `convscope bench`: convscope side by side with PyTorch on the same libtorch.
//!
//! For each case (an architecture at batch 1 and native resolution) and device, five modes:
//!
//! 1. `forward`: plain forward vs `model(x)` under `torch.inference_mode()`;
//! 2. `capture`: forward keeping every node's output vs forward hooks keeping every module's;
//! 3. `gradients`: forward + backward with every node's and parameter's gradient norm vs
//!    `retain_grad` from forward hooks, `backward()` and `.norm()`;
//! 4. `top5`: image file → top-5 (decode, resize, crop, normalise, forward) vs PIL +
//!    torchvision transforms + model;
//! 5. `load`: model from safetensors vs model construction + `load_state_dict`.
//!
//! The PyTorch side is `bench/reference.py`, started once as a child speaking line-delimited
//! JSON, so rounds can alternate (convscope, PyTorch, then PyTorch first the next round)
//! without paying Python's start-up. Both sides load the same safetensors file (random
//! weights written once per case under `target/bench/`), read the same input tensor, run with
//! the same thread count and time only the operation itself. Machines here are noisy: the
//! ratio of paired, interleaved runs is the figure that counts.

mod attribution;
mod featvis;
mod machine;
pub mod memory;
mod reference;
mod stats;
mod table;
mod timeline;
mod train_step;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, anyhow, bail};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use serde_json::{Value, json};
use tch::{Device, Kind, Tensor};

use convscope_core::engine::{self, WeightsChoice};
use convscope_core::executor::{Layout, Model, RunOptions};
use convscope_core::preprocess::{Interpolation, Preprocess};
use convscope_core::zoo::{self, ArchSpec};

use machine::{Machine, load_average, minor_faults, peak_rss, reset_peak_rss, utc_now};
use reference::Reference;
use stats::{Stats, paired_ratios};

/// The eight cases of the project's benchmark.
pub const DEFAULT_CASES: [&str; 8] = [
    "resnet18",
    "resnet50",
    "vgg16",
    "inception_v3",
    "densenet121",
    "mobilenet_v2",
    "efficientnet_b0",
    "efficientnet_lite0",
];

/// The cases of a `--quick` smoke run when none are named.
pub const QUICK_CASES: [&str; 2] = ["resnet18", "mobilenet_v2"];

/// Untimed pause before each run (see `bench_case`).
const PAUSE_MS: u64 = 20;

/// Seed of every case's random weights and input: both sides read the same files.
const SEED: i64 = 0;

/// The arguments of `convscope bench`; the doc comments are its help.
#[derive(clap::Args, Clone, Debug)]
pub struct BenchArgs {
    /// Architectures (default: resnet18, resnet50, vgg16, inception_v3, densenet121,
    /// mobilenet_v2, efficientnet_b0, efficientnet_lite0).
    pub cases: Vec<String>,
    /// Modes: forward, forward-nchw, forward-nhwc, capture, gradients, top5, load (default: all).
    #[arg(long, value_delimiter = ',')]
    pub modes: Vec<String>,
    /// Measure the peak memory of keeping every output instead of timing, one fresh process
    /// per case (default cases: vgg19, efficientnet_b7).
    #[arg(long)]
    pub memory: bool,
    /// Time one training step of `convscope lab` (plain-56 and ResNet-56 at the Fig. 6 preset's
    /// size) against PyTorch's instead of the cases (one thread unless --threads).
    #[arg(long, conflicts_with = "memory")]
    pub train_step: bool,
    /// Time Grad-CAM, Saliency, Integrated Gradients (32 steps) and Occlusion against captum's
    /// instead of the cases' modes (default cases: resnet18, efficientnet_lite0; CPU).
    #[arg(long, conflicts_with_all = ["memory", "train_step", "zoo"])]
    pub attribution: bool,
    /// Time feature visualisation's steps against Lucent's (torch-lucent 0.1.8) at several
    /// depths, one channel and a batch of 16 (default cases: efficientnet_lite0, vgg16; CPU).
    #[arg(long, conflicts_with_all = ["memory", "train_step", "zoo", "attribution"])]
    pub featvis: bool,
    /// One case of --memory, in this process (what --memory starts).
    #[arg(long, hide = true)]
    pub memory_child: bool,
    /// Timed rounds per mode, after the warm-up.
    #[arg(long, default_value_t = 7)]
    pub rounds: usize,
    /// Untimed rounds per mode first.
    #[arg(long, default_value_t = 1)]
    pub warmup: usize,
    /// Intra-op threads on both sides (default: every core).
    #[arg(long)]
    pub threads: Option<usize>,
    /// auto (CPU, then CUDA where available), cpu, cuda or cuda:N.
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// A smoke run: few rounds, two small cases unless some are named.
    #[arg(long)]
    pub quick: bool,
    /// Also write the results as JSON.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Time every architecture of the zoo (or those named) on this machine instead, batch 1 at
    /// its native input, in a table along the timeline; the History chart reads the timings.
    #[arg(long, conflicts_with_all = ["memory", "modes", "train_step"])]
    pub zoo: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Forward,
    /// Our plain forward in the reference layout against `model(x)`: the same kernels on both
    /// sides, so this ratio is the executor's own overhead.
    #[serde(rename = "forward-nchw")]
    ForwardNchw,
    /// Our (channels-last) plain forward against PyTorch's `channels_last` model: the
    /// executor's overhead in the fast layout.
    #[serde(rename = "forward-nhwc")]
    ForwardNhwc,
    Capture,
    Gradients,
    Top5,
    Load,
}

impl Mode {
    pub const ALL: [Mode; 7] =
        [Mode::Forward, Mode::ForwardNchw, Mode::ForwardNhwc, Mode::Capture, Mode::Gradients, Mode::Top5, Mode::Load];

    pub fn name(self) -> &'static str {
        match self {
            Mode::Forward => "forward",
            Mode::ForwardNchw => "forward-nchw",
            Mode::ForwardNhwc => "forward-nhwc",
            Mode::Capture => "capture",
            Mode::Gradients => "gradients",
            Mode::Top5 => "top5",
            Mode::Load => "load",
        }
    }

    fn parse(text: &str) -> Result<Self> {
        Mode::ALL.into_iter().find(|m| m.name() == text.trim()).ok_or_else(|| {
            anyhow!("unknown mode {text:?}: use forward, forward-nchw, forward-nhwc, capture, gradients, top5 or load")
        })
    }

    /// The target for the ratio convscope / PyTorch. Capture has none against PyTorch: its
    /// target is against our own plain forward in the same layout
    /// (`CaseResult::capture_over_forward` ≤ 1.10).
    fn target(self) -> Option<f64> {
        match self {
            Mode::Forward | Mode::ForwardNchw | Mode::ForwardNhwc => Some(1.02),
            Mode::Capture => None,
            Mode::Gradients => Some(1.10),
            Mode::Top5 => Some(0.9),
            Mode::Load => Some(1.0),
        }
    }
}

// ---- results -------------------------------------------------------------------------------

#[derive(Clone, Debug, Serialize)]
pub struct ModeResult {
    pub mode: Mode,
    /// Seconds per run.
    pub convscope: Stats,
    pub pytorch: Stats,
    /// median(convscope) / median(PyTorch).
    pub ratio_of_medians: f64,
    /// The per-round ratios of the interleaved runs: the figure that counts.
    pub paired_ratio: Stats,
    pub target: Option<f64>,
    /// 2 × MACs / median time, for the forward-only modes.
    pub gflops_convscope: Option<f64>,
    pub gflops_pytorch: Option<f64>,
    /// Median minor page faults per run, convscope and PyTorch: fresh memory being touched.
    pub minor_faults: [f64; 2],
}

#[derive(Clone, Debug, Serialize)]
pub struct CaseResult {
    pub case: String,
    pub device: String,
    pub input: [i64; 3],
    pub macs: i64,
    pub params: i64,
    pub nodes: usize,
    /// Largest |difference| of the logits of the shared input (the same weights on both sides),
    /// our plain forward in the reference layout against `model(x)`.
    pub logits_max_abs_diff: f64,
    /// The same, our plain forward in the fast layout.
    pub logits_max_abs_diff_fast: f64,
    pub top5_convscope: Vec<i64>,
    pub top5_pytorch: Vec<i64>,
    /// Median time of `Model::check_input` (static shape inference), which every run pays.
    pub check_input_us: f64,
    /// Median milliseconds of the top-5 pipeline's parts, per side: decode, preprocess, forward + top-5.
    pub top5_parts_convscope: [f64; 3],
    pub top5_parts_pytorch: [f64; 3],
    /// Peak RSS over this case (all modes; `load` holds a second copy of the weights).
    pub peak_rss_convscope: u64,
    pub peak_rss_pytorch: u64,
    pub modes: Vec<ModeResult>,
    /// convscope's capture / its plain forward in the same layout, paired round by round
    /// (the two run in the same round, so a slow spell of this shared machine slows both):
    /// the median and the spread of the pairs (target ≤ 1.10).
    pub capture_over_forward: Option<Stats>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub date: String,
    pub machine: Machine,
    pub threads: usize,
    pub rounds: usize,
    pub warmup: usize,
    pub torch: String,
    pub cases: Vec<CaseResult>,
    /// Peak RSS of the whole run, per side (the largest case peak).
    pub peak_rss_convscope: u64,
    pub peak_rss_pytorch: u64,
}

// ---- the run -------------------------------------------------------------------------------

/// Runs the benchmark and prints its table (and writes JSON where asked); with `--memory`,
/// the memory measurement instead.
pub fn run(args: &BenchArgs) -> Result<()> {
    if args.memory_child {
        let [case] = args.cases.as_slice() else { bail!("--memory-child measures exactly one case") };
        return memory::child(case, args.threads.unwrap_or(1));
    }
    if args.train_step {
        return train_step::run(args);
    }
    if args.zoo {
        return timeline::run(args);
    }
    if args.attribution {
        return attribution::run(args);
    }
    if args.featvis {
        return featvis::run(args);
    }
    if args.memory {
        let threads = args.threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from));
        return memory::run(&args.cases, threads, args.json.as_ref());
    }
    let report = measure(args)?;
    // The JSON first: a minute of measurements outlives a reader of the table that went away.
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&report)?;
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
        eprintln!("results written to {}", path.display());
    }
    write!(crate::output::stdout(), "{}", table::render(&report))?;
    Ok(())
}

fn devices(text: &str) -> Result<Vec<Device>> {
    if text.trim().eq_ignore_ascii_case("auto") {
        let mut list = vec![Device::Cpu];
        if tch::Cuda::is_available() {
            list.push(Device::Cuda(0));
        }
        return Ok(list);
    }
    Ok(vec![engine::parse_device(text)?])
}

fn sync(device: Device) {
    if let Device::Cuda(i) = device {
        tch::Cuda::synchronize(i as i64);
    }
}

/// Runs every case and mode; the report it returns is what `run` prints.
pub fn measure(args: &BenchArgs) -> Result<Report> {
    let mut machine = Machine::probe();
    let cases: Vec<String> = match (args.cases.is_empty(), args.quick) {
        (false, _) => args.cases.clone(),
        (true, false) => DEFAULT_CASES.iter().map(|s| (*s).to_owned()).collect(),
        (true, true) => QUICK_CASES.iter().map(|s| (*s).to_owned()).collect(),
    };
    let modes: Vec<Mode> = if args.modes.is_empty() {
        Mode::ALL.to_vec()
    } else {
        args.modes.iter().map(|m| Mode::parse(m)).collect::<Result<_>>()?
    };
    let (rounds, warmup) =
        if args.quick { (args.rounds.clamp(1, 3), args.warmup.min(1)) } else { (args.rounds.max(1), args.warmup) };
    let threads = args.threads.unwrap_or(machine.cpus).max(1);
    let devices = devices(&args.device)?;
    let specs = cases.iter().map(|c| zoo::find(c)).collect::<Result<Vec<_>, _>>()?;

    let root = convscope_core::paths::checkout();
    let dir = root.join("target").join("bench");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let python = convscope_core::paths::venv_python();
    let image = convscope_core::paths::asset("chelsea.png");

    tch::set_num_threads(threads as i32);
    let mut reference = Reference::start(&python, &root.join("bench/reference.py"))?;
    let setup = reference.ask(json!({"cmd": "setup", "threads": threads}))?;
    let torch = setup["torch"].as_str().unwrap_or("?").to_owned();
    eprintln!(
        "bench: {} case(s) × {} mode(s) on {}, {threads} thread(s) each side, {warmup} warm-up + {rounds} rounds; PyTorch {torch}",
        specs.len(),
        modes.len(),
        devices.iter().map(|&d| engine::device_id(d)).collect::<Vec<_>>().join(" + ")
    );

    let mut results = Vec::new();
    for spec in &specs {
        for &device in &devices {
            let options = Options { rounds, warmup, seed: SEED, image: &image, dir: &dir };
            results.push(bench_case(spec, device, &modes, &options, &mut reference)?);
        }
    }
    drop(reference);
    machine.load_average_end = load_average();
    Ok(Report {
        date: utc_now(),
        machine,
        threads,
        rounds,
        warmup,
        torch,
        peak_rss_convscope: results.iter().map(|c| c.peak_rss_convscope).max().unwrap_or(0),
        peak_rss_pytorch: results.iter().map(|c| c.peak_rss_pytorch).max().unwrap_or(0),
        cases: results,
    })
}

struct Options<'a> {
    rounds: usize,
    warmup: usize,
    seed: i64,
    image: &'a Path,
    dir: &'a Path,
}

/// The case's random weights, written once with `weights::save` (rewritten if they no longer fit).
fn weights_file(spec: &ArchSpec, dir: &Path, seed: i64) -> Result<PathBuf> {
    let path = dir.join(format!("{}.seed{seed}.safetensors", spec.id));
    let graph = spec.graph();
    let fits = |path: &Path| {
        convscope_core::weights::read_tensors(path)
            .is_ok_and(|t| convscope_core::weights::check_tensors(&graph, &t).is_empty())
    };
    if path.is_file() && fits(&path) {
        return Ok(path);
    }
    let model = Model::random(Arc::clone(&graph), Device::Cpu, seed)?;
    convscope_core::weights::save(&model, &path)?;
    Ok(path)
}

/// The shared input: standard normal, seeded, written for the reference to read.
fn input_file(spec: &ArchSpec, dir: &Path, seed: i64) -> Result<(Tensor, PathBuf)> {
    tch::manual_seed(seed);
    let [c, h, w] = spec.input;
    let x = Tensor::f_randn([1, c, h, w], (Kind::Float, Device::Cpu))?;
    let path = dir.join(format!("{}.input.safetensors", spec.id));
    Tensor::write_safetensors(&[("input", &x)], &path).with_context(|| format!("writing {}", path.display()))?;
    Ok((x, path))
}

fn preprocess_json(pre: &Preprocess) -> Result<Value> {
    match *pre {
        Preprocess::ImageNet { resize, crop, interpolation, mean, std } => Ok(json!({
            "resize": resize,
            "crop": crop,
            "interpolation": match interpolation { Interpolation::Bilinear => "bilinear", Interpolation::Bicubic => "bicubic" },
            "mean": mean,
            "std": std,
        })),
        other => bail!("the top-5 mode needs an ImageNet preprocessing, not {other:?}"),
    }
}

/// One run of a mode on our side, timed around the operation alone: seconds and minor page faults.
fn time_ours(
    mode: Mode,
    spec: &ArchSpec,
    model: &Model,
    x: &Tensor,
    image: &Path,
    weights: &Path,
) -> Result<(f64, f64)> {
    let device = model.device();
    let opts = RunOptions::default();
    let reference_layout = RunOptions { layout: Layout::Reference, ..RunOptions::default() };
    let faults = minor_faults();
    let start = Instant::now();
    match mode {
        Mode::Forward | Mode::ForwardNhwc => {
            let y = model.forward(x, &opts)?;
            sync(device);
            drop(y);
        }
        Mode::ForwardNchw => {
            let y = model.forward(x, &reference_layout)?;
            sync(device);
            drop(y);
        }
        Mode::Capture => {
            let capture = model.forward_capture(x, &opts)?;
            sync(device);
            drop(capture);
        }
        Mode::Gradients => {
            let report = model.gradients(x, None, &opts)?;
            sync(device);
            drop(report);
        }
        Mode::Top5 => {
            let input = engine::image_input(spec, image)?;
            let logits = model.forward(&input, &opts)?;
            engine::top_k(&logits, spec.labels, 5)?;
            sync(device);
        }
        Mode::Load => {
            let (loaded, _) = engine::load_model(spec, &WeightsChoice::File(weights.to_owned()), device)?;
            sync(device);
            drop(loaded);
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    Ok((seconds, minor_faults() - faults))
}

/// Median milliseconds of decode, preprocess and forward + top-5 on our side.
fn top5_parts(spec: &ArchSpec, model: &Model, image: &Path, repeats: usize) -> Result<[f64; 3]> {
    let mut parts: [Vec<f64>; 3] = Default::default();
    for _ in 0..repeats {
        let t0 = Instant::now();
        let decoded = convscope_core::preprocess::load_image(image)?;
        let t1 = Instant::now();
        let input = spec.preprocess.apply(&decoded)?;
        let t2 = Instant::now();
        engine::top_k(&model.forward(&input, &RunOptions::default())?, spec.labels, 5)?;
        sync(model.device());
        let t3 = Instant::now();
        for (part, (a, b)) in parts.iter_mut().zip([(t0, t1), (t1, t2), (t2, t3)]) {
            part.push((b - a).as_secs_f64() * 1e3);
        }
    }
    Ok(parts.map(|p| Stats::of(&p).map_or(0.0, |s| s.median)))
}

/// One case's progress over its rounds × modes, the step and mode at work as its message. It
/// is drawn only when a message or position changes, between timed runs (a steady tick would
/// draw from a thread of its own while the clock runs). indicatif hides it where stderr is no
/// terminal: a line names the case there instead.
fn case_bar(label: &str, steps: usize) -> Result<ProgressBar> {
    let style = ProgressStyle::with_template("bench: {prefix} [{bar:30}] {pos}/{len} {msg}")?.progress_chars("=> ");
    let bar = ProgressBar::new(steps as u64).with_style(style).with_prefix(label.to_owned());
    if bar.is_hidden() {
        eprintln!("bench: {label}");
    }
    Ok(bar)
}

fn bench_case(
    spec: &ArchSpec,
    device: Device,
    modes: &[Mode],
    o: &Options<'_>,
    reference: &mut Reference,
) -> Result<CaseResult> {
    let label = format!("{} on {}", spec.id, engine::device_id(device));
    let bar = case_bar(&label, (o.warmup + o.rounds) * modes.len())?;
    bar.set_message("preparing");
    let weights = weights_file(spec, o.dir, o.seed)?;
    let (x_cpu, input_path) = input_file(spec, o.dir, o.seed)?;
    let (model, _) = engine::load_model(spec, &WeightsChoice::File(weights.clone()), device)?;
    let x = x_cpu.f_to(device)?;
    let graph: Arc<_> = Arc::clone(model.graph());
    let [_, h, w] = spec.input;
    let shapes = graph.infer_shapes(h, w)?;

    let prepared = reference.ask(json!({
        "cmd": "prepare",
        "case": spec.id,
        "weights": weights,
        "input": input_path,
        "image": o.image,
        "preprocess": preprocess_json(&spec.preprocess)?,
        "device": engine::device_id(device),
    }))?;
    // The same weights and input on both sides: the logits agree.
    let theirs: Vec<f64> =
        prepared["logits"].as_array().map(|a| a.iter().filter_map(Value::as_f64).collect()).unwrap_or_default();
    let logits_diff = |layout: Layout| -> Result<f64> {
        let opts = RunOptions { layout, ..RunOptions::default() };
        let ours = model.forward(&x, &opts)?.f_to(Device::Cpu)?.f_flatten(0, -1)?;
        let ours = Vec::<f32>::try_from(&ours)?;
        if theirs.len() != ours.len() {
            bail!("{label}: {} logits here, {} in the reference", ours.len(), theirs.len());
        }
        // The reference's float32 values, back to float32 (JSON goes through f64).
        Ok(ours.iter().zip(&theirs).map(|(a, b)| f64::from((a - *b as f32).abs())).fold(0.0, f64::max))
    };
    let logits_max_abs_diff = logits_diff(Layout::Reference)?;
    let logits_max_abs_diff_fast = logits_diff(Layout::Fast)?;
    let top5_convscope: Vec<i64> =
        engine::top_k(&model.forward(&engine::image_input(spec, o.image)?, &RunOptions::default())?, spec.labels, 5)?
            .into_iter()
            .map(|p| p.class)
            .collect();
    let top5_pytorch: Vec<i64> = prepared["top5"]
        .as_array()
        .map(|a| a.iter().filter_map(|p| p.get(0).and_then(Value::as_i64)).collect())
        .unwrap_or_default();

    // What every call pays before libtorch runs: the static shape check.
    let mut check = Vec::new();
    for _ in 0..20 {
        let start = Instant::now();
        model.check_input(&x)?;
        check.push(start.elapsed().as_secs_f64());
    }
    let check_input_us = Stats::of(&check).map_or(0.0, |s| s.median * 1e6);

    reset_peak_rss();
    reference.ask(json!({"cmd": "reset_peak"}))?;
    let mut ours_t: Vec<Vec<f64>> = vec![Vec::new(); modes.len()];
    let mut theirs_t: Vec<Vec<f64>> = vec![Vec::new(); modes.len()];
    let mut faults: Vec<[Vec<f64>; 2]> = vec![Default::default(); modes.len()];
    for round in 0..o.warmup + o.rounds {
        let timed = round >= o.warmup;
        let step = if timed { format!("round {}", round - o.warmup + 1) } else { format!("warm-up {}", round + 1) };
        for (i, &mode) in modes.iter().enumerate() {
            bar.set_message(format!("{step} · {}", mode.name()));
            // Who goes first alternates, so neither side always runs on a cache the other warmed.
            let ours_first = round % 2 == 0;
            let mut pair = [(0.0, 0.0); 2];
            for turn in 0..2 {
                // The other process's OpenMP threads spin a while after their last parallel
                // region; a short pause lets them sleep before this side's clock starts.
                std::thread::sleep(std::time::Duration::from_millis(PAUSE_MS));
                if (turn == 0) == ours_first {
                    pair[0] = time_ours(mode, spec, &model, &x, o.image, &weights).with_context(|| label.clone())?;
                } else {
                    pair[1] = reference.time(mode).with_context(|| label.clone())?;
                }
            }
            if timed {
                ours_t[i].push(pair[0].0);
                theirs_t[i].push(pair[1].0);
                faults[i][0].push(pair[0].1);
                faults[i][1].push(pair[1].1);
            }
            bar.inc(1);
        }
    }
    let peak_rss_convscope = peak_rss();
    let peak_rss_pytorch = reference.ask(json!({"cmd": "peak"}))?["bytes"].as_u64().unwrap_or(0);

    // Where the top-5 time goes, side by side.
    let (mut top5_parts_convscope, mut top5_parts_pytorch) = ([0.0; 3], [0.0; 3]);
    if modes.contains(&Mode::Top5) {
        bar.set_message("top-5 parts");
        top5_parts_convscope = top5_parts(spec, &model, o.image, 5)?;
        let parts = reference.ask(json!({"cmd": "top5_parts", "repeats": 5}))?;
        for (slot, key) in top5_parts_pytorch.iter_mut().zip(["decode", "preprocess", "forward"]) {
            *slot = parts[key].as_f64().unwrap_or(0.0) * 1e3;
        }
    }

    bar.finish_with_message("done");

    let macs = shapes.total_macs();
    let mut results = Vec::new();
    for (i, &mode) in modes.iter().enumerate() {
        let (Some(ours), Some(theirs)) = (Stats::of(&ours_t[i]), Stats::of(&theirs_t[i])) else { continue };
        let paired = Stats::of(&paired_ratios(&ours_t[i], &theirs_t[i])).unwrap_or_default();
        let gflops = |s: &Stats| {
            matches!(mode, Mode::Forward | Mode::ForwardNchw | Mode::ForwardNhwc | Mode::Capture)
                .then_some(2.0 * macs as f64 / s.median.max(1e-12) * 1e-9)
        };
        results.push(ModeResult {
            mode,
            ratio_of_medians: ours.median / theirs.median.max(1e-12),
            gflops_convscope: gflops(&ours),
            gflops_pytorch: gflops(&theirs),
            convscope: ours,
            pytorch: theirs,
            paired_ratio: paired,
            target: mode.target(),
            minor_faults: faults[i].clone().map(|f| Stats::of(&f).map_or(0.0, |s| s.median)),
        });
    }
    let times_of = |m: Mode| modes.iter().position(|&mode| mode == m).map(|i| &ours_t[i]);
    // Keeping every output is measured against the plain forward in the same (reference) layout.
    let capture_over_forward = times_of(Mode::Capture)
        .zip(times_of(Mode::ForwardNchw).or(times_of(Mode::Forward)))
        .and_then(|(capture, forward)| Stats::of(&paired_ratios(capture, forward)));
    Ok(CaseResult {
        case: spec.id.to_owned(),
        device: engine::device_id(device),
        input: spec.input,
        macs,
        params: shapes.total_params(),
        nodes: graph.nodes.len(),
        logits_max_abs_diff,
        logits_max_abs_diff_fast,
        top5_convscope,
        top5_pytorch,
        check_input_us,
        top5_parts_convscope,
        top5_parts_pytorch,
        peak_rss_convscope,
        peak_rss_pytorch,
        modes: results,
        capture_over_forward,
    })
}
