#!/usr/bin/env bash
# The actions' binary fetch (actions/setup/fetch.sh): a released archive is verified against the
# release's SHA256SUMS before it runs, and a tampered one is refused. GitHub is not reachable here,
# so `gh release download` is stood in for by a script that copies from a local release folder;
# everything else (archives, checksums, extraction, GITHUB_PATH) is the real path a runner takes.
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
set -euo pipefail
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

run_fetch() {
  env -i PATH="$work/shim:$PATH" GH_SHIM_RELEASES="$work/release" GH_TOKEN=x RUNNER_ARCH=X64 \
    RUNNER_TEMP="$work/runner" GITHUB_PATH="$work/github_path" \
    ACTION_REPOSITORY=org/statuspage ACTION_REF=v9.9.9 bash actions/setup/fetch.sh statuspage-build
}

path=$(run_fetch) || fail "fetch of a good release"
"$path" --version | grep -q '^statuspage-build ' || fail "the fetched binary does not run"
grep -qx "$work/runner/statuspage-bin" "$work/github_path" || fail "GITHUB_PATH not extended"
echo "[actions] fetched and verified $path" >&2

rm -rf "$work/runner"
printf 'tampered' >>"$work/release/v9.9.9/statuspage-build-x86_64-unknown-linux-musl.tar.gz"
set +e
out=$(run_fetch 2>&1)
code=$?
set -e
[[ $code == 3 ]] || fail "a tampered archive must exit 3, got $code: $out"
grep -q '::error::checksum mismatch' <<<"$out" || fail "no checksum annotation: $out"
[[ ! -e $work/runner/statuspage-bin/statuspage-build ]] || fail "a tampered binary was extracted"
echo "[actions] 2 passed, 0 failed" >&2
