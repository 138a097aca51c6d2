//! `bench/reference.py`, the PyTorch side: a child process speaking line-delimited JSON.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use anyhow::{Context, Result, anyhow, bail};
use serde_json::{Value, json};

use super::Mode;

/// `bench/reference.py`, running.
pub(super) struct Reference {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Reference {
    pub(super) fn start(python: &Path, script: &Path) -> Result<Self> {
        let mut child = Command::new(python)
            .arg(script)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("starting {} {}", python.display(), script.display()))?;
        let stdin = child.stdin.take().ok_or_else(|| anyhow!("no stdin to the reference"))?;
        let stdout = BufReader::new(child.stdout.take().ok_or_else(|| anyhow!("no stdout from the reference"))?);
        Ok(Self { child, stdin, stdout })
    }

    pub(super) fn ask(&mut self, request: Value) -> Result<Value> {
        writeln!(self.stdin, "{request}").and_then(|()| self.stdin.flush()).context("writing to the reference")?;
        let mut line = String::new();
        if self.stdout.read_line(&mut line).context("reading the reference")? == 0 {
            bail!("the reference script exited (its error is above)");
        }
        let answer: Value = serde_json::from_str(&line).with_context(|| format!("the reference said {line:?}"))?;
        if answer["ok"] != Value::Bool(true) {
            bail!("the reference failed on {}: {}", request["cmd"], answer["error"]);
        }
        Ok(answer)
    }

    /// Seconds and minor page faults of one run.
    pub(super) fn time(&mut self, mode: Mode) -> Result<(f64, f64)> {
        let answer = self.ask(json!({"cmd": "run", "mode": mode.name()}))?;
        let seconds = answer["seconds"].as_f64().ok_or_else(|| anyhow!("no time in {answer}"))?;
        Ok((seconds, answer["minor_faults"].as_f64().unwrap_or(0.0)))
    }
}

impl Drop for Reference {
    fn drop(&mut self) {
        let _ = writeln!(self.stdin, "{}", json!({"cmd": "quit"}));
        let _ = self.stdin.flush();
        let _ = self.child.wait();
    }
}
