"""Hostile traffic against a running `mixtral serve` (issue 14): mutated JSON bodies,
request smuggling and malformed HTTP framing, slow-loris sockets and streams dropped
mid-answer, in rounds. Every request must get a 4xx (or a 200 where the mutant is still a
valid request), never a 5xx or a hang; the server must stay healthy and correct, and its
RSS flat from round to round.

Used by test_server.py; raw sockets, so nothing is normalised by a client library.
"""
import json
import random
import re
import socket
import struct
import time

STATUS = re.compile(rb"^HTTP/1\.[01] (\d{3})", re.MULTILINE)


def exchange(port, data, timeout=15):
    """Sends raw bytes, half-closes, and returns every response status the server wrote
    before closing. Raises on a hang (no close within `timeout`)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        try:
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server refused early (e.g. an oversized head) and closed
        received = b""
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            received += chunk
        else:
            raise AssertionError(f"no close within {timeout} s after {data[:80]!r}")
    return [int(code) for code in STATUS.findall(received)]


def post(path, body, extra_headers=b""):
    return (b"POST " + path + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\n"
            + extra_headers + b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)


def mutants(rng, model, count):
    """Request bodies derived from two valid ones: byte flips, cuts, duplicated keys,
    values of the wrong type or out of range, deep nesting, stray bytes."""
    bases = [
        ("/v1/completions", {"model": model, "prompt": "Hello world", "max_tokens": 2, "temperature": 0}),
        ("/v1/chat/completions", {"model": model, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2}),
    ]
    odd_values = [None, -1, 0, 2**64, -2**63, 1e309, "x", "", [], {}, [[]], True, "\u0000", "\ud800" * 3,
                  [1] * 1000, {"a": {"b": {"c": None}}}, 0.5, "9" * 400]
    for i in range(count):
        path, base = bases[i % 2]
        kind = rng.randrange(6)
        body = json.dumps(base).encode()
        if kind == 0:  # flip bytes
            mutable = bytearray(body)
            for _ in range(rng.randint(1, 4)):
                mutable[rng.randrange(len(mutable))] = rng.randrange(256)
            body = bytes(mutable)
        elif kind == 1:  # cut
            body = body[:rng.randrange(len(body))]
        elif kind == 2:  # a field of the wrong type or out of range (max_tokens stays small)
            obj = json.loads(body)
            key = rng.choice([k for k in obj if k != "max_tokens"] + ["n", "stop", "seed", "top_p", "logprobs",
                                                                         "stream", "top_k", "user", "echo"])
            obj[key] = rng.choice(odd_values)
            body = json.dumps(obj).encode()
        elif kind == 3:  # duplicated keys: the last one wins in most parsers
            body = body[:-1] + b', "max_tokens": 2, "model": ' + json.dumps(model).encode() + b"}"
        elif kind == 4:  # deep nesting
            depth = rng.choice([100, 10_000, 100_000])
            body = body[:-1] + b', "prompt": ' + b"[" * depth + b"]" * depth + b"}"
        else:  # stray bytes and encodings
            body = rng.choice([b"\xff\xfe" + body, body + b"\x00", b"\xef\xbb\xbf" + body, body.replace(b'"', b"'"),
                               body + b"}" * 10, b" " * 10000 + body])
        yield path, body


def framing_cases(model):
    """Malformed or ambiguous HTTP framing, including the classic smuggling shapes."""
    body = json.dumps({"model": model, "prompt": "x", "max_tokens": 1}).encode()
    head = b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    smuggled = b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"
    return [
        ("CL and TE together", head + b"Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled),
        ("two Content-Lengths", head + b"Content-Length: 4\r\nContent-Length: %d\r\n\r\n" % len(body) + body),
        ("negative Content-Length", head + b"Content-Length: -1\r\n\r\n" + body),
        ("huge Content-Length", head + b"Content-Length: 99999999999999999999999\r\n\r\n" + body),
        ("Content-Length longer than the body", head + b"Content-Length: 1000\r\n\r\n" + body),
        ("bad chunk size", head + b"Transfer-Encoding: chunked\r\n\r\nzz\r\n" + body + b"\r\n0\r\n\r\n"),
        ("huge chunk size", head + b"Transfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\n" + body + b"\r\n0\r\n\r\n"),
        ("TE with an obfuscated value", head + b"Transfer-Encoding: xchunked\r\nContent-Length: %d\r\n\r\n" % len(body) + body),
        ("a 200 KB header", head + b"X-Big: " + b"a" * 200_000 + b"\r\nContent-Length: 0\r\n\r\n"),
        ("2000 headers", head + b"".join(b"X-%d: y\r\n" % i for i in range(2000)) + b"Content-Length: 0\r\n\r\n"),
        ("a 100 KB path", b"GET /" + b"a" * 100_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n"),
        ("an unknown method", b"BREW /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"),
        ("HTTP/0.9", b"GET /health\r\n\r\n"),
        ("HTTP/2 preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"),
        ("NUL in a header", head + b"X-A: a\x00b\r\nContent-Length: %d\r\n\r\n" % len(body) + body),
        ("bare LF line ends", body.join([b"POST /v1/completions HTTP/1.1\nHost: x\nContent-Length: %d\n\n" % len(body), b""])),
        ("a pipelined smuggled request", head + b"Content-Length: %d\r\n\r\n" % len(body) + body + smuggled),
        ("binary garbage", bytes(random.Random(7).randrange(256) for _ in range(4096))),
    ]


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def run_hostile_tests(suite, server, still_correct, metric, rounds=3, mutants_per_round=300):
    """Registers one test per kind of traffic and the RSS check across rounds."""
    port, model = server.port, suite.model_name
    rng = random.Random(0)
    rss = []

    def mutated_bodies():
        seen = {}
        for path, body in mutants(rng, model, mutants_per_round):
            for code in exchange(port, post(path.encode(), body)) or [0]:
                seen[code] = seen.get(code, 0) + 1
                assert code in (200, 400, 404, 413), f"{code} for {path} {body[:200]!r}"
        assert seen.get(400, 0) > mutants_per_round // 3, seen

    def framing():
        for name, data in framing_cases(model):
            codes = exchange(port, data)
            assert all(code < 500 for code in codes), f"{name}: {codes}"
        still_correct()

    def slow_loris():
        sockets = []
        try:
            for _ in range(150):
                s = socket.create_connection(("127.0.0.1", port), timeout=5)
                s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n")
                sockets.append(s)
            started = time.time()
            still_correct()
            assert time.time() - started < 30, "the server slowed down behind the slow-loris sockets"
        finally:
            for s in sockets:
                s.close()

    def dropped_streams():
        body = json.dumps({"model": model, "prompt": "Hello world", "max_tokens": 300, "stream": True,
                           "ignore_eos": True}).encode()
        for _ in range(20):
            with socket.create_connection(("127.0.0.1", port), timeout=15) as s:
                s.sendall(post(b"/v1/completions", body))
                assert s.recv(4096).startswith(b"HTTP/1.1 200"), "no stream started"
                # Reset, not a clean close: the client vanished.
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        deadline = time.time() + 20
        while time.time() < deadline and metric(server, "mixtral_active_sequences") != 0:
            time.sleep(0.1)
        assert metric(server, "mixtral_active_sequences") == 0

    def one_round():
        mutated_bodies()
        framing()
        slow_loris()
        dropped_streams()
        still_correct()
        # Every serving process (the ranks, when split), added up.
        rss.append(sum(rss_kib(pid) for pid in server.pids()))

    for i in range(rounds):
        suite.run(f"hostile traffic, round {i + 1} ({mutants_per_round} mutated bodies, "
                  f"{len(framing_cases(model))} framings, 150 slow-loris sockets, 20 dropped streams)", one_round)

    def rss_flat():
        # The first round warms allocator pools; later rounds must not grow.
        assert len(rss) == rounds, rss
        growth = rss[-1] - rss[1]
        print(f"     RSS after each round: {', '.join(f'{r // 1024} MiB' for r in rss)}")
        assert growth < 16 * 1024, f"RSS grew {growth // 1024} MiB from round 2 to round {rounds}"

    suite.run("hostile traffic: RSS flat across rounds", rss_flat)
