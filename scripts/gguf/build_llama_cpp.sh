#!/usr/bin/env bash
# Build the llama.cpp tools used to make reference data (llama-quantize, llama-gguf-split,
# llama-tokenize) and to compare against (llama-bench, llama-simple, llama-completion,
# llama-perplexity). In this llama.cpp version the interactive llama-cli is built only with
# the server (LLAMA_BUILD_SERVER); llama-completion is the plain command-line generator.
# llama.cpp's sources come from the PyPI source distribution of llama-cpp-python, which
# vendors llama.cpp; nothing from it is committed to this repository.
#
# Usage: scripts/gguf/build_llama_cpp.sh [DEST]   (default DEST: /work/llama.cpp)
# Environment: PYTHON (default python3) runs `pip download`; JOBS (default 2).
set -euo pipefail

dest="${1:-/work/llama.cpp}"
python="${PYTHON:-python3}"
jobs="${JOBS:-2}"

if ! command -v cmake >/dev/null 2>&1; then
    echo "cmake is missing; installing it with apt-get" >&2
    if [ "$(id -u)" = 0 ]; then apt-get update && apt-get install -y cmake
    else sudo apt-get update && sudo apt-get install -y cmake; fi
fi

mkdir -p "$dest"
if [ ! -f "$dest/src/CMakeLists.txt" ]; then
    download="$dest/download"
    mkdir -p "$download"
    "$python" -m pip download --no-deps --no-binary :all: --dest "$download" llama-cpp-python
    archive="$(ls "$download"/llama_cpp_python-*.tar.gz | head -n 1)"
    echo "unpacking $archive" >&2
    rm -rf "$dest/unpacked"
    mkdir -p "$dest/unpacked"
    tar -xzf "$archive" -C "$dest/unpacked"
    rm -rf "$dest/src"
    mv "$dest"/unpacked/llama_cpp_python-*/vendor/llama.cpp "$dest/src"
    # Keep the python package version next to the sources for the record.
    basename "$archive" > "$dest/src/.llama-cpp-python-version"
    rm -rf "$dest/unpacked"
fi

cmake -S "$dest/src" -B "$dest/build" \
    -DCMAKE_BUILD_TYPE=Release \
    -DBUILD_SHARED_LIBS=OFF \
    -DGGML_NATIVE=ON \
    -DLLAMA_CURL=OFF \
    -DLLAMA_BUILD_TESTS=OFF \
    -DLLAMA_BUILD_EXAMPLES=ON \
    -DLLAMA_BUILD_SERVER=OFF

targets=(llama-quantize llama-bench llama-simple llama-completion llama-perplexity llama-gguf-split llama-tokenize)
for target in "${targets[@]}"; do
    echo "building $target" >&2
    nice -n 10 cmake --build "$dest/build" --config Release -j "$jobs" --target "$target" \
        || echo "warning: $target failed to build" >&2
done

echo "binaries in $dest/build/bin:" >&2
ls -1 "$dest/build/bin" >&2
