//! `esp-llm run`: llama2.c's `run` on the host, with the same flags and defaults.

use crate::setup::{check_memory, open, parse_bytes, pick_kernels, resolve_seed, transformer};
use crate::setup::{LayoutArg, MathArg, NumericsArg};
use crate::units::human;
use anyhow::{bail, Context, Result};
use esp_llm_engine::chat::{self, ChatIo};
use esp_llm_engine::kernels;
use esp_llm_engine::{Event, Generator, Numerics, Sampler, Stop, Tokenizer};
use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::time::Instant;

/// Generation mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// Continue the prompt into a story.
    Generate,
    /// Llama-2 chat template, interactive on stdin.
    Chat,
}

#[derive(clap::Args)]
#[command(allow_negative_numbers = true)]
pub struct Args {
    /// Model: a file (llama2.c checkpoint v0/v1/v2-int8, or an esp-llm bundle), or a name:
    /// stories260K, stories15M, stories42M, stories110M (looked for in $ESP_LLM_MODELS, ./models,
    /// ../shared/models, then the Hugging Face cache, downloaded once). Default: stories260K.
    pub model: Option<PathBuf>,
    /// Temperature: 0 = greedy (always the most likely token), 1 = the model's distribution.
    #[arg(short = 't', long, default_value_t = 1.0)]
    pub temperature: f32,
    /// Top-p (nucleus) sampling threshold in [0, 1]; 0 or 1 samples from all tokens.
    #[arg(short = 'p', long, default_value_t = 0.9)]
    pub topp: f32,
    /// Random seed; 0 = seed from the current time.
    #[arg(short = 's', long, default_value_t = 0)]
    pub seed: i64,
    /// Number of forward passes, prompt included; 0 (or more than the context) = the whole context.
    #[arg(short = 'n', long, default_value_t = 256)]
    pub steps: i64,
    /// Prompt text.
    #[arg(short = 'i', long = "prompt")]
    pub prompt: Option<String>,
    /// Tokenizer file. Default: `tok<vocab>.bin` beside the model, or `tokenizer.bin` for vocab 32000.
    #[arg(short = 'z', long)]
    pub tokenizer: Option<PathBuf>,
    /// generate or chat.
    #[arg(short = 'm', long, value_enum, default_value_t = Mode::Generate)]
    pub mode: Mode,
    /// System prompt (chat mode).
    #[arg(short = 'y', long)]
    pub system: Option<String>,
    /// Print one JSON object (prompt_tokens, tokens, stop, text, tok_per_s) instead of streaming.
    #[arg(long)]
    pub json: bool,
    /// Say which model format, kernels and memory the run uses (on stderr).
    #[arg(short = 'v', long)]
    pub verbose: bool,
    /// When the prompt is longer than the context, keep BOS and its last seq_len/2 tokens
    /// instead of failing.
    #[arg(long)]
    pub truncate_prompt: bool,
    /// Refuse to run when the weights copied into memory plus the run state (KV cache,
    /// activations) would exceed this many bytes (suffixes K, M, G allowed).
    #[arg(long, value_name = "BYTES", value_parser = parse_bytes)]
    pub max_memory: Option<u64>,
    /// Worker threads for the matmuls and attention (default: all cores).
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// Kernels to use: scalar, avx2, avx512, ... (default: the best this CPU runs; `-v` lists
    /// the available ones).
    #[arg(long)]
    pub kernels: Option<String>,
    /// float: llama2.c's arithmetic (default). fixed: the integer path of chips without an FPU
    /// (int8 models only), to see on the host the tokens an ESP32-C3/C6 would give.
    #[arg(long, value_enum, default_value_t = NumericsArg::Float)]
    pub numerics: NumericsArg,
    /// system: the C library's expf/cosf/sinf/powf, as llama2.c calls them (default).
    /// portable: the implementation the boards run, to see a board's tokens.
    #[arg(long, value_enum, default_value_t = MathArg::System)]
    pub math: MathArg,
    /// f32 matrix layout: auto, row-major (read in place) or interleaved (repacked at load for
    /// the SIMD kernels; `-v` says which runs and what it costs).
    #[arg(long, value_enum, default_value_t = LayoutArg::Auto)]
    pub layout: LayoutArg,
}

/// Encodes the prompt and applies the context rule (error, or truncation when asked).
pub fn prompt_tokens(
    tok: &Tokenizer<'_>,
    prompt: &str,
    seq_len: usize,
    truncate: bool,
) -> Result<Vec<u32>> {
    let mut ids = tok.try_encode(prompt.as_bytes())?;
    if ids.len() > seq_len {
        if !truncate {
            bail!(
                "the prompt is {} tokens long but the model's context holds {seq_len}; shorten it or pass --truncate-prompt to keep its last {} tokens",
                ids.len(),
                seq_len / 2
            );
        }
        let keep = seq_len / 2;
        let tail = ids.split_off(ids.len() - keep);
        ids.truncate(1);
        ids.extend(tail);
    }
    Ok(ids)
}

pub fn main(a: Args) -> Result<()> {
    let model = open(a.model.as_deref())?;
    let ck = model.parse()?;
    let tok_file = model.tokenizer(&ck, a.tokenizer.as_deref())?;
    let config = ck.config;
    let format = ck.format;
    let tokenizer = Tokenizer::from_bytes(tok_file.bytes(), config.vocab_size)
        .with_context(|| tok_file.name())?;
    let seed = resolve_seed(a.seed);
    let mut sampler = Sampler::new(config.vocab_size, a.temperature, a.topp, seed)?;
    // Memory is counted before anything big is allocated.
    let weights_copied = ck.weights.copied_bytes();
    let wb = ck.weights.byte_breakdown();
    let numerics = Numerics::from(a.numerics);
    let kernels = pick_kernels(a.kernels.as_deref())?;
    let state = check_memory(&ck, a.max_memory, numerics, kernels, a.layout.into())?.state;
    let mut t = transformer(ck, a.threads, kernels, numerics, a.math.into(), a.layout.into())?;
    // The sampler's softmax uses the transformer's math (the portable one for fixed point).
    sampler.math = t.math();
    if a.verbose {
        eprintln!(
            "model {} ({format}), tokenizer {}, numerics {}, math {}, kernels {} (available: {}), {} thread(s), prefill batch {}, f32 layout {}, memory: weights {} mapped + {} copied + {} repacked (f32 {}, int8 {}, int8 scales {}), KV cache {}, activations {}",
            model.path.display(),
            tok_file.name(),
            t.numerics().name(),
            t.math().name(),
            t.kernels().name(),
            kernels::available().iter().map(|k| k.name()).collect::<Vec<_>>().join(", "),
            t.worker_count(),
            t.prefill_batch(),
            t.layout().name(),
            human(model.blob.len()),
            human(weights_copied),
            human(t.footprint().repacked),
            human(wb.f32),
            human(wb.int8),
            human(wb.scales),
            human(state.kv_cache),
            human(state.activations)
        );
    }
    let steps = a.steps.max(0) as usize;
    if a.mode == Mode::Chat {
        let mut io = StdIo;
        return Ok(chat::chat(
            &mut t,
            &tokenizer,
            &mut sampler,
            a.system.as_deref(),
            a.prompt.as_deref(),
            steps,
            &mut io,
        )?);
    }
    let prompt = a.prompt.clone().unwrap_or_default();
    let ids = prompt_tokens(&tokenizer, &prompt, config.seq_len, a.truncate_prompt)?;
    let prompt_ids = ids.clone();
    let mut tokens = vec![ids[0]];
    let mut text = Vec::new();
    let mut stdout = std::io::stdout().lock();
    let mut start: Option<Instant> = None;
    let mut forwards = 0usize;
    let mut stop = Stop::Steps;
    for ev in Generator::new(&mut t, &tokenizer, &mut sampler, ids, steps)? {
        match ev? {
            Event::Token { token, text: piece, .. } => {
                forwards += 1;
                tokens.push(token);
                if a.json {
                    text.extend_from_slice(piece);
                } else {
                    stdout.write_all(piece)?;
                    stdout.flush()?;
                }
            }
            Event::Done(s) => {
                if s == Stop::Bos {
                    forwards += 1;
                }
                stop = s;
            }
        }
        if start.is_none() {
            start = Some(Instant::now());
        }
    }
    let tok_per_s = match start {
        Some(s) if forwards > 1 => (forwards - 1) as f64 / s.elapsed().as_secs_f64().max(1e-9),
        _ => 0.0,
    };
    if a.json {
        let out = serde_json::json!({
            "model": model.path.display().to_string(),
            "tokenizer": tok_file.name(),
            "format": format.to_string(),
            "prompt": prompt,
            "temperature": a.temperature.to_string().parse::<f64>().unwrap_or(f64::NAN),
            "topp": a.topp.to_string().parse::<f64>().unwrap_or(f64::NAN),
            "seed": seed,
            "steps": esp_llm_engine::generate::clamp_steps(steps, config.seq_len),
            "prompt_tokens": prompt_ids,
            "tokens": tokens,
            "stop": stop.as_str(),
            "text": String::from_utf8_lossy(&text),
            "tok_per_s": tok_per_s,
        });
        writeln!(stdout, "{out}")?;
    } else {
        writeln!(stdout)?;
        if forwards > 1 {
            eprintln!("achieved tok/s: {tok_per_s:.6}");
        }
    }
    Ok(())
}

/// Chat on the terminal.
struct StdIo;

impl ChatIo for StdIo {
    fn read_line(&mut self, guide: &str) -> Option<String> {
        let mut out = std::io::stdout().lock();
        out.write_all(guide.as_bytes()).ok()?;
        out.flush().ok()?;
        drop(out);
        let mut line = String::new();
        match std::io::stdin().lock().read_line(&mut line) {
            Ok(0) | Err(_) => None,
            Ok(_) => {
                if line.ends_with('\n') {
                    line.pop();
                }
                Some(line)
            }
        }
    }
    fn write(&mut self, bytes: &[u8]) {
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(bytes);
        let _ = out.flush();
    }
}
