//! `convscope gui`: opens the explorer window (the app itself lives in `crate::app`).

use std::path::{Path, PathBuf};

use anyhow::anyhow;

use crate::app::{App, Start};
use crate::engine;

/// What `convscope` opens when no architecture is named and nothing was saved: the
/// pretrained EfficientNet-Lite0 on the bundled cat where its weights are installed.
pub const DEFAULT_ARCH: &str = "efficientnet_lite0";
/// The fallback when those weights are missing: random ResNet-18 still shows every view.
pub const FALLBACK_ARCH: &str = "resnet18";

pub fn run(arch: Option<String>, image: Option<PathBuf>) -> anyhow::Result<()> {
    if let Some(id) = &arch {
        // An unknown name fails here, with suggestions, rather than in the window.
        crate::zoo::find(id)?;
    }
    let fallback_arch = if engine::installed_weights(DEFAULT_ARCH).is_some() { DEFAULT_ARCH } else { FALLBACK_ARCH };
    let cat = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/chelsea.png");
    let start = Start {
        arch,
        image,
        fallback_arch: Some(fallback_arch.to_owned()),
        fallback_image: cat.is_file().then_some(cat),
        ignore_storage: false,
    };
    let options = eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default()
            .with_inner_size([1400.0, 900.0])
            .with_min_inner_size([800.0, 500.0])
            .with_title("convscope")
            .with_app_id("convscope")
            .with_drag_and_drop(true),
        ..Default::default()
    };
    eframe::run_native("convscope", options, Box::new(move |cc| Ok(Box::new(App::new(cc, start)?))))
        .map_err(|e| anyhow!("could not open a window: {e}"))
}
