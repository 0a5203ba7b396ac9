#!/usr/bin/env python3
"""Creates the server tests' model with transformers: a tiny random Mixtral (hidden 64,
2 layers, 4 experts top-2, GQA 4/2 heads, vocab 32000 or 32768) in float32, with a real
Mixtral tokenizer that mistral-common ships as tokenizer.model: v1 (8x7B), or v3 (8x22B,
with the tool-call control tokens).

    python scripts/server/make_test_model.py OUT_FOLDER [v1|v3]
"""
import os
import shutil
import sys

import torch
from transformers import MixtralConfig, MixtralForCausalLM


def make(out, version="v1"):
    config = MixtralConfig(vocab_size=32000 if version == "v1" else 32768, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                           num_attention_heads=4, num_key_value_heads=2, num_local_experts=4, num_experts_per_tok=2,
                           max_position_embeddings=4096, rope_theta=1e6, sliding_window=None,
                           bos_token_id=1, eos_token_id=2, tie_word_embeddings=False)
    torch.manual_seed(0)
    model = MixtralForCausalLM(config).to(torch.float32)
    with torch.no_grad():
        # Larger weights than the default init give peaked, varied next-token distributions.
        for parameter in model.parameters():
            if parameter.dim() > 1:
                parameter.normal_(0, 0.2)
    model.save_pretrained(out)
    import mistral_common
    data = os.path.join(os.path.dirname(mistral_common.__file__), "data")
    source = "tokenizer.model.v1" if version == "v1" else "mistral_instruct_tokenizer_240323.model.v3"
    shutil.copy(os.path.join(data, source), os.path.join(out, "tokenizer.model"))
    return out


if __name__ == "__main__":
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__)
    print("wrote", make(*sys.argv[1:]))
