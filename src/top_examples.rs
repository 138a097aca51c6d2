//! `convscope top-examples`: the images of a folder (by default the bundled photos, or the
//! MNIST digits for a digit network) on which a channel peaks highest, ranked, each cropped to
//! the input pixels its peak sees (`convscope_core::featvis::examples`).

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use serde_json::json;

use convscope_core::featvis::examples::{ImageSet, Source, strip_in, top_examples_in};
use convscope_core::featvis::{self, Control, Progress};

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

pub fn run(args: &TopExamplesArgs) -> Result<()> {
    if args.k == 0 {
        bail!("--k must be at least 1");
    }
    let (spec, model) = crate::cli::load(&args.arch, &args.model)?;
    let graph = model.graph().clone();
    let node = featvis::resolve_node(&graph, &args.node)?;
    let source = match &args.images {
        Some(dir) => Source::Folder(dir.clone()),
        None => Source::Bundled { digits: args.digits },
    };
    // Each image read as the search reaches it: a folder of thousands costs one image's memory.
    let set = ImageSet::open(&spec, &source)?;
    if set.is_empty() {
        bail!("no images to look through");
    }
    let names = set.names();
    let bar = indicatif::ProgressBar::new(set.len() as u64).with_style(
        indicatif::ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} images")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    bar.set_prefix(format!("{} {}", spec.id, args.node));
    let mut progress = |p: Progress| bar.set_position(p.step as u64);
    let mut control = Control { progress: &mut progress, interrupt: &|| false };
    let ranked = top_examples_in(&model, node, &set, &args.channel, args.k, &mut control)?
        .context("the search was interrupted")?;
    bar.finish_and_clear();

    std::fs::create_dir_all(&args.out).with_context(|| format!("making {}", args.out.display()))?;
    let node_name = graph.nodes[node].name.replace(['/', '\\'], "_");
    let mut rows = Vec::new();
    for (examples, &channel) in ranked.iter().zip(&args.channel) {
        let strip = strip_in(&set, examples, TILE)?;
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
            "images": set.len(),
            "channels": rows,
        });
        serde_json::to_writer_pretty(&mut out, &doc)?;
        writeln!(out)?;
        return Ok(());
    }
    writeln!(out, "{} ({}) {}: {} images", spec.card.name, model.origin(), graph.nodes[node].name, set.len())?;
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
