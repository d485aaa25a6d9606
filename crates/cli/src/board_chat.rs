//! `esp-llm chat [-p PORT]`: talk to a board's REPL, interactively or from a script.

use crate::port;
use crate::repl_client::Repl;
use anyhow::{Context, Result};
use esp_llm_board::summary::PROMPT;
use std::io::{BufRead, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub link: port::PortArgs,
    /// Scripting mode: send this prompt, print the answer, exit.
    #[arg(long)]
    pub prompt: Option<String>,
    /// With --prompt: print {"prompt","text","tokens","ms","tok_per_s","interrupted"}.
    #[arg(long, requires = "prompt")]
    pub json: bool,
    /// Temperature to set on the board first (/temp).
    #[arg(short = 't', long)]
    pub temperature: Option<f32>,
    /// Top-p to set on the board first (/topp). (`-p` is the port, as in espflash.)
    #[arg(long)]
    pub topp: Option<f32>,
    /// Seed to set on the board first (/seed).
    #[arg(short = 's', long)]
    pub seed: Option<u64>,
    /// Steps to set on the board first (/steps).
    #[arg(short = 'n', long)]
    pub steps: Option<usize>,
    /// Seconds of silence after which the board counts as not answering.
    #[arg(long, default_value_t = 30)]
    pub timeout: u64,
}

pub fn main(a: Args) -> Result<()> {
    let (link, name) = a.link.open()?;
    let mut repl = Repl::new(link, Duration::from_secs(a.timeout))?;
    repl.sync().with_context(|| format!("no REPL prompt from {name}"))?;
    // Our own typing is already on the screen: ask the board not to echo it back.
    repl.command("/echo off").ok();
    let settings = [
        a.temperature.map(|v| format!("/temp {v}")),
        a.topp.map(|v| format!("/topp {v}")),
        a.seed.map(|v| format!("/seed {v}")),
        a.steps.map(|v| format!("/steps {v}")),
    ];
    for cmd in settings.into_iter().flatten() {
        let reply = repl.command(&cmd)?;
        if !reply.is_empty() {
            eprintln!("board: {reply}");
        }
    }
    if let Some(prompt) = &a.prompt {
        return script(&mut repl, prompt, a.json);
    }
    interactive(repl)
}

fn script(repl: &mut Repl, prompt: &str, json: bool) -> Result<()> {
    let mut out = std::io::stdout();
    let answer = repl.prompt(prompt, &mut |b| {
        if !json {
            let _ = out.write_all(b);
            let _ = out.flush();
        }
    })?;
    if json {
        let s = answer.summary;
        let v = serde_json::json!({
            "prompt": prompt,
            "text": String::from_utf8_lossy(&answer.text),
            "tokens": s.map(|s| s.tokens),
            "ms": s.map(|s| s.ms),
            "tok_per_s": s.and_then(|s| s.tok_per_s),
            "interrupted": answer.interrupted,
        });
        outln!("{v}");
    }
    if answer.summary.is_none() {
        anyhow::bail!(
            "the board's answer ended without a summary line (is this the esp-llm firmware?)"
        );
    }
    Ok(())
}

fn interactive(mut repl: Repl) -> Result<()> {
    let generating = Arc::new(AtomicBool::new(false));
    let interrupt = Arc::new(AtomicBool::new(false));
    {
        let (g, i) = (generating.clone(), interrupt.clone());
        ctrlc::set_handler(move || {
            if g.load(Ordering::SeqCst) {
                i.store(true, Ordering::SeqCst);
            } else {
                std::process::exit(130);
            }
        })
        .context("cannot install the Ctrl-C handler")?;
    }
    repl.interrupt = Some(interrupt);
    eprintln!("connected; type a prompt or a /command (/help), Ctrl-C stops a story, Ctrl-D quits");
    let stdin = std::io::stdin();
    let mut line = String::new();
    loop {
        // The board's prompt, which read_until_prompt consumed, shown in its place.
        print!("{PROMPT}");
        std::io::stdout().flush()?;
        line.clear();
        if stdin.lock().read_line(&mut line)? == 0 {
            outln!();
            return Ok(());
        }
        generating.store(true, Ordering::SeqCst);
        repl.send(line.as_bytes())?;
        let mut out = std::io::stdout();
        let result = repl.read_until_prompt(&mut |b| {
            let _ = out.write_all(b);
            let _ = out.flush();
        });
        generating.store(false, Ordering::SeqCst);
        result?;
    }
}
