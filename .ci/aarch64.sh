#!/usr/bin/env bash
# The engine on aarch64, emulated with qemu-user: clippy for the aarch64 target, then every
# engine test (kernel proptests, golden cases, formats, bundles, robustness) run under
# qemu-aarch64, with the golden generation cases narrowed to the NEON kernels (the portable
# scalar/unrolled kernels are the same code the host run already checks).
#   .ci/aarch64.sh
# Self-contained: adds the rustup target, the cross linker and qemu-user when missing.
# qemu-user is not a timing model: this checks results, never speed.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never
step() { echo; echo "== aarch64: $* ($(date +%T))"; }

step toolchain
target=aarch64-unknown-linux-gnu
rustup target list --installed | grep -qx "$target" || rustup target add "$target"
if ! command -v aarch64-linux-gnu-gcc >/dev/null || ! command -v qemu-aarch64 >/dev/null \
    || [ ! -d /usr/aarch64-linux-gnu/lib ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq gcc-aarch64-linux-gnu qemu-user >/dev/null
fi
qemu-aarch64 --version | head -n 1

# Reuse compiled dependencies across CI runs on the same machine (cargo tracks staleness): a
# clean clone otherwise spends about 2.5 of its 5 minutes compiling them.
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/esp-llm/aarch64-target}
mkdir -p "$CARGO_TARGET_DIR"
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="qemu-aarch64 -L /usr/aarch64-linux-gnu"

step "clippy (engine, aarch64: all targets with std, then the no_std lib)"
cargo clippy -p esp-llm-engine --target "$target" --all-targets -- -D warnings
cargo clippy -p esp-llm-engine --target "$target" --lib -- -D warnings

# qemu's `max` CPU has NEON and dotprod: both NEON kernel sets must be found and tested.
step "engine tests under qemu-aarch64 -cpu max (neon, neon-dotprod)"
QEMU_CPU=max ESP_LLM_EXPECT_DOTPROD=1 ESP_LLM_TEST_KERNELS=neon,neon-dotprod \
    cargo test --release -p esp-llm-engine --target "$target"

# An Armv8.0 core without dotprod: the plain NEON kernels are picked, and still exact.
step "kernel tests under qemu-aarch64 -cpu cortex-a53 (no dotprod)"
QEMU_CPU=cortex-a53 cargo test --release -p esp-llm-engine --target "$target" --lib kernels

step "aarch64 ok"
