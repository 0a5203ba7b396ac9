#!/usr/bin/env python3
"""Greedy continuations of this engine and llama.cpp on the same GGUF file.

llama.cpp's side is scripts/quality/llama_logits.cpp (build it with build_llama_logits.sh):
it feeds the prompt ids as one batch, then picks each next token greedily and feeds it
back one token per step, as llama-simple and llama-cpp-python's greedy sampling do, and
returns the chosen ids themselves (no re-tokenized text) and its logits.

For each prompt: both continuations, the number of leading generated tokens that match,
and teacher-forced top-1 agreement: llama.cpp's continuation is fed through this engine
(`mixtral score`) the way generation runs (the prompt as one batch, then one token per
step) and every position counts where the engine's most likely next token is the one
llama.cpp chose. With --batch, the engine scores the whole sequence as one batch instead.

    python scripts/quality/compare_greedy_llamacpp.py --model FILE.gguf [-n 32] [--precision fast]
"""
import argparse
import json
import os
import subprocess
import tempfile

import numpy as np

PROMPTS = [
    "The capital of France is",
    "Hello my name is",
    "The best way to learn a new language is",
    "Once upon a time, in a small village,",
    "Water boils at",
    "The three primary colors are",
    "In computer science, a hash table is",
    "My favorite book is",
    "The first step to bake bread is",
    "Mount Everest is located in",
]


def run(command):
    return subprocess.run(command, check=True, capture_output=True, text=True).stdout


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True)
    parser.add_argument("--mixtral", default=".build/release/mixtral")
    parser.add_argument("--llama-logits", default="/work/llama.cpp/build/bin/llama-logits",
                        help="the tool built by scripts/quality/build_llama_logits.sh")
    parser.add_argument("-n", type=int, default=32, help="tokens to generate per prompt (both stop at end of text)")
    parser.add_argument("--precision", default=None, help="passed to this engine's --precision")
    parser.add_argument("--batch", action="store_true",
                        help="score the whole sequence in one batch (prefill kernels) rather than as generation does")
    parser.add_argument("--prompts", default=None, help="a file with one prompt per line instead of the built-in ten")
    args = parser.parse_args()
    prompts = PROMPTS
    if args.prompts:
        with open(args.prompts, encoding="utf-8") as f:
            prompts = [line.rstrip("\n") for line in f if line.strip()]
    precision = ["--precision", args.precision] if args.precision else []
    total_agree = total_positions = total_leading = total_generated = 0
    max_delta = 0.0
    print("| prompt | leading tokens equal | teacher-forced top-1 agreement | llama.cpp | swift-mixtral |")
    print("| --- | ---: | ---: | --- | --- |")
    for prompt in prompts:
        ours = json.loads(run([args.mixtral, "generate", "--model", args.model, "--prompt", prompt,
                               "--max-new-tokens", str(args.n), "--json"] + precision))
        prompt_ids = ours["prompt_ids"]
        with tempfile.TemporaryDirectory() as folder:
            raw = os.path.join(folder, "llama.f32")
            printed = run([args.llama_logits, args.model, ",".join(map(str, prompt_ids)), raw,
                           "--generate", str(args.n)]).strip()
            theirs = [int(t) for t in printed.split(",")] if printed else []
            sequence = prompt_ids + theirs
            out = os.path.join(folder, "logits.npy")
            mode = [] if args.batch else ["--batch-tokens", str(len(prompt_ids))]
            run([args.mixtral, "score", "--model", args.model, "--ids", ",".join(map(str, sequence)),
                 "--logits-out", out] + precision + mode)
            logits = np.load(out)
            # One row per token llama.cpp fed: not a final end-of-text token.
            theirs_logits = np.fromfile(raw, dtype=np.float32).reshape(-1, logits.shape[1])
        rows = theirs_logits.shape[0]
        max_delta = max(max_delta, float(np.abs(logits[:rows] - theirs_logits).max()))
        leading = 0
        for a, b in zip(ours["generated_ids"], theirs):
            if a != b:
                break
            leading += 1
        # Position p's logits predict token p + 1: the last prompt position predicts the
        # first generated token. An end-of-text choice is not in `theirs`, so the position
        # after the last generated token is not counted.
        predicted = logits[len(prompt_ids) - 1:len(sequence) - 1].argmax(axis=1)
        agree = int((predicted == np.array(theirs, dtype=np.int64)).sum())
        total_agree += agree
        total_positions += len(theirs)
        total_leading += leading
        total_generated += max(len(theirs), len(ours["generated_ids"]))
        their_text = run([args.mixtral, "detokenize", "--model", args.model, "--ids", ",".join(map(str, theirs))]) if theirs else ""
        ours_text = ours["text"][len(prompt):] if ours["text"].startswith(prompt) else ours["text"]
        clean = lambda text: text.replace("\n", " ").replace("|", "/").strip()[:60]
        print(f"| {prompt} | {leading}/{max(len(theirs), len(ours['generated_ids']))} | {agree}/{len(theirs)} "
              f"| {clean(their_text)} | {clean(ours_text)} |")
    print(f"\nleading tokens equal: {total_leading}/{total_generated}")
    print(f"top-1 agreement over all positions: {total_agree}/{total_positions} = {100 * total_agree / max(1, total_positions):.1f}%")
    print(f"max |logit difference| to llama.cpp: {max_delta:.3f}")


if __name__ == "__main__":
    main()
