//! Build the web, worker and scheduler images from one multi-stage Dockerfile through the
//! Docker Engine API.
//!
//! [`run`] validates everything first ([`plan::BuildPlan`]), skips the work when every image is
//! already in the registry, packs the context once, and builds the targets one after another:
//! the first builds every shared stage (BuildKit runs independent stages in parallel), the others
//! reuse them from the engine's cache. The result is a [`statuspage_common::release::Release`] for the push step.

pub mod cli;
pub mod context;
pub mod dockerfile;
pub mod engine;
pub mod error;
pub mod plan;
pub mod report;

use futures_util::future::join_all;
use statuspage_common::release::Release;

pub use engine::{Builder, Engine, Progress, ProgressEvent, TargetBuild};
pub use error::BuildError;
pub use plan::{BuildConfig, BuildPlan, BuilderChoice, RegistryAuth, TargetSpec};

/// What a build run did.
#[derive(Debug, Clone)]
pub struct BuildOutcome {
    /// The release document: repositories, tags, image IDs and sizes (digests when skipped).
    pub release: Release,
    /// The builder used; `None` when the build was skipped.
    pub builder: Option<Builder>,
    /// Per-target results, in target order (empty when skipped).
    pub targets: Vec<TargetBuild>,
    /// Human-readable notes (builder choice, skip reason, fallbacks).
    pub notes: Vec<String>,
}

impl BuildOutcome {
    /// True when nothing was built because every image was already in the registry.
    pub fn skipped(&self) -> bool {
        self.builder.is_none()
    }
}

/// Validate, then build every target (or skip when all are already pushed).
pub async fn run(config: &BuildConfig, progress: Progress) -> Result<BuildOutcome, BuildError> {
    let plan = BuildPlan::new(config)?;
    let engine = Engine::connect().await?;
    let mut notes = Vec::new();

    if config.skip_existing && config.registry.is_some() {
        match existing_digests(&engine, &plan, config).await {
            Ok(Some(digests)) => {
                let mut release = plan.release();
                for (target, digest) in digests {
                    if let Some(image) = release.images.get_mut(&target) {
                        image.digest = Some(digest);
                        image.built = Some(false);
                    }
                }
                notes.push("every image is already in the registry: build skipped".into());
                return Ok(BuildOutcome { release, builder: None, targets: Vec::new(), notes });
            }
            Ok(None) => {}
            Err(reason) => {
                notes.push(format!("could not check the registry for existing images ({reason}); building"))
            }
        }
    }

    let dockerfile_name_in_context = plan.dockerfile_in_context();
    let (context_dir, dockerfile) = (plan.context.clone(), plan.dockerfile.clone());
    let (bytes, dockerfile_name) = tokio::task::spawn_blocking(move || {
        context::pack(&context_dir, &dockerfile, dockerfile_name_in_context)
    })
    .await
    .map_err(|e| BuildError::Context { path: plan.context.clone(), source: std::io::Error::other(e) })??;
    let bytes = bytes::Bytes::from(bytes);

    let builder = match config.builder {
        BuilderChoice::Buildkit => Builder::Buildkit,
        BuilderChoice::Classic => Builder::Classic,
        BuilderChoice::Auto if engine.supports_buildkit().await => Builder::Buildkit,
        BuilderChoice::Auto => {
            notes.push("the engine does not offer BuildKit: using the classic builder".into());
            Builder::Classic
        }
    };
    let job = BuildJob {
        engine: &engine,
        plan: &plan,
        context: bytes,
        dockerfile_name: &dockerfile_name,
        cache_from: &config.cache_from,
        auth: config.registry_auth.as_ref(),
        progress: &progress,
    };
    let mut builder_used = builder;
    let mut targets = job.all(builder).await;
    if builder == Builder::Buildkit
        && config.builder == BuilderChoice::Auto
        && targets.iter().any(|r| matches!(r, Err(BuildError::Engine { .. })))
    {
        notes.push(
            "BuildKit failed to start a session on this engine: retried with the classic builder".into(),
        );
        builder_used = Builder::Classic;
        targets = job.all(Builder::Classic).await;
    }
    let targets: Vec<TargetBuild> = targets.into_iter().collect::<Result<_, _>>()?;
    notes.insert(0, format!("built with {builder_used}"));

    let mut release = plan.release();
    for built in &targets {
        if let Some(image) = release.images.get_mut(&built.target) {
            image.image_id = Some(built.image_id.clone());
            image.size = Some(built.size);
            image.built = Some(true);
        }
    }
    Ok(BuildOutcome { release, builder: Some(builder_used), targets, notes })
}

/// Everything one build of all targets shares.
struct BuildJob<'a> {
    engine: &'a Engine,
    plan: &'a BuildPlan,
    context: bytes::Bytes,
    dockerfile_name: &'a str,
    cache_from: &'a [String],
    auth: Option<&'a RegistryAuth>,
    progress: &'a Progress,
}

impl BuildJob<'_> {
    async fn one(&self, image: &plan::PlannedImage, builder: Builder) -> Result<TargetBuild, BuildError> {
        (self.progress)(ProgressEvent::TargetStarted { target: image.target.clone() });
        let result = self.build(image, builder).await;
        (self.progress)(ProgressEvent::TargetFinished { target: image.target.clone() });
        result
    }

    async fn build(&self, image: &plan::PlannedImage, builder: Builder) -> Result<TargetBuild, BuildError> {
        self.engine
            .build_target(
                self.plan,
                image,
                self.context.clone(),
                self.dockerfile_name,
                builder,
                self.cache_from,
                self.auth,
                self.progress,
            )
            .await
    }

    /// One target after another, stopping at the first failure. The first build makes every
    /// shared stage (BuildKit runs independent stages of it in parallel); the others find those
    /// stages in the cache. Not concurrently: concurrent solves that share steps and export inline
    /// cache crash Engine 20.10's BuildKit ("concurrent map writes" in its cache exporter).
    async fn all(&self, builder: Builder) -> Vec<Result<TargetBuild, BuildError>> {
        let mut results = Vec::new();
        for image in &self.plan.images {
            let result = self.one(image, builder).await;
            let failed = result.is_err();
            results.push(result);
            if failed {
                break;
            }
        }
        results
    }
}

/// The registry digest of every planned image by target, or `None` as soon as one is missing.
async fn existing_digests(
    engine: &Engine,
    plan: &BuildPlan,
    config: &BuildConfig,
) -> Result<Option<Vec<(String, String)>>, String> {
    // Only the commit tag decides: extra tags such as `main` move between commits.
    let checks = plan
        .images
        .iter()
        .map(|image| engine.registry_digest(image.primary_ref(), config.registry_auth.as_ref()));
    let mut digests = Vec::new();
    for (image, result) in plan.images.iter().zip(join_all(checks).await) {
        match result? {
            Some(digest) => digests.push((image.target.clone(), digest)),
            None => return Ok(None),
        }
    }
    Ok(Some(digests))
}
