"""The --namespace-prefix filter of bin/bootstrap: reads Kubernetes objects (YAML) on stdin and
writes them with every namespace renamed PREFIX<namespace> and cluster-wide names prefixed, so a
second copy lands next to the first without touching it (the tests). Usage: rename-namespaces.py PREFIX
"""
import sys, yaml
prefix = sys.argv[1]
cluster_wide = {"Namespace", "ClusterRole", "ClusterRoleBinding"}
docs = [d for d in yaml.safe_load_all(sys.stdin) if d]
for d in docs:
    meta = d["metadata"]
    if d["kind"] in cluster_wide:
        meta["name"] = prefix + meta["name"]
    if d["kind"] == "Namespace":
        meta.setdefault("labels", {})["kubernetes.io/metadata.name"] = meta["name"]
    if meta.get("namespace"):
        meta["namespace"] = prefix + meta["namespace"]
    for subject in d.get("subjects") or []:
        if subject.get("namespace"):
            subject["namespace"] = prefix + subject["namespace"]
    if d["kind"] == "ClusterRoleBinding":
        d["roleRef"]["name"] = prefix + d["roleRef"]["name"]
    for rule in d.get("rules") or [] if d["kind"] == "ClusterRole" else []:
        if "namespaces" in rule.get("resources", []) and rule.get("resourceNames"):
            rule["resourceNames"] = [prefix + n for n in rule["resourceNames"]]
    if d["kind"] == "NetworkPolicy":
        for rule in (d["spec"].get("ingress") or []) + (d["spec"].get("egress") or []):
            for peer in rule.get("from", []) + rule.get("to", []):
                labels = (peer.get("namespaceSelector") or {}).get("matchLabels") or {}
                if "kubernetes.io/metadata.name" in labels and labels["kubernetes.io/metadata.name"] != "kube-system":
                    labels["kubernetes.io/metadata.name"] = prefix + labels["kubernetes.io/metadata.name"]
yaml.safe_dump_all(docs, sys.stdout)
