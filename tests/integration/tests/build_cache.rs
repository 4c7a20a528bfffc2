//! A fresh runner's only cache is the registry: images built with BuildKit carry inline cache
//! metadata, and `--cache-from` the previous commit's images lets a build on an empty engine reuse
//! their layers. (Its own test binary: it empties the engine's build cache, which would disturb
//! the other build tests running in parallel.)

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::sync::Arc;

use bollard::query_parameters::{PruneBuildOptionsBuilder, RemoveImageOptionsBuilder};
use futures_util::StreamExt;
use statuspage_build_images::{BuildConfig, run};
use statuspage_integration_tests::{build_config, docker, scratch_context, stack, unique};

const DOCKERFILE: &str = "\
FROM scratch AS base
COPY busybox /bin/busybox
RUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]
COPY nonce /nonce
RUN cat /proc/sys/kernel/random/uuid > /expensive-result
FROM base AS web
CMD [\"/bin/cat\", \"/expensive-result\"]
";

const BEFORE: &str = "1111111111111111111111111111111111111111";
const AFTER: &str = "2222222222222222222222222222222222222222";

fn config(context: &std::path::Path, repository: &str, sha: &str, cache_from: Vec<String>) -> BuildConfig {
    let mut config = build_config(context, &[format!("web={repository}")], sha);
    config.cache_from = cache_from;
    config
}

#[tokio::test]
async fn an_empty_engine_reuses_the_previous_commits_layers_from_the_registry() {
    let s = stack();
    let context = scratch_context(DOCKERFILE);
    let repository = unique("cache-it/web");
    let name = format!("{}/{repository}", s.registry);
    let first = run(&config(context.path(), &repository, BEFORE, vec![]), Arc::new(|_| {})).await.unwrap();
    assert!(first.targets[0].steps.iter().any(|st| st.name.contains("random/uuid") && !st.cached));

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
    docker.remove_image(&format!("{name}:{BEFORE}"), Some(remove), None).await.unwrap();
    docker.prune_build(Some(PruneBuildOptionsBuilder::default().all(true).build())).await.unwrap();

    let second =
        run(&config(context.path(), &repository, AFTER, vec![format!("{name}:{BEFORE}")]), Arc::new(|_| {}))
            .await
            .unwrap();
    let expensive: Vec<_> =
        second.targets[0].steps.iter().filter(|st| st.name.contains("random/uuid")).collect();
    assert!(!expensive.is_empty() && expensive.iter().all(|st| st.cached), "{:?}", second.targets[0].steps);
    assert_eq!(first.targets[0].layers, second.targets[0].layers, "the same layers, from the registry");
}
