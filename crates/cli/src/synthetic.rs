//! Deterministic random-weight llama2.c v0 checkpoints, for benchmarks and the boards table at
//! sizes whose real weights are not at hand (`esp-llm synth` writes them to a file).
//!
//! Layout (llama2.c legacy v0): 7 little-endian int32 (dim, hidden_dim, n_layers, n_heads,
//! n_kv_heads, vocab_size positive = shared classifier, seq_len), then f32 tensors in the order
//! token_embedding, rms_att, wq, wk, wv, wo, rms_ffn, w1, w2, w3, rms_final, freq_cis_real,
//! freq_cis_imag. Matrices are N(0, 0.02) from a seeded SplitMix64 + Box-Muller generator
//! (same seed, same file, on every machine); norms are 1.0 and the legacy RoPE tables 0.0.
//! The values are not numpy's (the golden README's synth files used numpy's PCG64); the shapes
//! and the distribution are the same.

use anyhow::{bail, Context, Result};
use esp_llm_engine::Config;
use std::io::Write;

/// The named shapes (llama2.c's tinyllamas models).
pub const SHAPES: [(&str, [usize; 7]); 4] = [
    ("stories260K", [64, 172, 5, 8, 4, 512, 512]),
    ("stories15M", [288, 768, 6, 6, 6, 32000, 256]),
    ("stories42M", [512, 1376, 8, 8, 8, 32000, 1024]),
    ("stories110M", [768, 2048, 12, 12, 12, 32000, 1024]),
];

/// Parses a shape name or `DIMxHIDDENxLAYERSxHEADSxKVxVOCABxSEQ` into a validated config.
pub fn parse_shape(s: &str) -> Result<Config> {
    let v = if let Some((_, v)) = SHAPES.iter().find(|(n, _)| n.eq_ignore_ascii_case(s)) {
        *v
    } else {
        let parts: Vec<&str> = s.split(['x', 'X']).collect();
        if parts.len() != 7 {
            bail!(
                "shape '{s}' is neither a known name ({}) nor DIMxHIDDENxLAYERSxHEADSxKVxVOCABxSEQ",
                SHAPES.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
            );
        }
        let mut v = [0usize; 7];
        for (o, p) in v.iter_mut().zip(&parts) {
            *o = p.trim().parse().with_context(|| format!("shape '{s}': '{p}' is not a number"))?;
        }
        v
    };
    let c = Config {
        dim: v[0],
        hidden_dim: v[1],
        n_layers: v[2],
        n_heads: v[3],
        n_kv_heads: v[4],
        vocab_size: v[5],
        seq_len: v[6],
        shared_classifier: true,
    };
    c.validate().with_context(|| format!("shape '{s}'"))?;
    if v.iter().any(|&x| x > i32::MAX as usize) {
        bail!("shape '{s}': a dimension does not fit the file's int32 header");
    }
    Ok(c)
}

/// SplitMix64: a tiny, well-mixed, seedable generator.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in (0, 1].
    fn unit(&mut self) -> f64 {
        ((self.next_u64() >> 11) + 1) as f64 / (1u64 << 53) as f64
    }

    /// Two independent N(0, 1) draws (Box-Muller).
    pub fn normal_pair(&mut self) -> (f64, f64) {
        let (u1, u2) = (self.unit(), self.unit());
        let r = (-2.0 * u1.ln()).sqrt();
        let t = std::f64::consts::TAU * u2;
        (r * t.cos(), r * t.sin())
    }
}

/// Total bytes of the v0 file for `c`.
pub fn file_bytes(c: &Config) -> u64 {
    28 + 4 * tensors(c).iter().map(|(_, n, _)| *n as u64).sum::<u64>()
}

/// (name, float count, random?) in v0 order.
fn tensors(c: &Config) -> Vec<(&'static str, usize, bool)> {
    let (d, h, l, v, kv) = (c.dim, c.hidden_dim, c.n_layers, c.vocab_size, c.kv_dim());
    let rope = c.seq_len * c.head_size() / 2;
    vec![
        ("token_embedding", v * d, true),
        ("rms_att", l * d, false),
        ("wq", l * d * d, true),
        ("wk", l * kv * d, true),
        ("wv", l * kv * d, true),
        ("wo", l * d * d, true),
        ("rms_ffn", l * d, false),
        ("w1", l * h * d, true),
        ("w2", l * d * h, true),
        ("w3", l * h * d, true),
        ("rms_final", d, false),
        ("freq_cis_real", rope, false),
        ("freq_cis_imag", rope, false),
    ]
}

/// Writes the v0 file for `c` with weights from `seed` to `out`, calling `progress(bytes)`.
pub fn write_v0<W: Write>(
    c: &Config,
    seed: u64,
    out: &mut W,
    progress: &mut dyn FnMut(u64),
) -> Result<()> {
    let header =
        [c.dim, c.hidden_dim, c.n_layers, c.n_heads, c.n_kv_heads, c.vocab_size, c.seq_len];
    for v in header {
        out.write_all(&(v as i32).to_le_bytes())?;
    }
    progress(28);
    let mut rng = Rng::new(seed);
    let mut buf = Vec::with_capacity(1 << 16);
    for (name, n, random) in tensors(c) {
        let fill = if name.starts_with("rms") { 1.0f32 } else { 0.0 };
        let mut left = n;
        while left > 0 {
            let k = left.min(1 << 14);
            buf.clear();
            if random {
                while buf.len() < 4 * k {
                    let (a, b) = rng.normal_pair();
                    buf.extend_from_slice(&((a * 0.02) as f32).to_le_bytes());
                    if buf.len() < 4 * k {
                        buf.extend_from_slice(&((b * 0.02) as f32).to_le_bytes());
                    }
                }
            } else {
                for _ in 0..k {
                    buf.extend_from_slice(&fill.to_le_bytes());
                }
            }
            out.write_all(&buf)?;
            progress(buf.len() as u64);
            left -= k;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_parse_and_sizes_match_llama2c() {
        let c = parse_shape("stories15M").unwrap();
        // The golden README's synth15M v0 file is 60816028 bytes.
        assert_eq!(file_bytes(&c), 60816028);
        assert_eq!(file_bytes(&parse_shape("stories42M").unwrap()), 167020572);
        assert_eq!(parse_shape("288x768x6x6x6x32000x256").unwrap(), c);
        assert!(parse_shape("288x768x6").is_err());
        assert!(parse_shape("288x768x6x7x6x32000x256").is_err());
        assert!(parse_shape("0x768x6x6x6x32000x256").is_err());
    }

    #[test]
    fn same_seed_same_bytes_other_seed_other_bytes() {
        let c = parse_shape("16x24x2x2x1x40x8").unwrap();
        let gen = |seed| {
            let mut v = Vec::new();
            write_v0(&c, seed, &mut v, &mut |_| {}).unwrap();
            v
        };
        let a = gen(7);
        assert_eq!(a.len() as u64, file_bytes(&c));
        assert_eq!(a, gen(7));
        assert_ne!(a, gen(8));
        let ck = esp_llm_engine::Checkpoint::parse(&a).unwrap();
        assert_eq!(ck.config, c);
    }

    #[test]
    fn weights_look_like_n_0_002() {
        let mut r = Rng::new(1);
        let xs: Vec<f64> = (0..20000).flat_map(|_| <[f64; 2]>::from(r.normal_pair())).collect();
        let mean = xs.iter().sum::<f64>() / xs.len() as f64;
        let var = xs.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / xs.len() as f64;
        assert!(mean.abs() < 0.02, "{mean}");
        assert!((var - 1.0).abs() < 0.03, "{var}");
    }
}
