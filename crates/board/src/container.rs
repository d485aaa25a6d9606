//! The interim model container written into the `model` partition: a llama2.c checkpoint and
//! its tokenizer in one blob, with a CRC so that a partial or missing flash is reported instead
//! of producing garbage. (The engine's aligned device bundle will replace it.)
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 8 | magic `ELLMPACK` |
//! | 8 | 4 | version, u32 LE = 1 |
//! | 12 | 4 | checkpoint length in bytes, u32 LE |
//! | 16 | 4 | tokenizer length in bytes, u32 LE |
//! | 20 | 4 | CRC-32 (IEEE) of bytes 32..total |
//! | 24 | 8 | zero |
//! | 32 | ckpt | llama2.c checkpoint (v0 fp32 or v2 int8), unchanged |
//! | align16(32 + ckpt) | tok | llama2.c `tokenizer.bin`, unchanged |
//!
//! Gaps are zero. Everything after `total = align16(32 + ckpt) + tok` is ignored (the rest of
//! the partition).

use crate::crc32::crc32;
use alloc::vec::Vec;
use core::fmt;

/// The container's first bytes.
pub const MAGIC: &[u8; 8] = b"ELLMPACK";
/// The version this code reads and writes.
pub const VERSION: u32 = 1;
/// Header size; the checkpoint starts here.
pub const HEADER_LEN: usize = 32;

/// The parsed fixed header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Checkpoint length.
    pub checkpoint_len: u32,
    /// Tokenizer length.
    pub tokenizer_len: u32,
    /// Expected CRC-32 of bytes `HEADER_LEN..total_len()`.
    pub crc: u32,
}

/// What is wrong with a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContainerError {
    /// Fewer than 32 bytes.
    TooShort,
    /// The partition holds erased flash (all 0xFF): nothing was flashed.
    Erased,
    /// The first bytes are not `ELLMPACK`.
    BadMagic,
    /// A version this firmware does not read.
    BadVersion(u32),
    /// The header's lengths overflow or exceed the space available.
    TooLarge {
        /// Bytes the header asks for.
        needed: u64,
        /// Bytes available (partition size or slice length).
        available: u64,
    },
    /// The payload's CRC differs: a partial or corrupted flash.
    Checksum {
        /// CRC in the header.
        expected: u32,
        /// CRC of the bytes.
        got: u32,
    },
}

impl fmt::Display for ContainerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ContainerError::TooShort => write!(f, "model container shorter than its 32-byte header"),
            ContainerError::Erased => write!(f, "model partition is empty (erased flash)"),
            ContainerError::BadMagic => write!(f, "model partition does not start with 'ELLMPACK'"),
            ContainerError::BadVersion(v) => write!(f, "model container version {v}, this firmware reads {VERSION}"),
            ContainerError::TooLarge { needed, available } => {
                write!(f, "model container needs {needed} bytes, only {available} available")
            }
            ContainerError::Checksum { expected, got } => write!(
                f,
                "model container CRC mismatch (header {expected:08x}, data {got:08x}): partial or corrupted flash"
            ),
        }
    }
}

fn align16(n: u64) -> u64 {
    (n + 15) & !15
}

impl Header {
    /// Parses the first 32 bytes; `available` is the partition size, to reject lengths that
    /// cannot fit before anything is read or allocated.
    pub fn parse(bytes: &[u8], available: u64) -> Result<Header, ContainerError> {
        let h = bytes.get(..HEADER_LEN).ok_or(ContainerError::TooShort)?;
        if h.iter().all(|&b| b == 0xFF) {
            return Err(ContainerError::Erased);
        }
        if &h[..8] != MAGIC {
            return Err(ContainerError::BadMagic);
        }
        let u = |o: usize| u32::from_le_bytes([h[o], h[o + 1], h[o + 2], h[o + 3]]);
        if u(8) != VERSION {
            return Err(ContainerError::BadVersion(u(8)));
        }
        let header = Header { checkpoint_len: u(12), tokenizer_len: u(16), crc: u(20) };
        let needed = header.total_len();
        if needed > available {
            return Err(ContainerError::TooLarge { needed, available });
        }
        Ok(header)
    }

    /// Offset of the tokenizer.
    pub fn tokenizer_offset(&self) -> u64 {
        align16(HEADER_LEN as u64 + u64::from(self.checkpoint_len))
    }

    /// Bytes from the start of the header to the end of the tokenizer.
    pub fn total_len(&self) -> u64 {
        self.tokenizer_offset() + u64::from(self.tokenizer_len)
    }
}

/// A verified container's two parts.
#[derive(Debug, Clone, Copy)]
pub struct Container<'a> {
    /// The llama2.c checkpoint bytes.
    pub checkpoint: &'a [u8],
    /// The tokenizer bytes.
    pub tokenizer: &'a [u8],
}

impl<'a> Container<'a> {
    /// Parses and verifies a container (trailing bytes after it are ignored).
    pub fn parse(bytes: &'a [u8]) -> Result<Self, ContainerError> {
        let h = Header::parse(bytes, bytes.len() as u64)?;
        // total_len() <= bytes.len() was checked, so these fit in usize.
        let total = h.total_len() as usize;
        let got = crc32(&bytes[HEADER_LEN..total]);
        if got != h.crc {
            return Err(ContainerError::Checksum { expected: h.crc, got });
        }
        let ckpt_end = HEADER_LEN + h.checkpoint_len as usize;
        Ok(Container {
            checkpoint: &bytes[HEADER_LEN..ckpt_end],
            tokenizer: &bytes[h.tokenizer_offset() as usize..total],
        })
    }
}

/// Builds a container (host side: the packer and the tests).
pub fn pack(checkpoint: &[u8], tokenizer: &[u8]) -> Result<Vec<u8>, ContainerError> {
    let too_large = || ContainerError::TooLarge {
        needed: (checkpoint.len() + tokenizer.len()) as u64,
        available: u32::MAX as u64,
    };
    let ckpt_len = u32::try_from(checkpoint.len()).map_err(|_| too_large())?;
    let tok_len = u32::try_from(tokenizer.len()).map_err(|_| too_large())?;
    let tok_off = align16(HEADER_LEN as u64 + u64::from(ckpt_len)) as usize;
    let mut out = Vec::with_capacity(tok_off + tokenizer.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&ckpt_len.to_le_bytes());
    out.extend_from_slice(&tok_len.to_le_bytes());
    out.extend_from_slice(&[0; 12]);
    out.extend_from_slice(checkpoint);
    out.resize(tok_off, 0);
    out.extend_from_slice(tokenizer);
    let crc = crc32(&out[HEADER_LEN..]);
    out[20..24].copy_from_slice(&crc.to_le_bytes());
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_with_trailing_erased_flash() {
        let ckpt: Vec<u8> = (0..1001u32).map(|i| (i * 7) as u8).collect();
        let tok: Vec<u8> = (0..333u32).map(|i| (i * 13) as u8).collect();
        let mut blob = pack(&ckpt, &tok).unwrap();
        assert_eq!(blob.len(), 1040 + 333); // align16(32 + 1001) = 1040
        blob.resize(8192, 0xFF);
        let c = Container::parse(&blob).unwrap();
        assert_eq!(c.checkpoint, &ckpt[..]);
        assert_eq!(c.tokenizer, &tok[..]);
        assert_eq!(c.tokenizer.as_ptr() as usize - blob.as_ptr() as usize, 1040);
    }

    #[test]
    fn every_flipped_payload_byte_is_caught() {
        let blob = pack(b"checkpoint bytes", b"tokenizer").unwrap();
        for i in HEADER_LEN..blob.len() {
            let mut b = blob.clone();
            b[i] ^= 0x40;
            assert!(
                matches!(Container::parse(&b), Err(ContainerError::Checksum { .. })),
                "byte {i}"
            );
        }
    }

    #[test]
    fn truncated_erased_and_foreign() {
        let blob = pack(b"abc", b"defg").unwrap();
        for n in 0..blob.len() {
            assert!(Container::parse(&blob[..n]).is_err(), "len {n}");
        }
        assert_eq!(Container::parse(&[0xFF; 64]).unwrap_err(), ContainerError::Erased);
        assert_eq!(Container::parse(&[0; 64]).unwrap_err(), ContainerError::BadMagic);
        let mut b = blob.clone();
        b[8] = 2;
        assert_eq!(Container::parse(&b).unwrap_err(), ContainerError::BadVersion(2));
        let mut b = blob;
        b[12..16].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(Header::parse(&b, 4 << 20), Err(ContainerError::TooLarge { .. })));
    }
}
