//! The rollout binary against the stack's real cluster, with the repository's real local overlay
//! (`kustomize build manifests/app/overlays/local`) and the demo app's images
//! (`tests/fixtures/demo-app`, built and pushed to the stack registry once per test binary).
//!
//! Each test renders the overlay into a namespace of its own (deleted at the end), with small
//! resource requests and a short `progressDeadlineSeconds` so failures show within seconds, plus
//! the two Secrets the local overlay expects. The binary is run as a user runs it (`--manifests`),
//! for its exit codes, its report on stdout and its diagnosis on stderr.
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine as _;
use bollard::auth::DockerCredentials;
use bollard::query_parameters::{BuildImageOptions, PushImageOptions};
use futures_util::StreamExt as _;
use serde::Deserialize as _;
use serde_json::{Value, json};
use statuspage_integration_tests::{Stack, docker, run_binary, stack, unique};
use tokio::sync::OnceCell;

const TARGETS: [&str; 3] = ["web", "worker", "scheduler"];

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

// ------------------------------------------------------------------------------------------------
// The demo app's images, tagged with a hash of their build context so reruns reuse them.
// ------------------------------------------------------------------------------------------------

static IMAGES: OnceCell<BTreeMap<String, String>> = OnceCell::const_new();

/// Every test uses the cluster shared; the API server restart test alone, exclusively (its
/// outage would fail the others' runs).
static CLUSTER: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

/// The demo images, and the cluster shared with the other tests.
async fn shared_cluster() -> (BTreeMap<String, String>, tokio::sync::RwLockReadGuard<'static, ()>) {
    let guard = CLUSTER.read().await;
    (demo_images().await, guard)
}

/// The demo images, and the cluster to this test alone.
async fn exclusive_cluster() -> (BTreeMap<String, String>, tokio::sync::RwLockWriteGuard<'static, ()>) {
    let guard = CLUSTER.write().await;
    (demo_images().await, guard)
}

async fn demo_images() -> BTreeMap<String, String> {
    IMAGES.get_or_init(|| build_and_push(stack())).await.clone()
}

/// The demo app's folder plus the static busybox, as a tar, and a short hash of it.
fn demo_context() -> (Vec<u8>, String) {
    let root = repo_root().join("tests/fixtures/demo-app");
    let mut files = Vec::new();
    fn walk(dir: &Path, root: &Path, files: &mut Vec<(String, Vec<u8>, u32)>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
        entries.sort();
        for path in entries {
            if path.is_dir() {
                walk(&path, root, files);
            } else {
                use std::os::unix::fs::PermissionsExt as _;
                let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
                let name = path.strip_prefix(root).unwrap().to_string_lossy().into_owned();
                files.push((name, std::fs::read(&path).unwrap(), mode));
            }
        }
    }
    walk(&root, &root, &mut files);
    let busybox = std::fs::read("/bin/busybox").expect("/bin/busybox (Debian busybox-static)");
    files.push(("busybox".into(), busybox, 0o755));
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut tar = tar::Builder::new(Vec::new());
    for (name, data, mode) in &files {
        for byte in name.bytes().chain(data.iter().copied()) {
            hash = (hash ^ u64::from(byte)).wrapping_mul(0x100_0000_01b3);
        }
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(*mode);
        header.set_mtime(0);
        header.set_cksum();
        tar.append_data(&mut header, name, data.as_slice()).unwrap();
    }
    (tar.into_inner().unwrap(), format!("it-{hash:016x}"))
}

async fn build_and_push(stack: Stack) -> BTreeMap<String, String> {
    let docker = docker();
    let (context, tag) = demo_context();
    let credentials = DockerCredentials {
        username: Some(stack.user.clone()),
        password: Some(stack.password.clone()),
        serveraddress: Some(stack.registry.clone()),
        ..Default::default()
    };
    let mut images = BTreeMap::new();
    for target in TARGETS {
        let repo = format!("{}/statuspage-it/demo-{target}", stack.registry);
        let image = format!("{repo}:{tag}");
        let options = BuildImageOptions {
            t: Some(image.clone()),
            target: target.into(),
            rm: true,
            ..Default::default()
        };
        let mut build = docker.build_image(options, None, Some(bollard::body_full(context.clone().into())));
        while let Some(info) = build.next().await {
            let info = info.unwrap_or_else(|e| panic!("docker build of demo-app {target}: {e}"));
            assert!(
                info.error_detail.is_none(),
                "docker build of demo-app {target}: {:?}",
                info.error_detail
            );
        }
        let options = PushImageOptions { tag: Some(tag.clone()), ..Default::default() };
        let mut push = docker.push_image(&repo, Some(options), Some(credentials.clone()));
        while let Some(info) = push.next().await {
            let info = info.unwrap_or_else(|e| panic!("docker push {image}: {e}"));
            assert!(info.error_detail.is_none(), "docker push {image}: {:?}", info.error_detail);
        }
        images.insert(target.to_string(), image);
    }
    images
}

// ------------------------------------------------------------------------------------------------
// The overlay rendered into a test namespace.
// ------------------------------------------------------------------------------------------------

/// Deletes the namespace when the test ends, passed or not.
struct Namespace(String);

impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = Command::new("kubectl").args(["delete", "namespace", &self.0, "--wait=false"]).output();
    }
}

fn small_resources(container: &mut Value) {
    container["resources"] =
        json!({"requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"cpu": "200m", "memory": "64Mi"}});
}

/// `kustomize build manifests/app/overlays/local`, moved into `namespace`, with the demo images,
/// small requests, short deadlines and grace periods, and the two Secrets the overlay expects.
fn render(namespace: &str, images: &BTreeMap<String, String>) -> Vec<Value> {
    let overlay = repo_root().join("manifests/app/overlays/local");
    let out =
        Command::new("kustomize").arg("build").arg(&overlay).output().expect("kustomize on PATH (stack env)");
    assert!(out.status.success(), "kustomize build: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    let mut docs = Vec::new();
    for document in yaml_serde::Deserializer::from_str(&text) {
        let mut doc = Value::deserialize(document).unwrap();
        if doc.is_null() {
            continue;
        }
        let kind = doc["kind"].as_str().unwrap_or_default().to_string();
        if kind == "Namespace" {
            doc["metadata"]["name"] = json!(namespace);
        } else {
            doc["metadata"]["namespace"] = json!(namespace);
        }
        let component =
            doc["metadata"]["labels"]["app.kubernetes.io/component"].as_str().unwrap_or_default().to_string();
        match kind.as_str() {
            "Deployment" => {
                doc["spec"]["progressDeadlineSeconds"] = json!(15);
                if component == "worker" {
                    doc["spec"]["replicas"] = json!(1);
                }
                let pod = &mut doc["spec"]["template"]["spec"];
                pod["terminationGracePeriodSeconds"] = json!(5);
                let container = &mut pod["containers"][0];
                container["image"] = json!(images[&component]);
                small_resources(container);
                if container.get("lifecycle").is_some() {
                    container["lifecycle"]["preStop"]["sleep"]["seconds"] = json!(1);
                }
            }
            "Job" => {
                let container = &mut doc["spec"]["template"]["spec"]["containers"][0];
                container["image"] = json!(images["web"]);
                small_resources(container);
            }
            "HorizontalPodAutoscaler" => {
                doc["spec"]["minReplicas"] = json!(1);
                doc["spec"]["maxReplicas"] = json!(1);
            }
            _ => {}
        }
        docs.push(doc);
    }
    let stack = stack();
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", stack.user, stack.password));
    let config = json!({"auths": {stack.registry.clone(): {"username": stack.user, "password": stack.password, "auth": auth}}});
    docs.push(json!({
        "apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/dockerconfigjson",
        "metadata": {"name": "registry-credentials", "namespace": namespace},
        "stringData": {".dockerconfigjson": config.to_string()},
    }));
    docs.push(json!({
        "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
        "metadata": {"name": "statuspage-secrets", "namespace": namespace},
        "stringData": {"SECRET_KEY": uuid::Uuid::new_v4().to_string().repeat(2), "DATABASE_PASSWORD": "x", "REDIS_PASSWORD": "x"},
    }));
    // The local overlay mounts the data services' CA (bin/local-deploy creates it from the stack's).
    docs.push(json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "statuspage-data-ca", "namespace": namespace},
        "data": {"ca.crt": "not read by the demo app"},
    }));
    docs
}

fn find<'a>(docs: &'a mut [Value], kind: &str, name: &str) -> &'a mut Value {
    docs.iter_mut().find(|d| d["kind"] == kind && d["metadata"]["name"] == name).unwrap()
}

/// Write the documents (JSON is YAML) and run the binary on them.
fn rollout(docs: &[Value], extra: &[&str]) -> (i32, Value, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("manifests.yaml");
    let text: Vec<String> = docs.iter().map(|d| serde_json::to_string(d).unwrap()).collect();
    std::fs::write(&path, text.join("\n---\n")).unwrap();
    let mut args = vec!["--manifests", path.to_str().unwrap(), "--timeout", "90s"];
    args.extend_from_slice(extra);
    let (code, stdout, stderr) = run_binary("statuspage-rollout", &args, &[], "");
    let report = serde_json::from_str(&stdout).unwrap_or(Value::Null);
    (code, report, stderr)
}

fn kubectl_json(args: &[&str]) -> Value {
    let out = Command::new("kubectl").args(args).args(["-o", "json"]).output().unwrap();
    assert!(out.status.success(), "kubectl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn deployments(namespace: &str) -> Vec<Value> {
    kubectl_json(&["-n", namespace, "get", "deployments"])["items"].as_array().cloned().unwrap_or_default()
}

fn deployment_report<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["workloads"].as_array().unwrap().iter().find(|d| d["name"] == name).unwrap()
}

// ------------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_good_rollout_completes_and_a_second_one_changes_nothing() {
    let (images, _cluster) = shared_cluster().await;
    let ns = Namespace(unique("it-rollout-good"));
    let docs = render(&ns.0, &images);

    let (code, report, stderr) = rollout(&docs, &["--dry-run"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(report["result"], "dry-run");
    assert!(report["objects"].as_array().unwrap().iter().any(|o| o["action"] == "would create"), "{report}");
    assert!(deployments(&ns.0).is_empty(), "the dry run created Deployments");
    // The namespace it created for its dry run is deleted again; the rollout right after waits
    // until it is gone and creates it.
    let out = Command::new("kubectl").args(["get", "namespace", &ns.0, "-o", "json"]).output().unwrap();
    let left: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    assert!(
        !out.status.success() || left["status"]["phase"] == "Terminating",
        "the dry run left the namespace it created: {left}"
    );
    assert!(stderr.contains(&format!("Namespace/{} deleted again", ns.0)), "{stderr}");

    let started = std::time::Instant::now();
    let (code, report, stderr) = rollout(&docs, &[]);
    eprintln!("rollout of the demo app: {:.1}s", started.elapsed().as_secs_f64());
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(report["result"], "deployed", "{report}");
    assert_eq!(report["migration"]["result"], "complete", "{report}");
    // Where the time went: every step, in order, and together no longer than the run.
    let phases: Vec<&str> =
        report["phases"].as_array().unwrap().iter().map(|p| p["phase"].as_str().unwrap()).collect();
    assert_eq!(
        phases,
        ["render", "connect", "validate", "lock", "configure", "migrate", "apply", "wait"],
        "{report}"
    );
    let total: u64 = report["phases"].as_array().unwrap().iter().map(|p| p["ms"].as_u64().unwrap()).sum();
    assert!(total as f64 <= started.elapsed().as_secs_f64() * 1000.0, "{total} ms in {report}");
    assert!(stderr.contains("time: render "), "{stderr}");
    for target in TARGETS {
        let d = deployment_report(&report, &format!("statuspage-{target}"));
        assert_eq!(d["result"], "available", "{d}");
        assert_eq!(d["images"][0], images[target]);
        assert!(d["ready_replicas"].as_i64().unwrap() >= 1, "{d}");
        assert!(!d["running"].as_array().unwrap().is_empty(), "{d}");
    }

    let (code, report, stderr) = rollout(&docs, &[]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(report["migration"]["result"], "already-complete", "{report}");
    for target in TARGETS {
        assert_eq!(deployment_report(&report, &format!("statuspage-{target}"))["revision"], "1", "{report}");
    }
}

#[tokio::test]
async fn a_failing_migration_stops_before_the_deployments() {
    let (images, _cluster) = shared_cluster().await;
    let ns = Namespace(unique("it-rollout-migrate"));
    let mut docs = render(&ns.0, &images);
    find(&mut docs, "Job", "statuspage-migrate")["spec"]["template"]["spec"]["containers"][0]["env"] =
        json!([{"name": "DEMO_RELEASE_FAIL", "value": "1"}]);

    let (code, report, stderr) = rollout(&docs, &[]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("migration statuspage-migrate-"), "{stderr}");
    assert!(stderr.contains("failed (DEMO_RELEASE_FAIL=1)"), "the Job's log tail is missing: {stderr}");
    assert!(stderr.contains("exit code 1"), "{stderr}");
    assert_eq!(report["result"], "failed");
    assert_eq!(report["migration"]["result"], "failed");
    assert!(deployments(&ns.0).is_empty(), "Deployments were applied after a failed migration");
}

#[tokio::test]
async fn a_broken_image_is_diagnosed_and_rolled_back() {
    let (images, _cluster) = shared_cluster().await;
    let ns = Namespace(unique("it-rollout-broken"));
    let mut docs = render(&ns.0, &images);
    let (code, _, stderr) = rollout(&docs, &[]);
    assert_eq!(code, 0, "{stderr}");

    let good = images["web"].clone();
    let broken = format!("{}:does-not-exist", good.rsplit_once(':').unwrap().0);
    find(&mut docs, "Deployment", "statuspage-web")["spec"]["template"]["spec"]["containers"][0]["image"] =
        json!(broken);
    let started = std::time::Instant::now();
    let (code, report, stderr) = rollout(&docs, &[]);
    eprintln!("failed rollout + rollback: {:.1}s\n{stderr}", started.elapsed().as_secs_f64());
    assert_eq!(code, 4, "{stderr}");
    assert!(stderr.contains("ProgressDeadlineExceeded"), "{stderr}");
    assert!(
        stderr.contains("ImagePullBackOff") || stderr.contains("ErrImagePull"),
        "no pull diagnosis: {stderr}"
    );
    assert!(stderr.contains("rolling back to revision 1"), "{stderr}");
    assert_eq!(report["result"], "rolled-back", "{report}");
    let web = deployment_report(&report, "statuspage-web");
    assert_eq!(web["result"], "rolled-back", "{web}");
    assert_eq!(web["images"][0], json!(good), "{web}");
    assert_eq!(deployment_report(&report, "statuspage-worker")["revision"], "1", "worker was not changed");

    let live = deployments(&ns.0);
    let web = live.iter().find(|d| d["metadata"]["name"] == "statuspage-web").unwrap();
    assert_eq!(web["spec"]["template"]["spec"]["containers"][0]["image"], json!(good));
    assert!(web["status"]["availableReplicas"].as_i64().unwrap_or(0) >= 1, "{}", web["status"]);
}

#[tokio::test]
async fn an_invalid_object_is_refused_and_nothing_changes() {
    let (images, _cluster) = shared_cluster().await;
    let ns = Namespace(unique("it-rollout-invalid"));
    let mut docs = render(&ns.0, &images);
    find(&mut docs, "Service", "statuspage-web")["spec"]["ports"][0]["port"] = json!(700000);

    let (code, report, stderr) = rollout(&docs, &[]);
    assert_eq!(code, 2, "{stderr}");
    assert_eq!(report, Value::Null, "no report when nothing was applied");
    let error = stderr.lines().find(|l| l.contains("error:")).unwrap_or_default();
    assert!(error.contains("Service/statuspage-web") && error.contains("700000"), "{stderr}");
    assert!(deployments(&ns.0).is_empty());
    let configmaps =
        kubectl_json(&["-n", &ns.0, "get", "configmaps", "-l", "app.kubernetes.io/part-of=statuspage"]);
    assert_eq!(configmaps["items"], json!([]), "objects were applied after a refused dry run");
}

#[tokio::test]
async fn a_crashing_container_is_diagnosed_and_left_alone_with_no_rollback() {
    let (images, _cluster) = shared_cluster().await;
    let ns = Namespace(unique("it-rollout-crash"));
    let mut docs = render(&ns.0, &images);
    let (code, _, stderr) = rollout(&docs, &[]);
    assert_eq!(code, 0, "{stderr}");

    // An unknown role: the demo entrypoint prints why and exits 64, so the pod crash-loops.
    find(&mut docs, "Deployment", "statuspage-web")["spec"]["template"]["spec"]["containers"][0]["args"] =
        json!(["crash"]);
    let (code, report, stderr) = rollout(&docs, &["--no-rollback"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("exit code 64"), "no exit code in the diagnosis: {stderr}");
    assert!(stderr.contains("unknown role 'crash'"), "no log tail in the diagnosis: {stderr}");
    assert!(stderr.contains("--no-rollback"), "{stderr}");
    assert_eq!(report["result"], "failed", "{report}");
    let web = deployment_report(&report, "statuspage-web");
    assert_eq!((web["result"].as_str(), web["revision"].as_str()), (Some("failed"), Some("2")), "{web}");
}

#[tokio::test]
async fn a_crash_loop_fails_fast_long_before_the_progress_deadline_and_is_rolled_back() {
    let (images, _cluster) = shared_cluster().await;
    let ns = Namespace(unique("it-rollout-fast"));
    let mut docs = render(&ns.0, &images);
    let (code, _, stderr) = rollout(&docs, &[]);
    assert_eq!(code, 0, "{stderr}");

    // Kubernetes' own deadline would wait 10 minutes; fail fast needs the crash loop to last 10 s.
    let web = find(&mut docs, "Deployment", "statuspage-web");
    web["spec"]["progressDeadlineSeconds"] = json!(600);
    web["spec"]["template"]["spec"]["containers"][0]["args"] = json!(["crash"]);
    let (code, report, stderr) = rollout(&docs, &["--fail-fast-after", "10s"]);
    assert_eq!(code, 4, "{stderr}");
    assert!(stderr.contains("CrashLoopBackOff") && stderr.contains("failing fast"), "{stderr}");
    assert!(
        !stderr.contains("ProgressDeadlineExceeded"),
        "fail-fast decided, not the 600 s deadline: {stderr}"
    );
    assert_eq!(report["result"], "rolled-back", "{report}");
}

#[tokio::test]
async fn objects_taken_out_of_the_render_are_pruned_and_nobody_elses_are_touched() {
    let (images, _cluster) = shared_cluster().await;
    let ns = Namespace(unique("it-rollout-prune"));
    let mut docs = render(&ns.0, &images);
    let (code, _, stderr) = rollout(&docs, &[]);
    assert_eq!(code, 0, "{stderr}");

    // Someone else's object with the release's label: not ours to delete.
    let created = Command::new("kubectl")
        .args(["-n", &ns.0, "create", "configmap", "hand-made", "--from-literal=a=b"])
        .output()
        .unwrap();
    assert!(created.status.success(), "{}", String::from_utf8_lossy(&created.stderr));
    let labelled = Command::new("kubectl")
        .args(["-n", &ns.0, "label", "configmap", "hand-made", "app.kubernetes.io/part-of=statuspage"])
        .output()
        .unwrap();
    assert!(labelled.status.success(), "{}", String::from_utf8_lossy(&labelled.stderr));

    // The overlay drops one NetworkPolicy.
    let dropped = docs
        .iter()
        .find(|d| d["kind"] == "NetworkPolicy" && d["metadata"]["name"] != "default-deny")
        .map(|d| d["metadata"]["name"].as_str().unwrap().to_string())
        .unwrap();
    docs.retain(|d| !(d["kind"] == "NetworkPolicy" && d["metadata"]["name"] == dropped.as_str()));

    let (code, report, stderr) = rollout(&docs, &["--dry-run"]);
    assert_eq!(code, 0, "{stderr}");
    let planned: Vec<&Value> =
        report["objects"].as_array().unwrap().iter().filter(|o| o["action"] == "would prune").collect();
    assert_eq!(planned.len(), 1, "{report}");
    assert_eq!(planned[0]["name"], dropped.as_str());
    assert_eq!(
        kubectl_json(&["-n", &ns.0, "get", "networkpolicy", &dropped])["metadata"]["name"],
        dropped.as_str()
    );

    let (code, report, stderr) = rollout(&docs, &[]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        report["objects"]
            .as_array()
            .unwrap()
            .iter()
            .any(|o| o["action"] == "pruned" && o["name"] == dropped.as_str()),
        "{report}"
    );
    let gone =
        Command::new("kubectl").args(["-n", &ns.0, "get", "networkpolicy", &dropped]).output().unwrap();
    assert!(!gone.status.success(), "NetworkPolicy/{dropped} is still there");
    assert_eq!(
        kubectl_json(&["-n", &ns.0, "get", "configmap", "hand-made"])["data"]["a"],
        "b",
        "not ours: kept"
    );
}

fn put_lease(namespace: &str, holder: &str, renewed: &str) {
    let lease = json!({
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": "statuspage-rollout", "namespace": namespace},
        "spec": {"holderIdentity": holder, "leaseDurationSeconds": 600,
                 "renewTime": renewed, "acquireTime": renewed}
    });
    let mut child = Command::new("kubectl")
        .args(["apply", "--server-side", "--force-conflicts", "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    child.stdin.take().unwrap().write_all(lease.to_string().as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[tokio::test]
async fn a_second_rollout_waits_its_turn_and_an_expired_lease_is_taken_over() {
    let (images, _cluster) = shared_cluster().await;
    let ns = Namespace(unique("it-rollout-lease"));
    let docs = render(&ns.0, &images);
    let created = Command::new("kubectl").args(["create", "namespace", &ns.0]).output().unwrap();
    assert!(created.status.success(), "{}", String::from_utf8_lossy(&created.stderr));

    // Another rollout renewed its Lease just now: this one must not touch anything.
    let now = kubectl_json(&["get", "namespace", &ns.0])["metadata"]["creationTimestamp"]
        .as_str()
        .unwrap()
        .to_string();
    put_lease(&ns.0, "ci-runner/4242 (org/statuspage run 7)", &now.replace('Z', ".000000Z"));
    let (code, _, stderr) = rollout(&docs, &[]);
    assert_eq!(code, 3, "{stderr}");
    assert!(
        stderr.contains("another rollout is changing namespace") && stderr.contains("ci-runner/4242"),
        "{stderr}"
    );
    assert!(deployments(&ns.0).is_empty(), "a busy namespace was changed");

    // A holder that died long ago: its Lease expired, this rollout takes over and gives it back.
    put_lease(&ns.0, "ci-runner/4242 (org/statuspage run 7)", "2020-01-01T00:00:00.000000Z");
    let (code, report, stderr) = rollout(&docs, &[]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(report["result"], "deployed");
    let left =
        Command::new("kubectl").args(["-n", &ns.0, "get", "lease", "statuspage-rollout"]).output().unwrap();
    assert!(!left.status.success(), "the Lease was not given back");
}

// ------------------------------------------------------------------------------------------------
// Rollout v2 (issue 14) and clean ends (issue 13).
// ------------------------------------------------------------------------------------------------

fn kubectl(args: &[&str]) -> (bool, String, String) {
    let out = Command::new("kubectl").args(args).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn kubectl_apply(value: &Value) {
    let mut child = Command::new("kubectl")
        .args(["apply", "--server-side", "--force-conflicts", "--field-manager=test", "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    child.stdin.take().unwrap().write_all(value.to_string().as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

fn workload_report<'a>(report: &'a Value, kind: &str, name: &str) -> &'a Value {
    report["workloads"]
        .as_array()
        .unwrap_or_else(|| panic!("no workloads in {report}"))
        .iter()
        .find(|d| d["kind"] == kind && d["name"] == name)
        .unwrap_or_else(|| panic!("no {kind}/{name} in {report}"))
}

fn container<'a>(docs: &'a mut [Value], kind: &str, name: &str) -> &'a mut Value {
    &mut find(docs, kind, name)["spec"]["template"]["spec"]["containers"][0]
}

/// A StatefulSet and a DaemonSet with the worker's pod template (its security context passes the
/// namespace's Pod Security level), short grace periods.
fn stateful_and_daemon(docs: &mut [Value]) -> Vec<Value> {
    let worker = find(docs, "Deployment", "statuspage-worker").clone();
    let namespace = worker["metadata"]["namespace"].clone();
    let make = |kind: &str, name: &str| {
        let mut template = worker["spec"]["template"].clone();
        template["metadata"]["labels"]["app.kubernetes.io/component"] = json!(name);
        template["spec"]["terminationGracePeriodSeconds"] = json!(2);
        let selector = json!({"matchLabels": {"app.kubernetes.io/component": name}});
        let mut spec = json!({"selector": selector, "template": template});
        if kind == "StatefulSet" {
            spec["replicas"] = json!(1);
            spec["serviceName"] = json!(name);
        }
        json!({"apiVersion": "apps/v1", "kind": kind,
               "metadata": {"name": name, "namespace": namespace, "labels": {"app.kubernetes.io/part-of": "statuspage"}},
               "spec": spec})
    };
    vec![make("StatefulSet", "it-state"), make("DaemonSet", "it-daemon")]
}

#[tokio::test]
async fn issue14_statefulsets_and_daemonsets_are_awaited_and_rolled_back() {
    let (images, _cluster) = shared_cluster().await;
    let ns = Namespace(unique("it-rollout-kinds"));
    let mut docs = render(&ns.0, &images);
    let extra = stateful_and_daemon(&mut docs);
    docs.extend(extra);
    let (code, report, stderr) = rollout(&docs, &[]);
    assert_eq!(code, 0, "{stderr}");
    for (kind, name) in [("StatefulSet", "it-state"), ("DaemonSet", "it-daemon")] {
        let w = workload_report(&report, kind, name);
        assert_eq!(w["result"], "available", "{w}");
        assert_eq!(w["ready_replicas"], 1, "{w}");
    }

    // The failing input of the issue: images that do not exist. Exit 0 "deployed" before.
    let broken = format!("{}:does-not-exist", images["worker"].rsplit_once(':').unwrap().0);
    for name in ["it-state", "it-daemon"] {
        let kind = if name == "it-state" { "StatefulSet" } else { "DaemonSet" };
        container(&mut docs, kind, name)["image"] = json!(broken);
    }
    let (code, report, stderr) = rollout(&docs, &["--fail-fast-after", "5s"]);
    assert_eq!(code, 4, "{stderr}");
    assert!(stderr.contains("ErrImagePull") || stderr.contains("ImagePullBackOff"), "{stderr}");
    assert_eq!(report["result"], "rolled-back", "{report}");
    let live = kubectl_json(&["-n", &ns.0, "get", "statefulset,daemonset"]);
    for item in live["items"].as_array().unwrap() {
        assert_eq!(
            item["spec"]["template"]["spec"]["containers"][0]["image"],
            json!(images["worker"]),
            "{} not rolled back",
            item["metadata"]["name"]
        );
    }
}

#[tokio::test]
async fn issue14_a_paused_deployment_is_refused_and_nothing_is_applied() {
    let (images, _cluster) = shared_cluster().await;
    let ns = Namespace(unique("it-rollout-paused"));
    let mut docs = render(&ns.0, &images);
    let (code, _, stderr) = rollout(&docs, &[]);
    assert_eq!(code, 0, "{stderr}");
    let (ok, _, err) = kubectl(&["-n", &ns.0, "rollout", "pause", "deployment/statuspage-worker"]);
    assert!(ok, "{err}");

    container(&mut docs, "Deployment", "statuspage-worker")["env"] = json!([{"name": "NEW", "value": "1"}]);
    find(&mut docs, "ConfigMap", "statuspage-settings")["data"]["IT_MARK"] = json!("changed");
    let (code, report, stderr) = rollout(&docs, &[]);
    assert_eq!(code, 2, "{stderr}");
    assert_eq!(report, Value::Null);
    assert!(
        stderr.contains("Deployment/statuspage-worker")
            && stderr.contains("paused")
            && stderr.contains("rollout resume deployment/statuspage-worker"),
        "{stderr}"
    );
    let live = kubectl_json(&["-n", &ns.0, "get", "deployment", "statuspage-worker"]);
    assert_eq!(
        live["spec"]["template"]["spec"]["containers"][0].get("env"),
        None,
        "the paused Deployment got the template"
    );
    let settings = kubectl_json(&["-n", &ns.0, "get", "configmap", "statuspage-settings"]);
    assert_eq!(settings["data"].get("IT_MARK"), None, "configuration applied after a refusal");
}

#[tokio::test]
async fn issue14_running_lists_only_the_current_revision_and_counts_terminating_pods() {
    let (images, _cluster) = shared_cluster().await;
    let ns = Namespace(unique("it-rollout-running"));
    let mut docs = render(&ns.0, &images);
    let worker = find(&mut docs, "Deployment", "statuspage-worker");
    worker["spec"]["replicas"] = json!(2);
    worker["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = json!(60);
    worker["spec"]["template"]["spec"]["containers"][0]["lifecycle"] =
        json!({"preStop": {"sleep": {"seconds": 30}}});
    let (code, report, stderr) = rollout(&docs, &[]);
    assert_eq!(code, 0, "{stderr}");
    let old = workload_report(&report, "Deployment", "statuspage-worker")["running"].clone();
    assert_eq!(old.as_array().unwrap().len(), 1, "{old}");

    // Another image (the scheduler's, run as the worker role): another digest.
    container(&mut docs, "Deployment", "statuspage-worker")["image"] = json!(images["scheduler"]);
    container(&mut docs, "Deployment", "statuspage-worker")["args"] = json!(["worker"]);
    let (code, report, stderr) = rollout(&docs, &[]);
    assert_eq!(code, 0, "{stderr}");
    let w = workload_report(&report, "Deployment", "statuspage-worker");
    let running = w["running"].as_array().unwrap();
    assert_eq!(running.len(), 1, "old pods listed as running: {w}");
    assert_ne!(running[0], old[0], "{w}");
    assert!(w["terminating"].as_u64().unwrap() >= 1, "the old pods (30 s preStop) are terminating: {w}");
}

#[tokio::test]
async fn issue14_a_changed_migration_template_is_a_new_job_and_a_running_other_one_is_refused() {
    let (images, _cluster) = shared_cluster().await;
    let ns = Namespace(unique("it-rollout-job"));
    let mut docs = render(&ns.0, &images);
    let (code, first, stderr) = rollout(&docs, &[]);
    assert_eq!(code, 0, "{stderr}");

    // Same image tag, another command: before, the same Job name and "field is immutable".
    container(&mut docs, "Job", "statuspage-migrate")["env"] = json!([{"name": "IT_STEP", "value": "2"}]);
    let (code, second, stderr) = rollout(&docs, &[]);
    assert_eq!(code, 0, "{stderr}");
    assert_ne!(second["migration"]["job"], first["migration"]["job"], "{second}");
    assert_eq!(second["migration"]["result"], "complete", "{second}");

    // A migration of another template still running: refused, nothing applied.
    kubectl_apply(&json!({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": "statuspage-migrate-other", "namespace": ns.0,
                     "annotations": {"statuspage.io/role": "migration"}},
        "spec": {"template": {"spec": {"restartPolicy": "Never",
            "imagePullSecrets": [{"name": "registry-credentials"}],
            "containers": [{"name": "sleep", "image": images["web"], "command": ["sleep", "600"],
                            "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}}]}}}
    }));
    container(&mut docs, "Job", "statuspage-migrate")["env"] = json!([{"name": "IT_STEP", "value": "3"}]);
    find(&mut docs, "ConfigMap", "statuspage-settings")["data"]["IT_MARK"] = json!("changed");
    let (code, _, stderr) = rollout(&docs, &[]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("Job/statuspage-migrate-other") && stderr.contains("still running"), "{stderr}");
    let settings = kubectl_json(&["-n", &ns.0, "get", "configmap", "statuspage-settings"]);
    assert_eq!(settings["data"].get("IT_MARK"), None, "configuration applied after a refusal");
}

/// The registry digest the report says `component`'s pods run.
fn running_digest(report: &Value, component: &str) -> String {
    let id = workload_report(report, "Deployment", &format!("statuspage-{component}"))["running"][0]
        .as_str()
        .unwrap()
        .to_string();
    id.rsplit_once('@').map(|(_, d)| d.to_string()).unwrap_or(id)
}

#[tokio::test]
async fn issue14_the_render_must_run_the_release_and_the_report_compares_digests() {
    let (images, _cluster) = shared_cluster().await;
    let ns = Namespace(unique("it-rollout-release"));
    let mut docs = render(&ns.0, &images);
    let (code, report, stderr) = rollout(&docs, &[]);
    assert_eq!(code, 0, "{stderr}");
    let mut release =
        json!({"version": 1, "commit": "0123456789abcdef0123456789abcdef01234567", "images": {}});
    for target in TARGETS {
        let (repository, tag) = images[target].rsplit_once(':').unwrap();
        let digest = running_digest(&report, target);
        release["images"][target] = json!({"repository": repository, "tag": tag, "digest": digest});
        let pinned = format!("{repository}:{tag}@{digest}");
        container(&mut docs, "Deployment", &format!("statuspage-{target}"))["image"] = json!(pinned);
        if target == "web" {
            container(&mut docs, "Job", "statuspage-migrate")["image"] = json!(pinned);
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("release.json");
    std::fs::write(&path, release.to_string()).unwrap();
    let (code, report, stderr) = rollout(&docs, &["--release", path.to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    for check in report["release"].as_array().unwrap() {
        assert_eq!(check["running"], true, "{report}");
    }

    // What a base renaming the image does: every web container runs another repository.
    let renamed = images["web"].replace("demo-web", "renamed-web");
    container(&mut docs, "Deployment", "statuspage-web")["image"] = json!(renamed);
    container(&mut docs, "Job", "statuspage-migrate")["image"] = json!(renamed);
    find(&mut docs, "ConfigMap", "statuspage-settings")["data"]["IT_MARK"] = json!("changed");
    let (code, _, stderr) = rollout(&docs, &["--release", path.to_str().unwrap()]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("release image web") && stderr.contains("does not run"), "{stderr}");
    let settings = kubectl_json(&["-n", &ns.0, "get", "configmap", "statuspage-settings"]);
    assert_eq!(settings["data"].get("IT_MARK"), None, "configuration applied after a refusal");

    // A stale pin: the right repository at another tag, in one workload.
    container(&mut docs, "Deployment", "statuspage-web")["image"] = json!(images["web"]);
    container(&mut docs, "Job", "statuspage-migrate")["image"] = json!(images["web"]);
    let pinned = workload_report(&report, "Deployment", "statuspage-web")["images"][0].clone();
    container(&mut docs, "Job", "statuspage-migrate")["image"] = pinned;
    let (code, _, stderr) = rollout(&docs, &["--release", path.to_str().unwrap()]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("Deployment/statuspage-web") && stderr.contains("release image web"), "{stderr}");
    let settings = kubectl_json(&["-n", &ns.0, "get", "configmap", "statuspage-settings"]);
    assert_eq!(settings["data"].get("IT_MARK"), None, "configuration applied after a refusal");
}

#[tokio::test]
async fn issue14_a_progress_deadline_left_by_an_earlier_run_does_not_decide_this_one() {
    let (images, _cluster) = shared_cluster().await;
    let ns = Namespace(unique("it-rollout-stale"));
    let mut docs = render(&ns.0, &images);
    let (code, _, stderr) = rollout(&docs, &[]);
    assert_eq!(code, 0, "{stderr}");
    let good = images["worker"].clone();
    let broken = format!("{}:does-not-exist", good.rsplit_once(':').unwrap().0);
    container(&mut docs, "Deployment", "statuspage-worker")["image"] = json!(broken);
    let (code, _, stderr) = rollout(&docs, &["--no-rollback", "--fail-fast-after", "0"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("ProgressDeadlineExceeded"), "{stderr}");

    // Back to the good template: its ReplicaSet exists, so the controller keeps the old
    // ProgressDeadlineExceeded condition until it makes progress. It must not fail this run.
    container(&mut docs, "Deployment", "statuspage-worker")["image"] = json!(good);
    let (code, report, stderr) = rollout(&docs, &["--fail-fast-after", "0"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(workload_report(&report, "Deployment", "statuspage-worker")["result"], "available");
}

#[tokio::test]
async fn issue14_an_hpa_and_replicas_on_one_deployment_are_refused_and_a_dropped_replicas_keeps_the_count() {
    let (images, _cluster) = shared_cluster().await;
    let ns = Namespace(unique("it-rollout-hpa"));
    let mut docs = render(&ns.0, &images);
    find(&mut docs, "Deployment", "statuspage-worker")["spec"]["replicas"] = json!(2);
    let (code, _, stderr) = rollout(&docs, &[]);
    assert_eq!(code, 0, "{stderr}");

    // The worker leaves replicas to an autoscaler from now on: the live count must stay at 2.
    find(&mut docs, "Deployment", "statuspage-worker")["spec"].as_object_mut().unwrap().remove("replicas");
    let (code, _, stderr) = rollout(&docs, &[]);
    assert_eq!(code, 0, "{stderr}");
    let live = kubectl_json(&["-n", &ns.0, "get", "deployment", "statuspage-worker"]);
    assert_eq!(live["spec"]["replicas"], 2, "dropping replicas from the render scaled the worker down");

    let web = find(&mut docs, "Deployment", "statuspage-web");
    web["spec"]["replicas"] = json!(2);
    let (code, _, stderr) = rollout(&docs, &[]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("Deployment/statuspage-web") && stderr.contains("HorizontalPodAutoscaler/"),
        "{stderr}"
    );
}

#[tokio::test]
async fn issue13_a_rollback_restores_the_configuration_the_pods_read() {
    let (images, _cluster) = shared_cluster().await;
    let ns = Namespace(unique("it-rollout-config"));
    let mut docs = render(&ns.0, &images);
    find(&mut docs, "ConfigMap", "statuspage-settings")["data"]["IT_SETTING"] = json!("old");
    let (code, _, stderr) = rollout(&docs, &[]);
    assert_eq!(code, 0, "{stderr}");

    find(&mut docs, "ConfigMap", "statuspage-settings")["data"]["IT_SETTING"] = json!("new");
    find(&mut docs, "ConfigMap", "statuspage-settings")["data"]["IT_ADDED"] = json!("x");
    container(&mut docs, "Deployment", "statuspage-web")["args"] = json!(["crash"]);
    let (code, report, stderr) = rollout(&docs, &["--fail-fast-after", "5s"]);
    assert_eq!(code, 4, "{stderr}");
    let settings =
        report["objects"].as_array().unwrap().iter().find(|o| o["name"] == "statuspage-settings").unwrap();
    assert_eq!(settings["action"], "restored", "{report}");
    let live = kubectl_json(&["-n", &ns.0, "get", "configmap", "statuspage-settings"]);
    assert_eq!(live["data"]["IT_SETTING"], "old", "{live}");
    assert_eq!(live["data"].get("IT_ADDED"), None, "{live}");

    // A rolled-back pod that starts now reads the old value.
    let (ok, _, err) =
        kubectl(&["-n", &ns.0, "delete", "pod", "-l", "app.kubernetes.io/component=web", "--wait=true"]);
    assert!(ok, "{err}");
    let (ok, _, err) =
        kubectl(&["-n", &ns.0, "rollout", "status", "deployment/statuspage-web", "--timeout=90s"]);
    assert!(ok, "{err}");
    let (ok, out, err) = kubectl(&[
        "-n",
        &ns.0,
        "exec",
        "deployment/statuspage-web",
        "--",
        "sh",
        "-c",
        "echo \"$IT_SETTING\"",
    ]);
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "old");
}

/// Start the binary on `docs`; returns the child and a receiver of its stderr lines.
fn spawn_rollout(
    docs: &[Value],
    extra: &[&str],
) -> (std::process::Child, std::sync::mpsc::Receiver<String>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("manifests.yaml");
    let text: Vec<String> = docs.iter().map(|d| serde_json::to_string(d).unwrap()).collect();
    std::fs::write(&path, text.join("\n---\n")).unwrap();
    let mut command = Command::new(statuspage_integration_tests::binary("statuspage-rollout"));
    command
        .args(["--manifests", path.to_str().unwrap(), "--timeout", "90s"])
        .args(extra)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    for (key, _) in std::env::vars() {
        if key.starts_with("GITHUB_") || key.starts_with("STATUSPAGE_") {
            command.env_remove(key);
        }
    }
    let mut child = command.spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead as _;
        for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (child, rx, dir)
}

/// Read stderr lines until one contains `needle`; all lines read so far.
fn read_until(rx: &std::sync::mpsc::Receiver<String>, needle: &str) -> String {
    let mut seen = String::new();
    while let Ok(line) = rx.recv_timeout(std::time::Duration::from_secs(120)) {
        seen.push_str(&line);
        seen.push('\n');
        if line.contains(needle) {
            return seen;
        }
    }
    panic!("never printed {needle:?}:\n{seen}");
}

fn finish_child(
    mut child: std::process::Child,
    rx: std::sync::mpsc::Receiver<String>,
    mut seen: String,
) -> (i32, Value, String) {
    use std::io::Read as _;
    let mut stdout = String::new();
    child.stdout.take().unwrap().read_to_string(&mut stdout).unwrap();
    let status = child.wait().unwrap();
    seen.extend(rx.iter().map(|l| l + "\n"));
    (status.code().unwrap_or(-1), serde_json::from_str(&stdout).unwrap_or(Value::Null), seen)
}

fn lease_exists(namespace: &str) -> bool {
    kubectl(&["-n", namespace, "get", "lease", "statuspage-rollout"]).0
}

#[tokio::test]
async fn issue13_sigint_then_sigterm_during_the_wait_reports_releases_the_lease_and_a_rerun_converges() {
    let (images, _cluster) = shared_cluster().await;
    let ns = Namespace(unique("it-rollout-signal"));
    let mut docs = render(&ns.0, &images);
    let (code, _, stderr) = rollout(&docs, &[]);
    assert_eq!(code, 0, "{stderr}");

    // A rollout that would wait long: the new worker never becomes ready.
    let worker = find(&mut docs, "Deployment", "statuspage-worker");
    worker["spec"]["progressDeadlineSeconds"] = json!(600);
    worker["spec"]["template"]["spec"]["containers"][0]["readinessProbe"] =
        json!({"exec": {"command": ["false"]}, "periodSeconds": 1});
    let (child, rx, _dir) = spawn_rollout(&docs, &["--fail-fast-after", "0"]);
    let seen = read_until(&rx, "wait for");
    assert!(lease_exists(&ns.0), "no Lease while rolling out");
    let pid = child.id().to_string();
    assert!(Command::new("kill").args(["-INT", &pid]).status().unwrap().success());
    std::thread::sleep(std::time::Duration::from_millis(300));
    let _ = Command::new("kill").args(["-TERM", &pid]).status();
    let (code, report, stderr) = finish_child(child, rx, seen);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("SIGINT"), "{stderr}");
    assert_eq!(report["result"], "stopped", "no report: {stderr}");
    assert!(!lease_exists(&ns.0), "the Lease was left held");

    // The next run converges (here: to a render that can become ready).
    find(&mut docs, "Deployment", "statuspage-worker")["spec"]["template"]["spec"]["containers"][0]
        .as_object_mut()
        .unwrap()
        .remove("readinessProbe");
    let (code, report, stderr) = rollout(&docs, &[]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(report["result"], "deployed");
}

#[tokio::test]
async fn issue14_a_renewal_that_finds_another_holder_stops_with_exit_3() {
    let (images, _cluster) = shared_cluster().await;
    let ns = Namespace(unique("it-rollout-renew"));
    let mut docs = render(&ns.0, &images);
    let (code, _, stderr) = rollout(&docs, &[]);
    assert_eq!(code, 0, "{stderr}");
    let worker = find(&mut docs, "Deployment", "statuspage-worker");
    worker["spec"]["progressDeadlineSeconds"] = json!(600);
    worker["spec"]["template"]["spec"]["containers"][0]["readinessProbe"] =
        json!({"exec": {"command": ["false"]}, "periodSeconds": 1});
    let (child, rx, _dir) = spawn_rollout(&docs, &["--fail-fast-after", "0"]);
    let seen = read_until(&rx, "wait for");
    let lease = kubectl_json(&["-n", &ns.0, "get", "lease", "statuspage-rollout"]);
    assert!(lease["spec"]["leaseDurationSeconds"].as_i64().unwrap() <= 60, "a long Lease: {lease}");

    // Someone took the Lease over (as if ours had expired).
    let now = lease["spec"]["renewTime"].as_str().unwrap().to_string();
    put_lease(&ns.0, "ci-runner/77 (org/statuspage run 9)", &now);
    let (code, report, stderr) = finish_child(child, rx, seen);
    assert_eq!(code, 3, "{stderr}");
    assert!(stderr.contains("ci-runner/77"), "{stderr}");
    assert_eq!(report["result"], "stopped", "{report}");
    assert_eq!(
        kubectl_json(&["-n", &ns.0, "get", "lease", "statuspage-rollout"])["spec"]["holderIdentity"],
        "ci-runner/77 (org/statuspage run 9)",
        "the new holder's Lease was touched"
    );
}

/// Stop the stack's kube-apiserver (as tests/stack/lib.sh's stack_stop does) and start it again
/// with exactly the same command line, log file and pid file; wait until it is ready.
fn restart_apiserver() {
    let stack_dir = std::env::var("STATUSPAGE_STACK_DIR").unwrap_or_else(|_| "/tmp/statuspage-stack".into());
    let pid_file = format!("{stack_dir}/pids/kube-apiserver.pid");
    let pid = std::fs::read_to_string(&pid_file).expect("kube-apiserver's pid file").trim().to_string();
    let argv: Vec<String> = std::fs::read(format!("/proc/{pid}/cmdline"))
        .expect("kube-apiserver's command line")
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    assert!(argv[0].ends_with("kube-apiserver"), "{argv:?}");
    let stopped = Command::new("kill").args(["-TERM", "--", &format!("-{pid}")]).status().unwrap();
    assert!(stopped.success(), "could not stop kube-apiserver {pid}");
    for _ in 0..200 {
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    // Started the way stack_start does (setsid, appending to its log), through a shell that
    // returns at once: the API server outlives this test, its pid file owns it.
    let log = format!("{stack_dir}/logs/kube-apiserver.log");
    let started = Command::new("sh")
        .args(["-c", "setsid \"$@\" >>\"$LOG\" 2>&1 </dev/null & echo $!", "sh"])
        .args(&argv)
        .env("LOG", &log)
        .output()
        .unwrap();
    assert!(started.status.success(), "{}", String::from_utf8_lossy(&started.stderr));
    std::fs::write(&pid_file, &started.stdout).unwrap();
    for _ in 0..300 {
        if kubectl(&["get", "--raw", "/readyz"]).0 {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    panic!("kube-apiserver did not come back within 60 s");
}

#[tokio::test]
async fn issue14_an_apiserver_restart_during_the_wait_is_resumed_and_the_rollout_completes() {
    let (images, _cluster) = exclusive_cluster().await;
    let ns = Namespace(unique("it-rollout-restart"));
    let mut docs = render(&ns.0, &images);
    let (code, _, stderr) = rollout(&docs, &[]);
    assert_eq!(code, 0, "{stderr}");

    // The new worker becomes ready only after 20 s: the restart happens during the wait.
    let worker = container(&mut docs, "Deployment", "statuspage-worker");
    worker["readinessProbe"] = json!({"httpGet": {"path": "/-/readyz", "port": 9100}, "initialDelaySeconds": 20, "periodSeconds": 1});
    // The 20 s of readiness and the restart's pause (the scheduler and controllers reconnect too)
    // must not be judged as a stalled rollout.
    find(&mut docs, "Deployment", "statuspage-worker")["spec"]["progressDeadlineSeconds"] = json!(600);
    let (child, rx, _dir) = spawn_rollout(&docs, &[]);
    let seen = read_until(&rx, "wait for");
    restart_apiserver();
    let (code, report, stderr) = finish_child(child, rx, seen);
    assert_eq!(code, 0, "{stderr}");
    // The worker's new pod cannot be ready before 20 s, and the restart began once the wait
    // had: the result was decided on watches resumed after the restart.
    assert_eq!(
        workload_report(&report, "Deployment", "statuspage-worker")["result"],
        "available",
        "{report}"
    );
    assert!(!lease_exists(&ns.0), "the Lease was not given back");
}

#[tokio::test]
async fn issue14_what_kubectl_apply_made_is_adopted_and_fields_the_render_drops_are_removed() {
    let (images, _cluster) = shared_cluster().await;
    let ns = Namespace(unique("it-rollout-adopt"));
    let docs = render(&ns.0, &images);

    // The user's past: `kubectl apply` (client-side) of a render with one more ConfigMap key and
    // one more env entry.
    let mut theirs = docs.clone();
    theirs.retain(|d| d["kind"] != "Job");
    find(&mut theirs, "ConfigMap", "statuspage-settings")["data"]["IT_OLD_KEY"] = json!("x");
    container(&mut theirs, "Deployment", "statuspage-worker")["env"] =
        json!([{"name": "IT_OLD_ENV", "value": "1"}]);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("theirs.yaml");
    let text: Vec<String> = theirs.iter().map(|d| serde_json::to_string(d).unwrap()).collect();
    std::fs::write(&path, text.join("\n---\n")).unwrap();
    let (ok, _, err) = kubectl(&["apply", "-f", path.to_str().unwrap()]);
    assert!(ok, "{err}");

    let (code, report, stderr) = rollout(&docs, &["--dry-run"]);
    assert_eq!(code, 0, "{stderr}");
    let settings =
        report["objects"].as_array().unwrap().iter().find(|o| o["name"] == "statuspage-settings").unwrap();
    assert_eq!(settings["adopted_from"], "kubectl-client-side-apply", "{report}");

    let (code, _, stderr) = rollout(&docs, &[]);
    assert_eq!(code, 0, "{stderr}");
    let live = kubectl_json(&["-n", &ns.0, "get", "configmap", "statuspage-settings"]);
    assert_eq!(live["data"].get("IT_OLD_KEY"), None, "a key the render dropped stayed: {live}");
    let worker = kubectl_json(&["-n", &ns.0, "get", "deployment", "statuspage-worker"]);
    assert_eq!(
        worker["spec"]["template"]["spec"]["containers"][0].get("env"),
        None,
        "an env entry the render dropped stayed: {worker}"
    );
}

#[tokio::test]
async fn issue14_the_dry_run_shows_each_change_as_a_diff_with_secret_values_masked() {
    let (images, _cluster) = shared_cluster().await;
    let ns = Namespace(unique("it-rollout-diff"));
    let mut docs = render(&ns.0, &images);
    find(&mut docs, "ConfigMap", "statuspage-settings")["data"]["IT_SETTING"] = json!("before");
    let (code, _, stderr) = rollout(&docs, &[]);
    assert_eq!(code, 0, "{stderr}");

    find(&mut docs, "ConfigMap", "statuspage-settings")["data"]["IT_SETTING"] = json!("after");
    let secret = "it-new-password-4711";
    find(&mut docs, "Secret", "statuspage-secrets")["stringData"]["DATABASE_PASSWORD"] = json!(secret);
    let (code, report, stderr) = rollout(&docs, &["--dry-run"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("diff ConfigMap/statuspage-settings"), "{stderr}");
    assert!(stderr.contains("-  IT_SETTING: before") && stderr.contains("+  IT_SETTING: after"), "{stderr}");
    assert!(stderr.contains("DATABASE_PASSWORD: '*** (changed)'"), "{stderr}");
    let encoded = base64::engine::general_purpose::STANDARD.encode(secret);
    assert!(!stderr.contains(secret) && !stderr.contains(&encoded), "a Secret value was printed");
    assert!(!stderr.contains("managedFields") && !stderr.contains("resourceVersion"), "{stderr}");
    assert_eq!(report["result"], "dry-run");
}

#[tokio::test]
async fn issue14_prune_follows_the_applyset_inventory_for_every_kind() {
    let (images, _cluster) = shared_cluster().await;
    let ns = Namespace(unique("it-rollout-applyset"));
    let mut docs = render(&ns.0, &images);
    let extra = [
        json!({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "it-cron", "namespace": ns.0},
               "spec": {"schedule": "0 0 1 1 *", "suspend": true, "jobTemplate": {"spec": {"template": {"spec": {
                   "restartPolicy": "Never", "containers": [{"name": "c", "image": images["worker"]}]}}}}}}),
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "it-extra", "namespace": ns.0},
               "stringData": {"a": "b"}}),
    ];
    docs.extend(extra.iter().cloned());
    let (code, _, stderr) = rollout(&docs, &[]);
    assert_eq!(code, 0, "{stderr}");
    let parent = kubectl_json(&["-n", &ns.0, "get", "configmap", "statuspage-applyset"]);
    let id = parent["metadata"]["labels"]["applyset.kubernetes.io/id"].as_str().unwrap().to_string();
    let kinds =
        parent["metadata"]["annotations"]["applyset.kubernetes.io/contains-group-kinds"].as_str().unwrap();
    assert!(
        kinds.contains("CronJob.batch") && kinds.contains("Secret") && kinds.contains("Deployment.apps"),
        "{kinds}"
    );
    let cron = kubectl_json(&["-n", &ns.0, "get", "cronjob", "it-cron"]);
    assert_eq!(cron["metadata"]["labels"]["applyset.kubernetes.io/part-of"], json!(id));

    // Both leave the render (no label selector of the release on them): pruned from the inventory.
    docs.retain(|d| d["metadata"]["name"] != "it-cron" && d["metadata"]["name"] != "it-extra");
    let (code, report, stderr) = rollout(&docs, &["--dry-run"]);
    assert_eq!(code, 0, "{stderr}");
    let planned: Vec<&Value> =
        report["objects"].as_array().unwrap().iter().filter(|o| o["action"] == "would prune").collect();
    assert_eq!(planned.len(), 2, "{report}");
    let (code, _, stderr) = rollout(&docs, &[]);
    assert_eq!(code, 0, "{stderr}");
    assert!(!kubectl(&["-n", &ns.0, "get", "cronjob", "it-cron"]).0, "the CronJob is still there");
    assert!(!kubectl(&["-n", &ns.0, "get", "secret", "it-extra"]).0, "the Secret is still there");
    assert!(
        kubectl(&["-n", &ns.0, "get", "secret", "statuspage-secrets"]).0,
        "a Secret of the render was pruned"
    );
}

#[tokio::test]
async fn a_replica_failure_that_lasts_fails_fast_and_is_rolled_back() {
    let (images, _cluster) = shared_cluster().await;
    let ns = Namespace(unique("it-rollout-refused"));
    let mut docs = render(&ns.0, &images);
    let (code, _, stderr) = rollout(&docs, &[]);
    assert_eq!(code, 0, "{stderr}");

    // The namespace's Pod Security level (restricted) refuses the new pods; the Deployment
    // itself is admitted (Pod Security only warns on it), so only the ReplicaSet finds out.
    let web = find(&mut docs, "Deployment", "statuspage-web");
    web["spec"]["progressDeadlineSeconds"] = json!(600);
    web["spec"]["template"]["spec"]["containers"][0]["securityContext"]["allowPrivilegeEscalation"] =
        json!(true);
    let (code, report, stderr) = rollout(&docs, &["--fail-fast-after", "5s"]);
    assert_eq!(code, 4, "{stderr}");
    assert!(stderr.contains("ReplicaFailure FailedCreate"), "{stderr}");
    assert!(stderr.contains("violates PodSecurity") && stderr.contains("failing fast"), "{stderr}");
    assert_eq!(report["result"], "rolled-back", "{report}");
}

#[tokio::test]
async fn a_replica_failure_that_clears_within_the_fail_fast_window_is_waited_out() {
    let (images, _cluster) = shared_cluster().await;
    let ns = Namespace(unique("it-rollout-quota"));
    let mut docs = render(&ns.0, &images);
    let (code, _, stderr) = rollout(&docs, &[]);
    assert_eq!(code, 0, "{stderr}");

    // A pod quota at today's count: web's surge pod is refused (ReplicaFailure) until it is
    // raised, as after an API server restart whose authorizer has not synced yet.
    let quota = |pods: u32| {
        json!({"apiVersion": "v1", "kind": "ResourceQuota",
               "metadata": {"name": "pods", "namespace": ns.0}, "spec": {"hard": {"pods": pods.to_string()}}})
    };
    let running =
        kubectl_json(&["-n", &ns.0, "get", "pods", "--field-selector=status.phase=Running"])["items"]
            .as_array()
            .map_or(0, Vec::len);
    kubectl_apply(&quota(u32::try_from(running).unwrap()));
    for _ in 0..100 {
        let status = kubectl_json(&["-n", &ns.0, "get", "resourcequota", "pods"]);
        if status["status"]["used"]["pods"].is_string() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let web = find(&mut docs, "Deployment", "statuspage-web");
    web["spec"]["progressDeadlineSeconds"] = json!(600);
    web["spec"]["template"]["metadata"]["annotations"]["example.com/restarted"] = json!("1");
    let (child, rx, _dir) = spawn_rollout(&docs, &["--fail-fast-after", "60s"]);
    let seen = read_until(&rx, "ReplicaFailure");
    kubectl_apply(&quota(20));
    let (code, report, stderr) = finish_child(child, rx, seen);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("exceeded quota"), "{stderr}");
    assert_eq!(workload_report(&report, "Deployment", "statuspage-web")["result"], "available", "{report}");
}

/// A cluster-scoped object a test made, deleted when the test ends (also on failure).
struct ClusterScoped(&'static str, String);

impl Drop for ClusterScoped {
    fn drop(&mut self) {
        let _ = Command::new("kubectl").args(["delete", self.0, &self.1, "--ignore-not-found"]).output();
    }
}

/// The API refusing a workload's write after validation passed (an admission policy that lets the
/// server-side dry run through and refuses the real write of `statuspage-worker`, applied after
/// scheduler and web): the workloads already applied and the configuration are put back, the
/// report is printed, exit 3. Before, only the configuration was restored while the message said
/// "what this run changed was rolled back".
#[tokio::test]
async fn issue14_an_api_failure_after_workloads_were_applied_puts_them_back_with_exit_3() {
    let (images, _cluster) = shared_cluster().await;
    let ns = Namespace(unique("it-rollout-apifail"));
    let mut docs = render(&ns.0, &images);
    let (code, _, stderr) = rollout(&docs, &[]);
    assert_eq!(code, 0, "{stderr}");

    let policy = ClusterScoped("validatingadmissionpolicy", ns.0.clone());
    let binding = ClusterScoped("validatingadmissionpolicybinding", ns.0.clone());
    kubectl_apply(&json!({
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": policy.1},
        "spec": {
            "failurePolicy": "Fail",
            "matchConstraints": {"resourceRules": [{"apiGroups": ["apps"], "apiVersions": ["v1"],
                "operations": ["UPDATE"], "resources": ["deployments"]}]},
            "validations": [{"expression": "request.dryRun == true || object.metadata.name != 'statuspage-worker'",
                "message": "refused by the test's admission policy"}],
        },
    }));
    kubectl_apply(&json!({
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": binding.1},
        "spec": {"policyName": policy.1, "validationActions": ["Deny"],
            "matchResources": {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": ns.0}}}},
    }));
    // The API server loads a new policy within a few seconds: wait until it refuses a real write.
    let mut refused = false;
    for attempt in 0..60 {
        let value = format!("it.statuspage.io/probe={attempt}");
        let (ok, _, err) =
            kubectl(&["-n", &ns.0, "annotate", "--overwrite", "deployment/statuspage-worker", &value]);
        if !ok && err.contains("refused by the test's admission policy") {
            refused = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    assert!(refused, "the admission policy never took effect");

    for name in ["statuspage-scheduler", "statuspage-web", "statuspage-worker"] {
        find(&mut docs, "Deployment", name)["spec"]["template"]["metadata"]["annotations"]["it.statuspage.io/change"] =
            json!("2");
    }
    let (code, report, stderr) = rollout(&docs, &[]);
    assert_eq!(code, 3, "{stderr}");
    assert!(stderr.contains("refused by the test's admission policy"), "{stderr}");
    assert!(
        stderr.contains(
            "put back as before this run: Deployment/statuspage-scheduler, Deployment/statuspage-web"
        ),
        "{stderr}"
    );
    assert_eq!(report["result"], "failed", "the report is printed: {report}");
    let action = |name: &str| {
        report["objects"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["kind"] == "Deployment" && o["name"] == name)
            .unwrap()["action"]
            .clone()
    };
    assert_eq!(
        [action("statuspage-scheduler"), action("statuspage-web"), action("statuspage-worker")],
        [json!("restored"), json!("restored"), json!("pending")],
        "{report}"
    );
    for live in deployments(&ns.0) {
        let annotations = &live["spec"]["template"]["metadata"]["annotations"];
        assert!(
            annotations.get("it.statuspage.io/change").is_none(),
            "{} kept this run's template",
            live["metadata"]["name"]
        );
    }
}
