//! `include/esp_llm.h` is what cbindgen generates from `src/lib.rs` today (CI fails when an
//! exported item changed and the header was not regenerated), and the packages carry the same
//! header. Regenerate with `ESP_LLM_BLESS=1 cargo test -p esp-llm-capi --test header`.

use std::path::Path;

#[test]
fn header_is_current() {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = cbindgen::Config::from_file(crate_dir.join("cbindgen.toml")).unwrap();
    let mut generated = Vec::new();
    cbindgen::Builder::new()
        .with_crate(crate_dir)
        .with_config(config)
        .generate()
        .expect("cbindgen could not generate the header")
        .write(&mut generated);
    let path = crate_dir.join("include/esp_llm.h");
    if std::env::var_os("ESP_LLM_BLESS").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let checked_in = std::fs::read(&path).unwrap_or_default();
    assert!(
        checked_in == generated,
        "{} is not what cbindgen generates from src/lib.rs; regenerate it with \
         ESP_LLM_BLESS=1 cargo test -p esp-llm-capi --test header",
        path.display()
    );
}
