//! Command-line verbs: `serve`, `migrate`, `token create|list|revoke`.

use clap::{Args, Parser, Subcommand};

use crate::access::mappings::ApplyError;
use crate::access::{keys, Access};
use crate::auth::{self, Scope};
use crate::config::{LogFormat, Settings};
use crate::roles::diff::describe_rule;
use crate::roles::document::{parse_toml, to_toml, MappingDocument};
use crate::startup::{self, Application};
use crate::store::Actor;

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
    /// The group-to-role mapping table.
    #[command(subcommand)]
    Mappings(MappingsCommand),
    /// Signing keys for role tokens.
    #[command(subcommand)]
    Keys(KeysCommand),
}

#[derive(Debug, Subcommand)]
pub enum MappingsCommand {
    /// Check a mapping file; every problem is printed with its line; exits non-zero on any.
    Validate { file: std::path::PathBuf },
    /// What applying FILE would change: rules added/removed, and each user's role changes.
    Diff { file: std::path::PathBuf },
    /// Apply FILE in one transaction (prints the diff). Running servers pick it up within a second.
    Apply { file: std::path::PathBuf },
    /// Print the mapping in force, in the file format.
    Export,
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Add a new signing key; the old one stays published until its tokens expire.
    Rotate,
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
    /// Most operations in one /Bulk request (advertised as bulk.maxOperations).
    #[arg(long, env = "ROLECALL_BULK_MAX_OPERATIONS", default_value_t = 1000)]
    pub bulk_max_operations: usize,
    /// Largest /Bulk request body in bytes (advertised as bulk.maxPayloadSize).
    #[arg(long, env = "ROLECALL_BULK_MAX_PAYLOAD_BYTES", default_value_t = 1024 * 1024)]
    pub bulk_max_payload_bytes: usize,
    /// Largest page a list returns; larger counts are capped.
    #[arg(long, env = "ROLECALL_MAX_PAGE_SIZE", default_value_t = 1000)]
    pub max_page_size: i64,
    /// Database connections (PostgreSQL pool size; SQLite readers, at most 4).
    #[arg(long, env = "ROLECALL_DB_MAX_CONNECTIONS", default_value_t = 8)]
    pub db_max_connections: u32,
    /// HTTP worker threads (0 = one per core).
    #[arg(long, env = "ROLECALL_WORKERS", default_value_t = 0)]
    pub workers: usize,
    /// Apply this mapping file at start-up (before serving).
    #[arg(long, env = "ROLECALL_MAPPINGS")]
    pub mappings: Option<std::path::PathBuf>,
    /// On SIGTERM/SIGINT, seconds to let in-flight requests finish before they are cut.
    #[arg(long, env = "ROLECALL_SHUTDOWN_TIMEOUT", default_value_t = 30)]
    pub shutdown_timeout: u64,
    /// Seconds after a request starts by which its body must have arrived (408 otherwise; 0 = no limit).
    #[arg(long, env = "ROLECALL_BODY_TIMEOUT", default_value_t = 30)]
    pub body_timeout: u64,
    /// PostgreSQL: this is the only rolecall server on the database (enforced by a lock):
    /// single-user SCIM reads then need no read barrier. Without it, servers are replicas.
    #[arg(long, env = "ROLECALL_SOLE_SERVER")]
    pub sole_server: bool,
    /// Linux: back the in-memory directory with transparent huge pages (fewer TLB misses per
    /// lookup at 100,000 users; see BENCHMARKS.md). `false` leaves the kernel's default.
    #[arg(long, env = "ROLECALL_HUGE_PAGES", default_value_t = true, action = clap::ArgAction::Set)]
    pub huge_pages: bool,
    /// Lifetime of signed role tokens, in seconds (at most 86400: retired keys are published for a day).
    #[arg(long, env = "ROLECALL_ROLE_TOKEN_TTL", default_value_t = 300)]
    pub role_token_ttl: u64,
    /// `aud` claim of signed role tokens.
    #[arg(long, env = "ROLECALL_ROLE_TOKEN_AUDIENCE", default_value = "rolecall")]
    pub role_token_audience: String,
    /// User documents kept in memory for single-user SCIM reads (0 = always read the database).
    #[arg(long, env = "ROLECALL_SCIM_CACHE_USERS", default_value_t = 16384)]
    pub scim_cache_users: usize,
    /// About how many bytes those documents may take in all; the oldest are dropped first.
    #[arg(long, env = "ROLECALL_SCIM_CACHE_BYTES", default_value_t = 128 * 1024 * 1024)]
    pub scim_cache_bytes: usize,
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
            if let Some(u) = &a.public_url {
                check_public_url(u)?;
            }
            let settings = Settings {
                listen: a.listen,
                database_url: url,
                public_url: a.public_url,
                max_body_bytes: a.max_body_bytes,
                bulk_max_operations: a.bulk_max_operations.max(1),
                bulk_max_payload_bytes: a.bulk_max_payload_bytes,
                max_page_size: a.max_page_size.max(1),
                db_max_connections: a.db_max_connections,
                workers: a.workers,
                role_token_ttl_secs: a.role_token_ttl.clamp(1, 86_400),
                shutdown_timeout_secs: a.shutdown_timeout,
                body_timeout_secs: a.body_timeout,
                sole_server: a.sole_server,
                huge_pages: a.huge_pages,
                role_token_audience: a.role_token_audience,
                scim_cache_users: a.scim_cache_users,
                scim_cache_bytes: a.scim_cache_bytes,
                ..Settings::default()
            };
            if settings.role_token_ttl_secs != a.role_token_ttl {
                tracing::warn!(
                    asked = a.role_token_ttl,
                    used = settings.role_token_ttl_secs,
                    "--role-token-ttl is limited to 1..=86400 seconds"
                );
            }
            if settings.public_url.is_none() {
                tracing::warn!(
                    "no --public-url: resource locations, the role tokens' iss and the AuthZEN \
                     discovery document follow each request's Host (or Forwarded / \
                     X-Forwarded-Host) header; set --public-url where clients are not trusted"
                );
            }
            tracing::info!(settings = ?settings, "starting rolecall");
            let claimed = startup::claim(&settings)?;
            let store = startup::connect(&settings).await?;
            if let Some(file) = &a.mappings {
                let access = Access::load(store.clone()).await?;
                let doc = read_mapping_file(file)?;
                let (version, diff) = access
                    .apply(doc, None, &Actor::cli())
                    .await
                    .map_err(apply_error)?;
                tracing::info!(file = %file.display(), version, changes = !diff.is_empty(), "applied mapping file");
            }
            let app = Application::build_claimed(settings, store, claimed).await?;
            tracing::info!(port = app.port(), "listening");
            app.run_until_signalled().await
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
        Command::Mappings(MappingsCommand::Validate { file }) => {
            let doc = read_mapping_file(&file)?;
            println!("{}: valid", file.display());
            for (role, missing) in crate::roles::uncapped_roles(&doc) {
                println!(
                    "! role {role} may call models with {} 0 (no cap / no limit given)",
                    missing.join(" and ")
                );
            }
            // rules that match no group of the directory (renamed, or not pushed yet) are
            // flagged, not errors: the file is valid either way
            match unmatched_in_directory(&url, doc).await {
                Ok(unmatched) => {
                    for (i, rule) in unmatched {
                        println!("! rule {i} matches no group: {}", describe_rule(&rule));
                    }
                }
                Err(why) => println!("(rules not checked against the directory: {why})"),
            }
            Ok(())
        }
        Command::Mappings(m) => {
            let settings = Settings {
                database_url: url,
                ..Settings::default()
            };
            let store = startup::connect(&settings).await?;
            let access = Access::load(store.clone()).await?;
            match m {
                MappingsCommand::Diff { file } => {
                    let diff = access
                        .preview(read_mapping_file(&file)?)
                        .map_err(apply_error)?;
                    print!("{}", diff.render_text());
                }
                MappingsCommand::Apply { file } => {
                    let (version, diff) = access
                        .apply(read_mapping_file(&file)?, None, &Actor::cli())
                        .await
                        .map_err(apply_error)?;
                    print!("{}", diff.render_text());
                    println!("applied {} as mapping version {version}", file.display());
                }
                MappingsCommand::Export => {
                    print!("{}", to_toml(access.mapping().compiled.document()))
                }
                MappingsCommand::Validate { .. } => {}
            }
            store.close().await;
            Ok(())
        }
        Command::Keys(KeysCommand::Rotate) => {
            let settings = Settings {
                database_url: url,
                ..Settings::default()
            };
            let store = startup::connect(&settings).await?;
            let kid = keys::rotate(&store, &Actor::cli()).await?;
            println!("new signing key {kid}; running servers sign with it within a second");
            store.close().await;
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
                    auth::check_token_name(&name).map_err(|e| anyhow::anyhow!(e))?;
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

/// Read and validate a mapping file; every problem is reported with its line.
/// `--public-url` is an absolute http(s) URL without a query or fragment: it prefixes every
/// `Location`, `meta.location`, role token `iss` and discovery endpoint.
fn check_public_url(u: &str) -> anyhow::Result<()> {
    let rest = u
        .strip_prefix("https://")
        .or_else(|| u.strip_prefix("http://"));
    let host = rest.map(|r| r.split('/').next().unwrap_or_default());
    let ok = host.is_some_and(|h| !h.is_empty())
        && !u
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || "\"'<>\\`{}|^?#".contains(c));
    if !ok {
        anyhow::bail!(
            "--public-url must be an absolute http:// or https:// URL with a host and no query \
             (e.g. https://rolecall.example.com), not {u:?}"
        );
    }
    Ok(())
}

/// Rules of `doc` (with their indexes) that match no group in the database at `url`. A SQLite
/// file that does not exist is not created.
async fn unmatched_in_directory(
    url: &str,
    doc: MappingDocument,
) -> anyhow::Result<Vec<(usize, crate::roles::document::RuleDef)>> {
    if let Some(path) = crate::store::serve_lock::sqlite_file(url) {
        if !path.exists() {
            anyhow::bail!("no database at {}", path.display());
        }
    }
    let compiled = crate::roles::resolve::CompiledMapping::new(doc)
        .map_err(|p| anyhow::anyhow!("{} problem(s)", p.len()))?;
    let settings = Settings {
        database_url: url.to_string(),
        ..Settings::default()
    };
    let store = startup::connect(&settings).await?;
    let access = Access::load(store.clone()).await?;
    let unmatched = access.unmatched_rules_of(&compiled);
    store.close().await;
    Ok(unmatched)
}

fn read_mapping_file(file: &std::path::Path) -> anyhow::Result<MappingDocument> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", file.display()))?;
    parse_toml(&text).map_err(|problems| {
        let list: Vec<String> = problems
            .iter()
            .map(|p| format!("{}: {p}", file.display()))
            .collect();
        anyhow::anyhow!("{} problem(s):\n{}", problems.len(), list.join("\n"))
    })
}

fn apply_error(e: ApplyError) -> anyhow::Error {
    match e {
        ApplyError::Invalid(problems) => {
            let list: Vec<String> = problems.iter().map(ToString::to_string).collect();
            anyhow::anyhow!("{} problem(s):\n{}", problems.len(), list.join("\n"))
        }
        other => other.into(),
    }
}

#[cfg(test)]
mod public_url_tests {
    #[test]
    fn public_urls_are_absolute_http() {
        for good in [
            "https://rolecall.example.com",
            "http://127.0.0.1:8080",
            "https://h/base/",
        ] {
            assert!(super::check_public_url(good).is_ok(), "{good}");
        }
        for bad in [
            "not a url",
            "javascript:alert(1)",
            "https://x\"><x",
            "https://",
            "ftp://h",
            "https://h/?q=1",
        ] {
            assert!(super::check_public_url(bad).is_err(), "{bad}");
        }
    }
}
