#!/usr/bin/env bash
# bench/lx7: the engine on the ESP32-S3's Xtensa LX7 core, in Espressif's QEMU (`esp32s3`
# machine), exact instructions per token from the core's ICOUNT register.
#
#   run.sh            kernel checks, then the fp32 / int8 / int4 / q80 configurations; a table
#   run.sh --portable the same with the engine's portable kernels (no LX7 assembly)
#   run.sh --scalar   the same with the engine's Scalar reference kernels
#   run.sh --phases   the LX7 kernels, also counting the instructions inside the matmuls
#   run.sh --shape stories15M [--quant q4|q8]
#                     instead: a synthetic checkpoint of that shape (`esp-llm synth`), packed as
#                     a bundle (`esp-llm pack --quant`, default q4, tokenizer.bin), loaded at
#                     run time by semihosting into the emulated PSRAM (QEMU -m 32M, mapped
#                     through the cache MMU at 0x3C000000), 8 forward passes from BOS with the
#                     LX7 kernels and the full context: instructions per position 0..7
#                     (`--steps N`: N forward passes, up to the 256 positions of the context)
#
# Needs (never committed, built by hand from Espressif's public repositories):
#   ESP_XTENSA_BIN   directory holding xtensa-esp32s3-elf-as and xtensa-esp32s3-elf-ld
#                    (Espressif binutils with the esp32s3 overlay: the PIE instructions)
#   ESP_QEMU_XTENSA  path to Espressif's qemu-system-xtensa (with the esp32s3 machine)
# and Debian's rustc 1.96 with rust-src (installed with apt-get when missing, as bench/rv32 does).
# Outputs: $OUT (default target/out/lx7-<config>.txt).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

mode=lx7
shape=
quant=q4
while [ $# -gt 0 ]; do
  case $1 in
    --portable) mode=portable ;;
    --scalar) mode=scalar ;;
    --phases) mode=phases ;;
    --shape) shape=${2:?--shape needs a name}; shift ;;
    --quant) quant=${2:?--quant needs q4 or q8}; shift ;;
    --steps) export LX7BENCH_BIG_STEPS=${2:?--steps needs a number}; shift ;;
    -h|--help) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "usage: $0 [--portable|--scalar|--phases] | --shape NAME [--quant q4|q8]" >&2; exit 2 ;;
  esac
  shift
done
if [ -n "$shape" ] && [ $mode != lx7 ]; then
  echo "run.sh: --shape runs the LX7 kernels only" >&2
  exit 2
fi

missing=()
if [ -z "${ESP_XTENSA_BIN:-}" ] || [ ! -x "$ESP_XTENSA_BIN/xtensa-esp32s3-elf-as" ] \
  || [ ! -x "$ESP_XTENSA_BIN/xtensa-esp32s3-elf-ld" ]; then
  missing+=("ESP_XTENSA_BIN: a directory with xtensa-esp32s3-elf-as and -ld (Espressif's binutils-gdb, branch esp_based_on_binutils-2_35, configured --target=xtensa-esp32s3-elf with the xtensa_esp32s3 files of espressif/xtensa-overlays)")
fi
if [ -z "${ESP_QEMU_XTENSA:-}" ] || [ ! -x "${ESP_QEMU_XTENSA:-}" ]; then
  missing+=("ESP_QEMU_XTENSA: Espressif's qemu-system-xtensa with the esp32s3 machine (espressif/qemu, esp-develop-9.2, target xtensa-softmmu)")
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "bench/lx7/run.sh: cannot run, missing:" >&2
  printf '  - %s\n' "${missing[@]}" >&2
  echo "These tools are built by hand from public sources and never committed (see docs/performance.md, LX7 section)." >&2
  exit 2
fi
AS=$ESP_XTENSA_BIN/xtensa-esp32s3-elf-as
LD=$ESP_XTENSA_BIN/xtensa-esp32s3-elf-ld
NM=$ESP_XTENSA_BIN/xtensa-esp32s3-elf-nm
[ -x "$NM" ] || NM=nm

if [ ! -x /usr/bin/rustc ] || [ ! -d /usr/lib/rustlib/src/rust/library/core ] || [ ! -x /usr/bin/cargo ]; then
  echo "run.sh: installing Debian's rustc-web cargo-web rust-web-src" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rustc-web cargo-web rust-web-src >&2
fi
# The engine's build.rs would assemble kernels/lx7/*.S with a C compiler; this script does.
export PATH=/usr/bin:$PATH RUSTC=/usr/bin/rustc RUSTC_BOOTSTRAP=1 ESP_LLM_LX7_ASM=external
unset RUSTUP_TOOLCHAIN
target_dir=${CARGO_TARGET_DIR:-$here/target}
features=()
case $mode in
  portable) target_dir=$target_dir/portable; features=(--no-default-features) ;;
  scalar) target_dir=$target_dir/scalar; features=(--features scalar) ;;
  phases) target_dir=$target_dir/phases; features=(--features phases) ;;
esac
export CARGO_TARGET_DIR=$target_dir
out_dir=${OUT:-$target_dir/out}
obj=$target_dir/obj
mkdir -p "$out_dir" "$obj"

# --shape: the bundle in PSRAM (lx7bench_big in src/lib.rs), after steps 1-3 below.
big_main() {
  local big=$target_dir/big cli ws=$here/../..
  mkdir -p "$big"
  # The host CLI (workspace target dir), then the synthetic checkpoint and its bundle.
  env -u RUSTC -u RUSTC_BOOTSTRAP CARGO_TARGET_DIR="$ws/target" "$cargo_host" build --quiet \
    --release --manifest-path "$ws/Cargo.toml" -p esp-llm
  cli=$ws/target/release/esp-llm
  local src=$big/$shape.bin bundle=$big/$shape-$quant.ellb tok=
  for d in ${ESP_LLM_MODELS:-} $(p=$here; while [ "$p" != / ]; do echo "$p/shared/models"; p=$(dirname "$p"); done); do
    [ -f "$d/tokenizer.bin" ] && { tok=$d/tokenizer.bin; break; }
  done
  [ -n "$tok" ] || { echo "run.sh: no tokenizer.bin in \$ESP_LLM_MODELS or any shared/models" >&2; return 1; }
  [ -s "$src" ] || "$cli" synth --shape "$shape" -q -o "$src"
  [ -s "$bundle" ] && [ "$bundle" -nt "$src" ] || "$cli" pack "$src" -z "$tok" --quant "$quant" -o "$bundle" >&2
  ln -sf "$(basename "$bundle")" "$big/lx7big.ellb"
  local size heap
  size=$(stat -L -c %s "$bundle")
  heap=$(( (0x3C000000 + size + 0xffff) & ~0xffff ))
  # The heap (run state, KV cache) in PSRAM past the bundle, up to the 32 MiB window's end.
  "$LD" -T "$here/link.x" --gc-sections --defsym=lx7bench_main=lx7bench_big \
    --defsym=__heap_start=$heap --defsym=__heap_end=0x3E000000 \
    -o "$obj/lx7-big.elf" "${objs[@]}"
  local out=$out_dir/lx7-big-$shape-$quant-${LX7BENCH_BIG_STEPS:-8}.txt rc=0
  (cd "$big" && timeout 3000 "$ESP_QEMU_XTENSA" -M esp32s3 -m 32M -nographic -semihosting \
    -monitor none -serial none -kernel "$obj/lx7-big.elf") >"$out" 2>&1 </dev/null || rc=$?
  get() { sed -n "s/^$1: //p" "$out"; }
  local ipt
  ipt=$(get icount_per_token)
  if [ $rc != 0 ] || [ -z "$ipt" ]; then
    echo "run.sh: $shape $quant failed (exit $rc), output in $out:" >&2
    tail -5 "$out" >&2
    echo "FAIL lx7 $shape $quant: no result"
    return 1
  fi
  # The tokens equal the host engine's on the same bundle (greedy from BOS, Scalar kernels,
  # portable math, as many forward passes).
  local want got status=0 note
  want=$("$cli" run "$bundle" -t 0 -n "$(get forwards)" --kernels scalar --math portable --json \
    2>/dev/null | python3 -c 'import json,sys; print(" ".join(map(str, json.load(sys.stdin)["tokens"])))') \
    || want="(host run failed)"
  got=$(get tokens)
  if [ "$got" == "$want" ]; then
    note="ok   lx7 $shape $quant: tokens equal the host's (esp-llm run, scalar kernels)"
  else
    note="FAIL lx7 $shape $quant: tokens $got, the host's $want"
    status=1
  fi
  echo
  echo "| ISA | model | kernels | instructions/token | first forward | last forward | forwards |"
  echo "|---|---|---|---:|---:|---:|---:|"
  echo "| lx7 | $shape $quant (synthetic, $size-byte bundle in PSRAM) | $(get kernels) | $ipt | $(get icount_forward_first) | $(get icount_forward_last) | $(get forwards) |"
  echo
  echo "per position: $(get icount_per_position)"
  echo "outputs: $out"
  echo "ok   lx7 $shape $quant: $ipt instructions/token over $(get forwards) positions"
  echo "$note"
  return $status
}

# 1. Rust -> LX7 assembly, one .s per crate (upstream LLVM's Xtensa object files cannot be
#    linked, its assembly can). Every crate gets the windowed ABI from lx7.json; the engine and
#    this crate also get the FPU (Cargo.toml).
RUSTFLAGS="--emit=asm" /usr/bin/cargo build --quiet --release --manifest-path "$here/Cargo.toml" \
  --target "$here/lx7.json" -Zbuild-std=core,alloc -Zbuild-std-features=compiler-builtins-mem \
  -Zjson-target-spec --message-format=json "${features[@]}" >"$obj/cargo.json"
mapfile -t asm < <(python3 - "$obj/cargo.json" <<'PY'
import glob, json, os, sys
seen = set()
for line in open(sys.argv[1]):
    m = json.loads(line)
    if m.get("reason") != "compiler-artifact" or m["target"]["kind"] == ["custom-build"]:
        continue
    for f in m["filenames"]:
        d, b = os.path.split(f)
        if not d.endswith("/deps") and "/deps" not in d:
            d = os.path.join(d, "deps")
        for ext in (".rlib", ".a"):
            if b.endswith(ext) and b.startswith("lib"):
                s = os.path.join(d, b[3:-len(ext)] + ".s")
                if not os.path.exists(s):
                    # A staticlib is named without its hash; its .s has one: the newest.
                    c = glob.glob(os.path.join(d, b[3:-len(ext)] + "-*.s"))
                    s = max(c, key=os.path.getmtime) if c else s
                if os.path.exists(s) and s not in seen:
                    seen.add(s)
                    print(s)
PY
)
[ ${#asm[@]} -ge 5 ] || { echo "run.sh: expected the crates' .s files, found ${#asm[@]}" >&2; exit 1; }

# 2. Assemble: the crates, our start code, and the engine's LX7 kernels.
objs=()
for s in "${asm[@]}"; do
  o=$obj/$(basename "$s" .s).o
  [ "$o" -nt "$s" ] || "$AS" "$s" -o "$o"
  objs+=("$o")
done
for s in start fpu; do
  "$AS" "$here/src/$s.S" -o "$obj/$s.o"
  objs+=("$obj/$s.o")
done
if [ $mode = lx7 ] || [ $mode = phases ]; then
  for s in "$here"/../../crates/engine/src/kernels/lx7/*.S; do
    o=$obj/kernel-$(basename "$s" .S).o
    "$AS" "$s" -o "$o"
    objs+=("$o")
  done
fi

# 3. The allocator shim rustc would generate when it links (its symbols carry a hash of the
#    compiler, so they are read from the objects).
shim=$obj/shim.S
{
  echo "/* generated by run.sh */"
  for sym in $("$NM" -u "${objs[@]}" 2>/dev/null | awk '{print $2}' | sort -u); do
    case $sym in
      *___rust_no_alloc_shim_is_unstable_v2)
        printf '    .section .text.%s, "ax"\n    .global %s\n    .align 4\n%s:\n    entry a1, 16\n    retw\n' "$sym" "$sym" "$sym" ;;
      *___rust_alloc_error_handler)
        printf '    .section .text.%s, "ax"\n    .global %s\n    .align 4\n%s:\n    entry a1, 16\n    mov a10, a2\n    mov a11, a3\n    call8 lx7bench_oom\n    retw\n' "$sym" "$sym" "$sym" ;;
    esac
  done
} >"$shim"
"$AS" "$shim" -o "$obj/shim.o"
objs+=("$obj/shim.o")

cargo_host=$(command -v cargo || echo /usr/bin/cargo)
[ -x "$HOME/.cargo/bin/cargo" ] && cargo_host=$HOME/.cargo/bin/cargo

if [ -n "$shape" ]; then
  big_main "$@"
  exit $?
fi

# 4. Link one ELF per configuration.
configs=(check fp32 int8 int4 q80)
for cfg in "${configs[@]}"; do
  "$LD" -T "$here/link.x" --gc-sections --defsym=lx7bench_main="lx7bench_$cfg" \
    -o "$obj/lx7-$cfg.elf" "${objs[@]}"
done

# 5. Run them.
status=0
rows=()
check_line=
for cfg in "${configs[@]}"; do
  out=$out_dir/lx7-$cfg.txt
  rc=0
  timeout 1200 "$ESP_QEMU_XTENSA" -M esp32s3 -nographic -semihosting -monitor none \
    -serial none -kernel "$obj/lx7-$cfg.elf" >"$out" 2>&1 </dev/null || rc=$?
  if [ $cfg = check ]; then
    check_line=$(sed -n 's/^kernel_check: //p' "$out" | tail -1)
    if [ $rc != 0 ]; then
      echo "run.sh: kernel checks failed (exit $rc), output in $out:" >&2
      tail -5 "$out" >&2
      status=1
    fi
    continue
  fi
  ipt=$(sed -n 's/^icount_per_token: //p' "$out")
  if [ $rc != 0 ] || [ -z "$ipt" ]; then
    echo "run.sh: $cfg failed (exit $rc), output in $out:" >&2
    tail -5 "$out" >&2
    status=1
    continue
  fi
  get() { sed -n "s/^$1: //p" "$out"; }
  row="| lx7 | $cfg | $(get kernels) | $ipt | $(get icount_forward_first) | $(get icount_forward_last) | $(get forwards) |"
  if [ $mode = phases ]; then
    row="$row $(( $(get icount_matmul_f32_per_token) + $(get icount_matmul_q8_per_token) + $(get icount_matmul_q4_per_token) )) |"
  fi
  rows+=("$row")
done

# 6. Checks: the text of every configuration equals the host engine's (bench/rv32/host, the
#    same generation through engine::Generator, Scalar kernels), the kernel checks passed, and
#    (LX7 kernels only) no figure exceeds docs/performance.md's LX7 table by more than 2%.
passed=0
failed=0
notes=()
pass() { passed=$((passed + 1)); notes+=("ok   $*"); }
fail() { failed=$((failed + 1)); notes+=("FAIL $*"); }
ck_n=$(echo "${check_line:-}" | sed -n 's|^\([0-9]*\)/\([0-9]*\) shapes bit-exact.*|\1|p')
ck_m=$(echo "${check_line:-}" | sed -n 's|^\([0-9]*\)/\([0-9]*\) shapes bit-exact.*|\2|p')
if [ -n "$ck_n" ] && [ "$ck_n" = "$ck_m" ] && [ "$ck_m" -ge 1000 ]; then
  pass "kernel checks: $check_line"
else
  fail "kernel checks: ${check_line:-no result} (want N/N >= 1000 shapes bit-exact)"
fi
host_dir=$here/target/host
if env -u RUSTC -u RUSTC_BOOTSTRAP CARGO_TARGET_DIR="$host_dir" "$cargo_host" build --quiet \
  --release --manifest-path "$here/../rv32/host/Cargo.toml"; then
  host_bin=$host_dir/release/rv32bench-host
else
  host_bin=
  fail "host reference: bench/rv32/host did not build"
fi
tolerance_pct=${LX7_TOLERANCE_PCT:-2}
docs=$here/../../docs/performance.md
for cfg in fp32 int8 int4 q80; do
  out=$out_dir/lx7-$cfg.txt
  got=$(grep -E '^(stop|tokens|text): ' "$out" 2>/dev/null || true)
  if [ -z "$got" ]; then
    fail "lx7 $cfg: no result (see $out)"
    continue
  fi
  case $cfg in
    fp32) m=stories260K.bin ;; int8) m=q8g32 ;; int4) m=q4g32 ;; q80) m=stories260K_q80.bin ;;
  esac
  if [ -n "$host_bin" ]; then
    want=$("$host_bin" "$m" scalar) || want="(host run failed)"
    if [ "$got" == "$want" ]; then
      pass "lx7 $cfg: text and tokens equal the host's (scalar kernels)"
    else
      fail "lx7 $cfg: text differs from the host's"
      diff <(echo "$want") <(echo "$got") | head -5 >&2 || true
    fi
  fi
  if [ $mode = lx7 ]; then
    ipt=$(sed -n 's/^icount_per_token: //p' "$out")
    base=$( (grep -E "^\| lx7 \| $cfg \| [0-9,]+ \|" "$docs" 2>/dev/null || true) | head -1 \
      | awk -F'|' '{gsub(/[ ,]/, "", $4); print $4}')
    if [ -z "$base" ]; then
      fail "lx7 $cfg: no baseline row '| lx7 | $cfg | N |' in docs/performance.md"
    else
      limit=$(( base + base * tolerance_pct / 100 ))
      if [ "$ipt" -le "$limit" ]; then
        pass "lx7 $cfg: $ipt instructions/token <= $limit (baseline $base + ${tolerance_pct}%)"
      else
        fail "lx7 $cfg: $ipt instructions/token > $limit (baseline $base + ${tolerance_pct}%)"
      fi
      if [ "$ipt" -lt $(( base - base * tolerance_pct / 100 )) ]; then
        notes+=("note lx7 $cfg: $ipt is well below the baseline $base; update docs/performance.md")
      fi
    fi
  fi
done

echo
if [ $mode = phases ]; then
  echo "| ISA | model | kernels | instructions/token | first forward | last forward | forwards | matmul/token |"
  echo "|---|---|---|---:|---:|---:|---:|---:|"
else
  echo "| ISA | model | kernels | instructions/token | first forward | last forward | forwards |"
  echo "|---|---|---|---:|---:|---:|---:|"
fi
printf '%s\n' "${rows[@]}"
echo
echo "outputs: $out_dir"
printf '%s\n' "${notes[@]}"
echo "kernel checks: ${check_line:-none}"
echo "lx7: $passed passed, $failed failed"
[ $status = 0 ] && [ $failed = 0 ]
