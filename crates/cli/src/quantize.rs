//! `esp-llm quantize`: fp32 llama2.c checkpoints to llama2.c version-2 (Q8_0) files for runq.c
//! and for this engine, with a group size that is valid for every row.

use crate::files;
use crate::setup::tensor_progress;
use anyhow::{Context, Result};
use esp_llm_engine::quantize::{check_group_size, default_group_size, to_v2};
use esp_llm_engine::{Checkpoint, Config};
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// fp32 llama2.c checkpoint (v0 or v1).
    pub input: PathBuf,
    /// Output file (llama2.c version 2, int8 Q8_0).
    pub output: PathBuf,
    /// Values per scale. Default: the largest power of two <= 64 that divides every row
    /// length (dim and hidden_dim); a size that does not divide them is refused.
    #[arg(long, short = 'g')]
    pub group_size: Option<usize>,
}

/// Row lengths the int8 matmuls see: `dim` (all but w2) and `hidden_dim` (w2).
pub fn row_lengths(c: &Config) -> [(&'static str, usize); 2] {
    [("rows of length dim", c.dim), ("w2 (rows of length hidden_dim)", c.hidden_dim)]
}

pub fn main(a: Args) -> Result<()> {
    let blob = files::load(&a.input, "model")?;
    let ck = Checkpoint::parse(&blob).with_context(|| format!("{}", a.input.display()))?;
    let c = ck.config;
    let rows = row_lengths(&c);
    let group = match a.group_size {
        Some(g) => {
            check_group_size(g, &rows).context(
                "choose a group size that divides dim and hidden_dim, or leave --group-size out",
            )?;
            g
        }
        None => default_group_size(&rows.map(|r| r.1), 64),
    };
    let pb = tensor_progress(1 + 7 * c.n_layers + usize::from(!c.shared_classifier), blob.len());
    let (bytes, errors) = to_v2(&ck.weights, &c, group, &mut |name| {
        pb.set_message(name);
        pb.inc(1);
    })
    .with_context(|| format!("{}", a.input.display()))?;
    pb.finish_and_clear();
    std::fs::write(&a.output, &bytes)
        .with_context(|| format!("cannot write {}", a.output.display()))?;
    let size = bytes.len();
    outln!("wrote {} ({size} bytes): llama2.c v2 int8, group size {group}", a.output.display());
    outln!("{:<16} {:>12} {:>12}", "tensor", "max abs err", "rms err");
    for t in &errors {
        outln!("{:<16} {:>12.6} {:>12.6}", t.name, t.err.max_abs, t.err.rms());
    }
    Ok(())
}
