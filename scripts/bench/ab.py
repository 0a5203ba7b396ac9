#!/usr/bin/env python3
"""Two or more `mixtral` binaries (or CPU levels) measured in one run: pp and tg on the same
weights, the variants taking turns within every round (reversed every other round), and
each ratio the median over rounds of the ratio within a round. For before/after checks
(an older commit's build against this one) and for the portable build against a native one.

    python3 scripts/bench/ab.py --variant before=/path/old/mixtral --variant after=.build/release/mixtral \\
        --types bf16,q8_0,q4_0,q4_k_m [--rounds 5] [-p 512] [-n 128]
    python3 scripts/bench/ab.py --variant avx512=.build/release/mixtral@avx512 --variant avx2=.build/release/mixtral@avx2

A variant is NAME=BINARY[@LEVEL]; LEVEL sets MIXTRAL_CPU. Weights: models/bench-TYPE.gguf
(scripts/bench/compare.py makes them), or a path given with --model.
"""
import argparse
import json
import os
import statistics
import subprocess

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))


def bench(binary, level, model, test, tokens, repetitions):
    env = dict(os.environ)
    if level:
        env["MIXTRAL_CPU"] = level
    else:
        env.pop("MIXTRAL_CPU", None)
    p, n = (tokens, 0) if test == "pp" else (0, tokens)
    out = subprocess.run([binary, "bench", "--model", model, "-p", str(p), "-n", str(n), "-r", str(repetitions), "--json"],
                         env=env, capture_output=True, text=True, check=True).stdout
    return json.loads(out)["tests"][0]["median_tokens_per_second"]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variant", action="append", required=True, help="NAME=BINARY[@LEVEL]")
    parser.add_argument("--types", default="bf16,q8_0,q4_0,q4_k_m")
    parser.add_argument("--model", help="one model instead of models/bench-TYPE.gguf")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("-r", type=int, default=1, help="repetitions per variant in a round")
    parser.add_argument("-p", type=int, default=512)
    parser.add_argument("-n", type=int, default=128)
    args = parser.parse_args()
    variants = []
    for spec in args.variant:
        name, target = spec.split("=", 1)
        binary, _, level = target.partition("@")
        variants.append((name, os.path.abspath(binary), level or None))
    models = {args.model: args.model} if args.model else {t: os.path.join(ROOT, "models", f"bench-{t}.gguf") for t in args.types.split(",")}
    tests = [("pp", args.p)] * (args.p > 0) + [("tg", args.n)] * (args.n > 0)
    results = {}  # (model, test, variant) -> [per round]
    for round_index in range(args.rounds):
        order = variants if round_index % 2 == 0 else list(reversed(variants))
        for label, model in models.items():
            for test, tokens in tests:
                for name, binary, level in order:
                    value = bench(binary, level, model, test, tokens, args.r)
                    results.setdefault((label, test, name), []).append(value)
    first = variants[0][0]
    print(f"Medians over {args.rounds} rounds (variants take turns within a round); ratios: median of the "
          f"within-round ratios against {first} (their range in brackets).\n")
    print("| weights | test | " + " | ".join(name for name, _, _ in variants) + " | " +
          " | ".join(f"{name} / {first}" for name, _, _ in variants[1:]) + " |")
    print("| --- | --- |" + " ---: |" * (2 * len(variants) - 1))
    for label in models:
        for test, tokens in tests:
            cells = [f"{statistics.median(results[(label, test, name)]):.1f}" for name, _, _ in variants]
            base = results[(label, test, first)]
            ratios = []
            for name, _, _ in variants[1:]:
                within = [a / b for a, b in zip(results[(label, test, name)], base)]
                ratios.append(f"{statistics.median(within):.2f}x ({min(within):.2f}-{max(within):.2f})")
            print(f"| {os.path.basename(label)} | {test}{tokens} | " + " | ".join(cells + ratios) + " |")


if __name__ == "__main__":
    main()
