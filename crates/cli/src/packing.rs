//! Building a bundle for a chip, shared by `pack` and `flash`/`image` (neither imports the
//! other): the `--quant` choice, packing with a progress bar, the plan of a packed bundle, and
//! the two ways a layout is chosen for a chip. `pack --fit` takes the best measured quality
//! whose plan runs ([`best_quality`]); `flash --model` with a checkpoint takes what the plan
//! runs fastest ([`fastest`]). Both size, pack and plan each candidate with [`try_layout`].

use crate::setup::tensor_progress;
use crate::units::human;
use anyhow::Result;
use esp_llm_board::plan::{self, Chip, Plan};
use esp_llm_engine::checkpoint::bundle::{self, PackedTensor, Precision, Quant};
use esp_llm_engine::model::Matrix;
use esp_llm_engine::{Checkpoint, Needs};

/// Weight storage in the bundle (`--quant` of `pack`, `flash` and `image`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum QuantArg {
    /// 32-bit floats.
    F32,
    /// Int8 with per-group f32 scales (group: -g).
    Q8,
    /// Int4, two per byte, with per-group f32 scales (group: --q4-group).
    Q4,
    /// Int4 token embedding and classifier (--q4-group), int8 layers (-g): the big vocabulary
    /// tables shrink to a quarter of f32's eighth, the layers keep int8's quality.
    Mixed,
}

/// The layouts `--fit` tries, best measured quality first (docs/bundle.md, "Quality").
pub fn fit_candidates() -> Vec<Quant> {
    // Groups of 96 divide the 288/768 rows of stories15M and 512/1376's multiples of 32 of the
    // larger shapes without padding; 64 and 128 pad 288-value rows to 320 and 384.
    let (q4, q8) = (Precision::Q4, |g| Precision::Q8(Some(g)));
    vec![
        Quant::F32,
        Quant::Q8(Some(32)),
        Quant::Mixed { embedding: q4(32), layers: q8(32) },
        Quant::Mixed { embedding: q4(96), layers: q8(32) },
        Quant::Mixed { embedding: q4(96), layers: q8(96) },
        Quant::Mixed { embedding: q4(128), layers: q8(128) },
        Quant::Q4(32),
        Quant::Q4(96),
        Quant::Q4(128),
    ]
}

/// How a layout reads in the output.
pub fn describe(q: Quant, source_int8: bool) -> String {
    let p = |p: Precision| match p {
        Precision::F32 => "f32".to_string(),
        Precision::Q8(Some(g)) => format!("int8 g{g}"),
        Precision::Q8(None) if source_int8 => "int8 (source groups)".to_string(),
        Precision::Q8(None) => format!("int8 g{}", bundle::DEFAULT_GROUP),
        Precision::Q4(g) => format!("int4 g{g}"),
        Precision::Keep => "as the source".to_string(),
    };
    match q {
        Quant::F32 => "f32".to_string(),
        Quant::Q8(g) => p(Precision::Q8(g)),
        Quant::Q4(g) => p(Precision::Q4(g)),
        Quant::Mixed { embedding, layers } => {
            format!("mixed: embedding/classifier {}, layers {}", p(embedding), p(layers))
        }
        Quant::Keep => "as the source".to_string(),
    }
}

/// Packs a parsed checkpoint and its tokenizer into a bundle, with a progress bar for big
/// models (`source_len`: the checkpoint's size in bytes).
pub fn pack(
    ck: &Checkpoint<'_>,
    tokenizer: &[u8],
    quant: Quant,
    source_len: usize,
) -> Result<(Vec<u8>, Vec<PackedTensor>)> {
    let n = ck.weights.layers.len() * 9 + 3;
    let pb = tensor_progress(n, source_len);
    let packed = bundle::pack(ck, tokenizer, quant, &mut |name| {
        pb.set_message(name);
        pb.inc(1);
    })?;
    pb.finish_and_clear();
    Ok(packed)
}

/// What a bundle is planned against: a chip, the PSRAM assumed and the model partition's size.
#[derive(Clone, Copy)]
pub struct Target {
    pub chip: Chip,
    pub psram: usize,
    pub partition: usize,
}

/// The chip's plan for a parsed bundle of `len` bytes.
pub fn plan_parsed(ck: &Checkpoint<'_>, len: usize, t: Target) -> Result<Plan> {
    let needs = Needs::of(&ck.config, &ck.weights)?;
    Ok(plan::plan(&needs, ck.config.seq_len, t.chip, t.psram, t.partition, len)?)
}

/// The chip's plan for a packed bundle.
pub fn plan_bundle(bytes: &[u8], t: Target) -> Result<Plan> {
    plan_parsed(&Checkpoint::parse(bytes)?, bytes.len(), t)
}

/// A layout, packed, and the chip's plan for it (an error when it cannot run: `flash` keeps an
/// asked-for layout anyway, to say why).
pub struct Candidate {
    pub quant: Quant,
    pub bytes: Vec<u8>,
    pub tensors: Vec<PackedTensor>,
    pub plan: Result<Plan>,
}

/// One candidate layout, tried.
pub enum Tried {
    /// Its bundle would be this many bytes, more than the partition: not packed.
    TooBig(usize),
    /// Packed, with the chip's plan for it (or why there is none).
    Packed(Box<Candidate>),
}

/// Sizes `quant`'s bundle without packing, and packs and plans it when it fits the partition.
pub fn try_layout(
    ck: &Checkpoint<'_>,
    tokenizer: &[u8],
    source_len: usize,
    quant: Quant,
    t: Target,
) -> Result<Tried> {
    let len = bundle::packed_len(ck, tokenizer.len(), quant)?;
    if len > t.partition {
        return Ok(Tried::TooBig(len));
    }
    let (bytes, tensors) = pack(ck, tokenizer, quant, source_len)?;
    let plan = plan_bundle(&bytes, t);
    Ok(Tried::Packed(Box::new(Candidate { quant, bytes, tensors, plan })))
}

/// Layouts passed over, each with why.
pub type Skipped = Vec<(Quant, String)>;

/// `pack --fit`: the first of [`fit_candidates`] (best quality first) whose bundle fits the
/// partition and whose plan runs (`None` if none does), and why each one before it did not.
pub fn best_quality(
    ck: &Checkpoint<'_>,
    tokenizer: &[u8],
    source_len: usize,
    t: Target,
) -> Result<(Option<Candidate>, Skipped)> {
    let mut skipped = Vec::new();
    for quant in fit_candidates() {
        match try_layout(ck, tokenizer, source_len, quant, t)? {
            Tried::TooBig(len) => {
                let (len, partition) = (human(len), human(t.partition));
                skipped.push((quant, format!("{len} > partition {partition}")));
            }
            Tried::Packed(c) => match &c.plan {
                Ok(_) => return Ok((Some(*c), skipped)),
                Err(e) => skipped.push((quant, e.to_string())),
            },
        }
    }
    Ok((None, skipped))
}

/// The layout a `--quant` asks for, with its name for messages.
pub fn asked(q: QuantArg) -> (Quant, &'static str) {
    match q {
        QuantArg::F32 => (Quant::F32, "f32"),
        QuantArg::Q8 => (Quant::Q8(None), "int8"),
        QuantArg::Q4 => (Quant::Q4(bundle::DEFAULT_Q4_GROUP), "int4"),
        QuantArg::Mixed => (MIXED, "int4/int8 mixed"),
    }
}

/// `--quant mixed`, and the mixed layout `flash` tries when no int8 one fits.
const MIXED: Quant = Quant::Mixed { embedding: Precision::Q4(96), layers: Precision::Q8(None) };

/// `flash`/`image --model` with a checkpoint: the layout `quant` asks for, or else the one the
/// chip's plan runs fastest, with a name for the message. `None` when nothing fits the
/// partition (nor, when not asked for, the plan).
pub fn fastest(
    ck: &Checkpoint<'_>,
    tokenizer: &[u8],
    source_len: usize,
    quant: Option<QuantArg>,
    t: Target,
) -> Result<Option<(Candidate, &'static str)>> {
    let int8 = matches!(ck.weights.token_embedding, Matrix::Q8(_));
    let mut candidates: Vec<(Quant, &'static str)> = match quant {
        Some(q) => vec![asked(q)],
        // An int8 source keeps its own groups; an f32 one may stay f32 or become int8; int4
        // layouts only when nothing larger fits the partition (see below).
        None if int8 => vec![(Quant::Q8(None), "int8")],
        None => vec![(Quant::F32, "f32"), (Quant::Q8(None), "int8")],
    };
    // A model that fits no int8 layout gets the int4 ones `pack --fit` would try.
    let fits_int8 = candidates
        .iter()
        .any(|(q, _)| bundle::packed_len(ck, tokenizer.len(), *q).is_ok_and(|n| n <= t.partition));
    if quant.is_none() && !fits_int8 {
        candidates = vec![asked(QuantArg::Mixed), asked(QuantArg::Q4)];
    }
    // Keep the candidate the plan says is fastest (the first on a tie: f32 before int8); an
    // asked-for layout is kept even when its plan fails, so that the caller can say why.
    let mut best: Option<(Candidate, &'static str, f64)> = None;
    for (q, name) in candidates {
        let Tried::Packed(c) = try_layout(ck, tokenizer, source_len, q, t)? else {
            continue;
        };
        let keep = match &c.plan {
            Ok(p) if best.as_ref().is_none_or(|(_, _, s)| p.tok_per_s > *s) => Some(p.tok_per_s),
            Err(_) if best.is_none() && quant.is_some() => Some(0.0),
            _ => None,
        };
        if let Some(tok_per_s) = keep {
            best = Some((*c, name, tok_per_s));
        }
    }
    Ok(best.map(|(c, name, _)| (c, name)))
}
