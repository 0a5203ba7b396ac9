#!/usr/bin/env python3
"""Per-step cost of grammar-constrained decoding (issue 16's budget: at most 15% over an
unconstrained step on the default model).

Runs `mixtral generate --json` with each grammar and, in the same rounds, without one, the
engines taking turns; reports the median decode tokens/s and the overhead of each grammar
(unconstrained t/s / constrained t/s - 1), the unconstrained run generating as many tokens
from the same prompt (`--ignore-eos`). Generation time only: prompt processing and the
grammar's parse are outside `generated_tokens_per_second`; the first mask of each state
is inside it.

  python3 scripts/bench/grammar.py [--model GGUF] [--threads 1] [--rounds 5] [--tokens 128]
"""
import argparse, json, os, statistics, subprocess, sys, tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))

GRAMMARS = {
    "string-bounded": ('Write a long story about a cat, as JSON:',
                       r'root ::= "{\"story\": \"" [^"\\]{1,600} "\"}"'),
    "object-list": ('List 30 people with names and ages as JSON:',
                    'root ::= "[" ws item ("," ws item)* "]"\n'
                    r'item ::= "{\"name\": \"" [^"\\]{1,300} "\", \"age\": " [0-9]{1,3} "}"' "\n"
                    'ws ::= [ \\n]{0,4}'),
    "json": ('Describe three cities as a JSON object:', open(os.path.join(ROOT, "grammars", "json.gbnf")).read()),
    "arithmetic": ('Write twenty sums, one per line:',
                   'root ::= (expr "=" ws num "\\n")+\nexpr ::= num ([-+*/] ws num)*\n'
                   'num ::= [0-9]+ ws\nws ::= " "?'),
}


def run(binary, model, threads, tokens, prompt, grammar_file):
    cmd = [binary, "generate", "--model", model, "--threads", str(threads), "--max-new-tokens", str(tokens),
           "--prompt", prompt, "--json", "--greedy"]
    if grammar_file:
        cmd += ["--grammar", grammar_file]
    else:
        cmd += ["--ignore-eos"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    result = json.loads(out.strip().splitlines()[-1])
    return result["generated_tokens_per_second"], result["generated_tokens"]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=os.path.expanduser("~/.cache/swift-mixtral/SmolLM2-135M-Instruct.Q4_1.gguf"))
    p.add_argument("--binary", default=os.path.join(ROOT, ".build/release/mixtral"))
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--tokens", type=int, default=128)
    p.add_argument("--only", nargs="*", help="grammar names to run")
    args = p.parse_args()
    names = args.only or list(GRAMMARS)
    with tempfile.TemporaryDirectory() as tmp:
        files = {}
        for name in names:
            files[name] = os.path.join(tmp, name + ".gbnf")
            with open(files[name], "w") as f:
                f.write(GRAMMARS[name][1] + "\n")
        constrained = {name: [] for name in names}
        free = {name: [] for name in names}
        counts = {}
        for _ in range(args.rounds):
            for name in names:
                prompt = GRAMMARS[name][0]
                tps, counts[name] = run(args.binary, args.model, args.threads, args.tokens, prompt, files[name])
                constrained[name].append(tps)
                free[name].append(run(args.binary, args.model, args.threads, counts[name], prompt, None)[0])
    print(f"| grammar | tokens | unconstrained t/s | constrained t/s | overhead |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name in names:
        a, b = statistics.median(free[name]), statistics.median(constrained[name])
        print(f"| {name} | {counts[name]} | {a:.1f} | {b:.1f} | {100 * (a / b - 1):+.1f}% |")
    print(f"median of {args.rounds} rounds, {args.threads} thread(s), {os.path.basename(args.model)}")


if __name__ == "__main__":
    main()
