//! Image references: `[registry/]repository[:tag][@sha256:digest]`.

use std::fmt;
use std::str::FromStr;

/// A parsed image reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ImageRef {
    /// Registry host (with port), e.g. `123456789012.dkr.ecr.us-east-1.amazonaws.com`.
    pub registry: Option<String>,
    /// Repository path, e.g. `statuspage-web` or `team/statuspage-web`.
    pub repository: String,
    /// Tag, e.g. the 40-character commit SHA.
    pub tag: Option<String>,
    /// Content digest, `sha256:` followed by 64 hex characters.
    pub digest: Option<String>,
}

/// Why a string is not an image reference.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("image reference {value:?} is invalid: {reason}")]
pub struct ImageRefError {
    value: String,
    reason: &'static str,
}

impl ImageRef {
    /// `registry/repository` without tag or digest, as used in kustomize `newName`.
    pub fn name(&self) -> String {
        match &self.registry {
            Some(registry) => format!("{registry}/{}", self.repository),
            None => self.repository.clone(),
        }
    }

    /// The same reference with another tag.
    pub fn with_tag(&self, tag: impl Into<String>) -> Self {
        Self { tag: Some(tag.into()), ..self.clone() }
    }
}

/// Check a tag against the distribution spec's grammar.
pub fn valid_tag(tag: &str) -> bool {
    let mut chars = tag.chars();
    tag.len() <= 128
        && chars.next().is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

fn valid_path_component(part: &str) -> bool {
    // [a-z0-9]+ separated by '.', '_', '__' or one or more '-'.
    !part.is_empty()
        && part.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'))
        && part.starts_with(|c: char| c.is_ascii_alphanumeric())
        && part.ends_with(|c: char| c.is_ascii_alphanumeric())
        && !part.contains("..")
        && !part.contains("___")
}

fn valid_digest(digest: &str) -> bool {
    digest
        .strip_prefix("sha256:")
        .is_some_and(|hex| hex.len() == 64 && hex.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f')))
}

impl FromStr for ImageRef {
    type Err = ImageRefError;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        let fail = |reason| ImageRefError { value: value.to_string(), reason };
        if value.is_empty() {
            return Err(fail("it is empty"));
        }
        let (rest, digest) = match value.split_once('@') {
            Some((rest, digest)) if valid_digest(digest) => (rest, Some(digest.to_string())),
            Some(_) => {
                return Err(fail("the digest must be sha256: followed by 64 lowercase hex characters"));
            }
            None => (value, None),
        };
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => (&rest[..last_slash + i], Some(rest[last_slash + i + 1..].to_string())),
            None => (rest, None),
        };
        if let Some(tag) = &tag
            && !valid_tag(tag)
        {
            return Err(fail("the tag must be 1-128 of [A-Za-z0-9_.-], not starting with '.' or '-'"));
        }
        let (registry, repository) = match name.split_once('/') {
            Some((first, rest)) if first.contains(['.', ':']) || first == "localhost" => {
                (Some(first.to_string()), rest)
            }
            _ => (None, name),
        };
        if !repository.split('/').all(valid_path_component) {
            return Err(fail("the repository must be lowercase [a-z0-9] path components separated by '/'"));
        }
        Ok(Self { registry, repository: repository.to_string(), tag, digest })
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn parses_every_part() {
        let s = format!("123456789012.dkr.ecr.us-east-1.amazonaws.com/team/statuspage-web:abc@{DIGEST}");
        let r: ImageRef = s.parse().unwrap();
        assert_eq!(r.registry.as_deref(), Some("123456789012.dkr.ecr.us-east-1.amazonaws.com"));
        assert_eq!(r.repository, "team/statuspage-web");
        assert_eq!(r.tag.as_deref(), Some("abc"));
        assert_eq!(r.digest.as_deref(), Some(DIGEST));
        assert_eq!(r.to_string(), s);
    }

    #[test]
    fn registry_with_port_is_not_a_tag() {
        let r: ImageRef = "localhost:5000/web".parse().unwrap();
        assert_eq!(r.registry.as_deref(), Some("localhost:5000"));
        assert_eq!(r.tag, None);
        let r: ImageRef = "127.0.0.1:5000/web:v1".parse().unwrap();
        assert_eq!((r.name().as_str(), r.tag.as_deref()), ("127.0.0.1:5000/web", Some("v1")));
    }

    #[test]
    fn plain_names_have_no_registry() {
        let r: ImageRef = "library/busybox:1".parse().unwrap();
        assert_eq!(r.registry, None);
        assert_eq!(r.repository, "library/busybox");
    }

    #[test]
    fn rejects_what_a_registry_would_reject() {
        for bad in ["", "Web:1", "web:-x", "web@sha256:abc", "web:", "a//b", "web:has space"] {
            assert!(bad.parse::<ImageRef>().is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn with_tag_keeps_the_name() {
        let r: ImageRef = "reg.example/web:old".parse().unwrap();
        assert_eq!(r.with_tag("new").to_string(), "reg.example/web:new");
    }
}

/// The digest a Docker Engine push progress line reports (`"<tag>: digest: sha256:… size: N"`),
/// if this line is that one (Engine API, `POST /images/{name}/push` stream).
pub fn pushed_digest(status: &str) -> Option<String> {
    status.split("digest: ").nth(1)?.split_whitespace().next().map(str::to_string)
}

#[cfg(test)]
mod pushed_digest_tests {
    #[test]
    fn reads_the_digest_of_a_push_status_line() {
        let line = "abc: digest: sha256:0123 size: 528";
        assert_eq!(super::pushed_digest(line).as_deref(), Some("sha256:0123"));
        assert_eq!(super::pushed_digest("Pushed"), None);
    }
}
