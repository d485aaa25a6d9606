//! What the model commands share: opening a model, parsing it once and finding its tokenizer
//! (`open`, `Model::parse`, `Model::tokenizer`), the
//! `--numerics`/`--math`/`--kernels`/`--threads` choices and the transformer built from them,
//! the memory check before allocating, seeds, and the progress bar of packing and quantizing.
//! Commands import this module, never each other.

use crate::files::{self, Blob};
use anyhow::{bail, Context, Result};
use esp_llm_engine::checkpoint::bundle;
use esp_llm_engine::kernels::{self, Kernels};
use esp_llm_engine::model::{Matrix, Weights};
use esp_llm_engine::parallel::pool::Pool;
use esp_llm_engine::transformer::DEFAULT_PREFILL;
use esp_llm_engine::{Checkpoint, Footprint, Layout, Math, Numerics, Options, Transformer};
use indicatif::{ProgressBar, ProgressStyle};
use std::path::{Path, PathBuf};

/// How the engine computes (`--numerics`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum NumericsArg {
    /// f32 in llama2.c's order: run.c's / runq.c's tokens exactly.
    #[default]
    Float,
    /// Integer arithmetic as on FPU-less chips (ESP32-C3/C6); int8 models only; same tokens on
    /// every target, not llama2.c's.
    Fixed,
}

impl From<NumericsArg> for Numerics {
    fn from(n: NumericsArg) -> Numerics {
        match n {
            NumericsArg::Float => Numerics::Float,
            NumericsArg::Fixed => Numerics::Fixed,
        }
    }
}

/// Where `expf`, `cosf`, `sinf` and `powf` come from (`--math`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum MathArg {
    /// The C library's: llama2.c's tokens when it is built on this system.
    #[default]
    System,
    /// The portable ones the boards run: the tokens of a board (bench/rv32, the emulators).
    Portable,
}

/// How the f32 matrices are laid out (`--layout`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LayoutArg {
    /// Interleaved where the kernels run it faster (avx2, avx512), else row-major.
    #[default]
    Auto,
    /// The checkpoint's rows, read in place from the memory map (zero-copy).
    RowMajor,
    /// Copied at load into blocks of 16 rows stored column by column (one more copy of the
    /// f32 matrices in memory); any kernels run it, the scalar ones slowly.
    Interleaved,
}

impl From<LayoutArg> for Layout {
    fn from(l: LayoutArg) -> Layout {
        match l {
            LayoutArg::Auto => Layout::Auto,
            LayoutArg::RowMajor => Layout::RowMajor,
            LayoutArg::Interleaved => Layout::Interleaved,
        }
    }
}

impl From<MathArg> for Math {
    fn from(m: MathArg) -> Math {
        match m {
            MathArg::System => Math::System,
            MathArg::Portable => Math::Portable,
        }
    }
}

/// The chip named `name` from the board planner's table, or an error listing the known ones.
pub fn chip(name: &str) -> Result<esp_llm_board::plan::Chip> {
    use esp_llm_board::plan;
    plan::chip(name).ok_or_else(|| {
        let names: Vec<&str> = plan::CHIPS.iter().map(|c| c.name).collect();
        anyhow::anyhow!("unknown chip '{name}'; choose one of {}", names.join(", "))
    })
}

/// The kernels named (`scalar`, `avx2`, `avx512`, ...) or the best this CPU runs.
pub fn pick_kernels(name: Option<&str>) -> Result<&'static dyn Kernels> {
    match name {
        None => Ok(kernels::best()),
        Some(n) => kernels::by_name(n).ok_or_else(|| {
            let have: Vec<_> = kernels::available().iter().map(|k| k.name()).collect();
            anyhow::anyhow!("kernels '{n}' do not run on this CPU; available: {}", have.join(", "))
        }),
    }
}

/// Builds a transformer with `threads` workers (default: all cores), the given kernels,
/// numerics and math, and batched prompt prefill (float only: the fixed path runs one position
/// at a time).
pub fn transformer<'a>(
    ck: Checkpoint<'a>,
    threads: Option<usize>,
    kernels: &'static dyn Kernels,
    numerics: Numerics,
    math: Math,
    layout: Layout,
) -> Result<Transformer<'a>> {
    let n = match threads {
        Some(0) => bail!("--threads must be at least 1"),
        Some(n) => n,
        None => Pool::available_parallelism(),
    };
    let workers = Box::new(Pool::new(n).context("starting worker threads")?);
    let prefill = DEFAULT_PREFILL;
    let options = Options { kernels, workers, numerics, prefill, math, layout, seq_len: None };
    Ok(Transformer::new(ck, options)?)
}

/// The widest storage among a model's weight matrices (norms are always f32): what an error may
/// still advise (f32 -> int8 or int4, int8 -> int4), so that it never advises what was done.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Widest {
    Int4,
    Int8,
    F32,
}

impl Widest {
    pub fn of(w: &Weights<'_>) -> Widest {
        let of = |m: &Matrix<'_>| match m {
            Matrix::F32 { .. } => Widest::F32,
            Matrix::Q8(_) => Widest::Int8,
            Matrix::Q4(_) => Widest::Int4,
        };
        w.matrices().map(|(_, _, m)| of(m)).max().unwrap_or(Widest::Int4)
    }
}

/// What a run of `ck` needs (weights, KV cache, activations at the prefill batch), checked
/// against `--max-memory` and against the memory the system has available, before allocating.
pub fn check_memory(
    ck: &Checkpoint<'_>,
    max: Option<u64>,
    numerics: Numerics,
    kernels: &dyn Kernels,
    layout: Layout,
) -> Result<Footprint> {
    let c = &ck.config;
    let layout = layout.resolve(kernels, &ck.weights);
    let fp = Footprint::of(c, &ck.weights, c.seq_len, DEFAULT_PREFILL, numerics)?
        .with_layout(&ck.weights, layout);
    let state = fp.state;
    let need = (fp.weights + fp.derived + fp.repacked + state.total()) as u64;
    let parts = format!(
        "{} of weights, {} of KV cache for {} positions, {} of activations, {} derived at load, {} of weights repacked ({} layout)",
        fp.weights, state.kv_cache, c.seq_len, state.activations, fp.derived, fp.repacked, layout.name()
    );
    if let Some(max) = max {
        if need > max {
            // Only what would shrink this model: no int8 advice for an int8 model.
            let mut tries = match Widest::of(&ck.weights) {
                Widest::F32 => vec!["an int8 model (esp-llm quantize)"],
                Widest::Int8 => vec!["an int4 bundle (esp-llm pack --quant q4)"],
                Widest::Int4 => vec![],
            };
            if fp.repacked > 0 {
                tries.push("--layout row-major");
            }
            tries.push("a smaller model");
            bail!(
                "this run needs {need} bytes ({parts}), more than --max-memory {max}; try {}",
                tries.join(" or ")
            );
        }
    }
    if let Some(avail) = mem_available() {
        if need > avail {
            bail!("this run needs {need} bytes ({parts}), more than the {avail} bytes of memory available");
        }
    }
    Ok(fp)
}

/// `MemAvailable` from /proc/meminfo (Linux), in bytes.
fn mem_available() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kb.checked_mul(1024)
}

/// Parses `123`, `64K`, `8M`, `1G` (binary multiples).
pub fn parse_bytes(s: &str) -> std::result::Result<u64, String> {
    let t = s.trim();
    let (num, mul) = match t.char_indices().last() {
        Some((i, 'k' | 'K')) => (&t[..i], 1u64 << 10),
        Some((i, 'm' | 'M')) => (&t[..i], 1 << 20),
        Some((i, 'g' | 'G')) => (&t[..i], 1 << 30),
        _ => (t, 1),
    };
    num.trim()
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mul))
        .ok_or_else(|| format!("'{s}' is not a byte count (examples: 4096, 512K, 8M)"))
}

/// A model file, mapped. Its caller parses it once ([`Model::parse`]) and keeps the checkpoint
/// for everything else, the tokenizer's default included.
pub struct Model {
    pub path: PathBuf,
    pub blob: Blob,
}

/// Maps the model (the default if `None`).
pub fn open(model: Option<&Path>) -> Result<Model> {
    let path = files::resolve_model(model)?;
    let blob = files::load(&path, "model")?;
    Ok(Model { path, blob })
}

impl Model {
    /// The checkpoint; a bundle is checksum-verified too.
    pub fn parse(&self) -> Result<Checkpoint<'_>> {
        let ck =
            Checkpoint::parse(&self.blob).with_context(|| format!("{}", self.path.display()))?;
        if bundle::is_bundle(&self.blob) {
            bundle::verify(&self.blob)
                .with_context(|| format!("{}: re-pack or re-copy the file", self.path.display()))?;
        }
        Ok(ck)
    }

    /// The tokenizer for `ck` (this model, parsed): the file given, else a bundle's own, else
    /// the default beside the model.
    pub fn tokenizer(
        &self,
        ck: &Checkpoint<'_>,
        tokenizer: Option<&Path>,
    ) -> Result<TokenizerFile<'_>> {
        if tokenizer.is_none() && bundle::is_bundle(&self.blob) {
            // The parse checked the header's tokenizer range against the file.
            let h = bundle::read_header(&self.blob)?;
            let start = h.tokenizer_offset as usize;
            let range = start..start + h.tokenizer_len as usize;
            return Ok(TokenizerFile { model: self, source: TokenizerSource::Bundled(range) });
        }
        let path = match tokenizer {
            Some(t) => t.to_path_buf(),
            None => files::default_tokenizer(&self.path, ck.config.vocab_size)?,
        };
        let tok = files::load(&path, "tokenizer").map_err(|e| {
            if tokenizer.is_none() {
                anyhow::anyhow!(
                    "{e:#} (the default tokenizer sits beside the model; pass one with -z)"
                )
            } else {
                e
            }
        })?;
        Ok(TokenizerFile { model: self, source: TokenizerSource::File(path, tok) })
    }
}

/// A model's tokenizer bytes: a separate file, or the part of a bundle that holds them.
pub struct TokenizerFile<'m> {
    model: &'m Model,
    source: TokenizerSource,
}

/// Where a run's tokenizer bytes are.
enum TokenizerSource {
    /// A separate file.
    File(PathBuf, Blob),
    /// Inside the bundle, at this byte range of the model file (checked when parsed).
    Bundled(std::ops::Range<usize>),
}

impl TokenizerFile<'_> {
    /// The tokenizer bytes (from the file, or from inside the bundle).
    pub fn bytes(&self) -> &[u8] {
        match &self.source {
            TokenizerSource::File(_, b) => b,
            TokenizerSource::Bundled(range) => &self.model.blob[range.clone()],
        }
    }

    /// Where the tokenizer came from, for messages.
    pub fn name(&self) -> String {
        match &self.source {
            TokenizerSource::File(p, _) => p.display().to_string(),
            TokenizerSource::Bundled(_) => format!("{} (bundled)", self.model.path.display()),
        }
    }
}

/// Seed 0 means "from the clock", as in run.c; negative seeds wrap like C's conversion.
pub fn resolve_seed(seed: i64) -> u64 {
    if seed == 0 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as u32 as u64)
            .unwrap_or(1)
    } else {
        seed as u64
    }
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
