//! The local stack's Kubernetes cluster (tests/stack/cluster.sh): a real control plane and a real
//! node (kubelet + containerd + CNI bridge + kube-proxy), pulling from the stack registry over TLS.
//!
//! These tests show the signals a rollout relies on, as a real cluster produces them: a rollout that
//! completes and serves through its Service's ClusterIP, CrashLoopBackOff, ErrImagePull /
//! ImagePullBackOff, ProgressDeadlineExceeded, Job Complete / Failed, and PodSecurity rejection.
//!
//! They need the stack (`tests/stack/up.sh`) and its env file in the environment.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::future::Future;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail, ensure};
use base64::Engine as _;
use bollard::Docker;
use bollard::auth::DockerCredentials;
use bollard::query_parameters::{BuildImageOptions, PushImageOptions};
use futures_util::StreamExt as _;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Namespace, Pod, Secret, Service};
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::{Api, Client};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::sync::OnceCell;

const FIXTURE_REPO: &str = "statuspage-it/cluster-fixture";
const FIXTURE_TAG: &str = "busybox-httpd-1";
const FIXTURE_MARKER: &str = "statuspage cluster fixture";
const PULL_SECRET: &str = "stack-registry";

/// What the stack's env file provides.
#[derive(Clone)]
struct StackEnv {
    registry: String,
    user: String,
    password: String,
}

fn stack_env() -> Result<StackEnv> {
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    match (var("KUBECONFIG"), var("STACK_REGISTRY"), var("STACK_REGISTRY_PASSWORD")) {
        (Some(kubeconfig), Some(registry), Some(password)) if std::path::Path::new(&kubeconfig).is_file() => {
            Ok(StackEnv {
                registry,
                user: var("STACK_REGISTRY_USER").unwrap_or_else(|| "AWS".into()),
                password,
            })
        }
        _ => bail!(
            "stack not running: run tests/stack/up.sh (KUBECONFIG, STACK_REGISTRY and \
             STACK_REGISTRY_PASSWORD must come from the stack's env file)"
        ),
    }
}

async fn client() -> Result<Client> {
    Client::try_default()
        .await
        .context("kube client from KUBECONFIG (stack not running: run tests/stack/up.sh?)")
}

// ------------------------------------------------------------------------------------------------
// Fixture image: FROM scratch with the static busybox, built by the stack's docker engine and
// pushed to the stack registry once per test binary.
// ------------------------------------------------------------------------------------------------

static FIXTURE: OnceCell<String> = OnceCell::const_new();

async fn fixture_image(env: &StackEnv) -> Result<String> {
    FIXTURE.get_or_try_init(|| build_and_push_fixture(env.clone())).await.cloned()
}

fn context_tar() -> Result<Vec<u8>> {
    let dockerfile = "FROM scratch\n\
        COPY busybox /bin/busybox\n\
        COPY www /www\n\
        USER 65534:65534\n\
        EXPOSE 8080\n\
        ENTRYPOINT [\"/bin/busybox\"]\n\
        CMD [\"httpd\", \"-f\", \"-p\", \"8080\", \"-h\", \"/www\"]\n";
    let busybox = std::fs::read("/bin/busybox").context("reading /bin/busybox (Debian busybox-static)")?;
    let index = format!("<html><body>{FIXTURE_MARKER}</body></html>\n");
    let mut tar = tar::Builder::new(Vec::new());
    for (path, mode, data) in [
        ("Dockerfile", 0o644, dockerfile.as_bytes()),
        ("busybox", 0o755, busybox.as_slice()),
        ("www/index.html", 0o644, index.as_bytes()),
    ] {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(mode);
        header.set_mtime(0);
        header.set_cksum();
        tar.append_data(&mut header, path, data)?;
    }
    Ok(tar.into_inner()?)
}

async fn build_and_push_fixture(env: StackEnv) -> Result<String> {
    let docker = Docker::connect_with_defaults().context("docker client from DOCKER_HOST")?;
    let repo = format!("{}/{FIXTURE_REPO}", env.registry);
    let image = format!("{repo}:{FIXTURE_TAG}");
    let options = BuildImageOptions { t: Some(image.clone()), rm: true, ..Default::default() };
    let mut build = docker.build_image(options, None, Some(bollard::body_full(context_tar()?.into())));
    while let Some(info) = build.next().await {
        let info = info.context("docker build of the fixture image")?;
        if let Some(err) = info.error_detail {
            bail!("docker build of the fixture image: {err:?}");
        }
    }
    let credentials = DockerCredentials {
        username: Some(env.user.clone()),
        password: Some(env.password.clone()),
        serveraddress: Some(env.registry.clone()),
        ..Default::default()
    };
    let mut push = docker.push_image(
        &repo,
        Some(PushImageOptions { tag: Some(FIXTURE_TAG.into()), ..Default::default() }),
        Some(credentials),
    );
    while let Some(info) = push.next().await {
        let info = info.with_context(|| format!("docker push {image}"))?;
        if let Some(err) = info.error_detail {
            bail!("docker push {image}: {err:?}");
        }
    }
    Ok(image)
}

// ------------------------------------------------------------------------------------------------
// Namespaces, objects, polling.
// ------------------------------------------------------------------------------------------------

/// A fresh namespace (PodSecurity `restricted` enforced) holding the registry pull secret.
async fn namespace(client: &Client, env: &StackEnv, prefix: &str) -> Result<String> {
    let name = format!("it-{prefix}-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let ns: Namespace = serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {
            "pod-security.kubernetes.io/enforce": "restricted",
            "pod-security.kubernetes.io/enforce-version": "latest",
            "app.kubernetes.io/part-of": "statuspage-integration-tests",
        }}
    }))?;
    Api::<Namespace>::all(client.clone()).create(&PostParams::default(), &ns).await?;
    // The way EKS-style pods get registry credentials without node-level ECR access.
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", env.user, env.password));
    let config = json!({"auths": {env.registry.clone(): {"username": env.user, "password": env.password, "auth": auth}}});
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": PULL_SECRET},
        "type": "kubernetes.io/dockerconfigjson",
        "stringData": {".dockerconfigjson": config.to_string()},
    }))?;
    Api::<Secret>::namespaced(client.clone(), &name).create(&PostParams::default(), &secret).await?;
    Ok(name)
}

async fn delete_namespace(client: &Client, name: &str) {
    let _ = Api::<Namespace>::all(client.clone()).delete(name, &DeleteParams::background()).await;
}

/// A container that PodSecurity `restricted` admits.
fn container(name: &str, image: &str, args: &[&str]) -> Value {
    let mut c = json!({
        "name": name,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "securityContext": {
            "allowPrivilegeEscalation": false,
            "capabilities": {"drop": ["ALL"]},
            "runAsNonRoot": true,
            "runAsUser": 65534,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"memory": "64Mi"}},
    });
    if !args.is_empty() {
        c["args"] = json!(args);
    }
    c
}

fn pod_spec(containers: Vec<Value>, restart_policy: &str) -> Value {
    json!({
        "containers": containers,
        "restartPolicy": restart_policy,
        "imagePullSecrets": [{"name": PULL_SECRET}],
        "terminationGracePeriodSeconds": 2,
        "enableServiceLinks": false,
    })
}

fn deployment(
    name: &str,
    replicas: i32,
    container: Value,
    progress_deadline: Option<i32>,
) -> Result<Deployment> {
    let mut d = json!({
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": pod_spec(vec![container], "Always"),
            },
        },
    });
    if let Some(secs) = progress_deadline {
        d["spec"]["progressDeadlineSeconds"] = json!(secs);
    }
    Ok(serde_json::from_value(d)?)
}

/// Polls `check` every second until it returns `Some`, or fails with the last observed state.
async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(Option<T>, String)>>,
{
    let start = Instant::now();
    let mut last: String;
    loop {
        match check().await {
            Ok((Some(v), _)) => return Ok(v),
            Ok((None, state)) => last = state,
            Err(e) => last = format!("error: {e:#}"),
        }
        if start.elapsed() > timeout {
            bail!("{what}: not reached within {timeout:?}; last state: {last}");
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

fn condition<'a>(
    conds: &'a Option<Vec<k8s_openapi::api::apps::v1::DeploymentCondition>>,
    ty: &str,
) -> Option<&'a k8s_openapi::api::apps::v1::DeploymentCondition> {
    conds.as_ref()?.iter().find(|c| c.type_ == ty)
}

/// Waiting reasons of the first container of every pod matching `selector`.
async fn waiting_reasons(pods: &Api<Pod>, selector: &str) -> Result<Vec<(String, Option<String>, i32)>> {
    let list = pods.list(&ListParams::default().labels(selector)).await?;
    Ok(list
        .items
        .iter()
        .flat_map(|p| p.status.as_ref().and_then(|s| s.container_statuses.clone()).unwrap_or_default())
        .map(|cs| {
            let waiting = cs.state.as_ref().and_then(|s| s.waiting.as_ref());
            (
                waiting.and_then(|w| w.reason.clone()).unwrap_or_else(|| "-".into()),
                waiting.and_then(|w| w.message.clone()),
                cs.restart_count,
            )
        })
        .collect())
}

/// HTTP GET from the host; returns the whole response.
async fn http_get(addr: &str) -> Result<String> {
    let mut stream = tokio::time::timeout(Duration::from_secs(3), tokio::net::TcpStream::connect(addr))
        .await
        .map_err(|_| anyhow!("connect {addr}: timed out"))??;
    stream.write_all(b"GET / HTTP/1.0\r\nHost: fixture\r\n\r\n").await?;
    let mut body = String::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_string(&mut body))
        .await
        .map_err(|_| anyhow!("read from {addr}: timed out"))??;
    Ok(body)
}

// ------------------------------------------------------------------------------------------------
// Tests.
// ------------------------------------------------------------------------------------------------

#[tokio::test]
async fn real_node_rolls_out_deployment_and_serves_through_cluster_ip() -> Result<()> {
    let env = stack_env()?;
    let client = client().await?;
    let image = fixture_image(&env).await?;
    let ns = namespace(&client, &env, "rollout").await?;
    let deployments = Api::<Deployment>::namespaced(client.clone(), &ns);
    let services = Api::<Service>::namespaced(client.clone(), &ns);

    let mut web = container("web", &image, &[]);
    web["ports"] = json!([{"name": "http", "containerPort": 8080}]);
    web["readinessProbe"] =
        json!({"httpGet": {"path": "/", "port": 8080}, "periodSeconds": 1, "failureThreshold": 1});
    deployments.create(&PostParams::default(), &deployment("web", 3, web, Some(120))?).await?;
    let svc: Service = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]},
    }))?;
    let svc = services.create(&PostParams::default(), &svc).await?;
    let cluster_ip = svc.spec.and_then(|s| s.cluster_ip).context("service has no clusterIP")?;

    // Rollout complete, the way `kubectl rollout status` decides it.
    let deps = &deployments;
    wait_for("deployment web rolled out", Duration::from_secs(180), move || async move {
        let deployments = deps;
        let d = deployments.get("web").await?;
        let generation = d.metadata.generation.unwrap_or_default();
        let st = d.status.clone().unwrap_or_default();
        let progressing = condition(&st.conditions, "Progressing").and_then(|c| c.reason.clone());
        let done = st.observed_generation.unwrap_or_default() >= generation
            && st.updated_replicas == Some(3)
            && st.ready_replicas == Some(3)
            && st.available_replicas == Some(3)
            && st.replicas == Some(3)
            && progressing.as_deref() == Some("NewReplicaSetAvailable");
        Ok((done.then_some(()), format!("{st:?}")))
    })
    .await?;

    // The pods run on the real node.
    let pods =
        Api::<Pod>::namespaced(client.clone(), &ns).list(&ListParams::default().labels("app=web")).await?;
    ensure!(pods.items.len() == 3, "expected 3 pods, got {}", pods.items.len());
    let node = std::env::var("STACK_KUBERNETES_NODE").unwrap_or_else(|_| "statuspage-node".into());
    for p in &pods.items {
        let spec = p.spec.as_ref().context("pod spec")?;
        ensure!(spec.node_name.as_deref() == Some(node.as_str()), "pod on {:?}, not {node}", spec.node_name);
        let ip = p.status.as_ref().and_then(|s| s.pod_ip.clone()).context("pod ip")?;
        ensure!(ip.starts_with("10.88."), "pod IP {ip} not on the CNI bridge subnet");
    }

    // curl the ClusterIP from the host (kube-proxy iptables DNAT to the pods).
    let addr = format!("{cluster_ip}:80");
    let a = &addr;
    let body = wait_for("HTTP through the ClusterIP", Duration::from_secs(60), move || async move {
        let body = http_get(a).await?;
        let ok = body.starts_with("HTTP/1.") && body.contains(" 200 ") && body.contains(FIXTURE_MARKER);
        Ok((ok.then(|| body.clone()), body))
    })
    .await?;
    assert!(body.contains(FIXTURE_MARKER));
    // Spread over the replicas: a handful of requests all succeed.
    for _ in 0..10 {
        let body = http_get(&addr).await?;
        ensure!(body.contains(FIXTURE_MARKER), "unexpected response through {addr}: {body}");
    }
    delete_namespace(&client, &ns).await;
    Ok(())
}

#[tokio::test]
async fn real_node_crashing_container_reaches_crash_loop_back_off() -> Result<()> {
    let env = stack_env()?;
    let client = client().await?;
    let image = fixture_image(&env).await?;
    let ns = namespace(&client, &env, "crash").await?;
    let deployments = Api::<Deployment>::namespaced(client.clone(), &ns);
    let pods = Api::<Pod>::namespaced(client.clone(), &ns);
    let crash = container("crash", &image, &["sh", "-c", "echo starting; exit 3"]);
    deployments.create(&PostParams::default(), &deployment("crash", 1, crash, None)?).await?;

    let p = &pods;
    let (restarts, message) = wait_for("CrashLoopBackOff", Duration::from_secs(120), move || async move {
        let reasons = waiting_reasons(p, "app=crash").await?;
        let hit = reasons.iter().find(|(r, _, _)| r == "CrashLoopBackOff").map(|(_, m, n)| (*n, m.clone()));
        Ok((hit, format!("{reasons:?}")))
    })
    .await?;
    ensure!(restarts >= 1, "CrashLoopBackOff without a restart");
    // The last termination is visible too: exit code 3.
    let list = pods.list(&ListParams::default().labels("app=crash")).await?;
    let last = list.items[0]
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|c| c[0].last_state.clone());
    let exit = last.and_then(|l| l.terminated).map(|t| t.exit_code);
    ensure!(exit == Some(3), "last termination exit code {exit:?}, message {message:?}");
    let d = deployments.get("crash").await?;
    ensure!(d.status.and_then(|s| s.available_replicas).unwrap_or(0) == 0);
    delete_namespace(&client, &ns).await;
    Ok(())
}

#[tokio::test]
async fn real_node_missing_tag_reaches_image_pull_back_off() -> Result<()> {
    let env = stack_env()?;
    let client = client().await?;
    // The repository exists (pushed); the tag does not.
    let image = fixture_image(&env).await?;
    let missing = format!("{}:no-such-tag", image.rsplit_once(':').context("tag")?.0);
    let ns = namespace(&client, &env, "pull").await?;
    let deployments = Api::<Deployment>::namespaced(client.clone(), &ns);
    let pods = Api::<Pod>::namespaced(client.clone(), &ns);
    deployments
        .create(&PostParams::default(), &deployment("pull", 1, container("pull", &missing, &[]), None)?)
        .await?;

    let seen = RefCell::new(BTreeMap::new());
    let (p, s) = (&pods, &seen);
    wait_for("ImagePullBackOff", Duration::from_secs(120), move || async move {
        let reasons = waiting_reasons(p, "app=pull").await?;
        let mut seen = s.borrow_mut();
        for (r, m, _) in &reasons {
            if r != "-" {
                seen.insert(r.clone(), m.clone());
            }
        }
        Ok((seen.contains_key("ImagePullBackOff").then_some(()), format!("{seen:?}")))
    })
    .await?;
    let seen = seen.into_inner();
    // ErrImagePull is the first reason; it may be replaced before a poll sees it, so the kubelet's
    // events are the other witness.
    let events = Api::<k8s_openapi::api::core::v1::Event>::namespaced(client.clone(), &ns)
        .list(&ListParams::default())
        .await?;
    let messages: Vec<&str> = events.items.iter().filter_map(|e| e.message.as_deref()).collect();
    let err_pull = seen.contains_key("ErrImagePull") || messages.iter().any(|m| m.contains("ErrImagePull"));
    ensure!(err_pull, "no ErrImagePull seen: {seen:?}");
    // The registry answered (TLS and credentials fine) that the tag does not exist.
    let pull_failures: Vec<&&str> = messages.iter().filter(|m| m.contains("Failed to pull image")).collect();
    ensure!(
        !pull_failures.is_empty()
            && pull_failures.iter().all(|m| m.contains("not found") && !m.contains("x509")),
        "pull failures are not a plain 'not found': {pull_failures:?}"
    );
    let msg = seen.get("ImagePullBackOff").cloned().flatten().unwrap_or_default();
    ensure!(msg.contains(&missing), "back-off message does not name the image: {msg}");
    delete_namespace(&client, &ns).await;
    Ok(())
}

#[tokio::test]
async fn real_node_never_ready_probe_ends_in_progress_deadline_exceeded() -> Result<()> {
    let env = stack_env()?;
    let client = client().await?;
    let image = fixture_image(&env).await?;
    let ns = namespace(&client, &env, "deadline").await?;
    let deployments = Api::<Deployment>::namespaced(client.clone(), &ns);
    let mut c = container("never", &image, &[]);
    // httpd serves 8080; the probe asks 9999, so the pods run but never become ready.
    c["readinessProbe"] = json!({"tcpSocket": {"port": 9999}, "periodSeconds": 1});
    deployments.create(&PostParams::default(), &deployment("never", 2, c, Some(15))?).await?;

    let max_available = Cell::new(0);
    let (d, m) = (&deployments, &max_available);
    let st = wait_for("ProgressDeadlineExceeded", Duration::from_secs(120), move || async move {
        let st = d.get("never").await?.status.unwrap_or_default();
        m.set(m.get().max(st.available_replicas.unwrap_or(0)));
        let c = condition(&st.conditions, "Progressing");
        let hit =
            c.is_some_and(|c| c.status == "False" && c.reason.as_deref() == Some("ProgressDeadlineExceeded"));
        Ok((hit.then(|| st.clone()), format!("{st:?}")))
    })
    .await?;
    let max_available = max_available.get();
    ensure!(max_available == 0, "availableReplicas reached {max_available} with a never-ready probe");
    ensure!(st.replicas.unwrap_or(0) >= 1, "pods were not even created: {st:?}");
    ensure!(st.unavailable_replicas.unwrap_or(0) >= 2, "expected 2 unavailable replicas: {st:?}");
    delete_namespace(&client, &ns).await;
    Ok(())
}

#[tokio::test]
async fn real_node_job_completes_and_failing_job_fails() -> Result<()> {
    let env = stack_env()?;
    let client = client().await?;
    let image = fixture_image(&env).await?;
    let ns = namespace(&client, &env, "jobs").await?;
    let jobs = Api::<Job>::namespaced(client.clone(), &ns);
    for (name, script) in [("ok", "echo migrated; exit 0"), ("bad", "echo failed >&2; exit 1")] {
        let job: Job = serde_json::from_value(json!({
            "metadata": {"name": name},
            "spec": {
                "backoffLimit": 0,
                "activeDeadlineSeconds": 120,
                "template": {"spec": pod_spec(vec![container(name, &image, &["sh", "-c", script])], "Never")},
            },
        }))?;
        jobs.create(&PostParams::default(), &job).await?;
    }
    for (name, want) in [("ok", "Complete"), ("bad", "Failed")] {
        let j = &jobs;
        wait_for(&format!("job {name} {want}"), Duration::from_secs(120), move || async move {
            let st = j.get(name).await?.status.unwrap_or_default();
            let terminal = st.conditions.as_ref().and_then(|cs| {
                cs.iter().find(|c| (c.type_ == "Complete" || c.type_ == "Failed") && c.status == "True")
            });
            match terminal {
                Some(c) if c.type_ == want => Ok((Some(()), String::new())),
                Some(c) => Err(anyhow!("job {name} ended {} ({:?}), expected {want}", c.type_, c.reason)),
                None => Ok((None, format!("{st:?}"))),
            }
        })
        .await?;
    }
    let ok = jobs.get("ok").await?.status.unwrap_or_default();
    ensure!(ok.succeeded == Some(1), "ok job: {ok:?}");
    let bad = jobs.get("bad").await?.status.unwrap_or_default();
    ensure!(bad.failed == Some(1), "bad job: {bad:?}");
    delete_namespace(&client, &ns).await;
    Ok(())
}

#[tokio::test]
async fn real_node_restricted_namespace_rejects_root_pod() -> Result<()> {
    let env = stack_env()?;
    let client = client().await?;
    let image = fixture_image(&env).await?;
    let ns = namespace(&client, &env, "psa").await?;
    let pods = Api::<Pod>::namespaced(client.clone(), &ns);
    let root: Pod = serde_json::from_value(json!({
        "metadata": {"name": "root"},
        "spec": {
            "containers": [{"name": "root", "image": image, "securityContext": {"runAsUser": 0}}],
            "imagePullSecrets": [{"name": PULL_SECRET}],
        },
    }))?;
    match pods.create(&PostParams::default(), &root).await {
        Ok(_) => bail!("a root pod was admitted into a restricted namespace"),
        Err(kube::Error::Api(status)) => {
            ensure!(status.code == 403, "expected 403, got {status:?}");
            ensure!(
                status.message.contains("violates PodSecurity \"restricted:latest\"")
                    && status.message.contains("runAsNonRoot"),
                "unexpected rejection: {}",
                status.message
            );
        }
        Err(e) => return Err(e.into()),
    }
    // The same pod, made compliant, is admitted: the rejection is policy, not a broken API.
    let ok: Pod = serde_json::from_value(json!({
        "metadata": {"name": "compliant"},
        "spec": pod_spec(vec![container("compliant", &image, &[])], "Always"),
    }))?;
    pods.create(&PostParams::default(), &ok).await.context("compliant pod rejected")?;
    delete_namespace(&client, &ns).await;
    Ok(())
}

#[tokio::test]
async fn real_cluster_admission_applies_limit_range_and_resource_quota() -> Result<()> {
    let env = stack_env()?;
    let client = client().await?;
    let image = fixture_image(&env).await?;
    let ns = namespace(&client, &env, "quota").await?;
    let pp = PostParams::default();
    let limits: k8s_openapi::api::core::v1::LimitRange = serde_json::from_value(json!({
        "metadata": {"name": "defaults"},
        "spec": {"limits": [{"type": "Container", "default": {"cpu": "200m", "memory": "48Mi"}, "defaultRequest": {"cpu": "20m", "memory": "24Mi"}}]},
    }))?;
    Api::namespaced(client.clone(), &ns).create(&pp, &limits).await?;
    let quota: k8s_openapi::api::core::v1::ResourceQuota = serde_json::from_value(json!({
        "metadata": {"name": "pods"},
        "spec": {"hard": {"pods": "1"}},
    }))?;
    let quotas = Api::<k8s_openapi::api::core::v1::ResourceQuota>::namespaced(client.clone(), &ns);
    quotas.create(&pp, &quota).await?;
    // The quota controller must have computed usage before the admission plugin counts against it.
    let q = &quotas;
    wait_for("quota status", Duration::from_secs(30), move || async move {
        let st = q.get("pods").await?.status.unwrap_or_default();
        Ok((st.hard.is_some().then_some(()), format!("{st:?}")))
    })
    .await?;

    let pods = Api::<Pod>::namespaced(client.clone(), &ns);
    let mut c = container("first", &image, &[]);
    c.as_object_mut().context("container")?.remove("resources");
    let first: Pod =
        serde_json::from_value(json!({"metadata": {"name": "first"}, "spec": pod_spec(vec![c], "Always")}))?;
    let first = pods.create(&pp, &first).await?;
    // LimitRanger filled in the defaults.
    let resources = first.spec.context("spec")?.containers[0].resources.clone().unwrap_or_default();
    let mem_limit = resources.limits.as_ref().and_then(|l| l.get("memory")).map(|q| q.0.clone());
    let cpu_request = resources.requests.as_ref().and_then(|r| r.get("cpu")).map(|q| q.0.clone());
    ensure!(mem_limit.as_deref() == Some("48Mi"), "LimitRanger default limit missing: {resources:?}");
    ensure!(cpu_request.as_deref() == Some("20m"), "LimitRanger default request missing: {resources:?}");

    // The quota controller recalculates usage on its own schedule and can briefly write back a
    // count from before the first pod; wait until it counts that pod, then the second is refused.
    wait_for("quota usage of the first pod", Duration::from_secs(30), move || async move {
        let st = q.get("pods").await?.status.unwrap_or_default();
        let used = st.used.as_ref().and_then(|u| u.get("pods")).map(|v| v.0.clone());
        Ok(((used.as_deref() == Some("1")).then_some(()), format!("{st:?}")))
    })
    .await?;

    // ResourceQuota refuses the second pod.
    let second: Pod = serde_json::from_value(json!({
        "metadata": {"name": "second"},
        "spec": pod_spec(vec![container("second", &image, &[])], "Always"),
    }))?;
    match pods.create(&pp, &second).await {
        Ok(_) => bail!("a second pod was admitted past a pods=1 quota"),
        Err(kube::Error::Api(status)) => ensure!(
            status.code == 403 && status.message.contains("exceeded quota: pods"),
            "unexpected rejection: {status:?}"
        ),
        Err(e) => return Err(e.into()),
    }
    delete_namespace(&client, &ns).await;
    Ok(())
}

/// The node's kubelet never removes an image or evicts a pod for disk: it reads disk use from the
/// blocks available to unprivileged users, and on these machines most of the disk is reserved for
/// root, so it once judged the disk 99 % full mid-run and removed the sandbox (pause) image, which
/// nothing can pull back (every later pod: FailedCreatePodSandBox). Read from the kubelet's own
/// `/configz` on its own port (the API server's node proxy refuses a loopback node address), with
/// the admin credentials the kubelet's webhook authorization accepts.
#[tokio::test]
async fn real_node_kubelet_keeps_every_image_and_never_evicts_for_disk() -> Result<()> {
    stack_env()?;
    let mut config = kube::Config::infer().await.context("kube config from KUBECONFIG")?;
    config.cluster_url = "https://127.0.0.1:10250".parse()?;
    let kubelet = Client::try_from(config)?;
    let request = http::Request::get("/configz").body(Vec::new())?;
    let configz: Value =
        kubelet.request(request).await.context("the kubelet's /configz on 127.0.0.1:10250")?;
    let config = &configz["kubeletconfig"];
    ensure!(
        config["imageGCHighThresholdPercent"] == json!(100),
        "image garbage collection is on (imageGCHighThresholdPercent {}): it can remove the pause image",
        config["imageGCHighThresholdPercent"]
    );
    for signal in ["nodefs.available", "imagefs.available", "nodefs.inodesFree"] {
        ensure!(
            config["evictionHard"][signal] == json!("0%"),
            "disk eviction {signal} is {} (want \"0%\"): the kubelet would evict pods and remove images",
            config["evictionHard"][signal]
        );
    }
    Ok(())
}
