#!/usr/bin/env bash
# Regenerate images/requirements/runtime.lock: every package the runtime virtualenv installs, pinned
# with hashes, for CPython 3.11 on x86_64 glibc (the images' platform), whatever this machine runs.
#   images/requirements/lock.sh SOURCE_DIR      (a Status-Page tree: SOURCE_DIR/requirements.txt)
# Inputs: SOURCE_DIR/requirements.txt minus the docs tooling (mkdocs*, mkdocstrings*, which the docs
# build installs in a throwaway virtualenv) and minus runtime-excluded.txt (imported by nothing at
# run time), plus runtime-extra.txt and platform.txt.
# The resolver is uv (pin: PY_LOCK in tests/tools/versions.env): unlike pip-compile it resolves for a
# target interpreter and platform (--python-version/--python-platform) rather than the host's.
set -euo pipefail
source_dir=${1:?usage: lock.sh SOURCE_DIR (a Status-Page source tree)}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
[[ -f $source_dir/requirements.txt ]] || { echo "lock.sh: $source_dir/requirements.txt not found" >&2; exit 2; }
# shellcheck source=../../tests/tools/versions.env
source "$repo/tests/tools/versions.env"
venv=${STATUSPAGE_CACHE:-/var/cache/statuspage}/venv-lock
if [[ $(cat "$venv/.pins" 2>/dev/null) != "$PY_LOCK" ]]; then
  rm -rf "$venv"
  python3 -m venv "$venv"
  # shellcheck disable=SC2086 # PY_LOCK is a list of requirement specifiers
  "$venv/bin/pip" install -q --disable-pip-version-check $PY_LOCK
  printf '%s' "$PY_LOCK" >"$venv/.pins"
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# Left out: the docs tooling, and what runtime-excluded.txt names (imported by nothing at run time).
excluded=$(sed -e 's/#.*//' -e 's/[[:space:]]//g' "$here/runtime-excluded.txt" | grep -v '^$' | paste -sd'|' -)
grep -viE '^[[:space:]]*(mkdocs|mkdocstrings)' "$source_dir/requirements.txt" |
  grep -viE "^[[:space:]]*(${excluded:-^})([^A-Za-z0-9_.-]|$)" >"$work/statuspage.txt" || true
cp "$here/runtime-extra.txt" "$here/platform.txt" "$work/"
# Relative names in a fixed folder keep the lock's "# via" comments the same on every machine.
(
  cd "$work"
  "$venv/bin/uv" pip compile --quiet --native-tls --generate-hashes \
    --python-version 3.11 --python-platform x86_64-manylinux_2_28 \
    --custom-compile-command "images/requirements/lock.sh SOURCE_DIR" \
    statuspage.txt runtime-extra.txt platform.txt -o runtime.lock
)
cp "$work/runtime.lock" "$here/runtime.lock"
echo "lock.sh: wrote $here/runtime.lock ($(grep -c '^[a-z0-9]' "$here/runtime.lock") packages)" >&2
