//! An in-memory RGB565 `DrawTarget`: what `esp-llm preview` renders into and the snapshot tests
//! compare. It counts the pixels written, which is what a draw costs on an SPI panel.

use alloc::vec::Vec;
use embedded_graphics::pixelcolor::{Rgb565, Rgb888};
use embedded_graphics::prelude::*;

pub struct Framebuffer {
    size: Size,
    pixels: Vec<Rgb565>,
    /// Pixels written since creation (or since the caller last reset it).
    pub written: usize,
}

impl Framebuffer {
    /// A black framebuffer of `size`.
    pub fn new(size: Size) -> Framebuffer {
        let n = size.width as usize * size.height as usize;
        Framebuffer { size, pixels: alloc::vec![Rgb565::BLACK; n], written: 0 }
    }

    /// The colour at `p`, if inside.
    pub fn pixel(&self, p: Point) -> Option<Rgb565> {
        self.index(p).map(|i| self.pixels[i])
    }

    /// The pixels as 8-bit RGB triples, row-major (for PNG files).
    pub fn to_rgb8(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.pixels.len() * 3);
        for &c in &self.pixels {
            let c = Rgb888::from(c);
            out.extend_from_slice(&[c.r(), c.g(), c.b()]);
        }
        out
    }

    fn index(&self, p: Point) -> Option<usize> {
        let (w, h) = (self.size.width as i32, self.size.height as i32);
        (p.x >= 0 && p.y >= 0 && p.x < w && p.y < h).then(|| (p.y * w + p.x) as usize)
    }
}

impl OriginDimensions for Framebuffer {
    fn size(&self) -> Size {
        self.size
    }
}

impl DrawTarget for Framebuffer {
    type Color = Rgb565;
    type Error = core::convert::Infallible;

    fn draw_iter<I>(&mut self, pixels: I) -> Result<(), Self::Error>
    where
        I: IntoIterator<Item = Pixel<Self::Color>>,
    {
        for Pixel(p, c) in pixels {
            if let Some(i) = self.index(p) {
                self.pixels[i] = c;
                self.written += 1;
            }
        }
        Ok(())
    }
}
