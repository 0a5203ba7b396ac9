#!/usr/bin/env python3
"""Hostile GGUF metadata against the release binary: every metadata value of a real file
is replaced by extreme values (integers 0, -1, 2^31, 2^32 - 1, 2^63 - 1; floats NaN, inf,
0, -1), every value type id by every other one, every array count and string length by
huge ones, and `mixtral tokenize` and `mixtral generate` run on each mutant with a time
limit. A clean typed error (exit status 1) or a normal run passes; a signal, a trap, a
hang past the limit or a message over 10 KB fails, and the mutant is kept for a test.

    scripts/fuzz/gguf_metadata.py [--model FILE] [--binary .build/release/mixtral]
        [--timeout 20] [--keep DIR] [--only KEY_SUBSTRING]

Exit status 0 when every mutant passed.
"""
import argparse
import os
import struct
import subprocess
import sys
import tempfile

# GGUF value types: (struct format, size) for the fixed-size ones.
FIXED = {0: ("<B", 1), 1: ("<b", 1), 2: ("<H", 2), 3: ("<h", 2), 4: ("<I", 4), 5: ("<i", 4),
         6: ("<f", 4), 7: ("<B", 1), 10: ("<Q", 8), 11: ("<q", 8), 12: ("<d", 8)}
STRING, ARRAY = 8, 9


def parse_metadata(data):
    """[(key, type offset, value offset, type, array element type or None)] of a GGUF v3 file."""
    assert data[:4] == b"GGUF", "not a GGUF file"
    position = 4 + 4 + 8
    (count,) = struct.unpack_from("<Q", data, position)
    position += 8
    entries = []

    def skip_value(kind, position):
        if kind in FIXED:
            return position + FIXED[kind][1]
        if kind == STRING:
            (length,) = struct.unpack_from("<Q", data, position)
            return position + 8 + length
        element, = struct.unpack_from("<I", data, position)
        (n,) = struct.unpack_from("<Q", data, position + 4)
        position += 12
        if element in FIXED:
            return position + n * FIXED[element][1]
        for _ in range(n):
            position = skip_value(element, position)
        return position

    for _ in range(count):
        (length,) = struct.unpack_from("<Q", data, position)
        key = data[position + 8:position + 8 + length].decode()
        position += 8 + length
        (kind,) = struct.unpack_from("<I", data, position)
        type_offset = position
        position += 4
        element = struct.unpack_from("<I", data, position)[0] if kind == ARRAY else None
        entries.append((key, type_offset, position, kind, element))
        position = skip_value(kind, position)
    return entries


def mutants(data, entries):
    """(description, bytes) pairs."""
    for key, type_offset, value_offset, kind, element in entries:
        if kind in FIXED and kind != 7:
            fmt, size = FIXED[kind]
            if kind in (6, 12):
                values = [float("nan"), float("inf"), 0.0, -1.0, 1e30]
            else:
                signed = fmt[1].islower()
                bits = 8 * size
                values = [0, 1, 2**31, 2**32 - 1, 2**63 - 1, -1]
                values = [v for v in values if (-(2 ** (bits - 1)) <= v < 2 ** (bits - 1)) if signed] if signed \
                    else [v % (2**bits) for v in values]
            for v in sorted(set(values), key=str):
                mutated = bytearray(data)
                struct.pack_into(fmt, mutated, value_offset, v)
                yield f"{key} = {v}", bytes(mutated)
        if kind == STRING:
            for length in (0, 2**31, 2**63):
                mutated = bytearray(data)
                struct.pack_into("<Q", mutated, value_offset, length)
                yield f"{key}: string length {length}", bytes(mutated)
        if kind == ARRAY:
            for count in (0, 1, 2**31, 2**62):
                mutated = bytearray(data)
                struct.pack_into("<Q", mutated, value_offset + 4, count)
                yield f"{key}: array count {count}", bytes(mutated)
            for new_element in (4, 8, 9, 13):
                if new_element != element:
                    mutated = bytearray(data)
                    struct.pack_into("<I", mutated, value_offset, new_element)
                    yield f"{key}: array element type {new_element}", bytes(mutated)
        for new_kind in list(range(13)) + [13, 0xFFFFFFFF]:
            if new_kind != kind:
                mutated = bytearray(data)
                struct.pack_into("<I", mutated, type_offset, new_kind)
                yield f"{key}: type {kind} -> {new_kind}", bytes(mutated)


def run(binary, arguments, timeout):
    """'ok', or why the run failed."""
    try:
        result = subprocess.run([binary] + arguments, capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return f"hang (> {timeout} s)"
    if result.returncode < 0:
        return f"signal {-result.returncode}"
    if result.returncode not in (0, 1):
        return f"exit status {result.returncode}: {result.stderr[-300:]!r}"
    if len(result.stderr) > 10_000:
        return f"{len(result.stderr)} bytes of error message"
    return "ok"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=os.path.expanduser("~/.cache/swift-mixtral/SmolLM2-135M-Instruct.Q4_1.gguf"))
    parser.add_argument("--binary", default=".build/release/mixtral")
    parser.add_argument("--timeout", type=float, default=20)
    parser.add_argument("--keep", help="folder for the failing mutants")
    parser.add_argument("--only", help="mutate only keys containing this text")
    options = parser.parse_args()

    data = open(options.model, "rb").read()
    entries = parse_metadata(data)
    if options.only:
        entries = [e for e in entries if options.only in e[0]]
    failures = 0
    total = 0
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "mutant.gguf")
        for description, mutated in mutants(data, entries):
            total += 1
            with open(path, "wb") as file:
                file.write(mutated)
            for command in (["tokenize", "--model", path, "--text", "Hello world"],
                            ["generate", "--model", path, "--max-new-tokens", "2", "--seed", "1", "Hello"]):
                verdict = run(options.binary, command, options.timeout)
                if verdict != "ok":
                    failures += 1
                    print(f"FAIL {description}: {command[0]}: {verdict}", flush=True)
                    if options.keep:
                        os.makedirs(options.keep, exist_ok=True)
                        name = "".join(c if c.isalnum() else "_" for c in description)[:100]
                        with open(os.path.join(options.keep, name + ".gguf"), "wb") as file:
                            file.write(mutated)
                    break
    print(f"{total} mutants of {len(entries)} metadata entries, {failures} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
