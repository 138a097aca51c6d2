//! `convscope lab`: plain and residual networks trained side by side (`convscope_core::lab`),
//! a progress bar per run, a table at the end, and with `--out` the curves, weights and
//! settings on disk.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::json;

use convscope_core::format::grouped;
use convscope_core::lab::{DataSource, Lab, LabEvent, LabSettings, NetSpec, Preset, RunStatus, RunSummary};

/// The arguments of `convscope lab`; the doc comments are its help.
#[derive(clap::Args, Debug)]
pub struct LabArgs {
    /// fig1 (plain-20 vs plain-56) or fig6 (plain and residual at 20 and 56 layers); the
    /// default when no --nets are given is fig6.
    #[arg(long)]
    pub preset: Option<String>,
    /// The networks instead of a preset's, 1 to 4 of plainD / resnetD with D = 6n+2
    /// (20, 32, 44, 56, 110), e.g. plain20,resnet110.
    #[arg(long, value_delimiter = ',', conflicts_with = "preset")]
    pub nets: Vec<String>,
    /// Training steps per network.
    #[arg(long)]
    pub steps: Option<usize>,
    /// A folder with one subfolder of images per class (torchvision's ImageFolder), or an
    /// mnist_5k.csv.gz (default: the MNIST digits in the project's venv).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Save curves (CSV, JSON), each network's weights (safetensors) and the settings here.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Print the results as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Seeds the weights, the held-out split and the batch order.
    #[arg(long)]
    pub seed: Option<u64>,
    /// SGD learning rate (constant).
    #[arg(long)]
    pub lr: Option<f64>,
    #[arg(long)]
    pub momentum: Option<f64>,
    #[arg(long)]
    pub weight_decay: Option<f64>,
    #[arg(long)]
    pub batch: Option<usize>,
    /// Channels of the first stage (the paper's 16; the presets use 8).
    #[arg(long)]
    pub width: Option<i64>,
    /// Input side in pixels (digits: averaged down from 32×32 below 32, padded above).
    #[arg(long)]
    pub resolution: Option<i64>,
    /// Without batch norm (the convolutions get biases). At these learning rates such networks
    /// do not learn: the residual ones blow up, the plain ones' signal fades.
    #[arg(long)]
    pub no_bn: bool,
    /// Held-out accuracy every N steps (default: once per epoch).
    #[arg(long)]
    pub eval_every: Option<usize>,
    /// Intra-op threads. One is the fastest for networks this small: splitting a width-8
    /// convolution over cores costs more than it saves (two threads ran a step 3–5× slower
    /// on a busy two-core machine).
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
}

impl LabArgs {
    /// The preset's settings with what the arguments change.
    pub fn settings(&self) -> Result<LabSettings> {
        let preset = match (&self.preset, self.nets.is_empty()) {
            (Some(name), _) => Some(Preset::parse(name)?),
            (None, true) => Some(Preset::Fig6),
            (None, false) => None,
        };
        let mut s = preset.map(Preset::settings).unwrap_or_default();
        let width = self.width.unwrap_or_else(|| s.nets.first().map_or(8, |n| n.width));
        if !self.nets.is_empty() {
            s.nets = self.nets.iter().map(|n| NetSpec::parse(n, width, true)).collect::<Result<_, _>>()?;
        }
        for net in &mut s.nets {
            net.width = width;
            net.batch_norm = !self.no_bn;
        }
        if let Some(path) = &self.data {
            s.data = if path.is_dir() {
                DataSource::Folder { path: path.clone() }
            } else if path.exists() {
                DataSource::Digits { path: Some(path.clone()) }
            } else {
                bail!("{}: no such folder or file", path.display());
            };
        }
        s.steps = self.steps.unwrap_or(s.steps);
        s.seed = self.seed.unwrap_or(s.seed);
        s.sgd.lr = self.lr.unwrap_or(s.sgd.lr);
        s.sgd.momentum = self.momentum.unwrap_or(s.sgd.momentum);
        s.sgd.weight_decay = self.weight_decay.unwrap_or(s.sgd.weight_decay);
        s.batch = self.batch.unwrap_or(s.batch);
        s.resolution = self.resolution.unwrap_or(s.resolution);
        s.eval_every = self.eval_every.unwrap_or(s.eval_every);
        s.check()?;
        Ok(s)
    }
}

pub fn run(args: &LabArgs) -> Result<()> {
    let settings = args.settings()?;
    tch::set_num_threads(args.threads.max(1) as i32);
    let loading =
        ProgressBar::new(0).with_style(ProgressStyle::with_template("lab: reading images [{bar:30}] {pos}/{len}")?);
    let lab = Lab::load(settings, &mut |done, total| {
        loading.set_length(total as u64);
        loading.set_position(done as u64);
    });
    loading.finish_and_clear();
    let mut lab = lab?;
    let data = lab.data();
    if !data.skipped.is_empty() {
        let (first, why) = &data.skipped[0];
        eprintln!(
            "warning: {} skipped (the first: {}: {why})",
            convscope_core::lab::data::unreadable_files(data.skipped.len()),
            first.display()
        );
    }
    let s = lab.settings();
    eprintln!(
        "lab: {} · {} · {} steps of batch {}, SGD lr {} momentum {} weight decay {}, seed {}, {} thread(s)",
        s.preset.map_or("custom", Preset::title),
        data.description,
        s.steps,
        s.batch,
        s.sgd.lr,
        s.sgd.momentum,
        s.sgd.weight_decay,
        s.seed,
        tch::get_num_threads()
    );
    if s.nets.iter().any(|n| !n.batch_norm) {
        eprintln!(
            "lab: without batch norm these networks do not train at such learning rates: the residual ones blow up \
             in the forward pass, the plain ones' signal fades to nothing; a diverged run stops where its loss stops being a number"
        );
    }

    train(&mut lab)?;

    if let Some(dir) = &args.out {
        lab.save(dir).with_context(|| format!("saving the lab to {}", dir.display()))?;
        eprintln!(
            "lab: wrote settings.json, curves.csv, curves.json and {} weights files to {}",
            lab.runs().len(),
            dir.display()
        );
    }
    let summary = lab.summary();
    let mut out = crate::output::stdout();
    if args.json {
        let doc = json!({
            "settings": lab.settings(),
            "data": lab.data().description,
            "skipped_files": lab.data().skipped.len(),
            "runs": summary,
            "held_out": lab.runs().iter().map(|r| json!({"id": r.id, "held_out": r.held_out})).collect::<Vec<_>>(),
        });
        serde_json::to_writer_pretty(&mut out, &doc)?;
        writeln!(out)?;
        return Ok(());
    }
    write!(out, "{}", table(&summary, lab.settings().smoothing))?;
    Ok(())
}

/// Advances the lab to its end, a progress bar per run.
fn train(lab: &mut Lab) -> Result<()> {
    let steps = lab.settings().steps as u64;
    let bars = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
    let width = lab.runs().iter().map(|r| r.id.len()).max().unwrap_or(8);
    let style = ProgressStyle::with_template(&format!("{{prefix:<{width}}} [{{bar:30}}] {{pos:>4}}/{{len}} {{msg}}"))?
        .progress_chars("=> ");
    let run_bars: Vec<ProgressBar> = lab
        .runs()
        .iter()
        .map(|r| bars.add(ProgressBar::new(steps).with_style(style.clone()).with_prefix(r.id.clone())))
        .collect();
    let hidden = bars.is_hidden();
    let window = lab.settings().smoothing;
    while !lab.finished() {
        for event in lab.advance()? {
            match event {
                LabEvent::Step { run, record } => {
                    let r = &lab.runs()[run];
                    let loss = r.smoothed_loss(window).last().copied().unwrap_or(record.loss);
                    let error = r.smoothed_error(window).last().copied().unwrap_or(record.error);
                    let held =
                        r.held_out.last().map_or(String::new(), |h| format!(", held-out {:.1}%", h.accuracy * 100.0));
                    run_bars[run].set_position(record.step as u64);
                    run_bars[run].set_message(format!(
                        "loss {loss:.4}, error {:.1}%{held}, {:.1} steps/s",
                        error * 100.0,
                        r.steps_per_second()
                    ));
                }
                LabEvent::HeldOut { run, held_out } if hidden => {
                    let r = &lab.runs()[run];
                    eprintln!(
                        "lab: {} step {}: loss {:.4}, held-out {:.1}%",
                        r.id,
                        held_out.step,
                        r.smoothed_loss(window).last().copied().unwrap_or(f64::NAN),
                        held_out.accuracy * 100.0
                    );
                }
                LabEvent::HeldOut { .. } => {}
                LabEvent::Diverged { run, step } => {
                    let message =
                        format!("lab: {} diverged at step {step} (its loss is no longer a number)", lab.runs()[run].id);
                    if hidden {
                        eprintln!("{message}");
                    } else {
                        bars.println(message)?;
                    }
                    run_bars[run].abandon_with_message("diverged");
                }
            }
        }
    }
    for bar in &run_bars {
        if !bar.is_finished() {
            bar.finish();
        }
    }
    Ok(())
}

fn percent(v: Option<f64>) -> String {
    v.map_or("–".into(), |v| format!("{:.1}%", v * 100.0))
}

fn table(summary: &[RunSummary], window: usize) -> String {
    let width = summary.iter().map(|r| r.id.len()).max().unwrap_or(3).max(3);
    let mut out = format!(
        "{:<width$} {:>6} {:>10} {:>10} {:>9} {:>8} {:>9}  {}\n",
        "run", "steps", "loss", "error", "held-out", "steps/s", "params", "status"
    );
    for r in summary {
        let status = match r.status {
            RunStatus::Finished => String::new(),
            RunStatus::Training => "stopped".into(),
            RunStatus::Diverged { step } => format!("diverged at step {step}"),
        };
        out.push_str(&format!(
            "{:<width$} {:>6} {:>10} {:>10} {:>9} {:>8.2} {:>9}  {status}\n",
            r.id,
            r.steps,
            r.smoothed_loss.map_or("–".into(), |l| format!("{l:.4}")),
            percent(r.smoothed_error),
            percent(r.held_out_accuracy),
            r.steps_per_second,
            grouped(r.parameters),
        ));
    }
    out.push_str(&format!(
        "loss and error: training, mean of the last {window} steps; held-out: accuracy after the last step\n"
    ));
    out
}
