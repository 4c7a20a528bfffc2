//! Step 2, configure: everything that is not a workload, in dependency order; and, when a
//! release is rolled back, its configuration too (ConfigMaps and Secrets this run changed get
//! their previous data back, so the rolled-back pods read the old values when they restart).

use serde_json::Value;

use crate::report::{Action, Report};
use crate::validate::Plan;
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
    // Namespaces and CRDs one by one, first: the other objects may live in them or be of their
    // kind. The rest depend on nothing the server checks at apply time: up to 8 at once.
    let configuration: Vec<(usize, &crate::validate::Resolved)> =
        plan.objects.iter().enumerate().filter(|(_, i)| !i.object.is_workload()).collect();
    let first = |i: &crate::validate::Resolved| {
        i.object.is("", "Namespace") || i.object.is("apiextensions.k8s.io", "CustomResourceDefinition")
    };
    for (index, item) in configuration.iter().filter(|(_, i)| first(i)) {
        let (action, _) = apply::apply(ctx, item, &item.object.object).await?;
        report.objects[*index].action = action;
    }
    let (indexes, rest): (Vec<usize>, Vec<&crate::validate::Resolved>) =
        configuration.into_iter().filter(|(_, i)| !first(i)).unzip();
    let mut first_error = None;
    for (index, result) in indexes.into_iter().zip(apply::apply_all(ctx, &rest).await) {
        match result {
            Ok(action) => report.objects[index].action = action,
            Err(err) => {
                first_error.get_or_insert(err);
            }
        }
    }
    first_error.map_or(Ok(()), Err)
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
