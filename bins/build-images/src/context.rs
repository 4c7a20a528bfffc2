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

    /// Exclude `pattern` (a literal path) after every other rule.
    pub fn exclude(&mut self, pattern: &str) {
        if let Ok(glob) = Glob::new(pattern) {
            self.rules.push((glob.compile_matcher(), false));
        }
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

/// Where a separate source tree (`--source`) lands inside the context archive. The Dockerfile's
/// `statuspage-source` stage copies it from there (`COPY source/ /`); with buildx the same tree
/// is given as `--build-context statuspage-source=DIR` instead.
pub const SOURCE_PREFIX: &str = "source";

/// A packed context: the tar the engine receives, the Dockerfile's name in it, and its digest.
#[derive(Debug, Clone)]
pub struct Packed {
    /// The uncompressed tar (cheap to clone: one build per target sends it).
    pub bytes: bytes::Bytes,
    /// The Dockerfile's path inside the archive.
    pub dockerfile_name: String,
    /// `sha256:<hex>` of `bytes`: the same tree always packs to the same digest.
    pub digest: String,
}

/// Pack `context` (plus the Dockerfile, if it lives elsewhere, and `source` under
/// [`SOURCE_PREFIX`]) into a tar. Uncompressed: the engine is local (a Unix socket or a
/// runner's), where gzip costs more time than it saves. `source` honours its own
/// `.dockerignore` and never contributes `.git`.
///
/// Errors: [`BuildError::Context`] for unreadable files; [`BuildError::BadInput`] for a bad
/// `.dockerignore` line or a context that already has a `source/` folder while `source` is given.
pub fn pack(
    context: &Path,
    dockerfile: &Path,
    dockerfile_in_context: Option<PathBuf>,
    source: Option<&Path>,
) -> Result<Packed, BuildError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| BuildError::Context { path, source }
    };
    let mut files = context_files(context, dockerfile, dockerfile_in_context.as_deref())?;
    if let Some(source) = source {
        files.extend(source_files(context, source, &files)?);
    }
    files.sort();

    let mut tar = tar::Builder::new(Vec::new());
    tar.mode(tar::HeaderMode::Deterministic);
    tar.follow_symlinks(false);
    for (name, full) in &files {
        tar.append_path_with_name(full, name).map_err(io(full))?;
    }
    let dockerfile_name = match dockerfile_in_context {
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
    let digest = {
        use sha2::{Digest, Sha256};
        format!("sha256:{:x}", Sha256::digest(&bytes))
    };
    Ok(Packed { bytes: bytes.into(), dockerfile_name, digest })
}

/// The context's files (its `.dockerignore` applied) as (name in the archive, path on disk); the
/// Dockerfile is always among them when it lies inside the context, as with the docker CLI, even
/// when `.dockerignore` excludes it.
fn context_files(
    context: &Path,
    dockerfile: &Path,
    dockerfile_in_context: Option<&Path>,
) -> Result<Vec<(String, PathBuf)>, BuildError> {
    let mut files: Vec<(String, PathBuf)> = tree_files(context, &ignore_rules(context)?)?
        .into_iter()
        .map(|r| (r.clone(), context.join(r)))
        .collect();
    if let Some(inside) = dockerfile_in_context {
        let name = inside.to_string_lossy().replace('\\', "/");
        if !files.iter().any(|(r, _)| *r == name) {
            files.push((name, dockerfile.to_path_buf()));
        }
    }
    Ok(files)
}

/// The source tree's files under `source/` in the archive (its own `.dockerignore` applied, never
/// `.git`). Error: [`BuildError::BadInput`] when the context already has a `source/` folder.
fn source_files(
    context: &Path,
    source: &Path,
    context_files: &[(String, PathBuf)],
) -> Result<Vec<(String, PathBuf)>, BuildError> {
    let prefix = format!("{SOURCE_PREFIX}/");
    if let Some((clash, _)) = context_files.iter().find(|(r, _)| r.starts_with(&prefix)) {
        return Err(BuildError::BadInput {
            flag: "--source",
            value: source.display().to_string(),
            fix: format!(
                "the context {} already has {clash}: remove its {SOURCE_PREFIX}/ folder or drop --source",
                context.display()
            ),
        });
    }
    let mut rules = ignore_rules(source)?;
    rules.exclude(".git");
    Ok(tree_files(source, &rules)?
        .into_iter()
        .map(|relative| (format!("{prefix}{relative}"), source.join(relative)))
        .collect())
}

fn ignore_rules(dir: &Path) -> Result<IgnoreRules, BuildError> {
    let path = dir.join(".dockerignore");
    match std::fs::read_to_string(&path) {
        Ok(text) => IgnoreRules::parse(&text, &path),
        Err(_) => Ok(IgnoreRules::default()),
    }
}

fn tree_files(root: &Path, rules: &IgnoreRules) -> Result<Vec<String>, BuildError> {
    let mut files = Vec::new();
    collect(root, root, rules, &mut files)?;
    Ok(files)
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
        let first =
            pack(dir.path(), &dir.path().join("Dockerfile"), Some("Dockerfile".into()), None).unwrap();
        assert_eq!(first.dockerfile_name, "Dockerfile");
        let second =
            pack(dir.path(), &dir.path().join("Dockerfile"), Some("Dockerfile".into()), None).unwrap();
        assert_eq!(first.bytes, second.bytes, "same tree, same bytes");
        assert_eq!(first.digest, second.digest);
        let mut archive = tar::Archive::new(&first.bytes[..]);
        let names: Vec<String> = archive
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, [".dockerignore", "Dockerfile", "sub/file"]);

        std::fs::write(dir.path().join(".dockerignore"), "*\n!sub/\n").unwrap();
        let allow_list =
            pack(dir.path(), &dir.path().join("Dockerfile"), Some("Dockerfile".into()), None).unwrap();
        assert_eq!(
            names_of(&allow_list),
            ["Dockerfile", "sub/file"],
            "the Dockerfile is sent even when ignored"
        );
    }

    #[test]
    fn outside_dockerfile_is_added_under_a_fixed_name() {
        let dir = tempfile::tempdir().unwrap();
        let other = tempfile::tempdir().unwrap();
        std::fs::write(other.path().join("Dockerfile"), "FROM scratch AS a\n").unwrap();
        let packed = pack(dir.path(), &other.path().join("Dockerfile"), None, None).unwrap();
        assert_eq!(packed.dockerfile_name, OUTSIDE_DOCKERFILE);
    }

    fn names_of(packed: &Packed) -> Vec<String> {
        names(packed)
    }

    fn names(packed: &Packed) -> Vec<String> {
        let mut archive = tar::Archive::new(&packed.bytes[..]);
        archive
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn a_source_tree_lands_under_source_without_git_and_with_its_own_ignores() {
        let context = tempfile::tempdir().unwrap();
        std::fs::write(context.path().join("Dockerfile"), "FROM scratch AS a\n").unwrap();
        let source = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(source.path().join(".git/objects")).unwrap();
        std::fs::write(source.path().join(".git/HEAD"), "ref").unwrap();
        std::fs::write(source.path().join(".dockerignore"), "*.log\n").unwrap();
        std::fs::write(source.path().join("debug.log"), "x").unwrap();
        std::fs::create_dir(source.path().join("app")).unwrap();
        std::fs::write(source.path().join("app/manage.py"), "print()").unwrap();
        let dockerfile = context.path().join("Dockerfile");
        let with = pack(context.path(), &dockerfile, Some("Dockerfile".into()), Some(source.path())).unwrap();
        assert_eq!(names(&with), ["Dockerfile", "source/.dockerignore", "source/app/manage.py"]);
        let without = pack(context.path(), &dockerfile, Some("Dockerfile".into()), None).unwrap();
        assert_ne!(with.digest, without.digest, "the source is part of the build inputs");
        std::fs::write(source.path().join("app/manage.py"), "print(1)").unwrap();
        let changed =
            pack(context.path(), &dockerfile, Some("Dockerfile".into()), Some(source.path())).unwrap();
        assert_ne!(with.digest, changed.digest);
    }

    #[test]
    fn a_context_with_its_own_source_folder_is_refused_with_source() {
        let context = tempfile::tempdir().unwrap();
        std::fs::write(context.path().join("Dockerfile"), "FROM scratch AS a\n").unwrap();
        std::fs::create_dir(context.path().join("source")).unwrap();
        std::fs::write(context.path().join("source/x"), "x").unwrap();
        let source = tempfile::tempdir().unwrap();
        let err =
            pack(context.path(), &context.path().join("Dockerfile"), None, Some(source.path())).unwrap_err();
        assert!(err.to_string().contains("already has source/x"), "{err}");
    }
}
