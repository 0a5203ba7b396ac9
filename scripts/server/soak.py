#!/usr/bin/env python3
"""Mixed load against a `mixtral serve` it starts: streams, non-streamed and chat requests,
clients that leave mid-stream or time out, and malformed requests, from several threads for
--seconds. Checks that every well-formed request completes and every bad one gets its 4xx,
and reports the server's resident memory (VmRSS) after warm-up and at the end.

    python scripts/server/soak.py [--model DIR] [--seconds 600] [--clients 8]

Without --model it makes the tests' tiny random Mixtral. Prints 'N passed, M failed'
(requests that behaved as expected, and those that did not).
"""
import argparse
import os
import random
import sys
import tempfile
import threading
import time

import openai

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)

from test_server import Server, expect, http  # noqa: E402


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def one_action(client, url, name, rng):
    """Runs one random request; raises AssertionError when the server misbehaves."""
    kind = rng.choice(["stream", "complete", "chat", "leave", "timeout", "bad", "tokenize"])
    prompt = " ".join(rng.choice(["red", "green", "blue", "cat", "dog", "sun", "moon"]) for _ in range(rng.randint(1, 40)))
    max_tokens = rng.randint(1, 48)
    if kind == "stream":
        finish = None
        for chunk in client.completions.create(model=name, prompt=prompt, max_tokens=max_tokens, stream=True,
                                               temperature=rng.choice([0, 0.8]), seed=rng.randint(0, 99)):
            for choice in chunk.choices:
                finish = choice.finish_reason or finish
        assert finish in ("stop", "length"), finish
    elif kind == "complete":
        response = client.completions.create(model=name, prompt=prompt, max_tokens=max_tokens, n=rng.randint(1, 3),
                                             stop=rng.choice([None, "e", ["a", "o"]]))
        assert all(c.finish_reason in ("stop", "length") for c in response.choices)
    elif kind == "chat":
        response = client.chat.completions.create(model=name, messages=[{"role": "user", "content": prompt}],
                                                  max_tokens=max_tokens, temperature=0)
        assert response.choices[0].finish_reason in ("stop", "length")
    elif kind == "leave":
        stream = client.completions.create(model=name, prompt=prompt, max_tokens=200, stream=True,
                                           extra_body={"ignore_eos": True})
        for index, _ in enumerate(stream):
            if index == 2:
                break
        stream.close()
    elif kind == "timeout":
        impatient = openai.OpenAI(base_url=url + "/v1", api_key="soak", max_retries=0, timeout=0.05)
        try:
            impatient.completions.create(model=name, prompt=prompt, max_tokens=300, extra_body={"ignore_eos": True})
        except openai.APITimeoutError:
            pass
    elif kind == "bad":
        body = rng.choice([b"{oops", b'{"model": "%s", "prompt": 5}' % name.encode(),
                           b'{"model": "nope", "prompt": "x"}', b'{"model": "%s", "prompt": "x", "n": "2"}' % name.encode()])
        reply = http("POST", url + "/v1/completions", content=body)
        assert reply.status_code in (400, 404) and "error" in reply.json(), (reply.status_code, reply.text)
    else:
        reply = http("POST", url + "/tokenize", json_body={"prompt": prompt})
        assert reply.status_code == 200 and reply.json()["count"] > 0
    return kind


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model")
    parser.add_argument("--mixtral", default=os.path.join(ROOT, ".build/release/mixtral"))
    parser.add_argument("--seconds", type=float, default=600)
    parser.add_argument("--clients", type=int, default=8)
    args = parser.parse_args()
    temporary = tempfile.TemporaryDirectory()
    model = args.model
    if model is None:
        from make_test_model import make
        model = make(os.path.join(temporary.name, "tiny-mixtral"))
    server = Server(args.mixtral, model, "--ctx", "1024", "--max-sequences", "8", "--max-waiting", "64")
    name = os.path.basename(os.path.normpath(model))
    counts, failures, lock = {}, [], threading.Lock()
    try:
        # Warm-up, then the starting memory.
        for _ in range(20):
            one_action(server.client(), server.url, name, random.Random(0))
        start_rss = rss_kib(server.process.pid)
        deadline = time.time() + args.seconds
        samples = [(0.0, start_rss)]

        def worker(seed):
            rng = random.Random(seed)
            client = server.client()
            while time.time() < deadline:
                try:
                    kind = one_action(client, server.url, name, rng)
                    with lock:
                        counts[kind] = counts.get(kind, 0) + 1
                except Exception as error:  # noqa: BLE001 - every failure is reported
                    with lock:
                        failures.append(repr(error))

        threads = [threading.Thread(target=worker, args=(seed,)) for seed in range(args.clients)]
        for thread in threads:
            thread.start()
        began = time.time()
        while any(thread.is_alive() for thread in threads):
            time.sleep(min(10, max(0.1, deadline - time.time())))
            samples.append((time.time() - began, rss_kib(server.process.pid)))
        for thread in threads:
            thread.join()
        health = http("GET", server.url + "/health").json()
        assert health == {"status": "ok"}, health
        end_rss = rss_kib(server.process.pid)
    finally:
        server.stop()
    passed = sum(counts.values())
    print("requests by kind:", dict(sorted(counts.items())))
    print("RSS (MiB) over time:", ", ".join(f"{t:.0f}s {kib / 1024:.1f}" for t, kib in samples))
    print(f"server RSS after warm-up {start_rss / 1024:.1f} MiB, at the end {end_rss / 1024:.1f} MiB; "
          f"exit code {server.process.returncode}")
    for failure in failures[:10]:
        print("failure:", failure)
    print(f"{passed} passed, {len(failures)} failed")
    return 1 if failures or server.process.returncode != 0 else 0


if __name__ == "__main__":
    sys.exit(main())
