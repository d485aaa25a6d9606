//! What is in the `model` partition, judged from its first bytes before anything large is read
//! or allocated: erased flash, something that is not a bundle, or a bundle whose length does
//! not fit the partition. The bundle itself (header, CRC-32, tensors) is then checked by the
//! engine (`esp_llm_engine::checkpoint::bundle::{verify, Bundle::parse}`).
//!
//! Bundle facts used here (docs/bundle.md): magic `ELLB` at 0, a 128-byte header, the file's
//! total length as u64 LE at bytes 72..80.

use core::fmt;
use esp_llm_engine::checkpoint::bundle::{is_bundle, HEADER_SIZE};

/// Where the bundle header keeps the file length.
const FILE_LEN_AT: usize = 72;

/// Why the partition does not hold a usable bundle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeError {
    /// Fewer than 128 bytes were given (a partition smaller than a header).
    TooShort {
        /// Bytes available.
        got: usize,
    },
    /// All 0xFF: nothing was flashed.
    Erased,
    /// Does not start with `ELLB`.
    NotBundle {
        /// The first four bytes.
        magic: [u8; 4],
    },
    /// The header's file length is impossible for this partition.
    BadLength {
        /// Length in the header.
        file_len: u64,
        /// Partition size.
        partition: u64,
    },
}

impl fmt::Display for ProbeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProbeError::TooShort { got } => {
                write!(f, "model partition too small for a bundle header ({got} of {HEADER_SIZE} bytes)")
            }
            ProbeError::Erased => write!(f, "model partition is empty (erased flash)"),
            ProbeError::NotBundle { magic } => write!(
                f,
                "model partition does not hold a bundle (starts {:02x} {:02x} {:02x} {:02x}, expected 'ELLB')",
                magic[0], magic[1], magic[2], magic[3]
            ),
            ProbeError::BadLength { file_len, partition } => write!(
                f,
                "bundle header says {file_len} bytes but the partition holds {partition}: \
                 wrong or partially written header"
            ),
        }
    }
}

/// Checks the first bytes of the partition (at least 128) and returns the bundle's length.
pub fn probe(head: &[u8], partition_size: u64) -> Result<usize, ProbeError> {
    let Some(h) = head.get(..HEADER_SIZE) else {
        return Err(ProbeError::TooShort { got: head.len() });
    };
    if h.iter().all(|&b| b == 0xFF) {
        return Err(ProbeError::Erased);
    }
    if !is_bundle(h) {
        return Err(ProbeError::NotBundle { magic: [h[0], h[1], h[2], h[3]] });
    }
    let mut len = [0u8; 8];
    len.copy_from_slice(&h[FILE_LEN_AT..FILE_LEN_AT + 8]);
    let file_len = u64::from_le_bytes(len);
    if file_len < HEADER_SIZE as u64 || file_len > partition_size {
        return Err(ProbeError::BadLength { file_len, partition: partition_size });
    }
    usize::try_from(file_len)
        .map_err(|_| ProbeError::BadLength { file_len, partition: partition_size })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use esp_llm_engine::checkpoint::bundle::{self, Bundle, Quant};
    use esp_llm_engine::Checkpoint;
    use std::vec::Vec;

    /// A real bundle of a fixture model, packed by the engine.
    pub(crate) fn bundle_of(name: &str, quant: Quant) -> Vec<u8> {
        let ckpt = esp_llm_fixtures::model_bytes(name);
        let tok = esp_llm_fixtures::model_bytes("tok512.bin");
        let parsed = Checkpoint::parse(&ckpt).unwrap();
        bundle::pack(&parsed, &tok, quant, &mut |_| {}).unwrap().0
    }

    #[test]
    fn probe_finds_the_length_of_a_real_bundle() {
        let b = bundle_of("stories260K.bin", Quant::Q8(None));
        let mut partition = b.clone();
        partition.resize(b.len() + 70_000, 0xFF); // the rest of the partition is erased
        let n = probe(&partition[..256], partition.len() as u64).unwrap();
        assert_eq!(n, b.len());
        bundle::verify(&partition[..n]).unwrap();
        Bundle::parse(&partition[..n]).unwrap();
        // A partition smaller than the bundle.
        assert_eq!(
            probe(&b, b.len() as u64 - 1),
            Err(ProbeError::BadLength { file_len: b.len() as u64, partition: b.len() as u64 - 1 })
        );
    }

    #[test]
    fn erased_foreign_short_and_garbage() {
        assert_eq!(probe(&[0xFF; 128], 1 << 20), Err(ProbeError::Erased));
        assert_eq!(probe(&[0xFF; 100], 1 << 20), Err(ProbeError::TooShort { got: 100 }));
        let mut llama = [0u8; 128];
        llama[..4].copy_from_slice(&0x616b_3432u32.to_le_bytes()); // a raw llama2.c v1/v2 file
        assert_eq!(probe(&llama, 1 << 20), Err(ProbeError::NotBundle { magic: *b"24ka" }));
        let mut h = [0u8; 128];
        h[..4].copy_from_slice(b"ELLB");
        assert!(matches!(probe(&h, 1 << 20), Err(ProbeError::BadLength { file_len: 0, .. })));
        h[72..80].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(matches!(probe(&h, 1 << 20), Err(ProbeError::BadLength { .. })));
        // Messages name the problem.
        let msg = std::format!("{}", probe(&llama, 1 << 20).unwrap_err());
        assert!(msg.contains("ELLB"), "{msg}");
    }
}
