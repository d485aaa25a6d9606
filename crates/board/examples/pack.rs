//! Packs a llama2.c checkpoint and its tokenizer into the container that the firmware reads
//! from its `model` flash partition (format: `esp_llm_board::container`).
//!
//! ```sh
//! cargo run -p esp-llm-board --example pack -- stories260K.bin tok512.bin model.ellm
//! espflash write-bin 0x100000 model.ellm    # 4 MB layout; 0x400000 for the 16 MB layout
//! ```
//! Both inputs are parsed with the engine first, so a file the firmware would reject is
//! rejected here.

use esp_llm_board::container;
use esp_llm_engine::{Checkpoint, Tokenizer};
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [ckpt_path, tok_path, out_path] = args.as_slice() else {
        eprintln!("usage: pack CHECKPOINT.bin TOKENIZER.bin OUT.ellm");
        return ExitCode::from(2);
    };
    let read = |p: &str| std::fs::read(p).map_err(|e| format!("{p}: {e}"));
    let run = || -> Result<(), String> {
        let ckpt = read(ckpt_path)?;
        let tok = read(tok_path)?;
        let parsed = Checkpoint::parse(&ckpt).map_err(|e| format!("{ckpt_path}: {e}"))?;
        Tokenizer::from_bytes(&tok, parsed.config.vocab_size)
            .map_err(|e| format!("{tok_path}: {e}"))?;
        let blob = container::pack(&ckpt, &tok).map_err(|e| e.to_string())?;
        std::fs::write(out_path, &blob).map_err(|e| format!("{out_path}: {e}"))?;
        println!(
            "{out_path}: {} bytes ({}, vocab {}, context {})",
            blob.len(),
            parsed.format,
            parsed.config.vocab_size,
            parsed.config.seq_len
        );
        Ok(())
    };
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
