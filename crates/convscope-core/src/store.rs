//! The installed weights folder: listing, fetching and importing files, with the manifest.
//!
//! Conversion from PyTorch pickles and downloads go through the project's venv Python
//! (`scripts/weights.py`), which loads pickles with `weights_only=True`: a file that would
//! run code when unpickled is refused, never executed.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde::Deserialize;
use tch::Tensor;

use crate::error::{Error, Result, TorchContext};
use crate::manifest::{Entry, Manifest, Provenance, sha256_file};
use crate::paths::weights_dir;
use crate::weights::{check_tensors, likely_arch, read_tensors, strip_common_prefix};
use crate::zoo::ArchSpec;

/// The venv's Python, which holds torch for conversions.
pub fn venv_python() -> Result<PathBuf> {
    let python = crate::paths::venv_python();
    if python.is_file() {
        Ok(python)
    } else {
        Err(Error::Input(format!(
            "{} is missing: converting PyTorch files needs the project's venv (run `make run` once)",
            python.display()
        )))
    }
}

fn weights_script() -> PathBuf {
    crate::paths::script("weights.py")
}

/// What scripts/weights.py prints on success.
#[derive(Debug, Deserialize)]
struct ScriptRecord {
    #[serde(default)]
    source: Option<String>,
    #[serde(default)]
    licence: Option<String>,
    #[serde(default)]
    reference_top1: Option<f64>,
}

fn run_script(args: &[&str], timeout: Duration) -> Result<ScriptRecord> {
    let python = venv_python()?;
    let mut child = Command::new(&python)
        .arg(weights_script())
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| Error::file(&python, e))?;
    let start = std::time::Instant::now();
    loop {
        match child.try_wait().map_err(|e| Error::file(&python, e))? {
            Some(_) => break,
            None if start.elapsed() > timeout => {
                let _ = child.kill();
                return Err(Error::Input(format!("gave up after {} s without an answer", timeout.as_secs())));
            }
            None => std::thread::sleep(Duration::from_millis(100)),
        }
    }
    let output = child.wait_with_output().map_err(|e| Error::file(&python, e))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let reason = stderr.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("failed without a message");
        return Err(Error::Input(reason.trim().to_owned()));
    }
    serde_json::from_str(stdout.trim()).map_err(|e| Error::Input(format!("unreadable answer from weights.py: {e}")))
}

/// Checks tensors against the architecture and writes them as `weights/<arch>.safetensors`.
fn install(spec: &ArchSpec, tensors: Vec<(String, Tensor)>, origin: &Path) -> Result<PathBuf> {
    let tensors = strip_common_prefix(tensors);
    let graph = spec.graph();
    let mismatch = check_tensors(&graph, &tensors);
    if !mismatch.is_empty() {
        let hint = likely_arch(&tensors)
            .filter(|other| *other != spec.id)
            .map(|other| format!(" (this looks like a {other} file)"))
            .unwrap_or_default();
        return Err(Error::WeightsMismatch {
            path: origin.to_owned(),
            arch: spec.id.to_owned(),
            details: format!("{mismatch}{hint}"),
        });
    }
    let wanted: std::collections::HashSet<&str> = graph.params.iter().map(|p| p.key.as_str()).collect();
    let kept: Vec<(String, Tensor)> = tensors.into_iter().filter(|(k, _)| wanted.contains(k.as_str())).collect();
    let dir = weights_dir();
    std::fs::create_dir_all(&dir).map_err(|e| Error::file(&dir, e))?;
    let path = dir.join(format!("{}.safetensors", spec.id));
    let partial = dir.join(format!("{}.safetensors.partial", spec.id));
    Tensor::write_safetensors(&kept, &partial).context(|| format!("writing {}", partial.display()))?;
    std::fs::rename(&partial, &path).map_err(|e| Error::file(&path, e))?;
    Ok(path)
}

/// What `record` writes about a file beside its checksum.
struct Origin {
    source: String,
    licence: String,
    provenance: Provenance,
    reference_top1: Option<f64>,
}

fn record(spec: &ArchSpec, path: &Path, origin: Origin) -> Result<Entry> {
    let Origin { source, licence, provenance, reference_top1 } = origin;
    let entry = Entry {
        file: path.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default(),
        source,
        licence,
        sha256: sha256_file(path)?,
        provenance,
        measured: None,
        reference_top1: reference_top1.or(spec.card.top1_reference.map(f64::from)),
        note: None,
    };
    let dir = weights_dir();
    let mut manifest = Manifest::load(&dir)?;
    manifest.weights.insert(spec.id.to_owned(), entry.clone());
    manifest.save(&dir)?;
    Ok(entry)
}

/// `convscope weights import FILE --arch ARCH`.
pub fn import(spec: &ArchSpec, file: &Path) -> Result<Entry> {
    let extension = file.extension().and_then(|e| e.to_str()).unwrap_or("").to_lowercase();
    let tensors = match extension.as_str() {
        "safetensors" => read_tensors(file)?,
        "pth" | "pt" | "bin" | "ckpt" => {
            let tmp = tempfile_path(spec.id);
            let file_arg = file.to_string_lossy();
            let tmp_arg = tmp.to_string_lossy();
            let converted = run_script(&["convert", &file_arg, &tmp_arg], Duration::from_secs(600));
            let tensors = converted.and_then(|_| read_tensors(&tmp));
            let _ = std::fs::remove_file(&tmp);
            tensors.map_err(|e| Error::file(file, e))?
        }
        _ => return Err(Error::file(file, "expected a .safetensors, .pth, .pt or .bin file")),
    };
    let path = install(spec, tensors, file)?;
    let origin = Origin {
        source: format!("imported from {}", file.display()),
        licence: "as the source's".into(),
        provenance: Provenance::Imported,
        reference_top1: None,
    };
    record(spec, &path, origin)
}

/// `convscope weights fetch ARCH`: the reference's pretrained weights, through the venv.
pub fn fetch(spec: &ArchSpec) -> Result<Entry> {
    let tmp = tempfile_path(spec.id);
    let tmp_arg = tmp.to_string_lossy();
    let fetched = run_script(&["fetch", spec.id, &tmp_arg], Duration::from_secs(900)).map_err(|e| {
        Error::Input(format!(
            "could not fetch {} weights: {e}. Tried the reference's own download through the venv; \
             without internet, get the file elsewhere and run `convscope weights import FILE --arch {}`",
            spec.id, spec.id
        ))
    });
    let result = fetched.and_then(|record_json| {
        let tensors = read_tensors(&tmp)?;
        let path = install(spec, tensors, &tmp)?;
        let origin = Origin {
            source: record_json.source.unwrap_or_else(|| "the reference".into()),
            licence: record_json.licence.unwrap_or_else(|| "see the source".into()),
            provenance: Provenance::Reference,
            reference_top1: record_json.reference_top1,
        };
        record(spec, &path, origin)
    });
    let _ = std::fs::remove_file(&tmp);
    result
}

fn tempfile_path(id: &str) -> PathBuf {
    std::env::temp_dir().join(format!("convscope-{id}-{}.safetensors", std::process::id()))
}

/// One row of `convscope weights list`.
pub struct Installed {
    pub arch: String,
    pub path: PathBuf,
    pub entry: Option<Entry>,
    /// The file's sha256 equals the manifest's.
    pub verified: bool,
}

pub fn list() -> Result<Vec<Installed>> {
    let dir = weights_dir();
    let manifest = Manifest::load(&dir)?;
    let mut rows = Vec::new();
    for spec in crate::zoo::all() {
        let path = dir.join(format!("{}.safetensors", spec.id));
        if !path.is_file() {
            continue;
        }
        let entry = manifest.weights.get(spec.id).cloned();
        let verified = match &entry {
            Some(e) => sha256_file(&path)? == e.sha256,
            None => false,
        };
        rows.push(Installed { arch: spec.id.to_owned(), path, entry, verified });
    }
    Ok(rows)
}
