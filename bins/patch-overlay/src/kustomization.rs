//! Surgical edits of a kustomization's `images:` list.
//!
//! The file is parsed with `yaml_serde` only to validate it and to read the current values; the
//! edit itself replaces, inserts or deletes whole lines of the `images:` block, so comments,
//! ordering, blank lines, quoting and every other entry stay byte for byte. YAML text is matched
//! to the parsed document item by item, and any mismatch is an error, never a guess.

use std::path::{Path, PathBuf};

use yaml_serde::Value;

use crate::error::PatchError;

/// The file names kustomize accepts for a kustomization, in its order of preference.
pub const FILE_NAMES: [&str; 3] = ["kustomization.yaml", "kustomization.yml", "Kustomization"];

/// The kustomization file of an overlay directory, as kustomize would pick it.
pub fn find(overlay: &Path) -> Result<PathBuf, PatchError> {
    if !overlay.is_dir() {
        return Err(PatchError::MissingOverlay(overlay.to_path_buf()));
    }
    let found: Vec<PathBuf> =
        FILE_NAMES.iter().map(|name| overlay.join(name)).filter(|path| path.is_file()).collect();
    match found.as_slice() {
        [] => Err(PatchError::NoKustomization(overlay.to_path_buf())),
        [one] => Ok(one.clone()),
        several => Err(PatchError::SeveralKustomizations {
            dir: overlay.to_path_buf(),
            names: several
                .iter()
                .filter_map(|p| p.file_name()?.to_str().map(str::to_string))
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}

/// The image one `images:` entry should end up with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredImage {
    /// The release component (`web`, `worker`, `scheduler`).
    pub component: String,
    /// The entry's `name:`, the image name the base manifests use (`statuspage-web`).
    pub name: String,
    /// `newName:`, the repository with its registry.
    pub new_name: String,
    /// `newTag:`.
    pub new_tag: String,
    /// `digest:`; when `None` an existing `digest:` line is removed (it would pin the old image).
    pub digest: Option<String>,
}

impl DesiredImage {
    fn values(&self) -> EntryValues {
        EntryValues {
            new_name: Some(self.new_name.clone()),
            new_tag: Some(self.new_tag.clone()),
            digest: self.digest.clone(),
        }
    }
}

/// The fields of an `images:` entry this tool manages.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EntryValues {
    /// `newName:`.
    pub new_name: Option<String>,
    /// `newTag:`.
    pub new_tag: Option<String>,
    /// `digest:`.
    pub digest: Option<String>,
}

impl EntryValues {
    /// The image reference kustomize renders for an entry named `name`.
    pub fn image(&self, name: &str) -> String {
        let mut image = self.new_name.clone().unwrap_or_else(|| name.to_string());
        if let Some(tag) = &self.new_tag {
            image.push(':');
            image.push_str(tag);
        }
        if let Some(digest) = &self.digest {
            image.push('@');
            image.push_str(digest);
        }
        image
    }
}

/// What happens to one release image's entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageChange {
    /// The release component.
    pub component: String,
    /// The entry's `name:`.
    pub name: String,
    /// The entry's values before; `None` when there was no entry.
    pub before: Option<EntryValues>,
    /// The values after.
    pub after: EntryValues,
}

impl ImageChange {
    /// True when the entry is added or any of its values changes.
    pub fn changed(&self) -> bool {
        self.before.as_ref() != Some(&self.after)
    }
}

/// A run of changed lines, for the diff.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hunk {
    /// 1-based first line in the old file (the line before, when nothing is removed).
    pub old_start: usize,
    /// The lines removed.
    pub removed: Vec<String>,
    /// 1-based first line in the new file (the line before, when nothing is added).
    pub new_start: usize,
    /// The lines added.
    pub added: Vec<String>,
}

/// The result of [`update`]: the new text and what changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Update {
    /// The whole new file.
    pub text: String,
    /// One entry per release image, in release order.
    pub changes: Vec<ImageChange>,
    /// The changed lines; empty when the file is already at the release.
    pub hunks: Vec<Hunk>,
}

impl Update {
    /// True when the file would change.
    pub fn changed(&self) -> bool {
        !self.hunks.is_empty()
    }

    /// A unified diff of the changed lines (no context), `label` naming the file.
    pub fn diff(&self, label: &str) -> String {
        let mut out = format!("--- {label}\n+++ {label}\n");
        for hunk in &self.hunks {
            out.push_str(&format!(
                "@@ -{},{} +{},{} @@\n",
                hunk.old_start,
                hunk.removed.len(),
                hunk.new_start,
                hunk.added.len()
            ));
            for line in &hunk.removed {
                out.push_str(&format!("-{line}\n"));
            }
            for line in &hunk.added {
                out.push_str(&format!("+{line}\n"));
            }
        }
        out
    }
}

/// Compute the new kustomization text that gives every image in `images` its values.
///
/// `path` only names the file in errors. Entries whose `name:` matches get `newName`, `newTag`
/// and `digest` replaced in place or inserted after `name:`; a stale `digest:` is removed when
/// the release has none; missing entries are appended to the `images:` block, which is itself
/// appended at the end of the file when absent.
pub fn update(text: &str, path: &Path, images: &[DesiredImage]) -> Result<Update, PatchError> {
    let layout = Layout { path };
    let lines = split_lines(text);
    let list = ImagesList::read(text, &lines, &layout)?;
    let items: &[Item] = list.block.as_ref().map_or(&[], |b| &b.items);
    let (dash_indent, key_offset) = items.first().map_or((2, 2), |item| {
        (item.dash_indent, item.key_indent.unwrap_or(item.dash_indent + 2) - item.dash_indent)
    });
    let mut edits: Vec<Edit> = Vec::new();
    let mut appended: Vec<String> = Vec::new();
    let mut changes = Vec::new();
    for want in images {
        let after = want.values();
        let matching: Vec<usize> = (0..list.entries.len())
            .filter(|&j| list.entries[j].get("name").and_then(Value::as_str) == Some(want.name.as_str()))
            .collect();
        if matching.is_empty() {
            appended.extend(new_entry(&want.name, &after, dash_indent, key_offset));
            changes.push(ImageChange {
                component: want.component.clone(),
                name: want.name.clone(),
                before: None,
                after,
            });
            continue;
        }
        for j in matching {
            let entry = &list.entries[j];
            edits.extend(entry_edits(&lines, &items[j], entry, &want.name, &after, &layout)?);
            changes.push(ImageChange {
                component: want.component.clone(),
                name: want.name.clone(),
                before: Some(EntryValues {
                    new_name: scalar(entry.get("newName")),
                    new_tag: scalar(entry.get("newTag")),
                    digest: scalar(entry.get("digest")),
                }),
                after: after.clone(),
            });
        }
    }
    if !appended.is_empty() {
        edits.extend(append_edits(&lines, &list, appended));
    }
    edits.sort_by_key(|e| (e.at, e.remove));
    let (text, hunks) = apply(&lines, &edits);
    Ok(Update { text, changes, hunks })
}

/// Builds the [`PatchError::Layout`] errors of one file.
struct Layout<'a> {
    path: &'a Path,
}

impl Layout<'_> {
    fn error(&self, line: Option<usize>, what: String, fix: &str) -> PatchError {
        PatchError::Layout {
            path: self.path.to_path_buf(),
            line: line.map(line_number),
            what,
            fix: fix.to_string(),
        }
    }
}

/// The `images:` list of a kustomization, read both as YAML (`entries`) and line by line
/// (`block`), checked to agree item for item.
struct ImagesList {
    /// The line of the `images:` key, if the file has one.
    line: Option<usize>,
    entries: Vec<Value>,
    block: Option<Block>,
}

impl ImagesList {
    fn read(text: &str, lines: &[Line<'_>], layout: &Layout<'_>) -> Result<Self, PatchError> {
        let doc: Value = yaml_serde::from_str(text).map_err(|e| PatchError::Yaml {
            path: layout.path.to_path_buf(),
            line: e.location().and_then(|l| u32::try_from(l.line()).ok()),
            message: e.to_string(),
        })?;
        let Value::Mapping(map) = &doc else {
            return Err(layout.error(
                None,
                "the document is not a mapping".into(),
                "it must be a Kustomization (apiVersion, kind, resources, images, ...)",
            ));
        };
        let line = lines.iter().position(|l| images_key(l.text).is_some());
        let entries: Vec<Value> = match (map.get("images"), line) {
            (None, _) | (Some(Value::Null), Some(_)) => Vec::new(),
            (Some(_), None) => {
                return Err(layout.error(
                    None,
                    "the images: key is not a plain top-level key".into(),
                    "write it as `images:` at the start of a line, followed by a block list",
                ));
            }
            (Some(Value::Sequence(seq)), Some(_)) => seq.clone(),
            (Some(_), Some(i)) => {
                return Err(layout.error(
                    Some(i),
                    "images: is not a list".into(),
                    "make it a list of `- name: …` entries, as kustomize requires",
                ));
            }
        };
        let block = line.map(|i| Block::parse(lines, i));
        let items = block.as_ref().map_or(0, |b| b.items.len());
        let block_list = "write it as a block list, one `- name: …` item per entry";
        if line.is_some_and(|i| images_key(lines[i].text) == Some(ImagesValue::Flow)) {
            if !entries.is_empty() {
                return Err(layout.error(line, "images: is a flow list ([...])".into(), block_list));
            }
        } else if items != entries.len() {
            let what = format!(
                "images: has {} entries but {items} `- ` items could be read line by line",
                entries.len()
            );
            return Err(layout.error(line, what, block_list));
        }
        Ok(Self { line, entries, block })
    }
}

/// The lines of a new `images:` entry for `name` with the values `after`.
fn new_entry(name: &str, after: &EntryValues, dash_indent: usize, key_offset: usize) -> Vec<String> {
    let pad = " ".repeat(dash_indent);
    let key_pad = " ".repeat(dash_indent + key_offset);
    let mut lines = vec![format!("{pad}-{}name: {}", " ".repeat(key_offset - 1), plain_or_quoted(name))];
    for (key, value) in managed(after) {
        if let Some(value) = value {
            lines.push(format!("{key_pad}{key}: {}", plain_or_quoted(value)));
        }
    }
    lines
}

/// The edits that give the existing entry `item` (`entry` as YAML) for `name` the values
/// `after`: each managed key replaced in place, removed, or inserted after `name:`.
fn entry_edits(
    lines: &[Line<'_>],
    item: &Item,
    entry: &Value,
    name: &str,
    after: &EntryValues,
    layout: &Layout<'_>,
) -> Result<Vec<Edit>, PatchError> {
    if item.flow {
        return Err(layout.error(
            Some(item.dash_line),
            format!("the entry for {name} is written in flow style"),
            "write it as a block mapping: `- name: …` with one key per line",
        ));
    }
    let Some(name_key) = item.keys.iter().find(|k| k.key == "name") else {
        return Err(layout.error(
            Some(item.dash_line),
            format!("the name: of the entry for {name} could not be read line by line"),
            "write `name:` as a plain key of the entry, one key per line",
        ));
    };
    let key_indent = item.key_indent.unwrap_or(item.dash_indent + 2);
    let mut edits = Vec::new();
    let mut inserts = Vec::new();
    for (key, value) in managed(after) {
        let line = item.keys.iter().find(|k| k.key == key);
        let old = entry.get(key);
        match (line, value) {
            (None, _) if old.is_some() => {
                return Err(layout.error(
                    Some(item.dash_line),
                    format!("the {key}: of the entry for {name} could not be read line by line"),
                    "write it as a plain key of the entry, one key per line",
                ));
            }
            (None, None) => {}
            (None, Some(value)) => {
                inserts.push(format!("{}{key}: {}", " ".repeat(key_indent), plain_or_quoted(value)));
            }
            (Some(k), None) => edits.push(Edit { at: k.line, remove: k.span_end - k.line, insert: vec![] }),
            (Some(k), Some(value)) if old.and_then(Value::as_str) != Some(value) => {
                let new = rewrite_value(lines[k.line].text, k.after_colon, value);
                edits.push(Edit { at: k.line, remove: k.span_end - k.line, insert: vec![new] });
            }
            (Some(_), Some(_)) => {}
        }
    }
    if !inserts.is_empty() {
        edits.push(Edit { at: name_key.span_end, remove: 0, insert: inserts });
    }
    Ok(edits)
}

/// The edits that append the `appended` entry lines: at the end of the `images:` block (a flow
/// `images: []` becomes a block), or as a new `images:` block at the end of the file.
fn append_edits(lines: &[Line<'_>], list: &ImagesList, appended: Vec<String>) -> Vec<Edit> {
    match (&list.block, list.line) {
        (Some(block), Some(i)) => {
            let mut edits = Vec::new();
            if images_key(lines[i].text) == Some(ImagesValue::Flow) {
                let comment = lines[i].text.find(" #").map_or("", |c| &lines[i].text[c..]);
                edits.push(Edit { at: i, remove: 1, insert: vec![format!("images:{comment}")] });
            }
            edits.push(Edit { at: block.end, remove: 0, insert: appended });
            edits
        }
        _ => {
            let mut insert = vec!["images:".to_string()];
            insert.extend(appended);
            vec![Edit { at: lines.len(), remove: 0, insert }]
        }
    }
}

/// The managed keys of an entry, in the order they are inserted.
fn managed(values: &EntryValues) -> [(&'static str, Option<&String>); 3] {
    [
        ("newName", values.new_name.as_ref()),
        ("newTag", values.new_tag.as_ref()),
        ("digest", values.digest.as_ref()),
    ]
}

/// A scalar's text (numbers and booleans as written), `None` for null or absent.
fn scalar(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Null => None,
        other => Some(format!("{other:?}")),
    }
}

fn line_number(index: usize) -> u32 {
    u32::try_from(index + 1).unwrap_or(u32::MAX)
}

/// One line: its text and its line break (`\n`, `\r\n` or empty for a last line without one).
#[derive(Debug, Clone, Copy)]
struct Line<'a> {
    text: &'a str,
    eol: &'a str,
}

fn split_lines(text: &str) -> Vec<Line<'_>> {
    text.split_inclusive('\n')
        .map(|raw| {
            let body = raw.strip_suffix('\n').unwrap_or(raw);
            let text = body.strip_suffix('\r').unwrap_or(body);
            Line { text, eol: &raw[text.len()..] }
        })
        .collect()
}

fn indent(text: &str) -> usize {
    text.len() - text.trim_start_matches(' ').len()
}

/// Blank or only a comment: never ends or starts anything.
fn is_filler(text: &str) -> bool {
    let t = text.trim_start();
    t.is_empty() || t.starts_with('#')
}

/// How the value of a top-level `images:` line is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ImagesValue {
    /// Nothing (a block list follows, or null).
    Block,
    /// A flow list, `[]` or `[...]`.
    Flow,
}

/// Whether a line is the top-level `images:` key.
fn images_key(text: &str) -> Option<ImagesValue> {
    let rest = text.strip_prefix("images:")?;
    let value = rest.split(" #").next().unwrap_or("").trim();
    match value {
        "" if rest.is_empty() || rest.starts_with([' ', '\t']) => Some(ImagesValue::Block),
        flow if flow.starts_with('[') && rest.starts_with([' ', '\t']) => Some(ImagesValue::Flow),
        _ => None,
    }
}

/// A `key:` line of an entry.
#[derive(Debug, Clone)]
struct KeyLine {
    key: String,
    line: usize,
    /// Byte offset just after the colon.
    after_colon: usize,
    /// Index after the key's last line (continuation lines of a value belong to it).
    span_end: usize,
}

/// One `- ` item of the images list.
#[derive(Debug, Clone)]
struct Item {
    dash_line: usize,
    dash_indent: usize,
    key_indent: Option<usize>,
    /// Written as a flow mapping or a scalar: readable by YAML, not editable by lines.
    flow: bool,
    keys: Vec<KeyLine>,
}

/// The lines of the `images:` block.
#[derive(Debug, Clone)]
struct Block {
    items: Vec<Item>,
    /// Index after the block's last content line: where new entries go.
    end: usize,
}

impl Block {
    fn parse(lines: &[Line<'_>], images_line: usize) -> Self {
        let mut items: Vec<Item> = Vec::new();
        let mut seq_indent = None;
        let mut end = images_line + 1;
        for (i, line) in lines.iter().enumerate().skip(images_line + 1) {
            let text = line.text;
            if is_filler(text) {
                continue;
            }
            let ind = indent(text);
            let body = &text[ind..];
            let dash = body == "-" || body.starts_with("- ");
            match seq_indent {
                None if dash => seq_indent = Some(ind),
                None => break,
                Some(si) if ind < si || (ind == si && !dash) => break,
                Some(_) => {}
            }
            end = i + 1;
            if dash && Some(ind) == seq_indent {
                items.push(Item::start(text, i, ind));
            } else if let Some(item) = items.last_mut() {
                item.add_line(text, i, ind);
            }
        }
        Block { items, end }
    }
}

impl Item {
    fn start(text: &str, line: usize, dash_indent: usize) -> Self {
        let after_dash = &text[dash_indent + 1..];
        let col = dash_indent + 1 + indent(after_dash);
        let mut item = Item { dash_line: line, dash_indent, key_indent: None, flow: false, keys: Vec::new() };
        if !is_filler(&text[col..]) {
            match key_at(text, col) {
                Some((key, after_colon)) => {
                    item.key_indent = Some(col);
                    item.keys.push(KeyLine { key, line, after_colon, span_end: line + 1 });
                }
                None => item.flow = true,
            }
        }
        item
    }

    fn add_line(&mut self, text: &str, line: usize, ind: usize) {
        let key_indent = *self.key_indent.get_or_insert(ind);
        if ind == key_indent
            && let Some((key, after_colon)) = key_at(text, ind)
        {
            self.keys.push(KeyLine { key, line, after_colon, span_end: line + 1 });
        } else if let Some(last) = self.keys.last_mut() {
            last.span_end = line + 1;
        }
    }
}

/// The key of a `key: value` line whose key starts at byte `col`, and the offset after the colon.
fn key_at(text: &str, col: usize) -> Option<(String, usize)> {
    let s = &text[col..];
    let (key, colon) = match s.chars().next()? {
        quote @ ('"' | '\'') => {
            let close = s[1..].find(quote)? + 1;
            (s[1..close].to_string(), close + 1)
        }
        '{' | '[' | '#' | '-' | '&' | '*' | '!' | '|' | '>' => return None,
        _ => {
            let colon = s
                .match_indices(':')
                .map(|(i, _)| i)
                .find(|&i| s[i + 1..].is_empty() || s[i + 1..].starts_with([' ', '\t']))?;
            (s[..colon].trim_end().to_string(), colon)
        }
    };
    let after = &s[colon..];
    (after.starts_with(':') && (after.len() == 1 || after[1..].starts_with([' ', '\t'])))
        .then(|| (key, col + colon + 1))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Quote {
    Plain,
    Single,
    Double,
}

/// The line with its value (after `after_colon`) replaced, keeping the spacing, the quoting
/// style and any trailing comment.
fn rewrite_value(text: &str, after_colon: usize, value: &str) -> String {
    let rest = &text[after_colon..];
    let start = rest.len() - rest.trim_start().len();
    let body = &rest[start..];
    let (quote, len) = if body.is_empty() || body.starts_with('#') {
        (Quote::Plain, None)
    } else if let Some(inner) = body.strip_prefix('"') {
        let mut escaped = false;
        let close = inner.char_indices().find_map(|(i, c)| {
            let found = c == '"' && !escaped;
            escaped = c == '\\' && !escaped;
            found.then_some(i)
        });
        (Quote::Double, close.map(|i| i + 2))
    } else if let Some(inner) = body.strip_prefix('\'') {
        // '' is an escaped quote inside single quotes.
        let bytes = inner.as_bytes();
        let mut i = 0;
        let mut close = None;
        while i < bytes.len() {
            if bytes[i] == b'\'' {
                if bytes.get(i + 1) == Some(&b'\'') {
                    i += 2;
                    continue;
                }
                close = Some(i + 2);
                break;
            }
            i += 1;
        }
        (Quote::Single, close)
    } else {
        let end = [" #", "\t#"].iter().filter_map(|m| body.find(m)).min().unwrap_or(body.len());
        (Quote::Plain, Some(body[..end].trim_end().len()))
    };
    let (spacing, tail) = match len {
        Some(len) if len > 0 => (&rest[..start], &body[len..]),
        // No value (or an unterminated quote): one space, and whatever followed.
        _ => (" ", if body.is_empty() { "" } else { rest }),
    };
    let spacing = if spacing.is_empty() { " " } else { spacing };
    let written = match quote {
        Quote::Double => format!("\"{value}\""),
        Quote::Single => format!("'{value}'"),
        Quote::Plain => plain_or_quoted(value),
    };
    format!("{}{spacing}{written}{tail}", &text[..after_colon])
}

/// `value` as a YAML scalar that every YAML parser reads back as this exact string: plain when
/// that is safe, double-quoted when a parser could take it for a number, boolean or null (a
/// commit SHA like `1234567` or `12e4567` must not become a number: kustomize refuses those).
pub fn plain_or_quoted(value: &str) -> String {
    let lower = value.to_ascii_lowercase();
    let yaml11_word = matches!(
        lower.as_str(),
        "y" | "n" | "yes" | "no" | "on" | "off" | "true" | "false" | "null" | "~" | ""
    );
    let numeric = value.replace('_', "").parse::<f64>().is_ok()
        || ["0x", "0o", "0b"].iter().any(|p| lower.starts_with(p) && lower.len() > 2);
    let round_trips = matches!(yaml_serde::from_str::<Value>(value), Ok(Value::String(s)) if s == value);
    if yaml11_word || numeric || !round_trips { format!("\"{value}\"") } else { value.to_string() }
}

/// Replace `remove` lines at `at` (0-based) with `insert`.
#[derive(Debug, Clone)]
struct Edit {
    at: usize,
    remove: usize,
    insert: Vec<String>,
}

/// Apply sorted, non-overlapping edits; return the new text and the diff hunks.
fn apply(lines: &[Line<'_>], edits: &[Edit]) -> (String, Vec<Hunk>) {
    let default_eol = lines.iter().map(|l| l.eol).find(|e| !e.is_empty()).unwrap_or("\n");
    let mut out: Vec<(String, &str)> = Vec::new();
    // (0-based old index, 0-based new index, removed, added); adjacent edits share one hunk.
    let mut runs: Vec<(usize, usize, Vec<String>, Vec<String>)> = Vec::new();
    let mut cursor = 0;
    for edit in edits {
        out.extend(lines[cursor..edit.at].iter().map(|l| (l.text.to_string(), l.eol)));
        let eol = match lines.get(edit.at) {
            Some(line) if !line.eol.is_empty() => line.eol,
            _ => default_eol,
        };
        let removed: Vec<String> =
            lines[edit.at..edit.at + edit.remove].iter().map(|l| l.text.to_string()).collect();
        let new_at = out.len();
        out.extend(edit.insert.iter().map(|l| (l.clone(), eol)));
        cursor = edit.at + edit.remove;
        match runs.last_mut() {
            Some((old_at, _, old, new)) if *old_at + old.len() == edit.at => {
                old.extend(removed);
                new.extend(edit.insert.iter().cloned());
            }
            _ => runs.push((edit.at, new_at, removed, edit.insert.clone())),
        }
    }
    out.extend(lines[cursor..].iter().map(|l| (l.text.to_string(), l.eol)));
    let last = out.len().saturating_sub(1);
    let mut text = String::new();
    for (i, (line, eol)) in out.iter().enumerate() {
        text.push_str(line);
        // A last line without a break gets one once something follows it.
        text.push_str(if eol.is_empty() && i < last { default_eol } else { eol });
    }
    let hunks = runs
        .into_iter()
        .filter(|(_, _, removed, added)| removed != added)
        .map(|(old_at, new_at, removed, added)| Hunk {
            // Unified diff: an empty range names the line before it.
            old_start: old_at + usize::from(!removed.is_empty()),
            new_start: new_at + usize::from(!added.is_empty()),
            removed,
            added,
        })
        .collect();
    (text, hunks)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    const REPO: &str = "123456789012.dkr.ecr.us-east-1.amazonaws.com/statuspage";

    fn want(component: &str, tag: &str, digest: Option<&str>) -> DesiredImage {
        DesiredImage {
            component: component.into(),
            name: format!("statuspage-{component}"),
            new_name: format!("{REPO}-{component}"),
            new_tag: tag.into(),
            digest: digest.map(str::to_string),
        }
    }

    fn patch(text: &str, images: &[DesiredImage]) -> Update {
        let update = update(text, Path::new("k.yaml"), images).unwrap();
        // Whatever the input, the result is valid YAML and patching again changes nothing.
        let _: Value = yaml_serde::from_str(&update.text).unwrap();
        let again = super::update(&update.text, Path::new("k.yaml"), images).unwrap();
        assert!(!again.changed(), "not idempotent:\n{}", again.diff("k.yaml"));
        assert_eq!(again.text, update.text);
        update
    }

    fn err(text: &str, images: &[DesiredImage]) -> PatchError {
        update(text, Path::new("k.yaml"), images).unwrap_err()
    }

    /// The overlays in manifests/app/overlays, shortened.
    const OVERLAY: &str = "\
# Production on EKS.
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - ../../base
# Only the patch step of the pipeline edits these entries.
images:
  - name: statuspage-web
    newName: 123456789012.dkr.ecr.us-east-1.amazonaws.com/statuspage-web
    newTag: unreleased
  - name: statuspage-worker
    newName: 123456789012.dkr.ecr.us-east-1.amazonaws.com/statuspage-worker
    newTag: unreleased
";

    #[test]
    fn replaces_tags_and_inserts_the_digest_after_name() {
        let update = patch(OVERLAY, &[want("web", "abc", Some(DIGEST)), want("worker", "abc", None)]);
        let expected = format!(
            "\
# Production on EKS.
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - ../../base
# Only the patch step of the pipeline edits these entries.
images:
  - name: statuspage-web
    digest: {DIGEST}
    newName: 123456789012.dkr.ecr.us-east-1.amazonaws.com/statuspage-web
    newTag: abc
  - name: statuspage-worker
    newName: 123456789012.dkr.ecr.us-east-1.amazonaws.com/statuspage-worker
    newTag: abc
"
        );
        assert_eq!(update.text, expected);
        assert!(update.changes.iter().all(ImageChange::changed));
        assert_eq!(update.changes[0].before.as_ref().unwrap().new_tag.as_deref(), Some("unreleased"));
    }

    #[test]
    fn keeps_comments_blank_lines_quoting_order_and_other_entries() {
        let text = "\
images:
  # web: pinned by the pipeline
  - newTag: \"old\" # the commit
    # a comment between keys
    name: statuspage-web

    digest: 'sha256:1111111111111111111111111111111111111111111111111111111111111111'
    newName: old.example/web   # where from
  - name: nginx   # not ours
    newTag: 1.27
  # trailing comment of the block
# next key
resources:
  - ../../base
";
        let update = patch(text, &[want("web", "abc", Some(DIGEST))]);
        let expected = format!(
            "\
images:
  # web: pinned by the pipeline
  - newTag: \"abc\" # the commit
    # a comment between keys
    name: statuspage-web

    digest: '{DIGEST}'
    newName: {REPO}-web   # where from
  - name: nginx   # not ours
    newTag: 1.27
  # trailing comment of the block
# next key
resources:
  - ../../base
"
        );
        assert_eq!(update.text, expected);
        assert_eq!(update.hunks.len(), 2, "{}", update.diff("k"));
    }

    #[test]
    fn any_indentation_and_a_bare_dash() {
        let text = "images:\n- name: statuspage-web\n  newTag: x\n-\n      name: statuspage-worker\nkind: Kustomization\n";
        let update = patch(text, &[want("web", "t1", None), want("worker", "t2", None)]);
        assert_eq!(
            update.text,
            format!(
                "images:\n- name: statuspage-web\n  newName: {REPO}-web\n  newTag: t1\n-\n      name: statuspage-worker\n      newName: {REPO}-worker\n      newTag: t2\nkind: Kustomization\n"
            )
        );
    }

    #[test]
    fn a_stale_digest_is_removed_when_the_release_has_none() {
        let text = format!(
            "images:\n  - name: statuspage-web\n    newName: {REPO}-web\n    newTag: old\n    digest: {DIGEST}\n"
        );
        let update = patch(&text, &[want("web", "new", None)]);
        assert_eq!(
            update.text,
            format!("images:\n  - name: statuspage-web\n    newName: {REPO}-web\n    newTag: new\n")
        );
        assert_eq!(update.hunks.len(), 1);
        assert_eq!(
            update.diff("k.yaml"),
            format!(
                "--- k.yaml\n+++ k.yaml\n@@ -4,2 +4,1 @@\n-    newTag: old\n-    digest: {DIGEST}\n+    newTag: new\n"
            )
        );
    }

    #[test]
    fn a_missing_entry_is_appended_to_the_block_with_its_indentation() {
        let text = "images:\n    -   name: other\n        newTag: x\n\n# resources follow\nresources: []\n";
        let update = patch(text, &[want("web", "abc", Some(DIGEST))]);
        assert_eq!(
            update.text,
            format!(
                "images:\n    -   name: other\n        newTag: x\n    -   name: statuspage-web\n        newName: {REPO}-web\n        newTag: abc\n        digest: {DIGEST}\n\n# resources follow\nresources: []\n"
            )
        );
        assert_eq!(update.changes[0].before, None);
        assert!(
            update.diff("k").contains("@@ -3,0 +4,4 @@\n+    -   name: statuspage-web\n"),
            "{}",
            update.diff("k")
        );
    }

    #[test]
    fn a_missing_images_key_becomes_a_block_at_the_end() {
        let text = "kind: Kustomization\nresources:\n  - ../../base"; // no final line break
        let update = patch(text, &[want("web", "abc", None)]);
        assert_eq!(
            update.text,
            format!(
                "kind: Kustomization\nresources:\n  - ../../base\nimages:\n  - name: statuspage-web\n    newName: {REPO}-web\n    newTag: abc\n"
            )
        );
        for empty in ["images:\nkind: Kustomization\n", "images: [] # none yet\nkind: Kustomization\n"] {
            let update = patch(empty, &[want("web", "abc", None)]);
            assert!(update.text.starts_with("images:"), "{}", update.text);
            assert!(update.text.contains("  - name: statuspage-web\n    newName:"), "{}", update.text);
            assert!(update.text.ends_with("kind: Kustomization\n"), "{}", update.text);
        }
    }

    #[test]
    fn crlf_files_stay_crlf() {
        let text = "images:\r\n  - name: statuspage-web\r\n    newTag: old\r\nkind: Kustomization\r\n";
        let update = patch(text, &[want("web", "new", None)]);
        assert_eq!(
            update.text,
            format!(
                "images:\r\n  - name: statuspage-web\r\n    newName: {REPO}-web\r\n    newTag: new\r\nkind: Kustomization\r\n"
            )
        );
    }

    #[test]
    fn already_current_entries_are_left_alone_even_when_quoted_differently() {
        let text = format!(
            "images:\n  - name: \"statuspage-web\"\n    newName: '{REPO}-web'\n    newTag: \"abc\"\n"
        );
        let update = update(&text, Path::new("k"), &[want("web", "abc", None)]).unwrap();
        assert!(!update.changed());
        assert_eq!(update.text, text);
        assert!(!update.changes[0].changed());
    }

    #[test]
    fn tags_that_look_like_numbers_are_quoted() {
        for tag in ["1234567", "12e4567", "0x1f", "true", "yes", "1_000", "inf"] {
            assert_eq!(plain_or_quoted(tag), format!("\"{tag}\""), "{tag}");
        }
        for tag in ["abc", "0123abc", "v1.2.3", "1.2.3", "main", "0123456789abcdef0123456789abcdef01234567"] {
            assert_eq!(plain_or_quoted(tag), tag, "{tag}");
        }
        let update =
            patch("images:\n  - name: statuspage-web\n    newTag: x\n", &[want("web", "1234567", None)]);
        assert!(update.text.contains("    newTag: \"1234567\"\n"), "{}", update.text);
    }

    #[test]
    fn invalid_yaml_names_the_line() {
        let e = err("kind: Kustomization\nimages:\n  - name: [unclosed\n", &[want("web", "a", None)]);
        assert!(matches!(e, PatchError::Yaml { line: Some(_), .. }), "{e}");
        assert!(e.to_string().starts_with("k.yaml line "), "{e}");
    }

    #[test]
    fn layouts_that_cannot_be_edited_by_lines_are_refused_with_their_line() {
        let e = err("kind: K\nimages:\n  web: x\n", &[want("web", "a", None)]);
        assert!(matches!(e, PatchError::Layout { line: Some(2), .. }), "{e}");
        assert!(e.to_string().contains("not a list"), "{e}");
        let e = err("images:\n  - {name: statuspage-web, newTag: x}\n", &[want("web", "a", None)]);
        assert!(matches!(e, PatchError::Layout { line: Some(2), .. }), "{e}");
        assert!(e.to_string().contains("flow style"), "{e}");
        let e = err("images: [{name: statuspage-web}]\n", &[want("web", "a", None)]);
        assert!(matches!(e, PatchError::Layout { line: Some(1), .. }), "{e}");
        let e = err("- a\n- b\n", &[want("web", "a", None)]);
        assert!(e.to_string().contains("not a mapping"), "{e}");
        // Flow entries that are not ours are fine.
        patch("images:\n  - {name: nginx, newTag: x}\n", &[want("web", "a", None)]);
    }

    #[test]
    fn the_overlays_in_this_repository_patch_cleanly() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../manifests/app/overlays");
        for overlay in ["local", "staging", "production"] {
            let path = find(&dir.join(overlay)).unwrap();
            let text = std::fs::read_to_string(&path).unwrap();
            let images =
                [want("web", "a", Some(DIGEST)), want("worker", "a", None), want("scheduler", "a", None)];
            let update = patch(&text, &images);
            assert_eq!(update.hunks.len(), 4, "{overlay}: {}", update.diff("k"));
            let changed: Vec<&str> = update.text.lines().filter(|l| !text.lines().any(|o| o == *l)).collect();
            assert_eq!(changed.len(), 4, "{overlay}: only the tags and one digest change: {changed:?}");
        }
    }

    #[test]
    fn find_accepts_what_kustomize_accepts() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(find(&dir.path().join("nope")), Err(PatchError::MissingOverlay(_))));
        assert!(matches!(find(dir.path()), Err(PatchError::NoKustomization(_))));
        std::fs::write(dir.path().join("Kustomization"), "kind: Kustomization\n").unwrap();
        assert_eq!(find(dir.path()).unwrap(), dir.path().join("Kustomization"));
        std::fs::write(dir.path().join("kustomization.yml"), "kind: Kustomization\n").unwrap();
        let e = find(dir.path()).unwrap_err();
        assert!(e.to_string().contains("kustomization.yml, Kustomization"), "{e}");
    }
}
