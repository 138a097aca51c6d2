//! Weights files: safetensors with the reference's state-dict keys.
//!
//! Loading checks every key, shape and dtype against the graph before the model is touched,
//! so a wrong file leaves the loaded model as it was (and tch's `VarStore::load`, which
//! panics on a dtype mismatch, is never used).

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use tch::{Device, Kind, Tensor};

use crate::error::{Error, Result, TorchContext};
use crate::executor::{Model, WeightsOrigin};
use crate::graph::Graph;

/// Bookkeeping buffers the reference saves but no forward pass reads.
fn is_ignored_key(key: &str) -> bool {
    key.ends_with("num_batches_tracked")
}

fn is_float(kind: Kind) -> bool {
    matches!(kind, Kind::Float | Kind::Double | Kind::Half | Kind::BFloat16)
}

/// Headers larger than this are not safetensors files anyone wrote.
const MAX_HEADER_BYTES: u64 = 100 * 1024 * 1024;

/// Reads every tensor of a safetensors file, after checking its header against the file's
/// size, so a truncated file, a header that lies about its offsets or a huge file of zeros is
/// refused before its data is read.
pub fn read_tensors(path: &Path) -> Result<Vec<(String, Tensor)>> {
    let meta = std::fs::metadata(path).map_err(|e| Error::file(path, e))?;
    if meta.is_dir() {
        return Err(Error::file(path, "is a directory, not a weights file"));
    }
    if meta.len() == 0 {
        return Err(Error::file(path, "the file is empty"));
    }
    check_safetensors_header(path, meta.len())?;
    Tensor::read_safetensors(path)
        .map_err(|e| Error::file(path, format!("not a valid safetensors file ({})", Error::torch("reading", e))))
}

#[derive(serde::Deserialize)]
struct HeaderEntry {
    data_offsets: (u64, u64),
}

fn check_safetensors_header(path: &Path, file_len: u64) -> Result<()> {
    use std::io::Read;
    let invalid = |reason: String| Error::file(path, format!("not a valid safetensors file: {reason}"));
    let mut file = std::fs::File::open(path).map_err(|e| Error::file(path, e))?;
    let mut size_bytes = [0u8; 8];
    file.read_exact(&mut size_bytes).map_err(|_| invalid("shorter than a header".into()))?;
    let header_len = u64::from_le_bytes(size_bytes);
    if header_len == 0 || header_len > MAX_HEADER_BYTES || 8 + header_len > file_len {
        return Err(invalid(format!("its header claims {header_len} bytes in a {file_len}-byte file")));
    }
    let mut header = vec![0u8; header_len as usize];
    file.read_exact(&mut header).map_err(|e| invalid(e.to_string()))?;
    let entries: std::collections::HashMap<String, serde_json::Value> =
        serde_json::from_slice(&header).map_err(|e| invalid(format!("unreadable header ({e})")))?;
    let data_len = file_len - 8 - header_len;
    let mut end = 0;
    for (name, value) in entries.iter().filter(|(name, _)| name.as_str() != "__metadata__") {
        let entry: HeaderEntry =
            serde_json::from_value(value.clone()).map_err(|e| invalid(format!("entry {name}: {e}")))?;
        let (start, stop) = entry.data_offsets;
        if start > stop || stop > data_len {
            return Err(invalid(format!(
                "{name} claims bytes {start}..{stop} of a {data_len}-byte data section (truncated, or the header lies)"
            )));
        }
        end = end.max(stop);
    }
    if end != data_len {
        return Err(invalid(format!("its tensors cover {end} of {data_len} data bytes")));
    }
    Ok(())
}

/// What is wrong with a set of tensors for a graph, as a list a user can act on.
#[derive(Debug, Default)]
pub struct Mismatch {
    pub missing: Vec<String>,
    pub unexpected: Vec<String>,
    pub wrong: Vec<String>,
}

impl Mismatch {
    pub fn is_empty(&self) -> bool {
        self.missing.is_empty() && self.unexpected.is_empty() && self.wrong.is_empty()
    }
}

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts = Vec::new();
        for (label, list) in [("missing", &self.missing), ("unexpected", &self.unexpected), ("mismatched", &self.wrong)]
        {
            if list.is_empty() {
                continue;
            }
            let shown: Vec<&str> = list.iter().take(4).map(String::as_str).collect();
            let more = if list.len() > shown.len() {
                format!(" and {} more", list.len() - shown.len())
            } else {
                String::new()
            };
            parts.push(format!("{} {label} ({}{more})", list.len(), shown.join(", ")));
        }
        write!(f, "{}", parts.join("; "))
    }
}

/// Compares named tensors with what the graph expects.
pub fn check_tensors(graph: &Graph, tensors: &[(String, Tensor)]) -> Mismatch {
    let by_key: HashMap<&str, &Tensor> = tensors.iter().map(|(k, t)| (k.as_str(), t)).collect();
    let mut mismatch = Mismatch::default();
    for spec in &graph.params {
        match by_key.get(spec.key.as_str()) {
            None => mismatch.missing.push(spec.key.clone()),
            Some(t) => {
                let size = t.size();
                let kind = t.kind();
                if size != spec.shape {
                    mismatch.wrong.push(format!("{}: shape {size:?}, expected {:?}", spec.key, spec.shape));
                } else if !is_float(kind) {
                    mismatch.wrong.push(format!("{}: dtype {kind:?}, expected a float type", spec.key));
                }
            }
        }
    }
    let expected: std::collections::HashSet<&str> = graph.params.iter().map(|p| p.key.as_str()).collect();
    mismatch.unexpected = tensors
        .iter()
        .map(|(k, _)| k)
        .filter(|k| !expected.contains(k.as_str()) && !is_ignored_key(k))
        .cloned()
        .collect();
    mismatch
}

/// Strips a prefix every key carries (`module.` from DataParallel, `model.` from training
/// wrappers), so state dicts saved that way load unchanged.
pub fn strip_common_prefix(tensors: Vec<(String, Tensor)>) -> Vec<(String, Tensor)> {
    for prefix in ["module.", "model.", "state_dict."] {
        if !tensors.is_empty() && tensors.iter().all(|(k, _)| k.starts_with(prefix)) {
            return tensors.into_iter().map(|(k, t)| (k[prefix.len()..].to_owned(), t)).collect();
        }
    }
    tensors
}

/// The architecture whose state dict these tensors most resemble (same keys and shapes),
/// when the resemblance is strong enough to be worth saying.
pub fn likely_arch(tensors: &[(String, Tensor)]) -> Option<&'static str> {
    let ours: HashMap<&str, Vec<i64>> = tensors.iter().map(|(k, t)| (k.as_str(), t.size())).collect();
    let counted = ours.keys().filter(|k| !is_ignored_key(k)).count();
    crate::zoo::all()
        .into_iter()
        .map(|spec| {
            let graph = spec.graph();
            let matching = graph.params.iter().filter(|p| ours.get(p.key.as_str()) == Some(&p.shape)).count();
            let union = graph.params.len() + counted - matching;
            (spec.id, matching as f64 / union.max(1) as f64)
        })
        .filter(|(_, score)| *score > 0.8)
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(id, _)| id)
}

/// Names of tensors holding NaN or infinite values: loaded, but worth a warning.
pub fn non_finite(tensors: &[(String, Tensor)]) -> Vec<String> {
    tensors
        .iter()
        .filter(|(_, t)| is_float(t.kind()))
        .filter(|(_, t)| {
            // A finite sum means every element is finite; only a non-finite sum (rare, or an
            // overflow) needs the element-wise check, which allocates a mask per tensor. Summed
            // in the tensor's own precision: a double sum made a double copy first (VGG-16's
            // 411 MB classifier weight became 822 MB more to fault in, on every load).
            let sum_finite = t.f_sum(tch::Kind::Float).and_then(|s| s.f_double_value(&[])).map(f64::is_finite);
            matches!(sum_finite, Ok(false))
                && t.f_isfinite().and_then(|f| f.f_all()).map(|all| all.int64_value(&[]) == 0).unwrap_or(false)
        })
        .map(|(k, _)| k.clone())
        .collect()
}

/// What loading found that the user should know.
#[derive(Debug, Default)]
pub struct LoadReport {
    pub non_finite: Vec<String>,
}

/// Loads a weights file into the model, all or nothing.
pub fn load_into(model: &mut Model, path: &Path) -> Result<LoadReport> {
    let (ordered, report) = checked_params(model.graph(), path)?;
    model.replace_params(ordered, WeightsOrigin::File(path.to_owned()))?;
    Ok(report)
}

/// A new model holding a weights file's tensors, checked like `load_into`.
pub fn load(graph: Arc<Graph>, device: Device, path: &Path) -> Result<(Model, LoadReport)> {
    let (ordered, report) = checked_params(&graph, path)?;
    Ok((Model::from_params(graph, ordered, device, WeightsOrigin::File(path.to_owned()))?, report))
}

/// A file's tensors in the order of `graph.params`, once every key, shape and dtype fits.
fn checked_params(graph: &Graph, path: &Path) -> Result<(Vec<Tensor>, LoadReport)> {
    let tensors = strip_common_prefix(read_tensors(path)?);
    let mismatch = check_tensors(graph, &tensors);
    if !mismatch.is_empty() {
        let mut details = mismatch.to_string();
        if let Some(other) = likely_arch(&tensors).filter(|other| *other != graph.arch) {
            details = format!("this looks like a {other} file ({details})");
        }
        return Err(Error::WeightsMismatch { path: path.to_owned(), arch: graph.arch.clone(), details });
    }
    let report = LoadReport { non_finite: non_finite(&tensors) };
    let mut by_key: HashMap<String, Tensor> = tensors.into_iter().collect();
    let ordered = graph
        .params
        .iter()
        .map(|spec| by_key.remove(&spec.key).ok_or_else(|| Error::file(path, format!("{} vanished", spec.key))))
        .collect::<Result<Vec<_>>>()?;
    Ok((ordered, report))
}

/// Writes the model's tensors under their state-dict keys.
pub fn save(model: &Model, path: &Path) -> Result<()> {
    let named: Vec<(String, Tensor)> = model
        .graph()
        .params
        .iter()
        .zip(model.params())
        .map(|(spec, t)| {
            t.f_detach()
                .and_then(|t| t.f_to(tch::Device::Cpu))
                .and_then(|t| t.f_contiguous())
                .map(|t| (spec.key.clone(), t))
        })
        .collect::<Result<_, _>>()
        .context(|| "preparing weights".into())?;
    Tensor::write_safetensors(&named, path).context(|| format!("writing {}", path.display()))
}
