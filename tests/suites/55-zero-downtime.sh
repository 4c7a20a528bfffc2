#!/usr/bin/env bash
# Suite 55-zero-downtime: the real images on the stack's cluster under load from inside the cluster
# (tests/load/loadgen.py in a Pod of its own, new connection per request to the web Service) while
#   (a) a new release rolls out (migration Job first, then web, worker, scheduler),
#   (b) a broken release fails and is rolled back,
#   (c) web pods are evicted one after another within the PodDisruptionBudget, as a node drain does,
#   (d) the web HorizontalPodAutoscaler (metrics from the stack's metrics-server) scales web out under
#       heavy load and back in under light load.
# Every non-2xx answer and every connection error counts; each window runs until the old pods are
# gone. Must be 0 failed of at least 3,000 requests across (a) and (b). During (a) a batch of slow
# jobs is enqueued and the workers are replaced mid-batch: every job must complete exactly once.
# Needs suite 50-pipeline's bin/local-deploy (run again here when its state is missing).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.." || exit 1
[[ -n ${KUBECONFIG:-} && -n ${STACK_REGISTRY:-} ]] || { echo "stack not running: run tests/stack/up.sh" >&2; exit 1; }
# shellcheck source=tests/load/lib.sh
source tests/load/lib.sh
# (The state alone is not enough: the stack's cluster may have been re-created since.)
[[ -s $LOAD_STATE/release.json ]] && kubectl get namespace "$APP_NS" >/dev/null 2>&1 || bin/local-deploy >/dev/null 2>"$LOAD_STATE.err" ||
  { cat "$LOAD_STATE.err" >&2; load_fail "bin/local-deploy"; }
cargo build --quiet --bins
trap loadgen_stop EXIT
loadgen_start
web=http://$(kubectl -n "$APP_NS" get service statuspage-web -o jsonpath='{.spec.clusterIP}')

# report WINDOW FILE: print the window's figures; fail on any error.
report() {
  local window=$1 file=$2
  load_log "$window: $(json "$file" "f\"{d['requests']} requests, {d['errors']} failed {d['errors_by_kind'] or ''}, p50 {d['p50_ms']} ms, p99 {d['p99_ms']} ms, max {d['max_ms']} ms, {d['rps']}/s over {d['seconds']} s\"")"
  [[ $(json "$file" "d['errors']") == 0 ]] && return 0
  load_diagnose "$file"
  load_fail "$window: requests failed: $(json "$file" "json.dumps({k: v for k, v in d.items() if k != 'error_seconds'})")"
}

# --- (a) a new release, with a batch of slow jobs in flight ------------------------------------
new_release r2
overlay=$(overlay_for r2)
label=batch-$RANDOM
curl -sf -X POST --max-time 10 "$web/jobs/?seconds=3&count=16&label=$label" >/dev/null || load_fail "enqueue the batch"
load_reset
sleep 2 # the workers are busy with the batch when the rollout replaces them
"$LOAD_BIN/statuspage-rollout" --overlay "$overlay" --release "$LOAD_STATE/r2.json" --timeout 5m \
  >"$LOAD_STATE/r2.rollout.json" 2>"$LOAD_STATE/r2.rollout.log" ||
  { cat "$LOAD_STATE/r2.rollout.log" >&2; load_fail "rollout of release r2"; }
settle web worker scheduler
load_stats "$LOAD_STATE/a.json"
report "(a) rollout of a new release" "$LOAD_STATE/a.json"

# The release's migration ran before any Deployment changed: its Job's pod had finished (its
# container's finishedAt; the Job's completionTime comes a batch period later, and the rollout
# goes on at the pod's success) before the new ReplicaSets were created.
python3 - "$LOAD_STATE/r2.json" <(kubectl -n "$APP_NS" get jobs,replicasets,pods -o json) <<'PY' || load_fail "migration order"
import json, sys
release = json.load(open(sys.argv[1]))
items = json.load(open(sys.argv[2]))["items"]
digest = release["images"]["web"]["digest"]
jobs = [i for i in items if i["kind"] == "Job" and digest in i["spec"]["template"]["spec"]["containers"][0]["image"]]
assert len(jobs) == 1, f"one migration Job for the release, found {len(jobs)}"
assert jobs[0]["status"].get("completionTime"), "the release's migration Job did not complete"
uid = jobs[0]["metadata"]["uid"]
pods = [i for i in items if i["kind"] == "Pod" and any(o["uid"] == uid for o in i["metadata"].get("ownerReferences", []))]
finished = [c["state"]["terminated"]["finishedAt"] for p in pods if p["status"].get("phase") == "Succeeded"
            for c in p["status"].get("containerStatuses", []) if "terminated" in c.get("state", {})]
assert finished, f"no succeeded pod of the migration Job found ({len(pods)} pods)"
done = min(finished)
for component in ("web", "worker", "scheduler"):
    image = release["images"][component]["digest"]
    sets = [i for i in items if i["kind"] == "ReplicaSet" and image in i["spec"]["template"]["spec"]["containers"][0]["image"]]
    assert sets, f"no ReplicaSet runs the release's {component} image"
    created = sets[0]["metadata"]["creationTimestamp"]
    assert done <= created, f"{component}'s ReplicaSet was created at {created}, before the migration's pod finished at {done}"
print(f"[load] migration pod finished at {done}, before the release's ReplicaSets were created", file=sys.stderr)
PY

# Every job of the batch ran exactly once, although the workers were replaced mid-batch.
for _ in $(seq 1 240); do
  count=$(curl -sf --max-time 5 "$web/jobs/" | python3 -c "import json,sys; print(json.load(sys.stdin)['finished'].get(sys.argv[1], 0))" "$label")
  ((count >= 16)) && break
  sleep 0.5
done
sleep 3 # a job run twice would show up now
jobs=$(curl -sf --max-time 5 "$web/jobs/")
count=$(python3 -c "import json,sys; print(json.loads(sys.argv[2])['finished'].get(sys.argv[1], 0))" "$label" "$jobs")
[[ $count == 16 ]] || load_fail "the worker rollout: $count of 16 jobs completed (each must run exactly once); RQ: $jobs"
load_log "worker rollout mid-batch: 16 of 16 jobs completed, each once"

# --- (b) a broken release: web crashes at start; the rollout fails fast and rolls back ---------
broken=$(overlay_for r2 broken)
# A web role that does not exist, so the new web pods crash at start (the migration Job is unchanged).
python3 - "$broken/kustomization.yaml" <<'PY'
import sys
path = sys.argv[1]
text = open(path).read()
patch = """  - target:
      kind: Deployment
      name: statuspage-web
    patch: |-
      - op: add
        path: /spec/template/spec/containers/0/args
        value: ["no-such-role"]
"""
text = text.replace("patches:\n", "patches:\n" + patch, 1)
open(path, "w").write(text)
PY
load_reset
code=0
"$LOAD_BIN/statuspage-rollout" --overlay "$broken" --release "$LOAD_STATE/r2.json" --timeout 5m --fail-fast-after 15s \
  >"$LOAD_STATE/broken.rollout.json" 2>"$LOAD_STATE/broken.rollout.log" || code=$?
[[ $code == 4 ]] || { cat "$LOAD_STATE/broken.rollout.log" >&2; load_fail "the broken release: exit $code, expected 4 (rolled back)"; }
settle web
load_stats "$LOAD_STATE/b.json"
report "(b) broken release, rolled back" "$LOAD_STATE/b.json"
total=$(($(json "$LOAD_STATE/a.json" "d['requests']") + $(json "$LOAD_STATE/b.json" "d['requests']")))
((total >= 3000)) || load_fail "only $total requests across the rollout and the rollback (need 3,000)"
load_log "rollout + rollback: $total requests, 0 failed"

# --- (c) evictions within the PodDisruptionBudget ------------------------------------------------
load_reset
for pod in $(kubectl -n "$APP_NS" get pods -l app.kubernetes.io/component=web -o jsonpath='{.items[*].metadata.name}'); do
  printf '{"apiVersion":"policy/v1","kind":"Eviction","metadata":{"name":"%s","namespace":"%s"}}' "$pod" "$APP_NS" |
    kubectl create --raw "/api/v1/namespaces/$APP_NS/pods/$pod/eviction" -f - >/dev/null ||
    load_fail "eviction of $pod refused"
  settle web
done
load_stats "$LOAD_STATE/c.json"
report "(c) web pods evicted one by one" "$LOAD_STATE/c.json"

# --- (d) autoscaling: out under heavy load, back in under light load ---------------------------
# web_replicas N SECONDS: wait until the HPA has made web N replicas, all available and none
# terminating; prints the seconds it took.
web_replicas() {
  local want=$1 seconds=$2 start=$SECONDS state
  while ((SECONDS - start < seconds)); do
    state=$(kubectl -n "$APP_NS" get deployment statuspage-web -o jsonpath='{.spec.replicas} {.status.replicas} {.status.availableReplicas}')
    if [[ $state == "$want $want $want" ]]; then
      settle web
      echo $((SECONDS - start))
      return 0
    fi
    sleep 2
  done
  kubectl -n "$APP_NS" describe hpa statuspage-web >&2
  kubectl top pods -n "$APP_NS" >&2 || true
  load_fail "(d) web did not reach $want replicas within ${seconds}s (deployment: $state)"
}
pace() { curl -sf -X POST --max-time 5 "$LOAD_URL/load?threads=$1&pause_ms=$2" >/dev/null || load_fail "set the load"; }
kubectl get --raw /apis/metrics.k8s.io/v1beta1/nodes >/dev/null || load_fail "(d) no metrics.k8s.io: is metrics-server up (tests/stack/cluster.sh)?"
pace 1 250
web_replicas 2 300 >/dev/null # from wherever (a)-(c) left it
load_reset
pace 12 0
took=$(web_replicas 3 300)
load_stats "$LOAD_STATE/d-out.json"
report "(d) HPA scale-out 2 -> 3 under heavy load (${took}s)" "$LOAD_STATE/d-out.json"
load_reset
pace 1 250
took=$(web_replicas 2 300)
load_stats "$LOAD_STATE/d-in.json"
report "(d) HPA scale-in 3 -> 2 under light load (${took}s)" "$LOAD_STATE/d-in.json"
pace 4 0
echo "[load] 6 passed, 0 failed" >&2
