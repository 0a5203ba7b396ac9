#!/usr/bin/env python3
"""Mixtral larger than RAM: `mixtral bench` with expert streaming (--ram-budget) against
llama-bench on the same GGUF file (its default mmap), the engines taking turns in every
round, and the streaming bound

    bound = 1 / ((1 - h) * X / B + T_compute)

h: the hit rate `mixtral bench` measured; X: the expert bytes a token uses (top-k experts
of every layer); B: the disk's O_DIRECT read bandwidth (dd, 16 MB blocks, five offsets);
T_compute: the resident seconds per token, fitted as a + b * layers (least squares) on two
or more files of the same geometry with fewer layers that fit in memory (--resident), and
taken at the full layer count. 1 / T_compute is also the ceiling of every budget: the speed
with every expert in memory and nothing read. Peak RSS of every run comes from wait4.

    python3 scripts/bench/streaming.py --model models/mixtral-8x7b-geometry-q4_0.gguf \\
        --budget 18G [--budget 20G] --resident models/8x7b-4l.gguf --resident models/8x7b-8l.gguf \\
        [--rounds 3] [-n 16] [--threads 2] [--llama-bench PATH] [--level avx2] [--json-out FILE]

--machine-memory 12G runs both engines in a memory cgroup of that size (cgroup v1's
memory controller, as root), so that llama.cpp's page cache is that small too: a machine
with less memory than this one. The page cache is dropped before every run then (a page
is charged to the cgroup that first reads it, so pages cached before would escape the
limit).

The small files come from scripts/bench/make_geometry_gguf.py --layers N. --level runs
mixtral with MIXTRAL_CPU=LEVEL, to match a llama.cpp built for that level. llama-bench runs
with its defaults; where those fail (its Q4_0 repacking allocates a buffer the size of the
model), it runs with --repack 0, still mmap, and the table says so.
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import threading

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))


CGROUP = "/sys/fs/cgroup/memory/mixtral-streaming-bench"
MACHINE_MEMORY = None  # bytes, when the engines run in a memory cgroup


def confine(command):
    """The command, started inside the memory cgroup when one is set, after the page
    cache is dropped."""
    if MACHINE_MEMORY is None:
        return command
    return ["sh", "-c", f'sync; echo 1 > /proc/sys/vm/drop_caches; echo $$ > {CGROUP}/tasks && exec "$@"', "sh"] + command


def make_cgroup(size):
    os.makedirs(CGROUP, exist_ok=True)
    with open(f"{CGROUP}/memory.limit_in_bytes", "w") as f:
        f.write(str(size))


def run(command, env=None):
    """Runs a command; returns (stdout, stderr, exit code, the child's peak RSS in bytes)."""
    process = subprocess.Popen(confine(command), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    output = {}
    readers = [threading.Thread(target=lambda key=key, stream=stream: output.__setitem__(key, stream.read()))
               for key, stream in (("out", process.stdout), ("err", process.stderr))]
    for reader in readers:
        reader.start()
    _, status, usage = os.wait4(process.pid, 0)  # reaped here, so its own rusage
    for reader in readers:
        reader.join()
    process.returncode = os.waitstatus_to_exitcode(status)
    return output["out"], output["err"], process.returncode, usage.ru_maxrss * 1024


def disk_bandwidth(path, samples=5):
    block = 16 << 20
    blocks = os.path.getsize(path) // block
    rates = []
    for i in range(samples):
        result = subprocess.run(["dd", f"if={path}", "of=/dev/null", "iflag=direct", f"bs={block}", "count=64",
                                 f"skip={blocks * (i + 1) // (samples + 2)}"], capture_output=True, text=True)
        found = re.search(r"(\d+) bytes .* copied, ([0-9.]+) s", result.stderr)
        if found:
            rates.append(int(found.group(1)) / float(found.group(2)))
    return statistics.median(rates)


def mixtral_bench(args, model, budget=None):
    env = dict(os.environ)
    if args.level:
        env["MIXTRAL_CPU"] = args.level
    command = [args.mixtral, "bench", "--model", model, "-p", "0", "-n", str(args.n), "-r", "1", "--json",
               "--threads", str(args.threads)] + (["--ram-budget", budget] if budget else [])
    out, err, code, rss = run(command, env)
    if code != 0:
        sys.exit(f"mixtral bench failed: {err[-2000:]}")
    return json.loads(out), rss


def llama_bench(args, repack):
    command = [args.llama_bench, "-m", args.model, "-p", "0", "-n", str(args.n), "-r", "1", "-t", str(args.threads),
               "-o", "json"] + ([] if repack else ["--repack", "0"])
    out, err, code, rss = run(command)
    if code != 0:
        return None, rss, (err.strip().splitlines() or ["failed"])[-1]
    return json.loads(out)[0]["avg_ts"], rss, None


def main():
    global MACHINE_MEMORY
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True)
    parser.add_argument("--budget", action="append", required=True)
    parser.add_argument("--resident", action="append", default=[])
    parser.add_argument("--mixtral", default=os.path.join(ROOT, ".build/release/mixtral"))
    parser.add_argument("--llama-bench", default="/work/llama.cpp/build/bin/llama-bench")
    parser.add_argument("--level")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("-n", type=int, default=16)
    parser.add_argument("--machine-memory", help="run both engines in a memory cgroup of this size, e.g. 12G")
    parser.add_argument("--json-out")
    args = parser.parse_args()

    bandwidth = disk_bandwidth(args.model)
    print(f"B: O_DIRECT read bandwidth {bandwidth / 1e9:.2f} GB/s", flush=True)
    points = []
    for path in args.resident:
        result, _ = mixtral_bench(args, path)
        points.append((result["layers"], 1 / result["tests"][0]["median_tokens_per_second"]))
        print(f"resident {path}: {points[-1][0]} layers, {points[-1][1]:.3f} s per token", flush=True)

    # The resident runs above measure compute on this machine; the runs below may be confined.
    if args.machine_memory:
        units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
        MACHINE_MEMORY = int(float(args.machine_memory.rstrip("KMGT")) * units.get(args.machine_memory[-1], 1))
        make_cgroup(MACHINE_MEMORY)
        print(f"both engines run in a memory cgroup of {MACHINE_MEMORY / 2**30:.1f} GiB", flush=True)
    streamed = {budget: [] for budget in args.budget}
    llama = []
    llama_mode = "defaults"
    for round_index in range(args.rounds):
        for budget in args.budget:
            result, rss = mixtral_bench(args, args.model, budget)
            streamed[budget].append((result, rss))
            test = result["tests"][0]
            print(f"round {round_index + 1}: mixtral --ram-budget {budget}: {test['median_tokens_per_second']:.3f} t/s, "
                  f"hit rate {test['expert_streaming']['hit_rate']:.3f}, peak RSS {rss / 2**30:.2f} GiB", flush=True)
        rate, rss, error = llama_bench(args, repack=llama_mode == "defaults")
        if rate is None and llama_mode == "defaults":
            print(f"llama-bench with its defaults failed ({error}); measuring with --repack 0", flush=True)
            llama_mode = "--repack 0"
            rate, rss, error = llama_bench(args, repack=False)
        if rate is None:
            sys.exit(f"llama-bench failed: {error}")
        llama.append((rate, rss))
        print(f"round {round_index + 1}: llama-bench ({llama_mode}): {rate:.3f} t/s, peak RSS {rss / 2**30:.2f} GiB", flush=True)

    first = streamed[args.budget[0]][0][0]
    layers, k = first["layers"], first["experts_per_token"]
    x = k * layers * first["expert_streaming"]["expert_bytes"]
    t_compute = None
    if len(points) >= 2:
        # Least squares a + b * layers over the resident files.
        mean_l = statistics.fmean(l for l, _ in points)
        mean_t = statistics.fmean(t for _, t in points)
        slope = (sum((l - mean_l) * (t - mean_t) for l, t in points)
                 / sum((l - mean_l) ** 2 for l, _ in points))
        t_compute = mean_t + slope * (layers - mean_l)
        print(f"T_compute at {layers} layers: {t_compute:.3f} s per token ({slope * 1e3:.2f} ms per layer, fitted on "
              f"{', '.join(str(l) for l, _ in points)} layers)")
    print(f"X: {k} experts x {layers} layers x {first['expert_streaming']['expert_bytes'] / 1e6:.1f} MB = {x / 1e9:.2f} GB per token")
    llama_rate = statistics.median(r for r, _ in llama)
    report = {"disk_bandwidth": bandwidth, "resident": points, "t_compute": t_compute, "x": x,
              "llama": {"mode": llama_mode, "tg": llama_rate, "samples": llama}, "budgets": {}}
    print()
    print("| engine | RAM budget | tg t/s | vs llama.cpp | hit rate h | read per token | waiting for reads | prefetch accuracy "
          "| peak RSS | bound | of bound |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for budget, samples in streamed.items():
        tests = [(result["tests"][0], rss) for result, rss in samples]
        rate = statistics.median(t["median_tokens_per_second"] for t, _ in tests)
        figure = {key: statistics.median(t["expert_streaming"][key] for t, _ in tests)
                  for key in ["hit_rate", "bytes_read_per_token", "wait_share", "prefetch_accuracy"]}
        rss = max(r for _, r in tests)
        bound = 1 / ((1 - figure["hit_rate"]) * x / bandwidth + t_compute) if t_compute else None
        report["budgets"][budget] = dict(figure, tg=rate, peak_rss=rss, bound=bound)
        print(f"| mixtral | {budget} | {rate:.3f} | {rate / llama_rate:.2f}x | {figure['hit_rate']:.1%} | "
              f"{figure['bytes_read_per_token'] / 1e9:.2f} GB | {figure['wait_share']:.0%} | {figure['prefetch_accuracy']:.1%} | "
              f"{rss / 2**30:.2f} GiB | " + (f"{bound:.3f} | {rate / bound:.0%} |" if bound else "| |"))
    llama_rss = max(r for _, r in llama)
    print(f"| llama.cpp, mmap ({llama_mode}) | page cache | {llama_rate:.3f} | 1.00x | | | | | {llama_rss / 2**30:.2f} GiB | | |")
    if t_compute:
        # With every expert in memory (h = 1) nothing is read: the resident speed is the
        # ceiling of any budget on this machine.
        print(f"\nzero-read ceiling 1 / T_compute = {1 / t_compute:.3f} t/s = {1 / t_compute / llama_rate:.2f}x llama.cpp")
        report["ceiling"] = 1 / t_compute
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump(report, f, indent=1)


if __name__ == "__main__":
    main()
