//! Sizes in one set of units everywhere: `--flash-size`, `plan --flash`, `--max-memory` take
//! `4MB`, `16M`, `512K`, `32mb` or plain bytes; `inspect`, `plan`, `run -v` and the tables print
//! binary units (1 MB = 1024 KB = 1048576 bytes, as flash chips are sized).

use anyhow::{bail, Result};

/// Parses `N`, `NK`, `NKB`, `NM`, `NMB`, `NG`, `NGB` (any case, binary multiples) into bytes.
pub fn parse(s: &str) -> Result<usize> {
    let t = s.trim();
    let lower = t.to_ascii_lowercase();
    let digits_end = lower.find(|c: char| !c.is_ascii_digit()).unwrap_or(lower.len());
    let (num, unit) = lower.split_at(digits_end);
    let shift = match unit.trim() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        _ => bail!("size {t:?}: unknown unit {unit:?} (use e.g. 4MB, 512K or a byte count)"),
    };
    let Ok(n) = num.parse::<usize>() else {
        bail!("size {t:?}: expected a whole number with an optional K/M/G unit, e.g. 16MB");
    };
    n.checked_mul(1usize << shift).ok_or_else(|| anyhow::anyhow!("size {t:?} is too large"))
}

/// A flash or PSRAM size: like [`parse`], but a bare number is megabytes (`--flash 16`).
pub fn parse_mb(s: &str) -> Result<usize> {
    let t = s.trim();
    if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
        return parse(&format!("{t}M"));
    }
    parse(t)
}

/// [`parse_mb`] as a clap `value_parser` (`--flash`, `--psram`, `--flash-size`).
pub fn mb_arg(s: &str) -> std::result::Result<usize, String> {
    parse_mb(s).map_err(|e| format!("{e:#}"))
}

/// A byte count in the largest binary unit that keeps it readable: `1.0 MB`, `6.1 KB`, `512 B`.
pub fn human(bytes: usize) -> String {
    let b = bytes as f64;
    if bytes >= 1 << 30 {
        format!("{:.1} GB", b / (1u64 << 30) as f64)
    } else if bytes >= 1 << 20 {
        format!("{:.1} MB", b / (1u64 << 20) as f64)
    } else if bytes >= 1 << 10 {
        format!("{:.1} KB", b / 1024.0)
    } else {
        format!("{bytes} B")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_in_every_spelling() {
        for (s, want) in [
            ("4mb", 4 << 20),
            ("16MB", 16 << 20),
            ("32M", 32 << 20),
            ("512K", 512 << 10),
            ("1048576", 1 << 20),
            ("2 GiB", 2 << 30),
        ] {
            assert_eq!(parse(s).unwrap(), want, "{s}");
        }
        for bad in ["", "MB", "4TB", "-1M", "1.5M", "99999999999999999999G"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn flash_sizes_default_to_megabytes() {
        assert_eq!(parse_mb("16").unwrap(), 16 << 20);
        assert_eq!(parse_mb("4mb").unwrap(), 4 << 20);
        assert_eq!(parse_mb("8388608B").unwrap(), 8 << 20);
    }

    #[test]
    fn human_units() {
        assert_eq!(human(512), "512 B");
        assert_eq!(human(6227), "6.1 KB");
        assert_eq!(human(3 << 20), "3.0 MB");
    }
}
