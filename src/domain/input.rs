//! Checks of free-form input: text lengths, control characters and property maps
//! (docs/api.md, "Input rules").

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

/// The first control character of `s` other than tab, line feed and carriage
/// return, with its position in characters.
pub fn control_character(s: &str) -> Option<(usize, char)> {
    s.chars().enumerate().find(|&(_, c)| c.is_control() && !matches!(c, '\t' | '\n' | '\r'))
}

/// The rule for text in every field: no control characters but tab, line feed and
/// carriage return (NUL, escape and the C1 controls are refused).
pub fn no_control_characters(field: &str, s: &str) -> Result<()> {
    match control_character(s) {
        None => Ok(()),
        Some((at, c)) => Err(AppError::invalid(
            field,
            format!("must not contain control characters; found U+{:04X} at character {}", c as u32, at + 1),
        )),
    }
}

/// Longest prefix of input quoted back in an error or a field path, in characters.
pub const QUOTE_CHARS: usize = 40;

/// At most the first [`QUOTE_CHARS`] characters of `s`, with "…" when cut.
pub fn quote_prefix(s: &str) -> String {
    match s.char_indices().nth(QUOTE_CHARS) {
        None => s.to_owned(),
        Some((cut, _)) => format!("{}…", &s[..cut]),
    }
}

/// Text of at most `max` characters; `required` refuses the empty string.
pub fn text(field: &str, raw: &str, max: usize, required: bool) -> Result<String> {
    if required && raw.trim().is_empty() {
        return Err(AppError::invalid(field, "is required"));
    }
    no_control_characters(field, raw)?;
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
        if k.is_empty() || k.chars().count() > MAX_PROPERTY_CHARS || control_character(k).is_some() {
            violations.push(FieldViolation {
                field: field.to_owned(),
                description: format!("keys must be 1 to {MAX_PROPERTY_CHARS} characters, without control characters"),
            });
        } else if v.chars().count() > MAX_PROPERTY_CHARS {
            violations.push(FieldViolation {
                field: format!("{field}[{}]", quote_prefix(k)),
                description: format!("must be at most {MAX_PROPERTY_CHARS} characters"),
            });
        } else if let Err(AppError::InvalidArgument(v)) =
            no_control_characters(&format!("{field}[{}]", quote_prefix(k)), v)
        {
            violations.extend(v);
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

/// A property map as one canonical text (JSON, keys in order), as request
/// fingerprints take it.
pub fn canonical(p: &BTreeMap<String, String>) -> String {
    serde_json::to_string(p).unwrap_or_else(|_| "{}".into())
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
    fn control_characters_are_refused_but_tab_newline_and_return_pass() {
        assert!(comment("line one\r\nline two\tend").is_ok());
        for bad in ["a\0b", "\u{1b}[31m", "\u{7f}", "\u{85}"] {
            match comment(bad) {
                Err(AppError::InvalidArgument(v)) => assert_eq!(v[0].field, "comment"),
                other => panic!("{bad:?}: {other:?}"),
            }
        }
        let keyed: BTreeMap<String, String> = [("k".to_string(), "v\0".to_string())].into();
        match properties("properties", &keyed) {
            Err(AppError::InvalidArgument(v)) => assert_eq!(v[0].field, "properties[k]"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn quotes_are_short() {
        assert_eq!(quote_prefix("short"), "short");
        let q = quote_prefix(&"é".repeat(20_000));
        assert_eq!(q.chars().count(), QUOTE_CHARS + 1);
        assert!(q.ends_with('…'));
    }

    proptest::proptest! {
        #[test]
        fn text_is_accepted_exactly_when_short_and_free_of_controls(s in "\\PC{0,30}|.{0,30}", max in 0usize..40) {
            let ok = s.chars().count() <= max && control_character(&s).is_none();
            proptest::prop_assert_eq!(text("f", &s, max, false).is_ok(), ok);
        }

        #[test]
        fn property_maps_never_panic_and_name_the_map(entries in proptest::collection::btree_map(".{0,8}", ".{0,8}", 0..60)) {
            match properties("properties", &entries) {
                Ok(m) => proptest::prop_assert_eq!(m.len(), entries.len()),
                Err(AppError::InvalidArgument(v)) => {
                    proptest::prop_assert!(v.iter().all(|f| f.field.starts_with("properties")));
                }
                Err(other) => proptest::prop_assert!(false, "{other:?}"),
            }
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
