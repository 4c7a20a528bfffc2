#!/usr/bin/env bash
# The README's main-job command, end to end on the stack: bin/local-deploy builds the real
# images/Dockerfile with the fixture source (tests/fixtures/statuspage-src), pushes, patches and
# rolls out against the stack's PostgreSQL and Redis (TLS). Checked here: every image in the
# release document has a digest, the registry serves that digest, the patched overlay pins it, and
# the cluster's Deployments run exactly those digests and are available; the app answers: `/` with
# data read from PostgreSQL, a static file, /-/readyz on every pod, a job enqueued through the web
# Service is run by a worker, the scheduler runs; the metrics Prometheus would scrape (every pod the
# ServiceMonitor and PodMonitor select, at their port and path) are lint-clean and hold every metric an
# alert or a dashboard panel names, unless tests/monitoring/metrics-allowlist.yaml names the exporter
# that provides it. A second run must find everything in place,
# skip the build and not run the migration again.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.." || exit 1
[[ -n ${KUBECONFIG:-} && -n ${STACK_REGISTRY:-} ]] || { echo "stack not running: run tests/stack/up.sh" >&2; exit 1; }
state=${STATUSPAGE_STACK_DIR:-/tmp/statuspage-stack}/local-deploy
fail() { echo "[pipeline] FAILED: $*" >&2; exit 1; }

bin/local-deploy >"$state.out" 2>"$state.err" || { cat "$state.err" >&2; fail "bin/local-deploy exited non-zero"; }
python3 - "$state.out" "$state/rendered.yaml" <<'PY' || fail "release document or rendered overlay"
import json, sys
release = json.load(open(sys.argv[1]))
rendered = open(sys.argv[2]).read()
assert set(release["images"]) == {"web", "worker", "scheduler"}, release["images"].keys()
for name, image in release["images"].items():
    digest = image.get("digest", "")
    assert digest.startswith("sha256:") and len(digest) == 71, (name, digest)
    pinned = f'{image["repository"]}:{image["tag"]}@{digest}'
    assert pinned in rendered, f"{name}: {pinned} not in the rendered overlay"
print(f"[pipeline] release has 3 digests, all pinned in the rendered overlay", file=sys.stderr)
PY
for component in web worker scheduler; do
  digest=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['images'][sys.argv[2]]['digest'])" "$state.out" "$component")
  repo=statuspage-$component
  served=$(curl -sS --cacert "$STACK_CA_CERT" -u "$STACK_REGISTRY_USER:$STACK_REGISTRY_PASSWORD" -o /dev/null \
    -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' \
    -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
    -w '%{http_code}' "https://$STACK_REGISTRY/v2/$repo/manifests/$digest")
  [[ $served == 200 ]] || fail "the registry does not serve $repo@$digest (HTTP $served)"
done
python3 - "$state.out" "$state/rollout.json" <(kubectl -n statuspage get deployments,pods -o json) <<'PY' || fail "the cluster does not run the release"
import json, sys
release = json.load(open(sys.argv[1]))
report = json.load(open(sys.argv[2]))
items = json.load(open(sys.argv[3]))["items"]
assert report["result"] == "deployed", report["result"]
assert report["migration"]["result"] in ("complete", "already-complete"), report["migration"]
for name, image in release["images"].items():
    pinned = f'{image["repository"]}:{image["tag"]}@{image["digest"]}'
    deployment = next(i for i in items if i["kind"] == "Deployment" and i["metadata"]["name"] == f"statuspage-{name}")
    images = [c["image"] for c in deployment["spec"]["template"]["spec"]["containers"]]
    assert images == [pinned], (name, images)
    status = deployment["status"]
    wanted = deployment["spec"]["replicas"]
    assert status.get("availableReplicas") == wanted == status.get("updatedReplicas"), (name, status)
    available = [c for c in status["conditions"] if c["type"] == "Available"]
    assert available and available[0]["status"] == "True", (name, status["conditions"])
    component = deployment["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"]
    running = [cs["imageID"] for p in items if p["kind"] == "Pod"
               and p["metadata"]["labels"].get("app.kubernetes.io/component") == component
               and p["status"].get("phase") == "Running" and "deletionTimestamp" not in p["metadata"] for cs in p["status"]["containerStatuses"] if cs["ready"]]
    assert len(running) >= wanted and all(r.endswith("@" + image["digest"]) for r in running), (name, running)
print("[pipeline] web, worker and scheduler run the released digests and are available", file=sys.stderr)
PY

# The app itself, through the web Service and on each pod.
web=http://$(kubectl -n statuspage get service statuspage-web -o jsonpath='{.spec.clusterIP}')
code() { curl -s -o /dev/null -w '%{http_code}' --max-time 10 "$@"; }
[[ $(code "$web/") == 200 ]] || fail "GET / through the web Service"
curl -s --max-time 10 "$web/" | grep -q 'job runs: [0-9]' || fail "/ does not show data read from PostgreSQL"
static=$(curl -s --max-time 10 "$web/" | grep -o '/static/[^"]*\.css[^"]*' | head -1)
[[ -n $static && $(code "$web$static") == 200 ]] || fail "static file ${static:-(none referenced)} does not answer 200"
pods=$(kubectl -n statuspage get pods -l app.kubernetes.io/name=statuspage --field-selector=status.phase=Running \
  -o jsonpath='{range .items[*]}{.metadata.labels.app\.kubernetes\.io/component} {.status.podIP}{"\n"}{end}')
checked=0
while read -r component ip; do
  [[ -n $ip ]] || continue
  port=9100
  [[ $component == web ]] && port=8000
  [[ $(code "http://$ip:$port/-/readyz") == 200 ]] || fail "/-/readyz of the $component pod $ip:$port"
  checked=$((checked + 1))
done <<<"$pods"
((checked >= 3)) || fail "only $checked running pods answered /-/readyz"
grep -q '^scheduler ' <<<"$pods" || fail "no running scheduler pod"
label=pipeline-$RANDOM
curl -s -X POST --max-time 10 "$web/jobs/?seconds=1&count=3&label=$label" | grep -q enqueued || fail "enqueue through web"
for _ in $(seq 1 60); do
  done_count=$(curl -s --max-time 10 "$web/jobs/" | python3 -c "import json,sys; print(json.load(sys.stdin)['finished'].get(sys.argv[1], 0))" "$label")
  [[ $done_count == 3 ]] && break
  sleep 0.5
done
[[ $done_count == 3 ]] || fail "the worker finished $done_count of 3 jobs enqueued through web"
echo "[pipeline] / (PostgreSQL), $static, /-/readyz on $checked pods, 3 of 3 jobs run by the worker, scheduler running" >&2

# What Prometheus would scrape, after the requests and jobs above.
PY=${STATUSPAGE_CACHE:-/var/cache/statuspage}/venv-judges/bin/python
scrapes=$state/scrapes
rm -rf "$scrapes" && mkdir -p "$scrapes"
kubectl -n statuspage get pods,services -o json >"$scrapes/objects.json"
"$PY" tests/monitoring/queries.py scrape-urls "$scrapes/objects.json" >"$scrapes/targets" || fail "the monitors' targets"
while read -r url monitor pod; do
  curl -fsS --max-time 10 -o "$scrapes/$pod.prom" "$url" || fail "scrape of $url ($monitor, pod $pod)"
  promtool check metrics <"$scrapes/$pod.prom" || fail "promtool check metrics: $url ($monitor, pod $pod)"
done <"$scrapes/targets"
"$PY" tests/monitoring/queries.py exprs | promql-names >"$scrapes/names.json" || fail "promql-names"
"$PY" tests/monitoring/queries.py names "$scrapes/names.json" tests/monitoring/metrics-allowlist.yaml "$scrapes"/*.prom ||
  fail "an alert or a panel names a metric the running app does not export"
echo "[pipeline] scraped $(wc -l <"$scrapes/targets") targets ($(cut -d' ' -f2 "$scrapes/targets" | sort | uniq -c | awk '{printf "%s%s %s", sep, $2, $1; sep=", "}')), lint-clean" >&2

bin/local-deploy >"$state.out2" 2>"$state.err2" || { cat "$state.err2" >&2; fail "second run exited non-zero"; }
grep -q "build skipped" "$state.err2" || { cat "$state.err2" >&2; fail "second run did not skip the build"; }
cmp -s <(python3 -c "import json,sys; print(sorted((k,v['digest']) for k,v in json.load(open(sys.argv[1]))['images'].items()))" "$state.out") \
  <(python3 -c "import json,sys; print(sorted((k,v['digest']) for k,v in json.load(open(sys.argv[1]))['images'].items()))" "$state.out2") ||
  fail "the second run reported other digests"
grep -q "already completed for this template" "$state.err2" || { cat "$state.err2" >&2; fail "second run ran the migration again"; }
echo "[pipeline] 4 passed, 0 failed" >&2
