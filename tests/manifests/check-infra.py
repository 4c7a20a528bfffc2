"""Issue 12's platform findings, held to the files (run by tests/suites/40-manifests.sh).

cfn-lint and checkov judge syntax and policy; this checks that the pieces fit: each numbered
check names the finding it guards. Usage: check-infra.py REPO_ROOT RENDERED_DIR, where
RENDERED_DIR holds `kustomize build` of every overlay (app-overlays-staging.yaml, ...).
Prints one line per failed check and exits 1, or prints a summary and exits 0.
"""
import glob
import os
import re
import sys

import yaml
from cfnlint.decode import decode  # cfn-lint's loader understands !Sub, !Ref, ...

root, rendered = sys.argv[1], sys.argv[2]
failures = []
checks = 0


def check(ok, message):
    global checks
    checks += 1
    if not ok:
        failures.append(message)


def template(name):
    tpl, matches = decode(os.path.join(root, "manifests/infra", name))
    if matches:
        raise SystemExit(f"manifests/infra/{name}: {matches[0]}")
    return tpl


def resources(tpl, rtype):
    return {k: v for k, v in tpl["Resources"].items() if v["Type"] == rtype}


def statements(role):
    for policy in role["Properties"].get("Policies", []):
        yield from policy["PolicyDocument"]["Statement"]


def actions(stmt):
    a = stmt["Action"]
    return [a] if isinstance(a, str) else a


def render(name):
    with open(os.path.join(rendered, name)) as f:
        return [d for d in yaml.safe_load_all(f) if d]


def find(docs, kind, name):
    return next(d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name)


templates = {os.path.basename(p): template(os.path.basename(p)) for p in glob.glob(f"{root}/manifests/infra/*.yaml")}
cluster, data, iam, network = (templates[n] for n in ("cluster.yaml", "data.yaml", "workload-iam.yaml", "network.yaml"))

# --- 1. the load balancer controller gets vpcId and region (hop limit 1 keeps IMDS from pods) ---
hop = cluster["Resources"]["NodeLaunchTemplate"]["Properties"]["LaunchTemplateData"]["MetadataOptions"]
check(hop["HttpPutResponseHopLimit"] == 1 or hop["HttpPutResponseHopLimit"] >= 2,
      "1: cluster.yaml NodeLaunchTemplate has no HttpPutResponseHopLimit")
check("Region" in network["Outputs"] and "VpcId" in network["Outputs"],
      "1: network.yaml must output VpcId and Region for the controller's --set vpcId/region")

# --- 2. the controller's policy: upstream's actions, the cluster security group, SetRulePriorities
lbc = iam["Resources"]["LoadBalancerControllerRole"]
granted = {a for s in statements(lbc) if s["Effect"] == "Allow" for a in actions(s)}
OMITTED = {  # upstream action -> why this policy leaves it out
    "cognito-idp:DescribeUserPoolClient": "the Ingress uses no Cognito authentication",
    "waf-regional:GetWebACL": "no WAF Classic",
    "waf-regional:GetWebACLForResource": "no WAF Classic",
    "waf-regional:AssociateWebACL": "no WAF Classic",
    "waf-regional:DisassociateWebACL": "no WAF Classic",
    "wafv2:AssociateWebACL": "no WAFv2 ACL is attached (the read rights stay: the controller checks)",
    "wafv2:DisassociateWebACL": "no WAFv2 ACL is attached",
    "shield:DescribeProtection": "no Shield Advanced",
    "shield:CreateProtection": "no Shield Advanced",
    "shield:DeleteProtection": "no Shield Advanced",
    "elasticloadbalancing:SetWebAcl": "no WAF",
}
with open(os.path.join(root, "tests/manifests/aws-load-balancer-controller-v2.13.4-actions.txt")) as f:
    upstream = [line.strip() for line in f if line.strip() and not line.startswith("#")]
for action in upstream:
    check(action in granted or action in OMITTED,
          f"2: workload-iam.yaml LoadBalancerControllerRole lacks {action} (upstream v2.13.4 grants it; add it or list it in OMITTED with a reason)")
check("elasticloadbalancing:SetRulePriorities" in granted, "2: LoadBalancerControllerRole lacks elasticloadbalancing:SetRulePriorities")
opens_cluster_sg = [
    s for s in statements(lbc)
    if "ec2:AuthorizeSecurityGroupIngress" in actions(s) and "Condition" not in s
    and s["Resource"] == {"Fn::ImportValue": {"Fn::Sub": "statuspage-${Environment}-ClusterSecurityGroupArn"}}
]
check(len(opens_cluster_sg) == 1,
      "2: LoadBalancerControllerRole must be able to add ingress rules to the EKS cluster security group (import ClusterSecurityGroupArn), and to no other untagged group")
check("ClusterSecurityGroupArn" in cluster["Outputs"], "2: cluster.yaml must export ClusterSecurityGroupArn")
for s in statements(lbc):
    if "ec2:AuthorizeSecurityGroupIngress" in actions(s) and s.get("Resource") == "*":
        check("Condition" in s, "2: LoadBalancerControllerRole may open any security group (Resource * without a tag condition)")

# --- 3. certificate and DNS, and the overlays reading them -------------------------------------
dns = templates.get("dns.yaml", {"Resources": {}, "Outputs": {}})
certs = resources(dns, "AWS::CertificateManager::Certificate")
ci = template("ci.yaml")
provider = ci["Resources"]["GitHubOidcProvider"]
check(provider.get("Condition") == "CreateGitHubOidcProvider" and "ExistingGitHubOidcProviderArn" in ci["Parameters"],
      "5: ci.yaml must reuse an account's existing GitHub OIDC provider (one per URL per account) instead of always creating one")
check("ExistingGitHubOidcProviderArn" in str(ci["Resources"]["DeployRole"]["Properties"]["AssumeRolePolicyDocument"]),
      "5: ci.yaml's DeployRole must trust the existing provider when one is given")
check(len(certs) == 1, "3: manifests/infra/dns.yaml must create the ACM certificate")
for cert in certs.values():
    props = cert["Properties"]
    check(props.get("ValidationMethod") == "DNS" and all("HostedZoneId" in o for o in props.get("DomainValidationOptions", [])),
          "3: the certificate must be DNS-validated in the Route 53 zone (DomainValidationOptions.HostedZoneId)")
check("ExternalDnsRole" in dns["Resources"], "3: dns.yaml must give external-dns its role (the Route 53 record)")
check("CertificateArn" in dns["Outputs"], "3: dns.yaml must output CertificateArn")
for env in ("staging", "production"):
    with open(f"{root}/manifests/app/overlays/{env}/aws-outputs.env") as f:
        outputs = dict(line.strip().split("=", 1) for line in f if "=" in line and not line.startswith("#"))
    docs = render(f"app-overlays-{env}.yaml")
    ingress = find(docs, "Ingress", "statuspage-web")
    check(ingress["metadata"]["annotations"]["alb.ingress.kubernetes.io/certificate-arn"] == outputs.get("CERTIFICATE_ARN"),
          f"3: the {env} Ingress's certificate is not aws-outputs.env's CERTIFICATE_ARN")
    check(ingress["spec"]["rules"][0]["host"] == outputs.get("DOMAIN"), f"3: the {env} Ingress's host is not aws-outputs.env's DOMAIN")
    settings = find(docs, "ConfigMap", "statuspage-settings")["data"]
    check(settings["DATABASE_HOST"] == outputs.get("DATABASE_HOST") and settings["REDIS_HOST"] == outputs.get("REDIS_HOST"),
          f"3: the {env} settings do not take DATABASE_HOST/REDIS_HOST from aws-outputs.env")
    for role in ("web", "worker", "scheduler", "migrate"):
        sa = find(docs, "ServiceAccount", f"statuspage-{role}")
        check(sa["metadata"].get("annotations", {}).get("eks.amazonaws.com/role-arn") == outputs.get(f"{role.upper()}_ROLE_ARN"),
              f"3: the {env} ServiceAccount statuspage-{role} does not take its role from aws-outputs.env")
    for d in docs:
        check(d["kind"] == "Namespace" or d["metadata"].get("namespace") == "statuspage",
              f"3: {env} {d['kind']} {d['metadata']['name']} is not in namespace statuspage (a component's resources miss the base's namespace)")
    check(not any(d["kind"] == "ConfigMap" and d["metadata"]["name"] == "aws-outputs" for d in docs),
          f"3: the {env} overlay must not apply its aws-outputs ConfigMap (local-config)")
    # --- 6. verify-full with the RDS CA, user name from the rotated secret, owner for migrations
    check(settings.get("DATABASE_SSLMODE") == "verify-full" and settings.get("DATABASE_SSLROOTCERT", "").startswith("/etc/statuspage/rds-ca/"),
          f"6: the {env} overlay must connect with sslmode verify-full against the RDS CA bundle")
    check("DATABASE_USER" not in settings, f"6: the {env} overlay must read DATABASE_USER from the rotated secret, not the ConfigMap")
    for d in docs:
        if d["kind"] in ("Deployment", "Job"):
            spec = d["spec"]["template"]["spec"]
            mounts = {m["mountPath"] for m in spec["containers"][0]["volumeMounts"]}
            check("/etc/statuspage/rds-ca" in mounts, f"6: {env} {d['kind']} {d['metadata']['name']} does not mount the RDS CA bundle")
            spc = next(v["csi"]["volumeAttributes"]["secretProviderClass"] for v in spec["volumes"] if "csi" in v)
            want = "statuspage-migrate" if d["kind"] == "Job" else "statuspage"
            check(spc == want, f"6: {env} {d['kind']} {d['metadata']['name']} reads SecretProviderClass {spc}, not {want}")
    spcs = {d["metadata"]["name"]: d["spec"]["parameters"]["objects"] for d in docs if d["kind"] == "SecretProviderClass"}
    check(f'"statuspage-{env}-database"' in spcs.get("statuspage", "") and "DATABASE_USER" in spcs.get("statuspage", ""),
          f"6: the {env} app pods must read user and password from statuspage-{env}-database")
    check(f'"statuspage-{env}-database-owner"' in spcs.get("statuspage-migrate", ""),
          f"6: the {env} migration Job must read statuspage-{env}-database-owner")
    # --- 5. the overlay's CIDRs are its environment's prefix
    with open(f"{root}/manifests/infra/environments/{env}.env") as f:
        prefix = re.search(r"^CIDR_PREFIX=(\S+)$", f.read(), re.M).group(1)
    policies = {d["metadata"]["name"]: d for d in docs if d["kind"] == "NetworkPolicy"}
    data_cidr = policies["allow-app-to-data"]["spec"]["egress"][0]["to"][0]["ipBlock"]["cidr"]
    check(data_cidr == f"{prefix}.160.0/22", f"5: {env}'s data CIDR {data_cidr} is not CIDR_PREFIX {prefix}'s")
platform_expect = {"staging": "/statuspage/staging/containers", "production": "/statuspage/production/containers"}
for env, group in platform_expect.items():
    docs = render(f"platform-overlays-{env}.yaml")
    env_vars = {e["name"]: e["value"] for e in find(docs, "DaemonSet", "fluent-bit")["spec"]["template"]["spec"]["containers"][0]["env"]}
    check(env_vars.get("LOG_GROUP") == group, f"3: platform {env}: fluent-bit LOG_GROUP {env_vars.get('LOG_GROUP')} is not {group}")

# --- 6. retention, database users, versions, autoscaling, alarms, zones --------------------------
for name, tpl in templates.items():
    for rname, res in tpl["Resources"].items():
        if res["Type"] in ("AWS::KMS::Key", "AWS::SecretsManager::Secret"):
            check(res.get("DeletionPolicy") == "Retain" and res.get("UpdateReplacePolicy") == "Retain",
                  f"6: {name} {rname} ({res['Type']}) must have DeletionPolicy and UpdateReplacePolicy Retain")
db = data["Resources"]["Database"]["Properties"]
check(db.get("ManageMasterUserPassword") is True and "MasterUserPassword" not in db,
      "6: data.yaml: the RDS master password must be RDS-managed (ManageMasterUserPassword), not an app secret")
engine = db["EngineVersion"]
engine = data["Parameters"].get(engine["Ref"], {}).get("Default", "") if isinstance(engine, dict) else engine
check(re.fullmatch(r"[0-9]+", str(engine)) is not None, f"6: data.yaml: PostgreSQL is pinned to {engine}, not to a major version only")
rotations = resources(data, "AWS::SecretsManager::RotationSchedule")
rotated = {r["Properties"]["SecretId"]["Ref"] for r in rotations.values()}
check({"DatabaseSecret", "DatabaseOwnerSecret"} <= rotated, "6: data.yaml: both database users' secrets must rotate")
for secret in ("DatabaseSecret", "DatabaseOwnerSecret"):
    tmpl = str(data["Resources"].get(secret, {}).get("Properties", {}).get("GenerateSecretString", {}).get("SecretStringTemplate"))
    check("statuspage_admin" not in tmpl and "masterarn" in tmpl, f"6: data.yaml {secret} must be a non-master user with masterarn (multi-user rotation)")
with open(f"{root}/manifests/infra/database-users.sql") as f:
    sql = f.read()
check("GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES" in sql and "statuspage_app" in sql and "CREATE ON SCHEMA public FROM PUBLIC" in sql,
      "6: database-users.sql must give statuspage_app DML only")
ca = resources(iam, "AWS::IAM::Role").get("ClusterAutoscalerRole")
check(ca is not None and any("autoscaling:SetDesiredCapacity" in actions(s) and "Condition" in s for s in statements(ca)),
      "6: workload-iam.yaml needs a Cluster Autoscaler role that scales only this cluster's groups")
alarms = templates.get("alarms.yaml", {"Resources": {}})
namespaces = {a["Properties"]["Namespace"] for a in resources(alarms, "AWS::CloudWatch::Alarm").values()}
check({"AWS/RDS", "AWS/ElastiCache", "AWS/ApplicationELB"} <= namespaces, f"6: alarms.yaml must alarm on RDS, ElastiCache and the ALB (has {sorted(namespaces)})")
for rname, res in resources(network, "AWS::EC2::Subnet").items():
    props = res["Properties"]
    check("AvailabilityZone" not in props and "Ref" in str(props.get("AvailabilityZoneId")),
          f"6: network.yaml {rname} must take its zone ID from the AvailabilityZoneIds parameter")
check("Default" not in network["Parameters"]["CidrPrefix"], "5: network.yaml CidrPrefix must have no default (staging would get production's)")

# --- 7. pinned add-ons, log-stream ARN, comments that name files and values ---------------------
for rname, res in resources(cluster, "AWS::EKS::Addon").items():
    check("AddonVersion" in res["Properties"], f"7: cluster.yaml {rname} is not pinned (no AddonVersion)")
fb = iam["Resources"]["FluentBitRole"]
for s in statements(fb):
    for r in s["Resource"] if isinstance(s["Resource"], list) else [s["Resource"]]:
        text = r.get("Fn::Sub", "") if isinstance(r, dict) else ""
        text = text if isinstance(text, str) else text[0]
        check("${ContainerLogGroup.Arn}:log-stream" not in text,
              "7: workload-iam.yaml: ContainerLogGroup.Arn already ends in ':*'; a log-stream ARN is log-group:NAME:log-stream:*")
for path in glob.glob(f"{root}/manifests/**/*", recursive=True):
    if os.path.isfile(path) and not path.endswith(".json"):
        with open(path, errors="replace") as f:
            text = f.read()
        refs = set()
        for m in re.finditer(r"(?<![\w/])manifests/[A-Za-z0-9_./{},-]*[A-Za-z0-9_]", text):
            # A path with a shell variable in it (values-$ENV.yaml) names no one file.
            if not re.match(r"[-_.]?\$", text[m.end():m.end() + 2]):
                refs.add(m.group(0))
        for ref in refs:
            if "{" in ref or "*" in ref or "ENV" in ref:
                continue
            check(os.path.exists(os.path.join(root, ref)), f"7: {os.path.relpath(path, root)} names {ref}, which does not exist")
        # "the overlay's settings.yaml": a file every staging/production app overlay must have
        for ref in set(re.findall(r"overlay's ([A-Za-z0-9_-]+\.(?:yaml|env))", text)):
            for env in ("staging", "production"):
                check(os.path.exists(f"{root}/manifests/app/overlays/{env}/{ref}"),
                      f"7: {os.path.relpath(path, root)} names the overlay's {ref}, which overlays/{env} does not have")
web = yaml.safe_load(open(f"{root}/manifests/app/base/deployment-web.yaml"))["spec"]["template"]["spec"]
ingress_text = open(f"{root}/manifests/app/base/ingress-web.yaml").read()
grace = re.search(r"grace period \((\d+) s\)", ingress_text)
check(grace is not None and int(grace.group(1)) == web["terminationGracePeriodSeconds"],
      f"7: ingress-web.yaml's comment gives the web grace period as {grace and grace.group(1)} s; the Deployment has {web['terminationGracePeriodSeconds']}")
sleep = re.search(r"preStop sleep \((\d+) s\)", ingress_text)
check(sleep is not None and int(sleep.group(1)) == web["containers"][0]["lifecycle"]["preStop"]["sleep"]["seconds"],
      "7: ingress-web.yaml's preStop comment disagrees with the Deployment")
fb_conf = open(f"{root}/manifests/platform/base/logging/fluent-bit.yaml").read()
ds = yaml.safe_load(open(f"{root}/manifests/platform/base/logging/daemonset.yaml"))
ds_env = {e["name"] for e in ds["spec"]["template"]["spec"]["containers"][0]["env"]}
for var in re.findall(r"\$\{([A-Z_]+)\}", fb_conf):
    check(var in ds_env, f"7: fluent-bit.yaml uses ${{{var}}}, which the DaemonSet does not set")
readme = open(f"{root}/manifests/README.md").read()
check("## Add-on versions" in readme, "7: daemonset.yaml's skip reason points at manifests/README.md's add-on table, which must exist")

if failures:
    print("\n".join(f"[check-infra] {m}" for m in failures))
    sys.exit(1)
print(f"[check-infra] {checks} checks passed")
