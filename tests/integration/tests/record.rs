//! statuspage-record against GitHub's own OpenAPI description: Prism (tests/stack/github.sh)
//! answers 422 to any request that breaks the schema, so every 2xx below is a request GitHub
//! would accept. Prism keeps no state, so the sequence and bodies are asserted from the client's
//! own transcript; the branch-moved retry and rate-limit waits are unit tests of the crate.
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::io::{Read, Write};
use std::net::TcpListener;

use serde_json::{Value, json};
use statuspage_common::release::{Release, ReleaseImage};
use statuspage_integration_tests::run_binary;
use statuspage_record::github::{Api, Endpoints, Exchange, OctocrabTransport, RetryPolicy};
use statuspage_record::writeback::{Mode, WriteBack, Written};
use statuspage_record::{FinishConfig, StartConfig, Verdict};

/// The head commit Prism's example branch answer names: the deploy ran from the branch head.
const HEAD: &str = "7fd1a60b01f91b314f59955a4e4d4e80d8edf11d";
const TOKEN: &str = "ghs_statuspageRecordTestToken0123456789";
const PATH: &str = "manifests/app/overlays/production/kustomization.yaml";

/// The mock's URL, or a loud failure saying how to start it.
fn github() -> String {
    let url = std::env::var("STACK_GITHUB_API_URL").ok().filter(|v| !v.is_empty()).unwrap_or_else(|| {
        panic!("stack not running: run tests/stack/up.sh, then source /tmp/statuspage-stack/env (STACK_GITHUB_API_URL is not set)")
    });
    let address = url.trim_start_matches("http://").to_string();
    std::net::TcpStream::connect(&address).unwrap_or_else(|e| {
        panic!("stack not running: the GitHub API mock at {url} does not answer ({e}): run tests/stack/up.sh")
    });
    url
}

fn release(commit: &str) -> Release {
    let mut release = Release::new(commit);
    for (i, component) in ["web", "worker", "scheduler"].iter().enumerate() {
        release.images.insert(
            component.to_string(),
            ReleaseImage {
                repository: format!("123456789012.dkr.ecr.us-east-1.amazonaws.com/statuspage-{component}"),
                tag: commit.to_string(),
                extra_tags: vec![],
                digest: Some(format!("sha256:{}", format!("{i}").repeat(64))),
                image_id: None,
                size: None,
                built: Some(true),
            },
        );
    }
    release
}

fn api(policy: RetryPolicy) -> Api {
    let url = github();
    let endpoints = Endpoints {
        api_url: url.clone(),
        server_url: "https://github.com".into(),
        repository: "octo-org/status".into(),
        run_id: Some("4242".into()),
    };
    Api::new(Box::new(OctocrabTransport::new(&url, TOKEN).expect("client")), endpoints, policy)
}

fn route(transcript: &[Exchange]) -> Vec<String> {
    transcript.iter().map(|e| format!("{} {}", e.request.method, e.request.path)).collect()
}

fn all_accepted(transcript: &[Exchange]) {
    for e in transcript {
        assert!(
            (200..300).contains(&e.status),
            "GitHub's schema refused {} {}: {} {:?}",
            e.request.method,
            e.request.path,
            e.status,
            e.answer
        );
    }
}

fn body(e: &Exchange) -> &Value {
    e.request.body.as_ref().expect("a body")
}

fn write_back(mode: Mode, release: &Release) -> WriteBack {
    WriteBack {
        branch: "main".into(),
        path: PATH.into(),
        commit: HEAD.into(),
        patched: "images:\n  - name: statuspage-web\n    newName: 123456789012.dkr.ecr.us-east-1.amazonaws.com/statuspage-web\n".into(),
        images: statuspage_patch_overlay::desired_images(release, "test", &Default::default()).expect("images"),
        message: "deploy(production): release 7fd1a60b01f9 is live\n\nPinned by statuspage-record.".into(),
        pr_branch: "statuspage/deploy-production-4242".into(),
        mode,
        attempts: 3,
    }
}

fn finish_config(verdict: Verdict, rollout: Option<Value>, write_back: Option<WriteBack>) -> FinishConfig {
    FinishConfig {
        environment: "production".into(),
        deployment_id: Some(1),
        verdict,
        environment_url: Some("https://status.example.com".into()),
        rollout,
        write_back,
        seconds: Some(42),
    }
}

async fn started(api: &Api, release: &Release) -> u64 {
    let config = StartConfig { environment: "production".into(), production: Some(true), transient: false };
    statuspage_record::start(api, release, &config).await.expect("start")
}

#[tokio::test]
async fn successful_deploy_is_recorded_and_the_overlay_committed_back() {
    let release = release(HEAD);
    let api = api(RetryPolicy::default());
    let id = started(&api, &release).await;
    let finished = statuspage_record::finish(
        &api,
        &release,
        &finish_config(Verdict::Deployed, None, Some(write_back(Mode::Commit, &release))),
    )
    .await;
    assert!(finished.errors.is_empty(), "{:?}", finished.errors);
    assert!(matches!(finished.written, Some(Written::Committed { .. })), "{:?}", finished.written);

    let t = api.transcript();
    all_accepted(&t);
    assert_eq!(
        route(&t),
        [
            "POST /repos/octo-org/status/deployments".to_string(),
            format!("POST /repos/octo-org/status/deployments/{id}/statuses"),
            "POST /repos/octo-org/status/deployments/1/statuses".to_string(),
            "GET /repos/octo-org/status/branches/main".to_string(),
            "POST /repos/octo-org/status/git/trees".to_string(),
            "POST /repos/octo-org/status/git/commits".to_string(),
            "PATCH /repos/octo-org/status/git/refs/heads%2Fmain".to_string(),
        ]
    );
    let deployment = body(&t[0]);
    assert_eq!(deployment["ref"], HEAD);
    assert_eq!(deployment["auto_merge"], false);
    assert_eq!(deployment["required_contexts"], json!([]));
    assert_eq!(deployment["environment"], "production");
    assert_eq!(deployment["production_environment"], true);
    assert_eq!(deployment["transient_environment"], false);
    assert_eq!(
        deployment["payload"],
        serde_json::to_value(&release).unwrap(),
        "the payload is the release document"
    );
    let in_progress = body(&t[1]);
    assert_eq!(in_progress["state"], "in_progress");
    assert_eq!(in_progress["log_url"], "https://github.com/octo-org/status/actions/runs/4242");
    let success = body(&t[2]);
    assert_eq!(success["state"], "success");
    assert_eq!(success["environment_url"], "https://status.example.com");
    assert_eq!(success["auto_inactive"], true);
    assert_eq!(body(&t[4])["tree"][0]["path"], PATH);
    assert_eq!(body(&t[5])["parents"], json!([HEAD]));
    assert!(
        body(&t[5])["message"]
            .as_str()
            .unwrap()
            .starts_with("deploy(production): release 7fd1a60b01f9 is live")
    );
    assert_eq!(body(&t[6])["force"], false, "never forced");
    assert!(
        finished.summary.contains("| web |") && finished.summary.contains("https://status.example.com"),
        "{}",
        finished.summary
    );
}

#[tokio::test]
async fn failed_deploy_is_recorded_as_failure_and_nothing_is_written_back() {
    let release = release(HEAD);
    let api = api(RetryPolicy::default());
    started(&api, &release).await;
    let finished = statuspage_record::finish(
        &api,
        &release,
        &finish_config(Verdict::Failed, None, Some(write_back(Mode::Commit, &release))),
    )
    .await;
    assert!(finished.errors.is_empty(), "{:?}", finished.errors);
    assert_eq!(finished.written, None);
    let t = api.transcript();
    all_accepted(&t);
    assert_eq!(t.len(), 3, "{:?}", route(&t));
    let failure = body(&t[2]);
    assert_eq!(failure["state"], "failure");
    assert!(failure["description"].as_str().unwrap().contains("not rolled back"), "{failure}");
    assert!(failure.get("environment_url").is_none());
    assert_eq!(failure["auto_inactive"], false);
}

#[tokio::test]
async fn rolled_back_deploy_says_what_is_live_now() {
    let release = release(HEAD);
    let previous = "0123456789abcdef0123456789abcdef01234567";
    let rollout = json!({
        "version": 1, "result": "rolled-back", "namespace": "statuspage", "objects": [],
        "deployments": [{"name": "statuspage-web", "images": [format!("123456789012.dkr.ecr.us-east-1.amazonaws.com/statuspage-web:{previous}")],
                         "running": [], "ready_replicas": 2, "replicas": 2, "revision": "3", "result": "rolled-back"}]
    });
    let api = api(RetryPolicy::default());
    started(&api, &release).await;
    let finished =
        statuspage_record::finish(&api, &release, &finish_config(Verdict::RolledBack, Some(rollout), None))
            .await;
    assert!(finished.errors.is_empty(), "{:?}", finished.errors);
    let t = api.transcript();
    all_accepted(&t);
    let status = body(&t[2]);
    assert_eq!(status["state"], "failure");
    let description = status["description"].as_str().unwrap();
    assert!(
        description.contains("rolled back") && description.contains("live now: statuspage-web:0123456789ab"),
        "{description}"
    );
    assert!(finished.summary.contains("2/2 ready"), "{}", finished.summary);
}

#[tokio::test]
async fn pull_request_variant_sends_schema_valid_requests() {
    let release = release(HEAD);
    // One attempt: Prism's own example answer for POST /pulls breaks the spec's response schema
    // (`requested_teams[0]` lacks `type`), so it answers 500 after validating the request.
    let api = api(RetryPolicy { attempts: 1, ..RetryPolicy::default() });
    let spec = write_back(Mode::PullRequest, &release);
    let result = statuspage_record::writeback::write_back(&api, &spec).await;
    let t = api.transcript();
    assert_eq!(
        route(&t),
        [
            "GET /repos/octo-org/status/branches/main",
            "POST /repos/octo-org/status/git/trees",
            "POST /repos/octo-org/status/git/commits",
            "POST /repos/octo-org/status/git/refs",
            "POST /repos/octo-org/status/pulls",
        ]
    );
    all_accepted(&t[..4]);
    assert_eq!(
        body(&t[3]),
        &json!({"ref": "refs/heads/statuspage/deploy-production-4242", "sha": "7638417db6d59f3c431d3e1f261cc637155684cd"})
    );
    let pull = body(&t[4]);
    assert_eq!(pull["head"], "statuspage/deploy-production-4242");
    assert_eq!(pull["base"], "main");
    assert_eq!(pull["title"], "deploy(production): release 7fd1a60b01f9 is live");
    match (t[4].status, result) {
        (201, Ok(Written::PullRequest { .. })) => {}
        (500, Err(_)) => {
            // Every violation Prism reports is in its own response, none in our request.
            let answer: Value = serde_json::from_str(t[4].answer.as_deref().unwrap()).unwrap();
            let violations = answer["validation"].as_array().expect("Prism's violations");
            assert!(!violations.is_empty());
            for v in violations {
                assert_eq!(v["location"][0], "response", "the request broke GitHub's schema: {v}");
            }
        }
        (status, result) => panic!("POST /pulls: {status} {result:?}"),
    }
}

/// A one-shot server answering every request with GitHub's 403 for a missing permission.
fn forbidding_server() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming().take(8) {
            let Ok(mut stream) = stream else { continue };
            let mut buffer = [0u8; 65536];
            let _ = stream.read(&mut buffer);
            let body = r#"{"message":"Resource not accessible by integration","documentation_url":"https://docs.github.com/rest/deployments/deployments#create-a-deployment","status":"403"}"#;
            let _ = write!(
                stream,
                "HTTP/1.1 403 Forbidden\r\ncontent-type: application/json\r\nx-ratelimit-remaining: 4999\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    url
}

fn assert_token_absent(outputs: &[&str]) {
    for text in outputs {
        for line in text.lines() {
            assert!(!line.contains(TOKEN) || line.starts_with("::add-mask::"), "token printed: {line}");
        }
    }
}

#[test]
fn forbidden_names_the_permission_and_never_prints_the_token() {
    let release_file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(release_file.path(), release(HEAD).to_json()).unwrap();
    let url = forbidding_server();
    let (code, stdout, stderr) = run_binary(
        "statuspage-record",
        &["start", "--release", release_file.path().to_str().unwrap(), "--environment", "production"],
        &[
            ("GITHUB_TOKEN", TOKEN),
            ("GITHUB_API_URL", url.as_str()),
            ("GITHUB_REPOSITORY", "octo-org/status"),
            ("GITHUB_ACTIONS", "true"),
        ],
        "",
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("`deployments: write`") && stderr.contains("octo-org/status"), "{stderr}");
    assert!(stderr.contains(&format!("::add-mask::{TOKEN}")), "the token is masked first: {stderr}");
    assert_token_absent(&[&stdout, &stderr]);
}

#[test]
fn the_binary_records_a_deploy_against_the_mock_and_never_prints_the_token() {
    let url = github();
    let dir = tempfile::tempdir().unwrap();
    let release_file = dir.path().join("release.json");
    std::fs::write(&release_file, release(HEAD).to_json()).unwrap();
    let overlay = dir.path().join("manifests/app/overlays/production");
    std::fs::create_dir_all(&overlay).unwrap();
    std::fs::write(
        overlay.join("kustomization.yaml"),
        "resources: []\nimages:\n  - name: statuspage-web\n    newTag: x\n",
    )
    .unwrap();
    let output = dir.path().join("output");
    let summary = dir.path().join("summary.md");
    let env = [
        ("GITHUB_TOKEN", TOKEN),
        ("GITHUB_API_URL", url.as_str()),
        ("GITHUB_REPOSITORY", "octo-org/status"),
        ("GITHUB_RUN_ID", "4242"),
        ("GITHUB_SHA", HEAD),
        ("GITHUB_REF_NAME", "main"),
        ("GITHUB_ACTIONS", "true"),
        ("GITHUB_WORKSPACE", dir.path().to_str().unwrap()),
        ("GITHUB_OUTPUT", output.to_str().unwrap()),
        ("GITHUB_STEP_SUMMARY", summary.to_str().unwrap()),
    ];
    let release_arg = release_file.to_str().unwrap();
    let (code, start_out, start_err) = run_binary(
        "statuspage-record",
        &["start", "--release", release_arg, "--environment", "production"],
        &env,
        "",
    );
    assert_eq!(code, 0, "{start_err}");
    let id = start_out.trim().to_string();
    let (code, finish_out, finish_err) = run_binary(
        "statuspage-record",
        &[
            "finish",
            "--release",
            release_arg,
            "--environment",
            "production",
            "--deployment-id",
            &id,
            "--result",
            "deployed",
            "--environment-url",
            "https://status.example.com",
            "--overlay",
            overlay.to_str().unwrap(),
        ],
        &env,
        "",
    );
    assert_eq!(code, 0, "{finish_err}");
    assert!(finish_err.contains("PATCH /repos/octo-org/status/git/refs/heads%2Fmain -> 200"), "{finish_err}");
    let outputs = std::fs::read_to_string(&output).unwrap();
    assert!(
        outputs.contains(&format!("deployment-id={id}"))
            && outputs.contains("written=commit ")
            && outputs.contains("recorded=true"),
        "{outputs}"
    );
    let summary = std::fs::read_to_string(&summary).unwrap();
    assert!(summary.contains("### Deploy to `production`: deployed"), "{summary}");
    assert_token_absent(&[&start_out, &start_err, &finish_out, &finish_err, &outputs, &summary]);
}

#[test]
fn an_outage_after_a_successful_rollout_exits_6_and_says_the_deploy_is_unaffected() {
    // Nothing listens on a port we just freed: every request fails to connect.
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let release_file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(release_file.path(), release(HEAD).to_json()).unwrap();
    let url = format!("http://127.0.0.1:{port}");
    let (code, _, stderr) = run_binary(
        "statuspage-record",
        &[
            "finish",
            "--release",
            release_file.path().to_str().unwrap(),
            "--environment",
            "production",
            "--deployment-id",
            "7",
            "--result",
            "deployed",
            "--write-back",
            "off",
        ],
        &[
            ("GITHUB_TOKEN", TOKEN),
            ("GITHUB_API_URL", url.as_str()),
            ("GITHUB_REPOSITORY", "octo-org/status"),
        ],
        "",
    );
    assert_eq!(code, 6, "{stderr}");
    assert!(stderr.contains("GitHub is unavailable") && stderr.contains("unaffected"), "{stderr}");
    assert_token_absent(&[&stderr]);
}

#[test]
fn dry_run_prints_the_requests_and_sends_nothing() {
    let release_file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(release_file.path(), release(HEAD).to_json()).unwrap();
    let (code, stdout, stderr) = run_binary(
        "statuspage-record",
        &[
            "start",
            "--release",
            release_file.path().to_str().unwrap(),
            "--environment",
            "staging",
            "--dry-run",
        ],
        &[("GITHUB_API_URL", "http://127.0.0.1:9"), ("GITHUB_REPOSITORY", "octo-org/status")],
        "",
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("would send: POST /repos/octo-org/status/deployments {"), "{stdout}");
    assert!(stdout.contains("would send: POST /repos/octo-org/status/deployments/0/statuses"), "{stdout}");
    assert!(stdout.contains(r#""environment":"staging""#), "{stdout}");
}
