#!/usr/bin/env python3
"""The command line against hostile arguments and files (issue 14's reproducers): each
case must end within its time limit, by an exit status and not a signal, with the
message that names the cause; files the user had are left as they were.

    python3 scripts/ci/cli_errors.py [--mixtral .build/release/mixtral] [--model GGUF]

The model is the default one (SmolLM2 Q4_1 GGUF); the tokenizer case uses the SmolLM2
tokenizer fixture. Runs in well under a minute.
"""
import argparse
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HUGE = str(2**63 - 1)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--mixtral", default=os.path.join(ROOT, ".build/release/mixtral"))
    parser.add_argument("--model", default=os.path.expanduser(
        os.path.join(os.environ.get("MIXTRAL_HOME", "~/.cache/swift-mixtral"), "SmolLM2-135M-Instruct.Q4_1.gguf")))
    args = parser.parse_args()
    failures = []
    work = tempfile.mkdtemp(prefix="mixtral-cli-errors-")

    def case(name, command, expect_status, expect_stderr, timeout=60):
        try:
            result = subprocess.run([args.mixtral] + command, capture_output=True, text=True, timeout=timeout,
                                    stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            failures.append(f"{name}: still running after {timeout} s")
            return
        if result.returncode < 0:
            failures.append(f"{name}: killed by signal {-result.returncode}\n{result.stderr[-1500:]}")
        elif (result.returncode == 0) != (expect_status == 0):
            failures.append(f"{name}: exit status {result.returncode}, expected "
                            f"{'0' if expect_status == 0 else 'non-zero'}\n{result.stderr[-1500:]}")
        elif expect_stderr not in result.stderr:
            failures.append(f"{name}: stderr lacks {expect_stderr!r}\n{result.stderr[-1500:]}")
        else:
            print(f"ok  {name}")

    model = ["--model", args.model]
    case("generate: --max-new-tokens 2^63-1 stops at the context",
         ["generate", "hi", "--max-new-tokens", HUGE, "--ctx", "16"] + model, 0, "generation stops at the limit")
    case("generate: --threads 2^63-1", ["generate", "hi", "--threads", HUGE] + model, 1, "--threads must be between")
    case("generate: --max-new-tokens=-1", ["generate", "hi", "--max-new-tokens=-1"] + model, 1, "max_new_tokens must be >= 0")

    text = os.path.join(work, "text.txt")
    with open(text, "w") as f:
        f.write("The quick brown fox jumps over the lazy dog. " * 20)
    case("perplexity: --ctx 0", ["perplexity", "--file", text, "--ctx", "0"] + model, 1, "--ctx must be at least 4")

    # A .npy reference whose header declares a shape of 2^63-1 x 2^63-1 elements.
    huge_npy = os.path.join(work, "huge.npy")
    header = "{'descr': '<f4', 'fortran_order': False, 'shape': (%s, %s), }" % (HUGE, HUGE)
    header += " " * (63 - (10 + len(header)) % 64) + "\n"
    with open(huge_npy, "wb") as f:
        f.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode())
    case("perplexity: --kl-reference with a huge .npy shape",
         ["perplexity", "--file", text, "--ctx", "16", "--kl-reference", huge_npy] + model, 1, "malformed .npy file")

    fifo = os.path.join(work, "model.gguf")
    os.mkfifo(fifo)
    case("generate: a FIFO as --model", ["generate", "hi", "--model", fifo], 1, "not a regular file", timeout=20)
    case("tokenize: a FIFO as --model", ["tokenize", "--text", "hi", "--model", fifo], 1, fifo, timeout=20)

    # --logits-out onto what is not a regular file: refused, and the link and its target
    # stay as they were.
    target = os.path.join(work, "target.txt")
    with open(target, "w") as f:
        f.write("keep")
    link = os.path.join(work, "link.npy")
    os.symlink(target, link)
    folder = os.path.join(work, "folder.npy")
    os.mkdir(folder)
    for name, destination in [("a symlink", link), ("/dev/full", "/dev/full"), ("a folder", folder)]:
        case(f"score: --logits-out onto {name}", ["score", "--prompt", "hello world", "--logits-out", destination] + model,
             1, "not a regular file")
    if not os.path.islink(link) or open(target).read() != "keep" or os.listdir(folder):
        failures.append("score --logits-out changed the link, its target or the folder")

    # A tokenizer that knows more tokens than the model's config: tokenize warns.
    small = os.path.join(work, "small-vocab")
    os.mkdir(small)
    fixtures = os.path.join(ROOT, "Tests/MixtralTokenizersTests/Fixtures/smollm2")
    for name in ["tokenizer.json", "tokenizer_config.json"]:
        shutil.copy(os.path.join(fixtures, name), small)
    with open(os.path.join(ROOT, "Tests/MixtralTests/Fixtures/parity/llama-tied/config.json")) as f:
        config = json.load(f)
    config["vocab_size"] = 100
    with open(os.path.join(small, "config.json"), "w") as f:
        json.dump(config, f)
    case("tokenize: ids beyond the model's vocab_size", ["tokenize", "--text", "Hello world", "--model", small],
         0, "outside the model's vocabulary")

    shutil.rmtree(work, ignore_errors=True)
    if failures:
        print("\n".join(["FAIL " + f for f in failures]))
        sys.exit(1)
    print("all command-line error cases passed")


if __name__ == "__main__":
    main()
