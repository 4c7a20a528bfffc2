//! The release document: what build, push, patch and rollout hand to each other.
//!
//! ```json
//! {
//!   "version": 1,
//!   "commit": "<40 hex>",
//!   "images": {
//!     "web": {"repository": "<registry>/statuspage-web", "tag": "<sha>", "digest": "sha256:…",
//!             "image_id": "sha256:…", "size": 1234}
//!   }
//! }
//! ```
//! `build` fills `repository`, `tag`, `image_id` and `size`; `push` adds `digest`; later steps
//! only read. Unknown fields are refused so a typo never passes silently.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// The only document version this code writes and reads.
pub const RELEASE_VERSION: u32 = 1;

/// One release: a commit and the image each component runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Release {
    /// Always [`RELEASE_VERSION`].
    pub version: u32,
    /// The commit the images were built from.
    pub commit: String,
    /// Component name (`web`, `worker`, `scheduler`) to its image.
    pub images: BTreeMap<String, ReleaseImage>,
}

/// One component's image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReleaseImage {
    /// `registry/repository`, without tag.
    pub repository: String,
    /// The tag (the commit SHA, `-dirty` for a dirty tree).
    pub tag: String,
    /// Further tags given to the same image (`--extra-tag`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_tags: Vec<String>,
    /// Registry digest once pushed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// Local image ID from the engine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_id: Option<String>,
    /// Image size in bytes, as the engine reports it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// Whether this run built the image (false when skipped because it was already pushed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub built: Option<bool>,
}

/// A release document that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ReleaseError {
    /// Not JSON, or not the expected shape.
    #[error("release document {origin} is malformed: {detail}")]
    Malformed {
        /// Where it came from.
        origin: String,
        /// The parser's message (names the field and position); in the message, not repeated as a cause.
        detail: serde_json::Error,
    },
    /// A version this code does not know.
    #[error(
        "release document {origin} has version {found}; this tool reads version {RELEASE_VERSION}: use matching tool versions"
    )]
    Version {
        /// Where it came from.
        origin: String,
        /// The version found.
        found: u32,
    },
    /// Nothing to read (an empty file, or a pipe whose writer failed).
    #[error(
        "release document {origin} is empty: pass the document statuspage-build or statuspage-push printed (a pipe, or --release FILE)"
    )]
    Empty {
        /// Where it came from.
        origin: String,
    },
    /// Stdin is a terminal: nothing was piped in.
    #[error(
        "the release document is read from stdin, which is a terminal: pipe it in (statuspage-build | statuspage-push) or pass --release FILE"
    )]
    Terminal,
    /// Well-formed JSON whose values cannot be right.
    #[error(
        "release document {origin}: {field} {problem}: use the document statuspage-build or statuspage-push wrote"
    )]
    Invalid {
        /// Where it came from.
        origin: String,
        /// The field, as a path (`commit`, `images.web.digest`).
        field: String,
        /// What is wrong with its value.
        problem: String,
    },
    /// Could not read it.
    #[error(
        "cannot read release document {origin}: {source}: pass --release with the file statuspage-build or statuspage-push wrote, or - for stdin"
    )]
    Read {
        /// Where it came from.
        origin: String,
        /// Why.
        source: std::io::Error,
    },
}

impl Release {
    /// An empty release for `commit`.
    pub fn new(commit: impl Into<String>) -> Self {
        Self { version: RELEASE_VERSION, commit: commit.into(), images: BTreeMap::new() }
    }

    /// Parse and validate a document; `origin` names it in errors (a path, `stdin`).
    ///
    /// Errors: [`ReleaseError::Empty`], [`ReleaseError::Malformed`] (not JSON, not an object, a
    /// missing or unknown field), [`ReleaseError::Version`], [`ReleaseError::Invalid`] (see
    /// [`Release::validate`]). Every binary reads documents through here, so none passes on a bad one.
    pub fn parse(text: &str, origin: &str) -> Result<Self, ReleaseError> {
        if text.trim().is_empty() {
            return Err(ReleaseError::Empty { origin: origin.to_string() });
        }
        let value: serde_json::Value = serde_json::from_str(text)
            .map_err(|detail| ReleaseError::Malformed { origin: origin.to_string(), detail })?;
        if !value.is_object() {
            let invalid = |problem: &str| ReleaseError::Invalid {
                origin: origin.to_string(),
                field: "the document".into(),
                problem: problem.into(),
            };
            return Err(invalid("is not a JSON object ({\"version\": 1, \"commit\": …, \"images\": {…}})"));
        }
        if let Some(found) = value
            .get("version")
            .and_then(serde_json::Value::as_u64)
            .filter(|v| *v != u64::from(RELEASE_VERSION))
        {
            return Err(ReleaseError::Version {
                origin: origin.to_string(),
                found: found.try_into().unwrap_or(u32::MAX),
            });
        }
        let release: Release = serde_json::from_value(value)
            .map_err(|detail| ReleaseError::Malformed { origin: origin.to_string(), detail })?;
        if release.version != RELEASE_VERSION {
            return Err(ReleaseError::Version { origin: origin.to_string(), found: release.version });
        }
        release.validate(origin)?;
        Ok(release)
    }

    /// Check every value: `commit` is 40 lowercase hex; there is at least one image; each
    /// component name is a build target's (lowercase); each image's extra tags are tags; its `repository:tag` is a valid reference without a tag or digest in `repository`;
    /// `digest` and `image_id` are `sha256:` + 64 lowercase hex; an image not built (`built:
    /// false`) has its registry digest. Source: the OCI distribution reference grammar.
    pub fn validate(&self, origin: &str) -> Result<(), ReleaseError> {
        let invalid = |field: String, problem: String| ReleaseError::Invalid {
            origin: origin.to_string(),
            field,
            problem,
        };
        if !hex(&self.commit, 40) {
            return Err(invalid(
                "commit".into(),
                format!("{:?} is not a full commit SHA (40 lowercase hex)", self.commit),
            ));
        }
        if self.images.is_empty() {
            return Err(invalid("images".into(), "is empty".into()));
        }
        for (component, image) in &self.images {
            if let Err((field, problem)) = check_image(component, image) {
                return Err(invalid(field, problem));
            }
        }
        Ok(())
    }

    /// Read a document from a file, or from stdin when `path` is `-` (refused when stdin is a
    /// terminal, since nothing was piped in), then [`Release::parse`] it.
    pub fn read(path: &Path) -> Result<Self, ReleaseError> {
        let (text, origin) = Self::read_text(path)?;
        Self::parse(&text, &origin)
    }

    /// The document's text and its name in messages (`stdin` or the path), read as
    /// [`Release::read`] does, for a binary that passes the text on unchanged.
    pub fn read_text(path: &Path) -> Result<(String, String), ReleaseError> {
        use std::io::IsTerminal;
        let stdin = path.as_os_str() == "-";
        let origin = if stdin { "stdin".to_string() } else { path.display().to_string() };
        let text = if stdin {
            if std::io::stdin().is_terminal() {
                return Err(ReleaseError::Terminal);
            }
            std::io::read_to_string(std::io::stdin())
        } else {
            std::fs::read_to_string(path)
        }
        .map_err(|source| ReleaseError::Read { origin: origin.clone(), source })?;
        Ok((text, origin))
    }

    /// Pretty JSON with a trailing newline.
    pub fn to_json(&self) -> String {
        // Serializing plain maps and strings cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_default() + "\n"
    }
}

/// `s` is `n` lowercase hex digits.
fn hex(s: &str, n: usize) -> bool {
    s.len() == n && s.chars().all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
}

/// The checks of [`Release::validate`] for one image: the field (`images.<component>.<name>`)
/// and what is wrong with it.
fn check_image(component: &str, image: &ReleaseImage) -> Result<(), (String, String)> {
    let component_ok = !component.is_empty()
        && component.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c));
    if !component_ok {
        return Err((
            format!("images.{component:?}"),
            "is not a component name (a build target: lowercase letters, digits, '.', '_', '-')".into(),
        ));
    }
    let field = |name: &str| format!("images.{component}.{name}");
    let not_a_tag =
        |tag: &str| format!("{tag:?} is not a tag (1-128 of [A-Za-z0-9_.-], not starting with '.' or '-')");
    let sha256 = |s: &str| s.strip_prefix("sha256:").is_some_and(|h| hex(h, 64));
    if image.repository.contains("://") {
        let problem = format!(
            "{:?} must not carry a scheme: give host/path, e.g. reg.example/statuspage-web",
            image.repository
        );
        return Err((field("repository"), problem));
    }
    if image.repository.contains('@')
        || image.repository.rsplit('/').next().is_some_and(|last| last.contains(':'))
    {
        return Err((field("repository"), format!("{:?} must not carry a tag or digest", image.repository)));
    }
    if !crate::image_ref::valid_tag(&image.tag) {
        return Err((field("tag"), not_a_tag(&image.tag)));
    }
    let reference = format!("{}:{}", image.repository, image.tag);
    if let Err(e) = reference.parse::<crate::image_ref::ImageRef>() {
        return Err((field("repository/tag"), format!("{reference:?} is not an image reference: {e}")));
    }
    if let Some(tag) = image.extra_tags.iter().find(|t| !crate::image_ref::valid_tag(t)) {
        return Err((field("extra_tags"), not_a_tag(tag)));
    }
    if let Some(digest) = image.digest.as_deref().filter(|d| !sha256(d)) {
        return Err((field("digest"), format!("{digest:?} is not sha256:<64 lowercase hex>")));
    }
    if let Some(id) = image.image_id.as_deref().filter(|d| !sha256(d)) {
        return Err((field("image_id"), format!("{id:?} is not sha256:<64 lowercase hex>")));
    }
    if image.built == Some(false) && image.digest.is_none() {
        return Err((field("digest"), "is missing although the image was not built (built: false)".into()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let mut release = Release::new("a".repeat(40));
        release.images.insert(
            "web".into(),
            ReleaseImage {
                repository: "r/statuspage-web".into(),
                tag: "a".repeat(40),
                extra_tags: vec![],
                digest: None,
                image_id: Some(format!("sha256:{}", "1".repeat(64))),
                size: Some(10),
                built: Some(true),
            },
        );
        let text = release.to_json();
        assert!(!text.contains("digest"), "absent fields are omitted: {text}");
        assert_eq!(Release::parse(&text, "t").unwrap(), release);
    }

    fn valid() -> String {
        format!(
            r#"{{"version":1,"commit":"{c}","images":{{"web":{{"repository":"reg.example/statuspage-web","tag":"{c}","digest":"sha256:{d}","built":false}}}}}}"#,
            c = "a".repeat(40),
            d = "0".repeat(64)
        )
    }

    #[test]
    fn every_bad_value_is_named_with_its_field() {
        Release::parse(&valid(), "r.json").unwrap();
        let cases = [
            ("", "r.json is empty"),
            ("  \n", "r.json is empty"),
            ("[]", "the document is not a JSON object"),
            ("42", "the document is not a JSON object"),
            ("{\"version\":1", "is malformed"),
        ];
        for (text, want) in cases {
            let err = Release::parse(text, "r.json").unwrap_err().to_string();
            assert!(err.contains(want), "{text:?}: {err}");
        }
        let c = "a".repeat(40);
        let swaps = [
            (
                format!("\"commit\":\"{c}\""),
                "\"commit\":\"abc\"".to_string(),
                "commit \"abc\" is not a full commit SHA",
            ),
            ("sha256:0000".to_string(), "sha256:XYZ0".to_string(), "images.web.digest"),
            (
                "\"digest\"".to_string(),
                "\"image_id\":\"x\",\"digest\"".to_string(),
                "images.web.image_id \"x\"",
            ),
            (
                "reg.example/statuspage-web".to_string(),
                "https://reg.example/web".to_string(),
                "images.web.repository \"https://reg.example/web\" must not carry a scheme",
            ),
            (
                "reg.example/statuspage-web".to_string(),
                "reg.example/web@sha256:1".to_string(),
                "images.web.repository",
            ),
            (
                "\"tag\"".to_string(),
                "\"extra_tags\":[\"bad tag\"],\"tag\"".to_string(),
                "images.web.extra_tags \"bad tag\" is not a tag",
            ),
            ("\"web\":{".to_string(), "\"Web!\":{".to_string(), "images.\"Web!\" is not a component name"),
        ];
        for (from, to, want) in swaps {
            let text = valid().replacen(&from, &to, 1);
            let err = Release::parse(&text, "r.json").unwrap_err().to_string();
            assert!(err.contains(want) && err.contains("r.json"), "{to}: {err}");
        }
        let no_digest = valid().replace(&format!(r#","digest":"sha256:{}""#, "0".repeat(64)), "");
        let err = Release::parse(&no_digest, "r.json").unwrap_err().to_string();
        assert!(err.contains("images.web.digest is missing although the image was not built"), "{err}");
        let no_images = format!(r#"{{"version":1,"commit":"{c}","images":{{}}}}"#);
        assert!(Release::parse(&no_images, "r.json").unwrap_err().to_string().contains("images is empty"));
    }

    #[test]
    fn unknown_fields_and_versions_are_refused() {
        let err =
            Release::parse(r#"{"version":1,"commit":"x","images":{},"extra":1}"#, "f.json").unwrap_err();
        assert!(err.to_string().contains("f.json") && err.to_string().contains("extra"), "{err}");
        let err = Release::parse(r#"{"version":2,"commit":"x","images":{"a":1}}"#, "f.json").unwrap_err();
        assert!(matches!(err, ReleaseError::Version { found: 2, .. }));
    }
}
