#!/usr/bin/env bash
# Benchmark: statuspage-build against three sequential `docker build --target` calls on the
# same engine (the stack's), in the same run. Reports wall times and ratios; asserts nothing.
#
#   bench/build.sh [ROUNDS]     (default 3; needs tests/stack/up.sh and `cargo build --release`)
#
# cold: a fresh nonce in the shared stage, so nothing is cached for either tool.
# warm: the same tree again, everything cached.
# skip: every image already pushed; the time statuspage-build needs to decide to do nothing.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
rounds=${1:-3}
# shellcheck source=/dev/null
source "${STATUSPAGE_STACK_DIR:-/tmp/statuspage-stack}/env" 2>/dev/null ||
  { echo "stack not running: run tests/stack/up.sh" >&2; exit 1; }
bin=$repo/target/release/statuspage-build
[[ -x $bin ]] || (cd "$repo" && cargo build --release --quiet -p statuspage-build-images)

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp /bin/busybox "$work/busybox"
# The stage graph of images/Dockerfile, with CPU work standing in for downloads and compiles:
# base -> source (fetch + verify) -> builder (wheels, docs, collectstatic); base -> runtime
# (system libraries) <- COPY --from=builder; then web, worker and scheduler differ only in CMD.
cat >"$work/Dockerfile" <<'DOCKERFILE'
FROM scratch AS base
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
COPY nonce /nonce
FROM base AS source
RUN dd if=/dev/zero bs=1M count=300 2>/dev/null | sha256sum > /source
FROM base AS builder
COPY --from=source /source /source
RUN dd if=/dev/zero bs=1M count=600 2>/dev/null | sha256sum > /venv
FROM base AS runtime
RUN dd if=/dev/zero bs=1M count=400 2>/dev/null | sha256sum > /libs
COPY --from=builder /venv /venv
FROM runtime AS worker
CMD ["worker"]
FROM runtime AS scheduler
CMD ["scheduler"]
FROM runtime AS web
CMD ["web"]
DOCKERFILE
sha=$(printf "%040d" 0)
# A fixed creation time, as a real commit has (otherwise the created label is "now").
export SOURCE_DATE_EPOCH=1767225600
now() { date +%s.%N; }
elapsed() { echo "$(now) - $1" | bc; }

ours() { "$bin" --context "$work" --sha "$sha" --registry "$STACK_REGISTRY" --target "web=bench/$1-web,worker=bench/$1-worker,scheduler=bench/$1-scheduler" "${@:2}" >/dev/null 2>"$work/ours.log" || { cat "$work/ours.log" >&2; return 1; }; }
theirs() {
  local target
  for target in web worker scheduler; do
    DOCKER_BUILDKIT=0 docker build -q --target "$target" -t "$STACK_REGISTRY/bench/$1-$target:$sha" "$work" >/dev/null 2>"$work/cli.log"
  done
}

printf '| round | tool | cold s | warm s |\n|---|---|---|---|\n' >"$work/table"
sum_ratio_cold=0 sum_ratio_warm=0
for round in $(seq 1 "$rounds"); do
  uuidgen 2>/dev/null >"$work/nonce" || cat /proc/sys/kernel/random/uuid >"$work/nonce"
  t=$(now); ours "r$round" --no-skip-existing; ours_cold=$(elapsed "$t")
  t=$(now); ours "r$round" --no-skip-existing; ours_warm=$(elapsed "$t")
  cat /proc/sys/kernel/random/uuid >"$work/nonce"
  t=$(now); theirs "r$round"; cli_cold=$(elapsed "$t")
  t=$(now); theirs "r$round"; cli_warm=$(elapsed "$t")
  printf '| %s | statuspage-build | %.2f | %.2f |\n| %s | docker build x3 | %.2f | %.2f |\n' \
    "$round" "$ours_cold" "$ours_warm" "$round" "$cli_cold" "$cli_warm" >>"$work/table"
  sum_ratio_cold=$(echo "$sum_ratio_cold + $ours_cold / $cli_cold" | bc -l)
  sum_ratio_warm=$(echo "$sum_ratio_warm + $ours_warm / $cli_warm" | bc -l)
done

# Skip decision: push one set, then time the run that finds them all.
docker --config "$work/docker-config" login -u "$STACK_REGISTRY_USER" --password-stdin "$STACK_REGISTRY" <<<"$STACK_REGISTRY_PASSWORD" >/dev/null 2>&1
for target in web worker scheduler; do
  docker --config "$work/docker-config" push -q "$STACK_REGISTRY/bench/r1-$target:$sha" >/dev/null
done
t=$(now)
STATUSPAGE_REGISTRY_USERNAME=$STACK_REGISTRY_USER STATUSPAGE_REGISTRY_PASSWORD=$STACK_REGISTRY_PASSWORD ours r1
skip=$(elapsed "$t")
grep -q "build skipped" "$work/ours.log" || { echo "expected a skip; log:" >&2; cat "$work/ours.log" >&2; exit 1; }

cat "$work/table"
printf '\nmean ratio statuspage-build / docker build x3: cold %.2f (goal <= 0.6), warm %.2f (goal <= 0.3)\n' \
  "$(echo "$sum_ratio_cold / $rounds" | bc -l)" "$(echo "$sum_ratio_warm / $rounds" | bc -l)"
printf 'already pushed, skip decided in %.2f s (goal < 1 s)\n' "$skip"
