//! Finding and loading model files: the default model search path, the tokenizer that belongs
//! to a model, and memory-mapping files so the engine reads them in place.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};

/// The model used when none is named.
pub const DEFAULT_MODEL: &str = "stories260K.bin";

/// Where models are looked for, in order: `$ESP_LLM_MODELS`, `./models`, `../shared/models`.
pub fn model_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(d) = std::env::var_os("ESP_LLM_MODELS") {
        dirs.push(PathBuf::from(d));
    }
    dirs.push(PathBuf::from("models"));
    dirs.push(PathBuf::from("../shared/models"));
    dirs
}

/// The named model, or the default one from the first model directory that has it.
pub fn resolve_model(model: Option<&Path>) -> Result<PathBuf> {
    if let Some(m) = model {
        return Ok(m.to_path_buf());
    }
    let dirs = model_dirs();
    for d in &dirs {
        let p = d.join(DEFAULT_MODEL);
        if p.is_file() {
            return Ok(p);
        }
    }
    let tried: Vec<String> =
        dirs.iter().map(|d| d.join(DEFAULT_MODEL).display().to_string()).collect();
    bail!(
        "no model given and {DEFAULT_MODEL} not found (looked in {}); pass a model path or set ESP_LLM_MODELS",
        tried.join(", ")
    )
}

/// The tokenizer for a model: `tok<vocab>.bin` beside it when `vocab != 32000`, else
/// `tokenizer.bin` beside it.
pub fn default_tokenizer(model: &Path, vocab_size: usize) -> PathBuf {
    let dir = model.parent().unwrap_or(Path::new("."));
    if vocab_size == 32000 {
        dir.join("tokenizer.bin")
    } else {
        dir.join(format!("tok{vocab_size}.bin"))
    }
}

/// A file's bytes, memory-mapped read-only.
pub struct Blob(memmap2::Mmap);

impl std::ops::Deref for Blob {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

/// Opens a file for reading in place. `what` names it in errors ("model", "tokenizer").
pub fn load(path: &Path, what: &str) -> Result<Blob> {
    let file = std::fs::File::open(path)
        .with_context(|| format!("cannot open {what} file {}", path.display()))?;
    let meta = file.metadata().with_context(|| format!("cannot stat {}", path.display()))?;
    if meta.is_dir() {
        bail!("{what} path {} is a directory, not a file", path.display());
    }
    if meta.len() == 0 {
        bail!("{what} file {} is empty", path.display());
    }
    // SAFETY: the map is read-only and private to this process; like every mmap user we rely on
    // the file not being truncated by another process while the program runs.
    let map = unsafe { memmap2::Mmap::map(&file) }
        .with_context(|| format!("cannot map {what} file {}", path.display()))?;
    Ok(Blob(map))
}
