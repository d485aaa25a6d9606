#!/usr/bin/env python3
"""Writes seed corpora for the fuzz targets: tiny valid models of every format, and truncated and
mutated copies of the real models in shared/models. Usage: seed.py MODELS_DIR CORPUS_DIR ESP_LLM"""
import os, random, struct, subprocess, sys

models, corpus, esp_llm = sys.argv[1], sys.argv[2], sys.argv[3]
rng = random.Random(1234)

def put(target, name, data):
    d = os.path.join(corpus, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)

def tiny_v0(dim=8, hidden=16, layers=1, heads=2, kv=1, vocab=16, seq=8, shared=True):
    hs = dim // heads
    kvd = hs * kv
    out = struct.pack("<7i", dim, hidden, layers, heads, kv, vocab if shared else -vocab, seq)
    sizes = [vocab * dim, layers * dim, layers * dim * dim, layers * kvd * dim, layers * kvd * dim,
             layers * dim * dim, layers * dim, layers * hidden * dim, layers * dim * hidden,
             layers * hidden * dim, dim, seq * hs // 2, seq * hs // 2]
    if not shared:
        sizes.append(vocab * dim)
    for n in sizes:
        out += struct.pack("<%df" % n, *[rng.gauss(0, 0.5) for _ in range(n)])
    return out

def tiny_tokenizer(vocab=16):
    pieces = [b"<unk>", b"\n<s>\n", b"\n</s>\n"] + [b" ", b"a", b"b", b" a", b"ab", b"<0x41>", b"c"]
    pieces += [b"x%d" % i for i in range(vocab - len(pieces))]
    out = struct.pack("<i", max(len(p) for p in pieces))
    for i, p in enumerate(pieces[:vocab]):
        out += struct.pack("<fi", float(-i), len(p)) + p
    return out

def tiny_v1(v0, dim=8, hidden=16, layers=1, heads=2, kv=1, vocab=16, seq=8):
    """The same weights in llama2.c's version-1 layout (shared classifier)."""
    hs = dim // heads
    kvd = hs * kv
    sizes = [vocab * dim, layers * dim, layers * dim * dim, layers * kvd * dim, layers * kvd * dim,
             layers * dim * dim, layers * dim, layers * hidden * dim, layers * dim * hidden,
             layers * hidden * dim, dim]
    secs, at = [], 28
    for n in sizes:
        secs.append(v0[at:at + 4 * n])
        at += 4 * n
    head = struct.pack("<Ii", 0x616B3432, 1) + v0[:28] + b"\x01"
    return head.ljust(256, b"\0") + b"".join(secs[i] for i in [1, 6, 10, 0, 2, 3, 4, 5, 7, 8, 9])

os.makedirs(corpus, exist_ok=True)
tmp = os.path.join(corpus, "tmp")
os.makedirs(tmp, exist_ok=True)
v0 = tiny_v0()
v0u = tiny_v0(shared=False)
tok = tiny_tokenizer()
for name, data in [("v0", v0), ("v0_unshared", v0u), ("v1", tiny_v1(v0))]:
    p = os.path.join(tmp, name + ".bin")
    open(p, "wb").write(data)
open(os.path.join(tmp, "tok16.bin"), "wb").write(tok)
subprocess.run([esp_llm, "quantize", os.path.join(tmp, "v0.bin"), os.path.join(tmp, "v2.bin"), "-g", "8"],
               check=True, stdout=subprocess.DEVNULL)
for quant in ["f32", "q8"]:
    subprocess.run([esp_llm, "pack", os.path.join(tmp, "v0.bin"), "-z", os.path.join(tmp, "tok16.bin"),
                    "--quant", quant, "-g", "8", "-o", os.path.join(tmp, "b_%s.ellb" % quant)],
                   check=True, stdout=subprocess.DEVNULL)
tiny = {n: open(os.path.join(tmp, n), "rb").read()
        for n in ["v0.bin", "v0_unshared.bin", "v1.bin", "v2.bin", "b_f32.ellb", "b_q8.ellb"]}
for n, data in tiny.items():
    for target in ["checkpoint", "generate"] + (["bundle"] if n.endswith(".ellb") else []):
        put(target, n, data)
        for k in range(4):
            m = bytearray(data)
            for _ in range(3):
                m[rng.randrange(len(m))] = rng.randrange(256)
            put(target, "%s.mut%d" % (n, k), bytes(m))
        put(target, n + ".cut", data[: rng.randrange(len(data))])
# Heads of the real files (the whole files are too big to fuzz quickly).
for n in ["stories260K.bin", "stories260K_q80.bin"]:
    data = open(os.path.join(models, n), "rb").read()
    for cut in [28, 256, 300, 4096]:
        put("checkpoint", "%s.head%d" % (n, cut), data[:cut])
for n, vocab in [("tok512.bin", 512), ("tokenizer.bin", 32000)]:
    data = open(os.path.join(models, n), "rb").read()
    put("tokenizer", n + ".head", struct.pack("<H", vocab % 600) + data[:3000])
put("tokenizer", "tok16", struct.pack("<H", 16) + tok)
for i, text in enumerate([b"Once upon a time", "naïve café 😀".encode(), b"line1\nline2", b"\xff\xfe\x80abc", b""]):
    put("encode", "t%d" % i, text)
for i, text in enumerate([b"/temp 0.8\n/topp 0.9\n/seed 7\n/steps 64\nOnce upon a time\n", b"/info\r\n/help\r\n\x03", b"\xff\xfe\n" + b"a" * 300 + b"\n"]):
    put("repl", "r%d" % i, text)
for f in os.listdir(tmp):
    os.remove(os.path.join(tmp, f))
os.rmdir(tmp)
