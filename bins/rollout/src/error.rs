//! The one error type of the rollout step, each variant mapped to the exit-code contract.

use statuspage_common::ExitCode;
use statuspage_common::exit::HasExitCode;

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
    #[error("{what}: {}", describe(cause))]
    Kube {
        /// What was being done.
        what: String,
        /// The client's error (its text is in the message: no `caused by:` repeats it).
        cause: kube::Error,
    },
    /// The API server could not be reached, after retries.
    #[error(
        "cannot reach the Kubernetes API server at {url} ({detail}; tried {attempts} times): check that the cluster is up and that KUBECONFIG points at it"
    )]
    Unreachable {
        /// The server's URL from the kubeconfig.
        url: String,
        /// What failed.
        detail: String,
        /// How often it was tried.
        attempts: u32,
    },
    /// The kubeconfig could not be loaded.
    #[error("no usable kubeconfig ({detail}): set KUBECONFIG to a kubeconfig file, or run in a cluster")]
    Kubeconfig {
        /// Why.
        detail: String,
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
    /// Validation refused what is live in the cluster (paused, a running Job of another
    /// template, an HPA fighting `replicas`, a render that does not run the release).
    #[error("{object}: {message}. Nothing was applied")]
    Refused {
        /// `Kind/name` (or the file).
        object: String,
        /// What is wrong and what to do.
        message: String,
    },
    /// The async runtime or the signal handlers could not be set up.
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
    /// Writing Actions outputs failed.
    #[error(transparent)]
    Output(#[from] statuspage_common::actions::ActionsIoError),
}

impl RolloutError {
    /// A Kubernetes API error with what was being done.
    pub fn kube(what: impl Into<String>) -> impl FnOnce(kube::Error) -> RolloutError {
        let what = what.into();
        move |cause| RolloutError::Kube { what, cause }
    }
}

/// A Kubernetes client error in one line: the API server's own message for a refusal (never a
/// `Status { … }` dump), what to do for authentication and permission failures.
pub fn describe(err: &kube::Error) -> String {
    match err {
        kube::Error::Api(status) => {
            let message =
                if status.message.is_empty() { status.reason.as_str() } else { status.message.as_str() };
            match status.code {
                401 => format!(
                    "401 Unauthorized: the API server refused the credentials ({message}); renew the token in KUBECONFIG"
                ),
                403 => format!("403 Forbidden: {message}; grant the deployer's Role this permission"),
                code => format!("{code} {}: {message}", status.reason),
            }
        }
        other => {
            let mut text = other.to_string();
            let mut source = std::error::Error::source(other);
            while let Some(cause) = source {
                let line = cause.to_string();
                if !text.contains(&line) {
                    text.push_str(&format!(": {line}"));
                }
                source = std::error::Error::source(cause);
            }
            text
        }
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
            | RolloutError::Rejected { .. }
            | RolloutError::Refused { .. }
            | RolloutError::Kubeconfig { .. } => ExitCode::Usage,
            RolloutError::Kube { .. }
            | RolloutError::Unreachable { .. }
            | RolloutError::Output(_)
            | RolloutError::Runtime(_)
            | RolloutError::Busy { .. } => ExitCode::External,
        }
    }
}
