//! The model's shape ([`Config`]) and borrowed views of its weights ([`Weights`]).
//!
//! Field names follow llama2.c's `run.c` so the code can be held against the reference. Every
//! matrix is row-major `(rows, cols)` and `matmul` computes `out[r] = sum_c w[r][c] * x[c]`.
//! A matrix is f32, int8 ("Q8_0": symmetric, one f32 scale per group of consecutive values in a
//! row) or int4 (the same with 4-bit values in `-7..=7`, two per byte, low nibble first). Int8
//! rows may be padded to `stride >= cols` (the device bundle pads rows to a multiple of 16 with
//! zeros); llama2.c's version-2 files have `stride == cols`. Int4 rows are always padded to a
//! multiple of 32 values (16 bytes).

use crate::error::{Error, Result};
use alloc::vec::Vec;
use core::ops::Deref;

/// The transformer's hyper-parameters, as in llama2.c's `Config`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// Transformer width.
    pub dim: usize,
    /// Width of the feed-forward hidden layer.
    pub hidden_dim: usize,
    /// Number of layers.
    pub n_layers: usize,
    /// Number of query heads.
    pub n_heads: usize,
    /// Number of key/value heads (can be fewer than query heads: grouped-query attention).
    pub n_kv_heads: usize,
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Maximum sequence length (context window).
    pub seq_len: usize,
    /// Whether the classifier shares the token embedding's weights.
    pub shared_classifier: bool,
}

/// A bound on every dimension: large enough for any llama-2 shaped model, small enough that
/// products of a few dimensions cannot overflow `usize` on a 64-bit host.
pub const MAX_DIM: usize = 1 << 24;

impl Config {
    /// Checks that the dimensions are positive, bounded and consistent.
    pub fn validate(&self) -> Result<()> {
        let fields = [
            ("dim", self.dim),
            ("hidden_dim", self.hidden_dim),
            ("n_layers", self.n_layers),
            ("n_heads", self.n_heads),
            ("n_kv_heads", self.n_kv_heads),
            ("vocab_size", self.vocab_size),
            ("seq_len", self.seq_len),
        ];
        for (field, value) in fields {
            if value == 0 {
                return Err(Error::BadConfig { field, value: 0, reason: "must be positive" });
            }
            if value > MAX_DIM {
                return Err(Error::BadConfig {
                    field,
                    value: value as i64,
                    reason: "is absurdly large (more than 16777216)",
                });
            }
        }
        if !self.dim.is_multiple_of(self.n_heads) {
            return Err(Error::BadConfig {
                field: "n_heads",
                value: self.n_heads as i64,
                reason: "does not divide dim",
            });
        }
        if self.n_kv_heads > self.n_heads || !self.n_heads.is_multiple_of(self.n_kv_heads) {
            return Err(Error::BadConfig {
                field: "n_kv_heads",
                value: self.n_kv_heads as i64,
                reason: "does not divide n_heads",
            });
        }
        if !self.head_size().is_multiple_of(2) {
            return Err(Error::BadConfig {
                field: "n_heads",
                value: self.n_heads as i64,
                reason: "gives an odd head size (dim / n_heads), RoPE rotates pairs",
            });
        }
        if self.vocab_size < 3 {
            return Err(Error::BadConfig {
                field: "vocab_size",
                value: self.vocab_size as i64,
                reason: "must hold at least <unk>, BOS and EOS",
            });
        }
        Ok(())
    }

    /// `dim / n_heads`.
    pub fn head_size(&self) -> usize {
        self.dim / self.n_heads
    }

    /// Width of the key and value vectors: `dim * n_kv_heads / n_heads`.
    pub fn kv_dim(&self) -> usize {
        self.head_size() * self.n_kv_heads
    }

    /// Query heads per key/value head.
    pub fn kv_mul(&self) -> usize {
        self.n_heads / self.n_kv_heads
    }

    /// Parameters in the weight matrices and norms (the classifier counted once when shared).
    pub fn n_params(&self) -> u64 {
        let (d, h, l, v, kv) = (
            self.dim as u64,
            self.hidden_dim as u64,
            self.n_layers as u64,
            self.vocab_size as u64,
            self.kv_dim() as u64,
        );
        let per_layer = 2 * d + d * d * 2 + 2 * d * kv + 3 * d * h;
        let cls = if self.shared_classifier { 0 } else { v * d };
        v * d + l * per_layer + d + cls
    }
}

/// A run of f32 values: borrowed from the checkpoint bytes when they are 4-byte aligned
/// (zero-copy), else copied once at load time (llama2.c v2 files leave floats unaligned).
#[derive(Debug, Clone)]
pub enum Floats<'a> {
    /// Viewed in place.
    Borrowed(&'a [f32]),
    /// Copied at load.
    Owned(Vec<f32>),
}

impl<'a> Floats<'a> {
    /// Views (or, when misaligned or on a big-endian target, copies) little-endian f32 bytes.
    /// `bytes.len()` must be a multiple of 4.
    pub fn from_le_bytes(bytes: &'a [u8]) -> Floats<'a> {
        #[cfg(target_endian = "little")]
        if let Ok(view) = bytemuck::try_cast_slice::<u8, f32>(bytes) {
            return Floats::Borrowed(view);
        }
        Floats::Owned(
            bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect(),
        )
    }

    /// Whether the values are read in place.
    pub fn is_borrowed(&self) -> bool {
        matches!(self, Floats::Borrowed(_))
    }
}

impl Deref for Floats<'_> {
    type Target = [f32];
    fn deref(&self) -> &[f32] {
        match self {
            Floats::Borrowed(s) => s,
            Floats::Owned(v) => v,
        }
    }
}

/// A weight matrix of shape `(rows, cols)`.
#[derive(Debug, Clone)]
pub enum Matrix<'a> {
    /// Dense f32, `rows * cols` values.
    F32 { w: Floats<'a>, rows: usize, cols: usize },
    /// Int8 with per-group scales.
    Q8(Q8Matrix<'a>),
    /// Int4 with per-group scales.
    Q4(Q4Matrix<'a>),
}

/// Decodes the two signed 4-bit values of a byte: (low nibble, high nibble), each in `-8..=7`
/// (two's complement; the quantizer only writes `-7..=7`).
#[inline(always)]
pub fn nibbles(b: u8) -> (i8, i8) {
    (((b << 4) as i8) >> 4, (b as i8) >> 4)
}

/// An int4 matrix: `q` holds `rows * stride / 2` bytes, value `c` of row `r` in byte
/// `(r * stride + c) / 2`, the low nibble for even `c`; `s` holds `rows * stride / group`
/// scales; the value at (r, c) is `nibble * s[(r * stride + c) / group]`.
#[derive(Debug, Clone)]
pub struct Q4Matrix<'a> {
    /// Packed values, row-major, `stride / 2` bytes per row (zeros past `cols`).
    pub q: &'a [u8],
    /// One scale per `group` consecutive values.
    pub s: Floats<'a>,
    /// Logical shape.
    pub rows: usize,
    /// Logical row length.
    pub cols: usize,
    /// Stored row length in values: a multiple of 32 and of `group`, `>= cols`.
    pub stride: usize,
    /// Values per scale, a multiple of 16.
    pub group: usize,
}

impl Q4Matrix<'_> {
    /// The signed value at flat index `i` (`r * stride + c`).
    #[inline(always)]
    pub fn get(&self, i: usize) -> i8 {
        let (lo, hi) = nibbles(self.q[i / 2]);
        if i.is_multiple_of(2) {
            lo
        } else {
            hi
        }
    }
}

/// Int4 row strides are a multiple of this many values (16 bytes: whole SIMD/PIE vectors).
pub const Q4_STRIDE_UNIT: usize = 32;
/// Int4 group sizes are a multiple of this (every SIMD step covers 16 values of one group).
pub const Q4_GROUP_UNIT: usize = 16;

/// An int8 matrix: `q` holds `rows * stride` values, `s` holds `rows * stride / group` scales;
/// the value at (r, c) is `q[r * stride + c] * s[(r * stride + c) / group]`.
#[derive(Debug, Clone)]
pub struct Q8Matrix<'a> {
    /// Quantized values, row-major with `stride` per row (zeros past `cols`).
    pub q: &'a [i8],
    /// One scale per `group` consecutive values.
    pub s: Floats<'a>,
    /// Logical shape.
    pub rows: usize,
    /// Logical row length.
    pub cols: usize,
    /// Stored row length, a multiple of `group`, `>= cols`.
    pub stride: usize,
    /// Values per scale.
    pub group: usize,
}

impl<'a> Matrix<'a> {
    /// An f32 matrix over `w`, checking its length.
    pub fn f32(w: Floats<'a>, rows: usize, cols: usize) -> Result<Self> {
        let n = rows.checked_mul(cols).ok_or(Error::Overflow { what: "matrix" })?;
        if w.len() != n {
            return Err(Error::BadLength { what: "f32 matrix", expected: n, got: w.len() });
        }
        Ok(Matrix::F32 { w, rows, cols })
    }

    /// An int8 matrix, checking the group size and both lengths.
    pub fn q8(
        tensor: &'static str,
        q: &'a [i8],
        s: Floats<'a>,
        (rows, cols, stride): (usize, usize, usize),
        group: usize,
    ) -> Result<Self> {
        if group == 0 || stride % group != 0 || stride < cols {
            return Err(Error::BadGroupSize { tensor, group_size: group, row_len: stride });
        }
        let n = rows.checked_mul(stride).ok_or(Error::Overflow { what: tensor })?;
        if q.len() != n {
            return Err(Error::BadLength { what: tensor, expected: n, got: q.len() });
        }
        if s.len() != n / group {
            return Err(Error::BadLength { what: tensor, expected: n / group, got: s.len() });
        }
        Ok(Matrix::Q8(Q8Matrix { q, s, rows, cols, stride, group }))
    }

    /// An int4 matrix, checking the group size (a multiple of 16 dividing the stride), the
    /// stride (a multiple of 32 covering `cols`) and both lengths.
    pub fn q4(
        tensor: &'static str,
        q: &'a [u8],
        s: Floats<'a>,
        (rows, cols, stride): (usize, usize, usize),
        group: usize,
    ) -> Result<Self> {
        if group == 0 || !group.is_multiple_of(Q4_GROUP_UNIT) || !stride.is_multiple_of(group) {
            return Err(Error::BadGroupSize { tensor, group_size: group, row_len: stride });
        }
        if stride < cols || stride % Q4_STRIDE_UNIT != 0 {
            return Err(Error::BadConfig {
                field: tensor,
                value: stride as i64,
                reason: "int4 row stride must cover the row and be a multiple of 32 values",
            });
        }
        let n = rows.checked_mul(stride).ok_or(Error::Overflow { what: tensor })?;
        if q.len() != n / 2 {
            return Err(Error::BadLength { what: tensor, expected: n / 2, got: q.len() });
        }
        if s.len() != n / group {
            return Err(Error::BadLength { what: tensor, expected: n / group, got: s.len() });
        }
        Ok(Matrix::Q4(Q4Matrix { q, s, rows, cols, stride, group }))
    }

    /// Output length.
    pub fn rows(&self) -> usize {
        match self {
            Matrix::F32 { rows, .. } => *rows,
            Matrix::Q8(m) => m.rows,
            Matrix::Q4(m) => m.rows,
        }
    }

    /// Input length.
    pub fn cols(&self) -> usize {
        match self {
            Matrix::F32 { cols, .. } => *cols,
            Matrix::Q8(m) => m.cols,
            Matrix::Q4(m) => m.cols,
        }
    }

    /// The group size, if quantized (int8 or int4).
    pub fn group(&self) -> Option<usize> {
        match self {
            Matrix::F32 { .. } => None,
            Matrix::Q8(m) => Some(m.group),
            Matrix::Q4(m) => Some(m.group),
        }
    }

    /// The quantized input layout `(stride, group)` an int8 or int4 matmul needs (`None` for
    /// f32): int4 matrices take the same int8-quantized activations as int8 ones.
    pub fn input_layout(&self) -> Option<(usize, usize)> {
        match self {
            Matrix::F32 { .. } => None,
            Matrix::Q8(m) => Some((m.stride, m.group)),
            Matrix::Q4(m) => Some((m.stride, m.group)),
        }
    }

    /// A short name of the element type: `f32`, `int8` or `int4`.
    pub fn dtype_name(&self) -> &'static str {
        match self {
            Matrix::F32 { .. } => "f32",
            Matrix::Q8(_) => "int8",
            Matrix::Q4(_) => "int4",
        }
    }

    /// Bytes this matrix occupies (values and scales).
    pub fn bytes(&self) -> usize {
        match self {
            Matrix::F32 { w, .. } => w.len() * 4,
            Matrix::Q8(m) => m.q.len() + m.s.len() * 4,
            Matrix::Q4(m) => m.q.len() + m.s.len() * 4,
        }
    }

    /// Writes row `r` as f32 into `out` (length `cols`). For int8 this is runq.c's
    /// `dequantize`: `q * s` in f32.
    pub fn row_into(&self, r: usize, out: &mut [f32]) {
        self.row_map(r, out, |v| v)
    }

    /// Row `r` as f32 values (dequantized for int8), each passed through `f` into `out`.
    pub fn row_map<T>(&self, r: usize, out: &mut [T], f: impl Fn(f32) -> T) {
        match self {
            Matrix::F32 { w, cols, .. } => {
                for (o, &v) in out.iter_mut().zip(&w[r * cols..(r + 1) * cols]) {
                    *o = f(v);
                }
            }
            Matrix::Q8(m) => {
                let base = r * m.stride;
                for (c, o) in out.iter_mut().enumerate() {
                    let i = base + c;
                    *o = f(m.q[i] as f32 * m.s[i / m.group]);
                }
            }
            Matrix::Q4(m) => {
                let base = r * m.stride;
                for (c, o) in out.iter_mut().enumerate() {
                    let i = base + c;
                    *o = f(m.get(i) as f32 * m.s[i / m.group]);
                }
            }
        }
    }
}

/// The weights of one transformer layer.
#[derive(Debug, Clone)]
pub struct Layer<'a> {
    /// (dim) attention rmsnorm weights.
    pub rms_att_weight: Floats<'a>,
    /// (dim, dim) query projection.
    pub wq: Matrix<'a>,
    /// (kv_dim, dim) key projection.
    pub wk: Matrix<'a>,
    /// (kv_dim, dim) value projection.
    pub wv: Matrix<'a>,
    /// (dim, dim) attention output projection.
    pub wo: Matrix<'a>,
    /// (dim) feed-forward rmsnorm weights.
    pub rms_ffn_weight: Floats<'a>,
    /// (hidden_dim, dim) gate projection.
    pub w1: Matrix<'a>,
    /// (dim, hidden_dim) down projection.
    pub w2: Matrix<'a>,
    /// (hidden_dim, dim) up projection.
    pub w3: Matrix<'a>,
}

/// Weight bytes by kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WeightBytes {
    /// f32 values (matrices and norms).
    pub f32: usize,
    /// Int8 values (padding included).
    pub int8: usize,
    /// Int4 values, in bytes (two per byte, padding included).
    pub int4: usize,
    /// Int8 scales.
    pub scales: usize,
}

/// All weights of a model, borrowed from the checkpoint bytes where possible.
#[derive(Debug, Clone)]
pub struct Weights<'a> {
    /// (vocab_size, dim) token embedding table.
    pub token_embedding: Matrix<'a>,
    /// One entry per layer.
    pub layers: Vec<Layer<'a>>,
    /// (dim) final rmsnorm weights.
    pub rms_final_weight: Floats<'a>,
    /// (vocab_size, dim) classifier; `None` when shared with the token embedding.
    pub wcls: Option<Matrix<'a>>,
}

impl<'a> Weights<'a> {
    /// The classifier matrix (the token embedding when shared).
    pub fn classifier(&self) -> &Matrix<'a> {
        self.wcls.as_ref().unwrap_or(&self.token_embedding)
    }

    /// Every matrix with its name and layer (the classifier only when not shared).
    pub fn matrices(&self) -> impl Iterator<Item = (&'static str, Option<usize>, &Matrix<'a>)> {
        let emb = core::iter::once(("token_embedding", None, &self.token_embedding));
        let layers = self.layers.iter().enumerate().flat_map(|(l, ly)| {
            [
                ("wq", Some(l), &ly.wq),
                ("wk", Some(l), &ly.wk),
                ("wv", Some(l), &ly.wv),
                ("wo", Some(l), &ly.wo),
                ("w1", Some(l), &ly.w1),
                ("w2", Some(l), &ly.w2),
                ("w3", Some(l), &ly.w3),
            ]
        });
        let cls = self.wcls.iter().map(|m| ("wcls", None, m));
        emb.chain(layers).chain(cls)
    }

    /// Bytes of f32 values (norms included), int8 values and int8 scales.
    pub fn byte_breakdown(&self) -> WeightBytes {
        let norms: usize = self
            .layers
            .iter()
            .map(|l| (l.rms_att_weight.len() + l.rms_ffn_weight.len()) * 4)
            .sum::<usize>()
            + self.rms_final_weight.len() * 4;
        let mut b = WeightBytes { f32: norms, int8: 0, int4: 0, scales: 0 };
        for (_, _, m) in self.matrices() {
            match m {
                Matrix::F32 { w, .. } => b.f32 += w.len() * 4,
                Matrix::Q8(q) => {
                    b.int8 += q.q.len();
                    b.scales += q.s.len() * 4;
                }
                Matrix::Q4(q) => {
                    b.int4 += q.q.len();
                    b.scales += q.s.len() * 4;
                }
            }
        }
        b
    }

    /// Bytes the parser had to copy (floats that were misaligned in the input, as after int8
    /// arrays in llama2.c v2 files); everything else is read in place.
    pub fn copied_bytes(&self) -> usize {
        let floats = |f: &Floats<'_>| if f.is_borrowed() { 0 } else { f.len() * 4 };
        let norms: usize = self
            .layers
            .iter()
            .map(|l| floats(&l.rms_att_weight) + floats(&l.rms_ffn_weight))
            .sum::<usize>()
            + floats(&self.rms_final_weight);
        norms
            + self
                .matrices()
                .map(|(_, _, m)| match m {
                    Matrix::F32 { w, .. } => floats(w),
                    Matrix::Q8(q) => floats(&q.s),
                    Matrix::Q4(q) => floats(&q.s),
                })
                .sum::<usize>()
    }

    /// Bytes of all weights (values, scales and norms).
    pub fn bytes(&self) -> usize {
        let b = self.byte_breakdown();
        b.f32 + b.int8 + b.int4 + b.scales
    }
}
