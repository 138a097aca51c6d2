//! `convscope bench --zoo`: every architecture's forward pass timed on this machine (batch 1,
//! native input, random weights), in a table along the timeline with its year, top-1,
//! parameters and MACs. The timings also fill the cache the explorer's History chart reads
//! (`latency`), so the chart shows them without measuring again.

use std::io::Write;

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use tch::Device;

use convscope_core::format::human_count;
use convscope_core::history::{self, Entry, Top1Source};
use convscope_core::latency::{self, Machine, Rounds, Timing};

use super::BenchArgs;

#[derive(Clone, Debug, Serialize)]
pub struct Row {
    #[serde(flatten)]
    pub entry: Entry,
    /// `None` where the network could not run here (the reason is in `error`).
    pub timing: Option<Timing>,
    pub error: Option<String>,
    /// Best top-1 for its latency: no network here is both faster and more accurate.
    pub on_front: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct ZooReport {
    pub date: String,
    pub machine: Machine,
    pub rounds: RoundsJson,
    pub rows: Vec<Row>,
}

#[derive(Clone, Copy, Debug, Serialize)]
pub struct RoundsJson {
    pub warmup: usize,
    pub min_runs: usize,
    pub max_runs: usize,
    pub min_seconds: f64,
}

fn rounds(args: &BenchArgs) -> Rounds {
    if args.quick {
        Rounds { warmup: args.warmup.min(1), min_runs: 1, max_runs: 2, min_seconds: 0.0 }
    } else {
        let max_runs = args.rounds.max(1);
        Rounds { warmup: args.warmup, min_runs: max_runs.min(3), max_runs, min_seconds: 1.0 }
    }
}

/// Measures every architecture (or those named) on each device and prints the tables.
pub fn run(args: &BenchArgs) -> Result<()> {
    // Unless asked, libtorch keeps its own thread count: the one the explorer runs with, so
    // that the chart finds these timings in the cache.
    if let Some(threads) = args.threads {
        tch::set_num_threads(threads.max(1) as i32);
    }
    let entries: Vec<Entry> = if args.cases.is_empty() {
        history::entries()
    } else {
        let all = history::entries();
        args.cases
            .iter()
            .map(|id| {
                convscope_core::zoo::find(id)?;
                all.iter().find(|e| e.id == id).cloned().context("in the zoo but not on the chart")
            })
            .collect::<Result<_>>()?
    };
    let rounds = rounds(args);
    let cache = convscope_core::paths::latency_cache();
    let mut reports = Vec::new();
    for device in super::devices(&args.device)? {
        let report = measure(&entries, device, &rounds, &cache)?;
        write!(crate::output::stdout(), "{}", render(&report))?;
        reports.push(report);
    }
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&reports)?;
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
        eprintln!("results written to {}", path.display());
    }
    eprintln!("timings cached in {} for the History chart", cache.display());
    Ok(())
}

fn measure(entries: &[Entry], device: Device, rounds: &Rounds, cache: &std::path::Path) -> Result<ZooReport> {
    let machine = Machine::current(device);
    eprintln!("bench --zoo: {} architecture(s) on {}", entries.len(), machine.describe());
    let style = ProgressStyle::with_template("bench --zoo: [{bar:30}] {pos}/{len} {msg}")?.progress_chars("=> ");
    let bar = ProgressBar::new(entries.len() as u64).with_style(style);
    let mut rows = Vec::with_capacity(entries.len());
    for entry in entries {
        bar.set_message(entry.id);
        let spec = convscope_core::zoo::find(entry.id)?;
        let (timing, error) = match latency::time_forward(&spec, device, rounds, &|| false) {
            Ok(timing) => (timing, None),
            Err(e) => (None, Some(e.to_string())),
        };
        if let Some(timing) = timing
            && let Err(e) = latency::record_in(cache, &machine, entry.id, timing)
        {
            bar.suspend(|| eprintln!("bench --zoo: could not cache {}'s timing: {e}", entry.id));
        }
        if let Some(error) = &error {
            bar.suspend(|| eprintln!("bench --zoo: {} did not run: {error}", entry.id));
        } else if let Some(timing) = timing
            && bar.is_hidden()
        {
            // No terminal to draw the bar on (a log, CI): a line per network instead.
            eprintln!("bench --zoo: {} {:.2} ms ({} runs)", entry.id, timing.median_ms, timing.runs);
        }
        rows.push(Row { entry: entry.clone(), timing, error, on_front: false });
        bar.inc(1);
    }
    bar.finish_and_clear();
    mark_front(&mut rows);
    Ok(ZooReport {
        date: super::machine::utc_now(),
        machine,
        rounds: RoundsJson {
            warmup: rounds.warmup,
            min_runs: rounds.min_runs,
            max_runs: rounds.max_runs,
            min_seconds: rounds.min_seconds,
        },
        rows,
    })
}

/// Marks the networks on the Pareto front of top-1 (the paper's, else the reference's)
/// against latency.
fn mark_front(rows: &mut [Row]) {
    let points: Vec<(f64, f64)> = rows
        .iter()
        .map(|r| match (r.timing, r.entry.top1(Top1Source::Paper)) {
            (Some(t), Some(top1)) => (t.median_ms, f64::from(top1.percent)),
            _ => (f64::NAN, f64::NAN),
        })
        .collect();
    for i in history::pareto_front(&points) {
        rows[i].on_front = true;
    }
}

fn top1(value: Option<f32>) -> String {
    value.map_or_else(|| "–".into(), |v| format!("{v:.1}"))
}

fn ms(ms: f64) -> String {
    if ms >= 100.0 {
        format!("{ms:.0}")
    } else if ms >= 10.0 {
        format!("{ms:.1}")
    } else {
        format!("{ms:.2}")
    }
}

/// The table, one row per architecture in timeline order.
pub fn render(report: &ZooReport) -> String {
    let mut out = String::new();
    let mut line = |s: String| {
        out.push_str(&s);
        out.push('\n');
    };
    line(format!("convscope bench --zoo · {} · {}", report.date, report.machine.describe()));
    line(format!(
        "batch 1 at each network's native input, random weights, plain forward; {} warm-up, median of {}–{} runs",
        report.rounds.warmup, report.rounds.min_runs, report.rounds.max_runs
    ));
    line(String::new());
    line(format!(
        "{:<5} {:<22} {:<16} {:>9} {:>9} {:>10} {:>9} {:>9} {:>11}  {}",
        "year", "network", "family", "top-1 p.", "top-1 r.", "params", "MACs", "input", "latency ms", "front"
    ));
    let mut year = None;
    for row in &report.rows {
        let e = &row.entry;
        let shown_year = if year == Some(e.year) { String::new() } else { e.year.to_string() };
        year = Some(e.year);
        let latency = match (&row.timing, &row.error) {
            (Some(t), _) => ms(t.median_ms),
            (None, Some(_)) => "failed".into(),
            (None, None) => "–".into(),
        };
        line(format!(
            "{:<5} {:<22} {:<16} {:>9} {:>9} {:>10} {:>9} {:>9} {:>11}  {}",
            shown_year,
            e.id,
            e.family.name(),
            top1(e.top1_paper),
            top1(e.top1_reference),
            human_count(e.params),
            e.macs.map_or_else(|| "–".into(), human_count),
            format!("{}×{}", e.input[1], e.input[2]),
            latency,
            if row.on_front { "★" } else { "" },
        ));
    }
    line(String::new());
    line(
        "top-1 p./r.: ImageNet top-1 (%) of the paper / of the reference weights (– where none is reported, or not \
         ImageNet); ★: on the Pareto front of top-1 (the paper's, else the reference's) against latency"
            .into(),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: &str, ms: Option<f64>) -> Row {
        let entry = history::entries().into_iter().find(|e| e.id == id).expect("zoo id");
        Row { entry, timing: ms.map(|m| Timing { median_ms: m, min_ms: m, runs: 3 }), error: None, on_front: false }
    }

    #[test]
    fn the_table_runs_along_the_timeline_and_stars_the_front() {
        // Made-up latencies: ResNet-50 slower than VGG-16 would take it off the front.
        let mut rows = vec![
            row("lenet5", Some(0.1)),
            row("alexnet", Some(5.0)),
            row("vgg16", Some(40.0)),
            row("resnet50", Some(30.0)),
            row("squeezenet1_0", Some(3.0)),
            row("mobilenet_v2", Some(6.0)),
            row("efficientnet_b7", None),
        ];
        mark_front(&mut rows);
        let front: Vec<&str> = rows.iter().filter(|r| r.on_front).map(|r| r.entry.id).collect();
        // SqueezeNet (57.5) at 3 ms, MobileNet v2 (72.0) at 6, ResNet-50 (77.15) at 30;
        // AlexNet is slower than SqueezeNet and worse; VGG-16 slower than ResNet-50 and worse.
        assert_eq!(front, ["resnet50", "squeezenet1_0", "mobilenet_v2"]);
        let report = ZooReport {
            date: "2026-01-01 00:00 UTC".into(),
            machine: Machine {
                cpu_model: "Test CPU".into(),
                threads: 2,
                device: "cpu".into(),
                libtorch: "2.13.0".into(),
            },
            rounds: RoundsJson { warmup: 1, min_runs: 3, max_runs: 7, min_seconds: 1.0 },
            rows,
        };
        let table = render(&report);
        let lines: Vec<&str> = table.lines().collect();
        assert!(lines[0].contains("Test CPU · 2 thread(s) · cpu · libtorch 2.13.0"), "{}", lines[0]);
        let vgg = lines.iter().find(|l| l.contains("vgg16")).expect("a vgg16 row");
        assert!(vgg.starts_with("2014 "), "{vgg}");
        assert!(vgg.contains("138.36 M") && vgg.contains("15.47 G") && vgg.contains("40.0"), "{vgg}");
        let b7 = lines.iter().find(|l| l.contains("efficientnet_b7")).expect("b7");
        assert!(b7.contains(" – ") && b7.contains("600×600"), "{b7}");
        assert!(lines.iter().any(|l| l.contains("resnet50") && l.ends_with('★')));
    }
}
