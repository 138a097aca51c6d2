//! If a panic slips through anyway, write what is known to a report file and tell the user
//! where it is, instead of vanishing with a backtrace on a terminal nobody watches.

use std::io::Write;
use std::path::PathBuf;

/// Where reports go: `$XDG_STATE_HOME/convscope`, `~/.local/state/convscope`, or the temp dir.
pub fn report_dir() -> PathBuf {
    if let Some(state) = std::env::var_os("XDG_STATE_HOME") {
        return PathBuf::from(state).join("convscope");
    }
    if let Some(home) = std::env::var_os("HOME") {
        return PathBuf::from(home).join(".local/state/convscope");
    }
    std::env::temp_dir().join("convscope")
}

pub fn install_panic_hook() {
    install_panic_hook_in(report_dir());
}

/// The hook, writing its reports into `dir`.
pub fn install_panic_hook_in(dir: PathBuf) {
    std::panic::set_hook(Box::new(move |info| {
        let thread = std::thread::current().name().unwrap_or("unnamed").to_owned();
        let backtrace = std::backtrace::Backtrace::force_capture();
        let seconds =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        let report = format!(
            "convscope {} crashed in thread {thread}\n{info}\n\nargs: {:?}\n\nbacktrace:\n{backtrace}\n",
            env!("CARGO_PKG_VERSION"),
            std::env::args().collect::<Vec<_>>()
        );
        let path = dir.join(format!("crash-{seconds}-{}.txt", std::process::id()));
        let written = std::fs::create_dir_all(&dir)
            .and_then(|_| std::fs::File::create(&path))
            .and_then(|mut f| f.write_all(report.as_bytes()));
        match written {
            Ok(()) => eprintln!("convscope hit an internal error ({info}); a report is in {}", path.display()),
            Err(_) => eprintln!("convscope hit an internal error; the report could not be saved:\n{report}"),
        }
    }));
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_panic_leaves_a_report_and_says_where() {
        let dir = tempfile::tempdir().unwrap();
        super::install_panic_hook_in(dir.path().to_owned());
        let result = std::thread::Builder::new()
            .name("doomed".into())
            .spawn(|| panic!("something impossible happened"))
            .unwrap()
            .join();
        let _ = std::panic::take_hook();
        assert!(result.is_err());
        let reports: Vec<_> = std::fs::read_dir(dir.path()).unwrap().flatten().collect();
        assert_eq!(reports.len(), 1);
        let text = std::fs::read_to_string(reports[0].path()).unwrap();
        assert!(text.contains("something impossible happened") && text.contains("thread doomed"), "{text}");
    }
}
