#!/usr/bin/env python3
"""Tests `mixtral serve` as a client would: starts a real server process on a free loopback
port and drives it with the official `openai` package (plus urllib for malformed requests).

    python scripts/server/test_server.py [--mixtral .build/release/mixtral] [--model DIR]

Without --model it makes a tiny random Mixtral with transformers (make_test_model.py).
Greedy outputs are compared with `mixtral generate --json` on the same prompt, token for
token. Prints one line per test and 'N passed, M failed'; exits non-zero on a failure.
"""
import argparse
import concurrent.futures
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback

import urllib.error
import urllib.request

import openai

from hostile import exchange, run_hostile_tests

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))

PROMPTS = [
    "Hello world", "The capital of France is", "Once upon a time", "def fibonacci(n):",
    "1, 2, 3, 4,", "The quick brown fox", "In the beginning", "Swift is a language",
    "Mixture of experts", "Dear Sir or Madam", "import numpy as np", "The weather today",
    "A B C D E", "Let me tell you", "Zürich liegt am", "日本語のテキスト",
]


class Server:
    """A `mixtral serve` process; its log is collected from standard error."""

    # Under --ranks N every server runs split over N MPI ranks (`mpiexec -n N`).
    launcher = []

    def __init__(self, mixtral, model, *extra):
        self.process = subprocess.Popen([*Server.launcher, mixtral, "serve", "--model", model, "--host", "127.0.0.1", "--port", "0", *extra],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.lines = []
        ready = threading.Event()
        self.port = None

        def read():
            for line in self.process.stderr:
                self.lines.append(line)
                found = re.search(r"listening on http://[0-9.]+:(\d+)", line)
                if found:
                    self.port = int(found.group(1))
                    ready.set()
            ready.set()

        threading.Thread(target=read, daemon=True).start()
        if not ready.wait(60) or self.port is None:
            self.stop()
            raise RuntimeError("server did not start:\n" + "".join(self.lines))
        self.url = f"http://127.0.0.1:{self.port}"

    def pids(self):
        """The processes that serve: this one, or under --ranks the mixtral ranks that
        mpiexec started below it (its own RSS says nothing of theirs)."""
        if not Server.launcher:
            return [self.process.pid]
        children = {}
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    with open(f"/proc/{entry}/stat") as f:
                        parent = int(f.read().rsplit(")", 1)[1].split()[1])
                except (OSError, ValueError, IndexError):
                    continue
                children.setdefault(parent, []).append(int(entry))
        found, stack = [], [self.process.pid]
        while stack:
            for child in children.get(stack.pop(), []):
                stack.append(child)
                try:
                    with open(f"/proc/{child}/comm") as f:
                        if f.read().strip() == "mixtral":
                            found.append(child)
                except OSError:
                    pass
        assert found, "no mixtral ranks below mpiexec"
        return found

    def client(self, api_key="unused", timeout=120):
        return openai.OpenAI(base_url=self.url + "/v1", api_key=api_key, max_retries=0, timeout=timeout)

    def stop(self):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def cli_generate(mixtral, model, max_tokens, prompt=None, ids=None, extra=()):
    command = [mixtral, "generate", "--model", model, "--max-new-tokens", str(max_tokens), "--json", *extra]
    command += ["--ids", ",".join(map(str, ids))] if ids is not None else ["--prompt", prompt]
    if not extra:
        command.append("--greedy")
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(result.stdout)


class Reply:
    """A plain HTTP response: status code and body."""

    def __init__(self, status_code, text):
        self.status_code, self.text = status_code, text

    def json(self):
        return json.loads(self.text)


def http(method, url, content=None, json_body=None, headers=None):
    """One request with the standard library (for malformed bodies and non-OpenAI routes)."""
    if json_body is not None:
        content = json.dumps(json_body).encode()
    request = urllib.request.Request(url, data=content, method=method,
                                     headers=headers or {"content-type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return Reply(response.status, response.read().decode())
    except urllib.error.HTTPError as error:
        return Reply(error.code, error.read().decode())


def extra(obj, name):
    return (obj.model_extra or {}).get(name)


class Suite:
    def __init__(self, mixtral, model):
        self.mixtral, self.model = mixtral, model
        self.model_name = os.path.basename(os.path.normpath(model))
        self.passed, self.failed = 0, 0
        self.references = {}

    def run(self, name, test):
        try:
            test()
            self.passed += 1
            print(f"PASS {name}", flush=True)
        except Exception:
            self.failed += 1
            print(f"FAIL {name}\n" + traceback.format_exc(), flush=True)

    def reference(self, prompt, max_tokens):
        key = (prompt, max_tokens)
        if key not in self.references:
            self.references[key] = cli_generate(self.mixtral, self.model, max_tokens, prompt=prompt)
        return self.references[key]

    def check_completion(self, prompt, max_tokens, text, token_ids, finish_reason):
        ref = self.reference(prompt, max_tokens)
        assert token_ids == ref["generated_ids"], f"{prompt!r}: ids {token_ids} != CLI {ref['generated_ids']}"
        assert ref["text"] == prompt + text, f"{prompt!r}: CLI text {ref['text']!r} != prompt + {text!r}"
        expected = "length" if ref["stop_reason"] in ("length", "context_full") else "stop"
        assert finish_reason == expected, f"finish_reason {finish_reason} != {expected}"


def stream_completion(client, model, prompt, max_tokens, **kwargs):
    text, ids, finish, usage = "", [], None, None
    stream = client.completions.create(model=model, prompt=prompt, max_tokens=max_tokens, temperature=0, stream=True,
                                       stream_options={"include_usage": True}, extra_body={"return_token_ids": True},
                                       **kwargs)
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            text += choice.text
            ids += extra(choice, "token_ids") or []
            finish = choice.finish_reason or finish
    return text, ids, finish, usage


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mixtral", default=os.path.join(ROOT, ".build/release/mixtral"))
    parser.add_argument("--model", help="model folder (default: a tiny random Mixtral made now)")
    parser.add_argument("--ranks", type=int, default=1,
                        help="run the servers under `mpiexec -n RANKS` (a --traits MPI build); answers are still compared with one process")
    args = parser.parse_args()
    if args.ranks > 1:
        Server.launcher = ["mpiexec", "-n", str(args.ranks)]
    temporary = tempfile.TemporaryDirectory()
    model = args.model
    if model is None:
        sys.path.insert(0, HERE)
        from make_test_model import make
        model = make(os.path.join(temporary.name, "tiny-mixtral"))
    suite = Suite(args.mixtral, model)
    server = Server(args.mixtral, model, "--ctx", "512", "--max-sequences", "16", "--max-body-bytes", "1000000",
                    "--batch-tokens", "128")
    try:
        run_main_tests(suite, server)
        run_hostile_tests(suite, server, lambda: still_correct(suite, server), metric)
    finally:
        server.stop()
    suite.run("SIGTERM: exit code 0", lambda: check_exit(server))
    run_limit_tests(suite, model)
    run_timeout_tests(suite, model)
    run_streaming_tests(suite, model)
    print(f"{suite.passed} passed, {suite.failed} failed")
    return 1 if suite.failed else 0


def still_correct(suite, server):
    """The server is healthy and its greedy answer is still the CLI's."""
    assert http("GET", server.url + "/health").json() == {"status": "ok"}
    response = server.client().completions.create(model=suite.model_name, prompt="Hello world", max_tokens=24,
                                                  temperature=0, extra_body={"return_token_ids": True})
    choice = response.choices[0]
    suite.check_completion("Hello world", 24, choice.text, extra(choice, "token_ids"), choice.finish_reason)


def check_exit(server):
    assert server.process.returncode == 0, f"exit code {server.process.returncode}:\n" + "".join(server.lines[-20:])


def run_main_tests(suite, server):
    client = server.client()
    name = suite.model_name

    def models():
        ids = [m.id for m in client.models.list().data]
        assert ids == [name], ids

    def completion_matches_cli():
        for prompt, max_tokens in [("Hello world", 24), ("Once upon a time", 40)]:
            response = client.completions.create(model=name, prompt=prompt, max_tokens=max_tokens, temperature=0,
                                                 extra_body={"return_token_ids": True})
            choice = response.choices[0]
            suite.check_completion(prompt, max_tokens, choice.text, extra(choice, "token_ids"), choice.finish_reason)
            ref = suite.reference(prompt, max_tokens)
            assert extra(choice, "prompt_token_ids") == ref["prompt_ids"]
            assert response.usage.prompt_tokens == len(ref["prompt_ids"])
            assert response.usage.completion_tokens == len(ref["generated_ids"])

    def stream_matches_cli():
        for prompt, max_tokens in [("Hello world", 24), ("The quick brown fox", 33)]:
            text, ids, finish, usage = stream_completion(client, name, prompt, max_tokens)
            suite.check_completion(prompt, max_tokens, text, ids, finish)
            assert usage is not None and usage.completion_tokens == len(ids), usage

    def chat_matches_cli():
        messages = [{"role": "user", "content": "What is a mixture of experts?"}]
        response = client.chat.completions.create(model=name, messages=messages, max_tokens=20, temperature=0,
                                                  extra_body={"return_token_ids": True})
        choice = response.choices[0]
        prompt_ids = extra(choice, "prompt_token_ids")
        if os.path.exists(os.path.join(suite.model, "tokenizer.model")):
            # A bare Mistral tokenizer: the prompt is mistral-common's instruct encoding.
            assert prompt_ids == mistral_common_chat_ids(suite.model, messages[0]["content"]), prompt_ids
        ref = cli_generate(suite.mixtral, suite.model, 20, ids=prompt_ids)
        assert extra(choice, "token_ids") == ref["generated_ids"], (extra(choice, "token_ids"), ref["generated_ids"])
        assert choice.message.role == "assistant"
        streamed, role = "", None
        for chunk in client.chat.completions.create(model=name, messages=messages, max_tokens=20, temperature=0,
                                                    stream=True):
            for delta in chunk.choices:
                role = delta.delta.role or role
                streamed += delta.delta.content or ""
        assert role == "assistant"
        assert streamed == choice.message.content, (streamed, choice.message.content)

    def concurrent_streams():
        jobs = [(prompt, 20 + 3 * i) for i, prompt in enumerate(PROMPTS)]
        for prompt, max_tokens in jobs:
            suite.reference(prompt, max_tokens)
        # Clients made first and released together, so that the requests arrive at once.
        clients = [server.client() for _ in jobs]
        together = threading.Barrier(len(jobs))

        def run(index):
            together.wait()
            return stream_completion(clients[index], name, *jobs[index])

        start = time.time()
        with concurrent.futures.ThreadPoolExecutor(len(jobs)) as pool:
            results = list(pool.map(run, range(len(jobs))))
        elapsed = time.time() - start
        for (prompt, max_tokens), (text, ids, finish, usage) in zip(jobs, results):
            suite.check_completion(prompt, max_tokens, text, ids, finish)
        total = sum(len(r[1]) for r in results)
        print(f"  16 concurrent streams: {total} tokens in {elapsed:.2f} s", flush=True)
        # They ran together: some forward steps held more than 8 sequences.
        large = metric(server, "mixtral_batch_sequences_count") - metric(server, 'mixtral_batch_sequences_bucket{le="8.0"}')
        assert large > 0, "no step ran more than 8 sequences"

    def long_prompt_in_chunks_beside_streams():
        # 300+ prompt tokens exceed --batch-tokens 128: the prompt is prefilled in chunks
        # while other streams decode, and its greedy tokens still equal the CLI's.
        long_prompt = "The history of " + "many long and winding roads " * 50
        jobs = [(long_prompt, 20)] + [(prompt, 30) for prompt in PROMPTS[:4]]
        for prompt, max_tokens in jobs:
            suite.reference(prompt, max_tokens)
        with concurrent.futures.ThreadPoolExecutor(len(jobs)) as pool:
            streams = [pool.submit(stream_completion, server.client(), name, prompt, max_tokens)
                       for prompt, max_tokens in jobs[1:]]
            time.sleep(0.05)
            results = [pool.submit(stream_completion, server.client(), name, *jobs[0]).result()]
            results = [results[0]] + [stream.result() for stream in streams]
        for (prompt, max_tokens), (text, ids, finish, _) in zip(jobs, results):
            suite.check_completion(prompt, max_tokens, text, ids, finish)
        assert len(suite.reference(long_prompt, 20)["prompt_ids"]) > 128, "the prompt must exceed --batch-tokens"

    def prefix_reuse():
        # Two chats with one long system prompt: the second starts from the first's cache.
        system = "You are a careful assistant. " * 20
        before = metric(server, "mixtral_prefix_reused_tokens_total")
        for question in ["Name a colour.", "Name a planet."]:
            # mistral-common's v1 format puts the system prompt before the first user message.
            response = client.chat.completions.create(model=name, max_tokens=12, temperature=0,
                                                      messages=[{"role": "system", "content": system},
                                                                {"role": "user", "content": question}],
                                                      extra_body={"return_token_ids": True})
            choice = response.choices[0]
            ref = cli_generate(suite.mixtral, suite.model, 12, ids=extra(choice, "prompt_token_ids"))
            assert extra(choice, "token_ids") == ref["generated_ids"]
        reused = metric(server, "mixtral_prefix_reused_tokens_total") - before
        assert reused >= 100, f"only {reused} prompt tokens reused"

    def stop_strings():
        ref = suite.reference("Once upon a time", 40)
        completion = ref["text"][len("Once upon a time"):]
        stop = completion[12:16]
        response = client.completions.create(model=name, prompt="Once upon a time", max_tokens=40, temperature=0,
                                             stop=[stop, "never-appears"])
        expected = completion[:completion.find(stop)]
        assert response.choices[0].text == expected, (response.choices[0].text, expected, stop)
        assert response.choices[0].finish_reason == "stop"
        text, _, finish, _ = stream_completion(client, name, "Once upon a time", 40, stop=stop)
        assert text == expected and finish == "stop", (text, expected)

    def seeded_sampling_matches_cli():
        response = client.completions.create(model=name, prompt="Hello world", max_tokens=16, temperature=0.8, seed=42,
                                             n=2, extra_body={"return_token_ids": True})
        ref = cli_generate(suite.mixtral, suite.model, 16, prompt="Hello world",
                           extra=("--temperature", "0.8", "--seed", "42"))
        assert extra(response.choices[0], "token_ids") == ref["generated_ids"]
        again = client.completions.create(model=name, prompt="Hello world", max_tokens=16, temperature=0.8, seed=42, n=2)
        assert [c.text for c in again.choices] == [c.text for c in response.choices]
        assert len(response.choices) == 2 and response.choices[1].index == 1
        # OpenAI's presence and frequency penalties reach the sampler as the CLI's flags do.
        # (Negative ones: a random model hardly repeats a token in 16, so positive ones can
        # leave greedy output unchanged.)
        penalised = client.completions.create(model=name, prompt="Hello world", max_tokens=16, temperature=0,
                                              presence_penalty=-2.0, frequency_penalty=-1.5,
                                              extra_body={"return_token_ids": True})
        ref = cli_generate(suite.mixtral, suite.model, 16, prompt="Hello world",
                           extra=("--greedy", "--presence-penalty=-2.0", "--frequency-penalty=-1.5"))
        assert extra(penalised.choices[0], "token_ids") == ref["generated_ids"]
        plain = cli_generate(suite.mixtral, suite.model, 16, prompt="Hello world")
        assert ref["generated_ids"] != plain["generated_ids"], "the penalties changed nothing"

    def logprobs():
        response = client.completions.create(model=name, prompt="Hello world", max_tokens=5, temperature=0, logprobs=3)
        lp = response.choices[0].logprobs
        assert len(lp.tokens) == 5 and len(lp.token_logprobs) == 5 and len(lp.top_logprobs) == 5
        for chosen, top in zip(lp.token_logprobs, lp.top_logprobs):
            assert len(top) >= 1 and abs(max(top.values()) - chosen) < 1e-6 and chosen < 0
        chat = client.chat.completions.create(model=name, messages=[{"role": "user", "content": "Hi"}], max_tokens=4,
                                              temperature=0, logprobs=True, top_logprobs=2)
        content = chat.choices[0].logprobs.content
        assert len(content) == 4 and all(len(item.top_logprobs) == 2 for item in content)
        assert all(abs(item.logprob - item.top_logprobs[0].logprob) < 1e-6 for item in content)

    def logit_bias():
        # A bias of 100 on one id makes greedy decoding pick it at every step; -100 on the
        # unbiased run's first token keeps it out.
        plain = client.completions.create(model=name, prompt="Hello world", max_tokens=4, temperature=0,
                                          extra_body={"return_token_ids": True})
        first = extra(plain.choices[0], "token_ids")[0]
        forced = client.completions.create(model=name, prompt="Hello world", max_tokens=4, temperature=0,
                                           logit_bias={"42": 100}, extra_body={"return_token_ids": True})
        assert extra(forced.choices[0], "token_ids") == [42] * 4, extra(forced.choices[0], "token_ids")
        banned = client.chat.completions.create(model=name, messages=[{"role": "user", "content": "Hi"}], max_tokens=4,
                                                temperature=0, logit_bias={str(first): -100},
                                                extra_body={"return_token_ids": True})
        assert first not in extra(banned.choices[0], "token_ids")

    def disconnect_mid_stream():
        before = metric(server, "mixtral_cancelled_sequences_total")
        stream = client.completions.create(model=name, prompt="Hello world", max_tokens=400, temperature=0, stream=True,
                                           extra_body={"ignore_eos": True})
        received = 0
        for _ in stream:
            received += 1
            if received == 3:
                break
        stream.close()
        deadline = time.time() + 10
        while time.time() < deadline and metric(server, "mixtral_cancelled_sequences_total") <= before:
            time.sleep(0.1)
        assert metric(server, "mixtral_cancelled_sequences_total") == before + 1
        deadline = time.time() + 10
        while time.time() < deadline and metric(server, "mixtral_active_sequences") != 0:
            time.sleep(0.1)
        assert metric(server, "mixtral_active_sequences") == 0
        assert http("GET", server.url + "/health").json() == {"status": "ok"}
        # A non-streamed request whose client gives up: its eight sequences are cancelled too.
        impatient = server.client(timeout=0.05)
        expect(openai.APITimeoutError, lambda: impatient.completions.create(
            model=name, prompt="Hi", max_tokens=500, n=8, temperature=0, extra_body={"ignore_eos": True}))
        deadline = time.time() + 10
        while time.time() < deadline and metric(server, "mixtral_cancelled_sequences_total") < before + 9:
            time.sleep(0.1)
        assert metric(server, "mixtral_cancelled_sequences_total") == before + 9
        completion_matches_cli()

    def bad_requests():
        def raw(body, path="/v1/completions", headers=None):
            return http("POST", server.url + path, content=body, headers=headers)

        response = raw(b"{not json")
        assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_json", response.text
        response = raw(b"[1, 2]")
        assert response.status_code == 400 and response.json()["error"]["type"] == "invalid_request_error"
        response = raw(json.dumps({"model": name, "prompt": "x", "max_tokens": "5"}).encode())
        assert response.status_code == 400 and response.json()["error"]["param"] == "max_tokens", response.text
        response = raw(b"x" * 1_500_000)
        assert response.status_code == 413, response.status_code
        expect(openai.BadRequestError, lambda: client.completions.create(model=name, prompt="x", max_tokens=5, temperature="hot"))
        expect(openai.BadRequestError, lambda: client.completions.create(model=name, prompt="x", max_tokens=5, top_p=2))
        expect(openai.BadRequestError, lambda: client.completions.create(model=name, prompt=[[1, 99999999]], max_tokens=5))
        expect(openai.BadRequestError, lambda: client.completions.create(model=name, prompt="x", max_tokens=100000))
        expect(openai.BadRequestError, lambda: client.chat.completions.create(model=name, messages="hi", max_tokens=5))
        expect(openai.BadRequestError, lambda: client.chat.completions.create(model=name, messages=[{"content": "x"}]))
        expect(openai.NotFoundError, lambda: client.completions.create(model="gpt-4", prompt="x", max_tokens=5))
        # Fields that would shape the answer and cannot be honoured are refused, not ignored.
        expect(openai.BadRequestError, lambda: client.chat.completions.create(
            model=name, messages=[{"role": "user", "content": "x"}], max_tokens=5, response_format={"type": "yaml"}))
        expect(openai.BadRequestError, lambda: client.completions.create(model=name, prompt="x", max_tokens=5, best_of=3))
        expect(openai.BadRequestError, lambda: client.completions.create(model=name, prompt="x", max_tokens=5,
                                                                         logit_bias={"99999999": 5}))
        error = expect(openai.BadRequestError,
                       lambda: client.completions.create(model=name, prompt="hello " * 600, max_tokens=5))
        assert error.code == "context_length_exceeded", error.code
        assert http("GET", server.url + "/no/such/route").status_code == 404
        # Still serving, and correctly.
        completion_matches_cli()

    def grammar():
        # llama-server's `grammar` field: every answer matches, streamed or not, greedy or
        # sampled, and ends with the grammar (finish_reason stop); a bad grammar is a 400.
        gbnf = 'root ::= "{\\"n\\": " [0-9]{1,3} ", \\"w\\": \\"" [a-z]{1,8} "\\"}"'
        pattern = re.compile(r'\{"n": [0-9]{1,3}, "w": "[a-z]{1,8}"\}')
        for sampling in [{"temperature": 0}, {"temperature": 1, "seed": 3}]:
            response = client.completions.create(model=name, prompt="Hello", max_tokens=40,
                                                 extra_body={"grammar": gbnf}, **sampling)
            choice = response.choices[0]
            assert pattern.fullmatch(choice.text) and choice.finish_reason == "stop", (choice.text, choice.finish_reason)
            json.loads(choice.text)
            chat = client.chat.completions.create(model=name, messages=[{"role": "user", "content": "Hi"}], max_tokens=40,
                                                  extra_body={"grammar": gbnf}, **sampling)
            assert pattern.fullmatch(chat.choices[0].message.content), chat.choices[0].message.content
        streamed = "".join(chunk.choices[0].text for chunk in client.completions.create(
            model=name, prompt="Hello", max_tokens=40, temperature=0, stream=True, extra_body={"grammar": gbnf})
            if chunk.choices)
        assert pattern.fullmatch(streamed), streamed
        for bad in ["root ::= missing", "root ::= \"a", "x ::= \"a\"", 5]:
            error = expect(openai.BadRequestError, lambda: client.completions.create(
                model=name, prompt="x", max_tokens=5, extra_body={"grammar": bad}))
            assert error.body.get("param") == "grammar", error.body

    def tokenize_roundtrip():
        tokens = http("POST", server.url + "/tokenize", json_body={"prompt": "Hello world"}).json()
        ref = suite.reference("Hello world", 24)
        assert tokens["tokens"] == ref["prompt_ids"] and tokens["count"] == len(ref["prompt_ids"]), tokens
        text = http("POST", server.url + "/detokenize", json_body={"tokens": tokens["tokens"]}).json()
        cli = subprocess.run([suite.mixtral, "detokenize", "--model", suite.model, "--ids",
                              ",".join(map(str, tokens["tokens"]))], capture_output=True, text=True, check=True)
        assert text["prompt"] == cli.stdout.removesuffix("\n"), (text, cli.stdout)
        assert "Hello world" in text["prompt"]
        assert http("POST", server.url + "/detokenize", json_body={"tokens": [-1]}).status_code == 400

    def metrics():
        text = http("GET", server.url + "/metrics").text
        for name_ in ["mixtral_requests_total", "mixtral_prompt_tokens_total", "mixtral_generated_tokens_total",
                      "mixtral_request_duration_seconds_bucket", "mixtral_queue_depth", "mixtral_kv_cache_bytes",
                      "mixtral_batch_sequences_bucket", "mixtral_prefix_cache_bytes"]:
            assert name_ in text, name_
        assert metric(server, "mixtral_generated_tokens_total") > 0
        # Every *_total is a Prometheus counter.
        for line in text.splitlines():
            if line.startswith("# TYPE ") and line.split()[2].endswith("_total"):
                assert line.split()[3] == "counter", line

    for test in [models, completion_matches_cli, stream_matches_cli, chat_matches_cli, concurrent_streams,
                 long_prompt_in_chunks_beside_streams, prefix_reuse, stop_strings,
                 seeded_sampling_matches_cli, logprobs, logit_bias, disconnect_mid_stream, bad_requests, grammar, tokenize_roundtrip,
                 metrics]:
        suite.run(test.__name__, test)


def run_limit_tests(suite, model):
    """A second server with one batch place, no queue and an API key: 401, 429, SIGTERM drain."""
    server = Server(suite.mixtral, model, "--ctx", "512", "--max-sequences", "1", "--max-waiting", "0",
                    "--api-key", "secret")
    name = suite.model_name
    try:
        def api_key():
            expect(openai.AuthenticationError, lambda: server.client("wrong").models.list())
            response = http("POST", server.url + "/v1/completions", json_body={"model": name, "prompt": "x"})
            assert response.status_code == 401 and response.json()["error"]["code"] == "invalid_api_key", response.text
            assert [m.id for m in server.client("secret").models.list().data] == [name]
            # Variants of a wrong key, over raw sockets: refused, never a 5xx.
            for value in [b"Bearer", b"Bearer ", b"secret", b"Basic c2VjcmV0", b"Bearer secret2", b"Bearer secre",
                          b"Bearer secret\x00", b"Bearer \xff\xfe", b"Bearer " + b"a" * 50_000]:
                request = (b"GET /v1/models HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: " + value
                           + b"\r\n\r\n")
                codes = exchange(server.port, request)
                assert codes in ([401], [400]), (value[:30], codes)
            assert http("GET", server.url + "/health").status_code == 200

        def too_many_requests_then_drain():
            client = server.client("secret")
            stream = client.completions.create(model=name, prompt="Hello world", max_tokens=400, temperature=0,
                                               stream=True, extra_body={"ignore_eos": True, "return_token_ids": True})
            chunks = iter(stream)
            first = next(chunks).choices[0]
            text, ids = first.text, extra(first, "token_ids")
            expect(openai.RateLimitError, lambda: client.completions.create(model=name, prompt="x", max_tokens=2))
            # SIGTERM while streaming: the stream still completes, then the server exits.
            server.process.send_signal(signal.SIGTERM)
            for chunk in chunks:
                for choice in chunk.choices:
                    text += choice.text
                    ids += extra(choice, "token_ids") or []
            server.process.wait(30)
            assert server.process.returncode == 0, server.process.returncode
            ref = cli_generate(suite.mixtral, suite.model, 400, prompt="Hello world", extra=("--greedy", "--ignore-eos"))
            assert ids == ref["generated_ids"], (len(ids), len(ref["generated_ids"]))
            assert ref["text"] == "Hello world" + text

        suite.run("api_key", api_key)
        suite.run("too_many_requests_then_sigterm_drain", too_many_requests_then_drain)
    finally:
        server.stop()


def run_timeout_tests(suite, model):
    """A third server whose requests may take 1 ms: a request that runs longer gets a 408
    (streamed: OpenAI's error object, which the client raises), and the server stays healthy."""
    server = Server(suite.mixtral, model, "--ctx", "512", "--request-timeout", "0.001")
    name = suite.model_name
    try:
        def request_timeout():
            client = server.client()
            for _ in range(2):
                error = expect(openai.APIStatusError, lambda: client.completions.create(
                    model=name, prompt="Hello world", max_tokens=400, temperature=0, extra_body={"ignore_eos": True}))
                assert error.status_code == 408 and error.code == "request_timeout", (error.status_code, error.message)
                try:
                    for _ in client.completions.create(model=name, prompt="Hello world", max_tokens=400, temperature=0,
                                                       stream=True, extra_body={"ignore_eos": True}):
                        pass
                    raise AssertionError("the stream ended without an error")
                except openai.APIError as error:
                    assert "limit of" in error.message, error.message
            assert http("GET", server.url + "/health").status_code == 200
            assert metric(server, "mixtral_cancelled_sequences_total") >= 4

        suite.run("request_timeout", request_timeout)
    finally:
        server.stop()


def run_streaming_tests(suite, model):
    """A server that streams experts within a RAM budget of three experts: greedy answers
    equal the resident CLI's, and /metrics reports the streaming figures."""
    # Under --ranks the probe runs split too: the sizes are a rank's (rank 0 reports).
    probe = subprocess.run([*Server.launcher, suite.mixtral, "bench", "--model", model, "-p", "0", "-n", "1", "-r", "1", "--json",
                            "--ram-budget", "1T"], capture_output=True, text=True, check=True)
    sizes = json.loads(probe.stdout)["expert_streaming"]
    budget = sizes["dense_bytes"] + 3 * sizes["slot_bytes"]
    server = Server(suite.mixtral, model, "--ctx", "512", "--ram-budget", str(budget))
    name = suite.model_name
    try:
        def streamed_answers_equal_resident():
            client = server.client()
            for prompt, max_tokens in [("Hello world", 24), ("Once upon a time", 40)]:
                choice = client.completions.create(model=name, prompt=prompt, max_tokens=max_tokens, temperature=0,
                                                   extra_body={"return_token_ids": True}).choices[0]
                suite.check_completion(prompt, max_tokens, choice.text, extra(choice, "token_ids"), choice.finish_reason)
            text, ids, finish, _ = stream_completion(client, name, "Hello world", 24)
            suite.check_completion("Hello world", 24, text, ids, finish)
            assert metric(server, "mixtral_expert_slots") == 3
            assert metric(server, "mixtral_expert_calls_total") > 0
            assert metric(server, "mixtral_expert_bytes_read_total") > 0
            assert 0 <= metric(server, "mixtral_expert_hit_ratio") <= 1
            assert 0 < metric(server, "mixtral_expert_prefetch_accuracy") <= 1
            assert metric(server, "mixtral_expert_bytes_read_per_token") > 0

        suite.run("streamed experts (--ram-budget of 3 experts): answers and /metrics", streamed_answers_equal_resident)
    finally:
        server.stop()


def mistral_common_chat_ids(model, content):
    """The prompt ids mistral-common's own instruct encoding gives one user message."""
    from mistral_common.protocol.instruct.messages import UserMessage
    from mistral_common.protocol.instruct.request import ChatCompletionRequest
    from mistral_common.tokens.tokenizers.mistral import MistralTokenizer
    tokenizer = MistralTokenizer.from_file(os.path.join(model, "tokenizer.model"))
    return tokenizer.encode_chat_completion(ChatCompletionRequest(messages=[UserMessage(content=content)])).tokens


def expect(error_type, call):
    try:
        call()
    except error_type as error:
        return error
    except openai.APIStatusError as error:
        raise AssertionError(f"expected {error_type.__name__}, got {error.status_code}: {error.message}")
    raise AssertionError(f"expected {error_type.__name__}, got a response")


def metric(server, name):
    for line in http("GET", server.url + "/metrics").text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"metric {name} not found")


if __name__ == "__main__":
    sys.exit(main())
