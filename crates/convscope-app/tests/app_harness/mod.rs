//! Driving the real app in an egui_kittest harness, shared by the GUI tests, the screenshots,
//! the stress tests and the frame benchmark (which includes this file by path).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use convscope_app::App;
use egui_kittest::Harness;

/// A file dropped on the window, as egui 0.37's integrations hand it over.
#[derive(Debug)]
pub struct TestFile {
    pub path: PathBuf,
    /// Contents for a drop without a readable path; `None` reads `path`.
    pub bytes: Option<Vec<u8>>,
}

impl egui::DroppedFile for TestFile {
    fn path(&self) -> &Path {
        &self.path
    }

    fn bytes(&self) -> Result<Vec<u8>, String> {
        match &self.bytes {
            Some(bytes) => Ok(bytes.clone()),
            None => std::fs::read(&self.path).map_err(|e| e.to_string()),
        }
    }
}

/// eframe's storage as a file holding `text`.
pub struct SavedSettings(pub String);

impl eframe::Storage for SavedSettings {
    fn get_string(&self, key: &str) -> Option<String> {
        (key == eframe::APP_KEY).then(|| self.0.clone())
    }

    fn set_string(&mut self, _key: &str, _value: String) {}

    fn remove_string(&mut self, _key: &str) {}

    fn flush(&mut self) {}
}

/// Steps the app until `done` holds, then once more so the UI shows what just landed; fails
/// after `timeout` with what it waited for and the app's message.
#[track_caller]
pub fn step_until(harness: &mut Harness<'static, App>, timeout: Duration, what: &str, done: impl Fn(&App) -> bool) {
    let deadline = Instant::now() + timeout;
    while !done(harness.state()) {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}; the app says: {:?}",
            harness.state().message()
        );
        harness.step();
        std::thread::sleep(Duration::from_millis(10));
    }
    harness.step();
}
