//! What a build shows people and machines: progress lines, the step-summary table, outputs.

use std::sync::Arc;

use statuspage_common::actions::{LogStyle, OutputFile, markdown_cell};

use crate::BuildOutcome;
use crate::engine::{Progress, ProgressEvent};
use crate::error::BuildError;

/// Progress printer for stderr: a section per target (`::group::` in Actions, `==>` at a
/// terminal), one line per finished step with its time or `CACHED`; step output too inside
/// Actions (where the group folds it), only the steps at a terminal.
pub fn stderr_progress(style: LogStyle) -> Progress {
    let open: std::sync::Mutex<Option<statuspage_common::actions::Group>> = std::sync::Mutex::new(None);
    Arc::new(move |event| match event {
        ProgressEvent::TargetStarted { target } => {
            let group = style.group(&format!("build {target}"));
            if let Ok(mut slot) = open.lock() {
                *slot = Some(group);
            }
        }
        ProgressEvent::TargetFinished { .. } => {
            if let Ok(mut slot) = open.lock() {
                slot.take();
            }
        }
        ProgressEvent::Step { target, name, cached, seconds } => {
            let how = match (cached, seconds) {
                (true, _) => "CACHED".to_string(),
                (false, Some(s)) => format!("{s:.1}s"),
                (false, None) => "done".to_string(),
            };
            eprintln!("[{target}] {name} ({how})");
        }
        ProgressEvent::Retry { target, reason } => {
            eprintln!("[{target}] the engine cut the build stream short ({reason}); building it again");
        }
        ProgressEvent::Output { target, line } => {
            if style == LogStyle::Actions {
                eprintln!("[{target}]   {line}");
            }
        }
    })
}

/// Human-readable size.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 { format!("{bytes} B") } else { format!("{value:.1} {}", UNITS[unit]) }
}

/// The Markdown table for `$GITHUB_STEP_SUMMARY`.
pub fn summary_markdown(outcome: &BuildOutcome) -> String {
    let mut md =
        String::from("### Images built\n\n| target | image | size | steps cached |\n|---|---|---|---|\n");
    for (target, image) in &outcome.release.images {
        let built = outcome.targets.iter().find(|t| &t.target == target);
        let size = image.size.map(human_size).unwrap_or_else(|| "-".into());
        let cached = match built {
            Some(b) => format!("{}/{}", b.steps.iter().filter(|s| s.cached).count(), b.steps.len()),
            None => "skipped (already pushed)".into(),
        };
        md.push_str(&format!(
            "| {} | `{}` | {} | {} |\n",
            markdown_cell(target),
            markdown_cell(&format!("{}:{}", image.repository, image.tag)),
            size,
            cached
        ));
    }
    for note in &outcome.notes {
        md.push_str(&format!("\n{}\n", markdown_cell(note)));
    }
    md
}

/// Write `release`, `skipped`, `builder` and `<target>-image` to an Actions output file.
pub fn write_outputs(outcome: &BuildOutcome, out: &OutputFile) -> Result<(), BuildError> {
    let compact = serde_json::to_string(&outcome.release).unwrap_or_default();
    out.set("release", &compact)?;
    out.set("skipped", if outcome.skipped() { "true" } else { "false" })?;
    out.set(
        "builder",
        &outcome.builder.map(|b| format!("{b:?}").to_lowercase()).unwrap_or_else(|| "none".into()),
    )?;
    for (target, image) in &outcome.release.images {
        out.set(&format!("{target}-image"), &format!("{}:{}", image.repository, image.tag))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_well() {
        assert_eq!(human_size(512), "512 B");
        assert_eq!(human_size(1536), "1.5 KiB");
        assert_eq!(human_size(200 * 1024 * 1024), "200.0 MiB");
    }
}
