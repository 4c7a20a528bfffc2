#!/usr/bin/env bash
# Suite 30-images: lint the images' Dockerfile (hadolint, checkov) and the images workflow (zizmor,
# actionlint), check the fixture tree against the lock, then run images/tests with pytest (in a
# virtualenv of exactly images/requirements/runtime.lock) against a real PostgreSQL and Redis on loopback.
# Fails loudly on anything missing; never skips.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$repo"
CACHE=${STATUSPAGE_CACHE:-/var/cache/statuspage}
PATH=$CACHE/tools/bin:$PATH
log() { printf '[30-images] %s\n' "$*" >&2; }
need() { command -v "$1" >/dev/null || { log "missing tool: $1 ($2)"; exit 1; }; }

# --- static checks ----------------------------------------------------------------------------
need hadolint "tests/tools/install.sh installs it"
need checkov "tests/tools/install.sh installs it"
need zizmor "tests/tools/install.sh installs it"
need actionlint "tests/tools/install.sh installs it"
log "hadolint images/Dockerfile"
hadolint --failure-threshold warning images/Dockerfile
log "checkov (dockerfile checks) images/"
checkov --quiet --compact --skip-download --framework dockerfile -d images
log "zizmor + actionlint .github/workflows/images.yml"
zizmor --offline --persona=auditor .github/workflows/images.yml
actionlint .github/workflows/images.yml

# --- test virtualenv: exactly the images' lock, then the test tools; rebuilt when either changes --
lock=images/requirements/runtime.lock
req=images/tests/requirements.txt
venv=$CACHE/venv-images
want=$(cat "$lock" "$req" | sha256sum | cut -d' ' -f1)
if [[ $(cat "$venv/.requirements-sha256" 2>/dev/null) != "$want" ]]; then
  log "creating $venv from $lock + $req"
  # psycopg2 is locked as source (as Status-Page requires it): building it needs libpq's headers.
  command -v pg_config >/dev/null ||
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends libpq-dev >/dev/null
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check --require-hashes --no-deps -r "$lock"
  "$venv/bin/pip" install -q --disable-pip-version-check --no-deps -r "$req"
  "$venv/bin/pip" check >&2
  printf '%s' "$want" >"$venv/.requirements-sha256"
fi

# --- the fixture tree's requirements are what the lock installs (the image build checks the same) -
log "tests/fixtures/statuspage-src/requirements.txt is satisfied by $lock"
"$venv/bin/python" images/build/check_requirements.py tests/fixtures/statuspage-src/requirements.txt >/dev/null

# --- PostgreSQL and Redis on loopback, stopped by PID on exit ----------------------------------
if ! command -v redis-server >/dev/null; then
  log "installing redis-server"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends redis-server >/dev/null
fi
[[ -x /usr/lib/postgresql/15/bin/postgres ]] || { log "PostgreSQL 15 is not installed"; exit 1; }
state=$(mktemp -d /tmp/statuspage-images.XXXXXX)
cleanup() {
  "$venv/bin/python" "$repo/images/tests/services.py" stop "$state" || true
  rm -rf "$state"
}
trap cleanup EXIT
log "starting PostgreSQL and Redis in $state"
"$venv/bin/python" "$repo/images/tests/services.py" start "$state" >/dev/null

# --- pytest ------------------------------------------------------------------------------------
log "pytest images/tests"
cd images/tests
STATUSPAGE_TEST_SERVICES=$state PYTHONDONTWRITEBYTECODE=1 \
  "$venv/bin/python" -m pytest -p no:cacheprovider -q --timeout=300 -rfEs .
