#!/usr/bin/env python3
"""Side-by-side throughput: this engine vs llama.cpp vs PyTorch on the same weights, in
one run. From a fresh clone:

    python3 -m venv .venv-bench && .venv-bench/bin/pip install torch transformers safetensors numpy gguf mistral-common sentencepiece
    scripts/gguf/build_llama_cpp.sh            # llama.cpp's converter, llama-bench, llama-quantize
    swift build -c release --product mixtral
    .venv-bench/bin/python scripts/bench/compare.py [--types bf16,f32,q8_0,q4_0] [-r 3]

Builds the benchmark checkpoint (scripts/bench/make_bench_checkpoint.py) in HF form and
converts it with llama.cpp's own converter (and quantizer) to GGUF, then runs pp512 and
tg128 for each engine and dtype and prints one markdown table: the median over the
repetitions ± the standard deviation, and ratios of medians (the machine is shared: one
disturbed repetition moves a mean, not a median).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))


def run(command, **kwargs):
    print("+", " ".join(command), file=sys.stderr, flush=True)
    return subprocess.run(command, check=True, capture_output=True, text=True, **kwargs).stdout


def ensure_checkpoints(models, llama_cpp, types):
    python = sys.executable
    hf = {"bf16": os.path.join(models, "bench-mixtral"), "f32": os.path.join(models, "bench-mixtral-f32")}
    for dtype, folder in hf.items():
        needed = dtype in types or (dtype == "bf16" and any(t.startswith("q") for t in types))
        if needed and not os.path.exists(os.path.join(folder, "model.safetensors")):
            run([python, os.path.join(HERE, "make_bench_checkpoint.py"), "--out", folder] + (["--f32"] if dtype == "f32" else []))
    gguf = {}
    converter = os.path.join(llama_cpp, "src", "convert_hf_to_gguf.py")
    env = dict(os.environ, PYTHONPATH=os.path.join(llama_cpp, "src", "gguf-py"))
    for dtype in types:
        path = os.path.join(models, f"bench-{dtype}.gguf")
        gguf[dtype] = path
        if os.path.exists(path):
            continue
        if dtype in ("bf16", "f32"):
            run([python, converter, hf[dtype], "--outtype", dtype, "--outfile", path], env=env)
        else:
            source = os.path.join(models, "bench-bf16.gguf")
            if not os.path.exists(source):
                run([python, converter, hf["bf16"], "--outtype", "bf16", "--outfile", source], env=env)
            run([os.path.join(llama_cpp, "build", "bin", "llama-quantize"), source, path, dtype.upper()])
    return hf, gguf


def llama_bench(llama_cpp, gguf, p, n, r, threads):
    out = run([os.path.join(llama_cpp, "build", "bin", "llama-bench"), "-m", gguf, "-t", str(threads),
               "-p", str(p), "-n", str(n), "-r", str(r), "-o", "json"])
    rows = json.loads(out)
    result = {}
    for row in rows:
        test = f"pp{row['n_prompt']}" if row["n_prompt"] else f"tg{row['n_gen']}"
        samples = row.get("samples_ts") or [row["avg_ts"]]
        result[test] = (statistics.median(samples), row["stddev_ts"])
    return result


def mixtral_bench(binary, model, p, n, r, threads, precision):
    out = run([binary, "bench", "--model", model, "-p", str(p), "-n", str(n), "-r", str(r), "--threads", str(threads),
               "--precision", precision, "--json"])
    data = json.loads(out)
    return {t["test"]: (t["median_tokens_per_second"], t["stddev"]) for t in data["tests"]}, data


def pytorch_bench(model, dtype, p, n, r, threads):
    out = run([sys.executable, os.path.join(HERE, "pytorch_bench.py"), model, "--dtype", dtype,
               "-p", str(p), "-n", str(n), "-r", str(r), "--threads", str(threads)])
    return {t["test"]: (t["median_tokens_per_second"], t["stddev"]) for t in json.loads(out)["tests"]}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--types", default="bf16,f32,q8_0,q4_0")
    parser.add_argument("--models", default=os.path.join(ROOT, "models"))
    parser.add_argument("--llama-cpp", default=os.environ.get("LLAMA_CPP", "/work/llama.cpp"))
    parser.add_argument("--mixtral", default=os.path.join(ROOT, ".build", "release", "mixtral"))
    parser.add_argument("-p", type=int, default=512)
    parser.add_argument("-n", type=int, default=128)
    parser.add_argument("-r", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-pytorch", action="store_true")
    args = parser.parse_args()
    types = args.types.split(",")
    os.makedirs(args.models, exist_ok=True)
    hf, gguf = ensure_checkpoints(args.models, args.llama_cpp, types)
    pp, tg = f"pp{args.p}", f"tg{args.n}"
    rows = []
    bound = None

    def add(engine, dtype, result):
        rows.append((engine, dtype, result))

    for dtype in types:
        try:
            add("llama.cpp", dtype, llama_bench(args.llama_cpp, gguf[dtype], args.p, args.n, args.r, args.threads))
        except subprocess.CalledProcessError as error:
            add("llama.cpp", dtype, {"error": error.stderr.strip().splitlines()[-1:]})
        model = hf.get(dtype, gguf[dtype])
        precisions = ["exact", "fast"] if dtype == "bf16" or dtype.startswith("q") else ["exact"]
        for precision in precisions:
            try:
                result, data = mixtral_bench(args.mixtral, model, args.p, args.n, args.r, args.threads, precision)
                bound = bound or data
                label = "swift-mixtral" + (" --precision fast" if precision == "fast" else "")
                add(label, dtype, result)
                if dtype == "bf16" and precision == "exact":
                    # The probe runs between the tg repetitions; the fraction compares each
                    # repetition with the bandwidth measured around it.
                    fraction = data.get("tg_fraction_of_bound")
                    reached = f"; tg at {100 * fraction:.0f}% of it" if fraction else ""
                    add(f"  bandwidth bound (probe median {data['read_bandwidth_bytes_per_second'] / 1e9:.1f} GB/s{reached})",
                        dtype, {tg: (data["tg_bound_tokens_per_second"], 0)})
            except subprocess.CalledProcessError as error:
                add("swift-mixtral", dtype, {"error": error.stderr.strip().splitlines()[-1:]})
        if not args.no_pytorch and dtype in hf:
            try:
                add("PyTorch + transformers", dtype, pytorch_bench(hf[dtype], dtype, args.p, args.n, args.r, args.threads))
            except subprocess.CalledProcessError as error:
                add("PyTorch + transformers", dtype, {"error": error.stderr.strip().splitlines()[-1:]})

    print(f"| engine | weights | {pp} t/s | {tg} t/s | {pp} vs llama.cpp | {tg} vs llama.cpp |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    reference = {dtype: result for engine, dtype, result in rows if engine == "llama.cpp"}

    def cell(result, test):
        return f"{result[test][0]:.1f} ± {result[test][1]:.1f}" if test in result else ("error" if "error" in result else "")

    def ratio(result, dtype, test):
        base = reference.get(dtype, {})
        if test in result and test in base and base[test][0] > 0:
            return f"{result[test][0] / base[test][0]:.2f}x"
        return ""

    for engine, dtype, result in rows:
        print(f"| {engine} | {dtype} | {cell(result, pp)} | {cell(result, tg)} | {ratio(result, dtype, pp)} | {ratio(result, dtype, tg)} |")
        if "error" in result:
            print(f"|  ({engine} {dtype}: {' '.join(result['error'])}) | | | | | |")


if __name__ == "__main__":
    main()
