//! Streaming through a callback, and stopping early: the shape of a UI, a serial console or a
//! C API on top of the engine. Prints sampled stories (temperature 0.8, top-p 0.9) one
//! sentence at a time, stopping each story after its first `sentences` sentences:
//!
//! ```sh
//! cargo run --release -p esp-llm-engine --example stream -- stories260K.bin tok512.bin 2
//! ```
use esp_llm_engine::{
    Checkpoint, Error, Event, Generator, Options, Sampler, Stop, Tokenizer, Transformer,
};

/// Why [`generate`] returned.
#[derive(Debug, PartialEq)]
enum End {
    /// The engine stopped: all steps run, or the model ended the story (BOS).
    Engine(Stop),
    /// `on_piece` returned false.
    Callback,
}

/// Runs `prompt` and hands each token's text to `on_piece` as soon as it is sampled; returning
/// `false` from it stops generation there (no further forward pass is run).
fn generate(
    transformer: &mut Transformer<'_>,
    tokenizer: &Tokenizer<'_>,
    sampler: &mut Sampler,
    prompt: &str,
    steps: usize,
    mut on_piece: impl FnMut(&[u8]) -> bool,
) -> Result<End, Error> {
    let tokens = tokenizer.encode(prompt.as_bytes());
    for event in Generator::new(transformer, tokenizer, sampler, tokens, steps)? {
        match event? {
            Event::Token { text, .. } => {
                if !on_piece(text) {
                    return Ok(End::Callback);
                }
            }
            Event::Done(stop) => return Ok(End::Engine(stop)),
        }
    }
    unreachable!("the generator ends with Event::Done")
}

/// A callback that copies pieces into `text` and says stop once it holds `n` full stops.
fn first_sentences(text: &mut Vec<u8>, n: usize) -> impl FnMut(&[u8]) -> bool + '_ {
    move |piece| {
        text.extend_from_slice(piece);
        text.iter().filter(|&&b| b == b'.').count() < n
    }
}

#[cfg_attr(test, allow(dead_code))]
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let (Some(model), Some(tokenizer)) = (args.get(1), args.get(2)) else {
        return Err("usage: stream MODEL TOKENIZER [SENTENCES]".into());
    };
    let sentences: usize = args.get(3).map_or(Ok(2), |s| s.parse())?;
    let (model, tokenizer) = (std::fs::read(model)?, std::fs::read(tokenizer)?);
    let checkpoint = Checkpoint::parse(&model)?;
    let vocab_size = checkpoint.config.vocab_size;
    let tokenizer = Tokenizer::from_bytes(&tokenizer, vocab_size)?;
    let mut transformer = Transformer::new(checkpoint, Options::default())?;
    let mut sampler = Sampler::new(vocab_size, 0.8, 0.9, 42)?;
    for prompt in ["Once upon a time", "Lily saw a big dog", "The sun was hot"] {
        let mut text = Vec::new();
        let end = generate(
            &mut transformer,
            &tokenizer,
            &mut sampler,
            prompt,
            0,
            first_sentences(&mut text, sentences),
        )?;
        println!("{} [{end:?}]", String::from_utf8_lossy(&text));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use esp_llm_fixtures::{goldens, model_bytes};

    /// Stopped after its first sentence, a sampled story is the start of llama2.c's text for
    /// the same seed, cut at the first full stop after the prompt; run to the end, it is the
    /// whole text.
    #[test]
    fn streamed_pieces_are_llama2c_text_and_the_callback_stops_it() {
        let mut checked = 0;
        for g in goldens() {
            let (Some(steps), Some(seed)) = (g.steps, g.seed) else { continue };
            if g.engine != "run.c" || g.prompt.is_empty() {
                continue;
            }
            let golden = g.text.clone().unwrap().into_bytes();
            let (m, t) = (model_bytes(g.model.as_deref().unwrap()), model_bytes(&g.tokenizer));
            let ck = Checkpoint::parse(&m).unwrap();
            let vocab = ck.config.vocab_size;
            let tok = Tokenizer::from_bytes(&t, vocab).unwrap();
            let mut tr = Transformer::new(ck, Options::default()).unwrap();
            let (temp, topp) = (g.temperature.unwrap(), g.topp.unwrap());

            let mut all = Vec::new();
            let mut sampler = Sampler::new(vocab, temp, topp, seed).unwrap();
            let end = generate(&mut tr, &tok, &mut sampler, &g.prompt, steps, |p| {
                all.extend_from_slice(p);
                true
            })
            .unwrap();
            assert_eq!(all, golden, "{}: whole text", g.name);
            assert_eq!(
                end,
                End::Engine(if g.stop.as_deref() == Some("bos") { Stop::Bos } else { Stop::Steps })
            );

            let prompt_dots = g.prompt.bytes().filter(|&b| b == b'.').count();
            let Some(cut) = golden.iter().enumerate().filter(|(_, &b)| b == b'.').nth(prompt_dots)
            else {
                continue;
            };
            let mut first = Vec::new();
            let mut sampler = Sampler::new(vocab, temp, topp, seed).unwrap();
            let end = generate(
                &mut tr,
                &tok,
                &mut sampler,
                &g.prompt,
                steps,
                first_sentences(&mut first, prompt_dots + 1),
            )
            .unwrap();
            assert_eq!(end, End::Callback, "{}", g.name);
            // The piece holding the full stop may carry more bytes after it.
            assert!(
                first.len() > cut.0 && golden.starts_with(&first),
                "{}: {:?}",
                g.name,
                String::from_utf8_lossy(&first)
            );
            checked += 1;
        }
        assert!(checked > 0, "no sampled fp32 golden case with a prompt");
    }
}
