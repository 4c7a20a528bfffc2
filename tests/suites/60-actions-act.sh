#!/usr/bin/env bash
# The composite actions executed by a real Actions runner: nektos/act (pinned in
# tests/tools/versions.env) runs the test workflows of tests/actions/workflows/ on the host
# (`-P ubuntu-24.04=-self-hosted`, no Docker image) with --action-offline-mode, against the stack.
#   single-actions  build -> push -> patch -> rollout (dry run), each action once, outputs asserted
#   ci.yml -j self-test   the self-test jobs GitHub runs (patch; two expected failures checked with
#                   continue-on-error + outcome; the job gathering every result)
#   deploy          ./actions/deploy from a commit to a completed rollout in namespace statuspage:
#                   release and result outputs, step summaries, the cluster runs the release
#   deploy-broken   ./actions/deploy with a web that crashes at start: the job fails, an ::error
#                   annotation names the crashing workload, result=rolled-back, and the cluster is
#                   left running the previous release, healthy
# The actions run in self-test mode (fetch.sh: this repository's own checkout), with the binaries
# of this checkout's target/debug. Asserted from act's output and from files the workflows write.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.." || exit 1
repo=$(pwd -P)
[[ -n ${KUBECONFIG:-} && -n ${STACK_REGISTRY:-} ]] || { echo "stack not running: run tests/stack/up.sh" >&2; exit 1; }
fail() { echo "[act] FAILED: $*" >&2; exit 1; }
command -v act >/dev/null || fail "act is not installed: run tests/tools/install.sh"
start=$SECONDS
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/out"
namespace=statuspage

# STATUSPAGE_SELF_TEST_BIN_DIR may name binaries already built from this tree (a target folder).
bin_dir=${STATUSPAGE_SELF_TEST_BIN_DIR:-}
if [[ -z $bin_dir ]]; then
  cargo build --quiet --bins
  bin_dir=$repo/target/debug
fi
# The deploy workflows roll out into the namespace bin/local-deploy prepares (Secrets, ConfigMap).
if ! kubectl -n "$namespace" get secret/statuspage-secrets secret/registry-credentials \
  configmap/statuspage-data-ca >/dev/null 2>&1; then
  echo "[act] namespace $namespace not prepared: bin/local-deploy first" >&2
  bin/local-deploy >/dev/null 2>"$work/local-deploy.err" || { cat "$work/local-deploy.err" >&2; fail "bin/local-deploy"; }
fi

# What a step needs from the stack, given to act as workflow env (no secret values among them: the
# registry password comes from `aws ecr get-login-password` inside the job, as on GitHub).
for var in PATH DOCKER_HOST KUBECONFIG AWS_ENDPOINT_URL AWS_REGION AWS_DEFAULT_REGION AWS_ROLE_ARN \
  AWS_ROLE_SESSION_NAME AWS_WEB_IDENTITY_TOKEN_FILE AWS_EC2_METADATA_DISABLED STACK_REGISTRY STACK_BASE_IMAGE; do
  printf '%s=%s\n' "$var" "${!var}"
done >"$work/env"
printf 'ACT_OUT=%s\nSTATUSPAGE_SELF_TEST_BIN_DIR=%s\n' "$work/out" "$bin_dir" >>"$work/env"
# The stack's GitHub API stand-in (Prism), for a record step pointed at it; unset, GitHub is unreachable.
if [[ -n ${STACK_GITHUB_API_URL:-} ]]; then printf 'STACK_GITHUB_API_URL=%s\n' "$STACK_GITHUB_API_URL" >>"$work/env"; fi

# run_act NAME [WORKFLOW_FILE [ACT_ARGS...]]: act's exit code; its output in $work/NAME.log.
run_act() {
  local name=$1 file=${2:-tests/actions/workflows/$1.yml} code=0
  shift $(($# < 2 ? $# : 2))
  act push -W "$file" -P ubuntu-24.04=-self-hosted --action-offline-mode \
    --env-file "$work/env" "$@" >"$work/$name.log" 2>&1 || code=$?
  echo "[act] $name: act exited $code in $((SECONDS - start))s so far" >&2
  return "$code"
}
show() { tail -n 60 "$work/$1.log" >&2; }

# deploy.yml cannot run offline (configure-aws-credentials, a checkout of another repository); act
# still plans it: staging first, production after it.
act push -W .github/workflows/deploy.yml -l 2>/dev/null >"$work/deploy-plan.txt" || fail "act cannot plan deploy.yml"
grep -qE '^0 +staging +Deploy to staging' "$work/deploy-plan.txt" &&
  grep -qE '^1 +production +Deploy to production' "$work/deploy-plan.txt" || { cat "$work/deploy-plan.txt" >&2; fail "deploy.yml: not staging, then production"; }
echo "[act] deploy.yml plans staging, then production" >&2

run_act single-actions || { show single-actions; fail "single-actions workflow"; }
grep -q 'self-test mode' "$work/single-actions.log" || { show single-actions; fail "self-test mode not used or not logged"; }
python3 - "$work/out/single.json" "$work/out/single-kustomization.yaml" <<'PY' || fail "single actions' outputs"
import json, sys
o = json.load(open(sys.argv[1]))
kustomization = open(sys.argv[2]).read()
built, pushed = json.loads(o["built"]), json.loads(o["pushed"])
assert o["skipped"] in ("true", "false") and o["builder"] in ("buildkit", "classic", "none"), o
assert len(pushed["commit"]) == 40 and pushed["commit"] == built["commit"], (built, pushed)
assert set(pushed["images"]) == {"web", "worker", "scheduler"}, pushed["images"]
for name, image in pushed["images"].items():
    assert image["digest"].startswith("sha256:") and len(image["digest"]) == 71, (name, image)
    assert image["digest"] in kustomization, f"{name}: {image['digest']} not in the patched overlay"
assert o["changed"] == "true", o["changed"]
assert o["overlay"].endswith("/app/overlays/local"), o["overlay"]
assert o["result"] == "dry-run", o["result"]
print("[act] single-actions: build, push (3 digests), patch (overlay pinned), rollout (dry-run) outputs", file=sys.stderr)
PY

run_act ci .github/workflows/ci.yml -j self-test || { show ci; fail "ci.yml self-test jobs"; }
for job in 'self-test: patch' 'self-test: failures are failures' 'self-test: all results'; do
  grep -qE "^\[ci/$job *\] .*Job succeeded" "$work/ci.log" || { show ci; fail "ci.yml job '$job' did not succeed"; }
done
# (On failure: that job's own lines, not the log's tail, which belongs to whichever job ended last.)
grep -q '::error file=manifests/app/overlays/local/kustomization.yaml,line=[0-9]*::.*not at the release' "$work/ci.log" ||
  { grep -F '[ci/self-test: failures are failures' "$work/ci.log" | tail -n 80 >&2; fail "the expected drift failure has no annotation at the overlay's line"; }
echo "[act] ci.yml self-test jobs: green, the expected failures failed with their annotations" >&2

run_act deploy || { show deploy; fail "deploy workflow"; }
python3 - "$work/out/deploy.json" <(kubectl -n "$namespace" get deployments -o json) <<'PY' || fail "deploy outputs or cluster state"
import json, sys
o = json.load(open(sys.argv[1]))
items = json.load(open(sys.argv[2]))["items"]
assert o["result"] == "deployed" and o["outcome"] == "success", o
release = json.loads(o["release"])
for name, image in release["images"].items():
    pinned = f'{image["repository"]}:{image["tag"]}@{image["digest"]}'
    d = next(i for i in items if i["metadata"]["name"] == f"statuspage-{name}")
    assert [c["image"] for c in d["spec"]["template"]["spec"]["containers"]] == [pinned], (name, pinned)
    s = d["status"]
    assert s.get("availableReplicas", 0) >= 1 and s.get("updatedReplicas") == s.get("replicas"), (name, s)
print(f"[act] deploy: result=deployed, the cluster runs release {release['commit'][:12]}", file=sys.stderr)
PY
# Every step's summary, as act reports it: build, push, patch, rollout.
for want in '### Images built' '### Images pushed' '### Overlay `' '### Rollout to `statuspage`: deployed'; do
  grep -qF -- "Summary - $want" "$work/deploy.log" || { show deploy; fail "no step summary '$want'"; }
done
grep -q 'self-test mode' "$work/deploy.log" || fail "deploy: self-test mode not used or not logged"

if run_act deploy-broken; then show deploy-broken; fail "the broken release's job succeeded"; fi
python3 - "$work/out/deploy-broken.json" <<'PY' || { show deploy-broken; fail "broken release outputs"; }
import json, sys
o = json.load(open(sys.argv[1]))
assert o["result"] == "rolled-back" and o["outcome"] == "failure", o
print("[act] deploy-broken: job failed, result=rolled-back", file=sys.stderr)
PY
grep -E '::error[^:]*::.*statuspage-web' "$work/deploy-broken.log" >&2 ||
  grep -E '(❌|error).*statuspage-web' "$work/deploy-broken.log" | head -3 >&2 || { show deploy-broken; fail "no error annotation naming statuspage-web"; }
command=$(kubectl -n "$namespace" get deployment statuspage-web -o jsonpath='{.spec.template.spec.containers[0].command}')
[[ -z $command ]] || fail "web still runs the broken release's command: $command"
kubectl -n "$namespace" rollout status deployment/statuspage-web --timeout=120s >/dev/null || fail "web not healthy after the rollback"
echo "[act] deploy-broken: rolled back, web healthy on the previous release" >&2
echo "[act] 4 workflow runs, all assertions passed in $((SECONDS - start))s" >&2
