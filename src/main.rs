//! The `rapport` binary: parse the command line, set up telemetry, run a sub-command.

use clap::Parser;

use rapport::app::{Application, shutdown_signal};
use rapport::config::{Cli, Command, KeyCommand, TenantCommand};
use rapport::domain::model::KeyKind;
use rapport::service::in_app::IdentityChange;
use rapport::service::{Clock, Services};
use rapport::store::Db;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // No sub-command means `serve`; the server's options are global, so they are taken
    // before the sub-command as well as after it.
    let cli = Cli::parse();
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
                        "Created tenant `default`. Its secret key, shown only this once:\n\n    {}\n",
                        key.secret
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
            let svc = admin_services(&db_settings).await?;
            let key = svc.create_tenant(&name).await?;
            println!("tenant {name} created (id {})\nsecret key (shown once): {}", key.tenant, key.secret);
            Ok(())
        }
        Command::Tenant(TenantCommand::IdentityVerification { tenant, enable, disable: _, rotate }) => {
            let svc = admin_services(&db_settings).await?;
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
            let svc = admin_services(&db_settings).await?;
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
        Command::Key(KeyCommand::Create { tenant, publishable }) => {
            let svc = admin_services(&db_settings).await?;
            let kind = if publishable { KeyKind::Publishable } else { KeyKind::Secret };
            let key = svc.create_key(&tenant, kind).await?;
            println!("key id {}\n{} key (shown once): {}", key.id, kind.as_str(), key.secret);
            Ok(())
        }
        Command::Key(KeyCommand::Revoke { key_id }) => {
            let svc = admin_services(&db_settings).await?;
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
    }
}

async fn admin_services(db: &rapport::store::DbSettings) -> anyhow::Result<Services> {
    let db = Db::connect(db).await?;
    db.migrate().await?;
    Ok(Services::new(db, Clock::default()))
}
