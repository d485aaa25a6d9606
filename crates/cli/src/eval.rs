//! `esp-llm eval`: how closely a quantized model follows its fp32 original.
//!
//! Columns, per prompt: `top-1`, the share of positions (prompt and generated, the reference's
//! greedy tokens fed to both models) where both models' most likely next token is the same;
//! `greedy`, how many generated tokens the two greedy stories share before they first differ,
//! out of the tokens generated; `max |dl|`, the largest difference between the two models'
//! logits at any position.

use crate::files;
use anyhow::{bail, Context, Result};
use esp_llm_engine::eval::{compare, Agreement};
use esp_llm_engine::{Checkpoint, Options, Tokenizer, Transformer};
use std::path::PathBuf;

/// The public golden prompts, used when none are given.
pub const DEFAULT_PROMPTS: [&str; 5] = [
    "Once upon a time",
    "Lily went to the park",
    "",
    "The cat sat on the mat. It was",
    "Tom and Ben were best friends. One day they found a big box",
];

/// What the table's columns mean: printed under the table and in `eval --help`.
pub const COLUMNS: &str = "\
top-1: positions where both models' most likely next token agree (the reference's greedy tokens fed to both)
greedy: generated tokens the two greedy stories share before they first differ / tokens generated
max |dl|: largest difference between the two models' logits";

#[derive(clap::Args)]
#[command(after_help = format!("Columns, per prompt:\n{COLUMNS}"))]
pub struct Args {
    /// Reference model (usually fp32).
    pub reference: PathBuf,
    /// Candidate model (usually int8), same vocabulary.
    pub candidate: PathBuf,
    /// Tokenizer. Default: beside the reference model.
    #[arg(short = 'z', long)]
    pub tokenizer: Option<PathBuf>,
    /// Positions per prompt (forward passes, prompt included).
    #[arg(short = 'n', long, default_value_t = 200)]
    pub steps: usize,
    /// Prompts to compare on (repeatable). Default: five short story openings.
    #[arg(short = 'i', long = "prompt")]
    pub prompts: Vec<String>,
    /// Numerics of the candidate: float (llama2.c's) or fixed (the integer path of FPU-less
    /// chips; int8 only). The reference always runs in float.
    #[arg(long, value_enum, default_value_t = crate::setup::NumericsArg::Float)]
    pub numerics: crate::setup::NumericsArg,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn main(a: Args) -> Result<()> {
    let rb = files::load(&a.reference, "reference model")?;
    let cb = files::load(&a.candidate, "candidate model")?;
    let rc = Checkpoint::parse(&rb).with_context(|| format!("{}", a.reference.display()))?;
    let cc = Checkpoint::parse(&cb).with_context(|| format!("{}", a.candidate.display()))?;
    if rc.config.vocab_size != cc.config.vocab_size {
        bail!(
            "the models have different vocabularies ({} and {} tokens)",
            rc.config.vocab_size,
            cc.config.vocab_size
        );
    }
    let tok_path = match a.tokenizer.clone() {
        Some(t) => t,
        None => files::default_tokenizer(&a.reference, rc.config.vocab_size)?,
    };
    let tb = files::load(&tok_path, "tokenizer")?;
    let tok = Tokenizer::from_bytes(&tb, rc.config.vocab_size)
        .with_context(|| format!("{}", tok_path.display()))?;
    let (rf, cf) = (rc.format, cc.format);
    let mut reference = Transformer::new(rc, Options::default())?;
    let numerics = a.numerics.into();
    let mut candidate = Transformer::new(cc, Options { numerics, ..Options::default() })?;
    let prompts: Vec<String> = if a.prompts.is_empty() {
        DEFAULT_PROMPTS.iter().map(|s| s.to_string()).collect()
    } else {
        a.prompts.clone()
    };
    let mut rows = Vec::new();
    let mut total = Agreement::default();
    for p in &prompts {
        let ids = tok.try_encode(p.as_bytes())?;
        let ag = compare(&mut reference, &mut candidate, &ids, a.steps)?;
        total.positions += ag.positions;
        total.top1_agree += ag.top1_agree;
        total.generated += ag.generated;
        total.greedy_prefix += ag.greedy_prefix;
        total.max_logit_diff = total.max_logit_diff.max(ag.max_logit_diff);
        rows.push((p.clone(), ag));
    }
    let mean_greedy = rows.iter().map(|r| r.1.greedy()).sum::<f64>() / rows.len() as f64;
    if a.json {
        let per: Vec<_> = rows
            .iter()
            .map(|(p, ag)| {
                serde_json::json!({
                    "prompt": p, "top1_agreement": ag.top1(), "greedy_agreement": ag.greedy(),
                    "greedy_prefix": ag.greedy_prefix, "generated": ag.generated,
                    "max_logit_diff": ag.max_logit_diff,
                })
            })
            .collect();
        let out = serde_json::json!({
            "reference": a.reference.display().to_string(), "reference_format": rf.to_string(),
            "candidate": a.candidate.display().to_string(), "candidate_format": cf.to_string(),
            "steps": a.steps, "prompts": per,
            "top1_agreement": total.top1(), "greedy_agreement": mean_greedy,
            "max_logit_diff": total.max_logit_diff,
        });
        outln!("{out}");
        return Ok(());
    }
    outln!("reference {} ({rf})", a.reference.display());
    outln!("candidate {} ({cf})", a.candidate.display());
    outln!("{:<40} {:>7} {:>9} {:>10}", "prompt", "top-1", "greedy", "max |dl|");
    for (p, ag) in &rows {
        let short: String = p.chars().take(38).collect();
        outln!(
            "{:<40} {:>6.1}% {:>4}/{:<4} {:>10.4}",
            format!("{short:?}"),
            100.0 * ag.top1(),
            ag.greedy_prefix,
            ag.generated,
            ag.max_logit_diff
        );
    }
    outln!(
        "mean top-1 agreement {:.2}% over {} positions; mean greedy agreement {:.2}%",
        100.0 * total.top1(),
        total.positions,
        100.0 * mean_greedy
    );
    outln!("{COLUMNS}");
    Ok(())
}
