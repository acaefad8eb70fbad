//! Test harness: the real server on a random port with a fresh database per test, on
//! SQLite (a temp file) or PostgreSQL (a new database on the server named by
//! `ROLECALL_TEST_PG_URL`, default `postgres://postgres@127.0.0.1:5432/postgres`).
//! Without PostgreSQL the PostgreSQL variants are skipped, except under `CI=true`,
//! where they fail.

use std::sync::Once;

use reqwest::{Method, StatusCode};
use rolecall::auth::{self, Scope};
use rolecall::config::{LogFormat, Settings};
use rolecall::startup::{self, Application};
use rolecall::store::Store;
use serde_json::Value;
use sqlx::Connection;
use tokio::sync::oneshot;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    /// A token of scope `scim`.
    pub token: String,
    pub store: Store,
    pub database_url: String,
    pub backend: Backend,
    _dir: tempfile::TempDir,
    _stop: oneshot::Sender<()>,
}

pub fn pg_base_url() -> String {
    std::env::var("ROLECALL_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

fn replace_db(url: &str, db: &str) -> String {
    let (head, tail) = match url.split_once('?') {
        Some((h, t)) => (h, format!("?{t}")),
        None => (url, String::new()),
    };
    let base = head.rsplit_once('/').map_or(head, |(b, _)| b);
    format!("{base}/{db}{tail}")
}

/// A fresh database URL for `backend`, or None when PostgreSQL is unavailable outside CI.
pub async fn fresh_database(backend: Backend, dir: &tempfile::TempDir) -> Option<String> {
    match backend {
        Backend::Sqlite => Some(format!("sqlite://{}/rolecall.db", dir.path().display())),
        Backend::Postgres => {
            sqlx::any::install_default_drivers();
            let base = pg_base_url();
            let mut conn = match sqlx::AnyConnection::connect(&base).await {
                Ok(c) => c,
                Err(e) => {
                    if std::env::var("CI").is_ok_and(|v| v == "true") {
                        panic!("PostgreSQL at {base} is unreachable under CI=true: {e}");
                    }
                    eprintln!("skipping PostgreSQL variant: {base} unreachable ({e})");
                    return None;
                }
            };
            let name = format!("rolecall_test_{}", uuid::Uuid::new_v4().simple());
            sqlx::query(&format!("CREATE DATABASE {name}"))
                .execute(&mut conn)
                .await
                .expect("create test database");
            Some(replace_db(&base, &name))
        }
    }
}

static TRACING: Once = Once::new();

pub async fn spawn_app(backend: Backend) -> Option<TestApp> {
    spawn_app_with(backend, |_| {}).await
}

/// [`spawn_app`] with settings changed by `tweak` (after the test defaults).
pub async fn spawn_app_with(
    backend: Backend,
    tweak: impl FnOnce(&mut Settings),
) -> Option<TestApp> {
    TRACING.call_once(|| {
        if std::env::var("TEST_LOG").is_ok() {
            rolecall::telemetry::init(LogFormat::Text);
        }
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let database_url = fresh_database(backend, &dir).await?;
    let (address, store, stop) = start_server_with(&database_url, false, tweak)
        .await
        .expect("build app");
    let token = new_token(&store, "okta", Scope::Scim).await;
    Some(TestApp {
        address,
        client: reqwest::Client::new(),
        token,
        store,
        database_url,
        backend,
        _dir: dir,
        _stop: stop,
    })
}

/// A server on `database_url` with its own store: its address, the store, and the sender
/// that stops it when dropped.
async fn start_server(database_url: &str) -> (String, Store, oneshot::Sender<()>) {
    try_start_server(database_url, false)
        .await
        .expect("build app")
}

/// [`start_server`], as a `--sole-server` when `sole`; the error when it does not start.
pub async fn try_start_server(
    database_url: &str,
    sole: bool,
) -> anyhow::Result<(String, Store, oneshot::Sender<()>)> {
    start_server_with(database_url, sole, |_| {}).await
}

/// [`try_start_server`] with settings changed by `tweak`.
async fn start_server_with(
    database_url: &str,
    sole: bool,
    tweak: impl FnOnce(&mut Settings),
) -> anyhow::Result<(String, Store, oneshot::Sender<()>)> {
    let mut settings = Settings {
        listen: "127.0.0.1:0".into(),
        database_url: database_url.to_string(),
        workers: 1,
        max_page_size: 50,
        db_max_connections: 4,
        sole_server: sole,
        ..Settings::default()
    };
    tweak(&mut settings);
    let store = startup::connect(&settings).await.expect("connect");
    let app = Application::build_with_store(settings, store.clone()).await?;
    let address = format!("http://127.0.0.1:{}", app.port());
    let (tx, rx) = oneshot::channel::<()>();
    tokio::spawn(app.run_until_stopped(async move {
        let _ = rx.await;
    }));
    Ok((address, store, tx))
}

impl TestApp {
    /// A test app over a server already started (see [`try_start_server`]).
    pub fn from_parts(
        address: String,
        token: String,
        store: Store,
        database_url: &str,
        backend: Backend,
        stop: oneshot::Sender<()>,
    ) -> TestApp {
        TestApp {
            address,
            client: reqwest::Client::new(),
            token,
            store,
            database_url: database_url.to_string(),
            backend,
            _dir: tempfile::tempdir().expect("tempdir"),
            _stop: stop,
        }
    }

    /// Another server on this app's database (PostgreSQL: SQLite refuses a second server),
    /// with the same token.
    pub async fn peer(&self) -> TestApp {
        let (address, store, stop) = start_server(&self.database_url).await;
        TestApp {
            address,
            client: reqwest::Client::new(),
            token: self.token.clone(),
            store,
            database_url: self.database_url.clone(),
            backend: self.backend,
            _dir: tempfile::tempdir().expect("tempdir"),
            _stop: stop,
        }
    }
}

pub async fn new_token(store: &Store, name: &str, scope: Scope) -> String {
    let (row, secret) = auth::generate(name, scope).expect("generate token");
    store
        .create_token(&row, &rolecall::store::Actor::cli())
        .await
        .expect("store token");
    secret
}

pub struct Resp {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
    /// Asserts an error body in SCIM form with this status.
    pub fn assert_scim_error(&self, status: u16, scim_type: Option<&str>) {
        assert_eq!(self.status.as_u16(), status, "body: {}", self.text);
        assert_eq!(
            self.header("content-type"),
            Some("application/scim+json"),
            "{}",
            self.text
        );
        assert_eq!(
            self.body["schemas"][0], "urn:ietf:params:scim:api:messages:2.0:Error",
            "{}",
            self.text
        );
        assert_eq!(self.body["status"], status.to_string(), "{}", self.text);
        match scim_type {
            Some(t) => assert_eq!(self.body["scimType"], t, "{}", self.text),
            None => assert!(self.body.get("scimType").is_none(), "{}", self.text),
        }
        assert!(self.body["detail"].as_str().is_some_and(|d| !d.is_empty()));
    }
}

/// One HTTP request: an optional `(content type, JSON body)`, bearer token and extra headers.
pub async fn send(
    client: &reqwest::Client,
    url: String,
    method: Method,
    body: Option<(&str, &Value)>,
    token: Option<&str>,
    headers: &[(&str, &str)],
) -> Resp {
    let mut req = client.request(method, url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some((content_type, b)) = body {
        req = req.header("content-type", content_type).body(b.to_string());
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let res = req.send().await.expect("request");
    let status = res.status();
    let headers = res.headers().clone();
    let text = res.text().await.expect("body");
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    Resp {
        status,
        headers,
        body,
        text,
    }
}

pub const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
pub const GROUP: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
pub const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

impl TestApp {
    pub async fn request(&self, method: Method, path: &str, body: Option<&Value>) -> Resp {
        self.request_with(method, path, body, Some(&self.token), &[])
            .await
    }

    pub async fn request_with(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        token: Option<&str>,
        headers: &[(&str, &str)],
    ) -> Resp {
        let url = format!("{}{path}", self.address);
        let body = body.map(|b| ("application/scim+json", b));
        send(&self.client, url, method, body, token, headers).await
    }

    pub async fn get(&self, path: &str) -> Resp {
        self.request(Method::GET, path, None).await
    }
    pub async fn post(&self, path: &str, body: &Value) -> Resp {
        self.request(Method::POST, path, Some(body)).await
    }
    pub async fn put(&self, path: &str, body: &Value) -> Resp {
        self.request(Method::PUT, path, Some(body)).await
    }
    pub async fn patch(&self, path: &str, body: &Value) -> Resp {
        self.request(Method::PATCH, path, Some(body)).await
    }
    pub async fn delete(&self, path: &str) -> Resp {
        self.request(Method::DELETE, path, None).await
    }

    /// Create a user and return its id.
    pub async fn create_user(&self, user_name: &str) -> String {
        let r = self
            .post(
                "/scim/v2/Users",
                &serde_json::json!({"schemas": [USER], "userName": user_name, "active": true}),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
        r.body["id"].as_str().expect("id").to_string()
    }

    /// Create a group with these member ids and return its id.
    pub async fn create_group(&self, name: &str, members: &[&str]) -> String {
        let members: Vec<Value> = members
            .iter()
            .map(|m| serde_json::json!({"value": m}))
            .collect();
        let r = self
            .post(
                "/scim/v2/Groups",
                &serde_json::json!({"schemas": [GROUP], "displayName": name, "members": members}),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
        r.body["id"].as_str().expect("id").to_string()
    }
}

/// The value of the `/metrics` series `name` whose labels include every `(label, value)`
/// of `labels` (0 when there is none yet).
pub async fn metric(app: &TestApp, name: &str, labels: &[(&str, &str)]) -> f64 {
    let r = send(
        &app.client,
        format!("{}/metrics", app.address),
        Method::GET,
        None,
        None,
        &[],
    )
    .await;
    assert_eq!(r.status, 200);
    let (prefix, bare) = (format!("{name}{{"), format!("{name} "));
    let wanted: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
    r.text
        .lines()
        .filter(|l| l.starts_with(&prefix) || l.starts_with(&bare))
        .find(|l| wanted.iter().all(|w| l.contains(w.as_str())))
        .and_then(|l| l.rsplit(' ').next())
        .map_or(0.0, |v| v.parse().unwrap())
}

/// Every test runs against both back-ends: `both!(name)` turns `async fn name(app: TestApp)`
/// into `name::sqlite` and `name::postgres` tests.
#[macro_export]
macro_rules! both {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test]
            async fn sqlite() {
                if let Some(app) = $crate::helpers::spawn_app($crate::helpers::Backend::Sqlite).await {
                    super::$name(app).await;
                }
            }
            #[tokio::test]
            async fn postgres() {
                if let Some(app) = $crate::helpers::spawn_app($crate::helpers::Backend::Postgres).await {
                    super::$name(app).await;
                }
            }
        }
    )*};
}
