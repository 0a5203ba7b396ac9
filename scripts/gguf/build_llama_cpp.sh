#!/usr/bin/env bash
# Build the llama.cpp tools used to make reference data (llama-quantize, llama-gguf-split,
# llama-tokenize) and to compare against (llama-bench, llama-simple, llama-completion,
# llama-perplexity). In this llama.cpp version the interactive llama-cli is built only with
# the server (LLAMA_BUILD_SERVER); llama-completion is the plain command-line generator.
# llama.cpp's sources come from the PyPI source distribution of llama-cpp-python, which
# vendors llama.cpp; nothing from it is committed to this repository.
#
# Usage: scripts/gguf/build_llama_cpp.sh [--avx2] [DEST]   (default DEST: /work/llama.cpp)
#   default: built for this machine's CPU (GGML_NATIVE), binaries in DEST/build/bin
#   --avx2:  built for AVX2 + FMA + F16C only, no AVX-512 (as on most laptops and AMD Zen 1-3),
#            binaries in DEST/build-avx2/bin; what `compare.py --cpu avx2` runs against
# Environment: PYTHON (default python3) runs `pip download`; JOBS (default 2); TARGETS
# (default: all the tools below); LLAMA_CPP_PYTHON (default 0.3.36): the llama-cpp-python
# release whose llama.cpp is built. The llama.cpp-compatible arithmetic (`--precision
# fast`: Sources/Mixtral/LlamaCpp, Sources/MixtralKernels/LlamaCpp, LlamaCppOps.c) and its
# reference data follow that release's llama.cpp; change the pin only together with them.
set -euo pipefail

cpu=native
if [ "${1:-}" = "--avx2" ]; then cpu=avx2; shift; fi
dest="${1:-/work/llama.cpp}"
python="${PYTHON:-python3}"
jobs="${JOBS:-2}"
release="${LLAMA_CPP_PYTHON:-0.3.36}"

if ! command -v cmake >/dev/null 2>&1; then
    echo "cmake is missing; installing it with apt-get" >&2
    if [ "$(id -u)" = 0 ]; then apt-get update && apt-get install -y cmake
    else sudo apt-get update && sudo apt-get install -y cmake; fi
fi

mkdir -p "$dest"
if [ ! -f "$dest/src/CMakeLists.txt" ]; then
    download="$dest/download"
    mkdir -p "$download"
    "$python" -m pip download --no-deps --no-binary :all: --dest "$download" "llama-cpp-python==$release"
    archive="$(ls "$download"/llama_cpp_python-"$release".tar.gz | head -n 1)"
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

if [ "$cpu" = avx2 ]; then
    build="$dest/build-avx2"
    cpu_flags=(-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON
               -DGGML_AVX512=OFF -DGGML_AVX512_VBMI=OFF -DGGML_AVX512_VNNI=OFF -DGGML_AVX512_BF16=OFF -DGGML_AVX_VNNI=OFF)
else
    build="$dest/build"
    cpu_flags=(-DGGML_NATIVE=ON)
fi

cmake -S "$dest/src" -B "$build" \
    -DCMAKE_BUILD_TYPE=Release \
    -DBUILD_SHARED_LIBS=OFF \
    "${cpu_flags[@]}" \
    -DLLAMA_CURL=OFF \
    -DLLAMA_BUILD_TESTS=OFF \
    -DLLAMA_BUILD_EXAMPLES=ON \
    -DLLAMA_BUILD_SERVER=OFF

read -r -a targets <<< "${TARGETS:-llama-quantize llama-bench llama-simple llama-completion llama-perplexity llama-gguf-split llama-tokenize}"
for target in "${targets[@]}"; do
    echo "building $target" >&2
    nice -n 10 cmake --build "$build" --config Release -j "$jobs" --target "$target" \
        || echo "warning: $target failed to build" >&2
done

echo "binaries in $build/bin:" >&2
ls -1 "$build/bin" >&2
