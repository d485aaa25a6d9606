#!/usr/bin/env bash
# Instruction profile of one configuration: profile.sh imac|imafc fp32|q80 [top]
# Needs a built binary (run.sh builds them). Streams QEMU's TB log through profile.py.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
isa=${1:?imac or imafc} model=${2:?fp32 or q80} top=${3:-40}
case $isa in
  imac) cpu="rv32,f=false,d=false" ;;
  imafc) cpu="rv32,d=false" ;;
  *) echo "unknown ISA $isa" >&2; exit 2 ;;
esac
elf=${CARGO_TARGET_DIR:-$here/target}/riscv32$isa-unknown-none-elf/release/rv32bench-$model
fifo=$(mktemp -u /tmp/rv32prof.XXXXXX)
mkfifo "$fifo"
trap 'rm -f "$fifo"' EXIT
qemu-system-riscv32 -M virt -bios none -cpu "$cpu" -m 64M -display none -serial none \
  -monitor none -icount shift=0 -semihosting-config enable=on,target=native \
  -kernel "$elf" -d in_asm,exec,nochain -D "$fifo" >/dev/null 2>&1 &
qpid=$!
python3 "$here/profile.py" "$elf" "$top" <"$fifo"
wait "$qpid"
