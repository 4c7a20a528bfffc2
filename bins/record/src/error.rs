//! The one error type of the record step, and the exit codes it ends with.

use statuspage_common::ExitCode;
use statuspage_common::exit::HasExitCode;

/// Exit code when GitHub could not be written to (unreachable, 5xx, rate limited beyond the
/// bound, or, after the rollout, any refusal): the deploy itself is unaffected. The actions
/// turn it into a warning so the record never fails a deploy that succeeded in the cluster.
pub const EXIT_NOT_RECORDED: u8 = 6;

/// Everything that can stop a record.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// A flag or variable is missing or malformed.
    #[error("{what} is invalid: {fix}")]
    BadInput {
        /// The flag or variable, and the value when it helps.
        what: String,
        /// What to do.
        fix: String,
    },
    /// The release document is unreadable or malformed.
    #[error(transparent)]
    Release(#[from] statuspage_common::release::ReleaseError),
    /// The overlay or its re-patch failed.
    #[error(transparent)]
    Patch(#[from] statuspage_patch_overlay::PatchError),
    /// 401: the token is missing, expired or revoked.
    #[error(
        "GitHub refused the token (401) when trying to {operation}: pass the job's token (`token: ${{{{ github.token }}}}` or GITHUB_TOKEN); a token made for an earlier job has expired"
    )]
    Unauthorized {
        /// What was being done.
        operation: String,
    },
    /// 403 that is not a rate limit: the token lacks a permission.
    #[error(
        "GitHub refused to {operation} in {repository} (403: {message}): the token needs `{permission}`; grant it in the job's `permissions:` block"
    )]
    Forbidden {
        /// What was being done.
        operation: String,
        /// `owner/name`.
        repository: String,
        /// The permission the operation needs, as written in a workflow.
        permission: &'static str,
        /// GitHub's message.
        message: String,
    },
    /// 404: wrong repository, or a private one the token cannot see.
    #[error(
        "GitHub answered 404 when trying to {operation}: repository {repository} does not exist or the token cannot see it; check GITHUB_REPOSITORY and that the job grants `{permission}`"
    )]
    NotFound {
        /// What was being done.
        operation: String,
        /// `owner/name`.
        repository: String,
        /// The permission the operation needs.
        permission: &'static str,
    },
    /// GitHub refused the request's content (422, 409, 400) and no retry can help.
    #[error("GitHub refused to {operation} ({status}): {message}")]
    Rejected {
        /// What was being done.
        operation: String,
        /// The HTTP status.
        status: u16,
        /// GitHub's message and errors.
        message: String,
    },
    /// Rate limited for longer than the bound.
    #[error(
        "GitHub rate limit when trying to {operation}: it would lift in {wait_seconds}s, beyond the {bound_seconds}s this step waits; run the job again later"
    )]
    RateLimited {
        /// What was being done.
        operation: String,
        /// How long GitHub asked to wait.
        wait_seconds: u64,
        /// The configured bound.
        bound_seconds: u64,
    },
    /// 5xx or a transport failure, after retries.
    #[error("GitHub is unavailable: could not {operation} after {attempts} attempts: {last}")]
    Unavailable {
        /// What was being done.
        operation: String,
        /// Attempts made.
        attempts: u32,
        /// The last status or transport error.
        last: String,
    },
    /// The branch kept moving while we tried to commit.
    #[error(
        "branch {branch} moved {attempts} times while committing the overlay; gave up without forcing: run the record step again"
    )]
    BranchKeptMoving {
        /// The branch.
        branch: String,
        /// Attempts made.
        attempts: u32,
    },
    /// An answer GitHub should not give (a field missing).
    #[error("unexpected answer from GitHub when trying to {operation}: {what}")]
    Unexpected {
        /// What was being done.
        operation: String,
        /// What was wrong.
        what: String,
    },
    /// Rendering the overlay (for the Ingress host) failed.
    #[error("cannot render {overlay} for its Ingress host: {message}; pass --environment-url instead")]
    Render {
        /// The overlay.
        overlay: String,
        /// Why.
        message: String,
    },
    /// A file could not be read.
    #[error("cannot read {path}: {message}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        message: String,
    },
    /// Writing Actions outputs failed.
    #[error(transparent)]
    Output(#[from] statuspage_common::actions::ActionsIoError),
}

impl RecordError {
    /// True when GitHub itself failed (unreachable, 5xx, rate limit beyond the bound), as
    /// opposed to a configuration the user must fix.
    pub fn is_outage(&self) -> bool {
        matches!(self, RecordError::Unavailable { .. } | RecordError::RateLimited { .. })
    }

    /// True when the error came from GitHub's API (any answer or none).
    pub fn is_github(&self) -> bool {
        matches!(
            self,
            RecordError::Unauthorized { .. }
                | RecordError::Forbidden { .. }
                | RecordError::NotFound { .. }
                | RecordError::Rejected { .. }
                | RecordError::RateLimited { .. }
                | RecordError::Unavailable { .. }
                | RecordError::BranchKeptMoving { .. }
                | RecordError::Unexpected { .. }
        )
    }
}

impl HasExitCode for RecordError {
    fn exit_code(&self) -> ExitCode {
        if self.is_github() { ExitCode::External } else { ExitCode::Usage }
    }
}
