# shellcheck shell=bash
# Helpers for the zero-downtime tests and benchmark: the in-cluster load generator, releases made
# from the fixture source, and waits on the app's namespace. Source it after the stack's env file,
# once bin/local-deploy has deployed (its state folder holds the patched overlay and release).

LOAD_REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
LOAD_STATE=${STATUSPAGE_STACK_DIR:-/tmp/statuspage-stack}/local-deploy
LOAD_BIN=${LOAD_BIN:-$LOAD_REPO/target/debug}
APP_NS=statuspage
LOAD_NS=statuspage-load

load_log() { printf '[load] %s\n' "$*" >&2; }
load_fail() { printf '[load] FAILED: %s\n' "$*" >&2; exit 1; }

# load_diagnose STATS_FILE: what a failed window needs explained, on stderr: the seconds in which
# requests failed, the app's pods (restarts and why their containers last ended) and the app
# namespace's events, so the failure can be lined up with what the cluster did.
load_diagnose() {
  python3 - "$1" <(kubectl -n "$APP_NS" get pods -o json) <(kubectl -n "$APP_NS" get events -o json) <<'PY' >&2 || true
import json, sys
stats, pods, events = (json.load(open(p)) for p in sys.argv[1:4])
seconds = stats.get("error_seconds", {})
print(f"[load] failed requests in {len(seconds)} second(s):")
for second in sorted(seconds):
    print(f"  {second} {seconds[second]}")
print("[load] pods (restarts, last end of each container):")
for pod in pods["items"]:
    meta, status = pod["metadata"], pod.get("status", {})
    for c in status.get("containerStatuses", []):
        last = c.get("lastState", {}).get("terminated")
        end = f"last ended {last.get('reason')} exit {last.get('exitCode')} at {last.get('finishedAt')}" if last else ""
        gone = f" deleting since {meta['deletionTimestamp']}" if meta.get("deletionTimestamp") else ""
        print(f"  {meta['name']} ready={c.get('ready')} restarts={c.get('restartCount')} {end}{gone}")
print("[load] events in the app namespace:")
def when(e):
    return e.get("lastTimestamp") or e.get("eventTime") or e["metadata"].get("creationTimestamp") or ""
for e in sorted(events["items"], key=when):
    obj = e.get("involvedObject", {})
    print(f"  {when(e)} {e.get('type')} {e.get('reason')} {obj.get('kind')}/{obj.get('name')} x{e.get('count', 1)}: {e.get('message', '').strip()[:200]}")
PY
}

# json FILE EXPRESSION: evaluate a Python expression over the JSON document in FILE (as `d`).
json() { python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print($2)" "$1"; }

# loadgen_start: the load generator Pod against the web Service, with the current web image.
loadgen_start() {
  local image target
  image=$(json "$LOAD_STATE/release.json" "d['images']['web']['repository'] + ':' + d['images']['web']['tag'] + '@' + d['images']['web']['digest']")
  target=$(kubectl -n "$APP_NS" get service statuspage-web -o jsonpath='{.spec.clusterIP}'):80
  kubectl delete namespace "$LOAD_NS" --ignore-not-found --wait=true >/dev/null
  kubectl create namespace "$LOAD_NS" >/dev/null
  kubectl label namespace "$LOAD_NS" pod-security.kubernetes.io/enforce=restricted >/dev/null
  kubectl -n "$APP_NS" get secret registry-credentials -o json |
    python3 -c "import json,sys; s=json.load(sys.stdin); print(json.dumps({'apiVersion':'v1','kind':'Secret','type':s['type'],'metadata':{'name':s['metadata']['name'],'namespace':sys.argv[1]},'data':s['data']}))" "$LOAD_NS" |
    kubectl apply --server-side --field-manager=statuspage-tests -f - >/dev/null
  kubectl -n "$LOAD_NS" create configmap loadgen --from-file=loadgen.py="$LOAD_REPO/tests/load/loadgen.py" \
    --dry-run=client -o yaml | kubectl apply --server-side --field-manager=statuspage-tests -f - >/dev/null
  # The app's policies admit web traffic only from the load balancer's addresses (the node, here):
  # the load generator stands in for the load balancer, so the test (never the app) admits it.
  kubectl apply --server-side --field-manager=statuspage-tests -f - >/dev/null <<YAML
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: allow-loadgen-to-web
  namespace: $APP_NS
  labels: {app.kubernetes.io/name: statuspage-load, app.kubernetes.io/component: loadgen}
spec:
  podSelector:
    matchLabels: {app.kubernetes.io/name: statuspage, app.kubernetes.io/component: web}
  policyTypes: [Ingress]
  ingress:
    - from:
        - namespaceSelector:
            matchLabels: {kubernetes.io/metadata.name: $LOAD_NS}
          podSelector:
            matchLabels: {app.kubernetes.io/name: statuspage-load}
      ports:
        - {protocol: TCP, port: 8000}
YAML
  sed -e "s|@IMAGE@|$image|" -e "s|@TARGET@|$target|" -e "s|@PATHS@|/,/static/fixture.css?v=2.5.1,/-/healthz|" \
    "$LOAD_REPO/tests/load/loadgen.yaml" | kubectl apply --server-side --field-manager=statuspage-tests -f - >/dev/null
  kubectl -n "$LOAD_NS" wait --for=condition=Ready pod/loadgen --timeout=120s >/dev/null ||
    load_fail "the load generator did not become ready: $(kubectl -n "$LOAD_NS" describe pod loadgen | tail -5)"
  LOAD_URL=http://$(kubectl -n "$LOAD_NS" get pod loadgen -o jsonpath='{.status.podIP}'):8080
  load_log "load generator on $target (web image $image)"
}

loadgen_stop() {
  kubectl -n "$APP_NS" delete networkpolicy allow-loadgen-to-web --ignore-not-found >/dev/null 2>&1 || true
  kubectl delete namespace "$LOAD_NS" --ignore-not-found --wait=false >/dev/null 2>&1 || true
}
load_reset() { curl -sf -X POST --max-time 5 "$LOAD_URL/reset" >/dev/null; }
# load_stats FILE: the current window's counters, as JSON in FILE.
load_stats() { curl -sf --max-time 5 "$LOAD_URL/stats" >"$1"; }

# settle COMPONENT...: wait until each component's Deployment is complete and none of its pods is
# terminating any more (old pods keep serving through preStop and drain: that is measured too).
settle() {
  local component
  for component in "$@"; do
    local start=$SECONDS terminating=""
    kubectl -n "$APP_NS" rollout status "deployment/statuspage-$component" --timeout=300s >/dev/null
    for _ in $(seq 1 600); do
      terminating=$(kubectl -n "$APP_NS" get pods -l "app.kubernetes.io/component=$component" \
        -o jsonpath='{range .items[?(@.metadata.deletionTimestamp)]}{.metadata.name} {end}')
      [[ -z $terminating ]] && break
      sleep 0.5
    done
    # Old pods drain within their preStop sleep and stop (web: 40 s + drain): say when one took
    # much longer, so a slow window can be explained from the log.
    ((SECONDS - start < 90)) && [[ -z $terminating ]] ||
      load_log "settle $component: $((SECONDS - start))s${terminating:+, still terminating: $terminating}"
  done
}

# new_release NAME: images of the fixture source with one change (a marker in its static CSS), so
# every image gets a new digest; built, pushed, and written to $LOAD_STATE/NAME.json. The copy is
# outside git, so it is built as a dirty tree: tagged <commit>-dirty-<digest of its inputs>.
new_release() {
  local name=$1 src=$LOAD_STATE/$1-src
  rm -rf "$src"
  cp -r "$LOAD_REPO/tests/fixtures/statuspage-src" "$src"
  printf '/* %s %s */\n' "$name" "$(date +%s%N)" >>"$src/statuspage/project-static/fixture.css"
  STATUSPAGE_REGISTRY_USERNAME=$STACK_REGISTRY_USER STATUSPAGE_REGISTRY_PASSWORD=$STACK_REGISTRY_PASSWORD \
    "$LOAD_BIN/statuspage-build" --context "$LOAD_REPO/images" --source "$src" --allow-dirty \
    --registry "$STACK_REGISTRY" --build-arg "BASE_IMAGE=$STACK_BASE_IMAGE" \
    >"$LOAD_STATE/$name.built.json" 2>"$LOAD_STATE/$name.build.log" ||
    { cat "$LOAD_STATE/$name.build.log" >&2; load_fail "build of release $name"; }
  "$LOAD_BIN/statuspage-push" --release "$LOAD_STATE/$name.built.json" >"$LOAD_STATE/$name.json" \
    2>"$LOAD_STATE/$name.push.log" || { cat "$LOAD_STATE/$name.push.log" >&2; load_fail "push of release $name"; }
}

# overlay_for RELEASE [COPY]: a copy of the local overlay (in $LOAD_STATE/COPY-app, COPY defaults
# to RELEASE) patched with release RELEASE; prints the overlay's path.
overlay_for() {
  local release=$1 copy=${2:-$1}
  rm -rf "$LOAD_STATE/$copy-app"
  cp -r "$LOAD_REPO/manifests/app" "$LOAD_STATE/$copy-app"
  "$LOAD_BIN/statuspage-patch" --release "$LOAD_STATE/$release.json" --overlay "$LOAD_STATE/$copy-app/overlays/local" \
    >/dev/null 2>"$LOAD_STATE/$copy.patch.log" || { cat "$LOAD_STATE/$copy.patch.log" >&2; load_fail "patch for $copy"; }
  echo "$LOAD_STATE/$copy-app/overlays/local"
}
