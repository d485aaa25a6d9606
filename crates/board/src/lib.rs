//! The board side of esp-llm that does not touch registers, so that it can be tested on the
//! host: the serial REPL (line assembly, commands, the summary line), the ESP-IDF partition
//! table, the first check of the bundle in the `model` partition ([`model::probe`]), the
//! context cap ([`plan`]), and the dual-core job protocol behind the engine's
//! [`Workers`](esp_llm_engine::parallel::Workers) trait.
//!
//! `firmware/src/main.rs` feeds bytes from UART0 / USB-Serial-JTAG into [`line::LineAssembler`],
//! parses lines with [`command::parse`], finds the model with [`partition`], and starts the
//! second core with [`cores::TwoCores`]. Everything here is `no_std`; tests use std.
#![cfg_attr(not(test), no_std)]
// Every `unsafe` block says why it is sound, and so does every `unsafe fn` (`# Safety`), private
// ones too (clippy.toml: `check-private-items`), as in the engine.
#![deny(clippy::undocumented_unsafe_blocks, clippy::missing_safety_doc)]

extern crate alloc;

pub mod command;
#[cfg(feature = "cores")]
pub mod cores;
pub mod line;

pub mod model;
pub mod partition;
pub mod plan;
pub mod summary;
