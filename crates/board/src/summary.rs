//! The line printed after each story: `N tokens in M ms (X tok/s)`.
//!
//! N counts forward passes (prompt positions included, as llama2.c's `run` counts them), M is
//! wall time in whole milliseconds, and the rate is computed from microseconds so that short
//! runs still get a meaningful figure.

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
    fn rate_matches_definition() {
        let s = Summary { tokens: 7, micros: 123_456 };
        let r = s.tokens_per_second().unwrap();
        assert!((r - 7.0 / 0.123456).abs() < 1e-9);
    }
}
