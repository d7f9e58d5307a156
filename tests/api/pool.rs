//! The connection pool's round trips on PostgreSQL (vendor/README.md, "sqlx-core"): a
//! connection that finished its statement goes back to the pool as it is, without the
//! ping (a Sync and its ReadyForQuery) that sqlx 0.9 sends on every release; one left
//! with work owed, such as the ROLLBACK of a transaction dropped unfinished, still gets
//! it, so nothing stays queued in an idle connection.
//!
//! The first test counts the Sync messages the service's pool sends, through a proxy of
//! its own between the pool and PostgreSQL (TLS off, so the messages can be read).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use rapport::store::{Db, DbSettings};
use sea_orm::{ConnectionTrait, Database, DbBackend, Statement, TransactionTrait};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::helpers::pg_admin_url;

/// A TCP proxy in front of PostgreSQL that counts the Sync messages clients send.
struct SyncCounter {
    port: u16,
    syncs: Arc<AtomicUsize>,
}

impl SyncCounter {
    /// Listens on a free loopback port and forwards every connection to the server of
    /// `url`.
    async fn start(url: &str) -> SyncCounter {
        let parsed = url::Url::parse(url).expect("a PostgreSQL URL");
        let server = format!("{}:{}", parsed.host_str().unwrap_or("127.0.0.1"), parsed.port().unwrap_or(5432));
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("a free port");
        let port = listener.local_addr().expect("a bound address").port();
        let syncs = Arc::new(AtomicUsize::new(0));
        let counted = syncs.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let server = TcpStream::connect(&server).await.expect("PostgreSQL reachable");
                let (client_read, mut client_write) = client.into_split();
                let (mut server_read, server_write) = server.into_split();
                tokio::spawn(count_and_forward(client_read, server_write, counted.clone()));
                tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
                });
            }
        });
        SyncCounter { port, syncs }
    }

    /// `url` pointed at the proxy, TLS off.
    fn url(&self, url: &str) -> String {
        let mut u = url::Url::parse(url).expect("a PostgreSQL URL");
        u.set_host(Some("127.0.0.1")).expect("a host");
        u.set_port(Some(self.port)).expect("a port");
        u.query_pairs_mut().append_pair("sslmode", "disable");
        u.to_string()
    }

    fn syncs(&self) -> usize {
        self.syncs.load(Ordering::SeqCst)
    }
}

/// Forwards the client's bytes and counts its Sync messages. The first message of a
/// connection (the startup message) has no type byte; every later one is a type byte
/// and a length that counts itself.
async fn count_and_forward(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    syncs: Arc<AtomicUsize>,
) {
    let mut pending: Vec<u8> = Vec::new();
    let mut started = false;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
        pending.extend_from_slice(&buf[..n]);
        loop {
            let header = if started { 5 } else { 4 };
            if pending.len() < header {
                break;
            }
            let at = header - 4;
            let len = u32::from_be_bytes([pending[at], pending[at + 1], pending[at + 2], pending[at + 3]]) as usize;
            let whole = at + len;
            if pending.len() < whole {
                break;
            }
            if started && pending[0] == b'S' {
                syncs.fetch_add(1, Ordering::SeqCst);
            }
            started = true;
            pending.drain(..whole);
        }
    }
}

#[tokio::test]
async fn a_connection_at_rest_goes_back_to_the_pool_without_a_ping() {
    let admin = pg_admin_url();
    let proxy = SyncCounter::start(&admin).await;
    // One connection: each statement's checkout waits until the last one is back.
    let settings = DbSettings { max_connections: 1, ..DbSettings::new(proxy.url(&admin)) };
    let db = Db::connect(&settings).await.unwrap_or_else(|e| panic!("PostgreSQL at {admin}: {e:#}"));
    let before = proxy.syncs();
    const STATEMENTS: usize = 20;
    for i in 0..STATEMENTS {
        let row = db
            .conn()
            .query_one_raw(Statement::from_sql_and_values(DbBackend::Postgres, "SELECT $1::int8", [(i as i64).into()]))
            .await
            .expect("the statement runs")
            .expect("one row");
        assert_eq!(row.try_get_by_index::<i64>(0).expect("an int8"), i as i64);
    }
    let syncs = proxy.syncs() - before;
    // One Sync per statement, and one for preparing it the first time. With a ping on
    // every release there would be one more per statement (at least 19 of them are
    // certain by now: each checkout waited for the previous release).
    assert!(
        syncs <= STATEMENTS + 1,
        "{STATEMENTS} statements sent {syncs} Sync messages: the pool pings connections on release"
    );
    assert!(syncs >= STATEMENTS, "{syncs} Sync messages counted for {STATEMENTS} statements: the proxy misses some");
    db.close().await;
}

#[tokio::test]
async fn a_transaction_dropped_unfinished_is_rolled_back_when_its_connection_goes_back() {
    let admin = pg_admin_url();
    let settings = DbSettings { max_connections: 1, ..DbSettings::new(admin.clone()) };
    let db = Db::connect(&settings).await.unwrap_or_else(|e| panic!("PostgreSQL at {admin}: {e:#}"));
    let key: i64 = rand::random_range(1..i64::MAX);
    let txn = db.conn().begin().await.expect("a transaction");
    txn.execute_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "SELECT pg_advisory_xact_lock($1)",
        [key.into()],
    ))
    .await
    .expect("the lock");
    // Dropped without commit or rollback: the ROLLBACK is queued, and must reach the
    // server when the connection goes back to the pool, not at its next use.
    drop(txn);
    let other = Database::connect(&admin).await.unwrap_or_else(|e| panic!("PostgreSQL at {admin}: {e}"));
    let took = other
        .execute_unprepared(&format!(
            "BEGIN; SET LOCAL lock_timeout = '20s'; SELECT pg_advisory_xact_lock({key}); COMMIT"
        ))
        .await;
    assert!(took.is_ok(), "the dropped transaction still holds its lock: {took:?}");
    let _ = other.close().await;
    db.close().await;
}
