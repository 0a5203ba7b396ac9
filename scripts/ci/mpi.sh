#!/usr/bin/env bash
# Tensor parallelism over MPI (issue 17): `mpiexec -n N mixtral ...` must give the
# single-process results bit for bit (the split never cuts a dot product): score logits
# identical and greedy and seeded-sampling tokens identical for N = 1, 2 and (where the
# key/value heads allow) 4, on Mixtral fixtures and dense ones; perplexity logits and chat
# answers on the default model under fast (its default) and exact precision, split
# unevenly (N = 2) and evenly (N = 3); and, with MPI_SERVER_PYTHON set (a Python with the
# openai package), the server suite under `mpiexec -n 2`. Prints PASS/FAIL lines; exits
# non-zero on any failure.
#
#   scripts/ci/mpi.sh [MPI_MIXTRAL [SINGLE_MIXTRAL]]
#
# MPI_MIXTRAL: a binary built with `--traits MPI` (default: builds one into .build-mpi).
# SINGLE_MIXTRAL: the single-process reference (default: .build/release/mixtral when it
# exists, else MPI_MIXTRAL run without mpiexec, which is the same code with one process).
# Needs mpiexec (Debian: mpich, libmpich-dev). MPICH oversubscribes the cores by itself.
set -euo pipefail
cd "$(dirname "$0")/../.."

MPI_MIXTRAL="${1:-}"
if [ -z "$MPI_MIXTRAL" ]; then
  swift build -c release --scratch-path .build-mpi --traits MPI --product mixtral
  MPI_MIXTRAL=.build-mpi/release/mixtral
fi
SINGLE_MIXTRAL="${2:-}"
if [ -z "$SINGLE_MIXTRAL" ]; then
  if [ -x .build/release/mixtral ]; then SINGLE_MIXTRAL=.build/release/mixtral; else SINGLE_MIXTRAL="$MPI_MIXTRAL"; fi
fi
command -v mpiexec >/dev/null || { echo "FAIL mpiexec not found (apt-get install mpich libmpich-dev)"; exit 1; }

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
failures=0
pass() { echo "PASS $*"; }
fail() { echo "FAIL $*"; failures=$((failures + 1)); }

# Max |a - b| / max |b| of two float32 .npy files (no numpy needed).
compare_npy() {
  python3 - "$1" "$2" <<'PY'
import struct, sys
def load(path):
    data = open(path, "rb").read()
    header_len = struct.unpack("<H", data[8:10])[0]
    body = data[10 + header_len:]
    return struct.unpack("<%df" % (len(body) // 4), body)
a, b = load(sys.argv[1]), load(sys.argv[2])
if len(a) != len(b):
    print("inf"); sys.exit()
scale = max(abs(x) for x in b) or 1.0
print("%.3e" % (max(abs(x - y) for x, y in zip(a, b)) / scale))
PY
}

json_field() { python3 -c "import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])" "$1" "$2"; }

# fixture: the rank counts its key/value heads allow (Mixtral fixtures have 2, dense 4).
for entry in "mixtral-gqa:1 2" "mixtral-sliding:1 2" "mistral-dense:1 2 4" "llama-tied:1 2 4"; do
  name="${entry%%:*}"
  ranks="${entry#*:}"
  model="Tests/MixtralTests/Fixtures/parity/$name"
  ids="$(python3 -c "import json; print(','.join(map(str, json.load(open('$model/reference.json'))['prompt_ids'])))")"
  "$SINGLE_MIXTRAL" score --model "$model" --ids "$ids" --logits-out "$work/$name.single.npy" 2>/dev/null
  "$SINGLE_MIXTRAL" generate --model "$model" --ids "$ids" --json --greedy --ignore-eos --max-new-tokens 24 \
    >"$work/$name.single.greedy.json" 2>/dev/null
  "$SINGLE_MIXTRAL" generate --model "$model" --ids "$ids" --json --do-sample --temperature 1.5 --seed 7 --ignore-eos \
    --max-new-tokens 24 >"$work/$name.single.sampled.json" 2>/dev/null
  for n in $ranks; do
    label="$name mpiexec -n $n"
    # Prompt in one batch, then one token per step after the 16th (the decode path too).
    if timeout 120 mpiexec -n "$n" "$MPI_MIXTRAL" score --model "$model" --ids "$ids" --batch-tokens 16 \
        --logits-out "$work/$name.$n.npy" 2>"$work/$name.$n.err"; then
      "$SINGLE_MIXTRAL" score --model "$model" --ids "$ids" --batch-tokens 16 --logits-out "$work/$name.single16.npy" 2>/dev/null
      if cmp -s "$work/$name.$n.npy" "$work/$name.single16.npy"; then
        pass "$label score: identical logits"
      else
        fail "$label score: logits differ, max relative difference $(compare_npy "$work/$name.$n.npy" "$work/$name.single16.npy")"
      fi
    else
      fail "$label score exited non-zero: $(tail -1 "$work/$name.$n.err")"
    fi
    for mode in greedy sampled; do
      if [ "$mode" = greedy ]; then flags=(--greedy); else flags=(--do-sample --temperature 1.5 --seed 7); fi
      if timeout 120 mpiexec -n "$n" "$MPI_MIXTRAL" generate --model "$model" --ids "$ids" --json "${flags[@]}" --ignore-eos \
          --max-new-tokens 24 >"$work/$name.$n.$mode.json" 2>"$work/$name.$n.$mode.err"; then
        got="$(json_field "$work/$name.$n.$mode.json" generated_ids)"
        want="$(json_field "$work/$name.single.$mode.json" generated_ids)"
        if [ "$got" = "$want" ]; then pass "$label generate ($mode): identical tokens"; else fail "$label generate ($mode): $got != $want"; fi
      else
        fail "$label generate ($mode) exited non-zero: $(tail -1 "$work/$name.$n.$mode.err")"
      fi
    done
  done
done

# The default model (SmolLM2-135M Q4_1: 9 heads, 3 key/value heads) splits unevenly over 2
# ranks (2 and 1 key/value heads) and evenly over 3, under fast precision (its default:
# 8-bit activations, where a changed summation order would show) and exact.
# perplexity: the scored logits; chat: the greedy answer's text.
default_model="${MIXTRAL_DEFAULT_MODEL:-$HOME/.cache/swift-mixtral/SmolLM2-135M-Instruct.Q4_1.gguf}"
if [ -f "$default_model" ]; then
  head -c 6000 README.md >"$work/text.txt"
  for precision in fast exact; do
    "$SINGLE_MIXTRAL" perplexity --model "$default_model" --precision $precision --file "$work/text.txt" --ctx 64 --chunks 3 \
      --save-logits "$work/ppl.$precision.single.npy" >/dev/null 2>&1
    "$SINGLE_MIXTRAL" chat --model "$default_model" --precision $precision --greedy --max-new-tokens 24 \
      --message "Name three colours." >"$work/chat.$precision.single.txt" 2>/dev/null
    for n in 2 3; do
      label="SmolLM2 ($precision) mpiexec -n $n"
      if timeout 120 mpiexec -n "$n" "$MPI_MIXTRAL" perplexity --model "$default_model" --precision $precision \
          --file "$work/text.txt" --ctx 64 --chunks 3 --save-logits "$work/ppl.$precision.$n.npy" >/dev/null 2>"$work/ppl.$n.err"; then
        if cmp -s "$work/ppl.$precision.$n.npy" "$work/ppl.$precision.single.npy"; then
          pass "$label perplexity: identical logits"
        else
          fail "$label perplexity: logits differ, max relative difference $(compare_npy "$work/ppl.$precision.$n.npy" "$work/ppl.$precision.single.npy")"
        fi
      else
        fail "$label perplexity exited non-zero: $(tail -1 "$work/ppl.$n.err")"
      fi
      if timeout 120 mpiexec -n "$n" "$MPI_MIXTRAL" chat --model "$default_model" --precision $precision --greedy \
          --max-new-tokens 24 --message "Name three colours." >"$work/chat.$n.txt" 2>"$work/chat.$n.err" \
          && cmp -s "$work/chat.$n.txt" "$work/chat.$precision.single.txt"; then
        pass "$label chat: the same answer ($(head -c 60 "$work/chat.$n.txt" | tr '\n' ' '))"
      else
        fail "$label chat: $(head -c 80 "$work/chat.$n.txt") != $(head -c 80 "$work/chat.$precision.single.txt") $(tail -1 "$work/chat.$n.err")"
      fi
    done
  done
else
  fail "the default model is missing ($default_model; scripts/get-default-model.sh installs it)"
fi

# The server split over 2 ranks: scripts/server/test_server.py (greedy and seeded answers
# equal one process's CLI, streaming, batching, prefix reuse, hostile traffic, SIGTERM).
if [ -n "${MPI_SERVER_PYTHON:-}" ]; then
  if "$MPI_SERVER_PYTHON" scripts/server/test_server.py --mixtral "$MPI_MIXTRAL" --ranks 2 >"$work/server.log" 2>&1; then
    pass "mpiexec -n 2 serve: $(grep -E '^[0-9]+ passed' "$work/server.log")"
  else
    grep -E "^(FAIL|PASS)|Error|error" "$work/server.log" | grep -v "^PASS" | head -20
    fail "mpiexec -n 2 serve: $(grep -E '^[0-9]+ passed' "$work/server.log" || tail -1 "$work/server.log")"
  fi
fi

# More ranks than key/value heads are refused (not a hang, not N answers).
if timeout 120 mpiexec -n 4 "$MPI_MIXTRAL" score --model Tests/MixtralTests/Fixtures/parity/mixtral-gqa --ids 1,2,3 \
    --logits-out "$work/refused.npy" >/dev/null 2>"$work/refused.err"; then
  fail "mixtral-gqa over 4 ranks (2 key/value heads) was not refused"
elif grep -q "key/value heads" "$work/refused.err"; then
  pass "mixtral-gqa over 4 ranks refused: $(grep -m1 "key/value heads" "$work/refused.err")"
else
  fail "mixtral-gqa over 4 ranks failed without the expected message: $(tail -1 "$work/refused.err")"
fi

if [ "$failures" -ne 0 ]; then echo "mpi: $failures check(s) failed"; exit 1; fi
echo "mpi: all checks passed"
