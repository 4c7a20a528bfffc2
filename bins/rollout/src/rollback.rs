//! Step 5, roll back: every workload this run changed gets back the pod template it had before
//! (what `kubectl rollout undo` does, for Deployments, StatefulSets and DaemonSets alike), and the
//! configuration this run changed gets its previous data back (see [`crate::configure::restore`]).

use kube::api::PostParams;

use crate::validate::{Plan, Resolved};
use crate::wait::Target;
use crate::{Ctx, REVISION_ANNOTATION, apply};

/// What the rollback did: new wait targets for the workloads put back, and errors.
#[derive(Debug, Default)]
pub struct RolledBack {
    /// The workloads put back, as wait targets of the rollback's write.
    pub targets: Vec<Target>,
    /// Workloads this run created: nothing to go back to.
    pub created: Vec<String>,
    /// What failed.
    pub errors: Vec<String>,
}

/// Put back the template of every target this run changed.
pub async fn rollback(ctx: &Ctx<'_>, plan: &Plan, changed: &[Target]) -> RolledBack {
    let mut done = RolledBack::default();
    for target in changed.iter().filter(|t| t.since.is_some()) {
        let Some(item) = plan
            .objects
            .iter()
            .find(|i| i.object.name() == target.name && i.object.gvk.kind == target.kind.as_str())
        else {
            continue;
        };
        if item.live.is_none() {
            ctx.out.line(format!("  {}: created by this rollout, nothing to roll back to", target.label()));
            done.created.push(target.label());
            continue;
        }
        match put_back(ctx, item).await {
            Ok(next) => done.targets.push(next),
            Err(err) => {
                ctx.out.error(format!("{}: rollback failed: {err}", target.label()));
                done.errors.push(format!("{}: {err}", target.label()));
            }
        }
    }
    done
}

/// Replace the live object's pod template with the one it had before this run.
async fn put_back(ctx: &Ctx<'_>, item: &Resolved) -> Result<Target, String> {
    let Some(before) = item.live.as_ref() else { return Err("no previous state".into()) };
    let template = before.data.pointer("/spec/template").cloned().ok_or("no previous pod template")?;
    let api = item.api(&ctx.client);
    let name = item.object.name();
    for _attempt in 0..3 {
        let mut live = api.get(name).await.map_err(|e| crate::error::describe(&e))?;
        if let Some(spec) = live.data.get_mut("spec").and_then(serde_json::Value::as_object_mut) {
            spec.insert("template".into(), template.clone());
        }
        live.metadata.managed_fields = None;
        let params =
            PostParams { field_manager: Some(ctx.config.field_manager.clone()), ..Default::default() };
        match api.replace(name, &params, &live).await {
            Ok(written) => {
                if item.object.is("apps", "StatefulSet") {
                    delete_failed_pods(ctx, &live).await?;
                }
                let revision = before.metadata.annotations.as_ref().and_then(|a| a.get(REVISION_ANNOTATION));
                match revision {
                    Some(revision) => ctx
                        .out
                        .line(format!("  {}: rolling back to revision {revision}", item.object.label())),
                    None => ctx
                        .out
                        .line(format!("  {}: rolling back to its previous template", item.object.label())),
                }
                let mut target = apply::target(
                    item,
                    &written,
                    crate::report::Action::Configured,
                    &ctx.config.field_manager,
                )
                .ok_or("not a workload")?;
                if target.since.is_none() {
                    target.since = apply::written_at(&written, &ctx.config.field_manager);
                }
                return Ok(target);
            }
            Err(kube::Error::Api(status)) if status.code == 409 => continue,
            Err(err) => return Err(crate::error::describe(&err)),
        }
    }
    Err("the object kept changing under the rollback (3 conflicts)".into())
}

/// A StatefulSet does not replace a pod of the failed revision that never became ready (the
/// Kubernetes documentation's "forced rollback"): delete those pods so the controller recreates
/// them from the template put back.
async fn delete_failed_pods(ctx: &Ctx<'_>, set: &kube::api::DynamicObject) -> Result<(), String> {
    let Some(revision) = set.data.pointer("/status/updateRevision").and_then(serde_json::Value::as_str)
    else {
        return Ok(());
    };
    let uid = set.metadata.uid.clone().unwrap_or_default();
    let pods: kube::Api<k8s_openapi::api::core::v1::Pod> =
        kube::Api::namespaced(ctx.client.clone(), &ctx.namespace);
    let params = kube::api::ListParams::default().labels(&format!("controller-revision-hash={revision}"));
    let list = pods.list(&params).await.map_err(|e| crate::error::describe(&e))?;
    for pod in
        list.items.iter().filter(|p| p.metadata.owner_references.iter().flatten().any(|o| o.uid == uid))
    {
        let name = pod.metadata.name.clone().unwrap_or_default();
        ctx.out.line(format!(
            "  pod/{name}: deleted (failed revision {revision}; a StatefulSet keeps it otherwise)"
        ));
        match pods.delete(&name, &kube::api::DeleteParams::default()).await {
            Ok(_) | Err(kube::Error::Api(_)) => {}
            Err(err) => return Err(crate::error::describe(&err)),
        }
    }
    Ok(())
}
