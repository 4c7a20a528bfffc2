//! The one place library code prints through: progress lines on stderr, `::group::` sections and
//! `::error::` annotations in GitHub Actions, `==>` headers at a terminal. Stdout is for the report.

use statuspage_common::actions::{self, Annotation, Group, LogStyle};

/// Where progress goes.
#[derive(Debug, Clone, Copy)]
pub struct Reporter {
    style: LogStyle,
}

impl Reporter {
    /// The reporter for this process (Actions when `GITHUB_ACTIONS=true`).
    pub fn detect() -> Self {
        Self { style: LogStyle::detect() }
    }

    /// A progress line.
    pub fn line(&self, text: impl AsRef<str>) {
        eprintln!("{}", text.as_ref());
    }

    /// A failure: an `::error::` annotation in Actions, and a progress line everywhere.
    pub fn error(&self, text: impl AsRef<str>) {
        if actions::in_github_actions() {
            Annotation::error(text.as_ref()).emit();
        }
        self.line(text);
    }

    /// Open a section; it closes when the guard is dropped.
    pub fn group(&self, title: &str) -> Group {
        self.style.group(title)
    }
}
