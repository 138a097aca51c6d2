//! `weights/manifest.json`: for each installed weights file, where it came from, its
//! licence, its sha256 and the accuracy the project measured itself.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

pub const FILE_NAME: &str = "manifest.json";

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    /// Keyed by architecture id.
    pub weights: BTreeMap<String, Entry>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Entry {
    /// File name inside the weights folder.
    pub file: String,
    pub source: String,
    pub licence: String,
    pub sha256: String,
    /// How the file came to be here; older manifests without it held only fetched files.
    #[serde(default)]
    pub provenance: Provenance,
    /// Accuracy measured by convscope itself, where a test set is at hand.
    #[serde(default)]
    pub measured: Option<Measured>,
    /// What the reference reports for these weights (ImageNet top-1 %, where it applies).
    #[serde(default)]
    pub reference_top1: Option<f64>,
    #[serde(default)]
    pub note: Option<String>,
}

/// How a weights file came to be installed.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Provenance {
    /// The reference's own published weights, fetched or converted from its package.
    #[default]
    Reference,
    /// A user's file, imported with `convscope weights import`.
    Imported,
    /// Trained by convscope on this machine (`convscope train`).
    TrainedHere,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Measured {
    pub dataset: String,
    pub samples: usize,
    pub top1: f64,
    /// The command that reproduces the figure.
    pub command: String,
}

impl Manifest {
    pub fn path(dir: &Path) -> PathBuf {
        dir.join(FILE_NAME)
    }

    /// Reads the manifest; a missing file is an empty manifest.
    pub fn load(dir: &Path) -> Result<Self> {
        let path = Self::path(dir);
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                serde_json::from_str(&text).map_err(|e| Error::file(&path, format!("not a valid manifest: {e}")))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(Error::file(&path, e)),
        }
    }

    /// Writes through a temporary file so a crash never leaves half a manifest.
    pub fn save(&self, dir: &Path) -> Result<()> {
        let path = Self::path(dir);
        std::fs::create_dir_all(dir).map_err(|e| Error::file(dir, e))?;
        let text = serde_json::to_string_pretty(self).map_err(|e| Error::file(&path, e))? + "\n";
        let tmp = path.with_extension("json.partial");
        std::fs::write(&tmp, text).map_err(|e| Error::file(&tmp, e))?;
        std::fs::rename(&tmp, &path).map_err(|e| Error::file(&path, e))
    }
}

pub fn sha256_file(path: &Path) -> Result<String> {
    let mut file = std::fs::File::open(path).map_err(|e| Error::file(path, e))?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buffer).map_err(|e| Error::file(path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
    }
    Ok(hasher.finalize().iter().map(|b| format!("{b:02x}")).collect())
}
