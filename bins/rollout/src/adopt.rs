//! Adopting what `kubectl apply` (client-side) made: its fields are owned by the manager
//! `kubectl-client-side-apply` through an `Update`, so after a server-side apply they would stay
//! on the object when the render drops them (a removed ConfigMap key, a removed `env` entry). The
//! way kubectl's own upgrade path does it, that manager's fields are moved into this field
//! manager's `Apply` entry first; the apply that follows then removes what the render no longer has.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry;
use kube::api::{DynamicObject, Patch, PatchParams};
use serde_json::{Value, json};

use crate::validate::Resolved;
use crate::{Ctx, RolloutError};

/// The managers whose fields are taken over.
pub const CLIENT_SIDE_MANAGERS: &[&str] = &["kubectl-client-side-apply"];

/// The client-side apply manager of `live`, if it has one.
pub fn adopted_from(live: &DynamicObject) -> Option<String> {
    live.metadata
        .managed_fields
        .iter()
        .flatten()
        .filter(|m| m.operation.as_deref() == Some("Update"))
        .find_map(|m| m.manager.clone().filter(|name| CLIENT_SIDE_MANAGERS.contains(&name.as_str())))
}

/// Union of two `fieldsV1` trees.
fn union(into: &mut Value, from: &Value) {
    match (into.as_object_mut(), from.as_object()) {
        (Some(into), Some(from)) => {
            for (key, value) in from {
                union(into.entry(key.clone()).or_insert_with(|| json!({})), value);
            }
        }
        _ => {
            if into.as_object().is_none_or(|o| o.is_empty()) {
                *into = from.clone();
            }
        }
    }
}

/// `live`'s managedFields with every client-side apply entry folded into `manager`'s Apply entry.
pub fn upgraded(live: &DynamicObject, manager: &str) -> Vec<ManagedFieldsEntry> {
    let entries = live.metadata.managed_fields.clone().unwrap_or_default();
    let is_csa = |m: &ManagedFieldsEntry| {
        m.operation.as_deref() == Some("Update")
            && m.subresource.is_none()
            && m.manager.as_deref().is_some_and(|n| CLIENT_SIDE_MANAGERS.contains(&n))
    };
    let is_ours = |m: &ManagedFieldsEntry| {
        m.operation.as_deref() == Some("Apply")
            && m.subresource.is_none()
            && m.manager.as_deref() == Some(manager)
    };
    let mut fields = json!({});
    let mut template = None;
    for entry in entries.iter().filter(|m| is_csa(m) || is_ours(m)) {
        if let Some(f) = &entry.fields_v1 {
            union(&mut fields, &f.0);
        }
        if template.is_none() || is_ours(entry) {
            template = Some(entry.clone());
        }
    }
    let mut out: Vec<ManagedFieldsEntry> =
        entries.into_iter().filter(|m| !is_csa(m) && !is_ours(m)).collect();
    if let Some(mut ours) = template {
        ours.manager = Some(manager.to_string());
        ours.operation = Some("Apply".into());
        ours.fields_v1 = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::FieldsV1(fields));
        out.push(ours);
    }
    out
}

/// Move a client-side apply manager's fields to this field manager (before the apply). The live
/// object is read again: its status (and resourceVersion) moves on while the rollout runs.
pub async fn adopt(ctx: &Ctx<'_>, item: &Resolved) -> Result<(), RolloutError> {
    let Some(from) = item.live.as_ref().and_then(adopted_from) else { return Ok(()) };
    let what = || format!("taking over {}'s fields of {}", from, item.object.label());
    let api = item.api(&ctx.client);
    for _attempt in 0..3 {
        let live = api.get(item.object.name()).await.map_err(RolloutError::kube(what()))?;
        if adopted_from(&live).is_none() {
            return Ok(());
        }
        let patch = json!({"metadata": {
            "resourceVersion": live.metadata.resource_version,
            "managedFields": upgraded(&live, &ctx.config.field_manager),
        }});
        match api.patch(item.object.name(), &PatchParams::default(), &Patch::Merge(&patch)).await {
            Ok(_) => {
                ctx.out.line(format!(
                    "  {}: fields of {from} taken over by {}",
                    item.object.label(),
                    ctx.config.field_manager
                ));
                return Ok(());
            }
            Err(kube::Error::Api(status)) if status.code == 409 => continue,
            Err(err) => return Err(RolloutError::kube(what())(err)),
        }
    }
    Err(RolloutError::Refused {
        object: item.object.label(),
        message: format!("{}: it kept changing (3 conflicts)", what()),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn client_side_fields_move_to_the_apply_manager() {
        let live: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "x", "managedFields": [
                {"manager": "kubectl-client-side-apply", "operation": "Update", "apiVersion": "v1",
                 "fieldsType": "FieldsV1", "fieldsV1": {"f:data": {".": {}, "f:A": {}, "f:B": {}}}},
                {"manager": "statuspage", "operation": "Apply", "apiVersion": "v1",
                 "fieldsType": "FieldsV1", "fieldsV1": {"f:data": {"f:A": {}}}},
                {"manager": "kube-controller-manager", "operation": "Update", "apiVersion": "v1",
                 "fieldsType": "FieldsV1", "fieldsV1": {"f:metadata": {}}}
            ]}
        }))
        .unwrap();
        assert_eq!(adopted_from(&live).as_deref(), Some("kubectl-client-side-apply"));
        let entries = upgraded(&live, "statuspage");
        assert_eq!(entries.len(), 2, "{entries:?}");
        let ours = entries.iter().find(|m| m.manager.as_deref() == Some("statuspage")).unwrap();
        assert_eq!(ours.operation.as_deref(), Some("Apply"));
        let fields = &ours.fields_v1.as_ref().unwrap().0;
        assert!(
            fields.pointer("/f:data/f:B").is_some() && fields.pointer("/f:data/f:A").is_some(),
            "{fields}"
        );
    }
}
