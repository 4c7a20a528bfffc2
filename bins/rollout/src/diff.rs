//! What a dry run would change, the way `kubectl diff` shows it: a unified diff of the live object
//! against the server-side dry run's result, as YAML, without managed fields, status and the
//! metadata the server generates; Secret values are masked (a changed one is marked, never shown).

use kube::api::DynamicObject;
use serde_json::Value;

/// The object as compared and shown: no status, no server-generated metadata.
pub fn comparable(object: &DynamicObject) -> Value {
    let mut value = serde_json::to_value(object).unwrap_or_default();
    if let Some(metadata) = value.get_mut("metadata").and_then(Value::as_object_mut) {
        for key in ["managedFields", "resourceVersion", "generation", "creationTimestamp", "uid"] {
            metadata.remove(key);
        }
        if let Some(annotations) = metadata.get_mut("annotations").and_then(Value::as_object_mut) {
            annotations.remove("kubectl.kubernetes.io/last-applied-configuration");
            annotations.remove(crate::REVISION_ANNOTATION);
        }
    }
    if let Some(map) = value.as_object_mut() {
        map.remove("status");
    }
    value
}

/// Mask a Secret's values on both sides; a value that differs is marked as changed.
fn mask(before: &mut Value, after: &mut Value) {
    for key in ["data", "stringData"] {
        let old = before.get(key).cloned().unwrap_or_default();
        for (side, other) in [(&mut *before, &Value::Null), (&mut *after, &old)] {
            let Some(map) = side.get_mut(key).and_then(Value::as_object_mut) else { continue };
            for (name, value) in map.iter_mut() {
                let changed = !other.is_null() && other.get(name) != Some(value);
                *value = Value::String(if changed { "*** (changed)".into() } else { "***".into() });
            }
        }
    }
}

/// The unified diff of `live` against `after` (empty when they are the same).
pub fn object_diff(kind: &str, live: &DynamicObject, after: &DynamicObject) -> String {
    let (mut before, mut after) = (comparable(live), comparable(after));
    if kind == "Secret" {
        mask(&mut before, &mut after);
    }
    let text = |v: &Value| yaml_serde::to_string(v).unwrap_or_default();
    unified(&text(&before), &text(&after), 3)
}

/// A unified diff of two texts by lines (longest common subsequence), `context` lines around
/// each change.
pub fn unified(a: &str, b: &str, context: usize) -> String {
    let (a, b): (Vec<&str>, Vec<&str>) = (a.lines().collect(), b.lines().collect());
    // lcs[i][j]: length of the longest common subsequence of a[i..] and b[j..].
    let mut lcs = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] { lcs[i + 1][j + 1] + 1 } else { lcs[i + 1][j].max(lcs[i][j + 1]) };
        }
    }
    let mut ops: Vec<(char, &str)> = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            ops.push((' ', a[i]));
            i += 1;
            j += 1;
        } else if i < a.len() && (j == b.len() || lcs[i + 1][j] >= lcs[i][j + 1]) {
            ops.push(('-', a[i]));
            i += 1;
        } else {
            ops.push(('+', b[j]));
            j += 1;
        }
    }
    let changed: Vec<usize> =
        ops.iter().enumerate().filter(|(_, (op, _))| *op != ' ').map(|(n, _)| n).collect();
    let mut out = String::new();
    let mut shown_to = 0;
    for &n in &changed {
        let start = n.saturating_sub(context).max(shown_to);
        if start > shown_to || (shown_to == 0 && start > 0) {
            out.push_str("@@\n");
        }
        let end = (n + context + 1).min(ops.len());
        for (op, line) in &ops[start.max(shown_to)..end.max(shown_to)] {
            out.push_str(&format!("{op}{line}\n"));
        }
        shown_to = shown_to.max(end);
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn a_changed_key_is_one_hunk() {
        let diff = unified("a\nb\nc\nd\ne\nf\ng\nh\n", "a\nb\nc\nd\nX\nf\ng\nh\n", 1);
        assert_eq!(diff, "@@\n d\n-e\n+X\n f\n");
        assert_eq!(unified("same\n", "same\n", 3), "");
    }

    #[test]
    fn secret_values_are_masked_and_changes_marked() {
        let object = |value: &str| -> DynamicObject {
            serde_json::from_value(json!({"apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": "s", "managedFields": [], "resourceVersion": "1"},
                "data": {"KEY": value, "SAME": "c2FtZQ=="}}))
            .unwrap()
        };
        let diff = object_diff("Secret", &object("b2xk"), &object("bmV3"));
        assert!(diff.contains("-  KEY: '***'") && diff.contains("+  KEY: '*** (changed)'"), "{diff}");
        assert!(
            !diff.contains("b2xk") && !diff.contains("bmV3") && !diff.contains("resourceVersion"),
            "{diff}"
        );
    }
}
