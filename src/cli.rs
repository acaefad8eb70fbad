//! Command-line verbs: `serve`, `migrate`, `token create|list|revoke`.

use clap::{Args, Parser, Subcommand};

use crate::auth::{self, Scope};
use crate::config::{LogFormat, Settings};
use crate::startup::{self, Application};

#[derive(Debug, Parser)]
#[command(
    name = "rolecall",
    version,
    about = "SCIM 2.0 provisioning and role lookup for AI tools"
)]
pub struct Cli {
    #[command(flatten)]
    pub db: DbArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct DbArgs {
    /// Database URL: sqlite://path (created if missing) or postgres://user@host/db.
    /// Also ROLECALL_DATABASE_URL or DATABASE_URL. Default: sqlite://rolecall.db
    #[arg(
        long,
        global = true,
        env = "ROLECALL_DATABASE_URL",
        hide_env_values = true
    )]
    pub database_url: Option<String>,
}

impl DbArgs {
    pub fn url(&self) -> String {
        self.database_url
            .clone()
            .or_else(|| std::env::var("DATABASE_URL").ok().filter(|s| !s.is_empty()))
            .unwrap_or_else(|| Settings::default().database_url)
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP server.
    Serve(ServeArgs),
    /// Apply database migrations and exit.
    Migrate,
    /// Manage API tokens.
    #[command(subcommand)]
    Token(TokenCommand),
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "ROLECALL_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// Public base URL (e.g. https://rolecall.example.com) for meta.location; default: the request's host.
    #[arg(long, env = "ROLECALL_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Log format.
    #[arg(long, env = "ROLECALL_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// Largest accepted request body in bytes.
    #[arg(long, env = "ROLECALL_MAX_BODY_BYTES", default_value_t = 1024 * 1024)]
    pub max_body_bytes: usize,
    /// Largest page a list returns; larger counts are capped.
    #[arg(long, env = "ROLECALL_MAX_PAGE_SIZE", default_value_t = 1000)]
    pub max_page_size: i64,
    /// Database connections (PostgreSQL pool size; SQLite readers, at most 4).
    #[arg(long, env = "ROLECALL_DB_MAX_CONNECTIONS", default_value_t = 8)]
    pub db_max_connections: u32,
    /// HTTP worker threads (0 = one per core).
    #[arg(long, env = "ROLECALL_WORKERS", default_value_t = 0)]
    pub workers: usize,
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token; its secret is printed once, alone on the last line of stdout.
    Create {
        #[arg(long)]
        name: String,
        /// scim (for the IdP), lookup (for gateways) or admin.
        #[arg(long, value_parser = clap::value_parser!(ScopeArg))]
        scope: ScopeArg,
    },
    /// List tokens (names, scopes, creation times; never secrets).
    List,
    /// Revoke a token by name.
    Revoke { name: String },
}

#[derive(Debug, Clone, Copy)]
pub struct ScopeArg(pub Scope);

impl std::str::FromStr for ScopeArg {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        s.parse().map(ScopeArg)
    }
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let url = cli.db.url();
    match cli.command {
        Command::Serve(a) => {
            crate::telemetry::init(a.log_format);
            let settings = Settings {
                listen: a.listen,
                database_url: url,
                public_url: a.public_url,
                max_body_bytes: a.max_body_bytes,
                max_page_size: a.max_page_size.max(1),
                db_max_connections: a.db_max_connections,
                workers: a.workers,
                ..Settings::default()
            };
            tracing::info!(settings = ?settings, "starting rolecall");
            let app = Application::build(settings).await?;
            tracing::info!(port = app.port(), "listening");
            app.run_until_stopped(startup::shutdown_signal()).await
        }
        Command::Migrate => {
            let settings = Settings {
                database_url: url,
                ..Settings::default()
            };
            startup::connect(&settings).await?;
            println!("migrations applied");
            Ok(())
        }
        Command::Token(t) => {
            let settings = Settings {
                database_url: url,
                ..Settings::default()
            };
            let store = startup::connect(&settings).await?;
            match t {
                TokenCommand::Create { name, scope } => {
                    let (row, secret) = auth::generate(&name, scope.0)?;
                    store
                        .create_token(&row, &crate::store::Actor::cli())
                        .await?;
                    println!(
                        "created {} token \"{}\"; its secret is shown once, below:",
                        scope.0, name
                    );
                    println!("{secret}");
                }
                TokenCommand::List => {
                    println!("{:<24} {:<8} {:<26} ID", "NAME", "SCOPE", "CREATED");
                    for t in store.list_tokens().await? {
                        println!("{:<24} {:<8} {:<26} {}", t.name, t.scope, t.created, t.id);
                    }
                }
                TokenCommand::Revoke { name } => {
                    store
                        .revoke_token(&name, &crate::store::Actor::cli())
                        .await
                        .map_err(|e| match e {
                            crate::store::StoreError::NotFound => {
                                anyhow::anyhow!("no token named \"{name}\"")
                            }
                            e => e.into(),
                        })?;
                    println!("revoked token \"{name}\"");
                }
            }
            store.close().await;
            Ok(())
        }
    }
}
