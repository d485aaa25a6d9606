//! `esp-llm pack`: one file to flash, holding config, tokenizer and aligned tensors with a CRC.

use crate::packing::{self, describe, Candidate, QuantArg, Target};
use crate::setup;
use crate::units::human;
use anyhow::{bail, Context, Result};
use esp_llm_engine::checkpoint::bundle::{self, PackedTensor, Precision, Quant};
use esp_llm_engine::model::Matrix;
use esp_llm_engine::Checkpoint;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// Model: a file (llama2.c checkpoint v0/v1/v2-int8, or an esp-llm bundle), or a name:
    /// stories260K, stories15M, stories42M, stories110M (looked for in $ESP_LLM_MODELS, ./models,
    /// ../shared/models, then the Hugging Face cache, downloaded once). Default: stories260K.
    pub model: Option<PathBuf>,
    /// Tokenizer to include. Default: beside the model (`tok<vocab>.bin` or `tokenizer.bin`).
    #[arg(short = 'z', long)]
    pub tokenizer: Option<PathBuf>,
    /// Weight storage: f32, q8 (int8), q4 (int4) or mixed (int4 token embedding and classifier,
    /// int8 layer matrices). Norms are always f32. Default: as the source (int8 and int4
    /// tensors keep their groups), f32 for f32 sources.
    #[arg(long, value_enum, conflicts_with = "fit")]
    pub quant: Option<QuantArg>,
    /// Int8 group size (values per scale), per tensor; rows are zero-padded so it need not divide
    /// them. Default: keep an int8 source's groups; 32 when quantizing from f32.
    #[arg(long, short = 'g')]
    pub group_size: Option<usize>,
    /// Int4 group size (a multiple of 16) for q4 and for mixed's tables. Default: 32.
    #[arg(long)]
    pub q4_group: Option<usize>,
    /// Choose the best-quality layout that fits this chip (esp32s3, esp32p4, esp32c6, esp32c3)
    /// and whose plan runs: f32, then q8, then mixed, then q4 with growing groups (the order of
    /// the measured quality, docs/bundle.md). Uses --flash/--psram or the reference board's.
    #[arg(long)]
    pub fit: Option<String>,
    /// Flash size for --fit (16MB, 4MB; a bare number is MB). Default: the chip's board.
    #[arg(long, value_parser = crate::units::mb_arg, requires = "fit")]
    pub flash: Option<usize>,
    /// PSRAM size for --fit. Default: the chip's board.
    #[arg(long, value_parser = crate::units::mb_arg, requires = "fit")]
    pub psram: Option<usize>,
    /// Output bundle.
    #[arg(short = 'o', long)]
    pub output: PathBuf,
}

pub fn main(a: Args) -> Result<()> {
    let model = setup::open(a.model.as_deref())?;
    let ck = model.parse()?;
    let tok_file = model.tokenizer(&ck, a.tokenizer.as_deref())?;
    let tok_bytes = tok_file.bytes();
    // Fail now rather than on the board if the tokenizer does not fit the model.
    esp_llm_engine::Tokenizer::from_bytes(tok_bytes, ck.config.vocab_size)
        .with_context(|| tok_file.name())?;
    let source_int8 = matches!(ck.weights.token_embedding, Matrix::Q8(_));
    let source_quantized = !matches!(ck.weights.token_embedding, Matrix::F32 { .. });
    let q4 = a.q4_group.unwrap_or(bundle::DEFAULT_Q4_GROUP);
    let quant = match (a.quant, source_quantized) {
        (Some(QuantArg::F32), _) => Quant::F32,
        (Some(QuantArg::Q8), _) => Quant::Q8(a.group_size),
        (Some(QuantArg::Q4), _) => Quant::Q4(q4),
        (Some(QuantArg::Mixed), _) => {
            Quant::Mixed { embedding: Precision::Q4(q4), layers: Precision::Q8(a.group_size) }
        }
        (None, _) if a.group_size.is_some() => Quant::Q8(a.group_size),
        (None, _) if a.q4_group.is_some() => Quant::Q4(q4),
        (None, true) => Quant::Keep,
        (None, false) => Quant::F32,
    };
    let source_len = model.blob.len();
    let (quant, bytes, packed) = match &a.fit {
        None => {
            let (b, p) = packing::pack(&ck, tok_bytes, quant, source_len)?;
            (quant, b, p)
        }
        Some(chip_name) => fit(&a, chip_name, &ck, tok_bytes, source_len, source_int8)?,
    };
    std::fs::write(&a.output, &bytes)
        .with_context(|| format!("cannot write {}", a.output.display()))?;
    let sum = |d: bundle::DType| -> usize {
        packed.iter().filter(|p| p.entry.dtype == d).map(|p| p.entry.data_len().unwrap_or(0)).sum()
    };
    let scales: usize = packed.iter().map(|p| p.entry.scales_len().unwrap_or(0)).sum();
    outln!(
        "wrote {} ({} bytes, {}, bundle v{}): {} tensors, int8 values {} bytes, int4 values {} bytes, scales {scales} bytes, crc32 {:#010x}",
        a.output.display(),
        bytes.len(),
        describe(quant, source_int8),
        u16::from_le_bytes([bytes[4], bytes[5]]),
        packed.len(),
        sum(bundle::DType::Q8),
        sum(bundle::DType::Q4),
        bundle::checksum(&bytes)
    );
    print_errors(&packed)
}

/// Per tensor kind: the precision chosen and the worst quantization error over its layers.
fn print_errors(packed: &[PackedTensor]) -> Result<()> {
    let mut rows: Vec<(&str, String, f32, f64)> = Vec::new();
    for p in packed.iter().filter(|p| !p.entry.kind.is_norm()) {
        let name = p.entry.kind.name();
        let prec = match p.entry.dtype {
            bundle::DType::F32 => "f32".to_string(),
            d => format!("{} g{}", d.name(), p.entry.group),
        };
        match rows.iter_mut().find(|w| w.0 == name) {
            Some(w) => {
                w.2 = w.2.max(p.error.max_abs);
                w.3 = w.3.max(p.error.rms());
            }
            None => rows.push((name, prec, p.error.max_abs, p.error.rms())),
        }
    }
    outln!("{:<16} {:<10} {:>12} {:>12}", "tensor", "precision", "max abs err", "rms err");
    for (name, prec, m, r) in rows {
        outln!("{name:<16} {prec:<10} {m:>12.6} {r:>12.6}");
    }
    Ok(())
}

type Packed = (Quant, Vec<u8>, Vec<PackedTensor>);

/// `--fit`: the first candidate (best quality first) whose bundle fits the model partition and
/// whose plan runs on the chip.
fn fit(
    a: &Args,
    chip_name: &str,
    ck: &Checkpoint<'_>,
    tokenizer: &[u8],
    source_len: usize,
    source_int8: bool,
) -> Result<Packed> {
    let chip = crate::setup::chip(chip_name)?;
    let psram = a.psram.unwrap_or(chip.psram);
    let flash = a.flash.unwrap_or(chip.flash);
    let partition = crate::layout::model_partition(flash);
    let target = Target { chip, psram, partition };
    let (chosen, skipped) = packing::best_quality(ck, tokenizer, source_len, target)?;
    let skipped: Vec<String> =
        skipped.iter().map(|(q, why)| format!("{}: {why}", describe(*q, source_int8))).collect();
    if let Some(Candidate { quant, bytes, tensors, plan: Ok(p) }) = chosen {
        outln!(
            "fit       {} on {} ({} PSRAM, {} flash, model partition {}): {} bundle, ~{:.1} tok/s estimated, context {}",
            describe(quant, source_int8),
            chip.name,
            human(psram),
            human(flash),
            human(partition),
            human(bytes.len()),
            p.tok_per_s,
            p.seq_len
        );
        for s in &skipped {
            outln!("  skipped {s}");
        }
        return Ok((quant, bytes, tensors));
    }
    bail!(
        "no layout fits {} with {} of flash and {} of PSRAM:\n  {}",
        chip.name,
        human(flash),
        human(psram),
        skipped.join("\n  ")
    )
}
