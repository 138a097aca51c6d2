//! The engine's one error type. Every libtorch failure is turned into one of these with
//! a sentence a user can act on; nothing in the engine panics on bad input.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("unknown architecture {name:?}{hint}")]
    UnknownArch { name: String, hint: String },

    #[error("{node}: {reason}")]
    Shape { node: String, reason: String },

    #[error("bad input: {0}")]
    Input(String),

    #[error("{path}: {reason}")]
    File { path: PathBuf, reason: String },

    #[error("weights {path} do not fit {arch}: {details}")]
    WeightsMismatch { path: PathBuf, arch: String, details: String },

    #[error("image {path}: {reason}")]
    Image { path: PathBuf, reason: String },

    #[error("{context}: {message}")]
    Torch { context: String, message: String },

    #[error("{0}")]
    Device(String),
}

impl Error {
    /// Wraps a libtorch error, keeping only its first meaningful line: the C++ backtrace
    /// that follows helps nobody reading a message in the app.
    pub fn torch(context: impl Into<String>, err: tch::TchError) -> Self {
        let full = err.to_string();
        let message = full
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty() && !l.starts_with("Exception raised from"))
            .unwrap_or("libtorch failed")
            .trim_start_matches("Torch(\"")
            .to_owned();
        Error::Torch { context: context.into(), message }
    }

    pub fn file(path: impl Into<PathBuf>, reason: impl std::fmt::Display) -> Self {
        Error::File { path: path.into(), reason: reason.to_string() }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Adds context to a libtorch result.
pub trait TorchContext<T> {
    fn context(self, context: impl FnOnce() -> String) -> Result<T>;
}

impl<T> TorchContext<T> for std::result::Result<T, tch::TchError> {
    fn context(self, context: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| Error::torch(context(), e))
    }
}
