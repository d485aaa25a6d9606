//! Any bytes into the checkpoint parser (v0, v1, v2 and bundles): an error, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = esp_llm_engine::Checkpoint::parse(data);
});
