//! The one step summary of the whole deploy: per component the image digest, replicas, the
//! time to Ready, the migration, the result, the link to the environment and the record.

use serde_json::Value;
use statuspage_common::actions::markdown_cell;
use statuspage_common::release::Release;

use crate::writeback::Written;

/// What the summary shows.
#[derive(Debug, Clone, Default)]
pub struct SummaryInput<'a> {
    /// The environment's name.
    pub environment: &'a str,
    /// `deployed`, `rolled-back`, `failed`, or empty when the rollout never reported.
    pub result: &'a str,
    /// The release.
    pub release: Option<&'a Release>,
    /// `statuspage-rollout`'s report (JSON), when there is one.
    pub rollout: Option<&'a Value>,
    /// Seconds from the in-progress status to this summary (the whole rollout).
    pub seconds: Option<i64>,
    /// Where the environment is reached.
    pub environment_url: Option<&'a str>,
    /// This run's page.
    pub run_url: Option<&'a str>,
    /// The deployment's id, when one was recorded.
    pub deployment_id: Option<u64>,
    /// What the write-back did.
    pub written: Option<&'a Written>,
    /// Why the record is incomplete, when it is.
    pub record_error: Option<String>,
    /// `owner/name` and the web base, for links.
    pub repository_url: Option<String>,
}

fn short(text: &str) -> &str {
    &text[..text.len().min(19)]
}

/// The Markdown.
pub fn markdown(input: &SummaryInput<'_>) -> String {
    let result = if input.result.is_empty() { "stopped before the rollout finished" } else { input.result };
    let mut md =
        format!("### Deploy to `{}`: {}\n\n", markdown_cell(input.environment), markdown_cell(result));
    if let Some(release) = input.release {
        md.push_str(&format!("Release `{}`", markdown_cell(&release.commit)));
        if let Some(seconds) = input.seconds {
            md.push_str(&format!(", {seconds} s from start of rollout to Ready"));
        }
        md.push_str("\n\n");
        md.push_str(&images_table(release, input.rollout));
        md.push('\n');
    }
    if let Some(migration) = input.rollout.and_then(|r| r.get("migration")) {
        let get = |k: &str| migration.get(k).and_then(Value::as_str).unwrap_or("-");
        md.push_str(&format!(
            "Migration: Job `{}`, {}\n\n",
            markdown_cell(get("job")),
            markdown_cell(get("result"))
        ));
    }
    if let Some(url) = input.environment_url {
        md.push_str(&format!("Environment: {url}\n\n"));
    }
    md.push_str(&record_lines(input));
    if let Some(error) = &input.record_error {
        md.push_str(&format!(
            "**The GitHub record could not be written** (the deploy is unaffected): {}\n\n",
            markdown_cell(error)
        ));
    }
    md
}

/// The release's images as a Markdown table: component, `repository:tag` (tag cut to 12
/// characters), short digest, and from the rollout report (`deployments[]`, matched by image
/// repository) the ready/desired replicas and the result; `-` where the report has nothing.
fn images_table(release: &Release, rollout: Option<&Value>) -> String {
    let mut md = String::from("| component | image | digest | replicas | result |\n|---|---|---|---|---|\n");
    let deployments: Vec<&Value> = rollout
        .and_then(|r| r.get("deployments"))
        .and_then(Value::as_array)
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    for (component, image) in &release.images {
        let deployment = deployments.iter().find(|d| {
            d.get("images").and_then(Value::as_array).is_some_and(|imgs| {
                imgs.iter().filter_map(Value::as_str).any(|i| i.starts_with(&image.repository))
            })
        });
        let replicas = deployment
            .map(|d| {
                let n = |k: &str| d.get(k).and_then(Value::as_i64).unwrap_or(0);
                format!("{}/{} ready", n("ready_replicas"), n("replicas"))
            })
            .unwrap_or_else(|| "-".into());
        let outcome = deployment.and_then(|d| d.get("result")).and_then(Value::as_str).unwrap_or("-");
        md.push_str(&format!(
            "| {} | `{}:{}` | `{}` | {} | {} |\n",
            markdown_cell(component),
            markdown_cell(&image.repository),
            markdown_cell(&image.tag[..image.tag.len().min(12)]),
            markdown_cell(image.digest.as_deref().map(short).unwrap_or("-")),
            markdown_cell(&replicas),
            markdown_cell(outcome),
        ));
    }
    md.push('\n');
    md
}

/// What the record step wrote: the overlay written back (commit link, pull request, or nothing
/// to change) and the GitHub deployment with the run's log.
fn record_lines(input: &SummaryInput<'_>) -> String {
    let mut md = String::new();
    match input.written {
        Some(Written::Committed { sha }) => {
            let link = input
                .repository_url
                .as_ref()
                .map(|r| format!("{r}/commit/{sha}"))
                .unwrap_or_else(|| sha.clone());
            md.push_str(&format!("Overlay committed back: {link}\n\n"));
        }
        Some(Written::PullRequest { url, .. }) => md.push_str(&format!("Overlay change proposed: {url}\n\n")),
        Some(Written::Unchanged) => md.push_str("Overlay: the branch already states this release\n\n"),
        None => {}
    }
    if let Some(id) = input.deployment_id {
        md.push_str(&format!("GitHub deployment {id}"));
        if let Some(run) = input.run_url {
            md.push_str(&format!(", log {run}"));
        }
        md.push_str("\n\n");
    }
    md
}
