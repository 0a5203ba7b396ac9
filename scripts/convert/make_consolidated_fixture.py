#!/usr/bin/env python3
"""Writes a Hugging Face Mixtral fixture in Mistral's original ("consolidated") layout:
params.json + consolidated.safetensors, with Mistral's tensor names and q/k in Mistral's
interleaved-pair RoPE layout, i.e. the inverse of the model card's convert.py:

    HF row c*(hd/2)+j of a head  <-  Mistral row 2j+c   (q with n_heads, k with n_kv_heads)

    python scripts/convert/make_consolidated_fixture.py HF_FOLDER OUT_FOLDER
"""
import json
import os
import sys

import torch
from safetensors.torch import load_file, save_file


def unpermute(w, heads):
    """HF half-split rows -> Mistral interleaved rows (inverse of convert.py's permute)."""
    rows, columns = w.shape
    return w.view(heads, 2, rows // heads // 2, columns).transpose(1, 2).reshape(rows, columns)


def main():
    source, out = sys.argv[1], sys.argv[2]
    with open(os.path.join(source, "config.json")) as f:
        config = json.load(f)
    weights = load_file(os.path.join(source, "model.safetensors"))
    heads, kv_heads = config["num_attention_heads"], config["num_key_value_heads"] or config["num_attention_heads"]
    head_dim = config.get("head_dim") or config["hidden_size"] // heads
    theta = (config.get("rope_parameters") or {}).get("rope_theta", config.get("rope_theta", 1e6))
    renamed = {"tok_embeddings.weight": weights["model.embed_tokens.weight"],
               "norm.weight": weights["model.norm.weight"],
               "output.weight": weights["lm_head.weight"]}
    for n in range(config["num_hidden_layers"]):
        hf, mistral = f"model.layers.{n}", f"layers.{n}"
        renamed[f"{mistral}.attention_norm.weight"] = weights[f"{hf}.input_layernorm.weight"]
        renamed[f"{mistral}.ffn_norm.weight"] = weights[f"{hf}.post_attention_layernorm.weight"]
        renamed[f"{mistral}.attention.wq.weight"] = unpermute(weights[f"{hf}.self_attn.q_proj.weight"], heads)
        renamed[f"{mistral}.attention.wk.weight"] = unpermute(weights[f"{hf}.self_attn.k_proj.weight"], kv_heads)
        renamed[f"{mistral}.attention.wv.weight"] = weights[f"{hf}.self_attn.v_proj.weight"]
        renamed[f"{mistral}.attention.wo.weight"] = weights[f"{hf}.self_attn.o_proj.weight"]
        renamed[f"{mistral}.feed_forward.gate.weight"] = weights[f"{hf}.block_sparse_moe.gate.weight"]
        for e in range(config["num_local_experts"]):
            for w in ("w1", "w2", "w3"):
                renamed[f"{mistral}.feed_forward.experts.{e}.{w}.weight"] = \
                    weights[f"{hf}.block_sparse_moe.experts.{e}.{w}.weight"]
    os.makedirs(out, exist_ok=True)
    save_file({k: v.contiguous() for k, v in renamed.items()}, os.path.join(out, "consolidated.safetensors"))
    params = {"dim": config["hidden_size"], "n_layers": config["num_hidden_layers"], "head_dim": head_dim,
              "hidden_dim": config["intermediate_size"], "n_heads": heads, "n_kv_heads": kv_heads,
              "norm_eps": config["rms_norm_eps"], "vocab_size": config["vocab_size"], "rope_theta": theta,
              "moe": {"num_experts": config["num_local_experts"], "num_experts_per_tok": config["num_experts_per_tok"]}}
    with open(os.path.join(out, "params.json"), "w") as f:
        json.dump(params, f, indent=2)


if __name__ == "__main__":
    main()
