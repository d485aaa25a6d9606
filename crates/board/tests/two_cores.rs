//! The firmware's path on the host: a model packed into a bundle, verified, parsed, and run
//! with the two-core workers (second "core" = a std thread serving the same `JobSlot` loop the
//! firmware runs on core 1) must give exactly the tokens and logits of the serial engine.

use esp_llm_board::cores::{JobSlot, TwoCores};
use esp_llm_engine::checkpoint::bundle::{self, Bundle, Quant};
use esp_llm_engine::parallel::{Serial, Workers};
use esp_llm_engine::{Checkpoint, Event, Generator, Options, Sampler, Tokenizer, Transformer};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Counts the jobs that reach the workers, to prove the second worker was really used.
struct Counting<'w, W: Workers>(&'w W, &'w AtomicUsize);

impl<W: Workers> Workers for Counting<'_, W> {
    fn count(&self) -> usize {
        self.0.count()
    }
    fn run(&self, job: &(dyn Fn(usize) + Sync)) {
        self.1.fetch_add(1, Ordering::Relaxed);
        self.0.run(job)
    }
}

/// Tokens and the bit patterns of every logit of a greedy run.
fn run(
    blob: &[u8],
    workers: Box<dyn Workers + '_>,
    prompt: &str,
    temperature: f32,
) -> (Vec<u32>, Vec<u32>, Vec<u8>) {
    bundle::verify(blob).unwrap();
    let b = Bundle::parse(blob).unwrap();
    let ckpt = b.checkpoint;
    let tok = Tokenizer::from_bytes(b.tokenizer, ckpt.config.vocab_size).unwrap();
    let mut t =
        Transformer::new(ckpt, Options { seq_len: Some(64), workers, ..Options::default() })
            .unwrap();
    let prompt = tok.encode(prompt.as_bytes());
    // Logits of the first steps, straight from forward.
    let mut bits = Vec::new();
    for (pos, &token) in prompt.iter().enumerate() {
        bits.extend(t.forward(token, pos).unwrap().iter().map(|x| x.to_bits()));
    }
    let mut sampler = Sampler::new(t.config.vocab_size, temperature, 0.9, 7).unwrap();
    let mut tokens = Vec::new();
    let mut text = Vec::new();
    for ev in Generator::new(&mut t, &tok, &mut sampler, prompt, 64).unwrap() {
        match ev.unwrap() {
            Event::Token { token, text: piece, .. } => {
                tokens.push(token);
                text.extend_from_slice(piece);
            }
            Event::Done(_) => break,
        }
    }
    (tokens, bits, text)
}

#[test]
fn two_cores_match_serial_exactly() {
    let dir = esp_llm_fixtures::shared("models");
    let tok = std::fs::read(dir.join("tok512.bin")).unwrap();
    for (name, quant) in [("stories260K.bin", Quant::F32), ("stories260K_q80.bin", Quant::Q8(None))]
    {
        let raw = std::fs::read(dir.join(name)).unwrap();
        let parsed = Checkpoint::parse(&raw).unwrap();
        let blob = bundle::pack(&parsed, &tok, quant, &mut |_| {}).unwrap().0;
        for (prompt, temperature) in [("Once upon a time", 0.0), ("Lily liked", 1.0)] {
            let serial = run(&blob, Box::new(Serial), prompt, temperature);
            let slot = JobSlot::new();
            let two = std::thread::scope(|s| {
                let w = TwoCores::start(
                    &slot,
                    |sl| {
                        s.spawn(move || sl.serve());
                    },
                    u64::MAX,
                )
                .unwrap();
                let jobs = AtomicUsize::new(0);
                let r = run(&blob, Box::new(Counting(&w, &jobs)), prompt, temperature);
                w.stop();
                // With the engine's split threshold only the classifier (512 x 64) is split for
                // stories260K: one job per position.
                assert!(jobs.into_inner() >= 50, "the second worker was hardly used");
                r
            });
            assert!(!serial.0.is_empty());
            assert_eq!(serial, two, "{name} {prompt:?} t={temperature}");
        }
    }
}
