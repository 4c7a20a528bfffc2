//! The command line: flags (each with an environment fallback) turned into a [`RolloutConfig`].

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use statuspage_common::ExitCode;
use statuspage_common::actions::{self, OutputFile};

use crate::report::{self, Report, RunResult};
use crate::stop::Stop;
use crate::{Input, Outcome, RolloutConfig, RolloutError};

const BINARY: &str = "statuspage-rollout";

/// Roll a kustomize overlay out to Kubernetes: server-side dry run of everything, the migration
/// Job, server-side apply, wait for every Deployment, diagnose and roll back on failure.
///
/// Prints a report (JSON) on stdout, progress on stderr. Exit codes: 0 deployed (or dry run
/// passed), 1 the migration or the rollout failed (not rolled back) or a signal stopped it,
/// 2 bad input or an object refused by validation (nothing applied), 3 the Kubernetes API failed
/// or another rollout took the Lease, 4 failed and rolled back, 5 failed and the rollback failed too.
#[derive(Debug, Parser)]
#[command(name = "statuspage-rollout", version)]
#[command(group(clap::ArgGroup::new("input").required(true).args(["overlay", "manifests"])))]
pub struct Args {
    /// The kustomize overlay to render with `kustomize build`, e.g. manifests/app/overlays/production.
    #[arg(long, env = "STATUSPAGE_OVERLAY")]
    pub overlay: Option<PathBuf>,
    /// Already rendered manifests (multi-document YAML) instead of --overlay; - for stdin.
    #[arg(long, env = "STATUSPAGE_MANIFESTS")]
    pub manifests: Option<PathBuf>,
    /// The kustomize binary.
    #[arg(long, env = "STATUSPAGE_KUSTOMIZE", default_value = "kustomize")]
    pub kustomize: PathBuf,
    /// Namespace for objects that name none (default: the render's Namespace object).
    #[arg(long, env = "STATUSPAGE_NAMESPACE")]
    pub namespace: Option<String>,
    /// Server-side apply field manager.
    #[arg(long, env = "STATUSPAGE_FIELD_MANAGER", default_value = "statuspage")]
    pub field_manager: String,
    /// Bound of every wait (migration, rollout, rollback): 90s, 10m, 1h.
    #[arg(long, env = "STATUSPAGE_TIMEOUT", default_value = "10m")]
    pub timeout: String,
    /// Fail once a pod has waited this long in ImagePullBackOff, CrashLoopBackOff or another state
    /// that does not cure itself, instead of waiting out the progress deadline; 0 never.
    #[arg(long, env = "STATUSPAGE_FAIL_FAST_AFTER", default_value = "2m")]
    pub fail_fast_after: String,
    /// Keep objects an earlier rollout applied that the render no longer has (default: delete
    /// them after a successful rollout).
    #[arg(long, env = "STATUSPAGE_NO_PRUNE")]
    pub no_prune: bool,
    /// Label selector of the release's objects; only those applied by the field manager are pruned.
    #[arg(long, env = "STATUSPAGE_PRUNE_SELECTOR", default_value = "app.kubernetes.io/part-of=statuspage")]
    pub prune_selector: String,
    /// On failure, leave the Deployments as they are (exit 1 instead of 4).
    #[arg(long, env = "STATUSPAGE_NO_ROLLBACK")]
    pub no_rollback: bool,
    /// Validate (server-side dry run) and print the plan; change nothing but a missing namespace.
    #[arg(long, env = "STATUSPAGE_DRY_RUN")]
    pub dry_run: bool,
    /// The release document (JSON, from statuspage-push): the render must run its images as
    /// repository:tag@digest, and the report compares the running digests with it.
    #[arg(long, env = "STATUSPAGE_RELEASE")]
    pub release: Option<PathBuf>,
}

/// True for a DNS-1123 label (a namespace name).
fn dns_label(name: &str) -> bool {
    let bytes = name.as_bytes();
    !name.is_empty()
        && name.len() <= 63
        && bytes[0].is_ascii_alphanumeric()
        && bytes[bytes.len() - 1].is_ascii_alphanumeric()
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// `90`, `90s`, `10m`, `1h` as a duration (`--timeout`; zero is refused).
pub fn parse_timeout(text: &str) -> Result<Duration, RolloutError> {
    match parse_duration("--timeout", text)? {
        Some(duration) => Ok(duration),
        None => Err(RolloutError::BadInput {
            flag: "--timeout",
            value: text.to_string(),
            fix: "a wait needs a bound above zero, e.g. 90s or 10m".into(),
        }),
    }
}

/// `90`, `90s`, `10m`, `1h` as a duration; `0` is `None`.
pub fn parse_duration(flag: &'static str, text: &str) -> Result<Option<Duration>, RolloutError> {
    let bad = || RolloutError::BadInput {
        flag,
        value: text.to_string(),
        fix: "write seconds or a number with s, m or h, e.g. 90s or 10m".into(),
    };
    let text = text.trim();
    let (number, unit) = match text.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (&text[..i], c),
        _ => (text, 's'),
    };
    let number: u64 = number.parse().map_err(|_| bad())?;
    let seconds = match unit {
        's' => number,
        'm' => number * 60,
        'h' => number * 3600,
        _ => return Err(bad()),
    };
    Ok((seconds > 0).then(|| Duration::from_secs(seconds)))
}

impl Args {
    /// The [`RolloutConfig`] these flags describe.
    pub fn config(&self) -> Result<RolloutConfig, RolloutError> {
        let input = match (&self.overlay, &self.manifests) {
            (Some(dir), None) => Input::Overlay { dir: dir.clone(), kustomize: self.kustomize.clone() },
            (None, Some(path)) if path.as_os_str() == "-" => Input::Manifests(PathBuf::from("/dev/stdin")),
            (None, Some(path)) => Input::Manifests(path.clone()),
            _ => {
                return Err(RolloutError::BadInput {
                    flag: "--overlay",
                    value: String::new(),
                    fix: "pass either --overlay DIR or --manifests FILE".into(),
                });
            }
        };
        if self.field_manager.trim().is_empty() {
            return Err(RolloutError::BadInput {
                flag: "--field-manager",
                value: self.field_manager.clone(),
                fix: "name the field manager, e.g. statuspage".into(),
            });
        }
        let namespace = self.namespace.clone().filter(|n| !n.is_empty());
        if let Some(ns) = namespace.as_ref().filter(|ns| !dns_label(ns)) {
            return Err(RolloutError::BadInput {
                flag: "--namespace",
                value: ns.clone(),
                fix: "is not a valid namespace name: up to 63 lowercase letters, digits and '-', starting and ending alphanumeric".into(),
            });
        }
        if !self.no_prune {
            crate::selector::check(&self.prune_selector).map_err(|fix| RolloutError::BadInput {
                flag: "--prune-selector",
                value: self.prune_selector.clone(),
                fix,
            })?;
        }
        let release = match &self.release {
            Some(path) => {
                Some(statuspage_common::release::Release::read(path).map_err(|e| RolloutError::BadInput {
                    flag: "--release",
                    value: path.display().to_string(),
                    fix: format!("{e}; pass the release document statuspage-push wrote"),
                })?)
            }
            None => None,
        };
        Ok(RolloutConfig {
            input,
            namespace,
            field_manager: self.field_manager.clone(),
            timeout: parse_timeout(&self.timeout)?,
            dry_run: self.dry_run,
            rollback: !self.no_rollback,
            fail_fast_after: parse_duration("--fail-fast-after", &self.fail_fast_after)?,
            prune: !self.no_prune,
            prune_selector: self.prune_selector.clone(),
            release,
        })
    }
}

/// Print the report and write the Actions outputs. A failure to write them is reported but
/// never changes the exit code the verdict gave.
fn publish(report: &Report) {
    if let Ok(json) = serde_json::to_string_pretty(report) {
        println!("{json}");
    }
    write_outputs(report.result, Some(report));
}

fn write_outputs(result: RunResult, report: Option<&Report>) {
    if !actions::in_github_actions() {
        return;
    }
    let written = (|| {
        if let Some(out) = OutputFile::from_env() {
            report::write_outputs(result, &out)?;
        }
        if let Some(report) = report {
            actions::append_step_summary(&report::summary_markdown(report))?;
        }
        Ok::<_, RolloutError>(())
    })();
    if let Err(err) = written {
        eprintln!("{BINARY}: warning: {err}");
    }
}

/// The verdict's line on stderr, the report on stdout, the exit code.
fn conclude(outcome: &Outcome) -> ExitCode {
    match outcome.verdict.message() {
        Some(message) => {
            if actions::in_github_actions() {
                actions::Annotation::error(message.clone()).emit();
            }
            eprintln!("{BINARY}: error: {message}");
        }
        None if outcome.verdict == crate::Verdict::DryRun => {
            let changes =
                outcome.report.objects.iter().filter(|o| o.action != report::Action::Unchanged).count();
            eprintln!(
                "dry run: {changes} of {} objects would change; nothing applied",
                outcome.report.objects.len()
            );
        }
        None => eprintln!("deployed to namespace {}", outcome.report.namespace),
    }
    publish(&outcome.report);
    outcome.verdict.exit_code()
}

/// Run the command: everything `main` does after parsing.
pub fn main_with(args: Args) -> ExitCode {
    let result = (|| {
        let config = args.config()?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(RolloutError::Runtime)?;
        runtime.block_on(async {
            let stop = Stop::new();
            stop.on_signals().map_err(RolloutError::Runtime)?;
            crate::run(&config, &stop).await
        })
    })();
    match result {
        Ok(outcome) => conclude(&outcome),
        Err(err) => {
            write_outputs(RunResult::Failed, None);
            statuspage_common::exit::report(BINARY, &err)
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn timeouts() {
        assert_eq!(parse_timeout("90").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_timeout("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_timeout("10m").unwrap(), Duration::from_secs(600));
        assert_eq!(parse_timeout("1h").unwrap(), Duration::from_secs(3600));
        assert_eq!(parse_duration("--fail-fast-after", "0").unwrap(), None);
        assert_eq!(parse_duration("--fail-fast-after", "2m").unwrap(), Some(Duration::from_secs(120)));
        let err = parse_duration("--fail-fast-after", "soon").unwrap_err().to_string();
        assert!(err.contains("--fail-fast-after") && err.contains("\"soon\""), "{err}");
        for bad in ["", "0", "5d", "m", "-1s"] {
            assert!(parse_timeout(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn overlay_or_manifests() {
        assert!(Args::try_parse_from(["x"]).is_err());
        assert!(Args::try_parse_from(["x", "--overlay", "o", "--manifests", "m"]).is_err());
        let args = Args::try_parse_from(["x", "--manifests", "m.yaml"]).unwrap();
        assert!(matches!(args.config().unwrap().input, Input::Manifests(_)));
        let config = Args::try_parse_from(["x", "--overlay", "o"]).unwrap().config().unwrap();
        assert_eq!(config.field_manager, "statuspage");
        assert_eq!(config.timeout, Duration::from_secs(600));
        assert!(config.rollback);
    }

    #[test]
    fn help_names_every_env_fallback() {
        use clap::CommandFactory;
        let help = Args::command().render_long_help().to_string();
        for var in [
            "STATUSPAGE_OVERLAY",
            "STATUSPAGE_MANIFESTS",
            "STATUSPAGE_KUSTOMIZE",
            "STATUSPAGE_NAMESPACE",
            "STATUSPAGE_FIELD_MANAGER",
            "STATUSPAGE_TIMEOUT",
            "STATUSPAGE_NO_ROLLBACK",
            "STATUSPAGE_DRY_RUN",
        ] {
            assert!(help.contains(var), "{var} missing from --help");
        }
    }
}
