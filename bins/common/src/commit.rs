//! Which commit is being shipped: `--sha`, then `GITHUB_SHA`, then `git rev-parse HEAD`.

use std::path::Path;
use std::process::Command;

/// The commit an image is built from, and whether the work tree differed from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Commit {
    /// Full 40-character lowercase hex SHA.
    pub sha: String,
    /// True when the work tree had uncommitted changes (only allowed when the caller says so).
    pub dirty: bool,
}

impl Commit {
    /// The image tag for this commit: the full SHA, with `-dirty` appended for a dirty tree.
    pub fn tag(&self) -> String {
        if self.dirty { format!("{}-dirty", self.sha) } else { self.sha.clone() }
    }
}

/// Why no commit could be determined.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CommitError {
    /// A given SHA is not 40 hex characters.
    #[error("{source_name} value {value:?} is not a full commit SHA: give all 40 hex characters")]
    Malformed {
        /// Where the value came from (`--sha`, `GITHUB_SHA`, `git rev-parse HEAD`).
        source_name: &'static str,
        /// The value.
        value: String,
    },
    /// Not in a git work tree, and no SHA given.
    #[error("no commit SHA: pass --sha or GITHUB_SHA, or run inside a git work tree ({0})")]
    NoGit(String),
    /// The tree has changes and the caller did not allow that.
    #[error(
        "the work tree in {0} has uncommitted changes: commit them, or pass --allow-dirty to tag the images <sha>-dirty"
    )]
    Dirty(String),
}

/// Check that `value` is a 40-character hex SHA and lowercase it.
pub fn validate_sha(source_name: &'static str, value: &str) -> Result<String, CommitError> {
    let trimmed = value.trim();
    if trimmed.len() == 40 && trimmed.chars().all(|c| c.is_ascii_hexdigit()) {
        Ok(trimmed.to_ascii_lowercase())
    } else {
        Err(CommitError::Malformed { source_name, value: value.to_string() })
    }
}

/// Resolve the commit to ship.
///
/// An explicit `sha` wins, then `github_sha` (the `GITHUB_SHA` of a workflow run); neither is
/// checked for dirtiness because the caller vouches for them. Otherwise `git` in `repo_dir` is
/// asked, and a dirty tree is refused unless `allow_dirty`.
pub fn resolve(
    sha: Option<&str>,
    github_sha: Option<&str>,
    repo_dir: &Path,
    allow_dirty: bool,
) -> Result<Commit, CommitError> {
    if let Some(value) = sha.filter(|s| !s.is_empty()) {
        return Ok(Commit { sha: validate_sha("--sha", value)?, dirty: false });
    }
    if let Some(value) = github_sha.filter(|s| !s.is_empty()) {
        return Ok(Commit { sha: validate_sha("GITHUB_SHA", value)?, dirty: false });
    }
    let head = git(repo_dir, &["rev-parse", "HEAD"])?;
    let sha = validate_sha("git rev-parse HEAD", &head)?;
    let status = git(repo_dir, &["status", "--porcelain", "--untracked-files=no"])?;
    let dirty = !status.trim().is_empty();
    if dirty && !allow_dirty {
        return Err(CommitError::Dirty(repo_dir.display().to_string()));
    }
    Ok(Commit { sha, dirty })
}

fn git(dir: &Path, args: &[&str]) -> Result<String, CommitError> {
    let output = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .map_err(|e| CommitError::NoGit(format!("cannot run git: {e}")))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(CommitError::NoGit(stderr.lines().next().unwrap_or("git failed").to_string()));
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA: &str = "0123456789abcdef0123456789abcdef01234567";

    fn git_in(dir: &Path, args: &[&str]) {
        let ok = Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(["-c", "user.email=t@t", "-c", "user.name=t"])
            .args(args)
            .output()
            .unwrap()
            .status
            .success();
        assert!(ok, "git {args:?}");
    }

    #[test]
    fn explicit_sha_wins_and_is_lowercased() {
        let c = resolve(Some(&SHA.to_uppercase()), Some("x"), Path::new("/nonexistent"), false);
        assert_eq!(c.unwrap(), Commit { sha: SHA.into(), dirty: false });
    }

    #[test]
    fn github_sha_is_second() {
        let c = resolve(None, Some(SHA), Path::new("/nonexistent"), false).unwrap();
        assert_eq!(c.tag(), SHA);
    }

    #[test]
    fn short_sha_is_refused_with_its_source() {
        let err = resolve(Some("abc123"), None, Path::new("."), false).unwrap_err();
        assert!(err.to_string().contains("--sha value \"abc123\""), "{err}");
    }

    #[test]
    fn outside_git_says_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let err = resolve(None, None, dir.path(), false).unwrap_err();
        assert!(matches!(err, CommitError::NoGit(_)));
        assert!(err.to_string().contains("pass --sha"));
    }

    #[test]
    fn dirty_tree_is_refused_unless_allowed() {
        let dir = tempfile::tempdir().unwrap();
        git_in(dir.path(), &["init", "-q"]);
        std::fs::write(dir.path().join("f"), "1").unwrap();
        git_in(dir.path(), &["add", "f"]);
        git_in(dir.path(), &["commit", "-qm", "one"]);
        let clean = resolve(None, None, dir.path(), false).unwrap();
        assert!(!clean.dirty);
        std::fs::write(dir.path().join("f"), "2").unwrap();
        assert!(matches!(resolve(None, None, dir.path(), false), Err(CommitError::Dirty(_))));
        let dirty = resolve(None, None, dir.path(), true).unwrap();
        assert_eq!(dirty.tag(), format!("{}-dirty", clean.sha));
    }
}
