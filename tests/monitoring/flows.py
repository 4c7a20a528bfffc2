"""Judge the connections of tests/monitoring/flows.yaml against rendered NetworkPolicies.

    flows.py FLOWS VPC_PREFIX RENDERED.yaml...

A connection is allowed when the source may send it (no Egress policy selects the source pod, or a
rule of one that does matches the destination and port) and the destination may receive it (the
same for Ingress); addresses that are not pods (nodes, the API server, AWS) have no policies of their
own. Peers follow the NetworkPolicy API: podSelector (the policy's namespace), namespaceSelector
(matched on the namespace's kubernetes.io/metadata.name label) with or without a podSelector,
ipBlock with except (matched on any address, pods included, as the VPC CNI puts pods in the VPC).
Every line that comes out otherwise than flows.yaml says is printed; exit 1 if any.
"""

from __future__ import annotations

import ipaddress
import sys

import yaml


def selects(selector: dict | None, labels: dict) -> bool:
    if selector is None:
        return False
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for e in selector.get("matchExpressions") or []:
        value, op = labels.get(e["key"]), e["operator"]
        if (op == "In" and value not in e["values"]) or (op == "NotIn" and value in e["values"]) \
                or (op == "Exists" and value is None) or (op == "DoesNotExist" and value is not None):
            return False
    return True


def peer_matches(peer: dict, policy_ns: str, end: dict) -> bool:
    if "ipBlock" in peer:
        ip = ipaddress.ip_address(end["ip"])
        block = peer["ipBlock"]
        return ip in ipaddress.ip_network(block["cidr"]) and \
            not any(ip in ipaddress.ip_network(x) for x in block.get("except") or [])
    if "namespace" not in end:  # not a pod: only an ipBlock can name it
        return False
    if "namespaceSelector" in peer:
        if not selects(peer["namespaceSelector"], {"kubernetes.io/metadata.name": end["namespace"]}):
            return False
    elif end["namespace"] != policy_ns:
        return False
    return "podSelector" not in peer or selects(peer["podSelector"], end["labels"])


def port_matches(ports: list | None, port: int, proto: str) -> bool:
    if not ports:
        return True
    for p in ports:
        if p.get("protocol", "TCP") != proto:
            continue
        if "port" not in p:
            return True
        if isinstance(p["port"], str):
            raise SystemExit(f"[flows] named port {p['port']!r}: give the number (flows.py judges numbers only)")
        if p["port"] <= port <= p.get("endPort", p["port"]):
            return True
    return False


def side_allows(policies: list[dict], direction: str, me: dict, other: dict, port: int, proto: str) -> bool:
    """May `me` send (Egress) to / receive (Ingress) from `other`?"""
    if "namespace" not in me:
        return True
    mine = [p for p in policies if p["metadata"]["namespace"] == me["namespace"]
            and direction in p["spec"].get("policyTypes", ["Ingress"])
            and selects(p["spec"]["podSelector"], me["labels"])]
    if not mine:
        return True
    key, peers_key = ("egress", "to") if direction == "Egress" else ("ingress", "from")
    for policy in mine:
        for rule in policy["spec"].get(key) or []:
            peers = rule.get(peers_key)
            if peers and not any(peer_matches(peer, policy["metadata"]["namespace"], other) for peer in peers):
                continue
            # Ports are always the destination's: on Egress rules and on Ingress rules alike.
            if port_matches(rule.get("ports"), port, proto):
                return True
    return False


def main(flows_path: str, vpc: str, rendered: list[str]) -> None:
    flows = yaml.safe_load(open(flows_path))
    ends = {}
    for name, end in flows["endpoints"].items():
        end = dict(end)
        end["ip"] = end["ip"].replace("{vpc}", vpc)
        ends[name] = end
    policies = [d for path in rendered for d in yaml.safe_load_all(open(path))
                if d and d.get("kind") == "NetworkPolicy"]
    wrong = []
    for verdict in ("allowed", "denied"):
        for line in flows[verdict]:
            src, dst, port_spec = line.split()
            port, _, proto = port_spec.partition("/")
            proto = (proto or "tcp").upper()
            a, b = ends[src], ends[dst]
            out = side_allows(policies, "Egress", a, b, int(port), proto)
            into = side_allows(policies, "Ingress", b, a, int(port), proto)
            if (out and into) != (verdict == "allowed"):
                why = [] if out else [f"no Egress rule of {a.get('namespace')} lets {src} out"]
                why += [] if into else [f"no Ingress rule of {b.get('namespace')} lets it into {dst}"]
                wrong.append(f"{src} -> {dst}:{port}/{proto.lower()} should be {verdict} (VPC {vpc}.0.0/16)"
                             + (f": {'; '.join(why)}" if why else ": the policies allow it"))
    for w in wrong:
        print(f"[flows] {w}", file=sys.stderr)
    if wrong:
        sys.exit(1)
    print(f"[flows] VPC {vpc}.0.0/16: {len(flows['allowed'])} connections allowed, {len(flows['denied'])} denied, "
          f"as tests/monitoring/flows.yaml says ({len(policies)} NetworkPolicies)", file=sys.stderr)


if __name__ == "__main__":
    if len(sys.argv) < 4:
        raise SystemExit(__doc__)
    main(sys.argv[1], sys.argv[2], sys.argv[3:])
