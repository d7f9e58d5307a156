//! Where the keys that seal secrets at rest come from (docs/privacy.md, "Secrets at
//! rest"): `RAPPORT_SECRET_KEYS` (the environment), or a file (`RAPPORT_SECRET_KEYS_FILE`,
//! e.g. a mounted Kubernetes Secret). Without either, PostgreSQL refuses to start — a
//! production database must not hold the key to its own secrets — and the embedded
//! SQLite default keeps a generated key in a file beside the database (`rapport.db.keys`,
//! readable by its owner only), so `cargo run` needs no set-up.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;

use crate::config::SecretArgs;
use crate::domain::sealing::{Keyring, SecretKey};

/// The keyring for a database at `db_url`, as configured (see the module documentation).
pub fn keyring(args: &SecretArgs, db_url: &str) -> anyhow::Result<Keyring> {
    match (&args.secret_keys, &args.secret_keys_file) {
        (Some(_), Some(_)) => {
            anyhow::bail!("set RAPPORT_SECRET_KEYS or RAPPORT_SECRET_KEYS_FILE, not both")
        }
        (Some(keys), None) => Keyring::parse(keys).map_err(|e| anyhow::anyhow!("RAPPORT_SECRET_KEYS: {e}")),
        (None, Some(file)) => read_file(file),
        (None, None) => {
            if db_url.starts_with("postgres://") || db_url.starts_with("postgresql://") {
                anyhow::bail!(
                    "no key to seal secrets with: on PostgreSQL set RAPPORT_SECRET_KEYS (or \
                     RAPPORT_SECRET_KEYS_FILE) to one or more `id:base64` keys; `rapport secrets new-key` \
                     makes one (docs/privacy.md)"
                );
            }
            match sqlite_file(db_url)? {
                None => Ok(Keyring::ephemeral()),
                Some(db_file) => beside_database(&db_file),
            }
        }
    }
}

fn read_file(path: &Path) -> anyhow::Result<Keyring> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the secret key file {} (RAPPORT_SECRET_KEYS_FILE)", path.display()))?;
    Keyring::parse(&text).map_err(|e| anyhow::anyhow!("the secret key file {}: {e}", path.display()))
}

/// The database file of an SQLite URL (`None`: in memory).
fn sqlite_file(db_url: &str) -> anyhow::Result<Option<PathBuf>> {
    if db_url.contains(":memory:") || db_url.contains("mode=memory") {
        return Ok(None);
    }
    let opts: sea_orm::sqlx::sqlite::SqliteConnectOptions =
        db_url.parse().map_err(|e| anyhow::anyhow!("DATABASE_URL is not a valid SQLite URL: {e}"))?;
    Ok(Some(opts.get_filename().to_path_buf()))
}

/// The key file beside an SQLite database: read, or created with one new key.
fn beside_database(db_file: &Path) -> anyhow::Result<Keyring> {
    let mut name = db_file.as_os_str().to_owned();
    name.push(".keys");
    let path = PathBuf::from(name);
    if path.exists() {
        return read_file(&path);
    }
    let key = SecretKey::generate(chrono::Utc::now().date_naive());
    let text = format!(
        "# Keys that seal the secrets stored in {} (docs/privacy.md). Newest first.\n\
         # Losing this file makes the stored webhook and identity-verification secrets unreadable.\n{}\n",
        db_file.display(),
        key.to_line()
    );
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(&path) {
        Ok(mut f) => {
            f.write_all(text.as_bytes())
                .and_then(|_| f.sync_all())
                .with_context(|| format!("writing the secret key file {}", path.display()))?;
            tracing::info!(file = %path.display(), key = key.id(), "created a key to seal secrets at rest");
            Ok(Keyring::new(vec![key]).map_err(anyhow::Error::msg)?)
        }
        // Another process created it meanwhile: use theirs.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => read_file(&path),
        Err(e) => Err(e).with_context(|| format!("creating the secret key file {}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_needs_a_key_and_sqlite_makes_one_beside_the_database() {
        let none = SecretArgs::default();
        let err = keyring(&none, "postgres://u@db/x").unwrap_err().to_string();
        assert!(err.contains("RAPPORT_SECRET_KEYS"), "{err}");

        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("r.db").display());
        let first = keyring(&none, &url).unwrap();
        let file = dir.path().join("r.db.keys");
        assert!(file.exists());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
        }
        let again = keyring(&none, &url).unwrap();
        assert_eq!(first.ids(), again.ids(), "the same key on the next start");

        let given = SecretKey::generate(chrono::NaiveDate::from_ymd_opt(2026, 3, 1).unwrap());
        let env = SecretArgs { secret_keys: Some(given.to_line()), ..Default::default() };
        assert_eq!(keyring(&env, "postgres://u@db/x").unwrap().ids(), [given.id()]);
        let bad = SecretArgs { secret_keys: Some("k1:short".into()), ..Default::default() };
        assert!(keyring(&bad, "postgres://u@db/x").unwrap_err().to_string().contains("RAPPORT_SECRET_KEYS"));
        let both =
            SecretArgs { secret_keys: Some(given.to_line()), secret_keys_file: Some(file), operator_token: None };
        assert!(keyring(&both, &url).is_err());
    }
}
