//! What a rollout shows machines and people: the report JSON, the step-summary table, outputs.

use serde::Serialize;
use statuspage_common::actions::{OutputFile, markdown_cell};

use crate::RolloutError;

/// The report printed on stdout (also when the rollout failed after changing the cluster).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    /// Format version.
    pub version: u32,
    /// `deployed`, `rolled-back`, `failed` or `dry-run`.
    pub result: String,
    /// The namespace of the release.
    pub namespace: String,
    /// Every object, with what was (or, in a dry run, would be) done to it.
    pub objects: Vec<ObjectReport>,
    /// The migration Job, when the render has a template.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub migration: Option<MigrationReport>,
    /// Every Deployment after the rollout.
    pub deployments: Vec<DeploymentReport>,
}

/// One applied object.
#[derive(Debug, Clone, Serialize)]
pub struct ObjectReport {
    /// `Kind`.
    pub kind: String,
    /// `metadata.name`.
    pub name: String,
    /// Empty for cluster-scoped objects.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    /// `created`, `configured`, `unchanged` (dry run: `would create`, …), or `pending` when the
    /// rollout stopped before it.
    pub action: String,
}

/// The migration Job.
#[derive(Debug, Clone, Serialize)]
pub struct MigrationReport {
    /// The per-release Job's name.
    pub job: String,
    /// `complete`, `already-complete`, `failed` or `planned`.
    pub result: String,
}

/// One Deployment.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DeploymentReport {
    /// `metadata.name`.
    pub name: String,
    /// The images its pod template runs.
    pub images: Vec<String>,
    /// The image IDs (digests) its ready pods report.
    pub running: Vec<String>,
    /// `status.readyReplicas`.
    pub ready_replicas: i32,
    /// `spec.replicas`.
    pub replicas: i32,
    /// The `deployment.kubernetes.io/revision` it ends at.
    pub revision: String,
    /// `available`, `failed`, `rolled-back`, `rollback-failed`, `not-rolled-back`.
    pub result: String,
}

/// The Markdown for `$GITHUB_STEP_SUMMARY`.
pub fn summary_markdown(report: &Report) -> String {
    let mut md = format!(
        "### Rollout to `{}`: {}\n\n| Deployment | result | ready | revision | images |\n|---|---|---|---|---|\n",
        markdown_cell(&report.namespace),
        markdown_cell(&report.result)
    );
    for d in &report.deployments {
        md.push_str(&format!(
            "| {} | {} | {}/{} | {} | {} |\n",
            markdown_cell(&d.name),
            markdown_cell(&d.result),
            d.ready_replicas,
            d.replicas,
            markdown_cell(&d.revision),
            d.images.iter().map(|i| format!("`{}`", markdown_cell(i))).collect::<Vec<_>>().join("<br>")
        ));
    }
    if let Some(m) = &report.migration {
        md.push_str(&format!("\nMigration `{}`: {}\n", markdown_cell(&m.job), markdown_cell(&m.result)));
    }
    let changed = report.objects.iter().filter(|o| o.action != "unchanged").count();
    md.push_str(&format!("\n{} objects, {changed} changed.\n", report.objects.len()));
    md
}

/// Write `result` (`deployed`, `rolled-back`, `failed`, `dry-run`) to an Actions output file.
pub fn write_outputs(result: &str, out: &OutputFile) -> Result<(), RolloutError> {
    out.set("result", result)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_has_one_row_per_deployment() {
        let report = Report {
            version: 1,
            result: "deployed".into(),
            namespace: "app".into(),
            deployments: vec![DeploymentReport {
                name: "web".into(),
                images: vec!["r/web:1".into()],
                ready_replicas: 2,
                replicas: 2,
                revision: "3".into(),
                result: "available".into(),
                ..Default::default()
            }],
            ..Default::default()
        };
        let md = summary_markdown(&report);
        assert!(md.contains("| web | available | 2/2 | 3 | `r/web:1` |"), "{md}");
    }
}
