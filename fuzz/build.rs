//! Finds `shared/models` in an ancestor directory so the encode target can embed the real
//! tokenizers (they are never copied into the repository).
fn main() {
    let here = std::path::PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let dir = std::env::var_os("ESP_LLM_MODELS").map(std::path::PathBuf::from).or_else(|| {
        here.ancestors().map(|a| a.join("shared/models")).find(|p| p.join("tok512.bin").is_file())
    });
    let dir =
        dir.expect("shared/models with tok512.bin not found in any ancestor; set ESP_LLM_MODELS");
    println!("cargo:rustc-env=ESP_LLM_MODELS_DIR={}", dir.display());
    println!("cargo:rerun-if-env-changed=ESP_LLM_MODELS");
}
