//! The local stack is made of real components: the Docker Engine builds through its API, the
//! registry takes pushes over TLS with the ECR token's credentials, and moto answers the AWS SDK.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use bollard::auth::DockerCredentials;
use bollard::query_parameters::{
    CreateImageOptionsBuilder, PushImageOptionsBuilder, RemoveImageOptionsBuilder, TagImageOptionsBuilder,
};
use futures_util::StreamExt;
use statuspage_build_images::{BuildConfig, run};
use statuspage_integration_tests::{build_config, docker, scratch_context, stack, unique};
use statuspage_push_images::Ecr;

const MULTI_STAGE: &str = "\
FROM scratch AS base
COPY busybox /bin/busybox
RUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]
COPY nonce /nonce
FROM base AS app
RUN echo app > /component
CMD [\"/bin/cat\", \"/component\"]
";

fn config(context: &std::path::Path, repository: &str) -> BuildConfig {
    build_config(context, &[format!("app={repository}")], "0123456789abcdef0123456789abcdef01234567")
}

fn creds(user: &str, password: &str) -> DockerCredentials {
    DockerCredentials {
        username: Some(user.into()),
        password: Some(password.into()),
        serveraddress: Some(stack().registry),
        ..Default::default()
    }
}

/// Push `image:tag` through the engine; returns the digest the registry reported.
async fn push(image: &str, tag: &str, credentials: DockerCredentials) -> Result<String, String> {
    let docker = docker();
    let options = PushImageOptionsBuilder::default().tag(tag).build();
    let mut stream = docker.push_image(image, Some(options), Some(credentials));
    let mut digest = None;
    while let Some(item) = stream.next().await {
        let info = item.map_err(|e| e.to_string())?;
        if let Some(error) = info.error_detail.and_then(|e| e.message) {
            return Err(error);
        }
        if let Some(status) = info.status
            && let Some(rest) = status.split("digest: ").nth(1)
        {
            digest = rest.split_whitespace().next().map(str::to_string);
        }
    }
    digest.ok_or_else(|| "push finished without a digest".into())
}

#[tokio::test]
async fn the_stack_engine_is_docker_engine_26_1_with_api_1_45() {
    let version = docker().version().await.unwrap();
    let (engine, api) = (version.version.unwrap_or_default(), version.api_version.unwrap_or_default());
    println!("stack engine: Docker Engine {engine}, API {api}, at {}", stack().docker_host);
    assert!(engine.starts_with("26.1.5"), "Docker Engine {engine}: tests/stack/docker.sh starts 26.1.5");
    assert_eq!(api, "1.45");
}

#[tokio::test]
async fn engine_builds_a_multi_stage_scratch_image_with_buildkit() {
    let context = scratch_context(MULTI_STAGE);
    let repository = unique("stack-it/engine");
    let outcome = run(&config(context.path(), &repository), std::sync::Arc::new(|_| {})).await.unwrap();
    let built = &outcome.targets[0];
    assert!(built.image_id.starts_with("sha256:"), "{built:?}");
    assert!(built.steps.iter().any(|s| s.name.contains("RUN echo app") && !s.cached), "{:?}", built.steps);
    // The image really runs: the engine starts the FROM scratch container's busybox.
    let docker = docker();
    let name = unique("stack-it-run");
    let image = format!("{}/{repository}:{}", stack().registry, outcome.release.images["app"].tag);
    let body = bollard::models::ContainerCreateBody { image: Some(image), ..Default::default() };
    let options = bollard::query_parameters::CreateContainerOptionsBuilder::default().name(&name).build();
    docker.create_container(Some(options), body).await.unwrap();
    docker.start_container(&name, None::<bollard::query_parameters::StartContainerOptions>).await.unwrap();
    let mut wait = docker.wait_container(&name, None::<bollard::query_parameters::WaitContainerOptions>);
    while let Some(item) = wait.next().await {
        assert_eq!(item.unwrap().status_code, 0);
    }
    let mut logs = docker
        .logs(&name, Some(bollard::query_parameters::LogsOptionsBuilder::default().stdout(true).build()));
    let mut output = String::new();
    while let Some(Ok(chunk)) = logs.next().await {
        output.push_str(&chunk.to_string());
    }
    assert_eq!(output.trim(), "app");
    docker.remove_container(&name, None::<bollard::query_parameters::RemoveContainerOptions>).await.unwrap();
}

#[tokio::test]
async fn registry_takes_a_push_over_tls_with_credentials_and_serves_it_back_by_digest() {
    let s = stack();
    let context = scratch_context(MULTI_STAGE);
    let repository = unique("stack-it/registry");
    let outcome = run(&config(context.path(), &repository), std::sync::Arc::new(|_| {})).await.unwrap();
    let image = format!("{}/{repository}", s.registry);
    let tag = &outcome.release.images["app"].tag;

    let refused = push(&image, tag, creds(&s.user, "wrong-password")).await;
    assert!(refused.is_err(), "a wrong password must be refused, got {refused:?}");

    let digest = push(&image, tag, creds(&s.user, &s.password)).await.unwrap();
    assert!(digest.starts_with("sha256:"), "{digest}");

    let docker = docker();
    let remove = RemoveImageOptionsBuilder::default().force(true).build();
    docker.remove_image(&format!("{image}:{tag}"), Some(remove), None).await.unwrap();
    let by_digest = format!("{image}@{digest}");
    let options = CreateImageOptionsBuilder::default().from_image(&by_digest).build();
    let mut pull = docker.create_image(Some(options), None, Some(creds(&s.user, &s.password)));
    while let Some(item) = pull.next().await {
        item.unwrap();
    }
    let inspect = docker.inspect_image(&by_digest).await.unwrap();
    assert_eq!(inspect.id.as_deref(), Some(outcome.targets[0].image_id.as_str()), "same image back");
    assert!(inspect.repo_digests.unwrap_or_default().contains(&by_digest));
}

#[tokio::test]
async fn aws_sdk_reaches_moto_for_sts_and_ecr_and_the_token_opens_the_registry() {
    let s = stack();
    assert!(
        std::env::var("AWS_WEB_IDENTITY_TOKEN_FILE").is_ok(),
        "the stack authenticates by web identity, as OIDC runners and IRSA pods do"
    );
    let ecr = Ecr::from_env().await.unwrap();
    let identity = ecr.identity().await.unwrap();
    assert_eq!(identity.account, "123456789012");
    assert!(identity.arn.contains("statuspage-deploy"), "assumed the stack's role: {}", identity.arn);

    let name = unique("stack-it/ecr");
    let uri = ecr.ensure_repository(&name).await.unwrap();
    assert_eq!(uri, format!("{}/{name}", s.registry));
    assert_eq!(ecr.ensure_repository(&name).await.unwrap(), uri, "second call finds the same repository");
    let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let described =
        aws_sdk_ecr::Client::new(&sdk).describe_repositories().repository_names(&name).send().await;
    let repo = described.unwrap().repositories()[0].clone();
    assert_eq!(repo.image_tag_mutability(), Some(&aws_sdk_ecr::types::ImageTagMutability::Immutable));
    assert!(repo.image_scanning_configuration().is_some_and(|c| c.scan_on_push()));

    let login = ecr.login().await.unwrap();
    assert_eq!(login.registry, s.registry, "ECR's proxy endpoint is the stack registry");
    assert!(!format!("{login:?}").contains(&login.password), "Debug output hides the password");

    // The token's credentials, and only they, push to the registry ECR named.
    let context = scratch_context(MULTI_STAGE);
    let outcome = run(&config(context.path(), &name), std::sync::Arc::new(|_| {})).await.unwrap();
    let tag = &outcome.release.images["app"].tag;
    let image = format!("{}/{name}", s.registry);
    let digest = push(&image, tag, creds(&login.username, &login.password)).await.unwrap();
    assert!(digest.starts_with("sha256:"));
    let docker = docker();
    let extra = TagImageOptionsBuilder::default().repo(&image).tag("other").build();
    docker.tag_image(&format!("{image}:{tag}"), Some(extra)).await.unwrap();
    assert!(push(&image, "other", creds("AWS", "not-the-token")).await.is_err());
}
