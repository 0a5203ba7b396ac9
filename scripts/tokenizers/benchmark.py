#!/usr/bin/env python3
"""Encoding-speed benchmark: swift-mixtral's tokenizers against the `sentencepiece` and
`tokenizers` Python packages, on 1 MB of multilingual text.

    python scripts/tokenizers/benchmark.py [--skip-swift]

The text is the committed reference strings (French, Italian, German, Spanish, English prose,
code, CJK, emoji, ...) joined by newlines and repeated to 1,000,000 bytes, written to
.build/tokenizer-bench/multilingual.txt. Each tokenizer encodes it (a) as one string and (b) line
by line; the best of 3 runs is reported, in
process CPU time (the machine is shared: CPU time is far less noisy than wall time). The Swift side runs the env-gated benchmark test in a
release build (`swift test -c release`) and prints the same table.
"""
import json
import os
import subprocess
import sys
import time

import sentencepiece as spm
from tokenizers import Tokenizer

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIXTURES = os.path.join(ROOT, "Tests", "MixtralTokenizersTests", "Fixtures")
OUT_DIR = os.path.join(ROOT, ".build", "tokenizer-bench")
SIZE = 1_000_000


def make_text():
    with open(os.path.join(FIXTURES, "vectors", "strings.json"), encoding="utf-8") as f:
        strings = json.load(f)
    block = "\n".join(s.replace("\n", " ") for s in strings if s.strip()) + "\n"
    text = ""
    while len(text.encode()) < SIZE:
        text += block
    data = text.encode()[:SIZE]
    return data.decode("utf-8", errors="ignore")


def best_of(n, fn):
    best = float("inf")
    for _ in range(n):
        start = time.process_time()
        fn()
        best = min(best, time.process_time() - start)
    return best


def main():
    os.makedirs(OUT_DIR, exist_ok=True)
    text = make_text()
    path = os.path.join(OUT_DIR, "multilingual.txt")
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    lines = text.split("\n")
    mb = len(text.encode()) / 1e6
    print(f"text: {len(text.encode())} bytes, {len(lines)} lines")
    rows = []
    for name in ["v1", "v3"]:
        sp = spm.SentencePieceProcessor(model_file=os.path.join(FIXTURES, name, "tokenizer.model"))
        whole = best_of(3, lambda: sp.encode(text))
        per_line = best_of(3, lambda: sp.encode(lines))
        rows.append((f"sentencepiece {name}", mb / whole, mb / per_line, len(sp.encode(text))))
    for name in ["v1-hf", "smollm2"]:
        tk = Tokenizer.from_file(os.path.join(FIXTURES, name, "tokenizer.json"))
        whole = best_of(3, lambda: tk.encode(text, add_special_tokens=False))
        per_line = best_of(3, lambda: [tk.encode(l, add_special_tokens=False) for l in lines])
        rows.append((f"tokenizers {name}", mb / whole, mb / per_line, len(tk.encode(text, add_special_tokens=False).ids)))
    print(f"{'python reference':<28} {'MB/s whole':>11} {'MB/s lines':>11} {'tokens':>9}")
    for r in rows:
        print(f"{r[0]:<28} {r[1]:>11.2f} {r[2]:>11.2f} {r[3]:>9}")
    if "--skip-swift" in sys.argv:
        return
    env = dict(os.environ, MIXTRAL_TOKENIZER_BENCH_TEXT=path)
    cmd = ["swift", "test", "-c", "release", "-Xswiftc", "-enable-testing", "--filter", "TokenizerBenchmark"]
    result = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    for line in (result.stdout + result.stderr).splitlines():
        if line.startswith("BENCH") :
            print(line[6:])
    if result.returncode != 0:
        print((result.stdout + result.stderr)[-3000:], file=sys.stderr)
        sys.exit(result.returncode)


if __name__ == "__main__":
    main()
