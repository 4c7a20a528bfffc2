//! The push binary against the stack: moto's ECR and STS through the AWS SDK's default chain
//! (web identity), the registry ECR names, and the stack's Docker Engine.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use statuspage_build_images::run;
use statuspage_common::release::Release;
use statuspage_integration_tests::{build_config, run_binary, scratch_context, stack, unique};

const DOCKERFILE: &str = "\
FROM scratch AS base
COPY busybox /bin/busybox
COPY nonce /nonce
FROM base AS web
CMD [\"/bin/busybox\", \"true\"]
FROM base AS worker
CMD [\"/bin/busybox\", \"false\"]
";

fn push_binary(args: &[&str], stdin: &str) -> (i32, String, String) {
    run_binary("statuspage-push", args, &[], stdin)
}

async fn built_release(prefix: &str) -> Release {
    let context = scratch_context(DOCKERFILE);
    let targets = [format!("web={prefix}-web"), format!("worker={prefix}-worker")];
    let mut config = build_config(context.path(), &targets, "fedcba9876543210fedcba9876543210fedcba98");
    config.extra_tags = vec!["candidate".into()];
    run(&config, std::sync::Arc::new(|_| {})).await.unwrap().release
}

#[tokio::test]
async fn push_creates_immutable_repositories_pushes_every_tag_and_records_digests() {
    let s = stack();
    let prefix = unique("push-it");
    let release = built_release(&prefix).await;
    let (code, out, err) = push_binary(&["--release", "-"], &release.to_json());
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("AWS identity: ") && err.contains("statuspage-deploy"), "{err}");
    let pushed = Release::parse(&out, "stdout").unwrap();
    for (component, image) in &pushed.images {
        let digest = image.digest.clone().unwrap_or_else(|| panic!("{component} has no digest: {out}"));
        assert!(digest.starts_with("sha256:"));
        // The registry serves exactly that digest, for the commit tag and the extra tag.
        for tag in [image.tag.as_str(), "candidate"] {
            let inspect = s.registry_image(&format!("{}:{tag}", image.repository)).await.unwrap();
            assert_eq!(inspect.descriptor.digest.as_deref(), Some(digest.as_str()), "{component}:{tag}");
        }
    }
    // The repositories now exist in ECR with immutable tags.
    let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let repos = aws_sdk_ecr::Client::new(&sdk)
        .describe_repositories()
        .repository_names(format!("{prefix}-web"))
        .repository_names(format!("{prefix}-worker"))
        .send()
        .await
        .unwrap();
    assert_eq!(repos.repositories().len(), 2);
    assert!(
        repos
            .repositories()
            .iter()
            .all(|r| r.image_tag_mutability() == Some(&aws_sdk_ecr::types::ImageTagMutability::Immutable))
    );
}

#[tokio::test]
async fn push_refuses_bad_documents_and_images_outside_the_registry_before_changing_anything() {
    let (code, _, err) = push_binary(&["--release", "-"], "{\"version\": 1, \"commit\": \"x\"}");
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("release document stdin is malformed") && err.contains("images"), "{err}");
    assert!(!err.contains("caused by"), "the parser's message is said once: {err}");

    let mut release = built_release(&unique("push-it-bad")).await;
    let web = release.images.get_mut("web").unwrap();
    web.repository = "elsewhere.example/statuspage-web".into();
    let (code, _, err) = push_binary(&["--release", "-"], &release.to_json());
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains(
            "release image web: repository elsewhere.example/statuspage-web is not in the ECR registry"
        ),
        "{err}"
    );
    assert!(!err.contains("repository ") || !err.contains(" ready"), "no repository was created: {err}");
}

#[test]
fn push_dry_run_calls_nothing() {
    let mut release = Release::new("a".repeat(40));
    release.images.insert(
        "web".into(),
        statuspage_common::release::ReleaseImage {
            repository: "123456789012.dkr.ecr.us-east-1.amazonaws.com/statuspage-web".into(),
            tag: "a".repeat(40),
            extra_tags: vec![],
            digest: None,
            image_id: None,
            size: None,
            built: Some(true),
        },
    );
    let (code, _, err) = run_binary(
        "statuspage-push",
        &["--dry-run", "--release", "-"],
        &[("AWS_ENDPOINT_URL", "http://127.0.0.1:9"), ("DOCKER_HOST", "unix:///nonexistent.sock")],
        &release.to_json(),
    );
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("web: ensure repository statuspage-web, push tags"), "{err}");
}

/// The repositories moto's ECR has among `names`.
async fn ecr_repositories(names: &[String]) -> Vec<String> {
    let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let client = aws_sdk_ecr::Client::new(&sdk);
    let mut found = Vec::new();
    for name in names {
        if client.describe_repositories().repository_names(name).send().await.is_ok() {
            found.push(name.clone());
        }
    }
    found
}

#[tokio::test]
async fn a_missing_local_image_is_found_before_any_repository_is_created_or_image_pushed() {
    let prefix = unique("push-it-missing");
    let release = built_release(&prefix).await;
    let worker = &release.images["worker"];
    let remove = bollard::query_parameters::RemoveImageOptionsBuilder::default().force(true).build();
    let docker = statuspage_integration_tests::docker();
    for tag in [worker.tag.as_str(), "candidate"] {
        docker
            .remove_image(&format!("{}:{tag}", worker.repository), Some(remove.clone()), None)
            .await
            .unwrap();
    }
    let (code, _, err) = push_binary(&["--release", "-"], &release.to_json());
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("release image worker") && err.contains("is not in the local Docker Engine"),
        "{err}"
    );
    let names = [format!("{prefix}-web"), format!("{prefix}-worker")];
    assert_eq!(ecr_repositories(&names).await, Vec::<String>::new(), "no repository was created");
    assert!(!err.contains("pushed "), "nothing was pushed: {err}");
}

#[tokio::test]
async fn a_tag_the_registry_holds_for_another_image_is_refused_before_anything_is_pushed() {
    let s = stack();
    let prefix = unique("push-it-taken");
    let first = built_release(&prefix).await;
    let (code, out, err) = push_binary(&["--release", "-"], &first.to_json());
    assert_eq!(code, 0, "{err}");
    let pushed = Release::parse(&out, "stdout").unwrap();

    // Pushing the same release again is a no-op that keeps the digests.
    let (code, out, err) = push_binary(&["--release", "-"], &first.to_json());
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("is already in the registry") && err.contains("not pushed again"), "{err}");
    let again = Release::parse(&out, "stdout").unwrap();
    assert_eq!(again.images["web"].digest, pushed.images["web"].digest);

    // Another build of the same commit (a new nonce, so other layers) under the same tags.
    let other = built_release(&prefix).await;
    assert_ne!(other.images["web"].image_id, first.images["web"].image_id);
    let (code, _, err) = push_binary(&["--release", "-"], &other.to_json());
    assert_eq!(code, 2, "{err}");
    let web = &pushed.images["web"];
    let digest = web.digest.as_deref().unwrap();
    assert!(
        err.contains(&format!("{}:{} already exists in the registry as {digest}", web.repository, web.tag)),
        "{err}"
    );
    assert!(!err.contains("pushed "), "nothing was pushed: {err}");
    let served = s.registry_image(&format!("{}:candidate", web.repository)).await.unwrap();
    assert_eq!(served.descriptor.digest.as_deref(), Some(digest), "the extra tag did not move");
}
