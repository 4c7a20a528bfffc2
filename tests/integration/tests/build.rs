//! The build binary against the stack's real engine and registry (issue: the build binary).

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::sync::{Arc, Mutex};

use statuspage_build_images::{BuildConfig, BuildError, BuilderChoice, ProgressEvent, run};
use statuspage_common::release::Release;
use statuspage_integration_tests::{build_config, run_binary, scratch_context, stack, unique};

const SHA: &str = "89abcdef0123456789abcdef0123456789abcdef";

/// A `base` stage with a shell: busybox from the scratch context (`scratch_context`) and its nonce.
macro_rules! busybox_base {
    () => {
        "FROM scratch AS base\nCOPY busybox /bin/busybox\n\
         RUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\nCOPY nonce /nonce\n"
    };
}

/// Three targets over one shared stage. The shared stage records a random ID when it runs:
/// identical IDs in all three images prove it ran once.
const THREE_TARGETS: &str = concat!(
    busybox_base!(),
    "\
RUN cat /proc/sys/kernel/random/uuid > /base-run-id
FROM base AS web
ARG GREETING=hello
RUN echo \"$GREETING web\" > /component
CMD [\"/bin/cat\", \"/component\"]
FROM base AS worker
RUN echo worker > /component
FROM base AS scheduler
RUN echo scheduler > /component
"
);

fn config(context: &std::path::Path, prefix: &str, builder: BuilderChoice) -> BuildConfig {
    let targets: Vec<String> =
        ["web", "worker", "scheduler"].iter().map(|t| format!("{t}={prefix}/statuspage-{t}")).collect();
    let mut config = build_config(context, &targets, SHA);
    config.extra_tags = vec!["latest-build".into()];
    config.build_args = [("GREETING".to_string(), "hi".to_string())].into();
    config.source_url = Some("https://github.com/org/statuspage".into());
    config.created = "2026-01-02T03:04:05Z".into();
    config.version = Some("1.2.3".into());
    config.builder = builder;
    config.skip_existing = true;
    config
}

fn quiet() -> statuspage_build_images::Progress {
    Arc::new(|_| {})
}

async fn file_in_image(image: &str, path: &str) -> String {
    let docker = statuspage_integration_tests::docker();
    let name = unique("build-it-read");
    let body = bollard::models::ContainerCreateBody {
        image: Some(image.into()),
        cmd: Some(vec!["/bin/cat".into(), path.into()]),
        ..Default::default()
    };
    let options = bollard::query_parameters::CreateContainerOptionsBuilder::default().name(&name).build();
    docker.create_container(Some(options), body).await.unwrap();
    docker.start_container(&name, None::<bollard::query_parameters::StartContainerOptions>).await.unwrap();
    use futures_util::StreamExt;
    let mut wait = docker.wait_container(&name, None::<bollard::query_parameters::WaitContainerOptions>);
    while wait.next().await.is_some() {}
    let mut logs = docker
        .logs(&name, Some(bollard::query_parameters::LogsOptionsBuilder::default().stdout(true).build()));
    let mut out = String::new();
    while let Some(Ok(chunk)) = logs.next().await {
        out.push_str(&chunk.to_string());
    }
    docker.remove_container(&name, None::<bollard::query_parameters::RemoveContainerOptions>).await.unwrap();
    out.trim().to_string()
}

#[tokio::test]
async fn buildkit_builds_three_targets_sharing_the_common_stage_once_then_fully_cached() {
    let context = scratch_context(THREE_TARGETS);
    let prefix = unique("build-it");
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = events.clone();
    let first = run(
        &config(context.path(), &prefix, BuilderChoice::Auto),
        Arc::new(move |e| sink.lock().unwrap().push(e)),
    )
    .await
    .unwrap();
    assert_eq!(first.builder, Some(statuspage_build_images::Builder::Buildkit), "auto picks BuildKit here");
    assert_eq!(first.targets.len(), 3);

    // Tagged with the commit and the extra tag, labelled.
    let docker = statuspage_integration_tests::docker();
    let mut base_ids = Vec::new();
    for target in ["web", "worker", "scheduler"] {
        let image = &first.release.images[target];
        assert_eq!(image.tag, SHA);
        assert_eq!(image.built, Some(true));
        let reference = format!("{}:{SHA}", image.repository);
        let inspect = docker.inspect_image(&reference).await.unwrap();
        assert_eq!(inspect.id, image.image_id);
        let tags = inspect.repo_tags.unwrap_or_default();
        assert!(tags.contains(&format!("{}:latest-build", image.repository)), "{tags:?}");
        let labels = inspect.config.and_then(|c| c.labels).unwrap_or_default();
        assert_eq!(labels["org.opencontainers.image.revision"], SHA);
        assert_eq!(labels["org.opencontainers.image.source"], "https://github.com/org/statuspage");
        assert_eq!(labels["org.opencontainers.image.created"], "2026-01-02T03:04:05Z");
        assert_eq!(labels["org.opencontainers.image.version"], "1.2.3");
        base_ids.push(file_in_image(&reference, "/base-run-id").await);
    }
    assert_eq!(
        file_in_image(&format!("{}:{SHA}", first.release.images["web"].repository), "/component").await,
        "hi web"
    );

    // The shared stage ran once: one random ID in all three images, and identical base layers.
    assert!(base_ids.iter().all(|id| id == &base_ids[0] && id.len() == 36), "{base_ids:?}");
    let layers: Vec<&Vec<String>> = first.targets.iter().map(|t| &t.layers).collect();
    let shared = layers[0].len() - 1;
    assert!(layers.iter().all(|l| l.len() == shared + 1 && l[..shared] == layers[0][..shared]), "{layers:?}");
    let executed_base_runs = events
        .lock()
        .unwrap()
        .iter()
        .filter(
            |e| matches!(e, ProgressEvent::Step { name, cached: false, .. } if name.contains("random/uuid")),
        )
        .count();
    assert!(executed_base_runs >= 1, "the shared RUN step was reported");

    // A second run with no change: nothing runs. Every image is found locally with the same
    // build-inputs digest and reused as it is.
    let mut again = config(context.path(), &prefix, BuilderChoice::Auto);
    again.skip_existing = false;
    let second = run(&again, quiet()).await.unwrap();
    for (before, after) in first.targets.iter().zip(&second.targets) {
        assert_eq!(before.image_id, after.image_id, "{} changed without a change", before.target);
        assert!(after.steps.iter().all(|s| s.name.starts_with("reuse ")), "{:?}", after.steps);
        let uncached: Vec<_> = after.steps.iter().filter(|s| !s.cached && s.name.contains("RUN")).collect();
        assert!(uncached.is_empty(), "{}: steps ran again: {uncached:?}", after.target);
    }

    // Changing one target's last stage rebuilds only that target: the others come out of
    // BuildKit's cache with the same layers. (Their image IDs still move: the engine's BuildKit
    // stamps each image config with the time it was exported.)
    let edited = THREE_TARGETS.replace("echo worker >", "echo worker-v2 >");
    std::fs::write(context.path().join("Dockerfile"), edited).unwrap();
    let third = run(&again, quiet()).await.unwrap();
    for (before, after) in second.targets.iter().zip(&third.targets) {
        let changed = before.layers != after.layers;
        assert_eq!(changed, after.target == "worker", "{} changed={changed}", after.target);
    }
    let worker = third.targets.iter().find(|t| t.target == "worker").unwrap();
    assert!(worker.steps.iter().any(|s| s.name.contains("worker-v2") && !s.cached));
    assert!(worker.steps.iter().filter(|s| s.name.contains("random/uuid")).all(|s| s.cached));
}

#[tokio::test]
async fn classic_builder_builds_the_same_targets() {
    let context = scratch_context(THREE_TARGETS);
    let prefix = unique("build-it-classic");
    let mut c = config(context.path(), &prefix, BuilderChoice::Classic);
    c.targets.truncate(2);
    let outcome = run(&c, quiet()).await.unwrap();
    assert_eq!(outcome.builder, Some(statuspage_build_images::Builder::Classic));
    let web = &outcome.targets[0];
    assert!(
        web.steps.iter().any(|s| s.name.starts_with("Step ") && s.name.contains("RUN")),
        "{:?}",
        web.steps
    );
    // The classic builder reuses the shared stage from its cache for the second target.
    let worker = &outcome.targets[1];
    assert!(
        worker.steps.iter().filter(|s| s.name.contains("random/uuid")).all(|s| s.cached),
        "{:?}",
        worker.steps
    );
}

/// Push `image`'s commit tag to the stack registry; its registry digest.
async fn push(repository: &str) -> String {
    let s = stack();
    let credentials = bollard::auth::DockerCredentials {
        username: Some(s.user.clone()),
        password: Some(s.password.clone()),
        ..Default::default()
    };
    let options = bollard::query_parameters::PushImageOptionsBuilder::default().tag(SHA).build();
    use futures_util::StreamExt;
    let docker = statuspage_integration_tests::docker();
    let mut push = docker.push_image(repository, Some(options), Some(credentials));
    let mut digest = None;
    while let Some(item) = push.next().await {
        let info = item.unwrap();
        assert!(info.error_detail.is_none(), "{info:?}");
        if let Some(rest) = info.status.as_deref().and_then(|s| s.split("digest: ").nth(1)) {
            digest = rest.split_whitespace().next().map(str::to_string);
        }
    }
    digest.expect("the push reported a digest")
}

#[tokio::test]
async fn images_the_registry_has_are_reused_one_by_one_and_only_the_missing_ones_built() {
    let context = scratch_context(THREE_TARGETS);
    let prefix = unique("build-it-skip");
    let c = config(context.path(), &prefix, BuilderChoice::Auto);
    let first = run(&c, quiet()).await.unwrap();
    assert!(!first.skipped(), "nothing was pushed yet");

    // A push that died after web: only web is in the registry.
    let web_digest = push(&first.release.images["web"].repository).await;
    let partial = run(&c, quiet()).await.unwrap();
    let built: Vec<&str> = partial.targets.iter().map(|t| t.target.as_str()).collect();
    assert_eq!(built, ["worker", "scheduler"], "{:?}", partial.notes);
    let web = &partial.release.images["web"];
    assert_eq!((web.built, web.digest.as_deref()), (Some(false), Some(web_digest.as_str())));
    for target in ["worker", "scheduler"] {
        let image = &partial.release.images[target];
        assert_eq!((image.built, image.digest.as_deref()), (Some(true), None), "{target}");
    }

    let mut pushed = std::collections::BTreeMap::from([("web".to_string(), web_digest)]);
    for target in ["worker", "scheduler"] {
        pushed.insert(target.to_string(), push(&first.release.images[target].repository).await);
    }
    let second = run(&c, quiet()).await.unwrap();
    assert!(second.skipped(), "{:?}", second.notes);
    assert!(second.targets.is_empty(), "the skip decision asks the registry, it builds nothing");
    for (target, image) in &second.release.images {
        assert_eq!(image.built, Some(false));
        assert_eq!(image.digest.as_ref(), Some(&pushed[target]), "{target} gets its own digest");
    }
}

#[tokio::test]
async fn failing_run_step_names_the_step_and_shows_the_last_30_lines() {
    let dockerfile = concat!(
        busybox_base!(),
        "\
FROM base AS web
ARG GREETING
RUN for i in $(seq 1 45); do echo \"output line $i\"; done; exit 3
FROM base AS worker
FROM base AS scheduler
"
    );
    let context = scratch_context(dockerfile);
    let c = config(context.path(), &unique("build-it-fail"), BuilderChoice::Buildkit);
    let err = run(&c, quiet()).await.unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, BuildError::StepFailed { .. }), "{text}");
    assert!(text.contains("target web failed at step") && text.contains("exit 3"), "{text}");
    assert!(text.contains("output line 45") && text.contains("output line 16"), "{text}");
    assert!(!text.contains("output line 15\n"), "only the last 30 lines: {text}");
}

/// The cache export runs beside the target builds and shares their steps: a step that fails in a
/// stage the target only copies from fails the target (the error names the target and the step,
/// not the cache image), and nothing of the cache export reaches the registry.
#[tokio::test]
async fn a_failed_target_build_cancels_the_cache_export_beside_it() {
    let dockerfile = concat!(
        busybox_base!(),
        "\
FROM base AS builder
RUN echo compiling; exit 4
FROM base AS web
COPY --from=builder /nonce /copied
"
    );
    let context = scratch_context(dockerfile);
    let s = stack();
    let repository = unique("build-it-export-fail/web");
    let mut c = build_config(context.path(), &[format!("web={repository}")], SHA);
    c.export_cache = true;
    let err = run(&c, quiet()).await.unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, BuildError::StepFailed { .. }), "{text}");
    assert!(text.contains("target web failed at step") && text.contains("exit 4"), "{text}");
    let cache_ref = format!("{}/{repository}:cache-builder-{SHA}", s.registry);
    match s.registry_image(&cache_ref).await {
        Err(bollard::errors::Error::DockerResponseServerError { message, .. }) => {
            assert!(message.contains("unknown") || message.contains("not found"), "{message}")
        }
        other => panic!("no cache image of a failed build may reach the registry: {other:?}"),
    }
}

fn build_binary(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    run_binary("statuspage-build", args, env, "")
}

#[test]
fn binary_reports_bad_input_with_exit_2_and_engine_trouble_with_exit_3() {
    let context = scratch_context(THREE_TARGETS);
    let dir = context.path().to_str().unwrap();
    let sha = ["--sha", SHA];

    let (code, _, err) = build_binary(&[&["--context", dir, "--dockerfile", "Nope"][..], &sha].concat(), &[]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("Dockerfile") && err.contains("Nope") && err.contains("does not exist"), "{err}");

    let (code, _, err) =
        build_binary(&[&["--context", dir, "--target", "web,migrate"][..], &sha].concat(), &[]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("\"migrate\" is not a stage") && err.contains("base, web, worker, scheduler"),
        "{err}"
    );

    let (code, _, err) =
        build_binary(&[&["--context", dir, "--build-arg", "GRETING=x"][..], &sha].concat(), &[]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("\"GRETING\" is not declared") && err.contains("ARG GRETING"), "{err}");

    let (code, _, err) = build_binary(
        &[&["--context", dir][..], &sha].concat(),
        &[("DOCKER_HOST", "unix:///nonexistent/docker.sock")],
    );
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("Docker Engine at unix:///nonexistent/docker.sock is unreachable"), "{err}");
    assert_eq!(err.lines().filter(|l| l.contains("error:")).count(), 1, "one error line: {err}");
}

#[test]
fn binary_dry_run_prints_the_plan_without_an_engine() {
    let context = scratch_context(THREE_TARGETS);
    let dir = context.path().to_str().unwrap();
    let (code, out, err) = build_binary(
        &["--context", dir, "--sha", SHA, "--registry", "reg.example", "--dry-run"],
        &[("DOCKER_HOST", "unix:///nonexistent/docker.sock")],
    );
    assert_eq!(code, 0, "{err}");
    let release = Release::parse(&out, "stdout").unwrap();
    assert_eq!(release.images["scheduler"].repository, "reg.example/statuspage-scheduler");
    assert_eq!(release.images["web"].tag, SHA);
    assert!(err.contains("dry run: would build 3 target(s)"), "{err}");
}

#[test]
fn binary_failing_step_exits_1_and_writes_actions_outputs_on_success() {
    let context = scratch_context(THREE_TARGETS);
    let dir = context.path().to_str().unwrap();
    let outputs = tempfile::NamedTempFile::new().unwrap();
    let summary = tempfile::NamedTempFile::new().unwrap();
    let prefix = unique("build-it-bin");
    let s = stack();
    let targets = format!("web={prefix}/web,worker={prefix}/worker");
    let (code, out, err) = build_binary(
        &["--context", dir, "--sha", SHA, "--registry", &s.registry, "--target", &targets],
        &[
            ("GITHUB_ACTIONS", "true"),
            ("GITHUB_OUTPUT", outputs.path().to_str().unwrap()),
            ("GITHUB_STEP_SUMMARY", summary.path().to_str().unwrap()),
            ("STATUSPAGE_REGISTRY_USERNAME", &s.user),
            ("STATUSPAGE_REGISTRY_PASSWORD", &s.password),
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("::group::build web") && err.contains("::group::build worker"), "{err}");
    assert_eq!(err.matches("::group::").count(), err.matches("::endgroup::").count(), "{err}");
    assert!(err.contains("::add-mask::"), "the registry password is masked: {err}");
    let unmasked = err.lines().filter(|l| !l.starts_with("::add-mask::")).any(|l| l.contains(&s.password));
    assert!(!out.contains(&s.password) && !unmasked, "the password appears only in the mask command");
    let release = Release::parse(&out, "stdout").unwrap();
    assert_eq!(release.images.len(), 2);
    let written = std::fs::read_to_string(outputs.path()).unwrap();
    assert!(written.contains(&format!("web-image={}/{prefix}/web:{SHA}", s.registry)), "{written}");
    assert!(written.contains("skipped=false") && written.contains("builder=buildkit"), "{written}");
    let table = std::fs::read_to_string(summary.path()).unwrap();
    assert!(
        table.contains("| target | image | size | steps cached |") && table.contains("| worker |"),
        "{table}"
    );

    let broken = THREE_TARGETS.replace("RUN echo worker > /component", "RUN echo about to fail && false");
    std::fs::write(context.path().join("Dockerfile"), broken).unwrap();
    let (code, _, err) = build_binary(&["--context", dir, "--sha", SHA, "--target", "worker"], &[]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("target worker failed at step") && err.contains("about to fail"), "{err}");
}

fn git(dir: &std::path::Path, args: &[&str]) -> String {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.email=t@example.com", "-c", "user.name=t"])
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The web tag a dry run plans for the context at `dir`, or the exit code and stderr.
fn planned_tag(dir: &str, extra: &[&str]) -> Result<String, (i32, String)> {
    let args = [&["--context", dir, "--registry", "reg.example", "--dry-run"][..], extra].concat();
    let (code, out, err) = build_binary(&args, &[("DOCKER_HOST", "unix:///nonexistent/docker.sock")]);
    if code != 0 {
        return Err((code, err));
    }
    Ok(Release::parse(&out, "stdout").unwrap().images["web"].tag.clone())
}

#[test]
fn a_dirty_tree_never_shares_an_identity_and_an_explicit_sha_does_not_bypass_the_check() {
    let context = scratch_context(THREE_TARGETS);
    let path = context.path();
    let dir = path.to_str().unwrap();
    git(path, &["init", "-q"]);
    git(path, &["add", "-A"]);
    git(path, &["commit", "-qm", "fixture"]);
    let head = git(path, &["rev-parse", "HEAD"]);
    assert_eq!(planned_tag(dir, &[]).unwrap(), head, "a clean tree is its commit");

    // An untracked file makes the tree dirty, also when the commit is given explicitly.
    std::fs::write(path.join("new-module.py"), "print('not committed')").unwrap();
    for extra in [&[][..], &["--sha", &head][..]] {
        let (code, err) = planned_tag(dir, extra).unwrap_err();
        assert_eq!(code, 2, "{err}");
        assert!(err.contains("?? new-module.py") && err.contains("--allow-dirty"), "{err}");
    }
    let first = planned_tag(dir, &["--allow-dirty"]).unwrap();
    assert!(first.starts_with(&format!("{head}-dirty-")) && first.len() == 40 + 7 + 12, "{first}");
    assert_eq!(planned_tag(dir, &["--allow-dirty", "--sha", &head]).unwrap(), first, "same inputs, same tag");

    // Another dirty state of the same commit gets another tag.
    std::fs::write(path.join("new-module.py"), "print('changed again')").unwrap();
    let second = planned_tag(dir, &["--allow-dirty"]).unwrap();
    assert!(second.starts_with(&format!("{head}-dirty-")) && second != first, "{first} / {second}");

    // Ignored files do not count.
    std::fs::remove_file(path.join("new-module.py")).unwrap();
    std::fs::write(path.join(".git/info/exclude"), "*.log\n").unwrap();
    std::fs::write(path.join("debug.log"), "x").unwrap();
    assert_eq!(planned_tag(dir, &[]).unwrap(), head);
}

#[test]
fn duplicate_targets_and_a_release_file_in_a_missing_folder_are_refused_before_any_work() {
    let context = scratch_context(THREE_TARGETS);
    let dir = context.path().to_str().unwrap();
    let engine = [("DOCKER_HOST", "unix:///nonexistent/docker.sock")];
    let (code, _, err) =
        build_binary(&["--context", dir, "--sha", SHA, "--target", "web=a-web,web=b-web"], &engine);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--target") && err.contains("web=a-web,web=b-web") && err.contains("once"), "{err}");
    let missing = context.path().join("no-such-folder/release.json");
    let (code, _, err) =
        build_binary(&["--context", dir, "--sha", SHA, "--release-file", missing.to_str().unwrap()], &engine);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("--release-file") && err.contains("no-such-folder") && err.contains("does not exist"),
        "{err}"
    );
}
