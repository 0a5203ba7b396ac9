#!/usr/bin/env python3
"""Mixtral-8x22B on N machines with tensor parallelism, projected from measurements on one:
the decode time of a few layers of its geometry (`mixtral bench` on a file from
make_geometry_gguf.py) and the all-reduce time between two ranks (`mixtral bench
--collectives`).

    python3 scripts/bench/tp_projection.py --file models/mixtral-8x22b-geometry-8l-q4_0.gguf \
        --bench single.json --collectives shm.json [--collectives tcp.json] [--layers 56] [--ranks 1 2 4 8]

--bench: `mixtral bench --json -p 0 -n 8` of that file in one process (its tg median and
weight bytes per token). --collectives: `mpiexec -n 2 mixtral bench --collectives --json`
(one per transport; the 1-token all-reduce of the file's hidden size is taken, 4096 or
6144 floats).

The model, per generated token, on N machines like this one:
  time = L * (T_layer / N + 2 * A(N)) + T_head / N + A(N)      (the last: the embedding row)
  T_layer, T_head: the measured token time split by the bytes each part reads (decode
      reads every weight it uses once, so time follows bytes);
  A(N) = (N - 1) * A(2): the all-reduce gathers every rank's partial sums at every rank,
      (N - 1) shares per rank, taken as N - 1 times the 2-rank time (no overlap assumed);
  memory per machine = split weights / N + replicated weights (norms, routers).
Machines are assumed alike and the network to cost what the measured transport costs.
"""
import argparse
import json

from gguf import GGUFReader


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--file", required=True)
    parser.add_argument("--bench", required=True)
    parser.add_argument("--collectives", action="append", required=True)
    parser.add_argument("--layers", type=int, default=56)
    parser.add_argument("--ranks", type=int, nargs="+", default=[1, 2, 4, 8])
    args = parser.parse_args()

    reader = GGUFReader(args.file)
    sizes = {t.name: int(t.n_bytes) for t in reader.tensors}
    file_layers = 1 + max(int(name.split(".")[1]) for name in sizes if name.startswith("blk."))
    hidden = int(reader.fields["llama.embedding_length"].parts[-1][0])
    experts_used = int(reader.fields["llama.expert_used_count"].parts[-1][0])
    experts = int(reader.fields["llama.expert_count"].parts[-1][0])
    replicated_names = ("norm", "ffn_gate_inp")  # norms and routers stay whole on every rank
    per_layer_all = sum(b for n, b in sizes.items() if n.startswith("blk.")) / file_layers
    per_layer_replicated = sum(b for n, b in sizes.items() if n.startswith("blk.") and any(r in n for r in replicated_names)) / file_layers
    head = sizes["output.weight"]
    embedding = sizes["token_embd.weight"]
    # Bytes one decode step reads per layer: attention, router, k of the experts.
    per_layer_read = sum(b * (experts_used / experts if "_exps" in n else 1) for n, b in sizes.items()
                         if n.startswith("blk.0.")) if any(n.startswith("blk.0.") for n in sizes) else 0

    bench = json.load(open(args.bench))
    tg = next(t for t in bench["tests"] if t["test"].startswith("tg"))
    token_seconds = 1 / tg["median_tokens_per_second"]
    read_per_token = bench["weight_bytes_per_token"]
    head_seconds = token_seconds * head / read_per_token
    layer_seconds = (token_seconds - head_seconds) / file_layers

    transports = []
    for path in args.collectives:
        data = json.load(open(path))
        one = next(r for r in data["all_reduce"] if r["tokens"] == 1 and r["floats_per_token"] == hidden)
        transports.append((path, one["median_seconds"]))

    print(f"measured on {args.file} ({file_layers} layers): {token_seconds * 1e3:.1f} ms per token in one process, "
          f"{read_per_token / 1e9:.2f} GB read; per layer {layer_seconds * 1e3:.2f} ms ({per_layer_read / 1e6:.0f} MB read), "
          f"lm_head {head_seconds * 1e3:.2f} ms ({head / 1e6:.0f} MB)")
    for path, seconds in transports:
        print(f"all-reduce of {hidden} floats between 2 ranks ({path}): {seconds * 1e6:.1f} us")
    total = args.layers * per_layer_all + head + embedding
    replicated = args.layers * per_layer_replicated
    print(f"{args.layers} layers: {total / 1e9:.1f} GB of weights, {replicated / 1e6:.1f} MB of them replicated")
    header = " | ".join(f"t/s ({path.rsplit('/', 1)[-1]})" for path, _ in transports)
    print(f"| machines | weights per machine | {header} |")
    print("| ---: | ---: |" + " ---: |" * len(transports))
    for n in args.ranks:
        memory = (total - replicated) / n + replicated
        cells = []
        for _, pair in transports:
            exchange = 0.0 if n == 1 else (n - 1) * pair
            seconds = args.layers * (layer_seconds / n + 2 * exchange) + head_seconds / n + exchange
            cells.append(f"{1 / seconds:.2f}")
        print(f"| {n} | {memory / 1e9:.1f} GB | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
