#!/usr/bin/env bash
# Builds scripts/quality/llama_logits.cpp against the llama.cpp build made by
# scripts/gguf/build_llama_cpp.sh. Usage: build_llama_logits.sh [LLAMA_DIR] [OUT]
set -euo pipefail
llama="${1:-/work/llama.cpp}"
out="${2:-$llama/build/bin/llama-logits}"
here="$(cd "$(dirname "$0")" && pwd)"
b="$llama/build"
g++ -O2 -std=c++17 "$here/llama_logits.cpp" -I "$llama/src/include" -I "$llama/src/ggml/include" \
    "$b/src/libllama.a" "$b/ggml/src/libggml.a" "$b/ggml/src/libggml-cpu.a" "$b/ggml/src/libggml-base.a" \
    -fopenmp -lpthread -ldl -lm -o "$out"
echo "$out"
