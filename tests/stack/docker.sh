#!/usr/bin/env bash
# The stack's own Docker Engine (Debian docker.io): its own socket, data root, exec root, config
# file and bridge (spdocker0, created here), and no iptables rules, so it never disturbs another
# engine on the host. Containers and RUN steps get a network that reaches only this host.
#   docker.sh up | down
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SOCK=$STACK_DIR/docker.sock
BRIDGE=spdocker0
BRIDGE_CIDR=172.30.255.1/24
export DOCKER_HOST=unix://$SOCK

healthy() { docker version --format '{{.Server.Version}}' >/dev/null 2>&1; }

up() {
  if stack_trust_ca && stack_running docker; then
    stack_log "restarting the docker engine so that it trusts the stack CA"
    stack_stop docker
  fi
  if stack_running docker && healthy; then
    stack_log "docker engine already running ($DOCKER_HOST)"
  else
    stack_stop docker
    command -v dockerd >/dev/null || stack_die "dockerd not found: run tests/tools/install.sh"
    mkdir -p "$STACK_DIR/docker-data" "$STACK_DIR/docker-exec"
    echo '{}' >"$STACK_DIR/docker-daemon.json"
    if ! ip link show "$BRIDGE" >/dev/null 2>&1; then
      ip link add "$BRIDGE" type bridge
      ip addr add "$BRIDGE_CIDR" dev "$BRIDGE"
    fi
    ip link set "$BRIDGE" up
    stack_start docker dockerd \
      --host "$DOCKER_HOST" \
      --data-root "$STACK_DIR/docker-data" \
      --exec-root "$STACK_DIR/docker-exec" \
      --pidfile "$STACK_DIR/docker-exec/dockerd.pid" \
      --config-file "$STACK_DIR/docker-daemon.json" \
      --bridge "$BRIDGE" --iptables=false --ip-masq=false
    stack_wait_for "docker engine" 60 healthy
    stack_log "docker engine up ($DOCKER_HOST, $(docker version --format '{{.Server.Version}} API {{.Server.APIVersion}}'))"
  fi
  stack_env DOCKER_HOST "$DOCKER_HOST"
}

down() {
  stack_stop docker
  ip link del "$BRIDGE" 2>/dev/null || true
  # dockerd leaves its managed containerd's mounts behind only if it was killed hard.
  grep -o " $STACK_DIR/docker-[^ ]*" /proc/mounts | sort -r | while read -r m; do umount -l "$m" 2>/dev/null || true; done
}

"${1:?usage: docker.sh up|down}"
