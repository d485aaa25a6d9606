#!/usr/bin/env bash
# CI for the firmware: builds esp32c3, esp32c6 and esp32p4 in release, each without and with
# the `display` feature (the ST7789 screen; it adds only the app crate's recompile and link and
# the driver crates, ~10-20 s of CPU per chip once the dependencies are cached), and prints the
# sizes.
#   firmware/ci.sh            build the three RISC-V chips
#   firmware/ci.sh --clippy   also run clippy -D warnings per chip (needs rust-web-clippy)
# Self-contained: installs Debian's cross toolchain if it is missing. The ESP32-S3 (Xtensa)
# needs Espressif's toolchain, which CI cannot install; it is not built here.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
clippy=0
[ "${1:-}" = "--clippy" ] && clippy=1

if [ ! -x /usr/bin/rustc ] || [ ! -d /usr/lib/rustlib/src/rust/library ] || [ ! -e /usr/bin/rust-lld ]; then
    echo "firmware/ci.sh: installing Debian's rustc, cargo, rust-src and lld" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >&2
    apt-get install -y -q rustc-web cargo-web rust-web-src lld-22 >&2
fi

if [ $clippy = 1 ] && [ ! -x /usr/bin/clippy-driver ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q rust-web-clippy >&2
fi

# Reuse compiled dependencies across CI runs on the same machine (cargo tracks staleness).
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/esp-llm/firmware-target}
mkdir -p "$CARGO_TARGET_DIR"

sizes() {
    local elf=$1
    if command -v /usr/lib/llvm-22/bin/llvm-size >/dev/null 2>&1; then
        /usr/lib/llvm-22/bin/llvm-size "$elf" | tail -n 1 | awk '{printf "text %d data %d bss %d", $1, $2, $3}'
    elif command -v size >/dev/null 2>&1; then
        size "$elf" | tail -n 1 | awk '{printf "text %d data %d bss %d", $1, $2, $3}'
    else
        printf 'elf %d bytes' "$(stat -c %s "$elf")"
    fi
}

status=0
summary=()
for chip in esp32c3 esp32c6 esp32p4; do
    for features in "" display; do
        name="$chip${features:+ +$features}"
        echo "== firmware: $name (release)"
        start=$(date +%s)
        if elf=$("$here/build.sh" "$chip" --release ${features:+--features $features}); then
            summary+=("$name: $(sizes "$elf") ($(( $(date +%s) - start )) s)")
        else
            summary+=("$name: BUILD FAILED")
            status=1
        fi
    done
    if [ $clippy = 1 ]; then
        case "$chip" in
            esp32c3) target=riscv32imc-unknown-none-elf ;;
            esp32c6) target=riscv32imac-unknown-none-elf ;;
            esp32p4) target=riscv32imafc-unknown-none-elf ;;
        esac
        if ! (cd "$here" && PATH=/usr/bin:$PATH RUSTC=/usr/bin/rustc RUSTC_BOOTSTRAP=1 \
            /usr/bin/cargo clippy --release --target "$target" --features "$chip,display" -- -D warnings); then
            summary+=("$chip: CLIPPY FAILED")
            status=1
        fi
    fi
done
echo "== firmware sizes"
printf '%s\n' "${summary[@]}"
exit $status
