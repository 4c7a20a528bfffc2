//! What a rollout ended in. A rollout that fails in the cluster is an outcome, not an error: the
//! exit code comes from the [`Verdict`], in [`Verdict::exit_code`] and nowhere else.

use statuspage_common::ExitCode;

use crate::report::{Report, RunResult};
use crate::stop::StopReason;

/// How the run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Everything is rolled out (or the dry run passed).
    Deployed,
    /// The dry run passed; nothing was applied.
    DryRun,
    /// The migration Job failed; no workload was changed.
    MigrationFailed {
        /// The Job.
        job: String,
        /// Why.
        reason: String,
    },
    /// The rollout failed and was not rolled back (`--no-rollback`, or nothing to go back to).
    Failed {
        /// Which workloads failed and how.
        reason: String,
    },
    /// The rollout failed and every changed workload is back at its previous template.
    RolledBack {
        /// Which workloads failed and how.
        reason: String,
    },
    /// The rollout failed and so did the rollback.
    RollbackFailed {
        /// Which workloads failed and how.
        reason: String,
        /// What went wrong rolling back.
        rollback: String,
    },
    /// Stopped before the end: a signal, or the Lease taken by another rollout.
    Stopped(StopReason),
    /// The Kubernetes API failed after the cluster was changed.
    ApiFailed {
        /// What failed.
        reason: String,
        /// What became of this run's changes: which were put back, or why none was.
        undone: String,
    },
}

impl Verdict {
    /// The exit code of the contract.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            Verdict::Deployed | Verdict::DryRun => ExitCode::Success,
            Verdict::MigrationFailed { .. } | Verdict::Failed { .. } => ExitCode::Failed,
            Verdict::Stopped(StopReason::Signal(_)) => ExitCode::Failed,
            Verdict::Stopped(StopReason::LeaseLost { .. }) | Verdict::ApiFailed { .. } => ExitCode::External,
            Verdict::RolledBack { .. } => ExitCode::RolledBack,
            Verdict::RollbackFailed { .. } => ExitCode::RollbackFailed,
        }
    }

    /// The `result` of the report and of the `result` output.
    pub fn result(&self) -> RunResult {
        match self {
            Verdict::Deployed => RunResult::Deployed,
            Verdict::DryRun => RunResult::DryRun,
            Verdict::MigrationFailed { .. }
            | Verdict::Failed { .. }
            | Verdict::RollbackFailed { .. }
            | Verdict::ApiFailed { .. } => RunResult::Failed,
            Verdict::RolledBack { .. } => RunResult::RolledBack,
            Verdict::Stopped(_) => RunResult::Stopped,
        }
    }

    /// The one-line message for a verdict that is not a success.
    pub fn message(&self) -> Option<String> {
        Some(match self {
            Verdict::Deployed | Verdict::DryRun => return None,
            Verdict::MigrationFailed { job, reason } => {
                format!("migration {job} failed: {reason}. The workloads were not changed")
            }
            Verdict::Failed { reason } => format!("rollout failed: {reason}"),
            Verdict::RolledBack { reason } => format!("rollout failed and was rolled back: {reason}"),
            Verdict::RollbackFailed { reason, rollback } => format!(
                "rollout failed ({reason}) and the rollback failed too: {rollback}. Look at the namespace now"
            ),
            Verdict::Stopped(StopReason::Signal(name)) => format!(
                "stopped by {name}: no further change was made and the Lease was given back; \
                 run the rollout again to finish it"
            ),
            Verdict::ApiFailed { reason, undone } => {
                format!("the Kubernetes API failed during the rollout ({reason}); {undone}")
            }
            Verdict::Stopped(StopReason::LeaseLost { holder }) => format!(
                "another rollout took the namespace's Lease (now held by {holder}): stopped changing the cluster"
            ),
        })
    }
}

/// A finished run: what was done, and how it ended.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// What was done to what.
    pub report: Report,
    /// How it ended.
    pub verdict: Verdict,
}

impl Outcome {
    /// An outcome whose report says `verdict`'s result.
    pub fn new(mut report: Report, verdict: Verdict) -> Self {
        report.result = verdict.result();
        Self { report, verdict }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_follow_the_contract() {
        let reason = String::from("x");
        assert_eq!(Verdict::Deployed.exit_code(), ExitCode::Success);
        assert_eq!(Verdict::Failed { reason: reason.clone() }.exit_code(), ExitCode::Failed);
        assert_eq!(Verdict::RolledBack { reason: reason.clone() }.exit_code(), ExitCode::RolledBack);
        let lost = Verdict::Stopped(StopReason::LeaseLost { holder: "ci/2".into() });
        assert_eq!(lost.exit_code(), ExitCode::External);
        assert!(lost.message().unwrap_or_default().contains("ci/2"));
        assert_eq!(Verdict::Stopped(StopReason::Signal("SIGTERM")).result(), RunResult::Stopped);
    }
}
