//! Any bytes into the bundle parser and checksum verification.
#![no_main]
use esp_llm_engine::checkpoint::bundle;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = bundle::read_header(data);
    let _ = bundle::verify(data);
    if let Ok(b) = bundle::Bundle::parse(data) {
        let _ = esp_llm_engine::Tokenizer::from_bytes(b.tokenizer, b.checkpoint.config.vocab_size);
    }
});
