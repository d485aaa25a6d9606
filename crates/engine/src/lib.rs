//! esp-llm engine: a portable, `no_std` re-implementation of Karpathy's llama2.c inference.
//!
//! Bytes flow one way: a checkpoint is parsed zero-copy from a byte slice into borrowed weight
//! views ([`checkpoint`], [`model`]), the transformer ([`transformer`], its step in [`forward`]) turns a token and a
//! position into logits, the [`sampler`] picks the next token and the [`tokenizer`] turns it into
//! bytes. [`generate`] ties them together as an iterator of events. Nothing in this crate knows
//! where the bytes came from (file, mmap, flash) or where the text goes.
//!
//! The arithmetic follows llama2.c's `run.c` (fp32) and `runq.c` (int8 Q8_0) operation by
//! operation, so that the same model, prompt and seed give the same tokens.
#![cfg_attr(not(any(test, feature = "std")), no_std)]
// Every `unsafe` block says why it is sound, and so does every `unsafe fn` (`# Safety`).
#![deny(clippy::undocumented_unsafe_blocks, clippy::missing_safety_doc)]

extern crate alloc;

pub mod chat;
pub mod checkpoint;
pub mod error;
pub mod eval;
pub mod fixed;
pub mod footprint;
pub mod forward;
pub mod generate;
pub mod kernels;
pub mod math;
pub mod model;
pub mod parallel;
pub mod quantize;
pub mod sampler;
pub mod state;
pub mod tokenizer;
pub mod transformer;

pub use checkpoint::{Checkpoint, Format};
pub use error::Error;
pub use footprint::{Footprint, Needs};
pub use generate::{Event, Generator, Stop};
pub use math::Math;
pub use model::Config;
pub use sampler::Sampler;
pub use tokenizer::Tokenizer;
pub use transformer::{Numerics, Options, Transformer};

/// The token id llama2.c uses for beginning-of-sequence; generation stops when it is sampled.
pub const BOS: u32 = 1;
/// The token id for end-of-sequence; chat mode ends the assistant's turn on it.
pub const EOS: u32 = 2;
