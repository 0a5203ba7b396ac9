#!/usr/bin/env python3
"""A tiny random Mixtral converted to GGUF by llama.cpp's own convert_hf_to_gguf.py.

Writes into Tests/MixtralTests/Fixtures/gguf (or --out):

  tiny-mixtral-hf.gguf             the converter's output (--outtype f32): llama architecture,
                                   stacked 3-D expert tensors, q/k rows permuted to llama.cpp's
                                   interleaved RoPE layout
  tiny-mixtral-hf.expected.gguf    the Hugging Face checkpoint's tensors under their HF names
                                   (F32), to check name mapping and un-permutation exactly
  tiny-mixtral-hf-per-expert.gguf  the same model's hyper-parameters and expert tensors under
                                   the older per-expert names blk.N.ffn_{gate,up,down}.E.weight
  tiny-mixtral-hf-q8_0.gguf        tiny-mixtral-hf.gguf quantised by llama-quantize --pure Q8_0
  tiny-mixtral-hf-q4_0.gguf        ... and --pure Q4_0 (references for the Swift GGUF export)
  tiny-mixtral-hf-q4_0-split-0000k-of-00003.gguf
                                   the Q4_0 file split by llama-gguf-split (10 tensors a file)

The model: transformers' MixtralForCausalLM with random weights (seed 0), hidden 64, 2 layers,
4 heads, 2 key/value heads, head_dim 16, 4 experts (2 per token), intermediate 32, a 64-token
SentencePiece vocabulary trained here. The Swift test GGUFLlamaTests expects these values.

Usage:
  python3 scripts/gguf/make_converted_fixture.py --llama-cpp /work/llama.cpp/src \
      --llama-quantize /work/llama.cpp/build/bin/llama-quantize \
      --llama-gguf-split /work/llama.cpp/build/bin/llama-gguf-split

Needs torch, transformers, safetensors, sentencepiece, numpy, gguf.
"""

from __future__ import annotations

import argparse
import random
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
DEFAULT_OUT = REPO / "Tests" / "MixtralTests" / "Fixtures" / "gguf"

CONFIG = dict(
    vocab_size=64, hidden_size=64, intermediate_size=32, num_hidden_layers=2,
    num_attention_heads=4, num_key_value_heads=2, head_dim=16, num_local_experts=4,
    num_experts_per_tok=2, tie_word_embeddings=False, max_position_embeddings=128,
    rope_theta=1e6, rms_norm_eps=1e-5, bos_token_id=1, eos_token_id=2,
)


def make_checkpoint(folder: Path) -> None:
    import sentencepiece as spm
    import torch
    from transformers import MixtralConfig, MixtralForCausalLM

    folder.mkdir(parents=True)
    rng = random.Random(0)
    words = ("the quick brown fox jumps over a lazy dog while seven wizards "
             "quietly hum jazz in old rooms").split()
    text = folder.parent / "text.txt"
    text.write_text("".join(" ".join(rng.choice(words) for _ in range(12)) + "\n" for _ in range(2000)))
    spm.SentencePieceTrainer.train(
        input=str(text), model_prefix=str(folder.parent / "tok"), vocab_size=64, model_type="bpe",
        character_coverage=1.0, unk_id=0, bos_id=1, eos_id=2, pad_id=-1, num_threads=1,
        minloglevel=2)
    torch.manual_seed(0)
    model = MixtralForCausalLM(MixtralConfig(**CONFIG))
    model.save_pretrained(str(folder))
    (folder / "tokenizer.model").write_bytes((folder.parent / "tok.model").read_bytes())


def write_expected(checkpoint: Path, target: Path) -> None:
    import gguf
    from safetensors.numpy import load_file

    tensors = load_file(str(checkpoint / "model.safetensors"))
    w = gguf.GGUFWriter(str(target), "reference")
    for name in sorted(tensors):
        w.add_tensor(name, tensors[name].astype(np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def write_per_expert(converted: Path, target: Path) -> None:
    """Hyper-parameters and the expert tensors only, experts under per-expert names."""
    import gguf
    from gguf import GGUFValueType as V

    reader = gguf.GGUFReader(str(converted))
    w = gguf.GGUFWriter(str(target), "llama")
    for key, field in reader.fields.items():
        if not key.startswith("llama."):
            continue
        vtype = field.types[0]
        value = field.parts[field.data[0]].tolist()[0]
        w.add_key_value(key, float(value) if vtype in (V.FLOAT32, V.FLOAT64) else int(value), vtype)
    for tensor in reader.tensors:
        if not tensor.name.endswith("_exps.weight"):
            continue
        _, layer, kind = tensor.name.split(".")[:3]  # "blk", "N", "ffn_gate_exps"
        base = kind.removesuffix("_exps")
        for expert in range(tensor.data.shape[0]):
            w.add_tensor(f"blk.{layer}.{base}.{expert}.weight", np.ascontiguousarray(tensor.data[expert]))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--llama-cpp", type=Path, required=True,
                        help="llama.cpp source folder (holds convert_hf_to_gguf.py)")
    parser.add_argument("--llama-quantize", required=True, help="path to llama.cpp's llama-quantize")
    parser.add_argument("--llama-gguf-split", required=True, help="path to llama.cpp's llama-gguf-split")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--keep-checkpoint", type=Path,
                        help="also copy the Hugging Face checkpoint folder here (for GGUFWeightStoreTests)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = Path(tmp) / "hf"
        make_checkpoint(checkpoint)
        converted = args.out / "tiny-mixtral-hf.gguf"
        result = subprocess.run([sys.executable, str(args.llama_cpp / "convert_hf_to_gguf.py"), str(checkpoint),
                                 "--outtype", "f32", "--outfile", str(converted)], capture_output=True, text=True)
        if result.returncode != 0:
            sys.exit(f"convert_hf_to_gguf.py failed:\n{result.stderr}")
        write_expected(checkpoint, args.out / "tiny-mixtral-hf.expected.gguf")
        if args.keep_checkpoint is not None:
            import shutil
            shutil.copytree(checkpoint, args.keep_checkpoint, dirs_exist_ok=True)
    write_per_expert(converted, args.out / "tiny-mixtral-hf-per-expert.gguf")
    outputs = ["tiny-mixtral-hf.gguf", "tiny-mixtral-hf.expected.gguf", "tiny-mixtral-hf-per-expert.gguf"]
    for qtype in ["Q8_0", "Q4_0"]:
        target = args.out / f"tiny-mixtral-hf-{qtype.lower()}.gguf"
        subprocess.run([args.llama_quantize, "--pure", str(converted), str(target), qtype, "1"],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        outputs.append(target.name)
    prefix = args.out / "tiny-mixtral-hf-q4_0-split"
    for old in args.out.glob(prefix.name + "-*.gguf"):
        old.unlink()
    subprocess.run([args.llama_gguf_split, "--split", "--split-max-tensors", "10",
                    str(args.out / "tiny-mixtral-hf-q4_0.gguf"), str(prefix)],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    outputs += sorted(p.name for p in args.out.glob(prefix.name + "-*.gguf"))
    for name in outputs:
        print(f"{name}: {(args.out / name).stat().st_size} bytes", file=sys.stderr)


if __name__ == "__main__":
    main()
