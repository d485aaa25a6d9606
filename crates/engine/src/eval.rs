//! Comparing a model against a reference (int8 against fp32): how often they agree.
//!
//! Two figures per prompt. *Top-1 agreement*: feed both models the reference's greedy sequence
//! (teacher forcing) and count the positions where their most likely next tokens agree.
//! *Greedy agreement*: let each model generate greedily on its own and measure the share of
//! generated positions before their outputs first part.

use crate::error::{Error, Result};
use crate::generate::clamp_steps;
use crate::sampler::argmax;
use crate::transformer::Transformer;
use alloc::vec;
use alloc::vec::Vec;

/// Agreement of a candidate with a reference on one prompt.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Agreement {
    /// Positions compared under teacher forcing.
    pub positions: usize,
    /// Of those, positions where both argmaxes agree.
    pub top1_agree: usize,
    /// Largest absolute logit difference seen.
    pub max_logit_diff: f32,
    /// Generated (non-prompt) positions.
    pub generated: usize,
    /// Generated positions before the two greedy outputs first differ.
    pub greedy_prefix: usize,
}

impl Agreement {
    /// Top-1 agreement in [0, 1].
    pub fn top1(&self) -> f64 {
        self.top1_agree as f64 / self.positions.max(1) as f64
    }
    /// Greedy agreement in [0, 1].
    pub fn greedy(&self) -> f64 {
        self.greedy_prefix as f64 / self.generated.max(1) as f64
    }
}

/// Greedy tokens chosen after each position (prompt forced), `steps` forward passes.
fn greedy(t: &mut Transformer<'_>, prompt: &[u32], steps: usize) -> Result<Vec<u32>> {
    let mut out = Vec::with_capacity(steps);
    let mut token = prompt.first().copied().unwrap_or(crate::BOS);
    for pos in 0..steps {
        let logits = t.forward(token, pos)?;
        let next = if pos + 1 < prompt.len() { prompt[pos + 1] } else { argmax(logits) };
        out.push(next);
        token = next;
    }
    Ok(out)
}

/// Compares `candidate` with `reference` on one encoded prompt over `steps` positions.
pub fn compare(
    reference: &mut Transformer<'_>,
    candidate: &mut Transformer<'_>,
    prompt: &[u32],
    steps: usize,
) -> Result<Agreement> {
    let steps = clamp_steps(steps, reference.config.seq_len.min(candidate.config.seq_len));
    let ref_tokens = greedy(reference, prompt, steps)?;
    let cand_tokens = greedy(candidate, prompt, steps)?;
    let mut a = Agreement::default();
    let first_gen = prompt.len().saturating_sub(1);
    a.generated = steps.saturating_sub(first_gen);
    a.greedy_prefix = ref_tokens[first_gen.min(steps)..]
        .iter()
        .zip(&cand_tokens[first_gen.min(steps)..])
        .take_while(|(x, y)| x == y)
        .count();
    // Teacher forcing: both read the reference's sequence.
    let vocab = reference.config.vocab_size;
    if candidate.config.vocab_size != vocab {
        return Err(Error::BadLength {
            what: "candidate vocabulary",
            expected: vocab,
            got: candidate.config.vocab_size,
        });
    }
    let mut ref_logits = vec![0.0f32; vocab];
    let mut token = prompt.first().copied().unwrap_or(crate::BOS);
    for (pos, &next) in ref_tokens.iter().enumerate() {
        ref_logits.copy_from_slice(reference.forward(token, pos)?);
        let cand_logits = candidate.forward(token, pos)?;
        for (x, y) in ref_logits.iter().zip(cand_logits.iter()) {
            a.max_logit_diff = a.max_logit_diff.max(libm::fabsf(x - y));
        }
        a.positions += 1;
        a.top1_agree += usize::from(argmax(&ref_logits) == argmax(cand_logits));
        token = next;
    }
    Ok(a)
}
