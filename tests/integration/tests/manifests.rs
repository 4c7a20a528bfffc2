//! Invariants of the rendered manifests that the scanners cannot see (issue 6): they need to
//! relate objects to each other (a PDB to the replicas it guards, an Ingress to the pods behind
//! it, a namespace to its policies). Each overlay is rendered with `kustomize build` (from PATH)
//! and every finding names the overlay, the object and the field.

use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;

/// Every kustomization the pipeline or a person applies.
const TARGETS: &[&str] = &[
    "app/overlays/local",
    "app/overlays/staging",
    "app/overlays/production",
    "platform/overlays/staging",
    "platform/overlays/production",
];

const READINESS_GATE_LABEL: &str = "elbv2.k8s.aws/pod-readiness-gate-inject";

fn render(target: &str) -> Vec<Value> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../manifests").join(target);
    let out = Command::new("kustomize")
        .arg("build")
        .arg(&dir)
        .output()
        .unwrap_or_else(|e| panic!("running kustomize (is it on PATH?): {e}"));
    assert!(
        out.status.success(),
        "kustomize build {}: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    parse(&String::from_utf8_lossy(&out.stdout))
}

fn parse(yaml: &str) -> Vec<Value> {
    yaml_serde::Deserializer::from_str(yaml)
        .map(|doc| Value::deserialize(doc).expect("kustomize output is YAML"))
        .filter(|v| !v.is_null())
        .collect()
}

fn kind(o: &Value) -> &str {
    o["kind"].as_str().unwrap_or("")
}
fn name(o: &Value) -> &str {
    o["metadata"]["name"].as_str().unwrap_or("")
}
fn namespace(o: &Value) -> &str {
    o["metadata"]["namespace"].as_str().unwrap_or("")
}
fn id(o: &Value) -> String {
    format!("{}/{}/{}", kind(o), namespace(o), name(o))
}

/// `matchLabels` of a selector against a set of labels (our selectors use only matchLabels).
fn selects(selector: &Value, labels: &Value) -> bool {
    match selector["matchLabels"].as_object() {
        Some(m) if !m.is_empty() => m.iter().all(|(k, v)| labels.get(k) == Some(v)),
        _ => false,
    }
}

fn workloads(objs: &[Value]) -> impl Iterator<Item = &Value> {
    objs.iter().filter(|o| matches!(kind(o), "Deployment" | "DaemonSet" | "StatefulSet" | "Job"))
}

fn hpa_for<'a>(objs: &'a [Value], d: &Value) -> Option<&'a Value> {
    objs.iter().find(|h| {
        kind(h) == "HorizontalPodAutoscaler"
            && namespace(h) == namespace(d)
            && h["spec"]["scaleTargetRef"]["kind"] == d["kind"]
            && h["spec"]["scaleTargetRef"]["name"] == d["metadata"]["name"]
    })
}

/// The smallest number of replicas a Deployment runs with: the HPA's minimum if one scales it.
fn min_replicas(objs: &[Value], d: &Value) -> i64 {
    match hpa_for(objs, d) {
        Some(h) => h["spec"]["minReplicas"].as_i64().unwrap_or(1),
        None => d["spec"]["replicas"].as_i64().unwrap_or(1),
    }
}

fn int_or_string(v: &Value) -> Option<i64> {
    v.as_i64().or_else(|| v.as_str().and_then(|s| s.parse().ok()))
}

fn check(target: &str, objs: &[Value]) -> Vec<String> {
    let mut errors = Vec::new();
    let mut err = |o: &Value, field: &str, msg: String| {
        errors.push(format!("{target}: {}: {field}: {msg}", id(o)));
    };

    // Every pod runs as its own ServiceAccount.
    for w in workloads(objs) {
        let sa = w["spec"]["template"]["spec"]["serviceAccountName"].as_str().unwrap_or("");
        if sa.is_empty() || sa == "default" {
            err(
                w,
                "spec.template.spec.serviceAccountName",
                format!("is {sa:?}; give the pod its own ServiceAccount"),
            );
        }
    }

    // PDBs leave room to drain a node.
    for pdb in objs.iter().filter(|o| kind(o) == "PodDisruptionBudget") {
        let sel = &pdb["spec"]["selector"];
        let guarded: Vec<&Value> = objs
            .iter()
            .filter(|d| kind(d) == "Deployment" && namespace(d) == namespace(pdb))
            .filter(|d| selects(sel, &d["spec"]["template"]["metadata"]["labels"]))
            .collect();
        if guarded.is_empty() {
            err(pdb, "spec.selector", "selects no Deployment".into());
        }
        for d in guarded {
            let replicas = min_replicas(objs, d);
            if let Some(min) = int_or_string(&pdb["spec"]["minAvailable"]) {
                if min >= replicas {
                    err(
                        pdb,
                        "spec.minAvailable",
                        format!("{min} >= {replicas} replicas of {}: no pod could ever be evicted", id(d)),
                    );
                }
            } else if int_or_string(&pdb["spec"]["maxUnavailable"]).unwrap_or(0) < 1 {
                err(pdb, "spec.maxUnavailable", "must allow at least one disruption".into());
            }
        }
    }

    for d in objs.iter().filter(|o| kind(o) == "Deployment") {
        let labels = &d["spec"]["template"]["metadata"]["labels"];
        let component = labels["app.kubernetes.io/component"].as_str().unwrap_or("");
        let pod = &d["spec"]["template"]["spec"];

        // The scheduler: exactly one, never two during a rollout, never autoscaled.
        if component == "scheduler" {
            if d["spec"]["replicas"].as_i64() != Some(1) {
                err(
                    d,
                    "spec.replicas",
                    format!("is {}, the scheduler must run exactly one", d["spec"]["replicas"]),
                );
            }
            let strategy = &d["spec"]["strategy"];
            let no_surge = strategy["type"] == "Recreate"
                || int_or_string(&strategy["rollingUpdate"]["maxSurge"]) == Some(0);
            if !no_surge {
                err(
                    d,
                    "spec.strategy",
                    "must be Recreate (or maxSurge 0) so two schedulers never overlap".into(),
                );
            }
            if hpa_for(objs, d).is_some() {
                err(d, "HorizontalPodAutoscaler", "the scheduler must not be autoscaled".into());
            }
            continue;
        }

        // More than one replica: spread over zones.
        if min_replicas(objs, d) > 1 || hpa_for(objs, d).is_some() {
            let spread = pod["topologySpreadConstraints"].as_array().into_iter().flatten().any(|c| {
                c["topologyKey"] == "topology.kubernetes.io/zone" && selects(&c["labelSelector"], labels)
            });
            if !spread {
                err(
                    d,
                    "spec.template.spec.topologySpreadConstraints",
                    "no zone spread (topology.kubernetes.io/zone) selecting its own pods".into(),
                );
            }
        }

        // The HPA scales on CPU utilisation, which needs CPU requests on every container.
        if let Some(h) = hpa_for(objs, d) {
            let on_cpu =
                h["spec"]["metrics"].as_array().into_iter().flatten().any(|m| m["resource"]["name"] == "cpu");
            if on_cpu {
                for c in pod["containers"].as_array().into_iter().flatten() {
                    if c["resources"]["requests"]["cpu"].is_null() {
                        err(
                            d,
                            &format!(
                                "containers[{}].resources.requests.cpu",
                                c["name"].as_str().unwrap_or("?")
                            ),
                            format!("missing, but {} scales on CPU", id(h)),
                        );
                    }
                }
            }
        }
    }

    // Ingress (ALB, target-type ip): readiness gates on, preStop > deregistration delay < grace.
    for ing in objs.iter().filter(|o| kind(o) == "Ingress") {
        let ann = &ing["metadata"]["annotations"];
        if ann["alb.ingress.kubernetes.io/target-type"] == "ip" {
            let ns = objs.iter().find(|o| kind(o) == "Namespace" && name(o) == namespace(ing));
            match ns {
                Some(ns) if ns["metadata"]["labels"][READINESS_GATE_LABEL] == "enabled" => {}
                Some(ns) => err(
                    ns,
                    &format!("metadata.labels.{READINESS_GATE_LABEL}"),
                    format!("must be \"enabled\": {} uses target-type ip", id(ing)),
                ),
                None => err(
                    ing,
                    "metadata.namespace",
                    "its Namespace is not in the overlay, so the readiness-gate label cannot be checked"
                        .into(),
                ),
            }
        }
        let delay = ann["alb.ingress.kubernetes.io/target-group-attributes"]
            .as_str()
            .unwrap_or("")
            .split(',')
            .find_map(|kv| kv.trim().strip_prefix("deregistration_delay.timeout_seconds="))
            .and_then(|v| v.parse::<i64>().ok())
            .unwrap_or(300); // the ALB default
        let services: BTreeSet<&str> = ing["spec"]["rules"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|r| r["http"]["paths"].as_array().into_iter().flatten())
            .filter_map(|p| p["backend"]["service"]["name"].as_str())
            .collect();
        for svc in objs.iter().filter(|o| kind(o) == "Service" && services.contains(name(o))) {
            for d in objs.iter().filter(|d| kind(d) == "Deployment" && namespace(d) == namespace(svc)) {
                let labels = &d["spec"]["template"]["metadata"]["labels"];
                let sel = &svc["spec"]["selector"];
                if !sel
                    .as_object()
                    .is_some_and(|m| !m.is_empty() && m.iter().all(|(k, v)| labels.get(k) == Some(v)))
                {
                    continue;
                }
                let pod = &d["spec"]["template"]["spec"];
                let grace = pod["terminationGracePeriodSeconds"].as_i64().unwrap_or(30);
                for c in pod["containers"].as_array().into_iter().flatten() {
                    let field = format!(
                        "containers[{}].lifecycle.preStop.sleep.seconds",
                        c["name"].as_str().unwrap_or("?")
                    );
                    let Some(pause) = c["lifecycle"]["preStop"]["sleep"]["seconds"].as_i64() else {
                        err(
                            d,
                            &field,
                            format!(
                                "missing: behind {} the pod must keep serving while the ALB deregisters it ({delay} s)",
                                id(ing)
                            ),
                        );
                        continue;
                    };
                    if pause <= delay {
                        err(
                            d,
                            &field,
                            format!(
                                "{pause} s is not longer than the deregistration delay ({delay} s) of {}",
                                id(ing)
                            ),
                        );
                    }
                    if grace <= pause || grace <= delay {
                        err(
                            d,
                            "spec.template.spec.terminationGracePeriodSeconds",
                            format!(
                                "{grace} s must exceed both the preStop pause ({pause} s) and the deregistration delay ({delay} s)"
                            ),
                        );
                    }
                }
            }
        }
    }

    // Every namespace an overlay defines has a default-deny policy for both directions. (The
    // platform's deployer Role lives in the app's namespace, whose policies the app overlay owns.)
    let namespaces: BTreeSet<&str> = objs.iter().filter(|o| kind(o) == "Namespace").map(name).collect();
    for ns in namespaces {
        let denied = objs.iter().any(|p| {
            let spec = &p["spec"];
            let types: Vec<&str> =
                spec["policyTypes"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
            kind(p) == "NetworkPolicy"
                && namespace(p) == ns
                && spec["podSelector"].as_object().is_some_and(|m| m.is_empty())
                && types.contains(&"Ingress")
                && types.contains(&"Egress")
                && spec["ingress"].is_null()
                && spec["egress"].is_null()
        });
        if !denied {
            errors.push(format!("{target}: Namespace/{ns}: NetworkPolicy: no default-deny (podSelector {{}}, policyTypes [Ingress, Egress], no rules)"));
        }
    }
    errors
}

#[test]
fn rendered_manifests_hold_the_invariants() {
    let mut errors = Vec::new();
    for target in TARGETS {
        let objs = render(target);
        assert!(!objs.is_empty(), "{target}: rendered nothing");
        errors.extend(check(target, &objs));
    }
    assert!(errors.is_empty(), "manifest invariants broken:\n  {}", errors.join("\n  "));
}

/// The checks fire: a deliberately broken set of objects yields one finding per broken rule.
#[test]
fn broken_manifests_are_reported() {
    let objs = parse(include_str!("fixtures/broken-manifests.yaml"));
    let errors = check("fixture", &objs);
    let joined = errors.join("\n");
    for expected in [
        "Deployment/app/scheduler: spec.replicas",
        "Deployment/app/scheduler: spec.strategy",
        "PodDisruptionBudget/app/web: spec.minAvailable",
        "Deployment/app/web: spec.template.spec.topologySpreadConstraints",
        "Deployment/app/web: containers[web].resources.requests.cpu",
        "Deployment/app/web: containers[web].lifecycle.preStop.sleep.seconds",
        "Deployment/app/web: spec.template.spec.terminationGracePeriodSeconds",
        "Namespace//app: metadata.labels.elbv2.k8s.aws/pod-readiness-gate-inject",
        "Deployment/app/scheduler: spec.template.spec.serviceAccountName",
        "Namespace/app: NetworkPolicy: no default-deny",
    ] {
        assert!(joined.contains(expected), "expected a finding {expected:?}, got:\n{joined}");
    }
}
