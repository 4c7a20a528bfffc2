//! Every bad input to statuspage-build ends the same way: exit 2 (a broken engine address too),
//! one message naming the flag, file, field or value, and nothing changed in the stack's engine
//! or registry. The engine is reachable in every case, so "nothing changed" is a real claim.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use statuspage_integration_tests::{engine_images, run_binary, scratch_context, stack};

const SHA: &str = "0123456789abcdef0123456789abcdef01234567";

const DOCKERFILE: &str = "\
FROM scratch AS base
COPY busybox /bin/busybox
ARG GREETING=hello
FROM base AS web
CMD [\"/bin/busybox\", \"true\"]
FROM base AS worker
FROM base AS scheduler
";

/// (extra arguments, extra environment, texts the message must contain)
type Case<'a> = (Vec<&'a str>, Vec<(&'a str, &'a str)>, Vec<&'a str>);

#[tokio::test]
async fn bad_inputs_exit_2_name_the_thing_and_change_nothing() {
    let s = stack();
    let context = scratch_context(DOCKERFILE);
    let dir = context.path().to_str().unwrap().to_string();
    std::fs::write(context.path().join("Typo.Dockerfile"), "FROM scratch AS web\nFRM other\n").unwrap();
    std::fs::write(context.path().join("Empty.Dockerfile"), "").unwrap();
    std::fs::create_dir(context.path().join("ignore-bad")).unwrap();
    std::fs::write(context.path().join("ignore-bad/.dockerignore"), "[unclosed\n").unwrap();
    std::fs::write(context.path().join("ignore-bad/Dockerfile"), "FROM scratch AS web\n").unwrap();
    let file = context.path().join("busybox").to_str().unwrap().to_string();
    let missing_dir = context.path().join("no-such-dir/release.json").to_str().unwrap().to_string();
    let ignore_dir = context.path().join("ignore-bad").to_str().unwrap().to_string();

    let cases: Vec<Case> = vec![
        (
            vec!["--context", "/nonexistent/ctx"],
            vec![],
            vec!["build context /nonexistent/ctx is not a directory"],
        ),
        (vec!["--context", &file], vec![], vec!["is not a directory", "--context"]),
        (vec!["--dockerfile", "Nope"], vec![], vec!["Dockerfile", "Nope", "does not exist"]),
        (
            vec!["--dockerfile", "Typo.Dockerfile", "--target", "web"],
            vec![],
            vec!["Typo.Dockerfile:2: FRM", "not a Dockerfile instruction"],
        ),
        (
            // Found before the engine is called: the engine named here does not exist.
            vec!["--dockerfile", "Typo.Dockerfile", "--target", "web"],
            vec![("DOCKER_HOST", "unix:///nonexistent/docker.sock")],
            vec!["Typo.Dockerfile:2: FRM", "not a Dockerfile instruction"],
        ),
        (
            vec!["--dockerfile", "Empty.Dockerfile", "--target", "web"],
            vec![],
            vec!["\"web\" is not a stage", "none named"],
        ),
        (
            vec!["--target", "web,migrate"],
            vec![],
            vec!["\"migrate\" is not a stage", "base, web, worker, scheduler"],
        ),
        (vec!["--target", "WEB2"], vec![], vec!["\"WEB2\" is not a stage"]),
        (vec!["--target", ""], vec![], vec!["--target", "TARGET=REPOSITORY"]),
        (vec!["--target", "=web"], vec![], vec!["--target", "\"=web\""]),
        (vec!["--target", "web="], vec![], vec!["--target", "\"web=\""]),
        (vec!["--target", "web=a-web,web=b-web"], vec![], vec!["--target", "web=a-web,web=b-web", "once"]),
        (vec!["--target", "web=same,worker=same"], vec![], vec!["--target", "once"]),
        (vec!["--target", "web=Bad_Repo"], vec![], vec!["Bad_Repo", "lowercase"]),
        (vec!["--build-arg", "GRETING=x"], vec![], vec!["\"GRETING\" is not declared", "ARG GRETING"]),
        (vec!["--build-arg", "GREETING"], vec![], vec!["--build-arg", "\"GREETING\"", "KEY=VALUE"]),
        (vec!["--build-arg", "=3.12"], vec![], vec!["--build-arg", "\"=3.12\"", "name before '=' is empty"]),
        (
            vec!["--registry", "https://reg.example"],
            vec![],
            vec!["--registry", "https://reg.example", "without https://"],
        ),
        (vec!["--registry", "reg.example/path"], vec![], vec!["--registry", "reg.example/path", "host only"]),
        (vec!["--registry", "reg.example:http"], vec![], vec!["--registry", "reg.example:http"]),
        (vec!["--extra-tag", "bad tag"], vec![], vec!["--extra-tag", "\"bad tag\"", "[A-Za-z0-9_.-]"]),
        (vec!["--extra-tag=-leading"], vec![], vec!["--extra-tag", "\"-leading\""]),
        (vec!["--platform", "linux/s390x"], vec![], vec!["--platform", "linux/amd64, linux/arm64"]),
        (vec!["--platform", "windows/amd64"], vec![], vec!["--platform", "windows/amd64"]),
        (vec!["--builder", "fast"], vec![], vec!["--builder", "auto, buildkit, classic"]),
        (vec!["--cache-from-commit", "HEAD~1"], vec![], vec!["--cache-from-commit", "\"HEAD~1\"", "40 hex"]),
        (vec!["--cache-from", "not a ref"], vec![], vec!["--cache-from", "\"not a ref\""]),
        (
            vec!["--registry-username", "AWS"],
            vec![],
            vec!["--registry-username/--registry-password", "give both"],
        ),
        (
            vec!["--source", "/nonexistent/checkout"],
            vec![],
            vec!["--source", "/nonexistent/checkout", "source tree"],
        ),
        (
            vec!["--release-file", &missing_dir],
            vec![],
            vec!["--release-file", "no-such-dir", "does not exist"],
        ),
        (vec!["--context", &ignore_dir, "--target", "web"], vec![], vec![".dockerignore", ":1: [unclosed"]),
        (vec![], vec![("STATUSPAGE_SHA", "abc123")], vec!["--sha value \"abc123\"", "40 hex"]),
        (vec![], vec![("DOCKER_HOST", "bogus://x")], vec!["DOCKER_HOST", "bogus://x", "unix://"]),
        (vec!["--no-such-flag"], vec![], vec!["--no-such-flag", "see `statuspage-build --help`"]),
        // Values the composite action passes through the environment name the variable.
        (
            vec![],
            vec![("STATUSPAGE_BUILDER", "fast")],
            vec!["'fast'", "environment variable STATUSPAGE_BUILDER", "auto, buildkit, classic"],
        ),
        (
            vec![],
            vec![("STATUSPAGE_DRY_RUN", "yes")],
            vec!["'yes'", "environment variable STATUSPAGE_DRY_RUN"],
        ),
    ];
    assert!(cases.len() >= 30, "at least 30 bad inputs");
    let before = engine_images().await;
    for (extra, env, wanted) in &cases {
        let mut args: Vec<&str> = Vec::new();
        for (flag, default) in [("--context", dir.as_str()), ("--registry", s.registry.as_str())] {
            if !extra.contains(&flag) {
                args.extend([flag, default]);
            }
        }
        if !env.iter().any(|(k, _)| *k == "STATUSPAGE_SHA") {
            args.extend(["--sha", SHA]);
        }
        args.extend(extra.iter().copied());
        let (code, out, err) = run_binary("statuspage-build", &args, env, "");
        assert_eq!(code, 2, "{extra:?} {env:?}: exit {code}\n{err}");
        assert!(out.is_empty(), "{extra:?}: nothing on stdout: {out}");
        for text in wanted {
            assert!(err.contains(text), "{extra:?} {env:?}: the message lacks {text:?}:\n{err}");
        }
        statuspage_integration_tests::assert_one_error_line(&format!("{extra:?} {env:?}"), &err);
    }
    assert_eq!(engine_images().await, before, "no bad input changed the engine's images");
}
