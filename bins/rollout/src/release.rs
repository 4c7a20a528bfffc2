//! What runs must be what was released: with `--release FILE`, every release image must appear
//! as `repository:tag@digest` in a pod template of the render (refused otherwise, nothing
//! applied), and the report compares the digests the ready pods run with the release's.

use serde_json::Value;
use statuspage_common::release::{Release, ReleaseImage};

use crate::RolloutError;
use crate::manifests::Object;
use crate::report::{ReleaseCheck, WorkloadReport};

/// The reference the render must carry: `repository:tag@digest` (without a digest: `repository:tag`).
pub fn reference(image: &ReleaseImage) -> String {
    match &image.digest {
        Some(digest) => format!("{}:{}@{digest}", image.repository, image.tag),
        None => format!("{}:{}", image.repository, image.tag),
    }
}

/// The container images of an object's pod template (Deployment, StatefulSet, DaemonSet, Job,
/// CronJob), init containers included.
pub fn pod_images(data: &Value) -> Vec<String> {
    let pod =
        data.pointer("/spec/template/spec").or_else(|| data.pointer("/spec/jobTemplate/spec/template/spec"));
    let Some(pod) = pod else { return Vec::new() };
    ["initContainers", "containers"]
        .iter()
        .filter_map(|key| pod[key].as_array())
        .flatten()
        .filter_map(|c| c["image"].as_str().map(str::to_string))
        .collect()
}

/// The repository of an image reference (without tag and digest).
pub fn repository(image: &str) -> &str {
    let name = image.split('@').next().unwrap_or(image);
    match name.rsplit_once(':') {
        Some((repository, tag)) if !tag.contains('/') => repository,
        _ => name,
    }
}

/// Refuse a render that does not run every image of the release, or that runs a release
/// repository at another tag or digest.
pub fn check_render(release: &Release, objects: &[&Object]) -> Result<(), RolloutError> {
    for object in objects {
        for image in pod_images(&object.object.data) {
            let stale = release
                .images
                .iter()
                .find(|(_, r)| repository(&image) == r.repository && image != reference(r));
            if let Some((component, wanted)) = stale {
                return Err(RolloutError::Refused {
                    object: object.label(),
                    message: format!(
                        "runs {image}, not release image {component} {}; patch the overlay with statuspage-patch",
                        reference(wanted)
                    ),
                });
            }
        }
    }
    let images: Vec<String> = objects.iter().flat_map(|o| pod_images(&o.object.data)).collect();
    for (component, image) in &release.images {
        let wanted = reference(image);
        if images.contains(&wanted) {
            continue;
        }
        let same_repository: Vec<&String> = images
            .iter()
            .filter(|i| {
                i.starts_with(&format!("{}:", image.repository))
                    || i.starts_with(&format!("{}@", image.repository))
            })
            .collect();
        let found = if same_repository.is_empty() {
            format!("no container runs {} at all (the render's images: {})", image.repository, list(&images))
        } else {
            format!("the render runs {} instead", list(&same_repository))
        };
        return Err(RolloutError::Refused {
            object: format!("release image {component}"),
            message: format!(
                "the render does not run {wanted}: {found}; patch the overlay with statuspage-patch \
                 (and check that no base or component renames the image)"
            ),
        });
    }
    Ok(())
}

fn list<T: AsRef<str>>(items: &[T]) -> String {
    if items.is_empty() {
        return "none".into();
    }
    items.iter().map(|i| i.as_ref().to_string()).collect::<Vec<_>>().join(", ")
}

/// Per release image, the workloads that run it and whether their ready pods run its digest.
pub fn compare(release: &Release, workloads: &[WorkloadReport]) -> Vec<ReleaseCheck> {
    release
        .images
        .iter()
        .map(|(component, image)| {
            let wanted = reference(image);
            let users: Vec<&WorkloadReport> =
                workloads.iter().filter(|w| w.images.contains(&wanted)).collect();
            let running = !users.is_empty()
                && users.iter().all(|w| {
                    !w.running.is_empty()
                        && image
                            .digest
                            .as_ref()
                            .is_some_and(|d| w.running.iter().any(|r| r.ends_with(d.as_str())))
                });
            ReleaseCheck {
                component: component.clone(),
                image: wanted,
                workloads: users.iter().map(|w| format!("{}/{}", w.kind, w.name)).collect(),
                running,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::manifests::parse;

    const DIGEST: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";

    fn release(repository: &str) -> Release {
        let mut release = Release::new("0123456789abcdef0123456789abcdef01234567");
        release.images.insert(
            "web".into(),
            ReleaseImage {
                repository: repository.into(),
                tag: "0123456789abcdef0123456789abcdef01234567".into(),
                extra_tags: vec![],
                digest: Some(DIGEST.into()),
                image_id: None,
                size: None,
                built: None,
            },
        );
        release
    }

    #[test]
    fn a_render_that_runs_another_image_is_refused() {
        let text = format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  template:\n    spec:\n      containers:\n      - name: web\n        image: reg/renamed:0123456789abcdef0123456789abcdef01234567@{DIGEST}\n"
        );
        let objects = parse(&text, "r").unwrap();
        let refs: Vec<&Object> = objects.iter().collect();
        assert!(check_render(&release("reg/renamed"), &refs).is_ok());
        let err = check_render(&release("reg/statuspage-web"), &refs).unwrap_err().to_string();
        assert!(err.contains("reg/statuspage-web:0123") && err.contains("reg/renamed"), "{err}");
        let stale = text.replace(&format!("@{DIGEST}"), "");
        let objects = parse(&stale, "r").unwrap();
        let refs: Vec<&Object> = objects.iter().collect();
        let err = check_render(&release("reg/renamed"), &refs).unwrap_err().to_string();
        assert!(err.contains("Deployment/web") && err.contains("release image web"), "{err}");
        assert_eq!(repository("reg:5000/a/b:v1@sha256:x"), "reg:5000/a/b");
        assert_eq!(repository("reg:5000/a/b"), "reg:5000/a/b");
    }
}
