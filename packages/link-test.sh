#!/usr/bin/env bash
# Links the MCU static libraries into a small C program (packages/link-test/main.c, which calls
# every function of include/esp_llm.h) with Debian's bare-metal RISC-V GCC and picolibc, for
# each RISC-V chip, and prints what the library adds to the program's code:
#
#   packages/link-test.sh [esp32c3] [esp32c6] [esp32p4]      (default: all three)
#
# Builds the libraries first with packages/build.sh when they are missing or older than the
# sources. Installs gcc-riscv64-unknown-elf and picolibc-riscv64-unknown-elf when missing.
# Linking is the check (undefined symbols, ABI mismatches such as soft- vs hard-float objects);
# the programs are not run: the firmware's emulator tests run the engine on the chips.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
chips=("$@")
[ ${#chips[@]} -gt 0 ] || chips=(esp32c3 esp32c6 esp32p4)

if ! command -v riscv64-unknown-elf-gcc >/dev/null || [ ! -d /usr/lib/picolibc/riscv64-unknown-elf ]; then
    echo "link-test: installing Debian's riscv64-unknown-elf GCC and picolibc" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >&2
    apt-get install -y -q gcc-riscv64-unknown-elf picolibc-riscv64-unknown-elf >&2
fi

out=${CARGO_TARGET_DIR:-$here/target}/link-test
mkdir -p "$out"
cc=(riscv64-unknown-elf-gcc --specs=picolibc.specs --oslib=semihost -Os -ffunction-sections
    -Wall -Wextra -Werror -Wl,--gc-sections
    -Wl,--defsym=__flash_size=0x400000 -Wl,--defsym=__ram_size=0x80000)
# The same program's C library part alone, to tell what the library adds.
cat > "$out/base.c" <<'C'
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
int main(void) {
    void *p = malloc(10), *q = memalign(16, 32);
    p = realloc(p, 20);
    printf("%s %u\n", "x", 1u);
    fwrite("a", 1, 1, stdout);
    free(q);
    if (!p) abort();
    free(p);
    return 0;
}
C

text() { riscv64-unknown-elf-size "$1" | tail -n 1 | awk '{print $1}'; }

status=0
for chip in "${chips[@]}"; do
    case "$chip" in
        # The ABIs ESP-IDF builds these chips with (the P4 passes floats in FPU registers).
        esp32c3) target=riscv32imc-unknown-none-elf;   arch=(-march=rv32imc -mabi=ilp32) ;;
        esp32c6) target=riscv32imac-unknown-none-elf;  arch=(-march=rv32imac -mabi=ilp32) ;;
        esp32p4) target=riscv32imafc-unknown-none-elf; arch=(-march=rv32imafc -mabi=ilp32f) ;;
        *) echo "unknown chip '$chip' (esp32c3, esp32c6, esp32p4)" >&2; exit 2 ;;
    esac
    lib="$here/arduino/EspLlm/src/$chip/libesp_llm.a"
    if [ ! -f "$lib" ] || [ -n "$(find "$here/../crates/engine/src" "$here/../crates/capi/src" -newer "$lib" \( -name '*.rs' -o -name '*.S' \) | head -n 1)" ]; then
        "$here/build.sh" "$chip"
    fi
    elf="$out/$chip.elf"
    if "${cc[@]}" "${arch[@]}" -I"$here/arduino/EspLlm/src" "$here/link-test/main.c" -L"$(dirname "$lib")" -lesp_llm -o "$elf" \
        && "${cc[@]}" "${arch[@]}" "$out/base.c" -o "$out/$chip-base.elf"; then
        with=$(text "$elf")
        base=$(text "$out/$chip-base.elf")
        echo "link-test $chip: ok, program text $with bytes, of which the library adds $((with - base))"
    else
        echo "link-test $chip: LINK FAILED"
        status=1
    fi
done
exit $status
