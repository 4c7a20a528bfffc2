//! Wait conditions evaluated over observed objects (the way `kubectl rollout status` and
//! `kubectl wait --for=condition=complete` read them). Pure functions, no cluster.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;

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

/// Fail fast: a pod that stays in a fatal waiting state for `after` fails the wait, instead of
/// the whole progress deadline. A pod that leaves the state starts over.
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

    /// Record the pods seen `now` in a fatal state (pod name, reason); return why the wait
    /// fails when one has been fatal long enough.
    pub fn observe(&mut self, fatal: &[(String, String)], now: Instant) -> Option<String> {
        let after = self.after?;
        self.since.retain(|pod, _| fatal.iter().any(|(p, _)| p == pod));
        for (pod, reason) in fatal {
            let since = *self.since.entry(pod.clone()).or_insert(now);
            if now.duration_since(since) >= after {
                return Some(format!("pod {pod} {reason} (for {}s; failing fast)", after.as_secs()));
            }
        }
        None
    }
}

/// Where a Deployment's rollout stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeploymentState {
    /// Still rolling out; the text says what is awaited.
    Progressing(String),
    /// Every replica is updated and available.
    Complete,
    /// The controller gave up (`ProgressDeadlineExceeded`) or the spec cannot be rolled out.
    Failed(String),
}

/// Evaluate a Deployment's rollout from its status.
pub fn deployment_state(deployment: &Deployment) -> DeploymentState {
    let generation = deployment.metadata.generation.unwrap_or(0);
    let Some(status) = deployment.status.as_ref() else {
        return DeploymentState::Progressing("waiting for the controller to observe it".into());
    };
    if status.observed_generation.unwrap_or(0) < generation {
        return DeploymentState::Progressing("waiting for the controller to observe the new spec".into());
    }
    for condition in status.conditions.iter().flatten() {
        let reason = condition.reason.as_deref().unwrap_or_default();
        if condition.type_ == "Progressing" && reason == "ProgressDeadlineExceeded" {
            return DeploymentState::Failed(format!(
                "ProgressDeadlineExceeded: {}",
                condition.message.as_deref().unwrap_or("no progress within progressDeadlineSeconds")
            ));
        }
        if condition.type_ == "ReplicaFailure" && condition.status == "True" {
            return DeploymentState::Failed(format!(
                "ReplicaFailure {reason}: {}",
                condition.message.as_deref().unwrap_or_default()
            ));
        }
    }
    let wanted = deployment.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let updated = status.updated_replicas.unwrap_or(0);
    let total = status.replicas.unwrap_or(0);
    let available = status.available_replicas.unwrap_or(0);
    if updated < wanted {
        DeploymentState::Progressing(format!("{updated} of {wanted} replicas updated"))
    } else if total > updated {
        DeploymentState::Progressing(format!("{} old replicas pending termination", total - updated))
    } else if available < updated {
        DeploymentState::Progressing(format!("{available} of {updated} updated replicas available"))
    } else {
        DeploymentState::Complete
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

/// Evaluate a Job from its conditions.
pub fn job_state(job: &Job) -> JobState {
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
    JobState::Running
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
        let fatal = vec![("p1".to_string(), "container web: CrashLoopBackOff: x".to_string())];
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
        assert!(matches!(deployment_state(&d), DeploymentState::Progressing(_)));
        let d = deployment(
            2,
            json!({"observedGeneration": 2, "replicas": 3, "updatedReplicas": 2, "availableReplicas": 3}),
        );
        assert_eq!(
            deployment_state(&d),
            DeploymentState::Progressing("1 old replicas pending termination".into())
        );
        let d = deployment(
            2,
            json!({"observedGeneration": 2, "replicas": 2, "updatedReplicas": 2, "availableReplicas": 1}),
        );
        assert_eq!(
            deployment_state(&d),
            DeploymentState::Progressing("1 of 2 updated replicas available".into())
        );
        let d = deployment(
            2,
            json!({"observedGeneration": 2, "replicas": 2, "updatedReplicas": 2, "availableReplicas": 2}),
        );
        assert_eq!(deployment_state(&d), DeploymentState::Complete);
        let d = deployment(
            2,
            json!({"observedGeneration": 2, "replicas": 3, "updatedReplicas": 1, "conditions": [
                {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded",
                 "message": "ReplicaSet \"web-1\" has timed out progressing."}]}),
        );
        assert!(matches!(deployment_state(&d), DeploymentState::Failed(m) if m.contains("timed out")));
    }

    #[test]
    fn job_states() {
        let job = |conditions: serde_json::Value| -> Job {
            serde_json::from_value(json!({"metadata": {"name": "m"}, "status": {"conditions": conditions}}))
                .unwrap()
        };
        assert_eq!(job_state(&job(json!([]))), JobState::Running);
        assert_eq!(job_state(&job(json!([{"type": "Complete", "status": "True"}]))), JobState::Complete);
        assert_eq!(
            job_state(&job(json!([{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
                "message": "Job has reached the specified backoff limit"}]))),
            JobState::Failed("BackoffLimitExceeded: Job has reached the specified backoff limit".into())
        );
    }
}
