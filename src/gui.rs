//! `convscope gui`: opens the explorer window (the app itself is `convscope-app`).

use std::path::PathBuf;

use anyhow::anyhow;

use convscope_app::{DEFAULT_RENDERER, LatencyRun, Renderer, Start};
use convscope_core::zoo;

/// What `convscope gui` was asked for.
pub struct GuiArgs {
    pub arch: Option<String>,
    pub image: Option<PathBuf>,
    /// `None`: OpenGL, or wgpu where OpenGL cannot be set up.
    pub renderer: Option<Renderer>,
    pub latency_run: Option<PathBuf>,
    pub latency_rounds: usize,
}

pub fn run(args: GuiArgs) -> anyhow::Result<()> {
    if let Some(id) = &args.arch {
        // An unknown name fails here, with suggestions, rather than in the window.
        zoo::find(id)?;
    }
    let renderer = args.renderer.unwrap_or(DEFAULT_RENDERER);
    let latency_run = args.latency_run.clone().map(|out| latency_run(out, args.latency_rounds));
    let start = Start { latency_run, ..Start::window(args.arch.clone(), args.image.clone()) };
    match convscope_app::run_window(start, renderer) {
        Ok(()) => Ok(()),
        // winit runs one event loop per process, so the other renderer gets a process of its own.
        Err(e) if args.renderer.is_none() && !e.app_started && renderer == Renderer::Glow => {
            eprintln!("OpenGL could not draw the window ({e}); trying wgpu (`--renderer wgpu`)");
            again_with(&args, Renderer::Wgpu)
        }
        Err(e) => Err(match renderer {
            Renderer::Glow => anyhow!("could not open a window with OpenGL: {e} (try `--renderer wgpu`)"),
            Renderer::Wgpu => anyhow!("could not open a window with wgpu: {e} (try `--renderer glow`)"),
        }),
    }
}

/// Runs `convscope gui` again, as asked, with `renderer`.
fn again_with(args: &GuiArgs, renderer: Renderer) -> anyhow::Result<()> {
    let exe = std::env::current_exe().map_err(|e| anyhow!("finding this program to run it again: {e}"))?;
    let mut command = std::process::Command::new(exe);
    command.arg("gui").args(args.arch.as_deref());
    if let Some(image) = &args.image {
        command.arg("--image").arg(image);
    }
    command.arg("--renderer").arg(renderer.to_string());
    if let Some(out) = &args.latency_run {
        command.arg("--latency-run").arg(out).arg("--latency-rounds").arg(args.latency_rounds.to_string());
    }
    let status = command.status().map_err(|e| anyhow!("running convscope again with {renderer}: {e}"))?;
    if status.success() { Ok(()) } else { Err(anyhow!("the window with {renderer} ended with {status}")) }
}

/// The bundled photos in turn, one round of warm-up, the report to `out`.
pub fn latency_run(out: PathBuf, rounds: usize) -> LatencyRun {
    let images = ["chelsea.png", "coffee.png"].map(convscope_core::paths::asset).to_vec();
    LatencyRun { images, warmup: 1, rounds: rounds.max(1), out: Some(out) }
}
