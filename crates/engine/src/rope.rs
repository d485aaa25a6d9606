//! RoPE's rotation angles, computed once per transformer.
//!
//! run.c computes `cos(pos * freq)` and `sin(pos * freq)` for the `head_size / 2` frequencies
//! of a head in every forward pass. The values depend only on the position, so the table here
//! holds them for every position of the context: the same `math.cosf(pos as f32 * freq)`, bit
//! for bit, computed at load. On a single-precision FPU (the ESP32-S3's) this matters: libm's
//! `cosf`/`sinf` compute in f64, in software there, about 16 k instructions per token for
//! stories260K's four angles (bench/lx7 profile), against a copy of eight floats.

use crate::error::Result;
use crate::math::Math;
use crate::state::{checked, zeros};
use alloc::vec::Vec;

/// `cos` and `sin` of `pos * freq[i]` for `pos < seq_len`, `i < head_size.div_ceil(2)`.
pub(crate) struct RopeTable {
    /// Angles per position: `head_size.div_ceil(2)`.
    n: usize,
    /// (seq_len, n): `cos(pos * freq[i])`.
    cos: Vec<f32>,
    /// (seq_len, n): `sin(pos * freq[i])`.
    sin: Vec<f32>,
}

impl RopeTable {
    /// Bytes of the table for a head of `head_size` and a context of `seq_len`.
    pub fn size(head_size: usize, seq_len: usize) -> Result<usize> {
        checked("rope", &[2, seq_len, head_size.div_ceil(2), core::mem::size_of::<f32>()])
    }

    /// The table of `math`'s `cosf`/`sinf` of run.c's frequencies ([`Math::rope_freq`]).
    pub fn new(math: Math, head_size: usize, seq_len: usize) -> Result<RopeTable> {
        let n = head_size.div_ceil(2);
        let len = checked("rope", &[seq_len, n])?;
        let (mut cos, mut sin): (Vec<f32>, Vec<f32>) = (zeros("rope", len)?, zeros("rope", len)?);
        if n > 0 {
            for (pos, (c, s)) in cos.chunks_exact_mut(n).zip(sin.chunks_exact_mut(n)).enumerate() {
                for ((c, s), f) in c.iter_mut().zip(s.iter_mut()).zip(math.rope_freq(head_size)) {
                    let val = pos as f32 * f;
                    *c = math.cosf(val);
                    *s = math.sinf(val);
                }
            }
        }
        Ok(RopeTable { n, cos, sin })
    }

    /// The cosines of position `pos` (`n` values; `pos` below the table's `seq_len`).
    pub fn cos(&self, pos: usize) -> &[f32] {
        &self.cos[pos * self.n..][..self.n]
    }

    /// The sines of position `pos`.
    pub fn sin(&self, pos: usize) -> &[f32] {
        &self.sin[pos * self.n..][..self.n]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The table holds what run.c computes per forward pass, bit for bit.
    #[test]
    fn the_table_is_the_per_position_computation() {
        for math in [Math::Portable, Math::default()] {
            let t = RopeTable::new(math, 8, 300).unwrap();
            for pos in [0usize, 1, 2, 63, 299] {
                for (i, f) in math.rope_freq(8).enumerate() {
                    let val = pos as f32 * f;
                    assert_eq!(t.cos(pos)[i].to_bits(), math.cosf(val).to_bits());
                    assert_eq!(t.sin(pos)[i].to_bits(), math.sinf(val).to_bits());
                }
            }
        }
        assert_eq!(RopeTable::size(8, 300).unwrap(), 2 * 300 * 4 * 4);
        assert!(RopeTable::size(8, usize::MAX).is_err());
    }
}
