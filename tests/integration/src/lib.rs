//! Helpers for tests against the local stack (`tests/stack/up.sh`): where its components are,
//! fixture build contexts, and the repository's own binaries.
//!
//! A test that needs the stack and does not find it fails with
//! "stack not running: run tests/stack/up.sh"; it never skips.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// What the stack's env file (`/tmp/statuspage-stack/env`) provides.
#[derive(Debug, Clone)]
pub struct Stack {
    /// `unix://…/docker.sock` of the stack's engine.
    pub docker_host: String,
    /// The registry host (ECR's name for it).
    pub registry: String,
    /// Registry user (`AWS`).
    pub user: String,
    /// Registry password (the ECR token's).
    pub password: String,
}

/// The stack from the environment, or a panic that says how to start it.
pub fn stack() -> Stack {
    let var = |key: &str| {
        std::env::var(key)
            .ok()
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| panic!("stack not running: run tests/stack/up.sh, then source /tmp/statuspage-stack/env ({key} is not set)"))
    };
    Stack {
        docker_host: var("DOCKER_HOST"),
        registry: var("STACK_REGISTRY"),
        user: var("STACK_REGISTRY_USER"),
        password: var("STACK_REGISTRY_PASSWORD"),
    }
}

/// A client for the stack's engine.
pub fn docker() -> bollard::Docker {
    let _ = stack();
    bollard::Docker::connect_with_defaults().expect("DOCKER_HOST of the stack engine")
}

impl Stack {
    /// What the stack's registry serves for `reference` (`repository:tag`), asked through the
    /// engine with the registry's credentials (Engine API `GET /distribution/{name}/json`).
    pub async fn registry_image(
        &self,
        reference: &str,
    ) -> Result<bollard::models::DistributionInspect, bollard::errors::Error> {
        let creds = bollard::auth::DockerCredentials {
            username: Some(self.user.clone()),
            password: Some(self.password.clone()),
            ..Default::default()
        };
        docker().inspect_registry_image(reference, Some(creds)).await
    }
}

/// Image IDs and tags the stack's engine has (`id [tags]`, sorted): compared before and after a
/// bad input to show it changed nothing.
pub async fn engine_images() -> Vec<String> {
    let options = bollard::query_parameters::ListImagesOptionsBuilder::default().all(true).build();
    let mut images: Vec<String> = docker()
        .list_images(Some(options))
        .await
        .expect("list the engine's images")
        .into_iter()
        .map(|i| format!("{} {:?}", i.id, i.repo_tags))
        .collect();
    images.sort();
    images
}

/// Copy the tree at `from` into `to` (created), files and folders.
pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create the copy's folder");
    for entry in std::fs::read_dir(from).expect("read the tree to copy") {
        let entry = entry.expect("read a folder entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("read a file type").is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy a file");
        }
    }
}

/// A fresh name no earlier run used: `prefix-<8 hex>`.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", &uuid::Uuid::new_v4().simple().to_string()[..8])
}

/// A build context with the static busybox as `busybox`, the given Dockerfile, and a `nonce`
/// file whose random content makes every fixture's cache its own.
pub fn scratch_context(dockerfile: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::copy("/bin/busybox", dir.path().join("busybox"))
        .expect("/bin/busybox (Debian busybox-static) is installed by tests/tools/install.sh");
    std::fs::write(dir.path().join("Dockerfile"), dockerfile).expect("write Dockerfile");
    std::fs::write(dir.path().join("nonce"), uuid::Uuid::new_v4().to_string()).expect("write nonce");
    dir
}

/// A built binary of this workspace (`cargo build --workspace --bins` puts them next to the tests).
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe.parent().and_then(Path::parent).expect("target/<profile>");
    let path = dir.join(name);
    assert!(path.is_file(), "{} is missing: run `cargo build --workspace --bins` first", path.display());
    path
}

/// Run a binary of this workspace as a user would, with `stdin` as its input; returns
/// (exit code, stdout, stderr). The GitHub Actions and `STATUSPAGE_*` variables of the test
/// process are removed first, so only `args` and `env` decide what the binary sees.
pub fn run_binary(name: &str, args: &[&str], env: &[(&str, &str)], stdin: &str) -> (i32, String, String) {
    let mut command = Command::new(binary(name));
    command.args(args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    for (key, _) in std::env::vars() {
        if key.starts_with("GITHUB_") || key.starts_with("STATUSPAGE_") {
            command.env_remove(key);
        }
    }
    command.envs(env.iter().copied());
    let mut child = command.spawn().unwrap_or_else(|e| panic!("cannot run {name}: {e}"));
    if let Some(mut input) = child.stdin.take() {
        // A binary may exit before reading its input; that is its answer, not a test failure.
        let _ = input.write_all(stdin.as_bytes());
    }
    let out = child.wait_with_output().unwrap_or_else(|e| panic!("cannot wait for {name}: {e}"));
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A build of `targets` (`TARGET=REPOSITORY`) from `context` into the stack registry at commit
/// `sha`: BuildKit, no skip, the stack's registry credentials, a fixed creation time. Tests
/// change the fields they are about.
pub fn build_config(context: &Path, targets: &[String], sha: &str) -> statuspage_build_images::BuildConfig {
    let s = stack();
    statuspage_build_images::BuildConfig {
        context: context.to_path_buf(),
        dockerfile: "Dockerfile".into(),
        source: None,
        export_cache: false,
        targets: targets.iter().map(|t| t.parse().expect("TARGET=REPOSITORY")).collect(),
        registry: Some(s.registry),
        commit: statuspage_common::commit::Commit { sha: sha.into(), dirty: false },
        extra_tags: vec![],
        build_args: Default::default(),
        platform: "linux/amd64".into(),
        source_url: None,
        created: "2026-01-01T00:00:00Z".into(),
        version: None,
        cache_from: vec![],
        cache_from_commit: None,
        builder: statuspage_build_images::BuilderChoice::Buildkit,
        skip_existing: false,
        registry_auth: Some(statuspage_build_images::RegistryAuth {
            username: s.user,
            password: s.password,
            origin: "the stack's STACK_REGISTRY_USER/PASSWORD".into(),
        }),
    }
}

/// One bad release document for a binary that reads them: a name for failure messages, the
/// text, and the texts its one-line message must contain (the field or value, and the fix).
pub struct BadDocument {
    /// What is wrong, for the test's own messages.
    pub name: &'static str,
    /// The document.
    pub text: String,
    /// Texts the error message must contain.
    pub needles: Vec<&'static str>,
}

/// The bad release documents every reader refuses the same way (`Release::parse` in
/// `bins/common`), each derived from `good` (a valid document with an image `web`).
pub fn bad_release_documents(good: &serde_json::Value) -> Vec<BadDocument> {
    use serde_json::json;
    let with = |edit: &dyn Fn(&mut serde_json::Value)| {
        let mut doc = good.clone();
        edit(&mut doc);
        doc.to_string()
    };
    let web = |key: &'static str, value: serde_json::Value| {
        with(&move |d: &mut serde_json::Value| d["images"]["web"][key] = value.clone())
    };
    let case =
        |name, text: String, needles: &[&'static str]| BadDocument { name, text, needles: needles.to_vec() };
    let fix = "use the document statuspage-build or statuspage-push wrote";
    vec![
        case("empty", String::new(), &["release document stdin is empty", "pass the document"]),
        case("blank", " \n\t\n".into(), &["release document stdin is empty"]),
        case("array", "[]".into(), &["the document is not a JSON object", "\"version\": 1"]),
        case("number", "42".into(), &["the document is not a JSON object"]),
        case("truncated", "{\"version\": 1, \"commit\":".into(), &["stdin is malformed", "EOF"]),
        case("no fields", "{}".into(), &["stdin is malformed", "missing field `version`"]),
        case(
            "version 2",
            with(&|d| d["version"] = json!(2)),
            &["has version 2", "use matching tool versions"],
        ),
        case("version string", with(&|d| d["version"] = json!("1")), &["stdin is malformed", "invalid type"]),
        case("unknown field", with(&|d| d["extra"] = json!(1)), &["unknown field `extra`"]),
        case(
            "short commit",
            with(&|d| d["commit"] = json!("abc123")),
            &["commit \"abc123\" is not a full commit SHA", fix],
        ),
        case(
            "uppercase commit",
            with(&|d| d["commit"] = json!("0123456789ABCDEF0123456789ABCDEF01234567")),
            &["commit \"0123456789ABCDEF", "40 lowercase hex"],
        ),
        case("no images", with(&|d| d["images"] = json!({})), &["images is empty", fix]),
        case("images array", with(&|d| d["images"] = json!([])), &["stdin is malformed", "expected a map"]),
        case(
            "component name",
            with(&|d| d["images"] = json!({"Web!": d["images"]["web"].clone()})),
            &["images.\"Web!\" is not a component name"],
        ),
        case(
            "skipped image, malformed digest",
            with(&|d| {
                d["images"]["web"]["digest"] = json!("sha256:xyz");
                d["images"]["web"]["built"] = json!(false);
            }),
            &["images.web.digest \"sha256:xyz\" is not sha256:<64 lowercase hex>", fix],
        ),
        case(
            "skipped image without digest",
            with(&|d| {
                d["images"]["web"]["built"] = json!(false);
                d["images"]["web"].as_object_mut().map(|image| image.remove("digest"));
            }),
            &["images.web.digest is missing although the image was not built"],
        ),
        case("malformed image_id", web("image_id", json!("abc")), &["images.web.image_id \"abc\""]),
        case(
            "repository with tag",
            web("repository", json!("reg.example/web:v1")),
            &["images.web.repository", "must not carry a tag"],
        ),
        case(
            "repository URL",
            web("repository", json!("https://reg.example/web")),
            &["images.web.repository \"https://reg.example/web\" must not carry a scheme", "give host/path"],
        ),
        case("bad tag", web("tag", json!("-bad")), &["images.web.tag \"-bad\" is not a tag"]),
        case(
            "uppercase repository",
            web("repository", json!("Reg.example/Web")),
            &["images.web.repository/tag", "Reg.example/Web"],
        ),
        case(
            "bad extra tag",
            web("extra_tags", json!(["bad tag"])),
            &["images.web.extra_tags \"bad tag\" is not a tag"],
        ),
        case("unknown image field", web("digests", json!("x")), &["unknown field `digests`"]),
        case("negative size", web("size", json!(-1)), &["stdin is malformed", "invalid value: integer `-1`"]),
    ]
}

/// Checks every binary's error output keeps: exactly one `error:` line, starting
/// `<binary>: error: `, and no `caused by:` line that says again what the lines before it said.
pub fn assert_one_error_line(label: &str, stderr: &str) {
    let errors: Vec<&str> = stderr.lines().filter(|l| l.contains("error:")).collect();
    assert_eq!(errors.len(), 1, "{label}: one error line:\n{stderr}");
    let (binary, _) = errors[0].split_once(": error: ").unwrap_or_default();
    assert!(
        binary.starts_with("statuspage-") && !binary.contains(' '),
        "{label}: the error line starts `<binary>: error: `:\n{stderr}"
    );
    let mut said = String::new();
    for line in stderr.lines() {
        if let Some(cause) = line.trim_start().strip_prefix("caused by: ") {
            assert!(!said.contains(cause), "{label}: `caused by: {cause}` repeats the message:\n{stderr}");
        }
        said.push_str(line);
    }
}
