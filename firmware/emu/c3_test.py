#!/usr/bin/env python3
"""Boots the esp32c3 firmware in Espressif's QEMU and checks it over UART0.

    ESP_QEMU=/path/to/qemu-system-riscv32 python3 firmware/emu/c3_test.py [--keep DIR]

Needs: a qemu-system-riscv32 with the `esp32c3` machine (Espressif's QEMU fork; this project
does not build or ship it), the Debian cross toolchain (firmware/build.sh), and shared/models
(or $ESP_LLM_MODELS). Flash images are made with `esp-llm image`.

It builds the firmware, packs stories260K into a bundle with the host CLI, writes the bundle
into the `model` partition of a merged 4 MB flash image, boots it, and checks that:
  * a greedy prompt prints exactly the text `esp-llm run BUNDLE -t 0` prints on the host (with
    `--numerics fixed` for the int8 bundle: the C3 has no FPU),
    for an int8 and an fp32 bundle (both read in place from mapped flash on the C3);
  * /info, /bench, bad values, an overlong line, a non-UTF-8 line and a 12 KB burst get their
    messages and the REPL keeps answering; Ctrl-C stops a story;
  * an erased and a corrupted model partition are reported and the REPL still runs;
  * `esp-llm chat --port tcp://... --prompt ... --json` returns the host's greedy text.
Prints one line per check and 'N passed, N failed'.
"""
import os, re, socket, subprocess, sys, tempfile, time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FW = ROOT / "firmware"
MODEL_OFFSET = 0x100000  # partitions-4mb.csv
PROMPT = "Once upon a time"
STEPS = 64

def models_dir():
    if os.environ.get("ESP_LLM_MODELS"):
        return Path(os.environ["ESP_LLM_MODELS"])
    for d in [ROOT, *ROOT.parents]:
        if (d / "shared" / "models").is_dir():
            return d / "shared" / "models"
    sys.exit("no shared/models (set ESP_LLM_MODELS)")

def run(cmd, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw).stdout

class Board:
    """One QEMU run with UART0 on a TCP socket."""
    def __init__(self, qemu, image, port):
        self.p = subprocess.Popen([qemu, "-M", "esp32c3", "-display", "none", "-monitor", "none",
            "-drive", f"file={image},if=mtd,format=raw",
            "-serial", f"tcp:127.0.0.1:{port},server=on,wait=on"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(50):
            try:
                self.s = socket.create_connection(("127.0.0.1", port), timeout=5)
                break
            except OSError:
                time.sleep(0.2)
        else:
            raise RuntimeError("QEMU did not open its serial port")
        self.s.settimeout(0.2)
        self.buf = b""

    def read_until(self, pattern, timeout):
        start, end = len(self.buf), time.time() + timeout
        while time.time() < end:
            try:
                d = self.s.recv(65536)
                if not d:
                    break
                self.buf += d
            except socket.timeout:
                pass
            if re.search(pattern, self.buf[start:]):
                return self.buf[start:].decode("utf-8", "replace")
        raise TimeoutError(f"no {pattern!r}; got {self.buf[start:][-300:]!r}")

    def send(self, data: bytes):
        self.s.sendall(data)

    def line(self, text: str, until=rb"\r\n> $", timeout=120):
        self.send(text.encode() + b"\r")
        return self.read_until(until, timeout)

    def close(self):
        self.p.kill()
        self.p.wait()

def main():
    qemu = os.environ.get("ESP_QEMU")
    if not qemu or not Path(qemu).exists():
        sys.exit("set ESP_QEMU to a qemu-system-riscv32 that has the esp32c3 machine")
    keep = Path(sys.argv[2]) if len(sys.argv) > 2 and sys.argv[1] == "--keep" else None
    work = keep or Path(tempfile.mkdtemp(prefix="esp-llm-c3-"))
    work.mkdir(parents=True, exist_ok=True)
    models = models_dir()

    elf = run([str(FW / "build.sh"), "esp32c3", "--release"]).strip().splitlines()[-1]
    cli = ["cargo", "run", "--quiet", "--release", "-p", "esp-llm", "--"]
    base = work / "app.bin"
    run(cli + ["pack", str(models / "stories260K_q80.bin"), "-o", str(work / "base.ellb")], cwd=ROOT)
    run(cli + ["image", "--chip", "esp32c3", "--flash-size", "4mb", "--firmware", elf,
               "--model", str(work / "base.ellb"), "-o", str(base)], cwd=ROOT)
    bundles = {
        "int8": (models / "stories260K_q80.bin", []),
        # packed from fp32 with pack's default groups of 32: small integer scales
        "int8-g32": (models / "stories260K.bin", ["--quant", "q8"]),
        "fp32": (models / "stories260K.bin", ["--quant", "f32"]),
    }
    results = []
    def check(name, ok, detail=""):
        results.append(ok)
        print(f"{'ok  ' if ok else 'FAIL'} {name}" + (f": {detail}" if detail and not ok else ""), flush=True)

    def image(name, payload: bytes):
        img = work / f"{name}.bin"
        data = bytearray(base.read_bytes())
        # Erase the model partition (3 MB in partitions-4mb.csv), then write the payload.
        data[MODEL_OFFSET:MODEL_OFFSET + 0x300000] = b"\xff" * 0x300000
        data[MODEL_OFFSET:MODEL_OFFSET + len(payload)] = payload
        img.write_bytes(data)
        return img

    port = 5600 + os.getpid() % 300
    for i, (name, (src, args)) in enumerate(bundles.items()):
        bundle = work / f"{name}.ellb"
        run(cli + ["pack", str(src), *args, "-o", str(bundle)], cwd=ROOT)
        # The C3 has no FPU: it runs int8 models with the fixed-point numerics.
        numerics = ["--numerics", "fixed"] if name.startswith("int8") else []
        host = run(cli + ["run", str(bundle), "-t", "0", "-n", str(STEPS), "-i", PROMPT, *numerics],
                   cwd=ROOT)
        b = Board(qemu, image(name, bundle.read_bytes()), port + i)
        try:
            boot = b.read_until(rb"> $", 120)
            check(f"{name}: boots and loads the bundle", "model: dim 64" in boot, boot[-400:])
            b.line("/temp 0")
            b.line(f"/steps {STEPS}")
            out = b.line(PROMPT, until=rb"tok/s\)\r\n> $", timeout=600)
            # The echo of the typed line comes first, then the story, then the summary.
            story = out.split("\r\n", 1)[1]
            story = re.sub(r"\r\n\d+ tokens? in .*$", "", story, flags=re.S).replace("\r\n", "\n")
            check(f"{name}: greedy story equals the host's", story.strip() == host.strip(),
                  f"\nboard: {story!r}\nhost:  {host!r}")
            check(f"{name}: summary line", re.search(rb"\d+ tokens in \d+ ms \([\d.]+ tok/s\)",
                                                      out.encode()) is not None, out[-200:])
            if name == "int8-g32":
                info = b.line("/info")
                cap = re.search(r"context cap .*", info)
                check("int8-g32: fixed numerics", "numerics: fixed" in info, info)
                print(f"     {cap.group(0).strip() if cap else 'no context cap line'}", flush=True)
            if name == "int8":
                info = b.line("/info")
                check("/info: placement and cap", "read in place: all" in info and "context cap" in info, info)
                check("/info: fixed-point numerics on the FPU-less C3", "numerics: fixed" in info, info)
                cap = re.search(r"context cap .*", info)
                print(f"     {cap.group(0).strip() if cap else 'no context cap line'}", flush=True)
                bench = b.line("/bench", until=rb"tok/s\)\r\n> $", timeout=600)
                check("/bench prints only the timing", re.search(r"bench: greedy.*\r\n\d+ tokens in \d+ ms", bench)
                      is not None and "Lily" not in bench, bench[-300:])
                check("bad value", "expected a number from 0 to 10" in b.line("/temp hot"))
                check("unknown command", "unknown command" in b.line("/tmep 1"))
                check("overlong line", "line too long" in b.line("x" * 2000))
                b.send(b"caf\xe9\r")
                check("non-UTF-8 line", "not UTF-8" in b.read_until(rb"\r\n> $", 60))
                b.send(b"y" * 12 * 1024 + b"\r/help\r")
                burst = b.read_until(rb"Ctrl-C\s+stop a story\r\n> $", 120)
                check("12 KB burst, then /help", "line too long" in burst)
                b.line("/steps 0")
                b.send(PROMPT.encode() + b"\r")
                b.read_until(rb"Once upon a time,", 60)  # the comma is generated, not typed
                b.send(b"\x03")
                stopped = b.read_until(rb"tok/s\)\r\n> $", 120)
                n = int(re.search(r"(\d+) tokens? in", stopped).group(1))
                check("Ctrl-C stops a story", "^C" in stopped and n < 150, stopped[-200:])
        finally:
            b.close()

    for name, payload in [("erased", b""), ("corrupt", None)]:
        if payload is None:
            data = bytearray((work / "int8.ellb").read_bytes())
            data[len(data) // 2] ^= 0xFF
            payload = bytes(data)
        b = Board(qemu, image(name, payload), port + 10 + len(name))
        try:
            boot = b.read_until(rb"> $", 120)
            want = "empty (erased flash)" if name == "erased" else "checksum"
            check(f"{name} partition reported", want in boot and "no model" in boot, boot[-300:])
            info = b.line("/info")
            check(f"{name}: REPL still answers, /info says why",
                  "no model loaded" in info and want in info, info[-300:])
        finally:
            b.close()

    # The host's board client against the emulated board.
    qemu_port = port + 40
    img = image("chat", (work / "int8.ellb").read_bytes())
    p = subprocess.Popen([qemu, "-M", "esp32c3", "-display", "none", "-monitor", "none",
                          "-drive", f"file={img},if=mtd,format=raw",
                          "-serial", f"tcp:127.0.0.1:{qemu_port},server=on,wait=on"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(1)
        out = run(cli + ["chat", "--port", f"tcp://127.0.0.1:{qemu_port}", "--prompt", PROMPT,
                         "-t", "0", "-n", str(STEPS), "--json", "--timeout", "120"], cwd=ROOT)
        import json
        board = json.loads(out)
        host = json.loads(run(cli + ["run", str(work / "int8.ellb"), "-t", "0", "-n", str(STEPS),
                                     "-i", PROMPT, "--json", "--numerics", "fixed"], cwd=ROOT))
        check("esp-llm chat --json equals the host's text", board["text"] == host["text"]
              and board["tokens"] == STEPS, f"\nboard: {board!r}\nhost: {host['text']!r}")
    finally:
        p.kill()
        p.wait()

    passed = sum(results)
    print(f"{passed} passed, {len(results) - passed} failed")
    sys.exit(0 if passed == len(results) else 1)

if __name__ == "__main__":
    main()
