//! Turn what the user asked for into a validated build plan, before anything touches the engine.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use statuspage_common::commit::Commit;
use statuspage_common::image_ref::{ImageRef, valid_tag};
use statuspage_common::release::{Release, ReleaseImage};

use crate::context::{self, Packed};
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
    /// Where they came from, for messages: `--registry-username/--registry-password`, or the
    /// Docker config file.
    pub origin: String,
}

impl std::fmt::Debug for RegistryAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryAuth")
            .field("username", &self.username)
            .field("origin", &self.origin)
            .finish_non_exhaustive()
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
    /// A separate application source tree, sent as `source/` inside the context.
    pub source: Option<PathBuf>,
    /// Push a cache image of every stage the targets only `COPY --from` (needs a registry).
    pub export_cache: bool,
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
    /// An earlier commit (validated SHA) whose images and cache images the build may use.
    pub cache_from_commit: Option<String>,
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
    /// The packed context (with the source tree, if any) exactly as the engine will get it.
    pub packed: Packed,
    /// Cache images to build and push beside the targets: one per stage the targets only
    /// `COPY --from` (with the stages it is built `FROM`), named
    /// `<first target's repository>:cache-<stage>-<commit tag>`.
    pub cache_images: Vec<PlannedImage>,
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
    /// Images whose inline cache BuildKit may use: `--cache-from`, then the previous commit's
    /// target and cache images.
    pub cache_from: Vec<String>,
}

/// The stage of images/Dockerfile that takes the application's source tree (`COPY source/ /`).
pub const SOURCE_STAGE: &str = "statuspage-source";

/// Platforms the images are built for.
pub const PLATFORMS: &[&str] = &["linux/amd64", "linux/arm64"];

impl BuildPlan {
    /// Validate `config` against the files on disk and pack the context. Touches nothing else.
    ///
    /// Errors (all exit 2): missing context, Dockerfile or source folder; a target that is no
    /// stage, named twice, or two targets sharing a repository; an undeclared build arg; a bad
    /// platform or tag; an unreadable context.
    pub fn new(config: &BuildConfig) -> Result<Self, BuildError> {
        check_folders(&config.context, config.source.as_deref())?;
        let dockerfile = if config.dockerfile.is_absolute() {
            config.dockerfile.clone()
        } else {
            config.context.join(&config.dockerfile)
        };
        let text = std::fs::read_to_string(&dockerfile)
            .map_err(|_| BuildError::MissingDockerfile(dockerfile.clone()))?;
        let info = DockerfileInfo::parse(&text);
        validate_against_dockerfile(config, &info, &dockerfile)?;
        check_source(config, &info)?;
        let packed = context::pack(
            &config.context,
            &dockerfile,
            dockerfile_in_context(&config.context, &dockerfile),
            config.source.as_deref(),
        )?;
        // A dirty tree is named by its exact inputs: 12 hex characters of the packed context.
        let commit_tag = config.commit.tag(&packed.digest[7..19]);
        let tags = tags(&commit_tag, &config.extra_tags)?;
        let images = config
            .targets
            .iter()
            .map(|spec| planned_image(config, &spec.target, &spec.repository, tags.clone()))
            .collect::<Result<Vec<_>, _>>()?;
        let targets: Vec<&str> = config.targets.iter().map(|t| t.target.as_str()).collect();
        let (cache_images, cache_from) =
            cache_plan(config, &info.copied_only_stages(&targets), &images, &commit_tag)?;
        Ok(Self {
            context: config.context.clone(),
            packed,
            cache_images,
            dockerfile,
            images,
            build_args: config.build_args.clone(),
            platform: config.platform.clone(),
            labels: labels(config, &commit_tag),
            commit: config.commit.clone(),
            cache_from,
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
}

/// The Dockerfile's path inside the context, when it is there (else it is sent separately).
fn dockerfile_in_context(context: &Path, dockerfile: &Path) -> Option<PathBuf> {
    let context = context.canonicalize().ok()?;
    let file = dockerfile.canonicalize().ok()?;
    file.strip_prefix(&context).ok().map(Path::to_path_buf)
}

fn validate_against_dockerfile(
    config: &BuildConfig,
    info: &DockerfileInfo,
    dockerfile: &Path,
) -> Result<(), BuildError> {
    if let Some((line, word)) = info.unknown.first() {
        return Err(BuildError::BadInput {
            flag: "--dockerfile",
            value: format!("{}:{line}: {word}", dockerfile.display()),
            fix: format!("{word:?} is not a Dockerfile instruction (FROM, RUN, COPY, …): fix the line"),
        });
    }
    if config.targets.is_empty() {
        return Err(BuildError::BadInput {
            flag: "--target",
            value: String::new(),
            fix: "name at least one target".into(),
        });
    }
    for (index, spec) in config.targets.iter().enumerate() {
        if !info.has_stage(&spec.target) {
            let stages: Vec<&str> = info.stages.iter().map(|s| s.name.as_str()).collect();
            return Err(BuildError::UnknownTarget {
                target: spec.target.clone(),
                dockerfile: dockerfile.to_path_buf(),
                stages: if stages.is_empty() { "none named".into() } else { stages.join(", ") },
            });
        }
        if let Some(earlier) = config.targets[..index]
            .iter()
            .find(|e| e.target == spec.target || e.repository == spec.repository)
        {
            return Err(BuildError::BadInput {
                flag: "--target",
                value: format!(
                    "{}={},{}={}",
                    earlier.target, earlier.repository, spec.target, spec.repository
                ),
                fix: "name each target once, each with a repository of its own".into(),
            });
        }
    }
    if let Some(name) = config.build_args.keys().find(|name| !info.accepts_arg(name)) {
        return Err(BuildError::UnknownBuildArg { name: name.clone(), dockerfile: dockerfile.to_path_buf() });
    }
    if !PLATFORMS.contains(&config.platform.as_str()) {
        return Err(BuildError::BadInput {
            flag: "--platform",
            value: config.platform.clone(),
            fix: format!("use one of {}", PLATFORMS.join(", ")),
        });
    }
    Ok(())
}

/// The commit tag first, then each valid extra tag once.
fn tags(commit_tag: &str, extra: &[String]) -> Result<Vec<String>, BuildError> {
    let mut tags = vec![commit_tag.to_string()];
    for tag in extra {
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
    Ok(tags)
}

fn planned_image(
    config: &BuildConfig,
    target: &str,
    repository: &str,
    tags: Vec<String>,
) -> Result<PlannedImage, BuildError> {
    let name = match &config.registry {
        Some(registry) => format!("{}/{repository}", registry.trim_end_matches('/')),
        None => repository.to_string(),
    };
    let parsed: ImageRef =
        format!("{name}:{}", tags[0]).parse().map_err(|e: statuspage_common::image_ref::ImageRefError| {
            BuildError::BadInput { flag: "--target/--registry", value: name.clone(), fix: e.to_string() }
        })?;
    Ok(PlannedImage { target: target.to_string(), name: parsed.name(), tags })
}

fn labels(config: &BuildConfig, commit_tag: &str) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    labels.insert("org.opencontainers.image.revision".into(), config.commit.sha.clone());
    labels.insert("org.opencontainers.image.created".into(), config.created.clone());
    labels.insert(
        "org.opencontainers.image.version".into(),
        config.version.clone().unwrap_or_else(|| commit_tag.to_string()),
    );
    if let Some(source) = &config.source_url {
        labels.insert("org.opencontainers.image.source".into(), source.clone());
    }
    labels
}

/// The build context and `--source` (when given) must be folders. Errors (exit 2):
/// [`BuildError::MissingContext`], or [`BuildError::BadInput`] naming `--source` and what to pass.
pub fn check_folders(context: &std::path::Path, source: Option<&std::path::Path>) -> Result<(), BuildError> {
    if !context.is_dir() {
        return Err(BuildError::MissingContext(context.to_path_buf()));
    }
    match source.filter(|s| !s.is_dir()) {
        Some(source) => Err(BuildError::BadInput {
            flag: "--source",
            value: source.display().to_string(),
            fix: "pass the folder of the application's source tree (e.g. a Status-Page checkout)".into(),
        }),
        None => Ok(()),
    }
}

/// Without `--source`, a Dockerfile with a source stage needs `source/` in the context. Error:
/// [`BuildError::BadInput`] naming what is missing and what to pass.
fn check_source(config: &BuildConfig, info: &DockerfileInfo) -> Result<(), BuildError> {
    if config.source.is_none() && info.has_stage(SOURCE_STAGE) && !config.context.join("source").is_dir() {
        return Err(BuildError::BadInput {
            flag: "--source",
            value: "(not given)".into(),
            fix: format!(
                "the Dockerfile's {SOURCE_STAGE} stage copies source/ from the context, and {} has none: \
                 pass --source DIR (e.g. a Status-Page checkout)",
                config.context.join("source").display()
            ),
        });
    }
    Ok(())
}

/// The cache images to export (one per stage the targets only `COPY --from`, tagged
/// `cache-<stage>-<commit tag>` in the first target's repository; only with a registry and the
/// export on) and the `cache-from` references: `--cache-from`, plus, with `--cache-from-commit`,
/// that commit's images and cache images.
fn cache_plan(
    config: &BuildConfig,
    copied_only: &[String],
    images: &[PlannedImage],
    commit_tag: &str,
) -> Result<(Vec<PlannedImage>, Vec<String>), BuildError> {
    let cache_image = |stage: &String, tag: &str| {
        planned_image(config, stage, &config.targets[0].repository, vec![format!("cache-{stage}-{tag}")])
    };
    let cache_images = match (&config.registry, config.export_cache) {
        (Some(_), true) => {
            copied_only.iter().map(|stage| cache_image(stage, commit_tag)).collect::<Result<_, _>>()?
        }
        _ => Vec::new(),
    };
    let mut cache_from = config.cache_from.clone();
    if let Some(before) = &config.cache_from_commit {
        cache_from.extend(images.iter().map(|image| format!("{}:{before}", image.name)));
        for stage in copied_only.iter().filter(|_| config.registry.is_some()) {
            cache_from.push(cache_image(stage, before)?.primary_ref());
        }
    }
    Ok((cache_images, cache_from))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA: &str = "0123456789abcdef0123456789abcdef01234567";

    fn config(dir: &Path) -> BuildConfig {
        BuildConfig {
            context: dir.to_path_buf(),
            dockerfile: "Dockerfile".into(),
            source: None,
            export_cache: true,
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
            cache_from_commit: Some("f".repeat(40)),
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
        assert_eq!(plan.packed.dockerfile_name, "Dockerfile");
        assert!(plan.cache_images.is_empty(), "no stage is only copied from");
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
        assert_eq!(plan.images[0].tags[0], format!("{SHA}-dirty-{}", &plan.packed.digest[7..19]));
        std::fs::write(dir.path().join("app.py"), "changed").unwrap();
        let changed = BuildPlan::new(&c).unwrap();
        assert_ne!(plan.images[0].tags[0], changed.images[0].tags[0], "each dirty state has its own tag");
    }

    #[test]
    fn duplicate_targets_or_repositories_are_refused() {
        let dir = context();
        for targets in [["web=a-web", "web=b-web"], ["web=same", "worker=same"]] {
            let mut c = config(dir.path());
            c.targets = targets.iter().map(|t| t.parse().unwrap()).collect();
            let err = BuildPlan::new(&c).unwrap_err().to_string();
            assert!(err.contains("--target") && err.contains("name each target once"), "{err}");
        }
    }

    #[test]
    fn stages_only_copied_from_get_cache_images_in_the_first_repository() {
        let dir = context();
        std::fs::write(
            dir.path().join("Dockerfile"),
            "FROM scratch AS base\nARG VERSION\nFROM base AS builder\nRUN make\n\
             FROM base AS web\nCOPY --from=builder /a /a\nFROM base AS worker\n",
        )
        .unwrap();
        let plan = BuildPlan::new(&config(dir.path())).unwrap();
        let refs: Vec<String> = plan.cache_images.iter().map(PlannedImage::primary_ref).collect();
        assert_eq!(refs, [format!("reg.example:5000/statuspage-web:cache-builder-{SHA}")]);
        let before = "f".repeat(40);
        assert_eq!(
            plan.cache_from,
            [
                format!("reg.example:5000/statuspage-web:{before}"),
                format!("reg.example:5000/team/worker:{before}"),
                format!("reg.example:5000/statuspage-web:cache-builder-{before}"),
            ]
        );
        let mut c = config(dir.path());
        c.export_cache = false;
        assert!(BuildPlan::new(&c).unwrap().cache_images.is_empty());
    }

    #[test]
    fn a_source_stage_without_a_source_tree_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("Dockerfile"),
            "FROM scratch AS statuspage-source\nCOPY source/ /\nFROM scratch AS web\n",
        )
        .unwrap();
        let mut c = config(dir.path());
        c.targets = vec!["web".parse().unwrap()];
        c.build_args.clear();
        let err = BuildPlan::new(&c).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("--source") && err.contains("statuspage-source stage"), "{err}");
        std::fs::create_dir(dir.path().join("source")).unwrap();
        assert!(BuildPlan::new(&c).is_ok(), "a context with its own source/ needs no --source");
    }

    #[test]
    fn a_missing_source_folder_is_named() {
        let dir = context();
        let mut c = config(dir.path());
        c.source = Some(dir.path().join("no-such-checkout"));
        let err = BuildPlan::new(&c).unwrap_err().to_string();
        assert!(err.contains("--source") && err.contains("no-such-checkout"), "{err}");
    }
}
