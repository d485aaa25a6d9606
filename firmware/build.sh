#!/usr/bin/env bash
# Builds the esp-llm firmware for one chip and prints the ELF's path (last line of stdout).
#
#   firmware/build.sh esp32c3|esp32c6|esp32p4|esp32s3 [--release] [--features display]
#
# RISC-V chips (esp32c3, esp32c6, esp32p4) use Debian's rustc (>= 1.95, with rust-src) from
# /usr/bin: RUSTC_BOOTSTRAP=1 unlocks -Zbuild-std, which builds core/alloc for the target.
# The ESP32-S3 (Xtensa) needs Espressif's toolchain, installed with `espup install`; upstream
# rustc cannot compile esp-hal's Xtensa runtime. See firmware/README.md.
#
# Environment: CARGO_TARGET_DIR (default firmware/target), ESP_LLM_FW_CARGO_ARGS (extra args).
set -euo pipefail

usage() {
    echo "usage: $0 esp32c3|esp32c6|esp32p4|esp32s3 [--release] [--features display]" >&2
    exit 2
}

[ $# -ge 1 ] || usage
chip=$1
shift
profile=debug
cargo_profile=()
features=$chip
while [ $# -gt 0 ]; do
    case "$1" in
        --release) profile=release; cargo_profile=(--release) ;;
        --features) [ $# -ge 2 ] || usage; features="$features,$2"; shift ;;
        *) usage ;;
    esac
    shift
done

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cd "$here"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$here/target}

case "$chip" in
    esp32c3) target=riscv32imc-unknown-none-elf ;;
    esp32c6) target=riscv32imac-unknown-none-elf ;;
    esp32p4) target=riscv32imafc-unknown-none-elf ;;
    esp32s3) target=xtensa-esp32s3-none-elf ;;
    *) echo "unknown chip '$chip'" >&2; usage ;;
esac

if [ "$chip" = esp32s3 ]; then
    # Espressif's toolchain: `cargo install espup && espup install && . ~/export-esp.sh`.
    if ! command -v rustup >/dev/null || ! rustup toolchain list | grep -q '^esp'; then
        cat >&2 <<'MSG'
error: the ESP32-S3 (Xtensa) build needs Espressif's Rust toolchain, which is not installed.
  Install it with:  cargo install espup --locked && espup install && . ~/export-esp.sh
  then run this script again. Upstream rustc (Debian's or rustup's) rejects the Xtensa
  inline assembly in esp-hal's runtime, so it cannot build this chip.
MSG
        exit 1
    fi
    # shellcheck disable=SC2086
    cargo +esp build "${cargo_profile[@]}" --target "$target" --features "$features" ${ESP_LLM_FW_CARGO_ARGS:-} >&2
else
    if [ ! -x /usr/bin/rustc ] || [ ! -d /usr/lib/rustlib/src/rust/library ]; then
        cat >&2 <<'MSG'
error: the RISC-V build needs Debian's rustc with the standard library's source:
  apt-get install -y rustc-web cargo-web rust-web-src lld-22   (firmware/ci.sh does this)
MSG
        exit 1
    fi
    export PATH=/usr/bin:$PATH RUSTC=/usr/bin/rustc RUSTC_BOOTSTRAP=1
    unset RUSTUP_TOOLCHAIN
    # shellcheck disable=SC2086
    /usr/bin/cargo build "${cargo_profile[@]}" --target "$target" --features "$features" ${ESP_LLM_FW_CARGO_ARGS:-} >&2
fi

elf="$CARGO_TARGET_DIR/$target/$profile/esp-llm-firmware"
[ -f "$elf" ] || { echo "error: build finished but $elf is missing" >&2; exit 1; }
echo "$elf"
