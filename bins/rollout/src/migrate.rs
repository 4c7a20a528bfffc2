//! Step 3, the migration gate: the per-template copy of the Job marked
//! `statuspage.io/role: migration-template` runs and is waited for before any workload changes.
//! Already complete for this template: not run again; failed before: deleted and run again;
//! running (an earlier run was stopped): waited for.

use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{DeleteParams, ListParams};
use kube::{Api, ResourceExt as _};
use tokio::time::Instant;

use crate::cluster::Cluster;
use crate::report::{Action, MigrationResult};
use crate::status::{self, JobState};
use crate::stop::StopReason;
use crate::validate::Resolved;
use crate::wait::{self, Kind, Settled, Target};
use crate::{Ctx, RolloutError, apply, diagnose};

/// How the migration ended.
#[derive(Debug)]
pub enum Migrated {
    /// Done (now or earlier).
    Done(MigrationResult),
    /// Failed: why.
    Failed(String),
    /// Stopped while it ran.
    Stopped(StopReason),
}

/// Where a Job stands, read as the wait reads it: its conditions, and for a Job of one pod its
/// pods (listed by the `batch.kubernetes.io/job-name` label, owned by the Job's UID), see
/// [`status::job_state`]. Errors: the pod list failing ([`RolloutError`] naming it).
pub async fn job_state(ctx: &Ctx<'_>, job: &Job) -> Result<JobState, RolloutError> {
    let conditions = status::job_state(job, []);
    if conditions != JobState::Running || !status::single_pod(job) {
        return Ok(conditions);
    }
    let name = job.metadata.name.as_deref().unwrap_or_default();
    let namespace = job.metadata.namespace.as_deref().unwrap_or(&ctx.namespace);
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), namespace);
    let params = ListParams::default().labels(&format!("batch.kubernetes.io/job-name={name}"));
    let list =
        pods.list(&params).await.map_err(RolloutError::kube(format!("listing the pods of Job/{name}")))?;
    let uid = job.metadata.uid.as_deref().unwrap_or_default();
    let owned = list.items.iter().filter(|p| p.owner_references().iter().any(|o| o.uid == uid));
    Ok(status::job_state(job, owned))
}

/// Run the migration Job and wait for it.
pub async fn migrate(ctx: &Ctx<'_>, cluster: &Cluster, job: &Resolved) -> Result<Migrated, RolloutError> {
    let name = job.object.name().to_string();
    let jobs: Api<Job> = Api::namespaced(ctx.client.clone(), &job.namespace());
    let existing = jobs.get_opt(&name).await.map_err(RolloutError::kube(format!("reading Job/{name}")))?;
    let state = match &existing {
        Some(j) => Some(job_state(ctx, j).await?),
        None => None,
    };
    let target = match existing.as_ref().zip(state) {
        Some((_, JobState::Complete)) => {
            ctx.out.line(format!("  Job/{name} already completed for this template: not run again"));
            return Ok(Migrated::Done(MigrationResult::AlreadyComplete));
        }
        Some((running, JobState::Running)) => {
            ctx.out.line(format!("  Job/{name} is already running: waiting for it"));
            job_target(&name, running)
        }
        Some((_, JobState::Failed(_))) => {
            ctx.out.line(format!("  Job/{name} failed before: deleting it to run it again"));
            delete_and_wait(ctx, &jobs, &name).await?;
            start(ctx, job).await?
        }
        None => start(ctx, job).await?,
    };
    let started = Instant::now();
    let waited = wait::wait(
        cluster,
        std::slice::from_ref(&target),
        ctx.config.timeout,
        ctx.config.fail_fast_after,
        &ctx.stop,
        &ctx.out,
    )
    .await;
    if let Some(reason) = waited.stopped {
        return Ok(Migrated::Stopped(reason));
    }
    match waited.settled.first().map(|(_, s)| s) {
        Some(Settled::Complete) => {
            ctx.out.line(format!("  Job/{name} complete in {:.1}s", started.elapsed().as_secs_f64()));
            Ok(Migrated::Done(MigrationResult::Complete))
        }
        Some(Settled::Failed(why)) => {
            ctx.out.error(format!("migration Job/{name} failed: {why}"));
            let selector = format!("batch.kubernetes.io/job-name={name}");
            for line in diagnose::pods(&ctx.client, &job.namespace(), &selector, true).await {
                ctx.out.line(format!("  {line}"));
            }
            Ok(Migrated::Failed(why.clone()))
        }
        _ => Ok(Migrated::Failed("the Job could not be awaited".into())),
    }
}

fn job_target(name: &str, job: &Job) -> Target {
    Target {
        kind: Kind::Job,
        name: name.to_string(),
        uid: job.metadata.uid.clone().unwrap_or_default(),
        generation: 0,
        since: None,
    }
}

async fn start(ctx: &Ctx<'_>, job: &Resolved) -> Result<Target, RolloutError> {
    let fresh = Resolved { live: None, ..job.clone() };
    let (action, applied) = apply::apply(ctx, &fresh, &job.object.object).await?;
    debug_assert_eq!(action, Action::Created);
    apply::target(job, &applied, action, &ctx.config.field_manager).ok_or_else(|| RolloutError::Refused {
        object: job.object.label(),
        message: "is not a batch/v1 Job".into(),
    })
}

async fn delete_and_wait(ctx: &Ctx<'_>, jobs: &Api<Job>, name: &str) -> Result<(), RolloutError> {
    let what = || format!("deleting the failed Job/{name}");
    jobs.delete(name, &DeleteParams::foreground()).await.map_err(RolloutError::kube(what()))?;
    let deadline = Instant::now() + ctx.config.timeout;
    while jobs.get_opt(name).await.map_err(RolloutError::kube(what()))?.is_some() {
        if Instant::now() > deadline {
            return Err(RolloutError::Refused {
                object: format!("Job/{name}"),
                message: "failed before and was not deleted within the timeout; delete it by hand".into(),
            });
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}
