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

/// The Arduino library and the ESP-IDF component ship the same header, and the Arduino example
/// the flash layout `esp-llm flash` writes the model into.
#[test]
fn packages_carry_the_header_and_the_flash_layout() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let read = |p: &str| std::fs::read(root.join(p)).unwrap_or_else(|e| panic!("{p}: {e}"));
    let header = read("crates/capi/include/esp_llm.h");
    for copy in
        ["packages/arduino/EspLlm/src/esp_llm.h", "packages/esp-idf/esp_llm/include/esp_llm.h"]
    {
        assert!(
            read(copy) == header,
            "{copy} differs from crates/capi/include/esp_llm.h: copy it over"
        );
    }
    assert!(
        read("packages/arduino/EspLlm/examples/Story/partitions.csv")
            == read("firmware/partitions-4mb.csv"),
        "the Story sketch's partitions.csv must be firmware/partitions-4mb.csv (esp-llm flash's layout)"
    );
}
