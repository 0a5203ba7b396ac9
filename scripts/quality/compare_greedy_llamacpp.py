#!/usr/bin/env python3
"""Greedy continuations of this engine and llama.cpp (llama-simple) on the same GGUF file.

For each prompt: both continuations, the number of leading generated tokens that match,
and teacher-forced top-1 agreement: llama.cpp's continuation is fed through this engine
(`mixtral score`) and every position counts where the engine's most likely next token is
the one llama.cpp chose.

    python scripts/quality/compare_greedy_llamacpp.py --model FILE.gguf --llama-simple PATH [-n 32]
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
    args = parser.parse_args()
    total_agree = total_positions = 0
    print("| prompt | leading tokens equal | teacher-forced top-1 agreement | llama.cpp | swift-mixtral |")
    print("| --- | ---: | ---: | --- | --- |")
    for prompt in PROMPTS:
        ours = json.loads(run([args.mixtral, "generate", "--model", args.model, "--prompt", prompt,
                               "--max-new-tokens", str(args.n), "--ignore-eos", "--json"]))
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
            run([args.mixtral, "score", "--model", args.model, "--ids", ",".join(map(str, sequence)), "--logits-out", out])
            logits = np.load(out)
        predicted = logits[len(prompt_ids) - 1:len(sequence) - 1].argmax(axis=1)
        agree = int((predicted == np.array(theirs)).sum())
        total_agree += agree
        total_positions += len(theirs)
        ours_text = ours["text"][len(prompt):].replace("\n", " ").replace("|", "/")
        their_cont = theirs_text[len(prompt):].replace("\n", " ").replace("|", "/")
        print(f"| {prompt} | {leading}/{len(theirs)} | {agree}/{len(theirs)} | {their_cont.strip()[:60]} | {ours_text.strip()[:60]} |")
    print(f"\ntop-1 agreement over all positions: {total_agree}/{total_positions} = {100 * total_agree / max(1, total_positions):.1f}%")


if __name__ == "__main__":
    main()
