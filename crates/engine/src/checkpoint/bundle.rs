//! The device bundle: one file with config, tokenizer and tensors, laid out to be used in place.
//!
//! Specified byte by byte in `docs/bundle.md`. In short: a 128-byte header (magic `ELLB`,
//! version, config, offsets of the tensor directory and of the tokenizer, file length, CRC-32),
//! a directory of 48-byte tensor entries, the llama2.c tokenizer bytes, then the tensors. Every
//! tensor and scale array starts on a 16-byte boundary (ESP32-S3 PIE loads need it), int8 rows
//! are padded with zeros to a `stride` that is a multiple of 16 and of the tensor's own group
//! size, so kernels need no tails. Version 2 adds int4 tensors (two signed 4-bit values per
//! byte, low nibble first, rows padded to a multiple of 32 values, groups a multiple of 16);
//! version 1 files (f32 and int8 only) are still read, and `pack` writes version 1 whenever no
//! tensor is int4, so older engines read every bundle they could before. The CRC-32 covers the whole file except its own 4 bytes, so
//! a partial or corrupted flash write is detected before the model runs.

use super::reader::Reader;
use super::{Checkpoint, Format};
use crate::error::{Error, Result};
use crate::model::{Config, Floats, Layer, Matrix, Weights, Q4_GROUP_UNIT, Q4_STRIDE_UNIT};
use alloc::vec::Vec;

/// `ELLB` read as a little-endian u32.
pub const BUNDLE_MAGIC: u32 = u32::from_le_bytes(*b"ELLB");
/// The newest bundle version this engine writes and reads (2: int4 tensors).
pub const BUNDLE_VERSION: u16 = 2;
/// The version of bundles without int4 tensors (still written for them).
pub const BUNDLE_VERSION_1: u16 = 1;
/// Header size in bytes.
pub const HEADER_SIZE: usize = 128;
/// Directory entry size in bytes.
pub const ENTRY_SIZE: usize = 48;
/// Alignment of every section.
pub const ALIGN: usize = 16;
/// Offset of the CRC-32 field in the header.
pub const CRC_OFFSET: usize = 124;
/// Checksum algorithm id: CRC-32 (IEEE 802.3, as zlib's `crc32`).
pub const CHECKSUM_CRC32: u32 = 1;
/// Header flag: the classifier is the token embedding.
pub const FLAG_SHARED_CLASSIFIER: u32 = 1;

/// What a tensor is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u16)]
pub enum Kind {
    /// (vocab_size, dim)
    TokenEmbedding = 0,
    /// (dim) per layer
    RmsAtt = 1,
    /// (dim, dim) per layer
    Wq = 2,
    /// (kv_dim, dim) per layer
    Wk = 3,
    /// (kv_dim, dim) per layer
    Wv = 4,
    /// (dim, dim) per layer
    Wo = 5,
    /// (dim) per layer
    RmsFfn = 6,
    /// (hidden_dim, dim) per layer
    W1 = 7,
    /// (dim, hidden_dim) per layer
    W2 = 8,
    /// (hidden_dim, dim) per layer
    W3 = 9,
    /// (dim)
    RmsFinal = 10,
    /// (vocab_size, dim), absent when shared
    Wcls = 11,
}

/// All kinds, by id.
pub const KINDS: [Kind; 12] = [
    Kind::TokenEmbedding,
    Kind::RmsAtt,
    Kind::Wq,
    Kind::Wk,
    Kind::Wv,
    Kind::Wo,
    Kind::RmsFfn,
    Kind::W1,
    Kind::W2,
    Kind::W3,
    Kind::RmsFinal,
    Kind::Wcls,
];

impl Kind {
    /// Name as in run.c.
    pub fn name(self) -> &'static str {
        [
            "token_embedding",
            "rms_att_weight",
            "wq",
            "wk",
            "wv",
            "wo",
            "rms_ffn_weight",
            "w1",
            "w2",
            "w3",
            "rms_final_weight",
            "wcls",
        ][self as usize]
    }

    /// Whether there is one per layer.
    pub fn per_layer(self) -> bool {
        !matches!(self, Kind::TokenEmbedding | Kind::RmsFinal | Kind::Wcls)
    }

    /// Whether it is a norm vector (always f32).
    pub fn is_norm(self) -> bool {
        matches!(self, Kind::RmsAtt | Kind::RmsFfn | Kind::RmsFinal)
    }

    /// (rows, cols) for a config.
    pub fn shape(self, c: &Config) -> (usize, usize) {
        let (d, h, kv, v) = (c.dim, c.hidden_dim, c.kv_dim(), c.vocab_size);
        match self {
            Kind::TokenEmbedding | Kind::Wcls => (v, d),
            Kind::RmsAtt | Kind::RmsFfn | Kind::RmsFinal => (1, d),
            Kind::Wq | Kind::Wo => (d, d),
            Kind::Wk | Kind::Wv => (kv, d),
            Kind::W1 | Kind::W3 => (h, d),
            Kind::W2 => (d, h),
        }
    }
}

/// Element type of a tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DType {
    /// Little-endian f32.
    F32 = 0,
    /// Int8 values with one f32 scale per group (Q8_0).
    Q8 = 1,
    /// Int4 values, two per byte (low nibble first), one f32 scale per group; version 2.
    Q4 = 2,
}

impl DType {
    /// Short name: `f32`, `int8`, `int4`.
    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::Q8 => "int8",
            DType::Q4 => "int4",
        }
    }
}

/// One directory entry, as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    /// Tensor kind.
    pub kind: Kind,
    /// Layer (0 for global tensors).
    pub layer: u16,
    /// Element type.
    pub dtype: DType,
    /// Logical rows.
    pub rows: u32,
    /// Logical row length.
    pub cols: u32,
    /// Stored row length (values); `cols` for f32.
    pub stride: u32,
    /// Values per scale (0 for f32).
    pub group: u32,
    /// Offset of the values.
    pub offset: u64,
    /// Offset of the scales (0 for f32).
    pub scales_offset: u64,
}

impl Entry {
    /// Bytes of the values.
    pub fn data_len(&self) -> Option<usize> {
        let n = (self.rows as usize).checked_mul(self.stride as usize)?;
        match self.dtype {
            DType::F32 => n.checked_mul(4),
            DType::Q8 => Some(n),
            DType::Q4 => Some(n / 2),
        }
    }

    /// Bytes of the scales.
    pub fn scales_len(&self) -> Option<usize> {
        match self.dtype {
            DType::F32 => Some(0),
            DType::Q8 | DType::Q4 => ((self.rows as usize).checked_mul(self.stride as usize)?
                / (self.group as usize).max(1))
            .checked_mul(4),
        }
    }

    /// Serializes the entry.
    pub fn to_bytes(&self) -> [u8; ENTRY_SIZE] {
        let mut b = [0u8; ENTRY_SIZE];
        b[0..2].copy_from_slice(&(self.kind as u16).to_le_bytes());
        b[2..4].copy_from_slice(&self.layer.to_le_bytes());
        b[4] = self.dtype as u8;
        b[8..12].copy_from_slice(&self.rows.to_le_bytes());
        b[12..16].copy_from_slice(&self.cols.to_le_bytes());
        b[16..20].copy_from_slice(&self.stride.to_le_bytes());
        b[20..24].copy_from_slice(&self.group.to_le_bytes());
        b[24..32].copy_from_slice(&self.offset.to_le_bytes());
        b[32..40].copy_from_slice(&self.scales_offset.to_le_bytes());
        b
    }
}

/// The fixed header fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Format version (1, or 2 when a tensor is int4).
    pub version: u16,
    /// Model shape.
    pub config: Config,
    /// Number of directory entries.
    pub n_tensors: u32,
    /// Offset of the directory.
    pub directory_offset: u64,
    /// Offset of the tokenizer bytes.
    pub tokenizer_offset: u64,
    /// Length of the tokenizer bytes.
    pub tokenizer_len: u64,
    /// Length of the whole file.
    pub file_len: u64,
    /// Stored CRC-32.
    pub crc32: u32,
}

impl Header {
    /// Serializes the header (with the given CRC).
    pub fn to_bytes(&self) -> [u8; HEADER_SIZE] {
        let c = &self.config;
        let mut b = [0u8; HEADER_SIZE];
        b[0..4].copy_from_slice(&BUNDLE_MAGIC.to_le_bytes());
        b[4..6].copy_from_slice(&self.version.to_le_bytes());
        b[6..8].copy_from_slice(&(HEADER_SIZE as u16).to_le_bytes());
        let flags = if c.shared_classifier { FLAG_SHARED_CLASSIFIER } else { 0 };
        b[8..12].copy_from_slice(&flags.to_le_bytes());
        let dims =
            [c.dim, c.hidden_dim, c.n_layers, c.n_heads, c.n_kv_heads, c.vocab_size, c.seq_len];
        for (i, d) in dims.iter().enumerate() {
            b[12 + 4 * i..16 + 4 * i].copy_from_slice(&(*d as u32).to_le_bytes());
        }
        b[40..44].copy_from_slice(&self.n_tensors.to_le_bytes());
        b[48..56].copy_from_slice(&self.directory_offset.to_le_bytes());
        b[56..64].copy_from_slice(&self.tokenizer_offset.to_le_bytes());
        b[64..72].copy_from_slice(&self.tokenizer_len.to_le_bytes());
        b[72..80].copy_from_slice(&self.file_len.to_le_bytes());
        b[80..84].copy_from_slice(&CHECKSUM_CRC32.to_le_bytes());
        b[CRC_OFFSET..HEADER_SIZE].copy_from_slice(&self.crc32.to_le_bytes());
        b
    }
}

/// CRC-32 of a bundle's bytes, skipping the CRC field itself.
pub fn checksum(bytes: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(bytes.get(..CRC_OFFSET).unwrap_or(bytes));
    h.update(bytes.get(HEADER_SIZE..).unwrap_or(&[]));
    h.finalize()
}

/// Checks the stored CRC-32 against the bytes.
pub fn verify(bytes: &[u8]) -> Result<()> {
    let header = read_header(bytes)?;
    let got = checksum(bytes);
    if got != header.crc32 {
        return Err(Error::Checksum { expected: header.crc32, got });
    }
    Ok(())
}

/// Whether the bytes start like a bundle.
pub fn is_bundle(bytes: &[u8]) -> bool {
    bytes.get(..4) == Some(&BUNDLE_MAGIC.to_le_bytes()[..])
}

fn u64_to_usize(what: &'static str, v: u64) -> Result<usize> {
    usize::try_from(v).map_err(|_| Error::Overflow { what })
}

fn bad(field: &'static str, value: i64, reason: &'static str) -> Error {
    Error::BadConfig { field, value, reason }
}

/// Parses and checks the header.
pub fn read_header(bytes: &[u8]) -> Result<Header> {
    let mut r = Reader::new(bytes);
    let magic = r.u32("bundle header")?;
    if magic != BUNDLE_MAGIC {
        return Err(Error::BadMagic { expected: BUNDLE_MAGIC, got: magic });
    }
    let head = Reader::new(bytes).take("bundle header", HEADER_SIZE)?;
    let u16_at = |o: usize| u16::from_le_bytes([head[o], head[o + 1]]);
    let u32_at = |o: usize| u32::from_le_bytes([head[o], head[o + 1], head[o + 2], head[o + 3]]);
    let u64_at = |o: usize| {
        let mut a = [0u8; 8];
        a.copy_from_slice(&head[o..o + 8]);
        u64::from_le_bytes(a)
    };
    let version = u16_at(4);
    if version != BUNDLE_VERSION_1 && version != BUNDLE_VERSION {
        return Err(Error::UnsupportedVersion { format: "bundle", version: version as i64 });
    }
    if u16_at(6) as usize != HEADER_SIZE {
        return Err(bad("header_size", u16_at(6) as i64, "must be 128"));
    }
    let flags = u32_at(8);
    if flags & !FLAG_SHARED_CLASSIFIER != 0 {
        return Err(bad("flags", flags as i64, "unknown flag bits"));
    }
    let dim = |i: usize, field: &'static str| -> Result<usize> {
        let v = u32_at(12 + 4 * i);
        if v == 0 {
            return Err(bad(field, 0, "must be positive"));
        }
        Ok(v as usize)
    };
    let config = Config {
        dim: dim(0, "dim")?,
        hidden_dim: dim(1, "hidden_dim")?,
        n_layers: dim(2, "n_layers")?,
        n_heads: dim(3, "n_heads")?,
        n_kv_heads: dim(4, "n_kv_heads")?,
        vocab_size: dim(5, "vocab_size")?,
        seq_len: dim(6, "seq_len")?,
        shared_classifier: flags & FLAG_SHARED_CLASSIFIER != 0,
    };
    config.validate()?;
    if u32_at(80) != CHECKSUM_CRC32 {
        return Err(bad("checksum_kind", u32_at(80) as i64, "only 1 (CRC-32) is known"));
    }
    let header = Header {
        version,
        config,
        n_tensors: u32_at(40),
        directory_offset: u64_at(48),
        tokenizer_offset: u64_at(56),
        tokenizer_len: u64_at(64),
        file_len: u64_at(72),
        crc32: u32_at(CRC_OFFSET),
    };
    if header.file_len != bytes.len() as u64 {
        let expected = u64_to_usize("file_len", header.file_len)?;
        if expected > bytes.len() {
            return Err(Error::Truncated {
                section: "bundle",
                offset: bytes.len(),
                need: expected - bytes.len(),
                len: bytes.len(),
            });
        }
        return Err(Error::TrailingBytes { expected, len: bytes.len() });
    }
    Ok(header)
}

/// A parsed bundle: the checkpoint views and the tokenizer bytes.
#[derive(Debug, Clone)]
pub struct Bundle<'a> {
    /// Header fields.
    pub header: Header,
    /// Directory entries in file order.
    pub entries: Vec<Entry>,
    /// Weights and config, borrowed from the bytes.
    pub checkpoint: Checkpoint<'a>,
    /// The llama2.c tokenizer bytes.
    pub tokenizer: &'a [u8],
}

/// A region of the file, checked for bounds and alignment.
fn region<'a>(bytes: &'a [u8], section: &'static str, offset: u64, len: usize) -> Result<&'a [u8]> {
    let off = u64_to_usize(section, offset)?;
    if off % ALIGN != 0 {
        return Err(bad(section, off as i64, "offset is not 16-byte aligned"));
    }
    let mut r = Reader::new(bytes);
    r.seek(section, off)?;
    r.take(section, len)
}

fn parse_entry(b: &[u8], version: u16) -> Result<Entry> {
    let u32_at = |o: usize| u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]);
    let u64_at = |o: usize| {
        let mut a = [0u8; 8];
        a.copy_from_slice(&b[o..o + 8]);
        u64::from_le_bytes(a)
    };
    let kind_id = u16::from_le_bytes([b[0], b[1]]);
    let kind = *KINDS.get(kind_id as usize).ok_or(bad(
        "tensor kind",
        kind_id as i64,
        "unknown tensor kind",
    ))?;
    let dtype = match b[4] {
        0 => DType::F32,
        1 => DType::Q8,
        2 if version >= 2 => DType::Q4,
        2 => return Err(bad("tensor dtype", 2, "int4 tensors need bundle version 2, this is 1")),
        d => return Err(bad("tensor dtype", d as i64, "unknown element type")),
    };
    Ok(Entry {
        kind,
        layer: u16::from_le_bytes([b[2], b[3]]),
        dtype,
        rows: u32_at(8),
        cols: u32_at(12),
        stride: u32_at(16),
        group: u32_at(20),
        offset: u64_at(24),
        scales_offset: u64_at(32),
    })
}

/// Builds the matrix (or norm) view of an entry after checking it against the config.
fn tensor<'a>(bytes: &'a [u8], e: &Entry, c: &Config) -> Result<Matrix<'a>> {
    let name = e.kind.name();
    let (rows, cols) = e.kind.shape(c);
    if e.rows as usize != rows || e.cols as usize != cols {
        return Err(bad(name, e.rows as i64, "tensor shape does not match the config"));
    }
    let data_len = e.data_len().ok_or(Error::Overflow { what: name })?;
    match e.dtype {
        DType::F32 => {
            if e.stride != e.cols || e.group != 0 {
                return Err(bad(name, e.stride as i64, "f32 rows must not be padded"));
            }
            let data = region(bytes, name, e.offset, data_len)?;
            Matrix::f32(Floats::from_le_bytes(data), rows, cols)
        }
        DType::Q8 => {
            if e.kind.is_norm() {
                return Err(bad(name, 1, "norm weights must be f32"));
            }
            let (stride, group) = (e.stride as usize, e.group as usize);
            if stride < cols || stride % ALIGN != 0 {
                return Err(bad(
                    name,
                    stride as i64,
                    "int8 row stride must cover the row and be a multiple of 16",
                ));
            }
            if group == 0 || stride % group != 0 {
                return Err(Error::BadGroupSize {
                    tensor: name,
                    group_size: group,
                    row_len: stride,
                });
            }
            let q: &'a [i8] = bytemuck::cast_slice(region(bytes, name, e.offset, data_len)?);
            let s_len = e.scales_len().ok_or(Error::Overflow { what: name })?;
            let s = Floats::from_le_bytes(region(bytes, name, e.scales_offset, s_len)?);
            Matrix::q8(name, q, s, (rows, cols, stride), group)
        }
        DType::Q4 => {
            if e.kind.is_norm() {
                return Err(bad(name, 2, "norm weights must be f32"));
            }
            let (stride, group) = (e.stride as usize, e.group as usize);
            if stride < cols || stride % Q4_STRIDE_UNIT != 0 {
                return Err(bad(
                    name,
                    stride as i64,
                    "int4 row stride must cover the row and be a multiple of 32 values (16 bytes)",
                ));
            }
            if group == 0 || group % Q4_GROUP_UNIT != 0 || stride % group != 0 {
                return Err(Error::BadGroupSize {
                    tensor: name,
                    group_size: group,
                    row_len: stride,
                });
            }
            let q = region(bytes, name, e.offset, data_len)?;
            let s_len = e.scales_len().ok_or(Error::Overflow { what: name })?;
            let s = Floats::from_le_bytes(region(bytes, name, e.scales_offset, s_len)?);
            Matrix::q4(name, q, s, (rows, cols, stride), group)
        }
    }
}

fn norm<'a>(m: Matrix<'a>) -> Result<Floats<'a>> {
    match m {
        Matrix::F32 { w, .. } => Ok(w),
        Matrix::Q8(_) | Matrix::Q4(_) => Err(bad("norm", 1, "norm weights must be f32")),
    }
}

impl<'a> Bundle<'a> {
    /// Parses a bundle without verifying its checksum (see [`verify`]): the header, every
    /// directory entry's shape, bounds and alignment, and that each tensor appears once.
    pub fn parse(bytes: &'a [u8]) -> Result<Self> {
        let header = read_header(bytes)?;
        let c = header.config;
        let n = header.n_tensors as usize;
        let expected = c.n_layers * 9 + 2 + usize::from(!c.shared_classifier);
        if n != expected {
            return Err(bad("n_tensors", n as i64, "does not match the config's tensor count"));
        }
        let dir = region(bytes, "tensor directory", header.directory_offset, n * ENTRY_SIZE)?;
        let entries = dir
            .chunks_exact(ENTRY_SIZE)
            .map(|b| parse_entry(b, header.version))
            .collect::<Result<Vec<_>>>()?;
        let tok_len = u64_to_usize("tokenizer", header.tokenizer_len)?;
        let tokenizer = region(bytes, "tokenizer", header.tokenizer_offset, tok_len)?;

        let l = c.n_layers;
        let mut slots: Vec<Option<Matrix<'a>>> = (0..KINDS.len() * l).map(|_| None).collect();
        for e in &entries {
            let layer = e.layer as usize;
            if (e.kind.per_layer() && layer >= l) || (!e.kind.per_layer() && layer != 0) {
                return Err(bad(e.kind.name(), layer as i64, "layer index out of range"));
            }
            if e.kind == Kind::Wcls && c.shared_classifier {
                return Err(bad("wcls", 1, "present although the classifier is shared"));
            }
            let slot = &mut slots[e.kind as usize * l + layer];
            if slot.is_some() {
                return Err(bad(e.kind.name(), layer as i64, "tensor appears twice"));
            }
            *slot = Some(tensor(bytes, e, &c)?);
        }
        let mut take = |k: Kind, layer: usize| -> Result<Matrix<'a>> {
            slots[k as usize * l + layer].take().ok_or(bad(
                k.name(),
                layer as i64,
                "tensor missing",
            ))
        };
        let token_embedding = take(Kind::TokenEmbedding, 0)?;
        let rms_final_weight = norm(take(Kind::RmsFinal, 0)?)?;
        let wcls = if c.shared_classifier { None } else { Some(take(Kind::Wcls, 0)?) };
        let mut layers = Vec::with_capacity(l);
        for i in 0..l {
            layers.push(Layer {
                rms_att_weight: norm(take(Kind::RmsAtt, i)?)?,
                wq: take(Kind::Wq, i)?,
                wk: take(Kind::Wk, i)?,
                wv: take(Kind::Wv, i)?,
                wo: take(Kind::Wo, i)?,
                rms_ffn_weight: norm(take(Kind::RmsFfn, i)?)?,
                w1: take(Kind::W1, i)?,
                w2: take(Kind::W2, i)?,
                w3: take(Kind::W3, i)?,
            });
        }
        let checkpoint = Checkpoint {
            config: c,
            format: Format::Bundle { version: header.version },
            weights: Weights { token_embedding, layers, rms_final_weight, wcls },
        };
        Ok(Bundle { header, entries, checkpoint, tokenizer })
    }
}

/// Rounds up to the bundle alignment.
pub fn align_up(n: usize) -> usize {
    n.div_ceil(ALIGN) * ALIGN
}

/// How one matrix is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precision {
    /// 32-bit floats (a quantized source is dequantized).
    F32,
    /// Int8 with this group size; `None` keeps an int8 source's values and groups as they are
    /// (rows only padded) and quantizes other sources with groups of [`DEFAULT_GROUP`].
    Q8(Option<usize>),
    /// Int4 with this group size (a multiple of 16).
    Q4(usize),
    /// Whatever the source has: int8 and int4 tensors keep their values and groups, f32 stays.
    Keep,
}

/// How `pack` stores the weight matrices (norms are always f32).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quant {
    /// Keep f32 (a quantized source is dequantized).
    F32,
    /// Int8 with this group size; `None` keeps an int8 source's values and groups as they are
    /// (rows only padded) and quantizes an f32 source with groups of [`DEFAULT_GROUP`].
    Q8(Option<usize>),
    /// Int4 everywhere, with this group size.
    Q4(usize),
    /// The token embedding and the classifier (`wcls`) as `embedding`, every layer matrix as
    /// `layers`: e.g. int4 for the big vocabulary tables and int8 for the layers.
    Mixed {
        /// token_embedding and wcls.
        embedding: Precision,
        /// wq, wk, wv, wo, w1, w2, w3 of every layer.
        layers: Precision,
    },
    /// Every tensor as the source has it (repacking a bundle, e.g. for flashing).
    Keep,
}

impl Quant {
    /// The precision of a tensor of this kind (norms are always f32).
    pub fn precision(self, kind: Kind) -> Precision {
        if kind.is_norm() {
            return Precision::F32;
        }
        let table = matches!(kind, Kind::TokenEmbedding | Kind::Wcls);
        match self {
            Quant::F32 => Precision::F32,
            Quant::Q8(g) => Precision::Q8(g),
            Quant::Q4(g) => Precision::Q4(g),
            Quant::Mixed { embedding, .. } if table => embedding,
            Quant::Mixed { layers, .. } => layers,
            Quant::Keep => Precision::Keep,
        }
    }
}

/// Group size `pack` uses for f32 sources by default (see docs/bundle.md for the measurements).
pub const DEFAULT_GROUP: usize = 32;
/// Int4 group size `pack` uses by default (see docs/bundle.md, "Quality").
pub const DEFAULT_Q4_GROUP: usize = 32;

/// The row stride: `cols` rounded up to a common multiple of `unit` values and the group.
fn stride_for_unit(cols: usize, group: usize, unit: usize) -> usize {
    let g = group.max(1);
    let (mut a, mut b) = (unit, g);
    while b != 0 {
        (a, b) = (b, a % b);
    }
    let unit = unit / a * g;
    cols.div_ceil(unit) * unit
}

/// Int8 row stride: a multiple of 16 values (16 bytes) and of the group.
fn stride_for(cols: usize, group: usize) -> usize {
    stride_for_unit(cols, group, ALIGN)
}

/// Int4 row stride: a multiple of 32 values (16 bytes) and of the group.
pub fn q4_stride(cols: usize, group: usize) -> usize {
    stride_for_unit(cols, group, Q4_STRIDE_UNIT)
}

/// Bytes of a matrix of `rows x cols` stored with `p` (values and scales, alignment padding
/// excluded); `None` for [`Precision::Keep`] and bad groups.
pub fn matrix_bytes(rows: usize, cols: usize, p: Precision) -> Option<usize> {
    match p {
        Precision::F32 => rows.checked_mul(cols)?.checked_mul(4),
        Precision::Q8(g) => {
            let g = g.unwrap_or(DEFAULT_GROUP);
            let stride = stride_for(cols, g);
            rows.checked_mul(stride + stride / g.max(1) * 4)
        }
        Precision::Q4(g) if g > 0 && g % Q4_GROUP_UNIT == 0 => {
            let stride = q4_stride(cols, g);
            rows.checked_mul(stride / 2 + stride / g * 4)
        }
        Precision::Q4(_) | Precision::Keep => None,
    }
}

/// What packing did to one tensor.
#[derive(Debug, Clone, Copy)]
pub struct PackedTensor {
    /// The tensor's directory entry.
    pub entry: Entry,
    /// Quantization error (zero when values were kept).
    pub error: crate::quantize::QuantError,
}

fn push_aligned(out: &mut Vec<u8>, bytes: &[u8]) -> u64 {
    out.resize(align_up(out.len()), 0);
    let at = out.len() as u64;
    out.extend_from_slice(bytes);
    at
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|f| f.to_le_bytes()).collect()
}

/// A norm vector as a one-row matrix.
fn norm_matrix<'f>(f: &'f Floats<'_>) -> Matrix<'f> {
    Matrix::F32 { w: Floats::Borrowed(f), rows: 1, cols: f.len() }
}

/// The tensors of a checkpoint in bundle order, with their kinds and layers.
fn tensor_list<'m, 'a>(w: &'m Weights<'a>) -> Vec<(Kind, usize, Matrix<'m>)> {
    let mut list: Vec<(Kind, usize, Matrix<'m>)> = Vec::new();
    list.push((Kind::TokenEmbedding, 0, w.token_embedding.clone()));
    for (i, ly) in w.layers.iter().enumerate() {
        list.push((Kind::RmsAtt, i, norm_matrix(&ly.rms_att_weight)));
        for (k, m) in
            [(Kind::Wq, &ly.wq), (Kind::Wk, &ly.wk), (Kind::Wv, &ly.wv), (Kind::Wo, &ly.wo)]
        {
            list.push((k, i, m.clone()));
        }
        list.push((Kind::RmsFfn, i, norm_matrix(&ly.rms_ffn_weight)));
        for (k, m) in [(Kind::W1, &ly.w1), (Kind::W2, &ly.w2), (Kind::W3, &ly.w3)] {
            list.push((k, i, m.clone()));
        }
    }
    list.push((Kind::RmsFinal, 0, norm_matrix(&w.rms_final_weight)));
    if let Some(cls) = &w.wcls {
        list.push((Kind::Wcls, 0, cls.clone()));
    }
    list
}

/// The exact length of the bundle [`pack`] would write, without quantizing anything (the
/// planner's `--fit` search sizes every candidate with it).
pub fn packed_len(ck: &Checkpoint<'_>, tokenizer_len: usize, quant: Quant) -> Result<usize> {
    let list = tensor_list(&ck.weights);
    let mut len = align_up(HEADER_SIZE) + align_up(list.len() * ENTRY_SIZE);
    len += align_up(tokenizer_len);
    for (kind, _, m) in &list {
        let (rows, cols) = (m.rows(), m.cols());
        let parts: (usize, usize) = match (quant.precision(*kind), m) {
            (_, m) if kind.is_norm() => (m.rows() * m.cols() * 4, 0),
            (Precision::F32 | Precision::Keep, Matrix::F32 { .. }) | (Precision::F32, _) => {
                (rows * cols * 4, 0)
            }
            (Precision::Keep, Matrix::Q4(q)) => (q.q.len(), q.s.len() * 4),
            (Precision::Q4(group), _) => {
                if group == 0 || group % Q4_GROUP_UNIT != 0 {
                    return Err(Error::BadGroupSize {
                        tensor: kind.name(),
                        group_size: group,
                        row_len: cols,
                    });
                }
                let stride = q4_stride(cols, group);
                (rows * stride / 2, rows * stride / group * 4)
            }
            (Precision::Q8(None) | Precision::Keep, Matrix::Q8(q)) => {
                let stride = stride_for(cols, q.group);
                (rows * stride, rows * stride / q.group * 4)
            }
            (Precision::Q8(g), _) => {
                let group = g.unwrap_or(DEFAULT_GROUP).max(1);
                let stride = stride_for(cols, group);
                (rows * stride, rows * stride / group * 4)
            }
        };
        len += align_up(parts.0) + align_up(parts.1);
    }
    Ok(len)
}

/// Packs weights and a tokenizer into a bundle. `progress` is called with each tensor's name.
pub fn pack(
    ck: &Checkpoint<'_>,
    tokenizer: &[u8],
    quant: Quant,
    progress: &mut dyn FnMut(&'static str),
) -> Result<(Vec<u8>, Vec<PackedTensor>)> {
    let c = ck.config;
    let list = tensor_list(&ck.weights);

    let n = list.len();
    let mut out = alloc::vec![0u8; HEADER_SIZE];
    let directory_offset = push_aligned(&mut out, &alloc::vec![0u8; n * ENTRY_SIZE]);
    let tokenizer_offset = push_aligned(&mut out, tokenizer);
    let mut packed = Vec::with_capacity(n);
    for (kind, layer, m) in &list {
        progress(kind.name());
        let (rows, cols) = (m.rows(), m.cols());
        let mut entry = Entry {
            kind: *kind,
            layer: *layer as u16,
            dtype: DType::F32,
            rows: rows as u32,
            cols: cols as u32,
            stride: cols as u32,
            group: 0,
            offset: 0,
            scales_offset: 0,
        };
        let mut error = crate::quantize::QuantError::default();
        let as_f32 = |m: &Matrix<'_>| -> Vec<f32> {
            let mut v = alloc::vec![0f32; rows * cols];
            for (r, row) in v.chunks_exact_mut(cols).enumerate() {
                m.row_into(r, row);
            }
            v
        };
        match (quant.precision(*kind), m) {
            (_, m) if kind.is_norm() => {
                entry.offset = push_aligned(&mut out, &f32_bytes(&as_f32(m)))
            }
            (Precision::F32 | Precision::Keep, Matrix::F32 { w, .. }) => {
                entry.offset = push_aligned(&mut out, &f32_bytes(w))
            }
            (Precision::F32, m) => entry.offset = push_aligned(&mut out, &f32_bytes(&as_f32(m))),
            (Precision::Keep, Matrix::Q4(q)) => {
                entry.dtype = DType::Q4;
                entry.stride = q.stride as u32;
                entry.group = q.group as u32;
                entry.offset = push_aligned(&mut out, q.q);
                entry.scales_offset = push_aligned(&mut out, &f32_bytes(&q.s));
            }
            (Precision::Q4(group), m) => {
                if group == 0 || group % Q4_GROUP_UNIT != 0 || group > 1 << 16 {
                    return Err(Error::BadGroupSize {
                        tensor: kind.name(),
                        group_size: group,
                        row_len: cols,
                    });
                }
                let stride = q4_stride(cols, group);
                let src = as_f32(m);
                let mut vals = alloc::vec![0u8; rows * stride / 2];
                let mut scales = alloc::vec![0f32; rows * stride / group];
                error = crate::quantize::quantize_rows_q4(
                    &src,
                    cols,
                    stride,
                    group,
                    &mut vals,
                    &mut scales,
                );
                entry.dtype = DType::Q4;
                entry.stride = stride as u32;
                entry.group = group as u32;
                entry.offset = push_aligned(&mut out, &vals);
                entry.scales_offset = push_aligned(&mut out, &f32_bytes(&scales));
            }
            (Precision::Q8(None) | Precision::Keep, Matrix::Q8(q)) => {
                let stride = stride_for(cols, q.group);
                let (gs, gd) = (q.stride / q.group, stride / q.group);
                let mut vals = alloc::vec![0i8; rows * stride];
                let mut scales = alloc::vec![0f32; rows * gd];
                for r in 0..rows {
                    vals[r * stride..r * stride + cols]
                        .copy_from_slice(&q.q[r * q.stride..r * q.stride + cols]);
                    scales[r * gd..r * gd + gs].copy_from_slice(&q.s[r * gs..(r + 1) * gs]);
                }
                entry.dtype = DType::Q8;
                entry.stride = stride as u32;
                entry.group = q.group as u32;
                entry.offset = push_aligned(&mut out, bytemuck::cast_slice(&vals));
                entry.scales_offset = push_aligned(&mut out, &f32_bytes(&scales));
            }
            (Precision::Q8(g), m) => {
                let group = g.unwrap_or(DEFAULT_GROUP);
                if group == 0 || group > 1 << 16 {
                    return Err(Error::BadGroupSize {
                        tensor: kind.name(),
                        group_size: group,
                        row_len: cols,
                    });
                }
                let stride = stride_for(cols, group);
                let src = as_f32(m);
                let mut vals = alloc::vec![0i8; rows * stride];
                let mut scales = alloc::vec![0f32; rows * stride / group];
                error = crate::quantize::quantize_rows(
                    &src,
                    cols,
                    stride,
                    group,
                    &mut vals,
                    &mut scales,
                );
                entry.dtype = DType::Q8;
                entry.stride = stride as u32;
                entry.group = group as u32;
                entry.offset = push_aligned(&mut out, bytemuck::cast_slice(&vals));
                entry.scales_offset = push_aligned(&mut out, &f32_bytes(&scales));
            }
        }
        packed.push(PackedTensor { entry, error });
    }
    out.resize(align_up(out.len()), 0);
    for (i, p) in packed.iter().enumerate() {
        let at = directory_offset as usize + i * ENTRY_SIZE;
        out[at..at + ENTRY_SIZE].copy_from_slice(&p.entry.to_bytes());
    }
    let any_q4 = packed.iter().any(|p| p.entry.dtype == DType::Q4);
    let mut header = Header {
        version: if any_q4 { BUNDLE_VERSION } else { BUNDLE_VERSION_1 },
        config: c,
        n_tensors: n as u32,
        directory_offset,
        tokenizer_offset,
        tokenizer_len: tokenizer.len() as u64,
        file_len: out.len() as u64,
        crc32: 0,
    };
    out[..HEADER_SIZE].copy_from_slice(&header.to_bytes());
    header.crc32 = checksum(&out);
    out[..HEADER_SIZE].copy_from_slice(&header.to_bytes());
    Ok((out, packed))
}
