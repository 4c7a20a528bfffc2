//! Turn what the user asked for into a validated build plan, before anything touches the engine.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use statuspage_common::commit::Commit;
use statuspage_common::image_ref::{ImageRef, valid_tag};
use statuspage_common::release::{Release, ReleaseImage};

use crate::dockerfile::DockerfileInfo;
use crate::error::BuildError;

/// Which builder to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BuilderChoice {
    /// BuildKit when the engine offers it, the classic builder otherwise.
    Auto,
    /// Always BuildKit.
    Buildkit,
    /// Always the classic builder.
    Classic,
}

/// Registry credentials (user name and password or token).
#[derive(Clone, PartialEq, Eq)]
pub struct RegistryAuth {
    /// User name (`AWS` for ECR).
    pub username: String,
    /// Password or token. Never printed.
    pub password: String,
}

impl std::fmt::Debug for RegistryAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryAuth").field("username", &self.username).finish_non_exhaustive()
    }
}

/// One target to build and the repository it becomes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetSpec {
    /// Dockerfile stage name.
    pub target: String,
    /// Repository path, e.g. `statuspage-web`.
    pub repository: String,
}

impl std::str::FromStr for TargetSpec {
    type Err = BuildError;

    /// `web=statuspage-web`, or `web` for `statuspage-web`.
    fn from_str(value: &str) -> Result<Self, Self::Err> {
        let (target, repository) = match value.split_once('=') {
            Some((t, r)) => (t.trim().to_string(), r.trim().to_string()),
            None => (value.trim().to_string(), format!("statuspage-{}", value.trim())),
        };
        if target.is_empty() || repository.is_empty() {
            return Err(BuildError::BadInput {
                flag: "--target",
                value: value.into(),
                fix: "write TARGET=REPOSITORY, e.g. web=statuspage-web".into(),
            });
        }
        Ok(Self { target, repository })
    }
}

/// Everything a build needs, as given by the user.
#[derive(Debug, Clone)]
pub struct BuildConfig {
    /// The build context directory.
    pub context: PathBuf,
    /// The Dockerfile (relative paths are relative to the context).
    pub dockerfile: PathBuf,
    /// Targets in build order.
    pub targets: Vec<TargetSpec>,
    /// Registry host the repositories live in (e.g. the ECR registry); none for local names.
    pub registry: Option<String>,
    /// The commit being built.
    pub commit: Commit,
    /// Tags besides the commit tag.
    pub extra_tags: Vec<String>,
    /// `--build-arg` values.
    pub build_args: BTreeMap<String, String>,
    /// `linux/amd64` or `linux/arm64`.
    pub platform: String,
    /// `org.opencontainers.image.source`.
    pub source_url: Option<String>,
    /// `org.opencontainers.image.created` (RFC 3339).
    pub created: String,
    /// `org.opencontainers.image.version`; the tag when absent.
    pub version: Option<String>,
    /// Image references whose inline cache a BuildKit build may use.
    pub cache_from: Vec<String>,
    /// Which builder.
    pub builder: BuilderChoice,
    /// Skip the build when every image is already in the registry.
    pub skip_existing: bool,
    /// Credentials for the registry (skip check and cache-from).
    pub registry_auth: Option<RegistryAuth>,
}

/// One target, fully resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedImage {
    /// Dockerfile stage.
    pub target: String,
    /// `registry/repository`.
    pub name: String,
    /// Every tag, the commit tag first.
    pub tags: Vec<String>,
}

impl PlannedImage {
    /// `name:tag` for the commit tag.
    pub fn primary_ref(&self) -> String {
        format!("{}:{}", self.name, self.tags[0])
    }
}

/// A validated plan.
#[derive(Debug, Clone)]
pub struct BuildPlan {
    /// The context directory.
    pub context: PathBuf,
    /// The Dockerfile's absolute path.
    pub dockerfile: PathBuf,
    /// The images, in target order.
    pub images: Vec<PlannedImage>,
    /// Build args, validated against the Dockerfile's ARGs.
    pub build_args: BTreeMap<String, String>,
    /// Target platform, validated.
    pub platform: String,
    /// OCI labels applied to every image.
    pub labels: BTreeMap<String, String>,
    /// The commit.
    pub commit: Commit,
}

/// Platforms the images are built for.
pub const PLATFORMS: &[&str] = &["linux/amd64", "linux/arm64"];

impl BuildPlan {
    /// Validate `config` against the files on disk. Touches nothing else.
    pub fn new(config: &BuildConfig) -> Result<Self, BuildError> {
        if !config.context.is_dir() {
            return Err(BuildError::MissingContext(config.context.clone()));
        }
        let dockerfile = if config.dockerfile.is_absolute() {
            config.dockerfile.clone()
        } else {
            config.context.join(&config.dockerfile)
        };
        let text = std::fs::read_to_string(&dockerfile)
            .map_err(|_| BuildError::MissingDockerfile(dockerfile.clone()))?;
        let info = DockerfileInfo::parse(&text);
        if config.targets.is_empty() {
            return Err(BuildError::BadInput {
                flag: "--target",
                value: String::new(),
                fix: "name at least one target".into(),
            });
        }
        for spec in &config.targets {
            if !info.has_stage(&spec.target) {
                let stages: Vec<&str> = info.stages.iter().map(|s| s.name.as_str()).collect();
                return Err(BuildError::UnknownTarget {
                    target: spec.target.clone(),
                    dockerfile: dockerfile.clone(),
                    stages: if stages.is_empty() { "none named".into() } else { stages.join(", ") },
                });
            }
        }
        for name in config.build_args.keys() {
            if !info.accepts_arg(name) {
                return Err(BuildError::UnknownBuildArg {
                    name: name.clone(),
                    dockerfile: dockerfile.clone(),
                });
            }
        }
        if !PLATFORMS.contains(&config.platform.as_str()) {
            return Err(BuildError::BadInput {
                flag: "--platform",
                value: config.platform.clone(),
                fix: format!("use one of {}", PLATFORMS.join(", ")),
            });
        }
        let commit_tag = config.commit.tag();
        let mut tags = vec![commit_tag.clone()];
        for tag in &config.extra_tags {
            if !valid_tag(tag) {
                return Err(BuildError::BadInput {
                    flag: "--extra-tag",
                    value: tag.clone(),
                    fix: "use 1-128 of [A-Za-z0-9_.-], not starting with '.' or '-'".into(),
                });
            }
            if !tags.contains(tag) {
                tags.push(tag.clone());
            }
        }
        let mut images = Vec::new();
        for spec in &config.targets {
            let name = match &config.registry {
                Some(registry) => format!("{}/{}", registry.trim_end_matches('/'), spec.repository),
                None => spec.repository.clone(),
            };
            let parsed: ImageRef = format!("{name}:{commit_tag}").parse().map_err(
                |e: statuspage_common::image_ref::ImageRefError| BuildError::BadInput {
                    flag: "--target/--registry",
                    value: name.clone(),
                    fix: e.to_string(),
                },
            )?;
            images.push(PlannedImage {
                target: spec.target.clone(),
                name: parsed.name(),
                tags: tags.clone(),
            });
        }
        let mut labels = BTreeMap::new();
        labels.insert("org.opencontainers.image.revision".into(), config.commit.sha.clone());
        labels.insert("org.opencontainers.image.created".into(), config.created.clone());
        labels.insert(
            "org.opencontainers.image.version".into(),
            config.version.clone().unwrap_or_else(|| commit_tag.clone()),
        );
        if let Some(source) = &config.source_url {
            labels.insert("org.opencontainers.image.source".into(), source.clone());
        }
        Ok(Self {
            context: config.context.clone(),
            dockerfile,
            images,
            build_args: config.build_args.clone(),
            platform: config.platform.clone(),
            labels,
            commit: config.commit.clone(),
        })
    }

    /// The release document this plan will produce (before image IDs are known).
    pub fn release(&self) -> Release {
        let mut release = Release::new(self.commit.sha.clone());
        for image in &self.images {
            release.images.insert(
                image.target.clone(),
                ReleaseImage {
                    repository: image.name.clone(),
                    tag: image.tags[0].clone(),
                    extra_tags: image.tags[1..].to_vec(),
                    digest: None,
                    image_id: None,
                    size: None,
                    built: None,
                },
            );
        }
        release
    }

    /// The Dockerfile's path as sent to the engine: inside the context when it is there.
    pub fn dockerfile_in_context(&self) -> Option<PathBuf> {
        let context = self.context.canonicalize().ok()?;
        let file = self.dockerfile.canonicalize().ok()?;
        file.strip_prefix(&context).ok().map(Path::to_path_buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA: &str = "0123456789abcdef0123456789abcdef01234567";

    fn config(dir: &Path) -> BuildConfig {
        BuildConfig {
            context: dir.to_path_buf(),
            dockerfile: "Dockerfile".into(),
            targets: vec!["web".parse().unwrap(), "worker=team/worker".parse().unwrap()],
            registry: Some("reg.example:5000".into()),
            commit: Commit { sha: SHA.into(), dirty: false },
            extra_tags: vec!["main".into()],
            build_args: BTreeMap::from([("VERSION".into(), "1".into())]),
            platform: "linux/amd64".into(),
            source_url: Some("https://github.com/org/statuspage".into()),
            created: "2026-01-01T00:00:00Z".into(),
            version: None,
            cache_from: vec![],
            builder: BuilderChoice::Auto,
            skip_existing: true,
            registry_auth: None,
        }
    }

    fn context() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("Dockerfile"),
            "FROM scratch AS base\nARG VERSION\nFROM base AS web\nFROM base AS worker\n",
        )
        .unwrap();
        dir
    }

    #[test]
    fn plans_names_tags_and_labels() {
        let dir = context();
        let plan = BuildPlan::new(&config(dir.path())).unwrap();
        assert_eq!(plan.images[0].primary_ref(), format!("reg.example:5000/statuspage-web:{SHA}"));
        assert_eq!(plan.images[1].name, "reg.example:5000/team/worker");
        assert_eq!(plan.images[1].tags, [SHA, "main"]);
        assert_eq!(plan.labels["org.opencontainers.image.revision"], SHA);
        assert_eq!(plan.labels["org.opencontainers.image.version"], SHA);
        let release = plan.release();
        assert_eq!(release.images["worker"].extra_tags, ["main"]);
        assert_eq!(plan.dockerfile_in_context().unwrap(), Path::new("Dockerfile"));
    }

    #[test]
    fn each_bad_input_names_what_to_fix() {
        let dir = context();
        let mut c = config(dir.path());
        c.targets.push("migrate".parse().unwrap());
        let err = BuildPlan::new(&c).unwrap_err().to_string();
        assert!(err.contains("\"migrate\"") && err.contains("base, web, worker"), "{err}");

        let mut c = config(dir.path());
        c.build_args.insert("VERSON".into(), "typo".into());
        let err = BuildPlan::new(&c).unwrap_err().to_string();
        assert!(err.contains("\"VERSON\"") && err.contains("ARG VERSON"), "{err}");

        let mut c = config(dir.path());
        c.dockerfile = "nope/Dockerfile".into();
        assert!(matches!(BuildPlan::new(&c), Err(BuildError::MissingDockerfile(_))));

        let mut c = config(dir.path());
        c.context = dir.path().join("missing");
        assert!(matches!(BuildPlan::new(&c), Err(BuildError::MissingContext(_))));

        let mut c = config(dir.path());
        c.platform = "windows/amd64".into();
        assert!(BuildPlan::new(&c).unwrap_err().to_string().contains("linux/arm64"));

        let mut c = config(dir.path());
        c.extra_tags = vec!["-bad".into()];
        assert!(BuildPlan::new(&c).unwrap_err().to_string().contains("--extra-tag"));

        let mut c = config(dir.path());
        c.targets = vec!["web=Bad_Repo".parse().unwrap()];
        assert!(BuildPlan::new(&c).unwrap_err().to_string().contains("repository"));
    }

    #[test]
    fn dirty_commits_tag_dirty() {
        let dir = context();
        let mut c = config(dir.path());
        c.commit.dirty = true;
        let plan = BuildPlan::new(&c).unwrap();
        assert_eq!(plan.images[0].tags[0], format!("{SHA}-dirty"));
    }
}
