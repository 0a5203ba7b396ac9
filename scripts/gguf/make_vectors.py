#!/usr/bin/env python3
"""Reference vectors for the GGUF reader and the GGML block formats.

Writes into Tests/MixtralTests/Fixtures/gguf (or --out):

  tiny-mixtral-mixed.gguf           A tiny Mixtral-shaped model (llama architecture, 2 layers,
                                    2 experts, 3-D expert tensors) quantised by llama.cpp's own
                                    llama-quantize, with each 2-D/3-D tensor forced to a different
                                    type, so that the file holds F32, F16, BF16, Q8_0, Q4_0, Q4_1,
                                    Q5_0, Q5_1, Q4_K, Q5_K and Q6_K tensors made by the real
                                    quantizer.
  tiny-mixtral-mixed.expected.gguf  The same tensor names as F32: every tensor of the file above
                                    dequantised by gguf.quants.dequantize (the reference).
  halves.gguf                       Every 16-bit pattern as an F16 tensor and as a BF16 tensor,
                                    with their dequantised values (tensors "*.expected", F32).
  metadata.gguf                     Every metadata value type, nested arrays, a non-default
                                    general.alignment (64), written by gguf.GGUFWriter.
  quantize.gguf                     F32 rows ("input") and their Q8_0, Q4_0, Q4_1, Q5_0 and Q5_1
                                    encodings by gguf.quants.quantize ("input.q8_0", ...), which
                                    gives the same bytes as llama-quantize for these types.
  kquant-sources.gguf               the F32 inputs of the K-quant tensors of
                                    tiny-mixtral-mixed.gguf (same names): with that file, the
                                    reference for quantising to Q4_K/Q5_K/Q6_K as llama.cpp does.

Usage:
  python3 scripts/gguf/make_vectors.py --llama-quantize /work/llama.cpp/build/bin/llama-quantize

Needs numpy and the gguf package (pip install gguf numpy). The llama.cpp tools are built by
scripts/gguf/build_llama_cpp.sh. Everything is deterministic (fixed seeds).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import gguf
from gguf import GGMLQuantizationType as T
from gguf import GGUFValueType as V

REPO = Path(__file__).resolve().parents[2]
DEFAULT_OUT = REPO / "Tests" / "MixtralTests" / "Fixtures" / "gguf"

# Geometry of the tiny model. Rows of 256 so that K-quants (blocks of 256) apply.
N_EMBD = 256
N_LAYER = 2
N_HEAD = 1
HEAD_DIM = 32
N_FF = 32
N_EXPERT = 2
N_VOCAB = 32

# Which type llama-quantize must give each tensor (regex of the tensor name -> type).
# Every type the engine supports appears at least once; K-quants several times.
TYPE_PLAN: dict[str, T] = {
    "token_embd.weight": T.Q4_K,
    "output.weight": T.Q6_K,
    "blk.0.attn_q.weight": T.Q4_0,
    "blk.0.attn_k.weight": T.Q4_1,
    "blk.0.attn_v.weight": T.Q5_0,
    "blk.0.attn_output.weight": T.Q5_1,
    "blk.0.ffn_gate_exps.weight": T.Q4_K,
    "blk.0.ffn_up_exps.weight": T.Q5_K,
    "blk.0.ffn_down_exps.weight": T.Q8_0,
    "blk.1.attn_q.weight": T.Q6_K,
    "blk.1.attn_k.weight": T.F16,
    "blk.1.attn_v.weight": T.BF16,
    "blk.1.attn_output.weight": T.F32,
    "blk.1.ffn_gate_exps.weight": T.Q5_K,
    "blk.1.ffn_up_exps.weight": T.Q6_K,
    "blk.1.ffn_down_exps.weight": T.Q4_0,
}


def test_rows(rng: np.random.Generator, rows: int, columns: int) -> np.ndarray:
    """Weights with a mix of row kinds that exercise the corners of the block formats."""
    out = np.empty((rows, columns), dtype=np.float32)
    for r in range(rows):
        kind = r % 8
        if kind == 0:  # ordinary weights
            row = rng.normal(0.0, 0.02, columns)
        elif kind == 1:  # wide range of row scales
            row = rng.normal(0.0, 1.0, columns) * 10.0 ** rng.uniform(-3, 1)
        elif kind == 2:  # all positive (min/offset paths of Q4_1, Q5_1, K-quants)
            row = rng.uniform(0.5, 1.5, columns)
        elif kind == 3:  # all negative
            row = -rng.uniform(0.0, 3.0, columns)
        elif kind == 4:  # outliers
            row = rng.normal(0.0, 0.05, columns)
            row[rng.integers(0, columns, 4)] = rng.choice([-8.0, 8.0], 4)
        elif kind == 5:  # tiny values (fp16 scales become subnormal or zero)
            row = rng.normal(0.0, 1e-6, columns)
        elif kind == 6:  # zeros with a few non-zero blocks
            row = np.zeros(columns)
            row[: columns // 4] = rng.normal(0.0, 0.1, columns // 4)
        else:  # heavy tails
            row = rng.standard_t(2.0, columns) * 0.1
        out[r] = row
    return out


def write_tiny_model(path: Path) -> dict[str, np.ndarray]:
    """An F32 llama-architecture GGUF with Mixtral's tensor layout (experts as 3-D tensors).
    Returns the tensors written."""
    rng = np.random.default_rng(20261126)
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_name("tiny-mixtral-test")
    w.add_context_length(64)
    w.add_embedding_length(N_EMBD)
    w.add_block_count(N_LAYER)
    w.add_feed_forward_length(N_FF)
    w.add_head_count(N_HEAD)
    w.add_head_count_kv(N_HEAD)
    w.add_key_length(HEAD_DIM)
    w.add_value_length(HEAD_DIM)
    w.add_rope_dimension_count(HEAD_DIM)
    w.add_rope_freq_base(1e6)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_expert_count(N_EXPERT)
    w.add_expert_used_count(1)
    w.add_vocab_size(N_VOCAB)
    w.add_file_type(0)  # all F32
    w.add_tokenizer_model("llama")
    w.add_token_list([f"<t{i}>" for i in range(N_VOCAB)])
    w.add_token_scores([0.0] * N_VOCAB)
    w.add_token_types([1] * N_VOCAB)

    tensors: dict[str, np.ndarray] = {}

    def add(name: str, array: np.ndarray) -> None:
        tensors[name] = array.astype(np.float32)
        w.add_tensor(name, tensors[name])

    add("token_embd.weight", test_rows(rng, N_VOCAB, N_EMBD))
    add("output_norm.weight", rng.uniform(0.5, 1.5, N_EMBD))
    add("output.weight", test_rows(rng, N_VOCAB, N_EMBD))
    for layer in range(N_LAYER):
        p = f"blk.{layer}."
        add(p + "attn_norm.weight", rng.uniform(0.5, 1.5, N_EMBD))
        add(p + "attn_q.weight", test_rows(rng, N_HEAD * HEAD_DIM, N_EMBD))
        add(p + "attn_k.weight", test_rows(rng, N_HEAD * HEAD_DIM, N_EMBD))
        add(p + "attn_v.weight", test_rows(rng, N_HEAD * HEAD_DIM, N_EMBD))
        add(p + "attn_output.weight", test_rows(rng, N_EMBD, N_HEAD * HEAD_DIM))
        add(p + "ffn_norm.weight", rng.uniform(0.5, 1.5, N_EMBD))
        add(p + "ffn_gate_inp.weight", test_rows(rng, N_EXPERT, N_EMBD))
        add(p + "ffn_gate_exps.weight", test_rows(rng, N_EXPERT * N_FF, N_EMBD).reshape(N_EXPERT, N_FF, N_EMBD))
        add(p + "ffn_up_exps.weight", test_rows(rng, N_EXPERT * N_FF, N_EMBD).reshape(N_EXPERT, N_FF, N_EMBD))
        add(p + "ffn_down_exps.weight", test_rows(rng, N_EXPERT * N_EMBD, N_FF).reshape(N_EXPERT, N_EMBD, N_FF))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return tensors


def write_kquant_sources(path: Path, tensors: dict[str, np.ndarray]) -> None:
    w = gguf.GGUFWriter(str(path), "llama")
    for name, qtype in TYPE_PLAN.items():
        if qtype in (T.Q4_K, T.Q5_K, T.Q6_K):
            w.add_tensor(name, tensors[name])
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def quantize_with_llama_cpp(llama_quantize: str, source: Path, target: Path) -> None:
    args = [llama_quantize, "--allow-requantize"]
    for name, qtype in TYPE_PLAN.items():
        if name == "token_embd.weight":
            args += ["--token-embedding-type", qtype.name.lower()]
        elif name == "output.weight":
            args += ["--output-tensor-type", qtype.name.lower()]
        else:
            pattern = "^" + name.replace(".", r"\.") + "$"
            args += ["--tensor-type", f"{pattern}={qtype.name.lower()}"]
    args += [str(source), str(target), "Q8_0", "1"]
    print(" ".join(args), file=sys.stderr)
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL)


def write_expected(quantized: Path, expected: Path) -> None:
    """Dequantise every tensor of `quantized` with gguf.quants.dequantize and store it as F32."""
    reader = gguf.GGUFReader(str(quantized))
    w = gguf.GGUFWriter(str(expected), "llama")
    seen_types = set()
    for tensor in reader.tensors:
        planned = TYPE_PLAN.get(tensor.name)
        if planned is not None and tensor.tensor_type != planned:
            raise SystemExit(f"llama-quantize gave {tensor.name} type {tensor.tensor_type.name}, "
                             f"planned {planned.name}")
        seen_types.add(tensor.tensor_type)
        values = gguf.quants.dequantize(tensor.data, tensor.tensor_type)
        shape = tuple(int(d) for d in reversed(tensor.shape))  # outermost first
        w.add_tensor(tensor.name, np.ascontiguousarray(values, dtype=np.float32).reshape(shape))
    missing = set(TYPE_PLAN.values()) - seen_types
    if missing:
        raise SystemExit(f"types missing from the quantised file: {sorted(t.name for t in missing)}")
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def write_halves(path: Path) -> None:
    """All 65536 bit patterns as F16 and as BF16, with their reference values."""
    bits = np.arange(65536, dtype=np.uint32).astype(np.uint16).reshape(256, 256)
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_tensor("f16", bits.view(np.uint8), raw_dtype=T.F16)
    w.add_tensor("bf16", bits.view(np.uint8), raw_dtype=T.BF16)
    w.add_tensor("f16.expected", gguf.quants.dequantize(bits.view(np.uint8), T.F16).astype(np.float32).reshape(256, 256))
    w.add_tensor("bf16.expected", gguf.quants.dequantize(bits.view(np.uint8), T.BF16).astype(np.float32).reshape(256, 256))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def write_metadata(path: Path) -> None:
    """Every value type. The Swift test (GGUFReaderTests) expects exactly these values."""
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_custom_alignment(64)
    w.add_uint8("test.uint8", 200)
    w.add_int8("test.int8", -100)
    w.add_uint16("test.uint16", 60000)
    w.add_int16("test.int16", -30000)
    w.add_uint32("test.uint32", 4_000_000_000)
    w.add_int32("test.int32", -2_000_000_000)
    w.add_uint64("test.uint64", 18_000_000_000_000_000_000)
    w.add_int64("test.int64", -9_000_000_000_000_000_000)
    w.add_float32("test.float32", 0.1)
    w.add_float64("test.float64", 0.1)
    w.add_bool("test.bool", True)
    w.add_string("test.string", "h\u00e9llo \u2713 GGUF")
    w.add_key_value("test.array.int32", [1, -2, 3], V.ARRAY, sub_type=V.INT32)
    w.add_key_value("test.array.uint8", [0, 255], V.ARRAY, sub_type=V.UINT8)
    w.add_array("test.array.string", ["a", "bc", "\u2713"])
    w.add_array("test.array.float32", [0.5, -1.25])
    w.add_array("test.array.bool", [True, False])
    w.add_array("test.array.nested", [[1, 2], [3], [4, 5, 6]])
    w.add_array("test.array.nested_strings", [["x"], ["y", "z"]])
    # Sizes that are not multiples of 64 bytes, so the second tensor needs padding.
    w.add_tensor("vector", np.array([1.0, -2.0, 3.5], dtype=np.float32))
    w.add_tensor("matrix", np.arange(10, dtype=np.float32).reshape(2, 5))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def write_quantize(path: Path) -> None:
    """F32 rows and their Q8_0 / Q4_0 / Q4_1 / Q5_0 / Q5_1 encodings by gguf.quants.quantize."""
    rng = np.random.default_rng(7)
    rows = test_rows(rng, 32, 256)
    # Rounding ties for Q8_0: max 127 makes d = 1, so k + 0.5 lands exactly on a tie
    # (the reference rounds halves away from zero).
    tie_block = np.concatenate([[127.0], np.arange(-15, 16) + 0.5]).astype(np.float32)
    rows[8] = np.tile(tie_block, 8)
    # Q4_0 truncation boundaries: max -8 makes d = 1, so x + 8.5 is an exact integer or half.
    rows[9] = np.tile(np.arange(-16, 16, dtype=np.float32) * np.float32(0.5), 8)
    # Q4_0 keeps the sign of the first element of largest magnitude: +8 before -8 and after.
    rows[10] = rng.normal(0.0, 1.0, 256)
    for b in range(8):
        rows[10, 32 * b + 3], rows[10, 32 * b + 20] = (8.0, -8.0) if b % 2 == 0 else (-8.0, 8.0)
    # Zero blocks, starting with -0.0 or +0.0.
    rows[11] = 0.0
    rows[11, ::64] = np.float32(-0.0)
    # Scales beyond half's range (d becomes inf) and below it (d becomes subnormal or 0).
    rows[12] = rng.normal(0.0, 1.0, 256) * np.float32(1e7)
    rows[13] = rng.normal(0.0, 1.0, 256) * np.float32(1e-9)
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_tensor("input", rows)
    w.add_tensor("input.q8_0", gguf.quants.quantize(rows, T.Q8_0), raw_dtype=T.Q8_0)
    w.add_tensor("input.q4_0", gguf.quants.quantize(rows, T.Q4_0), raw_dtype=T.Q4_0)
    for qtype in (T.Q4_1, T.Q5_0, T.Q5_1):
        w.add_tensor("input." + qtype.name.lower(), gguf.quants.quantize(rows, qtype), raw_dtype=qtype)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--llama-quantize", default=os.environ.get("LLAMA_QUANTIZE", "llama-quantize"),
                        help="path to llama.cpp's llama-quantize")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "tiny-mixtral-f32.gguf"
        sources = write_tiny_model(source)
        write_kquant_sources(args.out / "kquant-sources.gguf", sources)
        quantized = args.out / "tiny-mixtral-mixed.gguf"
        quantize_with_llama_cpp(args.llama_quantize, source, quantized)
    write_expected(quantized, args.out / "tiny-mixtral-mixed.expected.gguf")
    write_halves(args.out / "halves.gguf")
    write_metadata(args.out / "metadata.gguf")
    write_quantize(args.out / "quantize.gguf")
    print(f"gguf {gguf.__version__ if hasattr(gguf, '__version__') else '?'}, numpy {np.__version__}", file=sys.stderr)
    for f in sorted(args.out.glob("*.gguf")):
        print(f"{f.relative_to(REPO) if f.is_relative_to(REPO) else f}: {f.stat().st_size} bytes", file=sys.stderr)


if __name__ == "__main__":
    main()
