//! One integration-test binary: the real server over a real database, called with
//! the generated tonic clients. Each scenario runs on SQLite and PostgreSQL.

mod helpers;

mod engagement;
mod engagement_metrics;
mod engagement_profile;
mod follow_ups;
mod health;
mod invitations;
mod isolation;
mod metrics;
mod responses;
mod surveys;
