//! `pack`, `run`/`inspect` on bundles, corrupted bundles, and `plan` through the CLI.

use assert_cmd::Command;
use esp_llm_fixtures::*;
use std::path::Path;

fn esp_llm() -> Command {
    Command::cargo_bin("esp-llm").unwrap()
}

fn pack(dir: &Path, name: &str, extra: &[&str]) -> std::path::PathBuf {
    let out = dir.join(name);
    let o = esp_llm()
        .arg("pack")
        .arg(shared("models").join("stories260K.bin"))
        .args(extra)
        .arg("-o")
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    out
}

fn plan_json(model: &Path, chip: &str) -> serde_json::Value {
    let o = esp_llm().arg("plan").arg(model).args(["--chip", chip, "--json"]).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).unwrap()
}

#[test]
fn bundle_runs_like_its_source_and_carries_its_tokenizer() {
    let dir = tempfile::tempdir().unwrap();
    let b = pack(dir.path(), "f32.ellb", &[]);
    let g =
        goldens().into_iter().find(|g| g.name == "lily_park.fp32.sample_t1_p0.9_s42.json").unwrap();
    let o = esp_llm()
        .arg("run")
        .arg(&b)
        .args(["-t", "1", "-p", "0.9", "-s", "42", "-n", "200", "-i", &g.prompt, "--json"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["text"].as_str(), g.text.as_deref());
    let o = esp_llm().arg("inspect").arg(&b).output().unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("esp-llm bundle v1"));
    // The file's size in the memory lines' units, the exact byte count beside, no raw count alone.
    let len = std::fs::metadata(&b).unwrap().len();
    let file = out.lines().find(|l| l.starts_with("file ")).unwrap();
    let human = match len {
        n if n >= 1 << 20 => format!("{:.1} MB ({n} B)", n as f64 / 1048576.0),
        n => format!("{:.1} KB ({n} B)", n as f64 / 1024.0),
    };
    assert!(file.ends_with(&human), "{file:?} should end with {human:?}");
    assert!(!file.contains("bytes)"), "{file}");
}

#[test]
fn corrupted_bundle_is_refused_with_a_checksum_error() {
    let dir = tempfile::tempdir().unwrap();
    let b = pack(dir.path(), "q.ellb", &["--quant", "q8"]);
    let mut bytes = std::fs::read(&b).unwrap();
    let i = bytes.len() - 100;
    bytes[i] ^= 1;
    std::fs::write(&b, &bytes).unwrap();
    let o = esp_llm().arg("run").arg(&b).args(["-n", "4"]).output().unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("checksum mismatch"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1);
}

#[test]
fn plan_puts_int8_weights_in_s3_sram_and_fp32_elsewhere() {
    let dir = tempfile::tempdir().unwrap();
    let q8 = pack(dir.path(), "q8.ellb", &["--quant", "q8"]);
    let v = plan_json(&q8, "esp32s3");
    assert_eq!(v["weights"], "sram");
    assert_eq!(v["kv_cache"], "psram");
    assert_eq!(v["seq_len"], 512);
    assert!(v["est_tok_per_s"].as_f64().unwrap() > 0.0);
    let v = plan_json(&shared("models").join("stories260K.bin"), "esp32s3");
    assert_ne!(v["weights"], "sram");
    // Without PSRAM the context is capped to what the KV cache can hold.
    let v = plan_json(&q8, "esp32c3");
    assert_eq!(v["weights"], "flash");
    let capped = v["seq_len"].as_u64().unwrap();
    assert!((16..512).contains(&capped), "{capped}");
    // The C3 has no FPU: an int8 model runs in fixed point, with an i16 KV cache (about twice
    // the positions of the f32 one the fp32 model gets in the same SRAM).
    assert_eq!(v["numerics"], "fixed");
    assert_eq!(v["kv_precision"], "i16");
    assert!(v["fixed_point_scales_bytes"].as_u64().unwrap() > 0);
    let f = plan_json(&shared("models").join("stories260K.bin"), "esp32c3");
    assert_eq!(f["numerics"], "float");
    assert_eq!(f["kv_precision"], "f32");
    assert!(capped > f["seq_len"].as_u64().unwrap() * 3 / 2, "{capped} vs {}", f["seq_len"]);
    assert_eq!(plan_json(&q8, "esp32s3")["numerics"], "float");
}

#[test]
fn plan_refuses_what_cannot_fit() {
    let m = shared("models").join("stories260K.bin");
    let o =
        esp_llm().arg("plan").arg(&m).args(["--chip", "esp32c3", "--flash", "1"]).output().unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("model partition holds 0 B"), "{err}");
    assert!(err.contains("pack it as int8"), "{err}");
    // An int8 model is not told to become int8.
    let q = shared("models").join("stories260K_q80.bin");
    let o = esp_llm()
        .arg("plan")
        .arg(&q)
        .args(["--chip", "esp32c3", "--flash", "256K"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("holds 0 B"), "{err}");
    assert!(!err.contains("int8"), "{err}");
    let o = esp_llm().arg("plan").arg(&m).args(["--chip", "esp8266"]).output().unwrap();
    assert!(String::from_utf8_lossy(&o.stderr).contains("unknown chip"));
}

/// Errors and hints advise only what would shrink the model (issue #18 item 9): int8 for f32,
/// int4 for int8, neither for int4 (`run --max-memory`, `plan`'s partition error and hint).
#[test]
fn advice_is_never_what_was_already_done() {
    let dir = tempfile::tempdir().unwrap();
    let models = shared("models");
    let q4 = pack(dir.path(), "q4.ellb", &["--quant", "q4"]);
    let run = |m: &Path| {
        let o = esp_llm().arg("run").arg(m).args(["--max-memory", "100K"]).output().unwrap();
        assert!(!o.status.success(), "{} under 100K", m.display());
        String::from_utf8_lossy(&o.stderr).into_owned()
    };
    let e = run(&models.join("stories260K.bin"));
    assert!(e.contains("more than --max-memory") && e.contains("try an int8 model"), "{e}");
    let e = run(&models.join("stories260K_q80.bin"));
    assert!(e.contains("try an int4 bundle") && !e.contains("int8"), "{e}");
    let e = run(&q4);
    assert!(e.contains("try a smaller model") && !e.contains("int8") && !e.contains("int4"), "{e}");
    let o = esp_llm().arg("plan").arg(&q4).args(["--chip", "esp32c3", "--flash", "256K"]).output();
    let e = String::from_utf8_lossy(&o.unwrap().stderr).into_owned();
    assert!(e.contains("holds 0 B") && e.contains("use a smaller model"), "{e}");
    assert!(!e.contains("int8") && !e.contains("int4") && !e.contains("repack"), "{e}");
    // plan's hint: f32 weights read from flash are told about int8, int4 ones are not.
    let plan = |m: &Path| {
        let o = esp_llm().arg("plan").arg(m).args(["--chip", "esp32c3"]).output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    assert!(plan(&models.join("stories260K.bin")).contains("hint      an int8 bundle"));
    let big = dir.path().join("big.bin");
    let o = esp_llm()
        .args(["synth", "-q", "--shape", "256x768x4x4x4x512x64", "-o"])
        .arg(&big)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let big_q4 = dir.path().join("big-q4.ellb");
    let o = esp_llm()
        .arg("pack")
        .arg(&big)
        .arg("-z")
        .arg(models.join("tok512.bin"))
        .args(["--quant", "q4", "-o"])
        .arg(&big_q4)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let p = plan(&big_q4);
    assert!(p.contains("from flash") && !p.contains("hint"), "{p}");
}

/// Flash and PSRAM sizes take the same units (`16MB`, `32M`, a bare number is MB), and 32 MB
/// modules get their own layout (28 MB model partition).
#[test]
fn plan_takes_sizes_with_units_and_32mb_flash() {
    let m = shared("models").join("stories260K.bin");
    let json = |args: &[&str]| {
        let o = esp_llm().arg("plan").arg(&m).args(args).arg("--json").output().unwrap();
        assert!(o.status.success(), "{args:?}: {}", String::from_utf8_lossy(&o.stderr));
        serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap()
    };
    for (flash, partition) in [("4MB", 3 << 20), ("16", 12 << 20), ("32mb", 28 << 20)] {
        let v = json(&["--chip", "esp32s3", "--flash", flash, "--psram", "2MB"]);
        assert_eq!(
            v["flash_bytes"].as_u64().unwrap() >> 20,
            flash.trim_end_matches(char::is_alphabetic).parse::<u64>().unwrap()
        );
        assert_eq!(v["model_partition_bytes"], partition);
        assert_eq!(v["psram_bytes"], 2 << 20);
    }
    let o = esp_llm()
        .arg("plan")
        .arg(&m)
        .args(["--chip", "esp32s3", "--flash", "4TB"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&o.stderr).contains("unknown unit"));
}

/// The README's models x boards table is the output of `esp-llm boards` (checked for
/// stories260K; the larger rows take a few seconds and a download of tokenizer.bin each).
#[test]
fn readme_models_table_is_generated() {
    let o = esp_llm()
        .args(["boards", "--models", "stories260K"])
        .env("ESP_LLM_MODELS", shared("models"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap();
    for line in String::from_utf8(o.stdout).unwrap().lines() {
        assert!(readme.contains(line), "README lacks `esp-llm boards` line:\n{line}");
    }
}
