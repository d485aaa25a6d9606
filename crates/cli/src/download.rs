//! `esp-llm download NAME`: a model of the catalogue (and its tokenizer) into the Hugging Face
//! cache, printing where the files are. The same path `run`, `inspect`... take when a model is
//! nowhere local.

use crate::files;
use anyhow::{bail, Result};
use esp_llm_models as catalogue;

#[derive(clap::Args)]
pub struct Args {
    /// stories260K, stories15M, stories42M or stories110M (with or without `.bin`), or a
    /// tokenizer: tok512.bin, tokenizer.bin.
    pub name: String,
}

pub fn main(a: Args) -> Result<()> {
    let files: Vec<catalogue::File> = match catalogue::model(&a.name) {
        Some(m) => vec![m.checkpoint, m.tokenizer],
        None => match catalogue::file(&a.name) {
            Some(f) => vec![f],
            None => bail!("no model called {:?}: the names are {}", a.name, catalogue::names()),
        },
    };
    for f in &files {
        let p = files::fetch(f)?;
        outln!("{}", p.display());
    }
    Ok(())
}
