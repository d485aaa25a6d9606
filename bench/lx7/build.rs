//! Finds the models (`$ESP_LLM_MODELS`, or `shared/models` in the nearest ancestor directory),
//! packs the int8 bundle the S3 firmware runs (stories260K.bin, groups of 32: the same call as
//! `esp-llm pack --quant q8`) and the int4 bundle (groups of 32: `esp-llm pack --quant q4`),
//! and hands the paths to `include_bytes!`.

use esp_llm_engine::checkpoint::bundle::{self, Quant};
use std::path::PathBuf;

fn models_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("ESP_LLM_MODELS") {
        return PathBuf::from(dir);
    }
    let here = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    for dir in here.ancestors() {
        let cand = dir.join("shared").join("models");
        if cand.is_dir() {
            return cand;
        }
    }
    panic!("cannot find shared/models in any ancestor of {} (set ESP_LLM_MODELS)", here.display());
}

fn main() {
    println!("cargo:rerun-if-env-changed=ESP_LLM_MODELS");
    println!("cargo:rerun-if-env-changed=LX7BENCH_STEPS");
    println!("cargo:rerun-if-changed=build.rs");
    let dir = models_dir();
    for (var, file) in [
        ("LX7BENCH_FP32", "stories260K.bin"),
        ("LX7BENCH_Q80", "stories260K_q80.bin"),
        ("LX7BENCH_TOK", "tok512.bin"),
    ] {
        let p = dir.join(file);
        assert!(p.is_file(), "missing model file {}", p.display());
        println!("cargo:rerun-if-changed={}", p.display());
        println!("cargo:rustc-env={var}={}", p.display());
    }
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR"));
    let read = |f: &str| {
        let p = dir.join(f);
        std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    };
    let (src, tok) = (read("stories260K.bin"), read("tok512.bin"));
    let ck = esp_llm_engine::Checkpoint::parse(&src).expect("stories260K.bin");
    for (var, file, quant) in [
        ("LX7BENCH_INT8", "stories260K_q8g32.ellb", Quant::Q8(Some(32))),
        ("LX7BENCH_INT4", "stories260K_q4g32.ellb", Quant::Q4(bundle::DEFAULT_Q4_GROUP)),
    ] {
        let path = out.join(file);
        let (bytes, _) = bundle::pack(&ck, &tok, quant, &mut |_| {})
            .unwrap_or_else(|e| panic!("packing {file}: {e}"));
        if std::fs::read(&path).ok().as_deref() != Some(&bytes[..]) {
            std::fs::write(&path, &bytes).expect("writing the bundle");
        }
        println!("cargo:rustc-env={var}={}", path.display());
    }
}
