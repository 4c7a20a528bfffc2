//! The Docker Engine API side of a build: connect, pick a builder, build one target, read
//! its progress, and ask the registry (through the engine) whether an image already exists.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use bollard::Docker;
use bollard::auth::DockerCredentials;
use bollard::errors::Error as DockerError;
use bollard::models::BuildInfoAux;
use bollard::query_parameters::{BuildImageOptionsBuilder, BuilderVersion, TagImageOptionsBuilder};
use futures_util::StreamExt;

use crate::error::{BuildError, format_tail};
use crate::plan::{BuildPlan, PlannedImage, RegistryAuth};

/// How many lines of a failing step's output an error shows.
pub const TAIL_LINES: usize = 30;

/// Label holding the digest of everything that went into an image (context, Dockerfile, target,
/// build args, platform, labels, builder). An image with the same tag and the same digest is
/// reused as it is: building it again would produce the same thing.
pub const INPUTS_LABEL: &str = "io.statuspage.build-inputs";

/// The [`INPUTS_LABEL`] value for one target.
pub fn inputs_digest(
    plan: &BuildPlan,
    image: &PlannedImage,
    context: &[u8],
    dockerfile_name: &str,
    builder: Builder,
) -> String {
    use sha2::{Digest, Sha256};
    let mut hash = Sha256::new();
    let mut field = |name: &str, value: &[u8]| {
        hash.update(name.as_bytes());
        hash.update((value.len() as u64).to_le_bytes());
        hash.update(value);
    };
    field("context", context);
    field("dockerfile", dockerfile_name.as_bytes());
    field("target", image.target.as_bytes());
    field("platform", plan.platform.as_bytes());
    field("builder", format!("{builder:?}").as_bytes());
    for (key, value) in &plan.build_args {
        field("arg", format!("{key}={value}").as_bytes());
    }
    for (key, value) in &plan.labels {
        field("label", format!("{key}={value}").as_bytes());
    }
    format!("sha256:{:x}", hash.finalize())
}

/// The builder a build ran with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Builder {
    /// The engine's BuildKit, through a session.
    Buildkit,
    /// The classic (legacy) builder.
    Classic,
}

impl std::fmt::Display for Builder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Builder::Buildkit => "BuildKit",
            Builder::Classic => "classic builder",
        })
    }
}

/// One finished build step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepRecord {
    /// The builder's name for the step, e.g. `[base 2/3] RUN make`.
    pub name: String,
    /// Served from cache.
    pub cached: bool,
}

/// The result of building one target.
#[derive(Debug, Clone)]
pub struct TargetBuild {
    /// The target.
    pub target: String,
    /// Local image ID.
    pub image_id: String,
    /// Size in bytes.
    pub size: u64,
    /// Layer digests (diff IDs), base first.
    pub layers: Vec<String>,
    /// Every step, in completion order.
    pub steps: Vec<StepRecord>,
}

/// Something to show a person while a build runs.
#[derive(Debug, Clone, PartialEq)]
pub enum ProgressEvent {
    /// A step finished.
    Step {
        /// The target being built.
        target: String,
        /// The step.
        name: String,
        /// Served from cache.
        cached: bool,
        /// Wall time when known.
        seconds: Option<f64>,
    },
    /// A target's build starts (targets are built one after another).
    TargetStarted {
        /// The target.
        target: String,
    },
    /// A target's build ended, successfully or not.
    TargetFinished {
        /// The target.
        target: String,
    },
    /// The engine cut a target's build stream short (an I/O error, not a failed step); it is
    /// built once more, resuming from BuildKit's cache of the steps that finished.
    Retry {
        /// The target.
        target: String,
        /// What cut the stream, as the engine connection reported it.
        reason: String,
    },
    /// A line of step output.
    Output {
        /// The target being built.
        target: String,
        /// The line.
        line: String,
    },
}

/// Where progress goes.
pub type Progress = Arc<dyn Fn(ProgressEvent) + Send + Sync>;

/// A connected engine.
#[derive(Debug, Clone)]
pub struct Engine {
    docker: Docker,
    host: String,
}

/// The Engine API's `/build` query for one target: tag, target, platform, build args (with
/// `BUILDKIT_INLINE_CACHE=1` under BuildKit, so that a later build on a fresh machine can use the
/// image as cache), labels (with [`INPUTS_LABEL`] = `inputs`), `--cache-from`, and a BuildKit session.
fn build_options(
    plan: &BuildPlan,
    image: &PlannedImage,
    builder: Builder,
    inputs: String,
) -> bollard::query_parameters::BuildImageOptions {
    let mut labels: HashMap<String, String> = plan.labels.clone().into_iter().collect();
    labels.insert(INPUTS_LABEL.into(), inputs);
    let mut build_args: HashMap<String, String> = plan.build_args.clone().into_iter().collect();
    let version = match builder {
        Builder::Buildkit => {
            build_args.insert("BUILDKIT_INLINE_CACHE".into(), "1".into());
            BuilderVersion::BuilderBuildKit
        }
        Builder::Classic => BuilderVersion::BuilderV1,
    };
    let mut options = BuildImageOptionsBuilder::default()
        .dockerfile(&plan.packed.dockerfile_name)
        .t(&image.primary_ref())
        .target(&image.target)
        .platform(&plan.platform)
        .buildargs(&build_args)
        .labels(&labels)
        .rm(true)
        .forcerm(true)
        .version(version);
    if !plan.cache_from.is_empty() {
        options = options.cachefrom(&plan.cache_from.to_vec());
    }
    if builder == Builder::Buildkit {
        options = options.session(&format!("statuspage-{}", uuid::Uuid::new_v4()));
    }
    options.build()
}

/// Read a `/build` stream to its end: progress through `tracker`; the steps that ran, or the
/// failed step (with its output's tail), or the engine's error.
async fn follow(
    mut stream: impl futures_util::Stream<Item = Result<bollard::models::BuildInfo, DockerError>> + Unpin,
    mut tracker: StepTracker,
    target: &str,
) -> Result<Vec<StepRecord>, BuildError> {
    while let Some(item) = stream.next().await {
        match item {
            Ok(info) => {
                if let Some(detail) = info.error_detail {
                    return Err(tracker.failure(detail.message.unwrap_or_default()));
                }
                if let Some(text) = info.stream {
                    tracker.classic_output(&text);
                }
                if let Some(BuildInfoAux::BuildKit(status)) = info.aux {
                    tracker.buildkit_status(status);
                }
            }
            Err(DockerError::DockerStreamError { error }) => return Err(tracker.failure(error)),
            Err(source) if tracker.failed_vertex.is_some() => return Err(tracker.failure(source.to_string())),
            Err(source) => {
                return Err(BuildError::Engine { action: format!("building target {target}"), source });
            }
        }
    }
    if tracker.failed_vertex.is_some() {
        return Err(tracker.failure(String::new()));
    }
    tracker.finish_classic_step();
    Ok(tracker.steps)
}

fn credentials(auth: Option<&RegistryAuth>, registry: Option<&str>) -> Option<DockerCredentials> {
    auth.map(|a| DockerCredentials {
        username: Some(a.username.clone()),
        password: Some(a.password.clone()),
        serveraddress: registry.map(str::to_string),
        ..Default::default()
    })
}

/// The registry host of `name` (`host/repo`), if it names one.
pub fn registry_host(name: &str) -> Option<&str> {
    name.split_once('/').map(|(host, _)| host).filter(|h| h.contains(['.', ':']) || *h == "localhost")
}

impl Engine {
    /// Connect through `DOCKER_HOST` (or the default socket) and check the engine answers.
    pub async fn connect() -> Result<Self, BuildError> {
        use statuspage_common::engine::ConnectError;
        match statuspage_common::engine::connect().await {
            Ok((docker, host)) => Ok(Self { docker, host }),
            Err(ConnectError::BadHost { host, fix }) => {
                Err(BuildError::BadInput { flag: "DOCKER_HOST", value: host, fix })
            }
            Err(ConnectError::Unreachable { host, reason }) => {
                Err(BuildError::EngineUnreachable { host, reason })
            }
        }
    }

    /// The underlying client.
    pub fn docker(&self) -> &Docker {
        &self.docker
    }

    /// The engine address, for messages.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// True when the engine can run BuildKit builds (Linux engine, API 1.39 or later).
    pub async fn supports_buildkit(&self) -> bool {
        let Ok(version) = self.docker.version().await else { return false };
        let api = version.api_version.unwrap_or_default();
        let (major, minor) = api.split_once('.').unwrap_or(("0", "0"));
        let api_ok = (major.parse::<u32>().unwrap_or(0), minor.parse::<u32>().unwrap_or(0)) >= (1, 39);
        api_ok && version.os.as_deref() == Some("linux")
    }

    /// The registry digest of `reference` (`host/repo:tag`), `None` when the registry does not
    /// have it. Asks the registry's API through the engine; nothing is pulled.
    pub async fn registry_digest(
        &self,
        reference: String,
        auth: Option<&RegistryAuth>,
    ) -> Result<Option<String>, String> {
        let creds = credentials(auth, registry_host(&reference));
        statuspage_common::engine::registry_digest(&self.docker, &reference, creds)
            .await
            .map_err(|e| format!("asking the registry for {reference}: {e}"))
    }

    /// Build one target from the plan's packed context, tag it with every planned tag, and
    /// inspect it. An image already tagged and built from the same inputs is reused as it is.
    pub async fn build_target(
        &self,
        plan: &BuildPlan,
        image: &PlannedImage,
        builder: Builder,
        auth: Option<&RegistryAuth>,
        progress: &Progress,
    ) -> Result<TargetBuild, BuildError> {
        let inputs = inputs_digest(plan, image, &plan.packed.bytes, &plan.packed.dockerfile_name, builder);
        if let Some(reused) = self.reuse(image, &inputs, progress).await? {
            return Ok(reused);
        }
        let options = build_options(plan, image, builder, inputs);
        let creds: Option<HashMap<String, DockerCredentials>> = registry_host(&image.name)
            .and_then(|host| credentials(auth, Some(host)).map(|c| HashMap::from([(host.to_string(), c)])));
        let context = plan.packed.bytes.clone();
        let stream = self.docker.build_image(options, creds, Some(bollard::body_full(context)));
        let tracker = StepTracker::new(&image.target, builder, progress.clone());
        let steps = follow(stream, tracker, &image.target).await?;
        let inspect = self.docker.inspect_image(&image.primary_ref()).await.map_err(|source| {
            BuildError::Engine { action: format!("inspecting {}", image.primary_ref()), source }
        })?;
        self.tag_extra(image).await?;
        Ok(TargetBuild {
            target: image.target.clone(),
            image_id: inspect.id.unwrap_or_default(),
            size: inspect.size.unwrap_or_default().max(0) as u64,
            layers: inspect.root_fs.and_then(|r| r.layers).unwrap_or_default(),
            steps,
        })
    }

    /// The local image tagged `<name>:<commit tag>` when it was built from exactly `inputs`.
    async fn reuse(
        &self,
        image: &PlannedImage,
        inputs: &str,
        progress: &Progress,
    ) -> Result<Option<TargetBuild>, BuildError> {
        let Ok(existing) = self.docker.inspect_image(&image.primary_ref()).await else { return Ok(None) };
        let labels = existing.config.as_ref().and_then(|c| c.labels.as_ref());
        if labels.and_then(|l| l.get(INPUTS_LABEL)).map(String::as_str) != Some(inputs) {
            return Ok(None);
        }
        self.tag_extra(image).await?;
        let name = format!("reuse {}: built from the same inputs", image.primary_ref());
        progress(ProgressEvent::Step {
            target: image.target.clone(),
            name: name.clone(),
            cached: true,
            seconds: None,
        });
        Ok(Some(TargetBuild {
            target: image.target.clone(),
            image_id: existing.id.unwrap_or_default(),
            size: existing.size.unwrap_or_default().max(0) as u64,
            layers: existing.root_fs.and_then(|r| r.layers).unwrap_or_default(),
            steps: vec![StepRecord { name, cached: true }],
        }))
    }

    /// Push `image`'s commit tag with `auth`; the registry's digest, or why not.
    pub async fn push(&self, image: &PlannedImage, auth: Option<&RegistryAuth>) -> Result<String, String> {
        let creds = credentials(auth, registry_host(&image.name));
        statuspage_common::engine::push(&self.docker, &image.name, &image.tags[0], creds).await
    }

    async fn tag_extra(&self, image: &PlannedImage) -> Result<(), BuildError> {
        for tag in &image.tags[1..] {
            let options = TagImageOptionsBuilder::default().repo(&image.name).tag(tag).build();
            self.docker.tag_image(&image.primary_ref(), Some(options)).await.map_err(|source| {
                BuildError::Engine { action: format!("tagging {}:{tag}", image.name), source }
            })?;
        }
        Ok(())
    }
}

/// Follows a build's progress stream for either builder.
struct StepTracker {
    target: String,
    builder: Builder,
    progress: Progress,
    steps: Vec<StepRecord>,
    /// BuildKit: vertex digest to (name, started, reported).
    vertexes: HashMap<String, (String, Option<Instant>, bool)>,
    /// Output lines per vertex (BuildKit) or for the current step (classic, key "").
    tails: HashMap<String, VecDeque<String>>,
    failed_vertex: Option<(String, String)>,
    classic_step: Option<(String, bool, Instant)>,
}

impl StepTracker {
    fn new(target: &str, builder: Builder, progress: Progress) -> Self {
        Self {
            target: target.to_string(),
            builder,
            progress,
            steps: Vec::new(),
            vertexes: HashMap::new(),
            tails: HashMap::new(),
            failed_vertex: None,
            classic_step: None,
        }
    }

    fn remember(&mut self, key: &str, line: &str) {
        let tail = self.tails.entry(key.to_string()).or_default();
        if tail.len() == TAIL_LINES {
            tail.pop_front();
        }
        tail.push_back(line.to_string());
        (self.progress)(ProgressEvent::Output { target: self.target.clone(), line: line.to_string() });
    }

    fn step_done(&mut self, name: String, cached: bool, seconds: Option<f64>) {
        (self.progress)(ProgressEvent::Step {
            target: self.target.clone(),
            name: name.clone(),
            cached,
            seconds,
        });
        self.steps.push(StepRecord { name, cached });
    }

    fn buildkit_status(&mut self, status: bollard::moby::buildkit::v1::StatusResponse) {
        for vertex in status.vertexes {
            let entry =
                self.vertexes.entry(vertex.digest.clone()).or_insert((vertex.name.clone(), None, false));
            if vertex.started.is_some() && entry.1.is_none() {
                entry.1 = Some(Instant::now());
            }
            if !vertex.error.is_empty() {
                self.failed_vertex = Some((vertex.name.clone(), vertex.error.clone()));
            }
            if vertex.completed.is_some() && !entry.2 && vertex.error.is_empty() {
                entry.2 = true;
                let seconds = entry.1.map(|s| s.elapsed().as_secs_f64());
                self.step_done(vertex.name, vertex.cached, if vertex.cached { None } else { seconds });
            }
        }
        for log in status.logs {
            let text = String::from_utf8_lossy(&log.msg).into_owned();
            for line in text.lines().filter(|l| !l.trim().is_empty()) {
                self.remember(&log.vertex, line);
            }
        }
    }

    fn classic_output(&mut self, text: &str) {
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            if line.starts_with("Step ") && line.contains(" : ") {
                self.finish_classic_step();
                self.tails.remove("");
                self.classic_step = Some((line.to_string(), false, Instant::now()));
            } else if line.trim() == "---> Using cache" {
                if let Some(step) = self.classic_step.as_mut() {
                    step.1 = true;
                }
            } else if !line.trim_start().starts_with("--->") && !line.starts_with("Removing intermediate") {
                self.remember("", line);
            }
        }
    }

    fn finish_classic_step(&mut self) {
        if let Some((name, cached, started)) = self.classic_step.take() {
            self.step_done(name, cached, (!cached).then(|| started.elapsed().as_secs_f64()));
        }
    }

    fn failure(&mut self, message: String) -> BuildError {
        let (step, key, message) = match (self.builder, self.failed_vertex.take()) {
            (Builder::Buildkit, Some((name, error))) => {
                let key = self
                    .vertexes
                    .iter()
                    .find(|(_, v)| v.0 == name)
                    .map(|(k, _)| k.clone())
                    .unwrap_or_default();
                (name, key, if message.is_empty() { error } else { message })
            }
            _ => {
                let step = self
                    .classic_step
                    .as_ref()
                    .map(|s| s.0.clone())
                    .unwrap_or_else(|| "(before the first step)".into());
                (step, String::new(), message)
            }
        };
        let tail: Vec<String> = self.tails.get(&key).map(|t| t.iter().cloned().collect()).unwrap_or_default();
        BuildError::StepFailed {
            target: self.target.clone(),
            step,
            message: message.trim().to_string(),
            tail: format_tail(&tail),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs_digest_changes_with_every_input() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("Dockerfile"), "FROM scratch AS web\nARG A\n").unwrap();
        let config = crate::plan::BuildConfig {
            context: dir.path().into(),
            dockerfile: "Dockerfile".into(),
            source: None,
            export_cache: false,
            targets: vec!["web".parse().unwrap()],
            registry: None,
            commit: statuspage_common::commit::Commit { sha: "a".repeat(40), dirty: false },
            extra_tags: vec![],
            build_args: [("A".to_string(), "1".to_string())].into(),
            platform: "linux/amd64".into(),
            source_url: None,
            created: "2026-01-01T00:00:00Z".into(),
            version: None,
            cache_from: vec![],
            cache_from_commit: None,
            builder: crate::plan::BuilderChoice::Auto,
            skip_existing: false,
            registry_auth: None,
        };
        let plan = BuildPlan::new(&config).unwrap();
        let image = &plan.images[0];
        let base = inputs_digest(&plan, image, b"ctx", "Dockerfile", Builder::Buildkit);
        assert_eq!(base, inputs_digest(&plan, image, b"ctx", "Dockerfile", Builder::Buildkit));
        assert_ne!(base, inputs_digest(&plan, image, b"ctx2", "Dockerfile", Builder::Buildkit));
        assert_ne!(base, inputs_digest(&plan, image, b"ctx", "Dockerfile", Builder::Classic));
        let mut other = plan.clone();
        other.build_args.insert("A".into(), "2".into());
        assert_ne!(base, inputs_digest(&other, image, b"ctx", "Dockerfile", Builder::Buildkit));
        let mut other = plan.clone();
        other.labels.insert("org.opencontainers.image.created".into(), "later".into());
        assert_ne!(base, inputs_digest(&other, image, b"ctx", "Dockerfile", Builder::Buildkit));
    }

    #[test]
    fn registry_host_is_found_only_when_named() {
        assert_eq!(
            registry_host("123.dkr.ecr.us-east-1.amazonaws.com/web"),
            Some("123.dkr.ecr.us-east-1.amazonaws.com")
        );
        assert_eq!(registry_host("localhost/web"), Some("localhost"));
        assert_eq!(registry_host("team/web"), None);
        assert_eq!(registry_host("web"), None);
    }

    #[test]
    fn classic_output_tracks_steps_cache_and_tail() {
        let events = Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = events.clone();
        let progress: Progress = Arc::new(move |e| sink.lock().unwrap().push(e));
        let mut t = StepTracker::new("web", Builder::Classic, progress);
        t.classic_output("Step 1/2 : FROM scratch\n ---> Using cache\n");
        t.classic_output("Step 2/2 : RUN make\n");
        for i in 0..40 {
            t.classic_output(&format!("line {i}\n"));
        }
        let err = t.failure("exit code 2".into());
        let text = err.to_string();
        assert!(text.contains("target web failed at step `Step 2/2 : RUN make`: exit code 2"), "{text}");
        assert!(text.contains("line 39") && text.contains("line 10") && !text.contains("line 9\n"), "{text}");
        assert_eq!(t.steps, [StepRecord { name: "Step 1/2 : FROM scratch".into(), cached: true }]);
    }
}
