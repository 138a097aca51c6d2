//! Weights files: safetensors with the reference's state-dict keys.
//!
//! Loading checks every key, shape and dtype against the graph before the model is touched,
//! so a wrong file leaves the loaded model as it was (and tch's `VarStore::load`, which
//! panics on a dtype mismatch, is never used).

use std::collections::HashMap;
use std::path::Path;

use tch::{Kind, Tensor};

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

/// Reads every tensor of a safetensors file.
pub fn read_tensors(path: &Path) -> Result<Vec<(String, Tensor)>> {
    let meta = std::fs::metadata(path).map_err(|e| Error::file(path, e))?;
    if meta.is_dir() {
        return Err(Error::file(path, "is a directory, not a weights file"));
    }
    if meta.len() == 0 {
        return Err(Error::file(path, "the file is empty"));
    }
    Tensor::read_safetensors(path)
        .map_err(|e| Error::file(path, format!("not a valid safetensors file ({})", Error::torch("reading", e))))
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

/// Loads a weights file into the model, all or nothing.
pub fn load_into(model: &mut Model, path: &Path) -> Result<()> {
    let tensors = read_tensors(path)?;
    let graph = model.graph().clone();
    let mismatch = check_tensors(&graph, &tensors);
    if !mismatch.is_empty() {
        return Err(Error::WeightsMismatch {
            path: path.to_owned(),
            arch: graph.arch.clone(),
            details: mismatch.to_string(),
        });
    }
    let mut by_key: HashMap<String, Tensor> = tensors.into_iter().collect();
    let ordered = graph
        .params
        .iter()
        .map(|spec| by_key.remove(&spec.key).ok_or_else(|| Error::file(path, format!("{} vanished", spec.key))))
        .collect::<Result<Vec<_>>>()?;
    model.replace_params(ordered, WeightsOrigin::File(path.to_owned()))
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
