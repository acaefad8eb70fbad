//! Bearer-token authentication on `/scim/v2`, the `token` CLI verbs through the real binary,
//! and the real `serve` binary: no secret in its logs, graceful stop on SIGTERM.

use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use reqwest::Method;
use rolecall::auth::Scope;
use serde_json::{json, Value};
use sha2::Digest;

use crate::both;
use crate::helpers::{metric, new_token, Resp, TestApp, USER};

both!(
    missing_or_wrong_token_is_401,
    percent_encoded_paths_need_the_same_token,
    wrong_scope_is_403,
    revoked_token_is_401,
    bearer_scheme_is_case_insensitive,
    operational_endpoints_need_no_token,
    cli_token_life_cycle,
    cli_refuses_bad_input,
);

const BIN: &str = env!("CARGO_BIN_EXE_rolecall");

async fn scim_get(app: &TestApp, token: Option<&str>, headers: &[(&str, &str)]) -> Resp {
    app.request_with(Method::GET, "/scim/v2/Users", None, token, headers)
        .await
}

fn assert_401(r: &Resp) {
    r.assert_scim_error(401, None);
    let challenge = r
        .header("www-authenticate")
        .unwrap_or_else(|| panic!("401 without WWW-Authenticate: {:?}", r.headers));
    assert!(
        challenge.starts_with("Bearer"),
        "WWW-Authenticate: {challenge}"
    );
}

fn hex(n: usize) -> String {
    let mut out = String::new();
    while out.len() < n {
        out.push_str(&uuid::Uuid::new_v4().simple().to_string());
    }
    out.truncate(n);
    out
}

/// The 64-hex secret part of `rc_<id>_<secret>`.
fn secret_part(token: &str) -> &str {
    token.rsplit('_').next().unwrap()
}

/// SHA-256 of the secret part, as stored.
fn stored_hash(token: &str) -> String {
    sha2::Sha256::digest(secret_part(token).as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

async fn missing_or_wrong_token_is_401(app: TestApp) {
    // no Authorization header at all
    let r = scim_get(&app, None, &[]).await;
    assert_401(&r);
    // …and on every SCIM path, known or not, before anything else is looked at
    for path in [
        "/scim/v2/Groups",
        "/scim/v2/ServiceProviderConfig",
        "/scim/v2/Schemas",
        "/scim/v2/Nope",
    ] {
        assert_401(&app.request_with(Method::GET, path, None, None, &[]).await);
    }
    let r = app
        .request_with(
            Method::POST,
            "/scim/v2/Users",
            Some(&json!({"schemas": [USER], "userName": "x@example.com"})),
            None,
            &[],
        )
        .await;
    assert_401(&r);

    let id = &app.token[3..19];
    let wrong = [
        "nope".to_string(),
        String::new(),
        format!("rc_{}_{}", hex(16), hex(64)),
        // the real id with another secret
        format!("rc_{id}_{}", hex(64)),
        // the real secret with another id
        format!("rc_{}_{}", hex(16), secret_part(&app.token)),
        // the real token, altered
        format!("{}0", app.token),
        app.token[..app.token.len() - 1].to_string(),
        app.token.to_uppercase(),
        format!("rc_{id}"),
        format!("rc_{id}_"),
        format!("rc__{}", secret_part(&app.token)),
        secret_part(&app.token).to_string(),
        // SQL in the id position
        "rc_' OR '1'='1_x".to_string(),
    ];
    for t in &wrong {
        let r = scim_get(&app, None, &[("authorization", &format!("Bearer {t}"))]).await;
        assert_401(&r);
    }
    // other schemes, and the token without a scheme
    for value in [
        format!("Basic {}", app.token),
        format!("Token {}", app.token),
        app.token.clone(),
        "Bearer".to_string(),
    ] {
        let r = scim_get(&app, None, &[("authorization", &value)]).await;
        assert_401(&r);
    }
    // a token elsewhere than the Authorization header does not count
    let r = app
        .request_with(
            Method::GET,
            &format!("/scim/v2/Users?access_token={}", app.token),
            None,
            None,
            &[],
        )
        .await;
    assert_401(&r);
    // and the valid token still works after all that
    assert_eq!(scim_get(&app, Some(&app.token), &[]).await.status, 200);

    // A well-formed id this server does not know waits for a read barrier on the change
    // feed (it may be a token another process just created), which concurrent requests
    // share; it is never a database query per request of its own.
    let barriers = "rolecall_feed_barriers_total";
    let catch_ups = "rolecall_feed_catch_ups_total";
    let (b0, c0) = (
        metric(&app, barriers, &[]).await,
        metric(&app, catch_ups, &[]).await,
    );
    let made_up: Vec<String> = (0..32)
        .map(|_| format!("Bearer rc_{}_{}", hex(16), hex(64)))
        .collect();
    let answers = futures_util::future::join_all(
        made_up
            .iter()
            .map(|t| async { scim_get(&app, None, &[("authorization", t.as_str())]).await }),
    )
    .await;
    answers.iter().for_each(assert_401);
    let (b1, c1) = (
        metric(&app, barriers, &[]).await,
        metric(&app, catch_ups, &[]).await,
    );
    assert!(b1 - b0 >= 32.0, "barriers {b0} -> {b1}");
    // paced (a slot every 20 ms) and shared: far fewer feed queries than requests
    assert!(c1 - c0 <= 16.0, "catch-ups {c0} -> {c1} for 32 barriers");
    // one after the other, such requests start at most one catch-up per 20 ms
    let started = std::time::Instant::now();
    for t in made_up.iter().take(10) {
        assert_401(&scim_get(&app, None, &[("authorization", t.as_str())]).await);
    }
    assert!(
        started.elapsed() >= Duration::from_millis(150),
        "10 made-up ids in {:?}",
        started.elapsed()
    );
    // a real token is never paced
    assert_eq!(scim_get(&app, Some(&app.token), &[]).await.status, 200);
}

async fn call(
    app: &TestApp,
    method: &Method,
    path: &str,
    body: Option<&Value>,
    token: Option<&str>,
) -> Resp {
    let url = format!("{}{path}", app.address);
    let body = body.map(|b| ("application/json", b));
    crate::helpers::send(&app.client, url, method.clone(), body, token, &[]).await
}

/// The router matches a path after percent-decoding it; so must the token check, or
/// `/%61dmin/v1/tokens` would reach the admin API with no token at all.
async fn percent_encoded_paths_need_the_same_token(app: TestApp) {
    let admin = new_token(&app.store, "ops", Scope::Admin).await;
    let lookup = new_token(&app.store, "gateway", Scope::Lookup).await;
    let eval = json!({"subject": {"type": "user", "id": "nobody"}, "action": {"name": "messages.create"},
                      "resource": {"type": "workspace", "id": "engineering"}});
    let cases = [
        (Method::GET, "/%61dmin/v1/tokens", None, &admin, false),
        (Method::GET, "/admin/v%31/audit", None, &admin, false),
        (Method::GET, "/%73cim/v2/Users", None, &app.token, true),
        (Method::GET, "/scim/v%32/Users", None, &app.token, true),
        (
            Method::POST,
            "/%61ccess/v1/evaluation",
            Some(&eval),
            &lookup,
            false,
        ),
    ];
    for (method, path, body, token, scim) in cases {
        let none = call(&app, &method, path, body, None).await;
        assert_eq!(
            none.status, 401,
            "{method} {path} without a token: {}",
            none.text
        );
        if scim {
            assert_401(&none);
        }
        let wrong = if token == &admin { &lookup } else { &admin };
        let r = call(&app, &method, path, body, Some(wrong)).await;
        assert_eq!(
            r.status, 403,
            "{method} {path} with the wrong scope: {}",
            r.text
        );
        // the right token gets what the plain path answers
        let ok = call(&app, &method, path, body, Some(token)).await;
        assert_eq!(
            ok.status, 200,
            "{method} {path} with the right token: {}",
            ok.text
        );
    }
}

async fn wrong_scope_is_403(app: TestApp) {
    for (name, scope) in [("gateway", Scope::Lookup), ("ops", Scope::Admin)] {
        let token = new_token(&app.store, name, scope).await;
        let r = scim_get(&app, Some(&token), &[]).await;
        r.assert_scim_error(403, None);
        let detail = r.body["detail"].as_str().unwrap();
        assert!(
            detail.contains(scope.as_str()) && detail.contains("scim"),
            "{detail}"
        );
        let r = app
            .request_with(
                Method::POST,
                "/scim/v2/Users",
                Some(&json!({"schemas": [USER], "userName": "x@example.com"})),
                Some(&token),
                &[],
            )
            .await;
        r.assert_scim_error(403, None);
        let r = app
            .request_with(
                Method::GET,
                "/scim/v2/ServiceProviderConfig",
                None,
                Some(&token),
                &[],
            )
            .await;
        r.assert_scim_error(403, None);
    }
    // nothing was created by the refused POSTs
    let r = app.get("/scim/v2/Users?count=0").await;
    assert_eq!(r.body["totalResults"], 0);
}

async fn revoked_token_is_401(app: TestApp) {
    let token = new_token(&app.store, "temporary", Scope::Scim).await;
    assert_eq!(scim_get(&app, Some(&token), &[]).await.status, 200);
    app.store
        .revoke_token("temporary", &rolecall::store::Actor::cli())
        .await
        .unwrap();
    assert_401(&scim_get(&app, Some(&token), &[]).await);
    // the other token is untouched
    assert_eq!(scim_get(&app, Some(&app.token), &[]).await.status, 200);
    // a new token under the revoked name is a new secret; the old one stays dead
    let again = new_token(&app.store, "temporary", Scope::Scim).await;
    assert_ne!(again, token);
    assert_eq!(scim_get(&app, Some(&again), &[]).await.status, 200);
    assert_401(&scim_get(&app, Some(&token), &[]).await);
}

async fn bearer_scheme_is_case_insensitive(app: TestApp) {
    for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
        let value = format!("{scheme} {}", app.token);
        let r = scim_get(&app, None, &[("authorization", &value)]).await;
        assert_eq!(r.status, 200, "{scheme}: {}", r.text);
    }
}

async fn operational_endpoints_need_no_token(app: TestApp) {
    for path in ["/healthz", "/readyz", "/metrics"] {
        let r = app.request_with(Method::GET, path, None, None, &[]).await;
        assert_eq!(r.status, 200, "{path}: {}", r.text);
        assert!(r.header("www-authenticate").is_none());
        // a bad token is ignored there, not refused
        let r = app
            .request_with(Method::GET, path, None, Some("nope"), &[])
            .await;
        assert_eq!(r.status, 200, "{path}: {}", r.text);
    }
    let r = app
        .request_with(Method::GET, "/healthz", None, None, &[])
        .await;
    assert_eq!(r.body["status"], "ok");
    let r = app
        .request_with(Method::GET, "/readyz", None, None, &[])
        .await;
    assert_eq!(r.body["status"], "ready");
}

// ---- the CLI, through the real binary ----

enum Db<'a> {
    /// `--database-url URL`
    Flag(&'a str),
    /// `DATABASE_URL=URL`
    Env(&'a str),
    /// `ROLECALL_DATABASE_URL=URL`
    RolecallEnv(&'a str),
}

fn rolecall(db: &Db<'_>) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.env_remove("ROLECALL_DATABASE_URL")
        .env_remove("DATABASE_URL")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null());
    match db {
        Db::Flag(url) => {
            cmd.args(["--database-url", url]);
        }
        Db::Env(url) => {
            cmd.env("DATABASE_URL", url);
        }
        Db::RolecallEnv(url) => {
            cmd.env("ROLECALL_DATABASE_URL", url);
        }
    }
    cmd
}

/// Runs the CLI off the async runtime.
async fn cli(db: Db<'_>, args: &[&str]) -> Output {
    let mut cmd = rolecall(&db);
    cmd.args(args);
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .unwrap()
        .expect("run rolecall");
    eprintln!(
        "rolecall {args:?}: {}\n--- stdout\n{}--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).unwrap()
}

/// A new token made by `rolecall token create` on `db`: its secret.
async fn created_token(db: &str, scope: &str, name: &str) -> String {
    printed_secret(
        &cli(
            Db::Flag(db),
            &["token", "create", "--scope", scope, "--name", name],
        )
        .await,
    )
}

/// The secret printed by `token create`: alone on the last line of stdout.
fn printed_secret(o: &Output) -> String {
    assert!(o.status.success(), "token create failed: {}", stderr(o));
    let out = stdout(o);
    let last = out.lines().last().expect("no output").to_string();
    assert_eq!(last.len(), 3 + 16 + 1 + 64, "last line: {last:?}");
    let (id, secret) = last
        .strip_prefix("rc_")
        .and_then(|r| r.split_once('_'))
        .unwrap_or_else(|| panic!("not a token: {last:?}"));
    assert!(
        id.len() == 16 && id.bytes().all(|b| b.is_ascii_hexdigit()),
        "{last}"
    );
    assert!(
        secret.len() == 64 && secret.bytes().all(|b| b.is_ascii_hexdigit()),
        "{last}"
    );
    last
}

async fn cli_token_life_cycle(app: TestApp) {
    let url = app.database_url.as_str();
    let created = cli(
        Db::Flag(url),
        &["token", "create", "--scope", "scim", "--name", "okta2"],
    )
    .await;
    let secret = printed_secret(&created);
    assert!(
        !stderr(&created).contains(secret_part(&secret)),
        "the secret belongs on stdout only"
    );
    // the secret works against the running server
    let r = scim_get(&app, Some(&secret), &[]).await;
    assert_eq!(r.status, 200, "{}", r.text);

    // other scopes: valid tokens, refused on /scim/v2
    let lookup = printed_secret(
        &cli(
            Db::Flag(url),
            &["token", "create", "--name", "gw", "--scope", "lookup"],
        )
        .await,
    );
    scim_get(&app, Some(&lookup), &[])
        .await
        .assert_scim_error(403, None);

    // list: names and scopes, never a secret or its hash; --database-url after the verb works
    let listed = cli(Db::Flag(url), &["token", "list"]).await;
    assert!(listed.status.success(), "{}", stderr(&listed));
    let out = stdout(&listed);
    let line = |name: &str| -> Vec<String> {
        out.lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("{name} not listed:\n{out}"))
            .split_whitespace()
            .map(str::to_owned)
            .collect()
    };
    assert_eq!(line("okta2")[1], "scim");
    assert_eq!(line("gw")[1], "lookup");
    assert_eq!(line("okta")[1], "scim", "the harness's token");
    for token in [&secret, &lookup, &app.token] {
        assert!(
            !out.contains(secret_part(token)),
            "a secret is listed:\n{out}"
        );
        assert!(
            !out.contains(&stored_hash(token)),
            "a hash is listed:\n{out}"
        );
    }
    let after_verb = cli(
        Db::Env("sqlite:///nonexistent/dir/x.db"),
        &["token", "list", "--database-url", url],
    )
    .await;
    assert!(after_verb.status.success(), "{}", stderr(&after_verb));
    assert_eq!(
        stdout(&after_verb),
        out,
        "--database-url wins over DATABASE_URL"
    );

    // DATABASE_URL and ROLECALL_DATABASE_URL in place of --database-url
    for db in [Db::Env(url), Db::RolecallEnv(url)] {
        let o = cli(db, &["token", "list"]).await;
        assert!(o.status.success(), "{}", stderr(&o));
        assert_eq!(stdout(&o), out);
    }
    let via_env = cli(
        Db::Env(url),
        &["token", "create", "--scope", "scim", "--name", "entra"],
    )
    .await;
    let entra = printed_secret(&via_env);
    assert_eq!(scim_get(&app, Some(&entra), &[]).await.status, 200);

    // revoke from another process: the running server follows the change feed (polled every
    // 200 ms), so the secret fails within a second; the others keep working
    let revoked = cli(Db::Flag(url), &["token", "revoke", "okta2"]).await;
    assert!(revoked.status.success(), "{}", stderr(&revoked));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1);
    let r = loop {
        let r = scim_get(&app, Some(&secret), &[]).await;
        if r.status == 401 || std::time::Instant::now() > deadline {
            break r;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert_401(&r);
    assert_eq!(scim_get(&app, Some(&entra), &[]).await.status, 200);
    assert_eq!(scim_get(&app, Some(&app.token), &[]).await.status, 200);
    let listed = stdout(&cli(Db::Flag(url), &["token", "list"]).await);
    assert!(!listed.lines().any(|l| l.starts_with("okta2 ")), "{listed}");
    // revoking it again: it is gone
    let again = cli(Db::Flag(url), &["token", "revoke", "okta2"]).await;
    assert!(!again.status.success());
    assert!(stderr(&again).contains("okta2"), "{}", stderr(&again));
}

async fn cli_refuses_bad_input(app: TestApp) {
    let url = app.database_url.as_str();
    let before = stdout(&cli(Db::Flag(url), &["token", "list"]).await);

    // revoking an unknown name
    let o = cli(Db::Flag(url), &["token", "revoke", "no-such-token"]).await;
    assert!(!o.status.success());
    assert!(stderr(&o).contains("no-such-token"), "{}", stderr(&o));

    // an existing name: refused, and the existing token keeps working
    let o = cli(
        Db::Flag(url),
        &["token", "create", "--scope", "scim", "--name", "okta"],
    )
    .await;
    assert!(!o.status.success());
    assert!(stderr(&o).contains("okta"), "{}", stderr(&o));
    assert!(
        !stdout(&o).lines().any(|l| l.starts_with("rc_")),
        "a secret was printed for a token that was not created: {}",
        stdout(&o)
    );
    assert_eq!(scim_get(&app, Some(&app.token), &[]).await.status, 200);

    // an unknown scope, a missing scope, a missing name
    for args in [
        &["token", "create", "--scope", "root", "--name", "x"][..],
        &["token", "create", "--scope", "SCIM", "--name", "x"][..],
        &["token", "create", "--name", "x"][..],
        &["token", "create", "--scope", "scim"][..],
    ] {
        let o = cli(Db::Flag(url), args).await;
        assert!(!o.status.success(), "{args:?} succeeded");
        assert!(
            !stdout(&o).lines().any(|l| l.starts_with("rc_")),
            "{args:?} printed a secret"
        );
    }
    let o = cli(
        Db::Flag(url),
        &["token", "create", "--scope", "root", "--name", "x"],
    )
    .await;
    assert!(stderr(&o).contains("root"), "{}", stderr(&o));

    // nothing was created by any of that
    assert_eq!(
        stdout(&cli(Db::Flag(url), &["token", "list"]).await),
        before
    );
}

// ---- the real server binary ----

/// `rolecall serve` on a free port, its stdout and stderr in a file.
struct Served {
    child: Child,
    address: String,
    log: PathBuf,
}

impl Served {
    async fn start(dir: &Path, db: &str, rust_log: Option<&str>) -> Self {
        Self::start_with(dir, db, rust_log, &[]).await
    }

    async fn start_with(dir: &Path, db: &str, rust_log: Option<&str>, extra: &[&str]) -> Self {
        // bind port 0 to find a free port, then hand the port to the server
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = dir.join("server.log");
        let file = File::create(&log).unwrap();
        let mut cmd = rolecall(&Db::Flag(db));
        cmd.args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--log-format",
            "json",
            "--workers",
            "1",
        ])
        .args(extra)
        .stdout(Stdio::from(file.try_clone().unwrap()))
        .stderr(Stdio::from(file));
        if let Some(filter) = rust_log {
            cmd.env("RUST_LOG", filter);
        }
        let mut served = Served {
            child: cmd.spawn().expect("start rolecall serve"),
            address: format!("http://127.0.0.1:{port}"),
            log,
        };
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = client
                .get(format!("{}/healthz", served.address))
                .send()
                .await
            {
                if r.status() == 200 {
                    break;
                }
            }
            if let Some(status) = served.child.try_wait().unwrap() {
                panic!(
                    "rolecall serve exited with {status}:\n{}",
                    served.log_text()
                );
            }
            assert!(Instant::now() < deadline, "the server did not come up");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        served
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap()
    }

    fn signal(&self, name: &str) {
        let killed = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(killed.success());
    }

    /// SIGTERM, then wait (at most `limit`) for the process to exit.
    async fn terminate(&mut self, limit: Duration) -> std::process::ExitStatus {
        self.signal("TERM");
        self.wait_exit(limit).await
    }

    /// Wait (at most `limit`) for the process to exit.
    async fn wait_exit(&mut self, limit: Duration) -> std::process::ExitStatus {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                eprintln!("rolecall serve stopped in {:?}", started.elapsed());
                return status;
            }
            if started.elapsed() > limit {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "rolecall serve did not stop within {limit:?} of the signal:\n{}",
                    self.log_text()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

async fn send(
    client: &reqwest::Client,
    method: Method,
    url: String,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, String) {
    let mut req = client.request(method, url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req
            .header("content-type", "application/scim+json")
            .body(b.to_string());
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let rid = r
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    (status, rid)
}

/// The logs of a real server at `RUST_LOG=debug` carry the requests, but no secret and no
/// secret's hash: not the valid token's, not a wrong one's, not one sent in a query string.
/// SIGTERM stops the server gracefully within a few seconds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_in_the_logs_and_graceful_stop() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/rolecall.db", dir.path().display());
    let token = created_token(&db, "scim", "okta").await;
    let other = created_token(&db, "scim", "other").await;
    let mut server = Served::start(dir.path(), &db, Some("debug")).await;
    let base = server.address.clone();
    let users = format!("{base}/scim/v2/Users");
    let wrong_secret = format!("rc_{}_{}", &token[3..19], hex(64));
    let unknown = format!("rc_{}_{}", hex(16), hex(64));
    let mut ok_ids = Vec::new();
    {
        let client = reqwest::Client::new();
        let user = json!({"schemas": [USER], "userName": "alice@example.com"});
        let (s, rid) = send(
            &client,
            Method::POST,
            users.clone(),
            Some(&token),
            Some(user),
        )
        .await;
        assert_eq!(s, 201);
        ok_ids.push(rid);
        let (s, rid) = send(&client, Method::GET, users.clone(), Some(&token), None).await;
        assert_eq!(s, 200);
        ok_ids.push(rid);
        for wrong in [&wrong_secret, &unknown, &"nope".to_string()] {
            let (s, _) = send(&client, Method::GET, users.clone(), Some(wrong), None).await;
            assert_eq!(s, 401);
        }
        // a client putting its token in the query string
        let (s, _) = send(
            &client,
            Method::GET,
            format!("{users}?access_token={other}"),
            None,
            None,
        )
        .await;
        assert_eq!(s, 401);
        let (s, _) = send(
            &client,
            Method::GET,
            format!("{base}/scim/v2/Groups?token={other}"),
            None,
            None,
        )
        .await;
        assert_eq!(s, 401);
        // the client (and its keep-alive connections) goes away before the stop
    }
    let status = server.terminate(Duration::from_secs(5)).await;
    assert!(status.success(), "exit status after SIGTERM: {status}");

    let log = server.log_text();
    assert!(log.contains("shutting down"), "{log}");
    // request lines: the requests' ids and paths appear
    for rid in &ok_ids {
        assert!(!rid.is_empty());
        assert!(
            log.contains(rid.as_str()),
            "request {rid} is not in the log:\n{log}"
        );
    }
    assert!(log.contains("/scim/v2/Users"), "{log}");
    for (what, t) in [
        ("valid token", &token),
        ("query-string token", &other),
        ("wrong secret", &wrong_secret),
        ("unknown token", &unknown),
    ] {
        assert!(!log.contains(t.as_str()), "the {what} is in the log");
        assert!(
            !log.contains(secret_part(t)),
            "the {what}'s secret is in the log"
        );
        assert!(
            !log.contains(&stored_hash(t)),
            "the {what}'s hash is in the log"
        );
    }
    // every line is JSON
    for line in log.lines().filter(|l| !l.trim().is_empty()) {
        assert!(
            serde_json::from_str::<Value>(line).is_ok(),
            "not a JSON log line: {line}"
        );
    }
}

/// SIGTERM stops gracefully: a request still being received holds the stop (up to
/// `--shutdown-timeout`); a second signal ends the process at once, with a failure status.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_signal_stops_at_once() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/rolecall.db", dir.path().display());
    let token = created_token(&db, "scim", "okta").await;
    let mut server =
        Served::start_with(dir.path(), &db, None, &["--shutdown-timeout", "120"]).await;
    // a POST whose body is announced but never finished: in flight until the client goes
    let mut slow = tokio::net::TcpStream::connect(server.address.trim_start_matches("http://"))
        .await
        .unwrap();
    let head = format!(
        "POST /scim/v2/Users HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/scim+json\r\nContent-Length: 1000\r\n\r\n{{\"userName\":"
    );
    slow.write_all(head.as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;

    server.signal("TERM");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        server.child.try_wait().unwrap().is_none(),
        "the graceful stop did not wait for the request in flight:\n{}",
        server.log_text()
    );
    server.signal("TERM");
    let status = server.wait_exit(Duration::from_secs(10)).await;
    assert!(
        !status.success(),
        "exit status after a forced stop: {status}"
    );
    let log = server.log_text();
    assert!(log.contains("second signal"), "{log}");
    // the connection of the request in flight is closed with the process
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(5), slow.read_to_end(&mut rest)).await;
    assert!(closed.is_ok(), "the connection is still open");
}

/// Found by an audit: `/readyz` once opened the SQLite file to see that it could be written.
/// Closing that descriptor dropped every POSIX lock the server held on the file, SQLite's
/// included, so the next CLI verb run beside the server took itself for the last connection,
/// checkpointed and deleted the write-ahead log the server was still writing to: writes
/// acknowledged after that were lost at the next restart. The log must outlive the CLI.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_and_the_cli_beside_a_sqlite_server_keep_its_log() {
    let app = crate::helpers::spawn_app(crate::helpers::Backend::Sqlite)
        .await
        .expect("SQLite is always there");
    let wal = format!("{}-wal", app.database_url.trim_start_matches("sqlite://"));
    app.create_user("before@example.com").await;
    for round in 0..5 {
        for _ in 0..3 {
            let r = app
                .request_with(Method::GET, "/readyz", None, None, &[])
                .await;
            assert_eq!(r.status, 200, "{}", r.text);
        }
        let o = cli(Db::Flag(&app.database_url), &["token", "list"]).await;
        assert!(o.status.success(), "{}", stderr(&o));
        assert!(
            Path::new(&wal).exists(),
            "round {round}: the CLI deleted the server's write-ahead log"
        );
        app.create_user(&format!("r{round}@example.com")).await;
    }
    let r = app.get("/scim/v2/Users?count=0").await;
    assert_eq!(r.body["totalResults"], 6);
}

/// A body announced and then sent slowly (or never) is cut off `--body-timeout` after the
/// request started: 408 in the error form of the path, and the connection is closed. A body
/// that arrives in time is unaffected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_does_not_arrive_in_time_is_408() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/rolecall.db", dir.path().display());
    let scim = created_token(&db, "scim", "okta").await;
    let lookup = created_token(&db, "lookup", "gateway").await;
    let server = Served::start_with(dir.path(), &db, None, &["--body-timeout", "1"]).await;
    let addr = server.address.trim_start_matches("http://").to_string();

    for (path, token, content_type, scim_form) in [
        ("/scim/v2/Users", &scim, "application/scim+json", true),
        ("/access/v1/evaluation", &lookup, "application/json", false),
    ] {
        let mut conn = tokio::net::TcpStream::connect(&addr).await.unwrap();
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\
             Content-Type: {content_type}\r\nContent-Length: 200\r\n\r\n{{\"a\":"
        );
        conn.write_all(head.as_bytes()).await.unwrap();
        let started = Instant::now();
        // a byte now and then, never the whole body
        let mut answer = Vec::new();
        let mut buf = [0u8; 4096];
        let read = async {
            loop {
                tokio::select! {
                    n = conn.read(&mut buf) => {
                        let n = n.unwrap_or(0);
                        if n == 0 { break; }
                        answer.extend_from_slice(&buf[..n]);
                    }
                    () = tokio::time::sleep(Duration::from_millis(300)) => {
                        let _ = conn.write_all(b" ").await;
                    }
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(10), read)
            .await
            .expect("the server neither answered nor closed the connection");
        let took = started.elapsed();
        let text = String::from_utf8_lossy(&answer).to_string();
        assert!(text.starts_with("HTTP/1.1 408"), "{path}: {text}");
        assert!(took >= Duration::from_millis(900), "{path}: after {took:?}");
        assert!(text.contains("--body-timeout"), "{path}: {text}");
        if scim_form {
            assert!(
                text.contains("urn:ietf:params:scim:api:messages:2.0:Error"),
                "{text}"
            );
            assert!(text.contains("\"status\":\"408\""), "{text}");
        } else {
            assert!(text.contains("application/problem+json"), "{text}");
        }
    }
    // a body that comes in time (in pieces) is read as always
    let mut conn = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let body = json!({"schemas": [USER], "userName": "slow-but-fine@example.com"}).to_string();
    let head = format!(
        "POST /scim/v2/Users HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {scim}\r\n\
         Content-Type: application/scim+json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    conn.write_all(head.as_bytes()).await.unwrap();
    let (first, second) = body.split_at(10);
    conn.write_all(first.as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    conn.write_all(second.as_bytes()).await.unwrap();
    let mut answer = String::new();
    conn.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
}

/// An address in use is found before the database is touched: `serve` fails at once and
/// creates no database file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_address_in_use_fails_before_the_database_is_opened() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rolecall.db");
    let db = format!("sqlite://{}", path.display());
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let o = cli(Db::Flag(&db), &["serve", "--listen", &address]).await;
    assert!(!o.status.success());
    assert!(stderr(&o).contains("cannot listen on"), "{}", stderr(&o));
    assert!(
        !path.exists(),
        "the database was created (and migrated) before the address was checked"
    );
}

/// The README: "Every response carries an X-Request-Id header, also in the request's log
/// line." At the default log level every request, refused or not, has a log line with its
/// request id and its status.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]

async fn every_request_has_a_log_line() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/rolecall.db", dir.path().display());
    let token = created_token(&db, "scim", "okta").await;
    let mut server = Served::start(dir.path(), &db, None).await;
    let client = reqwest::Client::new();
    let base = server.address.clone();
    let mut seen = Vec::new();
    for (url, token, want) in [
        (format!("{base}/scim/v2/Users"), Some(token.as_str()), 200),
        (format!("{base}/scim/v2/Users"), None, 401),
        (format!("{base}/scim/v2/Nope"), Some(token.as_str()), 404),
        (format!("{base}/healthz"), None, 200),
    ] {
        let (s, rid) = send(&client, Method::GET, url, token, None).await;
        assert_eq!(s, want);
        seen.push((rid, want));
    }
    drop(client);
    server.terminate(Duration::from_secs(5)).await;
    let log = server.log_text();
    for (rid, status) in seen {
        let line = log
            .lines()
            .find(|l| l.contains(&rid))
            .unwrap_or_else(|| panic!("no log line for request {rid}:\n{log}"));
        assert!(line.contains(&status.to_string()), "{line}");
    }
}
