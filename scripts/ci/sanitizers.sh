#!/usr/bin/env bash
# The tests that load files, generate, batch and serve, under AddressSanitizer and then
# ThreadSanitizer (each in its own build folder; the first build takes minutes).
#
#   scripts/ci/sanitizers.sh [address|thread]...     # default: both
set -euo pipefail
cd "$(dirname "$0")/../.."
FILTER="GGUFErrorTests|GGUFReaderTests|GGUFWeightStoreTests|CheckpointErrorTests|ParityTests|GenerationCoreTests|BatchedGenerationTests|RequestParsingTests|RobustnessTests|HostileChatTemplateTests|SamplingTests|ExpertStreamingTests|GrammarTests"
SANITIZERS=("$@")
[ ${#SANITIZERS[@]} -gt 0 ] || SANITIZERS=(address thread)
for sanitizer in "${SANITIZERS[@]}"; do
  echo "== swift test --sanitize=$sanitizer =="
  SWIFT_BACKTRACE=enable=no ASAN_OPTIONS=detect_leaks=0 TSAN_OPTIONS=halt_on_error=1 \
    swift test --sanitize="$sanitizer" --build-path ".build-$sanitizer" --filter "$FILTER" 2>&1 \
    | grep -vE "^(◇|↳)|started\.$"
  status=${PIPESTATUS[0]}
  [ "$status" -eq 0 ] || { echo "swift test --sanitize=$sanitizer failed (exit $status)"; exit 1; }
done
