#!/usr/bin/env bash
# bin/bootstrap held to what manifests/README.md says it does (run by tests/suites/40-manifests.sh,
# after the CRD fixtures are installed):
#   1. bad arguments, a bad environment file (each value's shape: zone IDs of the region, CIDRs,
#      names, versions; the committed example values outside a dry run) and a missing command:
#      exit 2 and one line naming what is wrong; a CRLF environment file reads the same;
#   2. --dry-run for staging and production: every stack deployed with that environment's own
#      settings (staging's VPC prefix is staging's), the load balancer controller installed first
#      with vpcId and region from the network stack, the statuspage namespace applied before the
#      platform, an "unreleased" app never applied;
#   3. the cluster and app phases for real against the stack's cluster, on a copy of the repository
#      whose staging overlay has released images, in namespaces of their own (--namespace-prefix)
#      and without Helm (--skip-helm): the platform's Role and RoleBinding land in the statuspage
#      namespace the script created first; the app goes through statuspage-rollout, whose
#      migration gate holds every Deployment back while the migration cannot finish.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
JUDGES_PY=${STATUSPAGE_CACHE:-/var/cache/statuspage}/venv-judges/bin/python
step() { printf '[bootstrap] %s\n' "$*" >&2; }
fail() { printf '[bootstrap] FAILED: %s\n' "$*" >&2; exit 1; }
work=$(mktemp -d)
prefix=aws-bs$(head -c3 /dev/urandom | od -An -tx1 | tr -d ' \n')-
cleanup() {
  kubectl get namespaces -o name | grep "^namespace/$prefix" | xargs -r kubectl delete --wait=false >/dev/null 2>&1 || true
  kubectl get clusterroles,clusterrolebindings -o name | grep "/$prefix" | xargs -r kubectl delete >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

# --- 1. bad input ------------------------------------------------------------------------------
expect_usage_error() { # expect_usage_error PATTERN ARGS...: exit 2, one line on stderr matching PATTERN
  local pattern=$1 rc=0
  shift
  "$@" >"$work/out" 2>"$work/err" || rc=$?
  ((rc == 2)) || fail "'$*' exited $rc, not 2"
  [[ $(wc -l <"$work/err") == 1 ]] || fail "'$*' printed more than one line: $(cat "$work/err")"
  grep -qE -- "$pattern" "$work/err" || fail "'$*' said '$(cat "$work/err")', not /$pattern/"
  [[ ! -s $work/out ]] || fail "'$*' printed commands before refusing"
}
expect_usage_error 'environment is required' bin/bootstrap --dry-run
expect_usage_error "'prod' is not staging or production" bin/bootstrap --environment prod --dry-run
expect_usage_error "--phase 'apps'" bin/bootstrap --environment staging --phase apps --dry-run
expect_usage_error "unknown argument '--yes'" bin/bootstrap --environment staging --yes
expect_usage_error 'needs a value' bin/bootstrap --environment
expect_usage_error "namespace-prefix 'Bad'" bin/bootstrap --environment staging --namespace-prefix Bad --dry-run
# A copy of the scripts and manifests: bootstrap works from its own checkout.
copy() { rm -rf "$1" && mkdir -p "$1" && cp -r bin manifests "$1/"; }
copy "$work/bad"
sed -i 's/^CIDR_PREFIX=.*/CIDR_PREFIX=10.20/' "$work/bad/manifests/infra/environments/staging.env"
expect_usage_error 'overlays/staging/network-cidrs.yaml does not allow 10.20.160.0/22' \
  "$work/bad/bin/bootstrap" --environment staging --dry-run
sed -i 's/^CIDR_PREFIX=.*/CIDR_PREFIX=10.30/; s/^DOMAIN=.*/DOMAIN=/' "$work/bad/manifests/infra/environments/staging.env"
expect_usage_error 'staging.env: DOMAIN is missing or empty' "$work/bad/bin/bootstrap" --environment staging --dry-run
echo 'REGION="us-east-1"' >>"$work/bad/manifests/infra/environments/staging.env"
expect_usage_error 'staging.env:[0-9]+: .* is not KEY=value' "$work/bad/bin/bootstrap" --environment staging --dry-run
# bad_value KEY VALUE PATTERN: the committed staging.env with one value replaced is refused.
bad_value() {
  copy "$work/bad"
  sed -i "s|^$1=.*|$1=$2|" "$work/bad/manifests/infra/environments/staging.env"
  expect_usage_error "staging.env:[0-9]+: $1 '$2' $3" "$work/bad/bin/bootstrap" --environment staging --dry-run
}
bad_value AVAILABILITY_ZONE_IDS us-east-1a,us-east-1b,us-east-1c "holds 'us-east-1a', not a zone ID"
bad_value AVAILABILITY_ZONE_IDS euw1-az1,euw1-az2,euw1-az3 "holds 'euw1-az1', which is not in REGION us-east-1 .*use1-"
bad_value AVAILABILITY_ZONE_IDS use1-az1,use1-az1,use1-az2 "names 'use1-az1' twice"
bad_value REGION us-east "is not an AWS region code"
bad_value PUBLIC_ACCESS_CIDRS 10.0.0.0/8,300.1.2.3/32 "holds '300.1.2.3/32', not an IPv4 CIDR"
bad_value CIDR_PREFIX 10.256 "is not 10.N"
bad_value DOMAIN Status.Example.com "is not a lowercase DNS name"
bad_value VPC_CNI_VERSION 1.20.4 "is not an EKS add-on version"
bad_value PUBLIC_ACCESS_CIDRS 198.51.100.0/24, "has an empty item"
# The committed example values never reach AWS: refused by the infra phase unless it is a dry run.
copy "$work/bad"
expect_usage_error "HOSTED_ZONE_ID 'Z0000000000EXAMPLE' is the example value" \
  "$work/bad/bin/bootstrap" --environment staging --phase infra
# A missing command is named before anything runs (statuspage-rollout: once the app is released).
sed -i 's/^    newTag: unreleased$/    newTag: bootstrap-test/' "$work/bad/manifests/app/overlays/staging/kustomization.yaml"
expect_usage_error "'/nonexistent/statuspage-rollout' is not installed or not on PATH, and --phase app needs it" \
  "$work/bad/bin/bootstrap" --environment staging --phase app --rollout /nonexistent/statuspage-rollout
sed -i 's/^    newTag: bootstrap-test$/    newTag: unreleased/' "$work/bad/manifests/app/overlays/staging/kustomization.yaml"
# An environment file saved with Windows line endings reads the same.
sed -i 's/$/\r/' "$work/bad/manifests/infra/environments/staging.env"
"$work/bad/bin/bootstrap" --environment staging --dry-run >"$work/crlf.txt" 2>"$work/err" ||
  fail "a CRLF staging.env was refused: $(cat "$work/err")"
bin/bootstrap --environment staging --dry-run | cmp -s - "$work/crlf.txt" ||
  fail "a CRLF staging.env planned other commands than the committed one"
step "bad input: 20 cases, each exit 2 with one line; a CRLF environment file reads the same"

# --- 2. dry run ----------------------------------------------------------------------------------
line_of() { grep -nE -- "$2" "$1" | head -1 | cut -d: -f1; }
for env in staging production; do
  out=$work/dry-$env.txt
  [[ $env == staging ]] && cidr=10.30 || cidr=10.20
  bin/bootstrap --environment "$env" --dry-run >"$out" 2>"$work/err" || fail "dry run of $env: $(cat "$work/err")"
  for stack in network cluster data iam dns alarms; do
    grep -qE "^\+ aws cloudformation deploy --region us-east-1 --stack-name statuspage-$env-$stack " "$out" ||
      fail "dry run of $env does not deploy statuspage-$env-$stack"
  done
  grep -qE "stack-name statuspage-$env-network .* CidrPrefix=$cidr AvailabilityZoneIds=" "$out" ||
    fail "dry run of $env does not deploy the network with CidrPrefix=$cidr and zone IDs"
  [[ $(grep -o 'CidrPrefix=[0-9.]*' "$out" | sort -u) == "CidrPrefix=$cidr" ]] || fail "$env uses another environment's CIDR prefix"
  grep -q "CAPABILITY_AUTO_EXPAND" "$out" || fail "dry run of $env deploys data.yaml without CAPABILITY_AUTO_EXPAND (its rotation transform)"
  lbc=$(line_of "$out" '^\+ helm upgrade --install aws-load-balancer-controller ')
  [[ -n $lbc ]] || fail "dry run of $env does not install the load balancer controller"
  sed -n "${lbc}p" "$out" | grep -q -- "--set \"vpcId=\$(aws cloudformation describe-stacks --region us-east-1 --stack-name statuspage-$env-network" ||
    fail "the load balancer controller does not get vpcId from the $env network stack"
  # shellcheck disable=SC2016 # the dry run prints the command substitution, unexpanded
  sed -n "${lbc}p" "$out" | grep -q -- '--set "region=$(aws cloudformation describe-stacks' ||
    fail "the load balancer controller does not get region from the network stack"
  sed -n "${lbc}p" "$out" | grep -q -- '--wait' || fail "the load balancer controller is not waited for"
  for chart in csi-secrets-store metrics-server cluster-autoscaler external-dns kube-prometheus-stack; do
    n=$(line_of "$out" "^\+ helm upgrade --install $chart ")
    [[ -n $n ]] || fail "dry run of $env does not install $chart"
    ((n > lbc)) || fail "$chart is installed before the load balancer controller (its webhooks refuse Services until it runs)"
  done
  ns=$(line_of "$out" '^\+ kubectl apply --server-side --field-manager=statuspage-bootstrap -f manifests/app/base/namespace.yaml$')
  platform=$(line_of "$out" "^\\+ kubectl apply --server-side --field-manager=statuspage-bootstrap -k manifests/platform/overlays/$env\$")
  [[ -n $ns && -n $platform ]] || fail "dry run of $env does not apply the namespace and the platform"
  ((ns < platform)) || fail "the platform (Role in statuspage) is applied before the statuspage namespace"
  grep -q "^# app: skipped, manifests/app/overlays/$env/kustomization.yaml still names the images 'unreleased'" "$out" ||
    fail "dry run of $env does not skip the unreleased app"
  ! grep -q "overlays/$env\$" <(grep '^+ kubectl apply' "$out" | grep app/) || fail "dry run of $env applies the unreleased app"
  grep -q "^+ (write manifests/app/overlays/$env/aws-outputs.env) .*CERTIFICATE_ARN=\$(aws cloudformation describe-stacks --region us-east-1 --stack-name statuspage-$env-dns" "$out" ||
    fail "dry run of $env does not write the certificate ARN into the overlay"
  step "dry run of $env: $(grep -c '^+ ' "$out") commands, in order"
done
bin/bootstrap --environment staging --dry-run --skip-helm | grep -q '^+ helm' && fail "--skip-helm still prints helm commands"

# --- 3. the cluster half against the stack's cluster ------------------------------------------
[[ -n ${KUBECONFIG:-} ]] || fail "stack not running (KUBECONFIG unset)"
# What the skipped Helm charts would bring: the CRDs the platform and app use (fixtures).
kubectl apply --server-side --force-conflicts --field-manager=statuspage-tests -f tests/manifests/crds/ >/dev/null
kubectl wait --for=condition=Established --timeout=60s -f tests/manifests/crds/ >/dev/null
copy "$work/repo"
# Fluent Bit's pods would mount this machine's /var/log and create /var/fluent-bit on it (the
# stack's node is the test machine): in the copy they select no node, the DaemonSet is still applied.
sed -i 's/^      serviceAccountName: fluent-bit$/&\n      nodeSelector: { statuspage.io\/bootstrap-test: "no-node" }/' \
  "$work/repo/manifests/platform/base/logging/daemonset.yaml"
grep -q 'bootstrap-test: "no-node"' "$work/repo/manifests/platform/base/logging/daemonset.yaml" ||
  fail "could not keep Fluent Bit off the test machine (daemonset.yaml changed?)"
# The staging overlay as the pipeline's patch step leaves it: released images (never pulled here).
sed -i 's/^    newTag: unreleased$/    newTag: bootstrap-test/' "$work/repo/manifests/app/overlays/staging/kustomization.yaml"
# The app phase runs statuspage-rollout, as the deploy workflow does.
cargo build --quiet -p statuspage-rollout
rollout_bin=$PWD/target/debug/statuspage-rollout
bootstrap_phase() {
  "$work/repo/bin/bootstrap" --environment staging --phase "$1" --skip-helm --namespace-prefix "$prefix" \
    --python "$JUDGES_PY" --rds-ca-bundle "${STACK_CA_CERT:?}" --rollout "$rollout_bin" >"$work/phase-$1.txt" 2>&1
}
run_phase() {
  bootstrap_phase "$1" || { cat "$work/phase-$1.txt" >&2; fail "bin/bootstrap --phase $1 against the stack's cluster"; }
}
run_phase cluster
s=${prefix}statuspage
[[ $(kubectl get namespace "$s" -o jsonpath='{.metadata.labels.pod-security\.kubernetes\.io/enforce}') == restricted ]] ||
  fail "namespace $s was not created with PodSecurity restricted"
kubectl get -n "$s" role/statuspage-deployer rolebinding/statuspage-deployer configmap/rds-ca-bundle >/dev/null ||
  fail "the platform's Role/RoleBinding or the RDS CA bundle is missing in $s"
kubectl get -n "${prefix}monitoring" secret/grafana-admin >/dev/null || fail "no Grafana admin secret"
kubectl get -n "${prefix}logging" daemonset/fluent-bit >/dev/null || fail "the platform's Fluent Bit is missing"
[[ $(kubectl get -n "${prefix}logging" pods -o name | wc -l) == 0 ]] || fail "Fluent Bit pods run on the test machine"
kubectl get clusterrole "${prefix}statuspage-deployer-namespace" -o jsonpath='{.rules[0].resourceNames[0]}' | grep -qx "$s" ||
  fail "the deployer's namespace ClusterRole does not name $s"
# The deployer group may patch the app's Deployments in that namespace, and read no Secrets.
kubectl auth can-i patch deployments -n "$s" --as=bootstrap-test --as-group=statuspage-deployers | grep -qx yes ||
  fail "statuspage-deployers cannot patch Deployments in $s"
[[ $(kubectl auth can-i get secrets -n "$s" --as=bootstrap-test --as-group=statuspage-deployers || true) == no ]] ||
  fail "statuspage-deployers can read Secrets in $s"
# A second run changes nothing and keeps the Grafana password.
before=$(kubectl get -n "${prefix}monitoring" secret/grafana-admin -o jsonpath='{.metadata.uid}')
run_phase cluster
[[ $(kubectl get -n "${prefix}monitoring" secret/grafana-admin -o jsonpath='{.metadata.uid}') == "$before" ]] ||
  fail "a second run replaced the Grafana admin secret"
step "cluster phase: namespace $s (restricted), platform RBAC in it, RDS CA bundle, Grafana secret; re-run idempotent"
# The released images are never pulled here and the Secrets Store CSI driver is not installed: the
# migration Job cannot finish, so the rollout stops at its gate and no Deployment is created.
rc=0
STATUSPAGE_TIMEOUT=20s bootstrap_phase app || rc=$?
((rc == 1)) || { cat "$work/phase-app.txt" >&2; fail "the app phase exited $rc, not 1 (its migration cannot finish here)"; }
grep -q "^+ $rollout_bin --manifests " "$work/phase-app.txt" || fail "the app phase did not run statuspage-rollout"
grep -q "==> migration statuspage-migrate-" "$work/phase-app.txt" || fail "the app phase ran no migration gate"
[[ -z $(kubectl get -n "$s" deployments -o name) ]] ||
  fail "the app phase created Deployments although the migration did not finish"
# The deploy workflow runs the same rollout as the GitHub deploy role, which is only the group
# statuspage-deployers in the cluster: the platform's Role must let it do every step (validate,
# Lease, ApplySet parent, migration Job, apply, watch, diagnose), so the run ends the same way
# and nothing is forbidden.
deployer_kubeconfig=$work/deployer.kubeconfig
kubectl config view --raw --flatten --minify |
  "$JUDGES_PY" -c 'import sys, yaml
config = yaml.safe_load(sys.stdin)
config["users"][0]["user"].update({"as": "github-deploy", "as-groups": ["statuspage-deployers"]})
yaml.safe_dump(config, sys.stdout)' >"$deployer_kubeconfig"
[[ $(KUBECONFIG=$deployer_kubeconfig kubectl auth whoami -o jsonpath='{.status.userInfo.groups}') == *statuspage-deployers* ]] ||
  fail "the deployer kubeconfig does not act as group statuspage-deployers"
kubectl kustomize "$work/repo/manifests/app/overlays/staging" | "$JUDGES_PY" bin/lib/rename-namespaces.py "$prefix" >"$work/app.yaml"
rc=0
KUBECONFIG=$deployer_kubeconfig STATUSPAGE_TIMEOUT=20s "$rollout_bin" --manifests "$work/app.yaml" >"$work/deployer.json" 2>"$work/deployer.txt" || rc=$?
((rc == 1)) && grep -q "==> migration statuspage-migrate-" "$work/deployer.txt" && ! grep -qi forbidden "$work/deployer.txt" ||
  { cat "$work/deployer.txt" >&2; fail "statuspage-rollout as group statuspage-deployers exited $rc or was refused something"; }
[[ $(kubectl get -n "$s" jobs -o jsonpath='{.items[*].spec.template.spec.containers[0].image}') == *:bootstrap-test ]] ||
  fail "the migration Job does not run the released tag"
[[ $(kubectl get -n "$s" serviceaccount/statuspage-web -o jsonpath='{.metadata.annotations.eks\.amazonaws\.com/role-arn}') == \
  "$(sed -n 's/^WEB_ROLE_ARN=//p' manifests/app/overlays/staging/aws-outputs.env)" ]] || fail "the web ServiceAccount's role is not aws-outputs.env's"
kubectl get -n "$s" ingress/statuspage-web secretproviderclass/statuspage-migrate networkpolicy/default-deny >/dev/null ||
  fail "the app's Ingress, migrate SecretProviderClass or NetworkPolicies are missing"
step "app phase: statuspage-rollout applied the staging overlay's configuration in $s and stopped at the migration gate; the same run as group statuspage-deployers is refused nothing"
