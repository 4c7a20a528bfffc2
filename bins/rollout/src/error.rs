//! The one error type of the rollout step, each variant mapped to the exit-code contract.

use statuspage_common::ExitCode;
use statuspage_common::exit::HasExitCode;

use crate::report::Report;

/// Everything that can stop a rollout.
#[derive(Debug, thiserror::Error)]
pub enum RolloutError {
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
    /// `kustomize build` could not run or refused the overlay.
    #[error("kustomize build {overlay} failed: {message}")]
    Render {
        /// The overlay.
        overlay: String,
        /// kustomize's message (or why it could not start).
        message: String,
    },
    /// The manifests file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// A document of the render is not a usable object.
    #[error("{origin}: document {document} {message}")]
    Manifest {
        /// Where the render came from.
        origin: String,
        /// 1-based document number (0: the whole input).
        document: usize,
        /// What is wrong.
        message: String,
    },
    /// The API server does not serve an object's kind.
    #[error(
        "{object}: the API server has no resource for {api_version} {kind}: install its CRD or fix apiVersion/kind"
    )]
    UnknownKind {
        /// `Kind/name`.
        object: String,
        /// The object's apiVersion.
        api_version: String,
        /// The object's kind.
        kind: String,
    },
    /// The server-side dry run refused an object; nothing was applied.
    #[error("{object} was refused by the server-side dry run: {message}. Nothing was applied")]
    Rejected {
        /// `Kind/name`.
        object: String,
        /// The API server's message.
        message: String,
    },
    /// The Kubernetes API failed (connection, permissions, a real apply refused).
    #[error("{what}: {source}")]
    Kube {
        /// What was being done.
        what: String,
        /// The client's error.
        source: kube::Error,
    },
    /// Another rollout holds the namespace's Lease; nothing was changed.
    #[error(
        "another rollout is changing namespace {namespace} (Lease/statuspage-rollout held by {holder}): nothing was changed; wait for it, or delete the Lease if that rollout is dead"
    )]
    Busy {
        /// The namespace.
        namespace: String,
        /// The Lease's holder identity.
        holder: String,
    },
    /// The migration Job failed; no workload was changed.
    #[error("migration {job} failed: {reason}. The Deployments were not changed")]
    MigrationFailed {
        /// The Job's name.
        job: String,
        /// Why.
        reason: String,
        /// What was done so far.
        report: Box<Report>,
    },
    /// The rollout failed and was not rolled back (`--no-rollback`, or no previous revision).
    #[error("rollout failed: {reason}")]
    RolloutFailed {
        /// Which Deployments failed and how.
        reason: String,
        /// What was done.
        report: Box<Report>,
    },
    /// The rollout failed and every changed Deployment is back at its previous revision.
    #[error("rollout failed and was rolled back: {reason}")]
    RolledBack {
        /// Which Deployments failed and how.
        reason: String,
        /// What was done.
        report: Box<Report>,
    },
    /// The rollout failed and so did the rollback.
    #[error("rollout failed ({reason}) and the rollback failed too: {rollback}. Look at the namespace now")]
    RollbackFailed {
        /// Which Deployments failed and how.
        reason: String,
        /// What went wrong rolling back.
        rollback: String,
        /// What was done.
        report: Box<Report>,
    },
    /// Writing Actions outputs failed.
    #[error(transparent)]
    Output(#[from] statuspage_common::actions::ActionsIoError),
}

impl RolloutError {
    /// The report of a run that got as far as changing the cluster.
    pub fn report(&self) -> Option<&Report> {
        match self {
            RolloutError::MigrationFailed { report, .. }
            | RolloutError::RolloutFailed { report, .. }
            | RolloutError::RolledBack { report, .. }
            | RolloutError::RollbackFailed { report, .. } => Some(report),
            _ => None,
        }
    }

    /// A Kubernetes API error with what was being done.
    pub fn kube(what: impl Into<String>) -> impl FnOnce(kube::Error) -> RolloutError {
        let what = what.into();
        move |source| RolloutError::Kube { what, source }
    }
}

impl HasExitCode for RolloutError {
    fn exit_code(&self) -> ExitCode {
        match self {
            RolloutError::BadInput { .. }
            | RolloutError::Render { .. }
            | RolloutError::Read { .. }
            | RolloutError::Manifest { .. }
            | RolloutError::UnknownKind { .. }
            | RolloutError::Rejected { .. } => ExitCode::Usage,
            RolloutError::Kube { .. } | RolloutError::Output(_) | RolloutError::Busy { .. } => {
                ExitCode::External
            }
            RolloutError::MigrationFailed { .. } | RolloutError::RolloutFailed { .. } => ExitCode::Failed,
            RolloutError::RolledBack { .. } => ExitCode::RolledBack,
            RolloutError::RollbackFailed { .. } => ExitCode::RollbackFailed,
        }
    }
}
