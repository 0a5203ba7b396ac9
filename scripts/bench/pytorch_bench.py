#!/usr/bin/env python3
"""PyTorch + transformers throughput on a HF checkpoint, measured like llama-bench:
pp = one forward pass over P random tokens (logits of the last position only),
tg = N single-token steps with the KV cache. Warm-up, then R repetitions; prints JSON.

    python scripts/bench/pytorch_bench.py MODEL_DIR --dtype bf16 [-p 512] [-n 128] [-r 3] [--threads 2]
"""
import argparse
import json
import statistics
import time

import torch
from transformers import AutoModelForCausalLM


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("model")
    parser.add_argument("--dtype", choices=["bf16", "f32"], default="bf16")
    parser.add_argument("-p", type=int, default=512)
    parser.add_argument("-n", type=int, default=128)
    parser.add_argument("-r", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    dtype = torch.bfloat16 if args.dtype == "bf16" else torch.float32
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=dtype)
    model.eval()
    vocab = model.config.vocab_size
    generator = torch.Generator().manual_seed(0)

    def pp():
        ids = torch.randint(0, vocab, (1, args.p), generator=generator)
        model(ids, logits_to_keep=1, use_cache=False)

    def tg():
        ids = torch.randint(0, vocab, (1, 1), generator=generator)
        past = None
        for _ in range(args.n):
            out = model(ids, past_key_values=past, use_cache=True, logits_to_keep=1)
            past = out.past_key_values
            ids = out.logits[:, -1:].argmax(-1)

    results = []
    with torch.inference_mode():
        for name, tokens, fn in [(f"pp{args.p}", args.p, pp), (f"tg{args.n}", args.n, tg)]:
            if tokens == 0:
                continue
            fn()
            rates = []
            for _ in range(args.r):
                start = time.perf_counter()
                fn()
                rates.append(tokens / (time.perf_counter() - start))
            results.append({"test": name, "tokens_per_second": statistics.mean(rates),
                            "median_tokens_per_second": statistics.median(rates),
                            "stddev": statistics.stdev(rates) if len(rates) > 1 else 0.0})
    print(json.dumps({"engine": "pytorch", "dtype": args.dtype, "torch": torch.__version__, "tests": results}))


if __name__ == "__main__":
    main()
