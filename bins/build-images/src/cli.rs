//! The command line: flags (each with an environment fallback) turned into a [`BuildConfig`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use clap::Parser;
use statuspage_common::ExitCode;
use statuspage_common::actions::{self, LogStyle, OutputFile};
use statuspage_common::{args, commit};

use crate::plan::{BuildConfig, BuildPlan, BuilderChoice, RegistryAuth, TargetSpec};
use crate::{BuildError, report};

/// Build the web, worker and scheduler images from one multi-stage Dockerfile.
///
/// Prints the release document (JSON) on stdout and progress on stderr. Exit codes: 0 built or
/// skipped, 1 a build step failed, 2 bad input, 3 the engine failed.
#[derive(Debug, Parser)]
#[command(name = "statuspage-build", version)]
pub struct Args {
    /// Build context directory.
    #[arg(long, env = "STATUSPAGE_CONTEXT", default_value = "images")]
    pub context: PathBuf,
    /// The application's source tree (e.g. a Status-Page checkout), sent as `source/` in the
    /// context for the Dockerfile's `statuspage-source` stage. Its git state counts for --allow-dirty.
    #[arg(long, env = "STATUSPAGE_SOURCE")]
    pub source: Option<PathBuf>,
    /// Dockerfile path, relative to the context unless absolute.
    #[arg(long, env = "STATUSPAGE_DOCKERFILE", default_value = "Dockerfile")]
    pub dockerfile: PathBuf,
    /// Targets as TARGET[=REPOSITORY]; REPOSITORY defaults to statuspage-TARGET.
    #[arg(
        long = "target",
        env = "STATUSPAGE_TARGETS",
        value_delimiter = ',',
        default_value = "web,worker,scheduler"
    )]
    pub targets: Vec<TargetSpec>,
    /// Registry host the repositories live in, e.g. 123456789012.dkr.ecr.us-east-1.amazonaws.com.
    #[arg(long, env = "STATUSPAGE_REGISTRY")]
    pub registry: Option<String>,
    /// Commit SHA to tag with (default: GITHUB_SHA, then `git rev-parse HEAD` in the context).
    #[arg(long, env = "STATUSPAGE_SHA")]
    pub sha: Option<String>,
    /// Allow uncommitted changes or untracked files (in the context and the source); the tag is
    /// then <sha>-dirty-<12 hex of the build inputs' digest>, never shared with another build.
    #[arg(long, env = "STATUSPAGE_ALLOW_DIRTY")]
    pub allow_dirty: bool,
    /// Further tags for every image (repeatable or comma-separated).
    #[arg(long = "extra-tag", env = "STATUSPAGE_EXTRA_TAGS", value_delimiter = ',')]
    pub extra_tags: Vec<String>,
    /// Build args as KEY=VALUE; each must be declared by an ARG in the Dockerfile.
    #[arg(long = "build-arg", env = "STATUSPAGE_BUILD_ARGS", value_delimiter = ',')]
    pub build_args: Vec<String>,
    /// Target platform: linux/amd64 or linux/arm64.
    #[arg(long, env = "STATUSPAGE_PLATFORM", default_value = "linux/amd64")]
    pub platform: String,
    /// Image references whose inline cache BuildKit may use.
    #[arg(long = "cache-from", env = "STATUSPAGE_CACHE_FROM", value_delimiter = ',')]
    pub cache_from: Vec<String>,
    /// Use the images and cache images of this earlier commit (e.g. github.event.before) as cache.
    #[arg(long, env = "STATUSPAGE_CACHE_FROM_COMMIT")]
    pub cache_from_commit: Option<String>,
    /// Which builder: auto picks BuildKit when the engine offers it.
    #[arg(long, env = "STATUSPAGE_BUILDER", value_enum, default_value = "auto")]
    pub builder: BuilderChoice,
    /// Do not push cache images of the stages the targets only COPY --from (pushed by default
    /// when --registry is given, as <first repository>:cache-<stage>-<tag>).
    #[arg(long, env = "STATUSPAGE_NO_CACHE_EXPORT")]
    pub no_cache_export: bool,
    /// Build even when an image is already in the registry.
    #[arg(long, env = "STATUSPAGE_NO_SKIP_EXISTING")]
    pub no_skip_existing: bool,
    /// Registry user name (default: from the Docker config's auths).
    #[arg(long, env = "STATUSPAGE_REGISTRY_USERNAME")]
    pub registry_username: Option<String>,
    /// Registry password or token (default: from the Docker config's auths).
    #[arg(long, env = "STATUSPAGE_REGISTRY_PASSWORD", hide_env_values = true)]
    pub registry_password: Option<String>,
    /// org.opencontainers.image.source (default: the GitHub repository URL in Actions).
    #[arg(long, env = "STATUSPAGE_SOURCE_URL")]
    pub source_url: Option<String>,
    /// org.opencontainers.image.version (default: the tag).
    #[arg(long = "image-version", env = "STATUSPAGE_IMAGE_VERSION")]
    pub image_version: Option<String>,
    /// Also write the release document to this file.
    #[arg(long, env = "STATUSPAGE_RELEASE_FILE")]
    pub release_file: Option<PathBuf>,
    /// Print the plan and the release document it would produce; touch nothing.
    #[arg(long, env = "STATUSPAGE_DRY_RUN")]
    pub dry_run: bool,
}

fn parse_build_args(values: &[String]) -> Result<BTreeMap<String, String>, BuildError> {
    statuspage_common::args::pairs(values, true).map_err(|value| {
        let fix = if value.contains('=') {
            "the name before '=' is empty: write KEY=VALUE, e.g. BASE_IMAGE=python:3.11-slim"
        } else {
            "write KEY=VALUE"
        };
        BuildError::BadInput { flag: "--build-arg", value, fix: fix.into() }
    })
}

/// True for `host` or `host:port` (what `--registry` takes): no scheme, no path, DNS characters.
fn registry_host_only(value: &str) -> bool {
    let (host, port) = value.split_once(':').unwrap_or((value, "80"));
    !host.is_empty()
        && host.chars().all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
        && !host.starts_with(['.', '-'])
        && port.parse::<u16>().is_ok()
}

/// Credentials for `registry` from `$DOCKER_CONFIG/config.json` (or `~/.docker/config.json`).
pub fn docker_config_auth(registry: &str) -> Option<RegistryAuth> {
    let dir = std::env::var_os("DOCKER_CONFIG")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".docker")))?;
    let file = dir.join("config.json");
    let text = std::fs::read_to_string(&file).ok()?;
    let config: serde_json::Value = serde_json::from_str(&text).ok()?;
    let auths = config.get("auths")?.as_object()?;
    let entry =
        auths.iter().find(|(key, _)| key.trim_start_matches("https://").trim_end_matches('/') == registry)?.1;
    let decoded = base64::engine::general_purpose::STANDARD.decode(entry.get("auth")?.as_str()?).ok()?;
    let (username, password) =
        String::from_utf8(decoded).ok()?.split_once(':').map(|(u, p)| (u.to_string(), p.to_string()))?;
    let origin = format!("the Docker config {} (auths entry {registry})", file.display());
    Some(RegistryAuth { username, password, origin })
}

/// When the commit was made (RFC 3339), for a reproducible `created` label.
fn created(context: &Path, sha: &str) -> String {
    if let Some(epoch) = std::env::var("SOURCE_DATE_EPOCH").ok().and_then(|v| v.parse::<i64>().ok())
        && let Some(time) = chrono::DateTime::from_timestamp(epoch, 0)
    {
        return time.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    }
    std::process::Command::new("git")
        .arg("-C")
        .arg(context)
        .args(["show", "-s", "--format=%cI", sha])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
}

impl Args {
    /// Resolve the commit, credentials and labels into a [`BuildConfig`].
    pub fn into_config(self) -> Result<BuildConfig, BuildError> {
        let github_sha = std::env::var("GITHUB_SHA").ok();
        // Before the commit is read from them (a missing folder would otherwise be a git error).
        crate::plan::check_folders(&self.context, self.source.as_deref())?;
        // The context may be a released action's files (versioned by the action's ref); the
        // application's source must be named by a commit, or count as dirty.
        let mut trees = vec![commit::Tree { path: &self.context, must_be_versioned: false }];
        trees.extend(self.source.as_deref().map(|path| commit::Tree { path, must_be_versioned: true }));
        let commit = commit::resolve(self.sha.as_deref(), github_sha.as_deref(), &trees, self.allow_dirty)?;
        let registry = checked_registry(self.registry)?;
        check_cache_from(&self.cache_from)?;
        let registry_auth =
            registry_auth(self.registry_username, self.registry_password, registry.as_deref())?;
        let cache_from_commit =
            match self.cache_from_commit.filter(|s| !s.is_empty() && !s.chars().all(|c| c == '0')) {
                Some(before) => Some(commit::validate_sha("--cache-from-commit", &before)?),
                None => None,
            };
        let source_url = self.source_url.or_else(|| {
            let server = std::env::var("GITHUB_SERVER_URL").ok()?;
            let repo = std::env::var("GITHUB_REPOSITORY").ok()?;
            Some(format!("{server}/{repo}"))
        });
        Ok(BuildConfig {
            created: created(&self.context, &commit.sha),
            context: self.context,
            dockerfile: self.dockerfile,
            source: self.source,
            export_cache: !self.no_cache_export,
            targets: self.targets,
            registry,
            commit,
            extra_tags: args::items(&self.extra_tags).map(String::from).collect(),
            build_args: parse_build_args(&self.build_args)?,
            platform: self.platform,
            source_url,
            version: self.image_version,
            cache_from: args::items(&self.cache_from).map(String::from).collect(),
            cache_from_commit,
            builder: self.builder,
            skip_existing: !self.no_skip_existing,
            registry_auth,
        })
    }
}

/// `--registry` as a host (`host` or `host:port`, no scheme, no path, trailing `/` dropped);
/// empty is none. Error: [`BuildError::BadInput`] naming the value and the form expected.
fn checked_registry(registry: Option<String>) -> Result<Option<String>, BuildError> {
    let registry = registry.filter(|r| !r.is_empty()).map(|r| r.trim_end_matches('/').to_string());
    match registry {
        Some(registry) if !registry_host_only(&registry) => Err(BuildError::BadInput {
            flag: "--registry",
            value: registry,
            fix: "give the registry host only (host or host:port), e.g. 123456789012.dkr.ecr.us-east-1.amazonaws.com, without https:// or a path".into(),
        }),
        other => Ok(other),
    }
}

/// Every `--cache-from` item must be an image reference (`repository[:tag][@digest]`).
fn check_cache_from(cache_from: &[String]) -> Result<(), BuildError> {
    for reference in args::items(cache_from) {
        if let Err(e) = reference.parse::<statuspage_common::image_ref::ImageRef>() {
            return Err(BuildError::BadInput {
                flag: "--cache-from",
                value: reference.to_string(),
                fix: e.to_string(),
            });
        }
    }
    Ok(())
}

/// The registry credentials: both flags, or neither (then the Docker config's entry for the
/// registry, if any). The password is masked in Actions logs as soon as it is known.
fn registry_auth(
    username: Option<String>,
    password: Option<String>,
    registry: Option<&str>,
) -> Result<Option<RegistryAuth>, BuildError> {
    let auth = match (username, password) {
        (Some(username), Some(password)) => Some(RegistryAuth {
            username,
            password,
            origin: "--registry-username/--registry-password".into(),
        }),
        (None, None) => registry.and_then(docker_config_auth),
        _ => {
            return Err(BuildError::BadInput {
                flag: "--registry-username/--registry-password",
                value: "only one given".into(),
                fix: "give both, or neither to use the Docker config".into(),
            });
        }
    };
    if let Some(auth) = &auth {
        actions::add_mask(&auth.password);
    }
    Ok(auth)
}

/// Run the command: everything `main` does after parsing.
pub async fn main_with(args: Args) -> ExitCode {
    let style = LogStyle::detect();
    let dry_run = args.dry_run;
    let release_file = args.release_file.clone();
    let result = async {
        if let Some(path) = &release_file
            && let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty() && !d.is_dir())
        {
            return Err(BuildError::BadInput {
                flag: "--release-file",
                value: path.display().to_string(),
                fix: format!("the folder {} does not exist: create it or choose another path", dir.display()),
            });
        }
        let config = args.into_config()?;
        if dry_run {
            let plan = BuildPlan::new(&config)?;
            eprintln!(
                "dry run: would build {} target(s) from {}",
                plan.images.len(),
                plan.dockerfile.display()
            );
            for image in &plan.images {
                eprintln!("  {} -> {} (tags: {})", image.target, image.name, image.tags.join(", "));
            }
            for (key, value) in &plan.labels {
                eprintln!("  label {key}={value}");
            }
            print!("{}", plan.release().to_json());
            return Ok(());
        }
        let outcome = crate::run(&config, report::stderr_progress(style)).await?;
        for note in &outcome.notes {
            eprintln!("{note}");
        }
        let json = outcome.release.to_json();
        print!("{json}");
        if let Some(path) = &release_file {
            std::fs::write(path, &json)
                .map_err(|source| BuildError::ReleaseFile { path: path.clone(), source })?;
        }
        if let Some(out) = OutputFile::from_env() {
            report::write_outputs(&outcome, &out)?;
        }
        actions::append_step_summary(&report::summary_markdown(&outcome))?;
        Ok::<(), BuildError>(())
    }
    .await;
    match result {
        Ok(()) => ExitCode::Success,
        Err(err) => statuspage_common::exit::report("statuspage-build", &err),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_args_need_an_equals_sign() {
        assert_eq!(parse_build_args(&["A=1".into(), "B=x=y".into()]).unwrap()["B"], "x=y");
        // STATUSPAGE_BUILD_ARGS="A=1, B=2" as a workflow writes it: the space is not in the name.
        let spaced = parse_build_args(&["A=1".into(), " B=2".into()]).unwrap();
        assert_eq!(spaced.keys().collect::<Vec<_>>(), ["A", "B"]);
        assert!(parse_build_args(&["A".into()]).unwrap_err().to_string().contains("KEY=VALUE"));
    }

    #[test]
    fn help_names_every_env_fallback() {
        use clap::CommandFactory;
        let help = Args::command().render_long_help().to_string();
        for var in ["STATUSPAGE_CONTEXT", "STATUSPAGE_TARGETS", "STATUSPAGE_REGISTRY", "STATUSPAGE_DRY_RUN"] {
            assert!(help.contains(var), "{var} missing from --help");
        }
        assert!(!help.contains("hide_env_values"));
    }
}
