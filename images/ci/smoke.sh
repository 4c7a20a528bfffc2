#!/usr/bin/env bash
# Smoke test of the three built images against PostgreSQL and Redis on 127.0.0.1 (the workflow's
# service containers). Runs the containers the way the manifests do: read-only root filesystem,
# /tmp as tmpfs, UID 10001, no capabilities, secrets as files under /run/secrets/statuspage/.
#   images/ci/smoke.sh TAG        (images statuspage-{web,worker,scheduler}:TAG must exist)
# Environment: POSTGRES_PASSWORD (required); DATABASE_PORT (5432), DATABASE_NAME and DATABASE_USER
# (statuspage), REDIS_PORT (6379) and REDIS_PASSWORD (none) for services elsewhere than the workflow's.
set -euo pipefail
tag=${1:?usage: smoke.sh TAG}
work=$(mktemp -d)
trap 'docker rm -f sp-web sp-worker sp-scheduler >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
secrets=$work/secrets
mkdir -p "$secrets"
python3 -c 'import secrets; print(secrets.token_urlsafe(64))' >"$secrets/SECRET_KEY"
printf '%s' "${POSTGRES_PASSWORD:?}" >"$secrets/DATABASE_PASSWORD"
if [[ -n ${REDIS_PASSWORD:-} ]]; then printf '%s' "$REDIS_PASSWORD" >"$secrets/REDIS_PASSWORD"; fi
chmod 0644 "$secrets"/*
log() { printf '[smoke] %s\n' "$*" >&2; }
fail() { log "FAILED: $*"; for c in web worker scheduler; do docker logs "sp-$c" 2>&1 | tail -40 || true; done; exit 1; }

common=(--network host --read-only --tmpfs "/tmp:rw,size=64m" --cap-drop ALL
  --security-opt no-new-privileges --user 10001:10001
  -v "$secrets:/run/secrets/statuspage:ro"
  -e "ALLOWED_HOSTS=localhost,127.0.0.1" -e SITE_URL=http://localhost:8000
  -e DATABASE_HOST=127.0.0.1 -e "DATABASE_PORT=${DATABASE_PORT:-5432}" -e DATABASE_SSLMODE=disable
  -e "DATABASE_NAME=${DATABASE_NAME:-statuspage}" -e "DATABASE_USER=${DATABASE_USER:-statuspage}"
  -e REDIS_HOST=127.0.0.1 -e "REDIS_PORT=${REDIS_PORT:-6379}" -e LOG_LEVEL=INFO)

wait_ok() { # URL [HOST header]
  for _ in $(seq 1 90); do
    if curl -fsS -o /dev/null -H "Host: ${2:-localhost}" "$1"; then return 0; fi
    sleep 2
  done
  fail "$1 did not answer 200"
}

log "layers shared by the three targets"
web_layers=$(docker image inspect --format '{{json .RootFS.Layers}}' "statuspage-web:$tag")
for t in worker scheduler; do
  [[ $(docker image inspect --format '{{json .RootFS.Layers}}' "statuspage-$t:$tag") == "$web_layers" ]] ||
    fail "statuspage-$t has layers statuspage-web lacks"
done
log "image user, labels, no compiler"
[[ $(docker image inspect --format '{{.Config.User}}' "statuspage-web:$tag") == 10001:10001 ]] || fail "user is not 10001:10001"
for l in source revision version created; do
  v=$(docker image inspect --format "{{index .Config.Labels \"org.opencontainers.image.$l\"}}" "statuspage-web:$tag")
  [[ -n $v && $v != unknown ]] || fail "label org.opencontainers.image.$l is empty"
done
docker run --rm --entrypoint /bin/sh "statuspage-web:$tag" -c '! command -v gcc && ! command -v cc' || fail "a compiler is in the runtime image"

log "a missing setting stops the process with one line"
set +e
out=$(docker run --rm "${common[@]}" -e SECRET_KEY_FILE=/nonexistent "statuspage-web:$tag" check-config 2>&1)
rc=$?
set -e
[[ $rc == 78 && $(wc -l <<<"$out") == 1 && $out == *SECRET_KEY* ]] || fail "config error: rc=$rc out=$out"

log "release (migrate, remove_stale_contenttypes, clearsessions, clearcache)"
docker run --rm "${common[@]}" "statuspage-web:$tag" release || fail "release"

log "web"
docker run -d --name sp-web "${common[@]}" "statuspage-web:$tag" >/dev/null
wait_ok http://127.0.0.1:8000/-/healthz
wait_ok http://127.0.0.1:8000/-/readyz
wait_ok http://127.0.0.1:8000/ localhost
wait_ok http://127.0.0.1:9100/-/metrics
curl -fsS http://127.0.0.1:9100/-/metrics | grep -q '^statuspage_http_requests_total{' || fail "no request metrics"
css=$(docker exec sp-web sh -c 'cd /opt/statuspage/statuspage/static && find . -name "*.css" ! -path "./docs/*" | head -1')
[[ -n $css ]] || fail "no CSS file in STATIC_ROOT"
headers=$(curl -fsS -D - -o /dev/null -H 'Accept-Encoding: gzip' "http://127.0.0.1:8000/static/${css#./}?v=ci")
grep -qi '^cache-control: public, max-age=31536000, immutable' <<<"$headers" || fail "static file headers: $headers"
wait_ok http://127.0.0.1:8000/static/docs/
[[ $(curl -s -o /dev/null -w '%{http_code}' -H 'Host: localhost' http://127.0.0.1:8000/-/metrics) == 404 ]] ||
  fail "metrics must not be served on the public port"

log "worker picks up a job"
docker run -d --name sp-worker "${common[@]}" -e METRICS_PORT=9101 "statuspage-worker:$tag" >/dev/null
wait_ok http://127.0.0.1:9101/-/healthz
wait_ok http://127.0.0.1:9101/-/readyz
job=$(docker exec sp-worker statuspage-entrypoint manage shell -c \
  "import django_rq; print(django_rq.get_queue('default').enqueue('os.getpid').id)" | tail -1)
# RQ's JobStatus is a str enum: rq 1.x printed "finished", rq 3 prints "JobStatus.FINISHED"; its
# .value is "finished" in every version.
status=
for _ in $(seq 1 60); do
  status=$(docker exec sp-worker statuspage-entrypoint manage shell -c \
    "import django_rq; s = django_rq.get_queue('default').fetch_job('$job').get_status(); print(getattr(s, 'value', s))" |
    tail -1)
  [[ $status == finished ]] && break
  sleep 2
done
[[ $status == finished ]] || fail "job $job is $status"
curl -fsS http://127.0.0.1:9101/-/metrics | grep -q '^statuspage_rq_jobs{queue="default",state="finished"}' ||
  fail "no RQ metrics"

log "scheduler"
docker run -d --name sp-scheduler "${common[@]}" -e METRICS_PORT=9102 "statuspage-scheduler:$tag" >/dev/null
wait_ok http://127.0.0.1:9102/-/healthz
# Every line is JSON, warnings included (rq_scheduler emits a FutureWarning at start).
docker logs sp-scheduler 2>&1 | python3 -c '
import json, sys
for line in sys.stdin:
    if line.strip():
        json.loads(line)
' || fail "the scheduler wrote a line that is not JSON"

log "SIGTERM: every role exits cleanly"
for c in web worker scheduler; do
  docker stop --time 60 "sp-$c" >/dev/null
  code=$(docker inspect --format '{{.State.ExitCode}}' "sp-$c")
  [[ $code == 0 || ($c == scheduler && $code == 143) ]] || fail "sp-$c exited with $code"
done
log "all checks passed"
