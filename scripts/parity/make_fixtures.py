#!/usr/bin/env python3
"""Creates the small random checkpoints and transformers reference outputs that
`swift test` compares against (Tests/MixtralTests/Fixtures/parity).

Each fixture folder holds a Hugging Face checkpoint written by `save_pretrained`, plus
  reference.json   prompt ids; transformers' greedy continuation (do_sample=False) of 64 new
                   tokens with EOS disabled ("greedy_ids") and with the config's EOS
                   ("greedy_eos_ids", which may stop early)
  logits.npy       transformers' fp32 logits for every prompt position, [positions, vocab]

    python scripts/parity/make_fixtures.py [--out DIR]

bf16 checkpoints are evaluated as transformers does with `dtype=torch.float32` on the same
file, which is what an engine computing in fp32 from bf16 weights must match.
"""
import argparse
import json
import os
import shutil

import numpy as np
import torch
from transformers import (AutoModelForCausalLM, LlamaConfig, MistralConfig, MixtralConfig)

PROMPT_LENGTH = 24
NEW_TOKENS = 64
VOCAB = 320

COMMON = dict(vocab_size=VOCAB, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
              num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
              rms_norm_eps=1e-5, bos_token_id=1, eos_token_id=2)


def fixtures():
    """name -> (config, save options, post-processing of config.json)"""
    return {
        # GQA (4 query heads over 2 kv heads), 4 experts top-2, full causal attention.
        "mixtral-gqa": (MixtralConfig(**COMMON, num_local_experts=4, num_experts_per_tok=2,
                                      sliding_window=None, rope_theta=1e6), {}, None),
        # A sliding window shorter than the prompt, an explicit head_dim != hidden/heads,
        # 3 layers, 6 experts top-2.
        "mixtral-sliding": (MixtralConfig(**{**COMMON, "num_hidden_layers": 3}, head_dim=24,
                                          num_local_experts=6, num_experts_per_tok=2,
                                          sliding_window=7, rope_theta=1e4), {}, None),
        # Dense Mistral with multi-head attention (as many kv heads as query heads).
        "mistral-dense": (MistralConfig(**{**COMMON, "num_key_value_heads": 4}, sliding_window=None,
                                        rope_theta=1e4), {}, None),
        # Llama with tied embeddings (no lm_head.weight), a list of EOS ids, and
        # num_key_value_heads null (= num_attention_heads).
        "llama-tied": (LlamaConfig(**{**COMMON, "eos_token_id": [2, 7], "num_key_value_heads": 4}, tie_word_embeddings=True,
                                   rope_theta=5e5), {}, lambda c: c.update(num_key_value_heads=None)),
        # bf16 weights on disk.
        "mixtral-bf16": (MixtralConfig(**COMMON, num_local_experts=4, num_experts_per_tok=2,
                                       sliding_window=None), {"dtype": torch.bfloat16}, None),
        # Shards listed by model.safetensors.index.json, and the older top-level rope_theta.
        "mixtral-sharded": (MixtralConfig(**COMMON, num_local_experts=4, num_experts_per_tok=2,
                                          sliding_window=None, rope_theta=1e6),
                            {"max_shard_size": "300KB"}, "legacy-rope"),
    }


def legacy_rope(config):
    """Rewrites transformers 5's rope_parameters as the older top-level rope_theta."""
    parameters = config.pop("rope_parameters", None) or {}
    config["rope_theta"] = parameters.get("rope_theta", 1e6)


def make(name, config, options, post, out):
    folder = os.path.join(out, name)
    shutil.rmtree(folder, ignore_errors=True)
    torch.manual_seed(sum(map(ord, name)))
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    # Larger weights than the default init (std 0.02) so logits and routing are far from uniform.
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.dim() > 1:
                parameter.normal_(0, 0.15)
    if options.get("dtype") == torch.bfloat16:
        model = model.to(torch.bfloat16)
    model.save_pretrained(folder, max_shard_size=options.get("max_shard_size", "50GB"))
    config_path = os.path.join(folder, "config.json")
    with open(config_path) as f:
        saved = json.load(f)
    if post == "legacy-rope":
        legacy_rope(saved)
    elif callable(post):
        post(saved)
    with open(config_path, "w") as f:
        json.dump(saved, f, indent=2)
    write_reference(folder)


def reference(folder):
    """transformers' fp32 logits and greedy continuation for the folder's prompt."""
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    model.eval()
    with open(os.path.join(folder, "config.json")) as f:
        vocab = json.load(f)["vocab_size"]
    generator = torch.Generator().manual_seed(len(folder.rstrip("/").split("/")[-1]))
    prompt = torch.randint(3, vocab, (1, PROMPT_LENGTH), generator=generator)
    def greedy():
        output = model.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=NEW_TOKENS,
                                do_sample=False, pad_token_id=0)
        return output[0, PROMPT_LENGTH:].tolist()

    with torch.no_grad():
        logits = model(prompt).logits[0].float().numpy()
        with_eos = greedy()
        model.generation_config.eos_token_id = None
        without_eos = greedy()
    return {"prompt_ids": prompt[0].tolist(), "greedy_ids": without_eos, "greedy_eos_ids": with_eos}, logits


def write_reference(folder):
    result, logits = reference(folder)
    np.save(os.path.join(folder, "logits.npy"), logits.astype(np.float32))
    with open(os.path.join(folder, "reference.json"), "w") as f:
        json.dump(result, f)


def processor_cases():
    """transformers' logits processors on random scores, alone and chained in generate's
    order (repetition penalty, temperature, top-k, top-p, min-p)."""
    from transformers.generation.logits_process import (MinPLogitsWarper, RepetitionPenaltyLogitsProcessor,
                                                        TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper)
    generator = torch.Generator().manual_seed(7)
    cases = []
    settings = [
        {"repetition_penalty": 1.3}, {"temperature": 0.7}, {"top_k": 5}, {"top_p": 0.8}, {"min_p": 0.1},
        {"repetition_penalty": 1.2, "temperature": 0.8, "top_k": 10, "top_p": 0.9, "min_p": 0.05},
        {"temperature": 1.5, "top_p": 0.5}, {"top_k": 1}, {"top_p": 0.01}, {"min_p": 0.9},
    ]
    for index, setting in enumerate(settings):
        scores = torch.randn(1, 50, generator=generator) * (1 + index)
        previous = torch.randint(0, 50, (1, 12), generator=generator)
        processors = []
        if "repetition_penalty" in setting:
            processors.append(RepetitionPenaltyLogitsProcessor(setting["repetition_penalty"]))
        if "temperature" in setting:
            processors.append(TemperatureLogitsWarper(setting["temperature"]))
        if "top_k" in setting:
            processors.append(TopKLogitsWarper(setting["top_k"]))
        if "top_p" in setting:
            processors.append(TopPLogitsWarper(setting["top_p"]))
        if "min_p" in setting:
            processors.append(MinPLogitsWarper(setting["min_p"]))
        result = scores.clone()
        for processor in processors:
            result = processor(previous, result)
        cases.append({"settings": setting, "scores": scores[0].tolist(), "previous": previous[0].tolist(),
                      "expected": [None if v == float("-inf") else v for v in result[0].tolist()]})
    return cases


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    default_out = os.path.join(here, "..", "..", "Tests", "MixtralTests", "Fixtures", "parity")
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=default_out)
    args = parser.parse_args()
    with open(os.path.join(args.out, "..", "processors.json"), "w") as f:
        json.dump(processor_cases(), f)
    for name, (config, options, post) in fixtures().items():
        make(name, config, options, post, args.out)
        with open(os.path.join(args.out, name, "reference.json")) as f:
            result = json.load(f)
            print(f"{name}: {len(result['greedy_ids'])} greedy tokens, {len(result['greedy_eos_ids'])} with EOS")


if __name__ == "__main__":
    main()
