//! `esp-llm`: run llama2.c-family models on the host and prepare them for ESP32 boards.

mod bench;
mod files;
mod inspect;
mod run;
mod synth;
mod tokenize;

use clap::{Parser, Subcommand};

/// Tiny llama2.c language models on ESP32 microcontrollers and on your PC.
#[derive(Parser)]
#[command(name = "esp-llm", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Generate a story (or chat) with a model, like llama2.c's `run`.
    Run(run::Args),
    /// Show the token ids a text encodes to (BOS first).
    Tokenize(tokenize::Args),
    /// Show a model's config, format, parameter count and memory needs.
    Inspect(inspect::Args),
    /// Write a deterministic random-weight llama2.c v0 model of a given shape (for benchmarks).
    Synth(synth::Args),
    /// Measure prompt-processing and generation speed (tok/s, median of several runs).
    Bench(bench::Args),
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(a) => run::main(a),
        Command::Tokenize(a) => tokenize::main(a),
        Command::Inspect(a) => inspect::main(a),
        Command::Synth(a) => synth::main(a),
        Command::Bench(a) => bench::main(a),
    };
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
