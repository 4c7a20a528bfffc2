//! The overlay change committed back to the branch through the Git Data API, so the repository
//! states what is deployed; a pull request instead when the branch is protected or asked for.
//!
//! Never forced: the branch is moved with `force: false`, so a concurrent push makes GitHub
//! refuse the update; then the branch is read again, the release is applied again to the file
//! as it now is, and the commit is retried, a bounded number of times.

use std::path::Path;

use base64::Engine as _;
use serde_json::{Value, json};
use statuspage_patch_overlay::DesiredImage;

use crate::RecordError;
use crate::github::{Api, Operation, field};

const READ_BRANCH: Operation = Operation { what: "read the branch", permission: "contents: read" };
const READ_FILE: Operation = Operation { what: "read the overlay file", permission: "contents: read" };
const TREE: Operation =
    Operation { what: "create a tree for the overlay commit", permission: "contents: write" };
const COMMIT: Operation = Operation { what: "create the overlay commit", permission: "contents: write" };
const MOVE: Operation =
    Operation { what: "move the branch to the overlay commit", permission: "contents: write" };
const BRANCH: Operation =
    Operation { what: "create the pull request's branch", permission: "contents: write" };
const PULL: Operation = Operation { what: "open a pull request", permission: "pull-requests: write" };

/// Commit directly, or always open a pull request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Commit to the branch; a pull request when it is protected.
    Commit,
    /// Always a pull request.
    PullRequest,
}

/// What to write back, and where.
#[derive(Debug, Clone)]
pub struct WriteBack {
    /// The branch the deploy ran from (e.g. `main`).
    pub branch: String,
    /// The kustomization's path in the repository.
    pub path: String,
    /// The commit the deploy ran from (`GITHUB_SHA`): while the branch is still there, the
    /// runner's patched file is the new content.
    pub commit: String,
    /// The runner's patched kustomization.
    pub patched: String,
    /// The release's images, to apply again to the file when the branch has moved.
    pub images: Vec<DesiredImage>,
    /// The commit message (and pull request title: its first line).
    pub message: String,
    /// The branch a pull request comes from.
    pub pr_branch: String,
    /// Commit or pull request.
    pub mode: Mode,
    /// Attempts when the branch moves meanwhile.
    pub attempts: u32,
}

/// What the write-back did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Written {
    /// The branch already states the release.
    Unchanged,
    /// Committed to the branch.
    Committed {
        /// The new commit.
        sha: String,
    },
    /// A pull request was opened.
    PullRequest {
        /// Its number.
        number: u64,
        /// Its page.
        url: String,
    },
}

/// Encode a path segment (a branch name may contain `/`), as GitHub's clients do.
fn segment(text: &str) -> String {
    let mut out = String::new();
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(byte as char),
            other => out.push_str(&format!("%{other:02X}")),
        }
    }
    out
}

/// The branch's head commit, its tree, and whether it is protected.
struct Head {
    commit: String,
    tree: String,
    protected: bool,
}

async fn head(api: &Api, branch: &str) -> Result<Head, RecordError> {
    let answer = api
        .call(READ_BRANCH, "GET", api.endpoints().repo_path(&format!("/branches/{}", segment(branch))), None)
        .await?;
    Ok(Head {
        commit: field(&answer, "/commit/sha", READ_BRANCH)?.to_string(),
        tree: field(&answer, "/commit/commit/tree/sha", READ_BRANCH)?.to_string(),
        protected: answer.get("protected").and_then(Value::as_bool).unwrap_or(false),
    })
}

/// The file's new content on top of `head`: the runner's patched file while the branch is
/// still at the deployed commit, else the release applied again to the file as it now is.
async fn content(api: &Api, spec: &WriteBack, head: &Head) -> Result<String, RecordError> {
    if head.commit == spec.commit {
        return Ok(spec.patched.clone());
    }
    eprintln!(
        "GitHub: {} moved to {}; applying the release to its {} again",
        spec.branch, head.commit, spec.path
    );
    let path = spec.path.split('/').map(segment).collect::<Vec<_>>().join("/");
    let answer = api
        .call(
            READ_FILE,
            "GET",
            api.endpoints().repo_path(&format!("/contents/{path}?ref={}", head.commit)),
            None,
        )
        .await?;
    let encoded: String =
        field(&answer, "/content", READ_FILE)?.chars().filter(|c| !c.is_whitespace()).collect();
    let bytes =
        base64::engine::general_purpose::STANDARD.decode(&encoded).map_err(|e| RecordError::Unexpected {
            operation: READ_FILE.what.to_string(),
            what: format!("content is not base64: {e}"),
        })?;
    let text = String::from_utf8(bytes).map_err(|_| RecordError::Unexpected {
        operation: READ_FILE.what.to_string(),
        what: format!("{} is not UTF-8", spec.path),
    })?;
    let update = statuspage_patch_overlay::kustomization::update(&text, Path::new(&spec.path), &spec.images)?;
    Ok(update.text)
}

/// A commit of `text` at `spec.path` on top of `head`; `None` when the tree would not change.
async fn commit(api: &Api, spec: &WriteBack, head: &Head, text: &str) -> Result<Option<String>, RecordError> {
    let tree = api
        .call(
            TREE,
            "POST",
            api.endpoints().repo_path("/git/trees"),
            Some(json!({
                "base_tree": head.tree,
                "tree": [{"path": spec.path, "mode": "100644", "type": "blob", "content": text}],
            })),
        )
        .await?;
    let tree = field(&tree, "/sha", TREE)?.to_string();
    if tree == head.tree {
        return Ok(None);
    }
    let answer = api
        .call(
            COMMIT,
            "POST",
            api.endpoints().repo_path("/git/commits"),
            Some(json!({"message": spec.message, "tree": tree, "parents": [head.commit]})),
        )
        .await?;
    Ok(Some(field(&answer, "/sha", COMMIT)?.to_string()))
}

/// A refusal to move the branch that a pull request can get around (protection, rulesets).
fn protected_refusal(message: &str) -> bool {
    let m = message.to_lowercase();
    m.contains("protected") || m.contains("rule") || m.contains("review")
}

/// Write the overlay change back: commit it to the branch, or open a pull request.
pub async fn write_back(api: &Api, spec: &WriteBack) -> Result<Written, RecordError> {
    for attempt in 1..=spec.attempts.max(1) {
        let head = head(api, &spec.branch).await?;
        if spec.mode == Mode::PullRequest || head.protected {
            return pull_request(api, spec, &head).await;
        }
        let text = content(api, spec, &head).await?;
        let Some(sha) = commit(api, spec, &head, &text).await? else {
            return Ok(Written::Unchanged);
        };
        let path =
            api.endpoints().repo_path(&format!("/git/refs/{}", segment(&format!("heads/{}", spec.branch))));
        match api.request(MOVE, "PATCH", path, Some(json!({"sha": sha, "force": false}))).await? {
            Ok(_) => return Ok(Written::Committed { sha }),
            Err(refusal) if protected_refusal(&refusal.message) => {
                eprintln!(
                    "GitHub: {} refuses direct commits ({}); opening a pull request",
                    spec.branch, refusal.message
                );
                return pull_request(api, spec, &head).await;
            }
            Err(refusal) => {
                eprintln!(
                    "GitHub: {} moved while committing (attempt {attempt}: {}); reading it again",
                    spec.branch, refusal.message
                );
            }
        }
    }
    Err(RecordError::BranchKeptMoving { branch: spec.branch.clone(), attempts: spec.attempts.max(1) })
}

async fn pull_request(api: &Api, spec: &WriteBack, head: &Head) -> Result<Written, RecordError> {
    let text = content(api, spec, head).await?;
    let Some(sha) = commit(api, spec, head, &text).await? else {
        return Ok(Written::Unchanged);
    };
    api.call(
        BRANCH,
        "POST",
        api.endpoints().repo_path("/git/refs"),
        Some(json!({"ref": format!("refs/heads/{}", spec.pr_branch), "sha": sha})),
    )
    .await?;
    let (title, body) = spec.message.split_once('\n').unwrap_or((spec.message.as_str(), ""));
    let answer = api
        .call(
            PULL,
            "POST",
            api.endpoints().repo_path("/pulls"),
            Some(json!({"title": title, "head": spec.pr_branch, "base": spec.branch, "body": body.trim()})),
        )
        .await?;
    Ok(Written::PullRequest {
        number: answer.get("number").and_then(Value::as_u64).unwrap_or(0),
        url: field(&answer, "/html_url", PULL)?.to_string(),
    })
}
