//! The llama2.c golden cases through the binary's `--json` output, as users (and hidden checks)
//! run it.

use assert_cmd::Command;
use esp_llm_fixtures::*;

fn esp_llm() -> Command {
    Command::cargo_bin("esp-llm").unwrap()
}

fn json(out: &[u8]) -> serde_json::Value {
    serde_json::from_slice(out)
        .unwrap_or_else(|e| panic!("bad JSON ({e}): {}", String::from_utf8_lossy(out)))
}

fn ids(v: &serde_json::Value) -> Vec<u32> {
    v.as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect()
}

/// The kernel names `esp-llm run -v` reports as available on this machine.
fn available_kernels() -> Vec<String> {
    let out = esp_llm()
        .args(["run", "-n", "1", "-v", "--json", "-t", "0"])
        .arg(shared("models").join("stories260K.bin"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    let list = err.split("(available: ").nth(1).and_then(|s| s.split(')').next()).unwrap();
    list.split(", ").map(String::from).collect()
}

#[test]
fn generation_cases_via_run_json() {
    generation_cases(&[]);
}

/// Every case exact with every kernel at 1, 2 and 3 threads.
#[test]
fn generation_cases_with_every_kernel_and_thread_count() {
    let kernels = available_kernels();
    assert!(kernels.contains(&"scalar".to_string()), "{kernels:?}");
    for k in &kernels {
        for threads in ["1", "2", "3"] {
            generation_cases(&["--kernels", k, "--threads", threads]);
        }
    }
}

fn generation_cases(extra: &[&str]) {
    let models = shared("models");
    let mut n = 0;
    for g in goldens().into_iter().filter(|g| g.model.is_some()) {
        let mut cmd = esp_llm();
        cmd.arg("run")
            .arg(models.join(g.model.as_ref().unwrap()))
            .arg("-z")
            .arg(models.join(&g.tokenizer))
            .args(["-n", &g.steps.unwrap().to_string(), "-i", &g.prompt, "--json"])
            .args(["-t", &g.temperature.unwrap().to_string()]);
        if let Some(p) = g.topp {
            cmd.args(["-p", &p.to_string()]);
        }
        if let Some(s) = g.seed {
            cmd.args(["-s", &s.to_string()]);
        }
        if g.portable_math() {
            cmd.args(["--math", "portable"]);
        }
        cmd.args(extra);
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "{}: {}", g.name, String::from_utf8_lossy(&out.stderr));
        let v = json(&out.stdout);
        assert_eq!(ids(&v["prompt_tokens"]), g.prompt_tokens, "{} {extra:?}", g.name);
        assert_eq!(ids(&v["tokens"]), g.tokens, "{} {extra:?}", g.name);
        assert_eq!(v["stop"].as_str(), g.stop.as_deref(), "{} {extra:?}", g.name);
        assert_eq!(v["text"].as_str(), g.text.as_deref(), "{} {extra:?}", g.name);
        assert!(v["tok_per_s"].as_f64().unwrap() > 0.0);
        n += 1;
    }
    assert_eq!(n, 21);
}

#[test]
fn encode_cases_via_tokenize_json() {
    let models = shared("models");
    for g in goldens() {
        let out = esp_llm()
            .arg("tokenize")
            .arg("-z")
            .arg(models.join(&g.tokenizer))
            .arg(&g.prompt)
            .arg("--json")
            .output()
            .unwrap();
        assert!(out.status.success(), "{}: {}", g.name, String::from_utf8_lossy(&out.stderr));
        assert_eq!(ids(&json(&out.stdout)["tokens"]), g.prompt_tokens, "{}", g.name);
    }
}

#[test]
fn streams_text_and_reports_speed() {
    let out = esp_llm()
        .env("ESP_LLM_MODELS", shared("models"))
        .args(["run", "-t", "0", "-n", "40", "-i", "Once upon a time"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.starts_with("Once upon a time, there was"), "{text}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("achieved tok/s:"));
}
