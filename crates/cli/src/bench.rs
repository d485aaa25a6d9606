//! `esp-llm bench`: prompt-processing and generation speed, median of several runs.
//!
//! Prompt processing (pp) times `Transformer::prefill` over `--prompt-tokens` synthetic tokens from
//! position 0 (batched, no logits), then one `forward` for the last prompt token (whose logits
//! a real run samples from); tok/s counts every prompt token. Generation (tg) times `--gen`
//! greedy steps from position 0 (forward + argmax), as llama2.c's `run -t 0 -n N` does
//! without a prompt. Every run rewrites the KV cache positions it reads, so runs are
//! independent. One untimed warm-up run first maps the weights in.

use crate::files;
use crate::setup::{check_memory, pick_kernels, transformer, LayoutArg, NumericsArg};
use anyhow::{bail, Context, Result};
use esp_llm_engine::sampler::argmax;
use esp_llm_engine::Checkpoint;
use std::path::PathBuf;
use std::time::Instant;

#[derive(clap::Args)]
pub struct Args {
    /// Model: a file (llama2.c checkpoint v0/v1/v2-int8, or an esp-llm bundle), or a name:
    /// stories260K, stories15M, stories42M, stories110M (looked for in $ESP_LLM_MODELS, ./models,
    /// ../shared/models, then the Hugging Face cache, downloaded once). Default: stories260K.
    pub model: Option<PathBuf>,
    /// Worker threads (default: all cores).
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// Kernels to use (scalar, avx2, avx512, ...; default: the best this CPU runs).
    #[arg(long)]
    pub kernels: Option<String>,
    /// float (llama2.c's arithmetic) or fixed (the integer path of FPU-less chips; int8 only).
    #[arg(long, value_enum, default_value_t = NumericsArg::Float)]
    pub numerics: NumericsArg,
    /// f32 matrix layout: auto, row-major (read in place) or interleaved (repacked at load).
    #[arg(long, value_enum, default_value_t = LayoutArg::Auto)]
    pub layout: LayoutArg,
    /// Prompt length in tokens for the prompt-processing test (synthetic token ids, as
    /// llama-bench's pp test; 0 skips it). A count, not text: other commands' `--prompt` /
    /// `-i` take text.
    #[arg(long = "prompt-tokens", visible_alias = "pp", value_name = "N", default_value_t = 128)]
    pub prompt: usize,
    /// Generated tokens for the generation test (0 skips it).
    #[arg(long, default_value_t = 256)]
    pub gen: usize,
    /// Timed runs per test; the median is reported.
    #[arg(long, default_value_t = 5)]
    pub runs: usize,
    /// One JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    match s.len() {
        0 => 0.0,
        n if n % 2 == 1 => s[n / 2],
        n => (s[n / 2 - 1] + s[n / 2]) / 2.0,
    }
}

pub fn main(a: Args) -> Result<()> {
    if a.runs == 0 {
        bail!("--runs must be at least 1");
    }
    let path = files::resolve_model(a.model.as_deref())?;
    let blob = files::load(&path, "model")?;
    let ck = Checkpoint::parse(&blob).with_context(|| format!("{}", path.display()))?;
    let format = ck.format;
    let c = ck.config;
    let numerics = a.numerics.into();
    let kernels = pick_kernels(a.kernels.as_deref())?;
    let layout = a.layout.into();
    check_memory(&ck, None, numerics, kernels, layout)?;
    let math = esp_llm_engine::Math::default();
    let mut t = transformer(ck, a.threads, kernels, numerics, math, layout)?;
    if a.prompt > c.seq_len || a.gen > c.seq_len {
        bail!("--prompt-tokens and --gen must be at most the model's context ({})", c.seq_len);
    }
    let prompt: Vec<u32> = std::iter::once(esp_llm_engine::BOS)
        .chain((1..a.prompt).map(|i| ((i * 7919 + 3) % c.vocab_size) as u32))
        .collect();

    let gen_run = |t: &mut esp_llm_engine::Transformer<'_>, n: usize| -> Result<f64> {
        let start = Instant::now();
        let mut tok = esp_llm_engine::BOS;
        for pos in 0..n {
            tok = argmax(t.forward(tok, pos)?);
        }
        Ok(n as f64 / start.elapsed().as_secs_f64().max(1e-9))
    };
    let pp_run = |t: &mut esp_llm_engine::Transformer<'_>| -> Result<f64> {
        let start = Instant::now();
        let last = prompt.len() - 1;
        t.prefill(&prompt[..last], 0)?;
        let logits = t.forward(prompt[last], last)?;
        std::hint::black_box(argmax(logits));
        Ok(prompt.len() as f64 / start.elapsed().as_secs_f64().max(1e-9))
    };

    gen_run(&mut t, a.gen.clamp(1, 8))?; // warm-up
    let mut pp = Vec::new();
    let mut tg = Vec::new();
    for _ in 0..a.runs {
        if a.prompt > 0 {
            pp.push(pp_run(&mut t)?);
        }
        if a.gen > 0 {
            tg.push(gen_run(&mut t, a.gen)?);
        }
    }
    let (pp_med, tg_med) = (median(&pp), median(&tg));
    if a.json {
        let out = serde_json::json!({
            "model": path.display().to_string(),
            "format": format.to_string(),
            "kernels": t.kernels().name(),
            "layout": t.layout().name(),
            "numerics": t.numerics().name(),
            "threads": t.worker_count(),
            "prefill_batch": t.prefill_batch(),
            "prompt_tokens": a.prompt,
            "gen_tokens": a.gen,
            "runs": a.runs,
            "pp_tok_per_s": pp_med,
            "tg_tok_per_s": tg_med,
            "pp_runs": pp,
            "tg_runs": tg,
        });
        println!("{out}");
    } else {
        println!(
            "{} ({format}), kernels {}, layout {}, numerics {}, {} thread(s), prefill batch {}, median of {} runs",
            path.display(),
            t.kernels().name(),
            t.layout().name(),
            t.numerics().name(),
            t.worker_count(),
            t.prefill_batch(),
            a.runs
        );
        if a.prompt > 0 {
            println!("pp{:<5} {pp_med:>10.1} tok/s", a.prompt);
        }
        if a.gen > 0 {
            println!("tg{:<5} {tg_med:>10.1} tok/s", a.gen);
        }
    }
    Ok(())
}
