#!/usr/bin/env bash
# A local stand-in for the official python:3.11-slim-bookworm image, imported into the stack's Docker
# Engine as statuspage.local/python:3.11-slim-bookworm, so images/Dockerfile builds here unchanged:
#   docker build --build-arg BASE_IMAGE=statuspage.local/python:3.11-slim-bookworm ...
#
# Why a stand-in and not the real image: this machine cannot reach Docker Hub, and its HTTPS traffic
# goes through TLS interception, so pip inside a build only works when the interception CA is trusted.
# The stand-in is Debian bookworm (debootstrap minbase) with Debian's python3.11, the host's CA bundle
# added to its trust store and PIP_CERT set. Everything else mirrors the official image where the
# Dockerfile relies on it: apt sources bookworm, bookworm-updates and bookworm-security (the pinned
# libpq is only in -security), `python`/`python3` on PATH, the CPython headers (no static
# library), ca-certificates, tzdata, netbase,
# LANG=C.UTF-8, CMD ["python3"], no EXTERNALLY-MANAGED marker.
#
# The root filesystem is built once and cached as $STACK_CACHE/base-images/<name>-<inputs hash>.tar.gz;
# the image carries that hash as a label, so a second run with the image present is one inspect.
#   base-image.sh up
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

IMAGE=statuspage.local/python:3.11-slim-bookworm
MIRROR=http://deb.debian.org/debian
SECURITY_MIRROR=http://deb.debian.org/debian-security
PACKAGES=python3.11,python3-venv,python3-pip,ca-certificates,tzdata,netbase
HOST_CA=/etc/ssl/certs/ca-certificates.crt
LABEL=statuspage.local.base-inputs
export DOCKER_HOST=${DOCKER_HOST:-unix://$STACK_DIR/docker.sock}

# The CAs the image trusts: the host's bundle (with the interception CA) minus the stack's own CA,
# which no build step needs; so the image does not change when the stack makes a new CA.
CA_BUNDLE=$STACK_DIR/base-image-ca.crt
write_ca_bundle() {
  python3 - "$HOST_CA" "$STACK_TRUSTED_CA" >"$CA_BUNDLE.tmp" <<'PY'
import re
import sys

pem = re.compile(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", re.S)
with open(sys.argv[1]) as host:
    certificates = pem.findall(host.read())
try:
    with open(sys.argv[2]) as stack:
        skip = set(pem.findall(stack.read()))
except FileNotFoundError:
    skip = set()
sys.stdout.write("".join(c + "\n" for c in certificates if c not in skip))
PY
  mv "$CA_BUNDLE.tmp" "$CA_BUNDLE"
}

# Everything the image is made of: this script and the CA bundle it bakes in.
inputs_hash() {
  cat "${BASH_SOURCE[0]}" "$CA_BUNDLE" | sha256sum | cut -c1-16
}

debian_sources() {
  cat <<EOF
Types: deb
URIs: $MIRROR
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $SECURITY_MIRROR
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
}

build_rootfs() { # TARBALL
  local tarball=$1 root
  command -v debootstrap >/dev/null || {
    stack_log "installing debootstrap"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends debootstrap >/dev/null
  }
  root=$(mktemp -d "$STACK_CACHE/base-images/rootfs.XXXXXX")
  # shellcheck disable=SC2064 # expand now: the trap must remove this run's tree
  trap "rm -rf '$root'" EXIT
  stack_log "debootstrap bookworm (minbase + $PACKAGES)"
  debootstrap --variant=minbase --include="$PACKAGES" bookworm "$root" "$MIRROR" \
    >"$STACK_DIR/logs/base-image.log" 2>&1 || stack_die "debootstrap failed (see $STACK_DIR/logs/base-image.log)"
  rm -f "$root/etc/apt/sources.list"
  debian_sources >"$root/etc/apt/sources.list.d/debian.sources"
  # The interception CA (with the rest of the host bundle) in the image's own trust store.
  cp "$CA_BUNDLE" "$root/usr/local/share/ca-certificates/host-ca-bundle.crt"
  chroot "$root" /bin/sh -ec '
    export DEBIAN_FRONTEND=noninteractive
    apt-get -q update
    apt-get -q -y upgrade
    update-ca-certificates
    rm -f /usr/lib/python3.11/EXTERNALLY-MANAGED
    # The official image ships the CPython headers (building psycopg2 needs them) but no static
    # library and no libc6-dev, which python3.11-dev would pull in: unpack the headers only.
    cd /tmp && apt-get -q download libpython3.11-dev && dpkg -x libpython3.11-dev_*.deb / && rm -f ./*.deb
    rm -f /usr/lib/x86_64-linux-gnu/libpython3.11*.a /usr/lib/python3.11/config-3.11-x86_64-linux-gnu/*.a
    # Like the slim Debian images: no translations (locale.alias stays).
    find /usr/share/locale -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} +
    apt-get clean
    rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/apt/* /var/log/dpkg.log
    ln -sf /usr/bin/python3 /usr/local/bin/python
  ' >>"$STACK_DIR/logs/base-image.log" 2>&1 || stack_die "configuring the root fs failed (see $STACK_DIR/logs/base-image.log)"
  rm -rf "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/*
  tar --numeric-owner -C "$root" -czf "$tarball.tmp" .
  mv "$tarball.tmp" "$tarball"
  rm -rf "$root"
  trap - EXIT
}

up() {
  local hash tarball start=$SECONDS
  write_ca_bundle
  hash=$(inputs_hash)
  if [[ $(docker image inspect --format "{{index .Config.Labels \"$LABEL\"}}" "$IMAGE" 2>/dev/null) == "$hash" ]]; then
    stack_log "base image $IMAGE already imported ($hash)"
    return 0
  fi
  mkdir -p "$STACK_CACHE/base-images"
  tarball=$STACK_CACHE/base-images/python-3.11-slim-bookworm-$hash.tar.gz
  if [[ ! -s $tarball ]]; then
    build_rootfs "$tarball"
    # Root filesystems of earlier inputs are never used again.
    find "$STACK_CACHE/base-images" -maxdepth 1 -name 'python-3.11-slim-bookworm-*.tar.gz' ! -path "$tarball" -delete
  fi
  docker version >/dev/null 2>&1 || stack_die "no Docker Engine at $DOCKER_HOST (run tests/stack/up.sh); $tarball is ready"
  docker import \
    --change "ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin" \
    --change "ENV LANG=C.UTF-8" \
    --change "ENV PYTHON_VERSION=3.11" \
    --change "ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt" \
    --change "ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt" \
    --change "LABEL $LABEL=$hash" \
    --change 'CMD ["python3"]' \
    "$tarball" "$IMAGE" >/dev/null
  stack_log "base image $IMAGE imported from $tarball in $((SECONDS - start))s"
}

"${1:?usage: base-image.sh up}"
