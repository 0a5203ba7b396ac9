#!/usr/bin/env python3
"""Creates the benchmark checkpoint of the performance issue with transformers: Mixtral
geometry H 1024, I 2816, 8 layers, 16 heads, 4 kv heads, 8 experts top-2, vocab 32000
(640M parameters), random weights, saved in bf16 (and f32 with --f32).

    python scripts/bench/make_bench_checkpoint.py [--out models/bench-mixtral] [--f32]
    python scripts/bench/make_bench_checkpoint.py --geometry 8x22b --layers 2 --out models/bench-8x22b
"""
import argparse
import os
import shutil

import torch
from transformers import MixtralConfig, MixtralForCausalLM

GEOMETRIES = {
    "bench": dict(hidden_size=1024, intermediate_size=2816, num_hidden_layers=8, num_attention_heads=16,
                  num_key_value_heads=4),
    # Mixtral-8x22B's layer geometry (the full model has 56 layers).
    "8x22b": dict(hidden_size=6144, intermediate_size=16384, num_hidden_layers=56, num_attention_heads=48,
                  num_key_value_heads=8, head_dim=128),
}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="models/bench-mixtral")
    parser.add_argument("--geometry", choices=GEOMETRIES, default="bench")
    parser.add_argument("--layers", type=int, help="override the number of layers")
    parser.add_argument("--f32", action="store_true", help="save float32 instead of bfloat16")
    args = parser.parse_args()
    geometry = dict(GEOMETRIES[args.geometry])
    if args.layers:
        geometry["num_hidden_layers"] = args.layers
    config = MixtralConfig(vocab_size=32000, num_local_experts=8, num_experts_per_tok=2, max_position_embeddings=32768,
                           rope_theta=1e6, sliding_window=None, bos_token_id=1, eos_token_id=2, **geometry)
    torch.manual_seed(0)
    dtype = torch.float32 if args.f32 else torch.bfloat16
    with torch.device("meta"):
        model = MixtralForCausalLM(config)
    model = model.to_empty(device="cpu").to(dtype)
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.dim() > 1:
                parameter.normal_(0, 0.02)
            else:
                parameter.fill_(1.0)
    model.save_pretrained(args.out)
    # The real Mixtral tokenizer (mistral-common ships it), so the folder is complete and
    # llama.cpp's converter accepts it.
    import mistral_common
    data = os.path.join(os.path.dirname(mistral_common.__file__), "data")
    shutil.copy(os.path.join(data, "tokenizer.model.v1"), os.path.join(args.out, "tokenizer.model"))
    count = sum(p.numel() for p in model.parameters())
    print(f"wrote {args.out}: {count / 1e6:.0f}M parameters, {dtype}")


if __name__ == "__main__":
    main()
