//! Push a release's images through the Docker Engine to the registry ECR names, and record the
//! digests in the release document.

use std::time::Duration;

use bollard::Docker;
use bollard::auth::DockerCredentials;
use statuspage_common::image_ref::ImageRef;
use statuspage_common::release::Release;

use crate::ecr::{Ecr, EcrLogin};
use crate::error::PushError;

/// How often a push is tried before the step gives up (exit 3).
pub const ATTEMPTS: u32 = 3;

/// What the push will do for one component.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedPush {
    /// Component (web, worker, scheduler).
    pub component: String,
    /// Repository path inside the registry, e.g. `statuspage-web`.
    pub repository: String,
    /// `registry/repository`.
    pub name: String,
    /// Tags to push, the commit tag first; empty when the image is already in the registry.
    pub tags: Vec<String>,
}

/// Check every image of `release` belongs to `registry` and say what will be pushed.
/// Touches nothing.
pub fn plan(release: &Release, registry: &str) -> Result<Vec<PlannedPush>, PushError> {
    let mut planned = Vec::new();
    for (component, image) in &release.images {
        let bad =
            |problem: String, fix: String| PushError::BadImage { component: component.clone(), problem, fix };
        let parsed: ImageRef = format!("{}:{}", image.repository, image.tag).parse().map_err(
            |e: statuspage_common::image_ref::ImageRefError| {
                bad(e.to_string(), "rebuild with statuspage-build".into())
            },
        )?;
        if parsed.registry.as_deref() != Some(registry) {
            return Err(bad(
                format!("repository {} is not in the ECR registry {registry}", image.repository),
                format!("build with --registry {registry}"),
            ));
        }
        let already_pushed = image.built == Some(false) && image.digest.is_some();
        let mut tags = Vec::new();
        if !already_pushed {
            tags.push(image.tag.clone());
            tags.extend(image.extra_tags.iter().cloned());
        }
        planned.push(PlannedPush {
            component: component.clone(),
            name: parsed.name(),
            repository: parsed.repository,
            tags,
        });
    }
    Ok(planned)
}

/// Connect to the engine through `DOCKER_HOST` (or the default socket).
pub async fn connect_engine() -> Result<Docker, PushError> {
    use statuspage_common::engine::ConnectError;
    match statuspage_common::engine::connect().await {
        Ok((docker, _)) => Ok(docker),
        Err(ConnectError::BadHost { host, fix }) => {
            Err(PushError::BadInput { flag: "DOCKER_HOST", value: host, fix })
        }
        Err(ConnectError::Unreachable { host, reason }) => Err(PushError::EngineUnreachable { host, reason }),
    }
}

fn credentials(login: &EcrLogin) -> DockerCredentials {
    DockerCredentials {
        username: Some(login.username.clone()),
        password: Some(login.password.clone()),
        serveraddress: Some(login.registry.clone()),
        ..Default::default()
    }
}

/// One push attempt; the registry's digest on success.
async fn push_once(docker: &Docker, name: &str, tag: &str, login: &EcrLogin) -> Result<String, String> {
    statuspage_common::engine::push(docker, name, tag, Some(credentials(login))).await
}

/// Check everything a push needs before anything is created or pushed: every planned tag is in
/// the local engine, and none of them already names another image in the registry. A tag the
/// registry has with the local image's own digest is dropped from `planned` (already pushed).
///
/// Errors: [`PushError::BadImage`] for a missing local image and [`PushError::TagTaken`] for a
/// taken tag (both exit 2, nothing changed); [`PushError::RegistryCheck`] when the registry cannot
/// be asked (exit 3).
pub async fn preflight(
    docker: &Docker,
    login: &EcrLogin,
    release: &mut Release,
    planned: &mut [PlannedPush],
) -> Result<(), PushError> {
    for push in planned.iter() {
        for tag in &push.tags {
            let reference = format!("{}:{tag}", push.name);
            if docker.inspect_image(&reference).await.is_err() {
                return Err(PushError::BadImage {
                    component: push.component.clone(),
                    problem: format!("{reference} is not in the local Docker Engine"),
                    fix: "run statuspage-build on this engine first; nothing was pushed".into(),
                });
            }
        }
    }
    for push in planned.iter_mut() {
        let mut keep = Vec::new();
        for tag in &push.tags {
            let reference = format!("{}:{tag}", push.name);
            match registry_digest(docker, &reference, login).await? {
                None => keep.push(tag.clone()),
                Some(existing) if local_digests(docker, &reference).await.contains(&existing) => {
                    eprintln!("{reference} is already in the registry ({existing}): not pushed again");
                    if let Some(image) = release.images.get_mut(&push.component)
                        && tag == &image.tag
                    {
                        image.digest = Some(existing);
                    }
                }
                Some(existing) => return Err(PushError::TagTaken { reference, tag: tag.clone(), existing }),
            }
        }
        push.tags = keep;
    }
    Ok(())
}

/// The registry's digest for `reference`, `None` when the registry (or the repository) lacks it.
async fn registry_digest(
    docker: &Docker,
    reference: &str,
    login: &EcrLogin,
) -> Result<Option<String>, PushError> {
    statuspage_common::engine::registry_digest(docker, reference, Some(credentials(login)))
        .await
        .map_err(|message| PushError::RegistryCheck { reference: reference.into(), message })
}

/// The registry digests the engine knows for the image `reference` names (from earlier pushes).
async fn local_digests(docker: &Docker, reference: &str) -> Vec<String> {
    let Ok(image) = docker.inspect_image(reference).await else { return Vec::new() };
    image
        .repo_digests
        .unwrap_or_default()
        .iter()
        .filter_map(|d| d.split_once('@').map(|(_, digest)| digest.to_string()))
        .collect()
}

/// Push every planned tag, retrying with backoff, logging in again when the registry says the
/// token is no longer good. Fills `digest` in `release`.
pub async fn push_all(
    docker: &Docker,
    ecr: &Ecr,
    mut login: EcrLogin,
    release: &mut Release,
    planned: &[PlannedPush],
) -> Result<(), PushError> {
    for push in planned {
        for tag in &push.tags {
            let reference = format!("{}:{tag}", push.name);
            let mut attempt = 0;
            let digest = loop {
                attempt += 1;
                match push_once(docker, &push.name, tag, &login).await {
                    Ok(digest) => break digest,
                    Err(message) if attempt >= ATTEMPTS => {
                        return Err(PushError::PushFailed { reference, attempts: attempt, message });
                    }
                    Err(message) => {
                        eprintln!("push {reference}: attempt {attempt} failed ({message}); retrying");
                        if message.contains("unauthorized") || message.contains("authentication required") {
                            login = ecr.login().await?;
                        }
                        tokio::time::sleep(Duration::from_secs(1 << attempt)).await;
                    }
                }
            };
            eprintln!("pushed {reference} ({digest})");
            if let Some(image) = release.images.get_mut(&push.component)
                && tag == &image.tag
            {
                image.digest = Some(digest);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use statuspage_common::release::ReleaseImage;

    fn release(repository: &str, built: Option<bool>, digest: Option<&str>) -> Release {
        let mut release = Release::new("a".repeat(40));
        release.images.insert(
            "web".into(),
            ReleaseImage {
                repository: repository.into(),
                tag: "a".repeat(40),
                extra_tags: vec!["main".into()],
                digest: digest.map(str::to_string),
                image_id: None,
                size: None,
                built,
            },
        );
        release
    }

    #[test]
    fn plans_tags_for_built_images_and_nothing_for_already_pushed_ones() {
        let registry = "123456789012.dkr.ecr.us-east-1.amazonaws.com";
        let built =
            plan(&release(&format!("{registry}/statuspage-web"), Some(true), None), registry).unwrap();
        assert_eq!(built[0].repository, "statuspage-web");
        assert_eq!(built[0].tags, ["a".repeat(40), "main".into()]);
        let digest = format!("sha256:{}", "0".repeat(64));
        let skipped =
            plan(&release(&format!("{registry}/statuspage-web"), Some(false), Some(&digest)), registry)
                .unwrap();
        assert!(skipped[0].tags.is_empty());
    }

    #[test]
    fn refuses_images_outside_the_ecr_registry() {
        let err =
            plan(&release("other.example/statuspage-web", Some(true), None), "123.dkr.ecr.x.amazonaws.com")
                .unwrap_err()
                .to_string();
        assert!(
            err.contains("release image web") && err.contains("--registry 123.dkr.ecr.x.amazonaws.com"),
            "{err}"
        );
    }
}
