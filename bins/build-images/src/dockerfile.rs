//! Just enough Dockerfile parsing to validate a build before it starts (stage names and ARGs)
//! and to plan its cache (which stages the targets only `COPY --from`).

use std::collections::BTreeSet;

/// What a Dockerfile declares, with the line each declaration is on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DockerfileInfo {
    /// Named stages (`FROM … AS name`), lowercased as the builders treat them, in file order.
    pub stages: Vec<Stage>,
    /// Every `ARG` name, global or per stage.
    pub args: BTreeSet<String>,
    /// Lines whose instruction no builder knows (a typo such as `FRM`): (line, word).
    pub unknown: Vec<(u32, String)>,
}

/// Every Dockerfile instruction (Dockerfile reference, docs.docker.com/reference/dockerfile).
pub const INSTRUCTIONS: &[&str] = &[
    "ADD",
    "ARG",
    "CMD",
    "COPY",
    "ENTRYPOINT",
    "ENV",
    "EXPOSE",
    "FROM",
    "HEALTHCHECK",
    "LABEL",
    "MAINTAINER",
    "ONBUILD",
    "RUN",
    "SHELL",
    "STOPSIGNAL",
    "USER",
    "VOLUME",
    "WORKDIR",
];

/// One named stage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stage {
    /// The stage name.
    pub name: String,
    /// 1-based line of its `FROM`.
    pub line: u32,
    /// What it starts `FROM`, lowercased: another stage's name or an image reference.
    pub parent: String,
    /// Stages or images it `COPY --from`s, lowercased.
    pub copies_from: Vec<String>,
    /// True when the stage itself has a `RUN` (work worth caching).
    pub runs: bool,
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
        let mut current: Option<usize> = None;
        for (line_no, instruction) in logical_lines(text) {
            let mut words = instruction.split_whitespace();
            let Some(keyword) = words.next() else { continue };
            match keyword.to_ascii_uppercase().as_str() {
                "FROM" => {
                    let rest: Vec<&str> = words.filter(|w| !w.starts_with("--")).collect();
                    current = None;
                    if let [parent, as_kw, name] = rest.as_slice()
                        && as_kw.eq_ignore_ascii_case("as")
                    {
                        current = Some(info.stages.len());
                        info.stages.push(Stage {
                            name: name.to_ascii_lowercase(),
                            line: line_no,
                            parent: parent.to_ascii_lowercase(),
                            copies_from: Vec::new(),
                            runs: false,
                        });
                    }
                }
                "COPY" | "ADD" => {
                    let from =
                        words.take_while(|w| w.starts_with("--")).find_map(|w| w.strip_prefix("--from="));
                    if let (Some(from), Some(index)) = (from, current) {
                        info.stages[index].copies_from.push(from.to_ascii_lowercase());
                    }
                }
                "RUN" => {
                    if let Some(index) = current {
                        info.stages[index].runs = true;
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
                word if !INSTRUCTIONS.contains(&word) => info.unknown.push((line_no, keyword.to_string())),
                _ => {}
            }
        }
        info
    }

    /// True when `name` is a stage of this Dockerfile.
    pub fn has_stage(&self, name: &str) -> bool {
        self.stages.iter().any(|s| s.name == name.to_ascii_lowercase())
    }

    fn stage(&self, name: &str) -> Option<&Stage> {
        self.stages.iter().find(|s| s.name == name)
    }

    /// `name` and every stage it is built `FROM`, nearest first.
    fn chain(&self, name: &str) -> Vec<&Stage> {
        let mut out: Vec<&Stage> = Vec::new();
        let mut next = self.stage(name);
        while let Some(stage) = next.filter(|s| !out.iter().any(|o| o.name == s.name)) {
            out.push(stage);
            next = self.stage(&stage.parent);
        }
        out
    }

    /// Stages whose work the `targets` need but that no target is built `FROM`: the stages
    /// reached only through `COPY --from` (e.g. a `builder` with compilers and wheels) and
    /// having a `RUN` of their own. Their layers are not in any target image, so a target's
    /// inline cache cannot bring them to another machine; the build exports each as a cache
    /// image of its own. In file order.
    pub fn copied_only_stages(&self, targets: &[&str]) -> Vec<String> {
        let in_targets: BTreeSet<&str> = targets
            .iter()
            .flat_map(|t| self.chain(&t.to_ascii_lowercase()))
            .map(|s| s.name.as_str())
            .collect();
        let mut reached: BTreeSet<&str> = BTreeSet::new();
        let mut queue: Vec<&str> = in_targets.iter().copied().collect();
        while let Some(name) = queue.pop() {
            let Some(stage) = self.stage(name) else { continue };
            for from in &stage.copies_from {
                for copied in self.chain(from) {
                    if reached.insert(copied.name.as_str()) {
                        queue.push(copied.name.as_str());
                    }
                }
            }
        }
        self.stages
            .iter()
            .filter(|s| s.runs && reached.contains(s.name.as_str()) && !in_targets.contains(s.name.as_str()))
            .map(|s| s.name.clone())
            .collect()
    }

    /// True when `--build-arg name=…` would be used by this Dockerfile.
    pub fn accepts_arg(&self, name: &str) -> bool {
        self.args.contains(name) || PREDEFINED_ARGS.contains(&name)
    }
}

/// The heredoc terminators a line opens (`RUN <<EOF`, `COPY <<-"END" /x`), in order.
fn heredoc_words(line: &str) -> Vec<String> {
    line.match_indices("<<")
        .filter_map(|(at, _)| {
            let rest = line[at + 2..].trim_start_matches('-');
            let word: String = rest
                .trim_matches(|c| c == '"' || c == '\'')
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            (!word.is_empty()).then_some(word)
        })
        .collect()
}

/// Instructions with their starting line, continuations joined, heredoc bodies skipped.
fn logical_lines(text: &str) -> Vec<(u32, String)> {
    let mut out = Vec::new();
    let mut current: Option<(u32, String)> = None;
    let mut heredocs: Vec<String> = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line_no = index as u32 + 1;
        let trimmed = raw.trim();
        if let Some(word) = heredocs.first() {
            if trimmed == word {
                heredocs.remove(0);
            }
            continue;
        }
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
            heredocs = heredoc_words(&done.1);
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
    fn copied_only_stages_are_the_ones_no_target_is_built_from() {
        let info = DockerfileInfo::parse(
            "ARG BASE_IMAGE=python:3.11\nFROM ${BASE_IMAGE} AS base\nRUN apt-get update\n\
             FROM scratch AS statuspage-source\nCOPY source/ /\n\
             FROM base AS builder\nCOPY --from=statuspage-source / /src\nRUN pip install\n\
             FROM base AS runtime\nRUN useradd x\nCOPY --chown=1:1 --from=builder /opt/venv /opt/venv\n\
             FROM runtime AS worker\nFROM runtime AS web\nFROM base AS unused\nRUN make\n",
        );
        assert_eq!(info.copied_only_stages(&["web", "worker"]), ["builder"]);
        assert_eq!(info.copied_only_stages(&["builder"]), Vec::<String>::new());
        let builder = info.stages.iter().find(|s| s.name == "builder").unwrap();
        assert_eq!(
            (builder.parent.as_str(), builder.copies_from.as_slice()),
            ("base", &["statuspage-source".to_string()][..])
        );
    }

    #[test]
    fn the_parents_of_a_copied_stage_are_copied_only_too_in_file_order() {
        // images/Dockerfile's shape: `packages` (compilers, locked virtualenv) is the parent of
        // `builder`, which the runtime copies from; `base` is every target's parent.
        let info = DockerfileInfo::parse(
            "FROM python AS base\nRUN true\nFROM base AS packages\nRUN pip install\n\
             FROM packages AS builder\nRUN mkdocs build\nFROM base AS runtime\nRUN useradd x\n\
             COPY --from=builder /opt/venv /opt/venv\nFROM runtime AS web\n",
        );
        assert_eq!(info.copied_only_stages(&["web"]), ["packages", "builder"]);
    }

    #[test]
    fn unknown_instructions_are_found_and_heredoc_bodies_are_not_instructions() {
        let info = DockerfileInfo::parse(
            "FROM scratch AS a\nRUN <<EOF\nset -e\necho hi\nEOF\nCOPY <<-\"CONF\" /etc/x\nkey = value\nCONF\nFRM b\n",
        );
        assert_eq!(info.unknown, [(9, "FRM".to_string())]);
    }

    #[test]
    fn predefined_args_are_always_accepted() {
        let info = DockerfileInfo::parse("FROM scratch AS a\n");
        assert!(info.accepts_arg("HTTPS_PROXY"));
        assert!(!info.accepts_arg("UNKNOWN"));
    }
}
