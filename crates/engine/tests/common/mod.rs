//! Shared helpers for the engine's integration tests: where the fixture models and golden
//! files live, and loading the golden JSON cases.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// `shared/<sub>` in the nearest ancestor of this crate that has one (the repository expects
/// `../shared` beside its checkout), or `$ESP_LLM_MODELS` for the models.
pub fn shared(sub: &str) -> PathBuf {
    if sub == "models" {
        if let Some(dir) = std::env::var_os("ESP_LLM_MODELS") {
            return PathBuf::from(dir);
        }
    }
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    for dir in here.ancestors() {
        let cand = dir.join("shared").join(sub);
        if cand.is_dir() {
            return cand;
        }
    }
    panic!("cannot find shared/{sub} in any ancestor of {}", here.display());
}

pub fn model_bytes(name: &str) -> Vec<u8> {
    let p = shared("models").join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// A golden case from `shared/golden/*.json`.
#[derive(Debug, Clone)]
pub struct Golden {
    pub name: String,
    pub model: Option<String>,
    pub tokenizer: String,
    pub engine: String,
    pub prompt: String,
    pub mode: String,
    pub temperature: Option<f32>,
    pub topp: Option<f32>,
    pub seed: Option<u64>,
    pub steps: Option<usize>,
    pub prompt_tokens: Vec<u32>,
    pub tokens: Vec<u32>,
    pub stop: Option<String>,
    pub text: Option<String>,
    pub top2_margin: Option<Vec<Option<f64>>>,
}

pub fn goldens() -> Vec<Golden> {
    let dir = shared("golden");
    let mut out = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    entries.sort();
    for p in entries {
        let name = p.file_name().unwrap().to_string_lossy().to_string();
        if !name.ends_with(".json") || name.contains("logits") {
            continue;
        }
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
        let s = |k: &str| v[k].as_str().map(String::from);
        let ids = |k: &str| v[k].as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect();
        out.push(Golden {
            name,
            model: s("model"),
            tokenizer: s("tokenizer").unwrap(),
            engine: s("engine").unwrap(),
            prompt: s("prompt").unwrap(),
            mode: s("mode").unwrap(),
            temperature: v["temperature"].as_f64().map(|x| x as f32),
            topp: v["topp"].as_f64().map(|x| x as f32),
            seed: v["seed"].as_u64(),
            steps: v["steps"].as_u64().map(|x| x as usize),
            prompt_tokens: ids("prompt_tokens"),
            tokens: ids("tokens"),
            stop: s("stop"),
            text: s("text"),
            top2_margin: v["top2_margin"].as_array().map(|a| a.iter().map(|x| x.as_f64()).collect()),
        });
    }
    assert!(out.len() >= 39, "expected the golden cases, found {}", out.len());
    out
}

pub fn tokenizer_vocab(name: &str) -> usize {
    if name == "tokenizer.bin" {
        32000
    } else {
        512
    }
}
