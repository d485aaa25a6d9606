//! Other layouts of the same weights give the same tokens: llama2.c v1 ("ak42", fp32) and a v0
//! file with an unshared classifier (negative vocab_size, wcls appended).

use esp_llm_engine::{
    Checkpoint, Event, Format, Generator, Options, Sampler, Tokenizer, Transformer,
};
use esp_llm_fixtures::*;

/// Byte ranges of the v0 sections of stories260K, in file order.
fn v0_sections(v0: &[u8]) -> Vec<&[u8]> {
    let sizes = stories260k_v0_sections();
    let mut at = 28;
    sizes
        .iter()
        .map(|n| {
            let b = &v0[at..at + n * 4];
            at += n * 4;
            b
        })
        .collect()
}

fn greedy(model: &[u8], steps: usize) -> Vec<u32> {
    let tok_bytes = model_bytes("tok512.bin");
    let tok = Tokenizer::from_bytes(&tok_bytes, 512).unwrap();
    let mut t = Transformer::new(Checkpoint::parse(model).unwrap(), Options::default()).unwrap();
    let mut s = Sampler::new(512, 0.0, 0.9, 1).unwrap();
    let prompt = tok.encode(b"Once upon a time");
    Generator::new(&mut t, &tok, &mut s, prompt, steps)
        .unwrap()
        .filter_map(|e| match e.unwrap() {
            Event::Token { token, .. } => Some(token),
            Event::Done(_) => None,
        })
        .collect()
}

#[test]
fn v1_file_runs_like_v0() {
    let v0 = model_bytes("stories260K.bin");
    let s = v0_sections(&v0);
    // v1: 256-byte header (magic, version 1, the 7 fields, shared flag), then rms_att, rms_ffn,
    // rms_final, token_embedding, wq, wk, wv, wo, w1, w2, w3.
    let mut v1 = 0x616b3432u32.to_le_bytes().to_vec();
    v1.extend_from_slice(&1i32.to_le_bytes());
    v1.extend_from_slice(&v0[..28]);
    v1.push(1);
    v1.resize(256, 0);
    for i in [1, 6, 10, 0, 2, 3, 4, 5, 7, 8, 9] {
        v1.extend_from_slice(s[i]);
    }
    let ck = Checkpoint::parse(&v1).unwrap();
    assert_eq!(ck.format, Format::V1);
    assert!(ck.config.shared_classifier);
    assert_eq!(greedy(&v1, 120), greedy(&v0, 120));
    // Truncated or extended v1 files are errors.
    assert!(Checkpoint::parse(&v1[..v1.len() - 4]).is_err());
    let mut long = v1.clone();
    long.push(0);
    assert!(Checkpoint::parse(&long).is_err());
}

#[test]
fn unshared_classifier_runs_like_shared() {
    let v0 = model_bytes("stories260K.bin");
    let s = v0_sections(&v0);
    let mut un = v0.clone();
    un[20..24].copy_from_slice(&(-512i32).to_le_bytes());
    un.extend_from_slice(s[0]); // wcls = a copy of the embedding
    let ck = Checkpoint::parse(&un).unwrap();
    assert!(!ck.config.shared_classifier);
    assert!(ck.weights.wcls.is_some());
    assert_eq!(greedy(&un, 120), greedy(&v0, 120));
    // Without its wcls the file is too short.
    assert!(Checkpoint::parse(&un[..v0.len()]).is_err());
}
