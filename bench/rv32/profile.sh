#!/usr/bin/env bash
# Instruction profile of one configuration:
#   profile.sh imac|imafc fp32|q80 [STEPS] [TOP]
# Builds the benchmark with STEPS forward passes (default 16: the log of a 64-step soft-float
# run is ~40 GB) into target/profile, and streams QEMU's translation-block log through
# profile.py, which prints self and inclusive instruction counts by function and source line.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
isa=${1:?imac or imafc} model=${2:?fp32 or q80} steps=${3:-16} top=${4:-40}
case $isa in
  imac) cpu="rv32,f=false,d=false" ;;
  imafc) cpu="rv32,d=false" ;;
  *) echo "unknown ISA $isa" >&2; exit 2 ;;
esac
export PATH=/usr/bin:$PATH RUSTC=/usr/bin/rustc RUSTC_BOOTSTRAP=1 RV32BENCH_STEPS=$steps
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$here/target}/profile
/usr/bin/cargo build --quiet --release --manifest-path "$here/Cargo.toml" -Zbuild-std=core,alloc \
  --target "riscv32$isa-unknown-none-elf" --bin "rv32bench-$model"
elf=$CARGO_TARGET_DIR/riscv32$isa-unknown-none-elf/release/rv32bench-$model
fifo=$(mktemp -u /tmp/rv32prof.XXXXXX)
mkfifo "$fifo"
trap 'rm -f "$fifo"' EXIT
qemu-system-riscv32 -M virt -bios none -cpu "$cpu" -m 64M -display none -serial none \
  -monitor none -icount shift=0 -semihosting-config enable=on,target=native \
  -kernel "$elf" -d in_asm,exec,nochain -D "$fifo" >"$fifo.out" 2>&1 &
qpid=$!
python3 "$here/profile.py" "$elf" "$top" <"$fifo"
wait "$qpid"
grep -E '^(forwards|instret_per_token)' "$fifo.out" || true
rm -f "$fifo.out"
