#!/usr/bin/env python3
"""Side-by-side throughput: this engine vs llama.cpp vs PyTorch on the same weights, in
one run. From a fresh clone:

    python3 -m venv .venv-bench && .venv-bench/bin/pip install torch transformers safetensors numpy gguf mistral-common sentencepiece
    scripts/gguf/build_llama_cpp.sh            # llama.cpp's converter, llama-bench, llama-quantize
    swift build -c release --product mixtral
    .venv-bench/bin/python scripts/bench/compare.py [--types bf16,f32,q8_0,q4_0] [-r 3] [--rounds 3]

    # The AVX2 level on any machine: llama.cpp built for AVX2 only, this engine with
    # MIXTRAL_CPU=avx2, PyTorch with ATEN_CPU_CAPABILITY=avx2.
    scripts/gguf/build_llama_cpp.sh --avx2
    .venv-bench/bin/python scripts/bench/compare.py --cpu avx2 --types bf16,q8_0,q4_0,q4_k_m

Builds the benchmark checkpoint (scripts/bench/make_bench_checkpoint.py) in HF form and
converts it with llama.cpp's own converter (and quantizer) to GGUF, then runs pp512 and
tg128 for each engine and dtype and prints one markdown table. The engines take turns in
rounds (llama.cpp, this engine, PyTorch; again), and each ratio is the median of the
ratios within a round: this shared machine's memory bandwidth moves between ~50 and ~82
GB/s over tens of seconds, so engines measured minutes apart can be measured in different
conditions; every other round runs them in reverse order. Within a round each figure is
the median of -r repetitions (one disturbed repetition moves a mean, not a median).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))


# --cpu avx2: the environment that caps each engine at AVX2, and llama.cpp's AVX2 build.
CPU_ENV = {"native": {}, "avx2": {"MIXTRAL_CPU": "avx2", "ATEN_CPU_CAPABILITY": "avx2"}}
LLAMA_BUILD = {"native": "build", "avx2": "build-avx2"}
cpu = "native"


def run(command, **kwargs):
    print("+", " ".join(command), file=sys.stderr, flush=True)
    env = dict(kwargs.pop("env", os.environ), **CPU_ENV[cpu])
    return subprocess.run(command, check=True, capture_output=True, text=True, env=env, **kwargs).stdout


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
    out = run([os.path.join(llama_cpp, LLAMA_BUILD[cpu], "bin", "llama-bench"), "-m", gguf, "-t", str(threads),
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
    parser.add_argument("-r", type=int, default=3, help="repetitions per engine in each round")
    parser.add_argument("--rounds", type=int, default=3,
                        help="rounds: every engine runs once per round, one after the other, and ratios are "
                             "taken within a round (this machine's bandwidth changes over tens of seconds)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-pytorch", action="store_true")
    parser.add_argument("--cpu", choices=sorted(CPU_ENV), default="native",
                        help="avx2: every engine at AVX2 (llama.cpp's AVX2 build, MIXTRAL_CPU=avx2, "
                             "ATEN_CPU_CAPABILITY=avx2)")
    args = parser.parse_args()
    global cpu
    cpu = args.cpu
    types = args.types.split(",")
    os.makedirs(args.models, exist_ok=True)
    hf, gguf = ensure_checkpoints(args.models, args.llama_cpp, types)
    pp, tg = f"pp{args.p}", f"tg{args.n}"
    # (engine, dtype) -> per round {test: median t/s}; engines in first-seen order.
    results = {}
    errors = {}
    bounds = []  # per round: (bound t/s, probe bytes/s, fraction of the bound reached)
    bound_label = "  bandwidth bound"

    def add(engine, dtype, result):
        if "error" in result:
            errors[(engine, dtype)] = result["error"]
        else:
            results.setdefault((engine, dtype), []).append({test: value[0] for test, value in result.items()})

    def attempt(engine, dtype, call):
        try:
            return call()
        except subprocess.CalledProcessError as error:
            add(engine, dtype, {"error": error.stderr.strip().splitlines()[-1:]})
            return None

    for dtype in types:
        model = hf.get(dtype, gguf[dtype])
        precisions = ["exact", "fast"] if dtype == "bf16" or dtype.startswith("q") else ["exact"]

        def run_llama():
            result = attempt("llama.cpp", dtype, lambda: llama_bench(args.llama_cpp, gguf[dtype], args.p, args.n, args.r, args.threads))
            if result:
                add("llama.cpp", dtype, result)

        def run_mixtral(precision):
            label = "swift-mixtral" + (" --precision fast" if precision == "fast" else "")
            outcome = attempt(label, dtype, lambda: mixtral_bench(args.mixtral, model, args.p, args.n, args.r, args.threads, precision))
            if outcome:
                result, data = outcome
                add(label, dtype, result)
                if dtype == "bf16" and precision == "exact":
                    # The probe runs between the tg repetitions; the fraction compares each
                    # repetition with the bandwidth measured around it.
                    bounds.append((data["tg_bound_tokens_per_second"], data["read_bandwidth_bytes_per_second"],
                                   data.get("tg_fraction_of_bound")))
                    results.setdefault((bound_label, dtype), []).append({tg: data["tg_bound_tokens_per_second"]})

        def run_pytorch():
            result = attempt("PyTorch + transformers", dtype,
                             lambda: pytorch_bench(hf[dtype], dtype, args.p, args.n, args.r, args.threads))
            if result:
                add("PyTorch + transformers", dtype, result)

        steps = [run_llama] + [lambda precision=precision: run_mixtral(precision) for precision in precisions]
        if not args.no_pytorch and dtype in hf:
            steps.append(run_pytorch)
        for round_index in range(args.rounds):
            # Every other round in reverse order, so no engine always runs at the same point
            # of the machine's bandwidth periods.
            for step in (steps if round_index % 2 == 0 else list(reversed(steps))):
                step()

    def median_of(rounds, test):
        values = [r[test] for r in rounds if test in r]
        return statistics.median(values) if values else None

    def spread(rounds, test):
        values = [r[test] for r in rounds if test in r]
        return statistics.stdev(values) if len(values) > 1 else 0.0

    def ratio(engine, dtype, test, against):
        """Median over rounds of this engine against `against` in the same round."""
        mine, theirs = results.get((engine, dtype), []), results.get((against, dtype), [])
        values = [a[test] / b[test] for a, b in zip(mine, theirs) if test in a and test in b and b[test] > 0]
        return f"{statistics.median(values):.2f}x" if values else ""

    level = json.loads(run([args.mixtral, "system-info", "--json"]))
    print(f"CPU: {level['cpu']} ({level['cpu_level']}); engines at {args.cpu}; this engine's kernels: {level['kernels']}. "
          f"Medians over {args.rounds} rounds of {args.r} repetitions (± sd of the round medians); "
          "ratios are medians of the ratios within each round.\n")
    print(f"| engine | weights | {pp} t/s | {tg} t/s | {pp} vs llama.cpp | {tg} vs llama.cpp | {tg} vs PyTorch |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    for (engine, dtype), rounds in results.items():
        cells = []
        for test in (pp, tg):
            value = median_of(rounds, test)
            cells.append(f"{value:.1f} ± {spread(rounds, test):.1f}" if value is not None else "")
        name = engine
        if engine == bound_label and bounds:
            probe = statistics.median(b[1] for b in bounds) / 1e9
            fractions = [b[2] for b in bounds if b[2]]
            reached = f"; tg at {100 * statistics.median(fractions):.0f}% of it" if fractions else ""
            name = f"  bandwidth bound (probe median {probe:.1f} GB/s{reached})"
        versus_torch = ratio(engine, dtype, tg, "PyTorch + transformers") if engine.startswith("swift") else ""
        print(f"| {name} | {dtype} | {cells[0]} | {cells[1]} | {ratio(engine, dtype, pp, 'llama.cpp')} | "
              f"{ratio(engine, dtype, tg, 'llama.cpp')} | {versus_torch} |")
    for (engine, dtype), error in errors.items():
        print(f"|  ({engine} {dtype}: {' '.join(error)}) | | | | | | |")
    if bounds:
        print("\nbf16 tg against the bandwidth bound, per round: " +
              ", ".join(f"{100 * b[2]:.0f}% (probe {b[1] / 1e9:.1f} GB/s)" for b in bounds if b[2]))


if __name__ == "__main__":
    main()
