//! Write a release's images into a kustomize overlay's `images:` list.
//!
//! [`run`] validates everything first (the release's repositories, tags and digests, the overlay
//! and its kustomization), computes the edit with [`kustomization::update`] (whole lines of the
//! `images:` block only: comments, ordering and quoting elsewhere stay byte for byte), and then
//! renders the patched overlay to check that it runs the release ([`render`]), and then writes the
//! file atomically, prints a diff (`--dry-run`), or reports drift (`--check`).

pub mod cli;
pub mod error;
pub mod kustomization;
pub mod render;
pub mod report;

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use statuspage_common::release::Release;

pub use error::PatchError;
pub use kustomization::{DesiredImage, EntryValues, ImageChange, Update};

/// What to do with the computed edit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Write the kustomization (atomically) when it changes.
    Write,
    /// Compute the edit, write nothing.
    DryRun,
    /// Fail with [`PatchError::Drift`] when the overlay is not at the release; write nothing.
    Check,
}

/// Everything a patch needs besides the release document.
#[derive(Debug, Clone)]
pub struct PatchConfig {
    /// The overlay directory (holds `kustomization.yaml`).
    pub overlay: PathBuf,
    /// Component to the image name the base manifests use; `statuspage-<component>` otherwise.
    pub image_names: BTreeMap<String, String>,
    /// Write, dry run or check.
    pub mode: Mode,
    /// The kustomize binary to render the patched overlay with, to check that it runs the
    /// release (see [`render`]); `None` skips the check.
    pub kustomize: Option<PathBuf>,
}

/// What a patch run did (or, in dry-run and check mode, would do).
#[derive(Debug, Clone)]
pub struct PatchOutcome {
    /// The kustomization file.
    pub kustomization: PathBuf,
    /// The edit.
    pub update: Update,
    /// True when the file was written.
    pub written: bool,
}

/// The `images:` entries the release asks for, after checking every field of every image.
///
/// `origin` names the release document in errors.
pub fn desired_images(
    release: &Release,
    origin: &str,
    image_names: &BTreeMap<String, String>,
) -> Result<Vec<DesiredImage>, PatchError> {
    if release.images.is_empty() {
        return Err(PatchError::EmptyRelease(origin.to_string()));
    }
    if let Some(unknown) = image_names.keys().find(|c| !release.images.contains_key(*c)) {
        return Err(PatchError::BadInput {
            flag: "--image-name",
            value: format!("{unknown}={}", image_names[unknown]),
            fix: format!(
                "the release has no component {unknown:?} (it has {}): fix the component name",
                release.images.keys().cloned().collect::<Vec<_>>().join(", ")
            ),
        });
    }
    // The checks every binary applies to a release document (repository, tag, digest, …); the
    // CLI has run them while parsing, a library caller may not have.
    release.validate(origin)?;
    let mut wanted: Vec<DesiredImage> = Vec::new();
    for (component, image) in &release.images {
        let name = image_names.get(component).cloned().unwrap_or_else(|| format!("statuspage-{component}"));
        if let Some(other) = wanted.iter().find(|w| w.name == name) {
            return Err(PatchError::BadInput {
                flag: "--image-name",
                value: format!("{component}={name}"),
                fix: format!(
                    "component {} already uses the image name {name}: give each its own",
                    other.component
                ),
            });
        }
        wanted.push(DesiredImage {
            component: component.clone(),
            name,
            new_name: image.repository.clone(),
            new_tag: image.tag.clone(),
            digest: image.digest.clone(),
        });
    }
    Ok(wanted)
}

/// Validate, compute the edit, and write, print or check it according to `config.mode`.
pub fn run(config: &PatchConfig, release: &Release, origin: &str) -> Result<PatchOutcome, PatchError> {
    let wanted = desired_images(release, origin, &config.image_names)?;
    let path = kustomization::find(&config.overlay)?;
    let text =
        std::fs::read_to_string(&path).map_err(|source| PatchError::Read { path: path.clone(), source })?;
    let update = kustomization::update(&text, &path, &wanted)?;
    let mut written = false;
    // Under --check a changed overlay is drift, reported as such; unless the release has a
    // component the overlay has no entry for: the render says whether any workload runs it.
    let adds = update.changes.iter().any(|c| c.before.is_none());
    if let Some(kustomize) = &config.kustomize
        && !(config.mode == Mode::Check && update.changed() && !adds)
    {
        render::verify(&config.overlay, &path, &update.text, release, kustomize, config.mode == Mode::Check)?;
    }
    match config.mode {
        Mode::Check if update.changed() => {
            let details = update
                .changes
                .iter()
                .filter(|c| c.changed())
                .map(|c| {
                    let after = c.after.image(&c.name);
                    match &c.before {
                        None => format!("{} has no images: entry, the release has {after}", c.name),
                        Some(b) => format!("{} is {}, the release has {after}", c.name, b.image(&c.name)),
                    }
                })
                .collect::<Vec<_>>()
                .join("; ");
            let line = update.hunks.first().map(|h| u32::try_from(h.old_start.max(1)).unwrap_or(u32::MAX));
            return Err(PatchError::Drift { path, line, details });
        }
        Mode::Write if update.changed() => {
            write_atomically(&path, &update.text)?;
            written = true;
        }
        _ => {}
    }
    Ok(PatchOutcome { kustomization: path, update, written })
}

/// Replace `path` with `text` through a temporary file in the same directory and a rename, so a
/// reader sees the old file or the new one, never half of it. Keeps the file's permissions.
pub fn write_atomically(path: &Path, text: &str) -> Result<(), PatchError> {
    let fail = |source| PatchError::Write { path: path.to_path_buf(), source };
    // Write through a symlink to its target rather than replacing the link.
    let target = std::fs::canonicalize(path).map_err(fail)?;
    let dir = target.parent().unwrap_or(Path::new("."));
    let mut temp = tempfile::Builder::new().prefix(".statuspage-patch-").tempfile_in(dir).map_err(fail)?;
    temp.write_all(text.as_bytes()).map_err(fail)?;
    temp.as_file().sync_all().map_err(fail)?;
    let permissions = std::fs::metadata(&target).map_err(fail)?.permissions();
    temp.as_file().set_permissions(permissions).map_err(fail)?;
    temp.persist(&target).map_err(|e| fail(e.error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use statuspage_common::release::ReleaseImage;

    const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    const KUSTOMIZATION: &str =
        "# keep me\nimages:\n  - name: statuspage-web # the web UI\n    newTag: old\n";

    fn release(repository: &str, tag: &str, digest: Option<&str>) -> Release {
        let mut release = Release::new("a".repeat(40));
        release.images.insert(
            "web".into(),
            ReleaseImage {
                repository: repository.into(),
                tag: tag.into(),
                extra_tags: vec![],
                digest: digest.map(str::to_string),
                image_id: None,
                size: None,
                built: None,
            },
        );
        release
    }

    fn overlay() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("kustomization.yaml"), KUSTOMIZATION).unwrap();
        dir
    }

    fn config(dir: &Path, mode: Mode) -> PatchConfig {
        PatchConfig { overlay: dir.to_path_buf(), image_names: BTreeMap::new(), mode, kustomize: None }
    }

    #[test]
    fn every_release_field_is_checked_and_named() {
        let names = BTreeMap::new();
        let cases = [
            (release("Reg.example/Web", "t", None), "images.web.repository"),
            (release("reg.example/web:tag", "t", None), "images.web.repository"),
            (release("reg.example/web", "-bad", None), "images.web.tag"),
            (release("reg.example/web", "", None), "images.web.tag"),
            (release("reg.example/web", "t", Some("sha256:abc")), "images.web.digest"),
        ];
        for (release, field) in cases {
            let err = desired_images(&release, "r.json", &names).unwrap_err();
            assert!(err.to_string().contains(field) && err.to_string().contains("r.json"), "{err}");
            assert_eq!(
                statuspage_common::exit::HasExitCode::exit_code(&err),
                statuspage_common::ExitCode::Usage
            );
        }
        let err = desired_images(&Release::new("a"), "r.json", &names).unwrap_err();
        assert!(err.to_string().contains("has no images"), "{err}");
    }

    #[test]
    fn image_names_map_components_and_typos_are_errors() {
        let release = release("reg.example/web", "t", Some(DIGEST));
        let wanted = desired_images(&release, "r", &BTreeMap::new()).unwrap();
        assert_eq!(wanted[0].name, "statuspage-web");
        let names = BTreeMap::from([("web".to_string(), "my-web".to_string())]);
        assert_eq!(desired_images(&release, "r", &names).unwrap()[0].name, "my-web");
        let names = BTreeMap::from([("wbe".to_string(), "x".to_string())]);
        let err = desired_images(&release, "r", &names).unwrap_err();
        assert!(err.to_string().contains("no component \"wbe\" (it has web)"), "{err}");
    }

    #[test]
    fn write_keeps_everything_else_and_the_permissions() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = overlay();
        let path = dir.path().join("kustomization.yaml");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        let outcome =
            run(&config(dir.path(), Mode::Write), &release("reg.example/web", "new", None), "r").unwrap();
        assert!(outcome.written && outcome.update.changed());
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "# keep me\nimages:\n  - name: statuspage-web # the web UI\n    newName: reg.example/web\n    newTag: new\n"
        );
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o640);
        let leftovers = std::fs::read_dir(dir.path()).unwrap().count();
        assert_eq!(leftovers, 1, "no temporary file is left behind");
        let again =
            run(&config(dir.path(), Mode::Write), &release("reg.example/web", "new", None), "r").unwrap();
        assert!(!again.written && !again.update.changed());
    }

    #[test]
    fn dry_run_and_check_write_nothing() {
        let dir = overlay();
        let path = dir.path().join("kustomization.yaml");
        let release = release("reg.example/web", "new", Some(DIGEST));
        let outcome = run(&config(dir.path(), Mode::DryRun), &release, "r").unwrap();
        assert!(outcome.update.changed() && !outcome.written);
        let diff = outcome.update.diff("k");
        assert!(diff.contains("\n-    newTag: old\n") && diff.contains("\n+    newTag: new\n"), "{diff}");
        let err = run(&config(dir.path(), Mode::Check), &release, "r").unwrap_err();
        assert!(matches!(err, PatchError::Drift { line: Some(4), .. }), "{err}");
        assert!(
            err.to_string().contains(
                "statuspage-web is statuspage-web:old, the release has reg.example/web:new@sha256:"
            ),
            "{err}"
        );
        assert_eq!(
            statuspage_common::exit::HasExitCode::exit_code(&err),
            statuspage_common::ExitCode::Failed
        );
        assert_eq!(std::fs::read_to_string(&path).unwrap(), KUSTOMIZATION);
        run(&config(dir.path(), Mode::Write), &release, "r").unwrap();
        run(&config(dir.path(), Mode::Check), &release, "r").unwrap();
    }

    #[test]
    fn bad_input_writes_nothing() {
        let dir = overlay();
        let path = dir.path().join("kustomization.yaml");
        std::fs::write(&path, "images:\n  - name: statuspage-web\n    newTag: [\n").unwrap();
        let err =
            run(&config(dir.path(), Mode::Write), &release("reg.example/web", "t", None), "r").unwrap_err();
        let (file, line) = err.location().unwrap();
        assert_eq!((file, line.is_some()), (path.as_path(), true), "{err}");
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "images:\n  - name: statuspage-web\n    newTag: [\n"
        );
    }
}
