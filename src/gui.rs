//! `convscope gui`: opens the explorer window (the app itself is `convscope-app`).

use std::path::PathBuf;

use anyhow::anyhow;

use convscope_app::Start;
use convscope_core::{engine, paths, zoo};

/// What `convscope` opens when no architecture is named and nothing was saved: the
/// pretrained EfficientNet-Lite0 on the bundled cat where its weights are installed.
pub const DEFAULT_ARCH: &str = "efficientnet_lite0";
/// The fallback when those weights are missing: random ResNet-18 still shows every view.
pub const FALLBACK_ARCH: &str = "resnet18";

pub fn run(arch: Option<String>, image: Option<PathBuf>) -> anyhow::Result<()> {
    if let Some(id) = &arch {
        // An unknown name fails here, with suggestions, rather than in the window.
        zoo::find(id)?;
    }
    let fallback_arch = if engine::installed_weights(DEFAULT_ARCH).is_some() { DEFAULT_ARCH } else { FALLBACK_ARCH };
    let cat = paths::asset("chelsea.png");
    let start = Start {
        arch,
        image,
        fallback_arch: Some(fallback_arch.to_owned()),
        fallback_image: cat.is_file().then_some(cat),
        ignore_storage: false,
    };
    convscope_app::run_window(start).map_err(|e| anyhow!("could not open a window: {e}"))
}
