//! Roll a rendered kustomize overlay out to Kubernetes.
//!
//! [`run`] follows the README's steps, one module each:
//! 1. [`validate`]: discovery, local checks, server-side dry run, live checks; nothing changes;
//! 2. [`lease`]: one rollout per namespace, a short Lease renewed in the background;
//!    [`configure`]: everything that is not a workload;
//! 3. [`migrate`]: the migration gate;
//! 4. [`workloads`]: apply the workloads; [`wait`]: await every one from watch events;
//! 5. [`diagnose`] and [`rollback`] on failure (templates and configuration);
//! 6. [`prune`] on success; [`report`].
//!
//! A rollout that fails in the cluster is an [`Outcome`]; errors are bad input and API failures
//! before anything changed. Every wait is bounded by [`RolloutConfig::timeout`], and stops on the
//! [`stop::Stop`] flag (a signal, a lost Lease).

pub mod adopt;
pub mod apply;
pub mod applyset;
pub mod cli;
pub mod cluster;
pub mod configure;
pub mod diagnose;
pub mod diff;
pub mod error;
pub mod lease;
pub mod manifests;
pub mod migrate;
pub mod outcome;
pub mod prune;
pub mod release;
pub mod report;
pub mod reporter;
pub mod rollback;
pub mod selector;
pub mod status;
pub mod stop;
pub mod validate;
pub mod wait;
pub mod workloads;

use std::path::PathBuf;
use std::time::Duration;

use kube::Client;
use kube::api::PatchParams;
use kube::discovery::Discovery;
use statuspage_common::release::Release;

pub use error::RolloutError;
pub use manifests::Object;
pub use outcome::{Outcome, Verdict};
use report::{Action, MigrationResult, Phases, Report, WorkloadReport, WorkloadResult};
use reporter::Reporter;
use stop::Stop;
use validate::Plan;
use wait::{Settled, Target};

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
    /// Fail a wait once a pod has been in a fatal waiting state (ImagePullBackOff,
    /// CrashLoopBackOff, …) this long, instead of waiting out the progress deadline. None: never.
    pub fail_fast_after: Option<Duration>,
    /// After a successful rollout, delete what this field manager applied earlier (objects
    /// matching `prune_selector`) that the render no longer has.
    pub prune: bool,
    /// Label selector of the release's objects, for pruning (validated).
    pub prune_selector: String,
    /// The release the render must run (`--release`).
    pub release: Option<Release>,
}

/// What every step shares.
pub struct Ctx<'a> {
    /// The API client.
    pub client: Client,
    /// The configuration.
    pub config: &'a RolloutConfig,
    /// The rollout's namespace.
    pub namespace: String,
    /// Where progress goes.
    pub out: Reporter,
    /// Set on a signal or a lost Lease.
    pub stop: Stop,
    /// Server-side apply, forced, with the field manager.
    pub apply: PatchParams,
    /// The run's clock: each step marks its end.
    pub phases: Phases,
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

/// A client from the kubeconfig and the API server's discovery, retried while the server
/// cannot be reached.
async fn connect() -> Result<(Client, Discovery), RolloutError> {
    let config =
        kube::Config::infer().await.map_err(|e| RolloutError::Kubeconfig { detail: e.to_string() })?;
    let url = config.cluster_url.to_string();
    let client = Client::try_from(config).map_err(|e| RolloutError::Kubeconfig { detail: e.to_string() })?;
    let attempts = 3;
    let mut last = String::new();
    for attempt in 1..=attempts {
        match Discovery::new(client.clone()).run_aggregated().await {
            Ok(discovery) => return Ok((client, discovery)),
            Err(err @ kube::Error::Api(_)) => {
                return Err(RolloutError::Kube {
                    what: format!("discovering the resources of {url}"),
                    cause: err,
                });
            }
            Err(err) => last = error::describe(&err),
        }
        if attempt < attempts {
            tokio::time::sleep(Duration::from_secs(u64::from(attempt))).await;
        }
    }
    Err(RolloutError::Unreachable { url, detail: last, attempts })
}

/// Roll the configured manifests out. `Ok` for every run that got as far as a verdict (also a
/// failed or rolled-back one); `Err` for bad input and API failures before anything changed.
pub async fn run(config: &RolloutConfig, stop: &Stop) -> Result<Outcome, RolloutError> {
    let out = Reporter::detect();
    let phases = Phases::start();
    let (text, origin) = render(&config.input, config.timeout).await?;
    let objects = manifests::parse(&text, &origin)?;
    phases.mark("render");
    let Some(namespace) = config.namespace.clone().or_else(|| manifests::declared_namespace(&objects)) else {
        return Err(RolloutError::BadInput {
            flag: "--namespace",
            value: String::new(),
            fix: "the render has no single Namespace object: pass --namespace".into(),
        });
    };
    let (client, discovery) = connect().await?;
    phases.mark("connect");
    let ctx = Ctx {
        client: client.clone(),
        config,
        namespace: namespace.clone(),
        out,
        stop: stop.clone(),
        apply: PatchParams::apply(&config.field_manager).force(),
        phases,
    };
    let group = out.group(&format!("validate {} objects from {origin}", objects.len()));
    let plan = validate::validate(&ctx, objects, &discovery).await?;
    out.line("validated: the API server accepts every object");
    drop(group);
    ctx.phases.mark("validate");
    // A dry run, or a stop before any change, ends here and leaves nothing behind.
    let ended = if config.dry_run { Some(Verdict::DryRun) } else { stop.reason().map(Verdict::Stopped) };
    if let Some(verdict) = ended {
        validate::delete_namespaces(&ctx, &plan.created_namespaces).await;
        return Ok(timed(&ctx, Outcome::new(plan.report.clone(), verdict)));
    }
    let lease = lease::acquire(&client, &namespace, stop).await?;
    ctx.phases.mark("lock");
    let outcome = change(&ctx, &plan).await;
    lease::release(&client, &namespace, lease).await;
    Ok(timed(&ctx, outcome))
}

/// The outcome with the run's phases in its report, also printed as one line.
fn timed(ctx: &Ctx<'_>, mut outcome: Outcome) -> Outcome {
    outcome.report.phases = ctx.phases.taken();
    ctx.out.line(format!("time: {}", report::phases_line(&outcome.report.phases)));
    outcome
}

/// Steps 2 to 6, under the Lease. An API failure on the way is an outcome too (exit 3 with the
/// report), after rolling back what was changed.
async fn change(ctx: &Ctx<'_>, plan: &Plan) -> Outcome {
    let mut report = plan.report.clone();
    let mut kinds: std::collections::BTreeSet<wait::Kind> = plan
        .objects
        .iter()
        .filter(|i| i.object.is_awaited())
        .filter_map(|i| wait::Kind::of(&i.object.gvk.group, &i.object.gvk.kind))
        .collect();
    if plan.migration.is_some() {
        kinds.insert(wait::Kind::Job);
    }
    let cluster = cluster::Cluster::watch(&ctx.client, &ctx.namespace, ctx.out, &kinds);
    let group = ctx.out.group("apply configuration");
    let configured = configure::configure(ctx, plan, &mut report).await;
    drop(group);
    ctx.phases.mark("configure");
    if let Err(err) = configured {
        return api_failed(ctx, plan, report, &[], err).await;
    }
    if let Some(job) = &plan.migration {
        let group = ctx.out.group(&format!("migration {}", job.object.name()));
        let migrated = migrate::migrate(ctx, &cluster, job).await;
        drop(group);
        ctx.phases.mark("migrate");
        let verdict = match migrated {
            Ok(migrate::Migrated::Done(result)) => {
                set_migration(&mut report, result);
                None
            }
            Ok(migrate::Migrated::Failed(reason)) => {
                set_migration(&mut report, MigrationResult::Failed);
                Some(Verdict::MigrationFailed { job: job.object.name().to_string(), reason })
            }
            Ok(migrate::Migrated::Stopped(reason)) => {
                set_migration(&mut report, MigrationResult::Stopped);
                Some(Verdict::Stopped(reason))
            }
            Err(err) => return api_failed(ctx, plan, report, &[], err).await,
        };
        if let Some(verdict) = verdict {
            mark_workloads(plan, &mut report, Action::Pending);
            return Outcome::new(report, verdict);
        }
    }
    let group = ctx.out.group("apply workloads");
    let mut targets = Vec::new();
    let applied = workloads::apply_workloads(ctx, plan, &mut report, &mut targets).await;
    drop(group);
    ctx.phases.mark("apply");
    if let Err(err) = applied {
        return api_failed(ctx, plan, report, &targets, err).await;
    }
    let group = ctx.out.group(&format!(
        "wait for {} workloads (at most {}s)",
        targets.len(),
        ctx.config.timeout.as_secs()
    ));
    let waited =
        wait::wait(&cluster, &targets, ctx.config.timeout, ctx.config.fail_fast_after, &ctx.stop, &ctx.out)
            .await;
    drop(group);
    ctx.phases.mark("wait");
    finish(ctx, plan, report, &cluster, &targets, waited).await
}

fn set_migration(report: &mut Report, result: MigrationResult) {
    if let Some(m) = report.migration.as_mut() {
        m.result = result;
    }
}

fn mark_workloads(plan: &Plan, report: &mut Report, action: Action) {
    for (index, item) in plan.objects.iter().enumerate() {
        if item.object.is_workload() {
            report.objects[index].action = action;
        }
    }
}

/// The verdict of the workload wait: success (then prune), stop, or failure (then diagnose and
/// roll back).
async fn finish(
    ctx: &Ctx<'_>,
    plan: &Plan,
    mut report: Report,
    cluster: &cluster::Cluster,
    targets: &[Target],
    waited: wait::Waited,
) -> Outcome {
    let failures = waited.failures();
    let results = |failed: WorkloadResult| {
        targets
            .iter()
            .map(|t| {
                let result = match waited.settled.iter().find(|(s, _)| s.label() == t.label()).map(|(_, s)| s)
                {
                    Some(Settled::Complete) => WorkloadResult::Available,
                    Some(Settled::NotAwaitable(_)) => WorkloadResult::NotAwaited,
                    Some(Settled::Failed(_)) => failed,
                    None => WorkloadResult::Stopped,
                };
                match waited.seen.get(&t.label()) {
                    Some(seen) => WorkloadReport { result, ..seen.clone() },
                    None => workloads::report(cluster, t, result),
                }
            })
            .collect::<Vec<_>>()
    };
    if let Some(reason) = waited.stopped.clone() {
        report.workloads = results(WorkloadResult::Failed);
        ctx.out.error(format!("stopped: {reason}"));
        return Outcome::new(with_release(ctx, report), Verdict::Stopped(reason));
    }
    if failures.is_empty() {
        if let Err(err) = prune_now(ctx, plan, &mut report).await {
            report.workloads = results(WorkloadResult::Failed);
            let undone = "the workloads had rolled out and were left as they are; the objects not pruned \
                          are still there (a rerun prunes them)"
                .to_string();
            let verdict = Verdict::ApiFailed { reason: err.to_string(), undone };
            return Outcome::new(with_release(ctx, report), verdict);
        }
        report.workloads = results(WorkloadResult::Failed);
        return Outcome::new(with_release(ctx, report), Verdict::Deployed);
    }
    let reason =
        failures.iter().map(|(t, why)| format!("{}: {why}", t.label())).collect::<Vec<_>>().join("; ");
    diagnose_failures(ctx, cluster, &failures).await;
    ctx.phases.mark("diagnose");
    if !ctx.config.rollback {
        ctx.out.line("--no-rollback: leaving the workloads as they are");
        report.workloads = results(WorkloadResult::Failed);
        return Outcome::new(with_release(ctx, report), Verdict::Failed { reason });
    }
    roll_back(ctx, plan, report, cluster, targets, reason).await
}

async fn prune_now(ctx: &Ctx<'_>, plan: &Plan, report: &mut Report) -> Result<(), RolloutError> {
    if plan.to_prune.is_empty() {
        return Ok(());
    }
    let deleted = prune::delete(&ctx.client, &ctx.namespace, &plan.to_prune).await;
    ctx.phases.mark("prune");
    deleted.map_err(RolloutError::kube("pruning"))?;
    for entry in report.objects.iter_mut().filter(|o| o.action == Action::WouldPrune) {
        ctx.out.line(format!("  {}/{} pruned", entry.kind, entry.name));
        entry.action = Action::Pruned;
    }
    Ok(())
}

async fn diagnose_failures(ctx: &Ctx<'_>, cluster: &cluster::Cluster, failures: &[(Target, String)]) {
    for (target, why) in failures {
        let _group = ctx.out.group(&format!("diagnose {}", target.label()));
        ctx.out.error(format!("{}: {why}", target.label()));
        let pods = wait::current_pods(cluster, target);
        let selector = pods
            .first()
            .and_then(|p| p.metadata.labels.clone())
            .map(|labels| {
                labels
                    .iter()
                    .filter(|(k, _)| {
                        !matches!(
                            k.as_str(),
                            "pod-template-hash"
                                | "controller-revision-hash"
                                | "pod-template-generation"
                                | "apps.kubernetes.io/pod-index"
                                | "statefulset.kubernetes.io/pod-name"
                        )
                    })
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .unwrap_or_default();
        if selector.is_empty() {
            ctx.out.line("  no pods of the new revision were created");
            for event in diagnose::warning_events(&ctx.client, &ctx.namespace, &target.name).await {
                ctx.out.line(format!("  event: {event}"));
            }
            continue;
        }
        for line in diagnose::pods(&ctx.client, &ctx.namespace, &selector, false).await {
            ctx.out.line(format!("  {line}"));
        }
    }
}

/// Put back every changed workload and the configuration, and wait for the workloads.
async fn roll_back(
    ctx: &Ctx<'_>,
    plan: &Plan,
    mut report: Report,
    cluster: &cluster::Cluster,
    targets: &[Target],
    reason: String,
) -> Outcome {
    let _group = ctx.out.group("roll back");
    let done = rollback::rollback(ctx, plan, targets).await;
    let mut errors = done.errors.clone();
    errors.extend(configure::restore(ctx, plan, &mut report).await);
    let waited = wait::wait(cluster, &done.targets, ctx.config.timeout, None, &ctx.stop, &ctx.out).await;
    ctx.phases.mark("roll back");
    errors.extend(waited.failures().iter().map(|(t, why)| format!("{}: {why}", t.label())));
    report.workloads = targets
        .iter()
        .map(|t| {
            let result = if errors.iter().any(|e| e.starts_with(&t.label())) {
                WorkloadResult::RollbackFailed
            } else if done.targets.iter().any(|d| d.label() == t.label()) {
                WorkloadResult::RolledBack
            } else if done.created.contains(&t.label()) {
                WorkloadResult::NotRolledBack
            } else if t.since.is_none() {
                WorkloadResult::Available
            } else {
                WorkloadResult::Failed
            };
            let current = done.targets.iter().find(|d| d.label() == t.label()).unwrap_or(t);
            workloads::report(cluster, current, result)
        })
        .collect();
    let report = with_release(ctx, report);
    if let Some(stopped) = waited.stopped {
        return Outcome::new(report, Verdict::Stopped(stopped));
    }
    if !errors.is_empty() {
        return Outcome::new(report, Verdict::RollbackFailed { reason, rollback: errors.join("; ") });
    }
    if done.targets.is_empty() {
        return Outcome::new(
            report,
            Verdict::Failed { reason: format!("{reason} (nothing to roll back to)") },
        );
    }
    Outcome::new(report, Verdict::RolledBack { reason })
}

/// An API failure after the cluster was changed: put back the configuration and the workloads
/// this run had applied (`changed`), without waiting (the API is failing), report, exit 3. The
/// verdict says what was put back, or what failed doing it.
async fn api_failed(
    ctx: &Ctx<'_>,
    plan: &Plan,
    mut report: Report,
    changed: &[Target],
    err: RolloutError,
) -> Outcome {
    ctx.out.error(err.to_string());
    let undone = if ctx.config.rollback {
        let _group = ctx.out.group("roll back");
        let undone = put_back(ctx, plan, &mut report, changed).await;
        ctx.phases.mark("roll back");
        undone
    } else {
        "nothing was put back (--no-rollback): the namespace is as this run left it".into()
    };
    Outcome::new(report, Verdict::ApiFailed { reason: err.to_string(), undone })
}

/// Put back what this run changed (the workloads in `changed`, and the configuration); mark those
/// objects `restored` and the workloads never reached `pending` in the report. Returns the
/// sentence for the verdict.
async fn put_back(ctx: &Ctx<'_>, plan: &Plan, report: &mut Report, changed: &[Target]) -> String {
    let done = rollback::rollback(ctx, plan, changed).await;
    let mut errors = done.errors;
    errors.extend(configure::restore(ctx, plan, report).await);
    for (item, entry) in plan.objects.iter().zip(report.objects.iter_mut()) {
        let label = item.object.label();
        if done.targets.iter().any(|t| t.label() == label) {
            entry.action = Action::Restored;
        } else if item.object.is_workload()
            && matches!(entry.action, Action::WouldCreate | Action::WouldConfigure)
        {
            entry.action = Action::Pending;
        }
    }
    let restored: Vec<String> = report
        .objects
        .iter()
        .filter(|o| o.action == Action::Restored)
        .map(|o| format!("{}/{}", o.kind, o.name))
        .collect();
    match (errors.is_empty(), restored.is_empty()) {
        (true, true) => "nothing this run changed had to be put back".into(),
        (true, false) => format!("put back as before this run: {}", restored.join(", ")),
        (false, _) => {
            format!(
                "putting this run's changes back failed too: {}. Look at the namespace now",
                errors.join("; ")
            )
        }
    }
}

fn with_release(ctx: &Ctx<'_>, mut report: Report) -> Report {
    if let Some(release) = &ctx.config.release {
        report.release = release::compare(release, &report.workloads);
    }
    report
}
