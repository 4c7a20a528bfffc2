//! Roll a rendered kustomize overlay out to Kubernetes.
//!
//! [`run`] renders the overlay (or reads rendered manifests), then, in order:
//! 1. validates everything: every document is an object the API server serves (discovery), and a
//!    server-side dry run of every object passes (missing namespaces are created first, empty,
//!    because a dry-run namespace does not exist for the objects inside it);
//! 2. applies (server-side, forced, one field manager) everything that is not a workload;
//! 3. runs the migration gate: a per-release copy of the Job marked
//!    `statuspage.io/role: migration-template`, waited for; a failure stops here;
//! 4. applies the workloads (Deployments, their HPAs, …) and waits for every Deployment's rollout;
//! 5. on failure: diagnoses the unready pods and rolls every changed Deployment back to the pod
//!    template of its previous revision's ReplicaSet (what `kubectl rollout undo` does).
//!
//! Every wait is bounded by [`RolloutConfig::timeout`].

pub mod cli;
pub mod diagnose;
pub mod error;
pub mod lease;
pub mod manifests;
pub mod prune;
pub mod report;
pub mod status;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use futures_util::StreamExt as _;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::discovery::{Discovery, Scope};
use kube::{Api, Client};
use serde_json::Value;
use tokio::time::Instant;

pub use error::RolloutError;
pub use manifests::Object;
use report::{DeploymentReport, MigrationReport, ObjectReport, Report};
use status::{DeploymentState, FailFast, JobState};

/// The annotation the deployment controller numbers revisions with.
pub const REVISION_ANNOTATION: &str = "deployment.kubernetes.io/revision";

/// Where the manifests come from.
#[derive(Debug, Clone)]
pub enum Input {
    /// A kustomize overlay, rendered with `kustomize build`.
    Overlay {
        /// The overlay directory.
        dir: PathBuf,
        /// The kustomize binary.
        kustomize: PathBuf,
    },
    /// Rendered multi-document YAML.
    Manifests(PathBuf),
}

/// Everything a rollout needs; the cluster comes from the standard kubeconfig lookup.
#[derive(Debug, Clone)]
pub struct RolloutConfig {
    /// The manifests.
    pub input: Input,
    /// Namespace for namespaced objects that name none; default: the render's Namespace.
    pub namespace: Option<String>,
    /// The server-side apply field manager.
    pub field_manager: String,
    /// The bound of every wait.
    pub timeout: Duration,
    /// Validate and print the plan only.
    pub dry_run: bool,
    /// Roll back on failure.
    pub rollback: bool,
    /// How often waits look at the cluster.
    pub poll: Duration,
    /// Fail a wait once a pod has been in a fatal waiting state (ImagePullBackOff,
    /// CrashLoopBackOff, …) this long, instead of waiting out the progress deadline. None: never.
    pub fail_fast_after: Option<Duration>,
    /// After a successful rollout, delete what this field manager applied earlier (objects
    /// matching `prune_selector`) that the render no longer has.
    pub prune: bool,
    /// Label selector of the release's objects, for pruning.
    pub prune_selector: String,
}

/// A parsed object with what the API server told us about its kind.
struct Resolved {
    object: Object,
    resource: ApiResource,
    namespaced: bool,
    /// The live `resourceVersion` before anything was applied (None: absent).
    live_version: Option<String>,
}

impl Resolved {
    fn api(&self, client: &Client) -> Api<DynamicObject> {
        match (&self.object.object.metadata.namespace, self.namespaced) {
            (Some(ns), true) => Api::namespaced_with(client.clone(), ns, &self.resource),
            _ => Api::all_with(client.clone(), &self.resource),
        }
    }

    fn namespace(&self) -> String {
        self.object.object.metadata.namespace.clone().filter(|_| self.namespaced).unwrap_or_default()
    }

    fn object_report(&self, action: &str) -> ObjectReport {
        ObjectReport {
            kind: self.object.gvk.kind.clone(),
            name: self.object.name().to_string(),
            namespace: self.namespace(),
            action: action.to_string(),
        }
    }
}

/// A progress line on stderr.
fn progress(line: impl AsRef<str>) {
    eprintln!("{}", line.as_ref());
}

/// An `::error::` annotation in GitHub Actions (the plain progress line follows anyway).
fn annotate(message: String) {
    if statuspage_common::actions::in_github_actions() {
        statuspage_common::actions::Annotation::error(message).emit();
    }
}

/// Render the input into multi-document YAML and a name for it in messages.
pub async fn render(input: &Input, timeout: Duration) -> Result<(String, String), RolloutError> {
    match input {
        Input::Manifests(path) => {
            let origin = path.display().to_string();
            let text = tokio::fs::read_to_string(path)
                .await
                .map_err(|source| RolloutError::Read { path: origin.clone(), source })?;
            Ok((text, origin))
        }
        Input::Overlay { dir, kustomize } => {
            let overlay = dir.display().to_string();
            let fail = |message: String| RolloutError::Render { overlay: overlay.clone(), message };
            if !dir.is_dir() {
                return Err(fail("not a directory: pass --overlay with a kustomize overlay folder".into()));
            }
            let run =
                tokio::process::Command::new(kustomize).arg("build").arg(dir).kill_on_drop(true).output();
            let output = tokio::time::timeout(timeout, run)
                .await
                .map_err(|_| fail(format!("did not finish within {}s", timeout.as_secs())))?
                .map_err(|e| {
                    fail(format!(
                        "cannot run {}: {e} (install kustomize or pass --kustomize PATH)",
                        kustomize.display()
                    ))
                })?;
            if !output.status.success() {
                let stderr = String::from_utf8_lossy(&output.stderr);
                return Err(fail(stderr.trim().lines().last().unwrap_or("no message").to_string()));
            }
            let text = String::from_utf8(output.stdout).map_err(|_| fail("printed invalid UTF-8".into()))?;
            Ok((text, format!("kustomize build {overlay}")))
        }
    }
}

/// Roll the configured manifests out; the report comes back on success and inside the error
/// once the cluster was changed.
pub async fn run(config: &RolloutConfig) -> Result<Report, RolloutError> {
    let started = Instant::now();
    let (text, origin) = render(&config.input, config.timeout).await?;
    let objects = manifests::parse(&text, &origin)?;
    let namespace = match config.namespace.clone().or_else(|| manifests::declared_namespace(&objects)) {
        Some(ns) => ns,
        None => {
            return Err(RolloutError::BadInput {
                flag: "--namespace",
                value: String::new(),
                fix: "the render has no single Namespace object: pass --namespace".into(),
            });
        }
    };
    let client = Client::try_default()
        .await
        .map_err(RolloutError::kube("connecting to the Kubernetes API (KUBECONFIG)"))?;
    let style = statuspage_common::actions::LogStyle::detect();

    // 1. Validate.
    let group = style.group(&format!("validate {} objects from {origin}", objects.len()));
    let discovery = Discovery::new(client.clone())
        .run_aggregated()
        .await
        .map_err(RolloutError::kube("discovering the API server's resources"))?;
    let mut resolved = Vec::new();
    let mut migration: Option<Resolved> = None;
    for mut object in objects {
        let Some((resource, caps)) = discovery.resolve_gvk(&object.gvk) else {
            return Err(RolloutError::UnknownKind {
                object: object.label(),
                api_version: object.object.types.as_ref().map(|t| t.api_version.clone()).unwrap_or_default(),
                kind: object.gvk.kind.clone(),
            });
        };
        let namespaced = caps.scope == Scope::Namespaced;
        if namespaced && object.object.metadata.namespace.is_none() {
            object.object.metadata.namespace = Some(namespace.clone());
        }
        let item = Resolved { object, resource, namespaced, live_version: None };
        if item.object.is_migration_template() {
            let copy = manifests::migration_copy(&item.object);
            migration = Some(Resolved { object: copy, ..item });
        } else {
            resolved.push(item);
        }
    }
    create_missing_namespaces(&client, &resolved, &config.field_manager).await?;
    let dry = PatchParams::apply(&config.field_manager).force().dry_run();
    // Every object's read and dry run are independent: up to 8 at a time, results in order.
    let checks = futures_util::stream::iter(resolved.iter().map(|item| {
        let (client, dry) = (&client, &dry);
        async move {
            let api = item.api(client);
            let live = api
                .get_opt(item.object.name())
                .await
                .map_err(RolloutError::kube(format!("reading {}", item.object.label())))?;
            let result = api
                .patch(item.object.name(), dry, &Patch::Apply(&item.object.object))
                .await
                .map_err(|e| rejected(&item.object, e))?;
            let action = match &live {
                None => "would create",
                Some(live) if comparable(live) == comparable(&result) => "unchanged",
                Some(_) => "would configure",
            };
            Ok::<_, RolloutError>((live.and_then(|l| l.metadata.resource_version), action))
        }
    }))
    .buffered(8)
    .collect::<Vec<_>>()
    .await;
    let mut planned = Vec::new();
    for (item, check) in resolved.iter_mut().zip(checks) {
        let (live_version, action) = check?;
        item.live_version = live_version;
        progress(format!("  {} {}", item.object.label(), action));
        planned.push(item.object_report(action));
    }
    let mut migration_report = None;
    if let Some(job) = migration.as_mut() {
        let api = job.api(&client);
        let live = api
            .get_opt(job.object.name())
            .await
            .map_err(RolloutError::kube(format!("reading {}", job.object.label())))?;
        job.live_version = live.and_then(|l| l.metadata.resource_version);
        if job.live_version.is_none() {
            api.patch(job.object.name(), &dry, &Patch::Apply(&job.object.object))
                .await
                .map_err(|e| rejected(&job.object, e))?;
        }
        progress(format!("  {} (migration, from the template) valid", job.object.label()));
        migration_report =
            Some(MigrationReport { job: job.object.name().to_string(), result: "planned".into() });
    }
    let mut to_prune = Vec::new();
    if config.prune {
        let keep: std::collections::BTreeSet<(String, String)> = resolved
            .iter()
            .chain(migration.iter())
            .map(|i| (i.object.gvk.kind.clone(), i.object.name().to_string()))
            .collect();
        let kinds: Vec<_> = resolved.iter().map(|i| i.object.gvk.clone()).collect();
        to_prune = prune::candidates(
            &client,
            &discovery,
            &namespace,
            &config.prune_selector,
            &config.field_manager,
            &kinds,
            &keep,
        )
        .await
        .map_err(RolloutError::kube("listing objects to prune"))?;
        for candidate in &to_prune {
            progress(format!(
                "  {}/{} would prune (no longer in the render)",
                candidate.kind, candidate.name
            ));
            planned.push(ObjectReport {
                kind: candidate.kind.clone(),
                name: candidate.name.clone(),
                namespace: namespace.clone(),
                action: "would prune".into(),
            });
        }
    }
    progress(format!(
        "validated in {:.1}s: the API server accepts every object",
        started.elapsed().as_secs_f64()
    ));
    drop(group);

    let report = Report {
        version: 1,
        result: "dry-run".into(),
        namespace: namespace.clone(),
        objects: planned,
        migration: migration_report,
        deployments: Vec::new(),
    };
    if config.dry_run {
        return Ok(report);
    }

    // One rollout per namespace at a time: a Lease held for the whole change.
    let lease = lease::acquire(&client, &namespace, config).await?;
    let result = change(&client, &namespace, config, &resolved, migration.as_ref(), &to_prune, report).await;
    lease::release(&client, &namespace, &lease).await;
    result
}

/// Steps 2 to 6: everything that changes the cluster, under the namespace's rollout Lease.
async fn change(
    client: &Client,
    namespace: &str,
    config: &RolloutConfig,
    resolved: &[Resolved],
    migration: Option<&Resolved>,
    to_prune: &[prune::PruneCandidate],
    mut report: Report,
) -> Result<Report, RolloutError> {
    let style = statuspage_common::actions::LogStyle::detect();

    // 2. Everything that is not a workload.
    let apply = PatchParams::apply(&config.field_manager).force();
    let group = style.group("apply configuration");
    for (index, item) in resolved.iter().enumerate().filter(|(_, i)| !i.object.is_workload()) {
        report.objects[index] = apply_one(client, item, &apply).await?;
    }
    drop(group);

    // 3. The migration gate.
    if let Some(job) = &migration {
        let group = style.group(&format!("migration {}", job.object.name()));
        let result = migrate(client, job, &apply, config).await;
        drop(group);
        let outcome = match result {
            Ok(outcome) => outcome,
            Err(reason) => {
                for (index, item) in resolved.iter().enumerate().filter(|(_, i)| i.object.is_workload()) {
                    report.objects[index] = item.object_report("pending");
                }
                report.result = "failed".into();
                if let Some(m) = report.migration.as_mut() {
                    m.result = "failed".into();
                }
                return Err(RolloutError::MigrationFailed {
                    job: job.object.name().to_string(),
                    reason,
                    report: Box::new(report),
                });
            }
        };
        if let Some(m) = report.migration.as_mut() {
            m.result = outcome.into();
        }
    }

    // 4. Workloads, then wait.
    let deployments: Vec<String> =
        resolved.iter().filter(|i| i.object.is_deployment()).map(|i| i.object.name().to_string()).collect();
    let deploy_api: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    let mut previous: BTreeMap<String, Option<String>> = BTreeMap::new();
    for name in &deployments {
        let live = deploy_api
            .get_opt(name)
            .await
            .map_err(RolloutError::kube(format!("reading Deployment/{name}")))?;
        previous.insert(name.clone(), live.as_ref().and_then(revision));
    }
    let group = style.group("apply workloads");
    for (index, item) in resolved.iter().enumerate().filter(|(_, i)| i.object.is_workload()) {
        report.objects[index] = apply_one(client, item, &apply).await?;
    }
    drop(group);
    let group = style.group(&format!(
        "wait for {} Deployments (at most {}s)",
        deployments.len(),
        config.timeout.as_secs()
    ));
    let wait_started = Instant::now();
    let failures = wait_deployments(client, &deploy_api, &deployments, config).await?;
    drop(group);
    if failures.is_empty() {
        progress(format!("rolled out in {:.1}s", wait_started.elapsed().as_secs_f64()));
        if !to_prune.is_empty() {
            prune::delete(client, namespace, to_prune).await.map_err(RolloutError::kube("pruning"))?;
            for entry in report.objects.iter_mut().filter(|o| o.action == "would prune") {
                progress(format!("  {}/{} pruned", entry.kind, entry.name));
                entry.action = "pruned".into();
            }
        }
        report.deployments = deployment_reports(client, namespace, &deployments, &BTreeMap::new()).await?;
        report.result = "deployed".into();
        return Ok(report);
    }

    // 5. Diagnose, roll back.
    let reason =
        failures.iter().map(|(name, why)| format!("Deployment/{name}: {why}")).collect::<Vec<_>>().join("; ");
    for (name, why) in &failures {
        let group = style.group(&format!("diagnose Deployment/{name}"));
        annotate(format!("Deployment/{name}: {why}"));
        progress(format!("Deployment/{name}: {why}"));
        let selector = deploy_api
            .get(name)
            .await
            .ok()
            .and_then(|d| d.spec.and_then(|s| s.selector.match_labels))
            .map(|labels| labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(","))
            .unwrap_or_default();
        for line in diagnose::pods(client, namespace, &selector, false).await {
            progress(format!("  {line}"));
        }
        drop(group);
    }
    let mut results: BTreeMap<String, String> =
        failures.iter().map(|(name, _)| (name.clone(), "failed".to_string())).collect();
    if !config.rollback {
        progress("--no-rollback: leaving the Deployments as they are");
        report.deployments = deployment_reports(client, namespace, &deployments, &results).await?;
        report.result = "failed".into();
        return Err(RolloutError::RolloutFailed { reason, report: Box::new(report) });
    }
    let group = style.group("roll back");
    let rollback_started = Instant::now();
    let mut rolled_back = Vec::new();
    let mut rollback_errors = Vec::new();
    for name in &deployments {
        let Some(Some(before)) = previous.get(name) else {
            if results.contains_key(name) {
                progress(format!("Deployment/{name}: no previous revision to roll back to"));
                results.insert(name.clone(), "not-rolled-back".into());
            }
            continue;
        };
        match rollback(client, &deploy_api, name, before, &config.field_manager).await {
            Ok(true) => {
                progress(format!("Deployment/{name}: rolling back to revision {before}"));
                rolled_back.push(name.clone());
            }
            Ok(false) => {}
            Err(err) => {
                progress(format!("Deployment/{name}: rollback failed: {err}"));
                rollback_errors.push(format!("Deployment/{name}: {err}"));
            }
        }
    }
    let rollback_failures = wait_deployments(client, &deploy_api, &rolled_back, config).await?;
    for name in &rolled_back {
        let result =
            if rollback_failures.iter().any(|(n, _)| n == name) { "rollback-failed" } else { "rolled-back" };
        results.insert(name.clone(), result.into());
    }
    rollback_errors.extend(rollback_failures.iter().map(|(name, why)| format!("Deployment/{name}: {why}")));
    progress(format!("rollback finished in {:.1}s", rollback_started.elapsed().as_secs_f64()));
    drop(group);
    report.deployments = deployment_reports(client, namespace, &deployments, &results).await?;
    if !rollback_errors.is_empty() {
        report.result = "failed".into();
        return Err(RolloutError::RollbackFailed {
            reason,
            rollback: rollback_errors.join("; "),
            report: Box::new(report),
        });
    }
    if rolled_back.is_empty() {
        report.result = "failed".into();
        return Err(RolloutError::RolloutFailed {
            reason: format!("{reason} (no previous revision to roll back to)"),
            report: Box::new(report),
        });
    }
    report.result = "rolled-back".into();
    Err(RolloutError::RolledBack { reason, report: Box::new(report) })
}

/// The dry run's refusal of an object as the one-line error the contract asks for.
fn rejected(object: &Object, err: kube::Error) -> RolloutError {
    match err {
        kube::Error::Api(status) => RolloutError::Rejected {
            object: object.label(),
            message: if status.message.is_empty() { status.reason.clone() } else { status.message.clone() },
        },
        other => RolloutError::Kube { what: format!("dry run of {}", object.label()), source: other },
    }
}

/// An object without what the server changes on every write, for "would this change it?".
fn comparable(object: &DynamicObject) -> Value {
    let mut value = serde_json::to_value(object).unwrap_or_default();
    if let Some(metadata) = value.get_mut("metadata").and_then(Value::as_object_mut) {
        for key in ["managedFields", "resourceVersion", "generation", "creationTimestamp", "uid"] {
            metadata.remove(key);
        }
    }
    if let Some(map) = value.as_object_mut() {
        map.remove("status");
    }
    value
}

/// Namespaces the render declares and the cluster lacks, created (empty) so the dry run of the
/// objects inside them can pass.
async fn create_missing_namespaces(
    client: &Client,
    resolved: &[Resolved],
    manager: &str,
) -> Result<(), RolloutError> {
    for item in resolved.iter().filter(|i| i.object.gvk.kind == "Namespace" && i.object.gvk.group.is_empty())
    {
        let api = item.api(client);
        let name = item.object.name();
        if api.get_opt(name).await.map_err(RolloutError::kube(format!("reading Namespace/{name}")))?.is_none()
        {
            api.patch(name, &PatchParams::apply(manager).force(), &Patch::Apply(&item.object.object))
                .await
                .map_err(|e| rejected(&item.object, e))?;
            progress(format!("  Namespace/{name} created (the dry run of the objects inside needs it)"));
        }
    }
    Ok(())
}

/// Server-side apply of one object; what happened to it.
async fn apply_one(
    client: &Client,
    item: &Resolved,
    params: &PatchParams,
) -> Result<ObjectReport, RolloutError> {
    let applied = item
        .api(client)
        .patch(item.object.name(), params, &Patch::Apply(&item.object.object))
        .await
        .map_err(RolloutError::kube(format!("applying {}", item.object.label())))?;
    let action = match &item.live_version {
        None => "created",
        Some(before) if applied.metadata.resource_version.as_ref() == Some(before) => "unchanged",
        Some(_) => "configured",
    };
    progress(format!("  {} {action}", item.object.label()));
    Ok(item.object_report(action))
}

fn revision(deployment: &Deployment) -> Option<String> {
    deployment.metadata.annotations.as_ref().and_then(|a| a.get(REVISION_ANNOTATION)).cloned()
}

/// Run the migration Job copy and wait for it. `Ok` names what happened; `Err` says why it failed
/// (the diagnosis is printed on the way).
async fn migrate(
    client: &Client,
    job: &Resolved,
    apply: &PatchParams,
    config: &RolloutConfig,
) -> Result<&'static str, String> {
    let name = job.object.name().to_string();
    let namespace = job.namespace();
    let jobs: Api<Job> = Api::namespaced(client.clone(), &namespace);
    let deadline = Instant::now() + config.timeout;
    match jobs.get_opt(&name).await {
        Ok(Some(existing)) => match status::job_state(&existing) {
            JobState::Complete => {
                progress(format!("  Job/{name} already completed for this release: not run again"));
                return Ok("already-complete");
            }
            JobState::Failed(_) => {
                progress(format!("  Job/{name} failed before: deleting it to run it again"));
                jobs.delete(&name, &DeleteParams::background())
                    .await
                    .map_err(|e| format!("deleting the failed Job: {e}"))?;
                while jobs.get_opt(&name).await.map_err(|e| e.to_string())?.is_some() {
                    if Instant::now() > deadline {
                        return Err(format!("the failed Job {name} was not deleted within the timeout"));
                    }
                    tokio::time::sleep(config.poll).await;
                }
            }
            JobState::Running => progress(format!("  Job/{name} is already running: waiting for it")),
        },
        Ok(None) => {}
        Err(err) => return Err(format!("reading the Job: {err}")),
    }
    job.api(client)
        .patch(&name, apply, &Patch::Apply(&job.object.object))
        .await
        .map_err(|e| format!("creating the Job: {e}"))?;
    progress(format!("  Job/{name} started"));
    let started = Instant::now();
    let mut fail_fast = FailFast::new(config.fail_fast_after);
    let pods_of_job = format!("batch.kubernetes.io/job-name={name}");
    let failure = loop {
        let current = jobs.get(&name).await.map_err(|e| format!("reading the Job: {e}"))?;
        match status::job_state(&current) {
            JobState::Complete => {
                progress(format!("  Job/{name} complete in {:.1}s", started.elapsed().as_secs_f64()));
                return Ok("complete");
            }
            JobState::Failed(reason) => break reason,
            JobState::Running => {
                let fatal = pods_in_fatal_state(client, &namespace, &pods_of_job, None).await;
                if let Some(why) = fail_fast.observe(&fatal, std::time::Instant::now()) {
                    break why;
                }
            }
        }
        if Instant::now() > deadline {
            break format!("not complete within {}s", config.timeout.as_secs());
        }
        tokio::time::sleep(config.poll).await;
    };
    annotate(format!("migration Job/{name} failed: {failure}"));
    progress(format!("  Job/{name} failed: {failure}"));
    for line in
        diagnose::pods(client, &namespace, &format!("batch.kubernetes.io/job-name={name}"), true).await
    {
        progress(format!("  {line}"));
    }
    Err(failure)
}

/// Wait until every named Deployment has rolled out, one failed, or the timeout passed.
/// Returns the failed ones with why (empty: all complete).
async fn wait_deployments(
    client: &Client,
    api: &Api<Deployment>,
    names: &[String],
    config: &RolloutConfig,
) -> Result<Vec<(String, String)>, RolloutError> {
    let deadline = Instant::now() + config.timeout;
    let mut last: BTreeMap<String, String> = BTreeMap::new();
    let mut fail_fast: BTreeMap<String, FailFast> = BTreeMap::new();
    loop {
        let mut pending = Vec::new();
        let mut failed = Vec::new();
        for name in names {
            let deployment =
                api.get(name).await.map_err(RolloutError::kube(format!("reading Deployment/{name}")))?;
            let state = status::deployment_state(&deployment);
            let text = match &state {
                DeploymentState::Complete => "available".to_string(),
                DeploymentState::Progressing(what) => what.clone(),
                DeploymentState::Failed(why) => why.clone(),
            };
            if last.get(name) != Some(&text) {
                progress(format!("  Deployment/{name}: {text}"));
                last.insert(name.clone(), text);
            }
            match state {
                DeploymentState::Complete => {}
                DeploymentState::Progressing(what) => {
                    let fatal = new_pods_in_fatal_state(client, &deployment).await;
                    let tracker = fail_fast
                        .entry(name.clone())
                        .or_insert_with(|| FailFast::new(config.fail_fast_after));
                    match tracker.observe(&fatal, std::time::Instant::now()) {
                        Some(why) => failed.push((name.clone(), why)),
                        None => pending.push((name.clone(), what)),
                    }
                }
                DeploymentState::Failed(why) => failed.push((name.clone(), why)),
            }
        }
        if !failed.is_empty() {
            return Ok(failed);
        }
        if pending.is_empty() {
            return Ok(Vec::new());
        }
        if Instant::now() > deadline {
            return Ok(pending
                .into_iter()
                .map(|(n, what)| (n, format!("not available within {}s ({what})", config.timeout.as_secs())))
                .collect());
        }
        tokio::time::sleep(config.poll).await;
    }
}

/// Pods of the Deployment's newest ReplicaSet that wait in a fatal state: (pod, reason).
/// Older ReplicaSets' pods are left out: a broken previous release must not fail this one.
async fn new_pods_in_fatal_state(client: &Client, deployment: &Deployment) -> Vec<(String, String)> {
    let namespace = deployment.metadata.namespace.clone().unwrap_or_default();
    let Some(labels) = deployment.spec.as_ref().and_then(|s| s.selector.match_labels.as_ref()) else {
        return Vec::new();
    };
    let selector = labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",");
    let sets: Api<ReplicaSet> = Api::namespaced(client.clone(), &namespace);
    let Ok(sets) = sets.list(&ListParams::default().labels(&selector)).await else { return Vec::new() };
    let wanted = revision(deployment);
    let Some(newest) = sets.items.iter().find(|rs| {
        rs.metadata.annotations.as_ref().and_then(|a| a.get(REVISION_ANNOTATION)) == wanted.as_ref()
    }) else {
        return Vec::new();
    };
    let newest = newest.metadata.name.clone().unwrap_or_default();
    pods_in_fatal_state(client, &namespace, &selector, Some(&newest)).await
}

/// Pods matching `selector` (owned by `owner` when given) that wait in a fatal state.
async fn pods_in_fatal_state(
    client: &Client,
    namespace: &str,
    selector: &str,
    owner: Option<&str>,
) -> Vec<(String, String)> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let Ok(list) = pods.list(&ListParams::default().labels(selector)).await else { return Vec::new() };
    list.items
        .iter()
        .filter(|pod| {
            owner.is_none_or(|owner| pod.metadata.owner_references.iter().flatten().any(|r| r.name == owner))
        })
        .filter_map(|pod| Some((pod.metadata.name.clone().unwrap_or_default(), status::fatal_reason(pod)?)))
        .collect()
}

/// Put the pod template of the Deployment's ReplicaSet at revision `to` back (what `kubectl
/// rollout undo --to-revision` does). `Ok(false)` when it is already at that revision.
async fn rollback(
    client: &Client,
    api: &Api<Deployment>,
    name: &str,
    to: &str,
    manager: &str,
) -> Result<bool, String> {
    for _attempt in 0..3 {
        let mut deployment = api.get(name).await.map_err(|e| e.to_string())?;
        if revision(&deployment).as_deref() == Some(to) {
            return Ok(false);
        }
        let uid = deployment.metadata.uid.clone().unwrap_or_default();
        let namespace = deployment.metadata.namespace.clone().unwrap_or_default();
        let sets: Api<ReplicaSet> = Api::namespaced(client.clone(), &namespace);
        let owned =
            sets.list(&ListParams::default()).await.map_err(|e| format!("listing ReplicaSets: {e}"))?;
        let target = owned.items.into_iter().find(|rs| {
            rs.metadata.owner_references.iter().flatten().any(|o| o.uid == uid)
                && rs
                    .metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get(REVISION_ANNOTATION))
                    .is_some_and(|r| r == to)
        });
        let Some(mut template) = target.and_then(|rs| rs.spec).and_then(|s| s.template) else {
            return Err(format!("no ReplicaSet at revision {to} left to roll back to"));
        };
        if let Some(labels) = template.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
            labels.remove("pod-template-hash");
        }
        if let Some(spec) = deployment.spec.as_mut() {
            spec.template = template;
        }
        deployment.metadata.managed_fields = None;
        let params = PostParams { field_manager: Some(manager.to_string()), ..Default::default() };
        match api.replace(name, &params, &deployment).await {
            Ok(_) => return Ok(true),
            Err(kube::Error::Api(status)) if status.code == 409 => continue,
            Err(err) => return Err(err.to_string()),
        }
    }
    Err("the Deployment kept changing under the rollback (3 conflicts)".into())
}

/// The report rows of the Deployments as they are now; `results` overrides `available`/`failed`.
async fn deployment_reports(
    client: &Client,
    namespace: &str,
    names: &[String],
    results: &BTreeMap<String, String>,
) -> Result<Vec<DeploymentReport>, RolloutError> {
    let api: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let mut out = Vec::new();
    for name in names {
        let deployment =
            api.get(name).await.map_err(RolloutError::kube(format!("reading Deployment/{name}")))?;
        let spec = deployment.spec.clone().unwrap_or_default();
        let images = spec
            .template
            .spec
            .iter()
            .flat_map(|s| s.containers.iter())
            .filter_map(|c| c.image.clone())
            .collect();
        let selector = spec
            .selector
            .match_labels
            .iter()
            .flatten()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",");
        let mut running: Vec<String> = Vec::new();
        if let Ok(list) = pods.list(&ListParams::default().labels(&selector)).await {
            for status in list.items.iter().filter_map(|p| p.status.as_ref()) {
                for c in status.container_statuses.iter().flatten().filter(|c| c.ready) {
                    if !c.image_id.is_empty() && !running.contains(&c.image_id) {
                        running.push(c.image_id.clone());
                    }
                }
            }
        }
        running.sort();
        let default = match status::deployment_state(&deployment) {
            DeploymentState::Complete => "available",
            _ => "failed",
        };
        out.push(DeploymentReport {
            name: name.clone(),
            images,
            running,
            ready_replicas: deployment.status.as_ref().and_then(|s| s.ready_replicas).unwrap_or(0),
            replicas: spec.replicas.unwrap_or(1),
            revision: revision(&deployment).unwrap_or_default(),
            result: results.get(name).cloned().unwrap_or_else(|| default.to_string()),
        });
    }
    Ok(out)
}
