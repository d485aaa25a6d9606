//! Chat mode as llama2.c's `run.c` does it: Llama-2's `[INST]` template, with an optional
//! `<<SYS>>` system prompt on the first turn. The user's tokens are forced, the assistant's
//! sampled until EOS, which hands the turn back to the user; `steps` bounds all turns together.

use crate::error::Result;
use crate::generate::clamp_steps;
use crate::sampler::Sampler;
use crate::tokenizer::Tokenizer;
use crate::transformer::Transformer;
use crate::EOS;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

/// Renders one user turn with run.c's templates.
pub fn render(system: Option<&str>, user: &str) -> String {
    match system {
        Some(sys) if !sys.is_empty() => {
            format!("[INST] <<SYS>>\n{sys}\n<</SYS>>\n\n{user} [/INST]")
        }
        _ => format!("[INST] {user} [/INST]"),
    }
}

/// Where a chat gets its input and sends its output.
pub trait ChatIo {
    /// Shows `guide` and reads one line (without its newline); `None` ends the chat.
    fn read_line(&mut self, guide: &str) -> Option<String>;
    /// Writes bytes of the conversation.
    fn write(&mut self, bytes: &[u8]);
}

/// Runs a chat until `steps` positions are used or the input ends.
pub fn chat(
    transformer: &mut Transformer<'_>,
    tokenizer: &Tokenizer<'_>,
    sampler: &mut Sampler,
    system: Option<&str>,
    first_user: Option<&str>,
    steps: usize,
    io: &mut dyn ChatIo,
) -> Result<()> {
    let steps = clamp_steps(steps, transformer.config.seq_len);
    let mut system_prompt = String::new();
    let mut prompt: Vec<u32> = Vec::new();
    let mut user_idx = 0;
    let mut user_turn = true;
    let mut next = 0u32;
    let mut pos = 0;
    while pos < steps {
        if user_turn {
            if pos == 0 {
                system_prompt = match system {
                    Some(s) => s.into(),
                    None => match io.read_line("Enter system prompt (optional): ") {
                        Some(s) => s,
                        None => break,
                    },
                };
            }
            let user = match first_user {
                Some(u) if pos == 0 => u.into(),
                _ => match io.read_line("User: ") {
                    Some(s) => s,
                    None => break,
                },
            };
            let sys = if pos == 0 { Some(system_prompt.as_str()) } else { None };
            tokenizer.encode_into(render(sys, &user).as_bytes(), &mut prompt);
            user_idx = 0;
            user_turn = false;
            io.write(b"Assistant: ");
        }
        let token = if user_idx < prompt.len() {
            user_idx += 1;
            prompt[user_idx - 1]
        } else {
            next
        };
        if token == EOS {
            user_turn = true;
        }
        let logits = transformer.forward(token, pos)?;
        next = sampler.sample(logits);
        pos += 1;
        if user_idx >= prompt.len() && next != EOS {
            io.write(tokenizer.decode(token, next));
        }
        if next == EOS {
            io.write(b"\n");
        }
    }
    io.write(b"\n");
    Ok(())
}
