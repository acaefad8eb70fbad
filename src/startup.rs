//! Build the application: connect and migrate the store, bind the listener (port 0 works),
//! and run until a shutdown future completes.

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
use crate::store::serve_lock::{self, Writers};
use crate::store::{Actor, Store, StoreOptions};

pub struct Application {
    port: u16,
    server: Server,
    store: Store,
    follower: tokio::task::JoinHandle<()>,
    /// Held while serving: on SQLite, the lock that keeps a second server off the file.
    _writers: Writers,
}

/// Claim the configured database for one server (SQLite: fails if another `rolecall serve`
/// uses the file; see `store::serve_lock`).
pub fn claim(settings: &Settings) -> anyhow::Result<Writers> {
    Ok(serve_lock::claim(&settings.database_url)?)
}

impl Application {
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let writers = claim(&settings)?;
        let store = connect(&settings).await?;
        Self::build_claimed(settings, store, writers).await
    }

    /// Build on a connected store, claiming its database first.
    pub async fn build_with_store(settings: Settings, store: Store) -> anyhow::Result<Self> {
        let writers = claim(&settings)?;
        Self::build_claimed(settings, store, writers).await
    }

    /// Build on a connected store whose database `writers` says who may write to.
    pub async fn build_claimed(
        settings: Settings,
        store: Store,
        writers: Writers,
    ) -> anyhow::Result<Self> {
        let access = Access::load(store.clone())
            .await
            .context("loading users, groups and mappings")?;
        // single-user reads come from memory: on a database nobody else writes users or
        // groups to, once this server's own writes are applied; on a shared one, after a
        // read barrier on the change feed
        access.serve_user_reads(
            settings.scim_cache_users,
            if writers.sole() {
                Freshness::OwnWrites
            } else {
                Freshness::Barrier
            },
        );
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
        let follower = access.spawn_follower(Duration::from_millis(settings.feed_poll_ms.max(10)));
        let listener = TcpListener::bind(&settings.listen)
            .with_context(|| format!("cannot listen on {}", settings.listen))?;
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
            _writers: writers,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serve until `shutdown` completes, then stop gracefully and close the database.
    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        let handle = self.server.handle();
        let server = self.server;
        tokio::pin!(server);
        tokio::select! {
            res = &mut server => res?,
            () = shutdown => {
                tracing::info!(
                    "shutting down: in-flight requests have up to --shutdown-timeout to finish"
                );
                // the server future must keep running to act on the stop command
                let (_, res) = tokio::join!(handle.stop(true), &mut server);
                res?;
            }
        }
        self.follower.abort();
        self.store.close().await;
        Ok(())
    }
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
