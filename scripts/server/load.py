#!/usr/bin/env python3
"""Aggregate generation throughput of `mixtral serve` under 1, 4, 8 and 16 concurrent clients.

    python scripts/server/load.py --model models/bench-mixtral [--mixtral .build/release/mixtral]
    python scripts/server/load.py --url http://127.0.0.1:8080 --model-name NAME

Each client streams completions (greedy, ignore_eos, --max-tokens tokens each) one after
another, --requests times; the aggregate rate is all generated tokens over the wall time of
the level. With --model it starts its own server on a free loopback port (--max-sequences
set to the largest level) and stops it at the end. Prints a Markdown table.
"""
import argparse
import concurrent.futures
import os
import statistics
import sys
import time

import openai

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)

WORDS = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet", "kilo", "lima",
         "mike", "november", "oscar", "papa"]


def one_request(client, model, prompt, max_tokens):
    start = time.perf_counter()
    first, tokens = None, 0
    stream = client.completions.create(model=model, prompt=prompt, max_tokens=max_tokens, temperature=0, stream=True,
                                       stream_options={"include_usage": True}, extra_body={"ignore_eos": True})
    for chunk in stream:
        if first is None and chunk.choices:
            first = time.perf_counter() - start
        if chunk.usage is not None:
            tokens = chunk.usage.completion_tokens
    return tokens, first or 0.0


def level(url, model, clients, requests, max_tokens, prompt_words):
    def client_loop(index):
        client = openai.OpenAI(base_url=url + "/v1", api_key="load", max_retries=0, timeout=3600)
        results = []
        for r in range(requests):
            words = [WORDS[(index + r + i) % len(WORDS)] for i in range(prompt_words)]
            results.append(one_request(client, model, " ".join(words), max_tokens))
        return results

    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        results = [item for items in pool.map(client_loop, range(clients)) for item in items]
    elapsed = time.perf_counter() - start
    tokens = sum(t for t, _ in results)
    return tokens, elapsed, statistics.median(f for _, f in results)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="model folder: start a server for it")
    parser.add_argument("--url", help="an already running server instead")
    parser.add_argument("--model-name", help="model name for --url (default: the server's first model)")
    parser.add_argument("--mixtral", default=os.path.join(ROOT, ".build/release/mixtral"))
    parser.add_argument("--clients", default="1,4,8,16")
    parser.add_argument("--requests", type=int, default=2, help="requests per client at each level")
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--prompt-words", type=int, default=16)
    parser.add_argument("--server-arg", action="append", default=[], help="extra argument for mixtral serve (repeatable)")
    args = parser.parse_args()
    levels = [int(c) for c in args.clients.split(",")]
    if (args.model is None) == (args.url is None):
        parser.error("give exactly one of --model or --url")

    server = None
    if args.model:
        from test_server import Server
        server = Server(args.mixtral, args.model, "--max-sequences", str(max(levels)), *args.server_arg)
        url = server.url
    else:
        url = args.url.rstrip("/")
    try:
        model = args.model_name or openai.OpenAI(base_url=url + "/v1", api_key="load").models.list().data[0].id
        level(url, model, 1, 1, 8, args.prompt_words)  # warm-up
        rows = []
        for clients in levels:
            tokens, elapsed, ttft = level(url, model, clients, args.requests, args.max_tokens, args.prompt_words)
            rows.append((clients, tokens, elapsed, tokens / elapsed, ttft))
            print(f"{clients} clients: {tokens} tokens in {elapsed:.2f} s = {tokens / elapsed:.1f} tokens/s", file=sys.stderr)
    finally:
        if server:
            server.stop()
    base = rows[0][3]
    print(f"model {model}, {args.max_tokens} tokens per request, {args.requests} requests per client")
    print("| clients | generated tokens | seconds | tokens/s | vs first level | median time to first token (s) |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: |")
    for clients, tokens, elapsed, rate, ttft in rows:
        print(f"| {clients} | {tokens} | {elapsed:.2f} | {rate:.1f} | {rate / base:.2f}x | {ttft:.3f} |")


if __name__ == "__main__":
    main()
