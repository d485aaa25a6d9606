//! Which serial port a board is on, opening it, and the raw view of it (`monitor`,
//! `flash --monitor`): `-p/--port` (or `ESPFLASH_PORT`) as in espflash, else espflash's
//! auto-detection over serialport's list of USB ports.
//!
//! Detection follows espflash's `serial_port_info`: only USB serial ports count; a port whose
//! vid:pid is one of the adapters found on development boards (CP210x, CH340, the ESP32-S3's
//! own USB-Serial-JTAG, ...) is "likely". One likely port is used and named; several ports are
//! listed, to choose from with `-p`, or by number when stdin is a terminal; none is an error
//! that says what to check. A port also carries its USB vid/pid: espflash picks the reset
//! sequence by it (USB-Serial-JTAG is reset through its own lines, not DTR/RTS of a USB-UART).

use anyhow::{anyhow, bail, Result};
use serialport::{SerialPortInfo, SerialPortType, UsbPortInfo};
use std::io::{BufRead, ErrorKind, IsTerminal, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// USB serial adapters on common development boards: espflash's list, plus the USB-Serial-JTAG
/// of the ESP32-C3/C6/P4 (same vid:pid as the S3's) and CH9102/CH343 bridges.
const KNOWN_DEVICES: &[(u16, u16, &str)] = &[
    (0x10c4, 0xea60, "Silicon Labs CP210x"),
    (0x1a86, 0x7523, "CH340"),
    (0x1a86, 0x55d4, "CH9102"),
    (0x1a86, 0x55d3, "CH343"),
    (0x0403, 0x6001, "FTDI FT232"),
    (0x303a, 0x1001, "Espressif USB-Serial-JTAG"),
];

/// The `-p/--port` and `--baud` flags of `chat`, `monitor` and `board-info`.
#[derive(clap::Args, Clone)]
pub struct PortArgs {
    /// Serial port of the board (/dev/ttyUSB0, /dev/ttyACM0, COM3), or tcp://HOST:PORT for an
    /// emulator's UART. Default: $ESPFLASH_PORT, else the one USB serial port of a known
    /// development-board adapter (as espflash detects it).
    #[arg(short = 'p', long, env = "ESPFLASH_PORT")]
    pub port: Option<String>,
    /// Baud rate for serial ports (UART0 of the firmware runs at 115200).
    #[arg(long, default_value_t = 115_200)]
    pub baud: u32,
}

impl PortArgs {
    /// The port to use: the one given, or the detected one.
    pub fn name(&self) -> Result<String> {
        match &self.port {
            Some(p) => Ok(p.clone()),
            None => Ok(detect()?.name),
        }
    }

    /// Opens the port (chosen by [`PortArgs::name`]); returns it with its name.
    pub fn open(&self) -> Result<(Box<dyn Link>, String)> {
        let name = self.name()?;
        Ok((open(&name, self.baud)?, name))
    }
}

/// A serial port chosen for a board, with its USB identity when it has one.
#[derive(Debug, Clone)]
pub struct Port {
    /// The device path (/dev/ttyACM0, COM3).
    pub name: String,
    /// vid/pid/serial/product from the USB descriptor; `None` for a non-USB port.
    pub usb: Option<UsbPortInfo>,
}

impl Port {
    /// The USB information espflash's `Connection` wants (all zero when not USB, which gives
    /// the classic DTR/RTS reset).
    pub fn usb_info(&self) -> UsbPortInfo {
        self.usb.clone().unwrap_or(UsbPortInfo {
            vid: 0,
            pid: 0,
            serial_number: None,
            manufacturer: None,
            product: None,
        })
    }
}

/// USB serial ports the system lists (espflash's default filter: USB ports only).
fn usb_ports() -> Vec<SerialPortInfo> {
    let mut ports: Vec<SerialPortInfo> = serialport::available_ports()
        .unwrap_or_default()
        .into_iter()
        .filter(|p| matches!(p.port_type, SerialPortType::UsbPort(_)))
        // macOS lists each device as /dev/tty.* and /dev/cu.*; the cu.* one is what works.
        .filter(|p| !(cfg!(target_os = "macos") && p.port_name.starts_with("/dev/tty.")))
        .collect();
    ports.sort_by(|a, b| a.port_name.cmp(&b.port_name));
    ports
}

fn usb(p: &SerialPortInfo) -> Option<&UsbPortInfo> {
    match &p.port_type {
        SerialPortType::UsbPort(u) => Some(u),
        _ => None,
    }
}

/// The known adapter a port is, if it is one.
fn known(p: &SerialPortInfo) -> Option<&'static str> {
    let u = usb(p)?;
    KNOWN_DEVICES.iter().find(|(v, d, _)| *v == u.vid && *d == u.pid).map(|k| k.2)
}

fn describe(p: &SerialPortInfo) -> String {
    match usb(p) {
        Some(u) => {
            let what = u.product.clone().or_else(|| known(p).map(str::to_string));
            format!(
                "{} ({:04x}:{:04x}{})",
                p.port_name,
                u.vid,
                u.pid,
                what.map(|w| format!(", {w}")).unwrap_or_default()
            )
        }
        None => p.port_name.clone(),
    }
}

/// Looks a port given by name up in the system's list, for its USB information.
pub fn lookup(name: &str) -> Port {
    // Symlinks such as /dev/serial/by-id/... name the same device as the list's /dev/ttyACM0.
    let canonical = std::fs::canonicalize(name)
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_else(|_| name.to_string());
    let usb = serialport::available_ports().unwrap_or_default().into_iter().find_map(|p| {
        let same = p.port_name.eq_ignore_ascii_case(&canonical) || p.port_name == name;
        match p.port_type {
            SerialPortType::UsbPort(u) if same => Some(u),
            _ => None,
        }
    });
    Port { name: name.to_string(), usb }
}

/// The port named by `-p`/`ESPFLASH_PORT`, else the detected one.
pub fn choose(given: Option<&str>) -> Result<Port> {
    match given {
        Some(name) => Ok(lookup(name)),
        None => detect(),
    }
}

/// espflash's auto-detection (see the module comment).
pub fn detect() -> Result<Port> {
    let tty = std::io::stdin().is_terminal() && std::io::stderr().is_terminal();
    pick(&usb_ports(), tty)
}

/// Chooses among `ports` (the USB serial ports): asks on the terminal when `tty` and there is
/// more than one candidate.
fn pick(ports: &[SerialPortInfo], tty: bool) -> Result<Port> {
    let likely: Vec<&SerialPortInfo> = ports.iter().filter(|p| known(p).is_some()).collect();
    let pick = |p: &SerialPortInfo| Port { name: p.port_name.clone(), usb: usb(p).cloned() };
    if let [one] = likely.as_slice() {
        eprintln!("using serial port {} (pass -p PORT to choose another)", describe(one));
        return Ok(pick(one));
    }
    match ports {
        [] => bail!(
            "no USB serial port found: is the board plugged in with a data cable? (boards show up as /dev/ttyUSB* or /dev/ttyACM*, COMn on Windows; pass -p PORT or set ESPFLASH_PORT)"
        ),
        [one] => {
            eprintln!("using serial port {} (pass -p PORT to choose another)", describe(one));
            Ok(pick(one))
        }
        many => {
            let list: Vec<String> = many.iter().map(describe).collect();
            if tty {
                let i = ask(&list)?;
                Ok(pick(&many[i]))
            } else {
                bail!(
                    "{} serial ports found, choose one with -p PORT (or ESPFLASH_PORT): {}",
                    many.len(),
                    list.join(", ")
                )
            }
        }
    }
}

/// Asks on the terminal which of several ports to use.
fn ask(list: &[String]) -> Result<usize> {
    eprintln!("{} serial ports found:", list.len());
    for (i, p) in list.iter().enumerate() {
        eprintln!("  {}) {p}", i + 1);
    }
    loop {
        eprint!("use which port? [1-{}] ", list.len());
        std::io::stderr().flush().ok();
        let mut line = String::new();
        if std::io::stdin().lock().read_line(&mut line)? == 0 {
            bail!("no serial port chosen (pass -p PORT)");
        }
        match line.trim().parse::<usize>() {
            Ok(n) if (1..=list.len()).contains(&n) => return Ok(n - 1),
            _ => eprintln!("type a number from 1 to {}", list.len()),
        }
    }
}

/// A byte stream to a board.
pub trait Link: Read + Write + Send {
    /// How long a read may block before returning `TimedOut`/`WouldBlock`.
    fn set_read_timeout(&mut self, t: Duration) -> Result<()>;
    /// An independent handle to the same stream (for a writer thread).
    fn try_clone_link(&self) -> Result<Box<dyn Link>>;
}

impl Link for TcpStream {
    fn set_read_timeout(&mut self, t: Duration) -> Result<()> {
        TcpStream::set_read_timeout(self, Some(t))?;
        Ok(())
    }
    fn try_clone_link(&self) -> Result<Box<dyn Link>> {
        Ok(Box::new(self.try_clone()?))
    }
}

impl Link for Box<dyn serialport::SerialPort> {
    fn set_read_timeout(&mut self, t: Duration) -> Result<()> {
        self.set_timeout(t)?;
        Ok(())
    }
    fn try_clone_link(&self) -> Result<Box<dyn Link>> {
        Ok(Box::new(self.try_clone()?))
    }
}

/// Opens `port`: `tcp://HOST:PORT` or a serial device at `baud`. Errors say what to do.
pub fn open(port: &str, baud: u32) -> Result<Box<dyn Link>> {
    if let Some(addr) = port.strip_prefix("tcp://") {
        let s = TcpStream::connect(addr).map_err(|e| {
            anyhow!("cannot connect to {addr}: {e} (is the emulator running with -serial tcp:{addr},server=on?)")
        })?;
        s.set_nodelay(true).ok();
        return Ok(Box::new(s));
    }
    match serialport::new(port, baud).timeout(Duration::from_millis(100)).open() {
        Ok(p) => Ok(Box::new(p)),
        Err(e) => Err(anyhow!("{}", serial_error_hint(port, &e))),
    }
}

/// Shows what `link` receives and sends what is typed, until the link closes or Ctrl-C.
pub fn watch(mut link: Box<dyn Link>, name: &str) -> Result<()> {
    link.set_read_timeout(Duration::from_millis(100))?;
    let mut writer = link.try_clone_link()?;
    eprintln!("monitoring {name} (Ctrl-C quits; lines you type are sent)");
    std::thread::spawn(move || {
        let mut buf = [0u8; 256];
        let mut stdin = std::io::stdin();
        while let Ok(n) = stdin.read(&mut buf) {
            if n == 0 || writer.write_all(&buf[..n]).is_err() {
                break;
            }
            let _ = writer.flush();
        }
    });
    let mut out = std::io::stdout();
    let mut buf = [0u8; 4096];
    loop {
        match link.read(&mut buf) {
            Ok(0) => anyhow::bail!("{name} closed the connection"),
            Ok(n) => {
                out.write_all(&buf[..n])?;
                out.flush()?;
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
                ) => {}
            Err(e) => return Err(e.into()),
        }
    }
}

/// A message for a serial port that would not open, with what to try.
pub fn serial_error_hint(port: &str, e: &serialport::Error) -> String {
    use serialport::ErrorKind as K;
    const PLUGGED: &str =
        "is the board plugged in? Boards show up as /dev/ttyUSB* or /dev/ttyACM* (COMn on Windows)";
    const DIALOUT: &str = "permission denied: add yourself to the 'dialout' group (sudo usermod -aG dialout $USER, then log in again)";
    let hint = match e.kind() {
        K::NoDevice => format!("no such device: {PLUGGED}"),
        K::Io(ErrorKind::NotFound) => format!("no such port: {PLUGGED}"),
        K::Io(ErrorKind::PermissionDenied) => DIALOUT.to_string(),
        _ if e.description.contains("ermission") => DIALOUT.to_string(),
        _ if e.description.contains("busy") || e.description.contains("Busy") => {
            "the port is busy: close other serial monitors (espflash monitor, screen, minicom)"
                .to_string()
        }
        _ => e.description.clone(),
    };
    format!("cannot open serial port {port}: {hint}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usb_port(name: &str, vid: u16, pid: u16) -> SerialPortInfo {
        SerialPortInfo {
            port_name: name.into(),
            port_type: SerialPortType::UsbPort(UsbPortInfo {
                vid,
                pid,
                serial_number: None,
                manufacturer: None,
                product: None,
            }),
        }
    }

    #[test]
    fn known_adapters_are_likely() {
        assert_eq!(
            known(&usb_port("/dev/ttyACM0", 0x303a, 0x1001)),
            Some("Espressif USB-Serial-JTAG")
        );
        assert_eq!(known(&usb_port("/dev/ttyUSB0", 0x10c4, 0xea60)), Some("Silicon Labs CP210x"));
        assert_eq!(known(&usb_port("/dev/ttyACM1", 0x2341, 0x0043)), None);
        let pci =
            SerialPortInfo { port_name: "/dev/ttyS0".into(), port_type: SerialPortType::PciPort };
        assert_eq!(known(&pci), None);
        assert_eq!(
            describe(&usb_port("/dev/ttyACM0", 0x303a, 0x1001)),
            "/dev/ttyACM0 (303a:1001, Espressif USB-Serial-JTAG)"
        );
    }

    #[test]
    fn detection_follows_espflash() {
        let jtag = usb_port("/dev/ttyACM0", 0x303a, 0x1001);
        let other = usb_port("/dev/ttyACM1", 0x2341, 0x0043);
        let other2 = usb_port("/dev/ttyACM2", 0x2341, 0x0043);
        // One likely port among others: used, with its USB identity for the reset sequence.
        let p = pick(&[other.clone(), jtag.clone()], false).unwrap();
        assert_eq!((p.name.as_str(), p.usb_info().pid), ("/dev/ttyACM0", 0x1001));
        // A single port, even an unknown adapter: used.
        assert_eq!(pick(std::slice::from_ref(&other), false).unwrap().name, "/dev/ttyACM1");
        // Several and none likely: listed, choose with -p.
        let e = pick(&[other, other2], false).unwrap_err().to_string();
        assert!(e.contains("2 serial ports found, choose one with -p PORT"), "{e}");
        assert!(e.contains("/dev/ttyACM1 (2341:0043)") && e.contains("/dev/ttyACM2"), "{e}");
        let e = pick(&[], false).unwrap_err().to_string();
        assert!(e.starts_with("no USB serial port found"), "{e}");
    }

    #[test]
    fn a_port_not_in_the_list_has_no_usb_identity() {
        let p = lookup("/dev/ttyNOPE0");
        assert!(p.usb.is_none());
        assert_eq!(p.usb_info().pid, 0);
    }
}
