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
    /// An AWS endpoint did not answer (connection refused, no such host, timeout): the
    /// credentials were never checked, so they are not blamed.
    #[error(
        "AWS {operation} failed: the endpoint {endpoint} ({origin}) is unreachable after the SDK's retries: {message}. Check the URL and that the service listens there"
    )]
    AwsUnreachable {
        /// The API operation.
        operation: &'static str,
        /// The endpoint URL the SDK called.
        endpoint: String,
        /// Where that URL came from (`AWS_ENDPOINT_URL_STS`, `AWS_ENDPOINT_URL`, the SDK's default).
        origin: String,
        /// The innermost connection error.
        message: String,
    },
    /// A flag or environment variable is wrong.
    #[error("{flag} value {value:?} is invalid: {fix}")]
    BadInput {
        /// The flag or variable.
        flag: &'static str,
        /// The value given.
        value: String,
        /// What is wrong and what to do.
        fix: String,
    },
    /// No AWS region from any source of the default chain.
    #[error(
        "no AWS region: set AWS_REGION (aws-actions/configure-aws-credentials sets it from its aws-region input) or a region in the AWS profile. Nothing was pushed"
    )]
    NoRegion,
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
    /// The images were pushed, but the `--release-file` could not be written.
    #[error(
        "the images were pushed, but writing --release-file {path} failed: {source}. The document is on stdout; pushing again is a no-op"
    )]
    ReleaseFile {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Writing outputs failed.
    #[error(transparent)]
    Output(#[from] statuspage_common::actions::ActionsIoError),
}

impl HasExitCode for PushError {
    fn exit_code(&self) -> ExitCode {
        match self {
            PushError::Release(_)
            | PushError::BadImage { .. }
            | PushError::BadInput { .. }
            | PushError::NoRegion
            | PushError::TagTaken { .. } => ExitCode::Usage,
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
        other => chain(other),
    }
}

/// The text of an error and every cause, joined by `: ` (what [`describe`] shows for errors
/// other than a service's answer).
fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let said = cause.to_string();
        if !text.contains(&said) {
            text.push_str(&format!(": {said}"));
        }
        source = cause.source();
    }
    text
}

/// The endpoint the SDK calls for `service` (`STS`, `ECR`), and where that URL came from: the
/// SDK reads `AWS_ENDPOINT_URL_<SERVICE>` first, then `AWS_ENDPOINT_URL`, then its default.
pub fn endpoint(service: &str, default: impl FnOnce(&str) -> String) -> (String, String) {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let specific = format!("AWS_ENDPOINT_URL_{service}");
    if let Some(url) = var(&specific) {
        return (url, specific);
    }
    if let Some(url) = var("AWS_ENDPOINT_URL") {
        return (url, "AWS_ENDPOINT_URL".into());
    }
    let region =
        var("AWS_REGION").or_else(|| var("AWS_DEFAULT_REGION")).unwrap_or_else(|| "us-east-1".into());
    (default(&region), format!("the SDK's default for region {region}"))
}

/// True when `text` (an error chain) says the endpoint did not answer, rather than refused the call.
fn unreachable(text: &str) -> bool {
    [
        "client error (Connect)",
        "tcp connect error",
        "Connection refused",
        "dns error",
        "failed to lookup address",
        "timed out",
        "TimedOut",
    ]
    .iter()
    .any(|m| text.contains(m))
}

/// Map a failed AWS call to the error a user can act on: an unreachable endpoint names the URL
/// (the failing call may be the credential provider's own STS call, so `sts` is checked too);
/// anything else is [`PushError::Aws`].
pub fn aws_error<E, R>(
    operation: &'static str,
    service: (&str, fn(&str) -> String),
    err: &aws_sdk_ecr::error::SdkError<E, R>,
) -> PushError
where
    E: aws_sdk_ecr::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let message = describe(err);
    if err.as_service_error().is_none() && unreachable(&message) {
        // While loading credentials the web-identity provider calls STS, wherever the call went.
        let loading = message.contains("loading credentials");
        let (endpoint, origin) =
            if loading { endpoint("STS", sts_default) } else { endpoint(service.0, service.1) };
        let mut innermost = message.rsplit(": ").next().unwrap_or(&message).to_string();
        if loading {
            innermost.push_str(" (while the credential provider called STS)");
        }
        return PushError::AwsUnreachable { operation, endpoint, origin, message: innermost };
    }
    PushError::Aws { operation, message }
}

/// STS's default regional endpoint.
pub fn sts_default(region: &str) -> String {
    format!("https://sts.{region}.amazonaws.com")
}

/// ECR's default regional API endpoint.
pub fn ecr_default(region: &str) -> String {
    format!("https://api.ecr.{region}.amazonaws.com")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_failures_are_told_from_refusals() {
        let refused = "dispatch failure: other: an error occurred while loading credentials: dispatch failure: io error: client error (Connect): tcp connect error: Connection refused (os error 111)";
        assert!(unreachable(refused));
        assert!(unreachable("dispatch failure: io error: dns error: failed to lookup address information"));
        assert!(!unreachable("ExpiredTokenException: The security token included in the request is expired"));
        assert!(!unreachable(
            "an error occurred while loading credentials: No such file or directory (os error 2)"
        ));
    }

    #[test]
    fn the_endpoint_is_named_with_its_origin() {
        // Only the default is independent of the test process's environment.
        let (url, origin) = endpoint("NO_SUCH_SERVICE_FOR_TEST", sts_default);
        if std::env::var_os("AWS_ENDPOINT_URL").is_none() {
            assert!(
                url.starts_with("https://sts.") && origin.starts_with("the SDK's default"),
                "{url} {origin}"
            );
        } else {
            assert_eq!(origin, "AWS_ENDPOINT_URL");
        }
        assert_eq!(ecr_default("eu-west-1"), "https://api.ecr.eu-west-1.amazonaws.com");
    }

    #[test]
    fn bad_input_is_exit_2_and_unreachable_endpoints_exit_3() {
        let bad = PushError::BadInput { flag: "DOCKER_HOST", value: "bogus://x".into(), fix: "f".into() };
        assert_eq!(bad.exit_code(), ExitCode::Usage);
        let down = PushError::AwsUnreachable {
            operation: "sts:GetCallerIdentity",
            endpoint: "http://127.0.0.1:9".into(),
            origin: "AWS_ENDPOINT_URL".into(),
            message: "Connection refused".into(),
        };
        assert_eq!(down.exit_code(), ExitCode::External);
        let text = down.to_string();
        assert!(
            text.contains("http://127.0.0.1:9 (AWS_ENDPOINT_URL)") && !text.contains("credentials"),
            "{text}"
        );
    }
}
