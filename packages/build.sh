#!/usr/bin/env bash
# Builds the C API's static library (crates/capi, no_std) for ESP32 chips and puts it, with the
# header, into the Arduino library and the ESP-IDF component in this folder:
#
#   packages/build.sh [esp32c3] [esp32c6] [esp32p4] [esp32s3]     (default: the three RISC-V chips)
#
#   packages/arduino/EspLlm/src/<chip>/libesp_llm.a   Arduino's precompiled-library layout
#   packages/esp-idf/esp_llm/lib/<chip>/libesp_llm.a  the ESP-IDF component's prebuilt library
#
# RISC-V chips (esp32c3 rv32imc, esp32c6 rv32imac, esp32p4 rv32imafc with hard float, ABI
# ilp32f) use Debian's rustc from /usr/bin with RUSTC_BOOTSTRAP=1 and -Zbuild-std=core,alloc,
# like firmware/build.sh. The ESP32-S3 (Xtensa) library needs Espressif's Rust toolchain
# (`cargo install espup && espup install && . ~/export-esp.sh`, target xtensa-esp32s3-none-elf):
# this script runs it when `rustup toolchain list` shows `esp`; upstream rustc cannot link
# Xtensa code (see firmware/README.md), so it cannot run on a machine without espup.
#
# (`cargo rustc --crate-type staticlib`: with the rlib beside it cargo would skip LTO.)
# The library is fat-LTO'd Rust (engine + C API + core/alloc/compiler-builtins), panic=abort;
# it calls malloc/memalign/realloc/free/abort from the C library it is linked with.
# Environment: CARGO_TARGET_DIR (default: packages/target). Prints each library's code size.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$here/target}
chips=("$@")
[ ${#chips[@]} -gt 0 ] || chips=(esp32c3 esp32c6 esp32p4)

# The profile: the workspace's release plus what a library for an MCU wants.
profile_args=(--release
    --config 'profile.release.lto="fat"'
    --config 'profile.release.panic="abort"'
    --config 'profile.release.codegen-units=1'
    --config 'profile.release.debug=false')

size_of() {
    # Text (code + read-only data) summed over the archive's members.
    local size=/usr/lib/llvm-22/bin/llvm-size
    command -v "$size" >/dev/null || size=size
    "$size" -t "$1" 2>/dev/null | tail -n 1 | awk '{print $1}'
}

install_lib() {
    local chip=$1 lib=$2
    mkdir -p "$here/arduino/EspLlm/src/$chip" "$here/esp-idf/esp_llm/lib/$chip"
    cp "$lib" "$here/arduino/EspLlm/src/$chip/libesp_llm.a"
    cp "$lib" "$here/esp-idf/esp_llm/lib/$chip/libesp_llm.a"
    echo "$chip: $(size_of "$lib") bytes of text in $lib" >&2
}

for chip in "${chips[@]}"; do
    case "$chip" in
        esp32c3) target=riscv32imc-unknown-none-elf ;;
        esp32c6) target=riscv32imac-unknown-none-elf ;;
        esp32p4) target=riscv32imafc-unknown-none-elf ;;
        esp32s3) target=xtensa-esp32s3-none-elf ;;
        *) echo "unknown chip '$chip' (esp32c3, esp32c6, esp32p4, esp32s3)" >&2; exit 2 ;;
    esac
    echo "== $chip ($target)" >&2
    if [ "$chip" = esp32s3 ]; then
        if ! command -v rustup >/dev/null || ! rustup toolchain list | grep -q '^esp'; then
            cat >&2 <<'MSG'
error: the ESP32-S3 (Xtensa) library needs Espressif's Rust toolchain, which is not installed:
  cargo install espup --locked && espup install && . ~/export-esp.sh
then run this script again. Upstream rustc (Debian's or rustup's) cannot link Xtensa code.
MSG
            exit 1
        fi
        # With the engine's LX7 assembly kernels (PIE int8, FPU f32), as the firmware has them.
        (cd "$root" && cargo +esp rustc -p esp-llm-capi --lib --crate-type staticlib --no-default-features --features lx7 "${profile_args[@]}" \
            --target "$target" -Zbuild-std=core,alloc)
    else
        if [ ! -x /usr/bin/rustc ] || [ ! -d /usr/lib/rustlib/src/rust/library ]; then
            echo "error: needs Debian's rustc with rust-src: apt-get install -y rustc-web cargo-web rust-web-src lld-22" >&2
            exit 1
        fi
        (cd "$root" && env -u RUSTUP_TOOLCHAIN PATH=/usr/bin:$PATH RUSTC=/usr/bin/rustc RUSTC_BOOTSTRAP=1 \
            /usr/bin/cargo rustc -p esp-llm-capi --lib --crate-type staticlib --no-default-features "${profile_args[@]}" \
            --target "$target" -Zbuild-std=core,alloc)
    fi
    install_lib "$chip" "$CARGO_TARGET_DIR/$target/release/libesp_llm_capi.a"
done
cp "$root/crates/capi/include/esp_llm.h" "$here/arduino/EspLlm/src/esp_llm.h"
cp "$root/crates/capi/include/esp_llm.h" "$here/esp-idf/esp_llm/include/esp_llm.h" 2>/dev/null || {
    mkdir -p "$here/esp-idf/esp_llm/include"
    cp "$root/crates/capi/include/esp_llm.h" "$here/esp-idf/esp_llm/include/esp_llm.h"
}
