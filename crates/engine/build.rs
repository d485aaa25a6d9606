//! Assembles the ESP32-S3 kernels (`src/kernels/lx7/*.S`) when the `lx7` feature is on and the
//! target is Xtensa, with the C compiler the `cc` crate finds for the target (Espressif's
//! `xtensa-esp32s3-elf-gcc`, installed by `espup`). `ESP_LLM_LX7_ASM=external` skips it for
//! builds that assemble the files themselves (bench/lx7, the compile check in CI).

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=ESP_LLM_LX7_ASM");
    #[cfg(feature = "lx7")]
    lx7();
}

#[cfg(feature = "lx7")]
fn lx7() {
    if std::env::var("CARGO_CFG_TARGET_ARCH").as_deref() != Ok("xtensa")
        || std::env::var("ESP_LLM_LX7_ASM").as_deref() == Ok("external")
    {
        return;
    }
    let dir = std::path::Path::new("src/kernels/lx7");
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .expect("src/kernels/lx7")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "S"))
        .collect();
    files.sort();
    let mut build = cc::Build::new();
    for f in &files {
        println!("cargo:rerun-if-changed={}", f.display());
        build.file(f);
    }
    build.compile("esp_llm_lx7");
}
