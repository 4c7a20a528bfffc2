#!/usr/bin/env bash
# The stack's own Docker Engine (Debian trixie's docker.io 26.1, unpacked by tests/tools/install.sh
# into $STACK_CACHE/docker): its own socket, data root, exec root, containerd namespace, config
# file and bridge (spdocker0, created here). dockerd writes no iptables rules (--iptables=false),
# so it never disturbs the Kubernetes node's rules or another engine on the host; instead this
# script gives the bridge outbound NAT with two rules of its own, marked "statuspage-stack":
# RUN steps of the real Dockerfile need Debian's mirror and PyPI, as they have on a GitHub runner.
# (The alternative, BuildKit's network.host entitlement, would make our build differ from what
# users run and needs a daemon flag on their side too.)
#   docker.sh up | down
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SOCK=$STACK_DIR/docker.sock
BRIDGE=spdocker0
BRIDGE_CIDR=172.30.255.1/24
BRIDGE_NET=172.30.255.0/24
DOCKER_BIN=$STACK_CACHE/docker/bin
DOCKER_VERSION=26.1.5
export DOCKER_HOST=unix://$SOCK
# The CLI's own folder: credentials never mix with the user's ~/.docker, and buildx is found here.
export DOCKER_CONFIG=$STACK_DIR/docker-config
docker() { "$DOCKER_BIN/docker" "$@"; }

healthy() { docker version --format '{{.Server.Version}}' >/dev/null 2>&1; }
running_version() { docker version --format '{{.Server.Version}}' 2>/dev/null; }

# nat_rule ACTION TABLE CHAIN RULE...: add (-A) a rule once, or delete (-D) it if present.
nat_rule() {
  local action=$1 table=$2 chain=$3
  shift 3
  if iptables -t "$table" -C "$chain" "$@" -m comment --comment statuspage-stack 2>/dev/null; then
    [[ $action == -D ]] && iptables -t "$table" -D "$chain" "$@" -m comment --comment statuspage-stack
  elif [[ $action == -A ]]; then
    iptables -t "$table" -A "$chain" "$@" -m comment --comment statuspage-stack
  fi
  return 0
}

outbound_nat() {
  local action=$1
  nat_rule "$action" nat POSTROUTING -s "$BRIDGE_NET" ! -o "$BRIDGE" -j MASQUERADE
  nat_rule "$action" filter FORWARD -i "$BRIDGE" -j ACCEPT
  nat_rule "$action" filter FORWARD -o "$BRIDGE" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
}

up() {
  [[ -x $DOCKER_BIN/dockerd ]] || stack_die "$DOCKER_BIN/dockerd not found: run tests/tools/install.sh"
  if stack_trust_ca && stack_running docker; then
    stack_log "restarting the docker engine so that it trusts the stack CA"
    stack_stop docker
  fi
  if stack_running docker && healthy && [[ $(running_version) != "$DOCKER_VERSION"* ]]; then
    stack_log "replacing docker engine $(running_version) with $DOCKER_VERSION"
    stack_stop docker
  fi
  mkdir -p "$DOCKER_CONFIG"
  ln -sfn "$STACK_CACHE/docker/cli-plugins" "$DOCKER_CONFIG/cli-plugins"
  [[ -s $DOCKER_CONFIG/config.json ]] || echo '{}' >"$DOCKER_CONFIG/config.json"
  if ! ip link show "$BRIDGE" >/dev/null 2>&1; then
    ip link add "$BRIDGE" type bridge
    ip addr add "$BRIDGE_CIDR" dev "$BRIDGE"
  fi
  ip link set "$BRIDGE" up
  sysctl -qw net.ipv4.ip_forward=1
  outbound_nat -A
  if stack_running docker && healthy; then
    stack_log "docker engine already running ($DOCKER_HOST)"
  else
    stack_stop docker
    mkdir -p "$STACK_DIR/docker-data" "$STACK_DIR/docker-exec"
    echo '{}' >"$STACK_DIR/docker-daemon.json"
    # dockerd finds containerd, its shim and docker-proxy on PATH; runc is bookworm's /usr/sbin/runc.
    PATH=$DOCKER_BIN:$PATH stack_start docker "$DOCKER_BIN/dockerd" \
      --host "$DOCKER_HOST" \
      --data-root "$STACK_DIR/docker-data" \
      --exec-root "$STACK_DIR/docker-exec" \
      --pidfile "$STACK_DIR/docker-exec/dockerd.pid" \
      --config-file "$STACK_DIR/docker-daemon.json" \
      --containerd-namespace statuspage-stack --containerd-plugins-namespace statuspage-stack-plugins \
      --bridge "$BRIDGE" --iptables=false --ip-masq=false
    stack_wait_for "docker engine" 60 healthy
    stack_log "docker engine up ($DOCKER_HOST, $(docker version --format 'Engine {{.Server.Version}} API {{.Server.APIVersion}}'))"
  fi
  stack_env DOCKER_HOST "$DOCKER_HOST"
  stack_env DOCKER_CONFIG "$DOCKER_CONFIG"
}

down() {
  stack_stop docker
  outbound_nat -D
  ip link del "$BRIDGE" 2>/dev/null || true
  # dockerd leaves its managed containerd's mounts behind only if it was killed hard.
  grep -o " $STACK_DIR/docker-[^ ]*" /proc/mounts | sort -r | while read -r m; do umount -l "$m" 2>/dev/null || true; done
}

"${1:?usage: docker.sh up|down}"
