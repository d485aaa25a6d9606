//! Arbitrary text, valid UTF-8 or not, through both real tokenizers; every id must be in the
//! vocabulary and decode without panicking.
#![no_main]
use esp_llm_engine::Tokenizer;
use libfuzzer_sys::fuzz_target;

static TOK512: &[u8] = include_bytes!(concat!(env!("ESP_LLM_MODELS_DIR"), "/tok512.bin"));
static TOK32000: &[u8] = include_bytes!(concat!(env!("ESP_LLM_MODELS_DIR"), "/tokenizer.bin"));

static LOADED: std::sync::OnceLock<[(Tokenizer<'static>, usize); 2]> = std::sync::OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let both = LOADED.get_or_init(|| {
        [(TOK512, 512usize), (TOK32000, 32000)]
            .map(|(b, v)| (Tokenizer::from_bytes(b, v).expect("fixture tokenizer loads"), v))
    });
    for (t, vocab) in both {
        let vocab = *vocab;
        let ids = t.encode(data);
        assert!(ids.iter().all(|&i| (i as usize) < vocab));
        assert_eq!(ids.first(), Some(&1));
        for w in ids.windows(2) {
            let _ = t.decode(w[0], w[1]);
        }
    }
});
