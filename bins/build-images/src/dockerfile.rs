//! Just enough Dockerfile parsing to validate a build before it starts: stage names and ARGs.

use std::collections::BTreeSet;

/// What a Dockerfile declares, with the line each declaration is on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DockerfileInfo {
    /// Named stages (`FROM … AS name`), lowercased as the builders treat them, in file order.
    pub stages: Vec<Stage>,
    /// Every `ARG` name, global or per stage.
    pub args: BTreeSet<String>,
}

/// One named stage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stage {
    /// The stage name.
    pub name: String,
    /// 1-based line of its `FROM`.
    pub line: u32,
}

/// Build args every builder accepts without an `ARG` line.
pub const PREDEFINED_ARGS: &[&str] = &[
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "FTP_PROXY",
    "ftp_proxy",
    "NO_PROXY",
    "no_proxy",
    "ALL_PROXY",
    "all_proxy",
    "BUILDKIT_INLINE_CACHE",
    "SOURCE_DATE_EPOCH",
];

impl DockerfileInfo {
    /// Parse Dockerfile text: joins `\` continuations, ignores comments and parser directives.
    pub fn parse(text: &str) -> Self {
        let mut info = DockerfileInfo::default();
        for (line_no, instruction) in logical_lines(text) {
            let mut words = instruction.split_whitespace();
            let Some(keyword) = words.next() else { continue };
            match keyword.to_ascii_uppercase().as_str() {
                "FROM" => {
                    let rest: Vec<&str> = words.filter(|w| !w.starts_with("--")).collect();
                    if let [_, as_kw, name] = rest.as_slice()
                        && as_kw.eq_ignore_ascii_case("as")
                    {
                        info.stages.push(Stage { name: name.to_ascii_lowercase(), line: line_no });
                    }
                }
                "ARG" => {
                    for decl in words {
                        let name = decl.split('=').next().unwrap_or_default();
                        if !name.is_empty() {
                            info.args.insert(name.to_string());
                        }
                    }
                }
                _ => {}
            }
        }
        info
    }

    /// True when `name` is a stage of this Dockerfile.
    pub fn has_stage(&self, name: &str) -> bool {
        self.stages.iter().any(|s| s.name == name.to_ascii_lowercase())
    }

    /// True when `--build-arg name=…` would be used by this Dockerfile.
    pub fn accepts_arg(&self, name: &str) -> bool {
        self.args.contains(name) || PREDEFINED_ARGS.contains(&name)
    }
}

/// Instructions with their starting line, continuations joined.
fn logical_lines(text: &str) -> Vec<(u32, String)> {
    let mut out = Vec::new();
    let mut current: Option<(u32, String)> = None;
    for (index, raw) in text.lines().enumerate() {
        let line_no = index as u32 + 1;
        let trimmed = raw.trim();
        if trimmed.starts_with('#') && current.is_none() {
            continue;
        }
        if trimmed.starts_with('#') {
            continue; // comment inside a continuation
        }
        let (body, continues) = match trimmed.strip_suffix('\\') {
            Some(body) => (body, true),
            None => (trimmed, false),
        };
        match current.as_mut() {
            Some((_, text)) => {
                text.push(' ');
                text.push_str(body);
            }
            None if body.is_empty() => continue,
            None => current = Some((line_no, body.to_string())),
        }
        if !continues && let Some(done) = current.take() {
            out.push(done);
        }
    }
    out.extend(current);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "\
# syntax=docker/dockerfile:1
ARG PYTHON_VERSION=3.12
FROM --platform=$BUILDPLATFORM python:${PYTHON_VERSION} AS Builder
ARG SOURCE_SHA256 \\
    OTHER=1
RUN echo \\
  # a comment in a continuation
  done
from builder as web
FROM scratch
";

    #[test]
    fn finds_stages_with_lines_and_args() {
        let info = DockerfileInfo::parse(FILE);
        let names: Vec<_> = info.stages.iter().map(|s| (s.name.as_str(), s.line)).collect();
        assert_eq!(names, [("builder", 3), ("web", 9)]);
        assert!(info.args.contains("PYTHON_VERSION"));
        assert!(info.args.contains("SOURCE_SHA256"));
        assert!(info.args.contains("OTHER"));
        assert!(info.has_stage("WEB"));
        assert!(!info.has_stage("worker"));
    }

    #[test]
    fn predefined_args_are_always_accepted() {
        let info = DockerfileInfo::parse("FROM scratch AS a\n");
        assert!(info.accepts_arg("HTTPS_PROXY"));
        assert!(!info.accepts_arg("UNKNOWN"));
    }
}
