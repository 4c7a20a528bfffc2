#!/usr/bin/env bash
# Fetch one released statuspage binary for this runner and verify it against the release's
# SHA256SUMS before it is ever run. Never compiles. Used by every action in this repository.
#   fetch.sh BINARY      (env: ACTION_REPOSITORY, ACTION_REF, GH_TOKEN, RUNNER_TEMP, RUNNER_ARCH;
#                          STATUSPAGE_VERSION overrides the release tag, e.g. when this repository
#                          uses its own actions by path, where the runner sets no action ref)
set -euo pipefail
binary=${1:?usage: fetch.sh BINARY}
ACTION_REPOSITORY=${ACTION_REPOSITORY:-${GITHUB_REPOSITORY:-}}
ACTION_REF=${STATUSPAGE_VERSION:-${ACTION_REF:-}}
if [[ -z $ACTION_REPOSITORY || -z $ACTION_REF ]]; then
  echo "::error::cannot tell which statuspage release to fetch: use the action as org/statuspage/actions/<name>@<tag>, or set STATUSPAGE_VERSION"
  exit 2
fi
: "${GH_TOKEN:?}" "${RUNNER_TEMP:?}"
case "${RUNNER_ARCH:-X64}" in
  X64) target=x86_64-unknown-linux-musl ;;
  ARM64) target=aarch64-unknown-linux-musl ;;
  *) echo "::error::statuspage binaries are released for X64 and ARM64 Linux runners, not ${RUNNER_ARCH}"; exit 2 ;;
esac
dir=$RUNNER_TEMP/statuspage-bin
mkdir -p "$dir"
if [[ ! -x $dir/$binary ]]; then
  archive=$binary-$target.tar.gz
  gh release download "$ACTION_REF" --repo "$ACTION_REPOSITORY" --dir "$dir" --clobber \
    --pattern "$archive" --pattern SHA256SUMS
  (cd "$dir" && grep " $archive\$" SHA256SUMS | sha256sum --check --strict --quiet) || {
    echo "::error::checksum mismatch for $archive from $ACTION_REPOSITORY@$ACTION_REF: refusing to run it"
    exit 3
  }
  tar -xzf "$dir/$archive" -C "$dir" "$binary"
  rm -f "$dir/$archive"
fi
echo "$dir" >>"$GITHUB_PATH"
echo "$dir/$binary"
