//! `esp-llm tokenize`: the ids a prompt encodes to, for debugging prompts.

use crate::files;
use anyhow::{Context, Result};
use esp_llm_engine::Tokenizer;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// The text to encode.
    pub text: String,
    /// Tokenizer file. Default: tok512.bin (the default model's) from the model directories.
    #[arg(short = 'z', long)]
    pub tokenizer: Option<PathBuf>,
    /// Print JSON: {"tokenizer", "prompt", "tokens", "prompt_tokens", "pieces"}.
    #[arg(long)]
    pub json: bool,
}

pub fn main(a: Args) -> Result<()> {
    let path = match a.tokenizer {
        Some(p) => p,
        None => {
            let model = files::resolve_model(None)?;
            files::default_tokenizer(&model, 512)?
        }
    };
    let bytes = files::load(&path, "tokenizer")?;
    let vocab = Tokenizer::count_pieces(&bytes).with_context(|| format!("{}", path.display()))?;
    let tok =
        Tokenizer::from_bytes(&bytes, vocab).with_context(|| format!("{}", path.display()))?;
    let ids = tok.try_encode(a.text.as_bytes()).with_context(|| format!("{}", path.display()))?;
    let pieces: Vec<String> = ids
        .iter()
        .map(|&i| String::from_utf8_lossy(tok.piece(i).unwrap_or(&[])).into_owned())
        .collect();
    if a.json {
        let out = serde_json::json!({
            "tokenizer": path.display().to_string(),
            "vocab_size": vocab,
            "prompt": a.text,
            "prompt_tokens": ids,
            "tokens": ids,
            "pieces": pieces,
        });
        outln!("{out}");
    } else {
        let line: Vec<String> = ids.iter().map(|i| i.to_string()).collect();
        outln!("{}", line.join(" "));
        for (id, p) in ids.iter().zip(&pieces) {
            outln!("{id:>6}  {p:?}");
        }
    }
    Ok(())
}
