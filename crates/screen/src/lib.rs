//! esp-llm screen: the story on a small colour display, on any embedded-graphics `DrawTarget`.
//!
//! The screen is two grids of monospaced character cells: a status line at the top (tokens,
//! position against the context cap, tok/s, temperature) and the story below it, the prompt
//! in its own colour, then the generated text streaming in ([`text`] wraps and scrolls it).
//! Drawing compares each cell with the one last drawn there and redraws only the cells that
//! differ, each as one rectangle of pixels (one address window and one burst on an SPI panel).
//! Appending a word therefore costs a few cells; a scroll redraws the text area once, which is
//! why the grid scrolls several rows at a time.
//!
//! The firmware draws on the ST7789 through mipidsi; `esp-llm preview` draws the same cells
//! into a [`Framebuffer`] and writes a PNG; the tests compare framebuffers pixel for pixel.
#![cfg_attr(not(test), no_std)]

extern crate alloc;

pub mod framebuffer;
pub mod text;

pub use framebuffer::Framebuffer;
pub use text::{Cell, Ink, Text};

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write;
use embedded_graphics::mono_font::{iso_8859_1, MonoFont, MonoTextStyleBuilder};
use embedded_graphics::pixelcolor::Rgb565;
use embedded_graphics::prelude::*;
use embedded_graphics::primitives::Rectangle;
use embedded_graphics::text::{Baseline, Text as GText};

/// The ESP32-S3-LCD-2's panel in its native (portrait) orientation: 240 x 320 pixels.
pub const LCD2_SIZE: Size = Size::new(240, 320);

/// Tokens after which a draw is due even inside a long word (see [`Screen::push`]).
pub const MAX_TOKENS_PER_DRAW: usize = 8;

/// Colours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Theme {
    pub background: Rgb565,
    pub prompt: Rgb565,
    pub story: Rgb565,
    pub placeholder: Rgb565,
    pub status_text: Rgb565,
    pub status_background: Rgb565,
}

impl Default for Theme {
    fn default() -> Theme {
        Theme {
            background: Rgb565::BLACK,
            // Amber for what the user typed, warm white for the model's words.
            prompt: Rgb565::new(31, 45, 0),
            story: Rgb565::new(29, 59, 27),
            placeholder: Rgb565::new(31, 16, 16),
            status_text: Rgb565::new(20, 52, 31),
            status_background: Rgb565::new(2, 6, 9),
        }
    }
}

/// Fonts, colours, margins and scrolling.
#[derive(Clone, Copy)]
pub struct Config {
    pub text_font: &'static MonoFont<'static>,
    pub status_font: &'static MonoFont<'static>,
    pub theme: Theme,
    /// Left and right margin of the text, in pixels.
    pub margin: u32,
    /// Rows scrolled at once when the text reaches the bottom; 0 = half the rows.
    pub scroll: usize,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            // Latin-1 fonts: ASCII plus the accented letters and signs of Western European
            // text; anything else is a placeholder.
            text_font: &iso_8859_1::FONT_8X13,
            status_font: &iso_8859_1::FONT_6X10,
            theme: Theme::default(),
            margin: 4,
            scroll: 0,
        }
    }
}

/// What the status line shows.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Status {
    /// Tokens generated (not counting the prompt).
    pub generated: usize,
    /// Positions filled in the KV cache (prompt included).
    pub pos: usize,
    /// The context cap: the most positions the KV cache holds.
    pub cap: usize,
    /// Generation speed; `None` before there is one.
    pub tok_per_s: Option<f32>,
    /// Whether `tok_per_s` is an estimate (the host preview) rather than measured.
    pub estimated: bool,
    pub temperature: f32,
}

impl Status {
    /// The line as drawn, e.g. ` 42 tok  48/512  18.2 tok/s  t=1`. The numbers have fixed
    /// widths (up to 3 digits of tokens, the cap's digits for the position, 4 characters of
    /// speed) so that a new value redraws only the digits that changed.
    pub fn line(&self) -> String {
        let mut s = String::new();
        let digits = {
            let (mut d, mut c) = (1, self.cap);
            while c >= 10 {
                c /= 10;
                d += 1;
            }
            d
        };
        let _ = write!(s, "{:>3} tok {:>digits$}/{}", self.generated, self.pos, self.cap);
        if let Some(r) = self.tok_per_s {
            let mark = if self.estimated { "~" } else { " " };
            let _ = write!(s, " {mark}{r:>4.1} tok/s");
        }
        let _ = write!(s, "  t={}", self.temperature);
        s
    }
}

/// The screen's model of itself: what should be shown, and what was last drawn.
pub struct Screen {
    config: Config,
    size: Size,
    text: Text,
    status: Vec<Cell>,
    /// What is on the display now, cell for cell (valid once `cleared`).
    drawn_text: Vec<Cell>,
    drawn_status: Vec<Cell>,
    /// Whether the display was cleared to our background (the first draw does it).
    cleared: bool,
    status_height: u32,
    text_origin: Point,
    tokens_since_draw: usize,
}

impl Screen {
    /// A screen of `size` pixels with the default fonts and colours.
    pub fn new(size: Size) -> Screen {
        Screen::with_config(size, Config::default())
    }

    pub fn with_config(size: Size, config: Config) -> Screen {
        let tf = config.text_font.character_size;
        let sf = config.status_font.character_size;
        let status_height = sf.height + 2;
        let text_top = status_height + 2;
        let cols = (size.width.saturating_sub(2 * config.margin) / tf.width.max(1)) as usize;
        let rows = (size.height.saturating_sub(text_top) / tf.height.max(1)) as usize;
        let status_cols = (size.width.saturating_sub(2) / sf.width.max(1)).max(1) as usize;
        let scroll = if config.scroll == 0 { rows.max(2) / 2 } else { config.scroll };
        let text = Text::new(cols, rows, scroll, config.text_font);
        let n = text.cells().len();
        Screen {
            config,
            size,
            text,
            status: alloc::vec![Cell::BLANK; status_cols],
            drawn_text: alloc::vec![Cell::BLANK; n],
            drawn_status: alloc::vec![Cell::BLANK; status_cols],
            cleared: false,
            status_height,
            text_origin: Point::new(config.margin as i32, text_top as i32),
            tokens_since_draw: 0,
        }
    }

    /// The story's layout (rows, columns, cells).
    pub fn text(&self) -> &Text {
        &self.text
    }

    /// Starts a new story: the text area empties (on the next draw).
    pub fn clear(&mut self) {
        self.text.clear();
        self.tokens_since_draw = 0;
    }

    /// Adds one token's bytes (`forced`: a prompt token). Returns whether a draw is due: the
    /// piece holds a space or newline (a word is complete, so the screen never shows half a
    /// word for long), or [`MAX_TOKENS_PER_DRAW`] tokens came without one.
    pub fn push(&mut self, piece: &[u8], forced: bool) -> bool {
        self.text.push(piece, if forced { Ink::Prompt } else { Ink::Story });
        self.tokens_since_draw += 1;
        piece.iter().any(|b| b.is_ascii_whitespace())
            || self.tokens_since_draw >= MAX_TOKENS_PER_DRAW
    }

    /// Ends the story (a character cut short becomes a placeholder).
    pub fn finish(&mut self) {
        self.text.finish();
    }

    /// Sets the status line (drawn on the next [`Screen::draw`]).
    pub fn set_status(&mut self, status: &Status) {
        let line = status.line();
        let mut chars = line.chars();
        for cell in self.status.iter_mut() {
            *cell = match chars.next() {
                Some(' ') | None => Cell::BLANK,
                Some(c) => Cell { ch: c, ink: Ink::Status },
            };
        }
    }

    /// Draws what changed since the last draw; returns the number of cells drawn. The first
    /// draw clears the whole display.
    pub fn draw<D>(&mut self, target: &mut D) -> Result<usize, D::Error>
    where
        D: DrawTarget<Color = Rgb565>,
    {
        self.tokens_since_draw = 0;
        let theme = self.config.theme;
        if !self.cleared {
            target.clear(theme.background)?;
            let band =
                Rectangle::new(Point::zero(), Size::new(self.size.width, self.status_height));
            target.fill_solid(&band, theme.status_background)?;
            self.drawn_text.fill(Cell::BLANK);
            self.drawn_status.fill(Cell::BLANK);
            self.cleared = true;
        }
        let mut n = 0;
        let tf = self.config.text_font;
        let cols = self.text.cols();
        for (i, (&want, have)) in self.text.cells().iter().zip(&mut self.drawn_text).enumerate() {
            if want != *have {
                let at = self.text_origin
                    + Point::new(
                        ((i % cols) as u32 * tf.character_size.width) as i32,
                        ((i / cols) as u32 * tf.character_size.height) as i32,
                    );
                draw_cell(target, tf, at, want, &theme, theme.background)?;
                *have = want;
                n += 1;
            }
        }
        let sf = self.config.status_font;
        for (i, (&want, have)) in self.status.iter().zip(&mut self.drawn_status).enumerate() {
            if want != *have {
                let at = Point::new(1 + (i as u32 * sf.character_size.width) as i32, 1);
                draw_cell(target, sf, at, want, &theme, theme.status_background)?;
                *have = want;
                n += 1;
            }
        }
        Ok(n)
    }

    /// Forgets what is on the display: the next draw clears it and draws everything (after
    /// the display was used for something else, or re-initialised).
    pub fn invalidate(&mut self) {
        self.cleared = false;
    }
}

/// Draws one cell as a single rectangle of pixels.
fn draw_cell<D>(
    target: &mut D,
    font: &MonoFont<'_>,
    at: Point,
    cell: Cell,
    theme: &Theme,
    background: Rgb565,
) -> Result<(), D::Error>
where
    D: DrawTarget<Color = Rgb565>,
{
    let size = font.character_size;
    let area = Rectangle::new(at, size);
    let ink = match cell.ink {
        _ if cell.is_blank() => return target.fill_solid(&area, background),
        Ink::Placeholder => {
            // A hollow box, one pixel in from the cell's edges: "a character was here".
            let (w, h) = (size.width as i32, size.height as i32);
            let (x0, y0, x1, y1) = (1, 2, w - 2, h - 3);
            let colors = (0..h).flat_map(move |y| {
                (0..w).map(move |x| {
                    let on_box = (x == x0 || x == x1) && (y0..=y1).contains(&y)
                        || (y == y0 || y == y1) && (x0..=x1).contains(&x);
                    if on_box {
                        theme.placeholder
                    } else {
                        background
                    }
                })
            });
            return target.fill_contiguous(&area, colors);
        }
        Ink::Prompt => theme.prompt,
        Ink::Story => theme.story,
        Ink::Status => theme.status_text,
    };
    let style =
        MonoTextStyleBuilder::new().font(font).text_color(ink).background_color(background).build();
    let mut buf = [0u8; 4];
    GText::with_baseline(cell.ch.encode_utf8(&mut buf), at, style, Baseline::Top).draw(target)?;
    Ok(())
}
