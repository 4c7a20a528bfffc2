#!/usr/bin/env bash
# The container registry (Debian's docker-registry, distribution 2.x) standing in for ECR's:
# served on 127.0.0.1:443 under the host name ECR's GetAuthorizationToken returns
# (<account>.dkr.ecr.<region>.amazonaws.com, mapped to 127.0.0.1 in /etc/hosts), with TLS from the
# stack CA and basic auth that accepts exactly the credentials in that token.
#   registry.sh up | down        (needs aws.sh up first)
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

HOST=123456789012.dkr.ecr.us-east-1.amazonaws.com
DATA=$STACK_DIR/registry-data
CONF=$STACK_DIR/registry.yml

# The ECR token, decoded to USER:PASSWORD, fetched from moto through boto3.
ecr_credentials() {
  # shellcheck source=/dev/null
  source "$STACK_ENV_FILE"
  "$STACK_CACHE/venv-moto/bin/python" - <<'PY'
import base64, boto3
ecr = boto3.client("ecr", region_name="us-east-1", aws_access_key_id="stack", aws_secret_access_key="stack")
token = ecr.get_authorization_token()["authorizationData"][0]["authorizationToken"]
print(base64.b64decode(token).decode())
PY
}

healthy() {
  curl -fsS --cacert "$STACK_PKI/ca.crt" -u "$STACK_REGISTRY_USER:$STACK_REGISTRY_PASSWORD" \
    "https://$HOST/v2/" >/dev/null 2>&1
}

up() {
  local creds
  # A second `up`: the credentials recorded last time still open the running registry (moto's
  # token does not change), so Python and boto3 (seconds to start) are not needed.
  # shellcheck source=/dev/null
  source "$STACK_ENV_FILE" 2>/dev/null || true
  if [[ -n ${STACK_REGISTRY_USER:-} ]] && stack_running registry && healthy; then
    stack_log "registry already running (https://$HOST)"
    return 0
  fi
  creds=$(ecr_credentials) || stack_die "cannot get an ECR authorization token from moto (is aws.sh up?)"
  STACK_REGISTRY_USER=${creds%%:*}
  STACK_REGISTRY_PASSWORD=${creds#*:}
  stack_hosts_entry "$HOST"
  stack_cert registry "$HOST" "DNS:$HOST" DNS:localhost IP:127.0.0.1
  # The stack's engine (and any other on this host) trusts the stack CA for this host only.
  mkdir -p "/etc/docker/certs.d/$HOST"
  cp "$STACK_PKI/ca.crt" "/etc/docker/certs.d/$HOST/ca.crt"
  if stack_running registry && healthy; then
    stack_log "registry already running (https://$HOST)"
  else
    stack_stop registry
    command -v docker-registry >/dev/null || stack_die "docker-registry not found: run tests/tools/install.sh"
    mkdir -p "$DATA"
    htpasswd -Bbn "$STACK_REGISTRY_USER" "$STACK_REGISTRY_PASSWORD" >"$STACK_DIR/registry.htpasswd"
    cat >"$CONF" <<YAML
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $DATA
  delete:
    enabled: true
http:
  addr: 127.0.0.1:443
  tls:
    certificate: $STACK_PKI/registry.crt
    key: $STACK_PKI/registry.key
auth:
  htpasswd:
    realm: statuspage-stack
    path: $STACK_DIR/registry.htpasswd
YAML
    stack_start registry docker-registry serve "$CONF"
    stack_wait_for "registry" 30 healthy
    stack_log "registry up (https://$HOST)"
  fi
  stack_env STACK_REGISTRY "$HOST"
  stack_env STACK_REGISTRY_USER "$STACK_REGISTRY_USER"
  stack_env STACK_REGISTRY_PASSWORD "$STACK_REGISTRY_PASSWORD"
  stack_env STACK_CA_CERT "$STACK_PKI/ca.crt"
}

down() {
  stack_stop registry
  rm -rf "/etc/docker/certs.d/$HOST"
}

"${1:?usage: registry.sh up|down}"
