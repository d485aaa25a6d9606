#!/usr/bin/env bash
# Compile check of the portable engine for the ESP32-S3's Xtensa LX7 with upstream rustc/LLVM
# (Debian's rustc 1.96 + rust-src). Upstream cannot link Xtensa binaries or build esp-hal for
# it (see ../../../shared/TOOLCHAINS.md), so this only proves that the engine and the screen
# layer the S3 firmware links compile for the architecture. The firmware itself is built with espup's toolchain.
set -euo pipefail
cd "$(dirname "$0")"
if [ ! -x /usr/bin/rustc ] || [ ! -d /usr/lib/rustlib/src/rust/library ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rustc-web cargo-web rust-web-src lld-22 >/dev/null
fi
export PATH=/usr/bin:$PATH RUSTC=/usr/bin/rustc RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
# `core` with the generic spec; our crate with the LX7 features (see TOOLCHAINS.md).
/usr/bin/cargo rustc --manifest-path ../../crates/engine/Cargo.toml --release --lib \
  --target "$PWD/xtensa-esp32s3-none-elf.json" -Zbuild-std=core,alloc -Zjson-target-spec \
  -- -C target-feature=+fp,+mul32,+mul32high,+div32,+loop,+mac16,+nsa,+minmax,+sext,+density,+bool,+clamps
ls -l "$CARGO_TARGET_DIR"/xtensa-esp32s3-none-elf/release/libesp_llm_engine.rlib
# The screen layer of the firmware's `display` feature (the ESP32-S3-LCD-2's ST7789).
/usr/bin/cargo rustc --manifest-path ../../crates/screen/Cargo.toml --release --lib \
  --target "$PWD/xtensa-esp32s3-none-elf.json" -Zbuild-std=core,alloc -Zjson-target-spec \
  -- -C target-feature=+fp,+mul32,+mul32high,+div32,+loop,+mac16,+nsa,+minmax,+sext,+density,+bool,+clamps
ls -l "$CARGO_TARGET_DIR"/xtensa-esp32s3-none-elf/release/libesp_llm_screen.rlib
echo "xtensa (esp32s3) compile check of the engine and the screen layer: ok"
