//! The client side of the firmware's REPL protocol, over any [`Link`] (a serial port or an
//! emulator's TCP UART, opened by [`crate::port`]).
//!
//! The protocol is line based. The board prints `> ` when it waits for a line; a line starting
//! with `/` is a command, any other line a prompt. A prompt's answer is the streamed story,
//! a newline, then a summary line `N tokens in M ms (X tok/s)`, then `> ` again. The byte 0x03
//! (Ctrl-C) stops a generation. The summary line, prompt and Ctrl-C marker are the firmware's
//! own ([`esp_llm_board::summary`]): one implementation prints and parses them.

use crate::port::Link;
use anyhow::{bail, Context, Result};
use esp_llm_board::summary::{Reported, CTRL_C, INTERRUPTED, PROMPT};
use std::io::ErrorKind;
use std::time::{Duration, Instant};

/// The client side of the REPL over a link.
pub struct Repl {
    link: Box<dyn Link>,
    /// Bytes received but not consumed yet.
    pending: Vec<u8>,
    pub timeout: Duration,
    /// When set (by a Ctrl-C handler), the next poll sends 0x03 to stop a generation.
    pub interrupt: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
}

/// What a prompt produced.
#[derive(Debug, Clone)]
pub struct Answer {
    /// The story as the board printed it (without the newline before the summary).
    pub text: Vec<u8>,
    /// The summary line, if one came.
    pub summary: Option<Reported>,
    /// Whether the board reported an interruption (`^C`).
    pub interrupted: bool,
}

impl Repl {
    pub fn new(mut link: Box<dyn Link>, timeout: Duration) -> Result<Self> {
        link.set_read_timeout(Duration::from_millis(50))?;
        Ok(Repl { link, pending: Vec::new(), timeout, interrupt: None })
    }

    /// Reads whatever arrives within one poll interval into `pending`; returns the new bytes.
    fn poll(&mut self) -> Result<&[u8]> {
        let mut buf = [0u8; 4096];
        let start = self.pending.len();
        match self.link.read(&mut buf) {
            Ok(0) => bail!("the board closed the connection"),
            Ok(n) => self.pending.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::TimedOut | ErrorKind::WouldBlock | ErrorKind::Interrupted
                ) => {}
            Err(e) => return Err(e).context("reading from the board"),
        }
        Ok(&self.pending[start..])
    }

    /// Reads until the board's `> ` prompt ends the output; returns what came before it.
    /// `on_bytes` sees bytes as they arrive (for streaming).
    pub fn read_until_prompt(&mut self, on_bytes: &mut dyn FnMut(&[u8])) -> Result<Vec<u8>> {
        let timeout = self.timeout;
        let deadline_from = |now: Instant| now + timeout;
        let mut deadline = deadline_from(Instant::now());
        let mut shown = 0;
        loop {
            if let Some(at) = find_prompt(&self.pending) {
                if at > shown {
                    on_bytes(&self.pending[shown..at]);
                }
                let out = self.pending[..at].to_vec();
                self.pending.drain(..at + PROMPT.len());
                return Ok(out);
            }
            // Hold back a possible partial prompt at the end.
            let safe = self.pending.len().saturating_sub(PROMPT.len() - 1);
            if safe > shown {
                on_bytes(&self.pending[shown..safe]);
                shown = safe;
            }
            if let Some(flag) = &self.interrupt {
                if flag.swap(false, std::sync::atomic::Ordering::SeqCst) {
                    self.link.write_all(&[CTRL_C]).context("writing to the board")?;
                    self.link.flush().ok();
                }
            }
            let n = self.poll()?.len();
            if n > 0 {
                deadline = deadline_from(Instant::now());
            } else if Instant::now() > deadline {
                bail!(
                    "the board did not answer within {} s (is the esp-llm firmware running? try `esp-llm monitor` and reset the board)",
                    self.timeout.as_secs()
                );
            }
        }
    }

    /// Sends raw bytes.
    pub fn send(&mut self, bytes: &[u8]) -> Result<()> {
        self.link.write_all(bytes).context("writing to the board")?;
        self.link.flush().ok();
        Ok(())
    }

    /// Waits for the first prompt (nudging the board with an empty line if it is quiet).
    pub fn sync(&mut self) -> Result<()> {
        let timeout = self.timeout;
        self.timeout = Duration::from_millis(1500);
        let first = self.read_until_prompt(&mut |_| {});
        self.timeout = timeout;
        if first.is_err() {
            self.send(b"\n")?;
            self.read_until_prompt(&mut |_| {})?;
        }
        Ok(())
    }

    /// Sends a `/` command and returns the board's reply text.
    pub fn command(&mut self, line: &str) -> Result<String> {
        self.send(format!("{line}\n").as_bytes())?;
        let out = self.read_until_prompt(&mut |_| {})?;
        Ok(String::from_utf8_lossy(&out).trim().to_string())
    }

    /// Sends a prompt and collects the answer, streaming it to `on_bytes`.
    pub fn prompt(&mut self, text: &str, on_bytes: &mut dyn FnMut(&[u8])) -> Result<Answer> {
        self.send(format!("{text}\n").as_bytes())?;
        let out = self.read_until_prompt(on_bytes)?;
        Ok(split_answer(&out))
    }
}

fn find_prompt(buf: &[u8]) -> Option<usize> {
    // The prompt is `> ` at the start of a line and at the end of what the board has sent.
    if buf.ends_with(PROMPT.as_bytes()) {
        let at = buf.len() - PROMPT.len();
        if at == 0 || buf[at - 1] == b'\n' {
            return Some(at);
        }
    }
    None
}

/// Serial consoles end lines with CR LF; the story's own newlines are LF (as on the host).
fn crlf_to_lf(out: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(out.len());
    for (i, &b) in out.iter().enumerate() {
        if !(b == b'\r' && out.get(i + 1) == Some(&b'\n')) {
            v.push(b);
        }
    }
    v
}

/// Splits a prompt's output into story text and summary.
pub fn split_answer(out: &[u8]) -> Answer {
    let out = crlf_to_lf(out);
    let out = out.as_slice();
    let body = out.strip_suffix(b"\n").unwrap_or(out);
    let (before, last) = match body.iter().rposition(|&b| b == b'\n') {
        Some(i) => (&body[..i], &body[i + 1..]),
        None => (&body[..0], body),
    };
    match Reported::parse(&String::from_utf8_lossy(last)) {
        Some(summary) => {
            let mut text = before.to_vec();
            let marker = [b"\n", INTERRUPTED.as_bytes()].concat();
            let interrupted = text.ends_with(&marker);
            if interrupted {
                text.truncate(text.len() - marker.len());
            }
            Answer { text, summary: Some(summary), interrupted }
        }
        None => Answer { text: body.to_vec(), summary: None, interrupted: false },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_split_into_text_and_summary() {
        let a = split_answer(b"Once upon a time\n5 tokens in 10 ms (500.00 tok/s)\n");
        assert_eq!(a.text, b"Once upon a time");
        assert_eq!(a.summary.unwrap().tokens, 5);
        let a = split_answer(b"Once upon\r\na time\r\n5 tokens in 10 ms (500.00 tok/s)\r\n");
        assert_eq!(a.text, b"Once upon\na time");
        let a = split_answer(b"Once upon\n^C\n3 tokens in 1 ms (3000.00 tok/s)\n");
        assert!(a.interrupted);
        assert_eq!(a.text, b"Once upon");
    }

    #[test]
    fn prompt_only_at_line_start() {
        assert_eq!(find_prompt(b"hello\n> "), Some(6));
        assert_eq!(find_prompt(b"> "), Some(0));
        assert_eq!(find_prompt(b"a > "), None);
    }
}
