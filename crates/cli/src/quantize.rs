//! `esp-llm quantize`: fp32 llama2.c checkpoints to llama2.c version-2 (Q8_0) files for runq.c
//! and for this engine, with a group size that is valid for every row.

use crate::files;
use anyhow::{bail, Context, Result};
use esp_llm_engine::checkpoint::{LLAMA2C_MAGIC, VERSIONED_HEADER};
use esp_llm_engine::model::{Matrix, Weights};
use esp_llm_engine::quantize::{check_group_size, default_group_size, quantize_rows, QuantError};
use esp_llm_engine::{Checkpoint, Config};
use indicatif::{ProgressBar, ProgressStyle};
use std::io::Write;
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

/// Per-tensor error, summed over layers.
pub struct TensorError {
    pub name: &'static str,
    pub err: QuantError,
}

/// The f32 values of a matrix, or an error if it is already quantized.
pub fn f32_values<'m>(m: &'m Matrix<'_>, name: &str) -> Result<&'m [f32]> {
    match m {
        Matrix::F32 { w, .. } => Ok(w),
        Matrix::Q8(_) => {
            bail!("{name} is already int8; quantize reads fp32 checkpoints (v0 or v1)")
        }
    }
}

/// Row lengths the int8 matmuls see: `dim` (all but w2) and `hidden_dim` (w2).
pub fn row_lengths(c: &Config) -> [(&'static str, usize); 2] {
    [("rows of length dim", c.dim), ("w2 (rows of length hidden_dim)", c.hidden_dim)]
}

/// A progress bar over `n` tensors, shown only for models big enough to wait for.
pub fn tensor_progress(n: usize, total_bytes: usize) -> ProgressBar {
    if total_bytes < 32 << 20 {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::new(n as u64);
    pb.set_style(
        ProgressStyle::with_template("{spinner} {msg:<16} [{bar:40}] {pos}/{len} tensors ({eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    pb
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
    let mut out = std::io::BufWriter::new(
        std::fs::File::create(&a.output)
            .with_context(|| format!("cannot create {}", a.output.display()))?,
    );
    let errors = write_v2(&ck.weights, &c, group, &mut out)?;
    out.flush().with_context(|| format!("writing {}", a.output.display()))?;
    let size = std::fs::metadata(&a.output)?.len();
    outln!("wrote {} ({size} bytes): llama2.c v2 int8, group size {group}", a.output.display());
    outln!("{:<16} {:>12} {:>12}", "tensor", "max abs err", "rms err");
    for t in &errors {
        outln!("{:<16} {:>12.6} {:>12.6}", t.name, t.err.max_abs, t.err.rms());
    }
    Ok(())
}

/// Writes a version-2 file: header, f32 norms, then int8 values and scales per tensor.
pub fn write_v2(
    w: &Weights<'_>,
    c: &Config,
    group: usize,
    out: &mut dyn Write,
) -> Result<Vec<TensorError>> {
    let mut header = Vec::with_capacity(VERSIONED_HEADER);
    header.extend_from_slice(&LLAMA2C_MAGIC.to_le_bytes());
    header.extend_from_slice(&2i32.to_le_bytes());
    for v in [c.dim, c.hidden_dim, c.n_layers, c.n_heads, c.n_kv_heads, c.vocab_size, c.seq_len] {
        header.extend_from_slice(&(v as i32).to_le_bytes());
    }
    header.push(u8::from(c.shared_classifier));
    header.extend_from_slice(&(group as i32).to_le_bytes());
    header.resize(VERSIONED_HEADER, 0);
    out.write_all(&header)?;
    let floats = |out: &mut dyn Write, v: &[f32]| -> std::io::Result<()> {
        let bytes: Vec<u8> = v.iter().flat_map(|f| f.to_le_bytes()).collect();
        out.write_all(&bytes)
    };
    for l in &w.layers {
        floats(out, &l.rms_att_weight)?;
    }
    for l in &w.layers {
        floats(out, &l.rms_ffn_weight)?;
    }
    floats(out, &w.rms_final_weight)?;
    // v2 order: embedding, then each tensor kind over all layers, then wcls.
    let mut order: Vec<(&'static str, &Matrix<'_>)> = vec![("token_embedding", &w.token_embedding)];
    for kind in 0..7 {
        for l in &w.layers {
            let m = [&l.wq, &l.wk, &l.wv, &l.wo, &l.w1, &l.w2, &l.w3][kind];
            order.push((["wq", "wk", "wv", "wo", "w1", "w2", "w3"][kind], m));
        }
    }
    if let Some(cls) = &w.wcls {
        order.push(("wcls", cls));
    }
    let total: usize = order.iter().map(|(_, m)| m.bytes()).sum();
    let pb = tensor_progress(order.len(), total);
    let mut errors: Vec<TensorError> = Vec::new();
    for (name, m) in order {
        pb.set_message(name);
        let vals = f32_values(m, name)?;
        let (rows, cols) = (m.rows(), m.cols());
        let mut q = vec![0i8; rows * cols];
        let mut s = vec![0f32; rows * cols / group];
        let err = quantize_rows(vals, cols, cols, group, &mut q, &mut s);
        out.write_all(bytemuck::cast_slice(&q))?;
        floats(out, &s)?;
        match errors.iter_mut().find(|t| t.name == name) {
            Some(t) => t.err.merge(&err),
            None => errors.push(TensorError { name, err }),
        }
        pb.inc(1);
    }
    pb.finish_and_clear();
    Ok(errors)
}
