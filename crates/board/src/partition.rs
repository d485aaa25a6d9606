//! The ESP-IDF partition table, as the second-stage bootloader reads it (flash offset 0x8000).
//!
//! The table is a run of 32-byte entries, at most 0xC00 bytes:
//!
//! | bytes | field | meaning |
//! |---|---|---|
//! | 0..2 | magic | `0x50AA` little-endian (`AA 50`) |
//! | 2 | type | 0 = app, 1 = data |
//! | 3 | subtype | e.g. app factory 0x00; data nvs 0x02, undefined 0x06, spiffs 0x82 |
//! | 4..8 | offset | flash offset, u32 LE |
//! | 8..12 | size | bytes, u32 LE |
//! | 12..28 | label | NUL-padded ASCII |
//! | 28..32 | flags | bit 0 encrypted, bit 1 read-only |
//!
//! An entry starting `EB EB` (then 14 bytes `FF`) carries the MD5 of all entries before it in
//! its last 16 bytes; an entry of all `FF` ends the table. We look the model up by label and
//! never by a custom subtype: esp-bootloader-esp-idf's typed lookup panics on subtypes it does
//! not know, so the model partition uses a standard data subtype.

use core::fmt;

/// Where the bootloader expects the table.
pub const TABLE_OFFSET: u32 = 0x8000;
/// Largest table the bootloader reads.
pub const TABLE_MAX_LEN: usize = 0xC00;
/// One entry's size.
pub const ENTRY_LEN: usize = 32;
/// The label of our model partition.
pub const MODEL_LABEL: &str = "model";

const MAGIC: [u8; 2] = [0xAA, 0x50];
const MD5_MAGIC: [u8; 2] = [0xEB, 0xEB];

/// Partition type byte for data partitions.
pub const TYPE_DATA: u8 = 1;

/// One partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Partition {
    /// 0 app, 1 data (others are custom).
    pub kind: u8,
    /// Subtype byte.
    pub subtype: u8,
    /// Flash offset.
    pub offset: u32,
    /// Size in bytes.
    pub size: u32,
    label: [u8; 16],
    /// Flag bits.
    pub flags: u32,
}

impl Partition {
    /// The label up to its first NUL (or `?` if it is not UTF-8).
    pub fn label(&self) -> &str {
        let end = self.label.iter().position(|&b| b == 0).unwrap_or(16);
        core::str::from_utf8(&self.label[..end]).unwrap_or("?")
    }

    /// Whether the partition is flagged as encrypted.
    pub fn encrypted(&self) -> bool {
        self.flags & 1 != 0
    }
}

/// Why a table could not be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableError {
    /// An entry neither a partition, the MD5 entry nor the end marker.
    BadMagic {
        /// Entry index.
        index: usize,
        /// The two bytes found.
        found: [u8; 2],
    },
    /// The MD5 entry does not match the entries before it.
    Md5Mismatch,
    /// A partition extends past 4 GiB.
    BadRange {
        /// Entry index.
        index: usize,
    },
    /// The table has no `model` partition.
    NoModel,
    /// The `model` partition is not a data partition.
    ModelNotData {
        /// Its type byte.
        kind: u8,
    },
}

impl fmt::Display for TableError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TableError::BadMagic { index, found } => write!(
                f,
                "partition table entry {index} has magic {:02x}{:02x}, expected aa50",
                found[0], found[1]
            ),
            TableError::Md5Mismatch => write!(f, "partition table MD5 does not match its entries"),
            TableError::BadRange { index } => write!(f, "partition {index} extends past 4 GiB"),
            TableError::NoModel => {
                write!(f, "no partition labelled '{MODEL_LABEL}' in the partition table")
            }
            TableError::ModelNotData { kind } => {
                write!(f, "partition '{MODEL_LABEL}' has type {kind}, expected data (1)")
            }
        }
    }
}

/// Iterates the partitions of a table image (the bytes at 0x8000, any length; only whole
/// entries are read). Yields errors for malformed entries and stops after the first error.
pub fn entries(table: &[u8]) -> Entries<'_> {
    Entries { table, index: 0, done: false }
}

/// Iterator returned by [`entries`].
pub struct Entries<'a> {
    table: &'a [u8],
    index: usize,
    done: bool,
}

impl Iterator for Entries<'_> {
    type Item = Result<Partition, TableError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let start = self.index * ENTRY_LEN;
        let Some(e) = self.table.get(start..start + ENTRY_LEN).filter(|_| start < TABLE_MAX_LEN)
        else {
            self.done = true;
            return None;
        };
        let index = self.index;
        self.index += 1;
        let magic = [e[0], e[1]];
        if magic == MD5_MAGIC {
            self.done = true;
            let digest = md5_digest(&self.table[..start]);
            return (digest[..] != e[16..32]).then_some(Err(TableError::Md5Mismatch));
        }
        if magic == [0xFF, 0xFF] {
            self.done = true;
            return None;
        }
        if magic != MAGIC {
            self.done = true;
            return Some(Err(TableError::BadMagic { index, found: magic }));
        }
        let u32_at = |o: usize| u32::from_le_bytes([e[o], e[o + 1], e[o + 2], e[o + 3]]);
        let (offset, size) = (u32_at(4), u32_at(8));
        if offset.checked_add(size).is_none() {
            self.done = true;
            return Some(Err(TableError::BadRange { index }));
        }
        let mut label = [0u8; 16];
        label.copy_from_slice(&e[12..28]);
        Some(Ok(Partition { kind: e[2], subtype: e[3], offset, size, label, flags: u32_at(28) }))
    }
}

/// Finds the data partition labelled `label`, checking the table (and its MD5) up to there.
pub fn find(table: &[u8], label: &str) -> Result<Partition, TableError> {
    let mut found = None;
    for p in entries(table) {
        let p = p?;
        if found.is_none() && p.label() == label {
            found = Some(p);
        }
    }
    let p = found.ok_or(TableError::NoModel)?;
    if p.kind != TYPE_DATA {
        return Err(TableError::ModelNotData { kind: p.kind });
    }
    Ok(p)
}

/// Finds the `model` partition.
pub fn find_model(table: &[u8]) -> Result<Partition, TableError> {
    find(table, MODEL_LABEL)
}

/// MD5 of `data`, as the partition table's MD5 entry and espflash's flash check use it
/// (integrity only, not security). `esp-llm flash` compares the board's hash of the model with it.
pub fn md5_digest(data: &[u8]) -> [u8; 16] {
    use md5::Digest;
    md5::Md5::digest(data).into()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::vec::Vec;

    pub(crate) fn entry(kind: u8, subtype: u8, offset: u32, size: u32, label: &str) -> [u8; 32] {
        let mut e = [0u8; 32];
        e[..2].copy_from_slice(&MAGIC);
        e[2] = kind;
        e[3] = subtype;
        e[4..8].copy_from_slice(&offset.to_le_bytes());
        e[8..12].copy_from_slice(&size.to_le_bytes());
        e[12..12 + label.len()].copy_from_slice(label.as_bytes());
        e
    }

    /// A table laid out like firmware/partitions-4mb.csv, with MD5 entry and end marker.
    pub(crate) fn table(with_md5: bool) -> Vec<u8> {
        let mut t = Vec::new();
        t.extend_from_slice(&entry(1, 0x02, 0x9000, 0x6000, "nvs"));
        t.extend_from_slice(&entry(1, 0x01, 0xf000, 0x1000, "phy_init"));
        t.extend_from_slice(&entry(0, 0x00, 0x10000, 0x1f0000, "factory"));
        t.extend_from_slice(&entry(1, 0x06, 0x200000, 0x200000, "model"));
        if with_md5 {
            let d = md5_digest(&t);
            let mut m = [0xFFu8; 32];
            m[..2].copy_from_slice(&MD5_MAGIC);
            m[16..].copy_from_slice(&d);
            t.extend_from_slice(&m);
        }
        t.resize(TABLE_MAX_LEN, 0xFF);
        t
    }

    #[test]
    fn finds_model_by_label() {
        for md5 in [false, true] {
            let p = find_model(&table(md5)).unwrap();
            assert_eq!((p.kind, p.subtype, p.offset, p.size), (1, 6, 0x200000, 0x200000));
            assert_eq!(p.label(), "model");
            assert!(!p.encrypted());
        }
        let names: Vec<_> = entries(&table(true)).map(|p| p.unwrap().label().to_owned()).collect();
        assert_eq!(names, ["nvs", "phy_init", "factory", "model"]);
    }

    #[test]
    fn md5_mismatch_is_detected() {
        let mut t = table(true);
        t[3 * 32 + 8] ^= 1; // the model partition's size
        assert_eq!(find_model(&t), Err(TableError::Md5Mismatch));
    }

    #[test]
    fn missing_or_wrong_model() {
        let mut t = table(false);
        t[3 * 32 + 12..3 * 32 + 28].copy_from_slice(b"storage\0\0\0\0\0\0\0\0\0");
        assert_eq!(find_model(&t), Err(TableError::NoModel));
        let mut t = table(false);
        t[3 * 32 + 2] = 0;
        assert_eq!(find_model(&t), Err(TableError::ModelNotData { kind: 0 }));
        assert_eq!(find_model(&[0xFF; 64]), Err(TableError::NoModel));
        assert_eq!(find_model(&[]), Err(TableError::NoModel));
    }

    #[test]
    fn erased_or_garbage_table() {
        let mut t = table(false);
        t[32] = 0x12;
        assert_eq!(find_model(&t), Err(TableError::BadMagic { index: 1, found: [0x12, 0x50] }));
        let mut t = table(false);
        t[3 * 32 + 4..3 * 32 + 8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(find_model(&t), Err(TableError::BadRange { index: 3 }));
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        let mut s: u64 = 0x1234_5678_9abc_def1;
        for len in 0..600 {
            let mut t: Vec<u8> = (0..len)
                .map(|_| {
                    s ^= s << 13;
                    s ^= s >> 7;
                    s ^= s << 17;
                    s as u8
                })
                .collect();
            if len >= 2 && len % 3 == 0 {
                t[..2].copy_from_slice(&MAGIC);
            }
            let _ = find_model(&t);
            let _ = entries(&t).count();
        }
    }
}
