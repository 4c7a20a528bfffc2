//! The Deployments API: a Deployment per commit and environment, and its statuses.

use serde::Serialize;
use serde_json::Value;
use statuspage_common::release::Release;

use crate::RecordError;
use crate::github::{Api, Operation};

const CREATE: Operation = Operation { what: "create a deployment", permission: "deployments: write" };
const STATUS: Operation = Operation { what: "set a deployment status", permission: "deployments: write" };

/// GitHub's `POST /repos/{owner}/{repo}/deployments` body.
#[derive(Debug, Clone, Serialize)]
pub struct NewDeployment {
    /// The commit.
    #[serde(rename = "ref")]
    pub git_ref: String,
    /// Always `deploy`.
    pub task: &'static str,
    /// Never merge the default branch into the ref.
    pub auto_merge: bool,
    /// Do not wait for commit statuses: the workflow already ran what it requires.
    pub required_contexts: Vec<String>,
    /// The release document.
    pub payload: Value,
    /// The environment's name.
    pub environment: String,
    /// One line.
    pub description: String,
    /// The environment goes away (review apps).
    pub transient_environment: bool,
    /// The environment is what users see (GitHub's default: true for `production`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub production_environment: Option<bool>,
}

impl NewDeployment {
    /// The Deployment of `release` to `environment`.
    pub fn new(release: &Release, environment: &str, production: Option<bool>, transient: bool) -> Self {
        let short = &release.commit[..release.commit.len().min(12)];
        let components = release.images.keys().cloned().collect::<Vec<_>>().join(", ");
        Self {
            git_ref: release.commit.clone(),
            task: "deploy",
            auto_merge: false,
            required_contexts: Vec::new(),
            payload: serde_json::to_value(release).unwrap_or(Value::Null),
            environment: environment.to_string(),
            description: one_line(&format!("statuspage release {short} ({components})")),
            transient_environment: transient,
            production_environment: production,
        }
    }
}

/// A deployment status state this step sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// The rollout is running.
    InProgress,
    /// Deployed and Ready.
    Success,
    /// The release failed in the cluster.
    Failure,
    /// The deploy stopped for another reason.
    Error,
}

/// GitHub's `POST …/deployments/{id}/statuses` body.
#[derive(Debug, Clone, Serialize)]
pub struct NewStatus {
    /// The state.
    pub state: State,
    /// One line, at most 140 characters.
    pub description: String,
    /// This run's page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_url: Option<String>,
    /// Where the environment is reached.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub environment_url: Option<String>,
    /// Earlier deployments of the environment become inactive on success, as GitHub does it.
    pub auto_inactive: bool,
}

/// GitHub keeps 140 characters of a status description; one line of them.
pub fn one_line(text: &str) -> String {
    let line = text.replace(['\n', '\r'], " ");
    if line.chars().count() <= 140 { line } else { line.chars().take(139).collect::<String>() + "…" }
}

/// Create the Deployment; returns its id.
pub async fn create(api: &Api, body: &NewDeployment) -> Result<u64, RecordError> {
    let path = api.endpoints().repo_path("/deployments");
    let answer =
        api.call(CREATE, "POST", path, Some(serde_json::to_value(body).unwrap_or(Value::Null))).await?;
    answer.get("id").and_then(Value::as_u64).ok_or_else(|| RecordError::Unexpected {
        operation: CREATE.what.to_string(),
        what: format!(
            "no deployment id in the answer ({}); GitHub answers so when it merged the default branch instead",
            answer.get("message").and_then(Value::as_str).unwrap_or("no message")
        ),
    })
}

/// Add a status to deployment `id`.
pub async fn set_status(api: &Api, id: u64, status: &NewStatus) -> Result<(), RecordError> {
    let path = api.endpoints().repo_path(&format!("/deployments/{id}/statuses"));
    api.call(STATUS, "POST", path, Some(serde_json::to_value(status).unwrap_or(Value::Null))).await?;
    Ok(())
}
