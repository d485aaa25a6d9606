#!/usr/bin/env python3
"""Per-function instruction profile of a bench/lx7 ELF under Espressif's QEMU.

    profile.py ELF [TOP]        (ESP_QEMU_XTENSA and ESP_XTENSA_BIN as for run.sh)

Runs the ELF with `-d in_asm,exec,nochain` streamed through a FIFO, counts the instructions of
every translation block each time it executes, and charges them to the function whose symbol
(from `nm`) contains the block's address: self counts, no call stacks. Prints the TOP functions
with their share and their count per forward pass (the run's total divided by the `forwards:`
line of the program's output, so setup is included in the figures). QEMU runs in the current
directory with the extra arguments of $LX7_QEMU_ARGS (the 15M-shape ELF: run it from
target/big with LX7_QEMU_ARGS="-m 32M").
"""
import bisect, os, re, subprocess, sys, tempfile, threading

elf = sys.argv[1]
top = int(sys.argv[2]) if len(sys.argv) > 2 else 30
qemu = os.environ["ESP_QEMU_XTENSA"]
nm = os.path.join(os.environ["ESP_XTENSA_BIN"], "xtensa-esp32s3-elf-nm")

syms = []
for line in subprocess.run([nm, "-n", elf], capture_output=True, text=True).stdout.splitlines():
    p = line.split()
    if len(p) == 3 and p[1] in "tTwW":
        syms.append((int(p[0], 16), p[2]))
addrs = [a for a, _ in syms]

def short(name):
    # v0-mangled Rust names: keep the identifiers, drop crate hashes.
    ids = re.findall(r"(?<![0-9])(\d+)([A-Za-z_][A-Za-z0-9_]*)", name)
    out, i = [], 0
    while i < len(name):
        m = re.match(r"(\d+)", name[i:])
        if m:
            n = int(m.group(1)); j = i + len(m.group(1))
            ident = name[j:j + n]
            if len(ident) == n and re.match(r"[A-Za-z_]", ident):
                out.append(ident); i = j + n; continue
        i += 1
    s = "::".join(x for x in out if not re.match(r"^(Cs|Nv|Nt|Ns|Nc|NC)", x))
    return s[-90:] if s else name[:90]

tmp = tempfile.mkdtemp()
fifo = os.path.join(tmp, "log")
os.mkfifo(fifo)
outfile = os.path.join(tmp, "out.txt")
extra = os.environ.get("LX7_QEMU_ARGS", "").split()
proc = subprocess.Popen([qemu, "-M", "esp32s3", *extra, "-nographic", "-semihosting", "-monitor", "none",
                         "-serial", "none", "-d", "in_asm,exec,nochain", "-D", fifo, "-kernel", elf],
                        stdout=open(outfile, "w"), stderr=subprocess.DEVNULL)
tb_len, counts = {}, {}
cur, n = None, 0
with open(fifo) as f:
    for line in f:
        if line.startswith("Trace"):
            pc = int(line.split("/")[1], 16)
            counts[pc] = counts.get(pc, 0) + tb_len.get(pc, 0)
        elif line.startswith("0x") and ":" in line[:12]:
            a = int(line[:10], 16)
            if cur is None:
                cur, n = a, 0
            n += 1
        elif line.startswith("IN:"):
            cur, n = None, 0
        elif line.startswith("---") or not line.strip():
            if cur is not None:
                tb_len[cur] = n
                cur = None
proc.wait()
out = open(outfile).read()
m = re.search(r"^forwards: (\d+)", out, re.M)
fw = int(m.group(1)) if m else 1
# The emulator runs the chip's second core too; with no ROM loaded it spins on an `ill` at
# the ROM's exception vector (0x400003c0). Its blocks are below every symbol of the ELF:
# reported apart, and not in the total (ICOUNT, the figure run.sh reports, counts the first
# core only).
OTHER = "(second core, spinning in the ROM's exception vectors: not ours)"
by = {}
for pc, c in counts.items():
    i = bisect.bisect_right(addrs, pc) - 1
    name = syms[i][1] if i >= 0 else OTHER
    by[name] = by.get(name, 0) + c
other = by.pop(OTHER, 0)
total = sum(by.values())
print(f"{total} instructions, {fw} forwards, {total // fw} per forward (setup included; "
      f"{other // fw} per forward on the second core left out)")
for name, c in sorted(by.items(), key=lambda kv: -kv[1])[:top]:
    print(f"{c // fw:>10} {100.0 * c / total:5.1f}%  {short(name)}")
