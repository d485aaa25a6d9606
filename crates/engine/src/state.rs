//! The run state: activations, the KV cache and scratch for int8 activations.
//!
//! Its size follows from the config (and the int8 layout of the weights) alone, so it is
//! computed, checked against a budget, and reserved fallibly before the first token; `forward`
//! never allocates.

use crate::error::{Error, Result};
use crate::model::{Config, Weights};
use alloc::vec::Vec;

/// Byte sizes of the parts of a run state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateSize {
    /// Key and value caches: `2 * n_layers * seq_len * kv_dim * 4`.
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

/// Buffers used by one forward pass.
#[derive(Debug)]
pub struct RunState {
    /// (dim) activation at the current time stamp.
    pub x: Vec<f32>,
    /// (dim) same, inside a residual branch.
    pub xb: Vec<f32>,
    /// (dim) an additional buffer for convenience.
    pub xb2: Vec<f32>,
    /// (hidden_dim) feed-forward buffer.
    pub hb: Vec<f32>,
    /// (hidden_dim) feed-forward buffer.
    pub hb2: Vec<f32>,
    /// (dim) query.
    pub q: Vec<f32>,
    /// (n_heads, seq_len) attention scores.
    pub att: Vec<f32>,
    /// (vocab_size) output logits.
    pub logits: Vec<f32>,
    /// (layer, seq_len, kv_dim) key cache.
    pub key_cache: Vec<f32>,
    /// (layer, seq_len, kv_dim) value cache.
    pub value_cache: Vec<f32>,
    /// Quantized activation for int8 matmuls (the longest int8 row stride).
    pub xq: Vec<i8>,
    /// Scales of `xq`.
    pub xs: Vec<f32>,
    /// (head_size / 2) RoPE cosines and sines at the current position.
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
        let c = config;
        let kv = checked("KV cache", &[2, c.n_layers, seq_len, c.kv_dim(), 4])?;
        let (stride, scales) = q8_scratch(weights);
        let floats = [
            4 * c.dim,
            2 * c.hidden_dim,
            checked("attention scores", &[c.n_heads, seq_len])?,
            c.vocab_size,
            scales,
            c.head_size(),
        ]
        .iter()
        .try_fold(0usize, |a, &b| a.checked_add(b))
        .ok_or(Error::Overflow { what: "activations" })?;
        let activations = floats
            .checked_mul(4)
            .and_then(|b| b.checked_add(stride))
            .ok_or(Error::Overflow { what: "activations" })?;
        Ok(StateSize { kv_cache: kv, activations })
    }

    /// Allocates the state (fallibly).
    pub fn new(config: &Config, weights: &Weights<'_>, seq_len: usize) -> Result<Self> {
        Self::size(config, weights, seq_len)?;
        let c = config;
        let kv = c.n_layers * seq_len * c.kv_dim();
        let (stride, scales) = q8_scratch(weights);
        Ok(RunState {
            x: zeros("activations", c.dim)?,
            xb: zeros("activations", c.dim)?,
            xb2: zeros("activations", c.dim)?,
            hb: zeros("activations", c.hidden_dim)?,
            hb2: zeros("activations", c.hidden_dim)?,
            q: zeros("activations", c.dim)?,
            att: zeros("attention scores", c.n_heads * seq_len)?,
            logits: zeros("logits", c.vocab_size)?,
            key_cache: zeros("key cache", kv)?,
            value_cache: zeros("value cache", kv)?,
            xq: zeros("int8 activations", stride)?,
            xs: zeros("int8 activations", scales)?,
            rope_cos: zeros("rope", c.head_size() / 2)?,
            rope_sin: zeros("rope", c.head_size() / 2)?,
        })
    }
}
