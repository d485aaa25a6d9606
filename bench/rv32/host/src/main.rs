//! `rv32bench-host MODEL_FILE|q8fx|q8g32|q4g32 [scalar|unrolled]`: greedy, 64 steps from "Once upon a time" with
//! `engine::Generator` on the host; prints the `tokens:`/`text:` lines of the RV32 benchmark.
//! The models are found like the engine's tests do: `$ESP_LLM_MODELS`, else `shared/models`
//! in the nearest ancestor directory. `q8fx` is the RV32 benchmark's fixed-point configuration:
//! stories260K.bin packed as an int8 bundle with groups of 64 (as its build.rs does), run with
//! `Numerics::Fixed`. `q8g32` and `q4g32` are bench/lx7's `int8` and `int4` configurations:
//! stories260K.bin packed with groups of 32 as int8 or int4, float numerics.

use esp_llm_engine::checkpoint::bundle::{self, Quant};
use esp_llm_engine::kernels::{Kernels, Scalar, Unrolled};
use esp_llm_engine::parallel::Serial;
use esp_llm_engine::{
    Checkpoint, Event, Generator, Math, Numerics, Options, Sampler, Stop, Tokenizer, Transformer,
};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[path = "../../src/report.rs"]
mod report;

const PROMPT: &[u8] = b"Once upon a time";
const STEPS: usize = 64;

fn models_dir() -> Result<PathBuf, String> {
    if let Some(dir) = std::env::var_os("ESP_LLM_MODELS") {
        return Ok(PathBuf::from(dir));
    }
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    here.ancestors().map(|d| d.join("shared").join("models")).find(|c| c.is_dir()).ok_or_else(
        || format!("cannot find shared/models above {} (set ESP_LLM_MODELS)", here.display()),
    )
}

fn run(model_file: &str, kernels: &'static dyn Kernels) -> Result<String, String> {
    let dir = models_dir()?;
    let read =
        |f: &str| std::fs::read(dir.join(f)).map_err(|e| format!("{}: {e}", dir.join(f).display()));
    let tok_bytes = read("tok512.bin")?;
    // q8fx: bench/rv32's fixed-point configuration (groups of 64); q8g32: bench/lx7's int8
    // configuration (the S3 firmware's bundle: groups of 32, float numerics); q4g32: bench/lx7's
    // int4 configuration (`esp-llm pack --quant q4`: groups of 32, float numerics).
    let packed = match model_file {
        "q8fx" => Some((Quant::Q8(Some(64)), Numerics::Fixed)),
        "q8g32" => Some((Quant::Q8(Some(32)), Numerics::Float)),
        "q4g32" => Some((Quant::Q4(bundle::DEFAULT_Q4_GROUP), Numerics::Float)),
        _ => None,
    };
    let (model, numerics) = if let Some((quant, numerics)) = packed {
        let src = read("stories260K.bin")?;
        let ck = Checkpoint::parse(&src).map_err(|e| e.to_string())?;
        let (bytes, _) =
            bundle::pack(&ck, &tok_bytes, quant, &mut |_| {}).map_err(|e| e.to_string())?;
        (bytes, numerics)
    } else {
        (read(model_file)?, Numerics::Float)
    };
    let ckpt = Checkpoint::parse(&model).map_err(|e| e.to_string())?;
    let vocab = ckpt.config.vocab_size;
    // The boards' (portable) math, not the host's C library: the tokens must be the board's.
    let math = Math::Portable;
    let options =
        Options { kernels, workers: Box::new(Serial), numerics, math, ..Options::default() };
    let mut t = Transformer::new(ckpt, options).map_err(|e| e.to_string())?;
    let tok = Tokenizer::from_bytes(&tok_bytes, vocab).map_err(|e| e.to_string())?;
    let mut sampler = Sampler::new(vocab, 0.0, 0.9, 0).map_err(|e| e.to_string())?;
    sampler.math = math;
    let prompt = tok.encode(PROMPT);
    let mut tokens = vec![prompt[0]];
    let mut text = Vec::new();
    let mut stop = Stop::Steps;
    for ev in
        Generator::new(&mut t, &tok, &mut sampler, prompt, STEPS).map_err(|e| e.to_string())?
    {
        match ev.map_err(|e| e.to_string())? {
            Event::Token { token, text: piece, .. } => {
                tokens.push(token);
                text.extend_from_slice(piece);
            }
            Event::Done(s) => stop = s,
        }
    }
    let mut out = String::new();
    use std::fmt::Write;
    let _ = writeln!(out, "stop: {}", stop.as_str());
    let _ = report::tokens_line(&mut out, &tokens);
    let _ = report::text_line(&mut out, &text);
    Ok(out)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let kernels: &'static dyn Kernels = match args.get(1).map(String::as_str) {
        None | Some("scalar") => &Scalar,
        Some("unrolled") => &Unrolled,
        Some(k) => {
            eprintln!("unknown kernels {k:?} (scalar or unrolled)");
            return ExitCode::from(2);
        }
    };
    let Some(model) = args.first() else {
        eprintln!("usage: rv32bench-host MODEL_FILE|q8fx|q8g32|q4g32 [scalar|unrolled]");
        return ExitCode::from(2);
    };
    match run(model, kernels) {
        Ok(s) => {
            print!("{s}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
