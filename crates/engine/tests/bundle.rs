//! The device bundle: packing reproduces the goldens, corruption is detected, and arbitrary
//! bytes never panic the parser.

use esp_llm_engine::checkpoint::bundle::{self, Bundle, Quant};
use esp_llm_engine::{
    Checkpoint, Event, Generator, Math, Options, Sampler, Tokenizer, Transformer,
};
use esp_llm_fixtures::*;
use proptest::prelude::*;

fn pack(model: &str, quant: Quant) -> Vec<u8> {
    let m = model_bytes(model);
    let tok = model_bytes("tok512.bin");
    let ck = Checkpoint::parse(&m).unwrap();
    bundle::pack(&ck, &tok, quant, &mut |_| {}).unwrap().0
}

/// Greedy/sampled tokens of a golden case run from a bundle (tokenizer from the bundle).
fn run_bundle(bytes: &[u8], g: &Golden) -> Vec<u32> {
    let b = Bundle::parse(bytes).unwrap();
    let tok = Tokenizer::from_bytes(b.tokenizer, b.checkpoint.config.vocab_size).unwrap();
    let vocab = b.checkpoint.config.vocab_size;
    let math = if g.portable_math() { Math::Portable } else { Math::default() };
    let mut t = Transformer::new(b.checkpoint, Options { math, ..Options::default() }).unwrap();
    let (temp, topp) = (g.temperature.unwrap(), g.topp.unwrap_or(0.9));
    let mut s = Sampler::new(vocab, temp, topp, g.seed.unwrap_or(0)).unwrap();
    s.math = math;
    let prompt = tok.encode(g.prompt.as_bytes());
    let mut out = vec![prompt[0]];
    for ev in Generator::new(&mut t, &tok, &mut s, prompt, g.steps.unwrap()).unwrap() {
        if let Event::Token { token, .. } = ev.unwrap() {
            out.push(token);
        }
    }
    out
}

#[test]
fn f32_bundle_reproduces_fp32_goldens() {
    let bytes = pack("stories260K.bin", Quant::F32);
    bundle::verify(&bytes).unwrap();
    for g in goldens().into_iter().filter(|g| g.engine == "run.c") {
        assert_eq!(run_bundle(&bytes, &g), g.tokens, "{}", g.name);
    }
}

#[test]
fn int8_bundle_from_v2_keeps_runq_results() {
    // Rows of 172 are padded to 176 and the padding quantizes to zero groups: same tokens.
    let bytes = pack("stories260K_q80.bin", Quant::Q8(None));
    for g in goldens().into_iter().filter(|g| g.engine == "runq.c") {
        assert_eq!(run_bundle(&bytes, &g), g.tokens, "{}", g.name);
    }
}

#[test]
fn every_section_is_16_byte_aligned_and_int8_rows_padded() {
    let bytes = pack("stories260K.bin", Quant::Q8(Some(64)));
    let b = Bundle::parse(&bytes).unwrap();
    assert_eq!(b.header.directory_offset % 16, 0);
    assert_eq!(b.header.tokenizer_offset % 16, 0);
    for e in &b.entries {
        assert_eq!(e.offset % 16, 0, "{:?}", e.kind);
        if e.group > 0 {
            assert_eq!(e.scales_offset % 16, 0);
            assert_eq!(e.stride % 16, 0);
            assert_eq!(e.stride % e.group, 0);
        }
    }
    let w2 = b.entries.iter().find(|e| e.kind.name() == "w2").unwrap();
    assert_eq!((w2.cols, w2.stride, w2.group), (172, 192, 64));
}

#[test]
fn single_byte_flips_are_detected() {
    let bytes = pack("stories260K.bin", Quant::Q8(Some(32)));
    bundle::verify(&bytes).unwrap();
    // Every byte of the header, directory and tokenizer, and a spread of tensor bytes.
    let tokenizer_end = {
        let b = Bundle::parse(&bytes).unwrap();
        (b.header.tokenizer_offset + b.header.tokenizer_len) as usize
    };
    let positions = (0..tokenizer_end)
        .chain((tokenizer_end..bytes.len()).step_by(101))
        .chain([bytes.len() - 1]);
    let mut copy = bytes.clone();
    let mut n = 0;
    for i in positions {
        copy[i] ^= 0x5a;
        let bad = bundle::verify(&copy).is_err() || Bundle::parse(&copy).is_err();
        assert!(bad, "flip at {i} not detected");
        copy[i] ^= 0x5a;
        n += 1;
    }
    assert!(n > 9000);
}

/// Rewrites directory entry `i`'s u32 at `field` (a byte offset in the entry) and re-seals the
/// CRC, so the parser (not the checksum) has to reject it.
fn patch_entry(bytes: &[u8], i: usize, field: usize, value: u32) -> Vec<u8> {
    let b = Bundle::parse(bytes).unwrap();
    let at = b.header.directory_offset as usize + i * bundle::ENTRY_SIZE + field;
    let mut out = bytes.to_vec();
    out[at..at + 4].copy_from_slice(&value.to_le_bytes());
    let crc = bundle::checksum(&out);
    out[bundle::CRC_OFFSET..bundle::CRC_OFFSET + 4].copy_from_slice(&crc.to_le_bytes());
    out
}

#[test]
fn int4_bundle_is_version_2_padded_and_runs() {
    let bytes = pack("stories260K.bin", Quant::Q4(32));
    bundle::verify(&bytes).unwrap();
    let b = Bundle::parse(&bytes).unwrap();
    assert_eq!(b.header.version, 2);
    for e in b.entries.iter().filter(|e| !e.kind.is_norm()) {
        assert_eq!(e.dtype, bundle::DType::Q4, "{:?}", e.kind);
        assert_eq!((e.offset % 16, e.scales_offset % 16, e.stride % 32), (0, 0, 0));
        assert!(e.stride >= e.cols && e.stride % e.group == 0);
    }
    let w2 = b.entries.iter().find(|e| e.kind.name() == "w2").unwrap();
    assert_eq!((w2.cols, w2.stride, w2.group), (172, 192, 32));
    // The int4 model still tells a story: greedy tokens are valid and not all one token.
    let g = goldens().into_iter().find(|g| g.engine == "run.c").unwrap();
    let toks = run_bundle(&bytes, &g);
    assert_eq!(toks.len(), g.tokens.len());
    assert!(toks.iter().all(|&t| t < 512));
    assert!(toks.windows(2).any(|w| w[0] != w[1]));
    // Without int4 tensors the bundle stays version 1, readable by older engines.
    let v1 = pack("stories260K.bin", Quant::Q8(Some(32)));
    assert_eq!(Bundle::parse(&v1).unwrap().header.version, 1);
}

#[test]
fn mixed_bundle_has_int4_tables_and_int8_layers() {
    let quant = Quant::Mixed {
        embedding: bundle::Precision::Q4(32),
        layers: bundle::Precision::Q8(Some(32)),
    };
    let m = model_bytes("stories260K.bin");
    let ck = Checkpoint::parse(&m).unwrap();
    let bytes = pack("stories260K.bin", quant);
    assert_eq!(
        bundle::packed_len(&ck, model_bytes("tok512.bin").len(), quant).unwrap(),
        bytes.len()
    );
    let b = Bundle::parse(&bytes).unwrap();
    for e in b.entries.iter().filter(|e| !e.kind.is_norm()) {
        let want =
            if e.kind.name() == "token_embedding" { bundle::DType::Q4 } else { bundle::DType::Q8 };
        assert_eq!(e.dtype, want, "{:?}", e.kind);
    }
    // Repacking with Keep gives the same bytes.
    let again = bundle::pack(&b.checkpoint, b.tokenizer, Quant::Keep, &mut |_| {}).unwrap().0;
    assert_eq!(again, bytes);
}

#[test]
fn bad_int4_entries_are_clear_errors() {
    let bytes = pack("stories260K.bin", Quant::Q4(32));
    let b = Bundle::parse(&bytes).unwrap();
    let i = b.entries.iter().position(|e| e.kind.name() == "wq").unwrap();
    // A group that is not a multiple of 16.
    let e = Bundle::parse(&patch_entry(&bytes, i, 20, 24)).unwrap_err().to_string();
    assert!(e.contains("wq") && e.contains("24"), "{e}");
    // A row stride shorter than the row (truncated nibble rows).
    let e = Bundle::parse(&patch_entry(&bytes, i, 16, 32)).unwrap_err().to_string();
    assert!(e.contains("wq"), "{e}");
    // A stride that is not whole 16-byte vectors.
    let e = Bundle::parse(&patch_entry(&bytes, i, 16, 80)).unwrap_err().to_string();
    assert!(e.contains("wq") && e.contains("32"), "{e}");
    // An int4 tensor in a version 1 bundle.
    let mut v1 = bytes.clone();
    v1[4..6].copy_from_slice(&1u16.to_le_bytes());
    let crc = bundle::checksum(&v1);
    v1[bundle::CRC_OFFSET..bundle::CRC_OFFSET + 4].copy_from_slice(&crc.to_le_bytes());
    let e = Bundle::parse(&v1).unwrap_err().to_string();
    assert!(e.contains("version 2"), "{e}");
    // A file cut inside the last int4 rows.
    let cut = &bytes[..bytes.len() - 40];
    assert!(Bundle::parse(cut).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn mutated_bundles_never_panic(pos in 0usize..1_000_000, val: u8, cut in 0usize..400_000) {
        thread_local! {
            static BYTES: Vec<u8> = pack("stories260K.bin", Quant::Q8(Some(32)));
        }
        BYTES.with(|b| {
            let mut m = b.clone();
            let i = pos % m.len();
            m[i] = val;
            let _ = Bundle::parse(&m);
            let _ = bundle::verify(&m);
            let _ = Checkpoint::parse(&m[..cut.min(m.len())]);
        });
    }

    #[test]
    fn arbitrary_bytes_never_panic(mut data in proptest::collection::vec(any::<u8>(), 0..600)) {
        if data.len() >= 4 {
            data[..4].copy_from_slice(b"ELLB");
        }
        let _ = Bundle::parse(&data);
        let _ = bundle::verify(&data);
        let _ = Checkpoint::parse(&data);
    }
}
