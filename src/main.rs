//! The `rapport` binary: parse the command line, set up telemetry, run a sub-command.

use clap::Parser;

use rapport::app::{Application, shutdown_signal};
use rapport::config::{Cli, Command, CustomerCommand, KeyCommand, SecretsCommand, ServeArgs, TenantCommand};
use rapport::domain::listing::PageRequest;
use rapport::domain::model::KeyKind;
use rapport::domain::privacy::Actor;
use rapport::domain::sealing::SecretKey;
use rapport::service::in_app::IdentityChange;
use rapport::service::{Clock, Services};
use rapport::store::Db;

/// jemalloc rather than the system allocator: under load a fifth of the server's time
/// went to glibc's malloc and free, and with jemalloc `RecordResponse` at c=64 answered
/// 10 % more calls a second (docs/benchmarks.md).
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // No sub-command means `serve`; the server's options are global, so they are taken
    // before the sub-command as well as after it.
    let mut cli = Cli::parse();
    cli.serve.secrets.read_environment();
    let _telemetry = rapport::telemetry::init(cli.common.log_format, &cli.common.log_level)?;
    let db_settings = cli.common.db();
    let args = cli.serve;
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            let bootstrap = args.bootstrap_tenant;
            let app = Application::build(&db_settings, args, Clock::default()).await?;
            if bootstrap {
                match app.services().bootstrap().await {
                    Ok(Some(key)) => println!(
                        "Created tenant `default`. Its secret key (id {}), shown only this once:\n\n    {}\n",
                        key.id, key.secret
                    ),
                    Ok(None) => {}
                    Err(e) => tracing::warn!(error = %e, "could not create the default tenant"),
                }
            }
            tracing::info!(addr = %app.local_addr(), "rapport serving gRPC");
            tracing::info!(addr = %app.admin_addr(), "rapport serving Prometheus metrics at /metrics");
            app.run_until_stopped(shutdown_signal()).await
        }
        Command::Migrate => {
            let db = Db::connect(&db_settings).await?;
            db.migrate().await?;
            println!("migrations applied");
            Ok(())
        }
        Command::Tenant(TenantCommand::Create { name }) => {
            let svc = admin_services(&db_settings, &args).await?;
            let key = svc.create_tenant(&name).await?;
            println!(
                "tenant {name} created (id {})\nsecret key id {}\nsecret key (shown once): {}",
                key.tenant, key.id, key.secret
            );
            Ok(())
        }
        Command::Tenant(TenantCommand::IdentityVerification { tenant, enable, disable: _, rotate }) => {
            let svc = admin_services(&db_settings, &args).await?;
            let change = if enable { IdentityChange::Enable { rotate } } else { IdentityChange::Disable };
            match svc.set_identity_verification(&tenant, change).await? {
                Some(secret) => println!(
                    "identity verification is on for tenant {tenant}.\n\
                     HMAC secret (shown once; keep it on your server): {secret}\n\
                     customer_hash = hex(HMAC-SHA256(secret, customer_id))"
                ),
                None if enable => println!(
                    "identity verification is on for tenant {tenant} (secret unchanged; --rotate makes a new one)"
                ),
                None => println!("identity verification is off for tenant {tenant}"),
            }
            Ok(())
        }
        Command::Tenant(TenantCommand::Branding { tenant, display_name, accent_color, logo_url, language }) => {
            let svc = admin_services(&db_settings, &args).await?;
            let mut b = svc.tenant_branding(&tenant).await?;
            let changing = display_name.is_some() || accent_color.is_some() || logo_url.is_some() || language.is_some();
            if changing {
                b.display_name = display_name.unwrap_or(b.display_name);
                b.accent_color = accent_color.unwrap_or(b.accent_color);
                b.logo_url = logo_url.unwrap_or(b.logo_url);
                b.language = language.unwrap_or(b.language);
                b = svc.set_tenant_branding(&tenant, b).await?;
            }
            println!(
                "branding of tenant {tenant}:\n  display name: {:?}\n  accent colour: {:?}\n  logo URL: {:?}\n  language: {:?}",
                b.display_name, b.accent_color, b.logo_url, b.language
            );
            Ok(())
        }
        Command::Key(KeyCommand::Create { tenant, publishable, read, expires_in, expires_at }) => {
            let svc = admin_services(&db_settings, &args).await?;
            let kind = match (publishable, read) {
                (true, _) => KeyKind::Publishable,
                (_, true) => KeyKind::Read,
                _ => KeyKind::Secret,
            };
            let expires = match expires_in {
                Some(d) => Some(svc.clock.now() + chrono::Duration::from_std(d)?),
                None => expires_at,
            };
            let key = svc.create_key_as(Actor::CommandLine, &tenant, kind, expires).await?;
            println!("key id {}\n{} key (shown once): {}", key.id, kind.as_str(), key.secret);
            if let Some(at) = expires {
                println!("expires {}", at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
            }
            Ok(())
        }
        Command::Key(KeyCommand::List { tenant }) => {
            let svc = admin_services(&db_settings, &args).await?;
            let when = |t: Option<chrono::DateTime<chrono::Utc>>| {
                t.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)).unwrap_or_else(|| "-".into())
            };
            println!(
                "{:<38} {:<11} {:<16} {:<20} {:<20} {:<20} revoked",
                "id", "kind", "prefix", "created", "last used", "expires"
            );
            let mut token = String::new();
            loop {
                let page = svc.list_keys(&tenant, PageRequest::parse(1000, &token)?).await?;
                for k in &page.items {
                    println!(
                        "{:<38} {:<11} {:<16} {:<20} {:<20} {:<20} {}",
                        k.id,
                        k.kind.as_str(),
                        k.prefix,
                        when(Some(k.created_at)),
                        when(k.last_used_at),
                        when(k.expires_at),
                        when(k.revoked_at)
                    );
                }
                if page.next_page_token.is_empty() {
                    break;
                }
                token = page.next_page_token;
            }
            Ok(())
        }
        Command::Key(KeyCommand::Revoke { key_id }) => {
            let svc = admin_services(&db_settings, &args).await?;
            svc.revoke_key(&key_id).await?;
            println!("key {key_id} revoked");
            Ok(())
        }
        Command::Import(command) => {
            let tally = rapport::import_file::run(command, &mut std::io::stdout()).await?;
            println!(
                "done: {} imported, {} duplicates, {} rejected, {} unreadable lines",
                tally.imported, tally.duplicates, tally.rejected, tally.unreadable
            );
            Ok(())
        }
        Command::Secrets(SecretsCommand::NewKey) => {
            println!("{}", SecretKey::generate(chrono::Utc::now().date_naive()).to_line());
            Ok(())
        }
        Command::Secrets(SecretsCommand::Rotate) => {
            let svc = admin_services(&db_settings, &args).await?;
            let done = svc.rotate_secrets().await?;
            println!(
                "re-sealed under key {}: {} webhook secrets, {} identity-verification secrets",
                svc.keyring.newest_id().unwrap_or("-"),
                done.webhook_secrets,
                done.identity_secrets
            );
            Ok(())
        }
        Command::Customer(CustomerCommand::Erase { tenant, customer_id }) => {
            let svc = admin_services(&db_settings, &args).await?;
            let r = svc.erase_customer_of(&tenant, &customer_id).await?;
            println!(
                "erasure {}: {}; {} responses and {} invitations kept as anonymous counts, {} follow-ups emptied, \
                 {} activity events deleted, {} events and {} deliveries scrubbed",
                r.erasure_id,
                if r.found {
                    "customer erased"
                } else {
                    "no such customer (erased before, or never seen); tombstone kept"
                },
                r.responses,
                r.invitations,
                r.follow_ups,
                r.activity_events,
                r.events,
                r.deliveries
            );
            Ok(())
        }
        Command::Customer(CustomerCommand::Export { tenant, customer_id }) => {
            let svc = admin_services(&db_settings, &args).await?;
            let doc = svc.export_customer_of(&tenant, &customer_id).await?;
            println!("{}", serde_json::to_string_pretty(&doc)?);
            Ok(())
        }
    }
}

async fn admin_services(db: &rapport::store::DbSettings, args: &ServeArgs) -> anyhow::Result<Services> {
    let url = db.url.clone();
    let db = Db::connect(db).await?;
    let keyring = rapport::secret_keys::keyring(&args.secrets, &url)?;
    db.migrate().await?;
    let svc = Services::new(db, Clock::default()).with_keyring(keyring);
    svc.seal_plain_secrets().await?;
    Ok(svc)
}
