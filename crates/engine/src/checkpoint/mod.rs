//! Parsing llama2.c checkpoints zero-copy from a byte slice.
//!
//! Three layouts are read (all little-endian):
//! - **v0** (legacy `run.c` files): 7 × i32 header (`dim, hidden_dim, n_layers, n_heads,
//!   n_kv_heads, vocab_size, seq_len`; a negative `vocab_size` means the classifier is not shared),
//!   then f32 `token_embedding, rms_att, wq, wk, wv, wo, rms_ffn, w1, w2, w3, rms_final`, two
//!   legacy RoPE tables of `seq_len * head_size / 2` floats (skipped) and `wcls` if not shared.
//! - **v1** (`export.py --version 1`): a 256-byte header (u32 magic `0x616b3432` "ak42", i32
//!   version, the 7 i32 fields, u8 shared-classifier flag at byte 36), then f32 `rms_att` (all
//!   layers), `rms_ffn`, `rms_final`, `token_embedding`, `wq`..`w3`, `wcls` if not shared.
//! - **v2** (Q8_0, `runq.c`): the v1 header plus an i32 group size at byte 37; f32 `rms_att`,
//!   `rms_ffn`, `rms_final`; then for the embedding and each layer's `wq`..`w3` (and `wcls` if not
//!   shared): the int8 values followed by one f32 scale per group. Floats after int8 arrays can be
//!   misaligned, so they are read by bytes (and copied) rather than cast.
//!
//! Every size is computed with checked arithmetic from the header before anything is sliced, and
//! the sections must cover the data exactly: a short or long file is an error naming the section.

pub mod bundle;
pub mod reader;

use crate::error::{Error, Result};
use crate::model::{Config, Floats, Layer, Matrix, Weights, MAX_DIM};
use alloc::vec::Vec;
use reader::Reader;

/// Magic number of versioned llama2.c checkpoints: "ak42" read as a little-endian u32.
pub const LLAMA2C_MAGIC: u32 = 0x616b_3432;

/// Which file layout a checkpoint came from (more may be added).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Format {
    /// llama2.c legacy fp32 (`run.c`).
    V0,
    /// llama2.c version 1, fp32.
    V1,
    /// llama2.c version 2, int8 Q8_0 with one global group size (`runq.c`).
    V2 {
        /// Values per scale.
        group_size: usize,
    },
    /// esp-llm's device bundle (docs/bundle.md): aligned tensors, per-tensor int8 groups,
    /// tokenizer included, CRC-32; version 2 adds int4 tensors.
    Bundle {
        /// Bundle format version (1 or 2).
        version: u16,
    },
}

impl core::fmt::Display for Format {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Format::V0 => f.write_str("llama2.c v0 (legacy fp32)"),
            Format::V1 => f.write_str("llama2.c v1 (fp32)"),
            Format::V2 { group_size } => {
                write!(f, "llama2.c v2 (int8 Q8_0, group size {group_size})")
            }
            Format::Bundle { version } => write!(f, "esp-llm bundle v{version}"),
        }
    }
}

/// A parsed checkpoint: its config and weights borrowed from the input bytes.
#[derive(Debug, Clone)]
pub struct Checkpoint<'a> {
    /// The model's shape.
    pub config: Config,
    /// The layout the bytes were in.
    pub format: Format,
    /// Weight views.
    pub weights: Weights<'a>,
}

impl<'a> Checkpoint<'a> {
    /// Parses any supported checkpoint layout.
    pub fn parse(bytes: &'a [u8]) -> Result<Self> {
        let r = Reader::new(bytes);
        let magic = r.peek_u32("header")?;
        if bundle::is_bundle(bytes) {
            bundle::Bundle::parse(bytes).map(|b| b.checkpoint)
        } else if magic == LLAMA2C_MAGIC {
            parse_versioned(r)
        } else {
            parse_v0(r)
        }
    }
}

/// Converts a header i32 into a dimension, naming the field when it is not positive.
fn dim_field(field: &'static str, value: i32) -> Result<usize> {
    if value <= 0 {
        return Err(Error::BadConfig { field, value: value as i64, reason: "must be positive" });
    }
    Ok(value as usize)
}

/// Reads the 7 header fields. Returns the config with `shared_classifier` from the sign of
/// `vocab_size` (the v0 convention); versioned files override it with their flag.
fn read_dims(r: &mut Reader<'_>, negative_vocab_ok: bool) -> Result<Config> {
    let mut f = [0i32; 7];
    for v in f.iter_mut() {
        *v = r.i32("header")?;
    }
    let shared = f[5] > 0;
    let vocab = if negative_vocab_ok && f[5] < 0 { f[5].checked_neg().unwrap_or(0) } else { f[5] };
    let config = Config {
        dim: dim_field("dim", f[0])?,
        hidden_dim: dim_field("hidden_dim", f[1])?,
        n_layers: dim_field("n_layers", f[2])?,
        n_heads: dim_field("n_heads", f[3])?,
        n_kv_heads: dim_field("n_kv_heads", f[4])?,
        vocab_size: dim_field("vocab_size", vocab)?,
        seq_len: dim_field("seq_len", f[6])?,
        shared_classifier: shared,
    };
    config.validate()?;
    Ok(config)
}

fn mul(what: &'static str, a: usize, b: usize) -> Result<usize> {
    a.checked_mul(b).ok_or(Error::Overflow { what })
}

/// Splits the bytes of a per-layer f32 section into one [`Floats`] per layer.
fn per_layer_floats(bytes: &[u8], n_layers: usize) -> Vec<Floats<'_>> {
    let each = bytes.len() / n_layers;
    bytes.chunks_exact(each).map(Floats::from_le_bytes).collect()
}

/// Reads `n_layers` f32 matrices of `(rows, cols)` stored one after the other.
fn f32_layers<'a>(
    r: &mut Reader<'a>,
    section: &'static str,
    n_layers: usize,
    (rows, cols): (usize, usize),
) -> Result<Vec<Matrix<'a>>> {
    let per = mul(section, mul(section, rows, cols)?, 4)?;
    let bytes = r.take(section, mul(section, per, n_layers)?)?;
    bytes.chunks_exact(per).map(|b| Matrix::f32(Floats::from_le_bytes(b), rows, cols)).collect()
}

/// Reads one f32 matrix.
fn f32_matrix<'a>(
    r: &mut Reader<'a>,
    section: &'static str,
    (rows, cols): (usize, usize),
) -> Result<Matrix<'a>> {
    let mut v = f32_layers(r, section, 1, (rows, cols))?;
    v.pop().ok_or(Error::Overflow { what: section })
}

/// The matrix shapes of one layer, in the order wq, wk, wv, wo, w1, w2, w3.
fn layer_shapes(c: &Config) -> [(&'static str, (usize, usize)); 7] {
    let (d, h, kv) = (c.dim, c.hidden_dim, c.kv_dim());
    [
        ("wq", (d, d)),
        ("wk", (kv, d)),
        ("wv", (kv, d)),
        ("wo", (d, d)),
        ("w1", (h, d)),
        ("w2", (d, h)),
        ("w3", (h, d)),
    ]
}

/// Assembles per-layer weights from per-tensor vectors (each `n_layers` long).
fn assemble<'a>(
    rms_att: Vec<Floats<'a>>,
    rms_ffn: Vec<Floats<'a>>,
    mut mats: [Vec<Matrix<'a>>; 7],
) -> Vec<Layer<'a>> {
    let [wq, wk, wv, wo, w1, w2, w3] = core::array::from_fn(|i| core::mem::take(&mut mats[i]));
    let it = rms_att.into_iter().zip(rms_ffn);
    let it = it.zip(wq).zip(wk).zip(wv).zip(wo).zip(w1).zip(w2).zip(w3);
    it.map(|((((((((ra, rf), wq), wk), wv), wo), w1), w2), w3)| Layer {
        rms_att_weight: ra,
        wq,
        wk,
        wv,
        wo,
        rms_ffn_weight: rf,
        w1,
        w2,
        w3,
    })
    .collect()
}

fn parse_v0(mut r: Reader<'_>) -> Result<Checkpoint<'_>> {
    let first_bytes = r.peek_u32("header")?;
    // A v0 file has no magic: a header that makes no sense means "not a model file" more
    // often than "a damaged model", so say both.
    let c = read_dims(&mut r, true).map_err(|e| match e {
        // Out-of-range values suggest another kind of file; inconsistent ones a bad model.
        Error::BadConfig { field, value, reason } if value <= 0 || value as usize > MAX_DIM => {
            Error::UnknownFormat { first_bytes, field, value, reason }
        }
        e => e,
    })?;
    let (d, l, v) = (c.dim, c.n_layers, c.vocab_size);
    let token_embedding = f32_matrix(&mut r, "token_embedding", (v, d))?;
    let rms_att = r.take("rms_att_weight", mul("rms_att_weight", mul("rms", l, d)?, 4)?)?;
    let shapes = layer_shapes(&c);
    let mut mats: [Vec<Matrix<'_>>; 7] = Default::default();
    for (i, (name, shape)) in shapes.iter().enumerate().take(4) {
        mats[i] = f32_layers(&mut r, name, l, *shape)?;
    }
    let rms_ffn = r.take("rms_ffn_weight", mul("rms_ffn_weight", mul("rms", l, d)?, 4)?)?;
    for (i, (name, shape)) in shapes.iter().enumerate().skip(4) {
        mats[i] = f32_layers(&mut r, name, l, *shape)?;
    }
    let rms_final = Floats::from_le_bytes(r.take("rms_final_weight", mul("rms", d, 4)?)?);
    let rope = mul("freq_cis", mul("freq_cis", c.seq_len, c.head_size() / 2)?, 4)?;
    r.take("freq_cis_real", rope)?;
    r.take("freq_cis_imag", rope)?;
    let wcls = if c.shared_classifier { None } else { Some(f32_matrix(&mut r, "wcls", (v, d))?) };
    r.finish()?;
    Ok(Checkpoint {
        config: c,
        format: Format::V0,
        weights: Weights {
            token_embedding,
            layers: assemble(per_layer_floats(rms_att, l), per_layer_floats(rms_ffn, l), mats),
            rms_final_weight: rms_final,
            wcls,
        },
    })
}

/// Size of the v1/v2 header.
pub const VERSIONED_HEADER: usize = 256;

fn parse_versioned(mut r: Reader<'_>) -> Result<Checkpoint<'_>> {
    r.u32("header")?; // magic, checked by the caller
    let version = r.i32("header")?;
    if version != 1 && version != 2 {
        return Err(Error::UnsupportedVersion {
            format: "llama2.c checkpoint",
            version: version as i64,
        });
    }
    let mut c = read_dims(&mut r, false)?;
    let flag = r.u8("header")?;
    if flag > 1 {
        return Err(Error::BadConfig {
            field: "shared_classifier",
            value: flag as i64,
            reason: "must be 0 or 1",
        });
    }
    c.shared_classifier = flag == 1;
    let group = if version == 2 { Some(r.i32("header")?) } else { None };
    r.seek("header", VERSIONED_HEADER)?;
    let (d, l, v) = (c.dim, c.n_layers, c.vocab_size);
    let rms_bytes = mul("rms", mul("rms", l, d)?, 4)?;
    let rms_att = per_layer_floats(r.take("rms_att_weight", rms_bytes)?, l);
    let rms_ffn = per_layer_floats(r.take("rms_ffn_weight", rms_bytes)?, l);
    let rms_final = Floats::from_le_bytes(r.take("rms_final_weight", mul("rms", d, 4)?)?);
    let shapes = layer_shapes(&c);
    let mut mats: [Vec<Matrix<'_>>; 7] = Default::default();
    let (format, token_embedding, wcls) = match group {
        None => {
            let emb = f32_matrix(&mut r, "token_embedding", (v, d))?;
            for (i, (name, shape)) in shapes.iter().enumerate() {
                mats[i] = f32_layers(&mut r, name, l, *shape)?;
            }
            let wcls =
                if c.shared_classifier { None } else { Some(f32_matrix(&mut r, "wcls", (v, d))?) };
            (Format::V1, emb, wcls)
        }
        Some(gs) => {
            if gs <= 0 {
                return Err(Error::BadConfig {
                    field: "group_size",
                    value: gs as i64,
                    reason: "must be positive",
                });
            }
            let gs = gs as usize;
            for (tensor, len) in
                [("rows of length dim", d), ("w2 (rows of length hidden_dim)", c.hidden_dim)]
            {
                if len % gs != 0 {
                    return Err(Error::BadGroupSize { tensor, group_size: gs, row_len: len });
                }
            }
            let emb = q8_matrix(&mut r, "token_embedding", (v, d), gs)?;
            for (i, (name, shape)) in shapes.iter().enumerate() {
                let mut layers = Vec::with_capacity(l);
                for _ in 0..l {
                    layers.push(q8_matrix(&mut r, name, *shape, gs)?);
                }
                mats[i] = layers;
            }
            let wcls = if c.shared_classifier {
                None
            } else {
                Some(q8_matrix(&mut r, "wcls", (v, d), gs)?)
            };
            (Format::V2 { group_size: gs }, emb, wcls)
        }
    };
    r.finish()?;
    Ok(Checkpoint {
        config: c,
        format,
        weights: Weights {
            token_embedding,
            layers: assemble(rms_att, rms_ffn, mats),
            rms_final_weight: rms_final,
            wcls,
        },
    })
}

/// Reads one v2 tensor: int8 values, then one f32 scale per group.
fn q8_matrix<'a>(
    r: &mut Reader<'a>,
    section: &'static str,
    (rows, cols): (usize, usize),
    group: usize,
) -> Result<Matrix<'a>> {
    let n = mul(section, rows, cols)?;
    let q: &'a [i8] = bytemuck::cast_slice(r.take(section, n)?);
    let s = Floats::from_le_bytes(r.take(section, mul(section, n / group, 4)?)?);
    Matrix::q8(section, q, s, (rows, cols, cols), group)
}
