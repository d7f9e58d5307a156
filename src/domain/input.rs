//! Checks of free-form input: text lengths and property maps (DESIGN §5, §10).

use std::collections::BTreeMap;

use crate::error::{AppError, FieldViolation, Result};

/// Longest comment, in characters.
pub const MAX_COMMENT_CHARS: usize = 5_000;
/// Most keys in a property map.
pub const MAX_PROPERTIES: usize = 50;
/// Longest property value (and key), in characters.
pub const MAX_PROPERTY_CHARS: usize = 1_000;
/// Longest idempotency key.
pub const MAX_IDEMPOTENCY_KEY_CHARS: usize = 200;

/// Text of at most `max` characters; `required` refuses the empty string.
pub fn text(field: &str, raw: &str, max: usize, required: bool) -> Result<String> {
    if required && raw.trim().is_empty() {
        return Err(AppError::invalid(field, "is required"));
    }
    let n = raw.chars().count();
    if n > max {
        return Err(AppError::invalid(field, format!("must be at most {max} characters; got {n}")));
    }
    Ok(raw.to_owned())
}

/// A comment: optional, at most 5 000 characters.
pub fn comment(raw: &str) -> Result<String> {
    text("comment", raw, MAX_COMMENT_CHARS, false)
}

/// An idempotency key: optional, at most 200 characters.
pub fn idempotency_key(raw: &str) -> Result<Option<String>> {
    let key = text("idempotency_key", raw, MAX_IDEMPOTENCY_KEY_CHARS, false)?;
    Ok((!key.is_empty()).then_some(key))
}

/// A property map: at most 50 keys, keys 1–1 000 characters, values at most 1 000.
pub fn properties<'a, I>(field: &str, map: I) -> Result<BTreeMap<String, String>>
where
    I: IntoIterator<Item = (&'a String, &'a String)>,
{
    let mut out = BTreeMap::new();
    let mut violations = Vec::new();
    for (k, v) in map {
        if k.is_empty() || k.chars().count() > MAX_PROPERTY_CHARS {
            violations.push(FieldViolation {
                field: field.to_owned(),
                description: format!("keys must be 1 to {MAX_PROPERTY_CHARS} characters"),
            });
        } else if v.chars().count() > MAX_PROPERTY_CHARS {
            violations.push(FieldViolation {
                field: format!("{field}[{k}]"),
                description: format!("must be at most {MAX_PROPERTY_CHARS} characters"),
            });
        }
        out.insert(k.clone(), v.clone());
    }
    if out.len() > MAX_PROPERTIES {
        violations.push(FieldViolation {
            field: field.to_owned(),
            description: format!("at most {MAX_PROPERTIES} keys; got {}", out.len()),
        });
    }
    if violations.is_empty() { Ok(out) } else { Err(AppError::InvalidArgument(violations)) }
}

/// Whether every key of `condition` has its value in `props`.
pub fn matches(condition: &BTreeMap<String, String>, props: &BTreeMap<String, String>) -> bool {
    condition.iter().all(|(k, v)| props.get(k) == Some(v))
}

/// `base` with `update` laid over it; an empty value in `update` removes the key.
pub fn merge(base: &BTreeMap<String, String>, update: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    let mut out = base.clone();
    for (k, v) in update {
        if v.is_empty() {
            out.remove(k);
        } else {
            out.insert(k.clone(), v.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comments_longer_than_5000_characters_are_refused() {
        assert!(comment(&"é".repeat(5000)).is_ok());
        assert!(comment(&"a".repeat(5001)).is_err());
    }

    #[test]
    fn property_limits() {
        let many: BTreeMap<String, String> = (0..51).map(|i| (format!("k{i}"), "v".into())).collect();
        assert!(properties("properties", &many).is_err());
        let long: BTreeMap<String, String> = [("k".to_string(), "x".repeat(1001))].into();
        match properties("properties", &long) {
            Err(AppError::InvalidArgument(v)) => assert_eq!(v[0].field, "properties[k]"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn merge_removes_empty_values() {
        let base: BTreeMap<String, String> = [("a".into(), "1".into()), ("b".into(), "2".into())].into();
        let upd: BTreeMap<String, String> = [("a".into(), "".into()), ("c".into(), "3".into())].into();
        let m = merge(&base, &upd);
        assert_eq!(m.len(), 2);
        assert_eq!(m["c"], "3");
    }
}
