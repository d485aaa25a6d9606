#!/usr/bin/env python3
"""Instruction profile of one rv32bench run from QEMU's `-d in_asm,exec,nochain` log.

Reads the log on stdin (through a FIFO: it is ~1-2 GB per 100 M instructions), counts the
instructions of every executed translation block, follows calls and returns (`jal(r) ra` /
`ret`) to keep a shadow call stack, and charges every instruction to
  - its function (self time, "by function"), and
  - the innermost engine source line on the stack ("by engine line, inclusive"): code inlined
    into the engine is charged to its engine line, and a call out of the engine (soft-float
    helpers such as __mulsf3, libm's expf, a matmul kernel) to the engine line that called it.
Source lines come from llvm-symbolizer (inlined frames included).

usage: profile.py ELF [TOP] < qemu.log
"""
import collections

DEPTH = 10  # call sites kept per sample, innermost first
import subprocess
import sys
from shutil import which


def main():
    elf = sys.argv[1]
    top = int(sys.argv[2]) if len(sys.argv) > 2 else 40
    blocks = {}  # tb start pc -> (instruction pcs, kind of last instruction)
    execs = collections.Counter()  # (tb start, call site 1, 2, 3 from the top) -> executions
    stack = []
    cur = None
    last_kind = None
    for line in sys.stdin:
        if line.startswith("Trace "):
            b = line.index("[")
            pc = int(line[b + 10:b + 18], 16)
            # What the previous block's last instruction did decides the stack.
            if last_kind is not None:
                kind, site = last_kind
                if kind == "call":
                    stack.append(site)
                    if len(stack) > 64:
                        del stack[0]
                elif kind == "ret" and stack:
                    stack.pop()
            n = len(stack)
            execs[(pc,) + tuple(stack[-DEPTH:][::-1])] += 1
            blk = blocks.get(pc)
            last_kind = blk[1] if blk else None
            cur = None
        elif line.startswith("IN:"):
            cur = []
        elif cur is not None and line.startswith("0x"):
            pc = int(line[2:10], 16)
            parts = line.split()
            if not cur:
                blocks[pc] = (cur, None)
            cur.append(pc)
            op = parts[2] if len(parts) > 2 else ""
            arg = parts[3] if len(parts) > 3 else ""
            if op in ("jal", "jalr") and arg.startswith("ra,"):
                kind = ("call", pc)
            elif op == "ret" or (op == "jr" and arg == "ra"):
                kind = ("ret", pc)
            else:
                kind = None
            blocks[cur[0]] = (cur, kind)
    # Instructions per (pc, site triple).
    per_pc = collections.Counter()
    per_ctx = collections.Counter()
    for (start, *sites), n in execs.items():
        pcs = blocks.get(start, ([start], None))[0]
        for pc in pcs:
            per_pc[pc] += n
            per_ctx[(pc,) + tuple(sites)] += n
    total = sum(per_pc.values())
    wanted = sorted(set(per_pc) | {s for k in per_ctx for s in k[1:]})
    sym = symbolize(elf, wanted)
    by_func = collections.Counter()
    by_line = collections.Counter()
    for pc, n in per_pc.items():
        by_func[short_fn(sym[pc][-1][0])] += n
        by_line[short(sym[pc][0][1]) + "  [" + short_fn(sym[pc][0][0]) + "]"] += n
    by_engine = collections.Counter()
    for (pc, *sites), n in per_ctx.items():
        key = None
        eng = engine_frame(sym[pc])
        if eng:
            key = "engine " + short(eng[1])
        else:
            for s in sites:
                if engine_frame(sym[s]):
                    e = engine_frame(sym[s])
                    key = "engine " + short(e[1]) + "  -> " + short_fn(sym[pc][-1][0], 60)
                    break
        if key is None:
            key = "(outside engine) " + short_fn(sym[pc][-1][0])
        by_engine[key] += n
    by_fwd = collections.Counter()
    for (pc, *sites), n in per_ctx.items():
        frames = list(sym[pc]) + [f for s in sites for f in sym[s]]
        outer = [f for f in frames
                 if f[0].strip() in ("forward", "<esp_llm_engine::forward::Transformer>::forward")
                 and f[1].split(":")[0].endswith("forward.rs")]
        if outer:
            by_fwd[source_line(outer[0][1])] += n
        else:
            by_fwd["(not in Transformer::forward) " + short_fn(sym[pc][-1][0], 70)] += n
    print(f"total instructions: {total}")
    print("\n== inclusive, by line of Transformer::forward (what each step of the forward pass costs)")
    for k, n in by_fwd.most_common(top):
        print(f"{n:>12} {100.0 * n / total:6.2f}%  {k}")
    for title, c in (("self, by function", by_func),
                     ("inclusive, by innermost engine source line (-> callee outside the engine)", by_engine),
                     ("self, by innermost source line", by_line)):
        print(f"\n== {title}")
        for k, n in c.most_common(top):
            print(f"{n:>12} {100.0 * n / total:6.2f}%  {k}")


_sources = {}


def source_line(loc):
    """`forward.rs:123  <the code on that line>` for a symbolizer location path:line:col."""
    path, line = loc.rsplit(":", 2)[0], int(loc.rsplit(":", 2)[1])
    if path not in _sources:
        try:
            with open(path) as f:
                _sources[path] = f.read().split("\n")
        except OSError:
            _sources[path] = []
    text = _sources[path][line - 1].strip() if 0 < line <= len(_sources[path]) else ""
    return f"{path.rsplit('/', 1)[-1]}:{line:<4} {text[:90]}"


def engine_frame(frames):
    return next((f for f in frames if "crates/engine" in f[1]), None)


def symbolize(elf, pcs):
    tool = "llvm-symbolizer-22" if which("llvm-symbolizer-22") else "llvm-symbolizer"
    inp = "".join(f"0x{pc:x}\n" for pc in pcs)
    out = subprocess.run([tool, "--obj", elf, "--inlining", "--functions=linkage", "--demangle"],
                         input=inp, capture_output=True, text=True, check=True).stdout
    res = {}
    for pc, fr in zip(pcs, out.strip("\n").split("\n\n")):
        lines = fr.strip().split("\n")
        res[pc] = [(lines[i], lines[i + 1] if i + 1 < len(lines) else "?")
                   for i in range(0, len(lines), 2)]
    return res


def short(loc):
    loc = loc.strip()
    for key in ("crates/engine/", "library/", "libm-"):
        if key in loc:
            return loc[loc.index(key):]
    return loc


def short_fn(f, width=110):
    f = f.strip()
    return f if len(f) < width else f[:width - 3] + "..."


if __name__ == "__main__":
    main()
