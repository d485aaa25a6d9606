//! A board's ROM bootloader through espflash's library: connecting (with the port's real USB
//! vid/pid, so the ESP32-S3's USB-Serial-JTAG gets its own reset sequence), turning espflash's
//! errors into what to do, and `esp-llm board-info`.

use crate::port::{self, Port};
use anyhow::{anyhow, Result};
use espflash::connection::{Connection, ResetAfterOperation, ResetBeforeOperation};
use espflash::flasher::Flasher;
use espflash::target::Chip;

/// How a connection ends.
#[derive(Clone, Copy)]
pub enum After {
    /// Reset into the app when espflash finishes an operation.
    Reset,
    /// Stay in the flasher stub: the caller checks, then resets ([`Connection::reset`]).
    Stay,
}

/// Opens `port` and connects to the ROM bootloader (and espflash's stub). `chip`, when given,
/// must be what the board is; `baud` is the speed to switch to after connecting at 115200.
/// `skip` leaves regions whose MD5 already matches unwritten (espflash's default).
pub fn connect(
    port: &Port,
    chip: Option<Chip>,
    baud: Option<u32>,
    after: After,
    skip: bool,
) -> Result<Flasher> {
    let serial = serialport::new(&port.name, 115_200)
        .timeout(std::time::Duration::from_secs(3))
        .open_native()
        .map_err(|e| anyhow!("{}", port::serial_error_hint(&port.name, &e)))?;
    let after = match after {
        After::Reset => ResetAfterOperation::HardReset,
        After::Stay => ResetAfterOperation::NoResetNoStub,
    };
    let conn = Connection::new(
        serial,
        port.usb_info(),
        after,
        ResetBeforeOperation::DefaultReset,
        115_200,
    );
    Flasher::connect(conn, true, true, skip, chip, baud).map_err(|e| explain(e, &port.name, chip))
}

/// Turns espflash's errors into what a user should do.
pub fn explain(e: espflash::Error, port: &str, chip: Option<Chip>) -> anyhow::Error {
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
    let what = chip.map(|c| c.to_string()).unwrap_or_else(|| "the board".to_string());
    if hint.is_empty() {
        anyhow!("talking to {what} on {port} failed: {text}")
    } else {
        anyhow!("talking to {what} on {port} failed: {text}: {hint}")
    }
}

/// Arguments of `esp-llm board-info`.
#[derive(clap::Args)]
pub struct InfoArgs {
    /// Serial port of the board. Default: $ESPFLASH_PORT, else detected as espflash does.
    #[arg(short = 'p', long, env = "ESPFLASH_PORT")]
    pub port: Option<String>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `esp-llm board-info`: chip, revision, flash size, PSRAM, MAC, as the ROM and eFuses say.
pub fn board_info(a: InfoArgs) -> Result<()> {
    let port = port::choose(a.port.as_deref())?;
    let mut flasher = connect(&port, None, None, After::Reset, false)?;
    let info = flasher.device_info().map_err(|e| explain(e, &port.name, None))?;
    flasher.connection().reset().map_err(|e| explain(e, &port.name, Some(info.chip)))?;
    // The eFuses name in-package PSRAM ("Embedded PSRAM 8MB"); PSRAM on the module beside the
    // chip is not in them.
    let psram: Vec<&String> = info.features.iter().filter(|f| f.contains("PSRAM")).collect();
    let revision = info.revision.map(|(major, minor)| format!("v{major}.{minor}"));
    if a.json {
        let v = serde_json::json!({
            "port": port.name, "chip": info.chip.to_string(), "revision": revision,
            "flash_size": info.flash_size.to_string(), "crystal": info.crystal_frequency.to_string(),
            "features": info.features, "psram": psram, "mac": info.mac_address,
        });
        outln!("{v}");
        return Ok(());
    }
    outln!("port      {}", port.name);
    outln!("chip      {} (revision {})", info.chip, revision.as_deref().unwrap_or("unknown"));
    outln!("crystal   {}", info.crystal_frequency);
    outln!("flash     {}", info.flash_size);
    outln!(
        "PSRAM     {}",
        if psram.is_empty() {
            "none in the eFuses (PSRAM on the module, outside the chip, is not listed there)"
                .to_string()
        } else {
            psram.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
        }
    );
    outln!("features  {}", info.features.join(", "));
    outln!(
        "MAC       {}",
        info.mac_address.as_deref().unwrap_or("unreadable (secure download mode)")
    );
    Ok(())
}
