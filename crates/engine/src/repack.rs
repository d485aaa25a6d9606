//! f32 matrices repacked once at load time into the row-interleaved layout
//! ([`crate::kernels::interleaved`]), for kernels that stream it faster than the checkpoint's
//! rows ([`crate::kernels::Kernels::prefers_interleaved`]).
//!
//! The copy costs the f32 matrices' bytes once more (the checkpoint's pages stay mapped but are
//! no longer read, except the token embedding's rows), computed by [`Repacked::size`] before
//! anything is allocated; the zero-copy row-major layout stays the choice where memory is
//! short or the kernels do not gain from it.

use crate::error::Result;
use crate::kernels::{interleaved, Kernels};
use crate::model::{Matrix, Weights};
use crate::state::zeros;
use alloc::vec::Vec;

/// How the f32 weight matrices are laid out for the kernels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Layout {
    /// The layout the kernels run fastest ([`Kernels::prefers_interleaved`]): the default.
    #[default]
    Auto,
    /// The checkpoint's rows, read in place (zero-copy, e.g. from a memory map).
    RowMajor,
    /// Every f32 matrix the forward pass multiplies by (wq..w3 and the classifier) copied at
    /// load into blocks of 16 rows stored column by column.
    Interleaved,
}

impl Layout {
    /// The name used on command lines and in logs.
    pub fn name(self) -> &'static str {
        match self {
            Layout::Auto => "auto",
            Layout::RowMajor => "row-major",
            Layout::Interleaved => "interleaved",
        }
    }

    /// The layout a transformer over `weights` with `kernels` uses: `Auto` resolved, and
    /// row-major when there is no f32 matrix to repack (int8 models).
    pub fn resolve(self, kernels: &dyn Kernels, weights: &Weights<'_>) -> Layout {
        if packed_matrices(weights).next().is_none() {
            return Layout::RowMajor;
        }
        match self {
            Layout::Auto if kernels.prefers_interleaved() => Layout::Interleaved,
            Layout::Auto => Layout::RowMajor,
            other => other,
        }
    }
}

/// Which matrix of a layer.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Slot {
    Wq = 0,
    Wk,
    Wv,
    Wo,
    W1,
    W2,
    W3,
}

/// Matrices per layer in [`Repacked`]'s index.
const SLOTS: usize = 7;

/// The f32 matrices the forward pass multiplies by, in the order of the index: per layer wq,
/// wk, wv, wo, w1, w2, w3, then the classifier. Each is `Some((values, cols))` when f32.
fn slots<'w>(weights: &'w Weights<'_>) -> impl Iterator<Item = Option<(&'w [f32], usize)>> {
    let layers =
        weights.layers.iter().flat_map(|l| [&l.wq, &l.wk, &l.wv, &l.wo, &l.w1, &l.w2, &l.w3]);
    layers.chain(core::iter::once(weights.classifier())).map(|m| match m {
        Matrix::F32 { w, cols, .. } => Some((&w[..], *cols)),
        _ => None,
    })
}

fn packed_matrices<'w>(weights: &'w Weights<'_>) -> impl Iterator<Item = (&'w [f32], usize)> {
    slots(weights).flatten()
}

/// Floats of padding in front of the packed values, so that blocks start on 64-byte lines.
const ALIGN_FLOATS: usize = 16;

/// The repacked copies, in one allocation, with where each starts.
pub struct Repacked {
    buf: Vec<f32>,
    /// Offset into `buf` of each slot's matrix (layer * 7 + slot, then the classifier), or
    /// `usize::MAX` for a matrix that is not f32.
    start: Vec<usize>,
}

impl Repacked {
    /// Bytes [`Repacked::new`] allocates for `weights`.
    pub fn size(weights: &Weights<'_>) -> usize {
        let floats: usize = packed_matrices(weights).map(|(w, _)| w.len()).sum();
        let index = weights.layers.len() * SLOTS + 1;
        (floats + ALIGN_FLOATS) * 4 + index * core::mem::size_of::<usize>()
    }

    /// Packs every f32 matrix of `weights` (fallibly allocating [`Repacked::size`] bytes).
    pub fn new(weights: &Weights<'_>) -> Result<Repacked> {
        let floats: usize = packed_matrices(weights).map(|(w, _)| w.len()).sum();
        let mut buf: Vec<f32> = zeros("repacked weights", floats + ALIGN_FLOATS)?;
        let mut start: Vec<usize> = zeros("repacked weights", weights.layers.len() * SLOTS + 1)?;
        // The first float on a 64-byte line (the allocation is at least 4-byte aligned).
        let mut at = buf.as_ptr().align_offset(64).min(ALIGN_FLOATS);
        for (s, m) in start.iter_mut().zip(slots(weights)) {
            *s = usize::MAX;
            if let Some((w, cols)) = m {
                interleaved::pack(&mut buf[at..at + w.len()], w, cols);
                *s = at;
                at += w.len();
            }
        }
        Ok(Repacked { buf, start })
    }

    fn get(&self, i: usize, len: usize) -> Option<&[f32]> {
        let s = *self.start.get(i)?;
        self.buf.get(s..s.checked_add(len)?)
    }

    /// Layer `l`'s packed `slot` matrix (`m` is its row-major original), if f32.
    pub(crate) fn layer(&self, l: usize, slot: Slot, m: &Matrix<'_>) -> Option<&[f32]> {
        match m {
            Matrix::F32 { w, .. } => self.get(l * SLOTS + slot as usize, w.len()),
            _ => None,
        }
    }

    /// The packed classifier (`m` is its row-major original), if f32.
    pub(crate) fn classifier(&self, m: &Matrix<'_>) -> Option<&[f32]> {
        match m {
            Matrix::F32 { w, .. } => self.get(self.start.len() - 1, w.len()),
            _ => None,
        }
    }
}
