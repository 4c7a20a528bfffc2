//! What the build and push steps both ask the Docker Engine (feature `engine`): a checked
//! connection, the digest a registry has for a reference, and a push that returns the digest.
//! Each step maps the errors to its own error type.

use std::time::Duration;

use bollard::Docker;
use bollard::auth::DockerCredentials;
use bollard::query_parameters::PushImageOptionsBuilder;
use futures_util::StreamExt as _;

/// Why [`connect`] failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectError {
    /// `DOCKER_HOST` cannot name an engine; `fix` says what to write (exit 2).
    BadHost {
        /// The value of `DOCKER_HOST`.
        host: String,
        /// What is wrong and what to write.
        fix: String,
    },
    /// The engine did not answer a ping within 10 s, or refused it (exit 3).
    Unreachable {
        /// The engine address.
        host: String,
        /// The client's error.
        reason: String,
    },
}

/// Connect through `DOCKER_HOST` (or the default socket) and ping the engine, within 10 s.
/// Returns the client and the address it uses.
pub async fn connect() -> Result<(Docker, String), ConnectError> {
    let host = crate::docker_host::docker_host();
    if let Some(fix) = crate::docker_host::problem(&host) {
        return Err(ConnectError::BadHost { host, fix });
    }
    let unreachable = |reason: String| ConnectError::Unreachable { host: host.clone(), reason };
    let docker = Docker::connect_with_defaults().map_err(|e| unreachable(e.to_string()))?;
    match tokio::time::timeout(Duration::from_secs(10), docker.ping()).await {
        Ok(Ok(_)) => Ok((docker, host)),
        Ok(Err(e)) => Err(unreachable(e.to_string())),
        Err(_) => Err(unreachable("no answer within 10 s".into())),
    }
}

/// The registry's digest for `reference` (`registry/repository:tag`), asked through the engine
/// (Engine API `GET /distribution/{name}/json`), within 20 s. `Ok(None)`: the registry does not
/// have it, including a repository that does not exist yet (ECR's `name unknown`); a refusal of
/// the credentials is an error, even where dockerd words it "does not exist or may require
/// 'docker login': denied".
pub async fn registry_digest(
    docker: &Docker,
    reference: &str,
    credentials: Option<DockerCredentials>,
) -> Result<Option<String>, String> {
    const ABSENT: [&str; 4] = ["manifest unknown", "not found", "name unknown", "does not exist"];
    let call = docker.inspect_registry_image(reference, credentials);
    match tokio::time::timeout(Duration::from_secs(20), call).await {
        Err(_) => Err("no answer within 20 s".into()),
        Ok(Ok(inspect)) => Ok(inspect.descriptor.digest),
        Ok(Err(bollard::errors::Error::DockerResponseServerError { status_code, message }))
            if !refused(&message) && (status_code == 404 || ABSENT.iter().any(|m| message.contains(m))) =>
        {
            Ok(None)
        }
        Ok(Err(e)) => Err(e.to_string()),
    }
}

/// True when a registry error refuses the credentials rather than lacking the image.
fn refused(message: &str) -> bool {
    let message = message.to_ascii_lowercase();
    ["denied", "unauthorized", "docker login"].iter().any(|m| message.contains(m))
}

/// Push `name:tag` (Engine API `POST /images/{name}/push`); the registry's digest on success,
/// the engine's or registry's message otherwise.
pub async fn push(
    docker: &Docker,
    name: &str,
    tag: &str,
    credentials: Option<DockerCredentials>,
) -> Result<String, String> {
    let options = PushImageOptionsBuilder::default().tag(tag).build();
    let mut stream = docker.push_image(name, Some(options), credentials);
    let mut digest = None;
    while let Some(item) = stream.next().await {
        let info = item.map_err(|e| e.to_string())?;
        if let Some(message) = info.error_detail.and_then(|e| e.message) {
            return Err(message);
        }
        if let Some(found) = info.status.as_deref().and_then(crate::image_ref::pushed_digest) {
            digest = Some(found);
        }
    }
    digest.ok_or_else(|| "the engine reported no digest".into())
}

#[cfg(test)]
mod tests {
    use super::refused;

    #[test]
    fn a_refusal_is_not_an_absent_image() {
        assert!(refused(
            "repository x does not exist or may require 'docker login': denied: requested access to the resource is denied"
        ));
        assert!(refused("unauthorized: authentication required"));
        assert!(!refused(
            "name unknown: The repository with name 'statuspage-web' does not exist in the registry with id '123456789012'"
        ));
        assert!(!refused("manifest unknown: manifest unknown"));
    }
}
