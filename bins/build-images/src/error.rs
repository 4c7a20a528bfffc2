//! The one error type of the build step, each variant mapped to the exit-code contract.

use std::path::PathBuf;

use statuspage_common::ExitCode;
use statuspage_common::exit::HasExitCode;

/// Everything that can stop a build.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The context directory is missing.
    #[error(
        "build context {0} is not a directory: pass --context with the folder that holds the Dockerfile's files"
    )]
    MissingContext(PathBuf),
    /// The Dockerfile is missing.
    #[error("Dockerfile {0} does not exist: pass --dockerfile with its path")]
    MissingDockerfile(PathBuf),
    /// A target is not a stage of the Dockerfile.
    #[error(
        "target {target:?} is not a stage of {dockerfile} (stages: {stages}): fix --target or add `FROM … AS {target}`"
    )]
    UnknownTarget {
        /// The target asked for.
        target: String,
        /// The Dockerfile.
        dockerfile: PathBuf,
        /// The stages it has.
        stages: String,
    },
    /// A build arg that no `ARG` declares (a typo would otherwise be silently ignored).
    #[error("build arg {name:?} is not declared by any ARG in {dockerfile}: remove it or add `ARG {name}`")]
    UnknownBuildArg {
        /// The build arg.
        name: String,
        /// The Dockerfile.
        dockerfile: PathBuf,
    },
    /// Some flag value is malformed.
    #[error("{flag} value {value:?} is invalid: {fix}")]
    BadInput {
        /// The flag or variable.
        flag: &'static str,
        /// The value given.
        value: String,
        /// What to do instead.
        fix: String,
    },
    /// No commit could be determined, or the tree is dirty.
    #[error(transparent)]
    Commit(#[from] statuspage_common::commit::CommitError),
    /// Reading the context failed.
    #[error("cannot read the build context {path}: {source}")]
    Context {
        /// The file or folder.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Writing the release document failed after the build.
    #[error("the images were built, but writing {path} failed: {source}")]
    ReleaseFile {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The Docker Engine is not reachable.
    #[error("Docker Engine at {host} is unreachable: {reason}. Start it or set DOCKER_HOST to its socket")]
    EngineUnreachable {
        /// DOCKER_HOST or the default socket.
        host: String,
        /// Why.
        reason: String,
    },
    /// A build step failed.
    #[error("target {target} failed at step `{step}`: {message}{tail}")]
    StepFailed {
        /// The target.
        target: String,
        /// The failing step as the builder names it.
        step: String,
        /// The builder's error.
        message: String,
        /// The last lines of the step's output, already formatted.
        tail: String,
    },
    /// The engine failed in a way that is not a build step's fault.
    #[error("Docker Engine error while {action}: {source}")]
    Engine {
        /// What was being done.
        action: String,
        /// The engine's error.
        source: bollard::errors::Error,
    },
    /// The registry refused the credentials (401/403): not the Dockerfile's fault.
    #[error(
        "registry {registry} refused the credentials from {credentials} while {action}: {message}. Log in again (for ECR: aws ecr get-login-password | docker login --username AWS --password-stdin {registry}) or pass --registry-username/--registry-password"
    )]
    RegistryAuth {
        /// The registry host.
        registry: String,
        /// Where the credentials came from, or that there were none.
        credentials: String,
        /// What was being done (`importing cache for target web`, …).
        action: String,
        /// The registry's answer.
        message: String,
    },
    /// Writing outputs failed.
    #[error(transparent)]
    Output(#[from] statuspage_common::actions::ActionsIoError),
}

impl HasExitCode for BuildError {
    fn exit_code(&self) -> ExitCode {
        match self {
            BuildError::StepFailed { .. } => ExitCode::Failed,
            BuildError::EngineUnreachable { .. }
            | BuildError::Engine { .. }
            | BuildError::RegistryAuth { .. } => ExitCode::External,
            BuildError::Output(_) | BuildError::ReleaseFile { .. } => ExitCode::External,
            _ => ExitCode::Usage,
        }
    }
}

/// Format the last lines of a failing step's output for [`BuildError::StepFailed`].
pub fn format_tail(lines: &[String]) -> String {
    if lines.is_empty() {
        String::new()
    } else {
        format!("\n--- last {} lines of output ---\n{}", lines.len(), lines.join("\n"))
    }
}

/// True when a registry's answer (as the engine or BuildKit relays it) refuses the credentials.
pub fn is_auth_failure(message: &str) -> bool {
    let lower = message.to_ascii_lowercase();
    [
        "401 unauthorized",
        "403 forbidden",
        "unauthorized:",
        "authentication required",
        "no basic auth credentials",
        "denied: ",
    ]
    .iter()
    .any(|m| lower.contains(m))
}

/// The registry host a BuildKit or engine message names in a `https://HOST/v2/` URL.
pub fn registry_in(message: &str) -> Option<String> {
    let rest = &message[message.find("https://")? + "https://".len()..];
    let host = rest.split('/').next()?;
    rest[host.len()..].starts_with("/v2/").then(|| host.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_refusals_are_recognised_and_their_registry_named() {
        let buildkit = "failed to configure registry cache importer: unexpected status from HEAD request to https://123.dkr.ecr.us-east-1.amazonaws.com/v2/web/manifests/abc: 401 Unauthorized";
        assert!(is_auth_failure(buildkit));
        assert_eq!(registry_in(buildkit).as_deref(), Some("123.dkr.ecr.us-east-1.amazonaws.com"));
        assert!(is_auth_failure(
            "Docker responded with status code 401: unauthorized: authentication required"
        ));
        assert!(!is_auth_failure("process \"/bin/sh -c make\" did not complete successfully: exit code: 2"));
        assert_eq!(registry_in("see https://example.com/docs"), None);
    }
}
