//! Bad input to statuspage-rollout (issue 13): each case's exit code, a message that names the
//! flag, file, document, object or URL, and nothing changed in the namespace. Run against the
//! stack's real API server with a small render whose images are never pulled (nothing is applied).
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::process::Command;

use serde_json::{Value, json};
use statuspage_integration_tests::{assert_one_error_line, run_binary, unique};

/// Deletes the namespace when the test ends, passed or not.
struct Namespace(String);

impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = Command::new("kubectl").args(["delete", "namespace", &self.0, "--wait=false"]).output();
    }
}

fn render(ns: &str) -> Vec<Value> {
    let labels = json!({"app.kubernetes.io/part-of": "statuspage", "app.kubernetes.io/component": "web"});
    let pod = json!({"metadata": {"labels": labels}, "spec": {"containers": [
        {"name": "web", "image": "registry.invalid/statuspage-web:1", "args": ["web"]}]}});
    vec![
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings", "namespace": ns,
               "labels": {"app.kubernetes.io/part-of": "statuspage"}}, "data": {"A": "1"}}),
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": ns},
               "spec": {"selector": labels, "ports": [{"port": 80, "targetPort": 8000}]}}),
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": ns},
               "spec": {"selector": {"matchLabels": labels}, "template": pod}}),
        json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
               "metadata": {"name": "web", "namespace": ns},
               "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                        "minReplicas": 1, "maxReplicas": 2}}),
    ]
}

fn text(docs: &[Value]) -> String {
    docs.iter().map(|d| serde_json::to_string(d).unwrap()).collect::<Vec<_>>().join("\n---\n")
}

fn find<'a>(docs: &'a mut [Value], kind: &str) -> &'a mut Value {
    docs.iter_mut().find(|d| d["kind"] == kind).unwrap()
}

/// The namespace's objects and their versions (empty when the namespace is gone).
fn snapshot(ns: &str) -> Vec<String> {
    let out = Command::new("kubectl")
        .args(["-n", ns, "get", "configmaps,secrets,serviceaccounts,services,deployments,statefulsets"])
        .args(["-o", "json"])
        .output()
        .unwrap();
    let mut more = Command::new("kubectl")
        .args([
            "-n",
            ns,
            "get",
            "daemonsets,jobs,leases,horizontalpodautoscalers,networkpolicies",
            "-o",
            "json",
        ])
        .output()
        .unwrap()
        .stdout;
    let mut items = Vec::new();
    for bytes in [out.stdout, std::mem::take(&mut more)] {
        let list: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        for item in list["items"].as_array().into_iter().flatten() {
            items.push(format!(
                "{}/{}@{}",
                item["kind"].as_str().unwrap_or_default(),
                item["metadata"]["name"].as_str().unwrap_or_default(),
                item["metadata"]["resourceVersion"].as_str().unwrap_or_default()
            ));
        }
    }
    items.sort();
    items
}

/// A kubeconfig for the stack's API server with `token` instead of the admin's credentials, or
/// for `server` instead.
fn kubeconfig(dir: &std::path::Path, server: Option<&str>, token: Option<&str>) -> String {
    let out =
        Command::new("kubectl").args(["config", "view", "--raw", "--minify", "-o", "json"]).output().unwrap();
    let mut config: Value = serde_json::from_slice(&out.stdout).unwrap();
    if let Some(server) = server {
        config["clusters"][0]["cluster"]["server"] = json!(server);
    }
    if let Some(token) = token {
        config["users"][0]["user"] = json!({"token": token});
    }
    let path = dir.join(format!("kubeconfig-{}", unique("k")));
    std::fs::write(&path, config.to_string()).unwrap();
    path.display().to_string()
}

struct Case {
    name: &'static str,
    args: Vec<String>,
    env: Vec<(String, String)>,
    code: i32,
    needles: Vec<String>,
}

fn case(name: &'static str, args: &[&str], code: i32, needles: &[&str]) -> Case {
    Case {
        name,
        args: args.iter().map(|a| a.to_string()).collect(),
        env: Vec::new(),
        code,
        needles: needles.iter().map(|n| n.to_string()).collect(),
    }
}

#[test]
fn bad_input_exits_with_the_contract_code_names_the_thing_and_changes_nothing() {
    let ns = Namespace(unique("it-rollout-input"));
    let created = Command::new("kubectl").args(["create", "namespace", &ns.0]).output().unwrap();
    assert!(created.status.success(), "{}", String::from_utf8_lossy(&created.stderr));
    let dir = tempfile::tempdir().unwrap();
    let file = |name: &str, content: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, content).unwrap();
        path.display().to_string()
    };
    let with = |name: &str, change: &dyn Fn(&mut Vec<Value>)| {
        let mut docs = render(&ns.0);
        change(&mut docs);
        file(name, &text(&docs))
    };
    let good = with("good.yaml", &|_| {});
    let empty_dir = dir.path().join("empty-overlay");
    std::fs::create_dir(&empty_dir).unwrap();
    let empty_dir = empty_dir.display().to_string();

    let duplicate = with("duplicate.yaml", &|d| {
        let mut again = d[1].clone();
        again["data"]["A"] = json!("2");
        d.push(again);
    });
    let port = with("port.yaml", &|d| find(d, "Service")["spec"]["ports"][0]["port"] = json!(700000));
    let selector = with("selector.yaml", &|d| {
        find(d, "Deployment")["spec"]["selector"]["matchLabels"] =
            json!({"app.kubernetes.io/component": "other"})
    });
    let no_image = with("no-image.yaml", &|d| {
        find(d, "Deployment")["spec"]["template"]["spec"]["containers"][0]
            .as_object_mut()
            .unwrap()
            .remove("image");
    });
    let negative = with("negative.yaml", &|d| {
        let deployment = find(d, "Deployment");
        deployment["spec"]["replicas"] = json!(-1);
        d.retain(|o| o["kind"] != "HorizontalPodAutoscaler");
    });
    let hpa = with("hpa.yaml", &|d| find(d, "Deployment")["spec"]["replicas"] = json!(3));
    let unknown = with("unknown.yaml", &|d| {
        d.push(json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}))
    });
    let bad_version = with("bad-version.yaml", &|d| find(d, "ConfigMap")["apiVersion"] = json!("v1/x/y"));
    let no_namespace = with("no-namespace.yaml", &|d| {
        d.retain(|o| o["kind"] != "Namespace");
    });
    let two_namespaces = with("two-namespaces.yaml", &|d| {
        d.push(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "another"}}))
    });
    let no_name = file("no-name.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {}\n");
    let no_kind = file("no-kind.yaml", "apiVersion: v1\nmetadata:\n  name: x\n");
    let list = file("list.yaml", "- a\n- b\n");
    let yaml = file("yaml.yaml", "apiVersion: [v1\n");
    let empty = file("empty.yaml", "");
    let release_other = file(
        "release-other.json",
        &json!({"version": 1, "commit": "0123456789abcdef0123456789abcdef01234567", "images": {"web": {
            "repository": "registry.invalid/statuspage-renamed", "tag": "1",
            "digest": "sha256:1111111111111111111111111111111111111111111111111111111111111111"}}})
        .to_string(),
    );
    let release_bad = file("release-bad.json", "{not json");
    let release_empty = file("release-empty.json", "");
    let unreachable = kubeconfig(dir.path(), Some("https://127.0.0.1:1"), None);
    let bad_token = kubeconfig(dir.path(), None, Some("bogus-token"));

    let mut cases = vec![
        case("no input", &[], 2, &["--overlay", "--manifests"]),
        case("both inputs", &["--overlay", "o", "--manifests", "m"], 2, &["--overlay", "--manifests"]),
        case("zero timeout", &["--manifests", &good, "--timeout", "0"], 2, &["--timeout"]),
        case("word timeout", &["--manifests", &good, "--timeout", "soon"], 2, &["--timeout", "soon"]),
        case("day timeout", &["--manifests", &good, "--timeout", "5d"], 2, &["--timeout", "5d"]),
        case(
            "word fail-fast",
            &["--manifests", &good, "--fail-fast-after", "later"],
            2,
            &["--fail-fast-after"],
        ),
        case("empty field manager", &["--manifests", &good, "--field-manager", " "], 2, &["--field-manager"]),
        case(
            "selector with a space",
            &["--manifests", &good, "--prune-selector", "a b"],
            2,
            &["--prune-selector"],
        ),
        case(
            "selector without key",
            &["--manifests", &good, "--prune-selector", "=x"],
            2,
            &["--prune-selector"],
        ),
        case("empty selector", &["--manifests", &good, "--prune-selector", ""], 2, &["--prune-selector"]),
        case(
            "bad set selector",
            &["--manifests", &good, "--prune-selector", "a in b"],
            2,
            &["--prune-selector"],
        ),
        case(
            "bad namespace",
            &["--manifests", &good, "--namespace", "Bad_NS"],
            2,
            &["--namespace", "Bad_NS", "valid"],
        ),
        case("missing manifests", &["--manifests", "/nonexistent/x.yaml"], 2, &["/nonexistent/x.yaml"]),
        case("manifests is a folder", &["--manifests", &empty_dir], 2, &[&empty_dir]),
        case(
            "missing overlay",
            &["--overlay", "/nonexistent-overlay"],
            2,
            &["/nonexistent-overlay", "not a directory"],
        ),
        case(
            "overlay without kustomization",
            &["--overlay", &empty_dir],
            2,
            &["kustomize build", &empty_dir],
        ),
        case(
            "missing kustomize",
            &["--overlay", &empty_dir, "--kustomize", "/nonexistent/kustomize"],
            2,
            &["/nonexistent/kustomize"],
        ),
        case("empty render", &["--manifests", &empty], 2, &[&empty, "no objects"]),
        case("a list", &["--manifests", &list], 2, &[&list, "document 1", "not a Kubernetes object"]),
        case("no kind", &["--manifests", &no_kind], 2, &[&no_kind, "document 1"]),
        case("no name", &["--manifests", &no_name], 2, &[&no_name, "metadata.name"]),
        case("invalid yaml", &["--manifests", &yaml], 2, &[&yaml, "not valid YAML"]),
        case(
            "the same object twice",
            &["--manifests", &duplicate],
            2,
            &["document 2", "document 6", "ConfigMap/settings"],
        ),
        case("unknown kind", &["--manifests", &unknown], 2, &["Widget/w", "example.com/v1", "CRD"]),
        case("bad apiVersion", &["--manifests", &bad_version], 2, &["ConfigMap/settings", "v1/x/y"]),
        case("no namespace", &["--manifests", &no_namespace], 2, &["--namespace"]),
        case("two namespaces", &["--manifests", &two_namespaces], 2, &["--namespace"]),
        case("port out of range", &["--manifests", &port], 2, &["Service/web", "700000"]),
        case("selector does not match", &["--manifests", &selector], 2, &["Deployment/web", "selector"]),
        case("container without image", &["--manifests", &no_image], 2, &["Deployment/web", "image"]),
        case("negative replicas", &["--manifests", &negative], 2, &["Deployment/web", "replicas"]),
        case(
            "replicas under an HPA",
            &["--manifests", &hpa],
            2,
            &["Deployment/web", "HorizontalPodAutoscaler/web"],
        ),
        case(
            "missing release",
            &["--manifests", &good, "--release", "/nonexistent/release.json"],
            2,
            &["--release", "/nonexistent/release.json"],
        ),
        case(
            "malformed release",
            &["--manifests", &good, "--release", &release_bad],
            2,
            &["--release", &release_bad],
        ),
        case(
            "empty release",
            &["--manifests", &good, "--release", &release_empty],
            2,
            &["--release", &release_empty],
        ),
        case(
            "release not in the render",
            &["--manifests", &good, "--release", &release_other],
            2,
            &["release image web", "registry.invalid/statuspage-renamed"],
        ),
        case("missing kubeconfig", &["--manifests", &good], 2, &["KUBECONFIG"]),
        case("unreachable API server", &["--manifests", &good], 3, &["https://127.0.0.1:1", "tried 3 times"]),
        case("bad token", &["--manifests", &good], 3, &["401", "token"]),
    ];
    cases.push(case("empty stdin", &["--manifests", "-"], 2, &["no objects"]));
    for c in &mut cases {
        match c.name {
            "missing kubeconfig" => c.env.push(("KUBECONFIG".into(), "/nonexistent/kubeconfig".into())),
            "unreachable API server" => c.env.push(("KUBECONFIG".into(), unreachable.clone())),
            "bad token" => c.env.push(("KUBECONFIG".into(), bad_token.clone())),
            _ => {}
        }
    }
    assert!(cases.len() >= 30, "{} cases", cases.len());

    let before = snapshot(&ns.0);
    let mut failures = Vec::new();
    for c in &cases {
        let args: Vec<&str> = c.args.iter().map(String::as_str).collect();
        let env: Vec<(&str, &str)> = c.env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let (code, stdout, stderr) = run_binary("statuspage-rollout", &args, &env, "");
        let missing: Vec<&String> = c.needles.iter().filter(|n| !stderr.contains(n.as_str())).collect();
        if code != c.code || !missing.is_empty() || stderr.contains("Status {") || !stdout.trim().is_empty() {
            failures
                .push(format!("{}: exit {code} (want {}), missing {missing:?}\n{stderr}", c.name, c.code));
        }
        // One message, from the binary, that no `caused by:` line repeats.
        let check = std::panic::catch_unwind(|| assert_one_error_line(c.name, &stderr));
        if let Err(panic) = check {
            let message = panic.downcast_ref::<String>().cloned().unwrap_or_default();
            failures.push(format!("{}: {message}", c.name));
        }
        let after = snapshot(&ns.0);
        if after != before {
            failures.push(format!("{}: the namespace changed: {before:?} -> {after:?}", c.name));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn a_refused_dry_run_in_a_namespace_it_created_leaves_no_namespace() {
    let ns = Namespace(unique("it-rollout-input-new"));
    let mut docs = render(&ns.0);
    find(&mut docs, "Service")["spec"]["ports"][0]["port"] = json!(700000);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.yaml");
    std::fs::write(&path, text(&docs)).unwrap();
    let (code, _, stderr) =
        run_binary("statuspage-rollout", &["--manifests", path.to_str().unwrap()], &[], "");
    assert_eq!(code, 2, "{stderr}");
    let out = Command::new("kubectl").args(["get", "namespace", &ns.0, "-o", "json"]).output().unwrap();
    let left: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    assert!(
        !out.status.success() || left["status"]["phase"] == "Terminating",
        "the namespace created for the dry run was left: {left}"
    );
}
