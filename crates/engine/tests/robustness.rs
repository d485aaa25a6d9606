//! Bad bytes into every parser: errors, never panics. Proptest properties on stable, and the
//! fuzz regression inputs replayed.

use esp_llm_engine::checkpoint::bundle;
use esp_llm_engine::{Checkpoint, Options, Sampler, Tokenizer, Transformer};
use esp_llm_fixtures::*;
use proptest::prelude::*;
use std::path::Path;

/// What the `generate` fuzz target does: parse, then a few sampled steps on a small model.
fn load_and_generate(data: &[u8]) {
    let Ok(ck) = Checkpoint::parse(data) else { return };
    let c = ck.config;
    if c.dim * c.hidden_dim * c.n_layers > 1 << 20 || c.vocab_size > 1 << 12 {
        return;
    }
    let k = esp_llm_engine::kernels::best();
    let Ok(mut t) =
        Transformer::new(ck, Options { seq_len: Some(8), kernels: k, ..Options::default() })
    else {
        return;
    };
    let mut s = Sampler::new(c.vocab_size, 0.9, 0.9, 42).unwrap();
    let mut token = 1 % c.vocab_size as u32;
    for pos in 0..4 {
        let Ok(logits) = t.forward(token, pos) else { return };
        token = s.sample(logits);
        assert!((token as usize) < c.vocab_size);
    }
}

fn tokenizer_input(data: &[u8]) {
    if data.len() < 2 {
        return;
    }
    let vocab = u16::from_le_bytes([data[0], data[1]]) as usize % 600;
    let _ = Tokenizer::count_pieces(&data[2..]);
    if let Ok(t) = Tokenizer::from_bytes(&data[2..], vocab) {
        let ids = t.encode(b"Once upon a time \xff caf\xc3\xa9");
        for w in ids.windows(2) {
            let _ = t.decode(w[0], w[1]);
        }
    }
}

#[test]
fn fuzz_regressions_replay() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/regressions");
    let tok = model_bytes("tok512.bin");
    let tok = Tokenizer::from_bytes(&tok, 512).unwrap();
    let mut n = 0;
    for target in ["checkpoint", "bundle", "tokenizer", "encode", "generate"] {
        for e in std::fs::read_dir(dir.join(target)).unwrap() {
            let data = std::fs::read(e.unwrap().path()).unwrap();
            match target {
                "checkpoint" => {
                    let _ = Checkpoint::parse(&data);
                }
                "bundle" => {
                    let _ = bundle::Bundle::parse(&data);
                    let _ = bundle::verify(&data);
                }
                "tokenizer" => tokenizer_input(&data),
                "encode" => assert!(tok.encode(&data).iter().all(|&i| i < 512)),
                _ => load_and_generate(&data),
            }
            n += 1;
        }
    }
    assert!(n >= 12, "regression inputs found: {n}");
}

fn mutate(mut data: Vec<u8>, edits: &[(usize, u8)], cut: usize) -> Vec<u8> {
    for &(pos, val) in edits {
        let i = pos % data.len();
        data[i] = val;
    }
    data.truncate(cut.min(data.len()));
    data
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    #[test]
    fn arbitrary_bytes_as_checkpoint(data in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = Checkpoint::parse(&data);
        load_and_generate(&data);
    }

    #[test]
    fn arbitrary_header_then_zeros(fields in proptest::array::uniform7(any::<i32>()), extra in 0usize..4096) {
        let mut data: Vec<u8> = fields.iter().flat_map(|f| f.to_le_bytes()).collect();
        data.resize(28 + extra, 0);
        load_and_generate(&data);
    }

    #[test]
    fn mutated_real_checkpoints(
        which in 0usize..2,
        edits in proptest::collection::vec((0usize..300, any::<u8>()), 1..4),
        cut in 0usize..2_000_000,
    ) {
        thread_local! {
            static FILES: [Vec<u8>; 2] = [model_bytes("stories260K.bin"), model_bytes("stories260K_q80.bin")];
        }
        // Edits land in the header (first 300 bytes), where they change the layout.
        FILES.with(|f| {
            let data = mutate(f[which].clone(), &edits, cut);
            let _ = Checkpoint::parse(&data);
        });
    }

    #[test]
    fn arbitrary_tokenizer_files(data in proptest::collection::vec(any::<u8>(), 0..1024)) {
        tokenizer_input(&data);
    }

    #[test]
    fn mutated_real_tokenizer(edits in proptest::collection::vec((0usize..6227, any::<u8>()), 1..6), cut in 0usize..7000) {
        let data = mutate(model_bytes("tok512.bin"), &edits, cut);
        if let Ok(t) = Tokenizer::from_bytes(&data, 512) {
            let ids = t.encode(b"Lily went to the park");
            prop_assert!(ids.iter().all(|&i| i < 512));
        }
    }

    #[test]
    fn encode_arbitrary_bytes(data in proptest::collection::vec(any::<u8>(), 0..200)) {
        thread_local! {
            static TOK: Vec<u8> = model_bytes("tok512.bin");
        }
        TOK.with(|b| {
            let t = Tokenizer::from_bytes(b, 512).unwrap();
            let ids = t.encode(&data);
            assert_eq!(ids.first(), Some(&1));
            for w in ids.windows(2) {
                let _ = t.decode(w[0], w[1]);
            }
        });
    }
}
