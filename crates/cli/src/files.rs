//! Finding and loading model files: the model search path, the models known by name and
//! downloaded from the Hugging Face hub when they are nowhere local, the tokenizer that belongs
//! to a model, and memory-mapping files so the engine reads them in place.

use anyhow::{bail, Context, Result};
use esp_llm_models as catalogue;
use std::path::{Path, PathBuf};

/// The model used when none is named.
pub const DEFAULT_MODEL: &str = "stories260K.bin";

/// Where models are looked for, in order: `$ESP_LLM_MODELS`, `./models`, `../shared/models`.
/// After them comes the hub cache (downloading into it) for the models known by name.
pub fn model_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(d) = std::env::var_os("ESP_LLM_MODELS").filter(|d| !d.is_empty()) {
        dirs.push(PathBuf::from(d));
    }
    dirs.push(PathBuf::from("./models"));
    dirs.push(PathBuf::from("../shared/models"));
    dirs
}

/// `name` in the first model directory that has it.
fn local(name: &str) -> Option<PathBuf> {
    model_dirs().into_iter().map(|d| d.join(name)).find(|p| p.is_file())
}

/// A catalogue file from the hub cache, downloading it (progress bar on stderr) when missing.
pub fn fetch(f: &catalogue::File) -> Result<PathBuf> {
    if let Some(p) = catalogue::cached(f) {
        return Ok(p);
    }
    let dirs: Vec<String> = model_dirs().iter().map(|d| d.display().to_string()).collect();
    eprintln!(
        "{} is not in {}: downloading it into the Hugging Face cache ({})",
        f.name,
        dirs.join(" or "),
        catalogue::hub_cache().map(|p| p.display().to_string()).unwrap_or_default()
    );
    let p = catalogue::fetch(f, true)?;
    eprintln!("downloaded {}", p.display());
    Ok(p)
}

/// The model file for a `MODEL` argument: a path that exists; or a file name or catalogue name
/// (`stories15M`) found in the model directories; or a catalogue model from the hub cache,
/// downloaded once (with its tokenizer, so that it sits beside it). `None` is stories260K.
/// Anything else is returned as given, for the loader to report.
pub fn resolve_model(model: Option<&Path>) -> Result<PathBuf> {
    let arg = model.unwrap_or(Path::new(DEFAULT_MODEL));
    if model.is_some() && arg.exists() {
        return Ok(arg.to_path_buf());
    }
    // Only a bare name is looked up: a path with folders names one file.
    let bare = arg.parent().is_none_or(|p| p.as_os_str().is_empty());
    let Some(name) = arg.to_str().filter(|_| bare) else {
        return Ok(arg.to_path_buf());
    };
    let entry = catalogue::model(name);
    let file_name = entry.map_or(name, |m| m.checkpoint.name);
    if let Some(p) = local(file_name) {
        return Ok(p);
    }
    let Some(m) = entry else {
        return Ok(arg.to_path_buf());
    };
    let p = fetch(&m.checkpoint)?;
    fetch(&m.tokenizer)?;
    Ok(p)
}

/// The tokenizer for a model: `tok<vocab>.bin` (or `tokenizer.bin` when `vocab_size` is
/// 32000) beside it, else in the model directories, else the catalogue's tokenizer of that
/// size from the hub cache (downloaded when missing). A file nowhere to be found is returned
/// beside the model, for the loader to report.
pub fn default_tokenizer(model: &Path, vocab_size: usize) -> Result<PathBuf> {
    let dir = model.parent().unwrap_or(Path::new("."));
    let name = if vocab_size == 32000 {
        "tokenizer.bin".to_string()
    } else {
        format!("tok{vocab_size}.bin")
    };
    let beside = dir.join(&name);
    if beside.is_file() {
        return Ok(beside);
    }
    if let Some(p) = local(&name) {
        return Ok(p);
    }
    match catalogue::file(&name) {
        Some(f) => fetch(&f),
        None => Ok(beside),
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
