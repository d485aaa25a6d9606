//! The C API of the esp-llm engine: open a llama2.c checkpoint or an esp-llm bundle from a byte
//! buffer (a file read into memory, or a flash partition mapped with `esp_partition_mmap`),
//! choose the sampler, and stream a story or a chat reply through a callback, one piece of text
//! per token. The header is `include/esp_llm.h`, generated from this file by cbindgen.
//!
//! Rules at the boundary:
//! - Every function returns an `esp_llm_status` and, when given an `esp_llm_error`, writes
//!   a one-line message into the caller's buffer: no error string is ever allocated.
//! - The model's bytes are borrowed for the model's whole life, not copied (except the float
//!   arrays a llama2.c int8 file leaves misaligned, as the engine always does); everything the
//!   library allocates belongs to the model and is freed by `esp_llm_close`, or is temporary
//!   and freed before the call returns. `esp_llm_memory` tells what a model will take before
//!   anything is allocated.
//! - No panic crosses into C: with the `std` feature (host builds) every entry point catches
//!   panics and returns `esp_llm_status::ESP_LLM_ERR_PANIC`, after which the model refuses
//!   further work; without it (the MCU libraries) the crate is built with `panic = "abort"` and
//!   its panic handler calls C's `abort()`.
//! - No global state, no threads, no blocking: one model is used by one task at a time.
//!
//! The text a program gets through `esp_llm_generate` is byte for byte what `esp-llm run`
//! prints for the same model, prompt and sampler settings (the test suite builds a C program
//! and compares).
#![cfg_attr(not(feature = "std"), no_std)]
// The exported names are C's (`esp_llm_model`, `ESP_LLM_OK`), as the header spells them.
#![allow(non_camel_case_types)]
// Every `unsafe` block says why it is sound, and so does every `unsafe fn` (`# Safety`), private
// ones too (clippy.toml: `check-private-items`), as in the engine.
#![deny(clippy::undocumented_unsafe_blocks, clippy::missing_safety_doc)]

extern crate alloc;

#[cfg(not(feature = "std"))]
mod runtime;

use alloc::boxed::Box;
use core::ffi::{c_char, c_void, CStr};
use core::fmt::{self, Write as _};
use esp_llm_board::model::{self, ProbeError};
use esp_llm_engine::chat::{Chat, TurnEnd};
use esp_llm_engine::checkpoint::bundle;
use esp_llm_engine::fixed::{self, FixedWeights};
use esp_llm_engine::state::RunState;
use esp_llm_engine::{
    Checkpoint, Error, Event, Generator, Numerics, Options, Sampler, Stop, Tokenizer, Transformer,
};

/// Bytes of the message buffer in `esp_llm_error`, its terminating NUL included.
pub const ESP_LLM_ERROR_MESSAGE_LEN: usize = 192;

/// What a call did. `ESP_LLM_OK` is 0; every other value is an error, described in one line by
/// the `esp_llm_error` message when the caller passes one.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum esp_llm_status {
    /// Success.
    ESP_LLM_OK = 0,
    /// A NULL pointer where one is required, a prompt that is not UTF-8, an unknown option.
    ESP_LLM_ERR_ARGUMENT = 1,
    /// The model bytes are not a checkpoint or bundle this library reads, or are truncated or
    /// inconsistent (the message names the field or section and the numbers).
    ESP_LLM_ERR_FORMAT = 2,
    /// A bundle whose CRC-32 does not match its bytes: a partial or corrupted flash write.
    ESP_LLM_ERR_CHECKSUM = 3,
    /// The tokenizer bytes are missing, malformed, or belong to another vocabulary.
    ESP_LLM_ERR_TOKENIZER = 4,
    /// A sampler setting out of range (temperature < 0, top-p outside [0, 1], seed 0).
    ESP_LLM_ERR_SETTING = 5,
    /// The prompt has more tokens than the context holds.
    ESP_LLM_ERR_PROMPT_TOO_LONG = 6,
    /// An allocation failed (the message says how many bytes, for what).
    ESP_LLM_ERR_OUT_OF_MEMORY = 7,
    /// Something this build cannot run (for example fixed-point numerics on an fp32 model).
    ESP_LLM_ERR_UNSUPPORTED = 8,
    /// A bug inside the library was caught at the boundary (host builds); the model is now
    /// unusable except by `esp_llm_close`.
    ESP_LLM_ERR_PANIC = 9,
}

use esp_llm_status::*;

/// How the model computes.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum esp_llm_numerics {
    /// Fixed point for int8 models on chips without an FPU (ESP32-C3, ESP32-C6), float
    /// everywhere else: what the esp-llm firmware does.
    ESP_LLM_NUMERICS_AUTO = 0,
    /// f32 in llama2.c's order: the tokens of run.c / runq.c and of `esp-llm run`.
    ESP_LLM_NUMERICS_FLOAT = 1,
    /// Integer arithmetic (int8 models only): the tokens of `esp-llm run --numerics fixed`.
    ESP_LLM_NUMERICS_FIXED = 2,
}

/// Why a generation or a chat turn ended.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum esp_llm_stop {
    /// Nothing ran (an error before the first position).
    ESP_LLM_STOP_NONE = 0,
    /// All the requested steps were run.
    ESP_LLM_STOP_STEPS = 1,
    /// The model produced BOS: the story is finished.
    ESP_LLM_STOP_BOS = 2,
    /// Chat: the assistant's reply ended with EOS; the next turn is the user's.
    ESP_LLM_STOP_EOS = 3,
    /// Chat: every position of the conversation is used; start a new one.
    ESP_LLM_STOP_CONTEXT = 4,
    /// The piece callback returned false.
    ESP_LLM_STOP_CALLBACK = 5,
}

/// A status and its message, written by the library into the caller's memory.
#[repr(C)]
pub struct esp_llm_error {
    /// The same value the function returned.
    pub status: esp_llm_status,
    /// One line of UTF-8, NUL-terminated (cut at a character boundary if longer); empty when
    /// the call succeeded.
    pub message: [c_char; ESP_LLM_ERROR_MESSAGE_LEN],
}

/// How `esp_llm_open` builds a model. Start from `esp_llm_options_default`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct esp_llm_options {
    /// The tokenizer file's bytes (`tok512.bin`, `tokenizer.bin`), borrowed until
    /// `esp_llm_close`; NULL for a bundle (`esp-llm pack`), which carries its own.
    pub tokenizer: *const u8,
    /// Length of `tokenizer` in bytes.
    pub tokenizer_len: usize,
    /// Positions of context to allocate the KV cache for; 0 = the model's whole context.
    /// A smaller value saves memory: generation then stops after that many positions.
    pub seq_len: u32,
    /// An `esp_llm_numerics` value.
    pub numerics: u32,
    /// Check a bundle's CRC-32 before using it (reads every byte once: a few ms per MB).
    pub verify_checksum: bool,
}

/// Sampling settings, as `esp-llm run`'s `-t`, `-p` and `-s`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct esp_llm_sampler_options {
    /// 0 = greedy (always the most likely token); 1 = the model's own distribution.
    pub temperature: f32,
    /// Nucleus sampling threshold in [0, 1]; 0 or 1 samples from all tokens.
    pub topp: f32,
    /// Seed of llama2.c's xorshift RNG; must not be 0 (pass `esp_random()` or `time(NULL)`
    /// for a different story each time, a constant for a repeatable one).
    pub seed: u64,
}

/// A model's shape and the memory it takes, from `esp_llm_memory` or `esp_llm_model_info`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct esp_llm_info {
    /// Transformer width.
    pub dim: u32,
    /// Feed-forward width.
    pub hidden_dim: u32,
    /// Number of layers.
    pub n_layers: u32,
    /// Query heads.
    pub n_heads: u32,
    /// Key/value heads.
    pub n_kv_heads: u32,
    /// Vocabulary size.
    pub vocab_size: u32,
    /// Context positions the model runs with (the `seq_len` option applied).
    pub seq_len: u32,
    /// The context the model was trained with.
    pub model_seq_len: u32,
    /// 1 if the matrices are int8, 0 if fp32.
    pub int8: bool,
    /// The numerics chosen: `ESP_LLM_NUMERICS_FLOAT` or `ESP_LLM_NUMERICS_FIXED`.
    pub numerics: u32,
    /// Weight bytes used in place in the caller's buffer.
    pub weights_in_place: usize,
    /// Weight bytes copied to the heap (floats a llama2.c int8 file leaves misaligned).
    pub weights_copied: usize,
    /// Integer scales derived for the fixed-point numerics.
    pub fixed_scales: usize,
    /// Key and value caches.
    pub kv_cache: usize,
    /// Activation buffers and logits.
    pub activations: usize,
    /// The tokenizer's lookup tables (two pointers and eight bytes per token).
    pub tokenizer_tables: usize,
    /// The sampler's top-p scratch (eight bytes per token).
    pub sampler: usize,
    /// Everything `esp_llm_open` allocates: the sum of the above heap parts and the model's
    /// own handle.
    pub heap_total: usize,
}

/// What a generation or chat turn did.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct esp_llm_result {
    /// Why it ended.
    pub stop: esp_llm_stop,
    /// Tokens of the prompt (or of the user's message), BOS included.
    pub prompt_tokens: u32,
    /// Forward passes run by this call.
    pub positions: u32,
    /// Positions used so far: by this generation, or by the whole conversation in chat.
    pub pos: u32,
}

/// Receives the text of one token: `len` bytes at `piece` (not NUL-terminated; a byte-fallback
/// token can be part of a multi-byte UTF-8 character). Called only for non-empty pieces.
/// Return true to go on, false to stop after this piece. It runs inside the call that was given
/// it and must not call `esp_llm_*` functions on the same model (it may on another model).
pub type esp_llm_piece_fn =
    Option<unsafe extern "C" fn(user_data: *mut c_void, piece: *const c_char, len: usize) -> bool>;

/// A model ready to generate: its weights (borrowed from the caller's buffer), run state,
/// tokenizer, sampler and chat position. Opaque to C.
pub struct esp_llm_model {
    // 'static stands for "until esp_llm_close": the caller keeps the model and tokenizer
    // bytes alive and unchanged that long (the documented contract of esp_llm_open).
    transformer: Transformer<'static>,
    tokenizer: Tokenizer<'static>,
    sampler: Sampler,
    chat: Chat,
    info: esp_llm_info,
    /// Set when a panic was caught inside a call: the state may be half-updated.
    poisoned: bool,
}

/// Why a call failed, before it is written out as a status and a message.
enum Failure {
    Engine(Error),
    /// The first bytes of a bundle or partition: erased, not a bundle, impossible length.
    Probe(ProbeError),
    Invalid(esp_llm_status, &'static str),
}

impl Failure {
    fn status(&self) -> esp_llm_status {
        match self {
            Failure::Invalid(s, _) => *s,
            Failure::Probe(_) => ESP_LLM_ERR_FORMAT,
            Failure::Engine(e) => match e {
                Error::Tokenizer { .. } | Error::Unencodable { .. } => ESP_LLM_ERR_TOKENIZER,
                Error::BadSetting { .. } => ESP_LLM_ERR_SETTING,
                Error::PromptTooLong { .. } => ESP_LLM_ERR_PROMPT_TOO_LONG,
                Error::OutOfMemory { .. } => ESP_LLM_ERR_OUT_OF_MEMORY,
                Error::Checksum { .. } => ESP_LLM_ERR_CHECKSUM,
                Error::Unsupported { .. } => ESP_LLM_ERR_UNSUPPORTED,
                Error::TokenOutOfRange { .. }
                | Error::PositionOutOfRange { .. }
                | Error::BadLength { .. } => ESP_LLM_ERR_ARGUMENT,
                _ => ESP_LLM_ERR_FORMAT,
            },
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Engine(e) => write!(f, "{e}"),
            Failure::Probe(e) => write!(f, "{e}"),
            Failure::Invalid(_, m) => f.write_str(m),
        }
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure::Engine(e)
    }
}

type Outcome<T> = core::result::Result<T, Failure>;

/// Fills a message buffer, keeping the last byte for the NUL and cutting at a character
/// boundary when the text is longer.
struct Message<'m> {
    buf: &'m mut [u8],
    len: usize,
}

impl fmt::Write for Message<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let room = self.buf.len().saturating_sub(1 + self.len);
        let mut n = s.len().min(room);
        while !s.is_char_boundary(n) {
            n -= 1;
        }
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

/// Writes `status` and `message` into the caller's error struct, if one was given.
fn report(err: Option<&mut esp_llm_error>, status: esp_llm_status, message: &dyn fmt::Display) {
    let Some(e) = err else { return };
    e.status = status;
    // SAFETY: c_char and u8 have the same size and alignment; the array is borrowed mutably.
    let buf = unsafe {
        core::slice::from_raw_parts_mut(
            e.message.as_mut_ptr().cast::<u8>(),
            ESP_LLM_ERROR_MESSAGE_LEN,
        )
    };
    let mut m = Message { buf, len: 0 };
    let _ = write!(m, "{message}");
    let end = m.len;
    m.buf[end] = 0;
}

/// Runs one entry point's body: a panic becomes `ESP_LLM_ERR_PANIC` (with `std`; without it
/// the panic handler aborts), the outcome becomes a status and a message.
fn boundary(err: Option<&mut esp_llm_error>, body: impl FnOnce() -> Outcome<()>) -> esp_llm_status {
    #[cfg(feature = "std")]
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(body))
        .unwrap_or(Err(Failure::Invalid(ESP_LLM_ERR_PANIC, "internal error (panic) in esp-llm")));
    #[cfg(not(feature = "std"))]
    let outcome = body();
    match outcome {
        Ok(()) => {
            report(err, ESP_LLM_OK, &"");
            ESP_LLM_OK
        }
        Err(f) => {
            let status = f.status();
            report(err, status, &f);
            status
        }
    }
}

/// `boundary` for calls on an open model: NULL and poisoned models are refused, and a panic
/// poisons the model.
fn with_model(
    model: Option<&mut esp_llm_model>,
    err: Option<&mut esp_llm_error>,
    body: impl FnOnce(&mut esp_llm_model) -> Outcome<()>,
) -> esp_llm_status {
    let Some(m) = model else {
        return boundary(err, || Err(Failure::Invalid(ESP_LLM_ERR_ARGUMENT, "model is NULL")));
    };
    if m.poisoned {
        return boundary(err, || {
            Err(Failure::Invalid(
                ESP_LLM_ERR_PANIC,
                "an earlier call failed inside esp-llm; close this model and open it again",
            ))
        });
    }
    let mut finished = false;
    let status = boundary(err, || {
        let r = body(&mut *m);
        finished = true;
        r
    });
    if !finished {
        // The body unwound: the model's state may be half-updated.
        m.poisoned = true;
    }
    status
}

/// The bytes of a NUL-terminated string, or `b""` for NULL.
///
/// # Safety
/// `s` is NULL or a valid NUL-terminated string.
unsafe fn c_bytes<'s>(s: *const c_char) -> &'s [u8] {
    if s.is_null() {
        return b"";
    }
    // SAFETY: the caller passes a valid NUL-terminated string.
    unsafe { CStr::from_ptr(s) }.to_bytes()
}

/// A NUL-terminated UTF-8 string (NULL = `None`).
///
/// # Safety
/// As `c_bytes`.
unsafe fn c_str<'s>(s: *const c_char, what: &'static str) -> Outcome<Option<&'s str>> {
    if s.is_null() {
        return Ok(None);
    }
    // SAFETY: forwarded from the caller.
    let bytes = unsafe { c_bytes(s) };
    core::str::from_utf8(bytes).map(Some).map_err(|_| Failure::Invalid(ESP_LLM_ERR_ARGUMENT, what))
}

/// A byte buffer from C, checked for NULL.
///
/// # Safety
/// `ptr` is NULL or points to `len` readable bytes that stay valid and unchanged for `'b`.
unsafe fn c_buffer<'b>(ptr: *const u8, len: usize, what: &'static str) -> Outcome<&'b [u8]> {
    if ptr.is_null() {
        return Err(Failure::Invalid(ESP_LLM_ERR_ARGUMENT, what));
    }
    // SAFETY: the caller's contract.
    Ok(unsafe { core::slice::from_raw_parts(ptr, len) })
}

/// Whether this build runs on a core without an FPU (ESP32-C3, ESP32-C6).
const NO_FPU: bool = cfg!(all(target_arch = "riscv32", not(target_feature = "f")));

/// The model bytes to parse: a bundle is cut to the length its header gives, so that a whole
/// flash partition (bundle followed by erased flash) can be passed as it is.
fn model_bytes(bytes: &[u8]) -> Outcome<&[u8]> {
    if !bundle::is_bundle(bytes) {
        return Ok(bytes);
    }
    let n = bundle_len(bytes, bytes.len())?;
    Ok(&bytes[..n])
}

/// The length of the bundle whose header starts `head`, checked against the `available` bytes
/// (the firmware's check of its `model` partition, `esp_llm_board::model::probe`).
fn bundle_len(head: &[u8], available: usize) -> Outcome<usize> {
    let available = u64::try_from(available).unwrap_or(u64::MAX);
    model::probe(head, available).map_err(Failure::Probe)
}

/// Everything `esp_llm_open` decides before allocating: the parsed checkpoint, the tokenizer
/// bytes, the numerics and the memory figures.
struct Plan<'a> {
    checkpoint: Checkpoint<'a>,
    tokenizer: &'a [u8],
    numerics: Numerics,
    seq_len: Option<usize>,
    info: esp_llm_info,
}

/// # Safety
/// `model` points to `model_len` bytes and `options` is NULL or valid, with its tokenizer
/// pointer NULL or pointing to `tokenizer_len` bytes, all valid for `'a`.
unsafe fn plan<'a>(
    model: *const u8,
    model_len: usize,
    options: *const esp_llm_options,
) -> Outcome<Plan<'a>> {
    // SAFETY: the caller's contract.
    let opts = unsafe { options.as_ref() }.copied().unwrap_or(esp_llm_options_default());
    // SAFETY: the caller's contract.
    let all = unsafe { c_buffer(model, model_len, "model bytes are NULL")? };
    let bytes = model_bytes(all)?;
    if opts.verify_checksum && bundle::is_bundle(bytes) {
        bundle::verify(bytes)?;
    }
    let (checkpoint, tokenizer) = if bundle::is_bundle(bytes) {
        let b = bundle::Bundle::parse(bytes)?;
        let tok = if opts.tokenizer.is_null() {
            b.tokenizer
        } else {
            // SAFETY: the caller's contract.
            unsafe { c_buffer(opts.tokenizer, opts.tokenizer_len, "tokenizer")? }
        };
        (b.checkpoint, tok)
    } else {
        let ck = Checkpoint::parse(bytes)?;
        if opts.tokenizer.is_null() {
            return Err(Failure::Invalid(
                ESP_LLM_ERR_TOKENIZER,
                "a llama2.c checkpoint needs its tokenizer: set options.tokenizer (tok512.bin, tokenizer.bin) or pack a bundle with `esp-llm pack`",
            ));
        }
        // SAFETY: the caller's contract.
        (ck, unsafe { c_buffer(opts.tokenizer, opts.tokenizer_len, "tokenizer")? })
    };
    let c = checkpoint.config;
    let numerics = match opts.numerics {
        0 if NO_FPU && fixed::supports(&checkpoint.weights) => Numerics::Fixed,
        0 | 1 => Numerics::Float,
        2 => Numerics::Fixed,
        _ => {
            return Err(Failure::Invalid(
                ESP_LLM_ERR_ARGUMENT,
                "options.numerics is not an esp_llm_numerics value (0 auto, 1 float, 2 fixed)",
            ))
        }
    };
    if numerics == Numerics::Fixed && !fixed::supports(&checkpoint.weights) {
        return Err(Error::Unsupported {
            what: "fixed-point numerics",
            reason: "need an int8 model (esp-llm pack --quant q8, or esp-llm quantize)",
        }
        .into());
    }
    let seq_len = match opts.seq_len {
        0 => None,
        n => Some(n as usize),
    };
    let run_len = seq_len.map_or(c.seq_len, |n| n.min(c.seq_len));
    let state = RunState::size(&c, &checkpoint.weights, run_len, 1, numerics)?;
    let w = &checkpoint.weights;
    let copied = w.copied_bytes();
    let fixed_scales = match numerics {
        Numerics::Fixed => FixedWeights::size(&c, w),
        Numerics::Float => 0,
    };
    let tokenizer_tables = c.vocab_size.saturating_mul(2 * core::mem::size_of::<usize>() + 8);
    let sampler = c.vocab_size.saturating_mul(8);
    let int8 = w.matrices().any(|(_, _, m)| m.group().is_some());
    let to_u32 = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
    let info = esp_llm_info {
        dim: to_u32(c.dim),
        hidden_dim: to_u32(c.hidden_dim),
        n_layers: to_u32(c.n_layers),
        n_heads: to_u32(c.n_heads),
        n_kv_heads: to_u32(c.n_kv_heads),
        vocab_size: to_u32(c.vocab_size),
        seq_len: to_u32(run_len),
        model_seq_len: to_u32(c.seq_len),
        int8,
        numerics: match numerics {
            Numerics::Fixed => esp_llm_numerics::ESP_LLM_NUMERICS_FIXED as u32,
            Numerics::Float => esp_llm_numerics::ESP_LLM_NUMERICS_FLOAT as u32,
        },
        weights_in_place: w.bytes().saturating_sub(copied),
        weights_copied: copied,
        fixed_scales,
        kv_cache: state.kv_cache,
        activations: state.activations,
        tokenizer_tables,
        sampler,
        heap_total: [copied, fixed_scales, state.total(), tokenizer_tables, sampler]
            .into_iter()
            .fold(core::mem::size_of::<esp_llm_model>(), usize::saturating_add),
    };
    Ok(Plan { checkpoint, tokenizer, numerics, seq_len, info })
}

/// The options `esp-llm run` uses: the bundle's own tokenizer, the whole context, automatic
/// numerics, checksum verified.
#[no_mangle]
pub extern "C" fn esp_llm_options_default() -> esp_llm_options {
    esp_llm_options {
        tokenizer: core::ptr::null(),
        tokenizer_len: 0,
        seq_len: 0,
        numerics: esp_llm_numerics::ESP_LLM_NUMERICS_AUTO as u32,
        verify_checksum: true,
    }
}

/// `esp-llm run`'s defaults: temperature 1.0, top-p 0.9; seed 1 (run's default, 0, means "from
/// the clock", which a library does not have: pass your own).
#[no_mangle]
pub extern "C" fn esp_llm_sampler_default() -> esp_llm_sampler_options {
    esp_llm_sampler_options { temperature: 1.0, topp: 0.9, seed: 1 }
}

/// Parses `model` and fills `info` with its shape and the memory `esp_llm_open` would take
/// with these options, without allocating the run state (a llama2.c int8 file's misaligned
/// floats are copied while parsing and freed before return).
///
/// # Safety
/// `model` points to `model_len` readable bytes; `options` is NULL (defaults) or valid, and its
/// `tokenizer` NULL or pointing to `tokenizer_len` bytes; `info` and `err` are NULL or
/// writable.
#[no_mangle]
pub unsafe extern "C" fn esp_llm_memory(
    model: *const u8,
    model_len: usize,
    options: *const esp_llm_options,
    info: *mut esp_llm_info,
    err: *mut esp_llm_error,
) -> esp_llm_status {
    // SAFETY: `info` and `err` are NULL or writable, as required above.
    let (info, err) = unsafe { (info.as_mut(), err.as_mut()) };
    boundary(err, || {
        // SAFETY: `model` (with `options` and its tokenizer) is valid as required above.
        let p = unsafe { plan(model, model_len, options) }?;
        if let Some(out) = info {
            *out = p.info;
        }
        Ok(())
    })
}

/// The length of the bundle that starts at `head` (at least its first 128 bytes, the header),
/// checked against `available`, the bytes that follow in the file or flash partition. Use it
/// to map only the bundle out of a larger partition.
///
/// # Safety
/// `head` points to `head_len` readable bytes; `len` and `err` are NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn esp_llm_bundle_length(
    head: *const u8,
    head_len: usize,
    available: usize,
    len: *mut usize,
    err: *mut esp_llm_error,
) -> esp_llm_status {
    // SAFETY: `len` and `err` are NULL or writable, as required above.
    let (len, err) = unsafe { (len.as_mut(), err.as_mut()) };
    boundary(err, || {
        // SAFETY: `head` points to `head_len` readable bytes, as required above.
        let bytes = unsafe { c_buffer(head, head_len, "bundle header bytes are NULL") }?;
        let n = bundle_len(bytes, available)?;
        if let Some(out) = len {
            *out = n;
        }
        Ok(())
    })
}

/// Opens a model over `model_len` bytes at `model`: a llama2.c checkpoint (v0, v1, v2 int8,
/// with `options->tokenizer`) or an esp-llm bundle (its own tokenizer; a longer buffer such as
/// a whole flash partition is cut to the bundle's length). The bytes are used in place and must
/// stay valid and unchanged until `esp_llm_close`. Allocates `esp_llm_info::heap_total`
/// bytes. The sampler starts as `esp_llm_sampler_default`. On success `*out` is the model;
/// on failure it is NULL and nothing stays allocated.
///
/// # Safety
/// As `esp_llm_memory`, with the buffers valid and unchanged until `esp_llm_close`; `out` is
/// writable.
#[no_mangle]
pub unsafe extern "C" fn esp_llm_open(
    model: *const u8,
    model_len: usize,
    options: *const esp_llm_options,
    out: *mut *mut esp_llm_model,
    err: *mut esp_llm_error,
) -> esp_llm_status {
    // SAFETY: `out` and `err` are NULL or writable, as required above.
    let (out, err) = unsafe { (out.as_mut(), err.as_mut()) };
    boundary(err, || {
        let out = out.ok_or(Failure::Invalid(ESP_LLM_ERR_ARGUMENT, "out is NULL"))?;
        *out = core::ptr::null_mut();
        // 'static stands for "until esp_llm_close", as long as the caller keeps the bytes.
        // SAFETY: `model` and `options` are valid as required above, until `esp_llm_close`.
        let p: Plan<'static> = unsafe { plan(model, model_len, options) }?;
        let config = p.checkpoint.config;
        let tokenizer = Tokenizer::from_bytes(p.tokenizer, config.vocab_size)?;
        let options = Options { seq_len: p.seq_len, numerics: p.numerics, ..Options::default() };
        let transformer = Transformer::new(p.checkpoint, options)?;
        let d = esp_llm_sampler_default();
        let sampler = Sampler::new(config.vocab_size, d.temperature, d.topp, d.seed)?;
        let chat = Chat::new(&transformer, 0);
        let m =
            esp_llm_model { transformer, tokenizer, sampler, chat, info: p.info, poisoned: false };
        *out = Box::into_raw(Box::new(m));
        Ok(())
    })
}

/// Frees everything the model allocated. NULL is ignored. The model's bytes may be released
/// afterwards.
///
/// # Safety
/// `model` is NULL or a pointer from `esp_llm_open` not closed yet, unused by other threads.
#[no_mangle]
pub unsafe extern "C" fn esp_llm_close(model: *mut esp_llm_model) {
    if model.is_null() {
        return;
    }
    // SAFETY: the pointer came from Box::into_raw in esp_llm_open and is closed once.
    let m = unsafe { Box::from_raw(model) };
    #[cfg(feature = "std")]
    {
        // Dropping only frees memory; a panic there would be a bug, but must not unwind into C.
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(m)));
    }
    #[cfg(not(feature = "std"))]
    drop(m);
}

/// The model's shape and memory (as `esp_llm_memory` computed them at open).
///
/// # Safety
/// `model` is a live model or NULL; `info` and `err` are NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn esp_llm_model_info(
    model: *mut esp_llm_model,
    info: *mut esp_llm_info,
    err: *mut esp_llm_error,
) -> esp_llm_status {
    // SAFETY: the pointers are NULL or valid as required above.
    let (model, info, err) = unsafe { (model.as_mut(), info.as_mut(), err.as_mut()) };
    with_model(model, err, |m| {
        let out = info.ok_or(Failure::Invalid(ESP_LLM_ERR_ARGUMENT, "info is NULL"))?;
        *out = m.info;
        Ok(())
    })
}

/// Sets temperature, top-p and seed, and restarts the RNG from the seed (the same settings then
/// give the same story again). Nothing changes when a setting is refused.
///
/// # Safety
/// `model` is a live model or NULL; `options` is NULL or valid; `err` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn esp_llm_set_sampler(
    model: *mut esp_llm_model,
    options: *const esp_llm_sampler_options,
    err: *mut esp_llm_error,
) -> esp_llm_status {
    // SAFETY: the pointers are NULL or valid as required above.
    let (model, options, err) = unsafe { (model.as_mut(), options.as_ref(), err.as_mut()) };
    with_model(model, err, |m| {
        let o =
            options.ok_or(Failure::Invalid(ESP_LLM_ERR_ARGUMENT, "sampler options are NULL"))?;
        if o.seed == 0 {
            return Err(Failure::Invalid(
                ESP_LLM_ERR_SETTING,
                "seed = 0: must be nonzero (llama2.c's xorshift RNG would stay at 0); pass esp_random() or time(NULL)",
            ));
        }
        m.sampler = Sampler::new(m.transformer.config.vocab_size, o.temperature, o.topp, o.seed)?;
        Ok(())
    })
}

/// Hands a piece to the callback; true = go on.
///
/// # Safety
/// `on_piece` is NULL or a function that may be called with `user_data`.
unsafe fn emit(on_piece: esp_llm_piece_fn, user_data: *mut c_void, piece: &[u8]) -> bool {
    match on_piece {
        // SAFETY: the caller's callback, given a pointer and length valid for the call.
        Some(f) if !piece.is_empty() => unsafe { f(user_data, piece.as_ptr().cast(), piece.len()) },
        _ => true,
    }
}

fn to_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

const NO_RESULT: esp_llm_result = esp_llm_result {
    stop: esp_llm_stop::ESP_LLM_STOP_NONE,
    prompt_tokens: 0,
    positions: 0,
    pos: 0,
};

/// Writes a story: encodes `prompt` (NULL = empty) with BOS first, forces its tokens, then
/// samples until `steps` forward passes (prompt included; 0 or more than the context = the
/// whole context), a sampled BOS, or `on_piece` returning false. Every token's text, the
/// prompt's included, goes to `on_piece` (NULL = discard): exactly the bytes `esp-llm run`
/// prints before its final newline. Starts from position 0: a chat in progress is reset.
/// Allocates only the prompt's tokens, freed before return. `result` (if not NULL) is written
/// on success and on failure.
///
/// # Safety
/// `model` is a live model or NULL; `prompt` is NULL or a NUL-terminated string; `on_piece` is
/// NULL or callable with `user_data`; `result` and `err` are NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn esp_llm_generate(
    model: *mut esp_llm_model,
    prompt: *const c_char,
    steps: u32,
    on_piece: esp_llm_piece_fn,
    user_data: *mut c_void,
    result: *mut esp_llm_result,
    err: *mut esp_llm_error,
) -> esp_llm_status {
    // SAFETY: `model` is live or NULL, `result` and `err` NULL or writable, as required above.
    let (model, result, err) = unsafe { (model.as_mut(), result.as_mut(), err.as_mut()) };
    let mut r = NO_RESULT;
    let status = with_model(model, err, |m| {
        m.chat = Chat::new(&m.transformer, 0);
        // SAFETY: `prompt` is NULL or a NUL-terminated string, as required above.
        let ids = m.tokenizer.try_encode(unsafe { c_bytes(prompt) })?;
        r.prompt_tokens = to_u32(ids.len());
        let (t, tok, s) = (&mut m.transformer, &m.tokenizer, &mut m.sampler);
        for event in Generator::new(t, tok, s, ids, steps as usize)? {
            match event? {
                Event::Token { text, .. } => {
                    r.positions += 1;
                    // SAFETY: `on_piece` is NULL or callable with `user_data`, as required above.
                    if !unsafe { emit(on_piece, user_data, text) } {
                        r.stop = esp_llm_stop::ESP_LLM_STOP_CALLBACK;
                        break;
                    }
                }
                Event::Done(Stop::Bos) => {
                    r.positions += 1;
                    r.stop = esp_llm_stop::ESP_LLM_STOP_BOS;
                }
                Event::Done(_) => r.stop = esp_llm_stop::ESP_LLM_STOP_STEPS,
            }
        }
        r.pos = r.positions;
        Ok(())
    });
    if let Some(out) = result {
        *out = r;
    }
    status
}

/// Starts a new conversation over at most `steps` positions (0 = the whole context). A model
/// starts with one over the whole context; `esp_llm_generate` resets it too.
///
/// # Safety
/// `model` is a live model or NULL; `err` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn esp_llm_chat_reset(
    model: *mut esp_llm_model,
    steps: u32,
    err: *mut esp_llm_error,
) -> esp_llm_status {
    // SAFETY: the pointers are NULL or valid as required above.
    let (model, err) = unsafe { (model.as_mut(), err.as_mut()) };
    with_model(model, err, |m| {
        m.chat = Chat::new(&m.transformer, steps as usize);
        Ok(())
    })
}

/// One chat exchange in llama2.c's Llama-2 template: `user` (with `system` as the `<<SYS>>`
/// prompt on a conversation's first turn; NULL or "" = none) is forced, then the assistant's
/// reply is sampled and streamed to `on_piece` until the model gives EOS (the reply then ends
/// with "\n"), the conversation's positions run out, or `on_piece` returns false. The text is
/// what `esp-llm run -m chat` prints after "Assistant: ". `result` (if not NULL) is written on
/// success and on failure.
///
/// # Safety
/// `model` is a live model or NULL; `system` and `user` are NULL or NUL-terminated strings;
/// `on_piece` is NULL or callable with `user_data`; `result` and `err` are NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn esp_llm_chat_turn(
    model: *mut esp_llm_model,
    system: *const c_char,
    user: *const c_char,
    on_piece: esp_llm_piece_fn,
    user_data: *mut c_void,
    result: *mut esp_llm_result,
    err: *mut esp_llm_error,
) -> esp_llm_status {
    // SAFETY: `model` is live or NULL, `result` and `err` NULL or writable, as required above.
    let (model, result, err) = unsafe { (model.as_mut(), result.as_mut(), err.as_mut()) };
    let mut r = NO_RESULT;
    let status = with_model(model, err, |m| {
        // SAFETY: `system` is NULL or a NUL-terminated string, as required above.
        let system = unsafe { c_str(system, "system prompt is not UTF-8") }?;
        // SAFETY: `user` is NULL or a NUL-terminated string, as required above.
        let user = unsafe { c_str(user, "user message is not UTF-8") }?
            .ok_or(Failure::Invalid(ESP_LLM_ERR_ARGUMENT, "user message is NULL"))?;
        let start = m.chat.pos();
        // SAFETY: `on_piece` is NULL or callable with `user_data`, as required above.
        let mut write = |piece: &[u8]| unsafe { emit(on_piece, user_data, piece) };
        let (t, tok, s) = (&mut m.transformer, &m.tokenizer, &mut m.sampler);
        let end = m.chat.turn(t, tok, s, system, user, &mut write);
        r.positions = to_u32(m.chat.pos() - start);
        r.pos = to_u32(m.chat.pos());
        r.stop = match end? {
            TurnEnd::Eos => esp_llm_stop::ESP_LLM_STOP_EOS,
            TurnEnd::Stopped => esp_llm_stop::ESP_LLM_STOP_CALLBACK,
            _ => esp_llm_stop::ESP_LLM_STOP_CONTEXT,
        };
        Ok(())
    });
    if let Some(out) = result {
        *out = r;
    }
    status
}

/// A short constant name for a status ("ESP_LLM_OK", "ESP_LLM_ERR_FORMAT", ...; an unknown
/// value gives "ESP_LLM_UNKNOWN_STATUS"); a static string, never NULL.
#[no_mangle]
pub extern "C" fn esp_llm_status_name(status: i32) -> *const c_char {
    const NAMES: [&CStr; 10] = [
        c"ESP_LLM_OK",
        c"ESP_LLM_ERR_ARGUMENT",
        c"ESP_LLM_ERR_FORMAT",
        c"ESP_LLM_ERR_CHECKSUM",
        c"ESP_LLM_ERR_TOKENIZER",
        c"ESP_LLM_ERR_SETTING",
        c"ESP_LLM_ERR_PROMPT_TOO_LONG",
        c"ESP_LLM_ERR_OUT_OF_MEMORY",
        c"ESP_LLM_ERR_UNSUPPORTED",
        c"ESP_LLM_ERR_PANIC",
    ];
    let name = usize::try_from(status).ok().and_then(|i| NAMES.get(i));
    name.copied().unwrap_or(c"ESP_LLM_UNKNOWN_STATUS").as_ptr()
}

/// The library's version ("0.1.0"), a static string.
#[no_mangle]
pub extern "C" fn esp_llm_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}
