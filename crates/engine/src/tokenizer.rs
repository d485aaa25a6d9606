//! llama2.c's BPE tokenizer over the bytes of a `tokenizer.bin` file.
//!
//! File layout (little-endian): i32 `max_token_length`, then for each of the model's
//! `vocab_size` tokens: f32 merge score, i32 byte length, the piece's bytes. Pieces are C
//! strings to llama2.c (everything after a NUL byte is ignored), and so they are here.
//!
//! Encoding is run.c's `encode`: BOS, a dummy-prefix space for non-empty text, one token per
//! UTF-8 character (or its bytes as ids `byte + 3` when the character is not in the vocabulary),
//! then repeatedly merge the adjacent pair whose concatenation is in the vocabulary with the
//! highest score (first such pair on ties). Lookups use a binary search over the pieces sorted by
//! bytes, with the probing order of glibc's `bsearch`, so duplicate pieces resolve as in C.

use crate::checkpoint::reader::Reader;
use crate::error::{Error, Result};
use crate::BOS;
use alloc::vec::Vec;
use core::cmp::Ordering;

/// A tokenizer borrowing its pieces from the file bytes.
#[derive(Debug, Clone)]
pub struct Tokenizer<'a> {
    pieces: Vec<&'a [u8]>,
    scores: Vec<f32>,
    /// Token ids sorted by piece bytes (stable: equal pieces keep id order).
    sorted: Vec<u32>,
    max_token_length: usize,
}

/// The raw bytes 0..=255 as one-byte pieces, for `<0xXX>` tokens.
static BYTES: [u8; 256] = {
    let mut b = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        b[i] = i as u8;
        i += 1;
    }
    b
};

/// The part of `piece` before its first NUL byte (how C sees it).
fn c_str(piece: &[u8]) -> &[u8] {
    piece.iter().position(|&b| b == 0).map_or(piece, |n| &piece[..n])
}

impl<'a> Tokenizer<'a> {
    /// Parses a tokenizer file for a model with `vocab_size` tokens. The file must hold exactly
    /// that many pieces: a tokenizer of another model is an error, not garbage output.
    pub fn from_bytes(bytes: &'a [u8], vocab_size: usize) -> Result<Self> {
        let mut r = Reader::new(bytes);
        let max_len = r.i32("tokenizer header")?;
        if max_len <= 0 || max_len > 1 << 16 {
            return Err(Error::Tokenizer {
                reason: "max_token_length is out of range",
                offset: 0,
                value: max_len as i64,
            });
        }
        // Each piece takes at least 8 bytes: bound the reservation by the file size.
        let cap = vocab_size.min(bytes.len() / 8);
        let mut pieces = Vec::with_capacity(cap);
        let mut scores = Vec::with_capacity(cap);
        for i in 0..vocab_size {
            let at = r.pos();
            let score = r.f32("tokenizer piece").map_err(|_| Error::Tokenizer {
                reason:
                    "file ends before the model's vocab_size pieces (tokenizer of another model?)",
                offset: at,
                value: i as i64,
            })?;
            let len = r.i32("tokenizer piece").map_err(|_| Error::Tokenizer {
                reason: "file ends inside a piece",
                offset: at,
                value: i as i64,
            })?;
            if len < 0 {
                return Err(Error::Tokenizer {
                    reason: "negative piece length",
                    offset: at + 4,
                    value: len as i64,
                });
            }
            let piece = r.take("tokenizer piece", len as usize).map_err(|_| Error::Tokenizer {
                reason: "piece runs past the end of the file",
                offset: at + 8,
                value: len as i64,
            })?;
            pieces.push(c_str(piece));
            scores.push(score);
        }
        if r.pos() != bytes.len() {
            return Err(Error::Tokenizer {
                reason:
                    "file has more pieces than the model's vocab_size (tokenizer of another model?)",
                offset: r.pos(),
                value: vocab_size as i64,
            });
        }
        let mut sorted: Vec<u32> = (0..vocab_size as u32).collect();
        sorted.sort_by(|&a, &b| pieces[a as usize].cmp(pieces[b as usize]));
        Ok(Tokenizer { pieces, scores, sorted, max_token_length: max_len as usize })
    }

    /// Counts the pieces in a tokenizer file (llama2.c files do not store their vocabulary
    /// size; it comes from the model). Fails like [`Tokenizer::from_bytes`] on a damaged file.
    pub fn count_pieces(bytes: &[u8]) -> Result<usize> {
        let mut r = Reader::new(bytes);
        r.i32("tokenizer header")?;
        let mut n = 0usize;
        while r.pos() < bytes.len() {
            let at = r.pos();
            let bad = |reason| Error::Tokenizer { reason, offset: at, value: n as i64 };
            r.f32("tokenizer piece").map_err(|_| bad("file ends inside a piece"))?;
            let len = r.i32("tokenizer piece").map_err(|_| bad("file ends inside a piece"))?;
            let len = usize::try_from(len).map_err(|_| bad("negative piece length"))?;
            r.take("tokenizer piece", len)
                .map_err(|_| bad("piece runs past the end of the file"))?;
            n += 1;
        }
        Ok(n)
    }

    /// Number of pieces.
    pub fn vocab_size(&self) -> usize {
        self.pieces.len()
    }

    /// The longest piece the file declares.
    pub fn max_token_length(&self) -> usize {
        self.max_token_length
    }

    /// The raw piece of a token (as stored, up to its first NUL).
    pub fn piece(&self, token: u32) -> Option<&'a [u8]> {
        self.pieces.get(token as usize).copied()
    }

    /// glibc `bsearch` over the sorted pieces.
    fn lookup(&self, s: &[u8]) -> Option<u32> {
        let (mut l, mut u) = (0usize, self.sorted.len());
        while l < u {
            let idx = (l + u) / 2;
            let id = self.sorted[idx];
            match s.cmp(self.pieces[id as usize]) {
                Ordering::Less => u = idx,
                Ordering::Greater => l = idx + 1,
                Ordering::Equal => return Some(id),
            }
        }
        None
    }

    /// Encodes `text` as run.c's `encode(text, bos=1, eos=0)` into `tokens` (cleared first).
    /// Text after a NUL byte is ignored, as in C.
    ///
    /// A byte that is neither in a piece nor has a byte-fallback id (`byte + 3`, which only a
    /// vocabulary of fewer than 259 pieces lacks: a truncated file) is skipped here;
    /// [`Tokenizer::try_encode`] reports it instead.
    pub fn encode_into(&self, text: &[u8], tokens: &mut Vec<u32>) {
        let _ = self.encode_checked(text, tokens);
    }

    /// [`Tokenizer::encode`], or [`Error::Unencodable`] naming the first byte of `text` that
    /// the vocabulary cannot represent (no piece holds it and its byte-fallback id `byte + 3`
    /// is past the vocabulary).
    pub fn try_encode(&self, text: &[u8]) -> Result<Vec<u32>> {
        let mut v = Vec::new();
        match self.encode_checked(text, &mut v) {
            Some((offset, byte)) => {
                Err(Error::Unencodable { byte, offset, vocab_size: self.pieces.len() })
            }
            None => Ok(v),
        }
    }

    /// The encoding; returns the first byte without an id (its offset in `text`), if any.
    fn encode_checked(&self, text: &[u8], tokens: &mut Vec<u32>) -> Option<(usize, u8)> {
        let mut missing = None;
        let text = c_str(text);
        tokens.clear();
        tokens.push(BOS);
        if !text.is_empty() {
            if let Some(id) = self.lookup(b" ") {
                tokens.push(id);
            }
        }
        let mut buf: Vec<u8> = Vec::with_capacity(self.max_token_length * 2 + 3);
        for (i, &c) in text.iter().enumerate() {
            if c & 0xC0 != 0x80 {
                buf.clear();
            }
            buf.push(c);
            let next = text.get(i + 1).copied().unwrap_or(0);
            if next & 0xC0 == 0x80 && buf.len() < 4 {
                continue;
            }
            match self.lookup(&buf) {
                Some(id) => tokens.push(id),
                None => {
                    let start = i + 1 - buf.len();
                    for (j, &b) in buf.iter().enumerate() {
                        let id = b as u32 + 3;
                        if (id as usize) < self.pieces.len() {
                            tokens.push(id);
                        } else if missing.is_none() {
                            missing = Some((start + j, b));
                        }
                    }
                }
            }
            buf.clear();
        }
        loop {
            let mut best: Option<(f32, u32, usize)> = None;
            for i in 0..tokens.len().saturating_sub(1) {
                buf.clear();
                buf.extend_from_slice(self.pieces_or_empty(tokens[i]));
                buf.extend_from_slice(self.pieces_or_empty(tokens[i + 1]));
                if let Some(id) = self.lookup(&buf) {
                    let score = self.scores[id as usize];
                    if score > best.map_or(-1e10, |b| b.0) {
                        best = Some((score, id, i));
                    }
                }
            }
            let Some((_, id, idx)) = best else { break };
            tokens[idx] = id;
            tokens.remove(idx + 1);
        }
        missing
    }

    fn pieces_or_empty(&self, token: u32) -> &'a [u8] {
        self.piece(token).unwrap_or(&[])
    }

    /// Encodes into a new vector.
    pub fn encode(&self, text: &[u8]) -> Vec<u32> {
        let mut v = Vec::new();
        self.encode_into(text, &mut v);
        v
    }

    /// run.c's `decode(prev, token)` followed by its `safe_printf` filter: the bytes to print
    /// for `token` after `prev`. A leading space is dropped after BOS, `<0xXX>` becomes the raw
    /// byte, and a lone byte that is neither printable nor whitespace prints nothing.
    pub fn decode(&self, prev: u32, token: u32) -> &'a [u8] {
        let mut piece = self.pieces_or_empty(token);
        if prev == BOS && piece.first() == Some(&b' ') {
            piece = &piece[1..];
        }
        if let Some(b) = parse_byte_piece(piece) {
            piece = core::slice::from_ref(&BYTES[b as usize]);
            // run.c's byte piece for 0x00 is the empty C string.
            if b == 0 {
                piece = &[];
            }
        }
        if piece.len() == 1 {
            let b = piece[0];
            let printable = (0x20..0x7f).contains(&b);
            let space = b == b' ' || (0x09..=0x0d).contains(&b);
            if !(printable || space) {
                return &[];
            }
        }
        piece
    }
}

/// `sscanf(piece, "<0x%02hhX>", &byte) == 1`: `<0x` followed by one or two hex digits.
fn parse_byte_piece(piece: &[u8]) -> Option<u8> {
    let rest = piece.strip_prefix(b"<0x")?;
    let hex = |c: u8| (c as char).to_digit(16);
    let d0 = hex(*rest.first()?)?;
    Some(match rest.get(1).and_then(|&c| hex(c)) {
        Some(d1) => (d0 * 16 + d1) as u8,
        None => d0 as u8,
    })
}
