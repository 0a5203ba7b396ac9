#!/usr/bin/env python3
"""Mixtral-8x22B on N machines with tensor parallelism, projected from measurements on one:
the decode time of a few layers of its geometry (`mixtral bench` on a file from
make_geometry_gguf.py) and the exchanges between two ranks (`mixtral bench --collectives`).

    python3 scripts/bench/tp_projection.py --file models/mixtral-8x22b-geometry-8l-q4_0.gguf \
        --bench single.json --collectives shm.json [--collectives tcp.json] [--layers 56] [--ranks 1 2 4 8]

--bench: `mixtral bench --json -p 0 -n 8` of that file in one process (its tg median and
weight bytes per token). --collectives: `mpiexec -n 2 mixtral bench --collectives --json`,
one per transport.

The model, per generated token, on N machines like this one:
  time = L * (T_layer / N + 3 G(H) + G(k I)) + T_head / N + R(H) + G(V)
  T_layer, T_head: the measured token time split by the bytes each part reads (decode
      reads every weight it uses once, so time follows bytes);
  G(v): an all-gather of v floats, each of the N ranks sending v/N: per layer the attention
      output, o_proj's and the experts' outputs (H floats each) and the k experts'
      activations (k x I); the logits (V) once. A ring all-gather takes N - 1 steps of
      alpha + (4 v / N) / beta; alpha and beta are fitted to the 2-rank one-token times of
      H and k x I floats (the 8x22B cases of --collectives);
  R(H): the embedding row's all-reduce, taken as G(N H);
  memory per machine = split weights / N + replicated weights (norms, routers).
Machines are assumed alike and the network to cost what the measured transport costs.
"""
import argparse
import json

from gguf import GGUFReader


def field(reader, name):
    return int(reader.fields[name].parts[-1][0])


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
    hidden = field(reader, "llama.embedding_length")
    intermediate = field(reader, "llama.expert_feed_forward_length") if "llama.expert_feed_forward_length" in reader.fields \
        else field(reader, "llama.feed_forward_length")
    used = field(reader, "llama.expert_used_count")
    vocabulary = next(t.shape for t in reader.tensors if t.name == "output.weight")[-1]
    replicated_names = ("norm", "ffn_gate_inp")  # norms and routers stay whole on every rank
    per_layer_all = sum(b for n, b in sizes.items() if n.startswith("blk.")) / file_layers
    per_layer_replicated = sum(b for n, b in sizes.items() if n.startswith("blk.") and any(r in n for r in replicated_names)) / file_layers
    head, embedding = sizes["output.weight"], sizes["token_embd.weight"]

    bench = json.load(open(args.bench))
    tg = next(t for t in bench["tests"] if t["test"].startswith("tg"))
    token_seconds = 1 / tg["median_tokens_per_second"]
    head_seconds = token_seconds * head / bench["weight_bytes_per_token"]
    layer_seconds = (token_seconds - head_seconds) / file_layers

    activations = used * intermediate
    transports = []
    for path in args.collectives:
        data = json.load(open(path))
        measured = {(e["exchange"], e["tokens"], e["floats_per_token"]): e["median_seconds"] for e in data["exchanges"]}
        small, large = measured[("all-gather", 1, hidden)], measured[("all-gather", 1, activations)]
        # 2 ranks: one step of alpha + (4 v / 2) / beta.
        per_byte = max(0.0, (large - small) / (2 * (activations - hidden)))
        alpha = max(0.0, small - 2 * hidden * per_byte)
        transports.append((path, small, large, alpha, per_byte))

    def gather(floats, n, alpha, per_byte):
        return 0.0 if n == 1 else (n - 1) * (alpha + 4 * floats / n * per_byte)

    print(f"measured on {args.file} ({file_layers} layers): {token_seconds * 1e3:.1f} ms per token in one process; "
          f"per layer {layer_seconds * 1e3:.2f} ms, lm_head {head_seconds * 1e3:.2f} ms")
    for path, small, large, alpha, per_byte in transports:
        print(f"{path}: all-gather of {hidden} floats {small * 1e6:.1f} us, of {activations} floats {large * 1e6:.1f} us "
              f"between 2 ranks; fitted alpha {alpha * 1e6:.1f} us, {1 / per_byte / 1e9 if per_byte else float('inf'):.2f} GB/s")
    total = args.layers * per_layer_all + head + embedding
    replicated = args.layers * per_layer_replicated
    print(f"{args.layers} layers: {total / 1e9:.1f} GB of weights, {replicated / 1e6:.1f} MB of them replicated")
    header = " | ".join(f"t/s ({path.rsplit('/', 1)[-1]}) | exchanges" for path, *_ in transports)
    print(f"| machines | weights per machine | {header} |")
    print("| ---: | ---: |" + " ---: | ---: |" * len(transports))
    for n in args.ranks:
        memory = (total - replicated) / n + replicated
        cells = []
        for _, _, _, alpha, per_byte in transports:
            exchanges = args.layers * (3 * gather(hidden, n, alpha, per_byte) + gather(activations, n, alpha, per_byte)) \
                + gather(n * hidden, n, alpha, per_byte) + gather(vocabulary, n, alpha, per_byte)
            seconds = args.layers * layer_seconds / n + head_seconds / n + exchanges
            cells.append(f"{1 / seconds:.2f} | {exchanges * 1e3:.1f} ms")
        print(f"| {n} | {memory / 1e9:.1f} GB | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
