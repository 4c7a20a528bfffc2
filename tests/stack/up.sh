#!/usr/bin/env bash
# Bring the whole local stack up, idempotently: Docker Engine, AWS APIs (moto), the registry,
# the Kubernetes cluster, then PostgreSQL and Redis (as RDS and ElastiCache, outside the cluster). Writes $STACK_DIR/env (default /tmp/statuspage-stack/env):
#   source /tmp/statuspage-stack/env
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$here/lib.sh"
start=$SECONDS
stack_env PATH "$STACK_CACHE/tools/bin:$PATH"
for component in docker aws registry; do
  bash "$here/$component.sh" up
done
# The stand-in for the official Python base image (no registry can be pulled from here).
bash "$here/base-image.sh" up
stack_env STACK_BASE_IMAGE statuspage.local/python:3.11-slim-bookworm
bash "$here/cluster.sh" up
# PostgreSQL and Redis listen on the node address, which the cluster brings up.
bash "$here/data.sh" up
bash "$here/github.sh" up # the GitHub API mock (Prism) for statuspage-record
stack_log "stack up in $((SECONDS - start))s: source $STACK_ENV_FILE"
# Disk for unprivileged writers (PostgreSQL, Redis, the pods' own users): on machines that reserve
# most of the disk for root, the test run (root) can fill what they may use while writing on.
free_gib=$(($(stat -f -c '%a * %S' "$STACK_DIR") / 1073741824))
((free_gib >= 8)) || stack_log "warning: $STACK_DIR has $free_gib GiB available to unprivileged users (root may write more); a run from a clean clone writes about 15 GiB (cargo's target/ most of it), so PostgreSQL, Redis and the pods may fail with 'No space left on device': free space (old target/ folders and docker's build cache are the largest)"
