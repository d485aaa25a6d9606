//! Bad input through the CLI: each gets a one-line error and a non-zero exit, never a panic.

use assert_cmd::Command;
use esp_llm_fixtures::*;
use std::path::Path;

/// Runs `esp-llm args...` and returns stderr, asserting failure without a panic.
fn fails(args: &[&str]) -> String {
    let out = Command::cargo_bin("esp-llm").unwrap().args(args).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "{args:?} should fail");
    assert!(!err.contains("panicked"), "{args:?} panicked: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: one line expected: {err}");
    assert!(err.starts_with("error: "), "{err}");
    err
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> String {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p.to_str().unwrap().to_string()
}

fn header(fields: [i32; 7]) -> Vec<u8> {
    fields.iter().flat_map(|f| f.to_le_bytes()).collect()
}

#[test]
fn missing_and_empty_files() {
    let dir = tempfile::tempdir().unwrap();
    let tok = shared("models").join("tok512.bin");
    let tok = tok.to_str().unwrap();
    let e = fails(&["run", "/nonexistent/model.bin", "-z", tok]);
    assert!(e.contains("cannot open model file"), "{e}");
    let empty = write(dir.path(), "empty.bin", b"");
    let e = fails(&["run", &empty, "-z", tok]);
    assert!(e.contains("empty"), "{e}");
    let e = fails(&["inspect", &empty]);
    assert!(e.contains("empty"), "{e}");
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    png.resize(64, 0);
    let p = write(dir.path(), "picture.png", &png);
    let e = fails(&["inspect", &p]);
    assert!(e.contains("not a llama2.c checkpoint or esp-llm bundle"), "{e}");
}

#[test]
fn truncated_at_every_section_boundary() {
    let model = model_bytes("stories260K.bin");
    let dir = tempfile::tempdir().unwrap();
    let tok = shared("models").join("tok512.bin");
    let sizes = stories260k_v0_sections();
    let mut cuts = vec![4usize, 27, 28];
    let mut end = 28;
    for sz in sizes {
        cuts.push(end + 1);
        end += sz * 4;
        cuts.push(end - 1);
    }
    assert_eq!(end, model.len());
    for cut in cuts {
        let p = write(dir.path(), "cut.bin", &model[..cut]);
        let e = fails(&["run", &p, "-z", tok.to_str().unwrap(), "-n", "2"]);
        assert!(e.contains("truncated"), "cut at {cut}: {e}");
    }
    let mut long = model.clone();
    long.extend_from_slice(&[0; 8]);
    let p = write(dir.path(), "long.bin", &long);
    let e = fails(&["inspect", &p]);
    assert!(e.contains("8 unexpected bytes"), "{e}");
}

#[test]
fn wrong_magic_version_and_absurd_dimensions() {
    let dir = tempfile::tempdir().unwrap();
    let mut v1 = 0x616b3432u32.to_le_bytes().to_vec();
    v1.extend_from_slice(&7i32.to_le_bytes());
    v1.resize(256, 0);
    let p = write(dir.path(), "v7.bin", &v1);
    assert!(fails(&["inspect", &p]).contains("unsupported llama2.c checkpoint version 7"));

    let cases: [([i32; 7], &str); 6] = [
        ([0, 172, 5, 8, 4, 512, 512], "dim = 0"),
        ([64, -172, 5, 8, 4, 512, 512], "hidden_dim = -172"),
        ([64, 172, 5, 7, 7, 512, 512], "n_heads = 7: does not divide dim"),
        ([64, 172, 5, 8, 3, 512, 512], "n_kv_heads = 3: does not divide n_heads"),
        ([64, 172, i32::MAX, 8, 4, 512, 512], "n_layers = 2147483647"),
        ([1 << 20, 1 << 20, 1 << 20, 1, 1, 512, 512], "truncated"),
    ];
    for (fields, want) in cases {
        let p = write(dir.path(), "bad.bin", &header(fields));
        let e = fails(&["inspect", &p]);
        assert!(e.contains(want), "{fields:?}: {e}");
    }
}

#[test]
fn tokenizer_of_another_model() {
    let models = shared("models");
    let e = fails(&[
        "run",
        models.join("stories260K.bin").to_str().unwrap(),
        "-z",
        models.join("tokenizer.bin").to_str().unwrap(),
    ]);
    assert!(e.contains("more pieces than the model's vocab_size"), "{e}");
    let dir = tempfile::tempdir().unwrap();
    let tok = model_bytes("tok512.bin");
    let p = write(dir.path(), "tok.bin", &tok[..tok.len() / 2]);
    let e = fails(&["run", models.join("stories260K.bin").to_str().unwrap(), "-z", &p]);
    assert!(e.contains("tokenizer"), "{e}");
}

#[test]
fn truncated_tokenizer_cannot_drop_prompt_text() {
    // The first 100 bytes of tok512.bin end on a piece boundary: 6 pieces, none of them the
    // byte-fallback ids of "hello" (byte + 3). The text must not vanish silently.
    let dir = tempfile::tempdir().unwrap();
    let tok = model_bytes("tok512.bin");
    let p = write(dir.path(), "tok100.bin", &tok[..100]);
    let e = fails(&["tokenize", "-z", &p, "hello"]);
    assert!(e.contains("cannot encode byte 0x68 at offset 0"), "{e}");
    let m = shared("models").join("stories260K.bin");
    let e = fails(&["run", m.to_str().unwrap(), "-z", &p, "-i", "hello", "-n", "2"]);
    assert!(e.contains("tokenizer"), "{e}");
}

#[test]
fn unknown_chip_is_the_same_error_everywhere() {
    let m = shared("models").join("stories260K.bin");
    let m = m.to_str().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.ellb");
    for args in [
        vec!["plan", m, "--chip", "esp8266"],
        vec!["pack", m, "--fit", "esp8266", "-o", out.to_str().unwrap()],
        vec!["preview", m, "--chip", "esp8266"],
        vec!["flash", "--port", "x", "--chip", "esp8266", "--model", m],
    ] {
        let e = fails(&args);
        assert!(e.contains("unknown chip 'esp8266'; choose one of esp32"), "{args:?}: {e}");
    }
}

#[test]
fn bad_settings() {
    let m = shared("models").join("stories260K.bin");
    let m = m.to_str().unwrap();
    assert!(fails(&["run", m, "-t", "-1"]).contains("temperature"));
    assert!(fails(&["run", m, "-p", "1.5"]).contains("top-p"));
    assert!(fails(&["run", m, "--max-memory", "100K"]).contains("more than --max-memory"));
    assert!(fails(&["run", m, "--max-memory", "1M"]).contains("1040128 of weights"));
    let long = "Once upon a time ".repeat(200);
    let e = fails(&["run", m, "-i", &long]);
    assert!(e.contains("--truncate-prompt"), "{e}");
    let out = Command::cargo_bin("esp-llm")
        .unwrap()
        .args(["run", m, "-i", &long, "--truncate-prompt", "-n", "0", "-t", "0", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success());
}

#[test]
fn v2_group_size_that_does_not_divide_a_row() {
    // llama2.c's exporter would write this for stories260K (it only checks dim): w2's rows of
    // 172 values would straddle groups of 64.
    let mut q = model_bytes("stories260K_q80.bin");
    q[37..41].copy_from_slice(&64i32.to_le_bytes());
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "q64.bin", &q);
    let e = fails(&["inspect", &p]);
    assert!(e.contains("group size 64 does not divide the row length 172"), "{e}");
}

/// Damaged files of several kinds through every command that reads models or tokenizers.
#[test]
fn every_command_rejects_bad_files() {
    let dir = tempfile::tempdir().unwrap();
    let model = model_bytes("stories260K.bin");
    let q80 = model_bytes("stories260K_q80.bin");
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    png.resize(300, 7);
    let mut flipped = model.clone();
    flipped[12..16].copy_from_slice(&(-8i32).to_le_bytes());
    let bad = [
        ("png", png),
        ("head", model[..5000].to_vec()),
        ("q80_cut", q80[..q80.len() - 3].to_vec()),
        ("neg_heads", flipped),
        ("bundle_magic", b"ELLB and nothing else".to_vec()),
    ];
    let tok = shared("models").join("tok512.bin");
    let tok = tok.to_str().unwrap();
    for (name, bytes) in bad {
        let p = write(dir.path(), name, &bytes);
        let out = dir.path().join("out.ellb");
        for args in [
            vec!["run", &p, "-z", tok, "-n", "3"],
            vec!["inspect", &p],
            vec!["pack", &p, "-z", tok, "-o", out.to_str().unwrap()],
            vec!["plan", &p, "--chip", "esp32s3"],
            vec!["tokenize", "-z", &p, "hello"],
        ] {
            fails(&args);
        }
    }
}

/// A valid v1 file whose context (16M positions, 64 layers) needs ~550 GB of KV cache: refused
/// with the numbers before anything is allocated, not killed by the OOM killer.
#[test]
fn absurd_context_is_refused_before_allocating() {
    let (dim, hidden, layers, heads, kv, vocab, seq) = (64i32, 16, 64, 2, 2, 16, 1 << 24);
    let mut f = 0x616b3432u32.to_le_bytes().to_vec();
    for v in [1, dim, hidden, layers, heads, kv, vocab, seq] {
        f.extend_from_slice(&v.to_le_bytes());
    }
    f.push(1);
    f.resize(256, 0);
    let (d, h, l, v) = (dim as usize, hidden as usize, layers as usize, vocab as usize);
    let n = 2 * l * d + d + v * d + l * (4 * d * d + 3 * h * d);
    f.resize(256 + 4 * n, 0);
    let mut tok = 8i32.to_le_bytes().to_vec();
    for i in 0..16 {
        let p = format!("p{i}");
        tok.extend_from_slice(&(-(i as f32)).to_le_bytes());
        tok.extend_from_slice(&(p.len() as i32).to_le_bytes());
        tok.extend_from_slice(p.as_bytes());
    }
    let dir = tempfile::tempdir().unwrap();
    let m = write(dir.path(), "huge_ctx.bin", &f);
    let t = write(dir.path(), "tok16.bin", &tok);
    let e = fails(&["run", &m, "-z", &t, "-n", "4"]);
    assert!(e.contains("of KV cache for 16777216 positions"), "{e}");
    assert!(e.contains("bytes of memory available"), "{e}");
}

#[test]
fn inspect_reports_and_verifies_the_checksum() {
    let dir = tempfile::tempdir().unwrap();
    let model = shared("models").join("stories260K.bin");
    let bundle = dir.path().join("m.ellb");
    let o = Command::cargo_bin("esp-llm")
        .unwrap()
        .arg("pack")
        .arg(&model)
        .arg("-o")
        .arg(&bundle)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let inspect =
        |args: &[&str]| Command::cargo_bin("esp-llm").unwrap().args(args).output().unwrap();
    let b = bundle.to_str().unwrap();
    let o = inspect(&["inspect", "--verify", b]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("(matches the bytes)"));
    // One byte flipped in the weights: reported without --verify, an error with it.
    let mut bytes = std::fs::read(&bundle).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    let bad = write(dir.path(), "bad.ellb", &bytes);
    let o = inspect(&["inspect", &bad]);
    assert!(o.status.success());
    assert!(String::from_utf8_lossy(&o.stdout).contains("MISMATCH"));
    let e = fails(&["inspect", "--verify", &bad]);
    assert!(e.contains("checksum mismatch") && e.contains("partial or corrupted"), "{e}");
    assert_eq!(e.matches("partial").count(), 1, "{e}");
    let e = fails(&["inspect", "--verify", model.to_str().unwrap()]);
    assert!(e.contains("has no checksum"), "{e}");
}
