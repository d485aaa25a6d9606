#!/usr/bin/env bash
# Compile check of the engine for the ESP32-S3's Xtensa LX7 with upstream rustc/LLVM (Debian's
# rustc 1.96 + rust-src), in the S3's real ABI: windowed registers for every crate (the target
# spec's features), the FPU for the engine, and the LX7 assembly kernels' Rust side (feature
# `lx7`; the .S files themselves are assembled by bench/lx7 and by the firmware's Espressif
# toolchain, not here). Upstream cannot link Xtensa binaries or build esp-hal for it (see
# ../../../shared/TOOLCHAINS.md), so this proves that the engine (and the screen layer) the S3 firmware links compile.
#
# Optimization levels are the ones upstream LLVM 22 survives with the windowed ABI: "s" for the
# standard crates, 2 for the engine (opt-level 3 crashes its register scavenger).
set -euo pipefail
cd "$(dirname "$0")"
if [ ! -x /usr/bin/rustc ] || [ ! -d /usr/lib/rustlib/src/rust/library ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rustc-web cargo-web rust-web-src lld-22 >/dev/null
fi
export PATH=/usr/bin:$PATH RUSTC=/usr/bin/rustc RUSTC_BOOTSTRAP=1 ESP_LLM_LX7_ASM=external
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
/usr/bin/cargo rustc --manifest-path ../../crates/engine/Cargo.toml --release --lib --features lx7 \
  --config 'profile.release.opt-level="s"' \
  --config 'profile.release.package.esp-llm-engine.opt-level=2' \
  --target "$PWD/xtensa-esp32s3-none-elf.json" -Zbuild-std=core,alloc -Zjson-target-spec \
  -- -C target-feature=+fp
ls -l "$CARGO_TARGET_DIR"/xtensa-esp32s3-none-elf/release/libesp_llm_engine.rlib
# The screen layer of the firmware's `display` feature (the ESP32-S3-LCD-2's ST7789).
/usr/bin/cargo rustc --manifest-path ../../crates/screen/Cargo.toml --release --lib \
  --config 'profile.release.opt-level="s"' \
  --target "$PWD/xtensa-esp32s3-none-elf.json" -Zbuild-std=core,alloc -Zjson-target-spec
ls -l "$CARGO_TARGET_DIR"/xtensa-esp32s3-none-elf/release/libesp_llm_screen.rlib
echo "xtensa (esp32s3, windowed ABI + FPU, lx7 kernels) compile check of the engine and the screen layer: ok"
