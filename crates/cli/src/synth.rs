//! `esp-llm synth`: a deterministic random-weight llama2.c v0 checkpoint of a named or given
//! shape, written to a file (the generator and its layout: [`crate::synthetic`]).

use crate::synthetic::{file_bytes, parse_shape, write_v0};
use anyhow::{bail, Context, Result};
use esp_llm_engine::Checkpoint;
use indicatif::{ProgressBar, ProgressStyle};
use std::io::{BufWriter, Write};
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// stories15M, stories42M, stories110M, stories260K, or DIMxHIDDENxLAYERSxHEADSxKVxVOCABxSEQ
    /// (e.g. 288x768x6x6x6x32000x256).
    #[arg(long)]
    pub shape: String,
    /// Random seed (the same seed and shape give the same file).
    #[arg(long, default_value_t = 1337)]
    pub seed: u64,
    /// Output file.
    #[arg(short = 'o', long)]
    pub output: PathBuf,
    /// No progress bar.
    #[arg(short = 'q', long)]
    pub quiet: bool,
}

pub fn main(a: Args) -> Result<()> {
    let c = parse_shape(&a.shape)?;
    let total = file_bytes(&c);
    let file = std::fs::File::create(&a.output)
        .with_context(|| format!("creating {}", a.output.display()))?;
    let mut w = BufWriter::with_capacity(1 << 20, file);
    let bar = if a.quiet || total < (8 << 20) {
        ProgressBar::hidden()
    } else {
        let b = ProgressBar::new(total);
        b.set_style(
            ProgressStyle::with_template("{msg} [{bar:40}] {bytes}/{total_bytes} ({eta})")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        b.set_message(format!("writing {}", a.output.display()));
        b
    };
    write_v0(&c, a.seed, &mut w, &mut |n| bar.inc(n))?;
    w.flush().with_context(|| format!("writing {}", a.output.display()))?;
    drop(w);
    bar.finish_and_clear();
    // Read it back through the engine's parser: the file must load.
    let bytes = std::fs::read(&a.output)?;
    let ck = Checkpoint::parse(&bytes).context("the written file does not parse (bug)")?;
    if ck.config != c {
        bail!("the written file's config differs from the shape (bug)");
    }
    eprintln!(
        "wrote {} ({} bytes, {} parameters, seed {})",
        a.output.display(),
        total,
        c.n_params(),
        a.seed
    );
    Ok(())
}
