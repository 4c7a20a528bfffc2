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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::github::tests::{Fake, api_over};
    use serde_json::json;

    const HEAD: &str = "7fd1a60b01f91b314f59955a4e4d4e80d8edf11d";
    const MOVED: &str = "aa218f56b14c9653891f9e74264a383fa43fefbd";
    const PATH: &str = "manifests/app/overlays/production/kustomization.yaml";

    fn spec(mode: Mode) -> WriteBack {
        WriteBack {
            branch: "main".into(),
            path: PATH.into(),
            commit: HEAD.into(),
            patched: "images:\n  - name: statuspage-web\n    newTag: new\n".into(),
            images: vec![DesiredImage {
                component: "web".into(),
                name: "statuspage-web".into(),
                new_name: "r.example/statuspage-web".into(),
                new_tag: "new".into(),
                digest: None,
            }],
            message: "deploy(production): release abc is live\n\nbody".into(),
            pr_branch: "statuspage/deploy-production-1".into(),
            mode,
            attempts: 3,
        }
    }

    fn branch(sha: &str, protected: bool) -> (u16, serde_json::Value) {
        (
            200,
            json!({"name": "main", "protected": protected, "commit": {"sha": sha, "commit": {"tree": {"sha": "t0"}}}}),
        )
    }

    #[tokio::test(start_paused = true)]
    async fn commits_when_the_branch_is_where_the_deploy_started() {
        let fake = Fake::new(vec![
            branch(HEAD, false),
            (201, json!({"sha": "t1"})),
            (201, json!({"sha": "c1"})),
            (200, json!({"ref": "refs/heads/main", "object": {"sha": "c1"}})),
        ]);
        let api = api_over(&fake);
        assert_eq!(
            write_back(&api, &spec(Mode::Commit)).await.unwrap(),
            Written::Committed { sha: "c1".into() }
        );
        let sent = fake.sent();
        let route: Vec<String> = sent.iter().map(|r| format!("{} {}", r.method, r.path)).collect();
        assert_eq!(
            route,
            [
                "GET /repos/o/r/branches/main",
                "POST /repos/o/r/git/trees",
                "POST /repos/o/r/git/commits",
                "PATCH /repos/o/r/git/refs/heads%2Fmain"
            ]
        );
        let tree = sent[1].body.as_ref().unwrap();
        assert_eq!(tree["base_tree"], "t0");
        assert_eq!(tree["tree"][0]["path"], PATH);
        assert!(tree["tree"][0]["content"].as_str().unwrap().contains("newTag: new"));
        assert_eq!(sent[2].body.as_ref().unwrap()["parents"], json!([HEAD]));
        assert_eq!(sent[3].body.as_ref().unwrap(), &json!({"sha": "c1", "force": false}));
    }

    #[tokio::test(start_paused = true)]
    async fn branch_moved_rereads_reapplies_and_retries_without_force() {
        // Someone pushed between our read and our update: GitHub refuses the non-fast-forward.
        let moved_file = "# a comment someone added\nimages:\n  - name: statuspage-web\n    newTag: old\n";
        let encoded = base64::engine::general_purpose::STANDARD.encode(moved_file);
        let fake = Fake::new(vec![
            branch(HEAD, false),
            (201, json!({"sha": "t1"})),
            (201, json!({"sha": "c1"})),
            (
                422,
                json!({"message": "Update is not a fast forward", "documentation_url": "https://docs.github.com/rest"}),
            ),
            branch(MOVED, false),
            (
                200,
                json!({"type": "file", "encoding": "base64", "path": PATH, "sha": "b1", "content": encoded}),
            ),
            (201, json!({"sha": "t2"})),
            (201, json!({"sha": "c2"})),
            (200, json!({"ref": "refs/heads/main", "object": {"sha": "c2"}})),
        ]);
        let api = api_over(&fake);
        assert_eq!(
            write_back(&api, &spec(Mode::Commit)).await.unwrap(),
            Written::Committed { sha: "c2".into() }
        );
        let sent = fake.sent();
        assert_eq!(sent[5].path, format!("/repos/o/r/contents/{PATH}?ref={MOVED}"));
        let content = sent[6].body.as_ref().unwrap()["tree"][0]["content"].as_str().unwrap().to_string();
        assert!(content.starts_with("# a comment someone added\n"), "their change is kept: {content}");
        assert!(
            content.contains("newName: r.example/statuspage-web") && content.contains("newTag: new"),
            "{content}"
        );
        assert_eq!(sent[7].body.as_ref().unwrap()["parents"], json!([MOVED]));
        assert!(
            sent.iter().filter(|r| r.method == "PATCH").all(|r| r.body.as_ref().unwrap()["force"] == false)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_branch_that_keeps_moving_gives_up_after_the_bound() {
        let mut answers = Vec::new();
        for _ in 0..3 {
            answers.push(branch(HEAD, false));
            answers.push((201, json!({"sha": "t1"})));
            answers.push((201, json!({"sha": "c1"})));
            answers.push((422, json!({"message": "Update is not a fast forward"})));
        }
        let fake = Fake::new(answers);
        let api = api_over(&fake);
        let err = write_back(&api, &spec(Mode::Commit)).await.unwrap_err();
        assert!(matches!(err, RecordError::BranchKeptMoving { attempts: 3, .. }), "{err}");
        assert_eq!(fake.sent().len(), 12);
    }

    #[tokio::test(start_paused = true)]
    async fn protected_branch_gets_a_pull_request() {
        let fake = Fake::new(vec![
            branch(HEAD, true),
            (201, json!({"sha": "t1"})),
            (201, json!({"sha": "c1"})),
            (201, json!({"ref": "refs/heads/statuspage/deploy-production-1", "object": {"sha": "c1"}})),
            (201, json!({"number": 7, "html_url": "https://github.com/o/r/pull/7"})),
        ]);
        let api = api_over(&fake);
        let written = write_back(&api, &spec(Mode::Commit)).await.unwrap();
        assert_eq!(written, Written::PullRequest { number: 7, url: "https://github.com/o/r/pull/7".into() });
        let sent = fake.sent();
        assert_eq!(
            sent[3].body.as_ref().unwrap(),
            &json!({"ref": "refs/heads/statuspage/deploy-production-1", "sha": "c1"})
        );
        let pull = sent[4].body.as_ref().unwrap();
        assert_eq!(pull["head"], "statuspage/deploy-production-1");
        assert_eq!(pull["base"], "main");
        assert_eq!(pull["title"], "deploy(production): release abc is live");
    }

    #[tokio::test(start_paused = true)]
    async fn unchanged_tree_commits_nothing() {
        let fake = Fake::new(vec![branch(HEAD, false), (201, json!({"sha": "t0"}))]);
        let api = api_over(&fake);
        assert_eq!(write_back(&api, &spec(Mode::Commit)).await.unwrap(), Written::Unchanged);
        assert_eq!(fake.sent().len(), 2);
    }
}
