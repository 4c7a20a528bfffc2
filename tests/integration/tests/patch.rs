//! The patch step against the repository's real overlays and the real `kustomize build`: a copy
//! of `manifests/app` is patched with a release document, rendered, and the Deployments must run
//! the release's images while the kustomization keeps its comments. The binary is run too, for
//! its exit codes and its stdout (the release document, unchanged, so steps compose).
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Deserialize;
use serde_json::Value;
use statuspage_common::release::{Release, ReleaseImage};
use statuspage_integration_tests::{copy_tree, run_binary};
use statuspage_patch_overlay::{Mode, PatchConfig};

const SHA: &str = "0123456789abcdef0123456789abcdef01234567";
const REGISTRY: &str = "123456789012.dkr.ecr.us-east-1.amazonaws.com";
const COMMENT: &str = "# Only the patch step of the pipeline edits these entries.";

fn digest(fill: char) -> String {
    format!("sha256:{}", fill.to_string().repeat(64))
}

/// web and worker pushed (with digests), scheduler without a digest.
fn release() -> Release {
    let mut release = Release::new(SHA);
    for (component, digest) in
        [("web", Some(digest('a'))), ("worker", Some(digest('b'))), ("scheduler", None)]
    {
        release.images.insert(
            component.into(),
            ReleaseImage {
                repository: format!("{REGISTRY}/statuspage-{component}"),
                tag: SHA.into(),
                extra_tags: vec![],
                digest,
                image_id: None,
                size: None,
                built: Some(true),
            },
        );
    }
    release
}

/// A temporary copy of manifests/app (base, components, overlays).
fn app_copy() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    copy_tree(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../../manifests/app"), &dir.path().join("app"));
    let production = dir.path().join("app/overlays/production");
    (dir, production)
}

fn kustomize_build(dir: &Path) -> Vec<Value> {
    let out = Command::new("kustomize").arg("build").arg(dir).output().unwrap_or_else(|e| {
        panic!("kustomize is not on PATH ({e}): run tests/tools/install.sh and add /var/cache/statuspage/tools/bin to PATH")
    });
    assert!(
        out.status.success(),
        "kustomize build {}: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    yaml_serde::Deserializer::from_str(&String::from_utf8_lossy(&out.stdout))
        .map(|doc| Value::deserialize(doc).unwrap())
        .filter(|v| !v.is_null())
        .collect()
}

/// Workload name to its containers' images.
fn images(objects: &[Value]) -> BTreeMap<String, Vec<String>> {
    objects
        .iter()
        .filter(|o| matches!(o["kind"].as_str(), Some("Deployment" | "Job")))
        .map(|o| {
            let containers =
                o["spec"]["template"]["spec"]["containers"].as_array().cloned().unwrap_or_default();
            let images = containers.iter().filter_map(|c| c["image"].as_str().map(str::to_string)).collect();
            (o["metadata"]["name"].as_str().unwrap_or("").to_string(), images)
        })
        .collect()
}

#[test]
fn patched_production_overlay_renders_the_release_images_and_keeps_its_comments() {
    let (_dir, production) = app_copy();
    let before = std::fs::read_to_string(production.join("kustomization.yaml")).unwrap();
    let config = PatchConfig {
        overlay: production.clone(),
        image_names: BTreeMap::new(),
        mode: Mode::Write,
        kustomize: Some("kustomize".into()),
    };
    let outcome = statuspage_patch_overlay::run(&config, &release(), "release.json").unwrap();
    assert!(outcome.written);

    let after = std::fs::read_to_string(production.join("kustomization.yaml")).unwrap();
    let comments = |text: &str| {
        text.lines().filter(|l| l.trim_start().starts_with('#')).map(str::to_string).collect::<Vec<_>>()
    };
    assert_eq!(comments(&after), comments(&before), "every comment survives");
    assert!(after.contains(COMMENT));
    let (head, _) = before.split_once("images:").unwrap();
    assert!(after.starts_with(head), "everything before images: is byte for byte the same");

    let rendered = images(&kustomize_build(&production));
    let pinned =
        |component: &str, fill: char| format!("{REGISTRY}/statuspage-{component}:{SHA}@{}", digest(fill));
    for (workload, expected) in [
        ("web", pinned("web", 'a')),
        ("worker", pinned("worker", 'b')),
        ("scheduler", format!("{REGISTRY}/statuspage-scheduler:{SHA}")),
    ] {
        let found = rendered.iter().find(|(name, _)| name.ends_with(workload)).map(|(_, i)| i.clone());
        assert_eq!(found, Some(vec![expected]), "{workload} in {rendered:?}");
    }
    // The migration Job runs the web image too, pinned the same way.
    let all: Vec<&String> = rendered.values().flatten().collect();
    assert!(all.iter().all(|i| i.starts_with(REGISTRY) && i.contains(SHA)), "{all:?}");

    // Patching again is a no-op, and --check agrees.
    let again = statuspage_patch_overlay::run(&config, &release(), "release.json").unwrap();
    assert!(!again.written && !again.update.changed());
    let check = PatchConfig { mode: Mode::Check, ..config };
    statuspage_patch_overlay::run(&check, &release(), "release.json").unwrap();
}

fn patch_binary(args: &[&str], stdin: &str) -> (i32, String, String) {
    run_binary("statuspage-patch", args, &[], stdin)
}

#[test]
fn binary_refuses_a_bad_release_with_exit_2_and_passes_a_good_one_through() {
    let (_dir, production) = app_copy();
    let overlay = production.to_str().unwrap();
    let kustomization = production.join("kustomization.yaml");
    let before = std::fs::read_to_string(&kustomization).unwrap();

    let mut bad = release();
    bad.images.get_mut("worker").unwrap().digest = Some("sha256:short".into());
    let (code, out, err) = patch_binary(&["--overlay", overlay], &bad.to_json());
    assert_eq!(code, 2, "{err}");
    assert!(out.is_empty(), "{out}");
    assert!(err.contains("images.worker.digest") && err.contains("sha256:short"), "{err}");
    assert_eq!(err.lines().filter(|l| l.contains("error:")).count(), 1, "one error line: {err}");
    assert_eq!(std::fs::read_to_string(&kustomization).unwrap(), before, "nothing written");

    let (code, _, err) = patch_binary(&["--overlay", "/nonexistent/overlay"], &release().to_json());
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("/nonexistent/overlay is not a directory"), "{err}");

    let json = release().to_json();
    let (code, _, err) = patch_binary(&["--overlay", overlay, "--check"], &json);
    assert_eq!(code, 1, "drift before the patch: {err}");
    let (code, out, err) = patch_binary(&["--overlay", overlay, "--dry-run"], &json);
    assert_eq!((code, out.as_str()), (0, json.as_str()), "{err}");
    assert!(
        err.contains("+    newTag: 0123") && err.contains("web: statuspage-web would be changed"),
        "{err}"
    );
    assert_eq!(std::fs::read_to_string(&kustomization).unwrap(), before, "dry run writes nothing");

    let (code, out, err) = patch_binary(&["--overlay", overlay], &json);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, json, "stdout is the release document, unchanged");
    assert_eq!(err.lines().filter(|l| l.contains(" changed ")).count(), 3, "{err}");
    let (code, _, err) = patch_binary(&["--overlay", overlay, "--check"], &json);
    assert_eq!(code, 0, "at the release after the patch: {err}");
}

#[test]
fn a_base_that_renames_the_image_is_refused_by_the_patch_and_by_check() {
    let (_dir, production) = app_copy();
    let kustomization = production.join("kustomization.yaml");
    // The base now renames the web image: the overlay's entry no longer matches it.
    let base = production.join("../../base/kustomization.yaml");
    let text = std::fs::read_to_string(&base).unwrap();
    let renamed = text.replace(
        "  - name: statuspage-web\n",
        "  - name: statuspage-web\n    newName: example.com/renamed-web\n",
    );
    assert_ne!(renamed, text, "the base's images: entry for statuspage-web");
    std::fs::write(&base, renamed).unwrap();
    let before = std::fs::read_to_string(&kustomization).unwrap();
    let overlay = production.to_str().unwrap();
    let json = release().to_json();

    let (code, out, err) = patch_binary(&["--overlay", overlay], &json);
    assert_eq!(code, 2, "{err}");
    assert!(out.is_empty(), "{out}");
    assert!(err.contains("does not run the release") && err.contains("release image web"), "{err}");
    assert!(err.contains("example.com/renamed-web"), "the render's image is named: {err}");
    assert_eq!(std::fs::read_to_string(&kustomization).unwrap(), before, "nothing written");

    // A kustomization already at the release (written without the check) fails --check with 1.
    let config = PatchConfig {
        overlay: production.clone(),
        image_names: BTreeMap::new(),
        mode: Mode::Write,
        kustomize: None,
    };
    statuspage_patch_overlay::run(&config, &release(), "release.json").unwrap();
    let (code, _, err) = patch_binary(&["--overlay", overlay, "--check"], &json);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("release image web"), "{err}");
}
