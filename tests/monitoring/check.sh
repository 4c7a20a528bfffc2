#!/usr/bin/env bash
# The alert rules and dashboard queries of manifests/platform/base/monitoring, judged by Prometheus's
# own tools (suite 40-manifests):
#   1. each PrometheusRule's spec written out as a rules file; `promtool check rules` on it;
#   2. `promtool test rules` on tests/monitoring/*.test.yaml, and every alert has at least one case
#      where it fires and one where it stays silent; and the cases do tell: with any one alert's
#      expression replaced by one that always fires, or by one that never fires, the tests fail;
#   3. every Grafana panel query parses (`promtool check rules` with each query as a recording rule);
#   4. every alert and panel query parsed by Prometheus's PromQL parser (promql-names), and each metric
#      it names is the app's (statuspage_*) or listed with its exporter in metrics-allowlist.yaml.
#      Suite 50-pipeline checks the app's names against a scrape of the running app;
#   5. the Alertmanager configuration each environment's chart values make is valid (amtool);
#   6. the monitoring NetworkPolicies of staging and production, with the app's, allow every
#      connection tests/monitoring/flows.yaml lists as needed and block the ones it lists as not.
# Usage: tests/monitoring/check.sh [OUTDIR]   (OUTDIR keeps names.json for later checks)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
CACHE=${STATUSPAGE_CACHE:-/var/cache/statuspage}
PY=$CACHE/venv-judges/bin/python
fail() { printf '[monitoring] FAILED: %s\n' "$*" >&2; exit 1; }
for tool in promtool promql-names amtool kustomize; do
  command -v "$tool" >/dev/null || fail "$tool not on PATH (tests/tools/install.sh installs it)"
done
[[ -x $PY ]] || fail "$PY missing (tests/tools/install.sh creates it)"

if [[ -n ${1:-} ]]; then
  work=$1
  mkdir -p "$work"
else
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
fi

mapfile -t rules < <("$PY" tests/monitoring/queries.py rules "$work")
promtool check rules "${rules[@]}" >"$work/check.log" 2>&1 || { cat "$work/check.log" >&2; fail "promtool check rules"; }
cp tests/monitoring/*.test.yaml "$work/"
tests=("$work"/*.test.yaml)
promtool test rules "${tests[@]}" >"$work/test.log" 2>&1 || { cat "$work/test.log" >&2; fail "promtool test rules"; }
printf '[monitoring] promtool test rules: %s files, %s test groups passed\n' "${#tests[@]}" \
  "$(cat "${tests[@]}" | grep -c '^  - name:')" >&2
"$PY" tests/monitoring/queries.py coverage "${rules[@]}" -- "${tests[@]}"
mkdir "$work/mutants"
mapfile -t mutants < <("$PY" tests/monitoring/queries.py mutants "$work/mutants" "${rules[@]}")
for m in "${mutants[@]}"; do
  cp tests/monitoring/*.test.yaml "$m/"
  if promtool test rules "$m"/*.test.yaml >/dev/null 2>&1; then
    fail "the tests still pass with alert $(basename "$m" | sed 's/-\([a-z]*\)$/ \1 firing/'): they do not test that alert"
  fi
done
printf '[monitoring] %s mutants (each alert always / never firing): every one fails the tests\n' "${#mutants[@]}" >&2

"$PY" tests/monitoring/queries.py dashboard-rules "$work/dashboard.rules.yaml"
promtool check rules "$work/dashboard.rules.yaml" >"$work/check.log" 2>&1 ||
  { cat "$work/check.log" >&2; fail "a dashboard query does not parse (recording rule dashboard:query_N is the N-th query, from 0)"; }
"$PY" tests/monitoring/queries.py exprs | promql-names >"$work/names.json" || fail "promql-names: a query does not parse or names no metric"
"$PY" tests/monitoring/queries.py names "$work/names.json" tests/monitoring/metrics-allowlist.yaml

for env in staging production; do
  "$PY" tests/monitoring/queries.py alertmanager-config "$env" "$work/alertmanager-$env.yaml"
  amtool check-config "$work/alertmanager-$env.yaml" >"$work/amtool.log" 2>&1 ||
    { cat "$work/amtool.log" >&2; fail "amtool check-config: the Alertmanager configuration for $env (manifests/platform/kube-prometheus-stack)"; }
done
printf '[monitoring] amtool check-config: the Alertmanager configuration of staging and production is valid\n' >&2

for env in staging:10.30 production:10.20; do
  name=${env%%:*}
  kustomize build "manifests/platform/overlays/$name" >"$work/platform-$name.yaml" || fail "kustomize build manifests/platform/overlays/$name"
  kustomize build "manifests/app/overlays/$name" >"$work/app-$name.yaml" || fail "kustomize build manifests/app/overlays/$name"
  "$PY" tests/monitoring/flows.py tests/monitoring/flows.yaml "${env##*:}" "$work/platform-$name.yaml" "$work/app-$name.yaml" ||
    fail "the $name NetworkPolicies do not allow or block the monitoring connections tests/monitoring/flows.yaml lists"
done
