#!/usr/bin/env bash
# Benchmark: statuspage-rollout against the same steps done with kubectl on the stack's cluster,
# in the same run, with the demo app of bin/local-deploy. Reports wall times and ratios; asserts
# nothing.
#
#   bench/rollout.sh [ROUNDS]     (default 3; needs tests/stack/up.sh and one bin/local-deploy)
#
# Both sides do the same work on the same rendered overlay, each in a namespace of its own:
#   statuspage-rollout --manifests FILE   (dry run, configuration, migration Job, workloads, wait)
#   kubectl apply --server-side --dry-run=server; kubectl apply (configuration); the migration Job
#   and kubectl wait --for=condition=complete; kubectl apply (workloads); kubectl rollout status x3
# first: a fresh namespace. update: a new pod template (an annotation) for every Deployment.
# CPU requests are made small so that both sides fit the stack's single 2-CPU node.
# Also printed: for each statuspage-rollout run, the delay from the last pod becoming Ready (the
# moment its watch event reached a `kubectl get pods --watch` started before the run) to the
# tool's exit (goal: < 200 ms).
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
rounds=${1:-3}
stack_dir=${STATUSPAGE_STACK_DIR:-/tmp/statuspage-stack}
# shellcheck source=/dev/null
source "$stack_dir/env" 2>/dev/null || { echo "stack not running: run tests/stack/up.sh" >&2; exit 1; }
overlay=$stack_dir/local-deploy/app/overlays/local
[[ -d $overlay ]] || { echo "no patched overlay: run bin/local-deploy once" >&2; exit 1; }
py=${STATUSPAGE_CACHE:-/var/cache/statuspage}/venv-judges/bin/python
bin=$repo/target/release/statuspage-rollout
[[ -x $bin ]] || (cd "$repo" && cargo build --release --quiet -p statuspage-rollout)

work=$(mktemp -d)
namespaces=()
cleanup() {
  for ns in "${namespaces[@]}"; do kubectl delete namespace "$ns" --wait=false >/dev/null 2>&1 || true; done
  rm -rf "$work"
}
trap cleanup EXIT
kustomize build "$overlay" >"$work/rendered.yaml"

# split NAMESPACE ROUND: write ours.yaml (everything) and, for kubectl, config.yaml, job.yaml and
# workloads.yaml, all moved to NAMESPACE, the migration template turned into the release's Job.
split() {
  "$py" - "$work/rendered.yaml" "$work/$1" "$1" "$2" <<'PY'
import sys, yaml, os
src, out, ns, rnd = sys.argv[1:5]
os.makedirs(out, exist_ok=True)
docs = [d for d in yaml.safe_load_all(open(src)) if d]
config, job, workloads = [], [], []
for d in docs:
    if d["kind"] == "Namespace":
        d["metadata"]["name"] = ns
    else:
        d["metadata"]["namespace"] = ns
    if d["kind"] == "Deployment":
        d["spec"]["template"]["metadata"].setdefault("annotations", {})["bench/round"] = rnd
    if d["kind"] in ("Deployment", "Job"):
        # Small requests: both sides' pods (and a surge pod each) must fit the stack's 2-CPU node.
        for c in d["spec"]["template"]["spec"]["containers"]:
            c.setdefault("resources", {})["requests"] = {"cpu": "10m", "memory": "16Mi"}
    if d["kind"] == "HorizontalPodAutoscaler":
        # Pinned at its minimum: a scale-out while pods boot (CPU requests are tiny here) would
        # time the HPA, not the tools.
        d["spec"]["maxReplicas"] = d["spec"].get("minReplicas", 1)
    role = d["metadata"].get("annotations", {}).get("statuspage.io/role")
    if d["kind"] == "Job" and role == "migration-template":
        copy = yaml.safe_load(yaml.safe_dump(d))
        copy["metadata"]["name"] += "-bench"
        del copy["metadata"]["annotations"]["statuspage.io/role"]
        job.append(copy)
    elif d["kind"] in ("Deployment", "HorizontalPodAutoscaler"):
        workloads.append(d)
    else:
        config.append(d)
dump = lambda name, items: yaml.safe_dump_all(items, open(os.path.join(out, name), "w"))
dump("ours.yaml", docs)
dump("config.yaml", config)
dump("job.yaml", job)
dump("workloads.yaml", workloads)
print(job[0]["metadata"]["name"])
for d in workloads:
    if d["kind"] == "Deployment":
        print(d["metadata"]["name"])
PY
}

# Namespaces with the Secrets and the data CA bin/local-deploy made exist before the clock runs.
prepare() {
  local ns=$1
  namespaces+=("$ns")
  kubectl create namespace "$ns" >/dev/null
  for object in secret/registry-credentials secret/statuspage-secrets configmap/statuspage-data-ca; do
    kubectl -n statuspage get "$object" -o json |
      "$py" -c 'import json,sys; d=json.load(sys.stdin); m=d["metadata"]; [m.pop(k,None) for k in ("namespace","uid","resourceVersion","creationTimestamp","managedFields","ownerReferences")]; print(json.dumps(d))' |
      kubectl -n "$ns" apply -f - >/dev/null
  done
}

# stamp: each line of stdin prefixed with its arrival time.
stamp() { while IFS= read -r line; do printf '%s %s\n' "$EPOCHREALTIME" "$line"; done; }
# ours NS: run statuspage-rollout; sets $exit_at (its exit time) and $ready_gap_ms.
ours() {
  local events=$work/$1.events watcher
  # One line per pod event, "<arrival time> <pod>|<deletionTimestamp>|<Ready>"; $! is kubectl.
  kubectl -n "$1" get pods --watch-only \
    -o jsonpath='{.metadata.name}|{.metadata.deletionTimestamp}|{.status.conditions[?(@.type=="Ready")].status}{"\n"}' \
    > >(stamp >"$events") &
  watcher=$!
  sleep 0.5
  "$bin" --manifests "$work/$1/ours.yaml" --timeout 5m >/dev/null 2>"$work/ours.log" || { kill "$watcher"; cat "$work/ours.log" >&2; return 1; }
  exit_at=$EPOCHREALTIME
  # The tool's own account of where the time went (its report's phases, printed as "time: …").
  grep -m1 '^time: ' "$work/ours.log" | sed "s/^time: /  round $round, $stage: /" >>"$work/phases"
  sleep 0.2
  kill "$watcher" 2>/dev/null || true
  wait "$watcher" 2>/dev/null || true
  # The last first-Ready of a pod not being deleted, before the exit.
  ready_gap_ms=$(awk -v exit_at="$exit_at" '{ split($2, f, "|"); if (f[2] == "" && f[3] == "True" && !(f[1] in seen) && $1 <= exit_at) { seen[f[1]] = 1; if ($1 > last) last = $1 } }
    END { if (last) printf "%.0f", (exit_at - last) * 1000; else print "n/a" }' "$events")
}
theirs() {
  local dir=$work/$1 ns=$1 names job
  mapfile -t names < <(split "$ns" "$2")
  job=${names[0]}
  kubectl apply --server-side --field-manager=bench --dry-run=server -f "$dir/config.yaml" -f "$dir/job.yaml" -f "$dir/workloads.yaml" >/dev/null
  kubectl apply --server-side --field-manager=bench -f "$dir/config.yaml" >/dev/null
  kubectl apply --server-side --field-manager=bench -f "$dir/job.yaml" >/dev/null
  kubectl -n "$ns" wait --for=condition=complete "job/$job" --timeout=300s >/dev/null
  kubectl apply --server-side --field-manager=bench -f "$dir/workloads.yaml" >/dev/null
  for deployment in "${names[@]:1}"; do
    kubectl -n "$ns" rollout status "deployment/$deployment" --timeout=300s >/dev/null
  done
}
now() { date +%s.%N; }
elapsed() { echo "$(now) - $1" | bc; }

# pair STAGE: ours and kubectl once each for STAGE (first, update); who goes first alternates with
# the round, since the second run of a pair finds the first one's pods still starting or stopping
# on the same node. Sets ours_STAGE, gap_STAGE and cli_STAGE.
pair() {
  local t stage=$1
  if ((round % 2)); then
    t=$(now); ours "$a"; printf -v "ours_$1" %s "$(elapsed "$t")"; printf -v "gap_$1" %s "$ready_gap_ms"
    t=$(now); theirs "$b" "$1"; printf -v "cli_$1" %s "$(elapsed "$t")"
  else
    t=$(now); theirs "$b" "$1"; printf -v "cli_$1" %s "$(elapsed "$t")"
    t=$(now); ours "$a"; printf -v "ours_$1" %s "$(elapsed "$t")"; printf -v "gap_$1" %s "$ready_gap_ms"
  fi
}

printf '| round | tool | first s | update s | last Ready -> exit ms (first, update) |\n|---|---|---|---|---|\n' >"$work/table"
sum_first=0 sum_update=0 ratios_first=() ratios_update=()
ours_first="" ours_update="" gap_first="" gap_update="" cli_first="" cli_update="" # set by pair
for round in $(seq 1 "$rounds"); do
  a=bench-ours-$round-$RANDOM b=bench-kubectl-$round-$RANDOM
  prepare "$a"
  prepare "$b"
  split "$a" first >/dev/null
  pair first
  split "$a" update >/dev/null
  pair update
  # Each round on an emptied node: its namespaces go before the next round starts (at most 2
  # minutes: a worker pod may take its whole grace period, 330 s, to stop).
  kubectl delete namespace "$a" "$b" --wait=false >/dev/null
  kubectl wait --for=delete "namespace/$a" "namespace/$b" --timeout=120s >/dev/null 2>&1 ||
    echo "round $round: its namespaces are still terminating; the next round starts anyway" >&2
  printf '| %s | statuspage-rollout | %.2f | %.2f | %s, %s |\n| %s | kubectl | %.2f | %.2f | |\n' \
    "$round" "$ours_first" "$ours_update" "$gap_first" "$gap_update" "$round" "$cli_first" "$cli_update" >>"$work/table"
  sum_first=$(echo "$sum_first + $ours_first / $cli_first" | bc -l)
  sum_update=$(echo "$sum_update + $ours_update / $cli_update" | bc -l)
  ratios_first+=("$(echo "$ours_first / $cli_first" | bc -l)")
  ratios_update+=("$(echo "$ours_update / $cli_update" | bc -l)")
  tail -n 2 "$work/table" >&2
done
median() { printf '%s\n' "$@" | sort -g | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
cat "$work/table"
printf '\nstatuspage-rollout phases per run (render, connect, validate and lock are the tool; the\nmigration and wait are mostly the pods):\n'
cat "$work/phases"
printf '\nratio statuspage-rollout / kubectl (goal <= 0.6): first mean %.2f median %.2f, update mean %.2f median %.2f\n' \
  "$(echo "$sum_first / $rounds" | bc -l)" "$(median "${ratios_first[@]}")" \
  "$(echo "$sum_update / $rounds" | bc -l)" "$(median "${ratios_update[@]}")"
