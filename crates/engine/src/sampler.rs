//! Picking the next token from logits, exactly as llama2.c's `run.c` does.
//!
//! Temperature 0 is argmax (first maximum). Otherwise the logits are divided by the temperature,
//! softmaxed, and one `random_f32` coin picks a token: from the whole distribution when
//! `topp <= 0 || topp >= 1`, else from the smallest set of most likely tokens whose probability
//! exceeds `topp` (nucleus sampling; tokens below `(1 - topp) / (n - 1)` are dropped before
//! sorting, as run.c does). The RNG is run.c's xorshift64* so a seed gives the same story.

use crate::error::{Error, Result};
use crate::math::Math;
use alloc::vec::Vec;

/// run.c's `random_u32`: xorshift64* returning the high 32 bits.
pub fn random_u32(state: &mut u64) -> u32 {
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    (state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 32) as u32
}

/// run.c's `random_f32`: a float in [0, 1).
pub fn random_f32(state: &mut u64) -> f32 {
    (random_u32(state) >> 8) as f32 / 16_777_216.0f32
}

/// Sampling settings and state.
#[derive(Debug, Clone)]
pub struct Sampler {
    /// 0 = greedy.
    pub temperature: f32,
    /// Nucleus threshold; outside (0, 1) samples from the full distribution.
    pub topp: f32,
    /// xorshift state.
    pub rng_state: u64,
    /// Where the softmax's `expf` comes from ([`Math::default`] unless set).
    pub math: Math,
    probindex: Vec<(f32, u32)>,
}

impl Sampler {
    /// A sampler for `vocab_size` logits. Temperature must be finite and >= 0, top-p in [0, 1].
    pub fn new(vocab_size: usize, temperature: f32, topp: f32, seed: u64) -> Result<Self> {
        if !(temperature.is_finite() && temperature >= 0.0) {
            return Err(Error::BadSetting {
                name: "temperature",
                value: temperature,
                reason: "must be a finite number >= 0 (0 = greedy)",
            });
        }
        if !(0.0..=1.0).contains(&topp) {
            return Err(Error::BadSetting {
                name: "top-p",
                value: topp,
                reason: "must be between 0 and 1",
            });
        }
        let mut probindex = Vec::new();
        probindex.try_reserve_exact(vocab_size).map_err(|_| Error::OutOfMemory {
            what: "sampler",
            bytes: vocab_size.saturating_mul(8),
        })?;
        Ok(Sampler { temperature, topp, rng_state: seed, math: Math::default(), probindex })
    }

    /// Picks a token; `logits` is overwritten (scaled and softmaxed) unless greedy.
    pub fn sample(&mut self, logits: &mut [f32]) -> u32 {
        if self.temperature == 0.0 {
            return argmax(logits);
        }
        for l in logits.iter_mut() {
            *l /= self.temperature;
        }
        self.math.softmax(logits);
        let coin = random_f32(&mut self.rng_state);
        if self.topp <= 0.0 || self.topp >= 1.0 {
            sample_mult(logits, coin)
        } else {
            sample_topp(logits, self.topp, &mut self.probindex, coin)
        }
    }
}

/// Index of the first maximum.
pub fn argmax(p: &[f32]) -> u32 {
    let mut best = 0;
    let mut max_p = p.first().copied().unwrap_or(0.0);
    for (i, &v) in p.iter().enumerate().skip(1) {
        if v > max_p {
            best = i;
            max_p = v;
        }
    }
    best as u32
}

fn sample_mult(p: &[f32], coin: f32) -> u32 {
    let mut cdf = 0.0f32;
    for (i, &v) in p.iter().enumerate() {
        cdf += v;
        if coin < cdf {
            return i as u32;
        }
    }
    p.len().saturating_sub(1) as u32
}

fn sample_topp(p: &[f32], topp: f32, probindex: &mut Vec<(f32, u32)>, coin: f32) -> u32 {
    let n = p.len();
    let cutoff = (1.0f32 - topp) / (n as f32 - 1.0);
    probindex.clear();
    probindex
        .extend(p.iter().enumerate().filter(|(_, &v)| v >= cutoff).map(|(i, &v)| (v, i as u32)));
    // Descending by probability; stable like glibc's merge-sort qsort.
    probindex.sort_by(|a, b| b.0.partial_cmp(&a.0).unwrap_or(core::cmp::Ordering::Equal));
    let Some(&(_, first)) = probindex.first() else { return argmax(p) };
    let mut cumulative = 0.0f32;
    let mut last = probindex.len() - 1;
    for (i, &(v, _)) in probindex.iter().enumerate() {
        cumulative += v;
        if cumulative > topp {
            last = i;
            break;
        }
    }
    let r = coin * cumulative;
    let mut cdf = 0.0f32;
    for &(v, idx) in &probindex[..=last] {
        cdf += v;
        if r < cdf {
            return idx;
        }
    }
    probindex.get(last).map_or(first, |e| e.1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xorshift_matches_c() {
        // First outputs of run.c's random_u32 from state 42, computed with the C expression by
        // hand-checked u64 arithmetic (wrapping multiply, high half).
        let mut s = 42u64;
        let a = random_u32(&mut s);
        let mut t = 42u64;
        t ^= t >> 12;
        t ^= t << 25;
        t ^= t >> 27;
        assert_eq!(a, ((t as u128 * 0x2545F4914F6CDD1Du128) as u64 >> 32) as u32);
        assert_eq!(s, t);
    }

    #[test]
    fn bad_settings_are_errors() {
        assert!(Sampler::new(10, -1.0, 0.9, 1).is_err());
        assert!(Sampler::new(10, f32::NAN, 0.9, 1).is_err());
        assert!(Sampler::new(10, 1.0, 1.5, 1).is_err());
        assert!(Sampler::new(10, 1.0, 0.9, 1).is_ok());
    }

    #[test]
    fn argmax_takes_first_max() {
        assert_eq!(argmax(&[1.0, 3.0, 3.0, 2.0]), 1);
    }
}
