//! Wait conditions evaluated over observed objects (the way `kubectl rollout status` and
//! `kubectl wait --for=condition=complete` read them). Pure functions, no cluster.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

/// Container waiting reasons that do not cure themselves: waiting out the whole progress
/// deadline (600 s by default) for them only delays the rollback.
pub const FATAL_REASONS: &[&str] = &[
    "ImagePullBackOff",
    "ErrImagePull",
    "InvalidImageName",
    "CrashLoopBackOff",
    "CreateContainerConfigError",
    "CreateContainerError",
];

/// The first container of `pod` waiting for a [`FATAL_REASONS`] reason, as
/// `container <name>: <reason>: <message>`.
pub fn fatal_reason(pod: &Pod) -> Option<String> {
    let status = pod.status.as_ref()?;
    let containers =
        status.init_container_statuses.iter().flatten().chain(status.container_statuses.iter().flatten());
    for container in containers {
        let Some(waiting) = container.state.as_ref().and_then(|s| s.waiting.as_ref()) else { continue };
        let reason = waiting.reason.as_deref().unwrap_or_default();
        if FATAL_REASONS.contains(&reason) {
            let message = waiting.message.as_deref().filter(|m| !m.is_empty()).unwrap_or("no message");
            return Some(format!("container {}: {reason}: {message}", container.name));
        }
    }
    None
}

/// Fail fast: a pod that stays in a fatal waiting state (or a controller that keeps reporting a
/// failure, [`RolloutState::Stalled`]) for `after` fails the wait, instead of the whole progress
/// deadline. One that leaves the state starts over.
#[derive(Debug, Default)]
pub struct FailFast {
    after: Option<Duration>,
    since: HashMap<String, Instant>,
}

impl FailFast {
    /// `None` disables it.
    pub fn new(after: Option<Duration>) -> Self {
        Self { after, since: HashMap::new() }
    }

    /// Record what is seen `now` in a fatal state, as (subject, reason) pairs (`pod web-1`,
    /// `container web: CrashLoopBackOff: ...`); return why the wait fails when one has been
    /// fatal long enough.
    pub fn observe(&mut self, fatal: &[(String, String)], now: Instant) -> Option<String> {
        let after = self.after?;
        self.since.retain(|subject, _| fatal.iter().any(|(s, _)| s == subject));
        for (subject, reason) in fatal {
            let since = *self.since.entry(subject.clone()).or_insert(now);
            if now.duration_since(since) >= after {
                return Some(format!("{subject} {reason} (for {}s; failing fast)", after.as_secs()));
            }
        }
        None
    }
}

/// Where a workload's rollout stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RolloutState {
    /// Still rolling out; the text says what is awaited.
    Progressing(String),
    /// Every replica is updated and available.
    Complete,
    /// The controller gave up, the spec cannot be rolled out, or the Deployment is paused.
    Failed(String),
    /// The controller reports a failure it keeps retrying (`ReplicaFailure`: pod creation
    /// refused by admission, a quota, or an authorizer still syncing after an API server
    /// restart). It may clear on its own: it fails the wait only once it has lasted the
    /// fail-fast window, like a crash loop.
    Stalled(String),
    /// Its update strategy (`OnDelete`) replaces pods only when someone deletes them.
    NotAwaitable(String),
}

/// True when a condition was written after `since` (this run's change, in the API server's
/// clock). Conditions are stamped to the second, so one written in the same second as the change
/// may predate it: it does not count (a real failure is written again later).
fn written_after(time: Option<&Time>, since: Option<&Time>) -> bool {
    match (time, since) {
        (_, None) => true,
        (Some(time), Some(since)) => time.0.as_second() > since.0.as_second(),
        (None, Some(_)) => false,
    }
}

/// A Deployment's rollout the way `kubectl rollout status` reads it. `since`: when this run
/// changed it; conditions written before then describe an earlier change and are ignored.
pub fn deployment_state(deployment: &Deployment, since: Option<&Time>) -> RolloutState {
    let name = deployment.metadata.name.as_deref().unwrap_or_default();
    let spec = deployment.spec.clone().unwrap_or_default();
    if spec.paused == Some(true) {
        return RolloutState::Failed(format!(
            "paused (kubectl rollout pause): it will not roll out; resume it with \
             `kubectl rollout resume deployment/{name}`"
        ));
    }
    let generation = deployment.metadata.generation.unwrap_or(0);
    let Some(status) = deployment.status.as_ref() else {
        return RolloutState::Progressing("waiting for the controller to observe it".into());
    };
    if status.observed_generation.unwrap_or(0) < generation {
        return RolloutState::Progressing("waiting for the controller to observe the new spec".into());
    }
    for condition in status.conditions.iter().flatten() {
        if !written_after(condition.last_update_time.as_ref(), since) {
            continue;
        }
        let reason = condition.reason.as_deref().unwrap_or_default();
        if condition.type_ == "Progressing" && reason == "ProgressDeadlineExceeded" {
            return RolloutState::Failed(format!(
                "ProgressDeadlineExceeded: {}",
                condition.message.as_deref().unwrap_or("no progress within progressDeadlineSeconds")
            ));
        }
    }
    let wanted = spec.replicas.unwrap_or(1);
    let updated = status.updated_replicas.unwrap_or(0);
    let total = status.replicas.unwrap_or(0);
    let available = status.available_replicas.unwrap_or(0);
    if updated < wanted {
        RolloutState::Progressing(format!("{updated} of {wanted} replicas updated"))
    } else if total > updated {
        RolloutState::Progressing(format!("{} old replicas pending termination", total - updated))
    } else if available < updated {
        RolloutState::Progressing(format!("{available} of {updated} updated replicas available"))
    } else {
        RolloutState::Complete
    }
}

/// A ReplicaSet's `ReplicaFailure` condition (pod creation refused: admission, a quota, an
/// authorizer not yet synced), as `ReplicaFailure <reason>: <message>`. Read on the ReplicaSet of
/// the current revision rather than on the Deployment, whose copy of the condition is written once
/// and may carry the very second of the change (so it cannot be told from an earlier one).
pub fn replica_failure(set: &ReplicaSet) -> Option<String> {
    let conditions = set.status.as_ref()?.conditions.as_ref()?;
    let failure = conditions.iter().find(|c| c.type_ == "ReplicaFailure" && c.status == "True")?;
    Some(format!(
        "ReplicaFailure {}: {}",
        failure.reason.as_deref().unwrap_or_default(),
        failure.message.as_deref().unwrap_or("no message")
    ))
}

/// What StatefulSets and DaemonSets settle before their counts are read: an update strategy
/// other than `RollingUpdate` (`OnDelete`) is not awaitable, and a status not yet written for
/// this generation (`observed`: `None` without a status) is awaited.
fn before_counts(
    strategy: Option<&str>,
    observed: Option<Option<i64>>,
    generation: Option<i64>,
) -> Option<RolloutState> {
    if strategy.unwrap_or("RollingUpdate") != "RollingUpdate" {
        return Some(RolloutState::NotAwaitable(format!(
            "updateStrategy {}: pods are replaced only when deleted",
            strategy.unwrap_or_default()
        )));
    }
    match observed {
        None => Some(RolloutState::Progressing("waiting for the controller to observe it".into())),
        Some(seen) if seen.unwrap_or(0) < generation.unwrap_or(0) => {
            Some(RolloutState::Progressing("waiting for the controller to observe the new spec".into()))
        }
        Some(_) => None,
    }
}

/// A StatefulSet's rollout the way `kubectl rollout status` reads it: generation, ready and
/// updated replicas, `partition`, `updateRevision` against `currentRevision`.
pub fn statefulset_state(set: &StatefulSet) -> RolloutState {
    let spec = set.spec.clone().unwrap_or_default();
    let strategy = spec.update_strategy.clone().unwrap_or_default();
    let observed = set.status.as_ref().map(|s| s.observed_generation);
    if let Some(state) = before_counts(strategy.type_.as_deref(), observed, set.metadata.generation) {
        return state;
    }
    let Some(status) = set.status.as_ref() else { return RolloutState::Complete };
    let wanted = spec.replicas.unwrap_or(1);
    let ready = status.ready_replicas.unwrap_or(0);
    if ready < wanted {
        return RolloutState::Progressing(format!("{ready} of {wanted} pods ready"));
    }
    let partition = strategy.rolling_update.and_then(|r| r.partition).unwrap_or(0);
    if partition > 0 {
        let updated = status.updated_replicas.unwrap_or(0);
        return if updated < wanted - partition {
            RolloutState::Progressing(format!(
                "{updated} of {} pods updated (partition {partition})",
                wanted - partition
            ))
        } else {
            RolloutState::Complete
        };
    }
    match (&status.update_revision, &status.current_revision) {
        (Some(update), Some(current)) if update != current => RolloutState::Progressing(format!(
            "{} of {wanted} pods at revision {update}",
            status.updated_replicas.unwrap_or(0)
        )),
        _ => RolloutState::Complete,
    }
}

/// A DaemonSet's rollout the way `kubectl rollout status` reads it.
pub fn daemonset_state(set: &DaemonSet) -> RolloutState {
    let strategy = set.spec.as_ref().and_then(|s| s.update_strategy.clone()).unwrap_or_default();
    let observed = set.status.as_ref().map(|s| s.observed_generation);
    if let Some(state) = before_counts(strategy.type_.as_deref(), observed, set.metadata.generation) {
        return state;
    }
    let Some(status) = set.status.as_ref() else { return RolloutState::Complete };
    let desired = status.desired_number_scheduled;
    let updated = status.updated_number_scheduled.unwrap_or(0);
    let available = status.number_available.unwrap_or(0);
    if updated < desired {
        RolloutState::Progressing(format!("{updated} of {desired} pods updated"))
    } else if available < desired {
        RolloutState::Progressing(format!("{available} of {desired} updated pods available"))
    } else {
        RolloutState::Complete
    }
}

/// Where a Job stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobState {
    /// Still running (or not started).
    Running,
    /// Succeeded.
    Complete,
    /// Failed: the condition's reason and message.
    Failed(String),
}

/// Evaluate a Job from its conditions (`Complete`; `Failed` or `FailureTarget` with reason and
/// message) and, for a Job of one pod (see [`single_pod`]), from `pods` (the Job's own pods): one
/// that has `Succeeded` is the Job's success. The Job controller writes `Complete` about a second
/// later (it batches pod updates, kube-controller-manager's `syncJobBatchPeriod` of 1 s), so every
/// reader of a migration Job's state (the wait, validation's "another migration still running",
/// the migration's "already complete") reads it through this one function and they agree.
pub fn job_state<'a>(job: &Job, pods: impl IntoIterator<Item = &'a Pod>) -> JobState {
    for condition in job.status.iter().flat_map(|s| s.conditions.iter().flatten()) {
        if condition.status != "True" {
            continue;
        }
        let reason = condition.reason.as_deref().unwrap_or("Failed");
        match condition.type_.as_str() {
            "Complete" => return JobState::Complete,
            "Failed" | "FailureTarget" => {
                return JobState::Failed(match condition.message.as_deref() {
                    Some(message) if !message.is_empty() => format!("{reason}: {message}"),
                    _ => reason.to_string(),
                });
            }
            _ => {}
        }
    }
    let succeeded = |p: &Pod| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Succeeded");
    if single_pod(job) && pods.into_iter().any(succeeded) {
        return JobState::Complete;
    }
    JobState::Running
}

/// Whether the Job runs one pod to one success (`completions` and `parallelism` at most 1, not
/// indexed, no success policy): then that pod's success is the Job's.
pub fn single_pod(job: &Job) -> bool {
    let Some(spec) = job.spec.as_ref() else { return false };
    spec.completions.unwrap_or(1) <= 1
        && spec.parallelism.unwrap_or(1) <= 1
        && spec.completion_mode.as_deref().unwrap_or("NonIndexed") == "NonIndexed"
        && spec.success_policy.is_none()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn pod_waiting(reason: &str) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "p"},
            "status": {"containerStatuses": [{
                "name": "web", "image": "x", "imageID": "", "ready": false, "restartCount": 0,
                "state": {"waiting": {"reason": reason, "message": "pull access denied"}}
            }]}
        }))
        .unwrap()
    }

    #[test]
    fn fatal_reasons_are_recognised() {
        assert_eq!(
            fatal_reason(&pod_waiting("ImagePullBackOff")).as_deref(),
            Some("container web: ImagePullBackOff: pull access denied")
        );
        assert_eq!(fatal_reason(&pod_waiting("ContainerCreating")), None);
    }

    #[test]
    fn fail_fast_needs_the_state_to_last() {
        let start = Instant::now();
        let mut ff = FailFast::new(Some(Duration::from_secs(60)));
        let fatal = vec![("pod p1".to_string(), "container web: CrashLoopBackOff: x".to_string())];
        assert_eq!(ff.observe(&fatal, start), None);
        assert_eq!(ff.observe(&fatal, start + Duration::from_secs(30)), None);
        // The pod recovers, then falls back: the clock starts over.
        assert_eq!(ff.observe(&[], start + Duration::from_secs(40)), None);
        assert_eq!(ff.observe(&fatal, start + Duration::from_secs(50)), None);
        assert_eq!(ff.observe(&fatal, start + Duration::from_secs(100)), None);
        let why = ff.observe(&fatal, start + Duration::from_secs(111)).unwrap();
        assert!(why.contains("pod p1 container web: CrashLoopBackOff") && why.contains("60s"), "{why}");
        let mut off = FailFast::new(None);
        assert_eq!(off.observe(&fatal, start + Duration::from_secs(10_000)), None);
    }

    fn deployment(generation: i64, status: serde_json::Value) -> Deployment {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "generation": generation},
            "spec": {"replicas": 2, "selector": {}, "template": {}},
            "status": status,
        }))
        .unwrap()
    }

    #[test]
    fn deployment_states() {
        let d = deployment(2, json!({"observedGeneration": 1}));
        assert!(matches!(deployment_state(&d, None), RolloutState::Progressing(_)));
        let d = deployment(
            2,
            json!({"observedGeneration": 2, "replicas": 3, "updatedReplicas": 2, "availableReplicas": 3}),
        );
        assert_eq!(
            deployment_state(&d, None),
            RolloutState::Progressing("1 old replicas pending termination".into())
        );
        let d = deployment(
            2,
            json!({"observedGeneration": 2, "replicas": 2, "updatedReplicas": 2, "availableReplicas": 1}),
        );
        assert_eq!(
            deployment_state(&d, None),
            RolloutState::Progressing("1 of 2 updated replicas available".into())
        );
        let d = deployment(
            2,
            json!({"observedGeneration": 2, "replicas": 2, "updatedReplicas": 2, "availableReplicas": 2}),
        );
        assert_eq!(deployment_state(&d, None), RolloutState::Complete);
        let d = deployment(
            2,
            json!({"observedGeneration": 2, "replicas": 3, "updatedReplicas": 1, "conditions": [
                {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded",
                 "message": "ReplicaSet \"web-1\" has timed out progressing."}]}),
        );
        assert!(matches!(deployment_state(&d, None), RolloutState::Failed(m) if m.contains("timed out")));
    }

    #[test]
    fn a_replica_failure_is_read_on_the_replicaset() {
        let set: ReplicaSet = serde_json::from_value(json!({
            "metadata": {"name": "web-1"},
            "status": {"replicas": 0, "conditions": [
                {"type": "ReplicaFailure", "status": "True", "reason": "FailedCreate",
                 "message": "pods \"web-1-x\" is forbidden: exceeded quota: pods"}]},
        }))
        .unwrap();
        assert_eq!(
            replica_failure(&set).as_deref(),
            Some("ReplicaFailure FailedCreate: pods \"web-1-x\" is forbidden: exceeded quota: pods")
        );
        let cleared: ReplicaSet =
            serde_json::from_value(json!({"metadata": {"name": "web-1"}, "status": {"replicas": 1}}))
                .unwrap();
        assert_eq!(replica_failure(&cleared), None);
    }

    #[test]
    fn conditions_older_than_the_change_do_not_count() {
        let d = deployment(
            3,
            json!({"observedGeneration": 3, "replicas": 2, "updatedReplicas": 2, "availableReplicas": 1,
                   "conditions": [{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded",
                                   "lastUpdateTime": "2026-01-01T00:00:10Z"}]}),
        );
        let at = |s: &str| Time(s.parse().unwrap());
        assert!(matches!(
            deployment_state(&d, Some(&at("2026-01-01T00:00:10Z"))),
            RolloutState::Progressing(_)
        ));
        assert!(matches!(deployment_state(&d, Some(&at("2026-01-01T00:00:09Z"))), RolloutState::Failed(_)));
    }

    #[test]
    fn a_paused_deployment_fails_at_once() {
        let mut d = deployment(2, json!({"observedGeneration": 2}));
        d.spec.as_mut().unwrap().paused = Some(true);
        assert!(
            matches!(deployment_state(&d, None), RolloutState::Failed(m) if m.contains("rollout resume"))
        );
    }

    #[test]
    fn statefulset_and_daemonset_states() {
        let sts: StatefulSet = serde_json::from_value(json!({
            "metadata": {"name": "db", "generation": 2},
            "spec": {"replicas": 2, "selector": {}, "serviceName": "db", "template": {}},
            "status": {"observedGeneration": 2, "replicas": 2, "readyReplicas": 2, "updatedReplicas": 1,
                       "currentRevision": "db-1", "updateRevision": "db-2"}
        }))
        .unwrap();
        assert!(matches!(statefulset_state(&sts), RolloutState::Progressing(m) if m.contains("db-2")));
        let mut done = sts.clone();
        done.status.as_mut().unwrap().current_revision = Some("db-2".into());
        assert_eq!(statefulset_state(&done), RolloutState::Complete);
        let mut on_delete = sts;
        on_delete.spec.as_mut().unwrap().update_strategy =
            Some(serde_json::from_value(json!({"type": "OnDelete"})).unwrap());
        assert!(matches!(statefulset_state(&on_delete), RolloutState::NotAwaitable(_)));
        let ds: DaemonSet = serde_json::from_value(json!({
            "metadata": {"name": "fb", "generation": 1},
            "spec": {"selector": {}, "template": {}},
            "status": {"observedGeneration": 1, "desiredNumberScheduled": 1, "currentNumberScheduled": 1,
                       "numberMisscheduled": 0, "numberReady": 0, "updatedNumberScheduled": 1, "numberAvailable": 0}
        }))
        .unwrap();
        assert!(matches!(daemonset_state(&ds), RolloutState::Progressing(m) if m.contains("0 of 1")));
    }

    #[test]
    fn job_states() {
        let job = |conditions: serde_json::Value| -> Job {
            serde_json::from_value(json!({"metadata": {"name": "m"}, "status": {"conditions": conditions}}))
                .unwrap()
        };
        assert_eq!(job_state(&job(json!([])), []), JobState::Running);
        assert_eq!(job_state(&job(json!([{"type": "Complete", "status": "True"}])), []), JobState::Complete);
        assert_eq!(
            job_state(
                &job(json!([{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
                "message": "Job has reached the specified backoff limit"}])),
                []
            ),
            JobState::Failed("BackoffLimitExceeded: Job has reached the specified backoff limit".into())
        );
    }

    #[test]
    fn a_job_of_one_pod_is_complete_when_its_pod_succeeded() {
        let job = |spec: serde_json::Value| -> Job {
            serde_json::from_value(json!({"metadata": {"name": "m"}, "spec": spec})).unwrap()
        };
        let pod =
            |phase: &str| -> Pod { serde_json::from_value(json!({"status": {"phase": phase}})).unwrap() };
        let template = json!({"spec": {"containers": []}});
        let one = job(json!({"template": template}));
        let (succeeded, failed, running) = (pod("Succeeded"), pod("Failed"), pod("Running"));
        assert_eq!(job_state(&one, [&failed, &succeeded]), JobState::Complete);
        assert_eq!(job_state(&one, [&failed, &running]), JobState::Running);
        assert_eq!(job_state(&one, []), JobState::Running);
        for many in [
            json!({"template": template, "completions": 3}),
            json!({"template": template, "parallelism": 2}),
            json!({"template": template, "completionMode": "Indexed"}),
            json!({"template": template, "successPolicy": {"rules": [{"succeededCount": 1}]}}),
        ] {
            assert_eq!(job_state(&job(many.clone()), [&succeeded]), JobState::Running, "{many}");
        }
        assert!(single_pod(&job(json!({"template": template, "completions": 1, "parallelism": 1}))));
    }
}
