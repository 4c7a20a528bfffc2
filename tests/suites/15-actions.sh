#!/usr/bin/env bash
# The actions' binary fetch (actions/setup/fetch.sh): a released archive is verified against the
# release's SHA256SUMS and its provenance attestation before it runs, and a tampered or unattested
# one is refused. Self-test mode (binaries from this checkout) is used only when the actions run
# from this repository's own checkout inside the workspace, never for a released `@v1` action.
# And the release layout: a locked (dev) build of every binary, packed by actions/setup/package.sh
# as release.yml packs it, is fetched and run through fetch.sh.
# GitHub is not reachable here, so `gh` is stood in for by a script that copies from a local release
# folder (`release download`) and passes or fails `attestation verify` as the test says; everything
# else (archives, checksums, extraction, GITHUB_PATH) is the real path a runner takes.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.." || exit 1
fail() { echo "[actions] FAILED: $*" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

cargo build --quiet -p statuspage-build-images
mkdir -p "$work/release/v9.9.9" "$work/shim" "$work/runner"
tar -czf "$work/release/v9.9.9/statuspage-build-x86_64-unknown-linux-musl.tar.gz" -C target/debug statuspage-build
(cd "$work/release/v9.9.9" && sha256sum -- *.tar.gz >SHA256SUMS)
cat >"$work/shim/gh" <<'SHIM'
#!/usr/bin/env bash
# gh release download TAG --repo R --dir D --clobber --pattern P...: copy from $GH_SHIM_RELEASES/TAG.
# gh attestation verify FILE ...: fails when $GH_SHIM_RELEASES/ATTEST_FAIL exists. Calls are logged.
# gh api repos/R/commits/REF --jq .sha: the SHA in $GH_SHIM_RELEASES/refs/REF (none: exit 1, as a 404).
# gh api repos/R/tags... --jq '...select(.commit.sha == "SHA")...': names of $GH_SHIM_RELEASES/tags
# lines "NAME SHA" with that SHA (the answer's shape: GitHub's REST "List repository tags").
set -euo pipefail
echo "$*" >>"$GH_SHIM_RELEASES/calls"
if [[ $1 == api ]]; then
  case $2 in
    */commits/*) cat "$GH_SHIM_RELEASES/refs/${2##*/commits/}" 2>/dev/null || { echo "HTTP 404: No commit found" >&2; exit 1; } ;;
    */tags*)
      sha=$(grep -oE '[0-9a-f]{40}' <<<"$*" | head -n 1)
      awk -v sha="$sha" '$2 == sha { print $1 }' "$GH_SHIM_RELEASES/tags"
      ;;
    *) exit 64 ;;
  esac
  exit 0
fi
if [[ $1 == attestation && $2 == verify ]]; then
  [[ ! -e $GH_SHIM_RELEASES/ATTEST_FAIL ]] || { echo "no attestation matched" >&2; exit 1; }
  exit 0
fi
[[ $1 == release && $2 == download ]] || exit 64
tag=$3; shift 3; dir=.; patterns=()
while (($#)); do
  case $1 in
    --dir) dir=$2; shift 2 ;;
    --pattern) patterns+=("$2"); shift 2 ;;
    --repo) shift 2 ;;
    *) shift ;;
  esac
done
for p in "${patterns[@]}"; do cp "$GH_SHIM_RELEASES/$tag/$p" "$dir/"; done
SHIM
chmod +x "$work/shim/gh"

# run_fetch [SCRIPT [BINARY [VAR=VALUE...]]]: fetch.sh as an action step runs it (a released action).
run_fetch() {
  local script=${1:-actions/setup/fetch.sh} binary=${2:-statuspage-build}
  shift 2 || shift $#
  env -i PATH="$work/shim:$PATH" GH_SHIM_RELEASES="$work/release" GH_TOKEN=x RUNNER_ARCH=X64 \
    RUNNER_TEMP="$work/runner" GITHUB_PATH="$work/github_path" \
    ACTION_REPOSITORY=org/statuspage ACTION_REF=v9.9.9 "$@" bash "$script" "$binary"
}

path=$(run_fetch) || fail "fetch of a good release"
"$path" --version | grep -q '^statuspage-build ' || fail "the fetched binary does not run"
grep -qx "$work/runner/statuspage-bin/org_statuspage@v9.9.9" "$work/github_path" || fail "GITHUB_PATH not extended"
echo "[actions] fetched and verified $path" >&2

rm -rf "$work/runner"
printf 'tampered' >>"$work/release/v9.9.9/statuspage-build-x86_64-unknown-linux-musl.tar.gz"
set +e
out=$(run_fetch 2>&1)
code=$?
set -e
[[ $code == 3 ]] || fail "a tampered archive must exit 3, got $code: $out"
grep -q '::error::checksum mismatch' <<<"$out" || fail "no checksum annotation: $out"
[[ ! -e $work/runner/statuspage-bin/org_statuspage@v9.9.9/statuspage-build ]] || fail "a tampered binary was extracted"
echo "[actions] a tampered archive is refused" >&2

# A good archive without a valid attestation is refused too (fails closed).
tar -czf "$work/release/v9.9.9/statuspage-build-x86_64-unknown-linux-musl.tar.gz" -C target/debug statuspage-build
(cd "$work/release/v9.9.9" && sha256sum -- *.tar.gz >SHA256SUMS)
touch "$work/release/ATTEST_FAIL"
set +e
out=$(run_fetch 2>&1)
code=$?
set -e
rm -f "$work/release/ATTEST_FAIL"
[[ $code == 3 ]] || fail "an unattested archive must exit 3, got $code: $out"
grep -q '::error::no valid build provenance attestation' <<<"$out" || fail "no attestation annotation: $out"
[[ ! -e $work/runner/statuspage-bin/org_statuspage@v9.9.9/statuspage-build ]] || fail "an unattested binary was extracted"
echo "[actions] an archive without a valid attestation is refused" >&2

# @v9 (the major tag release.yml moves) and @<sha> resolve to the release tagged on that commit;
# a ref with no release on its commit is refused naming it (exit 2).
released=1111111111111111111111111111111111111111
mkdir -p "$work/release/refs"
echo "$released" >"$work/release/refs/v9"
echo "$released" >"$work/release/refs/$released"
echo 2222222222222222222222222222222222222222 >"$work/release/refs/main"
printf 'v9.9.8 0000000000000000000000000000000000000000\nv9 %s\nv9.9.9 %s\n' "$released" "$released" >"$work/release/tags"
rm -rf "$work/runner"
for ref in v9 "$released"; do
  rm -f "$work/release/calls"
  out=$(run_fetch actions/setup/fetch.sh statuspage-build ACTION_REF="$ref" 2>&1) || fail "fetch @$ref: $out"
  grep -q "statuspage: $ref is release v9.9.9" <<<"$out" || fail "@$ref not resolved to v9.9.9: $out"
  grep -q "release download v9.9.9 " "$work/release/calls" || fail "@$ref did not download v9.9.9"
  # In one job (one RUNNER_TEMP), each ref has a folder of its own: @v9's binary does not stand in
  # for the next ref's.
  [[ $(tail -n1 <<<"$out") == "$work/runner/statuspage-bin/org_statuspage@$ref/statuspage-build" ]] ||
    fail "@$ref: not in a folder of its own: $out"
done
rm -rf "$work/runner"
set +e
out=$(run_fetch actions/setup/fetch.sh statuspage-build ACTION_REF=main 2>&1)
code=$?
set -e
[[ $code == 2 ]] || fail "a ref with no release on its commit must exit 2, got $code: $out"
grep -q '::error::no release (vX.Y.Z tag) is on the commit org/statuspage@main names' <<<"$out" || fail "no annotation naming the ref: $out"
echo "[actions] @v9 and @<sha> fetch the release on their commit (v9.9.9); @main, with none, is refused" >&2
rm -f "$work/release/calls"
rm -rf "$work/runner"

# Self-test mode: this checkout is the workspace and the actions are its own -> binaries from it,
# said in the log, gh never called.
repo=$(pwd -P)
rm -rf "$work/runner" "$work/release/calls"
out=$(run_fetch actions/setup/fetch.sh statuspage-build GITHUB_WORKSPACE="$repo" \
  STATUSPAGE_SELF_TEST_BIN_DIR=target/debug ACTION_REF= 2>&1) || fail "self-test fetch: $out"
[[ $(tail -n1 <<<"$out") == "$repo/target/debug/statuspage-build" ]] || fail "self-test mode did not use this checkout: $out"
grep -q 'self-test mode' <<<"$out" || fail "self-test mode not said in the log: $out"
[[ ! -e $work/release/calls ]] || fail "self-test mode called gh: $(cat "$work/release/calls")"
echo "[actions] from this repository's own checkout: self-test mode" >&2

# Never self-test mode otherwise; each case must download and verify the release:
#   a released action (unpacked under the runner's _actions, outside the workspace) even when the
#   workspace is a statuspage checkout; actions copied into another repository's workspace, also
#   one with a Cargo workspace of its own; this checkout when a release is asked for explicitly.
mkdir -p "$work/_actions/org/statuspage/v9.9.9" "$work/user/.github" "$work/decoy/bins/common"
cp -r actions "$work/_actions/org/statuspage/v9.9.9/"
cp -r actions "$work/user/"
cp -r actions Cargo.toml Cargo.lock "$work/decoy/"
printf '[package]\nname = "statuspage-commons"\n' >"$work/decoy/bins/common/Cargo.toml"
expect_download() {
  local what=$1 out
  shift
  rm -rf "$work/runner" "$work/release/calls"
  out=$(run_fetch "$@" 2>&1) || fail "$what: fetch failed: $out"
  [[ $(tail -n1 <<<"$out") == "$work/runner/statuspage-bin/org_statuspage@v9.9.9/statuspage-build" ]] || fail "$what: not the release: $out"
  ! grep -q 'self-test' <<<"$out" || fail "$what: self-test mode used: $out"
  grep -q '^release download v9.9.9' "$work/release/calls" || fail "$what: nothing downloaded"
  grep -q '^attestation verify' "$work/release/calls" || fail "$what: attestation not verified"
  echo "[actions] $what: downloaded and verified, no self-test" >&2
}
expect_download "released action, statuspage workspace" \
  "$work/_actions/org/statuspage/v9.9.9/actions/setup/fetch.sh" statuspage-build \
  GITHUB_WORKSPACE="$repo" STATUSPAGE_SELF_TEST_BIN_DIR=target/debug
expect_download "actions vendored into another repository" "$work/user/actions/setup/fetch.sh" statuspage-build \
  GITHUB_WORKSPACE="$work/user" STATUSPAGE_SELF_TEST_BIN_DIR="$repo/target/debug"
expect_download "another Cargo workspace" "$work/decoy/actions/setup/fetch.sh" statuspage-build \
  GITHUB_WORKSPACE="$work/decoy" STATUSPAGE_SELF_TEST_BIN_DIR="$repo/target/debug"
expect_download "own checkout with a release asked for" actions/setup/fetch.sh statuspage-build \
  GITHUB_WORKSPACE="$repo" STATUSPAGE_VERSION=v9.9.9

# The release layout: every binary of a locked build, packed as release.yml packs it
# (actions/setup/package.sh; the gnu dev build stands in for the musl release targets, not built
# here: the layout, not the optimiser, is under test, and suite 20 builds the same binaries), is
# found in SHA256SUMS, verified, extracted and runs.
cargo build --quiet --locked --bins
rm -rf "$work/release/v9.9.9" "$work/runner"
actions/setup/package.sh archive target/debug x86_64-unknown-linux-musl "$work/release/v9.9.9"
actions/setup/package.sh sums "$work/release/v9.9.9"
mapfile -t bins < <(cargo metadata --no-deps --format-version 1 |
  python3 -c 'import json,sys; print("\n".join(sorted(t["name"] for p in json.load(sys.stdin)["packages"] for t in p["targets"] if "bin" in t["kind"])))')
((${#bins[@]} >= 4)) || fail "fewer than 4 binaries in the workspace: ${bins[*]}"
[[ $(wc -l <"$work/release/v9.9.9/SHA256SUMS") == "${#bins[@]}" ]] || fail "SHA256SUMS does not list one archive per binary"
for bin in "${bins[@]}"; do
  path=$(run_fetch actions/setup/fetch.sh "$bin" 2>/dev/null) || fail "release layout: fetch of $bin"
  "$path" --version | grep -q "^$bin " || fail "release layout: $bin does not run"
done
echo "[actions] a locked build of ${#bins[@]} binaries in the release layout: fetched, verified, run" >&2
echo "[actions] 10 passed, 0 failed" >&2
