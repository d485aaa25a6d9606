//! The firmware's serial side: arbitrary bytes through the line assembler, every line through
//! the command parser and the settings, and the same bytes as a partition table and as the
//! head of a model partition. Errors and messages, never a panic (a panic is a reboot loop).
#![no_main]
use esp_llm_board::{command, line::LineAssembler, model, partition};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut lines = LineAssembler::<256>::new();
    let mut settings = command::Settings::default();
    for &b in data {
        if let Some(esp_llm_board::line::Event::Line(l)) = lines.push(b) {
            if let Ok(c) = command::parse(l) {
                settings.apply(&c);
            }
        }
    }
    for e in partition::entries(data) {
        let _ = e;
    }
    let _ = partition::find_model(data);
    let _ = model::probe(data, data.len() as u64);
});
