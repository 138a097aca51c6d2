//! `convscope gui`: opens the explorer window (the app itself is `convscope-app`).

use std::path::PathBuf;

use anyhow::anyhow;

use convscope_app::Start;
use convscope_core::zoo;

pub fn run(arch: Option<String>, image: Option<PathBuf>) -> anyhow::Result<()> {
    if let Some(id) = &arch {
        // An unknown name fails here, with suggestions, rather than in the window.
        zoo::find(id)?;
    }
    convscope_app::run_window(Start::window(arch, image)).map_err(|e| anyhow!("could not open a window: {e}"))
}
