#!/usr/bin/env bash
# Fuzzes every parser of untrusted input with libFuzzer and AddressSanitizer.
#
#   scripts/fuzz/run.sh [SECONDS_PER_TARGET] [TARGET...]
#   MAX_RUNS=1000000 scripts/fuzz/run.sh 1800 gguf    # stop at 1M inputs or 30 min
#
# Builds Sources/MixtralFuzz with -sanitize=fuzzer,address into .build-fuzz, seeds each
# target from the repository's fixtures and the committed corpus scripts/fuzz/corpus/TARGET
# (inputs that once found bugs), and runs each target for SECONDS_PER_TARGET (default 60).
# New interesting inputs go to .fuzz/corpus/TARGET, findings to .fuzz/findings/. Exits
# non-zero when any target found a crash, a hang (a single input over 20 s), a leak of
# memory past 4 GB, or a sanitizer report; prints the runs each target made.
set -euo pipefail
cd "$(dirname "$0")/../.."
SECONDS_PER_TARGET=${1:-60}
shift || true
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=(gguf safetensors config tokenizer-json tokenizer-model template request detokenizer grammar json-schema)

swift build -c debug --product mixtral-fuzz --build-path .build-fuzz \
    -Xswiftc -sanitize=fuzzer,address -Xswiftc -DFUZZING 2>&1 | grep -E "error|warning: unre|Compiling MixtralFuzz|Build" || true
FUZZER=.build-fuzz/debug/mixtral-fuzz
[ -x "$FUZZER" ] || { echo "the fuzz build failed"; exit 1; }

SEEDS=.fuzz/seeds
rm -rf "$SEEDS"
mkdir -p "$SEEDS" .fuzz/findings
for target in "${TARGETS[@]}"; do mkdir -p "$SEEDS/$target" ".fuzz/corpus/$target"; done
FIXTURES=Tests/MixtralTests/Fixtures
TOKENIZER_FIXTURES=Tests/MixtralTokenizersTests/Fixtures
cp "$FIXTURES"/gguf/metadata.gguf "$FIXTURES"/gguf/quantize.gguf \
   "$FIXTURES"/gguf/tiny-mixtral-hf-q4_0-split-00001-of-00003.gguf "$SEEDS/gguf/" 2>/dev/null || true
for folder in "$FIXTURES"/parity/*/; do
    name=$(basename "$folder")
    cp "$folder/config.json" "$SEEDS/config/$name-config.json" 2>/dev/null || true
    cp "$folder/generation_config.json" "$SEEDS/config/$name-generation.json" 2>/dev/null || true
done
cp "$TOKENIZER_FIXTURES"/v1/tokenizer.model "$SEEDS/tokenizer-model/" 2>/dev/null || true
python3 - "$SEEDS" "$TOKENIZER_FIXTURES" <<'EOF'
import json, os, struct, sys
seeds, fixtures = sys.argv[1], sys.argv[2]
# Chat templates of real models.
if os.path.isdir(f"{seeds}/template"):
    for name, source in json.load(open(f"{fixtures}/chat/templates.json")).items():
        open(f"{seeds}/template/{name}.jinja", "w").write(source)
# A small safetensors file: two tensors and metadata.
if os.path.isdir(f"{seeds}/safetensors"):
    header = {"__metadata__": {"format": "pt"},
              "a": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]},
              "b": {"dtype": "BF16", "shape": [4], "data_offsets": [16, 24]}}
    text = json.dumps(header).encode()
    open(f"{seeds}/safetensors/two.safetensors", "wb").write(struct.pack("<Q", len(text)) + text + bytes(24))
# Grammars in llama.cpp's GBNF notation.
if os.path.isdir(f"{seeds}/grammar"):
    open(f"{seeds}/grammar/arithmetic.gbnf", "w").write(
        'root ::= (expr "=" ws term "\\n")+\nexpr ::= term ([-+*/] term)*\n'
        'term ::= [a-z]+ ws | [0-9]+ ws | "(" ws expr ")" ws\nws ::= [ \\t]*\n')
    open(f"{seeds}/grammar/list.gbnf", "w").write('root ::= item{1,5}\nitem ::= "- " [^\\n]+ "\\n"\n')
# JSON schemas of the converter's reference vectors.
if os.path.isdir(f"{seeds}/json-schema"):
    vectors = "Tests/MixtralTests/Fixtures/schemas/vectors.json"
    if os.path.exists(vectors):
        for index, entry in enumerate(json.load(open(vectors))):
            open(f"{seeds}/json-schema/{index}.json", "w").write(json.dumps(entry["schema"]))
# Random token ids.
if os.path.isdir(f"{seeds}/detokenizer"):
    open(f"{seeds}/detokenizer/random", "wb").write(os.urandom(256))
EOF

declare -A MAX_LEN=([gguf]=65536 [safetensors]=16384 [tokenizer-model]=600000 [tokenizer-json]=65536)
failed=0
for target in "${TARGETS[@]}"; do
    log=".fuzz/$target.log"
    committed=()
    [ -d "scripts/fuzz/corpus/$target" ] && committed=("scripts/fuzz/corpus/$target")
    set +e
    MIXTRAL_FUZZ_TARGET=$target MIXTRAL_FUZZ_ROOT=$PWD SWIFT_BACKTRACE=enable=no ASAN_OPTIONS=detect_leaks=0 \
        "$FUZZER" -max_total_time="$SECONDS_PER_TARGET" -runs="${MAX_RUNS:--1}" -timeout=20 -rss_limit_mb=4096 -print_final_stats=1 \
        -max_len="${MAX_LEN[$target]:-16384}" -artifact_prefix=".fuzz/findings/$target-" \
        ".fuzz/corpus/$target" ${committed[@]+"${committed[@]}"} "$SEEDS/$target" > "$log" 2>&1
    status=$?
    set -e
    runs=$(grep -oE "stat::number_of_executed_units: *[0-9]+" "$log" | grep -oE "[0-9]+$" || echo "?")
    if [ $status -eq 0 ]; then
        echo "PASS $target: $runs inputs (limits: ${SECONDS_PER_TARGET} s, ${MAX_RUNS:-no} runs)"
    else
        echo "FAIL $target (exit $status, $runs inputs): see $log and .fuzz/findings/$target-*"
        grep -E "ERROR|Fatal|SUMMARY|Test unit written" "$log" | head -5
        failed=1
    fi
done
exit $failed
