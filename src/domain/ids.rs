//! Typed ids, so a survey id can never be passed where a customer id is expected.

use crate::error::{AppError, Result};

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub String);

        impl $name {
            /// A new, time-ordered id (UUIDv7).
            pub fn generate() -> Self {
                Self(uuid::Uuid::now_v7().to_string())
            }
            /// Accepts an id given by a caller; `field` names it in the error.
            pub fn parse(raw: &str, field: &str) -> Result<Self> {
                if raw.is_empty() {
                    return Err(AppError::invalid(field, "is required"));
                }
                if raw.len() > 64 || !raw.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
                    return Err(AppError::invalid(field, "is not a valid id"));
                }
                Ok(Self(raw.to_owned()))
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

id_type!(
    /// A tenant: one company using rapport.
    TenantId
);
id_type!(
    /// An API key's public id (not the secret).
    KeyId
);
id_type!(
    /// A survey.
    SurveyId
);
id_type!(
    /// rapport's own id of a customer row; callers use [`CustomerRef`].
    CustomerRowId
);
id_type!(
    /// An invitation or a recorded suppression.
    InvitationId
);
id_type!(
    /// A response.
    ResponseId
);
id_type!(
    /// A follow-up.
    FollowUpId
);

/// The CRM's id of a customer: 1 to 128 characters, no control characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CustomerRef(pub String);

impl CustomerRef {
    pub fn parse(raw: &str, field: &str) -> Result<Self> {
        if raw.is_empty() {
            return Err(AppError::invalid(field, "is required"));
        }
        if raw.chars().count() > 128 {
            return Err(AppError::invalid(field, "must be at most 128 characters"));
        }
        if raw.chars().any(char::is_control) {
            return Err(AppError::invalid(field, "must not contain control characters"));
        }
        Ok(Self(raw.to_owned()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn customer_ref_takes_128_characters_and_refuses_129() {
        assert!(CustomerRef::parse(&"é".repeat(128), "customer_id").is_ok());
        let err = CustomerRef::parse(&"a".repeat(129), "customer_id").unwrap_err();
        assert!(err.to_string().contains("customer_id"));
        assert!(CustomerRef::parse("", "customer_id").is_err());
    }

    #[test]
    fn ids_refuse_punctuation() {
        assert!(SurveyId::parse("0190-ab_c", "id").is_ok());
        assert!(SurveyId::parse("a'; drop", "id").is_err());
    }
}
