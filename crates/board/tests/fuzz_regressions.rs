//! Replays `fuzz/regressions/repl` (inputs of the `repl` fuzz target) on stable Rust.

use esp_llm_board::{command, line, line::LineAssembler, model, partition};
use std::path::Path;

#[test]
fn repl_regressions_replay() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/regressions/repl");
    let mut n = 0;
    for e in std::fs::read_dir(dir).unwrap() {
        let data = std::fs::read(e.unwrap().path()).unwrap();
        let mut lines = LineAssembler::<256>::new();
        let mut settings = command::Settings::default();
        let mut events = 0;
        for &b in &data {
            if let Some(ev) = lines.push(b) {
                events += 1;
                if let line::Event::Line(l) = ev {
                    if let Ok(c) = command::parse(l) {
                        settings.apply(&c);
                    }
                }
            }
        }
        assert!(events > 0);
        let _ = partition::entries(&data).count();
        let _ = partition::find_model(&data);
        let _ = model::probe(&data, data.len() as u64);
        n += 1;
    }
    assert!(n >= 1);
}
