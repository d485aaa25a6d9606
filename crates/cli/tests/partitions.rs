//! The flash layouts compiled into `esp-llm` (crates/cli/partitions/, inside the crate so that
//! `cargo publish` packages them) are the firmware's own tables (firmware/partitions-*.csv).

use std::path::Path;

#[test]
fn the_cli_carries_the_firmware_partition_tables() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for size in ["4mb", "16mb", "32mb"] {
        let name = format!("partitions-{size}.csv");
        let copy = std::fs::read(root.join("partitions").join(&name)).unwrap();
        let firmware = std::fs::read(root.join("../../firmware").join(&name)).unwrap();
        assert!(
            copy == firmware,
            "crates/cli/partitions/{name} differs from firmware/{name}: copy it over"
        );
    }
}
