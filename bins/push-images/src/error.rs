//! The one error type of the push step.

use statuspage_common::ExitCode;
use statuspage_common::exit::HasExitCode;

/// Everything that can stop a push.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    /// An AWS API call failed.
    #[error(
        "AWS {operation} failed: {message}. Check the credentials (default chain: web identity, profile, env) and AWS_REGION"
    )]
    Aws {
        /// The API operation.
        operation: &'static str,
        /// The SDK's message, with the service error code when there is one.
        message: String,
    },
    /// ECR answered with something unusable.
    #[error("ECR {operation} returned {what}: {fix}")]
    BadAnswer {
        /// The API operation.
        operation: &'static str,
        /// What was wrong.
        what: String,
        /// What to do.
        fix: &'static str,
    },
    /// The release document cannot be pushed as it is.
    #[error(transparent)]
    Release(#[from] statuspage_common::release::ReleaseError),
    /// An image of the release is wrong or absent.
    #[error("release image {component}: {problem}: {fix}")]
    BadImage {
        /// Component name (web, worker, scheduler).
        component: String,
        /// What is wrong.
        problem: String,
        /// What to do.
        fix: String,
    },
    /// The Docker Engine is not reachable.
    #[error("Docker Engine at {host} is unreachable: {reason}. Start it or set DOCKER_HOST to its socket")]
    EngineUnreachable {
        /// DOCKER_HOST or the default socket.
        host: String,
        /// Why.
        reason: String,
    },
    /// A push failed after every retry.
    #[error("pushing {reference} failed after {attempts} attempts: {message}")]
    PushFailed {
        /// The image reference.
        reference: String,
        /// How many attempts were made.
        attempts: u32,
        /// The last error.
        message: String,
    },
    /// A tag the push would write already names another image in the registry (ECR tags are
    /// immutable, and a mutable tag would silently move).
    #[error(
        "{reference} already exists in the registry as {existing}, not as the local image: nothing was pushed. ECR tags are immutable: build a new commit (statuspage-build reuses images the registry already has), or drop --extra-tag {tag}"
    )]
    TagTaken {
        /// `registry/repository:tag`.
        reference: String,
        /// The tag alone.
        tag: String,
        /// The registry's digest for it.
        existing: String,
    },
    /// The registry could not be asked about a tag.
    #[error("cannot check {reference} in the registry: {message}")]
    RegistryCheck {
        /// `registry/repository:tag`.
        reference: String,
        /// Why.
        message: String,
    },
    /// Writing outputs failed.
    #[error(transparent)]
    Output(#[from] statuspage_common::actions::ActionsIoError),
}

impl HasExitCode for PushError {
    fn exit_code(&self) -> ExitCode {
        match self {
            PushError::Release(_) | PushError::BadImage { .. } | PushError::TagTaken { .. } => {
                ExitCode::Usage
            }
            _ => ExitCode::External,
        }
    }
}

/// Render an SDK error with its service code and message, never its request (which may carry headers).
pub fn describe<E, R>(err: &aws_sdk_ecr::error::SdkError<E, R>) -> String
where
    E: aws_sdk_ecr::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    use aws_sdk_ecr::error::SdkError;
    match err {
        SdkError::ServiceError(service) => {
            let inner = service.err();
            format!("{}: {}", inner.code().unwrap_or("ServiceError"), inner.message().unwrap_or("no message"))
        }
        other => {
            let mut text = other.to_string();
            let mut source = std::error::Error::source(other);
            while let Some(cause) = source {
                text.push_str(&format!(": {cause}"));
                source = cause.source();
            }
            text
        }
    }
}
