#!/usr/bin/env python3
"""Creates the server tests' model with transformers: a tiny random Mixtral (hidden 64,
2 layers, 4 experts top-2, GQA 4/2 heads, vocab 32000) in float32, with the real Mixtral v1
tokenizer that mistral-common ships as tokenizer.model.

    python scripts/server/make_test_model.py OUT_FOLDER
"""
import os
import shutil
import sys

import torch
from transformers import MixtralConfig, MixtralForCausalLM


def make(out):
    config = MixtralConfig(vocab_size=32000, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
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
    shutil.copy(os.path.join(data, "tokenizer.model.v1"), os.path.join(out, "tokenizer.model"))
    return out


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    print("wrote", make(sys.argv[1]))
