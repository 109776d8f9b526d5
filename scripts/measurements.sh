#!/usr/bin/env bash
# The measurements behind docs/perf.md that are not part of `cargo test` (they take minutes or
# write files). Two of them are #[ignore]d tests, run here with --ignored:
#   - tests/node_snapshot.rs restart_catch_up_time_with_and_without_snapshots: restart
#     catch-up from a snapshot against a full replay;
#   - tests/report_html.rs generate_a_testnet_dir: a generated testnet dir (REPORT_DIR) for
#     report timing and screenshots.
# Usage: scripts/measurements.sh [snapshot|report-dir|events|propagation|all]
set -euo pipefail
cd "$(dirname "$0")/.."
what="${1:-all}"

if [[ $what == snapshot || $what == all ]]; then
  cargo test --test node_snapshot -- --ignored --nocapture restart_catch_up
fi
if [[ $what == report-dir || $what == all ]]; then
  REPORT_DIR="${REPORT_DIR:-$(mktemp -d)}" REPORT_NODES="${REPORT_NODES:-5}" \
    REPORT_SECS="${REPORT_SECS:-60}" \
    cargo test --test report_html -- --ignored --nocapture generate_a_testnet_dir
fi
if [[ $what == events || $what == all ]]; then
  # Event logs on against off: rounds/s of 3-node clusters, alternating.
  cargo run --example cluster_rounds -- events 4 3
fi
if [[ $what == propagation || $what == all ]]; then
  # Block propagation with event logs off and on, in one run.
  HASHGRAD_BENCH_BLOCKS=300 HASHGRAD_BENCH_SYNC=100 cargo bench --profile dev --bench propagation
fi
