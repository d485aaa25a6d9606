//! `esp-llm pack`: one file to flash, holding config, tokenizer and aligned tensors with a CRC.

use crate::setup::{self, tensor_progress};
use anyhow::{Context, Result};
use esp_llm_engine::checkpoint::bundle::{self, Quant};
use esp_llm_engine::model::Matrix;
use esp_llm_engine::Checkpoint;
use std::path::PathBuf;

/// Weight storage in the bundle.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum QuantArg {
    /// 32-bit floats.
    F32,
    /// Int8 with per-group f32 scales.
    Q8,
}

#[derive(clap::Args)]
pub struct Args {
    /// Model: a file (llama2.c checkpoint v0/v1/v2-int8, or an esp-llm bundle), or a name:
    /// stories260K, stories15M, stories42M, stories110M (looked for in $ESP_LLM_MODELS, ./models,
    /// ../shared/models, then the Hugging Face cache, downloaded once). Default: stories260K.
    pub model: Option<PathBuf>,
    /// Tokenizer to include. Default: beside the model (`tok<vocab>.bin` or `tokenizer.bin`).
    #[arg(short = 'z', long)]
    pub tokenizer: Option<PathBuf>,
    /// Weight storage. Default: q8 for int8 sources, f32 otherwise.
    #[arg(long, value_enum)]
    pub quant: Option<QuantArg>,
    /// Int8 group size (values per scale), per tensor; rows are zero-padded so it need not divide
    /// them. Default: keep an int8 source's groups; 32 when quantizing from f32.
    #[arg(long, short = 'g')]
    pub group_size: Option<usize>,
    /// Output bundle.
    #[arg(short = 'o', long)]
    pub output: PathBuf,
}

/// Packs a parsed checkpoint and its tokenizer into a bundle, with a progress bar for big
/// models (`source_len`: the checkpoint's size in bytes). `pack` and `flash --model` both use it.
pub fn pack(
    ck: &Checkpoint<'_>,
    tokenizer: &[u8],
    quant: Quant,
    source_len: usize,
) -> Result<(Vec<u8>, Vec<bundle::PackedTensor>)> {
    let n = ck.weights.layers.len() * 9 + 3;
    let pb = tensor_progress(n, source_len);
    let packed = bundle::pack(ck, tokenizer, quant, &mut |name| {
        pb.set_message(name);
        pb.inc(1);
    })?;
    pb.finish_and_clear();
    Ok(packed)
}

pub fn main(a: Args) -> Result<()> {
    let loaded = setup::load(a.model.as_deref(), a.tokenizer.as_deref())?;
    let ck = Checkpoint::parse(&loaded.model)?;
    let tok_bytes = loaded.tokenizer_bytes();
    // Fail now rather than on the board if the tokenizer does not fit the model.
    esp_llm_engine::Tokenizer::from_bytes(tok_bytes, ck.config.vocab_size)
        .with_context(|| loaded.tokenizer_name())?;
    let source_int8 = matches!(ck.weights.token_embedding, Matrix::Q8(_));
    let quant = match (a.quant, source_int8) {
        (Some(QuantArg::F32), _) => Quant::F32,
        (Some(QuantArg::Q8), _) | (None, true) => Quant::Q8(a.group_size),
        (None, false) if a.group_size.is_some() => Quant::Q8(a.group_size),
        (None, false) => Quant::F32,
    };
    let (bytes, packed) = pack(&ck, tok_bytes, quant, loaded.model.len())?;
    std::fs::write(&a.output, &bytes)
        .with_context(|| format!("cannot write {}", a.output.display()))?;
    let int8: usize =
        packed.iter().filter(|p| p.entry.group > 0).map(|p| p.entry.data_len().unwrap_or(0)).sum();
    let scales: usize = packed.iter().map(|p| p.entry.scales_len().unwrap_or(0)).sum();
    outln!(
        "wrote {} ({} bytes, {}): {} tensors, int8 values {int8} bytes, scales {scales} bytes, crc32 {:#010x}",
        a.output.display(),
        bytes.len(),
        match quant {
            Quant::F32 => "f32".to_string(),
            Quant::Q8(Some(g)) => format!("int8, group size {g}"),
            Quant::Q8(None) if source_int8 => "int8, source groups kept".to_string(),
            Quant::Q8(None) => format!("int8, group size {}", bundle::DEFAULT_GROUP),
        },
        packed.len(),
        bundle::checksum(&bytes)
    );
    let mut worst: Vec<(&str, f32, f64)> = Vec::new();
    for p in packed.iter().filter(|p| p.error.count > 0) {
        let name = p.entry.kind.name();
        match worst.iter_mut().find(|w| w.0 == name) {
            Some(w) => {
                w.1 = w.1.max(p.error.max_abs);
                w.2 = w.2.max(p.error.rms());
            }
            None => worst.push((name, p.error.max_abs, p.error.rms())),
        }
    }
    if !worst.is_empty() {
        outln!("{:<16} {:>12} {:>12}", "tensor", "max abs err", "rms err");
        for (name, m, r) in worst {
            outln!("{name:<16} {m:>12.6} {r:>12.6}");
        }
    }
    Ok(())
}
