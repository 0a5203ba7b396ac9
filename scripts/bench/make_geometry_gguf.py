#!/usr/bin/env python3
"""Writes a random-weight Mixtral GGUF in Q4_0 with a real model's geometry, straight to
GGUF: tensors are generated and written one at a time, so memory stays under ~0.5 GB
however large the file (the 8x7b file is about 26 GB).

    python scripts/bench/make_geometry_gguf.py [--geometry 8x7b] [--out models/mixtral-8x7b-geometry-q4_0.gguf]
    python scripts/bench/make_geometry_gguf.py --geometry 8x22b --layers 20 --out models/mixtral-8x22b-20l-q4_0.gguf
    python scripts/bench/make_geometry_gguf.py --layers 2 --out /tmp/small.gguf --force

Geometries: 8x7b (Mixtral-8x7B: 32 layers, hidden 4096, intermediate 14336, 32 heads,
8 kv heads, vocab 32000) and 8x22b (Mixtral-8x22B: 56 layers, hidden 6144, intermediate
16384, 48 heads, 8 kv heads, vocab 32768); --layers overrides the layer count.

The layout is what llama.cpp's convert_hf_to_gguf.py writes for Mixtral (architecture
"llama", experts stacked in blk.N.ffn_{gate,up,down}_exps), followed by llama-quantize
--pure Q4_0: every 2-D weight is Q4_0, the norms and the router (ffn_gate_inp) are F32.
The tokenizer is the real SentencePiece one from the mistral-common package (v1 for 8x7b,
v3 for 8x22b), so prompts tokenize as with the real models.

The weights are random but sane for a forward pass: each weight has std about
1/sqrt(fan_in) (the embedding std 1), norms are ones, and the router is random, so the
logits are finite and not degenerate and tokens spread over the experts. Q4_0 blocks are
made directly: a pool of random nibbles and block scales is drawn once, and each weight
matrix takes a slice at a random offset (so every expert and layer differs), scaled for
its fan-in.

The file is written to OUT.partial and renamed to OUT when complete; an existing OUT is
kept unless --force. Free disk space is checked against the exact file size first.

llama.cpp repacks Q4_0 weights into an anonymous buffer the size of the model by default,
so on a machine with less RAM than the file run it with --repack 0 (llama-bench:
--repack 0 -lm mmap) or it fails to allocate the buffer.
"""
import argparse
import os
import shutil
import signal
import struct
import sys
import time
from dataclasses import dataclass, replace

import numpy as np
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType, GGUFValueType, LlamaFileType

GGUF_MAGIC = 0x46554747  # "GGUF" read as a little-endian uint32
GGUF_VERSION = 3
ALIGNMENT = 32  # llama.cpp's default general.alignment

Q4_0 = GGMLQuantizationType.Q4_0
F32 = GGMLQuantizationType.F32
Q4_0_BLOCK, Q4_0_BLOCK_BYTES = GGML_QUANT_SIZES[Q4_0]  # 32 weights in 18 bytes: fp16 d, 16 bytes of nibbles

# Std of a Q4_0 weight (q - 8) * d when q is uniform in 1..15 (symmetric around 8, so the
# weights have mean zero): sqrt(mean(k^2), k = -7..7) * d.
Q4_0_UNIT_STD = float(np.sqrt(np.mean(np.arange(-7, 8) ** 2.0)))


@dataclass(frozen=True)
class Geometry:
    layers: int
    hidden: int
    intermediate: int
    heads: int
    kv_heads: int
    experts: int
    experts_used: int
    vocab: int
    context: int
    rope_theta: float
    rms_eps: float
    tokenizer: str  # file name in mistral_common/data
    name: str

    @property
    def head_dim(self) -> int:
        return self.hidden // self.heads


GEOMETRIES = {
    "8x7b": Geometry(layers=32, hidden=4096, intermediate=14336, heads=32, kv_heads=8, experts=8, experts_used=2,
                     vocab=32000, context=32768, rope_theta=1e6, rms_eps=1e-5,
                     tokenizer="tokenizer.model.v1", name="Mixtral 8x7B geometry (random weights)"),
    "8x22b": Geometry(layers=56, hidden=6144, intermediate=16384, heads=48, kv_heads=8, experts=8, experts_used=2,
                      vocab=32768, context=65536, rope_theta=1e6, rms_eps=1e-5,
                      tokenizer="mistral_instruct_tokenizer_240323.model.v3",
                      name="Mixtral 8x22B geometry (random weights)"),
}


@dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: tuple  # numpy order, outermost first: (experts, out, in) / (out, in) / (n,)
    dtype: GGMLQuantizationType
    std: float = 0.0  # weight std; 0 for the norms, which are ones

    @property
    def nbytes(self) -> int:
        count = int(np.prod(self.shape))
        if self.dtype == F32:
            return 4 * count
        return count // Q4_0_BLOCK * Q4_0_BLOCK_BYTES


def tensor_specs(g: Geometry) -> list:
    """The tensors in file order: embedding, then each layer's attention and experts, then the head."""
    kv_dim = g.kv_heads * g.head_dim
    specs = [TensorSpec("token_embd.weight", (g.vocab, g.hidden), Q4_0, std=1.0)]
    for i in range(g.layers):
        p = f"blk.{i}."
        specs += [
            TensorSpec(p + "attn_norm.weight", (g.hidden,), F32),
            TensorSpec(p + "attn_q.weight", (g.hidden, g.hidden), Q4_0, std=g.hidden ** -0.5),
            TensorSpec(p + "attn_k.weight", (kv_dim, g.hidden), Q4_0, std=g.hidden ** -0.5),
            TensorSpec(p + "attn_v.weight", (kv_dim, g.hidden), Q4_0, std=g.hidden ** -0.5),
            TensorSpec(p + "attn_output.weight", (g.hidden, g.hidden), Q4_0, std=g.hidden ** -0.5),
            TensorSpec(p + "ffn_norm.weight", (g.hidden,), F32),
            # The router stays F32 as llama.cpp's converter and quantizer leave it.
            TensorSpec(p + "ffn_gate_inp.weight", (g.experts, g.hidden), F32, std=g.hidden ** -0.5),
            TensorSpec(p + "ffn_gate_exps.weight", (g.experts, g.intermediate, g.hidden), Q4_0, std=g.hidden ** -0.5),
            TensorSpec(p + "ffn_up_exps.weight", (g.experts, g.intermediate, g.hidden), Q4_0, std=g.hidden ** -0.5),
            TensorSpec(p + "ffn_down_exps.weight", (g.experts, g.hidden, g.intermediate), Q4_0,
                       std=g.intermediate ** -0.5),
        ]
    specs += [
        TensorSpec("output_norm.weight", (g.hidden,), F32),
        TensorSpec("output.weight", (g.vocab, g.hidden), Q4_0, std=g.hidden ** -0.5),
    ]
    return specs


# --- GGUF metadata -------------------------------------------------------------------------

def pack_string(s) -> bytes:
    data = s if isinstance(s, bytes) else s.encode("utf-8")
    return struct.pack("<Q", len(data)) + data


SCALAR_FORMATS = {GGUFValueType.UINT32: "<I", GGUFValueType.INT32: "<i", GGUFValueType.FLOAT32: "<f",
                  GGUFValueType.BOOL: "<?"}


def pack_value(vtype: GGUFValueType, value) -> bytes:
    if vtype == GGUFValueType.STRING:
        return pack_string(value)
    return struct.pack(SCALAR_FORMATS[vtype], value)


def pack_kv(key: str, vtype: GGUFValueType, value, element_type: GGUFValueType | None = None) -> bytes:
    out = pack_string(key) + struct.pack("<I", vtype)
    if vtype != GGUFValueType.ARRAY:
        return out + pack_value(vtype, value)
    out += struct.pack("<IQ", element_type, len(value))
    if element_type == GGUFValueType.STRING:
        return out + b"".join(pack_string(v) for v in value)
    # Numeric arrays in one go: per-element struct.pack of 32000 values is slow for nothing.
    numpy_type = {GGUFValueType.FLOAT32: "<f4", GGUFValueType.INT32: "<i4"}[element_type]
    return out + np.asarray(value, dtype=numpy_type).tobytes()


def sentencepiece_vocab(model_file: str):
    """Tokens, scores and token types as llama.cpp's _create_vocab_sentencepiece makes them."""
    from gguf import TokenType
    from sentencepiece import SentencePieceProcessor

    sp = SentencePieceProcessor(model_file=model_file)
    tokens, scores, types = [], [], []
    for i in range(sp.vocab_size()):
        tokens.append(sp.IdToPiece(i).encode("utf-8"))
        scores.append(sp.GetScore(i))
        if sp.IsUnknown(i):
            types.append(TokenType.UNKNOWN)
        elif sp.IsControl(i):
            types.append(TokenType.CONTROL)
        elif sp.IsUnused(i):
            types.append(TokenType.UNUSED)
        elif sp.IsByte(i):
            types.append(TokenType.BYTE)
        else:
            types.append(TokenType.NORMAL)
    return sp, tokens, scores, [int(t) for t in types]


def metadata(g: Geometry, tokenizer_file: str) -> list:
    sp, tokens, scores, types = sentencepiece_vocab(tokenizer_file)
    if len(tokens) != g.vocab:
        raise SystemExit(f"{tokenizer_file} has {len(tokens)} tokens, the geometry wants {g.vocab}")
    u32, f32, s, b, arr = (GGUFValueType.UINT32, GGUFValueType.FLOAT32, GGUFValueType.STRING, GGUFValueType.BOOL,
                           GGUFValueType.ARRAY)
    return [
        ("general.architecture", s, "llama"),
        ("general.type", s, "model"),
        ("general.name", s, g.name),
        ("general.quantization_version", u32, 2),
        ("general.file_type", u32, int(LlamaFileType.MOSTLY_Q4_0)),
        ("llama.block_count", u32, g.layers),
        ("llama.context_length", u32, g.context),
        ("llama.embedding_length", u32, g.hidden),
        ("llama.feed_forward_length", u32, g.intermediate),
        ("llama.attention.head_count", u32, g.heads),
        ("llama.attention.head_count_kv", u32, g.kv_heads),
        ("llama.rope.freq_base", f32, g.rope_theta),
        ("llama.attention.layer_norm_rms_epsilon", f32, g.rms_eps),
        ("llama.expert_count", u32, g.experts),
        ("llama.expert_used_count", u32, g.experts_used),
        ("llama.vocab_size", u32, g.vocab),
        ("llama.rope.dimension_count", u32, g.head_dim),
        ("tokenizer.ggml.model", s, "llama"),
        ("tokenizer.ggml.pre", s, "default"),
        ("tokenizer.ggml.tokens", arr, tokens, s),
        ("tokenizer.ggml.scores", arr, scores, f32),
        ("tokenizer.ggml.token_type", arr, types, GGUFValueType.INT32),
        ("tokenizer.ggml.bos_token_id", u32, sp.bos_id()),
        ("tokenizer.ggml.eos_token_id", u32, sp.eos_id()),
        ("tokenizer.ggml.unknown_token_id", u32, sp.unk_id()),
        # What Mixtral's tokenizer_config.json says, which SpecialVocab copies.
        ("tokenizer.ggml.add_bos_token", b, True),
        ("tokenizer.ggml.add_eos_token", b, False),
    ]


def pad_to(n: int, alignment: int = ALIGNMENT) -> int:
    return (n + alignment - 1) // alignment * alignment


def gguf_header(kvs: list, specs: list) -> bytes:
    """Everything before the tensor data (header, metadata, tensor infos), padded to the alignment."""
    out = bytearray(struct.pack("<IIQQ", GGUF_MAGIC, GGUF_VERSION, len(specs), len(kvs)))
    for kv in kvs:
        out += pack_kv(*kv)
    offset = 0
    for spec in specs:
        out += pack_string(spec.name) + struct.pack("<I", len(spec.shape))
        out += struct.pack(f"<{len(spec.shape)}Q", *reversed(spec.shape))  # GGUF lists dims innermost first
        out += struct.pack("<IQ", spec.dtype, offset)
        offset += pad_to(spec.nbytes)
    out += bytes(pad_to(len(out)) - len(out))
    return bytes(out)


# --- Random weights ------------------------------------------------------------------------

class BlockPool:
    """Random Q4_0 material drawn once: nibble bytes with every q in 1..15, and per-block
    scale factors of random sign and magnitude 0.75..1.25 (normalised so their RMS is 1).
    A weight matrix is a slice of both at a random offset, its scales multiplied by the
    matrix's d."""

    def __init__(self, rng: np.random.Generator, blocks: int):
        # One draw per byte from the 15 x 15 (low, high) nibble pairs, mapped through a table,
        # so the pool needs no temporaries of its size.
        pairs = np.arange(15 * 15)
        byte_of_pair = ((pairs % 15 + 1) | ((pairs // 15 + 1) << 4)).astype(np.uint8)
        self.nibbles = byte_of_pair[rng.integers(0, 15 * 15, size=(blocks, Q4_0_BLOCK // 2), dtype=np.uint8)]
        magnitude = rng.uniform(0.75, 1.25, size=blocks).astype(np.float32)
        sign = rng.choice(np.array([-1.0, 1.0], dtype=np.float32), size=blocks)
        self.scales = sign * magnitude / np.sqrt(np.mean(magnitude ** 2))
        self.blocks = blocks
        self.rng = rng

    def matrix(self, rows: int, cols: int, std: float) -> np.ndarray:
        """Q4_0 bytes of a (rows, cols) matrix with weight std `std`, as (blocks, 18) uint8."""
        n = rows * cols // Q4_0_BLOCK
        if n > self.blocks:
            raise ValueError(f"a matrix of {n} blocks does not fit the pool of {self.blocks}")
        start = int(self.rng.integers(0, self.blocks - n + 1))
        out = np.empty((n, Q4_0_BLOCK_BYTES), dtype=np.uint8)
        d = (self.scales[start:start + n] * (std / Q4_0_UNIT_STD)).astype("<f2")
        out[:, :2] = d.view(np.uint8).reshape(n, 2)
        out[:, 2:] = self.nibbles[start:start + n]
        return out


def tensor_chunks(spec: TensorSpec, pool: BlockPool, rng: np.random.Generator):
    """The tensor's bytes, a matrix (one expert) at a time so no buffer is larger than a matrix."""
    if spec.dtype == F32:
        if spec.std == 0:
            yield np.ones(spec.shape, dtype="<f4")
        else:
            yield rng.normal(0.0, spec.std, size=spec.shape).astype("<f4")
        return
    *stack, rows, cols = spec.shape
    for _ in range(int(np.prod(stack))):  # 1 for 2-D tensors
        yield pool.matrix(rows, cols, spec.std)


# --- Main ----------------------------------------------------------------------------------

def tokenizer_path(file_name: str) -> str:
    import mistral_common
    return os.path.join(os.path.dirname(mistral_common.__file__), "data", file_name)


def format_gb(n: int) -> str:
    return f"{n / 1e9:.2f} GB"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--geometry", choices=GEOMETRIES, default="8x7b")
    parser.add_argument("--layers", type=int, help="number of layers (default: the geometry's)")
    parser.add_argument("--out", help="output file (default: models/mixtral-<geometry>-geometry-q4_0.gguf)")
    parser.add_argument("--seed", type=int, default=0, help="random seed of the weights (default 0)")
    parser.add_argument("--force", action="store_true", help="overwrite OUT if it exists")
    # Debug overrides for tiny test files (not part of a real geometry).
    for flag in ("--hidden", "--intermediate", "--heads", "--kv-heads", "--experts"):
        parser.add_argument(flag, type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()

    g = GEOMETRIES[args.geometry]
    overrides = {"layers": args.layers, "hidden": args.hidden, "intermediate": args.intermediate,
                 "heads": args.heads, "kv_heads": args.kv_heads, "experts": args.experts}
    g = replace(g, **{k: v for k, v in overrides.items() if v is not None})
    if g.layers < 1 or g.hidden % Q4_0_BLOCK or g.intermediate % Q4_0_BLOCK or g.hidden % g.heads \
            or g.heads % g.kv_heads or g.experts < g.experts_used:
        parser.error(f"invalid geometry: {g.layers} layers, hidden {g.hidden}, intermediate {g.intermediate}, "
                     f"{g.heads} heads, {g.kv_heads} kv heads, {g.experts} experts (Q4_0 needs hidden and "
                     f"intermediate multiples of 32; heads must divide hidden, kv heads divide heads)")
    out = args.out or f"models/mixtral-{args.geometry}-geometry-q4_0.gguf"
    partial = out + ".partial"
    if os.path.exists(out) and not args.force:
        sys.exit(f"{out} exists; pass --force to overwrite it")

    specs = tensor_specs(g)
    header = gguf_header(metadata(g, tokenizer_path(g.tokenizer)), specs)
    total = len(header) + sum(pad_to(spec.nbytes) for spec in specs)

    # A stale .partial is truncated when opened, so its space counts as free.
    out_dir = os.path.dirname(os.path.abspath(out))
    free = shutil.disk_usage(out_dir).free + (os.path.getsize(partial) if os.path.exists(partial) else 0)
    if total > free:
        sys.exit(f"{out} needs {total} bytes ({format_gb(total)}) but {out_dir} has {free} bytes "
                 f"({format_gb(free)}) free; use fewer --layers or another disk")

    rng = np.random.default_rng(args.seed)
    # The pool must hold the largest matrix (the embedding or the output head); 2x gives
    # room for random offsets.
    largest = max(int(np.prod(s.shape[-2:])) // Q4_0_BLOCK for s in specs if s.dtype == Q4_0)
    pool = BlockPool(rng, 2 * largest)

    print(f"writing {out}: {g.layers} layers, hidden {g.hidden}, intermediate {g.intermediate}, "
          f"{g.experts} experts, {len(specs)} tensors, {total} bytes ({format_gb(total)})", file=sys.stderr)
    # Turn SIGTERM into an exception so that the cleanup below removes the partial file.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    start = time.monotonic()
    last_report = 0.0
    try:
        with open(partial, "wb") as f:
            f.write(header)
            written = len(header)
            for i, spec in enumerate(specs):
                size = 0
                for chunk in tensor_chunks(spec, pool, rng):
                    f.write(chunk)  # any C-contiguous array is a byte buffer
                    size += chunk.nbytes
                assert size == spec.nbytes, (spec.name, size, spec.nbytes)
                f.write(bytes(pad_to(size) - size))
                written += pad_to(size)
                now = time.monotonic()
                if now - last_report >= 2 or i == len(specs) - 1:
                    last_report = now
                    rate = written / max(now - start, 1e-9) / 1e6
                    print(f"  tensor {i + 1}/{len(specs)} {spec.name}: {format_gb(written)} of "
                          f"{format_gb(total)}, {rate:.0f} MB/s", file=sys.stderr)
            f.flush()
            os.fsync(f.fileno())  # so the rename never exposes a file the disk does not hold yet
        if written != total:
            raise AssertionError(f"wrote {written} bytes, expected {total}")
        os.replace(partial, out)
    except BaseException:
        # A multi-GB partial file is of no use; give the space back.
        if os.path.exists(partial):
            os.remove(partial)
        raise
    elapsed = time.monotonic() - start
    print(f"wrote {out}: {total} bytes ({format_gb(total)}) in {elapsed:.0f} s "
          f"({total / elapsed / 1e6:.0f} MB/s)", file=sys.stderr)


if __name__ == "__main__":
    main()
