//! What a model costs in bytes and multiply-adds, from its config and the layout of its
//! weights alone: [`Footprint`], every byte a [`Transformer`](crate::Transformer) allocates
//! for a given context, and [`Needs`], the summary a chip planner places (the firmware's and
//! `esp-llm plan`'s, in `esp-llm-board`'s `plan` module). Sizes only: no chip, no memory
//! region, no policy lives here.

use crate::error::Result;
use crate::fixed::FixedWeights;
use crate::model::{Config, Matrix, Weights};
use crate::repack::{Layout, Repacked};
use crate::rope::RopeTable;
use crate::state::{Numerics, RunState, StateSize};

/// Every byte a [`Transformer`](crate::Transformer) allocates, and the weights it reads, from the config, the
/// weights' layout and the options alone: what a planner needs to know before building one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Footprint {
    /// Bytes of weights the model reads (borrowed, not allocated).
    pub weights: usize,
    /// The run state: KV cache and activations.
    pub state: StateSize,
    /// What the numerics derive at load (the fixed point's integer scales and norms) and the
    /// RoPE frequencies.
    pub derived: usize,
    /// The context the run state holds.
    pub seq_len: usize,
    /// Positions per prefill batch.
    pub batch: usize,
    /// The f32 matrices repacked at load ([`Layout::Interleaved`]; 0 when read in place).
    pub repacked: usize,
}

impl Footprint {
    /// The footprint of a transformer for `config` and `weights` with a context of `seq_len`
    /// (capped to the model's), `prefill` positions per batch and the given numerics.
    pub fn of(
        config: &Config,
        weights: &Weights<'_>,
        seq_len: usize,
        prefill: usize,
        numerics: Numerics,
    ) -> Result<Footprint> {
        let seq_len = config.seq_len.min(seq_len);
        let batch = match numerics {
            Numerics::Float => prefill.max(1),
            Numerics::Fixed => 1,
        };
        let state = RunState::size(config, weights, seq_len, batch, numerics)?;
        let fixed = match numerics {
            Numerics::Float => 0,
            Numerics::Fixed => FixedWeights::size(config, weights),
        };
        let rope = RopeTable::size(config.head_size(), seq_len)?;
        let derived = fixed + rope;
        Ok(Footprint { weights: weights.bytes(), state, derived, seq_len, batch, repacked: 0 })
    }

    /// This footprint with the f32 matrices of `weights` in `layout` (as resolved by
    /// [`Layout::resolve`]; [`Layout::Interleaved`] adds the repacked copy).
    pub fn with_layout(self, weights: &Weights<'_>, layout: Layout) -> Footprint {
        let repacked = match layout {
            Layout::Interleaved => Repacked::size(weights),
            Layout::Auto | Layout::RowMajor => 0,
        };
        Footprint { repacked, ..self }
    }

    /// Bytes allocated by [`Transformer::new`](crate::Transformer::new).
    pub fn allocated(&self) -> usize {
        self.state.total() + self.derived + self.repacked
    }
}

/// Memory and compute a model needs, independent of the chip.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Needs {
    /// Weight bytes (values, scales, norms).
    pub weights: usize,
    /// Int8 share of the weight MACs (0 for fp32 models, 1 for fully int8).
    pub int8_fraction: f64,
    /// Int4 share of the weight MACs (the int4 matmul takes int8 activations; the S3's cost
    /// model has an int4 rate of its own, the other chips cost these MACs as f32 ones).
    pub int4_fraction: f64,
    /// Multiply-adds in the weight matrices per token (classifier included).
    pub matmul_macs: u64,
    /// Activation and scratch bytes.
    pub activations: usize,
    /// KV cache bytes per position (f32 keys and values, all layers).
    pub kv_per_position: usize,
    /// The same with the fixed-point numerics (`i16` keys and values).
    pub kv_per_position_fixed: usize,
    /// RoPE table bytes per position of the context (`crate::rope`: its cos and sin rows),
    /// allocated beside the KV cache.
    pub rope_per_position: usize,
    /// Bytes the fixed-point numerics derive at load (integer scales and norms).
    pub fixed_bytes: usize,
    /// Whether the fixed-point numerics can run the model ([`crate::fixed::supports`]).
    pub fixed_capable: bool,
    /// The model's shape: an instruction-count cost model charges per layer and per head.
    pub config: Config,
}

impl Needs {
    /// Measures a model.
    pub fn of(config: &Config, weights: &Weights<'_>) -> Result<Needs> {
        // Attention scores grow with the context: size activations at the full context.
        let state = RunState::size(config, weights, config.seq_len, 1, Numerics::Float)?;
        let kv_per_position = RunState::size(config, weights, 1, 1, Numerics::Float)?.kv_cache;
        let kv_per_position_fixed =
            RunState::size(config, weights, 1, 1, Numerics::Fixed)?.kv_cache;
        let (mut macs, mut i8_macs, mut i4_macs) = (0u64, 0u64, 0u64);
        for (name, _, m) in weights.matrices() {
            if name == "token_embedding" && weights.wcls.is_some() {
                continue; // a lookup, not a matmul
            }
            let n = (m.rows() * m.cols()) as u64;
            macs += n;
            match m {
                Matrix::Q8(_) => i8_macs += n,
                Matrix::Q4(_) => i4_macs += n,
                Matrix::F32 { .. } => {}
            }
        }
        Ok(Needs {
            weights: weights.bytes(),
            int8_fraction: if macs == 0 { 0.0 } else { i8_macs as f64 / macs as f64 },
            int4_fraction: if macs == 0 { 0.0 } else { i4_macs as f64 / macs as f64 },
            matmul_macs: macs,
            activations: state.activations,
            kv_per_position,
            kv_per_position_fixed,
            rope_per_position: RopeTable::size(config.head_size(), 1)?,
            fixed_bytes: FixedWeights::size(config, weights),
            fixed_capable: crate::fixed::supports(weights),
            config: *config,
        })
    }
}
