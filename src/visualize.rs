//! `convscope visualize`: what a channel looks for (`convscope_core::featvis`): the image that
//! maximises (or minimises) its mean activation, one PNG per channel, and with several
//! channels (or `--all`, every channel of the node, optimised in batches) a grid of them.

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use serde_json::json;

use convscope_core::featvis::{self, Control, Objective, Progress, Settings};

use crate::cli::ModelArgs;

/// The arguments of `convscope visualize`; the doc comments are its help.
#[derive(clap::Args, Debug)]
#[command(group(clap::ArgGroup::new("which").required(true).args(["channel", "all"])))]
pub struct VisualizeArgs {
    pub arch: String,
    /// A node or block name with a spatial output (`convscope summary ARCH` lists them).
    pub node: String,
    /// The channel to visualise (repeat or comma-separate for several, optimised together).
    #[arg(long, value_delimiter = ',')]
    pub channel: Vec<i64>,
    /// Every channel of the node, `--batch` at a time, and a grid of them.
    #[arg(long)]
    pub all: bool,
    /// Optimisation steps (Adam).
    #[arg(long, default_value_t = Settings::default().steps)]
    pub steps: usize,
    /// The side of the optimised image in pixels (resized to the network's input after the
    /// transforms).
    #[arg(long, default_value_t = Settings::default().size)]
    pub size: i64,
    /// Seed of the initial spectrum and of the transforms' draws.
    #[arg(long, default_value_t = Settings::default().seed)]
    pub seed: i64,
    /// Adam's learning rate.
    #[arg(long, default_value_t = Settings::default().lr)]
    pub lr: f64,
    /// positive (maximise), negative (minimise) or diversity (four images of one channel kept
    /// apart by Lucid's diversity term).
    #[arg(long, default_value = "positive", value_parser = parse_objective)]
    pub objective: Objective,
    /// Run PyTorch's own kernels (NCHW, batch norms apart) rather than the fast layout
    /// (channels-last, batch norms folded: faster on the CPU, sums in another order).
    #[arg(long)]
    pub reference_layout: bool,
    /// Compute the node's every channel, not only the ones optimised (slower; the same
    /// objective up to float rounding).
    #[arg(long)]
    pub unsliced: bool,
    /// Channels optimised together in one batch.
    #[arg(long, default_value_t = 16)]
    pub batch: usize,
    /// The folder the PNGs go to (made if missing).
    #[arg(long)]
    pub out: PathBuf,
    /// A safetensors file with the reference's state-dict keys (default: weights/<arch>.safetensors if installed).
    #[arg(long)]
    pub weights: Option<PathBuf>,
    /// Ignore installed weights and initialise randomly, as the reference does.
    #[arg(long, conflicts_with = "weights")]
    pub random: bool,
    /// Seed of the random initialisation (`--seed` is the optimisation's here).
    #[arg(long, default_value_t = convscope_core::engine::DEFAULT_SEED)]
    pub init_seed: i64,
    /// cpu, cuda, cuda:N or auto.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    #[arg(long)]
    pub json: bool,
}

fn parse_objective(text: &str) -> std::result::Result<Objective, String> {
    Objective::from_id(text).ok_or_else(|| {
        let ids: Vec<&str> = Objective::ALL.iter().map(|o| o.id()).collect();
        format!("no objective {text:?}: one of {}", ids.join(", "))
    })
}

pub fn run(args: &VisualizeArgs) -> Result<()> {
    if args.batch == 0 {
        bail!("--batch must be at least 1");
    }
    let model_args = ModelArgs {
        weights: args.weights.clone(),
        random: args.random,
        seed: args.init_seed,
        device: args.device.clone(),
    };
    let (spec, model) = crate::cli::load(&args.arch, &model_args)?;
    let graph = model.graph().clone();
    let node = featvis::resolve_node(&graph, &args.node)?;
    let [h, w] = spec.preprocess.output_size();
    let shape = graph.infer_shapes(h, w)?.nodes[node].shape.clone();
    let &[node_channels, _, _] = shape.as_slice() else {
        bail!("{} gives {shape:?}, not channels × height × width: only a spatial output has channels", args.node);
    };
    let channels: Vec<i64> = if args.all { (0..node_channels).collect() } else { args.channel.clone() };
    if args.objective == Objective::Diversity && channels.len() != 1 {
        bail!("--objective diversity optimises four images of one channel: give one --channel");
    }
    let settings = Settings {
        steps: args.steps,
        size: args.size,
        seed: args.seed,
        lr: args.lr,
        objective: args.objective,
        preview_every: 0,
        fast_layout: !args.reference_layout,
        sliced: !args.unsliced,
        ..Settings::default()
    };
    settings.check()?;
    std::fs::create_dir_all(&args.out).with_context(|| format!("making {}", args.out.display()))?;
    let node_name = graph.nodes[node].name.clone();
    let stem = node_name.replace(['/', '\\'], "_");
    let suffix = match args.objective {
        Objective::Maximise => "",
        Objective::Minimise => "_negative",
        Objective::Diversity => "_diversity",
    };

    let bar = indicatif::ProgressBar::new((channels.len().div_ceil(args.batch) * settings.steps) as u64).with_style(
        indicatif::ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} steps {msg}")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    bar.set_prefix(format!("{} {node_name}", spec.id));
    let started = Instant::now();
    let mut rows = Vec::new();
    let mut all_images = Vec::new();
    for (chunk_index, chunk) in channels.chunks(args.batch).enumerate() {
        let done = (chunk_index * settings.steps) as u64;
        let mut progress = |p: Progress| {
            bar.set_position(done + p.step as u64);
            bar.set_message(format!("activation {:.3}", p.activation));
        };
        let mut control = Control { progress: &mut progress, interrupt: &|| false };
        let run = featvis::visualize(&model, &spec.preprocess, node, chunk, &settings, &mut control)?
            .context("the run was interrupted")?;
        let per_channel = run.seconds / chunk.len() as f64;
        if args.objective == Objective::Diversity {
            let path = args.out.join(format!("{stem}_c{}{suffix}.png", chunk[0]));
            featvis::grid(&run.images, 4, 2)?.save(&path).with_context(|| format!("writing {}", path.display()))?;
            rows.push(
                json!({"channel": chunk[0], "activations": run.activations, "file": path, "seconds": run.seconds}),
            );
        } else {
            for (i, &channel) in chunk.iter().enumerate() {
                let path = args.out.join(format!("{stem}_c{channel}{suffix}.png"));
                let image = run.images.f_get(i as i64).context("an image")?;
                featvis::to_rgb8(&image)?.save(&path).with_context(|| format!("writing {}", path.display()))?;
                rows.push(json!({
                    "channel": channel, "activation": run.activations[i], "file": path, "seconds": per_channel,
                }));
            }
        }
        if channels.len() > 1 {
            all_images.push(run.images);
        }
    }
    bar.finish_and_clear();
    let seconds = started.elapsed().as_secs_f64();
    let grid_path = if channels.len() > 1 {
        let images = tch::Tensor::f_cat(&all_images, 0).context("joining the images")?;
        let columns = (channels.len() as f64).sqrt().ceil() as usize;
        let name = if args.all {
            "all".to_owned()
        } else {
            format!("c{}", args.channel.iter().map(i64::to_string).collect::<Vec<_>>().join("-"))
        };
        let path = args.out.join(format!("{stem}_{name}{suffix}.png"));
        featvis::grid(&images, columns, 2)?.save(&path).with_context(|| format!("writing {}", path.display()))?;
        Some(path)
    } else {
        None
    };

    let mut out = crate::output::stdout();
    if args.json {
        let doc = json!({
            "arch": spec.id,
            "weights": model.origin().to_string(),
            "node": node_name,
            "settings": settings,
            "channels": rows,
            "grid": grid_path,
            "seconds": seconds,
            "seconds_per_channel": seconds / channels.len() as f64,
        });
        serde_json::to_writer_pretty(&mut out, &doc)?;
        writeln!(out)?;
        return Ok(());
    }
    writeln!(
        out,
        "{} ({}) {node_name}: {} channel(s), {} steps at {} px, seed {}, {seconds:.1} s ({:.2} s a channel)",
        spec.card.name,
        model.origin(),
        channels.len(),
        settings.steps,
        settings.size,
        settings.seed,
        seconds / channels.len() as f64
    )?;
    for row in &rows {
        let activation = match (row.get("activation"), row.get("activations")) {
            (Some(a), _) => format!("{:.4}", a.as_f64().unwrap_or(f64::NAN)),
            (None, Some(list)) => {
                let values: Vec<String> = list
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|v| format!("{:.4}", v.as_f64().unwrap_or(f64::NAN)))
                    .collect();
                values.join(", ")
            }
            _ => String::new(),
        };
        writeln!(
            out,
            "channel {}: mean activation {activation} -> {}",
            row["channel"],
            row["file"].as_str().unwrap_or_default()
        )?;
    }
    if let Some(path) = grid_path {
        writeln!(out, "grid: {}", path.display())?;
    }
    Ok(())
}
