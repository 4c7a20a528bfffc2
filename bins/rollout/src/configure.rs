//! Step 2, configure: everything that is not a workload, in dependency order; and, when a
//! release is rolled back, its configuration too (ConfigMaps and Secrets this run changed get
//! their previous data back, so the rolled-back pods read the old values when they restart).

use serde_json::Value;

use crate::report::{Action, Report};
use crate::validate::{Plan, Resolved};
use crate::{Ctx, RolloutError, apply};

/// Apply every object but the workloads; rows of `report` follow.
pub async fn configure(ctx: &Ctx<'_>, plan: &Plan, report: &mut Report) -> Result<(), RolloutError> {
    let kinds = plan
        .objects
        .iter()
        .filter(|i| i.namespaced && i.namespace() == ctx.namespace)
        .map(|i| crate::applyset::group_kind(&i.object.gvk))
        .collect();
    crate::applyset::record(&ctx.client, &ctx.namespace, &ctx.config.field_manager, &kinds).await.map_err(
        RolloutError::kube(format!("writing the inventory ConfigMap/{}", crate::applyset::PARENT)),
    )?;
    // Rank by rank (the plan is sorted by it): a rank's objects up to 8 at once, and no later
    // rank once one of them failed.
    let configuration: Vec<(usize, &Resolved)> =
        plan.objects.iter().enumerate().filter(|(_, i)| !i.object.is_workload()).collect();
    for rank in configuration.chunk_by(|(_, a), (_, b)| a.object.apply_rank() == b.object.apply_rank()) {
        let (indexes, items): (Vec<usize>, Vec<&Resolved>) = rank.iter().copied().unzip();
        let mut first_error = None;
        for (index, result) in indexes.into_iter().zip(apply::apply_all(ctx, &items).await) {
            match result {
                Ok(action) => report.objects[index].action = action,
                Err(err) => {
                    first_error.get_or_insert(err);
                }
            }
        }
        if let Some(err) = first_error {
            return Err(err);
        }
    }
    Ok(())
}

/// Put the data of every ConfigMap and Secret this run changed back as it was. Returns what
/// could not be restored.
pub async fn restore(ctx: &Ctx<'_>, plan: &Plan, report: &mut Report) -> Vec<String> {
    let mut errors = Vec::new();
    for (index, item) in plan.objects.iter().enumerate() {
        let configuration = item.object.is("", "ConfigMap") || item.object.is("", "Secret");
        let Some(live) = item.live.as_ref().filter(|_| configuration) else { continue };
        if report.objects[index].action != Action::Configured {
            continue;
        }
        let mut object = item.object.object.clone();
        if let Some(map) = object.data.as_object_mut() {
            for key in ["data", "binaryData", "stringData"] {
                map.remove(key);
                if let Some(old) = live.data.get(key).filter(|v| !v.is_null()) {
                    map.insert(key.into(), old.clone());
                }
            }
            map.entry("data").or_insert(Value::Object(Default::default()));
        }
        match apply::apply_only(ctx, item, &object).await {
            Ok((action, _)) => {
                ctx.out.line(format!("  {} {}", item.object.label(), action.as_str()));
                ctx.out.line(format!("  {} restored to its data before this rollout", item.object.label()));
                report.objects[index].action = Action::Restored;
            }
            Err(err) => errors.push(format!("restoring {}: {err}", item.object.label())),
        }
    }
    errors
}
