//! What a rollout shows machines and people: the report JSON, the step-summary table, outputs.

use serde::Serialize;
use statuspage_common::actions::{OutputFile, markdown_cell};

use crate::RolloutError;

/// How the run ended, as the report and the `result` output say it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RunResult {
    /// Everything rolled out.
    Deployed,
    /// Failed and rolled back.
    RolledBack,
    /// Failed (not rolled back, or the rollback failed).
    Failed,
    /// Validated only.
    #[default]
    DryRun,
    /// Stopped by a signal or a lost Lease before the end.
    Stopped,
}

impl RunResult {
    /// The word used in outputs and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            RunResult::Deployed => "deployed",
            RunResult::RolledBack => "rolled-back",
            RunResult::Failed => "failed",
            RunResult::DryRun => "dry-run",
            RunResult::Stopped => "stopped",
        }
    }
}

/// What was (or, in a dry run, would be) done to one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Action {
    /// Dry run: absent, would be created.
    #[serde(rename = "would create")]
    WouldCreate,
    /// Dry run: present, would change.
    #[serde(rename = "would configure")]
    WouldConfigure,
    /// Dry run: no longer in the render, would be deleted.
    #[serde(rename = "would prune")]
    WouldPrune,
    /// Unchanged (dry run and apply).
    #[serde(rename = "unchanged")]
    Unchanged,
    /// Created.
    #[serde(rename = "created")]
    Created,
    /// Changed.
    #[serde(rename = "configured")]
    Configured,
    /// Deleted: no longer in the render.
    #[serde(rename = "pruned")]
    Pruned,
    /// Put back as it was before this run: the configuration of a rolled-back release, or a
    /// workload this run had applied before the API failed.
    #[serde(rename = "restored")]
    Restored,
    /// Not reached: the rollout stopped before it.
    #[serde(rename = "pending")]
    Pending,
}

impl Action {
    /// The word printed in progress lines.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::WouldCreate => "would create",
            Action::WouldConfigure => "would configure",
            Action::WouldPrune => "would prune",
            Action::Unchanged => "unchanged",
            Action::Created => "created",
            Action::Configured => "configured",
            Action::Pruned => "pruned",
            Action::Restored => "restored",
            Action::Pending => "pending",
        }
    }
}

/// The report printed on stdout (also when the rollout failed after changing the cluster).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    /// Format version.
    pub version: u32,
    /// How the run ended.
    pub result: RunResult,
    /// The namespace of the release.
    pub namespace: String,
    /// Every object, with what was (or would be) done to it.
    pub objects: Vec<ObjectReport>,
    /// The migration Job, when the render has a template.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub migration: Option<MigrationReport>,
    /// Every workload (Deployment, StatefulSet, DaemonSet) after the rollout.
    pub workloads: Vec<WorkloadReport>,
    /// With `--release`: each release image and the workloads whose ready pods run its digest.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub release: Vec<ReleaseCheck>,
    /// The steps this run went through, in order, with their wall time: where the time went.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub phases: Vec<PhaseTiming>,
}

/// How long one step of the run took.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PhaseTiming {
    /// `render`, `connect`, `validate`, `lock`, `configure`, `migrate`, `apply`, `wait`, `diagnose`,
    /// `roll back` or `prune`.
    pub phase: &'static str,
    /// Wall time, in milliseconds.
    pub ms: u64,
}

/// The clock of a run: [`Phases::mark`] ends a step, timed from the end of the one before.
#[derive(Debug)]
pub struct Phases {
    state: std::sync::Mutex<(std::time::Instant, Vec<PhaseTiming>)>,
}

impl Phases {
    /// A clock started now.
    pub fn start() -> Self {
        Self { state: std::sync::Mutex::new((std::time::Instant::now(), Vec::new())) }
    }

    /// End the step `phase` now.
    pub fn mark(&self, phase: &'static str) {
        let mut state = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = std::time::Instant::now();
        let ms = u64::try_from(now.duration_since(state.0).as_millis()).unwrap_or(u64::MAX);
        state.0 = now;
        state.1.push(PhaseTiming { phase, ms });
    }

    /// The steps ended so far.
    pub fn taken(&self) -> Vec<PhaseTiming> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner).1.clone()
    }
}

/// `validate 0.3 s, configure 0.1 s, …`: the phases as one line.
pub fn phases_line(phases: &[PhaseTiming]) -> String {
    phases.iter().map(|p| format!("{} {:.1} s", p.phase, p.ms as f64 / 1000.0)).collect::<Vec<_>>().join(", ")
}

/// One object.
#[derive(Debug, Clone, Serialize)]
pub struct ObjectReport {
    /// `Kind`.
    pub kind: String,
    /// `metadata.name`.
    pub name: String,
    /// Empty for cluster-scoped objects.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    /// What was done.
    pub action: Action,
    /// The field manager a `kubectl apply` (client-side) left, whose fields this run takes over.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub adopted_from: Option<String>,
}

/// Where the migration Job ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum MigrationResult {
    /// Dry run, or not reached yet.
    Planned,
    /// Ran and succeeded.
    Complete,
    /// Succeeded in an earlier run for this template: not run again.
    AlreadyComplete,
    /// Failed.
    Failed,
    /// The rollout stopped while it ran (it keeps running; the next run waits for it).
    Stopped,
}

/// The migration Job.
#[derive(Debug, Clone, Serialize)]
pub struct MigrationReport {
    /// The per-template Job's name.
    pub job: String,
    /// Where it ended.
    pub result: MigrationResult,
}

/// Where a workload ended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum WorkloadResult {
    /// Rolled out and available.
    #[default]
    Available,
    /// Failed.
    Failed,
    /// Failed and put back at its previous template.
    RolledBack,
    /// The rollback of it failed.
    RollbackFailed,
    /// Failed with nothing to go back to (created by this run).
    NotRolledBack,
    /// Its update strategy (`OnDelete`) cannot be awaited: applied, not waited for.
    NotAwaited,
    /// The run stopped before it was done.
    Stopped,
}

/// One workload.
#[derive(Debug, Clone, Default, Serialize)]
pub struct WorkloadReport {
    /// `Deployment`, `StatefulSet` or `DaemonSet`.
    pub kind: String,
    /// `metadata.name`.
    pub name: String,
    /// The images its pod template runs.
    pub images: Vec<String>,
    /// The image IDs (digests) the ready, not terminating pods of its current revision run.
    pub running: Vec<String>,
    /// Pods of older revisions still terminating (not counted in `running`).
    pub terminating: u32,
    /// Ready pods of the current revision.
    pub ready_replicas: i32,
    /// Wanted pods (`spec.replicas`; a DaemonSet's desired number scheduled).
    pub replicas: i32,
    /// A Deployment's `deployment.kubernetes.io/revision`, otherwise the current revision name.
    pub revision: String,
    /// Where it ended.
    pub result: WorkloadResult,
}

/// One release image against what runs.
#[derive(Debug, Clone, Serialize)]
pub struct ReleaseCheck {
    /// The release's component name (`web`, `worker`, …).
    pub component: String,
    /// `repository:tag@digest` of the release.
    pub image: String,
    /// `Kind/name` of the workloads whose pod template runs it.
    pub workloads: Vec<String>,
    /// True when every such workload's ready pods run exactly the release's digest.
    pub running: bool,
}

/// The Markdown for `$GITHUB_STEP_SUMMARY`.
pub fn summary_markdown(report: &Report) -> String {
    let mut md = format!(
        "### Rollout to `{}`: {}\n\n| workload | result | ready | revision | images |\n|---|---|---|---|---|\n",
        markdown_cell(&report.namespace),
        report.result.as_str()
    );
    for w in &report.workloads {
        md.push_str(&format!(
            "| {}/{} | {} | {}/{} | {} | {} |\n",
            markdown_cell(&w.kind),
            markdown_cell(&w.name),
            serde_json::to_value(w.result)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default(),
            w.ready_replicas,
            w.replicas,
            markdown_cell(&w.revision),
            w.images.iter().map(|i| format!("`{}`", markdown_cell(i))).collect::<Vec<_>>().join("<br>")
        ));
    }
    if let Some(m) = &report.migration {
        let result = serde_json::to_value(m.result).ok().and_then(|v| v.as_str().map(str::to_string));
        md.push_str(&format!("\nMigration `{}`: {}\n", markdown_cell(&m.job), result.unwrap_or_default()));
    }
    let changed: Vec<&ObjectReport> =
        report.objects.iter().filter(|o| o.action != Action::Unchanged).collect();
    md.push_str(&format!("\n{} objects, {} changed.\n", report.objects.len(), changed.len()));
    if !report.phases.is_empty() {
        md.push_str(&format!("\nTime: {}.\n", phases_line(&report.phases)));
    }
    if !changed.is_empty() {
        md.push_str("\n| object | action | adopted from |\n|---|---|---|\n");
        for o in changed {
            md.push_str(&format!(
                "| {}/{} | {} | {} |\n",
                markdown_cell(&o.kind),
                markdown_cell(&o.name),
                o.action.as_str(),
                markdown_cell(o.adopted_from.as_deref().unwrap_or(""))
            ));
        }
    }
    md
}

/// Write `result` to an Actions output file.
pub fn write_outputs(result: RunResult, out: &OutputFile) -> Result<(), RolloutError> {
    out.set("result", result.as_str())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_phase_is_timed_from_the_end_of_the_one_before() {
        let phases = Phases::start();
        std::thread::sleep(std::time::Duration::from_millis(30));
        phases.mark("validate");
        phases.mark("lock");
        let taken = phases.taken();
        assert_eq!(taken.iter().map(|p| p.phase).collect::<Vec<_>>(), ["validate", "lock"]);
        assert!(taken[0].ms >= 30 && taken[1].ms < 30, "{taken:?}");
        let line =
            phases_line(&[PhaseTiming { phase: "wait", ms: 2340 }, PhaseTiming { phase: "prune", ms: 40 }]);
        assert_eq!(line, "wait 2.3 s, prune 0.0 s");
    }

    #[test]
    fn summary_has_one_row_per_workload() {
        let report = Report {
            version: 2,
            result: RunResult::Deployed,
            namespace: "app".into(),
            workloads: vec![WorkloadReport {
                kind: "Deployment".into(),
                name: "web".into(),
                images: vec!["r/web:1".into()],
                ready_replicas: 2,
                replicas: 2,
                revision: "3".into(),
                ..Default::default()
            }],
            ..Default::default()
        };
        let md = summary_markdown(&report);
        assert!(md.contains("| Deployment/web | available | 2/2 | 3 | `r/web:1` |"), "{md}");
        let json = serde_json::to_value(&report).unwrap_or_default();
        assert_eq!(json["result"], "deployed");
    }
}
