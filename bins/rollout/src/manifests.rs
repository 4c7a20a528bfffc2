//! The rendered manifests: parsing multi-document YAML into objects, the order they are applied
//! in, and the per-release copy of the migration Job template. Pure functions, no cluster.

use kube::api::DynamicObject;
use kube::core::GroupVersionKind;
use serde::Deserialize as _;
use serde_json::Value;
use sha2::{Digest as _, Sha256};

use crate::RolloutError;

/// The annotation that marks the migration Job template (see manifests/README.md).
pub const ROLE_ANNOTATION: &str = "statuspage.io/role";
/// Its value on the template.
pub const MIGRATION_TEMPLATE: &str = "migration-template";
/// Its value on the per-release copy.
pub const MIGRATION_COPY: &str = "migration";

/// One object of the render.
#[derive(Debug, Clone)]
pub struct Object {
    /// The object as it will be applied.
    pub object: DynamicObject,
    /// Its group, version and kind.
    pub gvk: GroupVersionKind,
    /// Its 1-based document number in the render.
    pub document: usize,
}

impl Object {
    /// `Kind/name`, the way messages name an object.
    pub fn label(&self) -> String {
        format!("{}/{}", self.gvk.kind, self.name())
    }

    /// `metadata.name`.
    pub fn name(&self) -> &str {
        self.object.metadata.name.as_deref().unwrap_or_default()
    }

    /// True for the Job marked as the migration template.
    pub fn is_migration_template(&self) -> bool {
        self.gvk.group == "batch"
            && self.gvk.kind == "Job"
            && self
                .object
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(ROLE_ANNOTATION))
                .is_some_and(|v| v == MIGRATION_TEMPLATE)
    }

    /// True for the objects the migration gate guards: they change only after the migration.
    pub fn is_workload(&self) -> bool {
        matches!(
            (self.gvk.group.as_str(), self.gvk.kind.as_str()),
            ("apps", "Deployment" | "StatefulSet" | "DaemonSet")
                | ("batch", "CronJob")
                | ("autoscaling", "HorizontalPodAutoscaler")
        )
    }

    /// True for the workloads whose rollout is awaited: Deployments, StatefulSets, DaemonSets.
    pub fn is_awaited(&self) -> bool {
        self.gvk.group == "apps"
            && matches!(self.gvk.kind.as_str(), "Deployment" | "StatefulSet" | "DaemonSet")
    }

    /// True for a `group`/`kind` object.
    pub fn is(&self, group: &str, kind: &str) -> bool {
        self.gvk.group == group && self.gvk.kind == kind
    }

    /// The order objects are applied in: what others refer to first. Objects of one rank do not
    /// depend on each other and may be applied at once.
    pub fn apply_rank(&self) -> u8 {
        match self.gvk.kind.as_str() {
            "Namespace" => 0,
            "CustomResourceDefinition" => 1,
            "ResourceQuota" | "LimitRange" | "PriorityClass" => 2,
            // A service-account token Secret after its ServiceAccount; a binding after its role
            // (an applier without `bind` may only bind a role that exists).
            "ServiceAccount" => 3,
            "Secret" | "ConfigMap" | "SecretProviderClass" => 4,
            "ClusterRole" | "Role" => 5,
            "ClusterRoleBinding" | "RoleBinding" => 6,
            "PersistentVolumeClaim" | "Service" | "NetworkPolicy" => 7,
            "Deployment" | "StatefulSet" | "DaemonSet" | "CronJob" => 9,
            "HorizontalPodAutoscaler" => 10,
            _ => 8,
        }
    }
}

/// Parse multi-document YAML (what `kustomize build` prints) into objects.
///
/// `origin` names the input in errors. Empty documents are skipped; every other document must
/// have `apiVersion`, `kind` and `metadata.name`.
pub fn parse(text: &str, origin: &str) -> Result<Vec<Object>, RolloutError> {
    let mut objects = Vec::new();
    let mut seen = std::collections::HashMap::new();
    for (index, document) in yaml_serde::Deserializer::from_str(text).enumerate() {
        let bad = |message: String| RolloutError::Manifest {
            origin: origin.to_string(),
            document: index + 1,
            message,
        };
        let value = Value::deserialize(document).map_err(|e| bad(format!("not valid YAML: {e}")))?;
        if value.is_null() {
            continue;
        }
        if !value.is_object() {
            return Err(bad("is not a Kubernetes object (a mapping with apiVersion and kind)".into()));
        }
        let object: DynamicObject =
            serde_json::from_value(value).map_err(|e| bad(format!("is not a Kubernetes object: {e}")))?;
        let Some(types) = object.types.clone() else {
            return Err(bad("has no apiVersion/kind".into()));
        };
        if types.kind.is_empty() || types.api_version.is_empty() {
            return Err(bad("has an empty apiVersion or kind".into()));
        }
        if object.metadata.name.as_deref().unwrap_or_default().is_empty() {
            return Err(bad(format!("{} has no metadata.name", types.kind)));
        }
        let gvk = GroupVersionKind::try_from(&types).map_err(|e| bad(format!("bad apiVersion: {e}")))?;
        let key = (
            gvk.group.clone(),
            gvk.kind.clone(),
            object.metadata.namespace.clone(),
            object.metadata.name.clone(),
        );
        if let Some(first) = seen.insert(key, index + 1) {
            return Err(bad(format!(
                "is {}/{} again (document {first} is the same object): the later one would silently \
                 replace the earlier; keep one",
                gvk.kind,
                object.metadata.name.as_deref().unwrap_or_default()
            )));
        }
        objects.push(Object { object, gvk, document: index + 1 });
    }
    if objects.is_empty() {
        return Err(RolloutError::Manifest {
            origin: origin.to_string(),
            document: 0,
            message: "holds no objects".into(),
        });
    }
    objects.sort_by_key(Object::apply_rank);
    Ok(objects)
}

/// The namespace the render declares: the name of its only Namespace object.
pub fn declared_namespace(objects: &[Object]) -> Option<String> {
    let mut names = objects.iter().filter(|o| o.gvk.kind == "Namespace" && o.gvk.group.is_empty());
    match (names.next(), names.next()) {
        (Some(only), None) => Some(only.name().to_string()),
        _ => None,
    }
}

/// The tag of an image reference (`repo:tag`, `repo:tag@sha256:…`), if it has one.
pub fn image_tag(image: &str) -> Option<&str> {
    let without_digest = image.split('@').next().unwrap_or(image);
    let last = without_digest.rsplit('/').next().unwrap_or(without_digest);
    last.split_once(':').map(|(_, tag)| tag).filter(|t| !t.is_empty())
}

/// The images of a pod template's containers (`spec.template.spec.containers[].image`).
pub fn template_images(data: &Value) -> Vec<String> {
    data.pointer("/spec/template/spec/containers")
        .and_then(Value::as_array)
        .map(|cs| cs.iter().filter_map(|c| c["image"].as_str().map(str::to_string)).collect())
        .unwrap_or_default()
}

/// The per-release copy of the migration Job template: named `<name>-<10 hex of a hash of the pod
/// template>` (images with their digests included, so another release or a changed command is
/// another Job), marked `statuspage.io/role: migration`.
pub fn migration_copy(template: &Object) -> Object {
    let mut copy = template.clone();
    let pod = template.object.data.pointer("/spec/template").cloned().unwrap_or_default();
    let hash = Sha256::digest(pod.to_string().as_bytes());
    let suffix: String = hash.iter().take(5).map(|b| format!("{b:02x}")).collect();
    let base: String = template.name().chars().take(52).collect();
    copy.object.metadata.name = Some(format!("{base}-{suffix}"));
    copy.object
        .metadata
        .annotations
        .get_or_insert_default()
        .insert(ROLE_ANNOTATION.into(), MIGRATION_COPY.into());
    copy
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const RENDER: &str = "\
apiVersion: v1
kind: Namespace
metadata:
  name: app
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: app
spec:
  template:
    spec:
      containers:
      - name: web
        image: reg.example/statuspage-web:0123456789abcdef0123456789abcdef01234567@sha256:aa
---
apiVersion: batch/v1
kind: Job
metadata:
  name: migrate
  namespace: app
  annotations:
    statuspage.io/role: migration-template
spec:
  template:
    spec:
      containers:
      - name: migrate
        image: reg.example/statuspage-web:0123456789abcdef0123456789abcdef01234567@sha256:aa
        args: [release]
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: web
  namespace: app
";

    #[test]
    fn parses_and_orders_what_others_refer_to_first() {
        let objects = parse(RENDER, "render").unwrap();
        let labels: Vec<String> = objects.iter().map(Object::label).collect();
        assert_eq!(labels, ["Namespace/app", "ServiceAccount/web", "Job/migrate", "Deployment/web"]);
        assert_eq!(declared_namespace(&objects).as_deref(), Some("app"));
        assert!(objects[2].is_migration_template());
        assert!(objects[3].is_workload() && objects[3].is_awaited());
    }

    #[test]
    fn migration_copy_is_named_after_its_pod_template() {
        let objects = parse(RENDER, "render").unwrap();
        let copy = migration_copy(&objects[2]);
        assert!(copy.name().starts_with("migrate-") && copy.name().len() == "migrate-".len() + 10);
        assert!(!copy.is_migration_template());
        let changed = RENDER.replace("args: [release]", "args: [release, --fake]");
        let other = migration_copy(&parse(&changed, "render").unwrap()[2]);
        assert_ne!(copy.name(), other.name(), "another command is another Job");
    }

    #[test]
    fn the_same_object_twice_is_refused_naming_both_documents() {
        let twice = format!(
            "{RENDER}---\napiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: web\n  namespace: app\n"
        );
        let err = parse(&twice, "x.yaml").unwrap_err().to_string();
        assert!(
            err.contains("document 5") && err.contains("document 4") && err.contains("ServiceAccount/web"),
            "{err}"
        );
    }

    #[test]
    fn image_tags() {
        assert_eq!(image_tag("reg:5000/a/b:v1@sha256:x"), Some("v1"));
        assert_eq!(image_tag("reg:5000/a/b"), None);
        assert_eq!(image_tag("b@sha256:x"), None);
    }

    #[test]
    fn bad_documents_are_named() {
        let err = parse("apiVersion: v1\nkind: ConfigMap\nmetadata: {}\n", "x.yaml").unwrap_err().to_string();
        assert!(
            err.contains("x.yaml") && err.contains("document 1") && err.contains("metadata.name"),
            "{err}"
        );
        let err = parse("- a\n", "x.yaml").unwrap_err().to_string();
        assert!(err.contains("not a Kubernetes object"), "{err}");
        assert!(parse("---\n", "x.yaml").is_err());
    }
}
