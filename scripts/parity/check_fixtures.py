#!/usr/bin/env python3
"""Live parity check, run by .ci/run in a fresh venv so fixtures cannot silently go stale:

1. Recomputes transformers' outputs for every committed fixture checkpoint and compares
   them with the committed reference files (the references `swift test` uses).
2. Regenerates all fixtures from scratch into a temporary folder with make_fixtures.py and
   runs the `mixtral` tool on them (`score` and `generate --json`), comparing with the
   freshly computed transformers outputs at the issue's tolerance:
   max |logit - transformers| <= 1e-4 x max |logit|, greedy continuation identical.

    python scripts/parity/check_fixtures.py --mixtral .build/release/mixtral
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_fixtures  # noqa: E402

TOLERANCE = 1e-4


def check_committed(root, failures):
    for name in make_fixtures.fixtures():
        folder = os.path.join(root, name)
        live, logits = make_fixtures.reference(folder)
        with open(os.path.join(folder, "reference.json")) as f:
            committed = json.load(f)
        committed_logits = np.load(os.path.join(folder, "logits.npy"))
        difference = float(np.abs(committed_logits - logits).max())
        ok = live == committed and difference <= 1e-5 * float(np.abs(logits).max())
        print(f"committed {name}: transformers now gives {'the same' if ok else 'DIFFERENT'} outputs "
              f"(max logit difference {difference:.2e})")
        if not ok:
            failures.append(f"committed fixture {name} is stale")


def run(command):
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({result.returncode}): {result.stderr.strip()}")
    return result.stdout


def check_engine(mixtral, root, failures):
    for name in make_fixtures.fixtures():
        folder = os.path.join(root, name)
        with open(os.path.join(folder, "reference.json")) as f:
            reference = json.load(f)
        expected = np.load(os.path.join(folder, "logits.npy"))
        ids = ",".join(map(str, reference["prompt_ids"]))
        out = os.path.join(folder, "swift-logits.npy")
        run([mixtral, "score", "--model", folder, "--ids", ids, "--logits-out", out])
        logits = np.load(out)
        scale = float(np.abs(expected).max())
        difference = float(np.abs(logits - expected).max()) if logits.shape == expected.shape else float("inf")
        generated = json.loads(run([mixtral, "generate", "--model", folder, "--ids", ids,
                                    "--max-new-tokens", "64", "--json"]))
        ignoring_eos = json.loads(run([mixtral, "generate", "--model", folder, "--ids", ids,
                                       "--max-new-tokens", "64", "--ignore-eos", "--json"]))
        greedy_ok = (generated["generated_ids"] == reference["greedy_eos_ids"]
                     and ignoring_eos["generated_ids"] == reference["greedy_ids"])
        ok = difference <= TOLERANCE * scale and greedy_ok
        print(f"fresh {name}: max |logit diff| = {difference:.2e} (bound {TOLERANCE * scale:.2e}), "
              f"greedy {'identical' if greedy_ok else 'DIFFERENT'} ({len(reference['greedy_eos_ids'])} tokens "
              f"with EOS, {len(reference['greedy_ids'])} without)")
        if not ok:
            failures.append(f"engine differs from transformers on fresh fixture {name}")


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mixtral", required=True, help="path of the built mixtral tool")
    parser.add_argument("--fixtures", default=os.path.join(here, "..", "..", "Tests", "MixtralTests", "Fixtures", "parity"))
    args = parser.parse_args()
    failures = []
    check_committed(args.fixtures, failures)
    with tempfile.TemporaryDirectory() as fresh:
        for name, (config, options, post) in make_fixtures.fixtures().items():
            make_fixtures.make(name, config, options, post, fresh)
        check_engine(os.path.abspath(args.mixtral), fresh, failures)
    print(f"{12 - len(failures)} passed, {len(failures)} failed")
    for failure in failures:
        print("FAILED:", failure)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
