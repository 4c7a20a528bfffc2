//! A registry that refuses the credentials is an external failure (exit 3) naming the registry
//! and where the credentials came from, never a failed build step (issue 13). Its own test
//! binary: it builds (and removes) an image, which `build_input.rs`'s "the engine's images did
//! not change" check must not see.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use statuspage_integration_tests::{run_binary, scratch_context, stack};

const SHA: &str = "0123456789abcdef0123456789abcdef01234567";

const DOCKERFILE: &str = "\
FROM scratch AS base
COPY busybox /bin/busybox
COPY nonce /nonce
FROM base AS web
CMD [\"/bin/busybox\", \"true\"]
";

/// A registry that refuses the credentials (401) is an external failure, exit 3, naming the
/// registry and where the credentials came from (here a Docker config of the test's own, with a
/// wrong password), never a failed build step (exit 1) that sends the user to the Dockerfile:
/// when the build asks which images the registry has, and when BuildKit imports the previous
/// commit's cache (`--cache-from-commit`). Nothing is pushed; the password is never printed.
#[tokio::test]
async fn a_registry_refusing_the_credentials_is_exit_3_naming_it_and_their_source() {
    let s = stack();
    let context = scratch_context(DOCKERFILE);
    let dir = context.path().to_str().unwrap().to_string();
    let config = tempfile::tempdir().unwrap();
    let password = "r13-wrong-password";
    let auth = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, format!("AWS:{password}"));
    let config_json = serde_json::json!({"auths": {s.registry.clone(): {"auth": auth}}});
    std::fs::write(config.path().join("config.json"), config_json.to_string()).unwrap();
    let config_file = config.path().join("config.json").display().to_string();
    let repository = statuspage_integration_tests::unique("r13-build-auth");
    let target = format!("web={repository}");
    let previous = "fedcba9876543210fedcba9876543210fedcba98";
    let env = [("DOCKER_CONFIG", config.path().to_str().unwrap())];
    let base =
        ["--context", &dir, "--registry", &s.registry, "--target", &target, "--sha", SHA, "--allow-dirty"];
    let cases: [(Vec<&str>, &str); 2] = [
        (vec![], "while checking which images it already has"),
        (vec!["--no-skip-existing", "--cache-from-commit", previous], "importing cache"),
    ];
    for (extra, action) in cases {
        let args: Vec<&str> = base.iter().copied().chain(extra.iter().copied()).collect();
        let (code, out, err) = run_binary("statuspage-build", &args, &env, "");
        assert_eq!(code, 3, "{extra:?}: exit {code}\n{err}");
        assert!(out.is_empty(), "{extra:?}: no release document: {out}");
        for text in [
            format!("registry {} refused the credentials", s.registry),
            format!("the Docker config {config_file}"),
            action.to_string(),
            "401".to_string(),
            "--registry-username/--registry-password".to_string(),
        ] {
            assert!(err.contains(&text), "{extra:?}: the message lacks {text:?}:\n{err}");
        }
        assert!(!err.contains(password), "{extra:?}: the password was printed:\n{err}");
        assert!(!err.contains("failed at step"), "{extra:?}: not a failed step:\n{err}");
        statuspage_integration_tests::assert_one_error_line(&format!("{extra:?}"), &err);
    }
    let pushed = s.registry_image(&format!("{}/{repository}:{SHA}", s.registry)).await;
    assert!(pushed.is_err(), "nothing was pushed: {pushed:?}");
    let remove = bollard::query_parameters::RemoveImageOptionsBuilder::default().force(true).build();
    let _ = statuspage_integration_tests::docker()
        .remove_image(&format!("{}/{repository}:{SHA}", s.registry), Some(remove), None)
        .await;
}
