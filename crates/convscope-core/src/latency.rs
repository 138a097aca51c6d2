//! How long each architecture's forward pass takes on this machine: batch 1, native input,
//! random weights (timing does not depend on their values), the explorer's plain forward.
//!
//! The results are cached with what they depend on (`Machine`: CPU model, intra-op threads,
//! device, libtorch version) and reused until one of those changes. The app measures on its
//! model worker, one architecture per request turn (`session::Request::Measure`); `convscope
//! bench --zoo` measures in the foreground. Both fill the same cache.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

use crate::error::{Error, Result, TorchContext};
use crate::executor::{Model, RunOptions};
use crate::zoo::ArchSpec;

/// What a latency depends on besides the network: measured elsewhere, it is not reused.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Machine {
    pub cpu_model: String,
    /// libtorch's intra-op threads.
    pub threads: usize,
    /// `cpu`, or `cuda:0 <GPU model>`.
    pub device: String,
    pub libtorch: String,
}

impl Machine {
    /// This process on `device`, as it runs now.
    pub fn current(device: Device) -> Self {
        let device = match device {
            Device::Cuda(i) => {
                let model = gpu_model(i).unwrap_or_else(|| "unknown GPU".into());
                format!(
                    "cuda:{i} {model} (cudart {}, cuDNN {})",
                    tch::utils::version_cudart(),
                    tch::utils::version_cudnn()
                )
            }
            other => crate::engine::device_id(other),
        };
        Self {
            cpu_model: cpu_model(),
            threads: usize::try_from(tch::get_num_threads()).unwrap_or(1),
            device,
            libtorch: libtorch_version(),
        }
    }

    /// One line for a table's header or the chart's caption.
    pub fn describe(&self) -> String {
        format!("{} · {} thread(s) · {} · libtorch {}", self.cpu_model, self.threads, self.device, self.libtorch)
    }
}

/// `model name` of /proc/cpuinfo.
pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.split(':').next().is_some_and(|k| k.trim() == "model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}

/// The NVIDIA driver's name for GPU `index` (Linux), e.g. `NVIDIA H200`.
fn gpu_model(index: usize) -> Option<String> {
    let mut dirs: Vec<_> = std::fs::read_dir("/proc/driver/nvidia/gpus").ok()?.flatten().map(|e| e.path()).collect();
    dirs.sort();
    let info = std::fs::read_to_string(dirs.get(index)?.join("information")).ok()?;
    info.lines().find_map(|l| l.strip_prefix("Model:")).map(|m| m.trim().to_owned())
}

/// The version of the libtorch this process runs, read beside the loaded `libtorch_cpu`: the
/// `build-version` file of a libtorch download, or the `version.py` of a PyTorch wheel.
pub fn libtorch_version() -> String {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap_or_default();
    let library = maps.lines().filter_map(|l| l.split_whitespace().nth(5)).find(|p| p.contains("libtorch_cpu."));
    let Some(root) = library.and_then(|l| Path::new(l).parent()).and_then(Path::parent) else {
        return "unknown".into();
    };
    if let Ok(version) = std::fs::read_to_string(root.join("build-version")) {
        return version.trim().to_owned();
    }
    std::fs::read_to_string(root.join("version.py"))
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix("__version__ = "))
                .map(|v| v.trim().trim_matches(['\'', '"']).to_owned())
        })
        .unwrap_or_else(|| "unknown".into())
}

/// How long one architecture's forward pass took.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Timing {
    pub median_ms: f64,
    pub min_ms: f64,
    pub runs: usize,
}

/// How many runs a timing takes: `warmup` untimed, then at least `min_runs` and `min_seconds`,
/// at most `max_runs`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rounds {
    pub warmup: usize,
    pub min_runs: usize,
    pub max_runs: usize,
    pub min_seconds: f64,
}

impl Default for Rounds {
    fn default() -> Self {
        Self { warmup: 1, min_runs: 3, max_runs: 15, min_seconds: 1.0 }
    }
}

fn sync(device: Device) {
    if let Device::Cuda(i) = device {
        tch::Cuda::synchronize(i as i64);
    }
}

/// Times `spec`'s plain forward at batch 1 and its native input on `device`, with random
/// weights; `interrupt` is asked between runs and `Ok(None)` means it said stop.
pub fn time_forward(
    spec: &ArchSpec,
    device: Device,
    rounds: &Rounds,
    interrupt: &dyn Fn() -> bool,
) -> Result<Option<Timing>> {
    let model = Model::random(spec.graph(), device, crate::engine::DEFAULT_SEED)?;
    let [c, h, w] = spec.input;
    let input = Tensor::f_randn([1, c, h, w], (Kind::Float, device)).context(|| format!("{}: input", spec.id))?;
    let options = RunOptions::default();
    let mut times = Vec::new();
    let started = Instant::now();
    for run in 0.. {
        if interrupt() {
            return Ok(None);
        }
        let timed = run >= rounds.warmup;
        let enough = times.len() >= rounds.min_runs.max(1) && started.elapsed().as_secs_f64() >= rounds.min_seconds;
        if timed && (enough || times.len() >= rounds.max_runs.max(1)) {
            break;
        }
        sync(device);
        let start = Instant::now();
        let output = model.forward(&input, &options)?;
        sync(device);
        let seconds = start.elapsed().as_secs_f64();
        drop(output);
        if timed {
            times.push(seconds * 1e3);
        }
    }
    times.sort_by(f64::total_cmp);
    let n = times.len();
    let median_ms = if n % 2 == 1 { times[n / 2] } else { (times[n / 2 - 1] + times[n / 2]) / 2.0 };
    Ok(Some(Timing { median_ms, min_ms: times[0], runs: n }))
}

/// The timings of one machine.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Table {
    pub machine: Machine,
    /// When the last timing landed, in seconds since 1970.
    pub updated: u64,
    pub timings: BTreeMap<String, Timing>,
}

/// Every machine's table, as saved (`paths::latency_cache`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Cache {
    pub tables: Vec<Table>,
}

/// The tables kept: the newest of this many machines (a laptop plugged in and not, CPU and CUDA…).
const KEPT_TABLES: usize = 8;

impl Cache {
    /// The saved cache; empty when there is none or it cannot be read (it is only a cache).
    pub fn load(path: &Path) -> Self {
        std::fs::read(path).ok().and_then(|bytes| serde_json::from_slice(&bytes).ok()).unwrap_or_default()
    }

    /// Writes it whole to a temporary file, then renames it over the old one, so a reader never
    /// sees half a file.
    pub fn save(&self, path: &Path) -> Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| Error::file(dir, e))?;
        }
        let text = serde_json::to_vec_pretty(self).map_err(|e| Error::file(path, e))?;
        let partial = path.with_extension("json.partial");
        std::fs::write(&partial, text).map_err(|e| Error::file(&partial, e))?;
        std::fs::rename(&partial, path).map_err(|e| Error::file(path, e))
    }

    /// The timings made on `machine` as it is now: none once anything about it changed.
    pub fn table(&self, machine: &Machine) -> Option<&Table> {
        self.tables.iter().find(|t| t.machine == *machine)
    }

    pub fn timing(&self, machine: &Machine, id: &str) -> Option<Timing> {
        self.table(machine).and_then(|t| t.timings.get(id).copied())
    }

    pub fn record(&mut self, machine: &Machine, id: &str, timing: Timing) {
        let updated = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let index = match self.tables.iter().position(|t| t.machine == *machine) {
            Some(i) => i,
            None => {
                self.tables.push(Table { machine: machine.clone(), updated, timings: BTreeMap::new() });
                self.tables.len() - 1
            }
        };
        let table = &mut self.tables[index];
        table.updated = updated;
        table.timings.insert(id.to_owned(), timing);
        if self.tables.len() > KEPT_TABLES {
            self.tables.sort_by_key(|t| std::cmp::Reverse(t.updated));
            self.tables.truncate(KEPT_TABLES);
        }
    }

    /// Forgets `machine`'s timings, to measure them again.
    pub fn forget(&mut self, machine: &Machine) {
        self.tables.retain(|t| t.machine != *machine);
    }
}

/// Adds one timing to the cache file (read, record, write), for a measurement in progress.
pub fn record_in(path: &Path, machine: &Machine, id: &str, timing: Timing) -> Result<()> {
    let mut cache = Cache::load(path);
    cache.record(machine, id, timing);
    cache.save(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn machine() -> Machine {
        Machine { cpu_model: "Test CPU".into(), threads: 4, device: "cpu".into(), libtorch: "2.13.0+cpu".into() }
    }

    #[test]
    fn the_cache_is_reused_on_the_same_machine_and_invalidated_when_anything_changes() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("latency.json");
        let timing = Timing { median_ms: 12.5, min_ms: 11.0, runs: 5 };
        record_in(&path, &machine(), "resnet18", timing).expect("saved");
        record_in(&path, &machine(), "vgg16", Timing { median_ms: 80.0, min_ms: 79.0, runs: 3 }).expect("saved");
        let cache = Cache::load(&path);
        assert_eq!(cache.timing(&machine(), "resnet18"), Some(timing), "reused as is");
        assert_eq!(cache.table(&machine()).map(|t| t.timings.len()), Some(2));
        let changed = [
            Machine { cpu_model: "Other CPU".into(), ..machine() },
            Machine { threads: 8, ..machine() },
            Machine { device: "cuda:0 NVIDIA H200".into(), ..machine() },
            Machine { libtorch: "2.14.0+cpu".into(), ..machine() },
        ];
        for other in &changed {
            assert!(cache.table(other).is_none(), "{other:?} gets nothing measured elsewhere");
        }
        // Another machine's timings sit beside, and forgetting one leaves the other.
        let mut cache = cache;
        cache.record(&changed[1], "resnet18", Timing { median_ms: 7.0, min_ms: 6.5, runs: 9 });
        assert_eq!(cache.timing(&changed[1], "resnet18").map(|t| t.median_ms), Some(7.0));
        assert_eq!(cache.timing(&machine(), "resnet18"), Some(timing));
        cache.forget(&machine());
        assert!(cache.table(&machine()).is_none());
        assert!(cache.table(&changed[1]).is_some());
    }

    #[test]
    fn an_unreadable_cache_is_an_empty_one() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("latency.json");
        assert_eq!(Cache::load(&path), Cache::default(), "missing");
        std::fs::write(&path, "{\"tables\": [{\"machine\": 3").expect("write");
        assert_eq!(Cache::load(&path), Cache::default(), "cut short");
    }

    #[test]
    fn this_machine_is_described_by_what_timings_depend_on() {
        let here = Machine::current(Device::Cpu);
        assert_eq!(here, Machine::current(Device::Cpu), "stable from call to call");
        assert_eq!(here.device, "cpu");
        assert!(here.threads >= 1);
        // libtorch is linked into every test binary: its version is found beside it.
        assert!(here.libtorch.starts_with("2."), "libtorch {}", here.libtorch);
        let threads = tch::get_num_threads();
        tch::set_num_threads(threads + 1);
        let more = Machine::current(Device::Cpu);
        tch::set_num_threads(threads);
        assert_ne!(more, here, "a thread count changes the machine");
    }

    #[test]
    fn small_networks_are_timed_and_an_interrupt_stops_the_timing() {
        let rounds = Rounds { warmup: 1, min_runs: 3, max_runs: 5, min_seconds: 0.0 };
        for id in ["lenet5", "resnet20"] {
            let spec = crate::zoo::find(id).expect("zoo");
            let timing = time_forward(&spec, Device::Cpu, &rounds, &|| false).expect("runs").expect("not interrupted");
            assert_eq!(timing.runs, 3, "{id}: min_runs when min_seconds is 0");
            assert!(timing.min_ms > 0.0 && timing.min_ms <= timing.median_ms, "{id}: {timing:?}");
        }
        let spec = crate::zoo::find("lenet5").expect("zoo");
        let asked = std::cell::Cell::new(0);
        let stop_after_two = || {
            asked.set(asked.get() + 1);
            asked.get() > 2
        };
        assert_eq!(time_forward(&spec, Device::Cpu, &rounds, &stop_after_two).expect("runs"), None);
    }
}
