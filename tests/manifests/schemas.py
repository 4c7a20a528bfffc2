"""Write self-contained JSON schemas for kubeconform into OUT_DIR, named the way kubeconform's
"{{ .ResourceKind }}{{ .KindSuffix }}.json" template looks them up:

- built-in kinds from kubernetes-validate's strict schemas for K8S_VERSION (they reference a
  shared /api/_definitions.json that kubeconform cannot load, so the definitions are inlined);
- CRDs from tests/manifests/crds/*.yaml (openAPIV3Schema, every object closed with
  additionalProperties: false, so unknown fields are errors as on the API server).

usage: python schemas.py K8S_VERSION CRD_DIR OUT_DIR
"""
import glob
import json
import os
import sys

import kubernetes_validate
import yaml

version, crd_dir, out = sys.argv[1:4]
os.makedirs(out, exist_ok=True)

src = os.path.join(os.path.dirname(kubernetes_validate.__file__), "kubernetes-json-schema",
                   f"v{version}-local-strict")
with open(os.path.join(src, "_definitions.json")) as f:
    defs = json.load(f)["$defs"]
prefix = "/api/_definitions.json#/$defs/"
defs = json.loads(json.dumps(defs).replace(prefix, "#/$defs/"))


def refs(node):
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "$ref" and isinstance(v, str) and v.startswith("#/$defs/"):
                yield v[len("#/$defs/"):]
            else:
                yield from refs(v)
    elif isinstance(node, list):
        for x in node:
            yield from refs(x)


def reachable(schema):
    """Only the definitions the schema uses, so each file stays small."""
    seen, todo = {}, list(refs(schema))
    while todo:
        name = todo.pop()
        if name not in seen:
            seen[name] = defs[name]
            todo.extend(refs(defs[name]))
    return seen

for path in glob.glob(os.path.join(src, "*.json")):
    if os.path.basename(path).startswith("_"):
        continue
    with open(path) as f:
        text = f.read()
    if '"x-kubernetes-group-version-kind"' not in text:
        continue  # only top-level kinds
    schema = json.loads(text.replace(prefix, "#/$defs/"))
    schema["$defs"] = reachable(schema)
    with open(os.path.join(out, os.path.basename(path)), "w") as f:
        json.dump(schema, f)


def closed(s):
    if isinstance(s, dict):
        s = {k: closed(v) for k, v in s.items()}
        if s.get("type") == "object" and "properties" in s and "additionalProperties" not in s:
            s["additionalProperties"] = False
        return s
    if isinstance(s, list):
        return [closed(x) for x in s]
    return s


for path in sorted(glob.glob(os.path.join(crd_dir, "*.yaml"))):
    with open(path) as f:
        crd = yaml.safe_load(f)
    group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"].lower()
    for v in crd["spec"]["versions"]:
        schema = closed(v["schema"]["openAPIV3Schema"])
        schema["properties"]["metadata"] = {"type": "object"}
        name = f"{kind}-{group.split('.')[0]}-{v['name']}.json"
        with open(os.path.join(out, name), "w") as f:
            json.dump(schema, f)
