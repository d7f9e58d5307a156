//! pgbench as the outside reference: PostgreSQL's own load generator, in C, over TCP
//! with prepared statements, running a one-statement script at the same concurrency.
//! Unlike the bench's own baselines it shares no code (and no client overhead) with
//! the bench, so the ratio against it says what fraction of the database's own pace
//! rapport reaches.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context as _, bail};
use tokio::process::Command;

/// The pgbench executable.
pub struct Pgbench {
    exe: PathBuf,
}

/// What one pgbench run measured.
#[derive(Debug, Clone, PartialEq)]
pub struct PgbenchRun {
    /// Transactions (here: statements) per second, without connection set-up.
    pub tps: f64,
    /// Average latency in milliseconds.
    pub latency_ms: Option<f64>,
    pub processed: u64,
    pub failed: u64,
}

impl Pgbench {
    /// pgbench from `PATH`, if it is there.
    pub fn on_path() -> Option<Pgbench> {
        let path = std::env::var_os("PATH")?;
        std::env::split_paths(&path)
            .map(|dir| dir.join(format!("pgbench{}", std::env::consts::EXE_SUFFIX)))
            .find(|p| p.is_file())
            .map(|exe| Pgbench { exe })
    }

    pub fn path(&self) -> &Path {
        &self.exe
    }

    /// Runs `script` (pgbench's script language) against the PostgreSQL database of
    /// `url` with `clients` connections on at most two threads (`-j 2`), prepared
    /// statements (`-M prepared`), over TCP to the URL's host: first `warmup`
    /// unmeasured (when at least a second), then `measure`.
    pub async fn run(
        &self,
        url: &str,
        script: &str,
        clients: usize,
        warmup: Duration,
        measure: Duration,
    ) -> anyhow::Result<PgbenchRun> {
        let conn = ConnArgs::parse(url)?;
        let file = std::env::temp_dir().join(format!("rapport-bench-{}.pgbench.sql", std::process::id()));
        std::fs::write(&file, script).with_context(|| format!("writing {}", file.display()))?;
        let result = async {
            if warmup.as_secs() >= 1 {
                self.once(&conn, &file, clients, warmup.as_secs()).await?;
            }
            self.once(&conn, &file, clients, measure.as_secs().max(1)).await
        }
        .await;
        let _ = std::fs::remove_file(&file);
        result
    }

    async fn once(&self, conn: &ConnArgs, file: &Path, clients: usize, seconds: u64) -> anyhow::Result<PgbenchRun> {
        let clients = clients.max(1);
        let mut cmd = Command::new(&self.exe);
        cmd.args(["--no-vacuum", "--protocol=prepared"])
            .arg(format!("--client={clients}"))
            .arg(format!("--jobs={}", clients.min(2)))
            .arg(format!("--time={seconds}"))
            .arg("--file")
            .arg(file)
            .args(["--host", &conn.host, "--port", &conn.port.to_string()])
            .stdin(Stdio::null())
            .kill_on_drop(true);
        if let Some(user) = &conn.user {
            cmd.args(["--username", user]);
        }
        if let Some(password) = &conn.password {
            cmd.env("PGPASSWORD", password);
        }
        if let Some(mode) = &conn.sslmode {
            cmd.env("PGSSLMODE", mode);
        }
        cmd.arg(&conn.dbname);
        let out = cmd.output().await.with_context(|| format!("running {}", self.exe.display()))?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() {
            bail!("pgbench failed ({}): {}{}", out.status, stdout.trim(), String::from_utf8_lossy(&out.stderr).trim());
        }
        parse_output(&stdout).with_context(|| format!("reading pgbench's output: {stdout}"))
    }
}

/// The parts of a PostgreSQL URL pgbench takes as options.
#[derive(Debug, PartialEq)]
struct ConnArgs {
    host: String,
    port: u16,
    user: Option<String>,
    password: Option<String>,
    dbname: String,
    sslmode: Option<String>,
}

impl ConnArgs {
    fn parse(url: &str) -> anyhow::Result<ConnArgs> {
        let parsed = url::Url::parse(url).context("the database URL is not a URL")?;
        let host = parsed.host_str().filter(|h| !h.is_empty()).unwrap_or("127.0.0.1");
        Ok(ConnArgs {
            host: host.trim_start_matches('[').trim_end_matches(']').to_owned(),
            port: parsed.port().unwrap_or(5432),
            user: Some(parsed.username()).filter(|u| !u.is_empty()).map(percent_decode),
            password: parsed.password().map(percent_decode),
            dbname: Some(percent_decode(parsed.path().trim_start_matches('/')))
                .filter(|d| !d.is_empty())
                .context("the URL names no database")?,
            sslmode: parsed.query_pairs().find(|(k, _)| k == "sslmode").map(|(_, v)| v.into_owned()),
        })
    }
}

/// `s` with its `%XX` escapes decoded (an invalid escape is kept as it is).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The figures of pgbench's summary.
fn parse_output(stdout: &str) -> Option<PgbenchRun> {
    let after = |prefix: &str| {
        stdout.lines().find_map(|l| l.trim().strip_prefix(prefix)).and_then(|rest| rest.split_whitespace().next())
    };
    Some(PgbenchRun {
        tps: after("tps = ")?.parse().ok()?,
        latency_ms: after("latency average = ").and_then(|v| v.parse().ok()),
        processed: after("number of transactions actually processed:")?.parse().ok()?,
        failed: after("number of failed transactions:").and_then(|v| v.parse().ok()).unwrap_or(0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_is_read() {
        let out = "pgbench (15.20 (Debian 15.20-0+deb12u1))\ntransaction type: /tmp/x.sql\nscaling factor: 1\n\
                   query mode: prepared\nnumber of clients: 64\nnumber of threads: 2\nmaximum number of tries: 1\n\
                   duration: 10 s\nnumber of transactions actually processed: 177000\n\
                   number of failed transactions: 0 (0.000%)\nlatency average = 3.612 ms\n\
                   initial connection time = 41.230 ms\ntps = 17700.512345 (without initial connection time)\n";
        assert_eq!(
            parse_output(out),
            Some(PgbenchRun { tps: 17700.512345, latency_ms: Some(3.612), processed: 177_000, failed: 0 })
        );
        assert_eq!(parse_output("pgbench: error: connection failed\n"), None);
    }

    #[test]
    fn the_connection_comes_from_the_database_url() {
        assert_eq!(
            ConnArgs::parse("postgres://bench:p%40ss@127.0.0.1:5433/rapport_bench?sslmode=disable").unwrap(),
            ConnArgs {
                host: "127.0.0.1".into(),
                port: 5433,
                user: Some("bench".into()),
                password: Some("p@ss".into()),
                dbname: "rapport_bench".into(),
                sslmode: Some("disable".into()),
            }
        );
        let plain = ConnArgs::parse("postgres://127.0.0.1/x").unwrap();
        assert_eq!((plain.port, plain.user, plain.password), (5432, None, None));
        assert!(ConnArgs::parse("postgres://127.0.0.1").is_err());
    }
}
