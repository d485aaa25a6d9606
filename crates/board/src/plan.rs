//! How long a context fits in the memory left after the weights are placed.
//!
//! The KV cache grows linearly with the context (`2 * n_layers * seq_len * kv_dim` f32s), the
//! activations barely; the engine's [`RunState::size`] gives both for any `seq_len`, so the cap
//! is the largest `seq_len` whose state fits the budget, found by bisection.

use esp_llm_engine::model::{Config, Weights};
use esp_llm_engine::state::RunState;
use esp_llm_engine::Numerics;

/// The largest context in `1..=config.seq_len` whose run state fits in `budget` bytes, or
/// `None` if not even one position fits.
pub fn context_cap(config: &Config, weights: &Weights<'_>, budget: usize) -> Option<usize> {
    context_cap_for(config, weights, budget, Numerics::Float)
}

/// [`context_cap`] for the given numerics (the fixed-point KV cache takes half the bytes, so
/// about twice the positions fit).
pub fn context_cap_for(
    config: &Config,
    weights: &Weights<'_>,
    budget: usize,
    numerics: Numerics,
) -> Option<usize> {
    let fits = |seq: usize| {
        RunState::size(config, weights, seq, 1, numerics)
            .map(|s| s.total() <= budget)
            .unwrap_or(false)
    };
    if config.seq_len == 0 || !fits(1) {
        return None;
    }
    let (mut lo, mut hi) = (1, config.seq_len); // fits(lo) holds
    while lo < hi {
        let mid = lo + (hi - lo).div_ceil(2);
        if fits(mid) {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    Some(lo)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use esp_llm_engine::checkpoint::bundle::{Bundle, Quant};
    use esp_llm_engine::Checkpoint;

    #[test]
    fn bundles_are_read_in_place() {
        // Bundles keep every tensor 16-byte aligned, so from a 16-byte aligned buffer (the
        // firmware's copy or a 64 KB flash page) nothing is copied; a raw llama2.c file one
        // byte off is, which shows the check can fail.
        for (name, quant) in
            [("stories260K.bin", Quant::F32), ("stories260K_q80.bin", Quant::Q8(None))]
        {
            let blob = crate::model::tests::bundle_of(name, quant);
            let mut words = std::vec![0u128; blob.len().div_ceil(16)];
            // SAFETY: u128 has no padding and any byte pattern is a valid u8.
            let bytes = unsafe {
                std::slice::from_raw_parts_mut(words.as_mut_ptr().cast::<u8>(), words.len() * 16)
            };
            bytes[..blob.len()].copy_from_slice(&blob);
            let b = Bundle::parse(&bytes[..blob.len()]).unwrap();
            assert_eq!(b.checkpoint.weights.copied_bytes(), 0, "{name}");

            let raw =
                std::fs::read(esp_llm_fixtures::shared("models").join("stories260K.bin")).unwrap();
            let mut odd = std::vec![0u8; raw.len() + 1];
            odd[1..].copy_from_slice(&raw);
            let parsed = Checkpoint::parse(&odd[1..]).unwrap();
            assert!(parsed.weights.copied_bytes() > 0);
        }
    }

    #[test]
    fn cap_is_the_largest_context_that_fits() {
        let dir = esp_llm_fixtures::shared("models");
        for name in ["stories260K.bin", "stories260K_q80.bin"] {
            let bytes = std::fs::read(dir.join(name)).unwrap();
            let ckpt = Checkpoint::parse(&bytes).unwrap();
            let (c, w) = (&ckpt.config, &ckpt.weights);
            let full = RunState::size(c, w, c.seq_len, 1, Numerics::Float).unwrap().total();
            assert_eq!(context_cap(c, w, full), Some(c.seq_len), "{name}");
            assert_eq!(context_cap(c, w, usize::MAX), Some(c.seq_len));
            for budget in [full - 1, full / 2, full / 7] {
                let cap = context_cap(c, w, budget).unwrap();
                assert!(RunState::size(c, w, cap, 1, Numerics::Float).unwrap().total() <= budget);
                assert!(
                    RunState::size(c, w, cap + 1, 1, Numerics::Float).unwrap().total() > budget,
                    "{name} {budget}"
                );
            }
            let one = RunState::size(c, w, 1, 1, Numerics::Float).unwrap().total();
            assert_eq!(context_cap(c, w, one - 1), None);
        }
    }

    /// The fixed-point numerics keep keys and values as `i16`: the same budget holds about
    /// twice the context (measured 148 -> 290 positions in 200,000 bytes), and the cap is still
    /// exact.
    #[test]
    fn fixed_numerics_fit_about_twice_the_context() {
        let bytes =
            std::fs::read(esp_llm_fixtures::shared("models").join("stories260K_q80.bin")).unwrap();
        let ckpt = Checkpoint::parse(&bytes).unwrap();
        let (c, w) = (&ckpt.config, &ckpt.weights);
        let size = |seq, n| RunState::size(c, w, seq, 1, n).unwrap();
        assert_eq!(
            size(c.seq_len, Numerics::Fixed).kv_cache * 2,
            size(c.seq_len, Numerics::Float).kv_cache
        );
        let budget = 200_000;
        let float = context_cap_for(c, w, budget, Numerics::Float).unwrap();
        let fixed = context_cap_for(c, w, budget, Numerics::Fixed).unwrap();
        // (The attention scores, n_heads * seq_len f32s, also grow with the context.)
        assert!(fixed * 10 >= float * 19 && fixed <= 2 * float, "{float} -> {fixed}");
        assert!(size(fixed, Numerics::Fixed).total() <= budget);
        assert!(size(fixed + 1, Numerics::Fixed).total() > budget);
    }
}
