//! The wait driver: every workload (and the migration Job) awaited concurrently from watch
//! events, bounded by `--timeout`, stopped by a signal or a lost Lease. A target counts only once
//! the store holds the object this run wrote (its uid and at least its generation), and its
//! conditions only when written after this run's change: nothing from before decides.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt as _;
use tokio::time::Instant;

use crate::cluster::Cluster;
use crate::report::{WorkloadReport, WorkloadResult};
use crate::reporter::Reporter;
use crate::status::{self, FailFast, JobState, RolloutState};
use crate::stop::{Stop, StopReason};
use crate::workloads;

/// The kinds the driver awaits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// apps/v1 Deployment.
    Deployment,
    /// apps/v1 StatefulSet.
    StatefulSet,
    /// apps/v1 DaemonSet.
    DaemonSet,
    /// batch/v1 Job.
    Job,
}

impl Kind {
    /// From an object's kind (apps and batch groups only).
    pub fn of(group: &str, kind: &str) -> Option<Self> {
        match (group, kind) {
            ("apps", "Deployment") => Some(Kind::Deployment),
            ("apps", "StatefulSet") => Some(Kind::StatefulSet),
            ("apps", "DaemonSet") => Some(Kind::DaemonSet),
            ("batch", "Job") => Some(Kind::Job),
            _ => None,
        }
    }

    /// The kind's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Deployment => "Deployment",
            Kind::StatefulSet => "StatefulSet",
            Kind::DaemonSet => "DaemonSet",
            Kind::Job => "Job",
        }
    }
}

/// One object to wait for, as this run wrote it.
#[derive(Debug, Clone)]
pub struct Target {
    /// Its kind.
    pub kind: Kind,
    /// Its name.
    pub name: String,
    /// The uid this run wrote to.
    pub uid: String,
    /// The generation this run's write produced.
    pub generation: i64,
    /// When this run changed it (API server clock); None: unchanged by this run.
    pub since: Option<Time>,
}

impl Target {
    /// `Kind/name`.
    pub fn label(&self) -> String {
        format!("{}/{}", self.kind.as_str(), self.name)
    }
}

/// Where a target ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settled {
    /// Rolled out (a Job: complete).
    Complete,
    /// Failed, or not done within the timeout: why.
    Failed(String),
    /// Its update strategy cannot be awaited (`OnDelete`).
    NotAwaitable(String),
}

/// What a wait ended with: one result per target, or the reason it was stopped.
#[derive(Debug)]
pub struct Waited {
    /// Each target's result (targets still progressing when stopped are left out).
    pub settled: Vec<(Target, Settled)>,
    /// Set when a signal or a lost Lease ended the wait.
    pub stopped: Option<StopReason>,
    /// Each settled workload's report row as the stores showed it at the moment it settled (its
    /// `result` is set by the caller), by [`Target::label`]. What made the wait call a workload
    /// done is what its report shows, not the stores' state after the other targets and prune.
    pub seen: BTreeMap<String, WorkloadReport>,
}

impl Waited {
    /// The failed targets, `Kind/name: why`.
    pub fn failures(&self) -> Vec<(Target, String)> {
        self.settled
            .iter()
            .filter_map(|(t, s)| match s {
                Settled::Failed(why) => Some((t.clone(), why.clone())),
                _ => None,
            })
            .collect()
    }
}

/// The state of one target in the stores, and its pods in a fatal state.
fn evaluate(cluster: &Cluster, target: &Target) -> (RolloutState, Vec<(String, String)>) {
    let pending = |what: &str| (RolloutState::Progressing(what.into()), Vec::new());
    let fresh = |uid: Option<String>, generation: Option<i64>| {
        uid.as_deref() == Some(target.uid.as_str()) && generation.unwrap_or(0) >= target.generation
    };
    let state = match target.kind {
        Kind::Deployment => match cluster.deployments.find(|d| d.name_any() == target.name) {
            Some(d) if fresh(d.metadata.uid.clone(), d.metadata.generation) => {
                status::deployment_state(&d, target.since.as_ref())
            }
            _ => return pending("waiting for the change to be observed"),
        },
        Kind::StatefulSet => match cluster.statefulsets.find(|d| d.name_any() == target.name) {
            Some(s) if fresh(s.metadata.uid.clone(), s.metadata.generation) => status::statefulset_state(&s),
            _ => return pending("waiting for the change to be observed"),
        },
        Kind::DaemonSet => match cluster.daemonsets.find(|d| d.name_any() == target.name) {
            Some(s) if fresh(s.metadata.uid.clone(), s.metadata.generation) => status::daemonset_state(&s),
            _ => return pending("waiting for the change to be observed"),
        },
        Kind::Job => match cluster.jobs.find(|j| j.name_any() == target.name) {
            Some(j) if j.metadata.uid.as_deref() == Some(target.uid.as_str()) => {
                match status::job_state(&j, current_pods(cluster, target).iter().map(AsRef::as_ref)) {
                    JobState::Complete => RolloutState::Complete,
                    JobState::Failed(why) => RolloutState::Failed(why),
                    JobState::Running => RolloutState::Progressing("running".into()),
                }
            }
            _ => return pending("waiting for the Job to be observed"),
        },
    };
    // The status can reach the store before the pods' own events: the pods must show it too, so
    // the report's running digests and ready counts describe the finished rollout.
    let state = match state {
        RolloutState::Complete if ready_pods(cluster, target) < wanted_pods(cluster, target) => {
            RolloutState::Progressing("waiting for the ready pods to be observed".into())
        }
        RolloutState::Progressing(what) => {
            match current_replicasets(cluster, target).iter().find_map(|rs| status::replica_failure(rs)) {
                Some(why) => RolloutState::Stalled(why),
                None => RolloutState::Progressing(what),
            }
        }
        other => other,
    };
    let pods = || -> Vec<(String, String)> {
        current_pods(cluster, target)
            .iter()
            .filter_map(|p| Some((format!("pod {}", p.name_any()), status::fatal_reason(p)?)))
            .collect()
    };
    let fatal = match &state {
        RolloutState::Progressing(_) => pods(),
        // The pods created before the refusal keep their own clocks.
        RolloutState::Stalled(why) => {
            let mut fatal = pods();
            fatal.push(("the new ReplicaSet:".to_string(), why.clone()));
            fatal
        }
        _ => Vec::new(),
    };
    (state, fatal)
}

fn ready(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_none()
        && pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Ready, not terminating pods of the target's current revision.
pub fn ready_pods(cluster: &Cluster, target: &Target) -> usize {
    current_pods(cluster, target).iter().filter(|p| ready(p)).count()
}

/// How many ready pods a finished rollout of the target has (0: not counted).
fn wanted_pods(cluster: &Cluster, target: &Target) -> usize {
    let count = match target.kind {
        Kind::Deployment => cluster
            .deployments
            .find(|d| d.name_any() == target.name)
            .map(|d| d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)),
        Kind::StatefulSet => cluster.statefulsets.find(|s| s.name_any() == target.name).map(|s| {
            let spec = s.spec.clone().unwrap_or_default();
            let partitioned =
                spec.update_strategy.and_then(|u| u.rolling_update).and_then(|r| r.partition).unwrap_or(0)
                    > 0;
            if partitioned { 0 } else { spec.replicas.unwrap_or(1) }
        }),
        Kind::DaemonSet => cluster
            .daemonsets
            .find(|s| s.name_any() == target.name)
            .and_then(|s| s.status.as_ref().map(|st| st.desired_number_scheduled)),
        Kind::Job => None,
    };
    usize::try_from(count.unwrap_or(0)).unwrap_or(0)
}

/// The pods owned by `owner` (a uid) whose label `key` is `value`; none without a value.
fn labelled_pods(cluster: &Cluster, owner: Option<&str>, key: &str, value: Option<String>) -> Vec<Arc<Pod>> {
    let (Some(owner), Some(value)) = (owner, value) else { return Vec::new() };
    cluster
        .pods
        .state()
        .into_iter()
        .filter(|p| {
            p.owner_references().iter().any(|o| o.uid == owner) && p.labels().get(key) == Some(&value)
        })
        .collect()
}

/// A Deployment target's ReplicaSets of its current revision (the Deployment's
/// `deployment.kubernetes.io/revision`); none for other kinds.
fn current_replicasets(cluster: &Cluster, target: &Target) -> Vec<Arc<ReplicaSet>> {
    if target.kind != Kind::Deployment {
        return Vec::new();
    }
    let Some(d) = cluster.deployments.find(|d| d.name_any() == target.name) else { return Vec::new() };
    let Some(revision) = d.annotations().get(crate::REVISION_ANNOTATION).cloned() else { return Vec::new() };
    let uid = d.metadata.uid.clone().unwrap_or_default();
    cluster
        .replicasets
        .state()
        .into_iter()
        .filter(|rs| rs.owner_references().iter().any(|o| o.uid == uid))
        .filter(|rs| rs.annotations().get(crate::REVISION_ANNOTATION) == Some(&revision))
        .collect()
}

/// The pods of the target's current revision (a Deployment: its newest ReplicaSet's; a
/// StatefulSet: at `updateRevision`; a DaemonSet: of its template generation; a Job: its own),
/// terminating ones included.
pub fn current_pods(cluster: &Cluster, target: &Target) -> Vec<Arc<Pod>> {
    let owned_by = |pod: &Pod, uid: &str| pod.owner_references().iter().any(|o| o.uid == uid);
    match target.kind {
        Kind::Deployment => {
            let sets: Vec<String> = current_replicasets(cluster, target)
                .iter()
                .filter_map(|rs| rs.metadata.uid.clone())
                .collect();
            cluster.pods.state().into_iter().filter(|p| sets.iter().any(|s| owned_by(p, s))).collect()
        }
        Kind::StatefulSet => {
            let Some(s) = cluster.statefulsets.find(|d| d.name_any() == target.name) else {
                return Vec::new();
            };
            let revision = s.status.as_ref().and_then(|st| st.update_revision.clone());
            labelled_pods(cluster, s.metadata.uid.as_deref(), "controller-revision-hash", revision)
        }
        Kind::DaemonSet => {
            let Some(s) = cluster.daemonsets.find(|d| d.name_any() == target.name) else { return Vec::new() };
            let generation = s.annotations().get("deprecated.daemonset.template.generation").cloned();
            labelled_pods(cluster, s.metadata.uid.as_deref(), "pod-template-generation", generation)
        }
        Kind::Job => cluster.pods.state().into_iter().filter(|p| owned_by(p, &target.uid)).collect(),
    }
}

/// Wait for every target to settle, at most `timeout`. Fail fast: a current pod in a fatal
/// state for `fail_fast_after` fails its target.
pub async fn wait(
    cluster: &Cluster,
    targets: &[Target],
    timeout: Duration,
    fail_fast_after: Option<Duration>,
    stop: &Stop,
    out: &Reporter,
) -> Waited {
    let deadline = Instant::now() + timeout;
    let mut trackers: BTreeMap<String, FailFast> = BTreeMap::new();
    let mut last: BTreeMap<String, String> = BTreeMap::new();
    let mut settled: BTreeMap<String, Settled> = BTreeMap::new();
    let mut seen: BTreeMap<String, WorkloadReport> = BTreeMap::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        let open: Vec<&Target> = targets.iter().filter(|t| !settled.contains_key(&t.label())).collect();
        for target in open {
            let tracker = trackers.entry(target.label()).or_insert_with(|| FailFast::new(fail_fast_after));
            if let Some(result) = settle(cluster, target, tracker, &mut last, out) {
                out.line(format!("  {}: {}", target.label(), describe(&result)));
                if target.kind != Kind::Job {
                    seen.insert(
                        target.label(),
                        workloads::report(cluster, target, WorkloadResult::Available),
                    );
                }
                settled.insert(target.label(), result);
            }
        }
        let failed = settled.values().any(|s| matches!(s, Settled::Failed(_)));
        if failed || settled.len() == targets.len() {
            return finish(targets, settled, seen, None);
        }
        tokio::select! {
            reason = stop.stopped() => return finish(targets, settled, seen, Some(reason)),
            () = tokio::time::sleep_until(deadline) => {
                for target in targets {
                    let what = last.get(&target.label()).cloned().unwrap_or_default();
                    let why = format!("not done within {}s ({what})", timeout.as_secs());
                    settled.entry(target.label()).or_insert(Settled::Failed(why));
                }
                return finish(targets, settled, seen, None);
            }
            () = cluster.changed.notified() => {}
            _ = tick.tick() => {}
        }
    }
}

/// One target's state this round: its result once it settled (a fail-fast failure included),
/// or None while it progresses (a changed progress line is printed, and remembered in `last`).
fn settle(
    cluster: &Cluster,
    target: &Target,
    tracker: &mut FailFast,
    last: &mut BTreeMap<String, String>,
    out: &Reporter,
) -> Option<Settled> {
    let (state, fatal) = evaluate(cluster, target);
    match state {
        RolloutState::Complete => Some(Settled::Complete),
        RolloutState::Failed(why) => Some(Settled::Failed(why)),
        RolloutState::NotAwaitable(why) => Some(Settled::NotAwaitable(why)),
        RolloutState::Progressing(what) | RolloutState::Stalled(what) => {
            if last.get(&target.label()) != Some(&what) {
                out.line(format!("  {}: {what}", target.label()));
                last.insert(target.label(), what);
            }
            tracker.observe(&fatal, std::time::Instant::now()).map(Settled::Failed)
        }
    }
}

fn describe(settled: &Settled) -> String {
    match settled {
        Settled::Complete => "done".into(),
        Settled::Failed(why) => format!("failed: {why}"),
        Settled::NotAwaitable(why) => format!("not awaited: {why}"),
    }
}

fn finish(
    targets: &[Target],
    mut settled: BTreeMap<String, Settled>,
    seen: BTreeMap<String, WorkloadReport>,
    stopped: Option<StopReason>,
) -> Waited {
    let settled = targets.iter().filter_map(|t| Some((t.clone(), settled.remove(&t.label())?))).collect();
    Waited { settled, stopped, seen }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::apps::v1::Deployment;
    use kube::runtime::watcher::Event;
    use serde_json::json;

    use super::*;

    fn from<T: serde::de::DeserializeOwned>(value: serde_json::Value) -> T {
        serde_json::from_value(value).unwrap()
    }

    /// A rolled-out Deployment of one replica: its ReplicaSet of revision 1 and one Ready pod.
    fn rolled_out() -> (Deployment, ReplicaSet, Pod) {
        let revision = json!({"deployment.kubernetes.io/revision": "1"});
        let deployment = from(json!({
            "metadata": {"name": "worker", "uid": "d-1", "generation": 1, "annotations": revision},
            "spec": {"replicas": 1, "selector": {}, "template": {}},
            "status": {"observedGeneration": 1, "replicas": 1, "updatedReplicas": 1, "availableReplicas": 1},
        }));
        let owner = |uid: &str| json!([{"apiVersion": "apps/v1", "kind": "x", "name": "x", "uid": uid}]);
        let replicaset = from(json!({
            "metadata": {"name": "worker-1", "uid": "rs-1", "annotations": revision, "ownerReferences": owner("d-1")},
        }));
        let pod = from(json!({
            "metadata": {"name": "worker-1-a", "uid": "p-1", "ownerReferences": owner("rs-1")},
            "status": {
                "conditions": [{"type": "Ready", "status": "True"}],
                "containerStatuses": [{"name": "worker", "image": "w", "imageID": "w@sha256:1", "ready": true,
                    "restartCount": 0}],
            },
        }));
        (deployment, replicaset, pod)
    }

    /// A settled workload's report row is what the stores showed when it settled: the stores may
    /// change before the report is written (other targets, prune), and the row of a workload the
    /// wait called available must not say 0 ready and nothing running (seen in a clean-clone run).
    #[tokio::test]
    async fn a_settled_workload_is_reported_as_it_was_when_it_settled() {
        let (cluster, mut d, mut r, mut p) = Cluster::from_stores();
        let (deployment, replicaset, pod) = rolled_out();
        d.apply_watcher_event(&Event::Apply(deployment));
        r.apply_watcher_event(&Event::Apply(replicaset));
        p.apply_watcher_event(&Event::Apply(pod.clone()));
        let target = Target {
            kind: Kind::Deployment,
            name: "worker".into(),
            uid: "d-1".into(),
            generation: 1,
            since: None,
        };
        let out = Reporter::detect();
        let waited =
            wait(&cluster, std::slice::from_ref(&target), Duration::from_secs(5), None, &Stop::new(), &out)
                .await;
        assert_eq!(
            waited.settled.iter().map(|(_, s)| s.clone()).collect::<Vec<_>>(),
            vec![Settled::Complete]
        );
        p.apply_watcher_event(&Event::Delete(pod));
        assert_eq!(
            workloads::report(&cluster, &target, WorkloadResult::Available).ready_replicas,
            0,
            "the stores moved on"
        );
        let seen = &waited.seen["Deployment/worker"];
        assert_eq!((seen.ready_replicas, seen.running.clone()), (1, vec!["w@sha256:1".to_string()]));
    }
}
