"""The alert rules and dashboard queries of manifests/platform/base/monitoring, for promtool and the
metric-name checks (tests/monitoring/check.sh, tests/suites/50-pipeline.sh).

    queries.py rules OUTDIR            one <PrometheusRule name>.rules.yaml per PrometheusRule (its spec)
    queries.py dashboard-rules OUT     every panel query as a recording rule, for `promtool check rules`
    queries.py exprs                   every alert and panel query as JSON [{source, expr}] (promql-names)
    queries.py coverage RULES.. -- TESTS..  every alert has a firing and a silent promtool test case
    queries.py mutants OUTDIR RULES..  per alert, two copies of the rules files in OUTDIR/<alert>-<how>/:
                                       that alert always firing, and never firing (the tests must fail)
    queries.py scrape-urls PODS_JSON   the URL of every pod the ServiceMonitors and PodMonitors select
                                       (PODS_JSON: kubectl get pods,services -o json), one per line
    queries.py alertmanager-config ENV OUT  the Alertmanager configuration Helm makes of
                                       kube-prometheus-stack/values.yaml + values-ENV.yaml, for amtool
    queries.py names NAMES ALLOWLIST [SCRAPE...]
                                       every metric a query names is exported: by an exporter listed in
                                       the allow-list, or by the app (with SCRAPE files: found in them;
                                       without: named statuspage_*)

Any failure is one line per problem on stderr naming the file and the item, and exit 1.
"""

from __future__ import annotations

import glob
import json
import os
import re
import sys

import yaml

MONITORING = "manifests/platform/base/monitoring"
CHART_VALUES = "manifests/platform/kube-prometheus-stack"
# Grafana's interval macros; promtool and the parser know none of them.
GRAFANA_MACROS = re.compile(r"\$(__rate_interval|__interval|__range)\b|\$\{(__rate_interval|__interval|__range)\}")
APP_PREFIX = "statuspage_"


def fail(problems: list[str]) -> None:
    for p in problems:
        print(f"[monitoring] {p}", file=sys.stderr)
    sys.exit(1 if problems else 0)


def prometheus_rules() -> list[tuple[str, dict]]:
    """(file, PrometheusRule) for every PrometheusRule object in the monitoring folder."""
    found = []
    for path in sorted(glob.glob(f"{MONITORING}/*.yaml")):
        for doc in yaml.safe_load_all(open(path)):
            if doc and doc.get("kind") == "PrometheusRule":
                found.append((path, doc))
    if not found:
        fail([f"{MONITORING}: no PrometheusRule found"])
    return found


def panels(items: list[dict]):
    for panel in items:
        yield panel
        yield from panels(panel.get("panels", []))  # rows hold their panels


def dashboard_queries() -> list[tuple[str, str]]:
    """(source, expr) for every Prometheus target of every dashboard, Grafana macros made concrete."""
    out = []
    for path in sorted(glob.glob(f"{MONITORING}/grafana/*.json")):
        board = json.load(open(path))
        for panel in panels(board.get("panels", [])):
            for target in panel.get("targets", []):
                if "expr" not in target:
                    continue
                expr = GRAFANA_MACROS.sub("5m", target["expr"])
                out.append((f"{path}: panel {panel.get('title')!r} target {target.get('refId')}", expr))
    if not out:
        fail([f"{MONITORING}/grafana: no dashboard query found"])
    return out


def alert_queries() -> list[tuple[str, str]]:
    out = []
    for path, doc in prometheus_rules():
        for group in doc["spec"]["groups"]:
            for rule in group["rules"]:
                name = rule.get("alert") or rule.get("record")
                out.append((f"{path}: group {group['name']} rule {name}", rule["expr"]))
    return out


def cmd_rules(outdir: str) -> None:
    for path, doc in prometheus_rules():
        dst = os.path.join(outdir, f"{doc['metadata']['name']}.rules.yaml")
        yaml.safe_dump({"groups": doc["spec"]["groups"]}, open(dst, "w"), sort_keys=False)
        print(dst)


def cmd_dashboard_rules(out: str) -> None:
    rules = [{"record": f"dashboard:query_{i}", "expr": expr} for i, (_, expr) in enumerate(dashboard_queries())]
    yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}, open(out, "w"), sort_keys=False)
    print(f"[monitoring] {len(rules)} dashboard queries written as recording rules", file=sys.stderr)


def cmd_exprs() -> None:
    json.dump([{"source": s, "expr": e} for s, e in alert_queries() + dashboard_queries()], sys.stdout)


def cmd_coverage(rules_files: list[str], test_files: list[str]) -> None:
    alerts = set()
    for path in rules_files:
        for group in yaml.safe_load(open(path))["groups"]:
            alerts |= {r["alert"] for r in group["rules"] if "alert" in r}
    firing: dict[str, int] = {}
    silent: dict[str, int] = {}
    problems = []
    for path in test_files:
        for test in yaml.safe_load(open(path)).get("tests", []):
            for case in test.get("alert_rule_test", []):
                name = case["alertname"]
                if name not in alerts:
                    problems.append(f"{path}: test {test.get('name')!r} expects alert {name}, which no rule defines")
                bucket = firing if case.get("exp_alerts") else silent
                bucket[name] = bucket.get(name, 0) + 1
    for name in sorted(alerts):
        if not firing.get(name):
            problems.append(f"alert {name}: no promtool test case where it fires (add one to tests/monitoring/*.test.yaml)")
        if not silent.get(name):
            problems.append(f"alert {name}: no promtool test case where it stays silent (add one to tests/monitoring/*.test.yaml)")
    if problems:
        fail(problems)
    print(f"[monitoring] {len(alerts)} alerts, each with a firing and a silent case "
          f"({sum(firing.values())} firing, {sum(silent.values())} silent)", file=sys.stderr)


def cmd_mutants(outdir: str, rules_files: list[str]) -> None:
    loaded = {path: yaml.safe_load(open(path)) for path in rules_files}
    for path, doc in loaded.items():
        for gi, group in enumerate(doc["groups"]):
            for ri, rule in enumerate(group["rules"]):
                if "alert" not in rule:
                    continue
                for how, expr in (("always", "vector(1)"), ("never", "vector(1) == 0")):
                    dst = os.path.join(outdir, f"{rule['alert']}-{how}")
                    os.makedirs(dst)
                    for other, other_doc in loaded.items():
                        copy = json.loads(json.dumps(other_doc))
                        if other == path:
                            copy["groups"][gi]["rules"][ri]["expr"] = expr
                        yaml.safe_dump(copy, open(os.path.join(dst, os.path.basename(other)), "w"), sort_keys=False)
                    print(dst)


def monitors() -> list[tuple[str, dict]]:
    found = []
    for path in sorted(glob.glob(f"{MONITORING}/*.yaml")):
        for doc in yaml.safe_load_all(open(path)):
            if doc and doc.get("kind") in ("ServiceMonitor", "PodMonitor"):
                found.append((path, doc))
    return found


def selects(selector: dict, labels: dict) -> bool:
    """A Kubernetes label selector (matchLabels, matchExpressions In/NotIn/Exists) against labels."""
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for e in selector.get("matchExpressions", []):
        value, op = labels.get(e["key"]), e["operator"]
        if (op == "In" and value not in e["values"]) or (op == "NotIn" and value in e["values"]) \
                or (op == "Exists" and value is None) or (op == "DoesNotExist" and value is not None):
            return False
    return True


def pod_port(pod: dict, port) -> int | None:
    """A container port of the pod, by name or number."""
    for c in pod["spec"]["containers"]:
        for p in c.get("ports", []):
            if port in (p.get("name"), p["containerPort"]):
                return p["containerPort"]
    return None


def cmd_scrape_urls(objects_json: str) -> None:
    """What Prometheus would scrape: the monitors' endpoints resolved to running pods' addresses."""
    items = json.load(open(objects_json))["items"]
    pods = [i for i in items if i["kind"] == "Pod" and i["status"].get("phase") == "Running"
            and "deletionTimestamp" not in i["metadata"]]
    services = [i for i in items if i["kind"] == "Service"]
    urls, problems = [], []
    for path, mon in monitors():
        spec = mon["spec"]
        namespaces = spec.get("namespaceSelector", {}).get("matchNames")
        mine = [p for p in pods if namespaces is None or p["metadata"]["namespace"] in namespaces]
        if mon["kind"] == "PodMonitor":
            targets = [(p, e["port"], e.get("path", "/metrics")) for p in mine
                       if selects(spec["selector"], p["metadata"].get("labels", {}))
                       for e in spec["podMetricsEndpoints"]]
        else:
            targets = []
            for svc in services:
                if not selects(spec["selector"], svc["metadata"].get("labels", {})):
                    continue
                for e in spec["endpoints"]:
                    sp = next((p for p in svc["spec"]["ports"] if p.get("name") == e["port"]), None)
                    if sp is None:
                        problems.append(f"{path}: Service {svc['metadata']['name']} has no port named {e['port']}")
                        continue
                    targets += [(p, sp.get("targetPort", sp["port"]), e.get("path", "/metrics")) for p in mine
                                if p["metadata"]["namespace"] == svc["metadata"]["namespace"]
                                and selects({"matchLabels": svc["spec"].get("selector", {})}, p["metadata"]["labels"])]
        if not targets:
            problems.append(f"{path}: {mon['kind']} {mon['metadata']['name']} selects no running pod")
        for pod, port, url_path in targets:
            number = pod_port(pod, port)
            if number is None:
                problems.append(f"{path}: pod {pod['metadata']['name']} has no container port {port}")
                continue
            urls.append(f"http://{pod['status']['podIP']}:{number}{url_path} {mon['metadata']['name']} {pod['metadata']['name']}")
    if problems:
        fail(problems)
    print("\n".join(urls))


def helm_merge(base, over):
    """Helm's merge of values files: maps merge key by key, anything else (lists too) is replaced."""
    if isinstance(base, dict) and isinstance(over, dict):
        out = dict(base)
        for k, v in over.items():
            out[k] = helm_merge(base.get(k), v)
        return out
    return over


def cmd_alertmanager_config(env: str, out: str) -> None:
    values = {}
    for name in ("values.yaml", f"values-{env}.yaml"):
        path = os.path.join(CHART_VALUES, name)
        if not os.path.exists(path):
            fail([f"{path}: missing (the values for environment {env})"])
        values = helm_merge(values, yaml.safe_load(open(path)))
    config = values.get("alertmanager", {}).get("config")
    if not config:
        fail([f"{CHART_VALUES}: no alertmanager.config"])
    yaml.safe_dump(config, open(out, "w"), sort_keys=False)


def load_allowlist(path: str) -> dict[str, str]:
    """metric name -> the exporter that exports it (the allow-list maps each source to its names)."""
    listed: dict[str, str] = {}
    for source, names in yaml.safe_load(open(path)).items():
        for name in names:
            listed[name] = source
    return listed


# Labels Prometheus attaches to every series of a ServiceMonitor/PodMonitor target.
TARGET_LABELS = {"job", "instance", "namespace", "pod", "container", "service", "endpoint"}
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="(?:[^"\\]|\\.)*"')


def scraped_names(paths: list[str]) -> dict[str, set[str]]:
    """metric name -> the label names its scraped series carry."""
    names: dict[str, set[str]] = {}
    for path in paths:
        for line in open(path):
            if line.strip() and not line.startswith("#"):
                name, _, rest = line.partition("{")
                name = name.split()[0]
                labels = {m.group(1) for m in LABEL.finditer(rest.rpartition("}")[0])} if rest else set()
                names.setdefault(name, set()).update(labels)
    return names


def cmd_names(names_json: str, allowlist_path: str, scrapes: list[str]) -> None:
    used = json.load(open(names_json))
    listed = load_allowlist(allowlist_path)
    exported = scraped_names(scrapes) if scrapes else None
    problems = []
    seen = set()
    for item in used:
        for name in item["metrics"]:
            seen.add(name)
            if name in listed:
                if name.startswith(APP_PREFIX):
                    problems.append(f"{allowlist_path}: {name} is the app's own metric; it must come from the scrape")
                continue
            if exported is None and not name.startswith(APP_PREFIX):
                problems.append(f"{item['source']}: metric {name} is neither the app's ({APP_PREFIX}*) nor in "
                                f"{allowlist_path} under the exporter that exports it")
            elif exported is not None and name not in exported:
                problems.append(f"{item['source']}: metric {name} is not exported by the running app "
                                f"(scraped: {', '.join(sorted(n for n in exported if n.startswith(APP_PREFIX)))}) "
                                f"and not in {allowlist_path}")
            elif exported is not None:
                unknown = set(item["matchers"][name]) - exported[name] - TARGET_LABELS
                if unknown:
                    problems.append(f"{item['source']}: {name} has no label {', '.join(sorted(unknown))} in the "
                                    f"running app's scrape (it has: {', '.join(sorted(exported[name]))})")
    for name in sorted(set(listed) - seen):
        problems.append(f"{allowlist_path}: {name} ({listed[name]}) is used by no alert or panel; remove it")
    if problems:
        fail(problems)
    app = sorted(n for n in seen if n not in listed)
    where = f"found in {len(scrapes)} scrapes of the running app" if scrapes else f"named {APP_PREFIX}*"
    print(f"[monitoring] {len(used)} queries name {len(seen)} metrics: {len(app)} the app's ({where}), "
          f"{len(seen) - len(app)} from allow-listed exporters", file=sys.stderr)


def main(argv: list[str]) -> None:
    if not argv:
        fail([__doc__.strip()])
    cmd, args = argv[0], argv[1:]
    if cmd == "rules" and len(args) == 1:
        cmd_rules(args[0])
    elif cmd == "dashboard-rules" and len(args) == 1:
        cmd_dashboard_rules(args[0])
    elif cmd == "exprs" and not args:
        cmd_exprs()
    elif cmd == "coverage" and "--" in args:
        cut = args.index("--")
        cmd_coverage(args[:cut], args[cut + 1:])
    elif cmd == "mutants" and len(args) >= 2:
        cmd_mutants(args[0], args[1:])
    elif cmd == "scrape-urls" and len(args) == 1:
        cmd_scrape_urls(args[0])
    elif cmd == "alertmanager-config" and len(args) == 2:
        cmd_alertmanager_config(*args)
    elif cmd == "names" and len(args) >= 2:
        cmd_names(args[0], args[1], args[2:])
    else:
        fail([f"unknown command or arguments: {' '.join(argv)}", __doc__.strip()])


if __name__ == "__main__":
    main(sys.argv[1:])
