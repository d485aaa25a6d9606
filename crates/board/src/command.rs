//! The REPL's command language.
//!
//! A line that starts with `/` is a command; anything else is a prompt. Values are checked here,
//! so that the firmware only ever sees settings the sampler accepts, and a typo gets a message
//! that says what was expected instead of a silent default.

use core::fmt;

/// What one line asks for.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Command<'a> {
    /// Generate from this prompt (may be empty: a story from BOS alone).
    Prompt(&'a str),
    /// Sampling temperature; 0 is greedy (argmax).
    Temp(f32),
    /// Top-p (nucleus) threshold; 0 or 1 turn nucleus sampling off.
    TopP(f32),
    /// Seed of the sampler's RNG.
    Seed(u64),
    /// Forward passes per generation, prompt included; 0 = the whole context.
    Steps(usize),
    /// Print chip, clocks, model, memory placement, context cap, kernels.
    Info,
    /// Time a fixed greedy generation.
    Bench,
    /// List the commands.
    Help,
    /// Turn echo of typed characters on or off.
    Echo(bool),
}

/// Why a line is not a valid command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommandError<'a> {
    /// `/something` that is not a command.
    Unknown(&'a str),
    /// A command that needs a value got none.
    MissingValue {
        /// The command.
        command: &'static str,
        /// What the value should be.
        expected: &'static str,
    },
    /// A value that does not parse or is out of range.
    BadValue {
        /// The command.
        command: &'static str,
        /// The text given.
        value: &'a str,
        /// What the value should be.
        expected: &'static str,
    },
    /// A command that takes no value got one.
    UnexpectedValue {
        /// The command.
        command: &'static str,
        /// The extra text.
        value: &'a str,
    },
}

impl fmt::Display for CommandError<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CommandError::Unknown(c) => write!(f, "unknown command '{c}' (try /help)"),
            CommandError::MissingValue { command, expected } => {
                write!(f, "{command} needs a value: {expected}")
            }
            CommandError::BadValue { command, value, expected } => {
                write!(f, "bad value '{value}' for {command}: expected {expected}")
            }
            CommandError::UnexpectedValue { command, value } => {
                write!(f, "{command} takes no value (got '{value}')")
            }
        }
    }
}

/// The largest `/steps` accepted; the firmware caps it further to its context length.
pub const MAX_STEPS: usize = 1 << 20;
/// The largest `/temp` accepted.
pub const MAX_TEMP: f32 = 10.0;

/// The help text, one command a line.
pub const HELP: &str = "\
  <text>      generate a story starting with <text> (empty line: from nothing)
  /temp X     sampling temperature, 0 (greedy) ..= 10
  /topp X     top-p threshold, 0 ..= 1 (0 or 1: plain sampling)
  /seed N     RNG seed, 0 ..= 18446744073709551615
  /steps N    forward passes per story incl. prompt, 0 = whole context
  /info       chip, clock, model, memory, context cap, kernels
  /bench      time a greedy story
  /echo on|off  echo typed characters
  /help       this text
  Ctrl-C      stop a story";

/// Parses one line (without its terminator). Surrounding spaces are ignored for commands; a
/// prompt is passed on as typed, minus trailing whitespace.
pub fn parse(line: &str) -> Result<Command<'_>, CommandError<'_>> {
    let trimmed = line.trim();
    if !trimmed.starts_with('/') {
        return Ok(Command::Prompt(line.trim_end()));
    }
    let (name, value) = match trimmed.split_once(char::is_whitespace) {
        Some((n, v)) => (n, v.trim()),
        None => (trimmed, ""),
    };
    match name {
        "/temp" => {
            const E: &str = "a number from 0 to 10";
            let t = number::<f32>("/temp", value, E)?;
            if !(0.0..=MAX_TEMP).contains(&t) {
                return Err(CommandError::BadValue { command: "/temp", value, expected: E });
            }
            Ok(Command::Temp(t))
        }
        "/topp" => {
            const E: &str = "a number from 0 to 1";
            let p = number::<f32>("/topp", value, E)?;
            if !(0.0..=1.0).contains(&p) {
                return Err(CommandError::BadValue { command: "/topp", value, expected: E });
            }
            Ok(Command::TopP(p))
        }
        "/seed" => Ok(Command::Seed(number::<u64>("/seed", value, "a whole number >= 0")?)),
        "/steps" => {
            const E: &str = "a whole number from 0 (whole context) to 1048576";
            let n = number::<usize>("/steps", value, E)?;
            if n > MAX_STEPS {
                return Err(CommandError::BadValue { command: "/steps", value, expected: E });
            }
            Ok(Command::Steps(n))
        }
        "/echo" => match value {
            "on" => Ok(Command::Echo(true)),
            "off" => Ok(Command::Echo(false)),
            "" => Err(CommandError::MissingValue { command: "/echo", expected: "on or off" }),
            _ => Err(CommandError::BadValue { command: "/echo", value, expected: "on or off" }),
        },
        "/info" => no_value("/info", value, Command::Info),
        "/bench" => no_value("/bench", value, Command::Bench),
        "/help" | "/?" => no_value("/help", value, Command::Help),
        _ => Err(CommandError::Unknown(name)),
    }
}

fn no_value<'a>(
    command: &'static str,
    value: &'a str,
    c: Command<'a>,
) -> Result<Command<'a>, CommandError<'a>> {
    if value.is_empty() {
        Ok(c)
    } else {
        Err(CommandError::UnexpectedValue { command, value })
    }
}

fn number<'a, T: core::str::FromStr + IsFinite>(
    command: &'static str,
    value: &'a str,
    expected: &'static str,
) -> Result<T, CommandError<'a>> {
    if value.is_empty() {
        return Err(CommandError::MissingValue { command, expected });
    }
    match value.parse::<T>() {
        Ok(v) if v.is_finite_value() => Ok(v),
        _ => Err(CommandError::BadValue { command, value, expected }),
    }
}

/// NaN and infinities parse as f32 but are never valid settings.
trait IsFinite {
    fn is_finite_value(&self) -> bool;
}
impl IsFinite for f32 {
    fn is_finite_value(&self) -> bool {
        self.is_finite()
    }
}
impl IsFinite for u64 {
    fn is_finite_value(&self) -> bool {
        true
    }
}
impl IsFinite for usize {
    fn is_finite_value(&self) -> bool {
        true
    }
}

/// The REPL's sampling settings, with llama2.c's `run` defaults.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Settings {
    /// Temperature (0 = greedy).
    pub temperature: f32,
    /// Top-p threshold.
    pub topp: f32,
    /// RNG seed; the firmware re-seeds the sampler with it before each story.
    pub seed: u64,
    /// Forward passes per story, prompt included; 0 = whole context.
    pub steps: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Settings { temperature: 1.0, topp: 0.9, seed: 42, steps: 256 }
    }
}

/// The REPL's reply to a setting command: `temp 1 topp 0.9 seed 42 steps 256` (the firmware
/// prints it after every change; the host tests' fake board prints the same).
impl fmt::Display for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Settings { temperature, topp, seed, steps } = self;
        write!(f, "temp {temperature} topp {topp} seed {seed} steps {steps}")
    }
}

impl Settings {
    /// Applies a setting command; returns false for commands that are not settings.
    pub fn apply(&mut self, c: &Command<'_>) -> bool {
        match *c {
            Command::Temp(t) => self.temperature = t,
            Command::TopP(p) => self.topp = p,
            Command::Seed(s) => self.seed = s,
            Command::Steps(n) => self.steps = n,
            _ => return false,
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::string::ToString;

    #[test]
    fn prompts_pass_through() {
        assert_eq!(parse("Once upon a time"), Ok(Command::Prompt("Once upon a time")));
        assert_eq!(parse("  indented prompt  "), Ok(Command::Prompt("  indented prompt")));
        assert_eq!(parse(""), Ok(Command::Prompt("")));
        assert_eq!(parse("a /temp in the middle"), Ok(Command::Prompt("a /temp in the middle")));
    }

    #[test]
    fn settings_reply_is_what_the_commands_set() {
        let mut s = Settings::default();
        for line in ["/temp 0.5", "/topp 0.75", "/seed 7", "/steps 12"] {
            assert!(s.apply(&parse(line).unwrap()), "{line}");
        }
        assert_eq!(s.to_string(), "temp 0.5 topp 0.75 seed 7 steps 12");
    }

    #[test]
    fn settings_parse_and_apply() {
        let mut s = Settings::default();
        for (line, want) in [
            ("/temp 0", Command::Temp(0.0)),
            ("/temp   0.75 ", Command::Temp(0.75)),
            ("/topp 1", Command::TopP(1.0)),
            ("/seed 18446744073709551615", Command::Seed(u64::MAX)),
            ("/steps 0", Command::Steps(0)),
            ("  /steps\t64", Command::Steps(64)),
        ] {
            let c = parse(line).unwrap();
            assert_eq!(c, want, "{line}");
            assert!(s.apply(&c));
        }
        assert_eq!(s, Settings { temperature: 0.75, topp: 1.0, seed: u64::MAX, steps: 64 });
        assert!(!s.apply(&Command::Info));
    }

    #[test]
    fn bad_values_say_what_was_expected() {
        let e = parse("/temp hot").unwrap_err();
        assert_eq!(e.to_string(), "bad value 'hot' for /temp: expected a number from 0 to 10");
        assert!(matches!(parse("/temp -1"), Err(CommandError::BadValue { .. })));
        assert!(matches!(parse("/temp 10.5"), Err(CommandError::BadValue { .. })));
        assert!(matches!(parse("/temp NaN"), Err(CommandError::BadValue { .. })));
        assert!(matches!(parse("/temp inf"), Err(CommandError::BadValue { .. })));
        assert!(matches!(parse("/topp 1.01"), Err(CommandError::BadValue { .. })));
        assert!(matches!(parse("/seed -3"), Err(CommandError::BadValue { .. })));
        assert!(matches!(parse("/seed 18446744073709551616"), Err(CommandError::BadValue { .. })));
        assert!(matches!(parse("/steps 1048577"), Err(CommandError::BadValue { .. })));
        assert!(matches!(parse("/steps 2.5"), Err(CommandError::BadValue { .. })));
        assert_eq!(
            parse("/steps").unwrap_err().to_string(),
            "/steps needs a value: a whole number from 0 (whole context) to 1048576"
        );
        assert!(matches!(parse("/echo maybe"), Err(CommandError::BadValue { .. })));
    }

    #[test]
    fn plain_commands() {
        assert_eq!(parse("/info"), Ok(Command::Info));
        assert_eq!(parse("/bench "), Ok(Command::Bench));
        assert_eq!(parse("/help"), Ok(Command::Help));
        assert_eq!(parse("/echo off"), Ok(Command::Echo(false)));
        assert_eq!(parse("/info now").unwrap_err().to_string(), "/info takes no value (got 'now')");
        assert_eq!(
            parse("/tmep 1").unwrap_err().to_string(),
            "unknown command '/tmep' (try /help)"
        );
        assert_eq!(parse("/").unwrap_err(), CommandError::Unknown("/"));
    }

    #[test]
    fn help_mentions_every_command() {
        for c in
            ["/temp", "/topp", "/seed", "/steps", "/info", "/bench", "/help", "/echo", "Ctrl-C"]
        {
            assert!(HELP.contains(c), "{c}");
        }
    }
}
