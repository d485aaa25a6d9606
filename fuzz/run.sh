#!/usr/bin/env bash
# Runs every fuzz target for FUZZ_SECONDS (default 30) each, from fresh seed corpora. A crash
# fails the script; its input is left in fuzz/artifacts/<target>/ — copy it into
# fuzz/regressions/<target>/ so the normal test suite replays it forever.
set -euo pipefail
cd "$(dirname "$0")"
SECONDS_EACH=${FUZZ_SECONDS:-30}
MODELS=${ESP_LLM_MODELS:-}
if [ -z "$MODELS" ]; then
  for d in .. ../.. ../../.. ../../../..; do
    if [ -f "$d/shared/models/tok512.bin" ]; then MODELS=$(cd "$d/shared/models" && pwd); break; fi
  done
fi
[ -n "$MODELS" ] || { echo "shared/models not found; set ESP_LLM_MODELS" >&2; exit 1; }
export ESP_LLM_MODELS=$MODELS
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
# cargo-fuzz needs a nightly compiler (sanitizer flags); rustup installs it when missing.
rustup toolchain list | grep -q nightly || rustup toolchain install nightly --profile minimal
(cd .. && cargo build --release -p esp-llm -q)
rm -rf corpus
python3 seed.py "$MODELS" corpus ../target/release/esp-llm
TARGETS=$(cargo +nightly fuzz list)
for t in $TARGETS; do
  mkdir -p "corpus/$t"
  echo "== fuzz $t for ${SECONDS_EACH}s"
  rc=0
  cargo +nightly fuzz run "$t" "corpus/$t" -- -max_total_time="$SECONDS_EACH" -max_len=65536 \
    -rss_limit_mb=2048 -print_final_stats=1 >"corpus/$t.log" 2>&1 || rc=$?
  grep -E "^stat::(number_of_executed_units|peak_rss_mb)" "corpus/$t.log" || true
  if [ "$rc" -ne 0 ] || [ -n "$(ls -A "artifacts/$t" 2>/dev/null)" ]; then
    tail -n 40 "corpus/$t.log" >&2
    echo "fuzz target $t failed (exit $rc); inputs: $(ls "artifacts/$t" 2>/dev/null)" >&2
    exit 1
  fi
done
echo "fuzz: all targets clean"
