//! `convscope`: the command line over the engine (`convscope-core`), the benchmark against
//! PyTorch, and `gui`, which opens the explorer (`convscope-app`). With no command it opens
//! the explorer.

// `println!` panics when stdout's reader has gone; commands write through `output::stdout()`.
#![warn(clippy::print_stdout)]

mod bench;
mod cli;
mod crash;
mod explain;
mod gui;
mod lab;
mod output;
mod top_examples;
mod visualize;

use clap::Parser;

use cli::{Cli, Command, run};

fn main() -> std::process::ExitCode {
    crash::install_panic_hook();
    convscope_core::memory::keep_freed_memory();
    let cli = Cli::parse();
    let command = cli.command.unwrap_or(Command::Gui {
        arch: None,
        image: None,
        renderer: None,
        latency_run: None,
        latency_rounds: 10,
    });
    match run(command) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        // The reader of stdout has gone (`convscope list | head`): nothing more to say, as `ls | head`.
        Err(_) if output::stdout_closed() => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // One line: the chain of causes joined, no backtrace.
            let message: Vec<String> = e.chain().map(ToString::to_string).collect();
            eprintln!("error: {}", message.join(": "));
            std::process::ExitCode::FAILURE
        }
    }
}
