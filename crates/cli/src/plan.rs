//! `esp-llm plan`: where a model's parts go on a chip, whether it fits, and how fast it may run.

use crate::files;
use crate::setup::Widest;
use crate::units::human;
use anyhow::{bail, Context, Result};
use esp_llm_board::plan::{self, Region};
use esp_llm_engine::model::Matrix;
use esp_llm_engine::Checkpoint;
use esp_llm_engine::Needs;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// Model: a file (llama2.c checkpoint v0/v1/v2-int8, or an esp-llm bundle), or a name:
    /// stories260K, stories15M, stories42M, stories110M (looked for in $ESP_LLM_MODELS, ./models,
    /// ../shared/models, then the Hugging Face cache, downloaded once). Default: stories260K.
    pub model: Option<PathBuf>,
    /// Target chip: esp32s3, esp32p4, esp32c6 or esp32c3.
    #[arg(long)]
    pub chip: String,
    /// PSRAM (8MB, 512K; a bare number is MB). Default: the reference board's (S3: 8MB,
    /// P4: 32MB, C6/C3: none).
    #[arg(long, value_parser = crate::units::mb_arg)]
    pub psram: Option<usize>,
    /// Flash (4MB, 16MB, 32MB; a bare number is MB). Default: the reference board's (S3/P4:
    /// 16MB, C6/C3: 4MB). The model partition is the one in firmware/partitions-4mb.csv (3 MB),
    /// -16mb.csv (12 MB) or -32mb.csv (28 MB); for other sizes all but the first 1 MB.
    #[arg(long, value_parser = crate::units::mb_arg)]
    pub flash: Option<usize>,
    /// Context length to plan for. Default: the model's.
    #[arg(long)]
    pub seq_len: Option<usize>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn main(a: Args) -> Result<()> {
    let chip = crate::setup::chip(&a.chip)?;
    let path = files::resolve_model(a.model.as_deref())?;
    let blob = files::load(&path, "model")?;
    let ck = Checkpoint::parse(&blob).with_context(|| format!("{}", path.display()))?;
    let needs = Needs::of(&ck.config, &ck.weights)?;
    let psram = a.psram.unwrap_or(chip.psram);
    let flash = a.flash.unwrap_or(chip.flash);
    let partition = crate::layout::model_partition(flash);
    let seq_len = a.seq_len.unwrap_or(ck.config.seq_len).min(ck.config.seq_len);
    if blob.len() > partition {
        bail!(
            "{} is {} ({} bytes) but the model partition holds {} (with {} of flash); {}",
            path.display(),
            human(blob.len()),
            blob.len(),
            human(partition),
            human(flash),
            // Only what would shrink this model: never int8 for int8, nor int4 tables twice.
            match Widest::of(&ck.weights) {
                Widest::F32 => "pack it as int8 or int4 (`esp-llm pack --fit <chip>` picks the best layout that fits), use a smaller model, or more flash (--flash)",
                Widest::Int8 if matches!(ck.weights.token_embedding, Matrix::Q8(_)) => "repack it with int4 tables (`esp-llm pack --fit <chip>`), use a smaller model, or more flash (--flash)",
                Widest::Int8 => "repack it as int4 throughout (`esp-llm pack --quant q4`), use a smaller model, or more flash (--flash)",
                Widest::Int4 => "use a smaller model or more flash (--flash)",
            }
        );
    }
    let p = plan::plan(&needs, seq_len, chip, psram, partition, blob.len()).with_context(|| {
        format!(
            "{} ({} of weights, {} per context position) cannot run on {} with {} of PSRAM and {} of flash",
            path.display(),
            human(needs.weights),
            human(needs.kv_per_position),
            chip.name,
            human(psram),
            human(flash)
        )
    })?;
    let kv_precision = match p.numerics {
        esp_llm_engine::Numerics::Float => "f32",
        esp_llm_engine::Numerics::Fixed => "i16",
    };
    if a.json {
        let out = serde_json::json!({
            "model": path.display().to_string(), "format": ck.format.to_string(), "chip": chip.name,
            "psram_bytes": psram, "flash_bytes": flash, "model_partition_bytes": partition,
            "file_bytes": blob.len(), "weights_bytes": needs.weights,
            "activations_bytes": needs.activations,
            "fixed_point_scales_bytes": if p.numerics == esp_llm_engine::Numerics::Fixed { needs.fixed_bytes } else { 0 },
            "weights": p.weights.name(), "kv_cache": p.kv_cache.name(), "activations": "sram",
            "seq_len": p.seq_len, "model_seq_len": ck.config.seq_len, "kv_cache_bytes": p.kv_bytes,
            "kv_precision": kv_precision, "numerics": p.numerics.name(), "sram_used": p.sram_used, "sram_available": chip.sram_for_data,
            "psram_used": p.psram_used, "macs_per_token": p.macs_per_token,
            "psram_bytes_per_token": p.psram_bytes_per_token,
            "flash_bytes_per_token": p.flash_bytes_per_token,
            "est_tok_per_s": p.tok_per_s, "est_compute_s": p.compute_s, "est_memory_s": p.memory_s,
            "est_instructions_per_token": p.instructions_per_token, "fits": true,
        });
        outln!("{out}");
        return Ok(());
    }
    let kb = human;
    outln!("model     {} ({}, {})", path.display(), ck.format, human(blob.len()));
    outln!(
        "chip      {} ({} MHz, {} core(s), {} of SRAM for data, {} PSRAM, {} flash)",
        chip.name,
        chip.mhz,
        chip.cores,
        kb(chip.sram_for_data),
        human(psram),
        human(flash)
    );
    outln!("{:<12} {:>12}  {}", "part", "size", "lives in");
    outln!("{:<12} {:>12}  {}", "weights", kb(needs.weights), describe(p.weights));
    outln!("{:<12} {:>12}  {}", "activations", kb(needs.activations), describe(Region::Sram));
    if p.numerics == esp_llm_engine::Numerics::Fixed {
        outln!("{:<12} {:>12}  {}", "int scales", kb(needs.fixed_bytes), describe(Region::Sram));
    }
    outln!(
        "{:<12} {:>12}  {} ({kv_precision}, {} positions{})",
        "KV cache",
        kb(p.kv_bytes),
        describe(p.kv_cache),
        p.seq_len,
        if p.seq_len < ck.config.seq_len {
            format!("; capped from {} to fit", ck.config.seq_len)
        } else {
            String::new()
        }
    );
    outln!(
        "used      SRAM {} of {}, PSRAM {} of {}",
        kb(p.sram_used),
        kb(chip.sram_for_data),
        kb(p.psram_used),
        human(psram)
    );
    outln!(
        "per token {} MACs, {} from PSRAM, {} from flash",
        p.macs_per_token,
        kb(p.psram_bytes_per_token),
        kb(p.flash_bytes_per_token)
    );
    if p.numerics == esp_llm_engine::Numerics::Fixed {
        outln!(
            "numerics  fixed point (no FPU on {}): tokens as `esp-llm run --numerics fixed`, not llama2.c's",
            chip.name
        );
    }
    let dominant = if p.compute_s >= p.memory_s { "compute" } else { "streaming" };
    match chip.instructions {
        Some(m) => outln!(
            "estimate  ~{:.1} tok/s: {:.2} M instructions a token (fitted to emulator counts) x {} cycles each (assumed) = {:.1} ms of compute, {:.1} ms streaming from PSRAM/flash; {dominant} dominates (cost model: docs/plan.md; only a board can confirm it)",
            p.tok_per_s,
            p.instructions_per_token / 1e6,
            m.cycles_per_instruction,
            p.compute_s * 1e3,
            p.memory_s * 1e3
        ),
        None => outln!(
            "estimate  ~{:.0} tok/s with the portable kernels: {:.1} ms of compute, {:.1} ms streaming; {dominant} dominates (cost model: docs/plan.md)",
            p.tok_per_s,
            p.compute_s * 1e3,
            p.memory_s * 1e3
        ),
    }
    // Only for f32 weights (an int4 model has no int8 matmuls either, and is smaller still).
    if p.weights != Region::Sram && Widest::of(&ck.weights) == Widest::F32 {
        outln!("hint      an int8 bundle (`esp-llm pack --quant q8`) is a quarter of the size");
    }
    Ok(())
}

fn describe(r: Region) -> &'static str {
    match r {
        Region::Sram => "internal SRAM",
        Region::Psram => "PSRAM",
        Region::Flash => "flash (read in place through the cache)",
    }
}
