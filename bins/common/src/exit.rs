//! The exit-code contract every statuspage binary keeps.
//!
//! | code | meaning |
//! |------|---------|
//! | 0 | success |
//! | 1 | the thing being built or deployed failed (a failing RUN step, a rollout that did not become ready) |
//! | 2 | bad input or usage: a flag, file, field or value is wrong; nothing was changed |
//! | 3 | an external system (Docker Engine, registry, AWS, Kubernetes, GitHub) failed after retries |
//! | 4 | the rollout failed and was rolled back to the previous release |
//! | 5 | the rollout failed and the rollback failed too: a person must look now |

/// Process exit codes, see the module documentation for the contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ExitCode {
    /// Everything worked.
    Success = 0,
    /// The deployed or built thing failed.
    Failed = 1,
    /// Bad input or usage; nothing was changed.
    Usage = 2,
    /// An external system failed after retries.
    External = 3,
    /// Rolled back to the previous release.
    RolledBack = 4,
    /// Rollback failed.
    RollbackFailed = 5,
}

impl From<ExitCode> for std::process::ExitCode {
    fn from(code: ExitCode) -> Self {
        std::process::ExitCode::from(code as u8)
    }
}

/// Implemented by every crate's error type so `main` can map it to the contract.
pub trait HasExitCode {
    /// The exit code this error ends the process with.
    fn exit_code(&self) -> ExitCode;
}

/// Print an error and its whole cause chain the way every binary does, then return its exit code.
///
/// The first line is `<binary>: error: <message>`; each cause the lines so far do not already
/// show follows as `  caused by: <cause>`.
/// In GitHub Actions the message is also emitted as an `::error::` annotation.
pub fn report<E>(binary: &str, err: &E) -> ExitCode
where
    E: std::error::Error + HasExitCode,
{
    report_at(binary, err, None)
}

/// [`report`], with the annotation pointing at a file (relative to the repository) and line.
pub fn report_at<E>(binary: &str, err: &E, location: Option<(String, Option<u32>)>) -> ExitCode
where
    E: std::error::Error + HasExitCode,
{
    let text = render(binary, err);
    if crate::actions::in_github_actions() {
        let annotation = crate::actions::Annotation::error(err.to_string());
        match location {
            Some((file, line)) => annotation.at(file, line).emit(),
            None => annotation.emit(),
        }
    }
    eprintln!("{text}");
    err.exit_code()
}

/// The lines [`report_at`] prints: `<binary>: error: <message>`, then a `caused by:` line for each
/// cause whose text the lines before do not already show (a wrapper that prints its source says
/// it once).
pub fn render(binary: &str, err: &dyn std::error::Error) -> String {
    let mut text = format!("{binary}: error: {err}");
    let mut source = err.source();
    while let Some(cause) = source {
        let said = cause.to_string();
        if !text.contains(&said) {
            text.push_str(&format!("\n  caused by: {said}"));
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot read x: {source}")]
    struct Says {
        source: std::io::Error,
    }

    #[derive(Debug, thiserror::Error)]
    #[error("cannot read x")]
    struct Hides {
        #[source]
        source: std::io::Error,
    }

    #[test]
    fn a_cause_the_message_already_shows_is_not_repeated() {
        let said = render("t", &Says { source: std::io::Error::other("gone") });
        assert_eq!(said, "t: error: cannot read x: gone");
        let hidden = render("t", &Hides { source: std::io::Error::other("gone") });
        assert_eq!(hidden, "t: error: cannot read x\n  caused by: gone");
    }

    #[test]
    fn codes_are_the_documented_numbers() {
        let all = [
            (ExitCode::Success, 0),
            (ExitCode::Failed, 1),
            (ExitCode::Usage, 2),
            (ExitCode::External, 3),
            (ExitCode::RolledBack, 4),
            (ExitCode::RollbackFailed, 5),
        ];
        for (code, number) in all {
            assert_eq!(code as u8, number);
        }
    }
}
