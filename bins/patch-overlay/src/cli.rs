//! The command line: flags (each with an environment fallback) turned into a [`PatchConfig`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use clap::Parser;
use statuspage_common::ExitCode;
use statuspage_common::actions::{self, OutputFile};
use statuspage_common::release::Release;

use crate::{Mode, PatchConfig, PatchError, report};

const BINARY: &str = "statuspage-patch";

/// Write a release's images into a kustomize overlay's images: list (newName, newTag, digest).
///
/// Reads the release document (JSON) and prints it unchanged on stdout, so steps compose:
/// `statuspage-build | statuspage-push | statuspage-patch --overlay DIR`. Only the images: block
/// of the kustomization changes; comments, order and quoting stay as they are. Exit codes:
/// 0 patched or already current, 1 --check found drift (or a render that does not run the
/// release), 2 bad input or a patched render that does not run the release (nothing written).
#[derive(Debug, Parser)]
#[command(name = "statuspage-patch", version)]
pub struct Args {
    /// The release document, or - for stdin.
    #[arg(long, env = "STATUSPAGE_RELEASE", default_value = "-")]
    pub release: PathBuf,
    /// The kustomize overlay directory, e.g. manifests/app/overlays/production.
    #[arg(long, env = "STATUSPAGE_OVERLAY")]
    pub overlay: PathBuf,
    /// COMPONENT=NAME: the image name the base manifests use for a component
    /// (default statuspage-COMPONENT); repeatable or comma-separated.
    #[arg(long = "image-name", env = "STATUSPAGE_IMAGE_NAMES", value_delimiter = ',')]
    pub image_names: Vec<String>,
    /// Print the changed lines as a diff on stderr; write nothing.
    #[arg(long, env = "STATUSPAGE_DRY_RUN", conflicts_with = "check")]
    pub dry_run: bool,
    /// Exit 1 when the overlay is not at the release (CI drift check); write nothing.
    #[arg(long, env = "STATUSPAGE_CHECK")]
    pub check: bool,
    /// The kustomize binary: the patched overlay is rendered and must run every release image
    /// as repository:tag@digest (otherwise exit 2 and nothing written; under --check exit 1).
    #[arg(long, env = "STATUSPAGE_KUSTOMIZE", default_value = "kustomize")]
    pub kustomize: PathBuf,
}

fn parse_image_names(values: &[String]) -> Result<BTreeMap<String, String>, PatchError> {
    statuspage_common::args::pairs(values, false).map_err(|value| PatchError::BadInput {
        flag: "--image-name",
        value,
        fix: "write COMPONENT=NAME, e.g. web=statuspage-web".into(),
    })
}

impl Args {
    /// The [`PatchConfig`] these flags describe.
    pub fn config(&self) -> Result<PatchConfig, PatchError> {
        let mode = match (self.dry_run, self.check) {
            (true, _) => Mode::DryRun,
            (false, true) => Mode::Check,
            (false, false) => Mode::Write,
        };
        Ok(PatchConfig {
            overlay: self.overlay.clone(),
            image_names: parse_image_names(&self.image_names)?,
            mode,
            kustomize: Some(self.kustomize.clone()),
        })
    }

    /// The release document's text (passed on unchanged) and a name for it in messages.
    fn release_text(&self) -> Result<(String, String), PatchError> {
        Ok(Release::read_text(&self.release)?)
    }
}

/// The path as Actions annotations want it: relative to the workspace when it is inside it.
fn annotation_path(path: &Path) -> String {
    std::env::var_os("GITHUB_WORKSPACE")
        .and_then(|ws| path.strip_prefix(ws).ok().map(Path::to_path_buf))
        .unwrap_or_else(|| path.to_path_buf())
        .display()
        .to_string()
}

/// Report an error the way every binary does; errors about a kustomization line point the
/// Actions annotation at that file and line.
fn report_error(err: &PatchError) -> ExitCode {
    let location = err.location().map(|(path, line)| (annotation_path(path), line));
    statuspage_common::exit::report_at(BINARY, err, location)
}

/// Run the command: everything `main` does after parsing.
pub fn main_with(args: Args) -> ExitCode {
    let result = (|| {
        let config = args.config()?;
        let (text, origin) = args.release_text()?;
        let release = Release::parse(&text, &origin)?;
        let outcome = crate::run(&config, &release, &origin)?;
        let label = outcome.kustomization.display().to_string();
        if config.mode == Mode::DryRun && outcome.update.changed() {
            eprint!("{}", outcome.update.diff(&label));
        }
        for line in report::change_lines(&outcome, config.mode) {
            eprintln!("{line}");
        }
        match (outcome.update.changed(), outcome.written) {
            (false, _) => eprintln!("{label} is at the release: nothing to do"),
            (true, true) => eprintln!("{label} updated"),
            (true, false) => eprintln!("dry run: {label} not written"),
        }
        if actions::in_github_actions() {
            let overlay = config.overlay.display().to_string();
            if let Some(out) = OutputFile::from_env() {
                report::write_outputs(&outcome, &overlay, &out)?;
            }
            actions::append_step_summary(&report::summary_markdown(&outcome, &overlay))?;
        }
        print!("{text}");
        Ok::<(), PatchError>(())
    })();
    match result {
        Ok(()) => ExitCode::Success,
        Err(err) => report_error(&err),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_names_need_component_and_name() {
        let names = parse_image_names(&["web=my-web".into(), String::new()]).unwrap();
        assert_eq!(names["web"], "my-web");
        for bad in ["web", "=x", "web="] {
            let err = parse_image_names(&[bad.into()]).unwrap_err().to_string();
            assert!(err.contains("COMPONENT=NAME"), "{err}");
        }
    }

    #[test]
    fn help_names_every_env_fallback() {
        use clap::CommandFactory;
        let help = Args::command().render_long_help().to_string();
        for var in [
            "STATUSPAGE_RELEASE",
            "STATUSPAGE_OVERLAY",
            "STATUSPAGE_IMAGE_NAMES",
            "STATUSPAGE_DRY_RUN",
            "STATUSPAGE_CHECK",
        ] {
            assert!(help.contains(var), "{var} missing from --help");
        }
    }

    #[test]
    fn dry_run_and_check_exclude_each_other() {
        let parsed = Args::try_parse_from(["statuspage-patch", "--overlay", "o", "--dry-run", "--check"]);
        assert!(parsed.is_err());
    }
}
