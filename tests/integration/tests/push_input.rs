//! Bad input to statuspage-push (issue 13): each case's exit code (README's contract: 2 for bad
//! input, nothing changed; 3 for an external system that failed), one message naming the flag,
//! variable, file, field or value and the fix, no `caused by:` line repeating it, and nothing
//! changed: moto's ECR repositories, the registry's tags for the case's repositories, and the
//! engine's images are the same after every case as before. Run against the stack's moto,
//! registry and engine, so each "nothing changed" is a real claim.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use serde_json::{Value, json};
use statuspage_integration_tests::{
    assert_one_error_line, bad_release_documents, engine_images, run_binary, stack, unique,
};

const SHA: &str = "0123456789abcdef0123456789abcdef01234567";

struct Case {
    name: String,
    args: Vec<String>,
    env: Vec<(String, String)>,
    stdin: String,
    code: i32,
    needles: Vec<String>,
}

fn case(name: &str, args: &[&str], env: &[(&str, &str)], stdin: &str, code: i32, needles: &[&str]) -> Case {
    Case {
        name: name.into(),
        args: args.iter().map(|a| a.to_string()).collect(),
        env: env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        stdin: stdin.into(),
        code,
        needles: needles.iter().map(|n| n.to_string()).collect(),
    }
}

/// A valid release of one image `web` in `repository`, never built on this engine.
fn release(repository: &str) -> Value {
    json!({"version": 1, "commit": SHA, "images": {"web": {
        "repository": repository, "tag": SHA, "extra_tags": ["candidate"],
        "image_id": format!("sha256:{}", "1".repeat(64)), "size": 10, "built": true}}})
}

/// The repositories moto's ECR has whose names start with `prefix` (other tests may create theirs
/// meanwhile).
async fn ecr_repositories(prefix: &str) -> Vec<String> {
    let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let client = aws_sdk_ecr::Client::new(&sdk);
    let mut names = Vec::new();
    let mut pages = client.describe_repositories().into_paginator().send();
    while let Some(page) = pages.next().await {
        let page = page.unwrap();
        let found = page.repositories().iter().filter_map(|r| r.repository_name());
        names.extend(found.filter(|n| n.starts_with(prefix)).map(str::to_string));
    }
    names.sort();
    names
}

/// What the registry serves for each of `references` (a digest, or the error's status).
async fn registry_tags(references: &[String]) -> Vec<String> {
    let s = stack();
    let mut out = Vec::new();
    for reference in references {
        let found = match s.registry_image(reference).await {
            Ok(inspect) => inspect.descriptor.digest.unwrap_or_default(),
            Err(bollard::errors::Error::DockerResponseServerError { status_code, .. }) => {
                format!("absent ({status_code})")
            }
            Err(e) => panic!("cannot ask the registry about {reference}: {e}"),
        };
        out.push(format!("{reference} {found}"));
    }
    out
}

fn cases(registry: &str, prefix: &str, dir: &std::path::Path) -> Vec<Case> {
    let repository = format!("{registry}/{prefix}-web");
    let good = release(&repository).to_string();
    let mut cases: Vec<Case> = bad_release_documents(&release(&repository))
        .into_iter()
        .map(|d| Case {
            name: format!("document: {}", d.name),
            args: vec![],
            env: vec![],
            stdin: d.text,
            code: 2,
            needles: d.needles.iter().map(|n| n.to_string()).collect(),
        })
        .collect();
    let missing_folder = dir.join("no-such-dir/release.json");
    let missing_folder = missing_folder.to_str().unwrap();
    let folder = dir.to_str().unwrap();
    let elsewhere = release("elsewhere.example/statuspage-web").to_string();
    let mut bad_commit = release(&repository);
    bad_commit["commit"] = json!("HEAD");
    let bad_commit = bad_commit.to_string();
    cases.extend([
        case(
            "release file missing",
            &["--release", "/nonexistent/release.json"],
            &[],
            "",
            2,
            &["cannot read release document /nonexistent/release.json", "pass --release with the file"],
        ),
        case(
            "release is a folder",
            &["--release", folder],
            &[],
            "",
            2,
            &["cannot read release document", folder, "pass --release"],
        ),
        case(
            "STATUSPAGE_RELEASE missing",
            &[],
            &[("STATUSPAGE_RELEASE", "/nonexistent/env-release.json")],
            "",
            2,
            &["/nonexistent/env-release.json"],
        ),
        case(
            "--release-file in a missing folder, checked before any AWS call",
            &["--release-file", missing_folder],
            &[("AWS_ENDPOINT_URL", "http://127.0.0.1:9")],
            &good,
            2,
            &["--release-file", "no-such-dir", "does not exist", "nothing was pushed"],
        ),
        case(
            "--release-file is a folder",
            &["--release-file", folder],
            &[],
            &good,
            2,
            &["--release-file", "it is a folder", "give a file path"],
        ),
        case("dry run of a bad commit", &["--dry-run"], &[], &bad_commit, 2, &["is not a full commit SHA"]),
        case("unknown flag", &["--no-such-flag"], &[], &good, 2, &["--no-such-flag"]),
        case("flag without value", &["--release"], &[], &good, 2, &["--release"]),
        case(
            "DOCKER_HOST not an address, found before AWS is called",
            &[],
            &[("DOCKER_HOST", "bogus://x"), ("AWS_ENDPOINT_URL", "http://127.0.0.1:9")],
            &good,
            2,
            &["DOCKER_HOST value \"bogus://x\"", "not an engine address", "unix://"],
        ),
        case(
            "web-identity token file missing",
            &[],
            &[("AWS_WEB_IDENTITY_TOKEN_FILE", "/nonexistent/web-identity-token")],
            &good,
            2,
            &["AWS_WEB_IDENTITY_TOKEN_FILE", "/nonexistent/web-identity-token", "id-token: write"],
        ),
        case(
            "AWS endpoint not a URL",
            &[],
            &[("AWS_ENDPOINT_URL", "not-a-url")],
            &good,
            2,
            &["AWS_ENDPOINT_URL value \"not-a-url\"", "absolute http(s) URL"],
        ),
        case(
            "ECR endpoint without a scheme",
            &[],
            &[("AWS_ENDPOINT_URL_ECR", "api.ecr.example.com")],
            &good,
            2,
            &["AWS_ENDPOINT_URL_ECR value \"api.ecr.example.com\"", "absolute http(s) URL"],
        ),
        case(
            "no AWS region anywhere",
            &[],
            &[("AWS_REGION", ""), ("AWS_DEFAULT_REGION", ""), ("AWS_CONFIG_FILE", "/nonexistent/aws-config")],
            &good,
            2,
            &["no AWS region", "set AWS_REGION"],
        ),
        case(
            "a region that is no region code",
            &[],
            &[("AWS_REGION", "US East 1")],
            &good,
            2,
            &["AWS_REGION value \"US East 1\"", "region code"],
        ),
        case(
            "AWS endpoint unreachable",
            &[],
            &[("AWS_ENDPOINT_URL", "http://127.0.0.1:9")],
            &good,
            3,
            &["the endpoint http://127.0.0.1:9 (AWS_ENDPOINT_URL) is unreachable", "Connection refused"],
        ),
        case(
            "STS endpoint unreachable",
            &[],
            &[("AWS_ENDPOINT_URL_STS", "http://127.0.0.1:9")],
            &good,
            3,
            &["sts:GetCallerIdentity", "http://127.0.0.1:9 (AWS_ENDPOINT_URL_STS) is unreachable"],
        ),
        case(
            "ECR endpoint unreachable",
            &[],
            &[("AWS_ENDPOINT_URL_ECR", "http://127.0.0.1:9")],
            &good,
            3,
            &["ecr:GetAuthorizationToken", "http://127.0.0.1:9 (AWS_ENDPOINT_URL_ECR) is unreachable"],
        ),
        case(
            "image outside the ECR registry",
            &[],
            &[],
            &elsewhere,
            2,
            &[
                "release image web",
                "elsewhere.example/statuspage-web is not in the ECR registry",
                "build with --registry",
            ],
        ),
        case(
            "image not in the local engine",
            &[],
            &[],
            &good,
            2,
            &[
                "release image web",
                "is not in the local Docker Engine",
                "run statuspage-build on this engine first",
            ],
        ),
        case(
            "engine unreachable",
            &[],
            &[("DOCKER_HOST", "unix:///nonexistent/docker.sock")],
            &good,
            3,
            &["Docker Engine at unix:///nonexistent/docker.sock is unreachable", "set DOCKER_HOST"],
        ),
    ]);
    cases
}

#[tokio::test]
async fn bad_input_exits_with_the_contract_code_names_the_thing_and_changes_nothing() {
    let s = stack();
    let prefix = unique("r13-push-input");
    let dir = tempfile::tempdir().unwrap();
    let cases = cases(&s.registry, &prefix, dir.path());
    assert!(cases.len() >= 30, "at least 30 bad inputs, found {}", cases.len());
    let references: Vec<String> = ["web:candidate", &format!("web:{SHA}")]
        .iter()
        .map(|t| format!("{}/{prefix}-{t}", s.registry))
        .collect();
    let repositories = ecr_repositories(&prefix).await;
    let images = engine_images().await;
    let tags = registry_tags(&references).await;
    assert!(tags.iter().all(|t| t.contains("absent")), "{tags:?}");
    for c in &cases {
        let args: Vec<&str> = c.args.iter().map(String::as_str).collect();
        let env: Vec<(&str, &str)> = c.env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let (code, out, err) = run_binary("statuspage-push", &args, &env, &c.stdin);
        assert_eq!(code, c.code, "{}: exit {code}\n{err}", c.name);
        assert!(out.is_empty(), "{}: nothing on stdout: {out}", c.name);
        for needle in &c.needles {
            assert!(err.contains(needle.as_str()), "{}: the message lacks {needle:?}:\n{err}", c.name);
        }
        assert!(
            !err.contains("Check the credentials") || c.code != 3,
            "{}: credentials blamed:\n{err}",
            c.name
        );
        assert_one_error_line(&c.name, &err);
        assert!(!err.contains(&s.password), "{}: a secret was printed", c.name);
    }
    assert_eq!(ecr_repositories(&prefix).await, repositories, "no bad input created an ECR repository");
    assert_eq!(registry_tags(&references).await, tags, "no bad input pushed a tag");
    assert_eq!(engine_images().await, images, "no bad input changed the engine's images");
    assert!(!dir.path().join("no-such-dir").exists(), "no folder was created");
}
