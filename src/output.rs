//! Standard output of the commands. A reader that goes away early (`convscope list | head -3`)
//! is no error: the program stops quietly, as other Unix tools do. Rust's runtime ignores
//! SIGPIPE, so a write to the closed pipe fails with `BrokenPipe` (and `println!` would panic:
//! the crate warns on it). Commands write through `stdout()` and return that error as any
//! other; `main` asks `stdout_closed()` and ends with success, saying nothing.
//!
//! A flag rather than the error's kind: a broken pipe to the bench's Python child is a real
//! failure, and serde_json keeps the `io::Error` it wraps out of the error chain.

use std::io::{self, StdoutLock, Write};
use std::sync::atomic::{AtomicBool, Ordering};

static CLOSED: AtomicBool = AtomicBool::new(false);

/// Standard output, locked and line-buffered, noting whether its reader has gone.
pub struct Stdout(StdoutLock<'static>);

pub fn stdout() -> Stdout {
    Stdout(io::stdout().lock())
}

/// Whether a write to standard output found its reader gone.
pub fn stdout_closed() -> bool {
    CLOSED.load(Ordering::Relaxed)
}

fn noted<T>(result: io::Result<T>) -> io::Result<T> {
    if result.as_ref().is_err_and(|e| e.kind() == io::ErrorKind::BrokenPipe) {
        CLOSED.store(true, Ordering::Relaxed);
    }
    result
}

impl Write for Stdout {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        noted(self.0.write(buf))
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        noted(self.0.write_all(buf))
    }

    fn flush(&mut self) -> io::Result<()> {
        noted(self.0.flush())
    }
}
