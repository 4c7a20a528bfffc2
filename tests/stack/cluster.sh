#!/usr/bin/env bash
# A real single-node Kubernetes cluster for the local stack (issue 3).
# Usage: tests/stack/cluster.sh build|up|down|status
# See tests/stack/README-cluster.md.
set -euo pipefail
# shellcheck source=tests/stack/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=tests/stack/metrics-server.sh
source "$(dirname "${BASH_SOURCE[0]}")/metrics-server.sh"

K8S_VERSION=v1.34.4                 # keep in step with tests/stack/kubernetes/go.mod
K8S_MODDIR=$STACK_REPO/tests/stack/kubernetes
K8S_BIN=$STACK_CACHE/kubernetes-$K8S_VERSION/bin
K8S_COMPONENTS=(kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl)
GO=${GO:-/usr/local/go/bin/go}

# ---------------------------------------------------------------------------------------------
# build: compile every component once per pin into $K8S_BIN (one binary at a time, -p 2).
# ---------------------------------------------------------------------------------------------
build_stamp() {
  { echo "$K8S_VERSION"; cat "$K8S_MODDIR/go.mod" "$K8S_MODDIR/go.sum"; } | sha256sum | cut -c1-16
}

go_build() { # go_build OUT PACKAGE
  local out=$1 pkg=$2 pkgv=k8s.io/component-base/version cgv=k8s.io/client-go/pkg/version minor ld v
  minor=${K8S_VERSION#v1.}
  minor=${minor%%.*}
  ld="-s -w"
  for v in $pkgv $cgv; do
    ld+=" -X $v.gitVersion=$K8S_VERSION -X $v.gitMajor=1 -X $v.gitMinor=$minor"
    ld+=" -X $v.gitTreeState=clean -X $v.buildDate=1970-01-01T00:00:00Z"
  done
  (cd "$K8S_MODDIR" && GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=readonly \
    "$GO" build -p 2 -trimpath -ldflags="$ld" -o "$out" "$pkg")
}

cmd_build() {
  metrics_server_build
  local stamp c start t0 complete=1
  stamp=$(build_stamp)
  for c in "${K8S_COMPONENTS[@]}" etcd pause; do [[ -x $K8S_BIN/$c ]] || complete=0; done
  if ((complete)) && [[ -f $K8S_BIN/.stamp && $(cat "$K8S_BIN/.stamp") == "$stamp" ]]; then
    return 0
  fi
  mkdir -p "$K8S_BIN"
  start=$SECONDS
  for c in etcd "${K8S_COMPONENTS[@]}"; do
    if [[ -x $K8S_BIN/$c && -f $K8S_BIN/.stamp-$c && $(cat "$K8S_BIN/.stamp-$c") == "$stamp" ]]; then
      continue
    fi
    t0=$SECONDS
    stack_log "building $c ($K8S_VERSION)"
    if [[ $c == etcd ]]; then
      go_build "$K8S_BIN/$c.tmp" go.etcd.io/etcd/server/v3
    else
      go_build "$K8S_BIN/$c.tmp" "k8s.io/kubernetes/cmd/$c"
    fi
    mv "$K8S_BIN/$c.tmp" "$K8S_BIN/$c"
    echo "$stamp" >"$K8S_BIN/.stamp-$c"
    stack_log "built $c in $((SECONDS - t0))s"
  done
  build_pause
  echo "$stamp" >"$K8S_BIN/.stamp"
  stack_log "kubernetes $K8S_VERSION binaries ready in $K8S_BIN ($((SECONDS - start))s)"
}

build_pause() {
  local src
  src=$(cd "$K8S_MODDIR" && GOTOOLCHAIN=local GOFLAGS=-mod=readonly "$GO" list -m -f '{{.Dir}}' k8s.io/kubernetes)
  gcc -Os -Wall -Werror -static -DVERSION="v3.10-statuspage" -o "$K8S_BIN/pause" "$src/build/pause/linux/pause.c"
  strip "$K8S_BIN/pause"
}

# ---------------------------------------------------------------------------------------------
# Layout and addresses. Everything listens on 127.0.0.1, except what the node needs:
#   node IP 10.87.0.1/32 on a port-less bridge device (the kernel has no dummy module here),
#   pods on the CNI bridge 10.88.0.0/16, services 10.96.0.0/16 (kube-proxy, iptables mode).
# ---------------------------------------------------------------------------------------------
K8S_DIR=$STACK_DIR/kubernetes
K8S_PKI=$STACK_PKI/kubernetes
NODE_NAME=statuspage-node
NODE_IF=spk8s0
NODE_IP=10.87.0.1
CNI_BRIDGE=spcni0
POD_CIDR=10.88.0.0/16
SERVICE_CIDR=10.96.0.0/16
SERVICE_API_IP=10.96.0.1
APISERVER_PORT=6443
ETCD_PORT=12379
ETCD_PEER_PORT=12380
PAUSE_IMAGE=localhost/statuspage/pause:3.10
CTRD_SOCK=$K8S_DIR/containerd/containerd.sock
REGISTRY_HOST=${STACK_REGISTRY:-123456789012.dkr.ecr.us-east-1.amazonaws.com}
ADMIN_KUBECONFIG=$K8S_DIR/admin.kubeconfig
DAEMONS=(etcd containerd kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy metrics-server kube-router)
# The NetworkPolicy enforcer: kube-router's firewall alone, built by tests/tools/install.sh from the
# pin in tests/tools/versions.env (why this one: README-cluster.md, "NetworkPolicy enforcement").
KUBE_ROUTER=$STACK_CACHE/tools/bin/kube-router

kubectl_admin() { "$K8S_BIN/kubectl" --kubeconfig "$ADMIN_KUBECONFIG" "$@"; }
ctr_k8s() { ctr --address "$CTRD_SOCK" --namespace k8s.io "$@"; }

# k8s_cert NAME CN O SAN...: client/server certificate from the stack CA into $K8S_PKI (O may be "").
k8s_cert() {
  local name=$1 cn=$2 org=$3 subj sans
  shift 3
  [[ -s $K8S_PKI/$name.crt ]] && return 0
  subj="/CN=$cn"
  [[ -n $org ]] && subj="/O=$org$subj"
  sans=$(IFS=,; echo "$*")
  openssl req -newkey rsa:2048 -nodes -subj "$subj" \
    -keyout "$K8S_PKI/$name.key" -out "$K8S_PKI/$name.csr" 2>/dev/null
  openssl x509 -req -in "$K8S_PKI/$name.csr" -CA "$STACK_PKI/ca.crt" -CAkey "$STACK_PKI/ca.key" \
    -CAcreateserial -days 3650 -out "$K8S_PKI/$name.crt" -extfile <(
      printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n'
      printf 'extendedKeyUsage=serverAuth,clientAuth\n'
      [[ -n $sans ]] && printf 'subjectAltName=%s\n' "$sans"
    ) 2>/dev/null
  rm -f "$K8S_PKI/$name.csr"
  chmod 600 "$K8S_PKI/$name.key"
}

make_pki() {
  stack_ca
  # Certificates from an earlier CA (the stack's PKI was recreated) are thrown away.
  if [[ -s $K8S_PKI/admin.crt ]] && ! openssl verify -CAfile "$STACK_PKI/ca.crt" "$K8S_PKI/admin.crt" >/dev/null 2>&1; then
    rm -rf "$K8S_PKI"
  fi
  mkdir -p "$K8S_PKI"
  k8s_cert etcd etcd "" IP:127.0.0.1 DNS:localhost
  k8s_cert apiserver-etcd-client kube-apiserver-etcd-client ""
  k8s_cert apiserver kube-apiserver "" IP:127.0.0.1 "IP:$SERVICE_API_IP" DNS:localhost DNS:kubernetes \
    DNS:kubernetes.default DNS:kubernetes.default.svc DNS:kubernetes.default.svc.cluster.local
  k8s_cert apiserver-kubelet-client kube-apiserver-kubelet-client system:masters
  k8s_cert admin kubernetes-admin system:masters
  k8s_cert controller-manager system:kube-controller-manager "" IP:127.0.0.1 DNS:localhost
  k8s_cert scheduler system:kube-scheduler "" IP:127.0.0.1 DNS:localhost
  k8s_cert kubelet "system:node:$NODE_NAME" system:nodes IP:127.0.0.1 "DNS:$NODE_NAME"
  k8s_cert kube-proxy system:kube-proxy ""
  metrics_server_pki
  if [[ ! -s $K8S_PKI/sa.key ]]; then
    openssl genrsa -out "$K8S_PKI/sa.key" 2048 2>/dev/null
    openssl rsa -in "$K8S_PKI/sa.key" -pubout -out "$K8S_PKI/sa.pub" 2>/dev/null
    chmod 600 "$K8S_PKI/sa.key"
  fi
}

# write_kubeconfig FILE CERTNAME USER
write_kubeconfig() {
  cat >"$1" <<KCFG
apiVersion: v1
kind: Config
clusters:
- name: statuspage
  cluster:
    server: https://127.0.0.1:$APISERVER_PORT
    certificate-authority: $STACK_PKI/ca.crt
users:
- name: $3
  user:
    client-certificate: $K8S_PKI/$2.crt
    client-key: $K8S_PKI/$2.key
contexts:
- name: $3@statuspage
  context: {cluster: statuspage, user: $3}
current-context: $3@statuspage
KCFG
}

write_configs() {
  mkdir -p "$K8S_DIR"/{etcd,kubelet,pod-logs,cni/net.d,cni/ipam,containerd/certs.d/"$REGISTRY_HOST"}
  write_kubeconfig "$ADMIN_KUBECONFIG" admin kubernetes-admin
  write_kubeconfig "$K8S_DIR/controller-manager.kubeconfig" controller-manager system:kube-controller-manager
  write_kubeconfig "$K8S_DIR/scheduler.kubeconfig" scheduler system:kube-scheduler
  write_kubeconfig "$K8S_DIR/kubelet.kubeconfig" kubelet "system:node:$NODE_NAME"
  write_kubeconfig "$K8S_DIR/kube-proxy.kubeconfig" kube-proxy system:kube-proxy

  cat >"$K8S_DIR/containerd/config.toml" <<TOML
# containerd for the stack's Kubernetes node: separate from the one docker uses.
version = 2
root = "$K8S_DIR/containerd/root"
state = "$K8S_DIR/containerd/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]

[grpc]
  address = "$CTRD_SOCK"

[ttrpc]
  address = "$K8S_DIR/containerd/containerd.sock.ttrpc"

[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = "$K8S_DIR/containerd/opt"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
  netns_mounts_under_state_dir = true
  # This VM withholds CAP_SYS_RESOURCE even from root, so negative OOM scores (the sandbox's -998)
  # cannot be set; clamp them to containerd's own score as rootless setups do.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$K8S_DIR/cni/net.d"
    max_conf_num = 1
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "$K8S_DIR/containerd/certs.d"
TOML

  cat >"$K8S_DIR/containerd/certs.d/$REGISTRY_HOST/hosts.toml" <<TOML
# The stack registry (stands in for ECR): TLS with the stack CA; credentials come from imagePullSecrets.
# One endpoint only, configured at the top level. A [host."https://..."] entry next to server would
# make containerd 1.6 fall back to server (without this CA) after a 404 and report an x509 error
# instead of "not found"; the empty [host] table is required by its parser ("invalid host tree").
server = "https://$REGISTRY_HOST"
capabilities = ["pull", "resolve"]
ca = "$STACK_PKI/ca.crt"

[host]
TOML

  cat >"$K8S_DIR/cni/net.d/10-statuspage.conflist" <<JSON
{
  "cniVersion": "1.0.0",
  "name": "statuspage",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$CNI_BRIDGE",
      "isGateway": true,
      "ipMasq": true,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": "$K8S_DIR/cni/ipam",
        "ranges": [[{"subnet": "$POD_CIDR"}]],
        "routes": [{"dst": "0.0.0.0/0"}]
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}},
    {"type": "loopback"}
  ]
}
JSON

  # Disk-based eviction and image garbage collection are off (as kind configures its nodes). The
  # kubelet measures disk use from statfs's blocks available to unprivileged users: on these
  # machines most of the disk is reserved for root, so "99 % full" comes while root (the test run)
  # still writes freely. A CI run once reached it in the middle of suite 20: the image GC removed the
  # sandbox (pause) image, the one image nothing can pull, and every later pod stayed in
  # ContainerCreating (FailedCreatePodSandBox). A test cluster's images are its fixtures, not a cache.
  cat >"$K8S_DIR/kubelet-config.yaml" <<YAML
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: 127.0.0.1
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
tlsCertFile: $K8S_PKI/kubelet.crt
tlsPrivateKeyFile: $K8S_PKI/kubelet.key
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $STACK_PKI/ca.crt}
authorization: {mode: Webhook}
containerRuntimeEndpoint: unix://$CTRD_SOCK
imageServiceEndpoint: unix://$CTRD_SOCK
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: true
podLogsDir: $K8S_DIR/pod-logs
clusterDomain: cluster.local
resolvConf: /etc/resolv.conf
serializeImagePulls: false
protectKernelDefaults: false
syncFrequency: 10s
fileCheckFrequency: 10s
nodeStatusUpdateFrequency: 5s
evictionHard: {memory.available: 100Mi, nodefs.available: "0%", imagefs.available: "0%", nodefs.inodesFree: "0%"}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
maxPods: 50
YAML

  cat >"$K8S_DIR/kube-proxy-config.yaml" <<YAML
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: $K8S_DIR/kube-proxy.kubeconfig}
mode: iptables
hostnameOverride: $NODE_NAME
bindAddress: 127.0.0.1
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
clusterCIDR: $POD_CIDR
nodePortAddresses: [127.0.0.1/32]
conntrack: {maxPerCore: 0}
iptables: {syncPeriod: 10s, minSyncPeriod: 1s}
YAML
}

# ---------------------------------------------------------------------------------------------
# Host preparation: node address, name resolution, kernel switches the node needs.
# ---------------------------------------------------------------------------------------------
prepare_host() {
  if ! ip link show "$NODE_IF" >/dev/null 2>&1; then
    ip link add "$NODE_IF" type bridge
  fi
  ip addr replace "$NODE_IP/32" dev "$NODE_IF"
  ip link set "$NODE_IF" up
  grep -q "^127.0.0.1 $NODE_NAME # statuspage-stack$" /etc/hosts ||
    printf '127.0.0.1 %s # statuspage-stack\n' "$NODE_NAME" >>/etc/hosts
  [[ -e /proc/sys/net/bridge/bridge-nf-call-iptables ]] || modprobe br_netfilter 2>/dev/null || true
  sysctl -qw net.ipv4.ip_forward=1 net.bridge.bridge-nf-call-iptables=1 >/dev/null
}

# A FROM scratch image holding only the statically linked pause binary, imported into containerd.
# The CRI's pin label is set too, but Debian's containerd 1.6 does not report it to the kubelet
# (pinned images came with containerd 1.7): what keeps this image is the kubelet configuration
# above, which turns image garbage collection off.
import_pause() {
  if ctr_k8s images ls -q 2>/dev/null | grep -qx "$PAUSE_IMAGE"; then
    ctr_k8s images label "$PAUSE_IMAGE" io.cri-containerd.pinned=pinned >/dev/null
    return 0
  fi
  local d layer_sha cfg cfg_sha
  d=$(mktemp -d "$K8S_DIR/pause.XXXXXX")
  mkdir -p "$d/rootfs"
  cp "$K8S_BIN/pause" "$d/rootfs/pause"
  tar --owner=0 --group=0 --numeric-owner --mtime=@0 -C "$d/rootfs" -cf "$d/layer.tar" pause
  layer_sha=$(sha256sum "$d/layer.tar" | cut -d' ' -f1)
  cfg=$(printf '{"architecture":"amd64","os":"linux","config":{"Entrypoint":["/pause"],"User":"65535:65535"},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]},"history":[{"created_by":"tests/stack/cluster.sh: gcc -static pause.c"}]}' "$layer_sha")
  cfg_sha=$(printf '%s' "$cfg" | sha256sum | cut -d' ' -f1)
  printf '%s' "$cfg" >"$d/$cfg_sha.json"
  printf '[{"Config":"%s.json","RepoTags":["%s"],"Layers":["layer.tar"]}]' "$cfg_sha" "$PAUSE_IMAGE" >"$d/manifest.json"
  tar -C "$d" -cf "$d/pause-image.tar" manifest.json "$cfg_sha.json" layer.tar
  ctr_k8s images import --no-unpack=false "$d/pause-image.tar" >/dev/null
  ctr_k8s images label "$PAUSE_IMAGE" io.cri-containerd.pinned=pinned >/dev/null
  rm -rf "$d"
}

# ---------------------------------------------------------------------------------------------
# up / down
# ---------------------------------------------------------------------------------------------
healthy() {
  core_healthy && stack_running kube-router && kube_router_ready
}

# Everything but the enforcer, which can be (re)started alone on a running cluster.
core_healthy() {
  local d
  for d in "${DAEMONS[@]}"; do
    [[ $d == kube-router ]] || stack_running "$d" || return 1
  done
  [[ -s $ADMIN_KUBECONFIG ]] || return 1
  node_ready
}

# kube-router has synced once: its chains are hooked into the filter table's built-in chains
# (start_kube_router unhooks them first, so an earlier run's rules do not count).
kube_router_ready() {
  stack_running kube-router &&
    iptables -w -S FORWARD 2>/dev/null | grep -q -- '-j KUBE-ROUTER-FORWARD$' &&
    iptables -w -S OUTPUT 2>/dev/null | grep -q -- '-j KUBE-ROUTER-OUTPUT$'
}

# Delete the jumps from INPUT, FORWARD and OUTPUT into kube-router's chains (by rule number).
unhook_kube_router() {
  local chain num
  for chain in INPUT FORWARD OUTPUT; do
    while IFS= read -r num; do
      iptables -w -D "$chain" "$num" 2>/dev/null || true
    done < <(iptables -w -L "$chain" -n --line-numbers 2>/dev/null | awk '$2 ~ /^KUBE-ROUTER-/ {print $1}' | sort -rn)
  done
}

# What kube-router reads (its informers) and nothing else: it writes nothing to the API.
kube_router_rbac() {
  kubectl_admin apply --server-side --field-manager=statuspage-stack -f - >/dev/null <<'YAML'
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: statuspage:kube-router
  labels: {app.kubernetes.io/name: kube-router, app.kubernetes.io/part-of: statuspage-stack}
rules:
  - apiGroups: [""]
    resources: [pods, namespaces, nodes, services, endpoints]
    verbs: [get, list, watch]
  - apiGroups: [networking.k8s.io]
    resources: [networkpolicies]
    verbs: [get, list, watch]
  - apiGroups: [discovery.k8s.io]
    resources: [endpointslices]
    verbs: [get, list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: statuspage:kube-router
  labels: {app.kubernetes.io/name: kube-router, app.kubernetes.io/part-of: statuspage-stack}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: statuspage:kube-router}
subjects:
  - {apiGroup: rbac.authorization.k8s.io, kind: User, name: statuspage:kube-router}
YAML
}

# start_kube_router: the firewall controller only (no BGP routing, no service proxy: kube-proxy
# serves Services), health and metrics servers off, so it listens on no port at all. It enforces
# NetworkPolicies for the pods whose hostIP is the node's address, with iptables + ipset in the
# filter table's INPUT, FORWARD and OUTPUT chains (bridged pod-to-pod traffic through physdev).
start_kube_router() {
  [[ -x $KUBE_ROUTER ]] || stack_die "$KUBE_ROUTER missing: run tests/tools/install.sh (it builds the pin in tests/tools/versions.env)"
  command -v ipset >/dev/null || stack_die "ipset missing: run tests/tools/install.sh (APT_PACKAGES in tests/tools/versions.env)"
  local t0=$SECONDS
  mkdir -p "$K8S_PKI" "$K8S_DIR"
  k8s_cert kube-router statuspage:kube-router ""
  write_kubeconfig "$K8S_DIR/kube-router.kubeconfig" kube-router statuspage:kube-router
  kube_router_rbac
  unhook_kube_router
  stack_start kube-router "$KUBE_ROUTER" --kubeconfig="$K8S_DIR/kube-router.kubeconfig" \
    --hostname-override="$NODE_NAME" --run-firewall=true --run-router=false --run-service-proxy=false \
    --service-cluster-ip-range="$SERVICE_CIDR" --health-port=0 --metrics-port=0
  stack_wait_for kube-router 60 kube_router_ready
  stack_log "kube-router enforcing NetworkPolicies ($((SECONDS - t0))s)"
}

node_ready() {
  [[ $(kubectl_admin get node "$NODE_NAME" --request-timeout=5s \
    -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null) == True ]]
}

etcd_healthy() {
  curl -fsS --max-time 2 --cacert "$STACK_PKI/ca.crt" --cert "$K8S_PKI/apiserver-etcd-client.crt" \
    --key "$K8S_PKI/apiserver-etcd-client.key" "https://127.0.0.1:$ETCD_PORT/health" | grep -q '"health":"true"'
}

apiserver_ready() {
  curl -fsS --max-time 2 --cacert "$STACK_PKI/ca.crt" --cert "$K8S_PKI/admin.crt" \
    --key "$K8S_PKI/admin.key" "https://127.0.0.1:$APISERVER_PORT/readyz" >/dev/null
}

write_env() {
  stack_env KUBECONFIG "$ADMIN_KUBECONFIG"
  stack_env STACK_KUBERNETES_BIN "$K8S_BIN"
  stack_env STACK_KUBERNETES_VERSION "$K8S_VERSION"
  stack_env STACK_KUBERNETES_NODE "$NODE_NAME"
  # PATH addition, kept literal so the env file does not freeze the caller's PATH.
  local tmp
  tmp=$(mktemp "$STACK_DIR/env.XXXXXX")
  grep -v '# cluster.sh PATH$' "$STACK_ENV_FILE" >"$tmp" || true
  # shellcheck disable=SC2016
  printf 'export PATH="$STACK_KUBERNETES_BIN:$PATH" # cluster.sh PATH\n' >>"$tmp"
  mv "$tmp" "$STACK_ENV_FILE"
}

cmd_up() {
  local t0=$SECONDS aggregation
  cmd_build
  if healthy; then
    import_pause # a running cluster whose sandbox image went missing is repaired, not restarted
    write_env
    stack_log "kubernetes already up (node $NODE_NAME Ready)"
    return 0
  fi
  if core_healthy && ! stack_running kube-router; then
    start_kube_router
    write_env
    stack_log "kubernetes already up (node $NODE_NAME Ready); started the NetworkPolicy enforcer"
    return 0
  fi
  # Something is missing or unhealthy: start from a clean slate rather than patching.
  if [[ -d $K8S_DIR ]] || stack_running kube-apiserver || stack_running etcd; then
    cmd_down
  fi
  prepare_host
  make_pki
  write_configs

  stack_start etcd "$K8S_BIN/etcd" --name statuspage --data-dir "$K8S_DIR/etcd" \
    --listen-client-urls "https://127.0.0.1:$ETCD_PORT" --advertise-client-urls "https://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls "https://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls "https://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster "statuspage=https://127.0.0.1:$ETCD_PEER_PORT" --initial-cluster-state new \
    --cert-file "$K8S_PKI/etcd.crt" --key-file "$K8S_PKI/etcd.key" --client-cert-auth --trusted-ca-file "$STACK_PKI/ca.crt" \
    --peer-cert-file "$K8S_PKI/etcd.crt" --peer-key-file "$K8S_PKI/etcd.key" --peer-client-cert-auth \
    --peer-trusted-ca-file "$STACK_PKI/ca.crt" --listen-metrics-urls "" --log-level warn \
    --snapshot-count 10000 --quota-backend-bytes 2147483648
  stack_start containerd containerd --config "$K8S_DIR/containerd/config.toml"
  stack_wait_for etcd 30 etcd_healthy

  mapfile -t aggregation < <(metrics_server_apiserver_flags)
  stack_start kube-apiserver "$K8S_BIN/kube-apiserver" \
    --bind-address=127.0.0.1 --advertise-address=127.0.0.1 --secure-port="$APISERVER_PORT" \
    --etcd-servers="https://127.0.0.1:$ETCD_PORT" --etcd-cafile="$STACK_PKI/ca.crt" \
    --etcd-certfile="$K8S_PKI/apiserver-etcd-client.crt" --etcd-keyfile="$K8S_PKI/apiserver-etcd-client.key" \
    --tls-cert-file="$K8S_PKI/apiserver.crt" --tls-private-key-file="$K8S_PKI/apiserver.key" \
    --client-ca-file="$STACK_PKI/ca.crt" \
    --kubelet-client-certificate="$K8S_PKI/apiserver-kubelet-client.crt" \
    --kubelet-client-key="$K8S_PKI/apiserver-kubelet-client.key" \
    --kubelet-certificate-authority="$STACK_PKI/ca.crt" --kubelet-preferred-address-types=Hostname,InternalIP \
    --authorization-mode=Node,RBAC \
    --enable-admission-plugins=NamespaceLifecycle,LimitRanger,ServiceAccount,PodSecurity,ResourceQuota,NodeRestriction,DefaultTolerationSeconds,Priority \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --service-account-key-file="$K8S_PKI/sa.pub" --service-account-signing-key-file="$K8S_PKI/sa.key" \
    --service-cluster-ip-range="$SERVICE_CIDR" --allow-privileged=true --profiling=false \
    --endpoint-reconciler-type=none "${aggregation[@]}"
  stack_wait_for containerd 30 test -S "$CTRD_SOCK"
  import_pause
  stack_wait_for kube-apiserver 60 apiserver_ready

  stack_start kube-controller-manager "$K8S_BIN/kube-controller-manager" \
    --kubeconfig="$K8S_DIR/controller-manager.kubeconfig" \
    --authentication-kubeconfig="$K8S_DIR/controller-manager.kubeconfig" \
    --authorization-kubeconfig="$K8S_DIR/controller-manager.kubeconfig" \
    --bind-address=127.0.0.1 --secure-port=10257 \
    --tls-cert-file="$K8S_PKI/controller-manager.crt" --tls-private-key-file="$K8S_PKI/controller-manager.key" \
    --client-ca-file="$STACK_PKI/ca.crt" --root-ca-file="$STACK_PKI/ca.crt" \
    --service-account-private-key-file="$K8S_PKI/sa.key" --use-service-account-credentials=true \
    --cluster-signing-cert-file="$STACK_PKI/ca.crt" --cluster-signing-key-file="$STACK_PKI/ca.key" \
    --cluster-cidr="$POD_CIDR" \
    --service-cluster-ip-range="$SERVICE_CIDR" --leader-elect=false --profiling=false \
    --controllers='*,bootstrapsigner,tokencleaner'
  stack_start kube-scheduler "$K8S_BIN/kube-scheduler" \
    --kubeconfig="$K8S_DIR/scheduler.kubeconfig" \
    --authentication-kubeconfig="$K8S_DIR/scheduler.kubeconfig" \
    --authorization-kubeconfig="$K8S_DIR/scheduler.kubeconfig" \
    --bind-address=127.0.0.1 --secure-port=10259 \
    --tls-cert-file="$K8S_PKI/scheduler.crt" --tls-private-key-file="$K8S_PKI/scheduler.key" \
    --client-ca-file="$STACK_PKI/ca.crt" --leader-elect=false --profiling=false
  stack_start kubelet "$K8S_BIN/kubelet" --config="$K8S_DIR/kubelet-config.yaml" \
    --kubeconfig="$K8S_DIR/kubelet.kubeconfig" --root-dir="$K8S_DIR/kubelet" --cert-dir="$K8S_DIR/kubelet/pki" \
    --hostname-override="$NODE_NAME" --node-ip="$NODE_IP" --v=1
  stack_start kube-proxy "$K8S_BIN/kube-proxy" --config="$K8S_DIR/kube-proxy-config.yaml" --v=1
  stack_wait_for "node $NODE_NAME Ready" 90 node_ready
  start_kube_router
  # Usable as soon as up returns: the token controller has made the default service account.
  stack_wait_for "default service account" 60 kubectl_admin get serviceaccount default --request-timeout=5s
  metrics_server_up
  write_env
  stack_log "kubernetes $K8S_VERSION up in $((SECONDS - t0))s: KUBECONFIG=$ADMIN_KUBECONFIG"
}

# ---- down ----------------------------------------------------------------------------------

# Remove every iptables rule and chain whose name starts with KUBE- or CNI- (both families).
clean_iptables() {
  local ipt table chain num
  for ipt in iptables ip6tables; do
    command -v "$ipt" >/dev/null || continue
    for table in filter nat mangle raw; do
      "$ipt" -w -t "$table" -S >/dev/null 2>&1 || continue
      # Jumps from the built-in chains into ours, deleted by rule number (highest first): the
      # CNI rules carry comments with escaped quotes that do not survive re-parsing.
      for chain in PREROUTING INPUT FORWARD OUTPUT POSTROUTING; do
        while IFS= read -r num; do
          "$ipt" -w -t "$table" -D "$chain" "$num" 2>/dev/null || true
        done < <("$ipt" -w -t "$table" -L "$chain" -n --line-numbers 2>/dev/null |
          awk '$2 ~ /^(KUBE|CNI)-/ {print $1}' | sort -rn)
      done
      while IFS= read -r chain; do
        "$ipt" -w -t "$table" -F "$chain" 2>/dev/null || true
      done < <("$ipt" -w -t "$table" -S | awk '$1=="-N" && ($2 ~ /^(KUBE|CNI)-/) {print $2}')
      while IFS= read -r chain; do
        "$ipt" -w -t "$table" -X "$chain" 2>/dev/null || true
      done < <("$ipt" -w -t "$table" -S | awk '$1=="-N" && ($2 ~ /^(KUBE|CNI)-/) {print $2}')
    done
  done
}

# kube-router's ipsets (KUBE-SRC-*, KUBE-DST-*, their inet6: twins and TMP-* copies), once no
# rule refers to them any more (clean_iptables first).
clean_ipsets() {
  command -v ipset >/dev/null || return 0
  local set
  while IFS= read -r set; do
    ipset destroy "$set" 2>/dev/null || true
  done < <(ipset list -n 2>/dev/null | grep -E '^(inet6:)?(KUBE-(SRC|DST)-|TMP-)')
}

# Unmount everything below a directory, deepest first.
unmount_below() {
  local dir=$1 m
  while IFS= read -r m; do
    umount -l "$m" 2>/dev/null || true
  done < <(awk -v d="$dir/" 'index($5, d) == 1 {print $5}' /proc/self/mountinfo | sort -r)
}

remove_cgroup_tree() {
  local root=$1
  [[ -d $root ]] || return 0
  find "$root" -depth -type d -exec rmdir {} \; 2>/dev/null || true
}

# PIDs of containerd-shim-runc-v2 processes serving our containerd (by its socket path).
our_shims() {
  local dir cmd
  for dir in /proc/[0-9]*; do
    cmd=$(tr '\0' ' ' 2>/dev/null <"$dir/cmdline") || continue
    [[ $cmd == *containerd-shim-runc-v2* && $cmd == *"-address $CTRD_SOCK "* ]] && echo "${dir#/proc/}"
  done
  return 0
}

cmd_down() {
  local id pid sub
  # Independent daemons are stopped concurrently (each stop waits for its process to be gone).
  stack_stop metrics-server &
  stack_stop kube-router &
  stack_stop kube-proxy &
  stack_stop kubelet &
  wait
  if [[ -S $CTRD_SOCK ]] && stack_running containerd; then
    # Every pod sandbox and container: kill it, delete it. (Their network namespaces are mounted
    # below containerd's state dir, netns_mounts_under_state_dir, and unmounted with the rest.)
    for id in $(ctr_k8s containers ls -q 2>/dev/null); do
      ctr_k8s tasks kill -s SIGKILL "$id" >/dev/null 2>&1 || true
    done
    sleep 1
    for id in $(ctr_k8s containers ls -q 2>/dev/null); do
      ctr_k8s tasks delete -f "$id" >/dev/null 2>&1 || true
      ctr_k8s containers delete "$id" >/dev/null 2>&1 || true
    done
  fi
  stack_stop kube-scheduler &
  stack_stop kube-controller-manager &
  stack_stop containerd &
  wait
  stack_stop kube-apiserver
  stack_stop etcd
  # Shims of our containerd (they outlive it by design); matched by our own socket path, killed by PID.
  for pid in $(our_shims); do
    kill -KILL "$pid" 2>/dev/null || true
  done
  unmount_below "$K8S_DIR"
  # The kubelet links container logs into the fixed /var/log/containers; drop links to our logs.
  local link
  for link in /var/log/containers/*.log; do
    [[ -L $link && $(readlink "$link") == "$K8S_DIR/"* ]] && rm -f "$link"
  done
  ip link del "$CNI_BRIDGE" 2>/dev/null || true
  ip link del "$NODE_IF" 2>/dev/null || true
  clean_iptables
  clean_ipsets
  for sub in /sys/fs/cgroup/*/; do
    remove_cgroup_tree "${sub}kubepods"
  done
  if [[ -f /etc/hosts ]] && grep -q "^127.0.0.1 $NODE_NAME # statuspage-stack$" /etc/hosts; then
    local tmp
    tmp=$(mktemp)
    grep -v "^127.0.0.1 $NODE_NAME # statuspage-stack$" /etc/hosts >"$tmp" || true
    cat "$tmp" >/etc/hosts
    rm -f "$tmp"
  fi
  rm -rf "$K8S_DIR"
  if [[ -f $STACK_ENV_FILE ]]; then
    local tmp
    tmp=$(mktemp "$STACK_DIR/env.XXXXXX")
    grep -vE '^export (KUBECONFIG|STACK_KUBERNETES_[A-Z]+)=|# cluster.sh PATH$' "$STACK_ENV_FILE" >"$tmp" || true
    mv "$tmp" "$STACK_ENV_FILE"
  fi
  stack_log "kubernetes down"
}

cmd_status() {
  local d
  for d in "${DAEMONS[@]}"; do
    if stack_running "$d"; then echo "$d: running (pid $(stack_pid "$d"))"; else echo "$d: stopped"; fi
  done
  if [[ -s $ADMIN_KUBECONFIG ]]; then kubectl_admin get nodes -o wide 2>/dev/null || true; fi
}

case ${1:-} in
  build) cmd_build ;;
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  *) echo "usage: $0 build|up|down|status" >&2; exit 2 ;;
esac
