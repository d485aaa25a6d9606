//! Turning a byte stream from a serial port into lines.
//!
//! Serial terminals end lines with CR (most terminals' Enter), LF (pipes, `echo`) or CRLF
//! (Windows, pasted text); all three end exactly one line. A line longer than the buffer is not
//! truncated into a wrong prompt: its bytes are dropped up to the next line end, and then one
//! [`Event::TooLong`] is reported, so the REPL is back in step for the next line. Bytes that are
//! not UTF-8 give [`Event::NotUtf8`] at the line end. Ctrl-C (0x03) is reported at once and
//! clears the partial line. Backspace and DEL erase the last byte, as a terminal user expects.
//! Memory is one fixed buffer: a 12 KB burst costs nothing but the time to scan it.

/// The ASCII byte a terminal sends for Ctrl-C.
pub const CTRL_C: u8 = 0x03;

/// Something the assembler reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event<'a> {
    /// A complete line, without its terminator (may be empty).
    Line(&'a str),
    /// A line longer than `limit` bytes ended; it was discarded.
    TooLong {
        /// The buffer size in bytes.
        limit: usize,
    },
    /// A line ended that was not valid UTF-8; it was discarded.
    NotUtf8 {
        /// Offset of the first invalid byte in the line.
        at: usize,
    },
    /// Ctrl-C was received; any partial line was discarded.
    Interrupt,
}

/// Collects bytes into lines of at most `N` bytes.
#[derive(Debug, Clone)]
pub struct LineAssembler<const N: usize> {
    buf: [u8; N],
    len: usize,
    overflow: bool,
    after_cr: bool,
}

impl<const N: usize> Default for LineAssembler<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> LineAssembler<N> {
    /// An empty assembler.
    pub const fn new() -> Self {
        LineAssembler { buf: [0; N], len: 0, overflow: false, after_cr: false }
    }

    /// Bytes of the line so far (for echo or tests).
    pub fn pending(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    /// Whether the current line has already overflowed.
    pub fn overflowed(&self) -> bool {
        self.overflow
    }

    /// Forgets the partial line.
    pub fn clear(&mut self) {
        self.len = 0;
        self.overflow = false;
    }

    /// Feeds one byte; returns an event when it completes something.
    pub fn push(&mut self, byte: u8) -> Option<Event<'_>> {
        let after_cr = core::mem::replace(&mut self.after_cr, false);
        match byte {
            b'\n' if after_cr => None, // the LF of a CRLF: the CR already ended the line
            b'\r' | b'\n' => {
                self.after_cr = byte == b'\r';
                Some(self.finish())
            }
            CTRL_C => {
                self.clear();
                Some(Event::Interrupt)
            }
            0x08 | 0x7f => {
                if !self.overflow {
                    self.len = self.len.saturating_sub(1);
                }
                None
            }
            _ => {
                if self.len < N {
                    self.buf[self.len] = byte;
                    self.len += 1;
                } else {
                    self.overflow = true;
                }
                None
            }
        }
    }

    fn finish(&mut self) -> Event<'_> {
        let (len, overflow) = (self.len, self.overflow);
        self.clear();
        if overflow {
            return Event::TooLong { limit: N };
        }
        match core::str::from_utf8(&self.buf[..len]) {
            Ok(line) => Event::Line(line),
            Err(e) => Event::NotUtf8 { at: e.valid_up_to() },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::string::{String, ToString};
    use std::vec::Vec;

    /// Owned copy of an event, to collect them across pushes.
    #[derive(Debug, PartialEq)]
    enum Owned {
        Line(String),
        TooLong(usize),
        NotUtf8(usize),
        Interrupt,
    }

    fn feed<const N: usize>(a: &mut LineAssembler<N>, bytes: &[u8]) -> Vec<Owned> {
        let mut out = Vec::new();
        for &b in bytes {
            if let Some(e) = a.push(b) {
                out.push(match e {
                    Event::Line(s) => Owned::Line(s.to_string()),
                    Event::TooLong { limit } => Owned::TooLong(limit),
                    Event::NotUtf8 { at } => Owned::NotUtf8(at),
                    Event::Interrupt => Owned::Interrupt,
                });
            }
        }
        out
    }

    fn line(s: &str) -> Owned {
        Owned::Line(s.to_string())
    }

    #[test]
    fn cr_lf_and_crlf_each_end_one_line() {
        let mut a = LineAssembler::<64>::new();
        let got = feed(&mut a, b"one\rtwo\nthree\r\nfour\n\rfive\r");
        // "\n\r" is LF then CR: two line ends, so an empty line between four and five.
        assert_eq!(
            got,
            [line("one"), line("two"), line("three"), line("four"), line(""), line("five")]
        );
    }

    #[test]
    fn crlf_split_across_reads_is_one_line_end() {
        let mut a = LineAssembler::<16>::new();
        let mut got = feed(&mut a, b"hi\r");
        got.extend(feed(&mut a, b"\nthere\r"));
        assert_eq!(got, [line("hi"), line("there")]);
    }

    #[test]
    fn overlong_line_is_rejected_then_resyncs() {
        let mut a = LineAssembler::<8>::new();
        let got = feed(&mut a, b"12345678\n123456789\nok\n");
        assert_eq!(got, [line("12345678"), Owned::TooLong(8), line("ok")]);
    }

    #[test]
    fn burst_of_12k_without_newline_then_a_good_line() {
        let mut a = LineAssembler::<256>::new();
        let mut burst: Vec<u8> = (0..12 * 1024).map(|i| b'a' + (i % 26) as u8).collect();
        burst.extend_from_slice(b"\r\n/help\r\n");
        let got = feed(&mut a, &burst);
        assert_eq!(got, [Owned::TooLong(256), line("/help")]);
    }

    #[test]
    fn burst_of_many_short_lines_loses_none() {
        let mut a = LineAssembler::<32>::new();
        let mut burst = Vec::new();
        let mut want = Vec::new();
        let mut i = 0;
        while burst.len() < 12 * 1024 {
            let s = std::format!("line {i}");
            burst.extend_from_slice(s.as_bytes());
            burst.extend_from_slice(if i % 2 == 0 { b"\r\n" } else { b"\n" });
            want.push(line(&s));
            i += 1;
        }
        assert_eq!(feed(&mut a, &burst), want);
    }

    #[test]
    fn non_utf8_is_reported_with_offset() {
        let mut a = LineAssembler::<32>::new();
        let got = feed(&mut a, b"ab\xffcd\nok\n");
        assert_eq!(got, [Owned::NotUtf8(2), line("ok")]);
        // A multi-byte character is fine.
        assert_eq!(feed(&mut a, "été\n".as_bytes()), [line("été")]);
    }

    #[test]
    fn ctrl_c_interrupts_and_clears() {
        let mut a = LineAssembler::<32>::new();
        let got = feed(&mut a, b"abc\x03def\n");
        assert_eq!(got, [Owned::Interrupt, line("def")]);
        assert!(a.pending().is_empty());
    }

    #[test]
    fn backspace_erases() {
        let mut a = LineAssembler::<32>::new();
        assert_eq!(feed(&mut a, b"abx\x08c\x7f\x7f\x7f\x7fz\n"), [line("z")]);
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_lines_stay_bounded() {
        // A deterministic xorshift stream of bytes, biased towards line ends.
        let mut a = LineAssembler::<16>::new();
        let mut s: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..200_000 {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            let b = if s.is_multiple_of(20) { b'\n' } else { (s >> 32) as u8 };
            if let Some(Event::Line(l)) = a.push(b) {
                assert!(l.len() <= 16);
            }
            assert!(a.pending().len() <= 16);
        }
    }
}
