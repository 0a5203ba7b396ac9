#!/usr/bin/env python3
"""Reference data for checking the Swift GGUF reader on real (large, uncommitted) files.

For each GGUF file given, writes into OUTDIR:
  <stem>.metadata.json   every metadata key as {"type": ..., "value": ...} (arrays: "element"
                         and "value" list), read by gguf.GGUFReader; strings as hex of their
                         UTF-8 bytes, invalid sequences replaced by U+FFFD
  <stem>.expected.gguf   tensors dequantised by gguf.quants.dequantize, as F32: tensors of at
                         most --max-elements whole, larger ones as their first --rows rows under
                         the name "<name>@rows"

Then run the opt-in Swift test:
  GGUF_REAL_FILES=path/a.gguf:path/b.gguf GGUF_REAL_EXPECTED=OUTDIR swift test --filter GGUFRealFile

Usage:
  python3 scripts/gguf/check_real_file.py OUTDIR FILE.gguf [FILE.gguf ...]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import gguf
from gguf import GGUFValueType as V


def decode(part: np.ndarray) -> str:
    # As hex of the UTF-8 bytes after replacing invalid sequences: JSON readers may drop
    # a leading U+FEFF from strings, which real vocabularies contain.
    return part.tobytes().decode("utf-8", errors="replace").encode("utf-8").hex()


def scalar(field: gguf.ReaderField, index: int, vtype: V):
    part = field.parts[index]
    if vtype == V.STRING:
        return decode(part)
    value = part.tolist()[0]
    if vtype == V.BOOL:
        return bool(value)
    if vtype in (V.FLOAT32, V.FLOAT64):
        return float(value)
    return int(value)


def metadata(reader: gguf.GGUFReader) -> dict:
    out = {}
    for key, field in reader.fields.items():
        if key.startswith("GGUF."):
            continue  # header fields the reader exposes as pseudo-keys
        main = field.types[0]
        if main == V.ARRAY:
            if len(field.types) > 2:
                continue  # nested arrays: not expanded by gguf.GGUFReader
            element = field.types[-1] if len(field.types) > 1 else V.UINT8
            values = [scalar(field, i, element) for i in field.data]
            out[key] = {"type": "ARRAY", "element": element.name, "value": values}
        else:
            out[key] = {"type": main.name, "value": scalar(field, field.data[0], main)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("outdir", type=Path)
    parser.add_argument("files", type=Path, nargs="+")
    parser.add_argument("--max-elements", type=int, default=1 << 20)
    parser.add_argument("--rows", type=int, default=64)
    args = parser.parse_args()
    args.outdir.mkdir(parents=True, exist_ok=True)

    for path in args.files:
        reader = gguf.GGUFReader(str(path))
        stem = path.name.removesuffix(".gguf")
        with open(args.outdir / f"{stem}.metadata.json", "w", encoding="utf-8") as f:
            json.dump(metadata(reader), f, ensure_ascii=False)
        writer = gguf.GGUFWriter(str(args.outdir / f"{stem}.expected.gguf"), "reference")
        count = 0
        for tensor in reader.tensors:
            data = tensor.data
            name = tensor.name
            if tensor.n_elements > args.max_elements:
                rows = data.reshape(-1, data.shape[-1])[: args.rows]
                data = rows
                name = name + "@rows"
            try:
                values = gguf.quants.dequantize(data, tensor.tensor_type)
            except NotImplementedError:
                continue
            shape = (-1, int(tensor.shape[0])) if len(tensor.shape) > 1 else (-1,)
            writer.add_tensor(name, np.ascontiguousarray(values, dtype=np.float32).reshape(shape))
            count += 1
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        print(f"{path}: {len(reader.fields)} fields, {count} tensors")


if __name__ == "__main__":
    main()
