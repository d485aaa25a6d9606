//! `esp-llm boards`: the README's table of models against boards, computed rather than typed.
//!
//! For each model of the catalogue and each bundle format (f32, int8 with the default groups)
//! it packs a model of that exact shape and runs the planner (`esp-llm plan`) on each chip's
//! reference board (PSRAM and flash as in `plan`), with the smallest bundled flash layout that
//! holds the bundle. Sizes and plans depend only on the shape, the format and the tokenizer, so
//! models the cache does not hold are stood in for by deterministic random weights of their
//! shape (`esp-llm synth`); the tokenizer is the real one (found or downloaded like `run`'s).

use crate::files;
use crate::layout::{bundled_model_partition, FLASH_SIZES};
use crate::synthetic;
use anyhow::{Context, Result};
use esp_llm_board::plan::{self, Region};
use esp_llm_engine::checkpoint::bundle::{self, Quant};
use esp_llm_engine::Checkpoint;
use esp_llm_engine::Needs;
use std::path::Path;

#[derive(clap::Args)]
pub struct Args {
    /// Only these models (default: all of stories260K, stories15M, stories42M, stories110M).
    #[arg(long, value_delimiter = ',')]
    pub models: Vec<String>,
}

pub fn main(a: Args) -> Result<()> {
    let names: Vec<&str> = if a.models.is_empty() {
        synthetic::SHAPES.iter().map(|(n, _)| *n).collect()
    } else {
        a.models.iter().map(String::as_str).collect()
    };
    let chips = plan::CHIPS;
    let mut head = String::from("| model | format | bundle | flash layout |");
    let mut rule = String::from("|---|---|---|---|");
    for c in &chips {
        head += &format!(
            " {} ({} PSRAM) |",
            c.name,
            if c.psram == 0 { "no".to_string() } else { crate::units::human(c.psram) }
        );
        rule += "---|";
    }
    outln!("{head}");
    outln!("{rule}");
    for name in names {
        let c = synthetic::parse_shape(name)?;
        let tok_path = files::default_tokenizer(Path::new(""), c.vocab_size)?;
        let tok = files::load(&tok_path, "tokenizer")?;
        let mut v0 = Vec::with_capacity(synthetic::file_bytes(&c) as usize);
        synthetic::write_v0(&c, 1, &mut v0, &mut |_| {})?;
        let ck = Checkpoint::parse(&v0).with_context(|| format!("the {name} shape"))?;
        for (label, quant) in [("f32", Quant::F32), ("int8", Quant::Q8(None))] {
            let (b, _) = bundle::pack(&ck, &tok, quant, &mut |_| {})?;
            let bck = Checkpoint::parse(&b)?;
            let needs = Needs::of(&bck.config, &bck.weights)?;
            let flash = FLASH_SIZES
                .iter()
                .copied()
                .find(|&f| bundled_model_partition(f).is_some_and(|p| b.len() <= p));
            let mut row = format!(
                "| {name} | {label} | {} | {} |",
                crate::units::human(b.len()),
                flash.map_or("none holds it".to_string(), |f| format!("{} MB", f >> 20))
            );
            for chip in &chips {
                let cell = match flash.and_then(bundled_model_partition) {
                    None => "no (bundle larger than any layout)".to_string(),
                    Some(part) => {
                        match plan::plan(&needs, c.seq_len, *chip, chip.psram, part, b.len()) {
                            Ok(p) => format!(
                                "~{} tok/s, weights in {}{}{}",
                                tok_s(p.tok_per_s),
                                region(p.weights),
                                if p.seq_len < c.seq_len {
                                    format!(", context {}", p.seq_len)
                                } else {
                                    String::new()
                                },
                                if p.numerics == esp_llm_engine::Numerics::Fixed {
                                    ", fixed point"
                                } else {
                                    ""
                                }
                            ),
                            Err(e) => format!("no ({})", short(&e)),
                        }
                    }
                };
                row += &format!(" {cell} |");
            }
            outln!("{row}");
        }
    }
    Ok(())
}

fn tok_s(t: f64) -> String {
    if t >= 10.0 {
        format!("{t:.0}")
    } else {
        format!("{t:.1}")
    }
}

fn region(r: Region) -> &'static str {
    match r {
        Region::Sram => "SRAM",
        Region::Psram => "PSRAM",
        Region::Flash => "flash",
    }
}

/// The planner's refusal in a few words.
fn short(e: &esp_llm_engine::Error) -> String {
    match e {
        esp_llm_engine::Error::OutOfMemory { what, bytes } => {
            format!("{what} needs {}", crate::units::human(*bytes))
        }
        e => e.to_string(),
    }
}
