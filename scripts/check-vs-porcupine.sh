#!/usr/bin/env bash
# Times `hashgrad check` against Porcupine (Go, the anchor) on the same files in the same run:
# the 109 conformance histories of tests/data/porcupine, then linearizable partitioned kv
# histories of 1k/10k/100k operations with 5 and 20 clients (examples/check_histories.rs).
# Both sides count checking time only (not parsing). Prints each total and the ratio.
# Needs Go (apt-get install -y golang-go) and a release build (built here if missing).
# Usage: scripts/check-vs-porcupine.sh [RUNS]   (PORCUPINE_BENCH=dir of porcupine-bench/run.sh)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
runs=${1:-3}
bench=${PORCUPINE_BENCH:-}
for guess in "$repo/../shared/anchors/porcupine-bench" "$repo/../../shared/anchors/porcupine-bench"; do
  [[ -z "$bench" && -x "$guess/run.sh" ]] && bench=$guess
done
[[ -n "$bench" ]] || { echo "set PORCUPINE_BENCH to the porcupine-bench folder" >&2; exit 2; }
bin="$repo/target/release/hashgrad"
[[ -x "$bin" ]] || (cd "$repo" && cargo build --release --bin hashgrad)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
data="$repo/tests/data/porcupine/test_data"

ours_total() { # files... -> total checking seconds from --json
  "$bin" check --json "$@" | python3 -c 'import json,sys; print(json.load(sys.stdin)["seconds"])' || true
}
best() { sort -g | head -1; }

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); $(date -u +%FT%TZ)"
echo "== conformance set (109 files), best of $runs runs"
p=(); o=()
for _ in $(seq "$runs"); do
  p+=("$("$bench/run.sh" "$data" 2>/dev/null | awk '/^TOTAL/ {print $3}')")
  o+=("$(ours_total "$data"/jepsen/*.log "$data"/kv/*.txt)")
done
pb=$(printf '%s\n' "${p[@]}" | best); ob=$(printf '%s\n' "${o[@]}" | best)
echo "porcupine ${pb} s, hashgrad ${ob} s, ratio porcupine/hashgrad $(python3 -c "print(f'{$pb/$ob:.1f}')")x"

echo "== partitioned kv curve (10 keys), one run each"
(cd "$repo" && cargo run --quiet --example check_histories -- "$work/curve")
"$bench/run.sh" "$work/curve" 2>/dev/null | grep -v '^TOTAL' | sort > "$work/porcupine.txt" || true
printf '%-14s %12s %12s %8s\n' history porcupine_s hashgrad_s ratio
for f in "$work"/curve/kv/*.txt; do
  name=$(basename "$f")
  ps=$(awk -v n="$name" '$1 == n {print $3}' "$work/porcupine.txt")
  os=$(ours_total "$f")
  printf '%-14s %12s %12s %8s\n' "${name%.txt}" "${ps:-n/a}" "$os" "$(python3 -c "print(f'{float(\"${ps:-0}\")/$os:.1f}x' if '${ps}' else 'n/a')")"
done
