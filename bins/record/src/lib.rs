//! Make GitHub the record of every deploy.
//!
//! [`start`] (before the rollout) creates a Deployment for the commit and environment, with the
//! release document as its payload, and sets it `in_progress` with this run's URL as `log_url`.
//! [`finish`] (after the rollout) sets `success` with the environment URL, or `failure` /
//! `error` with one line saying what is live now; on success it commits the overlay change back
//! to the branch ([`writeback`]) or opens a pull request; and it writes one step summary for the
//! whole deploy ([`summary`]). Every request goes through [`github::Api`]: bounded retries,
//! rate limits waited out within a bound, errors naming the permission, a transcript.

pub mod cli;
pub mod deployment;
pub mod error;
pub mod github;
pub mod summary;
pub mod writeback;

use serde_json::Value;
use statuspage_common::release::Release;

use deployment::{NewDeployment, NewStatus, State};
pub use error::{EXIT_NOT_RECORDED, RecordError};
use github::Api;
use writeback::{WriteBack, Written};

/// What `start` needs besides the release.
#[derive(Debug, Clone)]
pub struct StartConfig {
    /// The environment's name (`production`, `staging`, …).
    pub environment: String,
    /// `production_environment`; GitHub's default when `None`.
    pub production: Option<bool>,
    /// `transient_environment`.
    pub transient: bool,
}

/// Create the Deployment and set it in progress; returns its id.
pub async fn start(api: &Api, release: &Release, config: &StartConfig) -> Result<u64, RecordError> {
    let body = NewDeployment::new(release, &config.environment, config.production, config.transient);
    let id = deployment::create(api, &body).await?;
    let status = NewStatus {
        state: State::InProgress,
        description: deployment::one_line(&format!(
            "Rolling out {} to {}",
            short(&release.commit),
            config.environment
        )),
        log_url: api.endpoints().run_url(),
        environment_url: None,
        auto_inactive: false,
    };
    deployment::set_status(api, id, &status).await?;
    Ok(id)
}

/// How the rollout ended (`statuspage-rollout`'s `result`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// `deployed`.
    Deployed,
    /// `rolled-back`: the previous release is live again.
    RolledBack,
    /// `failed`: not rolled back.
    Failed,
    /// `stopped` (a signal or a lost Lease stopped the rollout), or no result at all (the deploy
    /// stopped before the rollout reported).
    Stopped,
}

impl Verdict {
    /// From the rollout's `result` output (see actions/rollout/action.yml); empty: stopped.
    pub fn parse(result: &str) -> Result<Self, RecordError> {
        match result {
            "deployed" => Ok(Verdict::Deployed),
            "rolled-back" => Ok(Verdict::RolledBack),
            "failed" | "rollback-failed" => Ok(Verdict::Failed),
            "stopped" | "" => Ok(Verdict::Stopped),
            other => Err(RecordError::BadInput {
                what: format!("--result {other:?}"),
                fix: "give the rollout's result: deployed, rolled-back, failed or stopped (empty when it did not run)"
                    .into(),
            }),
        }
    }

    /// The rollout's word for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Deployed => "deployed",
            Verdict::RolledBack => "rolled-back",
            Verdict::Failed => "failed",
            Verdict::Stopped => "",
        }
    }
}

/// What `finish` needs besides the release.
#[derive(Debug, Clone)]
pub struct FinishConfig {
    /// The environment's name.
    pub environment: String,
    /// The Deployment `start` created; none when it could not be created.
    pub deployment_id: Option<u64>,
    /// How the rollout ended.
    pub verdict: Verdict,
    /// Where the environment is reached.
    pub environment_url: Option<String>,
    /// `statuspage-rollout`'s report.
    pub rollout: Option<Value>,
    /// The write-back, when wanted (done only for a deployed release).
    pub write_back: Option<WriteBack>,
    /// Seconds the rollout took, for the summary.
    pub seconds: Option<i64>,
}

/// What `finish` did. Errors are collected, not returned: one failed part does not stop the next.
#[derive(Debug, Default)]
pub struct Finished {
    /// The write-back's result.
    pub written: Option<Written>,
    /// What could not be recorded.
    pub errors: Vec<RecordError>,
    /// The step summary.
    pub summary: String,
}

fn short(commit: &str) -> &str {
    &commit[..commit.len().min(12)]
}

/// What a rolled-back environment runs now, from the rollout report: `name:tag` per image.
fn live_now(rollout: Option<&Value>) -> Option<String> {
    let deployments = rollout?.get("deployments")?.as_array()?;
    let mut images: Vec<String> = deployments
        .iter()
        .filter_map(|d| d.get("images").and_then(Value::as_array))
        .flatten()
        .filter_map(Value::as_str)
        .map(|image| {
            let image = image.split('@').next().unwrap_or(image);
            let name = image.rsplit('/').next().unwrap_or(image);
            match name.split_once(':') {
                Some((repo, tag)) => format!("{repo}:{}", short(tag)),
                None => name.to_string(),
            }
        })
        .collect();
    images.sort();
    images.dedup();
    (!images.is_empty()).then(|| images.join(", "))
}

/// The final status for a verdict.
pub fn final_status(release: &Release, config: &FinishConfig, log_url: Option<String>) -> NewStatus {
    let commit = short(&release.commit);
    let (state, description) = match config.verdict {
        Verdict::Deployed => (State::Success, format!("Deployed {commit} to {}", config.environment)),
        Verdict::RolledBack => (
            State::Failure,
            match live_now(config.rollout.as_ref()) {
                Some(live) => format!("{commit} failed and was rolled back; live now: {live}"),
                None => format!("{commit} failed and was rolled back; the previous release is live"),
            },
        ),
        Verdict::Failed => {
            (State::Failure, format!("{commit} failed in the cluster and was not rolled back"))
        }
        Verdict::Stopped => {
            (State::Error, format!("The deploy of {commit} stopped before the rollout finished"))
        }
    };
    NewStatus {
        state,
        description: deployment::one_line(&description),
        log_url,
        environment_url: if config.verdict == Verdict::Deployed {
            config.environment_url.clone()
        } else {
            None
        },
        auto_inactive: config.verdict == Verdict::Deployed,
    }
}

/// Set the final status, write the overlay back (deployed only), and build the summary.
pub async fn finish(api: &Api, release: &Release, config: &FinishConfig) -> Finished {
    let mut finished = Finished::default();
    if let Some(id) = config.deployment_id {
        let status = final_status(release, config, api.endpoints().run_url());
        if let Err(e) = deployment::set_status(api, id, &status).await {
            finished.errors.push(e);
        }
    }
    if config.verdict == Verdict::Deployed
        && let Some(spec) = &config.write_back
    {
        match writeback::write_back(api, spec).await {
            Ok(written) => finished.written = Some(written),
            Err(e) => finished.errors.push(e),
        }
    }
    let endpoints = api.endpoints();
    let run_url = endpoints.run_url();
    finished.summary = summary::markdown(&summary::SummaryInput {
        environment: &config.environment,
        result: config.verdict.as_str(),
        release: Some(release),
        rollout: config.rollout.as_ref(),
        seconds: config.seconds,
        environment_url: config.environment_url.as_deref(),
        run_url: run_url.as_deref(),
        deployment_id: config.deployment_id,
        written: finished.written.as_ref(),
        record_error: finished.errors.first().map(|e| e.to_string()),
        repository_url: Some(format!("{}/{}", endpoints.server_url, endpoints.repository)),
    });
    finished
}

/// The environment URL from rendered manifests: `https://` and the first Ingress rule's host.
pub fn ingress_url(rendered: &str) -> Option<String> {
    use serde::Deserialize as _;
    for document in yaml_serde::Deserializer::from_str(rendered) {
        let Ok(value) = Value::deserialize(document) else { continue };
        if value.get("kind").and_then(Value::as_str) != Some("Ingress") {
            continue;
        }
        let host = value.pointer("/spec/rules/0/host").and_then(Value::as_str);
        if let Some(host) = host.filter(|h| !h.is_empty()) {
            return Some(format!("https://{host}"));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn config(verdict: Verdict, rollout: Option<Value>) -> FinishConfig {
        FinishConfig {
            environment: "production".into(),
            deployment_id: Some(1),
            verdict,
            environment_url: Some("https://status.example.com".into()),
            rollout,
            write_back: None,
            seconds: None,
        }
    }

    #[test]
    fn success_carries_the_url_and_retires_earlier_deployments() {
        let status = final_status(&Release::new("a".repeat(40)), &config(Verdict::Deployed, None), None);
        assert_eq!(status.state, State::Success);
        assert_eq!(status.environment_url.as_deref(), Some("https://status.example.com"));
        assert!(status.auto_inactive);
    }

    #[test]
    fn a_rollback_says_what_is_live_now() {
        let rollout = json!({"deployments": [
            {"images": ["r.example/statuspage-web:0123456789abcdef@sha256:00"]},
            {"images": ["r.example/statuspage-worker:0123456789abcdef"]}
        ]});
        let status =
            final_status(&Release::new("b".repeat(40)), &config(Verdict::RolledBack, Some(rollout)), None);
        assert_eq!(status.state, State::Failure);
        assert_eq!(
            status.description,
            "bbbbbbbbbbbb failed and was rolled back; live now: statuspage-web:0123456789ab, statuspage-worker:0123456789ab"
        );
        assert_eq!(status.environment_url, None);
        assert!(!status.auto_inactive);
    }

    #[test]
    fn no_result_is_an_error_status() {
        let status = final_status(&Release::new("c".repeat(40)), &config(Verdict::Stopped, None), None);
        assert_eq!(status.state, State::Error);
        assert!(Verdict::parse("exploded").is_err());
    }

    #[test]
    fn a_stopped_rollout_is_recorded_as_stopped() {
        // The rollout action writes `result=stopped` after SIGINT/SIGTERM or a lost Lease; the
        // deploy action's finish step (if: always()) passes it on.
        assert_eq!(Verdict::parse("stopped").unwrap_or(Verdict::Deployed), Verdict::Stopped);
        assert_eq!(Verdict::parse("").unwrap_or(Verdict::Deployed), Verdict::Stopped);
    }

    #[test]
    fn descriptions_stay_within_githubs_140_characters() {
        assert_eq!(deployment::one_line(&"x".repeat(500)).chars().count(), 140);
        assert_eq!(deployment::one_line("a\nb"), "a b");
    }

    #[test]
    fn the_environment_url_is_the_first_ingress_host() {
        let rendered = "kind: Service\nmetadata: {name: web}\n---\nkind: Ingress\nspec:\n  rules:\n    - host: status.example.com\n";
        assert_eq!(ingress_url(rendered).as_deref(), Some("https://status.example.com"));
        assert_eq!(ingress_url("kind: Service\n"), None);
    }
}
