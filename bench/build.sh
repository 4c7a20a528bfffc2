#!/usr/bin/env bash
# Benchmark: statuspage-build against the tools users would pick instead, on the real
# images/Dockerfile with the fixture source tree (tests/fixtures/statuspage-src), on the stack's
# engine (Docker Engine 26.1) and FROM the stack's stand-in base, in the same run. Reports wall
# times, ratios and the web image's size; asserts nothing.
#
#   bench/build.sh [ROUNDS]     (default 1; needs tests/stack/up.sh; builds --release binaries)
#
# cold      the engine's build cache and the images emptied before each tool, so each pays the
#           same apt and PyPI downloads (through the stack's NAT): statuspage-build, with and
#           without the export of the cache images (--no-cache-export); three
#           `docker build --target` with the classic builder; three `docker buildx build
#           --target` (BuildKit, what `docker build` is today); `docker buildx bake` of the three.
# warm      the same tree again, everything cached: statuspage-build vs three `docker buildx build`.
# registry  a second commit on an emptied engine with --cache-from-commit (the registry's inline
#           cache and the cache images of the first) vs statuspage-build cold.
# skip      every image already in the registry: the time statuspage-build needs to do nothing.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
rounds=${1:-1}
# shellcheck source=/dev/null
source "${STATUSPAGE_STACK_DIR:-/tmp/statuspage-stack}/env" 2>/dev/null ||
  { echo "stack not running: run tests/stack/up.sh" >&2; exit 1; }
[[ -n ${STACK_BASE_IMAGE:-} ]] || { echo "no stand-in base image: run tests/stack/up.sh" >&2; exit 1; }
# STATUSPAGE_BIN_DIR=target/debug reuses a debug build (the build is the engine's work, not ours).
bin_dir=${STATUSPAGE_BIN_DIR:-$repo/target/release}
[[ -n ${STATUSPAGE_BIN_DIR:-} ]] || (cd "$repo" && cargo build --release --quiet -p statuspage-build-images)
bin=$bin_dir/statuspage-build
source_dir=$repo/tests/fixtures/statuspage-src
context=$repo/images

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export SOURCE_DATE_EPOCH=1767225600 # a fixed creation time, as a real commit has
now() { date +%s.%N; }
elapsed() { echo "$(now) - $1" | bc; }
ratio() { echo "$1 / $2" | bc -l; }

# The bench's images, then every untagged image (the classic builder keeps each step as one, and
# the builder stage's chain is no target's parent: round 2 of 2026-11-30 found it), then
# BuildKit's cache. The base and other tagged images stay.
empty_engine() {
  docker image ls --format '{{.Repository}}:{{.Tag}}' | { grep -E '/bench-' || true; } | xargs -r docker image rm -f >/dev/null
  docker image prune -f >/dev/null
  docker builder prune -af >/dev/null
}

# ours SHA PREFIX [FLAGS...]: statuspage-build of web, worker and scheduler into PREFIX-*.
ours() {
  local sha=$1 prefix=$2
  shift 2
  STATUSPAGE_REGISTRY_USERNAME=$STACK_REGISTRY_USER STATUSPAGE_REGISTRY_PASSWORD=$STACK_REGISTRY_PASSWORD \
    "$bin" --context "$context" --source "$source_dir" --sha "$sha" --registry "$STACK_REGISTRY" \
    --build-arg "BASE_IMAGE=$STACK_BASE_IMAGE" \
    --target "web=$prefix-web,worker=$prefix-worker,scheduler=$prefix-scheduler" "$@" \
    >"$work/ours.json" 2>"$work/ours.log" || { cat "$work/ours.log" >&2; return 1; }
}

# A copy of images/ with the source inside, for the CLI builds that take one context.
cli_context=$work/context
cp -r "$context" "$cli_context"
cp -r "$source_dir" "$cli_context/source"
classic() {
  local target
  for target in web worker scheduler; do
    DOCKER_BUILDKIT=0 docker build -q -f "$cli_context/Dockerfile" --build-arg "BASE_IMAGE=$STACK_BASE_IMAGE" \
      --target "$target" -t "$STACK_REGISTRY/bench-$1-$target:x" "$cli_context" >/dev/null 2>"$work/cli.log" ||
      { cat "$work/cli.log" >&2; return 1; }
  done
}
buildx() {
  local target
  for target in web worker scheduler; do
    docker buildx build -q --build-context "statuspage-source=$source_dir" --build-arg "BASE_IMAGE=$STACK_BASE_IMAGE" \
      --target "$target" -t "$STACK_REGISTRY/bench-$1-$target:x" "$context" >/dev/null 2>"$work/cli.log" ||
      { cat "$work/cli.log" >&2; return 1; }
  done
}
bake() {
  cat >"$work/docker-bake.hcl" <<HCL
group "default" { targets = ["web", "worker", "scheduler"] }
target "common" {
  context = "$context"
  contexts = { statuspage-source = "$source_dir" }
  args = { BASE_IMAGE = "$STACK_BASE_IMAGE" }
}
target "web" {
  inherits = ["common"]
  target = "web"
  tags = ["$STACK_REGISTRY/bench-$1-web:x"]
}
target "worker" {
  inherits = ["common"]
  target = "worker"
  tags = ["$STACK_REGISTRY/bench-$1-worker:x"]
}
target "scheduler" {
  inherits = ["common"]
  target = "scheduler"
  tags = ["$STACK_REGISTRY/bench-$1-scheduler:x"]
}
HCL
  docker buildx bake --progress quiet -f "$work/docker-bake.hcl" --load >/dev/null 2>"$work/cli.log" ||
    { cat "$work/cli.log" >&2; return 1; }
}
timed() { local t; t=$(now); "$@"; elapsed "$t"; }
docker login -u "$STACK_REGISTRY_USER" --password-stdin "$STACK_REGISTRY" <<<"$STACK_REGISTRY_PASSWORD" >/dev/null 2>&1

# Warm-up, untimed: the first fetch of the apt and PyPI files through this machine's network path
# (an intercepting proxy caches them) would otherwise be paid by whichever tool runs first.
empty_engine
ours "$(printf '%040x' 1)" "bench-warmup-$$" || exit 1
empty_engine

printf '| round | statuspage-build cold | statuspage-build cold, --no-cache-export | docker build x3 (classic) | docker buildx build x3 | docker buildx bake | statuspage-build warm | buildx x3 warm | statuspage-build, 2nd commit, empty engine + registry cache |\n|---|---|---|---|---|---|---|---|---|\n' >"$work/table"
sums=(0 0 0 0 0 0)
for round in $(seq 1 "$rounds"); do
  sha1=$(printf '%040x' $((round * 2)))
  sha2=$(printf '%040x' $((round * 2 + 1)))
  prefix=bench-r$round-$(head -c4 /dev/urandom | od -An -tx1 | tr -d ' \n')
  empty_engine
  ours_cold=$(timed ours "$sha1" "$prefix")
  web_size=$(docker image inspect --format '{{.Size}}' "$STACK_REGISTRY/$prefix-web:$sha1")
  ours_warm=$(timed ours "$sha1" "$prefix" --no-skip-existing)
  # The registry cache of the first commit: the images (inline cache) and the builder stage's.
  for target in web worker scheduler; do
    docker push -q "$STACK_REGISTRY/$prefix-$target:$sha1" >/dev/null
  done
  empty_engine
  ours_registry=$(timed ours "$sha2" "$prefix" --cache-from-commit "$sha1")
  # For the skip decision at the end: this commit's images in the registry before the engine empties.
  for target in web worker scheduler; do
    docker push -q "$STACK_REGISTRY/$prefix-$target:$sha2" >/dev/null
  done
  # The three other cold builds in an order that rotates with the round.
  for tool in $(printf 'noexport\nclassic\nbuildx\nbake\n' | awk -v r="$round" '{a[NR-1]=$0} END {for (i = 0; i < 4; i++) print a[(i + r - 1) % 4]}'); do
    empty_engine
    case $tool in
      noexport) noexport_cold=$(timed ours "$sha1" "$prefix-noexport" --no-cache-export) ;;
      classic) classic_cold=$(timed classic "r$round") ;;
      buildx)
        buildx_cold=$(timed buildx "r$round")
        buildx_warm=$(timed buildx "r$round")
        ;;
      bake) bake_cold=$(timed bake "r$round") ;;
    esac
  done
  printf '| %s | %.1f s | %.1f s | %.1f s | %.1f s | %.1f s | %.2f s | %.2f s | %.1f s |\n' "$round" "$ours_cold" "$noexport_cold" "$classic_cold" \
    "$buildx_cold" "$bake_cold" "$ours_warm" "$buildx_warm" "$ours_registry" >>"$work/table"
  sums[0]=$(echo "${sums[0]} + $(ratio "$ours_cold" "$classic_cold")" | bc -l)
  sums[1]=$(echo "${sums[1]} + $(ratio "$ours_cold" "$bake_cold")" | bc -l)
  sums[2]=$(echo "${sums[2]} + $(ratio "$ours_warm" "$buildx_warm")" | bc -l)
  sums[3]=$(echo "${sums[3]} + $(ratio "$ours_registry" "$ours_cold")" | bc -l)
  sums[4]=$(echo "${sums[4]} + $(ratio "$ours_cold" "$buildx_cold")" | bc -l)
  sums[5]=$(echo "${sums[5]} + $(ratio "$noexport_cold" "$bake_cold")" | bc -l)
  tail -n 1 "$work/table" >&2 # each round's figures as soon as they are known
done

# Skip decision: everything of the last commit is in the registry (pushed in the loop).
skip=$(timed ours "$sha2" "$prefix")
grep -q "build skipped" "$work/ours.log" || { echo "expected a skip; log:" >&2; cat "$work/ours.log" >&2; exit 1; }
empty_engine

cat "$work/table"
mean() { echo "$1 / $rounds" | bc -l; }
printf '\nmean ratios: cold vs docker build x3 (classic) %.2f (goal <= 0.5); cold vs docker buildx build x3 %.2f;\n' \
  "$(mean "${sums[0]}")" "$(mean "${sums[4]}")"
printf 'cold vs docker buildx bake %.2f (goal <= 1.0), without the cache export %.2f; warm vs buildx x3 warm %.2f (goal <= 0.1);\n' \
  "$(mean "${sums[1]}")" "$(mean "${sums[5]}")" "$(mean "${sums[2]}")"
printf '2nd commit on an empty engine with registry cache vs cold %.2f (goal <= 0.3)\n' "$(mean "${sums[3]}")"
printf 'web image size: %d MB uncompressed (goal < 300 MB on the stand-in base)\n' "$((web_size / 1000000))"
printf 'already pushed, skip decided in %.2f s (goal < 1 s)\n' "$skip"
