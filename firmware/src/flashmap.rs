//! Reading the model in place: its flash pages mapped into the data address space through the
//! cache MMU, for chips whose RAM cannot hold it (ESP32-C3, ESP32-C6; the S3 when a model is
//! larger than its PSRAM).
//!
//! esp-hal has no public mmap API, so this writes MMU entries itself, the way the ROM and
//! ESP-IDF's `esp_mmu_map` do: the bootloader leaves the entries it did not use for the app
//! marked invalid; we take a run of them, point entry `i` at flash page `paddr / 64 KB + i`, and
//! invalidate the cache over the new virtual range (ROM `Cache_Invalidate_Addr`). Entry `e`
//! maps virtual address `DROM_BASE + e * 64 KB`. Mappings are never undone (the model stays
//! for the life of the program).
//!
//! Two MMU layouts exist: a memory-mapped table (C3, S3: one u32 per entry with an "invalid"
//! bit) and an indexed one behind SPI0 registers (C6: select the entry, then read or write
//! its content, which has a "valid" bit).

use alloc::format;
use alloc::string::String;

/// MMU page size on these chips (64 KB is the maximum and the bootloader's setting).
const PAGE: u32 = 0x1_0000;

#[cfg(feature = "esp32c3")]
const DROM_BASE: u32 = 0x3C00_0000;
#[cfg(feature = "esp32s3")]
const DROM_BASE: u32 = 0x3C00_0000;
#[cfg(feature = "esp32c6")]
const DROM_BASE: u32 = 0x4200_0000;

unsafe extern "C" {
    /// ROM: invalidates the cache lines of a virtual address range.
    fn Cache_Invalidate_Addr(addr: u32, size: u32);
}

#[cfg(any(feature = "esp32c3", feature = "esp32s3"))]
mod mmu {
    use esp_hal::peripherals::MMU_TABLE;

    pub fn entries() -> u32 {
        MMU_TABLE::regs().entry_iter().count() as u32
    }
    pub fn is_free(e: u32) -> bool {
        MMU_TABLE::regs().entry(e as usize).read().invalid().bit_is_set()
    }
    pub fn set(e: u32, page: u32) {
        // Writing the whole word clears the invalid bit (and, on the S3, the PSRAM bit).
        // SAFETY: the entry was invalid (unused by code or data), so pointing it at flash
        // cannot disturb anything that runs.
        MMU_TABLE::regs().entry(e as usize).write(|w| unsafe { w.bits(page) });
    }
}

#[cfg(feature = "esp32c6")]
mod mmu {
    use esp_hal::peripherals::SPI0;

    pub fn entries() -> u32 {
        256 // SOC_MMU_ENTRY_NUM: 16 MB of 0x42000000.. in 64 KB pages
    }
    fn select(e: u32) {
        // SAFETY: any index below `entries()` is a valid selector.
        SPI0::regs().mmu_item_index().write(|w| unsafe { w.bits(e) });
    }
    pub fn is_free(e: u32) -> bool {
        select(e);
        SPI0::regs().mmu_item_content().read().valid().bit_is_clear()
    }
    pub fn set(e: u32, page: u32) {
        select(e);
        // SAFETY: the entry was not valid (unused), and `page` fits the 9-bit field.
        SPI0::regs()
            .mmu_item_content()
            .write(|w| unsafe { w.paddr().bits(page as u16).valid().set_bit() });
    }
}

/// Maps `len` bytes of flash from `paddr` (64 KB aligned) and returns them as a slice.
pub fn map(paddr: u32, len: usize) -> Result<&'static [u8], String> {
    if !paddr.is_multiple_of(PAGE) {
        return Err(format!("model partition offset 0x{paddr:x} is not 64 KB aligned"));
    }
    let pages = (len as u32).div_ceil(PAGE).max(1);
    #[cfg(feature = "esp32c6")]
    {
        let code =
            esp_hal::peripherals::SPI0::regs().mmu_power_ctrl().read().spi_mmu_page_size().bits();
        if code != 0 {
            return Err(format!("flash MMU page size is not 64 KB (code {code})"));
        }
    }
    // The last entry is left alone: the ROM uses it for its own flash reads.
    let usable = mmu::entries().saturating_sub(1);
    // Highest free run first, away from the app's own mappings at the bottom.
    let mut run = 0;
    let mut first = None;
    for e in (0..usable).rev() {
        if mmu::is_free(e) {
            run += 1;
            if run == pages {
                first = Some(e);
                break;
            }
        } else {
            run = 0;
        }
    }
    let first = first
        .ok_or_else(|| format!("no run of {pages} free flash MMU entries to map the model"))?;
    for i in 0..pages {
        mmu::set(first + i, paddr / PAGE + i);
    }
    let vaddr = DROM_BASE + first * PAGE;
    // SAFETY: ROM function; the range is the one just mapped.
    unsafe { Cache_Invalidate_Addr(vaddr, pages * PAGE) };
    // SAFETY: `pages * 64 KB >= len` bytes at `vaddr` now read the flash through the cache,
    // are never unmapped or written, and no other code uses these entries.
    Ok(unsafe { core::slice::from_raw_parts(vaddr as *const u8, len) })
}
