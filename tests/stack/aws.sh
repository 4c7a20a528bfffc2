#!/usr/bin/env bash
# The AWS APIs (ECR, STS, EKS, Secrets Manager) from moto's server, on 127.0.0.1:5055.
# Clients reach it only through the standard AWS_ENDPOINT_URL variable, and authenticate the way
# production pods and GitHub runners do: web identity (a token file plus a role ARN).
#   aws.sh up | down
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PORT=${STATUSPAGE_MOTO_PORT:-5055}
ENDPOINT=http://127.0.0.1:$PORT
MOTO=$STACK_CACHE/tools/bin/moto_server

healthy() { curl -fsS "$ENDPOINT/moto-api/" >/dev/null 2>&1; }

up() {
  if stack_running moto && healthy; then
    stack_log "moto already running ($ENDPOINT)"
  else
    stack_stop moto
    [[ -x $MOTO ]] || stack_die "moto_server not found: run tests/tools/install.sh"
    stack_start moto "$MOTO" -H 127.0.0.1 -p "$PORT"
    stack_wait_for "moto server" 60 healthy
    stack_log "moto up ($ENDPOINT)"
  fi
  # A web-identity token, as EKS (IRSA) or GitHub OIDC would hand one to the SDK. moto accepts
  # any token; the SDK still takes the real AssumeRoleWithWebIdentity path.
  printf 'statuspage-local-stack-oidc-token' >"$STACK_DIR/web-identity-token"
  stack_env AWS_ENDPOINT_URL "$ENDPOINT"
  stack_env AWS_REGION us-east-1
  stack_env AWS_DEFAULT_REGION us-east-1
  stack_env AWS_ROLE_ARN arn:aws:iam::123456789012:role/statuspage-deploy
  stack_env AWS_ROLE_SESSION_NAME statuspage-local
  stack_env AWS_WEB_IDENTITY_TOKEN_FILE "$STACK_DIR/web-identity-token"
  stack_env AWS_EC2_METADATA_DISABLED true
}

down() { stack_stop moto; }

"${1:?usage: aws.sh up|down}"
