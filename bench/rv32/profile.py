#!/usr/bin/env python3
"""Instruction profile of one rv32bench run from QEMU's `-d in_asm,exec,nochain` log.

Reads the log on stdin (use a FIFO: it is ~1-2 GB per run), counts executed instructions per
pc (translation blocks times their length), then maps pcs to source lines and functions with
llvm-symbolizer (inlined frames included) and prints the top entries.

usage: profile.py ELF < qemu.log
"""
import collections
import subprocess
import sys


def main():
    elf = sys.argv[1]
    top = int(sys.argv[2]) if len(sys.argv) > 2 else 40
    blocks = {}  # tb start pc -> list of instruction pcs (latest translation)
    execs = collections.Counter()
    cur = None
    for line in sys.stdin:
        if line.startswith("Trace "):
            b = line.index("[")
            pc = int(line[b + 10:b + 18], 16)
            execs[pc] += 1
            cur = None
        elif line.startswith("IN:"):
            cur = []
            pending = cur
        elif cur is not None and line.startswith("0x"):
            pc = int(line[2:10], 16)
            if not cur:
                blocks[pc] = cur
            cur.append(pc)
    per_pc = collections.Counter()
    for start, n in execs.items():
        for pc in blocks.get(start, [start]):
            per_pc[pc] += n
    total = sum(per_pc.values())
    pcs = sorted(per_pc)
    # Symbolize: innermost frame (file:line) and outermost function of each pc.
    inp = "".join(f"0x{pc:x}\n" for pc in pcs)
    out = subprocess.run(
        ["llvm-symbolizer-22" if have("llvm-symbolizer-22") else "llvm-symbolizer",
         "--obj", elf, "--inlining", "--functions=linkage", "--demangle", "--relativenames"],
        input=inp, capture_output=True, text=True, check=True).stdout
    frames = out.strip("\n").split("\n\n")
    by_line = collections.Counter()
    by_func = collections.Counter()
    by_chain = collections.Counter()
    for pc, fr in zip(pcs, frames):
        lines = fr.strip().split("\n")
        pairs = [(lines[i], lines[i + 1] if i + 1 < len(lines) else "?") for i in range(0, len(lines), 2)]
        n = per_pc[pc]
        inner_func, inner_loc = pairs[0]
        outer_func = pairs[-1][0]
        by_line[short(inner_loc) + "  [" + short_fn(inner_func) + "]"] += n
        by_func[short_fn(outer_func)] += n
        # The first engine frame from the inside: which engine line pays for this pc.
        eng = next((p for p in pairs if "crates/engine" in p[1]), None)
        if eng:
            by_chain["engine " + short(eng[1])] += n
        else:
            by_chain["(outside engine) " + short_fn(outer_func)] += n
    print(f"total instructions: {total}")
    for title, c in (("by top-level function", by_func),
                     ("by innermost engine source line", by_chain),
                     ("by innermost source line", by_line)):
        print(f"\n== {title}")
        for k, n in c.most_common(top):
            print(f"{n:>12} {100.0 * n / total:6.2f}%  {k}")


def short(loc):
    loc = loc.strip()
    for key in ("crates/engine/", "library/", "libm-"):
        if key in loc:
            return loc[loc.index(key):]
    return loc


def short_fn(f):
    f = f.strip()
    return f if len(f) < 110 else f[:107] + "..."


def have(cmd):
    from shutil import which
    return which(cmd) is not None


if __name__ == "__main__":
    main()
