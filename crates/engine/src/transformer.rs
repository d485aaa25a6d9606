//! A model ready to run: [`Transformer`], built once from a parsed checkpoint and one
//! [`Options`] value, which allocates everything it needs in one go (exactly
//! [`Footprint::allocated`] bytes) and then never allocates again.

use crate::checkpoint::Checkpoint;
use crate::error::{Error, Result};
use crate::fixed::{Fixed, FixedWeights};
use crate::footprint::Footprint;
use crate::forward::{step, Ctx, Float};
use crate::kernels::{self, AttnScale, Kernels};
use crate::math::Math;
use crate::model::{Config, Weights};
use crate::parallel::{Serial, Workers};
use crate::repack::{Layout, Repacked};
use crate::rope::RopeTable;
use crate::state::{Activations, RunState, StateSize};
// At home with the run state it types; re-exported so `transformer::Numerics` stays.
pub use crate::state::Numerics;
use alloc::boxed::Box;

/// Positions per prefill batch the CLI uses ([`Options::prefill`]).
pub const DEFAULT_PREFILL: usize = 16;

/// How to build a [`Transformer`]. `Options::default()` is the model's full context, the best
/// kernels, one worker, llama2.c's float arithmetic one position at a time, and the default
/// [`Math`]; set the fields that differ.
pub struct Options<'a> {
    /// Caps the context to this many positions (if smaller than the model's); must be > 0.
    pub seq_len: Option<usize>,
    /// The kernels.
    pub kernels: &'a dyn Kernels,
    /// The workers matmuls and attention heads are split over.
    pub workers: Box<dyn Workers + 'a>,
    /// Float or fixed point. [`Numerics::Fixed`] needs int8 matrices and derives integer
    /// parameters from them ([`FixedWeights::size`] bytes).
    pub numerics: Numerics,
    /// Prompt positions [`Transformer::prefill`] runs through each layer at once
    /// (matrix-matrix: each weight tile is read once per batch); the per-position activations
    /// take this many times the memory. The fixed-point path runs one at a time (1).
    pub prefill: usize,
    /// Where `expf`, `cosf`, `sinf`, `powf` come from. The fixed-point numerics always use
    /// [`Math::Portable`]: their purpose is a board's tokens.
    pub math: Math,
    /// How the f32 matrices are laid out: [`Layout::Auto`] repacks them at load
    /// ([`Repacked::size`] bytes more) when the kernels prefer it, else reads them in place.
    pub layout: Layout,
}

impl Default for Options<'_> {
    fn default() -> Self {
        Options {
            seq_len: None,
            kernels: kernels::best(),
            workers: Box::new(Serial),
            numerics: Numerics::Float,
            prefill: 1,
            math: Math::default(),
            layout: Layout::Auto,
        }
    }
}

/// A model ready to run: weights, run state, kernels and workers.
pub struct Transformer<'a> {
    /// The model's shape (with `seq_len` possibly capped).
    pub config: Config,
    /// The weights.
    pub weights: Weights<'a>,
    state: RunState,
    kernels: &'a dyn Kernels,
    workers: Box<dyn Workers + 'a>,
    math: Math,
    /// RoPE's cos and sin for every position of the context.
    rope: RopeTable,
    /// The attention scores' divisor and its reciprocal ([`AttnScale::of_head`]).
    att_scale: AttnScale,
    /// Integer parameters when running in fixed point ([`Numerics::Fixed`]).
    fixed: Option<FixedWeights>,
    /// Longest int8 row and its scales ([`crate::state::q8_layout`]): the run state's layout.
    q8: (usize, usize),
    /// The f32 matrices in the row-interleaved layout ([`Layout::Interleaved`]).
    packed: Option<Repacked>,
}

impl<'a> Transformer<'a> {
    /// Builds a transformer over a parsed checkpoint: allocates (fallibly) the run state, the
    /// RoPE frequencies and what the numerics derive, [`Footprint::allocated`] bytes in all.
    pub fn new(checkpoint: Checkpoint<'a>, options: Options<'a>) -> Result<Self> {
        let Options { seq_len, kernels, workers, numerics, prefill, math, layout } = options;
        let mut config = checkpoint.config;
        if let Some(cap) = seq_len {
            if cap == 0 {
                return Err(Error::BadConfig {
                    field: "seq_len",
                    value: 0,
                    reason: "must be positive",
                });
            }
            config.seq_len = config.seq_len.min(cap);
        }
        let weights = checkpoint.weights;
        let layout = layout.resolve(kernels, &weights);
        let fp = Footprint::of(&config, &weights, config.seq_len, prefill, numerics)?
            .with_layout(&weights, layout);
        let math = match numerics {
            Numerics::Float => math,
            Numerics::Fixed => Math::Portable,
        };
        // The run state's big blocks first, the integer scales' small ones after: on a chip
        // whose heap is split into regions, small blocks allocated first could take the room
        // a KV cache needs in one piece.
        let state = RunState::new(&config, &weights, config.seq_len, fp.batch, numerics)?;
        let fixed = match numerics {
            Numerics::Float => None,
            Numerics::Fixed => Some(FixedWeights::new(&config, &weights)?),
        };
        let rope = RopeTable::new(math, config.head_size(), config.seq_len)?;
        let packed = match layout {
            Layout::Interleaved => Some(Repacked::new(&weights)?),
            Layout::Auto | Layout::RowMajor => None,
        };
        debug_assert_eq!(fp.repacked, packed.as_ref().map_or(0, |_| Repacked::size(&weights)));
        let q8 = crate::state::q8_layout(&weights);
        let att_scale = AttnScale::of_head(config.head_size());
        Ok(Transformer {
            config,
            weights,
            state,
            kernels,
            workers,
            math,
            rope,
            att_scale,
            fixed,
            q8,
            packed,
        })
    }

    /// The numerics in use.
    pub fn numerics(&self) -> Numerics {
        match self.state.act {
            Activations::Float(_) => Numerics::Float,
            Activations::Fixed(_) => Numerics::Fixed,
        }
    }

    /// How the f32 matrices are laid out ([`Layout::RowMajor`] or [`Layout::Interleaved`]).
    pub fn layout(&self) -> Layout {
        match self.packed {
            Some(_) => Layout::Interleaved,
            None => Layout::RowMajor,
        }
    }

    /// Where the transcendental functions come from.
    pub fn math(&self) -> Math {
        self.math
    }

    /// Positions [`Transformer::prefill`] runs at once.
    pub fn prefill_batch(&self) -> usize {
        self.state.batch
    }

    /// What this transformer allocated and reads.
    pub fn footprint(&self) -> Footprint {
        // Cannot fail: the same computation succeeded when the state was allocated.
        let (c, w, n) = (&self.config, &self.weights, self.numerics());
        Footprint::of(c, w, c.seq_len, self.state.batch, n)
            .map(|fp| fp.with_layout(w, self.layout()))
            .unwrap_or(Footprint {
                weights: 0,
                state: StateSize { kv_cache: 0, activations: 0 },
                derived: 0,
                seq_len: 0,
                batch: 0,
                repacked: 0,
            })
    }

    /// The bytes of run state this transformer holds.
    pub fn state_size(&self) -> StateSize {
        self.footprint().state
    }

    /// The kernels in use.
    pub fn kernels(&self) -> &'a dyn Kernels {
        self.kernels
    }

    /// Number of workers matmuls are split over.
    pub fn worker_count(&self) -> usize {
        self.workers.count()
    }

    /// Runs the model on `token` at position `pos` and returns the logits over the vocabulary.
    /// Positions must be fed in order from 0 (the KV cache holds the earlier ones).
    pub fn forward(&mut self, token: u32, pos: usize) -> Result<&mut [f32]> {
        self.check(core::slice::from_ref(&token), pos)?;
        self.step(core::slice::from_ref(&token), pos, true);
        Ok(&mut self.state.logits)
    }

    /// Runs `tokens` at positions `pos..pos + tokens.len()` to fill the KV cache, without
    /// computing logits; afterwards `forward(next, pos + tokens.len())` continues exactly as if
    /// every token had gone through `forward` (the same values, bit for bit). Runs up to
    /// [`Transformer::prefill_batch`] positions through each layer at once.
    pub fn prefill(&mut self, tokens: &[u32], pos: usize) -> Result<()> {
        self.check(tokens, pos)?;
        let batch = self.state.batch;
        for (i, chunk) in tokens.chunks(batch).enumerate() {
            self.step(chunk, pos + i * batch, false);
        }
        Ok(())
    }

    fn check(&self, tokens: &[u32], pos: usize) -> Result<()> {
        let c = &self.config;
        if let Some(&token) = tokens.iter().find(|&&t| t as usize >= c.vocab_size) {
            return Err(Error::TokenOutOfRange { token, vocab_size: c.vocab_size });
        }
        let last = pos.saturating_add(tokens.len().saturating_sub(1));
        if last >= c.seq_len {
            return Err(Error::PositionOutOfRange { pos: last, seq_len: c.seq_len });
        }
        Ok(())
    }

    /// One pass of `tokens` (at most `state.batch`, checked) at positions `pos0..`.
    fn step(&mut self, tokens: &[u32], pos0: usize, logits: bool) {
        debug_assert!(!tokens.is_empty() && tokens.len() <= self.state.batch);
        let (c, w, rope) = (self.config, &self.weights, &self.rope);
        let ctx = Ctx { kernels: self.kernels, workers: &*self.workers, math: self.math };
        let RunState { act, logits: out, xq, xs, .. } = &mut self.state;
        match (act, &self.fixed) {
            (Activations::Float(s), _) => {
                let (q8, packed) = (self.q8, self.packed.as_ref());
                let att_scale = self.att_scale;
                let mut block =
                    Float { c, w, ctx, rope, s, xq, xs, logits: out, q8, packed, att_scale };
                step(&mut block, c.n_layers, tokens, pos0, logits);
            }
            (Activations::Fixed(s), Some(fw)) => {
                let mut block = Fixed { c, w, fw, ctx, rope, s, xq, logits: out, step: 0.0 };
                step(&mut block, c.n_layers, tokens, pos0, logits);
            }
            // `new` derives the integer parameters whenever it allocates fixed-point buffers.
            (Activations::Fixed(_), None) => {}
        }
    }
}
