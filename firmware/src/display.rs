//! The story on the board's screen (feature `display`): an ST7789 panel over SPI through the
//! `mipidsi` driver, drawn by `esp-llm-screen` (the code `esp-llm preview` draws with on the PC).
//!
//! Pins, one block per chip in [`lcd_pins!`]. The ESP32-S3 default is the Waveshare
//! ESP32-S3-LCD-2 (2-inch 240 x 320 ST7789, no reset line, backlight on a GPIO), taken from
//! Waveshare's demo package for the board, `ESP32-S3-LCD-2-Demo/ESP-IDF/06_lvgl_example/main/
//! main.c` (SCLK 39, MOSI 38, MISO 40 unused, LCD_DC 42, LCD_CS 45, LCD_RST -1, BK_LIGHT 1,
//! SPI mode 0, 80 MHz pixel clock, colours inverted, RGB order), public in a copy at
//! github.com/AJV009/esp32-s3-lcd-2-badge (`ESP32-S3-LCD-2-Demo/`, Waveshare's files). The
//! other chips' pins are free GPIOs of their DevKits, for a panel wired to them (and for CI,
//! which builds them): another board changes its block of [`lcd_pins!`].
//!
//! Cost. Counted (on the host, `esp-llm preview`, same screen code): a stories260K story of 245
//! tokens took 106 draws and 728 cell redraws (3.0 cells per token, status digits included);
//! a 334-token story with one half-screen scroll, 151 draws and 1537 cells (4.6 per token).
//! Estimated, not measured on a panel: a cell is one address window (CASET, RASET, RAMWR) plus
//! 8 x 13 RGB565 pixels = 208 bytes, ~42 us on a 40 MHz bus, ~50-70 us with the commands and
//! the blocking driver's per-transfer overhead. So ~0.15-0.3 ms per token, under 1% of a ~26 ms
//! stories260K token on the S3 (`esp-llm plan` estimates ~38 tok/s), plus ~31 ms once to
//! clear the screen at boot. The firmware measures the real figure: after each story it
//! prints the draws, cells and milliseconds spent drawing.

use alloc::boxed::Box;
use alloc::format;
use alloc::string::String;
use embedded_hal_bus::spi::{ExclusiveDevice, NoDelay};
use esp_hal::delay::Delay;
use esp_hal::gpio::{AnyPin, Level, Output, OutputConfig};
use esp_hal::spi::master::{Config as SpiConfig, Spi};
use esp_hal::spi::Mode;
use esp_hal::time::{Instant, Rate};
use esp_hal::Blocking;
use esp_llm_screen::{Screen, Status, LCD2_SIZE};
use mipidsi::interface::SpiInterface;
use mipidsi::models::ST7789;
use mipidsi::options::ColorInversion;
use mipidsi::{Builder, NoResetPin};

/// SPI clock. Waveshare's demo runs the LCD-2 at 80 MHz; 40 MHz is within what any ESP32
/// routes through the GPIO matrix to any pin, and the draws are short.
const SPI_MHZ: u32 = 40;

/// The panel's wiring.
pub struct Pins<'d> {
    pub sck: AnyPin<'d>,
    pub mosi: AnyPin<'d>,
    pub cs: AnyPin<'d>,
    pub dc: AnyPin<'d>,
    /// Driven high to light the panel (`None`: always on).
    pub backlight: Option<AnyPin<'d>>,
    /// Hardware reset, active low (`None`: software reset only, as on the LCD-2).
    pub reset: Option<AnyPin<'d>>,
}

/// The pins of `$p` (esp-hal's `Peripherals`) for this chip's board.
#[macro_export]
macro_rules! lcd_pins {
    ($p:ident) => {{
        use $crate::display::Pins;
        // Waveshare ESP32-S3-LCD-2 (source in the module header).
        #[cfg(feature = "esp32s3")]
        let pins = Pins {
            sck: $p.GPIO39.into(),
            mosi: $p.GPIO38.into(),
            cs: $p.GPIO45.into(),
            dc: $p.GPIO42.into(),
            backlight: Some($p.GPIO1.into()),
            reset: None,
        };
        // ESP32-C3 DevKit: GPIO 4-7 and 10, clear of UART0 (20/21), USB (18/19), the
        // strapping pins (2, 8, 9) and the flash (12-17).
        #[cfg(feature = "esp32c3")]
        let pins = Pins {
            sck: $p.GPIO6.into(),
            mosi: $p.GPIO7.into(),
            cs: $p.GPIO10.into(),
            dc: $p.GPIO4.into(),
            backlight: Some($p.GPIO5.into()),
            reset: None,
        };
        // ESP32-C6 DevKit: clear of UART0 (16/17), USB (12/13), strapping (8, 9, 15).
        #[cfg(feature = "esp32c6")]
        let pins = Pins {
            sck: $p.GPIO6.into(),
            mosi: $p.GPIO7.into(),
            cs: $p.GPIO18.into(),
            dc: $p.GPIO19.into(),
            backlight: Some($p.GPIO20.into()),
            reset: Some($p.GPIO21.into()),
        };
        // ESP32-P4 board: header GPIOs clear of UART0 (37/38) and USB (24-27).
        #[cfg(feature = "esp32p4")]
        let pins = Pins {
            sck: $p.GPIO20.into(),
            mosi: $p.GPIO21.into(),
            cs: $p.GPIO22.into(),
            dc: $p.GPIO23.into(),
            backlight: Some($p.GPIO32.into()),
            reset: Some($p.GPIO33.into()),
        };
        pins
    }};
}

type Panel = mipidsi::Display<
    SpiInterface<
        'static,
        ExclusiveDevice<Spi<'static, Blocking>, Output<'static>, NoDelay>,
        Output<'static>,
    >,
    ST7789,
    NoResetPin,
>;

/// The panel and the screen's model of what is on it.
pub struct Lcd {
    panel: Panel,
    screen: Screen,
    _backlight: Option<Output<'static>>,
    /// This story's drawing: draws, cells drawn, microseconds spent.
    pub draws: usize,
    pub cells: usize,
    pub micros: u64,
    /// Set when a draw failed; drawing stops until the next story.
    pub error: Option<String>,
}

impl Lcd {
    /// Brings up SPI2 and the panel (portrait, 240 x 320) and clears it.
    pub fn new(
        spi: esp_hal::peripherals::SPI2<'static>,
        pins: Pins<'static>,
    ) -> Result<Lcd, String> {
        let out = |pin: AnyPin<'static>, level| Output::new(pin, level, OutputConfig::default());
        let config =
            SpiConfig::default().with_frequency(Rate::from_mhz(SPI_MHZ)).with_mode(Mode::_0);
        let bus = Spi::new(spi, config)
            .map_err(|e| format!("SPI: {e:?}"))?
            .with_sck(pins.sck)
            .with_mosi(pins.mosi);
        let device = ExclusiveDevice::new_no_delay(bus, out(pins.cs, Level::High))
            .map_err(|e| format!("chip select: {e:?}"))?;
        let mut delay = Delay::new();
        if let Some(rst) = pins.reset {
            let mut rst = out(rst, Level::High);
            rst.set_low();
            delay.delay_micros(20);
            rst.set_high();
            delay.delay_millis(120);
        }
        // One glyph (8 x 13 RGB565 = 208 bytes) per SPI write.
        let buffer: &'static mut [u8; 512] = Box::leak(Box::new([0; 512]));
        let interface = SpiInterface::new(device, out(pins.dc, Level::Low), buffer);
        let panel = Builder::new(ST7789, interface)
            .display_size(LCD2_SIZE.width as u16, LCD2_SIZE.height as u16)
            .invert_colors(ColorInversion::Inverted)
            .init(&mut delay)
            .map_err(|e| format!("panel init: {e:?}"))?;
        let backlight = pins.backlight.map(|b| out(b, Level::High));
        let mut lcd = Lcd {
            panel,
            screen: Screen::new(LCD2_SIZE),
            _backlight: backlight,
            draws: 0,
            cells: 0,
            micros: 0,
            error: None,
        };
        lcd.draw();
        Ok(lcd)
    }

    /// A new story: the text area empties (drawn with the first word).
    pub fn begin(&mut self) {
        self.screen.clear();
        self.draws = 0;
        self.cells = 0;
        self.micros = 0;
        self.error = None;
    }

    /// One token's text; draws when a word is complete.
    pub fn token(&mut self, text: &[u8], forced: bool, status: &Status) {
        if self.screen.push(text, forced) {
            self.screen.set_status(status);
            self.draw();
        }
    }

    /// The end of the story: the last piece and the final status.
    pub fn end(&mut self, status: &Status) {
        self.screen.finish();
        self.screen.set_status(status);
        self.draw();
    }

    fn draw(&mut self) {
        if self.error.is_some() {
            return;
        }
        let start = Instant::now();
        match self.screen.draw(&mut self.panel) {
            Ok(n) => self.cells += n,
            Err(e) => self.error = Some(format!("{e:?}")),
        }
        self.draws += 1;
        self.micros += start.elapsed().as_micros();
    }
}
