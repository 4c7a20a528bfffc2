//! Build the web, worker and scheduler images from one multi-stage Dockerfile through the
//! Docker Engine API.
//!
//! [`run`] validates everything and packs the context first ([`plan::BuildPlan`]), asks the
//! registry which images it already has (each is reused with its registry digest, never built or
//! pushed again), builds only the missing targets one after another (the first builds every shared
//! stage, BuildKit running independent stages in parallel; the others reuse them from the engine's
//! cache), and beside them exports a cache image of each stage the targets only `COPY --from`, so
//! a fresh runner reuses those stages too. The result is a
//! [`statuspage_common::release::Release`] for the push step.

pub mod cli;
pub mod context;
pub mod dockerfile;
pub mod engine;
pub mod error;
pub mod plan;
pub mod report;

use std::pin::pin;
use std::sync::Arc;

use futures_util::future::{Either, join_all, select};
use statuspage_common::release::Release;

pub use engine::{Builder, Engine, Progress, ProgressEvent, TargetBuild};
pub use error::BuildError;
pub use plan::{BuildConfig, BuildPlan, BuilderChoice, PlannedImage, RegistryAuth, TargetSpec};

/// What a build run did.
#[derive(Debug, Clone)]
pub struct BuildOutcome {
    /// The release document: repositories, tags, image IDs and sizes; the registry digest and
    /// `built: false` for images the registry already had.
    pub release: Release,
    /// The builder used; `None` when nothing was built.
    pub builder: Option<Builder>,
    /// Per-target results of the targets built, in target order.
    pub targets: Vec<TargetBuild>,
    /// Human-readable notes (builder choice, reused images, cache export, fallbacks).
    pub notes: Vec<String>,
}

impl BuildOutcome {
    /// True when nothing was built because every image was already in the registry.
    pub fn skipped(&self) -> bool {
        self.builder.is_none()
    }
}

/// Validate, then build every target the registry does not have yet, exporting the cache beside.
///
/// Errors: bad input (exit 2) before the engine is called; [`BuildError::StepFailed`] (exit 1);
/// engine failures (exit 3). A cache export that fails is a note, not an error.
pub async fn run(config: &BuildConfig, progress: Progress) -> Result<BuildOutcome, BuildError> {
    let plan = BuildPlan::new(config)?;
    let engine = Engine::connect().await?;
    let mut notes = Vec::new();
    let mut release = plan.release();
    let missing = reuse_existing(config, &engine, &plan, &mut release, &mut notes).await?;
    if missing.is_empty() {
        notes.push("every image is already in the registry: build skipped".into());
        return Ok(BuildOutcome { release, builder: None, targets: Vec::new(), notes });
    }
    let job =
        BuildJob { engine: &engine, plan: &plan, auth: config.registry_auth.as_ref(), progress: &progress };
    let chosen = choose_builder(config.builder, &engine, &mut notes).await;
    let (built, exported) = job.missing_and_cache(config, chosen, &missing).await;
    let (builder, targets) = built?;
    if builder != chosen {
        notes.push(
            "BuildKit failed to start a session on this engine: retried with the classic builder".into(),
        );
    }
    notes.insert(0, format!("built with {builder}"));
    for built in &targets {
        if let Some(image) = release.images.get_mut(&built.target) {
            image.image_id = Some(built.image_id.clone());
            image.size = Some(built.size);
            image.built = Some(true);
        }
    }
    notes.extend(exported);
    Ok(BuildOutcome { release, builder: Some(builder), targets, notes })
}

/// Ask the registry for each image's commit tag (with `--skip-existing` and a registry): the ones
/// it has go into `release` with their registry digest and `built: false`. Returns the images
/// still to build. A registry that refuses the credentials is an error; one that cannot be asked
/// is a note (everything is built).
async fn reuse_existing(
    config: &BuildConfig,
    engine: &Engine,
    plan: &BuildPlan,
    release: &mut Release,
    notes: &mut Vec<String>,
) -> Result<Vec<PlannedImage>, BuildError> {
    let existing = match (config.skip_existing && config.registry.is_some(), &config.registry_auth) {
        (true, auth) => match existing_digests(engine, &plan.images, auth.as_ref()).await {
            Ok(digests) => digests,
            Err(reason) if error::is_auth_failure(&reason) => {
                return Err(auth_error(config, "checking which images it already has", reason));
            }
            Err(reason) => {
                notes.push(format!(
                    "could not check the registry for existing images ({reason}); building all"
                ));
                vec![None; plan.images.len()]
            }
        },
        (false, _) => vec![None; plan.images.len()],
    };
    let mut missing = Vec::new();
    for (image, digest) in plan.images.iter().zip(existing) {
        let Some(digest) = digest else {
            missing.push(image.clone());
            continue;
        };
        notes.push(format!(
            "{} is already in the registry ({digest}): reused, not built",
            image.primary_ref()
        ));
        if let Some(entry) = release.images.get_mut(&image.target) {
            entry.digest = Some(digest);
            entry.built = Some(false);
        }
    }
    Ok(missing)
}

/// A registry's refusal of the credentials, naming the registry (the one the message names, else
/// `--registry`) and where the credentials came from.
fn auth_error(config: &BuildConfig, action: &str, message: String) -> BuildError {
    let registry = error::registry_in(&message).or_else(|| config.registry.clone()).unwrap_or_default();
    let credentials = match &config.registry_auth {
        Some(auth) => auth.origin.clone(),
        None => "nowhere (none given, none found in the Docker config)".into(),
    };
    BuildError::RegistryAuth { registry, credentials, action: action.to_string(), message }
}

async fn choose_builder(choice: BuilderChoice, engine: &Engine, notes: &mut Vec<String>) -> Builder {
    match choice {
        BuilderChoice::Buildkit => Builder::Buildkit,
        BuilderChoice::Classic => Builder::Classic,
        BuilderChoice::Auto if engine.supports_buildkit().await => Builder::Buildkit,
        BuilderChoice::Auto => {
            notes.push("the engine does not offer BuildKit: using the classic builder".into());
            Builder::Classic
        }
    }
}

/// Everything one build of all targets shares.
#[derive(Clone, Copy)]
struct BuildJob<'a> {
    engine: &'a Engine,
    plan: &'a BuildPlan,
    auth: Option<&'a RegistryAuth>,
    progress: &'a Progress,
}

impl BuildJob<'_> {
    /// Build one target; a build stream the engine cut short (not a failed step) is tried once
    /// more, resuming from BuildKit's cache of the steps that finished.
    async fn one(&self, image: &PlannedImage, builder: Builder) -> Result<TargetBuild, BuildError> {
        (self.progress)(ProgressEvent::TargetStarted { target: image.target.clone() });
        let mut result = self.engine.build_target(self.plan, image, builder, self.auth, self.progress).await;
        if let Err(BuildError::Engine { source: bollard::errors::Error::IOError { err }, .. }) = &result {
            (self.progress)(ProgressEvent::Retry { target: image.target.clone(), reason: err.to_string() });
            result = self.engine.build_target(self.plan, image, builder, self.auth, self.progress).await;
        }
        (self.progress)(ProgressEvent::TargetFinished { target: image.target.clone() });
        result
    }

    /// Build the missing targets and, with BuildKit and cache images planned, export the cache
    /// beside them: each cache image's build shares its stage with the targets' builds in
    /// BuildKit's solver (identical steps run once), so its push starts as soon as the stage is
    /// built, while the targets still build. A failed target build cancels the export; the export
    /// prints no progress of its own (its steps are the targets'), its outcome is in the notes.
    /// Returns the build's result (the builder used, the targets) and the export's notes.
    async fn missing_and_cache(
        &self,
        config: &BuildConfig,
        builder: Builder,
        missing: &[PlannedImage],
    ) -> (Result<(Builder, Vec<TargetBuild>), BuildError>, Vec<String>) {
        let build = pin!(self.missing(config, builder, missing));
        if builder != Builder::Buildkit || self.plan.cache_images.is_empty() {
            return (build.await, Vec::new());
        }
        let quiet: Progress = Arc::new(|_| {});
        let exporter = BuildJob { progress: &quiet, ..*self };
        let export = pin!(exporter.export_cache());
        let (built, exported) = match select(build, export).await {
            Either::Left((built @ Err(_), _)) => (built, Vec::new()),
            Either::Left((built, export)) => (built, export.await),
            Either::Right((exported, build)) => (build.await, exported),
        };
        match built {
            // Fallen back to the classic builder: the export's BuildKit builds failed the same way.
            Ok((Builder::Classic, ..)) => (built, Vec::new()),
            built => (built, exported),
        }
    }

    /// Build the missing targets with `builder`; with `auto`, a BuildKit session the engine could
    /// not start is retried with the classic builder. Returns the builder used and one result per
    /// target, in order.
    async fn missing(
        &self,
        config: &BuildConfig,
        mut builder: Builder,
        missing: &[PlannedImage],
    ) -> Result<(Builder, Vec<TargetBuild>), BuildError> {
        let mut targets = self.all(missing, builder).await;
        if builder == Builder::Buildkit
            && config.builder == BuilderChoice::Auto
            && targets.iter().any(|r| matches!(r, Err(BuildError::Engine { .. })))
        {
            builder = Builder::Classic;
            targets = self.all(missing, Builder::Classic).await;
        }
        let targets = targets.into_iter().collect::<Result<Vec<_>, _>>().map_err(|e| match e {
            BuildError::StepFailed { target, step, message, .. } if error::is_auth_failure(&message) => {
                auth_error(config, &format!("building target {target} (step `{step}`)"), message)
            }
            other => other,
        })?;
        Ok((builder, targets))
    }

    /// One target after another, stopping at the first failure. The first build makes every
    /// shared stage (BuildKit runs independent stages of it in parallel); the others find those
    /// stages in the cache, so building them concurrently gains nothing (bench/build.sh).
    async fn all(&self, images: &[PlannedImage], builder: Builder) -> Vec<Result<TargetBuild, BuildError>> {
        let mut results = Vec::new();
        for image in images {
            let result = self.one(image, builder).await;
            let failed = result.is_err();
            results.push(result);
            if failed {
                break;
            }
        }
        results
    }

    /// Build each cache image (its steps shared with the targets' builds) with inline cache
    /// metadata and push it, unless the registry has it already. Returns one note per image;
    /// failures never fail the build (the next run is only slower), they say why.
    async fn export_cache(&self) -> Vec<String> {
        let mut notes = Vec::new();
        // The registry is asked about every cache image at once (one round trip, not one each:
        // it is most of a warm build's time).
        let checks =
            self.plan.cache_images.iter().map(|i| self.engine.registry_digest(i.primary_ref(), self.auth));
        let present = join_all(checks).await;
        for (image, present) in self.plan.cache_images.iter().zip(present) {
            let reference = image.primary_ref();
            if let Ok(Some(_)) = present {
                notes.push(format!("cache {reference} is already in the registry"));
                continue;
            }
            let outcome = match self.one(image, Builder::Buildkit).await {
                Ok(_) => self.engine.push(image, self.auth).await,
                Err(e) => Err(e.to_string()),
            };
            notes.push(match outcome {
                Ok(digest) => format!("cache of stage {} exported to {reference} ({digest})", image.target),
                Err(reason) => format!(
                    "warning: cache of stage {} not exported to {reference}: {reason} (the next build on a fresh runner rebuilds it)",
                    image.target
                ),
            });
        }
        notes
    }
}

/// The registry digest of each planned image's commit tag, `None` where the registry lacks it.
/// Extra tags such as `main` move between commits and never decide.
async fn existing_digests(
    engine: &Engine,
    images: &[PlannedImage],
    auth: Option<&RegistryAuth>,
) -> Result<Vec<Option<String>>, String> {
    let checks = images.iter().map(|image| engine.registry_digest(image.primary_ref(), auth));
    join_all(checks).await.into_iter().collect()
}
