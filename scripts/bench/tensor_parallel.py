#!/usr/bin/env python3
"""One machine, two ways to use its cores: `mixtral bench` as one process with T threads
against `mpiexec -n N mixtral bench` with T/N threads per rank (tensor parallelism, issue
17), taking turns (the order reversed every other round), same model, same tests.

    python3 scripts/bench/tensor_parallel.py --model models/bench-q4_0.gguf \
        [--mixtral .build-mpi/release/mixtral] [--ranks 2] [--threads 2] [--rounds 4] [-r 3] \
        [-p 512] [-n 128] [--transport shm|tcp]

--mixtral must be built with `--traits MPI`. --transport tcp makes MPICH's UCX use TCP over
loopback instead of shared memory (UCX_TLS=tcp,self). Prints, per test, the median over
rounds of each round's median tokens/s (± sd of the round medians) and the median of the
within-round ratios; each rank's peak RSS against the single process's; and what the ranks
exchanged per token.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run(command, env):
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    if result.returncode != 0:
        sys.exit(f"failed: {' '.join(command)}\n{result.stderr[-2000:]}")
    return json.loads(result.stdout)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True)
    parser.add_argument("--mixtral", default=os.path.join(ROOT, ".build-mpi/release/mixtral"))
    parser.add_argument("--ranks", type=int, default=2)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("-r", type=int, default=3)
    parser.add_argument("-p", type=int, default=512)
    parser.add_argument("-n", type=int, default=128)
    parser.add_argument("--transport", choices=["shm", "tcp"], default="shm")
    args = parser.parse_args()

    env = dict(os.environ)
    if args.transport == "tcp":
        env["UCX_TLS"] = "tcp,self"
    bench = [args.mixtral, "bench", "--model", args.model, "-p", str(args.p), "-n", str(args.n), "-r", str(args.r), "--json"]
    variants = {
        f"1 process x {args.threads} threads": bench + ["--threads", str(args.threads)],
        f"{args.ranks} ranks x {args.threads // args.ranks} threads":
            ["mpiexec", "-n", str(args.ranks)] + bench + ["--threads", str(max(1, args.threads // args.ranks))],
    }
    names = list(variants)
    speeds = {name: {} for name in names}   # name -> test -> [round medians]
    rss = {name: [] for name in names}      # name -> [largest peak RSS of a process]
    communication = {}                      # test -> [per-token figures of the split runs]
    for round_index in range(args.rounds):
        order = names if round_index % 2 == 0 else names[::-1]
        for name in order:
            result = run(variants[name], env)
            rss[name].append(max(result.get("peak_rss_bytes_per_rank") or [result["peak_rss_bytes"]]))
            for test in result["tests"]:
                speeds[name].setdefault(test["test"], []).append(test["median_tokens_per_second"])
                if "communication" in test:
                    communication.setdefault(test["test"], []).append(test["communication"])
        print(f"round {round_index + 1}/{args.rounds} done", file=sys.stderr, flush=True)

    single, split = names
    print(f"model {args.model}, {args.rounds} rounds of -r {args.r}, transport {args.transport}")
    print(f"| test | {single} t/s | {split} t/s | ratio |")
    print("| --- | ---: | ---: | ---: |")
    for test in speeds[single]:
        a, b = speeds[single][test], speeds[split][test]
        ratio = statistics.median(y / x for x, y in zip(a, b))
        sd = lambda values: statistics.stdev(values) if len(values) > 1 else 0.0
        print(f"| {test} | {statistics.median(a):.1f} ± {sd(a):.1f} | {statistics.median(b):.1f} ± {sd(b):.1f} | {ratio:.2f}x |")
    single_rss, split_rss = statistics.median(rss[single]), statistics.median(rss[split])
    print(f"peak RSS: one process {single_rss / 2**20:.1f} MiB; largest rank {split_rss / 2**20:.1f} MiB ({split_rss / single_rss:.2f}x)")
    for test, figures in communication.items():
        per_token = statistics.median(f["seconds_per_token"] for f in figures)
        share = statistics.median(f["share"] for f in figures)
        print(f"{test}: {figures[0]['exchanges_per_token']:.2f} exchanges (all-gathers, all-reduces) and {figures[0]['bytes_sent_per_token'] / 1e3:.1f} KB "
              f"sent per rank per token, {per_token * 1e3:.3f} ms communicating per token ({share * 100:.0f}% of the time)")


if __name__ == "__main__":
    main()
