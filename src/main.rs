use clap::Parser;

use convscope::cli::{Cli, Command, run};

fn main() -> std::process::ExitCode {
    convscope::crash::install_panic_hook();
    convscope::memory::keep_freed_memory();
    let cli = Cli::parse();
    let command = cli.command.unwrap_or(Command::Gui { arch: None, image: None });
    match run(command) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // One line: the chain of causes joined, no backtrace.
            let message: Vec<String> = e.chain().map(ToString::to_string).collect();
            eprintln!("error: {}", message.join(": "));
            std::process::ExitCode::FAILURE
        }
    }
}
