//! Getting a model onto a board: the flash layout (partition tables), the app image built from
//! the firmware ELF with espflash, the model bundle checked against the chip's plan, and the two
//! commands that use them: `esp-llm image` (one merged file) and `esp-llm flash` (over serial).
//! A firmware ELF built for another chip is refused before anything is written.

use crate::device::{self, After};
use crate::files;
use crate::layout::{parse_flash_size, FlashSizeArg};
use crate::packing::{self, QuantArg, Target};
use crate::port;
use crate::setup::Widest;
use crate::units::human;
use anyhow::{anyhow, bail, Context, Result};
use esp_idf_part::PartitionTable;
use esp_llm_engine::checkpoint::bundle::{self, Quant};
use esp_llm_engine::model::Matrix;
use esp_llm_engine::{Checkpoint, Tokenizer};
use espflash::flasher::{FlashData, FlashSettings};
use espflash::image_format::idf::IdfBootloaderFormat;
use espflash::image_format::Metadata;
use espflash::target::{Chip, ProgressCallbacks};
use indicatif::{ProgressBar, ProgressStyle};
use std::path::{Path, PathBuf};

/// Options shared by `image` and `flash`.
#[derive(clap::Args, Clone)]
pub struct Layout {
    /// Target chip: esp32s3, esp32p4, esp32c6 or esp32c3. Default: the chip the firmware ELF
    /// was built for.
    #[arg(long)]
    pub chip: Option<String>,
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
    /// Weight storage when a llama2.c checkpoint is packed. Default: what `esp-llm plan` says
    /// runs fastest on the chip (an int8 source stays int8).
    #[arg(long, value_enum)]
    pub quant: Option<QuantArg>,
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

/// The chip a firmware ELF was built for, and how that was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElfChip {
    /// The chip's name as `--chip` spells it (esp32c3).
    pub name: String,
    /// What told: the ELF's `.espressif.metadata`, or its ISA (e_machine and RISC-V attributes).
    pub from: &'static str,
}

/// Reads which chip a firmware ELF is for: espflash's metadata section (`build_info.CHIP_NAME`)
/// when the app has one, else the instruction set, which tells our four chips apart: Xtensa is
/// the ESP32-S3; RISC-V with F is the P4 (rv32imafc), with A the C6 (rv32imac), else the C3
/// (rv32imc). `Ok(None)` when the file says nothing either way.
pub fn elf_chip(elf: &[u8]) -> Result<Option<ElfChip>> {
    use object::{Architecture, Object, ObjectSection};
    if let Some(name) = Metadata::from_bytes(Some(elf)).chip_name() {
        let name = name.to_ascii_lowercase().replace('-', "");
        return Ok(Some(ElfChip { name, from: "its .espressif.metadata" }));
    }
    let file = object::File::parse(elf).map_err(|e| anyhow!("not an ELF file: {e}"))?;
    match file.architecture() {
        Architecture::Xtensa => {
            Ok(Some(ElfChip { name: "esp32s3".into(), from: "its Xtensa code" }))
        }
        Architecture::Riscv32 => {
            let Some(arch) = file
                .section_by_name(".riscv.attributes")
                .and_then(|s| s.data().ok())
                .and_then(riscv_arch)
            else {
                return Ok(None);
            };
            let name = if arch.contains(&'f') {
                "esp32p4"
            } else if arch.contains(&'a') {
                "esp32c6"
            } else {
                "esp32c3"
            };
            Ok(Some(ElfChip { name: name.into(), from: "its RISC-V extensions" }))
        }
        other => bail!("the firmware ELF is for {other:?}, not an ESP32 chip"),
    }
}

/// The single-letter ISA extensions in a `.riscv.attributes` arch string (`rv32i2p1_m2p0_c2p0`).
fn riscv_arch(attributes: &[u8]) -> Option<Vec<char>> {
    let at = attributes.windows(4).position(|w| w == b"rv32")?;
    let rest = &attributes[at + 4..];
    let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
    let arch = std::str::from_utf8(&rest[..end]).ok()?;
    let mut letters = Vec::new();
    for (i, part) in arch.split('_').enumerate() {
        let mut chars = part.chars();
        // The first part is the base (`i2p1`, `e`); the others one extension each, single
        // letters followed by a version (`m2p0`), or multi-letter `z...`/`x...` names.
        let (Some(c), next) = (chars.next(), chars.next()) else { continue };
        if i == 0 || next.is_none_or(|n| n.is_ascii_digit()) {
            letters.push(c);
        }
        if i == 0 {
            // `rv32imac` without versions names several letters at once.
            letters.extend(part.chars().skip(1).take_while(|c| c.is_ascii_lowercase()));
        }
    }
    Some(letters)
}

/// The layout for `--chip` (or the ELF's chip) and the flash options. A firmware ELF built for
/// another chip than `--chip` is refused, naming both.
pub fn resolve(l: &Layout, elf: Option<&[u8]>) -> Result<Resolved> {
    let from_elf = match elf {
        Some(e) => elf_chip(e).context("reading the firmware ELF")?,
        None => None,
    };
    let chip_name = match (&l.chip, from_elf) {
        (Some(c), Some(e)) if !c.eq_ignore_ascii_case(&e.name) => bail!(
            "the firmware ELF is built for {} (from {}), not for --chip {c}: build it for {c} (firmware/build.sh {c} --release) or pass --chip {}",
            e.name,
            e.from,
            e.name
        ),
        (Some(c), _) => c.to_ascii_lowercase(),
        (None, Some(e)) => e.name,
        (None, None) if elf.is_some() => {
            bail!("cannot tell which chip the firmware ELF is for: pass --chip")
        }
        (None, None) => bail!("pass --chip (esp32s3, esp32p4, esp32c6 or esp32c3)"),
    };
    crate::setup::chip(&chip_name)?;
    let chip: Chip =
        chip_name.parse().map_err(|_| anyhow!("espflash does not know chip '{chip_name}'"))?;
    let flash = l.flash_size.unwrap_or_else(|| FlashSizeArg::default_for(&chip_name));
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
        bail!("the model partition ends past the end of {} of flash", human(flash.bytes()));
    }
    let mut table_file = tempfile::NamedTempFile::new()?;
    std::io::Write::write_all(&mut table_file, csv.as_bytes())?;
    Ok(Resolved { chip, chip_name, flash, table_file, model_offset, model_size })
}

/// The bundle to flash: a bundle file as it is (checksum verified), or a llama2.c checkpoint
/// packed on the fly (with `quant`, else what the chip's plan runs fastest). Refused when it
/// does not fit the partition or the chip's plan.
pub fn model_bundle(
    path: &Path,
    tokenizer: Option<&Path>,
    quant: Option<QuantArg>,
    r: &Resolved,
) -> Result<Vec<u8>> {
    let bytes =
        std::fs::read(path).with_context(|| format!("cannot read model {}", path.display()))?;
    let chip = crate::setup::chip(&r.chip_name)?;
    let target = Target { chip, psram: chip.psram, partition: r.model_size as usize };
    // A layout chosen from the checkpoint comes with its plan, made once when it was chosen.
    let (bytes, planned) = if bundle::is_bundle(&bytes) {
        bundle::verify(&bytes).with_context(|| format!("{}", path.display()))?;
        (bytes, None)
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
        match packing::fastest(&ck, &tok, bytes.len(), quant, target)? {
            Some((chosen, name)) => {
                eprintln!(
                    "packed {} as an {name} bundle of {} ({}for {})",
                    path.display(),
                    human(chosen.bytes.len()),
                    if quant.is_some() { "as asked, " } else { "the plan's fastest " },
                    r.chip_name
                );
                (chosen.bytes, Some(chosen.plan))
            }
            // Nothing fit: pack as asked, or else the first layout `fastest` tried that fits the
            // partition (the source's own, int8, else int4), so that the errors below say why
            // and advise only what was not tried.
            None => {
                let int8 = matches!(ck.weights.token_embedding, Matrix::Q8(_));
                let q = match quant {
                    Some(q) => packing::asked(q).0,
                    None => {
                        let fits = |q| {
                            bundle::packed_len(&ck, tok.len(), q)
                                .is_ok_and(|n| n <= r.model_size as usize)
                        };
                        let source = if int8 { Quant::Q8(None) } else { Quant::F32 };
                        [source, Quant::Q8(None)]
                            .into_iter()
                            .find(|&q| fits(q))
                            .unwrap_or(packing::asked(QuantArg::Q4).0)
                    }
                };
                (packing::pack(&ck, &tok, q, bytes.len())?.0, None)
            }
        }
    };
    let plan = match planned {
        Some(plan) => plan,
        None => {
            let parsed = Checkpoint::parse(&bytes);
            if bytes.len() > r.model_size as usize {
                let widest = Widest::of(&parsed?.weights);
                bail!(
                    "the model bundle is {} ({} bytes) but the 'model' partition holds {}; {}",
                    human(bytes.len()),
                    bytes.len(),
                    human(r.model_size as usize),
                    // Only what would shrink this bundle: no int8 advice for int8, none for int4.
                    match widest {
                        Widest::F32 => "use an int8 bundle (esp-llm pack --quant q8), a smaller model or a bigger flash layout (--flash-size)",
                        Widest::Int8 => "use an int4 bundle (esp-llm pack --quant q4), a smaller model or a bigger flash layout (--flash-size)",
                        Widest::Int4 => "use a smaller model or a bigger flash layout (--flash-size)",
                    }
                );
            }
            parsed
                .map_err(anyhow::Error::from)
                .and_then(|ck| packing::plan_parsed(&ck, bytes.len(), target))
        }
    };
    plan.with_context(|| {
        format!("the plan says this model cannot run on {} (see esp-llm plan)", r.chip_name)
    })?;
    Ok(bytes)
}

/// The app image segments (bootloader, partition table, app) for a firmware ELF.
pub fn app_segments(elf: &[u8], r: &Resolved) -> Result<Vec<(u32, Vec<u8>)>> {
    let settings = FlashSettings::new(None, Some(r.flash.espflash()), None);
    let data = FlashData::new(settings, 0, None, r.chip, r.chip.default_xtal_frequency());
    let image = IdfBootloaderFormat::new(elf, &data, Some(r.table_file.path()), None, None, None)
        .map_err(|e| anyhow!("cannot build an app image from the firmware ELF: {e}"))?;
    Ok(image.flash_segments().map(|s| (s.addr, s.data().to_vec())).collect())
}

/// The firmware ELF: positional, or `--firmware` (the older spelling).
#[derive(clap::Args, Clone)]
pub struct Firmware {
    /// Firmware ELF (firmware/build.sh prints its path; `cargo build` puts it in
    /// `firmware/target/<target>/release/esp-llm-firmware`).
    #[arg(value_name = "ELF")]
    pub elf: Option<PathBuf>,
    /// The firmware ELF, as a flag (same as the positional ELF).
    #[arg(long, value_name = "ELF", conflicts_with = "elf")]
    pub firmware: Option<PathBuf>,
}

impl Firmware {
    fn path(&self) -> Option<&Path> {
        self.elf.as_deref().or(self.firmware.as_deref())
    }
    fn read(&self) -> Result<Option<Vec<u8>>> {
        match self.path() {
            Some(p) => Ok(Some(
                std::fs::read(p)
                    .with_context(|| format!("cannot read firmware {}", p.display()))?,
            )),
            None => Ok(None),
        }
    }
}

/// Arguments of `esp-llm image`.
#[derive(clap::Args)]
pub struct ImageArgs {
    #[command(flatten)]
    pub firmware: Firmware,
    #[command(flatten)]
    pub layout: Layout,
    /// Model: a bundle, or a llama2.c checkpoint to pack.
    #[arg(long)]
    pub model: PathBuf,
    /// Output: one image of the whole flash, to write at offset 0.
    #[arg(short = 'o', long)]
    pub output: PathBuf,
}

pub fn image(a: ImageArgs) -> Result<()> {
    let Some(elf) = a.firmware.read()? else {
        bail!("no firmware ELF given: esp-llm image ELF --model FILE -o flash.bin");
    };
    let r = resolve(&a.layout, Some(&elf))?;
    let model = model_bundle(&a.model, a.layout.tokenizer.as_deref(), a.layout.quant, &r)?;
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
        "wrote {} ({}): app, partition table and a {} model bundle ({} bytes) at {:#x} ('model' partition of {})",
        a.output.display(),
        human(r.flash.bytes()),
        human(model.len()),
        model.len(),
        r.model_offset,
        human(r.model_size as usize)
    );
    Ok(())
}

/// Arguments of `esp-llm flash`.
#[derive(clap::Args)]
pub struct FlashArgs {
    #[command(flatten)]
    pub firmware: Firmware,
    /// Serial port of the board (/dev/ttyUSB0, /dev/ttyACM0, COM3). Default: $ESPFLASH_PORT,
    /// else detected as espflash does (one likely port is used; several are listed).
    #[arg(short = 'p', long, env = "ESPFLASH_PORT")]
    pub port: Option<String>,
    #[command(flatten)]
    pub layout: Layout,
    /// Model to write into the 'model' partition: a bundle, or a llama2.c checkpoint to pack.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Baud rate for flashing (after connecting at 115200).
    #[arg(long, default_value_t = 460_800)]
    pub baud: u32,
    /// After flashing, show the board's serial output (as `esp-llm monitor`).
    #[arg(short = 'M', long)]
    pub monitor: bool,
    /// Write every region even if the board already holds the same bytes (espflash skips
    /// unchanged regions by default).
    #[arg(long)]
    pub no_skip: bool,
}

/// Progress bars for espflash.
struct Bars(Option<ProgressBar>);

impl ProgressCallbacks for Bars {
    fn init(&mut self, addr: u32, total: usize) {
        let pb = ProgressBar::new(total as u64);
        pb.set_style(
            ProgressStyle::with_template("{msg} [{bar:40}] {bytes}/{total_bytes} ({eta})")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        pb.set_message(format!("{addr:#x}"));
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

pub fn flash(a: FlashArgs) -> Result<()> {
    let elf = a.firmware.read()?;
    if elf.is_none() && a.model.is_none() {
        bail!("nothing to write: give the firmware ELF (esp-llm flash ELF) and/or --model FILE");
    }
    // Everything that can be checked without the board is checked first.
    let r = resolve(&a.layout, elf.as_deref())?;
    let app = match &elf {
        Some(e) => app_segments(e, &r)?,
        None => Vec::new(),
    };
    let model = match &a.model {
        Some(p) => Some(model_bundle(p, a.layout.tokenizer.as_deref(), a.layout.quant, &r)?),
        None => None,
    };
    let port = port::choose(a.port.as_deref())?;
    let chip = Some(r.chip);
    // One write for app and model (espflash resets the chip when a write ends), then the
    // model's read-back check, then the reset into the app.
    let mut flasher = device::connect(&port, chip, Some(a.baud), After::Stay, !a.no_skip)?;
    let mut segments: Vec<espflash::image_format::Segment<'_>> =
        app.iter().map(|(addr, d)| espflash::image_format::Segment::new(*addr, d)).collect();
    let padded;
    if let Some(m) = &model {
        // Flash writes go in 4-byte words; the padding is erased flash (0xFF).
        padded = [m.as_slice(), &[0xFF; 3][..(4 - m.len() % 4) % 4]].concat();
        segments.push(espflash::image_format::Segment::new(r.model_offset, &padded));
    }
    flasher
        .write_bins_to_flash(&segments, &mut Bars(None))
        .map_err(|e| device::explain(e, &port.name, chip))?;
    if let Some(model) = &model {
        // Read-back check: the board hashes what it now holds.
        let on_board = flasher
            .checksum_md5(r.model_offset, model.len() as u32)
            .map_err(|e| device::explain(e, &port.name, chip))?;
        let ours = u128::from_be_bytes(esp_llm_board::partition::md5_digest(model));
        if on_board != ours {
            bail!("read-back check failed: the model partition's MD5 is {on_board:032x}, expected {ours:032x}; flash again");
        }
        eprintln!(
            "model verified on the board ({}, {} bytes at {:#x})",
            human(model.len()),
            model.len(),
            r.model_offset
        );
    }
    flasher.connection().reset().map_err(|e| device::explain(e, &port.name, chip))?;
    if a.monitor {
        let mut serial = flasher.into_connection().into_serial();
        serialport::SerialPort::set_baud_rate(&mut serial, 115_200)?;
        let serial: Box<dyn serialport::SerialPort> = Box::new(serial);
        return port::watch(Box::new(serial), &port.name);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn riscv_extensions_from_the_arch_string() {
        let at =
            |s: &str| riscv_arch(format!("A\x1f\0\0\0riscv\0\x01\x15\0\0\0\x05{s}\0").as_bytes());
        assert_eq!(at("rv32i2p1_m2p0_c2p0_zicsr2p0_zifencei2p0").unwrap(), ['i', 'm', 'c']);
        assert_eq!(at("rv32i2p1_m2p0_a2p1_c2p0_zaamo1p0").unwrap(), ['i', 'm', 'a', 'c']);
        assert_eq!(at("rv32imafc").unwrap(), ['i', 'm', 'a', 'f', 'c']);
        assert!(riscv_arch(b"no arch here").is_none());
    }

    #[test]
    fn not_an_elf_is_an_error() {
        assert!(elf_chip(b"not an elf").unwrap_err().to_string().contains("not an ELF"));
    }
}
