//! The one error type of the service. Every layer returns it; its conversion into
//! `tonic::Status` (`From`, in `grpc/`) maps it with one exhaustive table. Internal
//! causes are logged there and never sent to the caller.

use std::time::Duration;

/// `Result` with [`AppError`] as the default error.
pub type Result<T, E = AppError> = std::result::Result<T, E>;

/// One bad field of a request, as `google.rpc.BadRequest.FieldViolation`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldViolation {
    /// The field path, e.g. `score` or `survey.scale_max`.
    pub field: String,
    /// Why it is wrong, with the allowed values.
    pub description: String,
}

/// What went wrong, classified by who can fix it.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The caller sent bad input; nothing was written.
    #[error("invalid argument: {}", describe(.0))]
    InvalidArgument(Vec<FieldViolation>),
    /// No such resource for this tenant (also for other tenants' resources).
    #[error("{0} not found")]
    NotFound(String),
    /// A unique rule was broken (an answered invitation, a reused idempotency key).
    #[error("{0}")]
    AlreadyExists(String),
    /// The resource is not in a state that allows this (expired, wrong status).
    #[error("{0}")]
    FailedPrecondition(String),
    /// Asked for data that is not kept (any more).
    #[error("{0}")]
    OutOfRange(String),
    /// No key, an unknown key or a revoked key.
    #[error("{0}")]
    Unauthenticated(String),
    /// The credential is valid but may not do this.
    #[error("{0}")]
    PermissionDenied(String),
    /// A rate limit; retry after the given delay.
    #[error("{message}")]
    ResourceExhausted { message: String, retry_after: Duration },
    /// The database is unreachable; safe to retry.
    #[error("service unavailable: {0}")]
    Unavailable(String),
    /// A bug or an unexpected failure. Logged, never shown.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

fn describe(v: &[FieldViolation]) -> String {
    v.iter().map(|f| format!("{}: {}", f.field, f.description)).collect::<Vec<_>>().join("; ")
}

impl AppError {
    /// A single bad field.
    pub fn invalid(field: impl Into<String>, description: impl Into<String>) -> Self {
        AppError::InvalidArgument(vec![FieldViolation { field: field.into(), description: description.into() }])
    }

    /// Prefixes every violated field with `prefix.` (for nested messages).
    pub fn within(self, prefix: &str) -> Self {
        match self {
            AppError::InvalidArgument(v) => AppError::InvalidArgument(
                v.into_iter()
                    .map(|f| FieldViolation { field: format!("{prefix}.{}", f.field), description: f.description })
                    .collect(),
            ),
            other => other,
        }
    }
}
