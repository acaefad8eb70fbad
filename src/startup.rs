//! Build the application: claim the database and the listening address, connect and migrate
//! the store, and run until a shutdown future completes.

use std::future::Future;
use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::middleware::from_fn;
use actix_web::{web, App, HttpServer};
use anyhow::Context;

use crate::access::{keys, Access, Freshness};
use crate::config::Settings;
use crate::http::{self, AppState};
use crate::metrics::Metrics;
use crate::store::pg_lock::ServerLock;
use crate::store::serve_lock::{self, Writers};
use crate::store::{Actor, Store, StoreOptions};

pub struct Application {
    port: u16,
    server: Server,
    store: Store,
    follower: tokio::task::JoinHandle<()>,
    /// PostgreSQL: the server lock (see `store::pg_lock`) and the task that checks it.
    server_lock: Option<(Arc<ServerLock>, tokio::task::JoinHandle<()>)>,
    /// Held while serving: on SQLite, the lock that keeps a second server off the file.
    _writers: Writers,
}

/// What a server takes before doing anything slow (migrations, loading the directory): its
/// database (on SQLite the lock that keeps a second `rolecall serve` off the file; see
/// `store::serve_lock`) and its listening socket, so that a second server or an address in
/// use fails at once. Connections that arrive before the server runs wait in the socket's
/// backlog.
pub struct Claim {
    writers: Writers,
    listener: TcpListener,
}

pub fn claim(settings: &Settings) -> anyhow::Result<Claim> {
    let writers = serve_lock::claim(&settings.database_url)?;
    let listener = TcpListener::bind(&settings.listen)
        .with_context(|| format!("cannot listen on {}", settings.listen))?;
    Ok(Claim { writers, listener })
}

impl Application {
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let claimed = claim(&settings)?;
        let store = connect(&settings).await?;
        Self::build_claimed(settings, store, claimed).await
    }

    /// Build on a connected store, claiming its database and address first.
    pub async fn build_with_store(settings: Settings, store: Store) -> anyhow::Result<Self> {
        let claimed = claim(&settings)?;
        Self::build_claimed(settings, store, claimed).await
    }

    /// Build on a connected store, with the database and address `claimed` for it.
    pub async fn build_claimed(
        settings: Settings,
        store: Store,
        claimed: Claim,
    ) -> anyhow::Result<Self> {
        let Claim { writers, listener } = claimed;
        // PostgreSQL: every server holds the server lock, shared by replicas and exclusive
        // for a `--sole-server` (which then reads as a SQLite server does)
        let server_lock = if store.backend() == crate::store::Backend::Postgres {
            Some(Arc::new(
                ServerLock::take(&settings.database_url, settings.sole_server).await?,
            ))
        } else {
            if settings.sole_server {
                tracing::info!("--sole-server is for PostgreSQL; a SQLite server is always alone");
            }
            None
        };
        let sole = writers.sole() || server_lock.as_ref().is_some_and(|l| l.sole());
        let access = Access::load(store.clone())
            .await
            .context("loading users, groups and mappings")?;
        // single-user reads come from memory: on a database nobody else writes users or
        // groups to, once this server's own writes are applied; on a shared one, after a
        // read barrier on the change feed
        access.serve_user_reads(
            settings.scim_cache_users,
            settings.scim_cache_bytes,
            if sole {
                Freshness::OwnWrites
            } else {
                Freshness::Barrier
            },
        );
        let server_lock = server_lock.map(|lock| {
            let task = watch_server_lock(Arc::clone(&lock), Arc::clone(&access));
            (lock, task)
        });
        if !access.keys().has_active() {
            let actor = Actor {
                name: "rolecall".into(),
                kind: "system".into(),
                request_id: None,
                client: None,
            };
            keys::rotate(&store, &actor)
                .await
                .context("generating the first signing key")?;
            access.catch_up().await?;
        }
        let started = std::time::Instant::now();
        let views = access.warm_views();
        tracing::info!(
            users = views,
            ms = started.elapsed().as_millis() as u64,
            "resolved every user's roles"
        );
        if settings.huge_pages {
            let started = std::time::Instant::now();
            let a = crate::huge_pages::advise();
            tracing::info!(
                advised_mib = a.advised >> 20,
                collapsed_mib = a.collapsed >> 20,
                refused_ranges = a.refused,
                ms = started.elapsed().as_millis() as u64,
                "asked for transparent huge pages for the loaded directory"
            );
        }
        let follower = access.spawn_follower(Duration::from_millis(settings.feed_poll_ms.max(10)));
        let port = listener.local_addr()?.port();
        let workers = settings.workers;
        let limit = settings.max_body_bytes;
        let grace = settings.shutdown_timeout_secs;
        let state = web::Data::new(Arc::new(AppState {
            store: store.clone(),
            access,
            settings,
            metrics: Metrics::new()?,
        }));
        let mut server = HttpServer::new(move || {
            App::new()
                .wrap(from_fn(http::authenticate))
                .wrap(from_fn(http::observe))
                .app_data(state.clone())
                .app_data(http::scim::json_config(limit))
                .configure(|cfg| http::routes(cfg, limit))
                .default_service(web::to(http::not_found))
        })
        .disable_signals()
        .shutdown_timeout(grace);
        if workers > 0 {
            server = server.workers(workers);
        }
        let server = server.listen(listener)?.run();
        Ok(Self {
            port,
            server,
            store,
            follower,
            server_lock,
            _writers: writers,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serve until `shutdown` completes, then stop gracefully and close the database.
    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        self.run(shutdown, std::future::pending()).await
    }

    /// Serve until SIGINT or SIGTERM, then stop gracefully; a second signal during the
    /// graceful stop ends the process at once.
    pub async fn run_until_signalled(self) -> anyhow::Result<()> {
        self.run(shutdown_signal(), shutdown_signal()).await
    }

    /// Serve until `shutdown`, then stop gracefully (in-flight requests get up to
    /// `--shutdown-timeout`) unless `force` completes first.
    async fn run(
        self,
        shutdown: impl Future<Output = ()>,
        force: impl Future<Output = ()>,
    ) -> anyhow::Result<()> {
        let handle = self.server.handle();
        let server = self.server;
        tokio::pin!(server);
        tokio::select! {
            res = &mut server => res?,
            () = shutdown => {
                tracing::info!(
                    "shutting down: in-flight requests have up to --shutdown-timeout to finish \
                     (a second signal stops at once)"
                );
                // the command is sent when `stop` is called; the server future must keep
                // running to act on it
                let stopped = handle.stop(true);
                tokio::select! {
                    (_, res) = async { tokio::join!(stopped, &mut server) } => res?,
                    () = force => {
                        // a stop in progress takes no second command: leave the requests
                        // still running (their transactions roll back when the process
                        // exits) and the connections to the operating system
                        tracing::warn!("second signal: stopping now, without waiting for in-flight requests");
                        anyhow::bail!("stopped by a second signal before in-flight requests finished");
                    }
                }
            }
        }
        self.follower.abort();
        self.store.close().await;
        // the lock goes last: after it, another server may start and write
        if let Some((lock, task)) = self.server_lock {
            task.abort();
            lock.release().await;
        }
        Ok(())
    }
}

/// Check the server lock every second. A sole server that lost it (its connection ended)
/// can no longer be sure it is alone: its reads take read barriers from then on.
fn watch_server_lock(lock: Arc<ServerLock>, access: Arc<Access>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if lock.check().await {
                continue;
            }
            if lock.sole() && access.reads_own_writes_only() {
                tracing::error!(
                    "lost the sole-server lock on the database (its connection ended): another \
                     server may start, so reads now wait for read barriers; restart this \
                     server to read without them again"
                );
                access.fall_back_to_barriers();
            } else if !lock.sole() {
                tracing::warn!("the server lock's connection ended; taking it again");
            }
        }
    })
}

/// Connect to the configured database and apply migrations.
pub async fn connect(settings: &Settings) -> anyhow::Result<Store> {
    let opts = StoreOptions {
        max_connections: settings.db_max_connections,
        ..StoreOptions::default()
    };
    let store = Store::connect(&settings.database_url, &opts)
        .await
        .with_context(|| {
            format!(
                "cannot open database {}",
                crate::config::redact_url(&settings.database_url)
            )
        })?;
    store.migrate().await.context("database migration failed")?;
    Ok(store)
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
