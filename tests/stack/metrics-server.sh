# shellcheck shell=bash
# metrics-server for the stack's cluster (sourced by tests/stack/cluster.sh): the Resource Metrics
# API (metrics.k8s.io) the web HorizontalPodAutoscaler reads, as on EKS where metrics-server is an
# add-on. Like the other components it is built from a pinned Go module (tests/stack/metrics-server)
# and runs on the host, started and stopped by PID; the API server reaches it through the
# aggregation layer (an APIService backed by a selector-less Service whose EndpointSlice names the
# node address), and it reads each kubelet's /metrics/resource.
# Follows: https://github.com/kubernetes-sigs/metrics-server (README, "Requirements") and
# https://kubernetes.io/docs/tasks/extend-kubernetes/configure-aggregation-layer/

MS_VERSION=v0.8.0 # keep in step with tests/stack/metrics-server/go.mod
MS_MODDIR=$STACK_REPO/tests/stack/metrics-server
MS_BIN=$STACK_CACHE/metrics-server-$MS_VERSION/metrics-server
MS_PORT=4443

# metrics_server_build: compile once per pin (go.mod + go.sum) into the cache.
metrics_server_build() {
  local stamp t0
  stamp=$(cat "$MS_MODDIR/go.mod" "$MS_MODDIR/go.sum" | sha256sum | cut -c1-16)
  [[ -x $MS_BIN && $(cat "$MS_BIN.stamp" 2>/dev/null) == "$stamp" ]] && return 0
  t0=$SECONDS
  stack_log "building metrics-server $MS_VERSION"
  mkdir -p "$(dirname "$MS_BIN")"
  (cd "$MS_MODDIR" && GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=readonly \
    "$GO" build -p 2 -trimpath -ldflags="-s -w" -o "$MS_BIN.tmp" sigs.k8s.io/metrics-server/cmd/metrics-server)
  mv "$MS_BIN.tmp" "$MS_BIN"
  echo "$stamp" >"$MS_BIN.stamp"
  stack_log "built metrics-server in $((SECONDS - t0))s"
}

# metrics_server_pki: the API server's front-proxy client certificate (it authenticates the
# aggregated requests it forwards) and metrics-server's identity, serving and client in one.
metrics_server_pki() {
  k8s_cert front-proxy-client front-proxy-client ""
  k8s_cert metrics-server system:metrics-server "" "IP:$NODE_IP" DNS:metrics-server.kube-system.svc
}

# The kube-apiserver flags that turn the aggregation layer on.
metrics_server_apiserver_flags() {
  printf '%s\n' \
    --requestheader-client-ca-file="$STACK_PKI/ca.crt" \
    --requestheader-allowed-names=front-proxy-client \
    --requestheader-username-headers=X-Remote-User \
    --requestheader-group-headers=X-Remote-Group \
    --requestheader-extra-headers-prefix=X-Remote-Extra- \
    --proxy-client-cert-file="$K8S_PKI/front-proxy-client.crt" \
    --proxy-client-key-file="$K8S_PKI/front-proxy-client.key" \
    --enable-aggregator-routing=true
}

# metrics_server_up: RBAC, Service, EndpointSlice and APIService, then the daemon; waits until
# `kubectl top node` answers.
metrics_server_up() {
  write_kubeconfig "$K8S_DIR/metrics-server.kubeconfig" metrics-server system:metrics-server
  metrics_server_objects | kubectl_admin apply --server-side --field-manager=statuspage-stack -f - >/dev/null
  stack_start metrics-server "$MS_BIN" \
    --kubeconfig="$K8S_DIR/metrics-server.kubeconfig" \
    --authentication-kubeconfig="$K8S_DIR/metrics-server.kubeconfig" \
    --authorization-kubeconfig="$K8S_DIR/metrics-server.kubeconfig" \
    --bind-address="$NODE_IP" --secure-port="$MS_PORT" \
    --tls-cert-file="$K8S_PKI/metrics-server.crt" --tls-private-key-file="$K8S_PKI/metrics-server.key" \
    --kubelet-certificate-authority="$STACK_PKI/ca.crt" --kubelet-preferred-address-types=Hostname \
    --metric-resolution=15s --profiling=false
  stack_wait_for "metrics.k8s.io (metrics-server)" 90 metrics_available
}

metrics_available() {
  kubectl_admin get --raw /apis/metrics.k8s.io/v1beta1/nodes --request-timeout=5s | grep -q '"usage"'
}

# The objects the upstream release manifest creates, minus its Deployment (the daemon runs on the
# host): who metrics-server is allowed to read, and how the API server reaches it.
metrics_server_objects() {
  local ca
  ca=$(base64 -w0 <"$STACK_PKI/ca.crt")
  cat <<YAML
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: system:metrics-server
  labels: {app.kubernetes.io/name: metrics-server, app.kubernetes.io/part-of: statuspage-stack}
rules:
  - apiGroups: [""]
    resources: [nodes/metrics]
    verbs: [get]
  - apiGroups: [""]
    resources: [pods, nodes]
    verbs: [get, list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: system:metrics-server
  labels: {app.kubernetes.io/name: metrics-server, app.kubernetes.io/part-of: statuspage-stack}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: system:metrics-server}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: system:metrics-server}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: metrics-server:system:auth-delegator
  labels: {app.kubernetes.io/name: metrics-server, app.kubernetes.io/part-of: statuspage-stack}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: system:auth-delegator}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: system:metrics-server}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: metrics-server-auth-reader
  namespace: kube-system
  labels: {app.kubernetes.io/name: metrics-server, app.kubernetes.io/part-of: statuspage-stack}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: extension-apiserver-authentication-reader}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: system:metrics-server}]
---
apiVersion: v1
kind: Service
metadata:
  name: metrics-server
  namespace: kube-system
  labels: {app.kubernetes.io/name: metrics-server, app.kubernetes.io/part-of: statuspage-stack}
spec:
  ports: [{name: https, port: 443, targetPort: $MS_PORT, protocol: TCP}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: metrics-server-host
  namespace: kube-system
  labels:
    kubernetes.io/service-name: metrics-server
    endpointslice.kubernetes.io/managed-by: statuspage-stack
    app.kubernetes.io/name: metrics-server
    app.kubernetes.io/part-of: statuspage-stack
addressType: IPv4
ports: [{name: https, port: $MS_PORT, protocol: TCP}]
endpoints: [{addresses: ["$NODE_IP"], conditions: {ready: true}}]
---
apiVersion: apiregistration.k8s.io/v1
kind: APIService
metadata:
  name: v1beta1.metrics.k8s.io
  labels: {app.kubernetes.io/name: metrics-server, app.kubernetes.io/part-of: statuspage-stack}
spec:
  group: metrics.k8s.io
  version: v1beta1
  service: {name: metrics-server, namespace: kube-system, port: 443}
  caBundle: $ca
  groupPriorityMinimum: 100
  versionPriority: 100
YAML
}
