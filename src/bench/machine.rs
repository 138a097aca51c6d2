//! The machine the bench ran on (CPU, clock, FMA width, load) and what this process reads of
//! itself in /proc (resident memory, its peak, page faults), Linux only: elsewhere the figures
//! read as zero.

use serde::Serialize;

#[derive(Clone, Debug, Serialize)]
pub struct Machine {
    pub cpu_model: String,
    /// Logical CPUs the process may use (`nproc`).
    pub cpus: usize,
    /// `cpu MHz` of /proc/cpuinfo (the clock the kernel reports; turbo and AVX-512 licences move it).
    pub mhz: f64,
    /// The widest FMA vector unit the flags show, and the fp32 FLOPs per cycle and core it gives.
    pub isa: String,
    pub flops_per_cycle: f64,
    /// cpus × clock × FLOPs per cycle, fp32.
    pub peak_gflops: f64,
    pub load_average_start: String,
    pub load_average_end: String,
}

impl Machine {
    pub(super) fn probe() -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let field = |name: &str| {
            cpuinfo
                .lines()
                .find(|l| l.split(':').next().is_some_and(|k| k.trim() == name))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        };
        let cpu_model = field("model name").unwrap_or_else(|| "unknown CPU".into());
        let mhz = field("cpu MHz").and_then(|v| v.parse().ok()).unwrap_or(0.0);
        let flags: Vec<String> = field("flags").unwrap_or_default().split_whitespace().map(str::to_owned).collect();
        let (isa, flops_per_cycle) = flops_per_cycle(&flags);
        let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        Self {
            cpu_model,
            cpus,
            mhz,
            isa,
            flops_per_cycle,
            peak_gflops: cpus as f64 * mhz * 1e-3 * flops_per_cycle,
            load_average_start: load_average(),
            load_average_end: String::new(),
        }
    }
}

/// fp32 FLOPs per cycle and core from the CPU flags: lanes × 2 (an FMA is two FLOPs) × FMA
/// units. Server cores with AVX-512 have two FMA units on port 0+1 and 5 (some Xeon Silver and
/// Gold 5xxx only one: then the true peak is half); AVX2 cores have two 256-bit FMA units.
fn flops_per_cycle(flags: &[String]) -> (String, f64) {
    let has = |f: &str| flags.iter().any(|x| x == f);
    if has("avx512f") && has("fma") {
        ("AVX-512 + FMA: 16 lanes × 2 FLOPs × 2 units".into(), 64.0)
    } else if has("avx2") && has("fma") {
        ("AVX2 + FMA: 8 lanes × 2 FLOPs × 2 units".into(), 32.0)
    } else if has("avx") {
        ("AVX: 8 lanes × (1 add + 1 mul)".into(), 16.0)
    } else {
        ("SSE: 4 lanes × (1 add + 1 mul)".into(), 8.0)
    }
}

pub(super) fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// A memory field of `/proc/self/status` (`VmRSS:`, `VmHWM:`), in bytes.
pub(super) fn status_bytes(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with(field)).and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// VmHWM of this process, in bytes.
pub(super) fn peak_rss() -> u64 {
    status_bytes("VmHWM:")
}

/// Minor page faults of this process so far (all threads): field 10 of /proc/self/stat.
pub(super) fn minor_faults() -> f64 {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| s.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().nth(7)?.parse::<f64>().ok()))
        .unwrap_or(0.0)
}

/// Sets the high-water mark back to the current RSS (Linux 4.0+), so each case gets its own peak.
pub(super) fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

pub(super) fn utc_now() -> String {
    utc(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs()) as i64)
}

/// Seconds since the epoch as `YYYY-MM-DD HH:MM UTC`.
fn utc(secs: i64) -> String {
    let (days, rest) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02} {:02}:{:02} UTC", rest / 3600, rest % 3600 / 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flops_per_cycle_follows_the_widest_fma() {
        let flags = |s: &str| s.split(' ').map(str::to_owned).collect::<Vec<_>>();
        assert_eq!(flops_per_cycle(&flags("sse avx avx2 fma avx512f")).1, 64.0);
        assert_eq!(flops_per_cycle(&flags("sse avx avx2 fma")).1, 32.0);
        assert_eq!(flops_per_cycle(&flags("sse avx")).1, 16.0);
        assert_eq!(flops_per_cycle(&flags("sse")).1, 8.0);
    }

    #[test]
    fn dates_are_civil_utc() {
        // Expected values from Python's datetime.fromtimestamp(s, timezone.utc).
        assert_eq!(utc(0), "1970-01-01 00:00 UTC");
        assert_eq!(utc(951_827_696), "2000-02-29 12:34 UTC");
        assert_eq!(utc(1_811_457_900), "2027-05-27 22:45 UTC");
    }
}
