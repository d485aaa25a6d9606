//! The flash layouts esp-llm writes (firmware/partitions-*.csv): which flash sizes have one,
//! and how big their `model` partition is. `flash`, `image`, `plan`, `boards` and `preview`
//! all size the model partition here.

use esp_idf_part::PartitionTable;
use espflash::flasher::FlashSize;

/// The repository's flash layouts: copies of firmware/partitions-*.csv inside this crate, so
/// that it packages on its own (tests/partitions.rs keeps them equal).
const TABLE_4MB: &str = include_str!("../partitions/partitions-4mb.csv");
const TABLE_16MB: &str = include_str!("../partitions/partitions-16mb.csv");
const TABLE_32MB: &str = include_str!("../partitions/partitions-32mb.csv");

/// Flash sizes with a bundled layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlashSizeArg {
    /// 4 MB (ESP32-C3/C6 DevKits): 3 MB model partition at 0x100000.
    Mb4,
    /// 16 MB (ESP32-S3-LCD-2, N16R8 modules, ESP32-P4): 12 MB model partition at 0x400000.
    Mb16,
    /// 32 MB (N32R8 modules): 28 MB model partition at 0x400000.
    Mb32,
}

/// `--flash-size` in the units every size takes (`4MB`, `16mb`, `32M`; a bare number is MB).
pub fn parse_flash_size(s: &str) -> std::result::Result<FlashSizeArg, String> {
    let bytes = crate::units::mb_arg(s)?;
    match bytes >> 20 {
        4 if bytes == 4 << 20 => Ok(FlashSizeArg::Mb4),
        16 if bytes == 16 << 20 => Ok(FlashSizeArg::Mb16),
        32 if bytes == 32 << 20 => Ok(FlashSizeArg::Mb32),
        _ => Err(format!(
            "{} of flash has no bundled layout: use 4MB, 16MB or 32MB, or pass --partition-table",
            crate::units::human(bytes)
        )),
    }
}

impl FlashSizeArg {
    pub fn bytes(self) -> usize {
        match self {
            FlashSizeArg::Mb4 => 4 << 20,
            FlashSizeArg::Mb16 => 16 << 20,
            FlashSizeArg::Mb32 => 32 << 20,
        }
    }
    pub fn espflash(self) -> FlashSize {
        match self {
            FlashSizeArg::Mb4 => FlashSize::_4Mb,
            FlashSizeArg::Mb16 => FlashSize::_16Mb,
            FlashSizeArg::Mb32 => FlashSize::_32Mb,
        }
    }
    pub fn table(self) -> &'static str {
        match self {
            FlashSizeArg::Mb4 => TABLE_4MB,
            FlashSizeArg::Mb16 => TABLE_16MB,
            FlashSizeArg::Mb32 => TABLE_32MB,
        }
    }
    /// The reference board's flash for a chip.
    pub fn default_for(chip: &str) -> Self {
        if matches!(chip, "esp32s3" | "esp32p4") {
            FlashSizeArg::Mb16
        } else {
            FlashSizeArg::Mb4
        }
    }
}

/// Size of the `model` partition in the bundled layout for this much flash, if there is one.
pub fn bundled_model_partition(flash_bytes: usize) -> Option<usize> {
    let csv = match flash_bytes {
        b if b == 4 << 20 => TABLE_4MB,
        b if b == 16 << 20 => TABLE_16MB,
        b if b == 32 << 20 => TABLE_32MB,
        _ => return None,
    };
    let table = PartitionTable::try_from_str(csv).ok()?;
    table.find("model").map(|p| p.size() as usize)
}

/// The flash sizes with a bundled layout, smallest first.
pub const FLASH_SIZES: [usize; 3] = [4 << 20, 16 << 20, 32 << 20];

/// Bytes of flash before the model partition for flash sizes without a bundled layout.
pub const FLASH_RESERVED: usize = 1 << 20;

/// The `model` partition for this much flash: the bundled layout's, else all but the first
/// [`FLASH_RESERVED`] bytes (bootloader, partition table, app).
pub fn model_partition(flash_bytes: usize) -> usize {
    bundled_model_partition(flash_bytes)
        .unwrap_or_else(|| flash_bytes.saturating_sub(FLASH_RESERVED))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_size_has_its_layout() {
        for f in FLASH_SIZES {
            let arg = parse_flash_size(&format!("{}MB", f >> 20)).unwrap();
            assert_eq!(arg.bytes(), f);
            let table = PartitionTable::try_from_str(arg.table()).unwrap();
            let model = table.find("model").unwrap();
            assert_eq!(Some(model.size() as usize), bundled_model_partition(f));
            assert!(model.offset() as usize + model.size() as usize <= f);
        }
        assert!(parse_flash_size("8MB").unwrap_err().contains("no bundled layout"));
        assert_eq!(model_partition(8 << 20), 7 << 20);
    }
}
