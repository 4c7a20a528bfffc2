//! Pruning: objects an earlier rollout applied that the render no longer has (a NetworkPolicy
//! taken out of the overlay, a renamed ConfigMap, a CronJob, a StatefulSet, a Secret…) are deleted
//! after a successful rollout, so the cluster ends up as the render says. What is ours comes from
//! the ApplySet inventory ([`crate::applyset`]): members carry its `part-of` label, the parent lists
//! their group-kinds. Objects applied before the inventory existed are found as before: they carry
//! the release's label selector *and* were applied by this field manager. What others created is
//! never touched.

use std::collections::BTreeSet;

use kube::api::{ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams};
use kube::discovery::{Discovery, Scope};
use kube::{Api, Client};

/// The namespaced kinds the app's overlays use, looked at even when the render no longer has any
/// object of that kind (group, version, kind).
pub const APP_KINDS: &[(&str, &str, &str)] = &[
    ("", "v1", "ConfigMap"),
    ("", "v1", "Service"),
    ("", "v1", "ServiceAccount"),
    ("apps", "v1", "Deployment"),
    ("autoscaling", "v2", "HorizontalPodAutoscaler"),
    ("policy", "v1", "PodDisruptionBudget"),
    ("networking.k8s.io", "v1", "NetworkPolicy"),
    ("networking.k8s.io", "v1", "Ingress"),
    ("rbac.authorization.k8s.io", "v1", "Role"),
    ("rbac.authorization.k8s.io", "v1", "RoleBinding"),
    ("monitoring.coreos.com", "v1", "ServiceMonitor"),
    ("monitoring.coreos.com", "v1", "PodMonitor"),
    ("secrets-store.csi.x-k8s.io", "v1", "SecretProviderClass"),
];

/// What is ours: the ApplySet inventory (its id and the group-kinds, `Kind.group`, it has
/// contained), and from before the inventory, objects matching the selector that the field
/// manager applied.
#[derive(Debug, Clone, Default)]
pub struct Inventory {
    /// The value of `applyset.kubernetes.io/part-of` on members.
    pub id: String,
    /// Every group-kind recorded on the parent.
    pub group_kinds: std::collections::BTreeSet<String>,
    /// `--prune-selector`.
    pub selector: String,
    /// The field manager.
    pub field_manager: String,
}

/// An object to delete.
#[derive(Debug, Clone)]
pub struct PruneCandidate {
    /// `Kind`.
    pub kind: String,
    /// Its name.
    pub name: String,
    resource: ApiResource,
}

/// True when `object` was server-side applied by `field_manager`.
pub fn applied_by(object: &DynamicObject, field_manager: &str) -> bool {
    object
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .any(|m| m.manager.as_deref() == Some(field_manager) && m.operation.as_deref() == Some("Apply"))
}

/// The objects in `namespace` that are ours (see [`Inventory`]), whose
/// (kind, name) is not in `keep`. `render_kinds` adds the render's own kinds to [`APP_KINDS`].
/// Jobs are left alone: migration Jobs are per release and keep their history.
pub async fn candidates(
    client: &Client,
    discovery: &Discovery,
    namespace: &str,
    render_kinds: &[GroupVersionKind],
    keep: &BTreeSet<(String, String)>,
    inventory: &Inventory,
) -> Result<Vec<PruneCandidate>, kube::Error> {
    let mut seen = BTreeSet::new();
    let recorded = inventory.group_kinds.iter().filter_map(|gk| {
        let (kind, group) = gk.split_once('.').unwrap_or((gk.as_str(), ""));
        discovery
            .groups()
            .flat_map(|g| g.recommended_resources())
            .find(|(r, _)| r.group == group && r.kind == kind)
            .map(|(r, _)| GroupVersionKind::gvk(&r.group, &r.version, &r.kind))
    });
    let kinds: Vec<GroupVersionKind> = APP_KINDS
        .iter()
        .map(|(g, v, k)| GroupVersionKind::gvk(g, v, k))
        .chain(render_kinds.iter().cloned())
        .chain(recorded)
        .filter(|gvk| seen.insert((gvk.group.clone(), gvk.kind.clone())))
        .collect();
    let member = format!("{}={}", crate::applyset::PART_OF, inventory.id);
    let mut out = Vec::new();
    for gvk in kinds {
        if gvk.kind == "Job" || gvk.kind == "Namespace" {
            continue;
        }
        let Some((resource, caps)) = discovery.resolve_gvk(&gvk) else { continue };
        if caps.scope != Scope::Namespaced {
            continue;
        }
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &resource);
        // Members of the inventory, and (from before the inventory) objects with the release's
        // labels that this field manager applied.
        for (labels, legacy) in [(member.as_str(), false), (inventory.selector.as_str(), true)] {
            let objects = match api.list(&ListParams::default().labels(labels)).await {
                Ok(list) => list,
                // A kind this identity may not list is a kind it did not apply either.
                Err(kube::Error::Api(status)) if status.code == 403 => break,
                Err(err) => return Err(err),
            };
            for object in objects {
                let name = object.metadata.name.clone().unwrap_or_default();
                let key = (gvk.kind.clone(), name.clone());
                let ours = !legacy || applied_by(&object, &inventory.field_manager);
                if ours
                    && !keep.contains(&key)
                    && !out.iter().any(|c: &PruneCandidate| c.kind == key.0 && c.name == key.1)
                {
                    out.push(PruneCandidate { kind: gvk.kind.clone(), name, resource: resource.clone() });
                }
            }
        }
    }
    Ok(out)
}

/// Delete every candidate (in the background: dependents follow through the garbage collector).
pub async fn delete(
    client: &Client,
    namespace: &str,
    candidates: &[PruneCandidate],
) -> Result<(), kube::Error> {
    for candidate in candidates {
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &candidate.resource);
        match api.delete(&candidate.name, &DeleteParams::background()).await {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            Err(err) => return Err(err),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn object(managers: serde_json::Value) -> DynamicObject {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "x", "managedFields": managers}
        }))
        .unwrap()
    }

    #[test]
    fn only_objects_applied_by_the_field_manager_are_ours() {
        let ours = object(serde_json::json!([{"manager": "statuspage", "operation": "Apply"}]));
        let kubectl = object(serde_json::json!([{"manager": "kubectl-create", "operation": "Update"}]));
        let updated = object(serde_json::json!([{"manager": "statuspage", "operation": "Update"}]));
        assert!(applied_by(&ours, "statuspage"));
        assert!(!applied_by(&kubectl, "statuspage"));
        assert!(!applied_by(&updated, "statuspage"), "an Update (e.g. a rollback patch) is not an apply");
        assert!(!applied_by(&ours, "someone-else"));
    }
}
