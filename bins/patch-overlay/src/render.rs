//! What the overlay deploys must be what was released: the overlay, with the new kustomization,
//! is rendered with `kustomize build` (in a temporary sibling copy, so relative paths to bases and
//! components still resolve and the real file is untouched), and every release image must appear
//! as `repository:tag@digest` in the render's pod templates, with no container running a release
//! repository at another reference (a base or component that renames the image does exactly that).

use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Deserialize as _;
use serde_json::Value;
use statuspage_common::release::{Release, ReleaseImage};

use crate::PatchError;

/// `repository:tag@digest` (`repository:tag` without a digest).
pub fn reference(image: &ReleaseImage) -> String {
    match &image.digest {
        Some(digest) => format!("{}:{}@{digest}", image.repository, image.tag),
        None => format!("{}:{}", image.repository, image.tag),
    }
}

/// The repository of an image reference (without tag and digest).
fn repository(image: &str) -> &str {
    let name = image.split('@').next().unwrap_or(image);
    match name.rsplit_once(':') {
        Some((repository, tag)) if !tag.contains('/') => repository,
        _ => name,
    }
}

/// Render `overlay` with `kustomization` (the file's name inside it) replaced by `text`, and check
/// the render runs `release`. `check` selects the error's exit code (1 under `--check`, else 2).
pub fn verify(
    overlay: &Path,
    kustomization: &Path,
    text: &str,
    release: &Release,
    kustomize: &Path,
    check: bool,
) -> Result<(), PatchError> {
    let rendered = render(overlay, kustomization, text, kustomize)?;
    let images = pod_images(&rendered);
    let fail = |details: String| PatchError::NotRendered { overlay: overlay.to_path_buf(), details, check };
    for (component, image) in &release.images {
        let wanted = reference(image);
        if let Some((workload, other)) =
            images.iter().find(|(_, i)| repository(i) == image.repository && *i != wanted)
        {
            return Err(fail(format!("{workload} runs {other}, not release image {component} {wanted}")));
        }
        if !images.iter().any(|(_, i)| *i == wanted) {
            let all: Vec<&str> = images.iter().map(|(_, i)| i.as_str()).collect();
            return Err(fail(format!(
                "no workload runs release image {component} {wanted} (the render runs {}); a base or component \
                 may rename the image (newName in its images:), or --image-name may be wrong",
                if all.is_empty() { "no images".to_string() } else { all.join(", ") }
            )));
        }
    }
    Ok(())
}

fn render(overlay: &Path, kustomization: &Path, text: &str, kustomize: &Path) -> Result<String, PatchError> {
    let fail = |message: String| PatchError::Render { overlay: overlay.to_path_buf(), message };
    let parent = overlay.parent().unwrap_or(Path::new("."));
    let copy = tempfile::Builder::new()
        .prefix(".statuspage-patch-render-")
        .tempdir_in(parent)
        .map_err(|e| fail(format!("cannot make a temporary copy next to it: {e}")))?;
    copy_tree(overlay, copy.path()).map_err(|e| fail(format!("cannot copy it: {e}")))?;
    let name = kustomization.file_name().map(PathBuf::from).unwrap_or_else(|| "kustomization.yaml".into());
    std::fs::write(copy.path().join(name), text).map_err(|e| fail(format!("cannot copy it: {e}")))?;
    let output = Command::new(kustomize).arg("build").arg(copy.path()).output().map_err(|e| {
        fail(format!("cannot run {}: {e} (install kustomize or pass --kustomize PATH)", kustomize.display()))
    })?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(fail(stderr.trim().lines().last().unwrap_or("no message").to_string()));
    }
    String::from_utf8(output.stdout).map_err(|_| fail("kustomize printed invalid UTF-8".into()))
}

fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if std::fs::metadata(entry.path())?.is_dir() {
            copy_tree(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}

/// (`Kind/name`, image) of every container and init container of the render's pod templates.
fn pod_images(rendered: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for document in yaml_serde::Deserializer::from_str(rendered) {
        let Ok(object) = Value::deserialize(document) else { continue };
        let pod = object
            .pointer("/spec/template/spec")
            .or_else(|| object.pointer("/spec/jobTemplate/spec/template/spec"));
        let Some(pod) = pod else { continue };
        let label = format!(
            "{}/{}",
            object["kind"].as_str().unwrap_or_default(),
            object["metadata"]["name"].as_str().unwrap_or_default()
        );
        for key in ["initContainers", "containers"] {
            for container in pod[key].as_array().into_iter().flatten() {
                if let Some(image) = container["image"].as_str() {
                    out.push((label.clone(), image.to_string()));
                }
            }
        }
    }
    out
}
