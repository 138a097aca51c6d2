//! The report as a readable table.

use super::Report;

fn ms(seconds: f64) -> String {
    let ms = seconds * 1e3;
    if ms >= 100.0 {
        format!("{ms:.0}")
    } else if ms >= 10.0 {
        format!("{ms:.1}")
    } else {
        format!("{ms:.2}")
    }
}

fn faults(n: f64) -> String {
    if n >= 1e4 { format!("{:.0}k", n / 1e3) } else { format!("{n:.0}") }
}

pub(super) fn mb(bytes: u64) -> String {
    format!("{:.0} MB", bytes as f64 / 1e6)
}

/// The report as a readable table.
pub(super) fn render(report: &Report) -> String {
    let m = &report.machine;
    let mut out = String::new();
    let mut line = |s: String| {
        out.push_str(&s);
        out.push('\n');
    };
    line(format!("convscope bench · {} · PyTorch {} (same libtorch)", report.date, report.torch));
    line(format!(
        "machine: {} · {} CPUs at {:.0} MHz · {} → peak {:.0} GFLOP/s fp32 (cpus × clock × FLOPs/cycle)",
        m.cpu_model, m.cpus, m.mhz, m.isa, m.peak_gflops
    ));
    line(format!(
        "{} thread(s) each side (peak of those: {:.0} GFLOP/s) · {} warm-up + {} interleaved rounds · load average {} → {}",
        report.threads,
        m.peak_gflops * report.threads.min(m.cpus) as f64 / m.cpus.max(1) as f64,
        report.warmup,
        report.rounds,
        m.load_average_start,
        m.load_average_end
    ));
    let busy = m.load_average_start.split_whitespace().next().and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    if busy > 0.5 {
        line(format!(
            "note: the machine was busy before the run (1-minute load {busy:.1} on {} CPUs): the paired ratios are the figures to trust",
            m.cpus
        ));
    }
    line(String::new());
    line(format!(
        "{:<20} {:<6} {:<12} {:>22} {:>22} {:>18} {:>7} {:>17} {:>13}",
        "case",
        "device",
        "mode",
        "convscope ms (min–max)",
        "PyTorch ms (min–max)",
        "ratio (pairs)",
        "target",
        "GFLOP/s (%peak)",
        "page faults"
    ));
    // The peak of the cores the run used: a one-thread run is held against one core.
    let peak_used = m.peak_gflops * report.threads.min(m.cpus) as f64 / m.cpus.max(1) as f64;
    for case in &report.cases {
        for r in &case.modes {
            let verdict = if r.target.is_none_or(|t| r.paired_ratio.median <= t) { " " } else { "✗" };
            let gflops = match (r.gflops_convscope, r.gflops_pytorch) {
                (Some(a), Some(b)) if case.device == "cpu" && peak_used > 0.0 => {
                    format!("{a:.0}/{b:.0} ({:.0}%)", 100.0 * a / peak_used)
                }
                (Some(a), Some(b)) => format!("{a:.0}/{b:.0}"),
                _ => String::new(),
            };
            line(format!(
                "{:<20} {:<6} {:<12} {:>22} {:>22} {:>18} {:>6}{} {:>17} {:>13}",
                case.case,
                case.device,
                r.mode.name(),
                format!("{} ({}–{})", ms(r.convscope.median), ms(r.convscope.min), ms(r.convscope.max)),
                format!("{} ({}–{})", ms(r.pytorch.median), ms(r.pytorch.min), ms(r.pytorch.max)),
                format!("{:.3} ({:.2}–{:.2})", r.paired_ratio.median, r.paired_ratio.min, r.paired_ratio.max),
                r.target.map_or("–".to_owned(), |t| format!("≤{t}")),
                verdict,
                gflops,
                format!("{}/{}", faults(r.minor_faults[0]), faults(r.minor_faults[1])),
            ));
        }
        let capture = case.capture_over_forward.as_ref().map_or(String::new(), |c| {
            let verdict = if c.median <= 1.10 { "" } else { " ✗" };
            format!(" · capture/forward {:.2} (pairs {:.2}–{:.2}; ≤1.10{verdict})", c.median, c.min, c.max)
        });
        let top5 = if case.top5_convscope == case.top5_pytorch {
            "same top-5".to_owned()
        } else {
            format!("top-5 {:?} vs {:?}", case.top5_convscope, case.top5_pytorch)
        };
        if case.top5_parts_convscope != [0.0; 3] {
            let [a, b, c] = case.top5_parts_convscope;
            let [d, e, f] = case.top5_parts_pytorch;
            line(format!(
                "    top5 parts (ms): decode {a:.1} / {d:.1} · resize+crop+normalise {b:.1} / {e:.1} · forward+top-5 {c:.1} / {f:.1} (convscope / PyTorch)"
            ));
        }
        line(format!(
            "    {:.2} GMACs · {:.1} M params · {} nodes · logits max|Δ| {:.1e} (NCHW) / {:.1e} (NHWC) · {top5} · check_input {:.0} µs · peak RSS {} / {}{capture}",
            case.macs as f64 * 1e-9,
            case.params as f64 * 1e-6,
            case.nodes,
            case.logits_max_abs_diff,
            case.logits_max_abs_diff_fast,
            case.check_input_us,
            mb(case.peak_rss_convscope),
            mb(case.peak_rss_pytorch),
        ));
    }
    line(String::new());
    line(format!(
        "ratio = median of the per-round ratios convscope/PyTorch (✗: above target); GFLOP/s = 2 × MACs / median, \
         convscope/PyTorch (% of the peak of the threads used); page faults = median minor faults per run, convscope/PyTorch; peak RSS convscope / PyTorch over the run: {} / {}",
        mb(report.peak_rss_convscope),
        mb(report.peak_rss_pytorch)
    ));
    out
}
