//! `esp-llm chat` and `monitor` against a fake board: a loopback TCP peer that speaks the
//! firmware's REPL protocol (banner, `> ` prompts, /commands, streamed story, summary line,
//! Ctrl-C = byte 0x03) with the firmware's own command parser, settings and summary line
//! (crates/board), and generates with the real engine, so its text must equal the host's.

use assert_cmd::Command;
use esp_llm_board::command::{self, Command as Line, Settings, HELP};
use esp_llm_board::summary::{Banner, Summary, CTRL_C, INTERRUPTED, PROMPT, READY};
use esp_llm_engine::{Checkpoint, Event, Generator, Options, Sampler, Tokenizer, Transformer};
use esp_llm_fixtures::*;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Serves one connection like the firmware does. `slow` sleeps between tokens so that a test
/// can interrupt a story. Sets `saw_ctrl_c` when a 0x03 byte stops a story.
fn fake_board(listener: TcpListener, slow: Duration, saw_ctrl_c: Arc<AtomicBool>) {
    let model = model_bytes("stories260K.bin");
    let tok_bytes = model_bytes("tok512.bin");
    let tok = Tokenizer::from_bytes(&tok_bytes, 512).unwrap();
    let (mut s, _) = listener.accept().unwrap();
    write!(s, "{}{READY}{PROMPT}", Banner("fake-board")).unwrap();
    let (mut settings, mut echo) = (Settings::default(), true);
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    loop {
        s.set_read_timeout(None).unwrap();
        match s.read(&mut byte) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        if echo {
            s.write_all(&byte).unwrap();
        }
        if byte[0] != b'\n' {
            line.push(byte[0]);
            continue;
        }
        let text = String::from_utf8(std::mem::take(&mut line)).unwrap();
        let text = text.trim_end_matches('\r');
        // The firmware's own command parser and settings (crates/board), as its REPL uses them.
        let reply = match command::parse(text) {
            Err(e) => format!("{e}\n"),
            Ok(c) if settings.apply(&c) => format!("{settings}\n"),
            Ok(Line::Echo(on)) => {
                echo = on;
                String::new()
            }
            Ok(Line::Info) => "chip: fake-board\n".into(),
            Ok(Line::Help) => format!("{HELP}\n"),
            Ok(Line::Prompt(text)) => {
                let ck = Checkpoint::parse(&model).unwrap();
                let mut t = Transformer::new(ck, Options::default()).unwrap();
                let Settings { temperature, topp, seed, steps } = settings;
                let mut sampler = Sampler::new(512, temperature, topp, seed).unwrap();
                let prompt = tok.encode(text.as_bytes());
                let start = Instant::now();
                let (mut n, mut interrupted) = (0, false);
                s.set_nonblocking(true).unwrap();
                for ev in Generator::new(&mut t, &tok, &mut sampler, prompt, steps).unwrap() {
                    // Count forward passes, as the firmware's summary does.
                    match ev.unwrap() {
                        Event::Token { text, .. } => {
                            n += 1;
                            s.write_all(text).unwrap();
                        }
                        Event::Done(stop) => n += usize::from(stop == esp_llm_engine::Stop::Bos),
                    }
                    std::thread::sleep(slow);
                    if let Ok(1) = s.read(&mut byte) {
                        if byte[0] == CTRL_C {
                            interrupted = true;
                            saw_ctrl_c.store(true, Ordering::SeqCst);
                            break;
                        }
                    }
                }
                s.set_nonblocking(false).unwrap();
                let micros = start.elapsed().as_micros() as u64;
                let end = if interrupted { format!("\n{INTERRUPTED}\n") } else { "\n".into() };
                format!("{end}{}\n", Summary { tokens: n, micros })
            }
            Ok(other) => format!("{other:?}: not in the fake board\n"),
        };
        s.write_all(reply.as_bytes()).unwrap();
        s.write_all(PROMPT.as_bytes()).unwrap();
    }
}

fn start(slow: Duration) -> (String, Arc<AtomicBool>, std::thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = format!("tcp://{}", listener.local_addr().unwrap());
    let flag = Arc::new(AtomicBool::new(false));
    let f = flag.clone();
    let h = std::thread::spawn(move || fake_board(listener, slow, f));
    (port, flag, h)
}

#[test]
fn scripted_prompt_matches_host_text() {
    let (port, _, h) = start(Duration::ZERO);
    let out = Command::cargo_bin("esp-llm")
        .unwrap()
        .args([
            "chat",
            "--port",
            &port,
            "--prompt",
            "Once upon a time",
            "-t",
            "0",
            "-n",
            "64",
            "--json",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let board: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let host = Command::cargo_bin("esp-llm")
        .unwrap()
        .arg("run")
        .arg(shared("models").join("stories260K.bin"))
        .args(["-t", "0", "-n", "64", "-i", "Once upon a time", "--json"])
        .output()
        .unwrap();
    let host: serde_json::Value = serde_json::from_slice(&host.stdout).unwrap();
    assert_eq!(board["text"], host["text"]);
    assert_eq!(board["tokens"], 64);
    assert!(board["tok_per_s"].as_f64().unwrap() > 0.0);
    assert_eq!(board["interrupted"], false);
    h.join().unwrap();
}

#[test]
fn ctrl_c_stops_a_story_and_the_session_goes_on() {
    let (port, saw, h) = start(Duration::from_millis(20));
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("esp-llm"))
        .args(["chat", "--port", &port])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"Once upon a time\n").unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let kill = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    while !saw.load(Ordering::SeqCst) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(saw.load(Ordering::SeqCst), "the board never saw Ctrl-C");
    // The client is still there: a command answers, then end of input closes it.
    stdin.write_all(b"/info\n").unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text} {}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains(INTERRUPTED), "{text}");
    assert!(text.contains("tokens in"), "{text}");
    assert!(text.contains("chip: fake-board"), "{text}");
    h.join().unwrap();
}

#[test]
fn unreachable_ports_give_advice() {
    let out = Command::cargo_bin("esp-llm")
        .unwrap()
        .args(["chat", "--port", "/dev/ttyNOPE0", "--prompt", "x"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot open serial port /dev/ttyNOPE0"), "{err}");
    assert!(err.contains("plugged in"), "{err}");
    let out = Command::cargo_bin("esp-llm")
        .unwrap()
        .args(["monitor", "--port", "tcp://127.0.0.1:1"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("is the emulator running"));
}

#[test]
fn monitor_shows_raw_bytes() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = format!("tcp://{}", listener.local_addr().unwrap());
    let h = std::thread::spawn(move || {
        let (mut s, _): (TcpStream, _) = listener.accept().unwrap();
        s.write_all(b"boot: esp-llm\n> ").unwrap();
        std::thread::sleep(Duration::from_millis(300));
    });
    let out =
        Command::cargo_bin("esp-llm").unwrap().args(["monitor", "--port", &port]).output().unwrap();
    h.join().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("boot: esp-llm\n> "));
    assert!(String::from_utf8_lossy(&out.stderr).contains("closed the connection"));
}
