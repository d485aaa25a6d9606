//! The run state: activations, the KV cache and scratch for int8 activations, typed by the
//! numerics that use them (f32 values and an f32 cache for the float path; Q16 `i32` values and
//! a Q8 `i16` cache for the fixed-point path).
//!
//! Its size follows from the config (and the int8 layout of the weights) alone, so it is
//! computed, checked against a budget, and reserved fallibly before the first token; `forward`
//! never allocates.

use crate::error::{Error, Result};
use crate::model::{Config, Weights};
use alloc::vec::Vec;

/// How a [`Transformer`](crate::Transformer) computes, and so which buffers its run state holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Numerics {
    /// f32 arithmetic in llama2.c's order: run.c's and runq.c's tokens exactly (the default).
    #[default]
    Float,
    /// Integer arithmetic for cores without an FPU ([`crate::fixed`]); int8 models only.
    /// Same tokens on every target, but not llama2.c's.
    Fixed,
}

impl Numerics {
    /// The name used on command lines and in logs.
    pub fn name(self) -> &'static str {
        match self {
            Numerics::Float => "float",
            Numerics::Fixed => "fixed",
        }
    }
}

/// Byte sizes of the parts of a run state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateSize {
    /// Key and value caches: `2 * n_layers * seq_len * kv_dim` values of 4 bytes (2 with the
    /// fixed-point numerics, whose cache holds `i16`).
    pub kv_cache: usize,
    /// Activation buffers, attention scores, logits and int8 scratch.
    pub activations: usize,
}

impl StateSize {
    /// Total bytes.
    pub fn total(&self) -> usize {
        self.kv_cache + self.activations
    }
}

/// The per-position buffers and the KV cache of one numerics: activations of type `A`, cache
/// entries of type `K`. Per-position buffers hold `batch` rows one after the other.
#[derive(Debug, Default)]
pub struct Buffers<A, K> {
    /// (batch, dim) activation at the current time stamp.
    pub x: Vec<A>,
    /// (batch, dim) same, inside a residual branch.
    pub xb: Vec<A>,
    /// (batch, dim) an additional buffer for convenience.
    pub xb2: Vec<A>,
    /// (batch, hidden_dim) feed-forward buffer.
    pub hb: Vec<A>,
    /// (batch, hidden_dim) feed-forward buffer.
    pub hb2: Vec<A>,
    /// (batch, dim) query.
    pub q: Vec<A>,
    /// (n_heads, seq_len) attention scores.
    pub att: Vec<A>,
    /// (layer, seq_len, kv_dim) key cache.
    pub key_cache: Vec<K>,
    /// (layer, seq_len, kv_dim) value cache.
    pub value_cache: Vec<K>,
    /// (batch, head_size / 2) RoPE cosines and sines at each position of the batch, in Q30:
    /// the fixed-point numerics only (the float numerics read `crate::rope`'s table; empty).
    pub rope_cos: Vec<A>,
    /// See `rope_cos`.
    pub rope_sin: Vec<A>,
}

/// The buffers of the numerics in use.
#[derive(Debug)]
pub enum Activations {
    /// f32 everywhere ([`Numerics::Float`]).
    Float(Buffers<f32, f32>),
    /// Q16 `i32` activations, Q15 attention weights, Q30 RoPE factors and a Q8 `i16` KV cache
    /// ([`Numerics::Fixed`], see [`crate::fixed`]).
    Fixed(Buffers<i32, i16>),
}

/// Buffers used by one forward pass over a batch of up to `batch` consecutive positions
/// (batched prompt prefill).
#[derive(Debug)]
pub struct RunState {
    /// Positions per batch (1 unless prefill was enabled).
    pub batch: usize,
    /// Activations and KV cache.
    pub act: Activations,
    /// (vocab_size) output logits.
    pub logits: Vec<f32>,
    /// (batch, longest int8 row stride) quantized activations for int8 matmuls.
    pub xq: Vec<i8>,
    /// (batch, scales per longest row) scales of `xq`.
    pub xs: Vec<f32>,
}

/// Longest int8 row stride and the most scales such a row needs, over all int8 matrices
/// (0, 0 for an fp32 model).
pub(crate) fn q8_layout(weights: &Weights<'_>) -> (usize, usize) {
    let mut stride = 0;
    let mut scales = 0;
    for (_, _, m) in weights.matrices() {
        if let Some((s, g)) = m.input_layout() {
            stride = stride.max(s);
            scales = scales.max(s / g);
        }
    }
    (stride, scales)
}

pub(crate) fn checked(what: &'static str, parts: &[usize]) -> Result<usize> {
    parts.iter().try_fold(1usize, |acc, &p| acc.checked_mul(p)).ok_or(Error::Overflow { what })
}

/// Allocates `n` default values without aborting on failure.
pub(crate) fn zeros<T: Clone + Default>(what: &'static str, n: usize) -> Result<Vec<T>> {
    let mut v = Vec::new();
    v.try_reserve_exact(n).map_err(|_| Error::OutOfMemory {
        what,
        bytes: n.saturating_mul(core::mem::size_of::<T>()),
    })?;
    v.resize(n, T::default());
    Ok(v)
}

impl<A: Clone + Default, K: Clone + Default> Buffers<A, K> {
    /// `rope_rows`: rows of the Q30 RoPE angles (`batch` for the fixed-point numerics, 0 for
    /// the float ones).
    fn new(c: &Config, seq_len: usize, batch: usize, rope_rows: usize) -> Result<Self> {
        let kv = c.n_layers * seq_len * c.kv_dim();
        Ok(Buffers {
            x: zeros("activations", batch * c.dim)?,
            xb: zeros("activations", batch * c.dim)?,
            xb2: zeros("activations", batch * c.dim)?,
            hb: zeros("activations", batch * c.hidden_dim)?,
            hb2: zeros("activations", batch * c.hidden_dim)?,
            q: zeros("activations", batch * c.dim)?,
            att: zeros("attention scores", c.n_heads * seq_len)?,
            key_cache: zeros("key cache", kv)?,
            value_cache: zeros("value cache", kv)?,
            rope_cos: zeros("rope", rope_rows * (c.head_size() / 2))?,
            rope_sin: zeros("rope", rope_rows * (c.head_size() / 2))?,
        })
    }
}

impl RunState {
    /// Bytes a run state for `config` with context `seq_len`, these weights, up to `batch`
    /// positions at once and the given numerics needs.
    pub fn size(
        config: &Config,
        weights: &Weights<'_>,
        seq_len: usize,
        batch: usize,
        numerics: Numerics,
    ) -> Result<StateSize> {
        let c = config;
        let kv_entry = match numerics {
            Numerics::Float => 4,
            Numerics::Fixed => 2,
        };
        let kv = checked("KV cache", &[2, c.n_layers, seq_len, c.kv_dim(), kv_entry])?;
        let (stride, scales) = q8_layout(weights);
        // The Q30 RoPE angles of the fixed-point numerics (the float ones read crate::rope).
        let rope = match numerics {
            Numerics::Float => 0,
            Numerics::Fixed => c.head_size() / 2 * 2,
        };
        let per_pos = [4 * c.dim, 2 * c.hidden_dim, scales, rope]
            .iter()
            .try_fold(0usize, |a, &b| a.checked_add(b))
            .ok_or(Error::Overflow { what: "activations" })?;
        let values = checked("activations", &[per_pos, batch.max(1)])?
            .checked_add(checked("attention scores", &[c.n_heads, seq_len])?)
            .and_then(|f| f.checked_add(c.vocab_size))
            .ok_or(Error::Overflow { what: "activations" })?;
        // Every activation value takes 4 bytes (f32 or i32), int8 scratch 1.
        let activations = values
            .checked_mul(4)
            .and_then(|b| b.checked_add(stride.checked_mul(batch.max(1))?))
            .ok_or(Error::Overflow { what: "activations" })?;
        Ok(StateSize { kv_cache: kv, activations })
    }

    /// Allocates the state (fallibly): exactly [`RunState::size`] bytes.
    pub fn new(
        config: &Config,
        weights: &Weights<'_>,
        seq_len: usize,
        batch: usize,
        numerics: Numerics,
    ) -> Result<Self> {
        let batch = batch.max(1);
        Self::size(config, weights, seq_len, batch, numerics)?;
        let c = config;
        // The big blocks (the KV cache) first: on a chip whose heap is split into regions,
        // small blocks allocated first could take the room a cache needs in one piece.
        let act = match numerics {
            Numerics::Float => Activations::Float(Buffers::new(c, seq_len, batch, 0)?),
            Numerics::Fixed => Activations::Fixed(Buffers::new(c, seq_len, batch, batch)?),
        };
        let (stride, scales) = q8_layout(weights);
        Ok(RunState {
            batch,
            act,
            logits: zeros("logits", c.vocab_size)?,
            xq: zeros("int8 activations", batch * stride)?,
            xs: zeros("int8 activations", batch * scales)?,
        })
    }
}
