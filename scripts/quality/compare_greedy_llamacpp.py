#!/usr/bin/env python3
"""Greedy continuations of this engine and llama.cpp (llama-simple) on the same GGUF file.

For each prompt: both continuations, the number of leading generated tokens that match,
and teacher-forced top-1 agreement: llama.cpp's continuation is fed through this engine
(`mixtral score`) and every position counts where the engine's most likely next token is
the one llama.cpp chose.

    python scripts/quality/compare_greedy_llamacpp.py --model FILE.gguf --llama-simple PATH [-n 32] [--precision fast]
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
    parser.add_argument("--llama-simple", default="/work/llama.cpp/build/bin/llama-simple")
    parser.add_argument("-n", type=int, default=32)
    parser.add_argument("--llama-logits", default="/work/llama.cpp/build/bin/llama-logits",
                        help="scripts/quality/build_llama_logits.sh's tool: also scores the sequence with "
                             "llama.cpp itself (one batch) and compares logits; skipped when missing")
    parser.add_argument("--precision", default=None, help="passed to this engine's --precision")
    args = parser.parse_args()
    precision = ["--precision", args.precision] if args.precision else []
    total_agree = total_positions = total_self = 0
    max_delta = 0.0
    with_llama = os.path.exists(args.llama_logits)
    print("| prompt | leading tokens equal | teacher-forced top-1 agreement | llama.cpp | swift-mixtral |")
    print("| --- | ---: | ---: | --- | --- |")
    for prompt in PROMPTS:
        ours = json.loads(run([args.mixtral, "generate", "--model", args.model, "--prompt", prompt,
                               "--max-new-tokens", str(args.n), "--ignore-eos", "--json"] + precision))
        theirs_text = run([args.llama_simple, "-m", args.model, "-n", str(args.n), prompt])
        theirs_text = theirs_text[theirs_text.find(prompt):] if prompt in theirs_text else theirs_text
        ids = json.loads(run([args.mixtral, "tokenize", "--model", args.model, "--text", theirs_text, "--no-special"]))
        prompt_ids = ours["prompt_ids"]
        theirs = ids[len(prompt_ids):] if ids[:len(prompt_ids)] == prompt_ids else None
        if theirs is None:
            print(f"| {prompt} | (llama.cpp's text does not re-tokenize to the same prompt) | | | |")
            continue
        leading = 0
        for a, b in zip(ours["generated_ids"], theirs):
            if a != b:
                break
            leading += 1
        with tempfile.TemporaryDirectory() as folder:
            out = os.path.join(folder, "logits.npy")
            sequence = prompt_ids + theirs
            run([args.mixtral, "score", "--model", args.model, "--ids", ",".join(map(str, sequence)), "--logits-out", out] + precision)
            logits = np.load(out)
            if with_llama:
                raw = os.path.join(folder, "llama.f32")
                run([args.llama_logits, args.model, ",".join(map(str, sequence)), raw])
                theirs_logits = np.fromfile(raw, dtype=np.float32).reshape(len(sequence), -1)
                span = slice(len(prompt_ids) - 1, len(sequence) - 1)
                total_self += int((theirs_logits[span].argmax(axis=1) == np.array(theirs)).sum())
                vocab = min(logits.shape[1], theirs_logits.shape[1])
                max_delta = max(max_delta, float(np.abs(logits[:, :vocab] - theirs_logits[:, :vocab]).max()))
        predicted = logits[len(prompt_ids) - 1:len(sequence) - 1].argmax(axis=1)
        agree = int((predicted == np.array(theirs)).sum())
        total_agree += agree
        total_positions += len(theirs)
        ours_text = ours["text"][len(prompt):].replace("\n", " ").replace("|", "/")
        their_cont = theirs_text[len(prompt):].replace("\n", " ").replace("|", "/")
        print(f"| {prompt} | {leading}/{len(theirs)} | {agree}/{len(theirs)} | {their_cont.strip()[:60]} | {ours_text.strip()[:60]} |")
    print(f"\ntop-1 agreement over all positions: {total_agree}/{total_positions} = {100 * total_agree / max(1, total_positions):.1f}%")
    if with_llama:
        # llama.cpp scoring its own continuation in one batch: its batched and one-token
        # kernels differ too, so this is the agreement llama.cpp reaches with itself.
        print(f"llama.cpp's own batch scoring vs its greedy choices: {total_self}/{total_positions} = "
              f"{100 * total_self / max(1, total_positions):.1f}%; max |logit difference| to llama.cpp's batch: {max_delta:.3f}")


if __name__ == "__main__":
    main()
