//! The generation loop of llama2.c's `run.c`, as an iterator of events.
//!
//! `steps` counts forward passes, prompt positions included (0 or more than the context means
//! the whole context). The prompt's tokens are forced one by one; after the last one, tokens
//! are sampled. Sampling BOS ends the story. Each event carries the bytes run.c would print for
//! that token, so a caller streams text by writing them out as they come.

use crate::error::{Error, Result};
use crate::sampler::Sampler;
use crate::tokenizer::Tokenizer;
use crate::transformer::Transformer;
use crate::BOS;
use alloc::vec::Vec;

/// Why generation ended (more reasons may be added).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Stop {
    /// All steps were run.
    Steps,
    /// The model produced BOS.
    Bos,
}

impl Stop {
    /// The name used in JSON output (`"steps"` / `"bos"`).
    pub fn as_str(&self) -> &'static str {
        match self {
            Stop::Steps => "steps",
            Stop::Bos => "bos",
        }
    }
}

/// One step of generation.
#[derive(Debug, Clone, PartialEq)]
pub enum Event<'t> {
    /// A token chosen after a forward pass.
    Token {
        /// The position that was just run.
        pos: usize,
        /// The chosen token.
        token: u32,
        /// Whether it came from the prompt rather than the sampler.
        forced: bool,
        /// What to print for it (may be empty).
        text: &'t [u8],
    },
    /// The end; no events follow.
    Done(Stop),
}

/// Streams a story. Create with [`Generator::new`], then iterate.
pub struct Generator<'g, 'a, 't> {
    transformer: &'g mut Transformer<'a>,
    tokenizer: &'g Tokenizer<'t>,
    sampler: &'g mut Sampler,
    prompt: Vec<u32>,
    steps: usize,
    pos: usize,
    token: u32,
    done: bool,
    /// Positions below this went through `Transformer::prefill` (forced, no logits needed).
    prefilled: usize,
}

/// Steps as run.c clamps them: 0 or more than the context means the whole context.
pub fn clamp_steps(steps: usize, seq_len: usize) -> usize {
    if steps == 0 || steps > seq_len {
        seq_len
    } else {
        steps
    }
}

impl<'g, 'a, 't> Generator<'g, 'a, 't> {
    /// Starts generation from encoded prompt tokens (which begin with BOS). A prompt longer than
    /// the context is an error (the caller decides whether to shorten it).
    pub fn new(
        transformer: &'g mut Transformer<'a>,
        tokenizer: &'g Tokenizer<'t>,
        sampler: &'g mut Sampler,
        prompt: Vec<u32>,
        steps: usize,
    ) -> Result<Self> {
        let seq_len = transformer.config.seq_len;
        if prompt.len() > seq_len {
            return Err(Error::PromptTooLong { tokens: prompt.len(), seq_len });
        }
        let vocab_size = transformer.config.vocab_size;
        if let Some(&t) = prompt.iter().find(|&&t| t as usize >= vocab_size) {
            return Err(Error::TokenOutOfRange { token: t, vocab_size });
        }
        let token = *prompt.first().ok_or(Error::BadLength {
            what: "prompt tokens",
            expected: 1,
            got: 0,
        })?;
        Ok(Generator {
            transformer,
            tokenizer,
            sampler,
            steps: clamp_steps(steps, seq_len),
            prompt,
            pos: 0,
            token,
            done: false,
            prefilled: 0,
        })
    }

    /// The prompt's tokens.
    pub fn prompt(&self) -> &[u32] {
        &self.prompt
    }
}

impl<'t> Iterator for Generator<'_, '_, 't> {
    type Item = Result<Event<'t>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        if self.pos >= self.steps {
            self.done = true;
            return Some(Ok(Event::Done(Stop::Steps)));
        }
        let pos = self.pos;
        if pos == 0 {
            // Forced prompt positions only fill the KV cache: run them as a batch.
            let n = (self.prompt.len() - 1).min(self.steps);
            if let Err(e) = self.transformer.prefill(&self.prompt[..n], 0) {
                self.done = true;
                return Some(Err(e));
            }
            self.prefilled = n;
        }
        if pos < self.prefilled {
            return Some(Ok(self.advance(pos, self.prompt[pos + 1], true)));
        }
        let logits = match self.transformer.forward(self.token, pos) {
            Ok(l) => l,
            Err(e) => {
                self.done = true;
                return Some(Err(e));
            }
        };
        let forced = pos + 1 < self.prompt.len();
        let next = if forced { self.prompt[pos + 1] } else { self.sampler.sample(logits) };
        Some(Ok(self.advance(pos, next, forced)))
    }
}

impl<'t> Generator<'_, '_, 't> {
    /// Moves past position `pos` with `next` chosen: BOS ends the story, anything else is
    /// decoded after the current token and becomes the next input.
    fn advance(&mut self, pos: usize, next: u32, forced: bool) -> Event<'t> {
        self.pos += 1;
        if next == BOS {
            self.done = true;
            return Event::Done(Stop::Bos);
        }
        let text = self.tokenizer.decode(self.token, next);
        self.token = next;
        Event::Token { pos, token: next, forced, text }
    }
}
