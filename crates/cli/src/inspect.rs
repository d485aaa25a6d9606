//! `esp-llm inspect`: what a model file is and what running it costs in memory.

use crate::files;
use crate::units::human;
use anyhow::{bail, Context, Result};
use esp_llm_engine::checkpoint::bundle;
use esp_llm_engine::state::RunState;
use esp_llm_engine::Checkpoint;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// Model: a file (llama2.c checkpoint v0/v1/v2-int8, or an esp-llm bundle), or a name:
    /// stories260K, stories15M, stories42M, stories110M (looked for in $ESP_LLM_MODELS, ./models,
    /// ../shared/models, then the Hugging Face cache, downloaded once). Default: stories260K.
    pub model: Option<PathBuf>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Check a bundle's CRC-32 and exit non-zero on a mismatch (a llama2.c checkpoint carries
    /// no checksum: an error too).
    #[arg(long)]
    pub verify: bool,
}

pub fn main(a: Args) -> Result<()> {
    let path = files::resolve_model(a.model.as_deref())?;
    let blob = files::load(&path, "model")?;
    let ck = Checkpoint::parse(&blob).with_context(|| format!("{}", path.display()))?;
    let c = ck.config;
    let w = &ck.weights;
    let wb = w.byte_breakdown();
    let (f32_bytes, q_bytes, q4_bytes, scale_bytes) = (wb.f32, wb.int8, wb.int4, wb.scales);
    let mut groups = Vec::new();
    // Per tensor name: its element type and group, e.g. "wq int8 g32" (once per distinct one).
    let mut precision: Vec<(&str, String)> = Vec::new();
    for (name, _, m) in w.matrices() {
        if let Some(g) = m.group() {
            if !groups.contains(&g) {
                groups.push(g);
            }
        }
        let p = match m.group() {
            Some(g) => format!("{} g{g}", m.dtype_name()),
            None => m.dtype_name().to_string(),
        };
        if !precision.iter().any(|(n, q)| *n == name && *q == p) {
            precision.push((name, p));
        }
    }
    let state = RunState::size(&c, w, c.seq_len, 1, esp_llm_engine::Numerics::Float)?;
    let weights = f32_bytes + q_bytes + q4_bytes + scale_bytes;
    // A bundle's stored CRC-32 and the one its bytes give (llama2.c checkpoints have none).
    let crc = match bundle::is_bundle(&blob) {
        true => Some((bundle::read_header(&blob)?.crc32, bundle::checksum(&blob))),
        false => None,
    };
    if a.json {
        let out = serde_json::json!({
            "file": path.display().to_string(),
            "file_bytes": blob.len(),
            "format": ck.format.to_string(),
            "config": {
                "dim": c.dim, "hidden_dim": c.hidden_dim, "n_layers": c.n_layers,
                "n_heads": c.n_heads, "n_kv_heads": c.n_kv_heads, "vocab_size": c.vocab_size,
                "seq_len": c.seq_len, "head_size": c.head_size(), "kv_dim": c.kv_dim(),
                "shared_classifier": c.shared_classifier,
            },
            "parameters": c.n_params(),
            "memory": {
                "weights": weights, "f32_weights": f32_bytes, "int8_weights": q_bytes,
                "int4_weights": q4_bytes, "int8_scales": scale_bytes, "kv_cache": state.kv_cache,
                "activations": state.activations, "total": weights + state.total(),
            },
            "group_sizes": groups,
            "precision": precision.iter().map(|(n, p)| serde_json::json!({"tensor": n, "precision": p})).collect::<Vec<_>>(),
            "checksum": crc.map(|(stored, got)| serde_json::json!({
                "crc32": format!("{stored:#010x}"), "computed": format!("{got:#010x}"),
                "ok": stored == got,
            })),
        });
        outln!("{out}");
        return verdict(&path, crc, a.verify);
    }
    // The file's size as the memory lines below print theirs: human units, exact bytes beside.
    outln!("file          {}  {} ({} B)", path.display(), human(blob.len()), blob.len());
    outln!("format        {}", ck.format);
    outln!(
        "config        dim {} · hidden_dim {} · n_layers {} · n_heads {} · n_kv_heads {} · vocab_size {} · seq_len {}",
        c.dim, c.hidden_dim, c.n_layers, c.n_heads, c.n_kv_heads, c.vocab_size, c.seq_len
    );
    outln!(
        "              head_size {} · kv_dim {} · classifier {}",
        c.head_size(),
        c.kv_dim(),
        if c.shared_classifier { "shared with the token embedding" } else { "separate" }
    );
    outln!("parameters    {}", c.n_params());
    let list: Vec<String> = precision.iter().map(|(n, p)| format!("{n} {p}")).collect();
    outln!("precision     {}", list.join(" · "));
    // Human units as `plan` and `run -v` print them, the exact byte count beside.
    let sz = |n: usize| format!("{:>9} {:>12}", human(n), format!("({n} B)"));
    outln!("memory");
    outln!("  weights     {}", sz(weights));
    outln!("    f32       {}", sz(f32_bytes));
    if q_bytes > 0 {
        outln!("    int8      {}", sz(q_bytes));
    }
    if q4_bytes > 0 {
        outln!("    int4      {}  two values per byte", sz(q4_bytes));
    }
    if q_bytes + q4_bytes > 0 {
        outln!("    scales    {}  group size {groups:?}", sz(scale_bytes));
    }
    outln!("  KV cache    {}  fp32, {} positions", sz(state.kv_cache), c.seq_len);
    outln!("  activations {}", sz(state.activations));
    outln!("  total       {}", sz(weights + state.total()));
    match crc {
        Some((stored, got)) if stored == got => {
            outln!("checksum      crc32 {stored:#010x} (matches the bytes)")
        }
        Some((stored, got)) => {
            outln!("checksum      MISMATCH: header says crc32 {stored:#010x}, the bytes give {got:#010x}")
        }
        None => outln!("checksum      none (a llama2.c checkpoint has no checksum)"),
    }
    verdict(&path, crc, a.verify)
}

/// `--verify`: an error for a checksum mismatch or a file without a checksum.
fn verdict(path: &std::path::Path, crc: Option<(u32, u32)>, verify: bool) -> Result<()> {
    match crc {
        _ if !verify => Ok(()),
        Some((stored, got)) if stored != got => bail!(
            "{}: checksum mismatch: header says {stored:#010x}, the bytes give {got:#010x} (a partial or corrupted copy: copy or pack it again)",
            path.display()
        ),
        Some(_) => Ok(()),
        None => bail!(
            "{}: a llama2.c checkpoint has no checksum to verify (esp-llm pack makes a bundle that has one)",
            path.display()
        ),
    }
}
