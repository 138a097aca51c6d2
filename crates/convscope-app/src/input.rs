//! What the frame's input asks for besides widgets: the keys, files dropped on the window and
//! the play button's timer.

use std::sync::Arc;
use std::time::Duration;

use convscope_core::session::{ImageInput, RequestKind};

use crate::app::App;
use crate::command::Command;

/// How long the play button shows each node.
const PLAY_STEP: Duration = Duration::from_millis(600);

impl App {
    pub(crate) fn keyboard(&mut self, ctx: &egui::Context) -> Vec<Command> {
        let mut commands = Vec::new();
        if ctx.text_edit_focused() {
            return commands;
        }
        ctx.input_mut(|i| {
            if i.consume_key(egui::Modifiers::NONE, egui::Key::ArrowRight) {
                commands.push(Command::StepNode(1));
            }
            if i.consume_key(egui::Modifiers::NONE, egui::Key::ArrowLeft) {
                commands.push(Command::StepNode(-1));
            }
            if i.consume_key(egui::Modifiers::NONE, egui::Key::Space) {
                commands.push(Command::TogglePlay);
            }
            if i.consume_key(egui::Modifiers::COMMAND, egui::Key::O) {
                commands.push(Command::OpenDialog);
            }
            if i.consume_key(egui::Modifiers::NONE, egui::Key::F) {
                self.runtime.diagram.request_fit();
            }
        });
        commands
    }

    pub(crate) fn dropped_files(ctx: &egui::Context) -> Vec<Command> {
        let dropped = ctx.input(|i| i.raw.dropped_files.clone());
        // One image at a time: the last file dropped wins.
        let Some(file) = dropped.last() else { return Vec::new() };
        let path = file.path();
        let image = if path.is_file() {
            ImageInput::Path(path.to_owned())
        } else {
            let name = path.file_name().map_or_else(|| "dropped file".to_owned(), |n| n.to_string_lossy().into_owned());
            match file.bytes() {
                Ok(bytes) => ImageInput::Bytes { name, bytes: bytes.into() },
                Err(e) => {
                    return vec![Command::OpenImage(ImageInput::Bytes {
                        name: format!("{name} ({e})"),
                        bytes: Arc::from([]),
                    })];
                }
            }
        };
        vec![Command::OpenImage(image)]
    }

    pub(crate) fn play(&mut self, ctx: &egui::Context) -> Vec<Command> {
        if !self.runtime.layers.playing {
            return Vec::new();
        }
        let now = ctx.input(|i| i.time);
        ctx.request_repaint_after(PLAY_STEP);
        let waiting = self.runtime.worker.is_pending(RequestKind::Activation);
        if waiting || now - self.runtime.layers.last_play_step < PLAY_STEP.as_secs_f64() {
            return Vec::new();
        }
        self.runtime.layers.last_play_step = now;
        vec![Command::StepNode(1)]
    }
}
