//! The one error type of the patch step, each variant mapped to the exit-code contract.

use std::path::{Path, PathBuf};

use statuspage_common::ExitCode;
use statuspage_common::exit::HasExitCode;

/// ` (line N)` when the line is known, empty otherwise.
fn at(line: &Option<u32>) -> String {
    line.map(|n| format!(" line {n}")).unwrap_or_default()
}

/// Everything that can stop a patch.
#[derive(Debug, thiserror::Error)]
pub enum PatchError {
    /// The overlay directory is missing.
    #[error(
        "overlay {0} is not a directory: pass --overlay with the folder that holds the kustomization.yaml, e.g. manifests/app/overlays/production"
    )]
    MissingOverlay(PathBuf),
    /// The overlay has no kustomization file.
    #[error(
        "overlay {0} has no kustomization.yaml (nor kustomization.yml or Kustomization): pass --overlay with a kustomize overlay folder"
    )]
    NoKustomization(PathBuf),
    /// The overlay has more than one kustomization file (kustomize refuses that too).
    #[error("overlay {dir} has several kustomization files ({names}): keep only one, as kustomize requires")]
    SeveralKustomizations {
        /// The overlay.
        dir: PathBuf,
        /// The files found.
        names: String,
    },
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The kustomization is not YAML.
    #[error(
        "{path}{} is not valid YAML: {message}. Fix the syntax (kustomize would refuse it too)",
        at(line)
    )]
    Yaml {
        /// The kustomization file.
        path: PathBuf,
        /// 1-based line of the problem, when the parser knows it.
        line: Option<u32>,
        /// The parser's message.
        message: String,
    },
    /// The kustomization is YAML, but its `images:` cannot be edited safely.
    #[error("{path}{}: {what}: {fix}", at(line))]
    Layout {
        /// The kustomization file.
        path: PathBuf,
        /// 1-based line of the problem, when there is one.
        line: Option<u32>,
        /// What is wrong.
        what: String,
        /// What to do.
        fix: String,
    },
    /// The release document is unreadable or malformed.
    #[error(transparent)]
    Release(#[from] statuspage_common::release::ReleaseError),
    /// The release document has no images at all.
    #[error(
        "release document {0} has no images: pass the document statuspage-build or statuspage-push printed"
    )]
    EmptyRelease(String),
    /// A flag value is malformed.
    #[error("{flag} value {value:?} is invalid: {fix}")]
    BadInput {
        /// The flag or variable.
        flag: &'static str,
        /// The value given.
        value: String,
        /// What to do instead.
        fix: String,
    },
    /// Writing the kustomization failed; the original is untouched.
    #[error(
        "cannot write {path}: {source}. Nothing was changed: check the folder's permissions and free space"
    )]
    Write {
        /// The kustomization file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// `--check`: the overlay is not at the release.
    #[error(
        "{path}{} is not at the release: {details}. Run statuspage-patch without --check and commit the result",
        at(line)
    )]
    Drift {
        /// The kustomization file.
        path: PathBuf,
        /// The first line that would change.
        line: Option<u32>,
        /// Which images differ, and how.
        details: String,
    },
    /// `kustomize build` of the patched overlay failed.
    #[error("kustomize build of {overlay} (patched) failed: {message}. Nothing was written")]
    Render {
        /// The overlay.
        overlay: PathBuf,
        /// kustomize's message, or why it could not run.
        message: String,
    },
    /// The patched overlay does not deploy the release's images.
    #[error("the overlay {overlay}, patched, does not run the release: {details}. {}", if *check { "Run statuspage-patch and look at the render" } else { "Nothing was written" })]
    NotRendered {
        /// The overlay.
        overlay: PathBuf,
        /// Which image, and what the render runs instead.
        details: String,
        /// Found by `--check` (exit 1) rather than a patch (exit 2).
        check: bool,
    },
    /// Writing Actions outputs failed.
    #[error(transparent)]
    Output(#[from] statuspage_common::actions::ActionsIoError),
}

impl PatchError {
    /// The kustomization file and line an annotation should point at, when the error is about one.
    pub fn location(&self) -> Option<(&Path, Option<u32>)> {
        match self {
            PatchError::Yaml { path, line, .. }
            | PatchError::Layout { path, line, .. }
            | PatchError::Drift { path, line, .. } => Some((path, *line)),
            PatchError::Read { path, .. } | PatchError::Write { path, .. } => Some((path, None)),
            _ => None,
        }
    }
}

impl HasExitCode for PatchError {
    fn exit_code(&self) -> ExitCode {
        match self {
            PatchError::Drift { .. } | PatchError::NotRendered { check: true, .. } => ExitCode::Failed,
            PatchError::Output(_) => ExitCode::External,
            _ => ExitCode::Usage,
        }
    }
}
