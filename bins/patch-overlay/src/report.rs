//! What a patch shows people and machines: change lines, the step-summary table, outputs.

use statuspage_common::actions::{OutputFile, markdown_cell};

use crate::{Mode, PatchError, PatchOutcome};

/// One line per release image for stderr: what changed (or would change), or that it is current.
pub fn change_lines(outcome: &PatchOutcome, mode: Mode) -> Vec<String> {
    let verb = if mode == Mode::Write { "" } else { "would be " };
    outcome
        .update
        .changes
        .iter()
        .map(|c| match &c.before {
            _ if !c.changed() => format!("{}: {} already at {}", c.component, c.name, c.after.image(&c.name)),
            None => format!("{}: {} {verb}added as {}", c.component, c.name, c.after.image(&c.name)),
            Some(before) => format!(
                "{}: {} {verb}changed {} -> {}",
                c.component,
                c.name,
                before.image(&c.name),
                c.after.image(&c.name)
            ),
        })
        .collect()
}

/// The Markdown table for `$GITHUB_STEP_SUMMARY`.
pub fn summary_markdown(outcome: &PatchOutcome, overlay: &str) -> String {
    let mut md = format!(
        "### Overlay `{}`\n\n| component | image name | before | after |\n|---|---|---|---|\n",
        markdown_cell(overlay)
    );
    for c in &outcome.update.changes {
        let before =
            c.before.as_ref().map_or_else(|| "(no entry)".to_string(), |b| format!("`{}`", b.image(&c.name)));
        let after =
            if c.changed() { format!("`{}`", c.after.image(&c.name)) } else { "unchanged".to_string() };
        md.push_str(&format!(
            "| {} | `{}` | {} | {} |\n",
            markdown_cell(&c.component),
            markdown_cell(&c.name),
            markdown_cell(&before),
            markdown_cell(&after)
        ));
    }
    if outcome.update.changed() && !outcome.written {
        md.push_str("\nNothing was written (dry run).\n");
    }
    md
}

/// Write `changed` and `overlay` to an Actions output file.
pub fn write_outputs(outcome: &PatchOutcome, overlay: &str, out: &OutputFile) -> Result<(), PatchError> {
    out.set("changed", if outcome.update.changed() { "true" } else { "false" })?;
    out.set("overlay", overlay)?;
    Ok(())
}
