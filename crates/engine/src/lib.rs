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
//!
//! # Example
//!
//! A sampled story, streamed piece by piece (the `examples/` folder has more):
//!
//! ```
//! use esp_llm_engine::{Checkpoint, Event, Generator, Options, Sampler, Tokenizer, Transformer};
//!
//! # fn main() -> Result<(), esp_llm_engine::Error> {
//! # let model = esp_llm_fixtures::model_bytes("stories260K.bin");
//! # let tokenizer = esp_llm_fixtures::model_bytes("tok512.bin");
//! // `model` and `tokenizer`: the bytes of stories260K.bin and tok512.bin (a file, a flash
//! // partition, `include_bytes!`); the weights are used in place.
//! let checkpoint = Checkpoint::parse(&model)?;
//! let vocab_size = checkpoint.config.vocab_size;
//! let tokenizer = Tokenizer::from_bytes(&tokenizer, vocab_size)?;
//! let mut transformer = Transformer::new(checkpoint, Options::default())?;
//! let mut sampler = Sampler::new(vocab_size, 0.8, 0.9, 42)?; // temperature, top-p, seed
//!
//! let prompt = tokenizer.encode(b"Once upon a time"); // BOS first
//! let mut story = Vec::new();
//! for event in Generator::new(&mut transformer, &tokenizer, &mut sampler, prompt, 64)? {
//!     match event? {
//!         Event::Token { text, .. } => story.extend_from_slice(text), // or print it now
//!         Event::Done(stop) => println!("stopped: {}", stop.as_str()), // "steps" or "bos"
//!     }
//! }
//! assert!(story.starts_with(b"Once upon a time"));
//! # Ok(())
//! # }
//! ```
//!
//! Errors name what is wrong and never panic, whatever the bytes:
//!
//! ```
//! use esp_llm_engine::{Checkpoint, Error};
//!
//! let err = Checkpoint::parse(&[0u8; 10]).unwrap_err();
//! assert!(matches!(err, Error::Truncated { need: 4, len: 10, .. }), "{err:?}");
//! assert_eq!(
//!     err.to_string(),
//!     "file is truncated: header needs 4 bytes at offset 8, but the file has 10 bytes"
//! );
//! ```
#![cfg_attr(not(any(test, feature = "std")), no_std)]
// Every `unsafe` block says why it is sound, and so does every `unsafe fn` (`# Safety`), private
// ones too (clippy.toml: `check-private-items`).
#![deny(clippy::undocumented_unsafe_blocks, clippy::missing_safety_doc)]

extern crate alloc;

// The crate README's code, compiled as doctests (`no_run`: it reads model files).
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

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
pub mod repack;
mod rope;
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
pub use repack::Layout;
pub use sampler::Sampler;
pub use tokenizer::Tokenizer;
pub use transformer::{Numerics, Options, Transformer};

/// The token id llama2.c uses for beginning-of-sequence; generation stops when it is sampled.
pub const BOS: u32 = 1;
/// The token id for end-of-sequence; chat mode ends the assistant's turn on it.
pub const EOS: u32 = 2;
