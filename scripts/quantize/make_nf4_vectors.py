#!/usr/bin/env python3
"""Reference vectors for NF4 (bitsandbytes' load_in_4bit with quant_type="nf4", blocks of
64): inputs, bitsandbytes' packed codes and absmax, and its dequantised values.

    python scripts/quantize/make_nf4_vectors.py [--out Tests/MixtralTests/Fixtures/nf4.json]
"""
import argparse
import json
import os
import struct

import torch
from bitsandbytes.functional import dequantize_4bit, quantize_4bit


def bits(values):
    return [struct.unpack("<I", struct.pack("<f", v))[0] for v in values]


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default=os.path.join(here, "..", "..", "Tests", "MixtralTests", "Fixtures", "nf4.json"))
    args = parser.parse_args()
    torch.manual_seed(4)
    rows = [torch.randn(256) * 0.02, torch.randn(256) * 3, torch.rand(256) - 0.5,
            torch.cat([torch.zeros(64), torch.randn(192)]),  # an all-zero block
            torch.randint(-8, 9, (256,)).float() / 8]  # values on the table's grid and midpoints
    cases = []
    for x in rows:
        x = x.float()
        packed, state = quantize_4bit(x.view(1, -1), blocksize=64, quant_type="nf4")
        restored = dequantize_4bit(packed, state).view(-1)
        cases.append({"input_bits": bits(x.tolist()), "codes": packed.view(-1).tolist(),
                      "absmax_bits": bits(state.absmax.tolist()), "dequantized_bits": bits(restored.tolist())})
    with open(args.out, "w") as f:
        json.dump(cases, f)
    print(f"wrote {len(cases)} rows to {args.out}")


if __name__ == "__main__":
    main()
