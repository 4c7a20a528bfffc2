//! Step 4, apply the workloads (Deployments, StatefulSets, DaemonSets, CronJobs, HPAs) and
//! describe them afterwards from the watch stores: what the current revision's ready pods run,
//! and how many old pods are still terminating.

use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt as _;

use crate::cluster::Cluster;
use crate::report::{Report, WorkloadReport, WorkloadResult};
use crate::validate::Plan;
use crate::wait::{self, Kind, Target};
use crate::{Ctx, RolloutError, apply, release};

/// Apply the workloads in render order, adding each applied one's wait target (Deployments,
/// StatefulSets, DaemonSets) to `targets` as it goes: after an error, `targets` holds what was
/// applied before it, for the rollback.
pub async fn apply_workloads(
    ctx: &Ctx<'_>,
    plan: &Plan,
    report: &mut Report,
    targets: &mut Vec<Target>,
) -> Result<(), RolloutError> {
    for (index, item) in plan.objects.iter().enumerate().filter(|(_, i)| i.object.is_workload()) {
        let object = apply::keep_replicas(item, &ctx.config.field_manager);
        let (action, applied) = apply::apply(ctx, item, &object).await?;
        report.objects[index].action = action;
        if item.object.is_awaited()
            && let Some(target) = apply::target(item, &applied, action, &ctx.config.field_manager)
        {
            targets.push(target);
        }
    }
    Ok(())
}

fn ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// The report row of one workload as the stores see it now.
pub fn report(cluster: &Cluster, target: &Target, result: WorkloadResult) -> WorkloadReport {
    let current = wait::current_pods(cluster, target);
    let live: Vec<_> = current.iter().filter(|p| p.metadata.deletion_timestamp.is_none()).collect();
    let mut running: Vec<String> = live
        .iter()
        .filter_map(|p| p.status.as_ref())
        .flat_map(|s| s.container_statuses.iter().flatten())
        .filter(|c| c.ready && !c.image_id.is_empty())
        .map(|c| c.image_id.clone())
        .collect();
    running.sort();
    running.dedup();
    let (data, replicas, revision, uid) = match target.kind {
        Kind::Deployment => cluster.deployments.find(|d| d.name_any() == target.name).map(|d| {
            let value = serde_json::to_value(&*d).unwrap_or_default();
            let replicas = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
            let revision = d.annotations().get(crate::REVISION_ANNOTATION).cloned().unwrap_or_default();
            (value, replicas, revision, d.metadata.uid.clone())
        }),
        Kind::StatefulSet => cluster.statefulsets.find(|d| d.name_any() == target.name).map(|s| {
            let value = serde_json::to_value(&*s).unwrap_or_default();
            let replicas = s.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
            let revision = s.status.as_ref().and_then(|st| st.update_revision.clone()).unwrap_or_default();
            (value, replicas, revision, s.metadata.uid.clone())
        }),
        Kind::DaemonSet | Kind::Job => cluster.daemonsets.find(|d| d.name_any() == target.name).map(|s| {
            let value = serde_json::to_value(&*s).unwrap_or_default();
            let replicas = s.status.as_ref().map(|st| st.desired_number_scheduled).unwrap_or(0);
            let revision =
                s.annotations().get("deprecated.daemonset.template.generation").cloned().unwrap_or_default();
            (value, replicas, revision, s.metadata.uid.clone())
        }),
    }
    .unwrap_or_default();
    let terminating = owned_terminating(cluster, target, uid.as_deref(), &current);
    WorkloadReport {
        kind: target.kind.as_str().to_string(),
        name: target.name.clone(),
        images: release::pod_images(&data),
        running,
        terminating,
        ready_replicas: i32::try_from(live.iter().filter(|p| ready(p)).count()).unwrap_or(i32::MAX),
        replicas,
        revision,
        result,
    }
}

/// Pods of the workload's older revisions still terminating.
fn owned_terminating(
    cluster: &Cluster,
    target: &Target,
    uid: Option<&str>,
    current: &[std::sync::Arc<Pod>],
) -> u32 {
    let Some(uid) = uid else { return 0 };
    let owners: Vec<String> = match target.kind {
        Kind::Deployment => cluster
            .replicasets
            .state()
            .iter()
            .filter(|rs| rs.owner_references().iter().any(|o| o.uid == uid))
            .filter_map(|rs| rs.metadata.uid.clone())
            .collect(),
        _ => vec![uid.to_string()],
    };
    let count = cluster
        .pods
        .state()
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_some())
        .filter(|p| p.owner_references().iter().any(|o| owners.contains(&o.uid)))
        .filter(|p| !current.iter().any(|c| c.metadata.uid == p.metadata.uid))
        .count();
    u32::try_from(count).unwrap_or(u32::MAX)
}
