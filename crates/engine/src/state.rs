//! The run state: activations, the KV cache and scratch for int8 activations.
//!
//! Its size follows from the config (and the int8 layout of the weights) alone, so it is
//! computed, checked against a budget, and reserved fallibly before the first token; `forward`
//! never allocates.

use crate::error::{Error, Result};
use crate::forward::Numerics;
use crate::model::{Config, Weights};
use alloc::vec::Vec;

/// Byte sizes of the parts of a run state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateSize {
    /// Key and value caches: `2 * n_layers * seq_len * kv_dim * 4` (`* 2` with the fixed-point
    /// numerics, whose cache holds `i16`).
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

/// Buffers used by one forward pass over a batch of up to `batch` consecutive positions
/// (batched prompt prefill); per-position buffers hold `batch` rows one after the other.
#[derive(Debug, Default)]
pub struct RunState {
    /// Positions per batch (1 unless prefill was enabled).
    pub batch: usize,
    /// The numerics the buffers are laid out for (the fixed-point path reads them as `i32`
    /// and the KV cache as `i16`, which then takes half the bytes).
    pub numerics: Numerics,
    /// (batch, dim) activation at the current time stamp.
    pub x: Vec<f32>,
    /// (batch, dim) same, inside a residual branch.
    pub xb: Vec<f32>,
    /// (batch, dim) an additional buffer for convenience.
    pub xb2: Vec<f32>,
    /// (batch, hidden_dim) feed-forward buffer.
    pub hb: Vec<f32>,
    /// (batch, hidden_dim) feed-forward buffer.
    pub hb2: Vec<f32>,
    /// (batch, dim) query.
    pub q: Vec<f32>,
    /// (n_heads, seq_len) attention scores.
    pub att: Vec<f32>,
    /// (vocab_size) output logits.
    pub logits: Vec<f32>,
    /// (layer, seq_len, kv_dim) key cache (f32; or `i16` pairs with the fixed numerics).
    pub key_cache: Vec<f32>,
    /// (layer, seq_len, kv_dim) value cache.
    pub value_cache: Vec<f32>,
    /// (batch, longest int8 row stride) quantized activations for int8 matmuls.
    pub xq: Vec<i8>,
    /// (batch, scales per longest row) scales of `xq`.
    pub xs: Vec<f32>,
    /// (batch, head_size / 2) RoPE cosines and sines at each position of the batch.
    pub rope_cos: Vec<f32>,
    /// See `rope_cos`.
    pub rope_sin: Vec<f32>,
}

/// Longest int8 row stride and the most scales such a row needs, over all int8 matrices.
fn q8_scratch(weights: &Weights<'_>) -> (usize, usize) {
    let mut stride = 0;
    let mut scales = 0;
    for (_, _, m) in weights.matrices() {
        if let crate::model::Matrix::Q8(q) = m {
            stride = stride.max(q.stride);
            scales = scales.max(q.stride / q.group);
        }
    }
    (stride, scales)
}

fn checked(what: &'static str, parts: &[usize]) -> Result<usize> {
    parts.iter().try_fold(1usize, |acc, &p| acc.checked_mul(p)).ok_or(Error::Overflow { what })
}

/// Allocates `n` default values without aborting on failure.
fn zeros<T: Clone + Default>(what: &'static str, n: usize) -> Result<Vec<T>> {
    let mut v = Vec::new();
    v.try_reserve_exact(n).map_err(|_| Error::OutOfMemory {
        what,
        bytes: n.saturating_mul(core::mem::size_of::<T>()),
    })?;
    v.resize(n, T::default());
    Ok(v)
}

impl RunState {
    /// Bytes a run state for `config` (with context `seq_len`) and these weights needs.
    pub fn size(config: &Config, weights: &Weights<'_>, seq_len: usize) -> Result<StateSize> {
        Self::size_batched(config, weights, seq_len, 1)
    }

    /// Bytes a run state needs when it runs up to `batch` positions at once.
    pub fn size_batched(
        config: &Config,
        weights: &Weights<'_>,
        seq_len: usize,
        batch: usize,
    ) -> Result<StateSize> {
        Self::size_for(config, weights, seq_len, batch, Numerics::Float)
    }

    /// f32 values per KV cache (keys or values) of `values` entries with these numerics.
    fn kv_floats(values: usize, numerics: Numerics) -> usize {
        match numerics {
            Numerics::Float => values,
            Numerics::Fixed => values.div_ceil(2),
        }
    }

    /// Bytes a run state needs with the given numerics (the fixed-point path's KV cache holds
    /// `i16`, half the float one).
    pub fn size_for(
        config: &Config,
        weights: &Weights<'_>,
        seq_len: usize,
        batch: usize,
        numerics: Numerics,
    ) -> Result<StateSize> {
        let c = config;
        let values = checked("KV cache", &[c.n_layers, seq_len, c.kv_dim()])?;
        let kv = checked("KV cache", &[2, Self::kv_floats(values, numerics), 4])?;
        let (stride, scales) = q8_scratch(weights);
        let per_pos = [4 * c.dim, 2 * c.hidden_dim, scales, c.head_size()]
            .iter()
            .try_fold(0usize, |a, &b| a.checked_add(b))
            .ok_or(Error::Overflow { what: "activations" })?;
        let floats = checked("activations", &[per_pos, batch.max(1)])?
            .checked_add(checked("attention scores", &[c.n_heads, seq_len])?)
            .and_then(|f| f.checked_add(c.vocab_size))
            .ok_or(Error::Overflow { what: "activations" })?;
        let activations = floats
            .checked_mul(4)
            .and_then(|b| b.checked_add(stride.checked_mul(batch.max(1))?))
            .ok_or(Error::Overflow { what: "activations" })?;
        Ok(StateSize { kv_cache: kv, activations })
    }

    /// Allocates the state (fallibly) for one position at a time.
    pub fn new(config: &Config, weights: &Weights<'_>, seq_len: usize) -> Result<Self> {
        Self::new_batched(config, weights, seq_len, 1)
    }

    /// Allocates the state (fallibly) for up to `batch` positions at once.
    pub fn new_batched(
        config: &Config,
        weights: &Weights<'_>,
        seq_len: usize,
        batch: usize,
    ) -> Result<Self> {
        Self::new_for(config, weights, seq_len, batch, Numerics::Float)
    }

    /// Allocates the state (fallibly) for the given numerics.
    pub fn new_for(
        config: &Config,
        weights: &Weights<'_>,
        seq_len: usize,
        batch: usize,
        numerics: Numerics,
    ) -> Result<Self> {
        let batch = batch.max(1);
        Self::size_for(config, weights, seq_len, batch, numerics)?;
        let c = config;
        let kv = Self::kv_floats(c.n_layers * seq_len * c.kv_dim(), numerics);
        let (stride, scales) = q8_scratch(weights);
        Ok(RunState {
            batch,
            numerics,
            x: zeros("activations", batch * c.dim)?,
            xb: zeros("activations", batch * c.dim)?,
            xb2: zeros("activations", batch * c.dim)?,
            hb: zeros("activations", batch * c.hidden_dim)?,
            hb2: zeros("activations", batch * c.hidden_dim)?,
            q: zeros("activations", batch * c.dim)?,
            att: zeros("attention scores", c.n_heads * seq_len)?,
            logits: zeros("logits", c.vocab_size)?,
            key_cache: zeros("key cache", kv)?,
            value_cache: zeros("value cache", kv)?,
            xq: zeros("int8 activations", batch * stride)?,
            xs: zeros("int8 activations", batch * scales)?,
            rope_cos: zeros("rope", batch * (c.head_size() / 2))?,
            rope_sin: zeros("rope", batch * (c.head_size() / 2))?,
        })
    }

    /// Longest int8 row stride and its number of scales (0, 0 for an fp32 model).
    pub fn q8_layout(weights: &Weights<'_>) -> (usize, usize) {
        q8_scratch(weights)
    }
}
