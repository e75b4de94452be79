//! `fanzha-platform`: serve, check the config, manage accounts, back up.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use fanzha_platform::config::Config;
use fanzha_platform::scope::{Role, Scope};
use fanzha_platform::store::{self, Store};
use fanzha_platform::web;

/// The district platform of fanzha.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// Config file (default: /etc/fanzha-platform/platform.toml when it exists, else the embedded defaults).
    #[arg(long, short, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Serve events, pages and metrics until SIGTERM.
    Serve,
    /// Check the config and the database; exit 0 good, 2 bad.
    CheckConfig,
    /// Accounts.
    User {
        #[command(subcommand)]
        cmd: UserCmd,
    },
    /// Copy the SQLite database to FILE while the platform runs (PostgreSQL: use pg_dump).
    Backup {
        /// Where the copy goes.
        file: PathBuf,
    },
    /// Delete what is older than `retention` now (serve does it every hour).
    Retain,
}

#[derive(Subcommand)]
enum UserCmd {
    /// Add an account (or reset one): the password is read from stdin, or
    /// FANZHA_PLATFORM_PASSWORD.
    Add {
        /// Login name.
        name: String,
        /// district, street or community.
        #[arg(long)]
        role: String,
        /// The street or community it sees (not for district).
        #[arg(long, default_value = "")]
        scope: String,
    },
    /// Disable an account and end its sessions.
    Disable {
        /// Login name.
        name: String,
    },
    /// List the accounts.
    List,
}

fn config_path(given: Option<PathBuf>) -> Option<PathBuf> {
    given.or_else(|| {
        let p = Path::new("/etc/fanzha-platform/platform.toml");
        p.exists().then(|| p.to_path_buf())
    })
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("fanzha-platform: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn open(c: &Config) -> anyhow::Result<Store> {
    Store::open(&c.database).with_context(|| format!("opening the database {}", c.database))
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let path = config_path(cli.config);
    let c = Config::load(path.as_deref()).context("the config")?;
    match cli.cmd {
        Cmd::Serve => serve(c),
        Cmd::CheckConfig => {
            let s = open(&c)?;
            println!(
                "config {}: ok; database {} ({}): ok; {} appliance(s)",
                path.as_deref()
                    .map_or("(embedded defaults)".into(), |p| p.display().to_string()),
                c.database,
                s.kind(),
                c.appliances.len()
            );
            Ok(ExitCode::SUCCESS)
        }
        Cmd::User { cmd } => user(&c, cmd),
        Cmd::Backup { file } => {
            match open(&c)? {
                Store::Sqlite(s) => s
                    .backup(&file)
                    .with_context(|| format!("backing up to {}", file.display()))?,
                Store::Postgres(_) => {
                    bail!("the database is PostgreSQL: back it up with pg_dump (docs/platform.md)")
                }
            }
            println!("backed up to {}", file.display());
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Retain => {
            let n = retain(&open(&c)?, &c)?;
            println!(
                "deleted {n} event(s) older than {}",
                humantime::format_duration(c.retention)
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn retain(s: &Store, c: &Config) -> anyhow::Result<u64> {
    let now = web::now_ms();
    let cutoff = now - c.retention.as_millis() as i64;
    Ok(s.write(|db| store::events::retain(db, cutoff, now))?)
}

fn user(c: &Config, cmd: UserCmd) -> anyhow::Result<ExitCode> {
    let s = open(c)?;
    match cmd {
        UserCmd::Add { name, role, scope } => {
            let role = Role::parse(&role)
                .with_context(|| format!("--role {role:?}: use district, street or community"))?;
            if (role == Role::District) != scope.is_empty() {
                bail!(
                    "--scope: a district account has none; a street or community account names its street or community"
                );
            }
            let password = match std::env::var("FANZHA_PLATFORM_PASSWORD") {
                Ok(p) => p,
                Err(_) => {
                    let mut line = String::new();
                    std::io::stdin()
                        .read_line(&mut line)
                        .context("reading the password from stdin")?;
                    line.trim_end_matches(['\r', '\n']).to_string()
                }
            };
            if password.chars().count() < 10 {
                bail!("the password is shorter than 10 characters");
            }
            let hash =
                fanzha_platform::auth::hash_password(&password).map_err(anyhow::Error::msg)?;
            let scope = Scope { role, place: scope };
            s.write(|db| store::people::put_user(db, &name, &scope, &hash, web::now_ms()))?;
            println!("account {name}: {} {}", role.word(), scope.place);
        }
        UserCmd::Disable { name } => {
            if !s.write(|db| store::people::disable_user(db, &name))? {
                bail!("no account {name}");
            }
            println!("account {name} disabled");
        }
        UserCmd::List => {
            for a in s.read(store::people::users)? {
                println!(
                    "{}\t{}\t{}{}",
                    a.name,
                    a.scope.role.word(),
                    a.scope.place,
                    if a.disabled { "\tdisabled" } else { "" }
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn serve(c: Config) -> anyhow::Result<ExitCode> {
    // Opened outside the runtime: the PostgreSQL client blocks on its own.
    let store = open(&c)?;
    let rt = tokio::runtime::Runtime::new().context("starting the runtime")?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(c.listen)
            .await
            .with_context(|| format!("listen = {}: cannot bind; is another process on it?", c.listen))?;
        tracing::info!(listen = %listener.local_addr()?, database = store.kind(), appliances = c.appliances.len(), "fanzha-platform serving");
        let app = web::App::new(c, store);
        fanzha::sd_notify::notify("READY=1");
        web::review::write_allowlist(&app).await.map_err(|e| anyhow::anyhow!("{e:?}"))?;
        let retention = {
            let app = app.clone();
            tokio::spawn(async move {
                loop {
                    let (s, c) = (app.store.clone(), app.config.clone());
                    match tokio::task::spawn_blocking(move || retain(&s, &c)).await {
                        Ok(Ok(n)) if n > 0 => tracing::info!(events = n, "retention: deleted old events"),
                        Ok(Err(e)) => tracing::error!(error = %e, "retention failed"),
                        _ => {}
                    }
                    tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
                }
            })
        };
        web::serve(app, listener, async {
            shutdown().await;
            fanzha::sd_notify::notify("STOPPING=1");
        })
        .await?;
        retention.abort();
        tracing::info!("fanzha-platform stopped");
        Ok(ExitCode::SUCCESS)
    })
}

async fn shutdown() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
