//! Pack the build context as the engine wants it: a tar, `.dockerignore` honoured,
//! entries in a stable order with fixed timestamps so the same tree always packs the same bytes.

use std::path::{Path, PathBuf};

use globset::{Glob, GlobMatcher};

use crate::error::BuildError;

/// Name given to a Dockerfile that lives outside the context.
pub const OUTSIDE_DOCKERFILE: &str = ".statuspage.Dockerfile";

/// `.dockerignore` rules: later rules win, `!` re-includes.
#[derive(Debug, Default)]
pub struct IgnoreRules {
    rules: Vec<(GlobMatcher, bool)>,
}

impl IgnoreRules {
    /// Parse `.dockerignore` text. Invalid patterns are reported with their line.
    pub fn parse(text: &str, origin: &Path) -> Result<Self, BuildError> {
        let mut rules = Vec::new();
        for (index, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (pattern, include) = match line.strip_prefix('!') {
                Some(rest) => (rest.trim(), true),
                None => (line, false),
            };
            let pattern = pattern.trim_start_matches("./").trim_start_matches('/').trim_end_matches('/');
            let glob = Glob::new(pattern).map_err(|e| BuildError::BadInput {
                flag: ".dockerignore",
                value: format!("{}:{}: {line}", origin.display(), index + 1),
                fix: e.to_string(),
            })?;
            rules.push((glob.compile_matcher(), include));
        }
        Ok(Self { rules })
    }

    /// True when `path` (relative, `/`-separated) or one of its parent folders is excluded.
    pub fn excluded(&self, path: &str) -> bool {
        let mut excluded = false;
        for (matcher, include) in &self.rules {
            let hit =
                matcher.is_match(path) || path.match_indices('/').any(|(i, _)| matcher.is_match(&path[..i]));
            if hit {
                excluded = !include;
            }
        }
        excluded
    }
}

/// Pack `context` (and the Dockerfile, if it lives elsewhere) into a tar. Uncompressed: the
/// engine is local (a Unix socket or a runner's), where gzip costs more time than it saves.
/// Returns the bytes and the Dockerfile's name inside the archive.
pub fn pack(
    context: &Path,
    dockerfile: &Path,
    dockerfile_in_context: Option<PathBuf>,
) -> Result<(Vec<u8>, String), BuildError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| BuildError::Context { path, source }
    };
    let ignore_path = context.join(".dockerignore");
    let rules = match std::fs::read_to_string(&ignore_path) {
        Ok(text) => IgnoreRules::parse(&text, &ignore_path)?,
        Err(_) => IgnoreRules::default(),
    };
    let mut files = Vec::new();
    collect(context, context, &rules, &mut files)?;
    files.sort();

    let mut tar = tar::Builder::new(Vec::new());
    tar.mode(tar::HeaderMode::Deterministic);
    tar.follow_symlinks(false);
    for relative in &files {
        let full = context.join(relative);
        tar.append_path_with_name(&full, relative).map_err(io(&full))?;
    }
    let name = match dockerfile_in_context {
        Some(inside) => inside.to_string_lossy().replace('\\', "/"),
        None => {
            let bytes = std::fs::read(dockerfile).map_err(io(dockerfile))?;
            let mut header = tar::Header::new_gnu();
            header.set_size(bytes.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            tar.append_data(&mut header, OUTSIDE_DOCKERFILE, bytes.as_slice()).map_err(io(dockerfile))?;
            OUTSIDE_DOCKERFILE.to_string()
        }
    };
    let bytes = tar.into_inner().map_err(io(context))?;
    Ok((bytes, name))
}

fn collect(root: &Path, dir: &Path, rules: &IgnoreRules, out: &mut Vec<String>) -> Result<(), BuildError> {
    let entries =
        std::fs::read_dir(dir).map_err(|source| BuildError::Context { path: dir.to_path_buf(), source })?;
    for entry in entries {
        let entry = entry.map_err(|source| BuildError::Context { path: dir.to_path_buf(), source })?;
        let path = entry.path();
        let relative = path.strip_prefix(root).unwrap_or(&path).to_string_lossy().replace('\\', "/");
        let file_type =
            entry.file_type().map_err(|source| BuildError::Context { path: path.clone(), source })?;
        if file_type.is_dir() {
            // A folder is walked even when excluded: a `!` rule may re-include something in it.
            collect(root, &path, rules, out)?;
        } else if !rules.excluded(&relative) {
            out.push(relative);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ignore_rules_follow_docker_semantics() {
        let rules =
            IgnoreRules::parse("# c\n**/__pycache__\n*.md\n!README.md\ntests/\n", Path::new("x")).unwrap();
        assert!(rules.excluded("notes.md"));
        assert!(!rules.excluded("README.md"));
        assert!(rules.excluded("app/__pycache__/m.pyc"));
        assert!(rules.excluded("tests/test_x.py"));
        assert!(!rules.excluded("app/main.py"));
    }

    #[test]
    fn packs_deterministically_and_honours_dockerignore() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("Dockerfile"), "FROM scratch AS a\n").unwrap();
        std::fs::write(dir.path().join(".dockerignore"), "secret.txt\n").unwrap();
        std::fs::write(dir.path().join("secret.txt"), "x").unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/file"), "y").unwrap();
        let (first, name) =
            pack(dir.path(), &dir.path().join("Dockerfile"), Some("Dockerfile".into())).unwrap();
        assert_eq!(name, "Dockerfile");
        let (second, _) =
            pack(dir.path(), &dir.path().join("Dockerfile"), Some("Dockerfile".into())).unwrap();
        assert_eq!(first, second, "same tree, same bytes");
        let mut archive = tar::Archive::new(first.as_slice());
        let names: Vec<String> = archive
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, [".dockerignore", "Dockerfile", "sub/file"]);
    }

    #[test]
    fn outside_dockerfile_is_added_under_a_fixed_name() {
        let dir = tempfile::tempdir().unwrap();
        let other = tempfile::tempdir().unwrap();
        std::fs::write(other.path().join("Dockerfile"), "FROM scratch AS a\n").unwrap();
        let (_, name) = pack(dir.path(), &other.path().join("Dockerfile"), None).unwrap();
        assert_eq!(name, OUTSIDE_DOCKERFILE);
    }
}
