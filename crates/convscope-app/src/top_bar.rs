//! The top bar: opening images, the device, which panels show, the theme, what the worker is
//! doing, and the message and notice banners under it.

use std::path::PathBuf;

use convscope_core::paths;
use convscope_core::session::{ImageInput, RequestKind, WorkerHandle};

use crate::app::Message;
use crate::command::Command;
use crate::prediction;
use crate::settings::{CentralView, Settings, ThemeChoice};

/// What the top bar reports besides the settings it shows and changes.
pub(crate) struct Status<'a> {
    pub cuda_available: bool,
    /// What the worker is doing while it owes an answer (`status_text`).
    pub working: Option<&'static str>,
    /// A measurement of this machine under way: timed, to time.
    pub measuring: Option<(usize, usize)>,
    pub worker_stopped: bool,
    pub message: Option<&'a Message>,
    pub notice: Option<&'a str>,
    /// The selected network reads digits: the drawing pad is offered.
    pub digits: bool,
}

/// Changes the panels shown, the central view and the theme in `settings` at once (as
/// toggles do); everything else is asked for through `commands`.
pub(crate) fn top_bar_ui(ui: &mut egui::Ui, settings: &mut Settings, status: &Status<'_>, commands: &mut Vec<Command>) {
    let Status { cuda_available, working, measuring, worker_stopped, message, notice, digits } = *status;
    ui.horizontal_wrapped(|ui| {
        ui.strong("convscope");
        ui.separator();
        if ui.button("Open…").on_hover_text("Open an image file (Ctrl+O); or drop one on the window").clicked() {
            commands.push(Command::OpenDialog);
        }
        let paste = ui
            .button("Paste")
            .on_hover_text("Classify the image on the clipboard, or open the image file whose path is copied (Ctrl+V)");
        if paste.clicked() {
            commands.push(Command::PasteClipboard);
        }
        ui.menu_button("Samples", |ui| {
            for (label, path) in sample_images() {
                if ui.button(label).clicked() {
                    commands.push(Command::OpenImage(ImageInput::Path(path)));
                    ui.close();
                }
            }
        });
        ui.separator();
        prediction::device_ui(ui, settings.device, cuda_available, commands);
        ui.separator();
        ui.toggle_value(&mut settings.show_picker, "Architectures").on_hover_text("Show the picker and card");
        ui.toggle_value(&mut settings.show_prediction, "Prediction").on_hover_text("Show the input and top-5");
        ui.toggle_value(&mut settings.show_gradients, "Gradients").on_hover_text("Show the gradient flow");
        ui.selectable_value(&mut settings.central, CentralView::FeatureMaps, "Feature maps");
        ui.selectable_value(&mut settings.central, CentralView::Diagram, "Diagram");
        ui.selectable_value(&mut settings.central, CentralView::History, "History")
            .on_hover_text("Accuracy against cost for every network, the seed's calculations, two networks compared");
        ui.selectable_value(&mut settings.central, CentralView::Lab, "Lab")
            .on_hover_text("Train plain and residual networks side by side");
        ui.selectable_value(&mut settings.central, CentralView::Attribution, "Attribution");
        if digits || settings.central == CentralView::Draw {
            ui.selectable_value(&mut settings.central, CentralView::Draw, "Draw")
                .on_hover_text("Draw a digit and watch LeNet-5's layers answer as you draw");
        }
        ui.separator();
        let (label, next) = match settings.theme {
            ThemeChoice::System => ("Theme: system", ThemeChoice::Dark),
            ThemeChoice::Dark => ("Theme: dark", ThemeChoice::Light),
            ThemeChoice::Light => ("Theme: light", ThemeChoice::System),
        };
        if ui.button(label).on_hover_text("Theme: system, dark or light").clicked() {
            commands.push(Command::SetTheme(next));
        }
        if let Some(working) = working {
            crate::theme::spinner(ui);
            ui.weak(working);
        } else if let Some((done, total)) = measuring {
            crate::theme::spinner(ui);
            ui.weak(format!("measuring this machine: {done}/{total}")).on_hover_text("History shows the progress");
        }
        if worker_stopped {
            ui.colored_label(ui.visuals().error_fg_color, "the model worker stopped; restart convscope");
        }
    });
    if let Some(message) = message {
        ui.horizontal(|ui| {
            let color = if message.is_error { ui.visuals().error_fg_color } else { ui.visuals().warn_fg_color };
            ui.colored_label(color, &message.text);
            if dismiss_button_ui(ui, "Dismiss this message").clicked() {
                commands.push(Command::DismissMessage);
            }
        });
    }
    if let Some(notice) = notice {
        ui.horizontal(|ui| {
            ui.colored_label(ui.visuals().warn_fg_color, notice);
            if dismiss_button_ui(ui, "Dismiss this notice").clicked() {
                commands.push(Command::DismissNotice);
            }
        });
    }
}

/// A small "×", named for screen readers and tests by what it dismisses.
fn dismiss_button_ui(ui: &mut egui::Ui, what: &str) -> egui::Response {
    let response = ui.small_button("×");
    response.widget_info(|| egui::WidgetInfo::labeled(egui::Role::Button, true, what));
    response.on_hover_text(what)
}

pub(crate) fn status_text(worker: &WorkerHandle) -> &'static str {
    if worker.is_pending(RequestKind::Load) {
        "loading the model…"
    } else if worker.is_pending(RequestKind::Device) {
        "moving the model…"
    } else if worker.is_pending(RequestKind::Classify) {
        "classifying…"
    } else if worker.is_pending(RequestKind::Gradients) {
        "computing gradients…"
    } else if worker.is_pending(RequestKind::Attribution) {
        "computing the attribution map…"
    } else if worker.is_pending(RequestKind::Activation) {
        "reading the layer…"
    } else if worker.is_pending(RequestKind::Compare) {
        "comparing two networks…"
    } else if worker.is_pending(RequestKind::Measure) {
        "measuring this machine…"
    } else {
        "waiting for the model…"
    }
}

/// The bundled images, one click away.
fn sample_images() -> Vec<(String, PathBuf)> {
    let assets = paths::assets();
    let mut samples = vec![
        ("cat (chelsea.png)".to_owned(), assets.join("chelsea.png")),
        ("coffee (coffee.png)".to_owned(), assets.join("coffee.png")),
    ];
    samples.extend((0..10).map(|d| (format!("digit {d}"), assets.join("digits").join(format!("digit_{d}.png")))));
    samples.retain(|(_, path)| path.is_file());
    samples
}
