//! An int8 bundle, the file `esp-llm pack --quant q8` writes and `esp-llm flash` puts in a
//! board's `model` partition: packed here in memory from a llama2.c checkpoint and its
//! tokenizer (or read from a `.ellb` file), checked, and run with both numerics: float
//! (llama2.c's `runq.c`) and the fixed point the FPU-less chips (ESP32-C3, ESP32-C6) run.
//!
//! ```sh
//! cargo run --release -p esp-llm-engine --example bundle -- stories260K.bin tok512.bin
//! cargo run --release -p esp-llm-engine --example bundle -- stories260K_q8.ellb
//! ```
use esp_llm_engine::checkpoint::bundle::{self, Bundle, Quant};
use esp_llm_engine::{
    Checkpoint, Error, Event, Generator, Math, Numerics, Options, Sampler, Tokenizer, Transformer,
};

/// A q8 bundle of a llama2.c checkpoint (fp32 quantized with groups of
/// `bundle::DEFAULT_GROUP`; an int8 v2 file keeps its values and groups) with its tokenizer.
fn pack_q8(model: &[u8], tokenizer: &[u8]) -> Result<Vec<u8>, Error> {
    let checkpoint = Checkpoint::parse(model)?;
    let (bytes, _tensors) = bundle::pack(&checkpoint, tokenizer, Quant::Q8(None), &mut |_name| {})?;
    Ok(bytes)
}

/// The greedy story for `prompt` from a bundle, over `steps` forward passes, in `numerics`,
/// with `expf` & co. from `math` (the system's on a PC by default, the portable ones a board
/// runs).
fn story(
    bundle_bytes: &[u8],
    numerics: Numerics,
    math: Math,
    prompt: &str,
    steps: usize,
) -> Result<Vec<u8>, Error> {
    bundle::verify(bundle_bytes)?; // CRC-32: catches a partial or corrupted flash write
    let b = Bundle::parse(bundle_bytes)?; // weights and tokenizer borrowed from the bytes
    let vocab_size = b.checkpoint.config.vocab_size;
    let tokenizer = Tokenizer::from_bytes(b.tokenizer, vocab_size)?;
    let mut transformer =
        Transformer::new(b.checkpoint, Options { numerics, math, ..Options::default() })?;
    let mut sampler = Sampler::new(vocab_size, 0.0, 0.9, 1)?;
    sampler.math = math;
    let tokens = tokenizer.encode(prompt.as_bytes());
    let mut text = Vec::new();
    for event in Generator::new(&mut transformer, &tokenizer, &mut sampler, tokens, steps)? {
        if let Event::Token { text: piece, .. } = event? {
            text.extend_from_slice(piece);
        }
    }
    Ok(text)
}

#[cfg_attr(test, allow(dead_code))]
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let Some(model) = args.get(1) else {
        return Err("usage: bundle MODEL TOKENIZER | bundle BUNDLE.ellb".into());
    };
    let model = std::fs::read(model)?;
    let bytes = if bundle::is_bundle(&model) {
        model
    } else {
        let tokenizer = args.get(2).ok_or("a llama2.c checkpoint needs its tokenizer file")?;
        pack_q8(&model, &std::fs::read(tokenizer)?)?
    };
    let h = bundle::read_header(&bytes)?;
    println!(
        "bundle: {} bytes, {} tensors, dim {}, {} layers",
        bytes.len(),
        h.n_tensors,
        h.config.dim,
        h.config.n_layers
    );
    for numerics in [Numerics::Float, Numerics::Fixed] {
        let text = story(&bytes, numerics, Math::default(), "Once upon a time", 128)?;
        println!("{}: {}\n", numerics.name(), String::from_utf8_lossy(&text));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use esp_llm_fixtures::{goldens, model_bytes};

    /// Packed from llama2.c's int8 file, the bundle's float story is runq.c's greedy text
    /// (with the portable math, which follows the FMA build runq.c's cases were recorded with).
    #[test]
    fn q8_bundle_of_the_int8_file_tells_runq_story() {
        let bytes =
            pack_q8(&model_bytes("stories260K_q80.bin"), &model_bytes("tok512.bin")).unwrap();
        let mut checked = 0;
        for g in goldens().into_iter().filter(|g| g.engine == "runq.c" && g.mode == "greedy") {
            let text = story(&bytes, Numerics::Float, Math::Portable, &g.prompt, g.steps.unwrap())
                .unwrap();
            assert_eq!(String::from_utf8_lossy(&text), g.text.clone().unwrap(), "{}", g.name);
            checked += 1;
        }
        assert!(checked > 0, "no runq.c greedy golden case");
    }

    /// The fixed-point story of an fp32 model packed as q8 starts with the prompt and goes on;
    /// one flipped byte is refused by the checksum.
    #[test]
    fn fixed_point_runs_and_a_flipped_byte_is_refused() {
        let mut bytes =
            pack_q8(&model_bytes("stories260K.bin"), &model_bytes("tok512.bin")).unwrap();
        let fixed = story(&bytes, Numerics::Fixed, Math::Portable, "Sam saw a dog", 64).unwrap();
        assert!(
            fixed.starts_with(b"Sam saw a dog") && fixed.len() > 100,
            "{}",
            String::from_utf8_lossy(&fixed)
        );
        let n = bytes.len();
        bytes[n - 100] ^= 0x10;
        let err = story(&bytes, Numerics::Float, Math::Portable, "x", 8).unwrap_err();
        assert!(matches!(err, Error::Checksum { .. }), "{err}");
    }
}
