//! Wake-ups between replicas on PostgreSQL: LISTEN/NOTIFY.
//!
//! The transaction that numbers events tells PostgreSQL `pg_notify` in the same
//! statement ([`super::events`]), so the notice goes out when it commits — never
//! before, never for a rollback — on [`EVENTS`], with the tenant and its last number
//! as payload (`<tenant id>:<seq>`, a few dozen bytes). The fan-out says on
//! [`DELIVERIES`] that it queued webhook deliveries. Each replica keeps one session
//! that LISTENs on both ([`Listener`]) and wakes its own streams and dispatcher; the
//! workers' and streams' polling stays, so a notice that is lost (the session dropped
//! a moment) delays a wake-up, never loses an event.
//!
//! LISTEN needs a session of its own on PostgreSQL itself: a transaction-pooling
//! PgBouncer hands each transaction any server connection, and a LISTEN there would
//! hear nothing. The session connects to [`DbSettings::direct_url`](super::DbSettings)
//! (`RAPPORT_DIRECT_DATABASE_URL`), else to the database URL. SQLite has one process,
//! and nothing to tell.

use std::str::FromStr;
use std::time::Duration;

use sea_orm::sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};

use super::Db;
use super::error::{Result, StoreError};
use crate::domain::TenantId;

/// The channel of committed events; payload `<tenant id>:<last sequence number>`.
pub const EVENTS: &str = "rapport_events";
/// The channel the fan-out tells that it queued webhook deliveries; empty payload.
pub const DELIVERIES: &str = "rapport_deliveries";

/// What another replica (or this one) told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// A transaction committed events of `tenant`, numbered up to `last`.
    Events { tenant: TenantId, last: i64 },
    /// Webhook deliveries were queued.
    Deliveries,
}

impl Notice {
    /// The notice a channel and payload carry; `None` for one this version does not
    /// know (a newer replica's), which is ignored.
    pub fn parse(channel: &str, payload: &str) -> Option<Notice> {
        match channel {
            EVENTS => {
                let (tenant, last) = payload.rsplit_once(':')?;
                Some(Notice::Events { tenant: TenantId(tenant.to_owned()), last: last.parse().ok()? })
            }
            DELIVERIES => Some(Notice::Deliveries),
            _ => None,
        }
    }
}

/// One session LISTENing on [`EVENTS`] and [`DELIVERIES`].
pub struct Listener {
    inner: PgListener,
}

impl Listener {
    /// Opens the session and LISTENs; `Ok(None)` on SQLite (nothing to listen to), and
    /// behind a transaction pooler without a direct URL (nothing that could listen).
    /// The session has the database's TCP keepalive, so a server that vanished is
    /// noticed; it is named `rapport listener` in `pg_stat_activity`.
    pub async fn connect(db: &Db) -> Result<Option<Listener>> {
        if db.backend() != sea_orm::DbBackend::Postgres {
            return Ok(None);
        }
        let settings = &db.settings;
        if settings.transaction_pooler && settings.direct_url.is_none() {
            // A transaction-mode pooler cannot carry a LISTEN: polling only.
            tracing::warn!(
                "DATABASE_URL is a transaction pooler and RAPPORT_DIRECT_DATABASE_URL is unset: this replica \
                 hears of other replicas' events only by polling (docs/operations.md#several-replicas)"
            );
            return Ok(None);
        }
        let url = settings.direct_url.as_deref().unwrap_or(&settings.url);
        // The cause is left out: it might quote the URL, password and all.
        let mut options = PgConnectOptions::from_str(url)
            .map_err(|_| StoreError::other(anyhow::anyhow!("the LISTEN session's URL is not a PostgreSQL URL")))?
            .application_name("rapport listener");
        if let Some(idle) = settings.tcp_keepalive.map(|idle| idle.as_secs().max(1)) {
            options = options.options([
                ("tcp_keepalives_idle", idle.to_string()),
                ("tcp_keepalives_interval", (idle / 3).max(1).to_string()),
                ("tcp_keepalives_count", "3".to_owned()),
            ]);
        }
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(settings.acquire_timeout.max(Duration::from_secs(1)))
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_lazy_with(options);
        let mut inner = PgListener::connect_with(&pool).await.map_err(listen_error)?;
        inner.listen_all([EVENTS, DELIVERIES]).await.map_err(listen_error)?;
        Ok(Some(Listener { inner }))
    }

    /// The next notice. `Ok(None)` when the session was lost and has been opened
    /// again (and LISTENs again): notices sent in between were missed. An error when
    /// it cannot be opened again, or PostgreSQL ended it: the caller makes a new
    /// [`Listener`], after a pause.
    pub async fn next(&mut self) -> Result<Option<Notice>> {
        loop {
            match self.inner.try_recv().await.map_err(listen_error)? {
                None => return Ok(None),
                Some(n) => {
                    if let Some(notice) = Notice::parse(n.channel(), n.payload()) {
                        return Ok(Some(notice));
                    }
                }
            }
        }
    }
}

/// The listening session's failure: the database unreachable, or what it said.
fn listen_error(e: sea_orm::sqlx::Error) -> StoreError {
    match e {
        sea_orm::sqlx::Error::Io(_) | sea_orm::sqlx::Error::PoolTimedOut | sea_orm::sqlx::Error::PoolClosed => {
            StoreError::Unavailable
        }
        other => StoreError::other(anyhow::Error::new(other).context("the LISTEN session")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notices_are_read_from_their_channel_and_payload_and_unknown_ones_ignored() {
        assert_eq!(
            Notice::parse(EVENTS, "0190aa:17"),
            Some(Notice::Events { tenant: TenantId("0190aa".into()), last: 17 })
        );
        assert_eq!(Notice::parse(DELIVERIES, ""), Some(Notice::Deliveries));
        assert_eq!(Notice::parse(EVENTS, "no number"), None);
        assert_eq!(Notice::parse(EVENTS, "t:x"), None);
        assert_eq!(Notice::parse("elsewhere", "t:1"), None);
    }
}
