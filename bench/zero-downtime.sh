#!/usr/bin/env bash
# Benchmark: the zero-downtime load run of suite 55 with more requests, for statuspage-rollout and
# for the plain kubectl sequence users would otherwise run, on the same cluster in the same run:
#   kustomize build OVERLAY | kubectl apply --server-side --force-conflicts -f -
#   kubectl rollout status deployment/statuspage-{web,worker,scheduler}
# Each round rolls a new release of the real images (the fixture source with one change) under the
# in-cluster load generator (tests/load/loadgen.py) and keeps measuring until the old pods are gone.
# Prints requests, errors, p50 and p99 per tool and the wall time of each tool; asserts nothing.
#
#   bench/zero-downtime.sh [ROUNDS]     (default 2; needs tests/stack/up.sh and one bin/local-deploy)
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
rounds=${1:-2}
# shellcheck source=/dev/null
source "${STATUSPAGE_STACK_DIR:-/tmp/statuspage-stack}/env" 2>/dev/null ||
  { echo "stack not running: run tests/stack/up.sh" >&2; exit 1; }
# shellcheck source=tests/load/lib.sh
source "$repo/tests/load/lib.sh"
[[ -s $LOAD_STATE/release.json ]] || { echo "run bin/local-deploy once first" >&2; exit 1; }
(cd "$repo" && cargo build --quiet --bins)
trap loadgen_stop EXIT
loadgen_start

ours() {
  "$LOAD_BIN/statuspage-rollout" --overlay "$1" --release "$2" --timeout 5m >/dev/null 2>"$LOAD_STATE/bench.log" ||
    { cat "$LOAD_STATE/bench.log" >&2; return 1; }
}
theirs() {
  kustomize build "$1" | kubectl apply --server-side --force-conflicts --field-manager=kubectl-bench -f - >/dev/null
  local component
  for component in web worker scheduler; do
    kubectl -n "$APP_NS" rollout status "deployment/statuspage-$component" --timeout=300s >/dev/null
  done
}

printf '| round | tool | tool s | requests | errors | p50 ms | p99 ms | max ms |\n|---|---|---|---|---|---|---|---|\n' >"$LOAD_STATE/bench.md"
for round in $(seq 1 "$rounds"); do
  for tool in ours theirs; do
    name=bench-$round-$tool
    new_release "$name"
    overlay=$(overlay_for "$name")
    settle web worker scheduler
    load_reset
    start=$(date +%s.%N)
    "$tool" "$overlay" "$LOAD_STATE/$name.json"
    took=$(echo "$(date +%s.%N) - $start" | bc)
    settle web worker scheduler
    load_stats "$LOAD_STATE/$name.stats.json"
    printf '| %s | %s | %.1f | %s |\n' "$round" "$([[ $tool == ours ]] && echo statuspage-rollout || echo 'kubectl apply + rollout status')" "$took" \
      "$(json "$LOAD_STATE/$name.stats.json" "' | '.join(str(d[k]) for k in ('requests', 'errors', 'p50_ms', 'p99_ms', 'max_ms'))")" >>"$LOAD_STATE/bench.md"
  done
done
cat "$LOAD_STATE/bench.md"
