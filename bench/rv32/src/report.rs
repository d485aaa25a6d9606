//! The benchmark's output lines, shared by the RV32 program and the host reference
//! (`host/`), so that `ci.sh` can compare them with `diff`.

use core::fmt::{self, Write};

/// Writes `tokens: 1 403 ...`.
pub fn tokens_line(w: &mut dyn Write, tokens: &[u32]) -> fmt::Result {
    w.write_str("tokens:")?;
    for t in tokens {
        write!(w, " {t}")?;
    }
    w.write_str("\n")
}

/// Writes `text: ...` with the bytes escaped so the line stays one line and ASCII:
/// `\\`, `\n`, and `\xNN` for anything outside printable ASCII.
pub fn text_line(w: &mut dyn Write, text: &[u8]) -> fmt::Result {
    w.write_str("text: ")?;
    for &b in text {
        match b {
            b'\\' => w.write_str("\\\\")?,
            b'\n' => w.write_str("\\n")?,
            0x20..=0x7e => w.write_char(b as char)?,
            _ => write!(w, "\\x{b:02x}")?,
        }
    }
    w.write_str("\n")
}
