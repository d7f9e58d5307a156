//! The gRPC transport: decode, authenticate, convert, call a use-case, and map the
//! result back. No business rules here.

pub mod codec;
pub mod convert;
mod engagement;
mod follow_ups;
pub mod gate;
mod surveys;
mod webhooks;

pub use engagement::EngagementApi;
pub use follow_ups::FollowUpApi;
pub use surveys::SurveyApi;
pub use webhooks::{EventApi, WebhookApi};

use tonic::{Code, Request, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::domain::model::Principal;
use crate::error::AppError;
use crate::service::Services;

/// Generated protobuf types and tonic stubs of `rapport.v1`.
#[allow(clippy::all, clippy::pedantic, missing_docs)]
pub mod pb {
    tonic::include_proto!("rapport.v1");

    /// The encoded descriptor set that server reflection serves.
    pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("rapport_descriptor");
}

/// The one table from [`AppError`] to a gRPC status (AIP-193). No catch-all arm:
/// a new error kind must be mapped here on purpose.
pub fn status(e: AppError) -> Status {
    match e {
        AppError::InvalidArgument(violations) => {
            let mut details = ErrorDetails::new();
            for v in &violations {
                details.add_bad_request_violation(v.field.clone(), v.description.clone());
            }
            let msg = AppError::InvalidArgument(violations).to_string();
            Status::with_error_details(Code::InvalidArgument, msg, details)
        }
        AppError::NotFound(what) => Status::not_found(format!("{what} not found")),
        AppError::AlreadyExists(m) => Status::already_exists(m),
        AppError::FailedPrecondition(m) => Status::failed_precondition(m),
        AppError::OutOfRange(m) => Status::out_of_range(m),
        AppError::Unauthenticated(m) => Status::unauthenticated(m),
        AppError::PermissionDenied(m) => Status::permission_denied(m),
        AppError::ResourceExhausted { message, retry_after } => {
            let mut details = ErrorDetails::new();
            details.set_retry_info(Some(retry_after));
            Status::with_error_details(Code::ResourceExhausted, message, details)
        }
        AppError::Unavailable(m) => Status::unavailable(m),
        AppError::Internal(cause) => {
            tracing::error!(error = format!("{cause:#}"), "internal error");
            Status::internal("internal error; it has been logged")
        }
    }
}

/// The bearer credential of a request, if any.
pub fn bearer<T>(req: &Request<T>) -> Option<&str> {
    req.metadata()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(str::trim)
}

/// The result of a unary handler.
pub(crate) type R<T> = Result<tonic::Response<T>, Status>;

/// An OK reply.
pub(crate) fn ok<T>(v: T) -> R<T> {
    Ok(tonic::Response::new(v))
}

/// The caller behind the request's API key, or `UNAUTHENTICATED`.
pub async fn principal<T>(svc: &Services, req: &Request<T>) -> Result<Principal, Status> {
    let key = bearer(req)
        .ok_or_else(|| Status::unauthenticated("send an API key as `authorization: Bearer <key>` metadata"))?;
    svc.authenticate(key).await.map_err(status)
}
