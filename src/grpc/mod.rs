//! The gRPC transport: decode, authenticate, convert, call a use-case, and map the
//! result back. No business rules here.

pub mod admin;
pub mod codec;
pub mod convert;
mod engagement;
mod follow_ups;
pub mod gate;
mod imports;
pub(crate) mod insight;
mod privacy;
#[cfg(test)]
mod proptests;
mod surveys;
mod webhooks;

/// Largest request accepted (docs/api.md, "Input rules"), over gRPC and the gateway.
pub const MAX_REQUEST_BYTES: usize = 4 * 1024 * 1024;

pub use admin::AdminApi;
pub use engagement::EngagementApi;
pub use follow_ups::FollowUpApi;
pub use imports::ImportApi;
pub use insight::InsightApi;
pub use privacy::PrivacyApi;
pub use surveys::SurveyApi;
pub use webhooks::{EventApi, WebhookApi};

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::error::AppError;

/// Generated protobuf types and tonic stubs of `rapport.v1`.
#[allow(clippy::all, clippy::pedantic, missing_docs)]
pub mod pb {
    tonic::include_proto!("rapport.v1");

    /// The encoded descriptor set that server reflection serves.
    pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("rapport_descriptor");
}

/// Most bytes of a status message (`grpc-message`, percent-encoded on the wire: at
/// most three times as long).
pub const MAX_MESSAGE_BYTES: usize = 1024;
/// Most bytes of a field path in a `BadRequest` violation.
pub const MAX_FIELD_BYTES: usize = 100;
/// Most bytes of a violation's description.
pub const MAX_DESCRIPTION_BYTES: usize = 250;
/// Most violations in a `BadRequest` (the last one says how many were left out).
pub const MAX_VIOLATIONS: usize = 16;

/// The one table from [`AppError`] to a gRPC status (AIP-193). No catch-all arm:
/// a new error kind must be mapped here on purpose. Handlers return `Status` and
/// write `?` after a use-case; this conversion is what `?` calls.
///
/// Every text is cut here ([`MAX_MESSAGE_BYTES`], [`MAX_FIELD_BYTES`],
/// [`MAX_DESCRIPTION_BYTES`], [`MAX_VIOLATIONS`]), so no error can grow the metadata
/// past what clients accept (16 KiB in most), whatever input it quotes: the status
/// and its details stay well under 16 KiB.
impl From<AppError> for Status {
    fn from(e: AppError) -> Status {
        match e {
            AppError::InvalidArgument(violations) => {
                let total = violations.len();
                let mut kept: Vec<crate::error::FieldViolation> = violations
                    .into_iter()
                    .take(MAX_VIOLATIONS)
                    .map(|v| crate::error::FieldViolation {
                        field: clip(&v.field, MAX_FIELD_BYTES),
                        description: clip(&v.description, MAX_DESCRIPTION_BYTES),
                    })
                    .collect();
                if total > MAX_VIOLATIONS {
                    kept.truncate(MAX_VIOLATIONS - 1);
                    kept.push(crate::error::FieldViolation {
                        field: "…".into(),
                        description: format!("and {} more violations", total - kept.len()),
                    });
                }
                let mut details = ErrorDetails::new();
                for v in &kept {
                    details.add_bad_request_violation(v.field.clone(), v.description.clone());
                }
                let msg = clip(&AppError::InvalidArgument(kept).to_string(), MAX_MESSAGE_BYTES);
                Status::with_error_details(Code::InvalidArgument, msg, details)
            }
            AppError::NotFound(what) => Status::not_found(clip(&format!("{what} not found"), MAX_MESSAGE_BYTES)),
            AppError::AlreadyExists(m) => Status::already_exists(clip(&m, MAX_MESSAGE_BYTES)),
            AppError::FailedPrecondition(m) => Status::failed_precondition(clip(&m, MAX_MESSAGE_BYTES)),
            AppError::OutOfRange(m) => Status::out_of_range(clip(&m, MAX_MESSAGE_BYTES)),
            AppError::Unauthenticated(m) => Status::unauthenticated(clip(&m, MAX_MESSAGE_BYTES)),
            AppError::PermissionDenied(m) => Status::permission_denied(clip(&m, MAX_MESSAGE_BYTES)),
            AppError::ResourceExhausted { message, retry_after } => {
                let mut details = ErrorDetails::new();
                details.set_retry_info(Some(retry_after));
                Status::with_error_details(Code::ResourceExhausted, clip(&message, MAX_MESSAGE_BYTES), details)
            }
            AppError::Unavailable(m) => Status::unavailable(clip(&m, MAX_MESSAGE_BYTES)),
            AppError::Internal(cause) => {
                tracing::error!(error = format!("{cause:#}"), "internal error");
                Status::internal("internal error; it has been logged")
            }
        }
    }
}

/// `s` cut to at most `max` bytes on a character boundary, ending in "…" when cut.
pub fn clip(s: &str, max: usize) -> String {
    const ELLIPSIS: &str = "…";
    if s.len() <= max {
        return s.to_owned();
    }
    let mut cut = max.saturating_sub(ELLIPSIS.len());
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}{ELLIPSIS}", &s[..cut])
}

/// The result of a unary handler.
pub(crate) type R<T> = Result<tonic::Response<T>, Status>;

/// An OK reply.
pub(crate) fn ok<T>(v: T) -> R<T> {
    Ok(tonic::Response::new(v))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::FieldViolation;

    fn metadata_bytes(s: &Status) -> usize {
        let mut headers = http::HeaderMap::new();
        s.add_header(&mut headers).expect("encodable");
        headers.iter().map(|(k, v)| k.as_str().len() + v.len()).sum()
    }

    #[test]
    fn no_error_quotes_more_than_a_short_prefix_of_its_input() {
        let huge = "é".repeat(20_000);
        let many: Vec<FieldViolation> = (0..1000)
            .map(|i| FieldViolation { field: format!("events[{i}].{huge}"), description: format!("bad {huge}") })
            .collect();
        let s = Status::from(AppError::InvalidArgument(many));
        assert_eq!(s.code(), Code::InvalidArgument);
        assert!(s.message().len() <= MAX_MESSAGE_BYTES && s.message().ends_with('…'), "{}", s.message().len());
        assert!(metadata_bytes(&s) < 12 * 1024, "{} bytes of metadata", metadata_bytes(&s));
        let details = s.get_error_details();
        let violations = &details.bad_request().expect("BadRequest").field_violations;
        assert_eq!(violations.len(), MAX_VIOLATIONS);
        assert!(
            violations.iter().all(|v| v.field.len() <= MAX_FIELD_BYTES && v.description.len() <= MAX_DESCRIPTION_BYTES)
        );
        assert!(violations[0].field.starts_with("events[0].é"));
        assert_eq!(
            violations.last().unwrap().description,
            format!("and {} more violations", 1000 - MAX_VIOLATIONS + 1)
        );

        for e in [
            AppError::NotFound(huge.clone()),
            AppError::AlreadyExists(huge.clone()),
            AppError::FailedPrecondition(huge.clone()),
            AppError::OutOfRange(huge.clone()),
            AppError::Unauthenticated(huge.clone()),
            AppError::PermissionDenied(huge.clone()),
            AppError::Unavailable(huge.clone()),
            AppError::ResourceExhausted { message: huge.clone(), retry_after: std::time::Duration::from_secs(1) },
        ] {
            let s = Status::from(e);
            assert!(s.message().len() <= MAX_MESSAGE_BYTES, "{:?}", s.code());
            assert!(metadata_bytes(&s) < 6 * 1024, "{:?}: {} bytes", s.code(), metadata_bytes(&s));
        }
    }

    #[test]
    fn clipping_keeps_characters_whole() {
        assert_eq!(clip("short", 10), "short");
        assert_eq!(clip("abcdefghij", 10), "abcdefghij");
        assert_eq!(clip("abcdefghijk", 10), "abcdefg…");
        for n in 0..12 {
            let c = clip(&"é€😀".repeat(10), n);
            assert!(c.len() <= n.max("…".len()), "{n}: {c}");
        }
    }
}
