#!/usr/bin/env bash
# The library as a versioned dependency, used as the README shows: tags a clone of this
# repository's HEAD, builds a tiny package that depends on it `from:` that version
# (SwiftPM refuses unsafe build flags in such a dependency) whose main.swift is the
# README's Swift example, verbatim, runs it on a model, and checks that its streamed text
# continues the prompt exactly as `mixtral generate` does (both choose the arithmetic the
# same way: `auto`).
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
# The README's example: the Swift block after its "dependent-package.sh" marker.
awk '/dependent-package.sh builds and runs/ {marked = 1; next}
     marked && /^```swift/ {inside = 1; next}
     inside && /^```/ {exit}
     inside {print}' "$root/README.md" > "$work/app/Sources/app/main.swift"
if ! grep -q "ModelContainer" "$work/app/Sources/app/main.swift"; then
    echo "dependent package: no Swift example found in README.md" >&2
    exit 1
fi

echo "== building a package that depends on swift-mixtral from: $version" >&2
(cd "$work/app" && swift build -c release --product app 2>&1 | grep -vE "^\[[0-9]+/[0-9]+\] (Compiling|Write|Emitting)" >&2)
# The example prints the continuation of "Hello my name is"; the tool prints the prompt and
# then the same continuation.
got="Hello my name is$("$work/app/.build/release/app" "$model")"
expected="$("$mixtral" generate --model "$model" "Hello my name is" --max-new-tokens 8 2>/dev/null)"
if [ "$got" != "$expected" ]; then
    echo "dependent package: the README example printed '$got', mixtral generate '$expected'" >&2
    exit 1
fi
echo "dependent package: the README example built against swift-mixtral $version and streamed mixtral generate's text: $got"
