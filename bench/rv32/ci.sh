#!/usr/bin/env bash
# CI gate for the RV32 yardstick (called by .ci/run):
#  1. run.sh: build and run the six configurations under QEMU (-icount shift=0);
#  2. each run's tokens and text must equal the host engine's for the same model, settings and
#     kernels (host/, engine::Generator), and the host's Scalar reference;
#  3. instructions per token must not exceed the figures in docs/performance.md (section RV32)
#     by more than 2%.
# Prints "N passed, M failed" at the end; exits non-zero on any failure.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
target_dir=${CARGO_TARGET_DIR:-$here/target}
out_dir=$target_dir/out
tolerance_pct=${RV32_TOLERANCE_PCT:-2}

OUT=$out_dir CARGO_TARGET_DIR=$target_dir "$here/run.sh"

# Host reference, built with the host toolchain if there is one (else Debian's cargo).
cargo_host=$(command -v cargo || echo /usr/bin/cargo)
env -u RUSTC -u RUSTC_BOOTSTRAP CARGO_TARGET_DIR="$target_dir/host" "$cargo_host" build --quiet \
  --release --manifest-path "$here/host/Cargo.toml"
host_bin=$target_dir/host/release/rv32bench-host

passed=0
failed=0
pass() { passed=$((passed + 1)); echo "ok   $*"; }
fail() { failed=$((failed + 1)); echo "FAIL $*"; }

model_file() { case $1 in fp32) echo stories260K.bin ;; q80) echo stories260K_q80.bin ;; q8fx) echo q8fx ;; esac; }

while read -r isa model base; do
  case $isa in ''|'#'*) continue ;; esac
  out=$out_dir/$isa-$model.txt
  if [ ! -s "$out" ] || ! grep -q '^instret_per_token: ' "$out"; then
    fail "$isa $model: no result (see $out)"
    continue
  fi
  kern=$(sed -n 's/^kernels: //p' "$out")
  got=$(grep -E '^(stop|tokens|text): ' "$out")
  for k in scalar "$kern"; do
    want=$("$host_bin" "$(model_file "$model")" "$k") || { fail "$isa $model: host run ($k)"; continue; }
    if [ "$got" == "$want" ]; then
      pass "$isa $model: text and tokens equal the host's ($k kernels)"
    else
      fail "$isa $model: text differs from the host's ($k kernels)"
      diff <(echo "$want") <(echo "$got") || true
    fi
  done
  if [ "$model" = q8fx ]; then
    if grep -q '^kernel_check: .* equal to scalar' "$out"; then
      pass "$isa $model: $(sed -n 's/^kernel_check: //p' "$out") (fixed-point kernel on RV32)"
    else
      fail "$isa $model: no kernel check line"
    fi
  fi
  ipt=$(sed -n 's/^instret_per_token: //p' "$out")
  limit=$(( base + base * tolerance_pct / 100 ))
  if [ "$ipt" -le "$limit" ]; then
    pass "$isa $model: $ipt instructions/token <= $limit (baseline $base + ${tolerance_pct}%)"
  else
    fail "$isa $model: $ipt instructions/token > $limit (baseline $base + ${tolerance_pct}%)"
  fi
  if [ "$ipt" -lt $(( base - base * tolerance_pct / 100 )) ]; then
    echo "note $isa $model: $ipt is well below the baseline $base; update the table in docs/performance.md"
  fi
done < <(grep -E '^\| (imac|imafc) \| (fp32|q80|q8fx) \| [0-9]+ \|' "$here/../../docs/performance.md" \
  | awk -F'|' '{ gsub(/ /, ""); print $2, $3, $4 }')

if [ "$passed" -lt 20 ]; then
  fail "expected 6 configurations in docs/performance.md (found $passed checks)"
fi
echo "rv32: $passed passed, $failed failed"
[ "$failed" = 0 ] && [ "$passed" -gt 0 ]
