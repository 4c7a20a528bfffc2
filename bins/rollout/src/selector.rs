//! Label selectors given as input (`--prune-selector`), checked before the API server sees them:
//! `key`, `!key`, `key=value`, `key==value`, `key!=value`, `key in (a,b)`, `key notin (a,b)`.

/// Why `selector` is not a label selector, if it is not.
pub fn check(selector: &str) -> Result<(), String> {
    if selector.trim().is_empty() {
        return Err(
            "is empty: without a selector every object of the field manager would be a prune candidate"
                .into(),
        );
    }
    for requirement in split(selector) {
        let requirement = requirement.trim();
        if let Some(key) = requirement.strip_prefix('!') {
            check_key(key.trim())?;
            continue;
        }
        if let Some((key, rest)) = split_set(requirement) {
            check_key(key)?;
            let values = rest.strip_prefix('(').and_then(|r| r.strip_suffix(')')).ok_or_else(|| {
                format!("{requirement:?}: a set needs its values in parentheses, e.g. {key} in (a,b)")
            })?;
            for value in values.split(',') {
                check_value(value.trim())?;
            }
            continue;
        }
        let (key, value) =
            ["!=", "==", "="].iter().find_map(|op| requirement.split_once(op)).unwrap_or((requirement, ""));
        check_key(key.trim())?;
        check_value(value.trim())?;
    }
    Ok(())
}

/// Split on commas outside parentheses.
fn split(selector: &str) -> Vec<&str> {
    let (mut parts, mut depth, mut start) = (Vec::new(), 0i32, 0);
    for (i, c) in selector.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&selector[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&selector[start..]);
    parts
}

fn split_set(requirement: &str) -> Option<(&str, &str)> {
    for op in [" notin ", " in "] {
        if let Some((key, rest)) = requirement.split_once(op) {
            return Some((key.trim(), rest.trim()));
        }
    }
    None
}

fn name_ok(name: &str) -> bool {
    let bytes = name.as_bytes();
    !name.is_empty()
        && name.len() <= 63
        && bytes[0].is_ascii_alphanumeric()
        && bytes[bytes.len() - 1].is_ascii_alphanumeric()
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

fn check_key(key: &str) -> Result<(), String> {
    let (prefix, name) = match key.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    let prefix_ok = prefix.is_none_or(|p| {
        !p.is_empty()
            && p.len() <= 253
            && p.split('.').all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && l.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            })
    });
    if prefix_ok && name_ok(name) {
        Ok(())
    } else {
        Err(format!(
            "label key {key:?} is invalid: a key is [prefix/]name, the name up to 63 letters, digits, '-', '_' or '.' starting and ending alphanumeric"
        ))
    }
}

fn check_value(value: &str) -> Result<(), String> {
    if value.is_empty() || name_ok(value) {
        Ok(())
    } else {
        Err(format!(
            "label value {value:?} is invalid: up to 63 letters, digits, '-', '_' or '.', starting and ending alphanumeric"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors() {
        for good in [
            "app.kubernetes.io/part-of=statuspage",
            "a,b!=c",
            "!x",
            "tier in (web, worker)",
            "a==b",
            "k notin (x)",
        ] {
            assert_eq!(check(good), Ok(()), "{good}");
        }
        for bad in ["", "a b", "=x", "a=b c", "-a=b", "Bad_Prefix/x=y", "a in b", "a=(b"] {
            assert!(check(bad).is_err(), "{bad}");
        }
    }
}
