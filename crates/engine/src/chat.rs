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
    let mut conversation = Chat::new(transformer, steps);
    let mut system_prompt = String::new();
    while !conversation.is_full() {
        let first = conversation.pos() == 0;
        if first {
            system_prompt = match system {
                Some(s) => s.into(),
                None => match io.read_line("Enter system prompt (optional): ") {
                    Some(s) => s,
                    None => break,
                },
            };
        }
        let user = match first_user {
            Some(u) if first => u.into(),
            _ => match io.read_line("User: ") {
                Some(s) => s,
                None => break,
            },
        };
        io.write(b"Assistant: ");
        let mut write = |bytes: &[u8]| {
            io.write(bytes);
            true
        };
        conversation.turn(
            transformer,
            tokenizer,
            sampler,
            Some(&system_prompt),
            &user,
            &mut write,
        )?;
    }
    io.write(b"\n");
    Ok(())
}

/// How a [`Chat::turn`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TurnEnd {
    /// The assistant's reply ended with EOS (fed back to the model, as run.c does): the user's
    /// turn.
    Eos,
    /// All `steps` positions are used: the conversation is over.
    Context,
    /// The writer returned `false`; the next turn starts after the last position run.
    Stopped,
}

/// A conversation driven one turn at a time, for callers that cannot hand the engine a
/// [`ChatIo`] to pull lines from (the C API, an event loop). The positions, tokens and bytes are
/// those of [`chat`], which is built on it.
#[derive(Debug, Clone)]
pub struct Chat {
    steps: usize,
    pos: usize,
    /// The token sampled last: the next input once the user's tokens are used up.
    next: u32,
    /// The current turn's rendered and encoded user message.
    prompt: Vec<u32>,
}

impl Chat {
    /// A new conversation over at most `steps` positions (0 or more than the context = the
    /// whole context) of `transformer`. Positions start again from 0: the KV cache is
    /// overwritten as the conversation goes.
    pub fn new(transformer: &Transformer<'_>, steps: usize) -> Self {
        Chat {
            steps: clamp_steps(steps, transformer.config.seq_len),
            pos: 0,
            next: 0,
            prompt: Vec::new(),
        }
    }

    /// Positions used so far.
    pub fn pos(&self) -> usize {
        self.pos
    }

    /// Whether all positions are used (a further turn returns [`TurnEnd::Context`] at once).
    pub fn is_full(&self) -> bool {
        self.pos >= self.steps
    }

    /// One exchange: the user's message (with `system` as the `<<SYS>>` prompt on the first
    /// turn only) is forced through the model, then the assistant's reply is sampled until the
    /// model gives EOS or the positions run out. `write` receives what run.c prints after
    /// `Assistant: ` (the reply's pieces, and a newline when it ends) and returns `false` to
    /// stop early.
    pub fn turn(
        &mut self,
        transformer: &mut Transformer<'_>,
        tokenizer: &Tokenizer<'_>,
        sampler: &mut Sampler,
        system: Option<&str>,
        user: &str,
        write: &mut dyn FnMut(&[u8]) -> bool,
    ) -> Result<TurnEnd> {
        if self.is_full() {
            return Ok(TurnEnd::Context);
        }
        let system = if self.pos == 0 { system } else { None };
        tokenizer.encode_into(render(system, user).as_bytes(), &mut self.prompt);
        let mut user_idx = 0;
        while self.pos < self.steps {
            let token = if user_idx < self.prompt.len() {
                user_idx += 1;
                self.prompt[user_idx - 1]
            } else {
                self.next
            };
            let logits = transformer.forward(token, self.pos)?;
            self.next = sampler.sample(logits);
            self.pos += 1;
            let mut more = true;
            if user_idx >= self.prompt.len() && self.next != EOS {
                more = write(tokenizer.decode(token, self.next));
            }
            if self.next == EOS {
                more &= write(b"\n");
            }
            // run.c feeds the EOS it sampled back in before the user's next message.
            if token == EOS {
                return Ok(TurnEnd::Eos);
            }
            if !more {
                return Ok(TurnEnd::Stopped);
            }
        }
        Ok(TurnEnd::Context)
    }
}
