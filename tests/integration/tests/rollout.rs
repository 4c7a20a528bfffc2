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
    report["deployments"].as_array().unwrap().iter().find(|d| d["name"] == name).unwrap()
}

// ------------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_good_rollout_completes_and_a_second_one_changes_nothing() {
    let images = demo_images().await;
    let ns = Namespace(unique("it-rollout-good"));
    let docs = render(&ns.0, &images);

    let (code, report, stderr) = rollout(&docs, &["--dry-run"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(report["result"], "dry-run");
    assert!(report["objects"].as_array().unwrap().iter().any(|o| o["action"] == "would create"), "{report}");
    assert!(deployments(&ns.0).is_empty(), "the dry run created Deployments");

    let started = std::time::Instant::now();
    let (code, report, stderr) = rollout(&docs, &[]);
    eprintln!("rollout of the demo app: {:.1}s", started.elapsed().as_secs_f64());
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(report["result"], "deployed", "{report}");
    assert_eq!(report["migration"]["result"], "complete", "{report}");
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
    let images = demo_images().await;
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
    let images = demo_images().await;
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
    let images = demo_images().await;
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
    let images = demo_images().await;
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
    let images = demo_images().await;
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
    let images = demo_images().await;
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
    let images = demo_images().await;
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
