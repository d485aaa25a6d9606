//! A story from a model held in memory, the text `esp-llm run -t 0` prints:
//!
//! ```sh
//! cargo run --release -p esp-llm-engine --example story -- stories260K.bin tok512.bin "Once upon a time"
//! ```
//!
//! The engine reads the weights in place from the byte slice (a file read into memory here; a
//! memory-mapped file or a flash partition on a board), so only the run state is allocated.
use esp_llm_engine::{Checkpoint, Event, Generator, Options, Sampler, Tokenizer, Transformer};
use std::error::Error;
use std::io::Write;

/// Writes the story that follows `prompt` to `out`, prompt included, greedy (temperature 0),
/// over `steps` forward passes (the prompt's included; 0 = the whole context).
fn story(
    model: &[u8],
    tokenizer: &[u8],
    prompt: &str,
    steps: usize,
    out: &mut dyn Write,
) -> Result<(), Box<dyn Error>> {
    let checkpoint = Checkpoint::parse(model)?; // llama2.c v0/v1/v2 or an esp-llm bundle
    let vocab_size = checkpoint.config.vocab_size;
    let tokenizer = Tokenizer::from_bytes(tokenizer, vocab_size)?;
    let mut transformer = Transformer::new(checkpoint, Options::default())?;
    let mut sampler = Sampler::new(vocab_size, 0.0, 0.9, 1)?; // temperature, top-p, seed
    let tokens = tokenizer.encode(prompt.as_bytes()); // BOS first, as run.c
    for event in Generator::new(&mut transformer, &tokenizer, &mut sampler, tokens, steps)? {
        if let Event::Token { text, .. } = event? {
            out.write_all(text)?; // the bytes run.c prints for this token
        }
    }
    Ok(())
}

#[cfg_attr(test, allow(dead_code))]
fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().collect();
    let (Some(model), Some(tokenizer)) = (args.get(1), args.get(2)) else {
        return Err("usage: story MODEL TOKENIZER [PROMPT]".into());
    };
    let prompt = args.get(3).map_or("Once upon a time", String::as_str);
    let mut out = std::io::stdout();
    story(&std::fs::read(model)?, &std::fs::read(tokenizer)?, prompt, 256, &mut out)?;
    writeln!(out)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use esp_llm_fixtures::{goldens, model_bytes};

    /// The example's story is llama2.c's text for every greedy fp32 golden case.
    #[test]
    fn story_is_llama2c_text() {
        let mut checked = 0;
        for g in goldens() {
            let model = g.model.clone().unwrap_or_default();
            let Some(steps) = g.steps else { continue };
            if g.engine != "run.c" || g.mode != "greedy" {
                continue;
            }
            let mut out = Vec::new();
            let (m, t) = (model_bytes(&model), model_bytes(&g.tokenizer));
            super::story(&m, &t, &g.prompt, steps, &mut out).unwrap();
            assert_eq!(String::from_utf8_lossy(&out), g.text.clone().unwrap(), "{}", g.name);
            checked += 1;
        }
        assert!(checked > 0, "no greedy fp32 golden case");
    }
}
