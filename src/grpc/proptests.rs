//! Property tests of every parser a request meets after the codec: ids, enum values,
//! page tokens and whole survey messages. Whatever the input, each parser either
//! accepts it or refuses it with INVALID_ARGUMENT naming a field of its own; none
//! panics (docs/api.md, "Input rules").

use proptest::prelude::*;

use super::convert as c;
use super::pb;
use crate::domain::listing::PageRequest;
use crate::domain::{CustomerRef, SurveyId};
use crate::error::AppError;

/// The error is INVALID_ARGUMENT and names `field` (or a field under it).
fn names(r: Result<impl std::fmt::Debug, AppError>, field: &str) -> Result<(), TestCaseError> {
    match r {
        Ok(_) => Ok(()),
        Err(AppError::InvalidArgument(v)) => {
            prop_assert!(!v.is_empty());
            prop_assert!(v.iter().all(|f| f.field.starts_with(field)), "{v:?} should name {field}");
            Ok(())
        }
        Err(other) => Err(TestCaseError::fail(format!("{other:?}"))),
    }
}

fn any_text() -> impl Strategy<Value = String> {
    prop_oneof![".{0,80}", "[a-zA-Z0-9_-]{0,70}", Just(String::new()), "\\PC{0,300}"]
}

proptest! {
    #[test]
    fn enum_values_are_accepted_or_refused_by_name(raw in any::<i32>()) {
        names(c::kind(raw, "kind"), "kind")?;
        names(c::opt_kind(raw, "kind"), "kind")?;
        names(c::opt_bucket(raw, "bucket"), "bucket")?;
        names(c::channel(raw), "channel")?;
        names(c::priority(raw), "set_priority.priority")?;
        names(c::opt_status(raw), "status")?;
        prop_assert_eq!(c::kind(raw, "kind").is_ok(), (1..=3).contains(&raw));
    }

    #[test]
    fn ids_are_short_and_plain(raw in any_text()) {
        let ok = !raw.is_empty() && raw.len() <= 64 && raw.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        prop_assert_eq!(SurveyId::parse(&raw, "survey_id").is_ok(), ok);
        names(SurveyId::parse(&raw, "survey_id"), "survey_id")?;
        let customer_ok = !raw.is_empty() && raw.chars().count() <= 128 && !raw.chars().any(char::is_control);
        prop_assert_eq!(CustomerRef::parse(&raw, "customer_id").is_ok(), customer_ok);
    }

    #[test]
    fn page_requests_take_sizes_up_to_1000_and_only_issued_tokens(size in any::<i32>(), token in any_text(), id in "[a-z0-9-]{1,40}") {
        names(PageRequest::parse(size, &token), "page")?;
        if !(0..=1000).contains(&size) {
            prop_assert!(PageRequest::parse(size, &token).is_err());
        }
        // A token the service issued comes back as the same position.
        let first = PageRequest::parse(1, "").unwrap();
        let next = first.next_token(1, Some(&id));
        prop_assert_eq!(PageRequest::parse(10, &next).unwrap().after, Some(id));
    }

    #[test]
    fn survey_messages_never_panic_and_name_their_fields(
        kind in -2i32..6,
        scale_max in proptest::option::of(any::<i32>()),
        scale_min in any::<i32>(),
        name in any_text(),
        question in any_text(),
        threshold in proptest::option::of(any::<i32>()),
        sla_hours in proptest::option::of(any::<i32>()),
        expiry in proptest::option::of(any::<i32>()),
    ) {
        let survey = pb::Survey {
            kind,
            scale_max,
            scale_min,
            name,
            question,
            follow_up: Some(pb::FollowUpRule { threshold, sla_hours, ..Default::default() }),
            policy: Some(pb::EligibilityPolicy { invitation_expiry_days: expiry, ..Default::default() }),
            ..Default::default()
        };
        names(c::survey_draft(Some(survey.clone())), "survey")?;
        let mask = prost_types::FieldMask { paths: vec!["name".into(), "question".into(), "follow_up".into()] };
        names(c::survey_patch(Some(survey), Some(mask)), "")?;
    }
}
