# shellcheck shell=bash
# Shared helpers for the local stack scripts. Source it; it defines no behaviour on its own.
#
# Layout (all overridable through the environment):
#   STACK_DIR    runtime state: pids/, logs/, pki/, env        default /tmp/statuspage-stack
#   STACK_CACHE  things worth keeping across runs: tools, venv, built binaries
#                                                               default /var/cache/statuspage
# Every daemon is started with stack_start NAME and stopped with stack_stop NAME, by the PID
# recorded in $STACK_DIR/pids/NAME.pid. Nothing listens anywhere but 127.0.0.1.

set -euo pipefail

STACK_DIR=${STATUSPAGE_STACK_DIR:-/tmp/statuspage-stack}
STACK_CACHE=${STATUSPAGE_CACHE:-/var/cache/statuspage}
STACK_REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
STACK_ENV_FILE=$STACK_DIR/env
STACK_PKI=$STACK_DIR/pki
export STACK_DIR STACK_CACHE STACK_REPO STACK_ENV_FILE STACK_PKI

mkdir -p "$STACK_DIR/pids" "$STACK_DIR/logs" "$STACK_PKI" "$STACK_CACHE"

stack_log() { printf '[stack] %s\n' "$*" >&2; }
stack_die() { printf '[stack] error: %s\n' "$*" >&2; exit 1; }

# stack_env KEY VALUE: record `export KEY=VALUE` in the env file, replacing an earlier value.
stack_env() {
  local key=$1 value=$2 tmp
  touch "$STACK_ENV_FILE"
  tmp=$(mktemp "$STACK_DIR/env.XXXXXX")
  grep -v "^export $key=" "$STACK_ENV_FILE" >"$tmp" || true
  printf 'export %s=%q\n' "$key" "$value" >>"$tmp"
  mv "$tmp" "$STACK_ENV_FILE"
}

stack_pid() { cat "$STACK_DIR/pids/$1.pid" 2>/dev/null || true; }

# stack_running NAME: true when NAME's recorded PID is alive.
stack_running() {
  local pid
  pid=$(stack_pid "$1")
  [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null
}

# stack_start NAME CMD...: run CMD detached in its own session, log to logs/NAME.log, record its PID.
stack_start() {
  local name=$1
  shift
  setsid "$@" >>"$STACK_DIR/logs/$name.log" 2>&1 </dev/null &
  echo $! >"$STACK_DIR/pids/$name.pid"
}

# stack_stop NAME: TERM the recorded PID (and its process group), KILL after 20 s, forget it.
stack_stop() {
  local name=$1 pid
  pid=$(stack_pid "$name")
  if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 200); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
      kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
    fi
    stack_log "stopped $name (pid $pid)"
  fi
  rm -f "$STACK_DIR/pids/$name.pid"
}

# stack_wait_for DESCRIPTION SECONDS CMD...: poll CMD every 0.2 s until it succeeds or time runs out.
stack_wait_for() {
  local desc=$1 seconds=$2 deadline
  shift 2
  deadline=$((SECONDS + seconds))
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then
      stack_die "$desc did not come up within ${seconds}s (logs in $STACK_DIR/logs/)"
    fi
    sleep 0.2
  done
}

# stack_ca: create the stack's certificate authority once.
stack_ca() {
  if [[ ! -s $STACK_PKI/ca.crt ]]; then
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=statuspage local stack CA" \
      -keyout "$STACK_PKI/ca.key" -out "$STACK_PKI/ca.crt" 2>/dev/null
    stack_log "created CA $STACK_PKI/ca.crt"
  fi
}

# stack_cert NAME CN SAN...: a server/client certificate signed by the stack CA, as pki/NAME.{crt,key}.
# SANs are written as DNS:x or IP:x.
stack_cert() {
  local name=$1 cn=$2 sans
  shift 2
  stack_ca
  [[ -s $STACK_PKI/$name.crt ]] && return 0
  sans=$(IFS=,; echo "$*")
  openssl req -newkey rsa:2048 -nodes -subj "/CN=$cn" \
    -keyout "$STACK_PKI/$name.key" -out "$STACK_PKI/$name.csr" 2>/dev/null
  openssl x509 -req -in "$STACK_PKI/$name.csr" -CA "$STACK_PKI/ca.crt" -CAkey "$STACK_PKI/ca.key" \
    -CAcreateserial -days 3650 -out "$STACK_PKI/$name.crt" \
    -extfile <(printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth,clientAuth\n' "$sans") 2>/dev/null
  rm -f "$STACK_PKI/$name.csr"
}

# stack_trust_ca: put the stack CA in the system trust store, as ECR's public CA is on a real
# machine (BuildKit inside the engine checks registries against it, not against certs.d).
# Returns 0 when the store changed (processes that loaded it earlier need a restart), 1 otherwise.
STACK_TRUSTED_CA=/usr/local/share/ca-certificates/statuspage-stack.crt
stack_trust_ca() {
  stack_ca
  if cmp -s "$STACK_PKI/ca.crt" "$STACK_TRUSTED_CA"; then
    return 1
  fi
  cp "$STACK_PKI/ca.crt" "$STACK_TRUSTED_CA"
  update-ca-certificates >/dev/null 2>&1 || stack_die "update-ca-certificates failed"
  stack_log "stack CA added to the system trust store"
  return 0
}

stack_untrust_ca() {
  if [[ -f $STACK_TRUSTED_CA ]]; then
    rm -f "$STACK_TRUSTED_CA"
    update-ca-certificates --fresh >/dev/null 2>&1 || true
  fi
}

# stack_hosts_entry NAME: make NAME resolve to 127.0.0.1 through /etc/hosts (marked, removable).
stack_hosts_entry() {
  local name=$1
  grep -q "^127.0.0.1 $name # statuspage-stack$" /etc/hosts ||
    printf '127.0.0.1 %s # statuspage-stack\n' "$name" >>/etc/hosts
}

stack_hosts_clear() {
  local tmp
  tmp=$(mktemp)
  grep -v '# statuspage-stack$' /etc/hosts >"$tmp" || true
  cat "$tmp" >/etc/hosts
  rm -f "$tmp"
}
