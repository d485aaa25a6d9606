//! The engine's one error type. Every variant carries the numbers a user needs to see what is
//! wrong with their file or request (expected, got, offset), and `Display` writes one line.

use core::fmt;

/// Everything that can go wrong inside the engine.
///
/// New variants may be added as the engine grows (new formats, new settings), so matches
/// need a wildcard arm.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Error {
    /// The data ends before a section that the header says must be there.
    Truncated { section: &'static str, offset: usize, need: usize, len: usize },
    /// The data is longer than the header accounts for.
    TrailingBytes { expected: usize, len: usize },
    /// A version-1/2 checkpoint or bundle does not start with the expected magic number.
    BadMagic { expected: u32, got: u32 },
    /// No known magic, and the bytes do not read as a legacy v0 header either.
    UnknownFormat { first_bytes: u32, field: &'static str, value: i64, reason: &'static str },
    /// A versioned file has a version this engine does not read.
    UnsupportedVersion { format: &'static str, version: i64 },
    /// A header field is out of range or inconsistent with another field.
    BadConfig { field: &'static str, value: i64, reason: &'static str },
    /// A size computed from the header does not fit in memory addresses.
    Overflow { what: &'static str },
    /// An int8 group size that does not divide a row (or is zero).
    BadGroupSize { tensor: &'static str, group_size: usize, row_len: usize },
    /// A tokenizer file that does not fit the model.
    Tokenizer { reason: &'static str, offset: usize, value: i64 },
    /// A prompt byte the tokenizer has no id for (no piece holds it and the vocabulary stops
    /// before its byte-fallback id `byte + 3`).
    Unencodable { byte: u8, offset: usize, vocab_size: usize },
    /// A token id outside the vocabulary.
    TokenOutOfRange { token: u32, vocab_size: usize },
    /// A position outside the context window.
    PositionOutOfRange { pos: usize, seq_len: usize },
    /// The prompt does not fit in the context window.
    PromptTooLong { tokens: usize, seq_len: usize },
    /// A buffer passed in has the wrong length.
    BadLength { what: &'static str, expected: usize, got: usize },
    /// Memory for the run state could not be reserved.
    OutOfMemory { what: &'static str, bytes: usize },
    /// A sampler setting out of range.
    BadSetting { name: &'static str, value: f32, reason: &'static str },
    /// The bundle checksum does not match its payload.
    Checksum { expected: u32, got: u32 },
    /// A model or setting this mode of the engine cannot run.
    Unsupported { what: &'static str, reason: &'static str },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Truncated { section, offset, need, len } => write!(
                f,
                "file is truncated: {section} needs {need} bytes at offset {offset}, but the file has {len} bytes"
            ),
            Error::TrailingBytes { expected, len } => write!(
                f,
                "file is {len} bytes but its header describes {expected} bytes ({} unexpected bytes at the end)",
                len.saturating_sub(*expected)
            ),
            Error::BadMagic { expected, got } => {
                write!(f, "wrong magic number: expected {expected:#010x}, got {got:#010x}")
            }
            Error::UnknownFormat { first_bytes, field, value, reason } => write!(
                f,
                "not a llama2.c checkpoint or esp-llm bundle: no 'ak42' or 'ELLB' magic (first bytes {first_bytes:#010x}), and as a legacy v0 header {field} = {value} {reason}"
            ),
            Error::UnsupportedVersion { format, version } => {
                write!(f, "unsupported {format} version {version}")
            }
            Error::BadConfig { field, value, reason } => {
                write!(f, "bad header field {field} = {value}: {reason}")
            }
            Error::Overflow { what } => write!(f, "size of {what} overflows the address space"),
            Error::BadGroupSize { tensor, group_size, row_len } => write!(
                f,
                "group size {group_size} does not divide the row length {row_len} of {tensor}"
            ),
            Error::Tokenizer { reason, offset, value } => {
                write!(f, "bad tokenizer file: {reason} (value {value} at offset {offset})")
            }
            Error::Unencodable { byte, offset, vocab_size } => write!(
                f,
                "the tokenizer cannot encode byte 0x{byte:02x} at offset {offset} of the prompt: \
                 no piece holds it and its byte-fallback id {} is past the {vocab_size} pieces \
                 (a truncated tokenizer file?)",
                *byte as u32 + 3
            ),
            Error::TokenOutOfRange { token, vocab_size } => {
                write!(f, "token id {token} is outside the vocabulary of {vocab_size} tokens")
            }
            Error::PositionOutOfRange { pos, seq_len } => {
                write!(f, "position {pos} is outside the context of {seq_len} tokens")
            }
            Error::PromptTooLong { tokens, seq_len } => write!(
                f,
                "the prompt is {tokens} tokens long but the model's context holds {seq_len} tokens"
            ),
            Error::BadLength { what, expected, got } => {
                write!(f, "{what} has length {got}, expected {expected}")
            }
            Error::OutOfMemory { what, bytes } => {
                write!(f, "cannot allocate {bytes} bytes for {what}")
            }
            Error::BadSetting { name, value, reason } => write!(f, "{name} = {value}: {reason}"),
            Error::Checksum { expected, got } => write!(
                f,
                "checksum mismatch: header says {expected:#010x}, payload gives {got:#010x} (partial or corrupted write?)"
            ),
            Error::Unsupported { what, reason } => write!(f, "{what}: {reason}"),
        }
    }
}

// `core::error::Error` (Rust 1.81): `?` into `anyhow`/`Box<dyn Error>` works with or without
// the `std` feature.
impl core::error::Error for Error {}

/// The engine's result type.
pub type Result<T> = core::result::Result<T, Error>;
