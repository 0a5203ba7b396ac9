#!/usr/bin/env python3
"""Quality of `--precision fast` at every CPU level, against `exact` and against llama.cpp's
own distance from `exact`, on one text:

- the text: Debian's license texts (GPL-3, GPL-2, LGPL-2.1, Apache-2.0, MPL-2.0, GFDL-1.3
  from /usr/share/common-licenses), as Documentation/Accuracy.md's perplexity;
- the reference: `mixtral perplexity --precision exact` at the CPU's highest level (the
  logits of transformers in fp32), saved as .npy;
- per level (MIXTRAL_CPU): perplexity of `fast` and `exact`, and their mean KL divergence
  and top-1 agreement against the reference;
- llama.cpp: llama-perplexity's perplexity on the same file, and the KL of llama.cpp's own
  logits (scripts/quality/llama_logits.cpp, the same chunks: BOS first, 512 tokens)
  against the reference.

    python3 scripts/quality/levels.py [--model GGUF] [--chunks N] [--llama-cpp /work/llama.cpp]

Needs numpy, a release build, llama.cpp (scripts/gguf/build_llama_cpp.sh) and its logits
tool (scripts/quality/build_llama_logits.sh).
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
LICENSES = ["GPL-3", "GPL-2", "LGPL-2.1", "Apache-2.0", "MPL-2.0", "GFDL-1.3"]


def run(command, env=None, with_stderr=False):
    print("+", " ".join(command[:8]), file=sys.stderr, flush=True)
    result = subprocess.run(command, capture_output=True, text=True, env=dict(os.environ, **(env or {})))
    if result.returncode != 0:
        raise SystemExit(f"failed: {' '.join(command[:8])}\n{result.stderr[-2000:]}")
    return result.stdout + (result.stderr if with_stderr else "")


def perplexity(mixtral, model, text, level, precision, chunks, save=None, reference=None):
    command = [mixtral, "perplexity", "--model", model, "--file", text, "--precision", precision]
    if chunks:
        command += ["--chunks", str(chunks)]
    if save:
        command += ["--save-logits", save]
    if reference:
        command += ["--kl-reference", reference]
    out = run(command, env={"MIXTRAL_CPU": level})
    ppl = re.search(r"perplexity: ([0-9.]+) ± ([0-9.]+)", out)
    kl = re.search(r"mean KL divergence from the reference: ([0-9.e-]+); top-1 agreement ([0-9.]+)%", out)
    return {"ppl": float(ppl.group(1)), "ppl_error": float(ppl.group(2)),
            "kl": float(kl.group(1)) if kl else None, "top1": float(kl.group(2)) if kl else None}


def log_softmax(x):
    x = x.astype(np.float64)
    m = x.max(axis=-1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=-1, keepdims=True))


def llama_kl(llama_logits, model, mixtral, text, reference, chunks, ctx=512):
    """KL(reference || llama.cpp) over the scored positions of the same chunks."""
    ids = json.loads(run([mixtral, "tokenize", "--model", model, "--file", text, "--no-special"]))
    # `mixtral perplexity` starts each chunk with the tokenizer's BOS id (GGUF metadata).
    import gguf
    field = gguf.GGUFReader(model).fields.get("tokenizer.ggml.bos_token_id")
    bos = int(field.parts[field.data[0]][0]) if field else None
    count = len(ids) // ctx
    if chunks:
        count = min(count, chunks)
    ref = np.load(reference)
    vocab = ref.shape[1]
    first, per_chunk = ctx // 2, ctx - 1 - ctx // 2
    kls, agree = [], 0
    with tempfile.TemporaryDirectory() as folder:
        out = os.path.join(folder, "logits.f32")
        for c in range(count):
            chunk = ids[c * ctx:(c + 1) * ctx]
            if bos is not None:
                chunk[0] = bos
            run([llama_logits, model, ",".join(map(str, chunk)), out])
            logits = np.fromfile(out, dtype=np.float32).reshape(ctx, vocab)[first:ctx - 1]
            r = log_softmax(ref[c * per_chunk:(c + 1) * per_chunk])
            q = log_softmax(logits)
            kls.append((np.exp(r) * (r - q)).sum(axis=-1))
            agree += int((r.argmax(axis=-1) == q.argmax(axis=-1)).sum())
    kl = np.concatenate(kls)
    return float(kl.mean()), 100.0 * agree / kl.size


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    home = os.environ.get("MIXTRAL_HOME", os.path.expanduser("~/.cache/swift-mixtral"))
    parser.add_argument("--model", default=os.path.join(home, "SmolLM2-135M-Instruct.Q4_1.gguf"))
    parser.add_argument("--mixtral", default=os.path.join(ROOT, ".build", "release", "mixtral"))
    parser.add_argument("--llama-cpp", default=os.environ.get("LLAMA_CPP", "/work/llama.cpp"))
    parser.add_argument("--chunks", type=int, help="score at most this many chunks of 512")
    parser.add_argument("--generic-chunks", type=int, default=8,
                        help="chunks at the generic level (slow); 0 for as many as the others")
    args = parser.parse_args()
    info = json.loads(run([args.mixtral, "system-info", "--json"]))
    levels = ["generic", "avx2", "avx512"][: ["generic", "avx2", "avx512"].index(info["cpu_level"]) + 1]
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        text = os.path.join(folder, "licenses.txt")
        with open(text, "w") as f:
            for name in LICENSES:
                f.write(open(os.path.join("/usr/share/common-licenses", name), encoding="utf-8").read())
        reference = os.path.join(folder, "exact.npy")
        best = levels[-1]
        base = perplexity(args.mixtral, args.model, text, best, "exact", args.chunks, save=reference)
        rows.append((f"swift-mixtral exact ({best}): the reference", base))
        for level in reversed(levels):
            chunks = args.chunks
            if level == "generic" and args.generic_chunks:
                chunks = min(chunks or args.generic_chunks, args.generic_chunks)
            for precision in ["fast", "exact"]:
                if precision == "exact" and level == best:
                    continue
                result = perplexity(args.mixtral, args.model, text, level, precision, chunks, reference=reference)
                label = f"swift-mixtral {precision} ({level})" + (f", first {chunks} chunks" if chunks != args.chunks else "")
                rows.append((label, result))
        llama_bin = os.path.join(args.llama_cpp, "build", "bin")
        ppl_out = run([os.path.join(llama_bin, "llama-perplexity"), "-m", args.model, "-f", text, "-c", "512", "-t", "2"]
                      + (["--chunks", str(args.chunks)] if args.chunks else []), with_stderr=True)
        match = re.search(r"Final estimate: PPL = ([0-9.]+) \+/- ([0-9.]+)", ppl_out)
        llama = {"ppl": float(match.group(1)), "ppl_error": float(match.group(2)), "kl": None, "top1": None}
        logits_tool = os.path.join(llama_bin, "llama-logits")
        if os.path.exists(logits_tool):
            llama["kl"], llama["top1"] = llama_kl(logits_tool, args.model, args.mixtral, text, reference, args.chunks)
        rows.append(("llama.cpp (native build)", llama))
    print(f"CPU: {info['cpu']} ({info['cpu_level']}); model {os.path.basename(args.model)}; "
          f"{', '.join(LICENSES)} from /usr/share/common-licenses, chunks of 512\n")
    print("| run | perplexity | mean KL from exact | top-1 agreement |")
    print("| --- | ---: | ---: | ---: |")
    for label, r in rows:
        kl = f"{r['kl']:.6f}" if r["kl"] is not None else "(reference)" if "reference" in label else ""
        top1 = f"{r['top1']:.2f}%" if r["top1"] is not None else ""
        print(f"| {label} | {r['ppl']:.4f} ± {r['ppl_error']:.4f} | {kl} | {top1} |")


if __name__ == "__main__":
    main()
