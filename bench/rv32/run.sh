#!/usr/bin/env bash
# Builds bench/rv32 for rv32imac and rv32imafc and runs all four configurations under
# qemu-system-riscv32 -icount shift=0; prints a table of instructions per token.
#   run.sh            build + run all; outputs in $OUT (default target/out/<isa>-<model>.txt)
#   run.sh --phases   same with the matmul kernels' own instruction counts (separate build)
#   run.sh --scalar   same with the engine's Scalar reference kernels (separate build)
# Installs the Debian cross toolchain and QEMU with apt-get if they are missing.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

phases=0
scalar=0
for a in "$@"; do
  case $a in
    --phases) phases=1 ;;
    --scalar) scalar=1 ;;
    *) echo "usage: $0 [--phases] [--scalar]" >&2; exit 2 ;;
  esac
done

ensure_deps() {
  local missing=()
  [ -x /usr/bin/rustc ] && /usr/bin/rustc --print target-list 2>/dev/null | grep -q riscv32imafc-unknown-none-elf \
    || missing+=(rustc-web)
  [ -x /usr/bin/cargo ] || missing+=(cargo-web)
  [ -d /usr/lib/rustlib/src/rust/library/core ] || missing+=(rust-web-src)
  command -v rust-lld >/dev/null || missing+=(lld-22)
  command -v qemu-system-riscv32 >/dev/null || missing+=(qemu-system-misc)
  if [ ${#missing[@]} -gt 0 ]; then
    echo "run.sh: installing ${missing[*]}" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >&2
  fi
}
ensure_deps

# The Debian toolchain (rustc 1.96 with rust-src) for -Zbuild-std; the host workspace is untouched.
export PATH=/usr/bin:$PATH RUSTC=/usr/bin/rustc RUSTC_BOOTSTRAP=1
unset RUSTFLAGS RUSTUP_TOOLCHAIN
target_dir=${CARGO_TARGET_DIR:-$here/target}
features=()
if [ $phases = 1 ]; then
  target_dir=$target_dir/phases
  features+=(--features phases)
fi
if [ $scalar = 1 ]; then
  target_dir=$target_dir/scalar
  features+=(--features scalar)
fi
export CARGO_TARGET_DIR=$target_dir
out_dir=${OUT:-$target_dir/out}
mkdir -p "$out_dir"

isas=(imac imafc)
models=(fp32 q80 q8fx)
for isa in "${isas[@]}"; do
  /usr/bin/cargo build --quiet --release --manifest-path "$here/Cargo.toml" \
    -Zbuild-std=core,alloc --target "riscv32$isa-unknown-none-elf" --bins "${features[@]}"
done

cpu_of() {
  case $1 in
    imac) echo "rv32,f=false,d=false" ;;   # ESP32-C3/C6 class: no FPU, soft float
    imafc) echo "rv32,d=false" ;;          # ESP32-P4 class: single-precision FPU
  esac
}

status=0
rows=()
for isa in "${isas[@]}"; do
  for model in "${models[@]}"; do
    elf=$target_dir/riscv32$isa-unknown-none-elf/release/rv32bench-$model
    out=$out_dir/$isa-$model.txt
    rc=0
    timeout 600 qemu-system-riscv32 -M virt -bios none -cpu "$(cpu_of "$isa")" -m 64M \
      -display none -serial none -monitor none -icount shift=0 \
      -semihosting-config enable=on,target=native -kernel "$elf" >"$out" 2>&1 </dev/null || rc=$?
    ipt=$(sed -n 's/^instret_per_token: //p' "$out")
    if [ $rc != 0 ] || [ -z "$ipt" ]; then
      echo "run.sh: $isa $model failed (exit $rc), output in $out:" >&2
      tail -5 "$out" >&2
      status=1
      continue
    fi
    get() { sed -n "s/^$1: //p" "$out"; }
    row="| $isa | $model | $(get kernels) | $ipt | $(get instret_forward_first) | $(get instret_forward_last) | $(get forwards) |"
    if [ $phases = 1 ]; then
      mm=$(( $(get instret_matmul_f32_per_token) + $(get instret_matmul_q8_per_token) ))
      row="$row $mm |"
    fi
    rows+=("$row")
  done
done

echo
if [ $phases = 1 ]; then
  echo "| ISA | model | kernels | instructions/token | first forward | last forward | forwards | matmul/token |"
  echo "|---|---|---|---:|---:|---:|---:|---:|"
else
  echo "| ISA | model | kernels | instructions/token | first forward | last forward | forwards |"
  echo "|---|---|---|---:|---:|---:|---:|"
fi
printf '%s\n' "${rows[@]}"
echo
echo "outputs: $out_dir"
exit $status
