#!/usr/bin/env bash
# The GitHub REST API, as a mock: Prism serving GitHub's own OpenAPI description
# (@octokit/openapi, generated/api.github.com.json) with --errors, so any request that breaks
# GitHub's schema is answered 422, on 127.0.0.1:4010. Stateless: answers are the spec's examples.
# statuspage-record reaches it only through GITHUB_API_URL, the variable every runner sets
# (STACK_GITHUB_API_URL in the env file). Prism takes about 30 s to load the 13 MB description.
#   github.sh up | down
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PORT=${STATUSPAGE_GITHUB_PORT:-4010}
ENDPOINT=http://127.0.0.1:$PORT
PRISM=$STACK_CACHE/tools/bin/prism
SPEC=$STACK_CACHE/npm-github-openapi/node_modules/@octokit/openapi/generated/api.github.com.json

# Any answer from the mock (the spec's example for a public endpoint) means it is listening.
healthy() { curl -fsS -H 'Accept: application/json' "$ENDPOINT/rate_limit" >/dev/null 2>&1; }

up() {
  if stack_running github && healthy; then
    stack_log "GitHub API mock already running ($ENDPOINT)"
  else
    stack_stop github
    [[ -x $PRISM && -s $SPEC ]] || stack_die "prism or the GitHub OpenAPI description not found: run tests/tools/install.sh"
    stack_start github "$PRISM" mock --errors -h 127.0.0.1 -p "$PORT" "$SPEC"
    stack_wait_for "GitHub API mock (prism)" 180 healthy
    stack_log "GitHub API mock up ($ENDPOINT)"
  fi
  stack_env STACK_GITHUB_API_URL "$ENDPOINT"
}

down() { stack_stop github; }

"${1:?usage: github.sh up|down}"
