//! The inventory of what this tool applied, following the ApplySet conventions (KEP-3659, which
//! `kubectl apply --prune --applyset` understands): a parent ConfigMap `statuspage-applyset` in the
//! namespace carries the ApplySet id (`applyset.kubernetes.io/id`), the tooling, and every group-kind
//! ever applied (`applyset.kubernetes.io/contains-group-kinds`); every namespaced object of the
//! render carries `applyset.kubernetes.io/part-of: <id>`. Pruning lists exactly those kinds for
//! members no longer in the render, whatever their kind (CronJobs, StatefulSets, Secrets, PVCs…).

use std::collections::BTreeSet;

use base64::Engine as _;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Patch, PatchParams};
use kube::core::GroupVersionKind;
use kube::{Api, Client};
use serde_json::json;
use sha2::{Digest as _, Sha256};

/// The parent's name.
pub const PARENT: &str = "statuspage-applyset";
/// The member label.
pub const PART_OF: &str = "applyset.kubernetes.io/part-of";
/// The parent's id label.
pub const ID: &str = "applyset.kubernetes.io/id";
/// The parent's list of group-kinds.
pub const KINDS: &str = "applyset.kubernetes.io/contains-group-kinds";
/// The parent's tooling annotation.
pub const TOOLING: &str = "applyset.kubernetes.io/tooling";

/// The ApplySet id of the namespace's parent: `applyset-<base64url(sha256(name.namespace.kind.group))>-v1`.
pub fn id(namespace: &str) -> String {
    let hash = Sha256::digest(format!("{PARENT}.{namespace}.ConfigMap.").as_bytes());
    format!("applyset-{}-v1", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(hash))
}

/// `Kind.group` (`Kind` for the core group), as the parent lists them.
pub fn group_kind(gvk: &GroupVersionKind) -> String {
    if gvk.group.is_empty() { gvk.kind.clone() } else { format!("{}.{}", gvk.kind, gvk.group) }
}

/// The group-kinds the parent lists (empty when there is no parent yet).
pub async fn recorded(client: &Client, namespace: &str) -> Result<BTreeSet<String>, kube::Error> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    let parent = api.get_opt(PARENT).await?;
    Ok(parent
        .and_then(|p| p.metadata.annotations.and_then(|a| a.get(KINDS).cloned()))
        .map(|kinds| kinds.split(',').filter(|k| !k.is_empty()).map(str::to_string).collect())
        .unwrap_or_default())
}

/// Write the parent with every group-kind applied now or before (before anything is applied, so
/// a run that dies half-way still lists what it may have created).
pub async fn record(
    client: &Client,
    namespace: &str,
    manager: &str,
    kinds: &BTreeSet<String>,
) -> Result<(), kube::Error> {
    let mut all = recorded(client, namespace).await?;
    all.extend(kinds.iter().cloned());
    let parent = json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {
            "name": PARENT, "namespace": namespace,
            "labels": {ID: id(namespace)},
            "annotations": {TOOLING: "statuspage-rollout/v1", KINDS: all.into_iter().collect::<Vec<_>>().join(",")},
        },
    });
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    api.patch(PARENT, &PatchParams::apply(manager).force(), &Patch::Apply(&parent)).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_group_kinds() {
        let id = id("app");
        assert!(id.starts_with("applyset-") && id.ends_with("-v1") && !id.contains('='), "{id}");
        assert!(id.len() <= 63, "a label value: {id}");
        assert_eq!(group_kind(&GroupVersionKind::gvk("", "v1", "ConfigMap")), "ConfigMap");
        assert_eq!(group_kind(&GroupVersionKind::gvk("apps", "v1", "Deployment")), "Deployment.apps");
    }
}
