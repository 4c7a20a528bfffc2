//! The command line of `statuspage-push`.

use std::path::{Path, PathBuf};

use clap::Parser;
use statuspage_common::ExitCode;
use statuspage_common::actions::{self, LogStyle, OutputFile, markdown_cell};
use statuspage_common::release::Release;

use crate::error::PushError;
use crate::{Ecr, push};

/// Push the images of a release document to Amazon ECR and add their digests.
///
/// Reads the document statuspage-build wrote, logs in to ECR with the default AWS credential
/// chain, creates missing repositories (immutable tags, scan on push, KMS encryption), pushes
/// each image's tags through the Docker Engine, and prints the document with digests on stdout.
/// Exit codes: 0 pushed, 2 bad release document, 3 AWS, the engine or the registry failed.
#[derive(Debug, Parser)]
#[command(name = "statuspage-push", version)]
pub struct Args {
    /// The release document from statuspage-build; `-` reads stdin.
    #[arg(long, env = "STATUSPAGE_RELEASE", default_value = "-")]
    pub release: PathBuf,
    /// Also write the completed release document here.
    #[arg(long, env = "STATUSPAGE_RELEASE_FILE")]
    pub release_file: Option<PathBuf>,
    /// Print what would be created and pushed; call neither AWS nor the engine.
    #[arg(long, env = "STATUSPAGE_DRY_RUN")]
    pub dry_run: bool,
}

fn summary(release: &Release, planned: &[push::PlannedPush]) -> String {
    let mut md = String::from("### Images pushed\n\n| component | image | digest |\n|---|---|---|\n");
    for p in planned {
        let image = &release.images[&p.component];
        let digest = image.digest.as_deref().unwrap_or("-");
        let state = if p.tags.is_empty() { " (already in the registry)" } else { "" };
        md.push_str(&format!(
            "| {} | `{}:{}` | `{}`{} |\n",
            markdown_cell(&p.component),
            markdown_cell(&image.repository),
            markdown_cell(&image.tag),
            markdown_cell(digest),
            state
        ));
    }
    md
}

/// `--release-file` must be writable where the push ends: its folder exists and it is no folder.
/// Checked before anything is called, so a typo never costs a push.
fn check_release_file(path: Option<&Path>) -> Result<(), PushError> {
    let Some(path) = path else { return Ok(()) };
    let bad =
        |fix: String| PushError::BadInput { flag: "--release-file", value: path.display().to_string(), fix };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty() && !d.is_dir()) {
        return Err(bad(format!(
            "its folder {} does not exist: create it or choose another path; nothing was pushed",
            dir.display()
        )));
    }
    if path.is_dir() {
        return Err(bad("it is a folder: give a file path, e.g. release.json; nothing was pushed".into()));
    }
    Ok(())
}

/// `--dry-run`: what would be created and pushed, from the document alone.
fn dry_run(release: &Release) -> Result<(), PushError> {
    let registry = release
        .images
        .values()
        .next()
        .and_then(|i| i.repository.split_once('/').map(|(host, _)| host.to_string()))
        .unwrap_or_default();
    let planned = push::plan(release, &registry)?;
    eprintln!("dry run: registry {registry}");
    for p in &planned {
        eprintln!("  {}: ensure repository {}, push tags [{}]", p.component, p.repository, p.tags.join(", "));
    }
    print!("{}", release.to_json());
    Ok(())
}

/// Log in, check everything, create the repositories and push; the completed document.
async fn push(
    mut release: Release,
    style: &LogStyle,
) -> Result<(Release, Vec<push::PlannedPush>), PushError> {
    let host = statuspage_common::docker_host::docker_host();
    if let Some(fix) = statuspage_common::docker_host::problem(&host) {
        return Err(PushError::BadInput { flag: "DOCKER_HOST", value: host, fix });
    }
    Ecr::check_environment()?;
    let _group = style.group("statuspage-push");
    let ecr = Ecr::from_env().await?;
    let identity = ecr.identity().await?;
    eprintln!("AWS identity: {} (account {})", identity.arn, identity.account);
    let login = ecr.login().await?;
    let mut planned = push::plan(&release, &login.registry)?;
    let docker = push::connect_engine().await?;
    push::preflight(&docker, &login, &mut release, &mut planned).await?;
    for p in &planned {
        let uri = ecr.ensure_repository(&p.repository).await?;
        eprintln!("repository {uri} ready");
    }
    push::push_all(&docker, &ecr, login, &mut release, &planned).await?;
    Ok((release, planned))
}

/// Everything `main` does after parsing.
pub async fn main_with(args: Args) -> ExitCode {
    let style = LogStyle::detect();
    let result = async {
        let release = Release::read(&args.release)?;
        check_release_file(args.release_file.as_deref())?;
        if args.dry_run {
            return dry_run(&release);
        }
        let (release, planned) = push(release, &style).await?;
        let json = release.to_json();
        print!("{json}");
        if let Some(path) = &args.release_file {
            std::fs::write(path, &json)
                .map_err(|source| PushError::ReleaseFile { path: path.clone(), source })?;
        }
        if let Some(out) = OutputFile::from_env() {
            out.set("release", &serde_json::to_string(&release).unwrap_or_default())?;
        }
        actions::append_step_summary(&summary(&release, &planned))?;
        Ok::<(), PushError>(())
    }
    .await;
    match result {
        Ok(()) => ExitCode::Success,
        Err(err) => statuspage_common::exit::report("statuspage-push", &err),
    }
}
