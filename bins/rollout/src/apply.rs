//! Server-side apply of one object (steps 2 and 4): forced, one field manager; what happened to
//! it, and the wait target it makes.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{DynamicObject, Patch};
use serde_json::Value;

use crate::report::Action;
use crate::validate::Resolved;
use crate::wait::{Kind, Target};
use crate::{Ctx, RolloutError};

/// Apply `item` (as `object`, which may differ from the render: see [`keep_replicas`]).
pub async fn apply(
    ctx: &Ctx<'_>,
    item: &Resolved,
    object: &DynamicObject,
) -> Result<(Action, DynamicObject), RolloutError> {
    let (action, applied) = apply_silently(ctx, item, object).await?;
    ctx.out.line(format!("  {} {}", item.object.label(), action.as_str()));
    Ok((action, applied))
}

/// Apply each of `items` (the render's own objects), up to 8 at once, and print the line of each
/// one applied in the items' order once all are done. Returns each one's action or error, in order.
pub async fn apply_all(ctx: &Ctx<'_>, items: &[&Resolved]) -> Vec<Result<Action, RolloutError>> {
    use futures_util::StreamExt as _;
    let results: Vec<_> = futures_util::stream::iter(items)
        .map(|item| apply_silently(ctx, item, &item.object.object))
        .buffered(8)
        .collect()
        .await;
    items
        .iter()
        .zip(results)
        .map(|(item, result)| {
            let (action, _) = result?;
            ctx.out.line(format!("  {} {}", item.object.label(), action.as_str()));
            Ok(action)
        })
        .collect()
}

/// [`apply`] without the line.
async fn apply_silently(
    ctx: &Ctx<'_>,
    item: &Resolved,
    object: &DynamicObject,
) -> Result<(Action, DynamicObject), RolloutError> {
    crate::adopt::adopt(ctx, item).await?;
    apply_only(ctx, item, object).await
}

/// [`apply_silently`] without adopting a client-side apply manager's fields (done once, before
/// the first).
pub async fn apply_only(
    ctx: &Ctx<'_>,
    item: &Resolved,
    object: &DynamicObject,
) -> Result<(Action, DynamicObject), RolloutError> {
    let applied = item
        .api(&ctx.client)
        .patch(item.object.name(), &ctx.apply, &Patch::Apply(object))
        .await
        .map_err(RolloutError::kube(format!("applying {}", item.object.label())))?;
    let action = match item.live_version() {
        None => Action::Created,
        Some(before) if applied.metadata.resource_version.as_deref() == Some(before) => Action::Unchanged,
        Some(_) => Action::Configured,
    };
    Ok((action, applied))
}

/// When this run's write to `object` happened, in the API server's clock: the newest
/// managedFields entry of `manager`.
pub fn written_at(object: &DynamicObject, manager: &str) -> Option<Time> {
    object
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .filter(|m| m.manager.as_deref() == Some(manager))
        .filter_map(|m| m.time.clone())
        .max_by_key(|t| t.0)
}

/// The wait target of an applied workload.
pub fn target(item: &Resolved, applied: &DynamicObject, action: Action, manager: &str) -> Option<Target> {
    let kind = Kind::of(&item.object.gvk.group, &item.object.gvk.kind)?;
    Some(Target {
        kind,
        name: item.object.name().to_string(),
        uid: applied.metadata.uid.clone().unwrap_or_default(),
        generation: applied.metadata.generation.unwrap_or(0),
        since: (action != Action::Unchanged).then(|| written_at(applied, manager)).flatten(),
    })
}

/// The object to apply for a workload: the render's, except that a `spec.replicas` this field
/// manager set earlier and the render now leaves out (to hand it to an HPA) is kept at the live
/// count in this apply, instead of dropping to the default of 1.
pub fn keep_replicas(item: &Resolved, manager: &str) -> DynamicObject {
    let mut object = item.object.object.clone();
    let Some(live) = &item.live else { return object };
    let in_render = object.data.pointer("/spec/replicas").is_some_and(|r| !r.is_null());
    let owned = live.metadata.managed_fields.iter().flatten().any(|m| {
        m.manager.as_deref() == Some(manager)
            && m.operation.as_deref() == Some("Apply")
            && m.fields_v1.as_ref().is_some_and(|f| f.0.pointer("/f:spec/f:replicas").is_some())
    });
    if let (false, true, Some(count)) = (in_render, owned, live.data.pointer("/spec/replicas").cloned())
        && let Some(spec) = object.data.get_mut("spec").and_then(Value::as_object_mut)
    {
        spec.insert("replicas".into(), count);
    }
    object
}
