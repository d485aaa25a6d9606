//! `esp-llm preview`: the story it renders is `esp-llm run`'s, and its PNG is the screen layer's
//! drawing of that story, pixel for pixel.

use assert_cmd::Command;
use embedded_graphics::prelude::*;
use esp_llm_fixtures::shared;
use esp_llm_screen::{Framebuffer, Screen, Status};

fn esp_llm() -> Command {
    Command::cargo_bin("esp-llm").unwrap()
}

fn read_png(path: &std::path::Path) -> (u32, u32, Vec<u8>) {
    let dec = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(path).unwrap()));
    let mut reader = dec.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    buf.truncate(info.buffer_size());
    (info.width, info.height, buf)
}

#[test]
fn preview_draws_the_story_that_run_prints() {
    let model = shared("models").join("stories260K.bin");
    let dir = tempfile::tempdir().unwrap();
    let png = dir.path().join("p.png");
    let prompt = "Once upon a time";
    let args = ["-i", prompt, "-t", "0", "-n", "40"];
    let out = esp_llm()
        .arg("preview")
        .arg(&model)
        .args(args)
        .args(["--tok-per-s", "20", "-o"])
        .arg(&png)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let run = esp_llm().arg("run").arg(&model).args(args).output().unwrap();
    assert!(run.status.success());
    assert_eq!(out.stdout, run.stdout, "preview's story differs from run's");

    // The same text through the screen layer: the prompt forced, the rest generated. The
    // prompt encodes to BOS + 4 tokens, forced at positions 0..=3; 36 tokens follow.
    let text = String::from_utf8(out.stdout).unwrap();
    let story = text.strip_suffix('\n').unwrap().strip_prefix(prompt).unwrap();
    let size = Size::new(240, 320);
    let mut screen = Screen::new(size);
    screen.push(prompt.as_bytes(), true);
    screen.push(story.as_bytes(), false);
    screen.set_status(&Status {
        generated: 36,
        pos: 40,
        cap: 512,
        tok_per_s: Some(20.0),
        estimated: true,
        temperature: 0.0,
    });
    let mut fb = Framebuffer::new(size);
    screen.draw(&mut fb).unwrap();
    let (w, h, pixels) = read_png(&png);
    assert_eq!((w, h), (240, 320));
    assert!(pixels == fb.to_rgb8(), "the PNG is not the screen layer's drawing of the story");

    // --scale and --size.
    let big = dir.path().join("big.png");
    esp_llm()
        .arg("preview")
        .arg(&model)
        .args(["-n", "8", "--scale", "2", "--size", "320x240", "-o"])
        .arg(&big)
        .assert()
        .success();
    let (w, h, _) = read_png(&big);
    assert_eq!((w, h), (640, 480));
}

#[test]
fn preview_refuses_bad_arguments_with_a_message() {
    let model = shared("models").join("stories260K.bin");
    let cases: [(&[&str], &str); 4] = [
        (&["--size", "10x10"], "each side must be 32 to 4096 pixels"),
        (&["--size", "big"], "is not WIDTHxHEIGHT"),
        (&["--scale", "0"], "--scale 0: must be 1 to 16"),
        (&["--chip", "esp8266"], "unknown chip 'esp8266'"),
    ];
    for (args, want) in cases {
        let out = esp_llm().arg("preview").arg(&model).args(args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains(want), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
    let out = esp_llm()
        .arg("preview")
        .arg(&model)
        .args(["-n", "4", "-o", "/nonexistent-dir/p.png"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("cannot create /nonexistent-dir/p.png"), "{err}");
}

#[test]
fn preview_for_a_chip_without_fpu_runs_the_fixed_point_numerics() {
    // The C3 runs int8 bundles in fixed point; the preview must show its tokens, which are
    // `run --numerics fixed`'s, not the float run's.
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("q8.ellb");
    esp_llm()
        .arg("pack")
        .arg(shared("models").join("stories260K.bin"))
        .args(["--quant", "q8", "-o"])
        .arg(&bundle)
        .assert()
        .success();
    let args = ["-i", "Once upon a time", "-t", "1", "-s", "42", "-n", "200"];
    let png = dir.path().join("c3.png");
    let out = esp_llm()
        .arg("preview")
        .arg(&bundle)
        .args(args)
        .args(["--chip", "esp32c3", "-o"])
        .arg(&png)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let fixed = esp_llm().arg("run").arg(&bundle).args(args).args(["--numerics", "fixed"]).output();
    let float = esp_llm().arg("run").arg(&bundle).args(args).output();
    let (fixed, float) = (fixed.unwrap().stdout, float.unwrap().stdout);
    assert_eq!(out.stdout, fixed);
    assert_ne!(fixed, float, "the test needs a case where the numerics differ");
    let err = String::from_utf8_lossy(&out.stderr);
    // The position is shown against the C3's context cap (the planner's), not the model's 512.
    let cap: usize = err
        .split("position ")
        .nth(1)
        .and_then(|r| r.split('/').nth(1))
        .and_then(|r| r.split(|ch: char| !ch.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no position in {err}"));
    assert!(err.contains("on esp32c3") && cap > 200 && cap < 512, "{err}");
}
