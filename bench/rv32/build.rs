//! Finds the models (`$ESP_LLM_MODELS`, or `shared/models` in the nearest ancestor directory)
//! and hands their paths to `include_bytes!`; writes the linker script for QEMU's `virt` board.

use esp_llm_engine::checkpoint::bundle::Quant;
use std::path::{Path, PathBuf};

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
    println!("cargo:rerun-if-env-changed=RV32BENCH_STEPS");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=link.x");
    println!("cargo:rerun-if-env-changed=RV32BENCH_Q80_FILE");
    let dir = models_dir();
    for (var, file) in [
        ("RV32BENCH_FP32", "stories260K.bin"),
        ("RV32BENCH_Q80", "stories260K_q80.bin"),
        ("RV32BENCH_TOK", "tok512.bin"),
    ] {
        // `$RV32BENCH_Q80_FILE` embeds another int8 model (e.g. a bundle with other groups)
        // in the q80 binary, for one-off measurements.
        let p = match (var, std::env::var_os("RV32BENCH_Q80_FILE")) {
            ("RV32BENCH_Q80", Some(f)) => PathBuf::from(f),
            _ => dir.join(file),
        };
        assert!(p.is_file(), "missing model file {}", p.display());
        println!("cargo:rerun-if-changed={}", p.display());
        println!("cargo:rustc-env={var}={}", p.display());
    }
    // The fixed-point configuration runs a device bundle (int8, groups of 64), packed here
    // with the engine's own `pack` (the same call as `esp-llm pack --quant q8 -g 64`).
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR"));
    let bundle = out.join("stories260K_q8g64.ellb");
    let read = |f: &str| {
        let p = dir.join(f);
        std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    };
    let (src, tok) = (read("stories260K.bin"), read("tok512.bin"));
    let ck = esp_llm_engine::Checkpoint::parse(&src).expect("stories260K.bin");
    let (bytes, _) =
        esp_llm_engine::checkpoint::bundle::pack(&ck, &tok, Quant::Q8(Some(64)), &mut |_| {})
            .expect("packing the group-64 bundle");
    if std::fs::read(&bundle).ok().as_deref() != Some(&bytes[..]) {
        std::fs::write(&bundle, &bytes).expect("writing the bundle");
    }
    println!("cargo:rustc-env=RV32BENCH_Q8G64={}", bundle.display());

    let target = std::env::var("TARGET").unwrap_or_default();
    if target.starts_with("riscv32") {
        let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
        let script = Path::new(&manifest).join("link.x");
        println!("cargo:rustc-link-arg-bins=-T{}", script.display());
    }
}
