//! rapport: a customer-engagement service. It issues and records NPS, CSAT and CES
//! surveys, opens follow-ups for low scores, and serves the numbers with their
//! definitions and confidence intervals, over gRPC.
//!
//! # Layout
//! A request flows one way: [`grpc`] (decode, authenticate, convert) → [`service`]
//! (the use-case, in one transaction) → [`domain`] (rules) and [`store`] (SQL) → back
//! out through one error mapping (`From<AppError> for tonic::Status`, in [`grpc`]).
//!
//! - [`config`]: flags and environment.
//! - [`telemetry`]: logs and optional OpenTelemetry export.
//! - [`app`]: the server: services, health, reflection, graceful shutdown.
//! - [`error`]: [`error::AppError`], the one error type.
//! - [`http`]: the HTTP gateway: JSON routes, gRPC-Web, the hosted page and widget.
//! - [`import_file`]: `rapport import`, a client that sends history files to a server.
//! - [`secret_keys`]: where the keys that seal secrets at rest come from.

pub mod app;
pub mod config;
pub mod domain;
pub mod error;
pub mod grpc;
pub mod http;
pub mod import_file;
pub mod secret_keys;
pub mod service;
pub mod store;
pub mod telemetry;
pub mod workers;
