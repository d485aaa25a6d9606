//! `esp-llm synth` and `esp-llm bench` as users run them.

use assert_cmd::Command;
use esp_llm_fixtures::*;

fn esp_llm() -> Command {
    Command::cargo_bin("esp-llm").unwrap()
}

fn synth(dir: &std::path::Path, shape: &str, seed: &str, name: &str) -> Vec<u8> {
    let out = dir.join(name);
    esp_llm().args(["synth", "--shape", shape, "--seed", seed, "-o"]).arg(&out).assert().success();
    std::fs::read(out).unwrap()
}

#[test]
fn synth_is_deterministic_and_loads() {
    let dir = tempfile::tempdir().unwrap();
    let shape = "32x48x2x4x2x512x64";
    let a = synth(dir.path(), shape, "5", "a.bin");
    let b = synth(dir.path(), shape, "5", "b.bin");
    let c = synth(dir.path(), shape, "6", "c.bin");
    assert_eq!(a, b);
    assert_ne!(a, c);
    let header: Vec<i32> =
        a[..28].chunks_exact(4).map(|c| i32::from_le_bytes(c.try_into().unwrap())).collect();
    assert_eq!(header, [32, 48, 2, 4, 2, 512, 64]);
    // The file runs, with the 512-token tokenizer.
    esp_llm()
        .arg("run")
        .arg(dir.path().join("a.bin"))
        .arg("-z")
        .arg(shared("models").join("tok512.bin"))
        .args(["-n", "8", "-t", "0", "--json"])
        .assert()
        .success();
}

#[test]
fn synth_rejects_bad_shapes() {
    let dir = tempfile::tempdir().unwrap();
    for shape in
        ["stories1T", "288x768", "288x768x6x7x6x32000x256", "0x1x1x1x1x3x1", "axbxcxdxexfxg"]
    {
        let out = esp_llm()
            .args(["synth", "--shape", shape, "-o"])
            .arg(dir.path().join("x.bin"))
            .output()
            .unwrap();
        assert!(!out.status.success(), "{shape}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("shape"), "{shape}: {err}");
        assert!(!err.contains("panicked"), "{shape}: {err}");
    }
}

#[test]
fn bench_reports_positive_speeds_as_json() {
    for threads in ["1", "2"] {
        let out = esp_llm()
            .arg("bench")
            .arg(shared("models").join("stories260K.bin"))
            .args([
                "--threads",
                threads,
                "--prompt-tokens",
                "20",
                "--gen",
                "16",
                "--runs",
                "3",
                "--json",
            ])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["threads"].as_u64(), Some(threads.parse().unwrap()));
        assert!(v["pp_tok_per_s"].as_f64().unwrap() > 0.0);
        assert!(v["tg_tok_per_s"].as_f64().unwrap() > 0.0);
        assert_eq!(v["tg_runs"].as_array().unwrap().len(), 3);
    }
}

#[test]
fn bad_thread_and_kernel_choices_are_errors() {
    let model = shared("models").join("stories260K.bin");
    let out = esp_llm().arg("bench").arg(&model).args(["--threads", "0"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("at least 1"));
    let out = esp_llm().arg("run").arg(&model).args(["--kernels", "bogus"]).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("available") && err.contains("scalar"), "{err}");
    let out = esp_llm().arg("bench").arg(&model).args(["--pp", "100000"]).output().unwrap();
    assert!(!out.status.success());
    // `--prompt` is text in every other command; bench's count has its own name.
    let out = esp_llm().arg("bench").arg(&model).args(["--prompt", "Once"]).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--prompt-tokens"), "{err}");
}
