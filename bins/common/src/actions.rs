//! GitHub Actions I/O: outputs, step summaries, annotations, log groups and masks.
//!
//! Workflow commands (`::group::`, `::error::`, `::add-mask::`) go to **stderr**: the runner reads
//! them there as well as on stdout, and stdout stays reserved for a binary's machine-readable
//! result. Outside Actions the same calls degrade to plain readable progress lines.

use std::fmt::Write as _;
use std::fs::OpenOptions;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// True when running inside a GitHub Actions job (`GITHUB_ACTIONS=true`).
pub fn in_github_actions() -> bool {
    std::env::var("GITHUB_ACTIONS").is_ok_and(|v| v == "true")
}

/// Escape a workflow command's message (the part after `::`).
fn escape_data(text: &str) -> String {
    text.replace('%', "%25").replace('\r', "%0D").replace('\n', "%0A")
}

/// Escape a workflow command property value (`file=`, `title=`, ...).
fn escape_property(text: &str) -> String {
    escape_data(text).replace(':', "%3A").replace(',', "%2C")
}

/// An `::error`/`::warning`/`::notice` annotation, optionally pointing at a file and line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Annotation {
    level: &'static str,
    message: String,
    file: Option<String>,
    line: Option<u32>,
    title: Option<String>,
}

impl Annotation {
    /// An error annotation.
    pub fn error(message: impl Into<String>) -> Self {
        Self::new("error", message)
    }

    /// A warning annotation.
    pub fn warning(message: impl Into<String>) -> Self {
        Self::new("warning", message)
    }

    fn new(level: &'static str, message: impl Into<String>) -> Self {
        Self { level, message: message.into(), file: None, line: None, title: None }
    }

    /// Point the annotation at a file (relative to the repository root) and a 1-based line.
    pub fn at(mut self, file: impl Into<String>, line: Option<u32>) -> Self {
        self.file = Some(file.into());
        self.line = line;
        self
    }

    /// A short title shown above the message.
    pub fn title(mut self, title: impl Into<String>) -> Self {
        self.title = Some(title.into());
        self
    }

    /// The workflow command line, without a trailing newline.
    pub fn to_command(&self) -> String {
        let mut props = Vec::new();
        if let Some(file) = &self.file {
            props.push(format!("file={}", escape_property(file)));
        }
        if let Some(line) = self.line {
            props.push(format!("line={line}"));
        }
        if let Some(title) = &self.title {
            props.push(format!("title={}", escape_property(title)));
        }
        let props = if props.is_empty() { String::new() } else { format!(" {}", props.join(",")) };
        format!("::{}{}::{}", self.level, props, escape_data(&self.message))
    }

    /// Write the annotation to stderr.
    pub fn emit(&self) {
        eprintln!("{}", self.to_command());
    }
}

/// Ask the runner to mask `secret` in every later log line. Does nothing for an empty value.
pub fn add_mask(secret: &str) {
    if in_github_actions() && !secret.is_empty() {
        // One command per line: a multi-line secret is masked line by line.
        for line in secret.lines().filter(|l| !l.is_empty()) {
            eprintln!("::add-mask::{}", escape_data(line));
        }
    }
}

/// Where progress goes: Actions log groups, or plain lines for a person at a terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogStyle {
    /// `::group::` / `::endgroup::` around each section.
    Actions,
    /// `==> section` headers.
    Plain,
}

impl LogStyle {
    /// The style for the current process.
    pub fn detect() -> Self {
        if in_github_actions() { LogStyle::Actions } else { LogStyle::Plain }
    }

    /// Open a section; the returned guard closes it when dropped.
    pub fn group(self, title: &str) -> Group {
        match self {
            LogStyle::Actions => eprintln!("::group::{}", escape_data(title)),
            LogStyle::Plain => eprintln!("==> {title}"),
        }
        Group { style: self }
    }
}

/// An open log section; closes on drop.
#[derive(Debug)]
pub struct Group {
    style: LogStyle,
}

impl Drop for Group {
    fn drop(&mut self) {
        if self.style == LogStyle::Actions {
            eprintln!("::endgroup::");
        }
    }
}

/// Writer for the file named by `$GITHUB_OUTPUT` (or any file in the same format).
#[derive(Debug, Clone)]
pub struct OutputFile {
    path: PathBuf,
}

/// Errors writing Actions files.
#[derive(Debug, thiserror::Error)]
pub enum ActionsIoError {
    /// An output name that the runner would misread.
    #[error("output name {0:?} is invalid: use letters, digits, '-' and '_' only")]
    BadName(String),
    /// The file could not be written.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
}

impl OutputFile {
    /// The `$GITHUB_OUTPUT` file, when the variable is set and non-empty.
    pub fn from_env() -> Option<Self> {
        std::env::var_os("GITHUB_OUTPUT").filter(|v| !v.is_empty()).map(Self::new)
    }

    /// A writer for an explicit path.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    /// Append `name=value`. Values with line breaks use a heredoc whose delimiter is random and
    /// checked not to occur in the value, so a value can never inject another output.
    pub fn set(&self, name: &str, value: &str) -> Result<(), ActionsIoError> {
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
            return Err(ActionsIoError::BadName(name.to_string()));
        }
        let mut record = String::new();
        if value.contains('\n') || value.contains('\r') {
            let delimiter = loop {
                let candidate = format!("ghadelimiter_{}", uuid::Uuid::new_v4());
                if !value.contains(&candidate) {
                    break candidate;
                }
            };
            let _ = write!(record, "{name}<<{delimiter}\n{value}\n{delimiter}\n");
        } else {
            let _ = writeln!(record, "{name}={value}");
        }
        append(&self.path, &record)
    }
}

/// Append Markdown to `$GITHUB_STEP_SUMMARY` when it is set; a no-op otherwise.
pub fn append_step_summary(markdown: &str) -> Result<(), ActionsIoError> {
    match std::env::var_os("GITHUB_STEP_SUMMARY").filter(|v| !v.is_empty()) {
        Some(path) => append(Path::new(&path), markdown),
        None => Ok(()),
    }
}

fn append(path: &Path, text: &str) -> Result<(), ActionsIoError> {
    let write = || -> io::Result<()> {
        let mut file = OpenOptions::new().create(true).append(true).open(path)?;
        file.write_all(text.as_bytes())
    };
    write().map_err(|source| ActionsIoError::Write { path: path.to_path_buf(), source })
}

/// Escape text for a Markdown table cell.
pub fn markdown_cell(text: &str) -> String {
    text.replace('|', "\\|").replace(['\n', '\r'], " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn annotation_escapes_message_and_properties() {
        let line = Annotation::error("bad: 100%\nsecond line")
            .at("manifests/a,b.yaml", Some(7))
            .title("x:y")
            .to_command();
        assert_eq!(line, "::error file=manifests/a%2Cb.yaml,line=7,title=x%3Ay::bad: 100%25%0Asecond line");
    }

    #[test]
    fn annotation_without_location() {
        assert_eq!(Annotation::warning("careful").to_command(), "::warning::careful");
    }

    #[test]
    fn single_line_output() {
        let dir = tempfile::tempdir().unwrap();
        let out = OutputFile::new(dir.path().join("out"));
        out.set("image-tag", "abc").unwrap();
        assert_eq!(std::fs::read_to_string(dir.path().join("out")).unwrap(), "image-tag=abc\n");
    }

    #[test]
    fn multi_line_output_cannot_inject_another_output() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out");
        let out = OutputFile::new(&path);
        let hostile = "line1\nEOF\nevil=1\nghadelimiter_\n";
        out.set("release", hostile).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let header = text.lines().next().unwrap();
        let delimiter = header.strip_prefix("release<<").unwrap();
        assert!(delimiter.starts_with("ghadelimiter_") && delimiter.len() > 20);
        // The value comes back whole between the header and the delimiter.
        let body: Vec<&str> = text.lines().skip(1).take_while(|l| *l != delimiter).collect();
        assert_eq!(body.join("\n"), hostile);
        assert_eq!(text.lines().last().unwrap(), delimiter);
    }

    #[test]
    fn output_names_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let out = OutputFile::new(dir.path().join("out"));
        assert!(matches!(out.set("a=b", "x"), Err(ActionsIoError::BadName(_))));
        assert!(matches!(out.set("a\nb", "x"), Err(ActionsIoError::BadName(_))));
    }

    #[test]
    fn markdown_cells_escape_pipes() {
        assert_eq!(markdown_cell("a|b\nc"), "a\\|b c");
    }
}
