//! The two serial ports of the REPL: UART0 (DevKit USB-UART bridges, emulators) and, where the
//! chip has one, the USB-Serial-JTAG port (boards with native USB such as the ESP32-S3-LCD-2).
//! Reading never blocks; a reply goes to the port its line came from.
//!
//! USB-Serial-JTAG writes block while no host reads, so a port that stops draining for
//! [`USB_STALL_MS`] is treated as disconnected until a byte arrives on it again.

use core::fmt;
use esp_hal::time::{Duration, Instant};
use esp_hal::uart::Uart;
#[cfg(feature = "usb-serial-jtag")]
use esp_hal::usb::usb_serial_jtag::UsbSerialJtag;
use esp_hal::Blocking;

/// How long a USB write may wait for the host before the port is considered closed.
#[cfg(feature = "usb-serial-jtag")]
const USB_STALL_MS: u64 = 50;

/// Where a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Port {
    Uart,
    #[cfg(feature = "usb-serial-jtag")]
    Usb,
}

pub struct Console<'d> {
    uart: Uart<'d, Blocking>,
    #[cfg(feature = "usb-serial-jtag")]
    usb: UsbSerialJtag<'d, Blocking>,
    #[cfg(feature = "usb-serial-jtag")]
    usb_alive: bool,
    /// A UART receive error (FIFO overflow in a burst) since it was last reported.
    pub uart_overrun: bool,
}

impl<'d> Console<'d> {
    pub fn new(
        uart: Uart<'d, Blocking>,
        #[cfg(feature = "usb-serial-jtag")] usb: UsbSerialJtag<'d, Blocking>,
    ) -> Self {
        Console {
            uart,
            #[cfg(feature = "usb-serial-jtag")]
            usb,
            #[cfg(feature = "usb-serial-jtag")]
            usb_alive: false,
            uart_overrun: false,
        }
    }

    /// Reads whatever has arrived on `port` into `buf` without waiting.
    pub fn read(&mut self, port: Port, buf: &mut [u8]) -> usize {
        match port {
            Port::Uart => match self.uart.read_buffered(buf) {
                Ok(n) => n,
                Err(_) => {
                    self.uart_overrun = true;
                    0
                }
            },
            #[cfg(feature = "usb-serial-jtag")]
            Port::Usb => {
                let mut n = 0;
                while n < buf.len() {
                    match self.usb.read_byte() {
                        Ok(b) => {
                            buf[n] = b;
                            n += 1;
                        }
                        Err(_) => break,
                    }
                }
                if n > 0 {
                    self.usb_alive = true;
                }
                n
            }
        }
    }

    /// All ports, for polling.
    pub fn ports(&self) -> &'static [Port] {
        #[cfg(feature = "usb-serial-jtag")]
        return &[Port::Uart, Port::Usb];
        #[cfg(not(feature = "usb-serial-jtag"))]
        return &[Port::Uart];
    }

    /// Writes all of `bytes` to `port` (USB: unless the host stopped reading).
    pub fn write(&mut self, port: Port, bytes: &[u8]) {
        match port {
            Port::Uart => {
                let mut rest = bytes;
                while !rest.is_empty() {
                    match self.uart.write(rest) {
                        Ok(n) => rest = &rest[n..],
                        Err(_) => return,
                    }
                }
            }
            #[cfg(feature = "usb-serial-jtag")]
            Port::Usb => {
                if !self.usb_alive {
                    return;
                }
                for &b in bytes {
                    let start = Instant::now();
                    while self.usb.write_byte_nb(b).is_err() {
                        if start.elapsed() > Duration::from_millis(USB_STALL_MS) {
                            self.usb_alive = false;
                            return;
                        }
                    }
                }
                let _ = self.usb.flush_tx_nb();
            }
        }
    }

    /// Waits until UART output has left the FIFO (before timing a run or rebooting).
    pub fn flush(&mut self) {
        let _ = self.uart.flush();
        #[cfg(feature = "usb-serial-jtag")]
        if self.usb_alive {
            let start = Instant::now();
            while self.usb.flush_tx_nb().is_err() {
                if start.elapsed() > Duration::from_millis(USB_STALL_MS) {
                    self.usb_alive = false;
                    break;
                }
            }
        }
    }

    /// A `fmt::Write` for one port.
    pub fn out(&mut self, port: Port) -> Out<'_, 'd> {
        Out { console: self, port }
    }
}

/// Formatting into one port; `\n` becomes `\r\n` for terminals.
pub struct Out<'c, 'd> {
    console: &'c mut Console<'d>,
    port: Port,
}

impl Out<'_, '_> {
    /// Raw bytes (generated text), with the same newline translation.
    pub fn bytes(&mut self, bytes: &[u8]) {
        let mut rest = bytes;
        while let Some(i) = rest.iter().position(|&b| b == b'\n') {
            self.console.write(self.port, &rest[..i]);
            self.console.write(self.port, b"\r\n");
            rest = &rest[i + 1..];
        }
        self.console.write(self.port, rest);
    }
}

impl fmt::Write for Out<'_, '_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.bytes(s.as_bytes());
        Ok(())
    }
}
