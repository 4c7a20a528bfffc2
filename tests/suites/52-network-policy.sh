#!/usr/bin/env bash
# Suite 52-network-policy: the app's NetworkPolicies (manifests/app, local overlay) enforced by the
# stack cluster's enforcer (kube-router's firewall, tests/stack/cluster.sh), checked with the real
# app that suite 50-pipeline deployed: every flow the app needs works, every other one is refused.
#   needed:  web, worker, scheduler -> PostgreSQL 10.87.0.1:5432 and Redis :6379; the node (the load
#            balancer's stand-in) -> web :8000; a pod labelled as Prometheus in namespace monitoring
#            -> /-/metrics on :9100 of every pod; the app -> kube-dns :53; worker -> internet :443
#   refused: pod to pod across components (worker -> web, web -> scheduler, ...); any other port
#            of the node (the registry's 443, moto's 5055, 18999); the instance metadata address
#            169.254.169.254; web and scheduler -> the internet; Prometheus from any other namespace
#            or label; any other namespace -> web (directly and through its Service).
# Every refusal is paired with a control: the same target reached from a namespace without
# policies, so "refused" means the policy and not a missing listener. The stack has no DNS server
# (no kube-dns), so a stand-in pod labelled k8s-app=kube-dns in kube-system answers on TCP 53.
# The node's stand-in services bind extra addresses on the node's interface for the duration.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.." || exit 1
[[ -n ${KUBECONFIG:-} && -n ${STACK_REGISTRY:-} ]] || { echo "stack not running: run tests/stack/up.sh" >&2; exit 1; }
# shellcheck source=tests/load/lib.sh
source tests/load/lib.sh
STACK_DIR=${STATUSPAGE_STACK_DIR:-/tmp/statuspage-stack}
NODE_IP=${STACK_DATA_ADDRESS:-10.87.0.1}
NODE_IF=spk8s0
IMDS=169.254.169.254
INTERNET=203.0.113.80 # documentation range (TEST-NET-3): a public address, not a private one
PROBE_NS=statuspage-netpol-probe
MON_NS=monitoring
passed=0
log() { printf '[netpol] %s\n' "$*" >&2; }
fail() { printf '[netpol] FAILED: %s\n' "$*" >&2; exit 1; }

# --- the enforcer runs (no enforcer: every "refused" below would fail; say why first) -------------
pid=$(cat "$STACK_DIR/pids/kube-router.pid" 2>/dev/null || true)
if [[ -z $pid ]] || ! kill -0 "$pid" 2>/dev/null; then
  fail "the NetworkPolicy enforcer (kube-router) is not running: tests/stack/cluster.sh up starts it"
fi
iptables -w -S FORWARD | grep -q -- '-j KUBE-ROUTER-FORWARD$' ||
  fail "kube-router runs (pid $pid) but its chains are not in the filter table's FORWARD chain"

# --- the app is deployed (suite 50's state; deployed here when missing) --------------------------
[[ -s $LOAD_STATE/release.json ]] || bin/local-deploy >/dev/null 2>"$LOAD_STATE.err" ||
  { cat "$LOAD_STATE.err" >&2; fail "bin/local-deploy"; }
for component in web worker scheduler; do
  kubectl -n "$APP_NS" rollout status "deployment/statuspage-$component" --timeout=180s >/dev/null ||
    fail "deployment statuspage-$component is not available"
done
image=$(json "$LOAD_STATE/release.json" "d['images']['web']['repository'] + ':' + d['images']['web']['tag'] + '@' + d['images']['web']['digest']")

# --- stand-ins and probe pods, removed on exit -----------------------------------------------------
listeners=()
created_mon=0
cleanup() {
  local p
  for p in "${listeners[@]}"; do kill "$p" 2>/dev/null || true; done
  ip addr del "$IMDS/32" dev "$NODE_IF" 2>/dev/null || true
  ip addr del "$INTERNET/32" dev "$NODE_IF" 2>/dev/null || true
  kubectl -n kube-system delete pod statuspage-netpol-dns --ignore-not-found --wait=false >/dev/null 2>&1 || true
  kubectl delete namespace "$PROBE_NS" --ignore-not-found --wait=false >/dev/null 2>&1 || true
  if ((created_mon)); then
    kubectl delete namespace "$MON_NS" --ignore-not-found --wait=false >/dev/null 2>&1 || true
  else
    kubectl -n "$MON_NS" delete pod statuspage-netpol-prometheus --ignore-not-found --wait=false >/dev/null 2>&1 || true
  fi
}
trap cleanup EXIT

ip addr replace "$IMDS/32" dev "$NODE_IF"
ip addr replace "$INTERNET/32" dev "$NODE_IF"
# listen ADDRESS PORT: a TCP service on the host that answers "ok" to one line.
listen() {
  python3 -c '
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2]))); s.listen(16)
while True:
    c, _ = s.accept(); c.sendall(b"ok\n"); c.close()
' "$1" "$2" &
  listeners+=($!)
}
for port in 443 5055 18999; do listen "$NODE_IP" "$port"; done
listen "$IMDS" 80
listen "$INTERNET" 443

# pod NAMESPACE NAME LABELS [SYSCTLS]: a Pod Security "restricted" pod running the web image; with
# PORTS set (space-separated), it answers "ok" on each TCP port.
pod() {
  local ns=$1 name=$2 labels=$3 ports=${4:-}
  kubectl -n "$APP_NS" get secret registry-credentials -o json |
    python3 -c "import json,sys; s=json.load(sys.stdin); print(json.dumps({'apiVersion':'v1','kind':'Secret','type':s['type'],'metadata':{'name':s['metadata']['name'],'namespace':sys.argv[1]},'data':s['data']}))" "$ns" |
    kubectl apply --server-side --field-manager=statuspage-tests -f - >/dev/null
  python3 - "$ns" "$name" "$labels" "$image" "$ports" <<'PY' | kubectl apply --server-side --field-manager=statuspage-tests -f - >/dev/null
import json, sys
ns, name, labels, image, ports = sys.argv[1:]
serve = (
    "import socket, threading, time\n"
    "def serve(port):\n"
    "    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
    "    s.bind(('0.0.0.0', port)); s.listen(16)\n"
    "    while True:\n"
    "        c, _ = s.accept(); c.sendall(b'ok\\n'); c.close()\n"
    f"for p in {[int(p) for p in ports.split()]}:\n"
    "    threading.Thread(target=serve, args=(p,), daemon=True).start()\n"
    "time.sleep(86400)\n"
)
spec = {
    "automountServiceAccountToken": False,
    "enableServiceLinks": False,
    "imagePullSecrets": [{"name": "registry-credentials"}],
    "terminationGracePeriodSeconds": 1,
    "securityContext": {"runAsNonRoot": True, "runAsUser": 10001, "runAsGroup": 10001,
                        "seccompProfile": {"type": "RuntimeDefault"}},
    "containers": [{
        "name": "probe", "image": image, "command": ["python", "-c", serve],
        "resources": {"requests": {"cpu": "10m", "memory": "32Mi"}, "limits": {"memory": "64Mi"}},
        "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                            "capabilities": {"drop": ["ALL"]}},
    }],
}
if any(int(p) < 1024 for p in ports.split()):
    # A port below 1024 without root or capabilities (a namespaced, "safe" sysctl).
    spec["securityContext"]["sysctls"] = [{"name": "net.ipv4.ip_unprivileged_port_start", "value": "0"}]
meta = {"name": name, "namespace": ns, "labels": dict(kv.split("=") for kv in labels.split(","))}
meta["labels"].setdefault("app.kubernetes.io/part-of", "statuspage-tests")
print(json.dumps({"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec}))
PY
}

# A namespace monitoring of an earlier run (deleted without waiting) may still be terminating.
if [[ $(kubectl get namespace "$MON_NS" -o jsonpath='{.status.phase}' 2>/dev/null) == Terminating ]]; then
  kubectl wait --for=delete "namespace/$MON_NS" --timeout=120s >/dev/null
fi
kubectl get namespace "$MON_NS" >/dev/null 2>&1 || { kubectl create namespace "$MON_NS" >/dev/null; created_mon=1; }
kubectl delete namespace "$PROBE_NS" --ignore-not-found --wait=true >/dev/null
kubectl create namespace "$PROBE_NS" >/dev/null
kubectl label namespace "$PROBE_NS" pod-security.kubernetes.io/enforce=restricted >/dev/null
kubectl -n kube-system delete pod statuspage-netpol-dns --ignore-not-found --wait=true >/dev/null
# Labelled as Prometheus in both: only the one in namespace monitoring may scrape.
pod "$MON_NS" statuspage-netpol-prometheus app.kubernetes.io/name=prometheus
pod "$PROBE_NS" prometheus-elsewhere app.kubernetes.io/name=prometheus "8000 9100"
pod kube-system statuspage-netpol-dns k8s-app=kube-dns "53 5353"
for p in "$MON_NS/statuspage-netpol-prometheus" "$PROBE_NS/prometheus-elsewhere" kube-system/statuspage-netpol-dns; do
  kubectl -n "${p%/*}" wait --for=condition=Ready "pod/${p#*/}" --timeout=120s >/dev/null ||
    fail "probe pod $p did not become ready: $(kubectl -n "${p%/*}" describe pod "${p#*/}" | tail -5)"
done

# --- the checks ------------------------------------------------------------------------------------
ip_of() { kubectl -n "$1" get pod "$2" -o jsonpath='{.status.podIP}'; }
app_pod() { # app_pod COMPONENT: one running pod of the component
  kubectl -n "$APP_NS" get pods -l "app.kubernetes.io/name=statuspage,app.kubernetes.io/component=$1" \
    --field-selector=status.phase=Running -o jsonpath='{.items[0].metadata.name}'
}
web_pod=$(app_pod web) worker_pod=$(app_pod worker) scheduler_pod=$(app_pod scheduler)
web_ip=$(ip_of "$APP_NS" "$web_pod") worker_ip=$(ip_of "$APP_NS" "$worker_pod")
scheduler_ip=$(ip_of "$APP_NS" "$scheduler_pod") dns_ip=$(ip_of kube-system statuspage-netpol-dns)
other_ip=$(ip_of "$PROBE_NS" prometheus-elsewhere)
web_svc=$(kubectl -n "$APP_NS" get service statuspage-web -o jsonpath='{.spec.clusterIP}')

# probe NS POD CONTAINER TARGET...: from inside the pod, one TCP connection per HOST:PORT (3 s);
# prints "HOST:PORT open|refused|timeout" per target.
PROBE='
import socket, sys
for target in sys.argv[1:]:
    host, port = target.rsplit(":", 1)
    try:
        socket.create_connection((host, int(port)), timeout=3).close(); result = "open"
    except ConnectionRefusedError: result = "refused"
    except OSError as e: result = "timeout" if isinstance(e, TimeoutError) else "error-" + str(e.errno)
    print(target, result, flush=True)
'
probe() {
  local ns=$1 name=$2 container=$3
  shift 3
  kubectl -n "$ns" exec "$name" -c "$container" -- python -c "$PROBE" "$@"
}
# expect FROM RESULTS-FILE OPEN-TARGETS... -- BLOCKED-TARGETS...: each target's result as wanted.
expect() {
  local from=$1 results=$2 target want got
  shift 2
  want=open
  for target in "$@"; do
    [[ $target == -- ]] && { want=blocked; continue; }
    got=$(awk -v t="$target" '$1 == t {print $2}' "$results")
    if [[ $want == open && $got != open ]]; then
      fail "$from -> $target is needed by the app but was ${got:-not probed}"
    elif [[ $want == blocked && $got == open ]]; then
      fail "$from -> $target is not needed by the app but was open"
    elif [[ $want == blocked && $got != refused && $got != timeout ]]; then
      fail "$from -> $target: expected refused, got ${got:-nothing}"
    fi
    passed=$((passed + 1))
  done
}
results=$(mktemp -d)
trap 'cleanup; rm -rf "$results"' EXIT

node_others=("$NODE_IP:443" "$NODE_IP:5055" "$NODE_IP:18999")
# Controls first: from a namespace without policies, every stand-in answers.
probe "$PROBE_NS" prometheus-elsewhere probe "${node_others[@]}" "$IMDS:80" "$INTERNET:443" "$dns_ip:5353" \
  "$NODE_IP:5432" "$NODE_IP:6379" >"$results/control"
expect "control ($PROBE_NS)" "$results/control" "${node_others[@]}" "$IMDS:80" "$INTERNET:443" "$dns_ip:5353" \
  "$NODE_IP:5432" "$NODE_IP:6379"
log "controls: from $PROBE_NS (no policies) the node's 443/5055/18999, $IMDS:80, $INTERNET:443 and $dns_ip:5353 answer"

# The app's own pods.
for component in web worker scheduler; do
  pod_name=${component}_pod
  container=$component
  probe "$APP_NS" "${!pod_name}" "$container" "$NODE_IP:5432" "$NODE_IP:6379" "$dns_ip:53" \
    "${node_others[@]}" "$IMDS:80" "$INTERNET:443" "$dns_ip:5353" "$other_ip:8000" \
    "$web_ip:8000" "$web_ip:9100" "$worker_ip:9100" "$scheduler_ip:9100" >"$results/$component"
done
expect web "$results/web" "$NODE_IP:5432" "$NODE_IP:6379" "$dns_ip:53" -- "${node_others[@]}" "$IMDS:80" \
  "$INTERNET:443" "$dns_ip:5353" "$other_ip:8000" "$worker_ip:9100" "$scheduler_ip:9100"
expect worker "$results/worker" "$NODE_IP:5432" "$NODE_IP:6379" "$dns_ip:53" "$INTERNET:443" -- \
  "${node_others[@]}" "$IMDS:80" "$dns_ip:5353" "$other_ip:8000" "$web_ip:8000" "$web_ip:9100" "$scheduler_ip:9100"
expect scheduler "$results/scheduler" "$NODE_IP:5432" "$NODE_IP:6379" "$dns_ip:53" -- "${node_others[@]}" \
  "$IMDS:80" "$INTERNET:443" "$dns_ip:5353" "$other_ip:8000" "$web_ip:8000" "$web_ip:9100" "$worker_ip:9100"
log "web, worker, scheduler: PostgreSQL, Redis and kube-dns :53 open; worker -> $INTERNET:443 open; the node's other ports, $IMDS, other components, other namespaces refused"

# Into the app: Prometheus from monitoring scrapes every pod; nobody else gets in.
probe "$MON_NS" statuspage-netpol-prometheus probe "$web_ip:9100" "$worker_ip:9100" "$scheduler_ip:9100" \
  "$web_ip:8000" >"$results/prometheus"
expect "prometheus ($MON_NS)" "$results/prometheus" "$web_ip:9100" "$worker_ip:9100" "$scheduler_ip:9100" -- "$web_ip:8000"
for ip in "$web_ip" "$worker_ip" "$scheduler_ip"; do
  kubectl -n "$MON_NS" exec statuspage-netpol-prometheus -c probe -- python -c \
    'import sys, urllib.request; b = urllib.request.urlopen(f"http://{sys.argv[1]}:9100/-/metrics", timeout=5).read().decode(); assert "# TYPE " in b, b[:200]' \
    "$ip" || fail "prometheus ($MON_NS) cannot scrape http://$ip:9100/-/metrics"
  passed=$((passed + 1))
done
probe "$PROBE_NS" prometheus-elsewhere probe "$web_ip:9100" "$worker_ip:9100" "$scheduler_ip:9100" \
  "$web_ip:8000" "$web_svc:80" >"$results/elsewhere"
expect "prometheus-labelled pod in $PROBE_NS" "$results/elsewhere" -- "$web_ip:9100" "$worker_ip:9100" \
  "$scheduler_ip:9100" "$web_ip:8000" "$web_svc:80"
log "Prometheus in $MON_NS scrapes /-/metrics of web, worker, scheduler; the same label in $PROBE_NS gets nothing, not even web's Service"

# The node (the load balancer's stand-in in the local overlay) reaches web, from the node address.
code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 --interface "$NODE_IP" "http://$web_ip:8000/-/readyz")
[[ $code == 200 ]] || fail "the node ($NODE_IP) -> web $web_ip:8000: HTTP $code"
passed=$((passed + 1))
log "the node ($NODE_IP) -> web :8000 answers 200"
log "$passed passed, 0 failed"
