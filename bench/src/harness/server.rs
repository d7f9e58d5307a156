//! The server under load: a child `rapport serve` on free loopback ports (or one
//! already running), waited for until its health says SERVING, measured through
//! `/proc`, and stopped; the gRPC connections and the key to call it with; tenants
//! created through `rapport tenant create`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use tokio::process::{Child, Command};
use tonic::metadata::AsciiMetadataValue;
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Status};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use super::database::DbTarget;

/// How long the server may take to report SERVING (it migrates first).
const SERVING_DEADLINE: Duration = Duration::from_secs(60);
/// A call slower than this fails rather than hanging the run.
const CALL_TIMEOUT: Duration = Duration::from_secs(120);

/// The `rapport` executable.
#[derive(Debug, Clone)]
pub struct Rapport {
    bin: PathBuf,
}

/// The key that seals the bench server's stored secrets (webhook signing secrets), used
/// when the environment names none: rapport refuses to start on PostgreSQL without one
/// (docs/privacy.md). Fixed, so a bench database may be reused between runs; it guards
/// throwaway bench data only and must never seal real data. `RAPPORT_SECRET_KEYS` or
/// `RAPPORT_SECRET_KEYS_FILE` in the bench's environment replaces it.
const BENCH_SECRET_KEYS: &str = "bench:cmFwcG9ydC1iZW5jaC1rZXktbm90LWZvci1yZWFsISE=";

/// `BENCH_SECRET_KEYS` unless the environment brings its own keys.
fn with_secret_keys(cmd: &mut Command) -> &mut Command {
    let given = ["RAPPORT_SECRET_KEYS", "RAPPORT_SECRET_KEYS_FILE"].iter().any(|v| std::env::var_os(v).is_some());
    if !given {
        cmd.env("RAPPORT_SECRET_KEYS", BENCH_SECRET_KEYS);
    }
    cmd
}

/// A tenant created for the run, with its first secret key.
#[derive(Debug, Clone)]
pub struct Tenant {
    pub id: String,
    pub secret: String,
}

impl Rapport {
    /// `given`, or `rapport` in the directory of this executable.
    pub fn locate(given: Option<PathBuf>) -> anyhow::Result<Rapport> {
        let bin = match given {
            Some(bin) => bin,
            None => {
                let me = std::env::current_exe().context("finding this executable")?;
                let dir = me.parent().context("this executable has no directory")?;
                // Test binaries live one level down, in deps/.
                let dir = if dir.ends_with("deps") { dir.parent().unwrap_or(dir) } else { dir };
                dir.join(format!("rapport{}", std::env::consts::EXE_SUFFIX))
            }
        };
        if !bin.is_file() {
            bail!(
                "no rapport executable at {}: build it (`cargo build --release --workspace`) or name it with --rapport-bin",
                bin.display()
            );
        }
        Ok(Rapport { bin })
    }

    /// Creates tenant `name` with `rapport tenant create` on the database and returns
    /// its id and secret key.
    pub async fn create_tenant(&self, db: &DbTarget, name: &str) -> anyhow::Result<Tenant> {
        let out = with_secret_keys(&mut Command::new(&self.bin))
            .args(["tenant", "create", name])
            .env("DATABASE_URL", &db.url)
            .env("RAPPORT_LOG_LEVEL", "warn")
            .stdin(Stdio::null())
            .output()
            .await
            .with_context(|| format!("running {} tenant create", self.bin.display()))?;
        if !out.status.success() {
            bail!("`rapport tenant create {name}` failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr));
        }
        parse_tenant(&String::from_utf8_lossy(&out.stdout))
            .with_context(|| format!("reading the output of `rapport tenant create {name}`"))
    }

    /// Starts `rapport serve` on the database, with the same pool size, gRPC on a free
    /// loopback port, the HTTP gateway and the admin listener on ports of their own
    /// (never the defaults, which a running server may hold), no bootstrap tenant,
    /// loopback webhook receivers allowed and quiet logs.
    pub async fn serve(&self, db: &DbTarget) -> anyhow::Result<Server> {
        let addr = free_port()?;
        let child = with_secret_keys(&mut Command::new(&self.bin))
            .arg("serve")
            .env("DATABASE_URL", &db.url)
            .env("RAPPORT_DB_MAX_CONNECTIONS", db.max_connections.to_string())
            .env("RAPPORT_DB_ACQUIRE_TIMEOUT_SECONDS", db.acquire_timeout.as_secs().to_string())
            .env("RAPPORT_GRPC_ADDR", addr.to_string())
            .env("RAPPORT_ADMIN_ADDR", "127.0.0.1:0")
            .env("RAPPORT_HTTP_ADDR", "127.0.0.1:0")
            // For the webhook phase: the receiver is the bench, on loopback.
            .env("RAPPORT_WEBHOOK_ALLOW_PRIVATE", "true")
            .env("RAPPORT_WEBHOOK_ALLOW_HTTP_HOSTS", "127.0.0.1")
            .env("RAPPORT_WEBHOOK_SETTLE_SECONDS", "0")
            .env("RAPPORT_WORKER_POLL_MS", "200")
            // Seeded history is folded within a second, not a minute (see wait_folded).
            .env("RAPPORT_ROLLUP_FOLD_MS", "1000")
            .env("RAPPORT_BOOTSTRAP_TENANT", "false")
            .env("RAPPORT_LOG_LEVEL", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {} serve", self.bin.display()))?;
        let pid = child.id().context("the server exited as soon as it started")?;
        Ok(Server::Child { child, pid, uri: format!("http://{addr}") })
    }
}

/// The id and key from `rapport tenant create`'s output.
fn parse_tenant(stdout: &str) -> Option<Tenant> {
    let id = stdout.split_once("(id ")?.1.split_once(')')?.0.trim().to_owned();
    let secret = stdout.lines().find_map(|l| l.split_once("secret key (shown once):"))?.1.trim().to_owned();
    (!id.is_empty() && !secret.is_empty()).then_some(Tenant { id, secret })
}

/// The server under load.
pub enum Server {
    /// Started by the bench; killed at the end (and on drop).
    Child { child: Child, pid: u32, uri: String },
    /// Given with `--server`.
    External { uri: String },
}

impl Server {
    /// A server already running at `addr` (`host:port` or a URI).
    pub fn external(addr: &str) -> Server {
        let uri = if addr.contains("://") { addr.to_owned() } else { format!("http://{addr}") };
        Server::External { uri }
    }

    pub fn uri(&self) -> &str {
        match self {
            Server::Child { uri, .. } | Server::External { uri } => uri,
        }
    }

    /// The process id, when the bench started the server.
    pub fn pid(&self) -> Option<u32> {
        match self {
            Server::Child { pid, .. } => Some(*pid),
            Server::External { .. } => None,
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Server::Child { pid, uri, .. } => format!("started by the bench at {uri} (pid {pid})"),
            Server::External { uri } => format!("external at {uri}"),
        }
    }

    /// The server's memory now; `None` for an external server.
    pub fn rss(&self) -> Option<anyhow::Result<Rss>> {
        self.pid().map(rss_of)
    }

    /// Waits until the server's health reports SERVING, or fails after
    /// [`SERVING_DEADLINE`] or when the child exits first.
    pub async fn wait_for_serving(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + SERVING_DEADLINE;
        let uri = self.uri().to_owned();
        loop {
            if let Server::Child { child, .. } = self
                && let Some(status) = child.try_wait().context("checking on the server process")?
            {
                bail!("the server exited ({status}) before serving; see its log above");
            }
            let last = match health(&uri).await {
                Ok(ServingStatus::Serving) => return Ok(()),
                Ok(other) => format!("health says {}", other.as_str_name()),
                Err(e) => format!("{e:#}"),
            };
            if Instant::now() >= deadline {
                bail!("the server at {uri} was not SERVING after {SERVING_DEADLINE:?}: {last}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Kills the server the bench started; nothing for an external one.
    pub async fn stop(&mut self) {
        if let Server::Child { child, .. } = self
            && let Err(e) = child.kill().await
        {
            eprintln!("could not stop the server: {e}");
        }
    }
}

/// A loopback address with a port that was free a moment ago.
fn free_port() -> anyhow::Result<SocketAddr> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    listener.local_addr().context("reading the free port")
}

/// The server's overall status from grpc.health.v1 `Check("")`.
async fn health(uri: &str) -> anyhow::Result<ServingStatus> {
    let channel = connect(uri).await?;
    let reply = HealthClient::new(channel)
        .check(HealthCheckRequest { service: String::new() })
        .await
        .map_err(|s| anyhow::anyhow!(describe_status(&s)))?;
    Ok(reply.into_inner().status())
}

/// One HTTP/2 connection to the server.
pub async fn connect(uri: &str) -> anyhow::Result<Channel> {
    Endpoint::from_shared(uri.to_owned())
        .with_context(|| format!("{uri:?} is not a valid server address"))?
        .tcp_nodelay(true)
        .connect_timeout(Duration::from_secs(5))
        .timeout(CALL_TIMEOUT)
        .connect()
        .await
        .with_context(|| format!("connecting to {uri}"))
}

/// Adds `authorization: Bearer <key>` to every call.
#[derive(Clone)]
pub struct BearerAuth(AsciiMetadataValue);

impl BearerAuth {
    pub fn new(key: &str) -> anyhow::Result<Self> {
        let value = format!("Bearer {key}").parse().context("the key is not valid in gRPC metadata")?;
        Ok(BearerAuth(value))
    }
}

impl tonic::service::Interceptor for BearerAuth {
    fn call(&mut self, mut req: Request<()>) -> Result<Request<()>, Status> {
        req.metadata_mut().insert("authorization", self.0.clone());
        Ok(req)
    }
}

/// A status as one line: its code and message.
pub fn describe_status(s: &Status) -> String {
    format!("{:?}: {}", s.code(), s.message())
}

/// Resident memory of a process, from `/proc/<pid>/status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rss {
    /// `VmRSS`: resident now, in KiB.
    pub now_kib: u64,
    /// `VmHWM`: the most it was ever resident, in KiB.
    pub peak_kib: u64,
}

/// Reads the resident memory of process `pid` (Linux only).
fn rss_of(pid: u32) -> anyhow::Result<Rss> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    parse_rss(&status).with_context(|| format!("{path} has no VmRSS/VmHWM"))
}

/// `VmRSS` and `VmHWM` of a `/proc/<pid>/status` text.
fn parse_rss(status: &str) -> Option<Rss> {
    let kib = |field: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse::<u64>().ok())
    };
    Some(Rss { now_kib: kib("VmRSS:")?, peak_kib: kib("VmHWM:")? })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rss_is_read_from_proc_status() {
        let status = "Name:\trapport\nVmHWM:\t  204800 kB\nVmRSS:\t  102400 kB\nThreads:\t4\n";
        assert_eq!(parse_rss(status), Some(Rss { now_kib: 102_400, peak_kib: 204_800 }));
        assert_eq!(parse_rss("Name:\trapport\n"), None);
    }

    #[test]
    fn the_tenant_is_read_from_the_commands_output() {
        let out = "tenant bench-x created (id 0193-ab)\nsecret key (shown once): rk_secret_abc\n";
        let t = parse_tenant(out).unwrap();
        assert_eq!((t.id.as_str(), t.secret.as_str()), ("0193-ab", "rk_secret_abc"));
        assert!(parse_tenant("something else\n").is_none());
    }

    #[test]
    fn an_external_server_may_be_given_without_a_scheme() {
        assert_eq!(Server::external("127.0.0.1:50051").uri(), "http://127.0.0.1:50051");
        assert_eq!(Server::external("https://rapport:443").uri(), "https://rapport:443");
    }
}
