//! `convscope gui`: opens the explorer window (the app itself is `convscope-app`).

use std::path::PathBuf;

use anyhow::anyhow;

use convscope_app::{LatencyRun, Renderer, Start};
use convscope_core::zoo;

pub fn run(
    arch: Option<String>,
    image: Option<PathBuf>,
    renderer: Renderer,
    latency_run: Option<LatencyRun>,
) -> anyhow::Result<()> {
    if let Some(id) = &arch {
        // An unknown name fails here, with suggestions, rather than in the window.
        zoo::find(id)?;
    }
    let start = Start { latency_run, ..Start::window(arch, image) };
    convscope_app::run_window(start, renderer).map_err(|e| match renderer {
        Renderer::Glow => anyhow!("could not open a window with OpenGL: {e} (try `--renderer wgpu`)"),
        Renderer::Wgpu => anyhow!("could not open a window with wgpu: {e} (try `--renderer glow`)"),
    })
}

/// The bundled photos in turn, one round of warm-up, the report to `out`.
pub fn latency_run(out: PathBuf, rounds: usize) -> LatencyRun {
    let images = ["chelsea.png", "coffee.png"].map(convscope_core::paths::asset).to_vec();
    LatencyRun { images, warmup: 1, rounds: rounds.max(1), out: Some(out) }
}
