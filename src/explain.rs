//! `convscope explain`: where in the image a network found its answer (`convscope_core::
//! attribution`), one method for one image; the maps' summary as text or JSON, and with `--out`
//! the overlay as a PNG or the raw map as safetensors or .npy.

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use serde_json::json;

use convscope_core::attribution::display::{self, Colormap};
use convscope_core::attribution::export::{self, Format};
use convscope_core::attribution::{
    self, Baseline, Control, ExplanationData, Integration, Layers, Method, Progress, Settings, Target,
};
use convscope_core::engine;
use convscope_core::executor::RunOptions;
use convscope_core::graph::Graph;
use convscope_core::zoo::ArchSpec;

use crate::cli::ModelArgs;

/// The arguments of `convscope explain`; the doc comments are its help.
#[derive(clap::Args, Debug)]
pub struct ExplainArgs {
    pub arch: String,
    pub image: PathBuf,
    /// gradcam, gradcampp, layercam, saliency, guided, guided-gradcam, ig, smoothgrad or occlusion.
    #[arg(long, value_parser = parse_method)]
    pub method: Method,
    /// The CAM methods' layer: a node or block name (`convscope summary ARCH` lists them), or
    /// `stages`: the end of every stage, coarse to fine, in one backward pass. Default: the
    /// end of the last stage.
    #[arg(long, value_name = "NODE|stages")]
    pub layer: Option<String>,
    /// The class explained, by number or name (default: the predicted one).
    #[arg(long, value_name = "CLASS")]
    pub target: Option<String>,
    /// Explain the target's logit minus this class's: what makes it one rather than the other.
    #[arg(long, value_name = "CLASS")]
    pub minus: Option<String>,
    /// Integrated Gradients: points along the path from the baseline.
    #[arg(long)]
    pub steps: Option<usize>,
    /// Integrated Gradients: gausslegendre (captum's default) or trapezoid.
    #[arg(long, value_name = "gausslegendre|trapezoid", value_parser = parse_integration)]
    pub integration: Option<Integration>,
    /// Integrated Gradients: black, or mean (zero after normalisation).
    #[arg(long, value_name = "black|mean", value_parser = parse_baseline)]
    pub baseline: Option<Baseline>,
    /// SmoothGrad: noisy copies of the image.
    #[arg(long)]
    pub samples: Option<usize>,
    /// SmoothGrad: the noise's standard deviation as a fraction of the input's range (0.1–0.2).
    #[arg(long)]
    pub sigma: Option<f64>,
    /// SmoothGrad: the noise's seed.
    #[arg(long)]
    pub noise_seed: Option<i64>,
    /// Occlusion: the square window's side in pixels.
    #[arg(long)]
    pub window: Option<i64>,
    /// Occlusion: how far the window moves each time, in pixels.
    #[arg(long)]
    pub stride: Option<i64>,
    /// Images per pass for IG, SmoothGrad and Occlusion (default: as many as 1 GiB holds).
    #[arg(long)]
    pub batch: Option<usize>,
    /// FILE.png: the map over the image (a strip for several layers); FILE.safetensors or
    /// FILE.npy: the raw map, captum's shape.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// The PNG's colours: turbo, viridis, inferno or red-blue (default: red-blue for signed
    /// maps, turbo for the others).
    #[arg(long, value_parser = parse_colormap)]
    pub colormap: Option<Colormap>,
    /// The PNG's overlay opacity, 0 to 1.
    #[arg(long, default_value_t = 0.5)]
    pub opacity: f32,
    /// Switch residual connections off: `all`, or blocks/stages like layer1.0,layer3.
    #[arg(long, value_delimiter = ',', value_name = "all|NAME,...")]
    pub no_skip: Vec<String>,
    #[command(flatten)]
    pub model: ModelArgs,
    #[arg(long)]
    pub json: bool,
}

fn parse_method(text: &str) -> std::result::Result<Method, String> {
    Method::from_id(text).ok_or_else(|| {
        let ids: Vec<&str> = Method::ALL.iter().map(|m| m.id()).collect();
        format!("no method {text:?}: one of {}", ids.join(", "))
    })
}

fn parse_integration(text: &str) -> std::result::Result<Integration, String> {
    match text {
        "gausslegendre" | "gauss-legendre" => Ok(Integration::GaussLegendre),
        "trapezoid" => Ok(Integration::Trapezoid),
        _ => Err(format!("no integration {text:?}: gausslegendre or trapezoid")),
    }
}

fn parse_baseline(text: &str) -> std::result::Result<Baseline, String> {
    match text {
        "black" => Ok(Baseline::Black),
        "mean" => Ok(Baseline::Mean),
        _ => Err(format!("no baseline {text:?}: black or mean")),
    }
}

fn parse_colormap(text: &str) -> std::result::Result<Colormap, String> {
    Colormap::from_id(text).ok_or_else(|| {
        let ids: Vec<&str> = Colormap::ALL.iter().map(|c| c.id()).collect();
        format!("no colormap {text:?}: one of {}", ids.join(", "))
    })
}

/// Refuses an option the method does not read, rather than ignoring it silently.
fn check_options(args: &ExplainArgs) -> Result<()> {
    let method = args.method;
    let given = [
        ("--layer", args.layer.is_some(), method.uses_layer()),
        ("--steps", args.steps.is_some(), method == Method::IntegratedGradients),
        ("--integration", args.integration.is_some(), method == Method::IntegratedGradients),
        ("--baseline", args.baseline.is_some(), method == Method::IntegratedGradients),
        ("--samples", args.samples.is_some(), method == Method::SmoothGrad),
        ("--sigma", args.sigma.is_some(), method == Method::SmoothGrad),
        ("--noise-seed", args.noise_seed.is_some(), method == Method::SmoothGrad),
        ("--window", args.window.is_some(), method == Method::Occlusion),
        ("--stride", args.stride.is_some(), method == Method::Occlusion),
        (
            "--batch",
            args.batch.is_some(),
            matches!(method, Method::IntegratedGradients | Method::SmoothGrad | Method::Occlusion),
        ),
    ];
    if let Some((flag, _, _)) = given.iter().find(|(_, given, reads)| *given && !reads) {
        bail!("{flag} does not apply to {} (--method {})", method.label(), method.id());
    }
    if !(0.0..=1.0).contains(&args.opacity) {
        bail!("--opacity is a fraction from 0 to 1, got {}", args.opacity);
    }
    if let Some(out) = &args.out {
        Format::of(out)?;
    }
    Ok(())
}

/// A node or block name, or `stages`.
fn parse_layers(graph: &Graph, text: &str) -> Result<Layers> {
    if text == "stages" {
        return Ok(Layers::Stages);
    }
    graph
        .node_id(text)
        .or_else(|| graph.block_id(text).and_then(|b| graph.block_output(b)))
        .map(Layers::Node)
        .with_context(|| {
            format!(
                "{} has no node or block named {text:?} (`convscope summary {}` lists them)",
                graph.arch, graph.arch
            )
        })
}

pub fn run(args: &ExplainArgs) -> Result<()> {
    check_options(args)?;
    let (spec, model) = crate::cli::load(&args.arch, &args.model)?;
    let graph = model.graph().clone();
    let input = engine::image_input(&spec, &args.image)?;
    let disabled_residuals = graph.resolve_residuals(&args.no_skip).map_err(anyhow::Error::msg)?;
    let opts = RunOptions { disabled_residuals, ..RunOptions::default() };
    let size = input.size();
    let (height, width) = (size[2], size[3]);
    let classes = graph.infer_shapes(height, width)?.nodes[graph.output].shape.iter().product::<i64>();
    let class = |text: &str| attribution::parse_class(spec.labels, classes, text);
    let target = match (&args.target, &args.minus) {
        (None, None) => Target::Predicted,
        (Some(t), None) => Target::Class(class(t)?),
        (Some(t), Some(m)) => Target::Difference { class: class(t)?, minus: class(m)? },
        (None, Some(_)) => bail!("--minus needs --target: the class it is taken from"),
    };
    let layers = match &args.layer {
        Some(text) => parse_layers(&graph, text)?,
        None => Layers::Last,
    };
    if args.method.uses_layer() {
        // Checked before any pass, so a wrong layer costs nothing.
        attribution::resolve_layers(&graph, &opts, layers, height, width)?;
    }
    let defaults = Settings::default();
    let settings = Settings {
        method: args.method,
        target,
        layers,
        steps: args.steps.unwrap_or(defaults.steps),
        integration: args.integration.unwrap_or(defaults.integration),
        baseline: args.baseline.unwrap_or(defaults.baseline),
        samples: args.samples.unwrap_or(defaults.samples),
        sigma: args.sigma.unwrap_or(defaults.sigma),
        seed: args.noise_seed.unwrap_or(defaults.seed),
        window: args.window.unwrap_or(defaults.window),
        stride: args.stride.unwrap_or(defaults.stride),
        batch: args.batch,
    };
    let bar = indicatif::ProgressBar::new(0).with_style(
        indicatif::ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {msg}")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    bar.set_prefix(settings.method.label());
    let started = Instant::now();
    let mut progress = |p: Progress| {
        bar.set_length(p.total as u64);
        bar.set_position(p.done as u64);
        bar.set_message(p.what);
    };
    let mut control = Control { progress: &mut progress, interrupt: &|| false };
    let explanation = attribution::explain(&model, &input, &opts, &spec.preprocess, &settings, &mut control)?
        .context("the attribution run was interrupted")?;
    bar.finish_and_clear();
    let seconds = started.elapsed().as_secs_f64();
    let data = explanation.data(height, width)?;
    if let Some(out) = &args.out {
        let image = spec.preprocess.to_rgb8(&input)?;
        let colormap = args.colormap.unwrap_or_else(|| Colormap::default_for(display::shading(data.method)));
        export::save(&data, &graph, &image, args.opacity, colormap, out)?;
    }
    report(args, &spec, &model, &graph, &data, &opts, seconds)
}

fn report(
    args: &ExplainArgs,
    spec: &ArchSpec,
    model: &convscope_core::executor::Model,
    graph: &Graph,
    explanation: &ExplanationData,
    opts: &RunOptions,
    seconds: f64,
) -> Result<()> {
    let objective = explanation.objective;
    let score = explanation.score();
    let names = export::map_names(explanation, graph);
    let maps: Vec<serde_json::Value> = explanation
        .maps
        .iter()
        .zip(&names)
        .map(|(m, name)| {
            let min = m.raw.iter().copied().fold(f32::INFINITY, f32::min);
            let max = m.raw.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            json!({
                "name": name,
                "node": m.node.map(|n| graph.nodes[n].name.as_str()),
                "shape": m.shape,
                "min": f64::from(min),
                "max": f64::from(max),
            })
        })
        .collect();
    let completeness = explanation.completeness.map(|c| {
        json!({
            "attribution_sum": c.attribution_sum,
            "score_input": c.score_input,
            "score_baseline": c.score_baseline,
            "gap": c.gap(),
            "relative_gap": c.relative_gap(),
        })
    });
    let mut out = crate::output::stdout();
    if args.json {
        let doc = json!({
            "arch": spec.id,
            "weights": model.origin().to_string(),
            "image": args.image.display().to_string(),
            "method": explanation.method.id(),
            "target": objective.class,
            "target_label": spec.labels.name(objective.class),
            "minus": objective.minus,
            "minus_label": objective.minus.map(|m| spec.labels.name(m)),
            "score": score,
            "maps": maps,
            "completeness": completeness,
            "guided_relus": explanation.guided_relus,
            "disabled_residuals": opts.disabled_residuals.iter().map(|&i| &graph.nodes[i].name).collect::<Vec<_>>(),
            "seconds": seconds,
            "out": args.out.as_ref().map(|p| p.display().to_string()),
        });
        serde_json::to_writer_pretty(&mut out, &doc)?;
        writeln!(out)?;
        return Ok(());
    }
    writeln!(
        out,
        "{} of {} ({}) on {}, {seconds:.2} s",
        explanation.method.label(),
        spec.card.name,
        model.origin(),
        args.image.display()
    )?;
    let target = format!("class {} ({})", objective.class, spec.labels.name(objective.class));
    match objective.minus {
        None => writeln!(out, "target: {target}, logit {score:.4}")?,
        Some(minus) => writeln!(
            out,
            "target: {target} minus class {minus} ({}), logit difference {score:.4}",
            spec.labels.name(minus)
        )?,
    }
    if !opts.disabled_residuals.is_empty() {
        writeln!(out, "residual connections switched off: {}", opts.disabled_residuals.len())?;
    }
    for map in &maps {
        let shape: Vec<String> = map["shape"].as_array().into_iter().flatten().map(|d| d.to_string()).collect();
        let at = map["node"].as_str().map(|n| format!(" at {n}")).unwrap_or_default();
        writeln!(
            out,
            "map{at}: {}, from {:.4e} to {:.4e}",
            shape.join("×"),
            map["min"].as_f64().unwrap_or(f64::NAN),
            map["max"].as_f64().unwrap_or(f64::NAN)
        )?;
    }
    if let Some(c) = explanation.completeness {
        writeln!(
            out,
            "completeness: Σ attributions {:.4} against f(input) − f(baseline) = {:.4}: gap {:.4} ({:.2}%)",
            c.attribution_sum,
            c.score_input - c.score_baseline,
            c.gap(),
            c.relative_gap() * 100.0
        )?;
    }
    if explanation.guided_relus == Some(0) {
        writeln!(
            out,
            "note: {} has no ReLU to guide (its activations are others), so this map is the plain gradient",
            spec.id
        )?;
    }
    if let Some(path) = &args.out {
        writeln!(out, "wrote {}", path.display())?;
    }
    Ok(())
}
