//! The command line: `start` before the rollout, `finish` after it; flags with environment
//! fallbacks (the runner's standard `GITHUB_*` variables for where GitHub is).

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args as ClapArgs, Parser, Subcommand};
use statuspage_common::actions::{self, OutputFile};
use statuspage_common::release::Release;

use crate::github::{Api, DryRunTransport, Endpoints, OctocrabTransport, RetryPolicy, Transport};
use crate::writeback::{Mode, WriteBack};
use crate::{EXIT_NOT_RECORDED, FinishConfig, RecordError, StartConfig, Verdict};

const BINARY: &str = "statuspage-record";

/// Record a deploy in GitHub: a Deployment and its statuses, the overlay committed back, a summary.
///
/// `start` before the rollout (Deployment + in_progress; prints the deployment id), `finish`
/// after it (success/failure/error, the write-back, the step summary). Exit codes: 0 recorded,
/// 2 bad input or (start) a missing permission or wrong repository, 6 GitHub could not be
/// written (the deploy itself is unaffected).
#[derive(Debug, Parser)]
#[command(name = "statuspage-record", version)]
pub struct Args {
    /// What to record.
    #[command(subcommand)]
    pub command: Command,
}

/// The two moments of a deploy.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Before the rollout: create the Deployment and set it in_progress.
    Start(StartArgs),
    /// After the rollout: the final status, the write-back, the step summary.
    Finish(Box<FinishArgs>),
}

/// Where GitHub is and how to reach it.
#[derive(Debug, ClapArgs)]
#[command(next_help_heading = "GitHub")]
pub struct GitHubArgs {
    /// Token with the permissions the README lists; masked in Actions, never printed.
    #[arg(long, env = "GITHUB_TOKEN", hide_env_values = true, default_value = "")]
    pub token: String,
    /// REST API base (GitHub Enterprise Server: https://HOST/api/v3).
    #[arg(long, env = "GITHUB_API_URL", default_value = "https://api.github.com")]
    pub api_url: String,
    /// Web base, for links.
    #[arg(long, env = "GITHUB_SERVER_URL", default_value = "https://github.com")]
    pub server_url: String,
    /// owner/name.
    #[arg(long, env = "GITHUB_REPOSITORY", default_value = "")]
    pub repository: String,
    /// This workflow run, for the deployment's log_url.
    #[arg(long, env = "GITHUB_RUN_ID")]
    pub run_id: Option<String>,
    /// The longest total wait for rate limits, e.g. 90s, 5m.
    #[arg(long, env = "STATUSPAGE_RATE_LIMIT_WAIT", default_value = "5m")]
    pub rate_limit_wait: String,
    /// Print the requests it would send; send nothing.
    #[arg(long, env = "STATUSPAGE_DRY_RUN")]
    pub dry_run: bool,
}

/// `start`.
#[derive(Debug, ClapArgs)]
pub struct StartArgs {
    /// The release document (JSON) from statuspage-push, or - for stdin.
    #[arg(long, env = "STATUSPAGE_RELEASE", default_value = "-")]
    pub release: PathBuf,
    /// The environment's name, e.g. production.
    #[arg(long, env = "STATUSPAGE_ENVIRONMENT", value_parser = environment_name)]
    pub environment: String,
    /// production_environment: true or false (GitHub's default: true for "production").
    #[arg(long, env = "STATUSPAGE_PRODUCTION_ENVIRONMENT")]
    pub production_environment: Option<bool>,
    /// transient_environment: the environment goes away (review apps).
    #[arg(long, env = "STATUSPAGE_TRANSIENT_ENVIRONMENT")]
    pub transient_environment: bool,
    /// GitHub.
    #[command(flatten)]
    pub github: GitHubArgs,
}

/// `finish`.
#[derive(Debug, ClapArgs)]
pub struct FinishArgs {
    /// The release document (JSON) from statuspage-push, or - for stdin.
    #[arg(long, env = "STATUSPAGE_RELEASE", default_value = "-")]
    pub release: PathBuf,
    /// The environment's name, e.g. production.
    #[arg(long, env = "STATUSPAGE_ENVIRONMENT", value_parser = environment_name)]
    pub environment: String,
    /// The id `start` printed; empty when it could not record one (then no status is set).
    #[arg(long, env = "STATUSPAGE_DEPLOYMENT_ID", default_value = "")]
    pub deployment_id: String,
    /// The rollout's result: deployed, rolled-back or failed; empty when it did not report.
    #[arg(long, env = "STATUSPAGE_RESULT", default_value = "")]
    pub result: String,
    /// statuspage-rollout's report (JSON), for the summary and what is live after a rollback.
    #[arg(long, env = "STATUSPAGE_ROLLOUT_REPORT")]
    pub rollout_report: Option<PathBuf>,
    /// Where the environment is reached; default https:// and the overlay's Ingress host.
    #[arg(long, env = "STATUSPAGE_ENVIRONMENT_URL", default_value = "")]
    pub environment_url: String,
    /// The patched overlay (its kustomization is written back, its Ingress gives the URL).
    #[arg(long, env = "STATUSPAGE_OVERLAY")]
    pub overlay: Option<PathBuf>,
    /// The kustomization's path in the repository; default the overlay's, relative to
    /// GITHUB_WORKSPACE or the current directory.
    #[arg(long, env = "STATUSPAGE_PATH_IN_REPO")]
    pub path_in_repo: Option<String>,
    /// commit (a pull request when the branch is protected), pull-request, or off.
    #[arg(long, env = "STATUSPAGE_WRITE_BACK", default_value = "commit")]
    pub write_back: String,
    /// The branch to write back to.
    #[arg(long, env = "GITHUB_REF_NAME", default_value = "main")]
    pub branch: String,
    /// The commit the deploy ran from; default the release's commit.
    #[arg(long, env = "GITHUB_SHA")]
    pub sha: Option<String>,
    /// COMPONENT=NAME, as for statuspage-patch.
    #[arg(long = "image-name", env = "STATUSPAGE_IMAGE_NAMES", value_delimiter = ',')]
    pub image_names: Vec<String>,
    /// Attempts when the branch moves meanwhile.
    #[arg(long, env = "STATUSPAGE_WRITE_BACK_ATTEMPTS", default_value_t = 3)]
    pub write_back_attempts: u32,
    /// Unix time `start` began, for the summary's duration.
    #[arg(long, env = "STATUSPAGE_STARTED_AT")]
    pub started_at: Option<i64>,
    /// The kustomize binary (renders the overlay for its Ingress host).
    #[arg(long, env = "STATUSPAGE_KUSTOMIZE", default_value = "kustomize")]
    pub kustomize: String,
    /// GitHub.
    #[command(flatten)]
    pub github: GitHubArgs,
}

/// A GitHub environment's name: not empty, at most 255 characters (GitHub's limit), trimmed.
fn environment_name(value: &str) -> Result<String, String> {
    let name = value.trim();
    if name.is_empty() {
        return Err("the environment's name is empty: name the GitHub environment, e.g. production".into());
    }
    if name.chars().count() > 255 {
        return Err("GitHub environment names are at most 255 characters".into());
    }
    Ok(name.to_string())
}

/// `90s`, `5m`, `1h`, or plain seconds.
/// `value` must be an absolute http(s) URL with a host (RFC 3986), as the runner sets `name`:
/// refused as bad input, naming `name`, before any request (a relative one made octocrab panic).
fn absolute_url(name: &str, value: &str, example: &str) -> Result<(), RecordError> {
    if statuspage_common::url::is_absolute_http(value) {
        return Ok(());
    }
    Err(RecordError::BadInput {
        what: format!("{name} {value:?}"),
        fix: format!(
            "give an absolute http(s) URL, e.g. {example} (the runner sets it; unset it outside Actions)"
        ),
    })
}

fn parse_duration(text: &str) -> Result<Duration, RecordError> {
    let bad = || RecordError::BadInput {
        what: format!("--rate-limit-wait {text:?}"),
        fix: "give a duration such as 90s, 5m or 1h".into(),
    };
    let (number, unit) =
        text.trim().split_at(text.trim().find(|c: char| !c.is_ascii_digit()).unwrap_or(text.trim().len()));
    let n: u64 = number.parse().map_err(|_| bad())?;
    let seconds = match unit {
        "" | "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        _ => return Err(bad()),
    };
    Ok(Duration::from_secs(seconds))
}

impl GitHubArgs {
    /// The endpoints these flags name.
    pub fn endpoints(&self) -> Result<Endpoints, RecordError> {
        let repo_ok = self
            .repository
            .split_once('/')
            .is_some_and(|(o, n)| !o.is_empty() && !n.is_empty() && !n.contains('/'));
        if !repo_ok {
            return Err(RecordError::BadInput {
                what: format!("GITHUB_REPOSITORY {:?}", self.repository),
                fix: "give owner/name (the runner sets it; pass --repository outside Actions)".into(),
            });
        }
        absolute_url("GITHUB_API_URL", &self.api_url, "https://api.github.com")?;
        absolute_url("GITHUB_SERVER_URL", &self.server_url, "https://github.com")?;
        Ok(Endpoints {
            api_url: self.api_url.trim_end_matches('/').to_string(),
            server_url: self.server_url.trim_end_matches('/').to_string(),
            repository: self.repository.clone(),
            run_id: self.run_id.clone().filter(|r| !r.is_empty()),
        })
    }

    /// The API client: the real one, or the dry run's printer.
    pub fn api(&self, head: &str) -> Result<Api, RecordError> {
        let endpoints = self.endpoints()?;
        let policy = RetryPolicy {
            rate_limit_bound: parse_duration(&self.rate_limit_wait)?,
            ..RetryPolicy::default()
        };
        let transport: Box<dyn Transport> = if self.dry_run {
            Box::new(DryRunTransport { head: head.to_string() })
        } else {
            if self.token.is_empty() {
                return Err(RecordError::BadInput {
                    what: "GITHUB_TOKEN".into(),
                    fix: "pass the job's token (`token: ${{ github.token }}` to the action, or GITHUB_TOKEN)"
                        .into(),
                });
            }
            Box::new(OctocrabTransport::new(&endpoints.api_url, &self.token)?)
        };
        Ok(Api::new(transport, endpoints, policy))
    }
}

fn read_release(path: &Path) -> Result<Release, RecordError> {
    Ok(Release::read(path)?)
}

fn read_json(path: &Path) -> Result<serde_json::Value, RecordError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| RecordError::Read { path: path.display().to_string(), message: e.to_string() })?;
    serde_json::from_str(&text).map_err(|e| RecordError::Read {
        path: path.display().to_string(),
        message: format!("not JSON: {e}"),
    })
}

/// The path of `file` relative to GITHUB_WORKSPACE or the current directory.
fn repo_relative(file: &Path) -> String {
    let base =
        std::env::var_os("GITHUB_WORKSPACE").map(PathBuf::from).or_else(|| std::env::current_dir().ok());
    let absolute = std::fs::canonicalize(file).unwrap_or_else(|_| file.to_path_buf());
    let base = base.and_then(|b| std::fs::canonicalize(b).ok());
    base.and_then(|b| absolute.strip_prefix(b).ok().map(Path::to_path_buf))
        .unwrap_or_else(|| file.to_path_buf())
        .display()
        .to_string()
}

fn parse_image_names(values: &[String]) -> Result<std::collections::BTreeMap<String, String>, RecordError> {
    statuspage_common::args::pairs(values, false).map_err(|value| RecordError::BadInput {
        what: format!("--image-name {value:?}"),
        fix: "write COMPONENT=NAME, e.g. web=statuspage-web".into(),
    })
}

impl FinishArgs {
    /// The write-back these flags ask for.
    fn write_back(&self, release: &Release) -> Result<Option<WriteBack>, RecordError> {
        let mode = match self.write_back.as_str() {
            "off" => return Ok(None),
            "commit" => Mode::Commit,
            "pull-request" => Mode::PullRequest,
            other => {
                return Err(RecordError::BadInput {
                    what: format!("--write-back {other:?}"),
                    fix: "give commit, pull-request or off".into(),
                });
            }
        };
        let Some(overlay) = &self.overlay else {
            return Err(RecordError::BadInput {
                what: "--overlay".into(),
                fix: "give the patched overlay to write back, or --write-back off".into(),
            });
        };
        let file = statuspage_patch_overlay::kustomization::find(overlay)?;
        let patched = std::fs::read_to_string(&file)
            .map_err(|e| RecordError::Read { path: file.display().to_string(), message: e.to_string() })?;
        let path = self.path_in_repo.clone().unwrap_or_else(|| repo_relative(&file));
        let images = statuspage_patch_overlay::desired_images(
            release,
            "the release",
            &parse_image_names(&self.image_names)?,
        )?;
        let commit = self.sha.clone().filter(|s| !s.is_empty()).unwrap_or_else(|| release.commit.clone());
        let short = &release.commit[..release.commit.len().min(12)];
        let mut message = format!("deploy({}): release {short} is live\n\n", self.environment);
        message.push_str(&format!("{path} pinned to release {} by statuspage-record.\n", release.commit));
        for (component, image) in &release.images {
            let at = image.digest.as_deref().map(|d| format!("@{d}")).unwrap_or_default();
            message.push_str(&format!("- {component}: {}:{}{at}\n", image.repository, image.tag));
        }
        if let Some(run) = self.github.endpoints()?.run_url() {
            message.push_str(&format!("\nDeployed by {run}\n"));
        }
        let run = self.github.run_id.clone().unwrap_or_else(|| short.to_string());
        Ok(Some(WriteBack {
            branch: self.branch.clone(),
            path,
            commit,
            patched,
            images,
            message,
            pr_branch: format!("statuspage/deploy-{}-{run}", self.environment),
            mode,
            attempts: self.write_back_attempts,
        }))
    }

    fn environment_url(&self) -> Option<String> {
        if !self.environment_url.is_empty() {
            return Some(self.environment_url.clone());
        }
        let overlay = self.overlay.as_ref()?;
        let out = std::process::Command::new(&self.kustomize).arg("build").arg(overlay).output();
        match out {
            Ok(out) if out.status.success() => crate::ingress_url(&String::from_utf8_lossy(&out.stdout)),
            Ok(out) => {
                eprintln!(
                    "no environment URL: {} build {} failed: {}",
                    self.kustomize,
                    overlay.display(),
                    String::from_utf8_lossy(&out.stderr).lines().next().unwrap_or("")
                );
                None
            }
            Err(e) => {
                eprintln!("no environment URL: cannot run {}: {e}", self.kustomize);
                None
            }
        }
    }
}

fn runtime() -> tokio::runtime::Runtime {
    // A current-thread runtime cannot fail to build short of the process being out of resources.
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("tokio runtime: {e}"))
}

fn print_transcript(api: &Api, dry_run: bool) {
    if dry_run {
        return;
    }
    for exchange in api.transcript() {
        let answer = match exchange.status {
            0 => "no answer".to_string(),
            status => status.to_string(),
        };
        eprintln!("GitHub: {} {} -> {answer}", exchange.request.method, exchange.request.path);
    }
}

fn report(err: &RecordError) {
    statuspage_common::exit::report(BINARY, err);
}

async fn run_start(args: &StartArgs) -> Result<u8, RecordError> {
    actions::add_mask(&args.github.token);
    let release = read_release(&args.release)?;
    let api = args.github.api(&release.commit)?;
    let config = StartConfig {
        environment: args.environment.clone(),
        production: args.production_environment,
        transient: args.transient_environment,
    };
    let started_at = chrono::Utc::now().timestamp();
    let result = crate::start(&api, &release, &config).await;
    print_transcript(&api, args.github.dry_run);
    match result {
        Ok(id) => {
            eprintln!("GitHub deployment {id} of {} to {}: in_progress", release.commit, args.environment);
            if let Some(out) = OutputFile::from_env() {
                out.set("deployment-id", &id.to_string())?;
                out.set("started-at", &started_at.to_string())?;
            }
            println!("{id}");
            Ok(0)
        }
        Err(e) => {
            report(&e);
            // A permission or repository to fix stops the deploy before anything changed; an
            // outage does not: the deploy goes on unrecorded.
            let config_error = matches!(
                e,
                RecordError::Unauthorized { .. }
                    | RecordError::Forbidden { .. }
                    | RecordError::NotFound { .. }
            ) || !e.is_github();
            Ok(if config_error { 2 } else { EXIT_NOT_RECORDED })
        }
    }
}

async fn run_finish(args: &FinishArgs) -> Result<u8, RecordError> {
    actions::add_mask(&args.github.token);
    let release = read_release(&args.release)?;
    let verdict = Verdict::parse(&args.result)?;
    let deployment_id = match args.deployment_id.trim() {
        "" => None,
        id => Some(id.parse::<u64>().map_err(|_| RecordError::BadInput {
            what: format!("--deployment-id {id:?}"),
            fix: "give the number statuspage-record start printed".into(),
        })?),
    };
    // A rollout that stopped before printing its report leaves no file, or an empty one.
    let rollout = args
        .rollout_report
        .as_deref()
        .filter(|p| std::fs::metadata(p).is_ok_and(|m| m.len() > 0))
        .map(read_json)
        .transpose()?;
    let write_back = args.write_back(&release)?;
    let head = args.sha.clone().unwrap_or_else(|| release.commit.clone());
    let api = args.github.api(&head)?;
    let config = FinishConfig {
        environment: args.environment.clone(),
        deployment_id,
        verdict,
        environment_url: args.environment_url(),
        rollout,
        write_back,
        seconds: args.started_at.map(|t| chrono::Utc::now().timestamp() - t),
    };
    let finished = crate::finish(&api, &release, &config).await;
    print_transcript(&api, args.github.dry_run);
    publish_finish(args, &config, &finished)?;
    for e in &finished.errors {
        report(e);
    }
    if finished.errors.is_empty() {
        Ok(0)
    } else {
        eprintln!(
            "{BINARY}: the GitHub record of this deploy is incomplete (exit {EXIT_NOT_RECORDED}); the deploy itself ({}) is unaffected",
            if verdict.as_str().is_empty() { "stopped" } else { verdict.as_str() }
        );
        Ok(EXIT_NOT_RECORDED)
    }
}

/// What `finish` tells its caller: the step outputs (`written`, `recorded`, `environment-url`),
/// the step summary (stderr outside Actions, unless a dry run), and one line on stderr for the
/// overlay written back.
fn publish_finish(
    args: &FinishArgs,
    config: &FinishConfig,
    finished: &crate::Finished,
) -> Result<(), RecordError> {
    use crate::writeback::Written;
    if let Some(out) = OutputFile::from_env() {
        let written = match &finished.written {
            Some(Written::Committed { sha }) => format!("commit {sha}"),
            Some(Written::PullRequest { url, .. }) => format!("pull-request {url}"),
            Some(Written::Unchanged) => "unchanged".into(),
            None => String::new(),
        };
        out.set("written", &written)?;
        out.set("recorded", if finished.errors.is_empty() { "true" } else { "false" })?;
        out.set("environment-url", config.environment_url.as_deref().unwrap_or(""))?;
    }
    if actions::in_github_actions() {
        actions::append_step_summary(&finished.summary)?;
    } else if !args.github.dry_run {
        eprint!("{}", finished.summary);
    }
    match &finished.written {
        Some(Written::Committed { sha }) => eprintln!("overlay committed to {}: {sha}", args.branch),
        Some(Written::PullRequest { url, .. }) => eprintln!("overlay change proposed: {url}"),
        _ => {}
    }
    Ok(())
}

/// Run the command: everything `main` does after parsing; returns the exit code.
pub fn main_with(args: Args) -> u8 {
    let result = runtime().block_on(async {
        match &args.command {
            Command::Start(a) => run_start(a).await,
            Command::Finish(a) => run_finish(a).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(err) => {
            report(&err);
            2
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("30").unwrap(), Duration::from_secs(30));
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn help_names_every_env_fallback() {
        use clap::CommandFactory;
        let mut command = Args::command();
        let finish = command.find_subcommand_mut("finish").unwrap().render_long_help().to_string();
        for var in [
            "GITHUB_TOKEN",
            "GITHUB_API_URL",
            "GITHUB_SERVER_URL",
            "GITHUB_REPOSITORY",
            "GITHUB_RUN_ID",
            "GITHUB_SHA",
            "STATUSPAGE_WRITE_BACK",
        ] {
            assert!(finish.contains(var), "{var} missing from finish --help");
        }
    }
}
