//! PostgreSQL over TLS: `sslmode=require` in the database URL gives an encrypted connection
//! (sqlx is built with rustls). Runs where the test server has TLS on (Debian's PostgreSQL
//! does, with its snake-oil certificate); says so and returns where it has not.

use rolecall::store::{Store, StoreOptions};
use sqlx::Row;

use crate::helpers::{fresh_database, Backend};

#[tokio::test]
async fn postgres_over_tls_with_sslmode_require() {
    let dir = tempfile::tempdir().unwrap();
    let Some(url) = fresh_database(Backend::Postgres, &dir).await else {
        return;
    };
    let mut admin = sqlx::AnyConnection::connect(&url).await.unwrap();
    use sqlx::Connection;
    let ssl: String = sqlx::query("SHOW ssl")
        .fetch_one(&mut admin)
        .await
        .unwrap()
        .try_get(0)
        .unwrap();
    if ssl != "on" {
        eprintln!("skipping: the test PostgreSQL server has ssl = {ssl}");
        return;
    }
    let sep = if url.contains('?') { '&' } else { '?' };
    let tls_url = format!("{url}{sep}sslmode=require");
    let store = Store::connect(&tls_url, &StoreOptions::default())
        .await
        .expect("connect with sslmode=require");
    store.migrate().await.expect("migrate over TLS");
    // the server sees this store's connections as encrypted
    let encrypted: i64 = sqlx::query(
        "SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
         WHERE a.datname = current_database() AND s.ssl AND a.pid <> pg_backend_pid()",
    )
    .fetch_one(&mut admin)
    .await
    .unwrap()
    .try_get(0)
    .unwrap();
    assert!(encrypted >= 1, "no encrypted connection from the store");
    store.close().await;
}
