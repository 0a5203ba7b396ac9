#!/usr/bin/env python3
"""The release binary on older CPUs: runs it under qemu-user as a Haswell (AVX2 + FMA +
F16C, no AVX-512) and a Nehalem (SSE4.2) would, where any instruction the CPU lacks
traps, and checks it against the native run on this machine:

- system-info reports the level the emulated CPU allows (avx2, generic);
- generate with the default model in every precision gives the native run's greedy tokens
  (a few tokens: qemu runs about 50 times slower);
- tokenize gives the same ids; score gives logits within 1e-4 of the largest (the same
  bits where the level computes them so); chat answers; bench with tiny -p/-n runs and
  reports the level;
- serve answers a completion with the native server's text (Haswell only: it is slow).

    python3 scripts/ci/portability.py [--mixtral .build/release/mixtral] [--model GGUF]

Needs Debian's qemu-user (qemu-x86_64) and numpy; x86-64 only.
"""
import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import numpy as np

PROMPT = "Hello my name is"
CPUS = {"Haswell": "avx2", "Nehalem": "generic"}


def run(command, emulate=None, **kwargs):
    prefix = ["qemu-x86_64", "-cpu", emulate] if emulate else []
    result = subprocess.run(prefix + command, capture_output=True, text=True, timeout=900, **kwargs)
    if result.returncode != 0:
        raise SystemExit(f"failed ({emulate or 'native'}): {' '.join(command)}\n{result.stderr[-2000:]}")
    return result.stdout


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve_completion(mixtral, model, emulate=None):
    """Starts `mixtral serve`, asks for 3 greedy tokens, stops it; returns the text."""
    port = free_port()
    prefix = ["qemu-x86_64", "-cpu", emulate] if emulate else []
    server = subprocess.Popen(prefix + [mixtral, "serve", "--model", model, "--port", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 300
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5).read()
                break
            except OSError:
                if server.poll() is not None or time.time() > deadline:
                    raise SystemExit(f"serve did not start ({emulate or 'native'}): {server.stderr.read()[-2000:]}")
                time.sleep(1)
        models = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=60).read())
        body = json.dumps({"model": models["data"][0]["id"], "prompt": PROMPT, "max_tokens": 3, "temperature": 0}).encode()
        request = urllib.request.Request(f"http://127.0.0.1:{port}/v1/completions", data=body,
                                         headers={"Content-Type": "application/json"})
        answer = json.loads(urllib.request.urlopen(request, timeout=600).read())
        return answer["choices"][0]["text"]
    finally:
        server.terminate()
        server.wait(timeout=120)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mixtral", default=".build/release/mixtral")
    home = os.environ.get("MIXTRAL_HOME", os.path.expanduser("~/.cache/swift-mixtral"))
    parser.add_argument("--model", default=os.path.join(home, "SmolLM2-135M-Instruct.Q4_1.gguf"))
    args = parser.parse_args()
    mixtral, model = os.path.abspath(args.mixtral), args.model
    failures = []

    def check(ok, message):
        print(("ok   " if ok else "FAIL ") + message, flush=True)
        if not ok:
            failures.append(message)

    for cpu, level in CPUS.items():
        info = json.loads(run([mixtral, "system-info", "--json"], cpu))
        check(info["kernel_level"] == level, f"{cpu}: system-info level {info['kernel_level']} (expected {level})")

    for precision in ["auto", "exact", "fast"]:
        command = [mixtral, "generate", "--model", model, PROMPT, "--max-new-tokens", "5", "--precision", precision, "--json"]
        native = json.loads(run(command))["generated_ids"]
        for cpu in CPUS:
            emulated = json.loads(run(command, cpu))["generated_ids"]
            check(emulated == native, f"{cpu}: generate --precision {precision}: {emulated} (native {native})")

    tokenize = [mixtral, "tokenize", "--model", model, "--text", "Portable builds run everywhere: ünïcode, 123."]
    native_ids = run(tokenize)
    for cpu in CPUS:
        check(run(tokenize, cpu) == native_ids, f"{cpu}: tokenize")

    with tempfile.TemporaryDirectory() as folder:
        for precision in ["exact", "fast"]:
            path = os.path.join(folder, f"native-{precision}.npy")
            run([mixtral, "score", "--model", model, "--prompt", PROMPT, "--precision", precision, "--logits-out", path])
            native = np.load(path)
            for cpu in CPUS:
                path = os.path.join(folder, f"{cpu}-{precision}.npy")
                run([mixtral, "score", "--model", model, "--prompt", PROMPT, "--precision", precision, "--logits-out", path], cpu)
                emulated = np.load(path)
                worst = float(np.abs(emulated - native).max())
                check(emulated.shape == native.shape and worst <= 1e-4 * float(np.abs(native).max()),
                      f"{cpu}: score --precision {precision}: max |difference| {worst:.3g}")

    for cpu, level in CPUS.items():
        answer = run([mixtral, "chat", "--model", model, "--message", "Hi", "--max-new-tokens", "3"], cpu)
        check(len(answer.strip()) > 0, f"{cpu}: chat answered {answer.strip()!r}")
        bench = json.loads(run([mixtral, "bench", "--model", model, "-p", "8", "-n", "2", "-r", "1", "--json"], cpu))
        check(bench["kernel_level"] == level and all(t["median_tokens_per_second"] > 0 for t in bench["tests"]),
              f"{cpu}: bench -p 8 -n 2 ({bench['kernel_level']})")

    native_text = serve_completion(mixtral, model)
    emulated_text = serve_completion(mixtral, model, "Haswell")
    check(emulated_text == native_text, f"Haswell: serve completion {emulated_text!r} (native {native_text!r})")

    if failures:
        raise SystemExit(f"{len(failures)} portability check(s) failed")
    print("portability: all checks passed")


if __name__ == "__main__":
    main()
