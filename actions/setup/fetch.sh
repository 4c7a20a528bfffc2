#!/usr/bin/env bash
# Put one statuspage binary on the runner's PATH and print its path. Used by every action here.
#   fetch.sh BINARY      (env: ACTION_REPOSITORY, ACTION_REF, GH_TOKEN, RUNNER_TEMP, RUNNER_ARCH,
#                          GITHUB_WORKSPACE, GITHUB_PATH; STATUSPAGE_VERSION overrides the release tag)
#
# Released use (`uses: org/statuspage/actions/<name>@v1`): download the archive of the release,
# check it against the release's SHA256SUMS and its build provenance attestation
# (`gh attestation verify`), refuse it (exit 3) when either check fails. Never compiles.
#
# Self-test mode: when the actions run from a checkout of this repository itself (its own CI,
# act tests, a fork using `./actions/<name>`), the binaries are built from that checkout instead
# (`cargo build --release --locked`, once per job), or taken from STATUSPAGE_SELF_TEST_BIN_DIR (an
# existing target folder such as target/debug). Chosen only when all of these hold:
#   - no release is asked for (STATUSPAGE_VERSION is empty; the runner sets no action ref for a
#     local action),
#   - the root of the folder this script ships in is inside $GITHUB_WORKSPACE (a released action
#     is unpacked outside it, under the runner's _actions folder, so `@v1` use never qualifies),
#   - that root holds this repository's Cargo workspace (Cargo.toml, Cargo.lock and
#     bins/common/Cargo.toml naming the package statuspage-common).
set -euo pipefail
binary=${1:?usage: fetch.sh BINARY}
: "${RUNNER_TEMP:?}"
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)

self_test_root() {
  [[ -z ${STATUSPAGE_VERSION:-} && -n ${GITHUB_WORKSPACE:-} && -d $GITHUB_WORKSPACE ]] || return 1
  local ws
  ws=$(cd "$GITHUB_WORKSPACE" && pwd -P)
  [[ $root == "$ws" || $root == "$ws"/* ]] || return 1
  [[ -f $root/Cargo.toml && -f $root/Cargo.lock && -f $root/bins/common/Cargo.toml ]] || return 1
  grep -qx 'name = "statuspage-common"' "$root/bins/common/Cargo.toml"
}

if self_test_root; then
  dir=${STATUSPAGE_SELF_TEST_BIN_DIR:-}
  if [[ -n $dir ]]; then
    dir=$(cd "$dir" && pwd -P)
    echo "statuspage: self-test mode ($root is this repository's own checkout): $binary from $dir, not a release" >&2
  else
    dir=$root/target/release
    stamp=$RUNNER_TEMP/statuspage-self-test.built
    if [[ ! -e $stamp ]]; then
      echo "statuspage: self-test mode ($root is this repository's own checkout): building the binaries from it (cargo build --release --locked), not downloading a release" >&2
      (cd "$root" && cargo build --release --locked --bins >&2)
      : >"$stamp"
    else
      echo "statuspage: self-test mode: $binary from $dir (built from this checkout)" >&2
    fi
  fi
  [[ -x $dir/$binary ]] || { echo "::error::self-test mode: $dir/$binary does not exist"; exit 2; }
  echo "$dir" >>"$GITHUB_PATH"
  echo "$dir/$binary"
  exit 0
fi

ACTION_REPOSITORY=${ACTION_REPOSITORY:-${GITHUB_REPOSITORY:-}}
ACTION_REF=${STATUSPAGE_VERSION:-${ACTION_REF:-}}
if [[ -z $ACTION_REPOSITORY || -z $ACTION_REF ]]; then
  echo "::error::cannot tell which statuspage release to fetch: use the action as org/statuspage/actions/<name>@<tag>, or set STATUSPAGE_VERSION"
  exit 2
fi
: "${GH_TOKEN:?}"
case "${RUNNER_ARCH:-X64}" in
  X64) target=x86_64-unknown-linux-musl ;;
  ARM64) target=aarch64-unknown-linux-musl ;;
  *) echo "::error::statuspage binaries are released for X64 and ARM64 Linux runners, not ${RUNNER_ARCH}"; exit 2 ;;
esac
# release_tag: set $tag, the release to download. ACTION_REF itself when it is a release tag
# (vX.Y.Z); otherwise (the major tag v1 that release.yml moves, a branch, a commit SHA) the highest
# vX.Y.Z tag on the commit it names, so the binaries are those released with the action code the
# runner checked out (REST: GET /repos/{repo}/commits/{ref}, GET /repos/{repo}/tags).
release_tag() {
  local sha=''
  if [[ $ACTION_REF =~ ^v[0-9]+\.[0-9]+\.[0-9]+$ ]]; then
    tag=$ACTION_REF
    return
  fi
  sha=$(gh api "repos/$ACTION_REPOSITORY/commits/$ACTION_REF" --jq .sha) || sha=''
  if [[ ! $sha =~ ^[0-9a-f]{40}$ ]]; then
    echo "::error::cannot resolve $ACTION_REPOSITORY@$ACTION_REF to a commit (gh api): check the ref in uses:, or set the action's version input to a release tag (vX.Y.Z)"
    exit 3
  fi
  tag=$(gh api "repos/$ACTION_REPOSITORY/tags?per_page=100" --paginate --jq ".[] | select(.commit.sha == \"$sha\") | .name" |
    { grep -E '^v[0-9]+\.[0-9]+\.[0-9]+$' || true; } | sort -V | tail -n 1) || tag=''
  if [[ -z $tag ]]; then
    echo "::error::no release (vX.Y.Z tag) is on the commit $ACTION_REPOSITORY@$ACTION_REF names ($sha): use a released version in uses: (e.g. @v1 or @v1.2.3), or set the action's version input"
    exit 2
  fi
  echo "statuspage: $ACTION_REF is release $tag" >&2
}
# One folder per action repository and ref: two versions used in one job never share binaries.
dir=$RUNNER_TEMP/statuspage-bin/$(printf '%s@%s' "$ACTION_REPOSITORY" "$ACTION_REF" | tr -c 'A-Za-z0-9._@-' '_')
mkdir -p "$dir"
if [[ ! -x $dir/$binary ]]; then
  release_tag
  ACTION_REF=$tag
  archive=$binary-$target.tar.gz
  echo "statuspage: downloading $archive from the $ACTION_REPOSITORY release $ACTION_REF" >&2
  gh release download "$ACTION_REF" --repo "$ACTION_REPOSITORY" --dir "$dir" --clobber \
    --pattern "$archive" --pattern SHA256SUMS
  (cd "$dir" && grep " $archive\$" SHA256SUMS | sha256sum --check --strict --quiet) || {
    rm -f "$dir/$archive"
    echo "::error::checksum mismatch for $archive from $ACTION_REPOSITORY@$ACTION_REF: refusing to run it"
    exit 3
  }
  # Fails closed: no attestation, one from another repository or workflow, or no way to check it.
  gh attestation verify "$dir/$archive" --repo "$ACTION_REPOSITORY" \
    --signer-workflow "$ACTION_REPOSITORY/.github/workflows/release.yml" >&2 || {
    rm -f "$dir/$archive"
    echo "::error::no valid build provenance attestation for $archive from $ACTION_REPOSITORY@$ACTION_REF (gh attestation verify): refusing to run it"
    exit 3
  }
  tar -xzf "$dir/$archive" -C "$dir" "$binary"
  rm -f "$dir/$archive"
fi
echo "$dir" >>"$GITHUB_PATH"
echo "$dir/$binary"
