//! The chip planner, the one place that decides where a run lives: the chip table, the
//! placement rules, the context cap and a tokens-per-second estimate. `esp-llm plan`, `boards`,
//! `flash` and `preview` call [`plan`] with a chip's reference figures; the firmware calls
//! [`place_weights`] and [`context_cap`] with the heap it actually has. Sizes come from the
//! engine's footprint ([`Footprint`], [`Needs`]); nothing here knows how a tensor is laid out.
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

use esp_llm_engine::model::{Config, Weights};
use esp_llm_engine::{Error, Footprint, Needs, Numerics};

type Result<T> = core::result::Result<T, Error>;

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
    /// Instructions per token from counts measured in an emulator, when there is one fitted
    /// to both a small and a large shape (the S3: [`LX7`]); it replaces the two rates above.
    pub instructions: Option<InstructionModel>,
    /// Whether the cores have a floating-point unit. Without one the firmware runs int8 models
    /// with the fixed-point numerics (`esp_llm_engine::fixed`), whose KV cache holds `i16`.
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
        // Used only where `instructions` is not: the stories260K-only calibration of before
        // [`LX7`] (921,605 fp32 / 404,650 int8 instructions a token, x 1.4 CPI, per MAC).
        f32_cycles_per_mac: 4.6,
        i8_cycles_per_mac: 1.8,
        instructions: Some(LX7),
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
        instructions: None,
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
        instructions: None,
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
        instructions: None,
        fpu: false,
    },
];

/// Speed-up assumed from a second core (sync and the serial parts cost the rest).
pub const TWO_CORE_SPEEDUP: f64 = 1.8;

/// Instructions a token takes with a chip's kernels, as a sum of terms over the model's shape,
/// fitted to instruction counts measured in an emulator; times an assumed cycles per
/// instruction for time. Instructions per token =
/// `per_token + per_layer_element * n_layers * (dim + hidden_dim)` (norms, quantizing the
/// activations, SwiGLU, RoPE, residuals, logits)
/// `+ per_mac_{i8,i4,f32} * matmul MACs of that dtype`
/// `+ per_attention_mac * 2 * n_layers * dim * attended + per_head_position * n_layers *
/// n_heads * attended` (scores and weighted sum per query value, softmax and the division per
/// head), where `attended` is the mean number of positions a token attends to.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct InstructionModel {
    /// Instructions per token whatever the shape (a fitted intercept, see [`LX7`]).
    pub per_token: f64,
    /// Per element of the layers' vectors, `n_layers * (dim + hidden_dim)`.
    pub per_layer_element: f64,
    /// Per int8 matmul multiply-add.
    pub per_mac_i8: f64,
    /// Per int4 matmul multiply-add.
    pub per_mac_i4: f64,
    /// Per f32 matmul multiply-add.
    pub per_mac_f32: f64,
    /// Per attention multiply-add (`2 * n_layers * dim` per attended position).
    pub per_attention_mac: f64,
    /// Per head and attended position (softmax, the scores' division).
    pub per_head_position: f64,
    /// Cycles per instruction: an assumption, not a measurement (see [`LX7`]).
    pub cycles_per_instruction: f64,
}

/// The ESP32-S3's LX7 kernels (bench/lx7, docs/performance.md "LX7" and "The stories15M
/// shape"; counts measured 2026-12-04 in Espressif's QEMU, ICOUNT, exact). Shapes (dim,
/// hidden, layers, heads, kv heads, vocab): stories260K (64, 172, 5, 8, 4, 512): 259,328
/// matmul MACs, 640 attention MACs and 40 head-positions per attended position, 1,180 layer
/// elements; the stories15M shape (288, 768, 6, 6, 6, 32000): 15,187,968 / 3,456 / 36 / 6,336.
/// Measured instructions per token: 260K over 64 positions (mean attended 32.5) int8 390,952,
/// int4 415,437 (first forward 254,037, last 579,686), fp32 912,320; 15M at positions 0-7
/// (attended 4.5) q8 6,372,811, q4 7,276,320; over its 256 positions (attended 128.5) q8
/// 8,081,733, q4 8,985,790. Inside the matmul kernels (`run.sh --phases`, profile.py): 260K
/// int8 86,101, int4 109,372; 15M q8 5.67 M, q4 6.57 M. The arithmetic:
/// - attention, from the two growth rates per position: 15M (1,709,470 + 1,708,922) / 2 / 124
///   = 13,784; 260K (579,686 - 254,037) / 63 = 5,169. Solving 3,456 a + 36 h = 13,784 and
///   640 a + 40 h = 5,169: a = 3.171 per attention MAC, h = 78.49 per head-position.
/// - matmuls, the mean of the two shapes' per-MAC counts inside the kernels: int8
///   (0.3320 + 0.3733) / 2 = 0.3527, int4 (0.4218 + 0.4326) / 2 = 0.4272.
/// - the rest per shape, the int8 and int4 runs' mean of (total - matmuls - attention):
///   260K 134,085, 15M 840,489; a line through both over the layer elements: 137.0 per
///   element and -27,583 per token (an intercept of the fit, not a cost: it holds between
///   these shapes, and the rest is never charged below 0).
/// - fp32 from the 260K fp32 run alone: (912,320 - 134,085 - 167,994) / 259,328 = 2.353.
///
/// So the model reproduces each measured token within 2% (the test
/// `lx7_model_reproduces_the_measured_counts`). Cycles per instruction: ~1.4, an assumption
/// from ESP-DSP's published S3 int8 dot product (689 cycles for 4096 MACs, against the ~512 PIE
/// instructions such a loop takes); memory stalls are the planner's PSRAM/flash term, and
/// only a board can measure either.
pub const LX7: InstructionModel = InstructionModel {
    per_token: -27_583.0,
    per_layer_element: 137.0,
    per_mac_i8: 0.3527,
    per_mac_i4: 0.4272,
    per_mac_f32: 2.353,
    per_attention_mac: 3.171,
    per_head_position: 78.49,
    cycles_per_instruction: 1.4,
};

impl InstructionModel {
    /// Instructions per token for a model with `needs` attending to `attended` positions on
    /// average: (in the matmuls, the rest), so that a caller can split the matmuls over cores.
    pub fn instructions(&self, needs: &Needs, attended: f64) -> (f64, f64) {
        let c = &needs.config;
        let macs = needs.matmul_macs as f64;
        let (i8_macs, i4_macs) = (macs * needs.int8_fraction, macs * needs.int4_fraction);
        let f32_macs = (macs - i8_macs - i4_macs).max(0.0);
        let matmul =
            self.per_mac_i8 * i8_macs + self.per_mac_i4 * i4_macs + self.per_mac_f32 * f32_macs;
        let elements = (c.n_layers * (c.dim + c.hidden_dim)) as f64;
        let rest = (self.per_token + self.per_layer_element * elements).max(0.0);
        let attention = attended
            * (self.per_attention_mac * (2 * c.n_layers * c.dim) as f64
                + self.per_head_position * (c.n_layers * c.n_heads) as f64);
        (matmul, rest + attention)
    }
}

/// Looks a chip up by name.
pub fn chip(name: &str) -> Option<Chip> {
    CHIPS.iter().copied().find(|c| c.name == name)
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
    /// Instructions per token from the chip's [`InstructionModel`] (0 without one).
    pub instructions_per_token: f64,
    /// Estimated compute seconds per token.
    pub compute_s: f64,
    /// Estimated seconds per token streaming from PSRAM and flash.
    pub memory_s: f64,
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
    let weights = place_weights(needs.weights, sram_left, psram_left);
    match weights {
        Region::Sram => sram_left -= needs.weights,
        Region::Psram => psram_left -= needs.weights,
        Region::Flash => {}
    }
    // The RoPE table grows with the context like the KV cache: fitted with it, and counted
    // where the cache goes.
    let per_position = kv_per_position.saturating_add(needs.rope_per_position);
    let want = per_position.saturating_mul(seq_len);
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
        let fit = room / per_position.max(1);
        if fit < MIN_CONTEXT {
            return Err(Error::OutOfMemory {
                what: "a KV cache of 16 positions",
                bytes: per_position * MIN_CONTEXT,
            });
        }
        (region, fit)
    };
    let kv_bytes = kv_per_position * ctx;
    let with_rope = per_position * ctx;
    let sram_used =
        chip.sram_for_data - sram_left + if kv_cache == Region::Sram { with_rope } else { 0 };
    let psram_used = psram - psram_left + if kv_cache == Region::Psram { with_rope } else { 0 };

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
    let speedup = if chip.cores > 1 { TWO_CORE_SPEEDUP } else { 1.0 };
    let hz = chip.mhz as f64 * 1e6;
    let (instructions, compute) = match chip.instructions {
        // The matmuls split over the cores; the rest of the token runs on one.
        Some(m) => {
            let (matmul, rest) = m.instructions(needs, (ctx as f64 + 1.0) / 2.0);
            (matmul + rest, (matmul / speedup + rest) * m.cycles_per_instruction / hz)
        }
        None => {
            let cpm = needs.int8_fraction * chip.i8_cycles_per_mac
                + (1.0 - needs.int8_fraction) * chip.f32_cycles_per_mac;
            let cycles = needs.matmul_macs as f64 * cpm + attn_macs as f64 * attn_cpm;
            (0.0, cycles / (hz * speedup))
        }
    };
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
        instructions_per_token: instructions,
        compute_s: compute,
        memory_s: mem,
        tok_per_s: 1.0 / (compute + mem),
        numerics,
    })
}

/// Where a model's `weights` bytes go with `sram_left` bytes of internal SRAM and `psram_left`
/// bytes of PSRAM free for them: SRAM when they fit, else PSRAM, else flash (read in place).
/// [`plan`] passes what the chip table leaves after the activations; the firmware, which places
/// the bundle before it parses it, passes its free heap less a reserve for the run state.
pub fn place_weights(weights: usize, sram_left: usize, psram_left: usize) -> Region {
    if weights <= sram_left {
        Region::Sram
    } else if weights <= psram_left {
        Region::Psram
    } else {
        Region::Flash
    }
}

/// The largest context in `1..=config.seq_len` for which everything a transformer allocates
/// ([`Footprint::allocated`]: run state, derived integer weights, RoPE table; one position per
/// prefill batch, as the firmware runs) fits in `budget` bytes, or `None` if not even one
/// position fits. The fixed-point KV cache takes half the bytes, so about twice the positions
/// fit with [`Numerics::Fixed`].
pub fn context_cap(
    config: &Config,
    weights: &Weights<'_>,
    budget: usize,
    numerics: Numerics,
) -> Option<usize> {
    let fits = |seq: usize| {
        Footprint::of(config, weights, seq, 1, numerics)
            .map(|f| f.allocated() <= budget)
            .unwrap_or(false)
    };
    if config.seq_len == 0 || !fits(1) {
        return None;
    }
    let (mut lo, mut hi) = (1, config.seq_len); // fits(lo) holds
    while lo < hi {
        let mid = lo + (hi - lo).div_ceil(2);
        if fits(mid) {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    Some(lo)
}

/// Builds with the context `cap` and, when the build reports [`Error::OutOfMemory`], again
/// with an eighth less, down to one position: a heap's free bytes can be split over regions,
/// and each of the KV cache's two blocks must fit in one of them, which a byte count cannot
/// see. Returns what was built and the context it holds.
pub fn build_shrinking<T>(
    mut cap: usize,
    mut build: impl FnMut(usize) -> Result<T>,
) -> Result<(T, usize)> {
    loop {
        match build(cap) {
            Ok(t) => return Ok((t, cap)),
            Err(Error::OutOfMemory { .. }) if cap > 1 => cap -= cap.div_ceil(8),
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use esp_llm_engine::checkpoint::bundle::{Bundle, Quant};
    use esp_llm_engine::Checkpoint;

    #[test]
    fn bundles_are_read_in_place() {
        // Bundles keep every tensor 16-byte aligned, so from a 16-byte aligned buffer (the
        // firmware's copy or a 64 KB flash page) nothing is copied; a raw llama2.c file one
        // byte off is, which shows the check can fail.
        for (name, quant) in
            [("stories260K.bin", Quant::F32), ("stories260K_q80.bin", Quant::Q8(None))]
        {
            let blob = crate::model::tests::bundle_of(name, quant);
            let mut words = std::vec![0u128; blob.len().div_ceil(16)];
            // SAFETY: u128 has no padding and any byte pattern is a valid u8.
            let bytes = unsafe {
                std::slice::from_raw_parts_mut(words.as_mut_ptr().cast::<u8>(), words.len() * 16)
            };
            bytes[..blob.len()].copy_from_slice(&blob);
            let b = Bundle::parse(&bytes[..blob.len()]).unwrap();
            assert_eq!(b.checkpoint.weights.copied_bytes(), 0, "{name}");

            let raw =
                std::fs::read(esp_llm_fixtures::shared("models").join("stories260K.bin")).unwrap();
            let mut odd = std::vec![0u8; raw.len() + 1];
            odd[1..].copy_from_slice(&raw);
            let parsed = Checkpoint::parse(&odd[1..]).unwrap();
            assert!(parsed.weights.copied_bytes() > 0);
        }
    }

    fn checkpoint(name: &str) -> Checkpoint<'static> {
        let bytes = std::fs::read(esp_llm_fixtures::shared("models").join(name)).unwrap();
        Checkpoint::parse(std::vec::Vec::leak(bytes)).unwrap()
    }

    fn allocated(c: &Config, w: &Weights<'_>, seq: usize, n: Numerics) -> usize {
        Footprint::of(c, w, seq, 1, n).unwrap().allocated()
    }

    #[test]
    fn cap_is_the_largest_context_that_fits() {
        for name in ["stories260K.bin", "stories260K_q80.bin"] {
            let ckpt = checkpoint(name);
            let (c, w) = (&ckpt.config, &ckpt.weights);
            for n in [Numerics::Float, Numerics::Fixed] {
                if n == Numerics::Fixed && !esp_llm_engine::fixed::supports(w) {
                    continue;
                }
                let (full, one) = (allocated(c, w, c.seq_len, n), allocated(c, w, 1, n));
                assert_eq!(context_cap(c, w, full, n), Some(c.seq_len), "{name}");
                assert_eq!(context_cap(c, w, usize::MAX, n), Some(c.seq_len));
                for budget in [full - 1, (full + one) / 2, one + (full - one) / 7, one] {
                    let cap = context_cap(c, w, budget, n).unwrap();
                    assert!(allocated(c, w, cap, n) <= budget);
                    assert!(allocated(c, w, cap + 1, n) > budget, "{name} {budget}");
                }
                assert_eq!(context_cap(c, w, one - 1, n), None);
            }
        }
    }

    /// The fixed-point numerics keep keys and values as `i16`: beside their integer scales
    /// (counted in the budget), the same bytes hold about twice the context (148 -> 290
    /// positions in 200,000 bytes of run state when this was written).
    #[test]
    fn fixed_numerics_fit_about_twice_the_context() {
        let ckpt = checkpoint("stories260K_q80.bin");
        let (c, w) = (&ckpt.config, &ckpt.weights);
        let fp = |n| Footprint::of(c, w, c.seq_len, 1, n).unwrap();
        let (float_fp, fixed_fp) = (fp(Numerics::Float), fp(Numerics::Fixed));
        assert_eq!(fixed_fp.state.kv_cache * 2, float_fp.state.kv_cache);
        let budget = 200_000;
        let float = context_cap(c, w, budget + float_fp.derived, Numerics::Float).unwrap();
        let fixed = context_cap(c, w, budget + fixed_fp.derived, Numerics::Fixed).unwrap();
        // (The attention scores, n_heads * seq_len f32s, also grow with the context.)
        assert!(fixed * 10 >= float * 19 && fixed <= 2 * float, "{float} -> {fixed}");
    }

    #[test]
    fn weights_go_to_the_fastest_memory_that_holds_them() {
        assert_eq!(place_weights(100, 100, 0), Region::Sram);
        assert_eq!(place_weights(101, 100, 101), Region::Psram);
        assert_eq!(place_weights(101, 100, 100), Region::Flash);
        assert_eq!(place_weights(0, 0, 0), Region::Sram);
    }

    #[test]
    fn a_build_that_runs_out_of_memory_is_retried_with_less_context() {
        let mut tried = std::vec::Vec::new();
        let oom = || Error::OutOfMemory { what: "KV cache", bytes: 1 };
        let r = build_shrinking(512, |cap| {
            tried.push(cap);
            if cap > 300 {
                Err(oom())
            } else {
                Ok(cap * 2)
            }
        });
        assert_eq!(r.unwrap(), (600, 300));
        assert_eq!(tried, [512, 448, 392, 343, 300]);
        // Down to one position, then the error itself; other errors are not retried.
        let mut n = 0;
        assert!(matches!(
            build_shrinking(9, |_| -> Result<()> {
                n += 1;
                Err(oom())
            }),
            Err(Error::OutOfMemory { .. })
        ));
        assert_eq!(n, 8); // 9, 7, 6, 5, 4, 3, 2, 1
        let r = build_shrinking(9, |_| -> Result<()> { Err(Error::Overflow { what: "x" }) });
        assert!(matches!(r, Err(Error::Overflow { .. })));
    }

    /// The shape's matmul MACs as `Needs::of` counts them (classifier included, the embedding
    /// lookup not), checked against `Needs::of` on the real stories260K.
    fn shape(
        dim: usize,
        hidden_dim: usize,
        n_layers: usize,
        n_heads: usize,
        n_kv_heads: usize,
        vocab_size: usize,
        seq_len: usize,
    ) -> Needs {
        let config = Config {
            dim,
            hidden_dim,
            n_layers,
            n_heads,
            n_kv_heads,
            vocab_size,
            seq_len,
            shared_classifier: true,
        };
        let kv_dim = dim * n_kv_heads / n_heads;
        let layer = 2 * dim * dim + 2 * dim * kv_dim + 3 * dim * hidden_dim;
        Needs {
            weights: 0,
            int8_fraction: 0.0,
            int4_fraction: 0.0,
            matmul_macs: (n_layers * layer + vocab_size * dim) as u64,
            activations: 0,
            kv_per_position: 0,
            kv_per_position_fixed: 0,
            rope_per_position: 0,
            fixed_bytes: 0,
            fixed_capable: false,
            config,
        }
    }

    /// The S3's instruction model against every count it was fitted to (docs/performance.md,
    /// [`LX7`]'s comment): each within 2% (the fit's worst is 1.8%, the 15M q8 token at
    /// positions 0-7). Changing a constant of [`LX7`] without refitting fails this.
    #[test]
    fn lx7_model_reproduces_the_measured_counts() {
        let s260 = shape(64, 172, 5, 8, 4, 512, 512);
        let real = checkpoint("stories260K.bin");
        let n = Needs::of(&real.config, &real.weights).unwrap();
        assert_eq!((n.matmul_macs, n.config), (s260.matmul_macs, s260.config));
        let s15 = shape(288, 768, 6, 6, 6, 32000, 256);
        assert_eq!(s15.matmul_macs, 15_187_968);
        let (int8, int4, fp32) = ((1.0, 0.0), (0.0, 1.0), (0.0, 0.0));
        // (shape, (int8, int4) fractions, mean attended positions, measured instructions)
        let measured = [
            ("260K int8", &s260, int8, 32.5, 390_952.0),
            ("260K int4", &s260, int4, 32.5, 415_437.0),
            ("260K fp32", &s260, fp32, 32.5, 912_320.0),
            ("15M q8, positions 0-7", &s15, int8, 4.5, 6_372_811.0),
            ("15M q4, positions 0-7", &s15, int4, 4.5, 7_276_320.0),
            ("15M q8, whole context", &s15, int8, 128.5, 8_081_733.0),
            ("15M q4, whole context", &s15, int4, 128.5, 8_985_790.0),
        ];
        for (name, needs, (i8f, i4f), attended, count) in measured {
            let needs = Needs { int8_fraction: i8f, int4_fraction: i4f, ..*needs };
            let (matmul, rest) = LX7.instructions(&needs, attended);
            let err = (matmul + rest) / count - 1.0;
            assert!(
                err.abs() <= 0.02,
                "{name}: model {:.0}, measured {count} ({:+.2}%)",
                matmul + rest,
                err * 100.0
            );
        }
    }

    /// The planner's rules on the chip table: on the S3 the fp32 stories260K (1 MB) and the
    /// group-4 int8 file (0.5 MB with its f32 scales) both go to PSRAM, with their whole
    /// context; an FPU-less chip runs the int8 one in fixed point with a capped context, its
    /// weights read from flash; a file larger than the partition is refused.
    #[test]
    fn plans_on_the_chip_table() {
        let s3 = chip("esp32s3").unwrap();
        let c3 = chip("esp32c3").unwrap();
        let q8 = checkpoint("stories260K_q80.bin");
        let f32m = checkpoint("stories260K.bin");
        let nq = Needs::of(&q8.config, &q8.weights).unwrap();
        let nf = Needs::of(&f32m.config, &f32m.weights).unwrap();
        assert!(nq.weights > s3.sram_for_data);
        let p = plan(&nq, 512, s3, s3.psram, 3 << 20, nq.weights).unwrap();
        assert_eq!((p.weights, p.numerics, p.seq_len), (Region::Psram, Numerics::Float, 512));
        let p = plan(&nf, 512, s3, s3.psram, 3 << 20, nf.weights).unwrap();
        assert_eq!(p.weights, Region::Psram);
        assert_eq!(p.seq_len, 512);
        let p = plan(&nq, 512, c3, 0, 3 << 20, nq.weights).unwrap();
        assert_eq!((p.weights, p.numerics), (Region::Flash, Numerics::Fixed));
        assert!(p.seq_len < 512 && p.seq_len >= MIN_CONTEXT, "{}", p.seq_len);
        assert!(p.sram_used <= c3.sram_for_data);
        assert!(matches!(
            plan(&nq, 512, s3, s3.psram, 1000, 300_000),
            Err(Error::OutOfMemory { .. })
        ));
        assert!(chip("esp8266").is_none());
    }
}
