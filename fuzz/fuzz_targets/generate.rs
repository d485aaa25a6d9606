//! Load-then-generate: any file that parses as a small model runs a few steps of sampling
//! without panicking (NaN or infinite weights included), with the float numerics and, for
//! int8 models, the fixed-point ones (built with overflow checks: any unchecked overflow in
//! the integer path is a crash here).
#![no_main]
use esp_llm_engine::{Checkpoint, Numerics, Options, Sampler, Transformer};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for numerics in [Numerics::Float, Numerics::Fixed] {
        let Ok(ck) = Checkpoint::parse(data) else { return };
        let c = ck.config;
        // Keep each run cheap: the point is the control flow, not big matmuls.
        if c.dim * c.hidden_dim * c.n_layers > 1 << 20 || c.vocab_size > 1 << 12 {
            return;
        }
        let options = Options { seq_len: Some(8), numerics, ..Options::default() };
        // fp32 models are refused by the fixed numerics (with an error, tested elsewhere).
        let Ok(mut t) = Transformer::new(ck, options) else { continue };
        let Ok(mut s) = Sampler::new(c.vocab_size, 0.9, 0.9, 42) else { return };
        let mut token = 1u32 % c.vocab_size as u32;
        for pos in 0..4 {
            let Ok(logits) = t.forward(token, pos) else { return };
            token = s.sample(logits);
            assert!((token as usize) < c.vocab_size);
        }
    }
});
