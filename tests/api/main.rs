//! One integration-test binary: the real server over a real database, called with
//! the generated tonic clients. Each scenario runs on SQLite and PostgreSQL.

mod dump;
mod helpers;
mod receiver;

mod branding;
mod chart;
mod engagement;
mod engagement_asof;
mod engagement_metrics;
mod engagement_profile;
mod events;
mod follow_ups;
mod gateway;
mod hardening_auth;
mod hardening_input;
mod hardening_obs;
mod health;
mod imports;
mod in_app;
mod insight;
mod invitations;
mod isolation;
mod key_cache;
mod lifecycle;
mod metrics;
mod observability;
mod partitions;
mod pgbouncer;
mod pool;
mod privacy_erase;
mod privacy_export;
mod privacy_keys;
mod privacy_retention;
mod privacy_secrets;
mod rate_limits_shared;
mod read_keys;
mod readme;
mod replica_wakeups;
mod responses;
mod surveys;
mod sweep;
mod tenant_keys;
mod three_replicas;
mod web;
mod webhooks;
