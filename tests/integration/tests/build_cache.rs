//! A fresh runner's only cache is the registry. Images built with BuildKit carry inline cache
//! metadata, but only for their own layers: a `builder` stage the final image only `COPY --from`s
//! (wheels, docs, compilers) is in no target image. statuspage-build therefore exports a cache
//! image of each such stage (`<first repository>:cache-<stage>-<tag>`, a reference that never
//! moves), and `--cache-from-commit` imports the previous commit's target and cache images. Proven
//! here on an emptied engine. (Its own test binary: it empties the engine's build cache, which
//! would disturb the other build tests running in parallel.)

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::sync::Arc;

use bollard::query_parameters::{PruneBuildOptionsBuilder, RemoveImageOptionsBuilder};
use futures_util::StreamExt;
use statuspage_build_images::{BuildConfig, BuildOutcome, run};
use statuspage_integration_tests::{build_config, docker, scratch_context, stack, unique};

/// The stage graph of images/Dockerfile in small: the expensive step lives in `builder`, which
/// the final image only copies from.
const DOCKERFILE: &str = "\
FROM scratch AS base
COPY busybox /bin/busybox
RUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]
COPY nonce /nonce
FROM base AS builder
RUN cat /proc/sys/kernel/random/uuid > /expensive-result
FROM base AS runtime
RUN echo runtime > /runtime
COPY --from=builder /expensive-result /expensive-result
FROM runtime AS web
CMD [\"/bin/cat\", \"/expensive-result\"]
";

const BEFORE: &str = "1111111111111111111111111111111111111111";
const AFTER: &str = "2222222222222222222222222222222222222222";

fn config(context: &std::path::Path, repository: &str, sha: &str, before: Option<&str>) -> BuildConfig {
    let mut config = build_config(context, &[format!("web={repository}")], sha);
    config.export_cache = true;
    config.cache_from_commit = before.map(str::to_string);
    config
}

fn expensive(outcome: &BuildOutcome) -> Vec<bool> {
    outcome.targets[0].steps.iter().filter(|st| st.name.contains("random/uuid")).map(|st| st.cached).collect()
}

#[tokio::test]
async fn an_empty_engine_reuses_the_builder_stage_of_the_previous_commit_from_the_registry() {
    let s = stack();
    let context = scratch_context(DOCKERFILE);
    let repository = unique("cache-it/web");
    let name = format!("{}/{repository}", s.registry);
    let first = run(&config(context.path(), &repository, BEFORE, None), Arc::new(|_| {})).await.unwrap();
    assert_eq!(expensive(&first), [false], "{:?}", first.targets[0].steps);
    let cache_ref = format!("{name}:cache-builder-{BEFORE}");
    assert!(
        first.notes.iter().any(|n| n.starts_with(&format!("cache of stage builder exported to {cache_ref}"))),
        "{:?}",
        first.notes
    );

    // The push step pushes the target image; the cache image is already in the registry.
    let docker = docker();
    let credentials = bollard::auth::DockerCredentials {
        username: Some(s.user.clone()),
        password: Some(s.password.clone()),
        ..Default::default()
    };
    let options = bollard::query_parameters::PushImageOptionsBuilder::default().tag(BEFORE).build();
    let mut push = docker.push_image(&name, Some(options), Some(credentials));
    while let Some(item) = push.next().await {
        assert!(item.unwrap().error_detail.is_none());
    }

    // Forget everything locally, as a new runner would have nothing.
    let remove = RemoveImageOptionsBuilder::default().force(true).build();
    for reference in [format!("{name}:{BEFORE}"), cache_ref.clone()] {
        docker.remove_image(&reference, Some(remove.clone()), None).await.unwrap();
    }
    docker.prune_build(Some(PruneBuildOptionsBuilder::default().all(true).build())).await.unwrap();

    let second =
        run(&config(context.path(), &repository, AFTER, Some(BEFORE)), Arc::new(|_| {})).await.unwrap();
    assert_eq!(
        expensive(&second),
        [true],
        "the builder stage came from the registry: {:?}",
        second.targets[0].steps
    );
    assert_eq!(first.targets[0].layers, second.targets[0].layers, "the same layers, from the registry");
    assert!(
        second.notes.iter().any(|n| n.contains(&format!("{name}:cache-builder-{AFTER}"))),
        "the new commit exports its own cache image: {:?}",
        second.notes
    );
}
