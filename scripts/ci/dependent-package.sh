#!/usr/bin/env bash
# The library as a versioned dependency: tags a clone of this repository's HEAD, builds a
# tiny package that depends on it `from:` that version (SwiftPM refuses unsafe build flags
# in such a dependency), and generates a few greedy tokens with it; they must equal
# `mixtral generate`'s (both choose the arithmetic the same way: `auto`).
#
# Usage: scripts/ci/dependent-package.sh [MODEL] [MIXTRAL]
#   MODEL    default: the default model (scripts/get-default-model.sh)
#   MIXTRAL  the tool to compare with (default: .build/release/mixtral)
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
model="${1:-${MIXTRAL_HOME:-$HOME/.cache/swift-mixtral}/SmolLM2-135M-Instruct.Q4_1.gguf}"
mixtral="${2:-$root/.build/release/mixtral}"
version="0.12.0"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

git clone -q "$root" "$work/swift-mixtral"
git -C "$work/swift-mixtral" tag "$version"

mkdir -p "$work/app/Sources/app"
cat > "$work/app/Package.swift" <<SWIFT
// swift-tools-version: 6.0
import PackageDescription

let package = Package(
    name: "app",
    platforms: [.macOS(.v15)],
    dependencies: [.package(url: "file://$work/swift-mixtral", from: "$version")],
    targets: [.executableTarget(name: "app", dependencies: [.product(name: "Mixtral", package: "swift-mixtral")])]
)
SWIFT
cat > "$work/app/Sources/app/main.swift" <<'SWIFT'
import Foundation
import Mixtral

// Loads a model, generates 8 greedy tokens after a prompt, prints their ids and the text.
let bundle = try ModelBundle.load(path: CommandLine.arguments[1])
guard let tokenizer = bundle.tokenizer else {
    FileHandle.standardError.write(Data("the model has no tokenizer\n".utf8))
    exit(1)
}
let prompt = try tokenizer.encode("Hello my name is", addSpecialTokens: true)
var options = bundle.defaults
options.maxNewTokens = 8
let result = try bundle.model.generate(prompt: prompt, options: options)
print(result.generatedIDs.map(String.init).joined(separator: ","))
print(tokenizer.decode(result.generatedIDs, skipSpecialTokens: true))
SWIFT

echo "== building a package that depends on swift-mixtral from: $version" >&2
(cd "$work/app" && swift build -c release --product app 2>&1 | grep -vE "^\[[0-9]+/[0-9]+\] (Compiling|Write|Emitting)" >&2)
output="$("$work/app/.build/release/app" "$model")"
echo "$output"
expected="$("$mixtral" generate --model "$model" "Hello my name is" --max-new-tokens 8 --json 2>/dev/null \
    | python3 -c 'import json, sys; print(",".join(map(str, json.load(sys.stdin)["generated_ids"])))')"
got="$(echo "$output" | head -n 1)"
if [ "$got" != "$expected" ]; then
    echo "dependent package: tokens $got differ from mixtral generate's $expected" >&2
    exit 1
fi
echo "dependent package: built against swift-mixtral $version and generated the CLI's tokens ($got)"
