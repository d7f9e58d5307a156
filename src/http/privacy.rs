//! `GET /v1/customers/{customer_id}/export`: a customer's export as one JSON document
//! (docs/privacy.md, "Exporting a customer"). `ExportCustomer` is a server stream, which
//! the JSON gateway does not transcode; this route collects the same records. Same
//! authentication (a secret key) and the same error bodies as the JSON routes.

use axum::extract::{Path, State};
use axum::response::Response;
use http::{HeaderMap, StatusCode};

use super::Gateway;
use super::transcode::json_response;
use crate::domain::CustomerRef;

pub(crate) async fn export(State(gw): State<Gateway>, Path(customer_id): Path<String>, headers: HeaderMap) -> Response {
    let fail = |e: crate::error::AppError| gw.0.api.error_response(&tonic::Status::from(e));
    let key = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(str::trim);
    let Some(key) = key else {
        return fail(crate::error::AppError::Unauthenticated(
            "send an API key as `authorization: Bearer <key>`".into(),
        ));
    };
    let services = &gw.0.services;
    let principal = match services.authenticate(key).await {
        Ok(p) => p,
        Err(e) => return fail(e),
    };
    let customer = match CustomerRef::parse(&customer_id, "customer_id") {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    match services.export_document(&principal, &customer).await {
        Ok(doc) => json_response(StatusCode::OK, &doc),
        Err(e) => fail(e),
    }
}
