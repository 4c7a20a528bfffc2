//! Which commit is being shipped: `--sha`, then `GITHUB_SHA`, then `git rev-parse HEAD`.

use std::path::Path;
use std::process::Command;

/// The commit an image is built from, and whether the work trees differed from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Commit {
    /// Full 40-character lowercase hex SHA.
    pub sha: String,
    /// True when a work tree had uncommitted changes or untracked files that are not ignored
    /// (only allowed when the caller says so).
    pub dirty: bool,
}

impl Commit {
    /// The image tag for this commit: the full SHA; for a dirty tree `<sha>-dirty-<inputs>`, where
    /// `inputs` names the exact build inputs (e.g. 12 hex characters of the context's digest), so
    /// two different dirty states of one commit never share a tag.
    pub fn tag(&self, inputs: &str) -> String {
        if self.dirty { format!("{}-dirty-{inputs}", self.sha) } else { self.sha.clone() }
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
    /// A tree has changes and the caller did not allow that.
    #[error(
        "the work tree in {dir} has uncommitted changes or untracked files ({first}): commit or ignore them, or pass --allow-dirty to tag the images <sha>-dirty-<digest of the build inputs>"
    )]
    Dirty {
        /// The work tree.
        dir: String,
        /// The first changed path, as `git status --porcelain` prints it.
        first: String,
    },
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

/// A folder whose content goes into the build, and whether git must name it.
#[derive(Debug, Clone, Copy)]
pub struct Tree<'a> {
    /// The folder.
    pub path: &'a Path,
    /// True when a folder outside any git work tree counts as dirty (an application source tree:
    /// no commit names its content). False for files versioned elsewhere (a released action's).
    pub must_be_versioned: bool,
}

/// Resolve the commit to ship.
///
/// The SHA is an explicit `sha`, then `github_sha` (the `GITHUB_SHA` of a workflow run), then
/// `git rev-parse HEAD` in the first of `trees`. Whatever the SHA's origin, every one of `trees`
/// that is a git work tree is checked (`git status --porcelain`: tracked changes and untracked
/// files that `.gitignore` does not ignore), and one outside git counts as dirty when it
/// [`Tree::must_be_versioned`]; a dirty tree is refused unless `allow_dirty`, and then marks the
/// commit dirty (its tag then names the exact inputs, see [`Commit::tag`]).
pub fn resolve(
    sha: Option<&str>,
    github_sha: Option<&str>,
    trees: &[Tree<'_>],
    allow_dirty: bool,
) -> Result<Commit, CommitError> {
    let sha = if let Some(value) = sha.filter(|s| !s.is_empty()) {
        validate_sha("--sha", value)?
    } else if let Some(value) = github_sha.filter(|s| !s.is_empty()) {
        validate_sha("GITHUB_SHA", value)?
    } else {
        let first = trees.first().map_or(Path::new("."), |t| t.path);
        validate_sha("git rev-parse HEAD", &git(first, &["rev-parse", "HEAD"])?)?
    };
    let mut dirty = false;
    for tree in trees {
        let first_change =
            match git(tree.path, &["status", "--porcelain", "--untracked-files=all", "--", "."]) {
                Ok(status) => status.lines().find(|l| !l.trim().is_empty()).map(|l| l.trim().to_string()),
                Err(_) if tree.must_be_versioned => {
                    Some("not a git work tree: no commit names its content".into())
                }
                Err(_) => None,
            };
        if let Some(first) = first_change {
            if !allow_dirty {
                return Err(CommitError::Dirty { dir: tree.path.display().to_string(), first });
            }
            dirty = true;
        }
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

    fn tree(path: &Path) -> Tree<'_> {
        Tree { path, must_be_versioned: false }
    }

    #[test]
    fn a_source_tree_outside_git_counts_as_dirty() {
        let dir = tempfile::tempdir().unwrap();
        let source = [Tree { path: dir.path(), must_be_versioned: true }];
        let err = resolve(Some(SHA), None, &source, false).unwrap_err();
        assert!(err.to_string().contains("not a git work tree"), "{err}");
        assert!(resolve(Some(SHA), None, &source, true).unwrap().dirty);
        assert!(!resolve(Some(SHA), None, &[tree(dir.path())], false).unwrap().dirty);
    }

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
        let c = resolve(Some(&SHA.to_uppercase()), Some("x"), &[tree(Path::new("/nonexistent"))], false);
        assert_eq!(c.unwrap(), Commit { sha: SHA.into(), dirty: false });
    }

    #[test]
    fn github_sha_is_second() {
        let c = resolve(None, Some(SHA), &[tree(Path::new("/nonexistent"))], false).unwrap();
        assert_eq!(c.tag("x"), SHA);
    }

    #[test]
    fn short_sha_is_refused_with_its_source() {
        let err = resolve(Some("abc123"), None, &[tree(Path::new("."))], false).unwrap_err();
        assert!(err.to_string().contains("--sha value \"abc123\""), "{err}");
    }

    #[test]
    fn outside_git_says_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let err = resolve(None, None, &[tree(dir.path())], false).unwrap_err();
        assert!(matches!(err, CommitError::NoGit(_)));
        assert!(err.to_string().contains("pass --sha"));
    }

    #[test]
    fn dirty_tree_is_refused_unless_allowed_and_never_shares_a_tag() {
        let dir = tempfile::tempdir().unwrap();
        git_in(dir.path(), &["init", "-q"]);
        std::fs::write(dir.path().join("f"), "1").unwrap();
        git_in(dir.path(), &["add", "f"]);
        git_in(dir.path(), &["commit", "-qm", "one"]);
        let trees = [tree(dir.path())];
        let clean = resolve(None, None, &trees, false).unwrap();
        assert!(!clean.dirty);
        std::fs::write(dir.path().join("f"), "2").unwrap();
        let err = resolve(None, None, &trees, false).unwrap_err();
        assert!(err.to_string().contains("M f"), "{err}");
        let dirty = resolve(None, None, &trees, true).unwrap();
        assert_eq!(dirty.tag("abc"), format!("{}-dirty-abc", clean.sha));
        assert_ne!(dirty.tag("abc"), dirty.tag("def"));
    }

    #[test]
    fn untracked_files_count_and_an_explicit_sha_does_not_bypass_the_check() {
        let dir = tempfile::tempdir().unwrap();
        git_in(dir.path(), &["init", "-q"]);
        std::fs::write(dir.path().join(".gitignore"), "ignored\n").unwrap();
        git_in(dir.path(), &["add", ".gitignore"]);
        git_in(dir.path(), &["commit", "-qm", "one"]);
        let trees = [tree(dir.path())];
        std::fs::write(dir.path().join("ignored"), "x").unwrap();
        assert!(!resolve(Some(SHA), None, &trees, false).unwrap().dirty, "ignored files do not count");
        std::fs::write(dir.path().join("new.py"), "x").unwrap();
        let err = resolve(Some(SHA), None, &trees, false).unwrap_err();
        assert!(matches!(&err, CommitError::Dirty { first, .. } if first == "?? new.py"), "{err}");
        assert!(resolve(None, Some(SHA), &trees, true).unwrap().dirty);
    }
}
