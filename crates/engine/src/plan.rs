//! The memory planner: where each part of a run lives on a chip, whether it fits, and a
//! tokens-per-second estimate from a simple cost model.
//!
//! Placement, in order: activations and scratch must go to internal SRAM; the weights go to
//! SRAM if they fit, else PSRAM, else they stay in flash and are read in place through the
//! flash cache (memory-mapped); the KV cache goes to what is left of SRAM, else PSRAM, and when
//! neither holds the full context the context is capped to what fits.
//!
//! Cost model (an estimate, not a measurement; see docs/plan.md for sources): one token costs
//! `MACs * cycles_per_mac / (clock * parallel_speedup)` of compute plus, for every memory
//! except SRAM, `bytes read from it / its bandwidth`. Bytes read per token are all weights once
//! plus the KV cache up to half the context (the average position of a long story).

use crate::error::{Error, Result};
use crate::fixed::FixedWeights;
use crate::model::{Config, Matrix, Weights};
use crate::state::RunState;
use crate::transformer::Numerics;

/// A memory a part can live in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Region {
    /// Internal SRAM.
    Sram,
    /// External PSRAM.
    Psram,
    /// Flash, read in place through the cache.
    Flash,
}

impl Region {
    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            Region::Sram => "sram",
            Region::Psram => "psram",
            Region::Flash => "flash",
        }
    }
}

/// What the planner assumes about a chip.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Chip {
    /// Name as on the command line.
    pub name: &'static str,
    /// CPU clock in MHz.
    pub mhz: u32,
    /// Cores that run matmul jobs.
    pub cores: u32,
    /// Internal SRAM left for model data after firmware, stacks and buffers, in bytes.
    pub sram_for_data: usize,
    /// PSRAM of the reference board in bytes (0 = none).
    pub psram: usize,
    /// Flash of the reference board in bytes.
    pub flash: usize,
    /// Sustained PSRAM read bandwidth, bytes/s.
    pub psram_bw: f64,
    /// Sustained flash read bandwidth through the cache, bytes/s.
    pub flash_bw: f64,
    /// Cycles per f32 multiply-add, the rest of the token included (measured instruction
    /// counts where an emulator exists: bench/lx7 for the S3, bench/rv32 for the RISC-V chips).
    pub f32_cycles_per_mac: f64,
    /// Cycles per int8 multiply-add, the rest of the token included.
    pub i8_cycles_per_mac: f64,
    /// Whether the cores have a floating-point unit. Without one the firmware runs int8 models
    /// with the fixed-point numerics ([`crate::fixed`]), whose KV cache holds `i16`.
    pub fpu: bool,
}

const KB: usize = 1024;
const MB: usize = 1024 * 1024;

/// The chips the firmware supports.
pub const CHIPS: [Chip; 4] = [
    Chip {
        name: "esp32s3",
        mhz: 240,
        cores: 2,
        sram_for_data: 350 * KB,
        psram: 8 * MB,
        flash: 16 * MB,
        psram_bw: 60.0e6,
        flash_bw: 30.0e6,
        // Calibrated from bench/lx7 (docs/performance.md, LX7 section): a whole stories260K
        // token (matmuls, attention, norms, softmax) with the LX7 kernels is 985,102
        // instructions for fp32 and 484,585 for the int8 bundle (measured 2026-12-03), over
        // 259 k matmul and ~21 k attention multiply-adds: 3.52 and 1.73 instructions per MAC,
        // times an assumed 1.4 cycles per instruction (ESP-DSP's published S3 int8 dot
        // product, 689 cycles for 4096 MACs, against the ~512 PIE instructions such a loop
        // takes). Int8 is charged the token's rest beyond its attention:
        // (484,585 * 1.4 - 21 k * 4.9) / 259 k.
        f32_cycles_per_mac: 4.9,
        i8_cycles_per_mac: 2.2,
        fpu: true,
    },
    Chip {
        name: "esp32p4",
        mhz: 360,
        cores: 2,
        sram_for_data: 512 * KB,
        psram: 32 * MB,
        flash: 16 * MB,
        psram_bw: 150.0e6,
        flash_bw: 40.0e6,
        f32_cycles_per_mac: 3.0,
        i8_cycles_per_mac: 3.0,
        fpu: true,
    },
    Chip {
        name: "esp32c6",
        mhz: 160,
        cores: 1,
        sram_for_data: 320 * KB,
        psram: 0,
        flash: 4 * MB,
        psram_bw: 0.0,
        flash_bw: 20.0e6,
        f32_cycles_per_mac: 60.0,
        i8_cycles_per_mac: 4.0,
        fpu: false,
    },
    Chip {
        name: "esp32c3",
        mhz: 160,
        cores: 1,
        sram_for_data: 240 * KB,
        psram: 0,
        flash: 4 * MB,
        psram_bw: 0.0,
        flash_bw: 20.0e6,
        f32_cycles_per_mac: 60.0,
        i8_cycles_per_mac: 4.0,
        fpu: false,
    },
];

/// Speed-up assumed from a second core (sync and the serial parts cost the rest).
pub const TWO_CORE_SPEEDUP: f64 = 1.8;

/// Looks a chip up by name.
pub fn chip(name: &str) -> Option<Chip> {
    CHIPS.iter().copied().find(|c| c.name == name)
}

/// Memory and compute a model needs, independent of the chip.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Needs {
    /// Weight bytes (values, scales, norms).
    pub weights: usize,
    /// Int8 share of the weight MACs (0 for fp32 models, 1 for fully int8).
    pub int8_fraction: f64,
    /// Int4 share of the weight MACs.
    pub int4_fraction: f64,
    /// Multiply-adds in the weight matrices per token (classifier included).
    pub matmul_macs: u64,
    /// Activation and scratch bytes.
    pub activations: usize,
    /// KV cache bytes per position (f32 keys and values, all layers).
    pub kv_per_position: usize,
    /// The same with the fixed-point numerics (`i16` keys and values).
    pub kv_per_position_fixed: usize,
    /// Bytes the fixed-point numerics derive at load (integer scales and norms).
    pub fixed_bytes: usize,
    /// Whether the fixed-point numerics can run the model ([`crate::fixed::supports`]).
    pub fixed_capable: bool,
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
            fixed_bytes: FixedWeights::size(config, weights),
            fixed_capable: crate::fixed::supports(weights),
        })
    }
}

/// A placement and its estimate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Plan {
    /// The chip planned for.
    pub chip: Chip,
    /// PSRAM assumed, bytes.
    pub psram: usize,
    /// Where the weights live.
    pub weights: Region,
    /// Where the KV cache lives.
    pub kv_cache: Region,
    /// Context length the KV cache holds (the model's, or capped).
    pub seq_len: usize,
    /// The model's own context length.
    pub model_seq_len: usize,
    /// KV cache bytes at `seq_len`.
    pub kv_bytes: usize,
    /// SRAM used by the plan.
    pub sram_used: usize,
    /// PSRAM used by the plan.
    pub psram_used: usize,
    /// Multiply-adds per token (matmuls plus attention at half the context).
    pub macs_per_token: u64,
    /// Bytes read per token from PSRAM.
    pub psram_bytes_per_token: usize,
    /// Bytes read per token from flash.
    pub flash_bytes_per_token: usize,
    /// Estimated tokens per second.
    pub tok_per_s: f64,
    /// The numerics the firmware will use: fixed point for int8 models on chips without an
    /// FPU, float otherwise.
    pub numerics: Numerics,
}

/// Fewest positions worth running.
pub const MIN_CONTEXT: usize = 16;

/// Plans a model with `needs` and context `seq_len` on `chip` with `psram` bytes of PSRAM and a
/// model partition of `partition` bytes holding a file of `file_bytes`.
pub fn plan(
    needs: &Needs,
    seq_len: usize,
    chip: Chip,
    psram: usize,
    partition: usize,
    file_bytes: usize,
) -> Result<Plan> {
    if file_bytes > partition {
        return Err(Error::OutOfMemory { what: "the model partition in flash", bytes: file_bytes });
    }
    let numerics =
        if !chip.fpu && needs.int8_fraction >= 1.0 { Numerics::Fixed } else { Numerics::Float };
    // The fixed-point numerics keep their integer scales in SRAM beside the activations.
    let (sram_fixed, kv_per_position) = match numerics {
        Numerics::Fixed => (needs.fixed_bytes, needs.kv_per_position_fixed),
        Numerics::Float => (0, needs.kv_per_position),
    };
    let sram_need = needs.activations.saturating_add(sram_fixed);
    let mut sram_left = chip
        .sram_for_data
        .checked_sub(sram_need)
        .ok_or(Error::OutOfMemory { what: "activations in internal SRAM", bytes: sram_need })?;
    let mut psram_left = psram;
    let weights = if needs.weights <= sram_left {
        sram_left -= needs.weights;
        Region::Sram
    } else if needs.weights <= psram_left {
        psram_left -= needs.weights;
        Region::Psram
    } else {
        Region::Flash
    };
    let want = kv_per_position.saturating_mul(seq_len);
    let (kv_cache, ctx) = if want <= sram_left {
        (Region::Sram, seq_len)
    } else if want <= psram_left {
        (Region::Psram, seq_len)
    } else {
        let (region, room) = if psram_left > sram_left {
            (Region::Psram, psram_left)
        } else {
            (Region::Sram, sram_left)
        };
        let fit = room / kv_per_position.max(1);
        if fit < MIN_CONTEXT {
            return Err(Error::OutOfMemory {
                what: "a KV cache of 16 positions",
                bytes: kv_per_position * MIN_CONTEXT,
            });
        }
        (region, fit)
    };
    let kv_bytes = kv_per_position * ctx;
    let sram_used =
        chip.sram_for_data - sram_left + if kv_cache == Region::Sram { kv_bytes } else { 0 };
    let psram_used = psram - psram_left + if kv_cache == Region::Psram { kv_bytes } else { 0 };

    // Per token: every weight once, the KV cache up to half the context.
    let kv_read = kv_bytes / 2;
    // One MAC per cached value read (scores and weighted sum): f32, or i16 in fixed point,
    // where attention is integer arithmetic too.
    let (value_bytes, attn_cpm) = match numerics {
        Numerics::Fixed => (2, chip.i8_cycles_per_mac),
        Numerics::Float => (4, chip.f32_cycles_per_mac),
    };
    let attn_macs = (kv_read / value_bytes) as u64;
    let macs = needs.matmul_macs + attn_macs;
    let cpm = needs.int8_fraction * chip.i8_cycles_per_mac
        + (1.0 - needs.int8_fraction) * chip.f32_cycles_per_mac;
    let speedup = if chip.cores > 1 { TWO_CORE_SPEEDUP } else { 1.0 };
    let compute = (needs.matmul_macs as f64 * cpm + attn_macs as f64 * attn_cpm)
        / (chip.mhz as f64 * 1e6 * speedup);
    let from = |r: Region| {
        (if weights == r { needs.weights } else { 0 }) + if kv_cache == r { kv_read } else { 0 }
    };
    let (psram_bytes, flash_bytes) = (from(Region::Psram), from(Region::Flash));
    let mem = if chip.psram_bw > 0.0 { psram_bytes as f64 / chip.psram_bw } else { 0.0 }
        + flash_bytes as f64 / chip.flash_bw;
    Ok(Plan {
        chip,
        psram,
        weights,
        kv_cache,
        seq_len: ctx,
        model_seq_len: seq_len,
        kv_bytes,
        sram_used,
        psram_used,
        macs_per_token: macs,
        psram_bytes_per_token: psram_bytes,
        flash_bytes_per_token: flash_bytes,
        tok_per_s: 1.0 / (compute + mem),
        numerics,
    })
}
