//! A bounds-checked cursor over a byte slice: every read names the section it belongs to, so a
//! short file reports which part is missing.

use crate::error::{Error, Result};

/// Cursor over little-endian data.
pub struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// Starts at offset 0.
    pub fn new(bytes: &'a [u8]) -> Self {
        Reader { bytes, pos: 0 }
    }

    /// Current offset.
    pub fn pos(&self) -> usize {
        self.pos
    }

    /// Takes the next `n` bytes.
    pub fn take(&mut self, section: &'static str, n: usize) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n).ok_or(Error::Overflow { what: section })?;
        let out = self.bytes.get(self.pos..end).ok_or(Error::Truncated {
            section,
            offset: self.pos,
            need: n,
            len: self.bytes.len(),
        })?;
        self.pos = end;
        Ok(out)
    }

    /// Moves to an absolute offset, which must lie within the data.
    pub fn seek(&mut self, section: &'static str, to: usize) -> Result<()> {
        if to > self.bytes.len() {
            return Err(Error::Truncated {
                section,
                offset: self.pos,
                need: to.saturating_sub(self.pos),
                len: self.bytes.len(),
            });
        }
        self.pos = to;
        Ok(())
    }

    fn array<const N: usize>(&mut self, section: &'static str) -> Result<[u8; N]> {
        let b = self.take(section, N)?;
        let mut a = [0u8; N];
        a.copy_from_slice(b);
        Ok(a)
    }

    /// Reads a u8.
    pub fn u8(&mut self, section: &'static str) -> Result<u8> {
        Ok(self.array::<1>(section)?[0])
    }

    /// Reads a little-endian u32.
    pub fn u32(&mut self, section: &'static str) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array(section)?))
    }

    /// Reads a little-endian i32.
    pub fn i32(&mut self, section: &'static str) -> Result<i32> {
        Ok(i32::from_le_bytes(self.array(section)?))
    }

    /// Reads a little-endian f32.
    pub fn f32(&mut self, section: &'static str) -> Result<f32> {
        Ok(f32::from_le_bytes(self.array(section)?))
    }

    /// Reads a u32 without advancing.
    pub fn peek_u32(&self, section: &'static str) -> Result<u32> {
        let mut copy = Reader { bytes: self.bytes, pos: self.pos };
        copy.u32(section)
    }

    /// Fails unless every byte has been consumed.
    pub fn finish(&self) -> Result<()> {
        if self.pos != self.bytes.len() {
            return Err(Error::TrailingBytes { expected: self.pos, len: self.bytes.len() });
        }
        Ok(())
    }
}
