//! Any bytes as a tokenizer file, for a vocabulary size taken from the first two bytes; then
//! encode and decode with whatever loaded.
#![no_main]
use esp_llm_engine::Tokenizer;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let vocab = u16::from_le_bytes([data[0], data[1]]) as usize % 600;
    let file = &data[2..];
    let _ = Tokenizer::count_pieces(file);
    if let Ok(t) = Tokenizer::from_bytes(file, vocab) {
        let ids = t.encode(b"Once upon a time \xff\xfe caf\xc3\xa9");
        for w in ids.windows(2) {
            let _ = t.decode(w[0], w[1]);
        }
        let _ = t.decode(1, u32::MAX);
    }
});
