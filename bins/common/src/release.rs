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
    #[error("release document {origin} is malformed: {source}")]
    Malformed {
        /// Where it came from.
        origin: String,
        /// The parser's message (names the field and position).
        source: serde_json::Error,
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
    /// Could not read it.
    #[error("cannot read release document {origin}: {source}")]
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

    /// Parse a document; `origin` names it in errors (a path, `stdin`, `$RELEASE`).
    pub fn parse(text: &str, origin: &str) -> Result<Self, ReleaseError> {
        let release: Release = serde_json::from_str(text)
            .map_err(|source| ReleaseError::Malformed { origin: origin.to_string(), source })?;
        if release.version != RELEASE_VERSION {
            return Err(ReleaseError::Version { origin: origin.to_string(), found: release.version });
        }
        Ok(release)
    }

    /// Read a document from a file, or from stdin when `path` is `-`.
    pub fn read(path: &Path) -> Result<Self, ReleaseError> {
        let origin = path.display().to_string();
        let text = if origin == "-" {
            std::io::read_to_string(std::io::stdin())
        } else {
            std::fs::read_to_string(path)
        }
        .map_err(|source| ReleaseError::Read { origin: origin.clone(), source })?;
        Self::parse(&text, &origin)
    }

    /// Pretty JSON with a trailing newline.
    pub fn to_json(&self) -> String {
        // Serializing plain maps and strings cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_default() + "\n"
    }
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
                image_id: Some("sha256:1".into()),
                size: Some(10),
                built: Some(true),
            },
        );
        let text = release.to_json();
        assert!(!text.contains("digest"), "absent fields are omitted: {text}");
        assert_eq!(Release::parse(&text, "t").unwrap(), release);
    }

    #[test]
    fn unknown_fields_and_versions_are_refused() {
        let err =
            Release::parse(r#"{"version":1,"commit":"x","images":{},"extra":1}"#, "f.json").unwrap_err();
        assert!(err.to_string().contains("f.json") && err.to_string().contains("extra"), "{err}");
        let err = Release::parse(r#"{"version":2,"commit":"x","images":{}}"#, "f.json").unwrap_err();
        assert!(matches!(err, ReleaseError::Version { found: 2, .. }));
    }
}
