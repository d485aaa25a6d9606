//! `esp-llm`: run llama2.c-family models on the host and prepare them for ESP32 boards.
// Every `unsafe` block says why it is sound, and so does every `unsafe fn` (`# Safety`), private
// ones too (clippy.toml: `check-private-items`), as in the engine.
#![deny(clippy::undocumented_unsafe_blocks, clippy::missing_safety_doc)]

/// `println!` that returns write errors (a closed pipe) instead of panicking.
macro_rules! outln {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout(), $($t)*)?
    }};
}

mod bench;
mod board_chat;
mod boards;
mod device;
mod download;
mod eval;
mod files;
mod flashing;
mod inspect;
mod layout;
mod monitor;
mod pack;
mod packing;
mod plan;
mod port;
mod preview;
mod quantize;
mod repl_client;
mod run;
mod setup;
mod synth;
mod synthetic;
mod tokenize;
mod units;

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
    /// Download a model by name (stories260K/15M/42M/110M) and its tokenizer from the Hugging Face hub.
    Download(download::Args),
    /// Show the token ids a text encodes to (BOS first).
    Tokenize(tokenize::Args),
    /// Show a model's config, format, parameter count and memory needs.
    Inspect(inspect::Args),
    /// Quantize an fp32 checkpoint to llama2.c's int8 version-2 format (for runq.c and us).
    Quantize(quantize::Args),
    /// Pack a model and its tokenizer into one aligned, checksummed file for a board.
    Pack(pack::Args),
    /// The table of models against boards: bundle sizes, flash layout, plan estimate per chip.
    Boards(boards::Args),
    /// Plan a model's memory on a chip: SRAM, PSRAM or flash, context cap, speed estimate.
    Plan(plan::Args),
    /// Talk to a board's REPL: interactive, or --prompt TEXT [--json] for scripts.
    Chat(board_chat::Args),
    /// Write firmware and a model to a board over serial (espflash), verifying the model.
    Flash(flashing::FlashArgs),
    /// One merged flash image (bootloader, partition table, app, model) for emulators or other tools.
    Image(flashing::ImageArgs),
    /// The board on the serial port: chip, revision, flash size, PSRAM, MAC (espflash's library).
    BoardInfo(device::InfoArgs),
    /// Raw serial view of a board (or tcp://HOST:PORT of an emulator).
    Monitor(monitor::Args),
    /// Compare a quantized model with its fp32 original (top-1 and greedy agreement).
    Eval(eval::Args),
    /// Write a deterministic random-weight llama2.c v0 model of a given shape (for benchmarks).
    Synth(synth::Args),
    /// Measure prompt-processing and generation speed (tok/s, median of several runs).
    Bench(bench::Args),
    /// Render what a board's screen shows for a prompt and settings, into a PNG.
    Preview(preview::Args),
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(a) => run::main(a),
        Command::Download(a) => download::main(a),
        Command::Tokenize(a) => tokenize::main(a),
        Command::Inspect(a) => inspect::main(a),
        Command::Quantize(a) => quantize::main(a),
        Command::Eval(a) => eval::main(a),
        Command::Pack(a) => pack::main(a),
        Command::Plan(a) => plan::main(a),
        Command::Boards(a) => boards::main(a),
        Command::Chat(a) => board_chat::main(a),
        Command::Monitor(a) => monitor::main(a),
        Command::BoardInfo(a) => device::board_info(a),
        Command::Flash(a) => flashing::flash(a),
        Command::Image(a) => flashing::image(a),
        Command::Synth(a) => synth::main(a),
        Command::Bench(a) => bench::main(a),
        Command::Preview(a) => preview::main(a),
    };
    if let Err(e) = result {
        // A reader that went away (`| head`) is not an error worth a message.
        let broken_pipe = e.chain().any(|c| {
            c.downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
        });
        if broken_pipe {
            std::process::exit(0);
        }
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
