//! The model partition: find it in the partition table, check the bundle's first bytes, then
//! copy the bundle into RAM (internal SRAM when it fits with room to spare, else PSRAM) or,
//! where neither holds it, read it in place through the flash MMU (`flashmap`). The engine then
//! verifies the CRC-32 and parses the tensors without copying them.
//!
//! Flash is read through esp-storage's ROM-backed reads, before the second core starts (flash
//! operations and a running second core do not mix on dual-core chips).

use alloc::format;
use alloc::string::String;
use core::alloc::Layout;
use esp_llm_board::model::probe;
use esp_llm_board::partition::{self, Partition, TABLE_MAX_LEN, TABLE_OFFSET};
use esp_llm_board::plan::{place_weights, Region};
use esp_llm_engine::checkpoint::bundle::{self, Bundle, ALIGN, HEADER_SIZE};
use esp_storage::FlashStorage;

/// Internal SRAM to keep free for the run state, stacks and the REPL when choosing where the
/// model goes.
pub const INTERNAL_RESERVE: usize = 96 * 1024;

/// Where the bundle's bytes are read from while generating.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    Internal,
    #[cfg(feature = "flash-map")]
    Flash,
    #[cfg(feature = "psram")]
    Psram,
}

impl Place {
    pub fn name(&self) -> &'static str {
        match self {
            Place::Internal => "internal SRAM",
            #[cfg(feature = "flash-map")]
            Place::Flash => "flash (mapped, read in place)",
            #[cfg(feature = "psram")]
            Place::Psram => "PSRAM",
        }
    }
}

pub struct Loaded {
    pub partition: Partition,
    pub bundle: Bundle<'static>,
    pub place: Place,
    pub bytes: usize,
}

/// Finds `model`, reads and verifies the bundle. Errors are messages for the user.
pub fn load(flash: &mut FlashStorage<'_>) -> Result<Loaded, String> {
    let mut table = [0u8; TABLE_MAX_LEN];
    flash
        .read(TABLE_OFFSET, &mut table)
        .map_err(|e| format!("cannot read the partition table: {e:?}"))?;
    let part = partition::find_model(&table).map_err(|e| format!("{e}"))?;
    let mut head = [0u8; HEADER_SIZE];
    flash
        .read(part.offset, &mut head)
        .map_err(|e| format!("cannot read the model partition: {e:?}"))?;
    let len = probe(&head, u64::from(part.size)).map_err(|e| format!("{e}"))?;
    let (bytes, place): (&'static [u8], Place) = match alloc_model(len) {
        Some((buf, place)) => {
            flash
                .read(part.offset, buf)
                .map_err(|e| format!("cannot read the model partition: {e:?}"))?;
            (buf, place)
        }
        #[cfg(feature = "flash-map")]
        None => (crate::flashmap::map(part.offset, len)?, Place::Flash),
        #[cfg(not(feature = "flash-map"))]
        None => {
            return Err(format!(
                "the model needs {len} bytes of RAM, {} bytes are free",
                esp_alloc::HEAP.free()
            ))
        }
    };
    bundle::verify(bytes).map_err(|e| format!("bundle: {e}"))?;
    let bundle = Bundle::parse(bytes).map_err(|e| format!("bundle: {e}"))?;
    Ok(Loaded { partition: part, bundle, place, bytes: len })
}

/// A 16-byte aligned buffer (bundle tensors are 16-byte aligned within the file) that lives
/// for the rest of the program, where the chip planner's rule puts `len` bytes of weights
/// ([`place_weights`]: internal SRAM when it holds them beside [`INTERNAL_RESERVE`], else
/// PSRAM, else none: the caller reads them in place from flash). An allocation that fails
/// (a fragmented heap) falls through to the next memory.
fn alloc_model(len: usize) -> Option<(&'static mut [u8], Place)> {
    use esp_alloc::MemoryCapability::Internal;
    let layout = Layout::from_size_align(len.max(1), ALIGN).ok()?;
    let internal = esp_alloc::HEAP.free_caps(Internal.into());
    #[cfg(feature = "psram")]
    let external = esp_alloc::HEAP.free_caps(esp_alloc::MemoryCapability::External.into());
    #[cfg(not(feature = "psram"))]
    let external = 0;
    let tries: &[(Place, esp_alloc::MemoryCapability)] =
        match place_weights(len, internal.saturating_sub(INTERNAL_RESERVE), external) {
            Region::Sram => &[
                (Place::Internal, Internal),
                #[cfg(feature = "psram")]
                (Place::Psram, esp_alloc::MemoryCapability::External),
            ],
            #[cfg(feature = "psram")]
            Region::Psram => &[(Place::Psram, esp_alloc::MemoryCapability::External)],
            _ => &[],
        };
    for &(place, caps) in tries {
        // SAFETY: a valid non-zero-size layout; the block is never freed, so handing out a
        // 'static slice is sound. It is zeroed first so no uninitialised byte is ever read.
        unsafe {
            let p = esp_alloc::HEAP.alloc_caps(caps.into(), layout);
            if !p.is_null() {
                core::ptr::write_bytes(p, 0, len);
                return Some((core::slice::from_raw_parts_mut(p, len), place));
            }
        }
    }
    None
}
