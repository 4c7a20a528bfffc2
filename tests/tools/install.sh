#!/usr/bin/env bash
# Install every third-party tool the tests and the local stack use, at the pins in versions.env.
# Idempotent: a second run with nothing to do takes about a second. Needs root (apt-get).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=versions.env
source "$here/versions.env"
CACHE=${STATUSPAGE_CACHE:-/var/cache/statuspage}
BIN=$CACHE/tools/bin
mkdir -p "$BIN"
log() { printf '[tools] %s\n' "$*" >&2; }

# --- Debian packages -----------------------------------------------------------------------
missing=()
for pkg in $APT_PACKAGES; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
if ((${#missing[@]})); then
  log "apt-get install ${missing[*]}"
  apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi
# Debian starts these as services on install; the stack runs its own instances instead.
for svc in docker containerd redis-server postgresql; do
  if command -v systemctl >/dev/null && systemctl is-active -q "$svc" 2>/dev/null; then
    systemctl stop "$svc" >/dev/null 2>&1 || true
  fi
done

# --- .deb files unpacked, never installed (see versions.env) ---------------------------------
# debs_current DIR "PINS": DIR holds exactly these pins. unpack_debs DIR "PINS": download each
# "pool path=sha256" entry from $DEBIAN_MIRROR, check it and dpkg -x it into DIR/root; the caller
# finishes DIR, then records the pins with debs_done DIR "PINS".
debs_pin() { sha256sum <<<"$1" | cut -d' ' -f1 | tr -d '\n'; }
debs_current() { [[ $(cat "$1/.pins" 2>/dev/null) == "$(debs_pin "$2")" ]]; }
debs_done() { debs_pin "$2" >"$1/.pins"; }
unpack_debs() {
  local dir=$1 pins=$2 entry path want deb got
  rm -rf "$dir"
  mkdir -p "$dir/debs" "$dir/root"
  for entry in $pins; do
    path=${entry%=*} want=${entry##*=} deb=$dir/debs/$(basename "${entry%=*}")
    log "download $DEBIAN_MIRROR/$path"
    curl -fsSL --retry 3 -o "$deb" "$DEBIAN_MIRROR/$path" ||
      { log "cannot download $path: if Debian replaced it, bump the pin in tests/tools/versions.env"; exit 1; }
    got=$(sha256sum "$deb" | cut -d' ' -f1)
    [[ $got == "$want" ]] || { log "$deb: SHA-256 $got, expected $want (tests/tools/versions.env)"; exit 1; }
    dpkg -x "$deb" "$dir/root"
  done
  rm -rf "$dir/debs"
}

# --- Docker Engine 26.1 from Debian trixie, unpacked (see versions.env) -----------------------
# $CACHE/docker/bin gets dockerd, docker-proxy, containerd + shims and the docker CLI;
# $CACHE/docker/cli-plugins the buildx plugin. Re-unpacked only when the pin list changes.
DOCKER_DIR=$CACHE/docker
if ! debs_current "$DOCKER_DIR" "$DOCKER_DEBS"; then
  unpack_debs "$DOCKER_DIR" "$DOCKER_DEBS"
  mkdir -p "$DOCKER_DIR/bin" "$DOCKER_DIR/cli-plugins"
  for b in usr/sbin/dockerd usr/sbin/docker-proxy usr/bin/containerd usr/bin/containerd-shim-runc-v2 usr/bin/ctr usr/bin/docker; do
    ln -sf "$DOCKER_DIR/root/$b" "$DOCKER_DIR/bin/$(basename "$b")"
  done
  ln -sf "$DOCKER_DIR/root/usr/libexec/docker/cli-plugins/docker-buildx" "$DOCKER_DIR/cli-plugins/docker-buildx"
  debs_done "$DOCKER_DIR" "$DOCKER_DEBS"
fi
ln -sf "$DOCKER_DIR/bin/docker" "$BIN/docker"

# --- promtool and amtool from Debian bookworm's packages, unpacked (see versions.env) ------------
PROMETHEUS_DIR=$CACHE/prometheus
if ! debs_current "$PROMETHEUS_DIR" "$PROMETHEUS_DEBS"; then
  unpack_debs "$PROMETHEUS_DIR" "$PROMETHEUS_DEBS"
  "$PROMETHEUS_DIR/root/usr/bin/promtool" --version >/dev/null
  "$PROMETHEUS_DIR/root/usr/bin/amtool" --version >/dev/null
  debs_done "$PROMETHEUS_DIR" "$PROMETHEUS_DEBS"
fi
ln -sf "$PROMETHEUS_DIR/root/usr/bin/promtool" "$BIN/promtool"
ln -sf "$PROMETHEUS_DIR/root/usr/bin/amtool" "$BIN/amtool"

# --- Python virtualenvs ---------------------------------------------------------------------
# venv NAME "PKGS": one virtualenv per set, rebuilt only when the pin list changes.
venv() {
  local name=$1 pkgs=$2 dir=$CACHE/venv-$1
  if [[ $(cat "$dir/.pins" 2>/dev/null) != "$pkgs" ]]; then
    log "pip install into $dir: $pkgs"
    rm -rf "$dir"
    python3 -m venv "$dir"
    # shellcheck disable=SC2086
    "$dir/bin/pip" install -q --disable-pip-version-check $pkgs
    printf '%s' "$pkgs" >"$dir/.pins"
  fi
}
venv judges "$PY_JUDGES"
venv moto "$PY_MOTO"
for tool in checkov cfn-lint hadolint zizmor kubernetes-validate; do
  ln -sf "$CACHE/venv-judges/bin/$tool" "$BIN/$tool"
done
ln -sf "$CACHE/venv-moto/bin/moto_server" "$BIN/moto_server"

# --- Go tools -------------------------------------------------------------------------------
for spec in $GO_TOOLS; do
  name=$(basename "${spec%@*}")
  [[ $name == v5 ]] && name=kustomize
  stamp=$CACHE/tools/$name.version
  if [[ ! -x $BIN/$name || $(cat "$stamp" 2>/dev/null) != "$spec" ]]; then
    log "go install $spec"
    GOTOOLCHAIN=local GOBIN=$BIN GOFLAGS=-trimpath go install "$spec"
    printf '%s' "$spec" >"$stamp"
  fi
done

# --- promql-names (tests/tools/promql-names): Prometheus's PromQL parser, pinned by its go.mod -----
stamp=$CACHE/tools/promql-names.version
promql_src=$(cat "$here"/promql-names/{go.mod,go.sum,main.go} | sha256sum | cut -d' ' -f1)
if [[ ! -x $BIN/promql-names || $(cat "$stamp" 2>/dev/null) != "$promql_src" ]]; then
  log "go build tests/tools/promql-names"
  (cd "$here/promql-names" && GOTOOLCHAIN=local GOFLAGS=-trimpath go build -o "$BIN/promql-names" .)
  printf '%s' "$promql_src" >"$stamp"
fi

# --- npm packages ---------------------------------------------------------------------------
# npm_prefix NAME "PKGS": one npm prefix per set under $CACHE/npm-NAME, reinstalled only when the
# pin list changes. Node and npm come from Debian (nodejs, npm) when the machine has none.
if ! command -v npm >/dev/null; then
  log "apt-get install nodejs npm"
  apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends nodejs npm >/dev/null
fi
npm_prefix() {
  local name=$1 pkgs=$2 dir=$CACHE/npm-$1
  if [[ $(cat "$dir/.pins" 2>/dev/null) != "$pkgs" ]]; then
    log "npm install into $dir: $pkgs"
    rm -rf "$dir"
    mkdir -p "$dir"
    # shellcheck disable=SC2086
    npm install --prefix "$dir" --no-audit --no-fund --loglevel=error $pkgs >/dev/null
    printf '%s' "$pkgs" >"$dir/.pins"
  fi
}
npm_prefix prism "$NPM_PRISM"
npm_prefix github-openapi "$NPM_GITHUB_OPENAPI"
ln -sf "$CACHE/npm-prism/node_modules/.bin/prism" "$BIN/prism"

# --- nektos/act (the Actions runner of suite 60-actions-act) ----------------------------------
# Built once from the module proxy (about 4 minutes on 2 cores, 30 MB), cached like the Go tools.
stamp=$CACHE/tools/act.version
if [[ ! -x $BIN/act || $(cat "$stamp" 2>/dev/null) != "$ACT_MODULE" ]]; then
  log "go install $ACT_MODULE (a few minutes)"
  start=$SECONDS
  GOTOOLCHAIN=local GOBIN=$BIN GOFLAGS=-trimpath go install "$ACT_MODULE"
  printf '%s' "$ACT_MODULE" >"$stamp"
  log "act built in $((SECONDS - start)) s"
fi
# --- kube-router (the stack cluster's NetworkPolicy enforcer, see tests/stack/cluster.sh) ---------
# Built once from the module proxy (about 5 minutes on 2 cores, 57 MB), static, cached like act.
stamp=$CACHE/tools/kube-router.version
if [[ ! -x $BIN/kube-router || $(cat "$stamp" 2>/dev/null) != "$KUBE_ROUTER_MODULE" ]]; then
  log "go install $KUBE_ROUTER_MODULE (a few minutes)"
  start=$SECONDS
  GOTOOLCHAIN=local GOBIN=$BIN GOFLAGS=-trimpath CGO_ENABLED=0 go install \
    -ldflags="-s -w -X github.com/cloudnativelabs/kube-router/v2/pkg/version.Version=${KUBE_ROUTER_MODULE##*@}" \
    "$KUBE_ROUTER_MODULE"
  printf '%s' "$KUBE_ROUTER_MODULE" >"$stamp"
  log "kube-router built in $((SECONDS - start)) s"
fi
log "tools ready in $BIN"
