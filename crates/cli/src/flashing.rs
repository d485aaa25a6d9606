//! Getting a model onto a board: the flash layout (partition tables), the app image built from
//! the firmware ELF with espflash, the model bundle checked against the chip's plan, and the two
//! commands that use them: `esp-llm image` (one merged file) and `esp-llm flash` (over serial).

use crate::files;
use crate::quantize::tensor_progress;
use anyhow::{anyhow, bail, Context, Result};
use esp_idf_part::PartitionTable;
use esp_llm_board::plan;
use esp_llm_engine::checkpoint::bundle::{self, Quant};
use esp_llm_engine::Needs;
use esp_llm_engine::{Checkpoint, Tokenizer};
use espflash::flasher::{FlashData, FlashSettings, FlashSize, Flasher};
use espflash::image_format::idf::IdfBootloaderFormat;
use espflash::target::{Chip, ProgressCallbacks};
use indicatif::{ProgressBar, ProgressStyle};
use std::path::{Path, PathBuf};

/// The repository's flash layouts (firmware/partitions-*.csv).
const TABLE_4MB: &str = include_str!("../../../firmware/partitions-4mb.csv");
const TABLE_16MB: &str = include_str!("../../../firmware/partitions-16mb.csv");
const TABLE_32MB: &str = include_str!("../../../firmware/partitions-32mb.csv");

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
    let bytes = crate::units::parse_mb(s).map_err(|e| format!("{e:#}"))?;
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
    fn espflash(self) -> FlashSize {
        match self {
            FlashSizeArg::Mb4 => FlashSize::_4Mb,
            FlashSizeArg::Mb16 => FlashSize::_16Mb,
            FlashSizeArg::Mb32 => FlashSize::_32Mb,
        }
    }
    fn table(self) -> &'static str {
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

/// Options shared by `image` and `flash`.
#[derive(clap::Args, Clone)]
pub struct Layout {
    /// Target chip: esp32s3, esp32p4, esp32c6 or esp32c3.
    #[arg(long)]
    pub chip: String,
    /// Flash size: 4MB, 16MB or 32MB (chooses the partition table). Default: 16MB for
    /// esp32s3/esp32p4, else 4MB.
    #[arg(long, value_parser = parse_flash_size)]
    pub flash_size: Option<FlashSizeArg>,
    /// A partition table CSV to use instead (it must have a data partition labelled `model`).
    #[arg(long)]
    pub partition_table: Option<PathBuf>,
    /// Tokenizer to pack with a llama2.c checkpoint. Default: beside the model.
    #[arg(short = 'z', long)]
    pub tokenizer: Option<PathBuf>,
}

/// The resolved layout: chip, flash size, partition table (as a file espflash can read).
pub struct Resolved {
    pub chip: Chip,
    pub chip_name: String,
    pub flash: FlashSizeArg,
    pub table_file: tempfile::NamedTempFile,
    pub model_offset: u32,
    pub model_size: u32,
}

pub fn resolve(l: &Layout) -> Result<Resolved> {
    if plan::chip(&l.chip).is_none() {
        let names: Vec<&str> = plan::CHIPS.iter().map(|c| c.name).collect();
        bail!("unknown chip '{}'; choose one of {}", l.chip, names.join(", "));
    }
    let chip: Chip =
        l.chip.parse().map_err(|_| anyhow!("espflash does not know chip '{}'", l.chip))?;
    let flash = l.flash_size.unwrap_or_else(|| FlashSizeArg::default_for(&l.chip));
    let csv = match &l.partition_table {
        Some(p) => std::fs::read_to_string(p)
            .with_context(|| format!("cannot read partition table {}", p.display()))?,
        None => flash.table().to_string(),
    };
    let table =
        PartitionTable::try_from_str(&csv).map_err(|e| anyhow!("bad partition table: {e}"))?;
    let model = table
        .find("model")
        .ok_or_else(|| anyhow!("the partition table has no partition labelled 'model'"))?;
    let (model_offset, model_size) = (model.offset(), model.size());
    if model_offset as usize + model_size as usize > flash.bytes() {
        bail!("the model partition ends past the end of {} MB of flash", flash.bytes() >> 20);
    }
    let mut table_file = tempfile::NamedTempFile::new()?;
    std::io::Write::write_all(&mut table_file, csv.as_bytes())?;
    Ok(Resolved { chip, chip_name: l.chip.clone(), flash, table_file, model_offset, model_size })
}

/// The bundle to flash: a bundle file as it is (checksum verified), or a llama2.c checkpoint
/// packed on the fly. Refused when it does not fit the partition or the chip's plan.
pub fn model_bundle(path: &Path, tokenizer: Option<&Path>, r: &Resolved) -> Result<Vec<u8>> {
    let bytes =
        std::fs::read(path).with_context(|| format!("cannot read model {}", path.display()))?;
    let bytes = if bundle::is_bundle(&bytes) {
        bundle::verify(&bytes).with_context(|| format!("{}", path.display()))?;
        bytes
    } else {
        let ck = Checkpoint::parse(&bytes).with_context(|| format!("{}", path.display()))?;
        let tok_path = match tokenizer {
            Some(t) => t.to_path_buf(),
            None => files::default_tokenizer(path, ck.config.vocab_size)?,
        };
        let tok = std::fs::read(&tok_path)
            .with_context(|| format!("cannot read tokenizer {}", tok_path.display()))?;
        Tokenizer::from_bytes(&tok, ck.config.vocab_size)
            .with_context(|| format!("{}", tok_path.display()))?;
        let pb = tensor_progress(ck.weights.layers.len() * 9 + 3, bytes.len());
        let (b, _) = bundle::pack(&ck, &tok, keep_quant(&ck), &mut |n| {
            pb.set_message(n);
            pb.inc(1);
        })?;
        pb.finish_and_clear();
        eprintln!("packed {} into a {}-byte bundle", path.display(), b.len());
        b
    };
    if bytes.len() > r.model_size as usize {
        bail!(
            "the model bundle is {} bytes but the 'model' partition holds {} bytes; use an int8 bundle (esp-llm pack --quant q8) or a bigger flash layout",
            bytes.len(),
            r.model_size
        );
    }
    let ck = Checkpoint::parse(&bytes)?;
    let needs = Needs::of(&ck.config, &ck.weights)?;
    let chip = plan::chip(&r.chip_name).ok_or_else(|| anyhow!("unknown chip"))?;
    plan::plan(&needs, ck.config.seq_len, chip, chip.psram, r.model_size as usize, bytes.len())
        .with_context(|| {
            format!("the plan says this model cannot run on {} (see esp-llm plan)", r.chip_name)
        })?;
    Ok(bytes)
}

/// Packing a checkpoint for a board keeps its precision: every int8 or int4 tensor keeps its
/// values and groups, f32 stays f32 (`esp-llm pack --quant q8` makes an int8 bundle from an f32
/// model).
fn keep_quant(_ck: &Checkpoint<'_>) -> Quant {
    Quant::Keep
}

/// The app image segments (bootloader, partition table, app) for a firmware ELF.
pub fn app_segments(elf: &[u8], r: &Resolved) -> Result<Vec<(u32, Vec<u8>)>> {
    let settings = FlashSettings::new(None, Some(r.flash.espflash()), None);
    let data = FlashData::new(settings, 0, None, r.chip, r.chip.default_xtal_frequency());
    let image = IdfBootloaderFormat::new(elf, &data, Some(r.table_file.path()), None, None, None)
        .map_err(|e| anyhow!("cannot build an app image from the firmware ELF: {e}"))?;
    Ok(image.flash_segments().map(|s| (s.addr, s.data().to_vec())).collect())
}

/// Arguments of `esp-llm image`.
#[derive(clap::Args)]
pub struct ImageArgs {
    #[command(flatten)]
    pub layout: Layout,
    /// Firmware ELF (firmware/build.sh prints its path).
    #[arg(long)]
    pub firmware: PathBuf,
    /// Model: a bundle, or a llama2.c checkpoint to pack.
    #[arg(long)]
    pub model: PathBuf,
    /// Output: one image of the whole flash, to write at offset 0.
    #[arg(short = 'o', long)]
    pub output: PathBuf,
}

pub fn image(a: ImageArgs) -> Result<()> {
    let r = resolve(&a.layout)?;
    let elf = std::fs::read(&a.firmware)
        .with_context(|| format!("cannot read firmware {}", a.firmware.display()))?;
    let model = model_bundle(&a.model, a.layout.tokenizer.as_deref(), &r)?;
    let mut flash = vec![0xFFu8; r.flash.bytes()];
    for (addr, data) in app_segments(&elf, &r)? {
        let end = addr as usize + data.len();
        if end > r.model_offset as usize && (addr as usize) < r.model_offset as usize + model.len()
        {
            bail!("the app image overlaps the model partition at {:#x}", r.model_offset);
        }
        flash
            .get_mut(addr as usize..end)
            .ok_or_else(|| anyhow!("an image segment at {addr:#x} lies past the end of flash"))?
            .copy_from_slice(&data);
    }
    let at = r.model_offset as usize;
    flash[at..at + model.len()].copy_from_slice(&model);
    std::fs::write(&a.output, &flash)
        .with_context(|| format!("cannot write {}", a.output.display()))?;
    outln!(
        "wrote {} ({} MB): app, partition table and a {}-byte model bundle at {:#x} ('model' partition of {} bytes)",
        a.output.display(),
        r.flash.bytes() >> 20,
        model.len(),
        r.model_offset,
        r.model_size
    );
    Ok(())
}

/// Arguments of `esp-llm flash`.
#[derive(clap::Args)]
pub struct FlashArgs {
    /// Serial port of the board (/dev/ttyUSB0, /dev/ttyACM0, COM3).
    #[arg(long)]
    pub port: String,
    #[command(flatten)]
    pub layout: Layout,
    /// Firmware ELF to write (with bootloader and partition table). Omit to write only the model.
    #[arg(long)]
    pub firmware: Option<PathBuf>,
    /// Model to write into the 'model' partition: a bundle, or a llama2.c checkpoint to pack.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Baud rate for flashing (after connecting at 115200).
    #[arg(long, default_value_t = 460_800)]
    pub baud: u32,
}

/// Progress bars for espflash.
struct Bars(Option<ProgressBar>, &'static str);

impl ProgressCallbacks for Bars {
    fn init(&mut self, addr: u32, total: usize) {
        let pb = ProgressBar::new(total as u64);
        pb.set_style(
            ProgressStyle::with_template("{msg} [{bar:40}] {bytes}/{total_bytes} ({eta})")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        pb.set_message(format!("{} {addr:#x}", self.1));
        self.0 = Some(pb);
    }
    fn update(&mut self, current: usize) {
        if let Some(pb) = &self.0 {
            pb.set_position(current as u64);
        }
    }
    fn verifying(&mut self) {
        if let Some(pb) = &self.0 {
            pb.set_message("verifying");
        }
    }
    fn finish(&mut self, skipped: bool) {
        if let Some(pb) = self.0.take() {
            pb.finish_with_message(if skipped { "unchanged, skipped" } else { "done" });
        }
    }
}

/// Turns espflash's errors into what a user should do.
fn explain(e: espflash::Error, port: &str, chip: &str) -> anyhow::Error {
    let text = e.to_string();
    let hint = match &e {
        espflash::Error::ChipMismatch(found, wanted) => {
            format!("the board is an {found}, not an {wanted}: pass --chip {found} (and firmware built for it)")
        }
        espflash::Error::Connection(_) if text.contains("ailed to connect") || text.contains("onnection") => {
            "the board did not enter download mode: hold BOOT, tap RESET, release BOOT, then retry (some boards need a data USB cable)".to_string()
        }
        _ if text.contains("imeout") || text.contains("imed out") => {
            "the board stopped answering: check the cable, retry with --baud 115200".to_string()
        }
        _ => String::new(),
    };
    if hint.is_empty() {
        anyhow!("flashing {chip} on {port} failed: {text}")
    } else {
        anyhow!("flashing {chip} on {port} failed: {text}: {hint}")
    }
}

pub fn flash(a: FlashArgs) -> Result<()> {
    if a.firmware.is_none() && a.model.is_none() {
        bail!("nothing to write: pass --firmware ELF and/or --model FILE");
    }
    // Everything that can be checked without the board is checked first.
    let r = resolve(&a.layout)?;
    let segments = match &a.firmware {
        Some(p) => {
            let elf = std::fs::read(p)
                .with_context(|| format!("cannot read firmware {}", p.display()))?;
            Some(app_segments(&elf, &r)?)
        }
        None => None,
    };
    let model = match &a.model {
        Some(p) => Some(model_bundle(p, a.layout.tokenizer.as_deref(), &r)?),
        None => None,
    };
    let port = serialport::new(&a.port, 115_200)
        .timeout(std::time::Duration::from_secs(3))
        .open_native()
        .map_err(|e| anyhow!("{}", crate::link::serial_error_hint(&a.port, &e)))?;
    let info = serialport::UsbPortInfo {
        vid: 0,
        pid: 0,
        serial_number: None,
        manufacturer: None,
        product: None,
    };
    let conn = espflash::connection::Connection::new(
        port,
        info,
        espflash::connection::ResetAfterOperation::HardReset,
        espflash::connection::ResetBeforeOperation::DefaultReset,
        115_200,
    );
    let mut flasher = Flasher::connect(conn, true, true, false, Some(r.chip), Some(a.baud))
        .map_err(|e| explain(e, &a.port, &r.chip_name))?;
    if let Some(segs) = segments {
        let segs: Vec<espflash::image_format::Segment<'_>> =
            segs.iter().map(|(addr, d)| espflash::image_format::Segment::new(*addr, d)).collect();
        flasher
            .write_bins_to_flash(&segs, &mut Bars(None, "firmware"))
            .map_err(|e| explain(e, &a.port, &r.chip_name))?;
    }
    if let Some(model) = model {
        flasher
            .write_bin_to_flash(r.model_offset, &model, &mut Bars(None, "model"))
            .map_err(|e| explain(e, &a.port, &r.chip_name))?;
        // Read-back check: the board hashes what it now holds.
        let on_board = flasher
            .checksum_md5(r.model_offset, model.len() as u32)
            .map_err(|e| explain(e, &a.port, &r.chip_name))?;
        let ours = u128::from_be_bytes(md5_digest(&model));
        if on_board != ours {
            bail!("read-back check failed: the model partition's MD5 is {on_board:032x}, expected {ours:032x}; flash again");
        }
        eprintln!("model verified on the board ({} bytes at {:#x})", model.len(), r.model_offset);
    }
    Ok(())
}

fn md5_digest(data: &[u8]) -> [u8; 16] {
    use md5::Digest;
    md5::Md5::digest(data).into()
}
