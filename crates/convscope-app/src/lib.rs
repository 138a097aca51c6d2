//! The desktop explorer: pick a network, drop an image, step through its layers, switch
//! its residual connections off and watch the gradients.
//!
//! - `app`: the `App`, what it holds, and its frame.
//! - `settings`: what is saved between runs, and reading it back.
//! - `command`: what UI code asks for, and `App::apply`, the one place it is carried out.
//! - `replies`: the model worker's replies and the helper threads' outcomes, received.
//! - `input`: keys, dropped files, the play timer.
//! - `clipboard`: Ctrl+V, the Paste button, and the image a paste names.
//! - `export`: the feature-map grid and the diagram saved as PNGs.
//! - `top_bar`: opening images, device, panels, theme, status, banners.
//! - `picker`: the timeline of architectures and the selected one's card.
//! - `prediction`: the input as the network sees it, top-5, timings, device.
//! - `layers`: stepping through nodes; feature maps as heatmaps or bars.
//! - `gradients`: gradient norms along depth, residual switches, ghost of the last curve.
//! - `diagram`: the architecture graph inside a pan/zoom scene.
//! - `history`: accuracy against cost, the seed's calculations, two networks side by side.
//! - `lab`: plain and residual networks trained side by side on their own thread, live.
//! - `attribution`: where the network looks: attribution maps over the image.
//! - `latency_run`: the window opening images by itself, for the latency benchmark.
//! - `stopwatch`: from an image asked for to everything on screen, per stage.
//! - `draw`: LeNet live: a digit drawn, moved and read by every layer as it is drawn.
//! - `featvis`: what a channel looks for: beside an enlarged feature map, the image that
//!   maximises it, optimised on the worker with a live preview.
//! - `theme`: every colour.
//!
//! The model itself runs on the worker thread of `convscope_core::session`; libtorch never
//! runs on the UI thread.
//!
//! State is split as in egui's demo app: `Settings` is saved with eframe's storage, `Runtime`
//! is not. Each view is a struct holding its own state, whose `ui` method borrows only what it
//! shows (the loaded model, whether the worker owes it an answer, the settings it changes)
//! and pushes `Command`s; `App::apply` changes the world, once, at the end of the frame.

mod app;
mod attribution;
mod clipboard;
mod command;
mod diagram;
mod draw;
mod export;
mod featvis;
mod gradients;
mod history;
mod input;
mod lab;
mod latency_run;
mod layers;
mod picker;
mod prediction;
mod replies;
mod settings;
pub mod stopwatch;
pub mod theme;
mod top_bar;

pub use app::{App, DEFAULT_ARCH, FALLBACK_ARCH, LoadedModel, Message, Start};
pub use attribution::{AttributionCommand, AttributionView, LayerChoice};
pub use clipboard::{PASTED_IMAGE, path_from_pasted_text};
pub use command::{Command, Pasted};
pub use draw::{DrawView, Training as DrawTraining};
pub use featvis::{FeatvisCommand, FeatvisView};
pub use history::Drawn as HistoryBubble;
pub use latency_run::{LatencyReport, LatencyRun};
pub use settings::{CentralView, DeviceChoice, HistorySettings, HistoryTab, Settings, ThemeChoice, XAxis};

/// What draws the window: `glow` (OpenGL, the default) or `wgpu`.
pub use eframe::Renderer;

/// The window's renderer unless one is named. Both draw the same picture (screenshots of the
/// two under Xvfb differ by at most 8 levels outside the timings' figures), but without a GPU,
/// where Mesa rasterises on the CPU, egui's shader costs less through OpenGL: a frame of the
/// explorer at 1400×900 took 10–11 ms against 34–38 ms through Vulkan (lavapipe) on this
/// project's 2-core machine, and each frame drawn while the model works takes that from it.
pub const DEFAULT_RENDERER: Renderer = Renderer::Glow;

/// Why the window did not open or ended in error.
#[derive(Debug)]
pub struct WindowError {
    pub message: String,
    /// Whether the app had started (its window drawn) before the error: if not, the renderer
    /// could not be set up, and the other one may still work.
    pub app_started: bool,
}

impl std::fmt::Display for WindowError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// Opens the explorer in a native window and runs it until the window closes.
pub fn run_window(start: Start, renderer: Renderer) -> Result<(), WindowError> {
    let app_started = std::rc::Rc::new(std::cell::Cell::new(false));
    let started = std::rc::Rc::clone(&app_started);
    let options = eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default()
            .with_inner_size([1400.0, 900.0])
            .with_min_inner_size([800.0, 500.0])
            .with_title("convscope")
            .with_app_id("convscope")
            .with_drag_and_drop(true),
        renderer,
        ..Default::default()
    };
    eframe::run_native(
        "convscope",
        options,
        Box::new(move |cc| {
            started.set(true);
            let mut app = App::new(cc, start)?;
            app.clear_panels(&cc.egui_ctx);
            Ok(Box::new(app))
        }),
    )
    .map_err(|e| WindowError { message: e.to_string(), app_started: app_started.get() })
}
