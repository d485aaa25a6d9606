//! The line printed after each story: `N tokens in M ms (X tok/s)`.
//!
//! N counts forward passes (prompt positions included, as llama2.c's `run` counts them), M is
//! wall time in whole milliseconds, and the rate is computed from microseconds so that short
//! runs still get a meaningful figure. [`Reported::parse`] reads the line back (`esp-llm chat`),
//! so printing and parsing live side by side and are tested against each other. The REPL's
//! other fixed output that clients and tests read is here too: the boot lines ([`Banner`],
//! [`READY`]), the [`PROMPT`] and the Ctrl-C line ([`INTERRUPTED`]).

use core::fmt;

/// A finished run's size and time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    /// Forward passes run.
    pub tokens: usize,
    /// Elapsed time in microseconds.
    pub micros: u64,
}

impl Summary {
    /// Tokens per second, if any time elapsed.
    pub fn tokens_per_second(&self) -> Option<f64> {
        (self.micros > 0).then(|| self.tokens as f64 * 1e6 / self.micros as f64)
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let unit = if self.tokens == 1 { "token" } else { "tokens" };
        write!(f, "{} {unit} in {} ms (", self.tokens, self.micros / 1000)?;
        match self.tokens_per_second() {
            Some(r) => write!(f, "{r:.2} tok/s)"),
            None => write!(f, "- tok/s)"),
        }
    }
}

/// The prompt the REPL prints when it waits for a line (at the start of a line).
pub const PROMPT: &str = "> ";

/// The first line the board prints at boot, with the chip's name: `\nesp-llm on esp32c3\n`
/// (the line break first, so that it starts a line after whatever the boot ROM printed).
pub struct Banner<'a>(pub &'a str);

impl fmt::Display for Banner<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "\nesp-llm on {}", self.0)
    }
}

/// The line that ends the boot messages (model, errors), before the first [`PROMPT`].
pub const READY: &str = "type a prompt, or /help\n";

/// The line printed when Ctrl-C (the byte [`CTRL_C`]) stopped a story, before its summary.
pub const INTERRUPTED: &str = "^C";

/// The byte that stops a story (defined with the line assembler that reports it).
pub use crate::line::CTRL_C;

/// A summary line as a client reads it back: the whole milliseconds and the rate as printed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reported {
    /// Forward passes run.
    pub tokens: usize,
    /// Elapsed time in whole milliseconds.
    pub ms: u64,
    /// Tokens per second, `None` when printed as `-` (no time elapsed).
    pub tok_per_s: Option<f64>,
}

impl Reported {
    /// Parses what [`Summary`]'s `Display` prints (without the line end; a trailing CR is
    /// ignored). `None` for any other line.
    pub fn parse(line: &str) -> Option<Reported> {
        let line = line.trim_end_matches('\r');
        let (tokens, rest) = line.split_once(' ')?;
        let rest = rest.strip_prefix("tokens in ").or_else(|| rest.strip_prefix("token in "))?;
        let (ms, rest) = rest.split_once(" ms (")?;
        let rate = rest.strip_suffix(" tok/s)")?;
        Some(Reported {
            tokens: tokens.parse().ok()?,
            ms: ms.parse().ok()?,
            tok_per_s: if rate == "-" { None } else { Some(rate.parse().ok()?) },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::string::ToString;

    #[test]
    fn formats_the_summary() {
        assert_eq!(
            Summary { tokens: 256, micros: 3_200_000 }.to_string(),
            "256 tokens in 3200 ms (80.00 tok/s)"
        );
        assert_eq!(
            Summary { tokens: 1, micros: 1500 }.to_string(),
            "1 token in 1 ms (666.67 tok/s)"
        );
        assert_eq!(
            Summary { tokens: 3, micros: 999 }.to_string(),
            "3 tokens in 0 ms (3003.00 tok/s)"
        );
        assert_eq!(Summary { tokens: 0, micros: 0 }.to_string(), "0 tokens in 0 ms (- tok/s)");
    }

    #[test]
    fn the_boot_lines_are_the_firmwares() {
        // The bytes the firmware printed before they were defined here.
        let boot = std::format!("{}{READY}{PROMPT}", Banner("esp32c3"));
        assert_eq!(boot, "\nesp-llm on esp32c3\ntype a prompt, or /help\n> ");
    }

    #[test]
    fn rate_matches_definition() {
        let s = Summary { tokens: 7, micros: 123_456 };
        let r = s.tokens_per_second().unwrap();
        assert!((r - 7.0 / 0.123456).abs() < 1e-9);
    }

    #[test]
    fn what_is_printed_parses_back() {
        for (tokens, micros) in [(256, 3_200_000), (1, 1500), (3, 999), (0, 0), (7, 123_456)] {
            let s = Summary { tokens, micros };
            let r = Reported::parse(&s.to_string()).unwrap();
            assert_eq!((r.tokens, r.ms), (tokens, micros / 1000));
            match (r.tok_per_s, s.tokens_per_second()) {
                (Some(a), Some(b)) => assert!((a - b).abs() <= 0.005, "{a} {b}"),
                (a, b) => assert_eq!(a, b),
            }
        }
        assert_eq!(Reported::parse("256 tokens in 3200 ms (80.00 tok/s)\r").unwrap().ms, 3200);
        for not in ["Once upon a time", "", "x tokens in 1 ms (1.00 tok/s)", "3 tokens in 1 ms"] {
            assert_eq!(Reported::parse(not), None, "{not}");
        }
    }
}
