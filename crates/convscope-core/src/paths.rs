//! Where the checkout keeps what convscope reads at run time: the one place that knows.
//!
//! convscope runs from its checkout (`make run`): the venv the bootstrap made, the weights
//! folder, the bundled images and the test fixtures all sit at fixed places in it.

use std::path::{Path, PathBuf};

/// The checkout's root: the workspace folder above `crates/convscope-core`.
pub fn checkout() -> &'static Path {
    // CARGO_MANIFEST_DIR is crates/convscope-core; its grandparent always exists.
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

/// The bundled images (`assets/`).
pub fn assets() -> PathBuf {
    checkout().join("assets")
}

/// One bundled file, e.g. `asset("chelsea.png")`.
pub fn asset(name: &str) -> PathBuf {
    assets().join(name)
}

/// The Python environment `scripts/bootstrap.sh` makes: torch for conversions and references.
pub fn venv() -> PathBuf {
    checkout().join(".venv")
}

/// The venv's interpreter (it may not exist yet).
pub fn venv_python() -> PathBuf {
    venv().join("bin/python")
}

/// A file installed by a PyPI package into the venv, wherever its Python minor version put
/// `site-packages`.
pub fn venv_package_file(relative: &str) -> Option<PathBuf> {
    std::fs::read_dir(venv().join("lib")).ok()?.flatten().find_map(|entry| {
        let path = entry.path().join("site-packages").join(relative);
        path.is_file().then_some(path)
    })
}

/// The project's helper scripts (`scripts/`).
pub fn script(name: &str) -> PathBuf {
    checkout().join("scripts").join(name)
}

/// Where installed weights live: `$CONVSCOPE_WEIGHTS`, else the checkout's `weights/`.
pub fn weights_dir() -> PathBuf {
    std::env::var_os("CONVSCOPE_WEIGHTS").map(PathBuf::from).unwrap_or_else(|| checkout().join("weights"))
}

/// The latencies measured on this machine (`latency::Cache`): `$CONVSCOPE_LATENCY`, else
/// `target/latency.json` in the checkout, beside the bench's files.
pub fn latency_cache() -> PathBuf {
    std::env::var_os("CONVSCOPE_LATENCY").map(PathBuf::from).unwrap_or_else(|| checkout().join("target/latency.json"))
}

/// The reference outputs `make fixtures` writes with the venv's PyTorch (tests only).
pub fn fixtures_dir() -> PathBuf {
    checkout().join("target/fixtures")
}
