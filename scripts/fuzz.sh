#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for SECS seconds (default 30) on the stable toolchain
# (`--sanitizer none`), starting from the committed seeds in fuzz/corpus/<target>/; what the
# fuzzer finds goes to a temporary corpus, so the committed one stays as it is. Installs
# cargo-fuzz 0.13 when it is missing. Prints executions per target; exits non-zero on the first
# crash, whose input libFuzzer leaves in fuzz/artifacts/<target>/ (make it a unit test).
#   scripts/fuzz.sh [SECS]      FUZZ_TARGET_DIR=... to build elsewhere than fuzz/target
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
secs="${1:-30}"

if ! cargo fuzz --version 2>/dev/null | grep -q '^cargo-fuzz 0\.13\.'; then
  cargo install cargo-fuzz --locked --version '^0.13'
fi
target_dir=()
if [ -n "${FUZZ_TARGET_DIR:-}" ]; then
  target_dir=(--target-dir "$FUZZ_TARGET_DIR")
fi

started=$(date +%s)
cargo fuzz build --sanitizer none "${target_dir[@]}"
built=$(date +%s)
echo "fuzz: built every target in $((built - started)) s"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
summary=()
for target in $(cargo fuzz list); do
  # The config file and the HTTP body may be up to 16 KiB (the API's body limit); the wire
  # decoders' interesting inputs are small, libFuzzer's default of 4 KiB covers them.
  case "$target" in
    config_*) max_len=20000 ;;
    *) max_len=4096 ;;
  esac
  mkdir -p "$work/$target"
  log="$work/$target.log"
  if ! cargo fuzz run --sanitizer none "${target_dir[@]}" "$target" "$work/$target" "corpus/$target" -- \
    -max_total_time="$secs" -max_len="$max_len" -print_final_stats=1 >"$log" 2>&1; then
    tail -n 60 "$log"
    echo "fuzz: $target crashed; the input is in fuzz/artifacts/$target/" >&2
    exit 1
  fi
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
  summary+=("$(printf '%-18s %10s runs %8s exec/s' "$target" "$runs" "$rate")")
done
echo "fuzz: ${secs} s per target, $(($(date +%s) - built)) s running, $(($(date +%s) - started)) s in all"
printf '%s\n' "${summary[@]}"
