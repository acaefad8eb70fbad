//! The role features end to end over HTTP: a small mapping applied through the admin API,
//! users and groups provisioned through SCIM, then the gateway API (role lookups, AuthZEN
//! evaluation, signed role tokens), scope checks, and consistency across processes (a second
//! server on the same PostgreSQL database, `rolecall mappings apply` from the command line).
//!
//! The helpers here (`Server`, the story set-up, the CLI runner) are shared with `admin.rs`.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use jsonwebtoken::{decode, decode_header, Algorithm, DecodingKey, Validation};
use reqwest::Method;
use rolecall::auth::Scope;
use rolecall::config::Settings;
use rolecall::startup::{connect, Application};
use rolecall::store::Store;
use serde_json::{json, Value};
use tokio::sync::oneshot;

use crate::both;
use crate::helpers::{fresh_database, new_token, Backend, Resp, TestApp, GROUP, PATCH_OP, USER};

both!(
    lookup_answers,
    lookup_etag_and_304,
    membership_changes_show_on_the_next_lookup,
    nested_groups_count,
    deactivation_and_deletion,
    evaluation_decisions,
    evaluation_refuses_malformed_requests,
    evaluation_batches,
    authzen_configuration_is_public,
    signed_role_tokens_and_key_rotation,
    scope_checks,
    cli_apply_reaches_a_running_server,
    renames_and_unusual_user_names,
    default_role_for_unmapped_users,
    project_and_organization_resources,
    user_paths_matched_by_hand,
    evaluation_shapes_agree_with_the_batch_path,
    evaluation_reads_its_body_as_the_batch_endpoint_does,
);

pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_rolecall");

// ---------------------------------------------------------------------------------------------
// HTTP helpers

/// A server to talk to: its address and a client. Bodies are sent as `application/json`.
#[derive(Clone)]
pub(crate) struct Server {
    pub address: String,
    pub client: reqwest::Client,
}

impl Server {
    pub fn of(app: &TestApp) -> Self {
        Server {
            address: app.address.clone(),
            client: app.client.clone(),
        }
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        token: Option<&str>,
        headers: &[(&str, &str)],
    ) -> Resp {
        let url = format!("{}{path}", self.address);
        let body = body.map(|b| ("application/json", b));
        crate::helpers::send(&self.client, url, method, body, token, headers).await
    }

    pub async fn get(&self, path: &str, token: &str) -> Resp {
        self.call(Method::GET, path, None, Some(token), &[]).await
    }

    pub async fn post(&self, path: &str, body: &Value, token: &str) -> Resp {
        self.call(Method::POST, path, Some(body), Some(token), &[])
            .await
    }

    pub async fn patch(&self, path: &str, body: &Value, token: &str) -> Resp {
        self.call(Method::PATCH, path, Some(body), Some(token), &[])
            .await
    }

    pub async fn delete(&self, path: &str, token: &str) -> Resp {
        self.call(Method::DELETE, path, None, Some(token), &[])
            .await
    }

    /// `GET /v1/users/{user}/roles{query}` with a lookup token.
    pub async fn roles(&self, lookup: &str, user: &str, query: &str) -> Resp {
        self.get(&format!("/v1/users/{user}/roles{query}"), lookup)
            .await
    }

    /// `POST /access/v1/evaluation`.
    pub async fn evaluate(&self, lookup: &str, req: &Value) -> Resp {
        self.post("/access/v1/evaluation", req, lookup).await
    }
}

/// Asserts a JSON problem body (RFC 9457) with this status.
pub(crate) fn assert_problem(r: &Resp, status: u16) {
    assert_eq!(r.status.as_u16(), status, "body: {}", r.text);
    assert_eq!(
        r.header("content-type"),
        Some("application/problem+json"),
        "{}",
        r.text
    );
    assert_eq!(r.body["status"], status, "{}", r.text);
    assert!(
        r.body["detail"].as_str().is_some_and(|d| !d.is_empty()),
        "{}",
        r.text
    );
}

/// The mapping used throughout: three roles, two workspaces, three rules.
pub(crate) fn small_mapping() -> Value {
    json!({
        "roles": {
            "admin": {
                "rank": 80,
                "description": "Manage members; every model",
                "permissions": ["messages.create", "chats.read", "members.manage"],
                "models": ["claude-haiku-*", "claude-sonnet-*", "claude-opus-*"],
                "max_tokens": 8192,
                "rpm": 200
            },
            "member": {
                "rank": 40,
                "description": "Send prompts to haiku",
                "permissions": ["messages.create", "chats.read"],
                "models": ["claude-haiku-*"],
                "max_tokens": 512,
                "rpm": 10
            },
            "viewer": {
                "rank": 20,
                "description": "Read chats",
                "permissions": ["chats.read"],
                "models": []
            }
        },
        "workspaces": [
            {"name": "engineering", "projects": []},
            {"name": "legal", "projects": ["contracts", "litigation"]}
        ],
        "rules": [
            {"group": "claude-admin", "role": "admin"},
            {"group": "engineering", "role": "member", "workspace": "engineering"},
            {"group": "legal", "role": "viewer", "workspace": "legal", "project": "contracts"}
        ]
    })
}

/// The member role's policy as the lookup reports it.
fn member_policy() -> Value {
    json!({
        "rank": 40,
        "description": "Send prompts to haiku",
        "permissions": ["messages.create", "chats.read"],
        "models": ["claude-haiku-*"],
        "max_tokens": 512,
        "rpm": 10
    })
}

/// GET the mapping's ETag, PUT `doc` with it; returns the PUT's body.
pub(crate) async fn apply_mapping(srv: &Server, admin: &str, doc: &Value) -> Value {
    let current = srv.get("/admin/v1/mappings", admin).await;
    assert_eq!(current.status, 200, "{}", current.text);
    let tag = current.header("etag").expect("ETag").to_string();
    let r = srv
        .call(
            Method::PUT,
            "/admin/v1/mappings",
            Some(doc),
            Some(admin),
            &[("if-match", &tag)],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.body
}

/// Create a user through SCIM; returns its id.
pub(crate) async fn scim_user(
    srv: &Server,
    scim: &str,
    user_name: &str,
    external_id: Option<&str>,
) -> String {
    let mut body = json!({"schemas": [USER], "userName": user_name, "active": true});
    if let Some(e) = external_id {
        body["externalId"] = json!(e);
    }
    let r = srv.post("/scim/v2/Users", &body, scim).await;
    assert_eq!(r.status, 201, "{}", r.text);
    r.body["id"].as_str().expect("id").to_string()
}

/// Create a group through SCIM with these member ids; returns its id.
pub(crate) async fn scim_group(srv: &Server, scim: &str, name: &str, members: &[&str]) -> String {
    let members: Vec<Value> = members.iter().map(|m| json!({"value": m})).collect();
    let r = srv
        .post(
            "/scim/v2/Groups",
            &json!({"schemas": [GROUP], "displayName": name, "members": members}),
            scim,
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    r.body["id"].as_str().expect("id").to_string()
}

/// PATCH a group through SCIM with these operations.
pub(crate) async fn patch_group(srv: &Server, scim: &str, group: &str, ops: Value) -> Resp {
    let r = srv
        .patch(
            &format!("/scim/v2/Groups/{group}"),
            &json!({"schemas": [PATCH_OP], "Operations": ops}),
            scim,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    r
}

pub(crate) async fn remove_member(srv: &Server, scim: &str, group: &str, member: &str) -> Resp {
    let path = format!("members[value eq \"{member}\"]");
    patch_group(srv, scim, group, json!([{"op": "remove", "path": path}])).await
}

pub(crate) async fn add_member(srv: &Server, scim: &str, group: &str, member: &str) -> Resp {
    patch_group(
        srv,
        scim,
        group,
        json!([{"op": "add", "path": "members", "value": [{"value": member}]}]),
    )
    .await
}

/// Okta's deactivation (path-less replace of `active`).
pub(crate) async fn set_active(srv: &Server, scim: &str, user: &str, active: bool) -> Resp {
    let r = srv
        .patch(
            &format!("/scim/v2/Users/{user}"),
            &json!({"schemas": [PATCH_OP], "Operations": [{"op": "replace", "value": {"active": active}}]}),
            scim,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["active"], active);
    r
}

/// The users, groups and tokens of the story.
pub(crate) struct Story {
    pub srv: Server,
    pub scim: String,
    pub lookup: String,
    pub admin: String,
    pub alice: String,
    pub bob: String,
    pub carol: String,
    pub engineering: String,
    pub legal: String,
    pub claude_admin: String,
}

/// Tokens for `store`'s server, the small mapping, then alice (engineering), bob (legal) and
/// carol (claude-admin) through SCIM.
pub(crate) async fn story_on(srv: Server, store: &Store, scim: String) -> Story {
    let lookup = new_token(store, "gateway", Scope::Lookup).await;
    let admin = new_token(store, "root", Scope::Admin).await;
    let applied = apply_mapping(&srv, &admin, &small_mapping()).await;
    assert_eq!(applied["version"], 1, "{applied}");
    let alice = scim_user(&srv, &scim, "alice@example.com", Some("00u-alice")).await;
    let bob = scim_user(&srv, &scim, "bob@example.com", Some("00u-bob")).await;
    let carol = scim_user(&srv, &scim, "carol@example.com", None).await;
    let engineering = scim_group(&srv, &scim, "engineering", &[&alice]).await;
    let legal = scim_group(&srv, &scim, "legal", &[&bob]).await;
    let claude_admin = scim_group(&srv, &scim, "claude-admin", &[&carol]).await;
    Story {
        srv,
        scim,
        lookup,
        admin,
        alice,
        bob,
        carol,
        engineering,
        legal,
        claude_admin,
    }
}

pub(crate) async fn story(app: &TestApp) -> Story {
    story_on(Server::of(app), &app.store, app.token.clone()).await
}

impl Story {
    async fn roles(&self, user: &str, query: &str) -> Resp {
        self.srv.roles(&self.lookup, user, query).await
    }

    async fn evaluate(&self, req: &Value) -> Resp {
        self.srv.evaluate(&self.lookup, req).await
    }
}

/// A model-call evaluation request.
fn model_call(user: &str, model: &str, workspace: &str, project: Option<&str>) -> Value {
    let mut props = json!({"workspace": workspace});
    if let Some(p) = project {
        props["project"] = json!(p);
    }
    json!({
        "subject": {"type": "user", "id": user},
        "action": {"name": "messages.create"},
        "resource": {"type": "model", "id": model, "properties": props}
    })
}

const HAIKU: &str = "claude-haiku-4-20250514";
const OPUS: &str = "claude-opus-4-20250514";

/// The role (or None) held at exactly one scope in a lookup answer.
fn role_at(answer: &Value, workspace: Option<&str>, project: Option<&str>) -> Option<String> {
    let mut scope = json!({});
    if let Some(w) = workspace {
        scope["workspace"] = json!(w);
    }
    if let Some(p) = project {
        scope["project"] = json!(p);
    }
    answer["roles"]
        .as_array()
        .expect("roles array")
        .iter()
        .find(|g| g["scope"] == scope)
        .map(|g| g["role"].as_str().expect("role").to_string())
}

fn decision(r: &Resp) -> bool {
    assert_eq!(r.status, 200, "a decision is always 200: {}", r.text);
    assert_eq!(
        r.header("content-type"),
        Some("application/json"),
        "{}",
        r.text
    );
    r.body["decision"]
        .as_bool()
        .unwrap_or_else(|| panic!("no boolean decision: {}", r.text))
}

fn reason(r: &Resp) -> String {
    r.body["context"]["reason"]
        .as_str()
        .unwrap_or_else(|| panic!("a denial without a reason: {}", r.text))
        .to_string()
}

/// Polls `probe` every 50 ms until `done` holds or `limit` passes; returns the last answer and
/// how long it took (None when it never held).
pub(crate) async fn poll<F, Fut>(
    limit: Duration,
    mut probe: F,
    done: impl Fn(&Resp) -> bool,
) -> (Resp, Option<Duration>)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Resp>,
{
    let started = Instant::now();
    loop {
        let r = probe().await;
        if done(&r) {
            return (r, Some(started.elapsed()));
        }
        if started.elapsed() > limit {
            return (r, None);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// ---------------------------------------------------------------------------------------------
// CLI helpers (the real binary)

/// `rolecall --database-url URL ARGS...`, off the async runtime.
pub(crate) async fn cli(url: &str, args: &[&str]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.env_remove("ROLECALL_DATABASE_URL")
        .env_remove("DATABASE_URL")
        .env_remove("ROLECALL_MAPPINGS")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .args(["--database-url", url])
        .args(args);
    let shown: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .expect("join")
        .expect("run rolecall");
    eprintln!(
        "rolecall {shown:?}: {}\n--- stdout\n{}--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

pub(crate) fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).expect("utf-8 stdout")
}

pub(crate) fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).expect("utf-8 stderr")
}

/// The small mapping as a TOML file (the same document as [`small_mapping`]).
pub(crate) const SMALL_TOML: &str = r#"default_role = ""

[roles.admin]
rank = 80
description = "Manage members; every model"
permissions = ["messages.create", "chats.read", "members.manage"]
models = ["claude-haiku-*", "claude-sonnet-*", "claude-opus-*"]
max_tokens = 8192
rpm = 200

[roles.member]
rank = 40
description = "Send prompts to haiku"
permissions = ["messages.create", "chats.read"]
models = ["claude-haiku-*"]
max_tokens = 512
rpm = 10

[roles.viewer]
rank = 20
description = "Read chats"
permissions = ["chats.read"]
models = []

[[workspaces]]
name = "engineering"
projects = []

[[workspaces]]
name = "legal"
projects = ["contracts", "litigation"]

[[rules]]
group = "claude-admin"
role = "admin"

[[rules]]
group = "engineering"
role = "member"
workspace = "engineering"

[[rules]]
group = "legal"
role = "viewer"
workspace = "legal"
project = "contracts"
"#;

pub(crate) fn write_file(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write file");
    path.display().to_string()
}

// ---------------------------------------------------------------------------------------------
// Lookups

async fn lookup_answers(app: TestApp) {
    let s = story(&app).await;

    // by userName
    let r = s.roles("alice@example.com", "").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(
        r.body["user"],
        json!({"id": s.alice, "userName": "alice@example.com", "active": true})
    );
    assert_eq!(r.body["groups"], json!(["engineering"]));
    assert_eq!(
        r.body["roles"],
        json!([{"scope": {"workspace": "engineering"}, "role": "member", "via": ["engineering"]}])
    );
    assert!(
        r.body.get("effective").is_none(),
        "no workspace asked: no effective ({})",
        r.text
    );

    // by id, by externalId, by an upper-cased userName: the same answer
    for key in [
        s.alice.as_str(),
        "00u-alice",
        "ALICE@EXAMPLE.COM",
        "Alice@Example.com",
    ] {
        let other = s.roles(key, "").await;
        assert_eq!(other.status, 200, "{key}: {}", other.text);
        assert_eq!(other.body, r.body, "{key}");
    }

    // the effective role and its policy; workspace names are case-insensitive
    let r = s.roles("alice@example.com", "?workspace=Engineering").await;
    assert_eq!(r.status, 200, "{}", r.text);
    let eff = &r.body["effective"];
    assert_eq!(eff["role"], "member", "{}", r.text);
    assert_eq!(eff["scope"], json!({"workspace": "engineering"}));
    assert_eq!(eff["granted_at"], json!({"workspace": "engineering"}));
    assert_eq!(eff["via"], json!(["engineering"]));
    assert_eq!(eff["policy"], member_policy());

    // no role in legal: effective is present and null
    let r = s.roles("alice@example.com", "?workspace=legal").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(
        r.body.get("effective").is_some_and(Value::is_null),
        "{}",
        r.text
    );
    let r = s
        .roles("alice@example.com", "?workspace=legal&project=contracts")
        .await;
    assert!(r.body["effective"].is_null(), "{}", r.text);

    // an unknown workspace or project, or a project without a workspace: 400 problem
    let r = s.roles("alice@example.com", "?workspace=marketing").await;
    assert_problem(&r, 400);
    assert!(
        r.body["detail"].as_str().unwrap().contains("marketing"),
        "{}",
        r.text
    );
    let r = s
        .roles("alice@example.com", "?workspace=legal&project=nope")
        .await;
    assert_problem(&r, 400);
    let r = s.roles("alice@example.com", "?project=contracts").await;
    assert_problem(&r, 400);

    // an unknown user: 404 problem
    for key in ["nobody@example.com", "00000000-0000-4000-8000-000000000000"] {
        let r = s.roles(key, "").await;
        assert_problem(&r, 404);
    }
    let r = s
        .roles("nobody@example.com", "?workspace=engineering")
        .await;
    assert_problem(&r, 404);

    // carol is an organization-wide admin: admin everywhere, by inheritance
    let r = s.roles("carol@example.com", "").await;
    assert_eq!(
        r.body["roles"],
        json!([{"scope": {}, "role": "admin", "via": ["claude-admin"]}]),
        "{}",
        r.text
    );
    assert_eq!(r.body["groups"], json!(["claude-admin"]));
    for query in [
        "?workspace=engineering",
        "?workspace=legal",
        "?workspace=legal&project=contracts",
        "?workspace=LEGAL&project=Contracts",
    ] {
        let r = s.roles("carol@example.com", query).await;
        assert_eq!(r.status, 200, "{query}: {}", r.text);
        assert_eq!(r.body["effective"]["role"], "admin", "{query}: {}", r.text);
        assert_eq!(r.body["effective"]["granted_at"], json!({}), "{query}");
    }
    let r = s
        .roles("carol@example.com", "?workspace=legal&project=contracts")
        .await;
    assert_eq!(
        r.body["effective"]["scope"],
        json!({"workspace": "legal", "project": "contracts"})
    );

    // bob is a viewer on legal/contracts only: not at legal itself, not on litigation
    let r = s.roles("bob@example.com", "").await;
    assert_eq!(
        r.body["roles"],
        json!([{"scope": {"workspace": "legal", "project": "contracts"}, "role": "viewer", "via": ["legal"]}]),
        "{}",
        r.text
    );
    let r = s
        .roles("bob@example.com", "?workspace=legal&project=contracts")
        .await;
    assert_eq!(r.body["effective"]["role"], "viewer", "{}", r.text);
    for query in [
        "?workspace=legal",
        "?workspace=legal&project=litigation",
        "?workspace=engineering",
    ] {
        let r = s.roles("bob@example.com", query).await;
        assert_eq!(r.status, 200, "{query}: {}", r.text);
        assert!(r.body["effective"].is_null(), "{query}: {}", r.text);
    }

    // a user in no mapped group has no role
    scim_user(&s.srv, &s.scim, "dave@example.com", None).await;
    let r = s.roles("dave@example.com", "?workspace=engineering").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["roles"], json!([]));
    assert_eq!(r.body["groups"], json!([]));
    assert!(r.body["effective"].is_null());
}

async fn lookup_etag_and_304(app: TestApp) {
    let s = story(&app).await;
    let path = "/v1/users/alice@example.com/roles";
    let first = s.srv.get(path, &s.lookup).await;
    assert_eq!(first.status, 200);
    let etag = first.header("etag").expect("an ETag").to_string();
    // stable while nothing changes
    let again = s.srv.get(path, &s.lookup).await;
    assert_eq!(again.header("etag"), Some(etag.as_str()));

    let cached = |tag: String| {
        let srv = s.srv.clone();
        let lookup = s.lookup.clone();
        async move {
            srv.call(
                Method::GET,
                path,
                None,
                Some(&lookup),
                &[("if-none-match", &tag)],
            )
            .await
        }
    };
    let r = cached(etag.clone()).await;
    assert_eq!(r.status, 304, "{}", r.text);
    assert!(r.text.is_empty());
    assert_eq!(r.header("etag"), Some(etag.as_str()));
    // a list of tags containing it
    let r = cached(format!("W/\"0000000000000000\", {etag}")).await;
    assert_eq!(r.status, 304);
    // weak comparison: the same tag without its W/ (RFC 9110 §13.1.2)
    let r = cached(etag.trim_start_matches("W/").to_string()).await;
    assert_eq!(r.status, 304);
    // another tag: the full answer
    let r = cached("W/\"0000000000000000\"".into()).await;
    assert_eq!(r.status, 200);
    // the answer with a workspace has its own tag
    let scoped = s
        .srv
        .get(&format!("{path}?workspace=engineering"), &s.lookup)
        .await;
    assert_ne!(scoped.header("etag"), Some(etag.as_str()));

    // a membership change: the very next lookup has a new tag, and the old tag gets 200
    remove_member(&s.srv, &s.scim, &s.engineering, &s.alice).await;
    let r = cached(etag.clone()).await;
    assert_eq!(r.status, 200, "the old ETag must not match any more");
    let changed = r.header("etag").expect("ETag").to_string();
    assert_ne!(changed, etag);
    assert_eq!(r.body["roles"], json!([]));
    assert_eq!(cached(changed).await.status, 304);
}

async fn membership_changes_show_on_the_next_lookup(app: TestApp) {
    let s = story(&app).await;
    assert_eq!(
        role_at(
            &s.roles("alice@example.com", "").await.body,
            Some("engineering"),
            None
        ),
        Some("member".into())
    );
    // Okta's removal: the very next lookup (no waiting) shows no role
    remove_member(&s.srv, &s.scim, &s.engineering, &s.alice).await;
    let r = s.roles("alice@example.com", "?workspace=engineering").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["roles"], json!([]), "{}", r.text);
    assert_eq!(r.body["groups"], json!([]), "{}", r.text);
    assert!(r.body["effective"].is_null(), "{}", r.text);
    let d = s
        .evaluate(&model_call("alice@example.com", HAIKU, "engineering", None))
        .await;
    assert!(!decision(&d), "{}", d.text);

    // added back: member again, at once
    add_member(&s.srv, &s.scim, &s.engineering, &s.alice).await;
    let r = s.roles("alice@example.com", "?workspace=engineering").await;
    assert_eq!(r.body["effective"]["role"], "member", "{}", r.text);
    let d = s
        .evaluate(&model_call("alice@example.com", HAIKU, "engineering", None))
        .await;
    assert!(decision(&d), "{}", d.text);

    // joining claude-admin too: the higher rank wins in engineering, and she is admin in legal
    add_member(&s.srv, &s.scim, &s.claude_admin, &s.alice).await;
    let r = s.roles("alice@example.com", "?workspace=engineering").await;
    assert_eq!(r.body["effective"]["role"], "admin", "{}", r.text);
    assert_eq!(r.body["groups"], json!(["claude-admin", "engineering"]));
    assert_eq!(role_at(&r.body, None, None), Some("admin".into()));
    // her member grant in engineering is outranked by admin from the organization: it is
    // nobody's effective role, so `roles` (and a role token) leave it out, and the most
    // specific entry containing a scope is always the role there
    assert_eq!(
        role_at(&r.body, Some("engineering"), None),
        None,
        "{}",
        r.text
    );
    let r = s.roles("alice@example.com", "?workspace=legal").await;
    assert_eq!(r.body["effective"]["role"], "admin", "{}", r.text);

    // a group replaced through PUT without her: the role goes at once
    let r = s
        .srv
        .call(
            Method::PUT,
            &format!("/scim/v2/Groups/{}", s.claude_admin),
            Some(&json!({"schemas": [GROUP], "displayName": "claude-admin", "members": [{"value": s.carol}]})),
            Some(&s.scim),
            &[],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = s.roles("alice@example.com", "?workspace=legal").await;
    assert!(r.body["effective"].is_null(), "{}", r.text);

    // a group deleted: its members lose its roles at once
    let r = s
        .srv
        .delete(&format!("/scim/v2/Groups/{}", s.legal), &s.scim)
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    let r = s.roles("bob@example.com", "").await;
    assert_eq!(r.body["roles"], json!([]), "{}", r.text);
    assert_eq!(r.body["groups"], json!([]), "{}", r.text);
}

async fn nested_groups_count(app: TestApp) {
    let s = story(&app).await;
    remove_member(&s.srv, &s.scim, &s.engineering, &s.alice).await;
    // platform (with alice) becomes a member of engineering
    let platform = scim_group(&s.srv, &s.scim, "platform", &[&s.alice]).await;
    assert!(s.roles("alice@example.com", "").await.body["roles"]
        .as_array()
        .unwrap()
        .is_empty());
    add_member(&s.srv, &s.scim, &s.engineering, &platform).await;
    let r = s.roles("alice@example.com", "?workspace=engineering").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["effective"]["role"], "member", "{}", r.text);
    assert_eq!(
        r.body["groups"],
        json!(["engineering", "platform"]),
        "{}",
        r.text
    );
    let d = s
        .evaluate(&model_call("alice@example.com", HAIKU, "engineering", None))
        .await;
    assert!(decision(&d), "{}", d.text);

    // a member added to the inner group after the nesting was set up counts too
    let erin = scim_user(&s.srv, &s.scim, "erin@example.com", None).await;
    add_member(&s.srv, &s.scim, &platform, &erin).await;
    let r = s.roles("erin@example.com", "?workspace=engineering").await;
    assert_eq!(r.body["effective"]["role"], "member", "{}", r.text);

    // two levels: platform inside engineering, sre inside platform
    let frank = scim_user(&s.srv, &s.scim, "frank@example.com", None).await;
    let sre = scim_group(&s.srv, &s.scim, "sre", &[&frank]).await;
    add_member(&s.srv, &s.scim, &platform, &sre).await;
    let r = s.roles("frank@example.com", "?workspace=engineering").await;
    assert_eq!(r.body["effective"]["role"], "member", "{}", r.text);

    // the nesting undone: the roles go at once
    remove_member(&s.srv, &s.scim, &s.engineering, &platform).await;
    for user in ["alice@example.com", "erin@example.com", "frank@example.com"] {
        let r = s.roles(user, "").await;
        assert_eq!(r.body["roles"], json!([]), "{user}: {}", r.text);
    }
}

async fn deactivation_and_deletion(app: TestApp) {
    let s = story(&app).await;
    let call = model_call("alice@example.com", HAIKU, "engineering", None);
    assert!(decision(&s.evaluate(&call).await));

    // deactivated: the very next lookup shows it, with no roles at all
    set_active(&s.srv, &s.scim, &s.alice, false).await;
    let r = s.roles("alice@example.com", "?workspace=engineering").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["user"]["active"], false, "{}", r.text);
    assert_eq!(r.body["roles"], json!([]), "{}", r.text);
    assert!(r.body["effective"].is_null(), "{}", r.text);
    let d = s.evaluate(&call).await;
    assert!(!decision(&d), "{}", d.text);
    assert!(
        reason(&d).contains("deactivated"),
        "the reason should say why: {}",
        d.text
    );
    // an org-wide admin loses everything too
    set_active(&s.srv, &s.scim, &s.carol, false).await;
    let d = s
        .evaluate(&model_call("carol@example.com", OPUS, "legal", None))
        .await;
    assert!(!decision(&d), "{}", d.text);

    // reactivated: allowed again
    set_active(&s.srv, &s.scim, &s.alice, true).await;
    let r = s.roles("alice@example.com", "?workspace=engineering").await;
    assert_eq!(r.body["user"]["active"], true);
    assert_eq!(r.body["effective"]["role"], "member", "{}", r.text);
    assert!(decision(&s.evaluate(&call).await));

    // deactivation through PUT (Entra sends the whole user)
    let r = s
        .srv
        .call(
            Method::PUT,
            &format!("/scim/v2/Users/{}", s.alice),
            Some(&json!({"schemas": [USER], "userName": "alice@example.com", "externalId": "00u-alice", "active": false})),
            Some(&s.scim),
            &[],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(!decision(&s.evaluate(&call).await));
    set_active(&s.srv, &s.scim, &s.alice, true).await;
    assert!(decision(&s.evaluate(&call).await));

    // deleted: 404 on lookup (by any key), and a denial (200) on evaluation
    let r = s
        .srv
        .delete(&format!("/scim/v2/Users/{}", s.alice), &s.scim)
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    for key in ["alice@example.com", s.alice.as_str(), "00u-alice"] {
        assert_problem(&s.roles(key, "").await, 404);
    }
    let d = s.evaluate(&call).await;
    assert!(!decision(&d), "{}", d.text);
    assert!(!reason(&d).is_empty());
    // a new user may take the name, and starts with nothing
    scim_user(&s.srv, &s.scim, "alice@example.com", None).await;
    let r = s.roles("alice@example.com", "").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["roles"], json!([]), "{}", r.text);
    assert_ne!(r.body["user"]["id"], s.alice.as_str());
}

// ---------------------------------------------------------------------------------------------
// AuthZEN evaluation

async fn evaluation_decisions(app: TestApp) {
    let s = story(&app).await;

    // an allowed model call: the grant is capped, with the role's rpm
    let mut call = model_call("alice@example.com", HAIKU, "engineering", None);
    call["context"] = json!({"max_tokens": 4096});
    let d = s.evaluate(&call).await;
    assert!(decision(&d), "{}", d.text);
    assert_eq!(
        d.body["context"],
        json!({"role": "member", "max_tokens": 512, "rpm": 10}),
        "{}",
        d.text
    );
    // asking for less than the cap gets what was asked; by id and in another case too
    call["context"] = json!({"max_tokens": 100});
    call["subject"]["id"] = json!(s.alice);
    let d = s.evaluate(&call).await;
    assert!(decision(&d), "{}", d.text);
    assert_eq!(d.body["context"]["max_tokens"], 100);
    let d = s
        .evaluate(&model_call(
            "ALICE@example.com",
            "Claude-Haiku-3-5",
            "ENGINEERING",
            None,
        ))
        .await;
    assert!(decision(&d), "{}", d.text);
    assert_eq!(
        d.body["context"]["max_tokens"], 512,
        "not asked: the cap ({})",
        d.text
    );

    // a model outside the role's allow-list: denied, naming the model
    let d = s
        .evaluate(&model_call("alice@example.com", OPUS, "engineering", None))
        .await;
    assert!(!decision(&d), "{}", d.text);
    assert!(reason(&d).contains(OPUS), "{}", d.text);
    assert!(d.body["context"].get("max_tokens").is_none(), "{}", d.text);

    // no role in legal
    let d = s
        .evaluate(&model_call(
            "alice@example.com",
            HAIKU,
            "legal",
            Some("contracts"),
        ))
        .await;
    assert!(!decision(&d), "{}", d.text);
    assert!(reason(&d).contains("legal"), "{}", d.text);

    // a viewer calling a model: lacks messages.create
    let d = s
        .evaluate(&model_call(
            "bob@example.com",
            HAIKU,
            "legal",
            Some("contracts"),
        ))
        .await;
    assert!(!decision(&d), "{}", d.text);
    assert!(reason(&d).contains("messages.create"), "{}", d.text);

    // carol (org-wide admin) may call opus in a project by inheritance
    let d = s
        .evaluate(&model_call(
            "carol@example.com",
            OPUS,
            "legal",
            Some("litigation"),
        ))
        .await;
    assert!(decision(&d), "{}", d.text);
    assert_eq!(
        d.body["context"],
        json!({"role": "admin", "max_tokens": 8192, "rpm": 200})
    );

    // a workspace (or a project) resource with a plain action
    let read = |user: &str, ws: &str, project: Option<&str>| {
        let resource = match project {
            Some(p) => json!({"type": "project", "id": p, "properties": {"workspace": ws}}),
            None => json!({"type": "workspace", "id": ws}),
        };
        json!({"subject": {"type": "user", "id": user}, "action": {"name": "chats.read"}, "resource": resource})
    };
    // a workspace resource naming a project is refused, not read as the project (found by
    // an audit: bob, who holds a role only in legal/contracts, was allowed "in legal")
    let d = s
        .evaluate(&json!({"subject": {"type": "user", "id": "bob@example.com"},
            "action": {"name": "chats.read"},
            "resource": {"type": "workspace", "id": "legal", "properties": {"project": "contracts"}}}))
        .await;
    assert_eq!(d.status, 400, "{}", d.text);
    assert!(d.text.contains("project"), "{}", d.text);
    // a workspace named by anything but a non-empty string is a 400, never the organization
    for bad in [
        json!(5),
        json!(""),
        json!(["legal"]),
        json!({"name": "legal"}),
    ] {
        let d = s
            .evaluate(
                &json!({"subject": {"type": "user", "id": "bob@example.com"},
                "action": {"name": "messages.create"},
                "resource": {"type": "model", "id": OPUS, "properties": {"workspace": bad}}}),
            )
            .await;
        assert_eq!(d.status, 400, "{bad}: {}", d.text);
    }
    let d = s
        .evaluate(
            &json!({"subject": {"type": "user", "id": "bob@example.com"},
            "action": {"name": "messages.create"},
            "resource": {"type": "model", "id": OPUS, "properties": "legal"}}),
        )
        .await;
    assert_eq!(d.status, 400, "{}", d.text);
    let d = s
        .evaluate(&read("alice@example.com", "engineering", None))
        .await;
    assert!(decision(&d), "{}", d.text);
    assert_eq!(d.body["context"]["role"], "member");
    let d = s
        .evaluate(&read("bob@example.com", "legal", Some("contracts")))
        .await;
    assert!(decision(&d), "{}", d.text);
    assert_eq!(d.body["context"]["role"], "viewer");
    let d = s.evaluate(&read("bob@example.com", "legal", None)).await;
    assert!(!decision(&d), "bob has no role at legal itself: {}", d.text);
    // a permission the role lacks
    let mut manage = read("alice@example.com", "engineering", None);
    manage["action"]["name"] = json!("members.manage");
    let d = s.evaluate(&manage).await;
    assert!(!decision(&d), "{}", d.text);
    assert!(reason(&d).contains("members.manage"), "{}", d.text);
    manage["subject"]["id"] = json!("carol@example.com");
    assert!(decision(&s.evaluate(&manage).await));

    // denials are 200, never an error status: unknown user, unknown workspace
    let d = s
        .evaluate(&model_call(
            "nobody@example.com",
            HAIKU,
            "engineering",
            None,
        ))
        .await;
    assert!(!decision(&d), "{}", d.text);
    let d = s
        .evaluate(&model_call("alice@example.com", HAIKU, "marketing", None))
        .await;
    assert!(!decision(&d), "{}", d.text);
    assert!(reason(&d).contains("marketing"), "{}", d.text);
}

async fn evaluation_refuses_malformed_requests(app: TestApp) {
    let s = story(&app).await;
    let good = model_call("alice@example.com", HAIKU, "engineering", None);
    let without = |key: &str| {
        let mut v = good.clone();
        v.as_object_mut().unwrap().remove(key);
        v
    };
    let mut bad_tokens = good.clone();
    bad_tokens["context"] = json!({"max_tokens": "x"});
    let mut negative = good.clone();
    negative["context"] = json!({"max_tokens": -1});
    let mut subject_string = good.clone();
    subject_string["subject"] = json!("alice@example.com");
    let mut no_subject_id = good.clone();
    no_subject_id["subject"] = json!({"type": "user"});
    let mut model_without_id = good.clone();
    model_without_id["resource"] =
        json!({"type": "model", "properties": {"workspace": "engineering"}});
    for (what, body) in [
        ("missing subject", without("subject")),
        ("missing action", without("action")),
        ("missing resource", without("resource")),
        ("non-object body", json!([good.clone()])),
        ("a string body", json!("alice")),
        ("max_tokens \"x\"", bad_tokens),
        ("negative max_tokens", negative),
        ("subject not an object", subject_string),
        ("subject without id", no_subject_id),
        ("model without id", model_without_id),
    ] {
        let r = s.evaluate(&body).await;
        assert_eq!(r.status, 400, "{what}: {}", r.text);
        assert_problem(&r, 400);
    }
    // not JSON at all
    let r = s
        .srv
        .client
        .post(format!("{}/access/v1/evaluation", s.srv.address))
        .bearer_auth(&s.lookup)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/problem+json")
    );
    // GET is not the method
    let r = s
        .srv
        .call(
            Method::GET,
            "/access/v1/evaluation",
            None,
            Some(&s.lookup),
            &[],
        )
        .await;
    assert_problem(&r, 405);
    // and after all that, a good request still works
    assert!(decision(&s.evaluate(&good).await));
}

async fn evaluation_batches(app: TestApp) {
    let s = story(&app).await;
    let batch = |semantic: Option<&str>, items: Value| {
        let mut body = json!({
            "subject": {"type": "user", "id": "alice@example.com"},
            "action": {"name": "messages.create"},
            "context": {"max_tokens": 100},
            "evaluations": items
        });
        if let Some(sem) = semantic {
            body["options"] = json!({"evaluations_semantic": sem});
        }
        body
    };
    let model =
        |id: &str, ws: &str| json!({"type": "model", "id": id, "properties": {"workspace": ws}});
    let items = json!([
        {"resource": model(HAIKU, "engineering")},                                   // allow
        {"resource": model(OPUS, "engineering")},                                    // deny
        {"resource": {"type": "workspace", "id": "engineering"}, "action": {"name": "chats.read"}}, // allow
        {"subject": {"type": "user", "id": "carol@example.com"}, "resource": model(OPUS, "legal"),
         "context": {"max_tokens": 10000}}                                           // allow, capped
    ]);
    let decisions = |r: &Resp| -> Vec<bool> {
        assert_eq!(r.status, 200, "{}", r.text);
        r.body["evaluations"]
            .as_array()
            .unwrap_or_else(|| panic!("no evaluations array: {}", r.text))
            .iter()
            .map(|e| e["decision"].as_bool().expect("decision"))
            .collect()
    };
    let post = |body: Value| {
        let srv = s.srv.clone();
        let lookup = s.lookup.clone();
        async move { srv.post("/access/v1/evaluations", &body, &lookup).await }
    };

    // execute_all (the default): every item, defaults applied, items overriding them
    let r = post(batch(None, items.clone())).await;
    assert_eq!(decisions(&r), vec![true, false, true, true], "{}", r.text);
    let e = &r.body["evaluations"];
    assert_eq!(
        e[0]["context"],
        json!({"role": "member", "max_tokens": 100, "rpm": 10})
    );
    assert!(e[1]["context"]["reason"].as_str().unwrap().contains(OPUS));
    assert_eq!(e[2]["context"]["role"], "member");
    assert_eq!(
        e[3]["context"],
        json!({"role": "admin", "max_tokens": 8192, "rpm": 200}),
        "an item's context replaces the default"
    );
    let r = post(batch(Some("execute_all"), items.clone())).await;
    assert_eq!(decisions(&r), vec![true, false, true, true]);

    // deny_on_first_deny: stops after the first deny
    let r = post(batch(Some("deny_on_first_deny"), items.clone())).await;
    assert_eq!(decisions(&r), vec![true, false], "{}", r.text);
    // permit_on_first_permit: stops after the first permit
    let r = post(batch(Some("permit_on_first_permit"), items.clone())).await;
    assert_eq!(decisions(&r), vec![true], "{}", r.text);
    let denies_first = json!([
        {"resource": model(OPUS, "engineering")},
        {"resource": model(HAIKU, "legal")},
        {"resource": model(HAIKU, "engineering")},
        {"resource": model(OPUS, "engineering")}
    ]);
    let r = post(batch(Some("permit_on_first_permit"), denies_first.clone())).await;
    assert_eq!(decisions(&r), vec![false, false, true], "{}", r.text);
    let r = post(batch(Some("deny_on_first_deny"), denies_first)).await;
    assert_eq!(decisions(&r), vec![false], "{}", r.text);

    // no evaluations array: the single decision shape
    let mut single = batch(None, Value::Null);
    single.as_object_mut().unwrap().remove("evaluations");
    single["resource"] = model(HAIKU, "engineering");
    let r = post(single).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["decision"], true, "{}", r.text);
    assert_eq!(r.body["context"]["max_tokens"], 100);
    assert!(r.body.get("evaluations").is_none());

    // a malformed item is that item's answer, a denial carrying the error; the others are
    // still evaluated (AuthZEN 1.0: 4xx only for errors in the whole request)
    let faulty = json!([
        {"resource": model(HAIKU, "engineering")},
        1,
        {"resource": model(HAIKU, "engineering"), "context": {"max_tokens": "x"}},
        {"action": {"name": "chats.read"}},
        {"resource": {"type": "model"}},
        {"resource": model(HAIKU, "engineering")}
    ]);
    let r = post(batch(None, faulty.clone())).await;
    assert_eq!(
        decisions(&r),
        vec![true, false, false, false, false, true],
        "{}",
        r.text
    );
    for i in 1..5 {
        let c = &r.body["evaluations"][i]["context"];
        assert_eq!(c["error"]["status"], 400, "{}", r.text);
        let message = c["error"]["message"].as_str().unwrap();
        assert!(
            message.starts_with(&format!("evaluations[{i}]: ")),
            "{message}"
        );
        assert_eq!(c["reason"], message);
    }
    // an item's error is a deny for deny_on_first_deny
    let r = post(batch(Some("deny_on_first_deny"), faulty)).await;
    assert_eq!(decisions(&r), vec![true, false], "{}", r.text);

    // at most 1,000 evaluations per request
    let many = |n: usize| {
        batch(
            None,
            Value::Array(vec![json!({"resource": model(HAIKU, "engineering")}); n]),
        )
    };
    let r = post(many(1000)).await;
    assert_eq!(decisions(&r), vec![true; 1000]);
    let r = post(many(1001)).await;
    assert_problem(&r, 400);
    assert!(
        r.body["detail"].as_str().unwrap().contains("at most 1000"),
        "{}",
        r.text
    );

    // errors in the request as a whole: 400 problem
    for (what, body) in [
        ("unknown semantic", batch(Some("whatever"), items.clone())),
        ("evaluations not an array", batch(None, json!({"x": 1}))),
        ("a non-object body", json!([1, 2])),
        ("options not an object", {
            let mut b = batch(None, items.clone());
            b["options"] = json!("deny_on_first_deny");
            b
        }),
        ("a semantic not a string", {
            let mut b = batch(None, items.clone());
            b["options"] = json!({"evaluations_semantic": 5});
            b
        }),
    ] {
        let r = post(body).await;
        assert_problem(&r, 400);
        assert_eq!(r.status, 400, "{what}");
    }
}

async fn authzen_configuration_is_public(app: TestApp) {
    let srv = Server::of(&app);
    let r = srv
        .call(
            Method::GET,
            "/.well-known/authzen-configuration",
            None,
            None,
            &[],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.body["policy_decision_point"], app.address.as_str());
    assert_eq!(
        r.body["access_evaluation_endpoint"],
        format!("{}/access/v1/evaluation", app.address)
    );
    assert_eq!(
        r.body["access_evaluations_endpoint"],
        format!("{}/access/v1/evaluations", app.address)
    );
    // the endpoints it names answer (with a lookup token)
    let lookup = new_token(&app.store, "gateway", Scope::Lookup).await;
    for key in ["access_evaluation_endpoint", "access_evaluations_endpoint"] {
        let url = r.body[key].as_str().unwrap();
        let res = app
            .client
            .post(url)
            .bearer_auth(&lookup)
            .json(&model_call("nobody", HAIKU, "x", None))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "{url}");
    }
    // the JWKS is public too
    let r = srv
        .call(Method::GET, "/.well-known/jwks.json", None, None, &[])
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(!r.body["keys"].as_array().unwrap().is_empty());
}

// ---------------------------------------------------------------------------------------------
// Signed role tokens

async fn jwks(srv: &Server) -> Value {
    let r = srv
        .call(Method::GET, "/.well-known/jwks.json", None, None, &[])
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.body
}

/// Verify a role token against a JWKS: the key named by the header's kid, EdDSA, audience
/// `rolecall`, issuer `iss`. Returns (kid, claims).
fn verify(token: &str, jwks: &Value, iss: &str) -> Result<(String, Value), String> {
    let header = decode_header(token).map_err(|e| format!("header: {e}"))?;
    if header.alg != Algorithm::EdDSA {
        return Err(format!("alg {:?}", header.alg));
    }
    let kid = header.kid.ok_or("no kid in the header")?;
    let key = jwks["keys"]
        .as_array()
        .ok_or("no keys")?
        .iter()
        .find(|k| k["kid"] == kid.as_str())
        .ok_or_else(|| format!("kid {kid} is not in the JWKS"))?;
    if key["kty"] != "OKP" || key["crv"] != "Ed25519" {
        return Err(format!("unexpected key {key}"));
    }
    let x = key["x"].as_str().ok_or("no x")?;
    let decoding = DecodingKey::from_ed_components(x).map_err(|e| format!("key: {e}"))?;
    let mut validation = Validation::new(Algorithm::EdDSA);
    validation.set_audience(&["rolecall"]);
    validation.set_issuer(&[iss]);
    let data = decode::<Value>(token, &decoding, &validation).map_err(|e| format!("{e}"))?;
    Ok((kid, data.claims))
}

async fn role_token(s: &Story, user: &str) -> Resp {
    s.srv
        .call(
            Method::POST,
            &format!("/v1/users/{user}/token"),
            None,
            Some(&s.lookup),
            &[],
        )
        .await
}

async fn signed_role_tokens_and_key_rotation(app: TestApp) {
    let s = story(&app).await;
    let r = role_token(&s, "alice@example.com").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["token_type"], "JWT");
    assert_eq!(r.body["expires_in"], 300);
    let old_token = r.body["token"].as_str().expect("token").to_string();

    let keys = jwks(&s.srv).await;
    assert_eq!(keys["keys"].as_array().unwrap().len(), 1, "{keys}");
    for k in keys["keys"].as_array().unwrap() {
        assert!(
            k.get("d").is_none(),
            "a private key component is published: {k}"
        );
    }
    let (old_kid, claims) =
        verify(&old_token, &keys, &app.address).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(claims["sub"], s.alice.as_str());
    assert_eq!(claims["aud"], "rolecall");
    assert_eq!(claims["iss"], app.address.as_str());
    assert_eq!(
        claims["roles"],
        json!([{"scope": {"workspace": "engineering"}, "role": "member"}]),
        "{claims}"
    );
    let iat = claims["iat"].as_i64().expect("iat");
    let exp = claims["exp"].as_i64().expect("exp");
    assert_eq!(exp - iat, 300);
    let now = chrono::Utc::now().timestamp();
    assert!((iat - now).abs() < 60, "iat {iat} vs now {now}");

    // a token is not valid for another audience, and a tampered one fails
    let mut other_aud = Validation::new(Algorithm::EdDSA);
    other_aud.set_audience(&["someone-else"]);
    let key = keys["keys"][0]["x"].as_str().unwrap();
    assert!(decode::<Value>(
        &old_token,
        &DecodingKey::from_ed_components(key).unwrap(),
        &other_aud
    )
    .is_err());
    let mut parts: Vec<String> = old_token.split('.').map(str::to_string).collect();
    parts[1] = parts[1].chars().rev().collect();
    assert!(verify(&parts.join("."), &keys, &app.address).is_err());

    // carol's token: org-wide admin, by any key
    let r = role_token(&s, "CAROL@example.com").await;
    let (_, claims) = verify(r.body["token"].as_str().unwrap(), &keys, &app.address).unwrap();
    assert_eq!(claims["sub"], s.carol.as_str());
    assert_eq!(claims["roles"], json!([{"scope": {}, "role": "admin"}]));

    // rotation from the command line: within a second the JWKS has both keys and new tokens
    // carry the new kid; the old token still verifies
    let out = cli(&app.database_url, &["keys", "rotate"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let (keys, took) = {
        let started = Instant::now();
        loop {
            let k = jwks(&s.srv).await;
            if k["keys"].as_array().unwrap().len() == 2 {
                break (k, started.elapsed());
            }
            assert!(
                started.elapsed() < Duration::from_secs(1),
                "the JWKS did not get the new key within a second: {k}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    eprintln!("the new key was published after {took:?}");
    let kids: Vec<&str> = keys["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert!(kids.contains(&old_kid.as_str()), "{keys}");
    let new_kid = kids.iter().find(|k| **k != old_kid).unwrap().to_string();
    assert!(
        stdout(&out).contains(&new_kid),
        "the CLI names the new kid: {}",
        stdout(&out)
    );
    let r = role_token(&s, "alice@example.com").await;
    assert_eq!(r.status, 200, "{}", r.text);
    let (kid, claims) = verify(r.body["token"].as_str().unwrap(), &keys, &app.address)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(kid, new_kid, "new tokens are signed with the new key");
    assert_eq!(claims["sub"], s.alice.as_str());
    let (kid, _) = verify(&old_token, &keys, &app.address).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(kid, old_kid);

    // deactivated: no token (403); deleted or unknown: 404
    set_active(&s.srv, &s.scim, &s.alice, false).await;
    let r = role_token(&s, "alice@example.com").await;
    assert_problem(&r, 403);
    set_active(&s.srv, &s.scim, &s.alice, true).await;
    assert_eq!(role_token(&s, "alice@example.com").await.status, 200);
    assert_problem(&role_token(&s, "nobody@example.com").await, 404);
    // a user without roles still gets a token, with no roles in it
    scim_user(&s.srv, &s.scim, "dave@example.com", None).await;
    let r = role_token(&s, "dave@example.com").await;
    assert_eq!(r.status, 200, "{}", r.text);
    let (_, claims) = verify(r.body["token"].as_str().unwrap(), &keys, &app.address).unwrap();
    assert_eq!(claims["roles"], json!([]));
    // the token endpoint needs a lookup token, and POST
    let r = s
        .srv
        .call(
            Method::POST,
            "/v1/users/alice@example.com/token",
            None,
            None,
            &[],
        )
        .await;
    assert_problem(&r, 401);
    let r = s
        .srv
        .call(
            Method::GET,
            "/v1/users/alice@example.com/token",
            None,
            Some(&s.lookup),
            &[],
        )
        .await;
    assert_problem(&r, 405);
}

// ---------------------------------------------------------------------------------------------
// Scopes

async fn scope_checks(app: TestApp) {
    let s = story(&app).await;
    let eval = model_call("alice@example.com", HAIKU, "engineering", None);
    // a scim token on the gateway API: 403
    for (method, path, body) in [
        (Method::GET, "/v1/users/alice@example.com/roles", None),
        (Method::POST, "/v1/users/alice@example.com/token", None),
        (Method::POST, "/access/v1/evaluation", Some(&eval)),
        (Method::POST, "/access/v1/evaluations", Some(&eval)),
    ] {
        for token in [&s.scim, &s.admin] {
            let r = s
                .srv
                .call(method.clone(), path, body, Some(token), &[])
                .await;
            assert_problem(&r, 403);
        }
        // no token: 401 with a Bearer challenge
        let r = s.srv.call(method.clone(), path, body, None, &[]).await;
        assert_problem(&r, 401);
        let challenge = r.header("www-authenticate").unwrap_or_default();
        assert!(challenge.starts_with("Bearer"), "{path}: {:?}", r.headers);
        // a wrong token: 401
        let r = s
            .srv
            .call(
                method.clone(),
                path,
                body,
                Some("rc_0123456789abcdef_nope"),
                &[],
            )
            .await;
        assert_problem(&r, 401);
    }
    // a lookup token on the admin API, or on SCIM: 403
    for path in ["/admin/v1/mappings", "/admin/v1/audit", "/admin/v1/tokens"] {
        let r = s.srv.get(path, &s.lookup).await;
        assert_problem(&r, 403);
        let r = s.srv.get(path, &s.scim).await;
        assert_problem(&r, 403);
        let r = s.srv.call(Method::GET, path, None, None, &[]).await;
        assert_problem(&r, 401);
        assert!(r.header("www-authenticate").is_some());
    }
    let r = s.srv.get("/scim/v2/Users", &s.lookup).await;
    assert_eq!(r.status, 403, "{}", r.text);
    // and the right tokens work
    assert_eq!(s.roles("alice@example.com", "").await.status, 200);
    assert_eq!(s.srv.get("/admin/v1/mappings", &s.admin).await.status, 200);
}

// ---------------------------------------------------------------------------------------------
// Consistency across processes

/// `rolecall mappings apply FILE` against the database of a running server: the server has it
/// within a second (it follows the audit log), on SQLite as on PostgreSQL.
async fn cli_apply_reaches_a_running_server(app: TestApp) {
    let srv = Server::of(&app);
    let lookup = new_token(&app.store, "gateway", Scope::Lookup).await;
    let admin = new_token(&app.store, "root", Scope::Admin).await;
    let alice = scim_user(&srv, &app.token, "alice@example.com", None).await;
    scim_group(&srv, &app.token, "engineering", &[&alice]).await;
    let r = srv.roles(&lookup, "alice@example.com", "").await;
    assert_eq!(r.body["roles"], json!([]), "no mapping yet: {}", r.text);

    let dir = tempfile::tempdir().unwrap();
    let file = write_file(dir.path(), "mapping.toml", SMALL_TOML);
    let out = cli(&app.database_url, &["mappings", "apply", &file]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let (r, took) = poll(
        Duration::from_secs(1),
        || srv.roles(&lookup, "alice@example.com", "?workspace=engineering"),
        |r| r.status == 200 && r.body["effective"]["role"] == "member",
    )
    .await;
    let took = took.unwrap_or_else(|| {
        panic!(
            "the server did not pick up the CLI's mapping within a second: {}",
            r.text
        )
    });
    eprintln!(
        "{:?}: the CLI's mapping reached the server after {took:?}",
        app.backend
    );
    assert_eq!(r.body["mapping_version"], 1);
    let m = srv.get("/admin/v1/mappings", &admin).await;
    assert_eq!(m.body["version"], 1, "{}", m.text);
    assert_eq!(m.header("etag"), Some("W/\"1\""));
    assert_eq!(m.body["document"], small_mapping_normalized());

    // a second apply (engineering becomes admin) arrives too
    let changed = SMALL_TOML.replace(
        "group = \"engineering\"\nrole = \"member\"",
        "group = \"engineering\"\nrole = \"admin\"",
    );
    assert_ne!(changed, SMALL_TOML);
    let file = write_file(dir.path(), "mapping2.toml", &changed);
    let out = cli(&app.database_url, &["mappings", "apply", &file]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let (r, took) = poll(
        Duration::from_secs(1),
        || srv.roles(&lookup, "alice@example.com", "?workspace=engineering"),
        |r| r.body["effective"]["role"] == "admin",
    )
    .await;
    assert!(
        took.is_some(),
        "the second apply did not arrive within a second: {}",
        r.text
    );
    assert_eq!(r.body["mapping_version"], 2);

    // the admin API's read does not wait for the poll: right after a third apply, its
    // version (and ETag, for the If-Match of a PUT) is the new one
    let file = write_file(dir.path(), "mapping3.toml", SMALL_TOML);
    let out = cli(&app.database_url, &["mappings", "apply", &file]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let m = srv.get("/admin/v1/mappings", &admin).await;
    assert_eq!(m.body["version"], 3, "{}", m.text);
    assert_eq!(m.header("etag"), Some("W/\"3\""));
}

/// The small mapping as GET /admin/v1/mappings returns it (defaults filled in).
pub(crate) fn small_mapping_normalized() -> Value {
    let mut doc = small_mapping();
    doc["roles"]["viewer"]["max_tokens"] = json!(0);
    doc["roles"]["viewer"]["rpm"] = json!(0);
    doc
}

/// A server of our own on `url`, with its own Store; the returned sender stops it when dropped.
async fn spawn_server(url: &str) -> (Server, Store, oneshot::Sender<()>) {
    let settings = Settings {
        listen: "127.0.0.1:0".into(),
        database_url: url.to_string(),
        workers: 1,
        max_page_size: 50,
        db_max_connections: 4,
        ..Settings::default()
    };
    let store = connect(&settings).await.expect("connect");
    let app = Application::build_with_store(settings, store.clone())
        .await
        .expect("build app");
    let address = format!("http://127.0.0.1:{}", app.port());
    let (tx, rx) = oneshot::channel::<()>();
    tokio::spawn(app.run_until_stopped(async move {
        let _ = rx.await;
    }));
    (
        Server {
            address,
            client: reqwest::Client::new(),
        },
        store,
        tx,
    )
}

/// Waits (at most a second) until `check` holds on server B; fails otherwise. Returns how long.
async fn seen_on_b(
    what: &str,
    b: &Server,
    lookup: &str,
    user: &str,
    query: &str,
    check: impl Fn(&Resp) -> bool,
) -> Duration {
    let (r, took) = poll(
        Duration::from_secs(1),
        || b.roles(lookup, user, query),
        check,
    )
    .await;
    let took = took.unwrap_or_else(|| {
        panic!(
            "{what}: not visible on server B within a second: {}",
            r.text
        )
    });
    eprintln!("{what}: visible on server B after {took:?}");
    took
}

/// Two rolecall servers on one PostgreSQL database: a change made through A is visible on B
/// within a second (B follows the audit log).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_on_one_postgres_database() {
    let dir = tempfile::tempdir().unwrap();
    let Some(url) = fresh_database(Backend::Postgres, &dir).await else {
        return;
    };
    let (a, store_a, _stop_a) = spawn_server(&url).await;
    let (b, _store_b, _stop_b) = spawn_server(&url).await;
    let scim = new_token(&store_a, "okta", Scope::Scim).await;
    let s = story_on(a.clone(), &store_a, scim).await;
    // tokens made on A are honoured by B
    let view = |srv: &Server, query: &'static str| {
        let srv = srv.clone();
        let lookup = s.lookup.clone();
        async move { srv.roles(&lookup, "alice@example.com", query).await }
    };
    let mut timings = Vec::new();

    // the provisioning and the mapping reach B
    timings.push(
        seen_on_b(
            "provisioning and mapping",
            &b,
            &s.lookup,
            "alice@example.com",
            "?workspace=engineering",
            |r| r.status == 200 && r.body["effective"]["role"] == "member",
        )
        .await,
    );
    assert_eq!(
        view(&b, "").await.body,
        view(&a, "").await.body,
        "A and B give the same answer"
    );
    let (ra, rb) = (view(&a, "").await, view(&b, "").await);
    assert_eq!(
        ra.header("etag"),
        rb.header("etag"),
        "A and B give the same ETag, so a gateway's cache works behind a load balancer"
    );

    // a deactivation through A
    assert_eq!(view(&b, "").await.body["user"]["active"], true);
    set_active(&a, &s.scim, &s.alice, false).await;
    assert_eq!(
        view(&a, "").await.body["user"]["active"],
        false,
        "A itself sees it at once"
    );
    timings.push(
        seen_on_b(
            "deactivation",
            &b,
            &s.lookup,
            "alice@example.com",
            "",
            |r| r.body["user"]["active"] == false && r.body["roles"] == json!([]),
        )
        .await,
    );
    let d = b
        .evaluate(
            &s.lookup,
            &model_call("alice@example.com", HAIKU, "engineering", None),
        )
        .await;
    assert!(!decision(&d), "{}", d.text);
    set_active(&a, &s.scim, &s.alice, true).await;
    timings.push(
        seen_on_b(
            "reactivation",
            &b,
            &s.lookup,
            "alice@example.com",
            "?workspace=engineering",
            |r| r.body["effective"]["role"] == "member",
        )
        .await,
    );

    // a membership change through A
    remove_member(&a, &s.scim, &s.engineering, &s.alice).await;
    timings.push(
        seen_on_b(
            "membership removal",
            &b,
            &s.lookup,
            "alice@example.com",
            "",
            |r| r.body["roles"] == json!([]) && r.body["groups"] == json!([]),
        )
        .await,
    );
    add_member(&a, &s.scim, &s.claude_admin, &s.alice).await;
    timings.push(
        seen_on_b(
            "membership addition",
            &b,
            &s.lookup,
            "alice@example.com",
            "?workspace=legal",
            |r| r.body["effective"]["role"] == "admin",
        )
        .await,
    );

    // a mapping PUT through A: claude-admin becomes member org-wide
    assert_eq!(
        view(&b, "?workspace=legal").await.body["effective"]["role"],
        "admin"
    );
    let mut doc = small_mapping();
    doc["rules"][0]["role"] = json!("member");
    let applied = apply_mapping(&a, &s.admin, &doc).await;
    assert_eq!(applied["version"], 2);
    timings.push(
        seen_on_b(
            "mapping PUT",
            &b,
            &s.lookup,
            "alice@example.com",
            "?workspace=legal",
            |r| r.body["effective"]["role"] == "member" && r.body["mapping_version"] == 2,
        )
        .await,
    );
    let m = b.get("/admin/v1/mappings", &s.admin).await;
    assert_eq!(m.body["version"], 2, "{}", m.text);
    assert_eq!(m.header("etag"), Some("W/\"2\""));

    // a user deleted through A
    let r = a
        .delete(&format!("/scim/v2/Users/{}", s.bob), &s.scim)
        .await;
    assert_eq!(r.status, 204);
    timings.push(
        seen_on_b("deletion", &b, &s.lookup, "bob@example.com", "", |r| {
            r.status == 404
        })
        .await,
    );

    // a token revoked through A stops working on B within a second
    let r = a
        .post(
            "/admin/v1/tokens",
            &json!({"name": "gw-b", "scope": "lookup"}),
            &s.admin,
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let gw = r.body["token"].as_str().unwrap().to_string();
    assert_eq!(b.roles(&gw, "alice@example.com", "").await.status, 200);
    assert_eq!(
        a.delete("/admin/v1/tokens/gw-b", &s.admin).await.status,
        204
    );
    assert_eq!(a.roles(&gw, "alice@example.com", "").await.status, 401);
    timings.push(
        seen_on_b("token revocation", &b, &gw, "alice@example.com", "", |r| {
            r.status == 401
        })
        .await,
    );

    // a key rotation (CLI) reaches both
    let before = jwks(&b).await;
    let out = cli(&url, &["keys", "rotate"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    for srv in [&a, &b] {
        let (r, took) = poll(
            Duration::from_secs(1),
            || srv.call(Method::GET, "/.well-known/jwks.json", None, None, &[]),
            |r| r.body["keys"].as_array().map(Vec::len) == Some(2),
        )
        .await;
        assert!(took.is_some(), "{}: {}", srv.address, r.text);
    }
    assert_eq!(before["keys"].as_array().unwrap().len(), 1);
    let keys = jwks(&a).await;
    let token = b
        .call(
            Method::POST,
            "/v1/users/carol@example.com/token",
            None,
            Some(&s.lookup),
            &[],
        )
        .await;
    let (kid, _) = verify(token.body["token"].as_str().unwrap(), &keys, &b.address).unwrap();
    assert_ne!(
        kid,
        before["keys"][0]["kid"].as_str().unwrap(),
        "B signs with the new key"
    );

    // and the other way round: a change through B reaches A
    set_active(&b, &s.scim, &s.carol, false).await;
    let (r, took) = poll(
        Duration::from_secs(1),
        || a.roles(&s.lookup, "carol@example.com", ""),
        |r| r.body["user"]["active"] == false,
    )
    .await;
    assert!(took.is_some(), "B's change did not reach A: {}", r.text);

    eprintln!("propagation times A -> B: {timings:?}");
}

/// Many concurrent writers through server A (PostgreSQL hands out audit sequence numbers out of
/// commit order), and servers started while the writes are going on: every server ends up with
/// the same view as A within a second of the last write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servers_converge_under_concurrent_writes() {
    let dir = tempfile::tempdir().unwrap();
    let Some(url) = fresh_database(Backend::Postgres, &dir).await else {
        return;
    };
    let (a, store_a, _stop_a) = spawn_server(&url).await;
    let scim = new_token(&store_a, "okta", Scope::Scim).await;
    let s = story_on(a.clone(), &store_a, scim).await;
    // one group per writer (concurrent PATCHes of one group are retried by the server only a
    // few times), each mapped to member in engineering
    let mut doc = small_mapping();
    let mut teams = Vec::new();
    for w in 0..6 {
        let name = format!("team-{w}");
        teams.push(scim_group(&a, &s.scim, &name, &[]).await);
        doc["rules"]
            .as_array_mut()
            .unwrap()
            .push(json!({"group": name, "role": "member", "workspace": "engineering"}));
    }
    apply_mapping(&a, &s.admin, &doc).await;

    let writers: Vec<_> = (0..6)
        .map(|w| {
            let a = a.clone();
            let scim = s.scim.clone();
            let eng = teams[w].clone();
            tokio::spawn(async move {
                let mut names = Vec::new();
                for i in 0..15 {
                    let name = format!("w{w}u{i}@example.com");
                    let id = scim_user(&a, &scim, &name, None).await;
                    if i % 2 == 0 {
                        add_member(&a, &scim, &eng, &id).await;
                    }
                    if i % 5 == 0 {
                        set_active(&a, &scim, &id, false).await;
                    }
                    names.push(name);
                }
                names
            })
        })
        .collect();
    // servers started while the writers write
    let mut others = Vec::new();
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(150)).await;
        others.push(spawn_server(&url).await);
    }
    let mut names = Vec::new();
    for w in writers {
        names.extend(w.await.unwrap());
    }
    names.push("alice@example.com".into());
    let view = |srv: Server, lookup: String, names: Vec<String>| async move {
        let mut out = Vec::new();
        for n in &names {
            let r = srv.roles(&lookup, n, "?workspace=engineering").await;
            out.push((n.clone(), r.status.as_u16(), r.body));
        }
        out
    };
    let want = view(a.clone(), s.lookup.clone(), names.clone()).await;
    assert!(want.iter().all(|(_, status, _)| *status == 200));
    let last_write = Instant::now();
    for (i, (srv, _, _)) in others.iter().enumerate() {
        loop {
            let got = view(srv.clone(), s.lookup.clone(), names.clone()).await;
            if got == want {
                eprintln!(
                    "server {i} agrees with A {:?} after the last write",
                    last_write.elapsed()
                );
                break;
            }
            if last_write.elapsed() > Duration::from_secs(1) {
                let diff: Vec<_> = got
                    .iter()
                    .zip(&want)
                    .filter(|(g, w)| g != w)
                    .map(|(g, w)| format!("{}: got {} {} want {} {}", g.0, g.1, g.2, w.1, w.2))
                    .collect();
                panic!(
                    "server {i} still disagrees with A a second after the last write ({} of {}):\n{}",
                    diff.len(),
                    want.len(),
                    diff.join("\n")
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// A server that starts while another writer's transaction is in flight: the writer got its
/// audit sequence number before a change that committed earlier, and commits after the new
/// server has loaded. The new server must still see the change within a second (as server A,
/// which follows the feed with gap tracking, does).
///
/// The slow writer is played by a raw transaction that does what `Store::replace_user` does for
/// a deactivation (update the row, append the audit entry), held open across the start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]

async fn server_started_while_a_write_is_in_flight() {
    use sqlx::{Connection, Executor};
    let dir = tempfile::tempdir().unwrap();
    let Some(url) = fresh_database(Backend::Postgres, &dir).await else {
        return;
    };
    let (a, store_a, _stop_a) = spawn_server(&url).await;
    let scim = new_token(&store_a, "okta", Scope::Scim).await;
    let s = story_on(a.clone(), &store_a, scim).await;

    // the slow writer: deactivates alice, takes its sequence number, does not commit yet
    let mut conn = sqlx::AnyConnection::connect(&url).await.unwrap();
    let mut tx = conn.begin().await.unwrap();
    tx.execute(
        sqlx::query("UPDATE scim_users SET active = FALSE, version = version + 1 WHERE id = $1")
            .bind(s.alice.clone()),
    )
    .await
    .unwrap();
    tx.execute(
        sqlx::query(
            "INSERT INTO audit_log (at, actor, actor_kind, action, target_type, target_id, summary) \
             VALUES ($1, 'slow', 'scim', 'user.deactivate', 'user', $2, '{}')",
        )
        .bind(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .bind(s.alice.clone()),
    )
    .await
    .unwrap();
    // a later change commits first (through A), then server B starts
    scim_user(&a, &s.scim, "zed@example.com", None).await;
    let (b, _store_b, _stop_b) = spawn_server(&url).await;
    assert_eq!(
        b.roles(&s.lookup, "zed@example.com", "").await.status,
        200,
        "B loaded the committed change"
    );
    assert_eq!(
        b.roles(&s.lookup, "alice@example.com", "").await.body["user"]["active"],
        true
    );
    tx.commit().await.unwrap();
    let committed = Instant::now();

    let (r, took) = poll(
        Duration::from_secs(1),
        || a.roles(&s.lookup, "alice@example.com", ""),
        |r| r.body["user"]["active"] == false,
    )
    .await;
    assert!(took.is_some(), "A missed the late commit: {}", r.text);
    let (r, took) = poll(
        Duration::from_secs(1),
        || b.roles(&s.lookup, "alice@example.com", ""),
        |r| r.body["user"]["active"] == false,
    )
    .await;
    assert!(
        took.is_some(),
        "B never applies a change whose sequence number is below the one it started from \
         ({:?} after the commit): {}",
        committed.elapsed(),
        r.text
    );
}

async fn renames_and_unusual_user_names(app: TestApp) {
    let s = story(&app).await;
    // a userName change: the old name is unknown at once, the new one answers
    let r = s
        .srv
        .patch(
            &format!("/scim/v2/Users/{}", s.alice),
            &json!({"schemas": [PATCH_OP], "Operations": [{"op": "replace", "path": "userName", "value": "alice.liddell@example.com"}]}),
            &s.scim,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_problem(&s.roles("alice@example.com", "").await, 404);
    let r = s
        .roles("Alice.Liddell@example.com", "?workspace=engineering")
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["user"]["userName"], "alice.liddell@example.com");
    assert_eq!(r.body["effective"]["role"], "member");
    // an externalId change likewise
    let r = s
        .srv
        .patch(
            &format!("/scim/v2/Users/{}", s.alice),
            &json!({"schemas": [PATCH_OP], "Operations": [{"op": "replace", "path": "externalId", "value": "00u-alice-2"}]}),
            &s.scim,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_problem(&s.roles("00u-alice", "").await, 404);
    assert_eq!(
        s.roles("00u-alice-2", "").await.body["user"]["id"],
        s.alice.as_str()
    );

    // names that need percent-encoding in the path
    for (name, encoded) in [
        ("o'brien+ops@example.com", "o%27brien%2Bops%40example.com"),
        ("zoë@example.com", "zo%C3%AB@example.com"),
        ("first last@example.com", "first%20last@example.com"),
    ] {
        let id = scim_user(&s.srv, &s.scim, name, None).await;
        add_member(&s.srv, &s.scim, &s.engineering, &id).await;
        let r = s.roles(encoded, "?workspace=engineering").await;
        assert_eq!(r.status, 200, "{name} as {encoded}: {}", r.text);
        assert_eq!(r.body["user"]["userName"], name);
        assert_eq!(r.body["effective"]["role"], "member", "{name}");
        let d = s
            .evaluate(&model_call(name, HAIKU, "engineering", None))
            .await;
        assert!(decision(&d), "{name}: {}", d.text);
        let r = s
            .srv
            .call(
                Method::POST,
                &format!("/v1/users/{encoded}/token"),
                None,
                Some(&s.lookup),
                &[],
            )
            .await;
        assert_eq!(r.status, 200, "{name}: {}", r.text);
    }
    // a literal '+' in the path is a plus, not a space
    let r = s.roles("o'brien+ops@example.com", "").await;
    assert_eq!(r.status, 200, "{}", r.text);
}

async fn default_role_for_unmapped_users(app: TestApp) {
    let s = story(&app).await;
    let dave = scim_user(&s.srv, &s.scim, "dave@example.com", None).await;
    assert_eq!(
        s.roles("dave@example.com", "").await.body["roles"],
        json!([])
    );
    let mut doc = small_mapping();
    doc["default_role"] = json!("viewer");
    let applied = apply_mapping(&s.srv, &s.admin, &doc).await;
    assert!(
        applied["diff"]["users"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["user_id"] == dave.as_str() && c["new"] == "viewer"),
        "{applied}"
    );
    // an unmapped user holds the default everywhere
    let r = s
        .roles("dave@example.com", "?workspace=legal&project=litigation")
        .await;
    assert_eq!(
        r.body["roles"],
        json!([{"scope": {}, "role": "viewer", "via": []}]),
        "{}",
        r.text
    );
    assert_eq!(r.body["effective"]["role"], "viewer");
    // a mapped user keeps the higher role, and the default elsewhere
    let r = s.roles("alice@example.com", "?workspace=engineering").await;
    assert_eq!(r.body["effective"]["role"], "member");
    let r = s.roles("alice@example.com", "?workspace=legal").await;
    assert_eq!(r.body["effective"]["role"], "viewer");
    // the default does not let anyone call a model, and inactive users do not hold it
    let d = s
        .evaluate(&model_call("dave@example.com", HAIKU, "engineering", None))
        .await;
    assert!(!decision(&d));
    set_active(&s.srv, &s.scim, &dave, false).await;
    let r = s.roles("dave@example.com", "?workspace=legal").await;
    assert_eq!(r.body["roles"], json!([]), "{}", r.text);
    assert!(r.body["effective"].is_null());
}

async fn project_and_organization_resources(app: TestApp) {
    let s = story(&app).await;
    let req = |user: &str, action: &str, resource: Value| json!({"subject": {"type": "user", "id": user}, "action": {"name": action}, "resource": resource});
    let project =
        json!({"type": "project", "id": "contracts", "properties": {"workspace": "legal"}});
    let d = s
        .evaluate(&req("bob@example.com", "chats.read", project.clone()))
        .await;
    assert!(decision(&d), "{}", d.text);
    assert_eq!(d.body["context"]["role"], "viewer");
    let d = s
        .evaluate(&req("alice@example.com", "chats.read", project))
        .await;
    assert!(!decision(&d), "{}", d.text);
    // a project resource needs its workspace
    let r = s
        .evaluate(&req(
            "bob@example.com",
            "chats.read",
            json!({"type": "project", "id": "contracts"}),
        ))
        .await;
    assert_problem(&r, 400);
    // the organization: only org-wide roles count
    let org = json!({"type": "organization", "id": "example"});
    let d = s
        .evaluate(&req("carol@example.com", "members.manage", org.clone()))
        .await;
    assert!(decision(&d), "{}", d.text);
    let d = s
        .evaluate(&req("alice@example.com", "chats.read", org))
        .await;
    assert!(!decision(&d), "{}", d.text);
    // unsupported subject and resource types are denials with a reason, not errors
    let mut other = model_call("alice@example.com", HAIKU, "engineering", None);
    other["subject"]["type"] = json!("service");
    let d = s.evaluate(&other).await;
    assert!(!decision(&d));
    assert!(reason(&d).contains("service"), "{}", d.text);
    let d = s
        .evaluate(&req(
            "alice@example.com",
            "chats.read",
            json!({"type": "document", "id": "d1"}),
        ))
        .await;
    assert!(!decision(&d));
    assert!(reason(&d).contains("document"), "{}", d.text);
}

/// AuthZEN 1.0 makes `resource.id` REQUIRED. A workspace resource without one is a malformed
/// request (400), not a question about the organization.
async fn workspace_resource_without_id_is_malformed(app: TestApp) {
    let s = story(&app).await;
    let r = s
        .evaluate(&json!({
            "subject": {"type": "user", "id": "carol@example.com"},
            "action": {"name": "chats.read"},
            "resource": {"type": "workspace"}
        }))
        .await;
    assert_problem(&r, 400);
}

mod workspace_resource_without_id_is_malformed {
    use crate::helpers::{spawn_app, Backend};

    #[tokio::test]

    async fn sqlite() {
        if let Some(app) = spawn_app(Backend::Sqlite).await {
            super::workspace_resource_without_id_is_malformed(app).await;
        }
    }

    #[tokio::test]

    async fn postgres() {
        if let Some(app) = spawn_app(Backend::Postgres).await {
            super::workspace_resource_without_id_is_malformed(app).await;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// `/v1/users/...` paths (matched by hand, not by the router)

async fn user_paths_matched_by_hand(app: TestApp) {
    let s = story(&app).await;
    // a percent-encoded userName is the same user
    let r = s
        .roles("alice%40example.com", "?workspace=engineering")
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["user"]["id"], json!(s.alice));
    assert_eq!(r.body["effective"]["role"], "member", "{}", r.text);
    let r = s.roles("ALICE%40Example.COM", "").await;
    assert_eq!(r.body["user"]["id"], json!(s.alice), "{}", r.text);
    // wrong methods: 405 with Allow
    for (method, path, allow) in [
        (Method::POST, "/v1/users/alice@example.com/roles", "GET"),
        (Method::DELETE, "/v1/users/alice@example.com/roles", "GET"),
        (Method::GET, "/v1/users/alice@example.com/token", "POST"),
    ] {
        let r = s
            .srv
            .call(method.clone(), path, None, Some(&s.lookup), &[])
            .await;
        assert_problem(&r, 405);
        assert_eq!(r.header("allow"), Some(allow), "{method} {path}");
    }
    // paths that name no endpoint: 404 problems (after authentication)
    for path in [
        "/v1/users",
        "/v1/users/",
        "/v1/users/alice@example.com",
        "/v1/users/alice@example.com/",
        "/v1/users/alice@example.com/groups",
        "/v1/users/alice@example.com/roles/extra",
        "/v1/users//roles",
    ] {
        let r = s.srv.get(path, &s.lookup).await;
        assert_problem(&r, 404);
        let r = s.srv.call(Method::GET, path, None, None, &[]).await;
        assert_problem(&r, 401);
    }
    // an unknown user: 404 problem; bad percent-encoding of UTF-8: 400 problem
    assert_problem(&s.roles("nobody%40example.com", "").await, 404);
    assert_problem(&s.roles("%FF%FE", "").await, 400);
    // the metrics name the route pattern, never the user
    let r = s.srv.call(Method::GET, "/metrics", None, None, &[]).await;
    assert!(
        r.text.contains("route=\"/v1/users/{user}/roles\""),
        "{}",
        r.text
    );
    assert!(!r.text.contains("alice"), "{}", r.text);
}

// ---------------------------------------------------------------------------------------------
// The single evaluation reads the common request shape straight into typed fields and falls
// back to the general reading for anything else; the batch endpoint always reads generally.
// Both must decide alike.

async fn evaluation_shapes_agree_with_the_batch_path(app: TestApp) {
    let s = story(&app).await;
    let plain = model_call("alice@example.com", HAIKU, "engineering", None);
    let mut escaped = plain.clone();
    escaped["subject"]["id"] = json!("alice\u{0040}example.com");
    let escaped_text = plain
        .to_string()
        .replace("alice@example.com", "alice\\u0040example.com");
    let mut extra = plain.clone();
    extra["subject"]["properties"] = json!({"department": "R&D", "level": 3});
    extra["resource"]["properties"]["region"] = json!("eu");
    extra["action"]["properties"] = json!({"method": "POST"});
    extra["context"] = json!({"max_tokens": 100, "time": "2026-11-24T10:00:00Z"});
    let mut null_tokens = plain.clone();
    null_tokens["context"] = json!({"max_tokens": null});
    let mut number_project = plain.clone();
    number_project["resource"]["properties"]["project"] = json!(7);
    let mut number_context = plain.clone();
    number_context["context"] = json!(5);
    let mut opus = model_call("alice@example.com", OPUS, "engineering", None);
    opus["context"] = json!({"max_tokens": 99999});
    let mut group_subject = plain.clone();
    group_subject["subject"]["type"] = json!("group");
    let deactivated = model_call("ALICE@EXAMPLE.COM", HAIKU, "legal", None);
    for (what, body) in [
        ("plain", plain.clone()),
        ("escaped id", escaped),
        ("extra members", extra),
        ("null max_tokens", null_tokens),
        ("context a number", number_context),
        ("a denied model", opus),
        ("a group subject", group_subject),
        ("another workspace", deactivated),
    ] {
        let single = s.evaluate(&body).await;
        let batch = s
            .srv
            .post(
                "/access/v1/evaluations",
                &json!({"evaluations": [body]}),
                &s.lookup,
            )
            .await;
        assert_eq!(single.status, 200, "{what}: {}", single.text);
        assert_eq!(batch.status, 200, "{what}: {}", batch.text);
        assert_eq!(
            single.body, batch.body["evaluations"][0],
            "{what}: single {} batch {}",
            single.text, batch.text
        );
    }
    // a project named by a number is refused by both (it used to be read as no project)
    let single = s.evaluate(&number_project).await;
    assert_eq!(single.status, 400, "{}", single.text);
    let batch = s
        .srv
        .post(
            "/access/v1/evaluations",
            &json!({"evaluations": [number_project]}),
            &s.lookup,
        )
        .await;
    assert_eq!(batch.status, 200, "{}", batch.text);
    assert_eq!(
        batch.body["evaluations"][0]["context"]["error"]["status"], 400,
        "{}",
        batch.text
    );
    // a body with a JSON escape inside a name, as raw text
    let r = s
        .srv
        .client
        .post(format!("{}/access/v1/evaluation", s.srv.address))
        .bearer_auth(&s.lookup)
        .header("content-type", "application/json")
        .body(escaped_text)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["decision"], json!(true), "{body}");
}

// ---------------------------------------------------------------------------------------------
// The single evaluation reads its body by hand; the batch endpoint reads it with `web::Json` and
// the same configuration. Whatever is wrong with a body (its type, its size, its syntax), both
// must answer alike, with the same problem body.

async fn evaluation_reads_its_body_as_the_batch_endpoint_does(app: TestApp) {
    let s = story(&app).await;
    let good = model_call("alice@example.com", HAIKU, "engineering", None).to_string();
    // `web::Json` with `problem_json_config`: the answers both endpoints must give
    let limit = 1024 * 1024;
    let too_large = format!("the request body is larger than {limit} bytes");
    let unsupported = "the request body must be application/json";
    let padded = |bytes: usize| {
        let mut v = model_call("alice@example.com", HAIKU, "engineering", None);
        v["context"] = json!({"padding": "a".repeat(bytes)});
        v.to_string()
    };
    let mut invalid_utf8 = br#"{"subject":{"type":"user","id":"alice@example.com","x":""#.to_vec();
    invalid_utf8.extend_from_slice(b"\xff\xfe");
    invalid_utf8.extend_from_slice(
        br#""},"action":{"name":"messages.create"},"resource":{"type":"model","id":"m"}}"#,
    );
    let trailing = format!(
        "the request body is not valid JSON: trailing characters at line 1 column {}",
        good.len() + 2
    );
    let cut_short = format!(
        "the request body is not valid JSON: EOF while parsing an object at line 1 column {}",
        good.len() - 1
    );
    // what, content type, body, status, detail
    type Case<'a> = (&'a str, Option<&'a str>, Vec<u8>, u16, Option<&'a str>);
    let cases: Vec<Case<'_>> = vec![
        (
            "no content type",
            None,
            good.clone().into(),
            415,
            Some(unsupported),
        ),
        (
            "text/plain",
            Some("text/plain"),
            good.clone().into(),
            415,
            Some(unsupported),
        ),
        (
            "form",
            Some("application/x-www-form-urlencoded"),
            good.clone().into(),
            415,
            Some(unsupported),
        ),
        (
            "not a media type",
            Some("json"),
            good.clone().into(),
            415,
            Some(unsupported),
        ),
        (
            "over the limit",
            Some("application/json"),
            padded(limit).into(),
            413,
            Some(&too_large),
        ),
        (
            "empty",
            Some("application/json"),
            Vec::new(),
            400,
            Some(
                "the request body is not valid JSON: EOF while parsing a value at line 1 column 0",
            ),
        ),
        (
            "not JSON",
            Some("application/json"),
            b"{not json".to_vec(),
            400,
            Some("the request body is not valid JSON: key must be a string at line 1 column 2"),
        ),
        (
            "trailing characters",
            Some("application/json"),
            format!("{good} x").into(),
            400,
            Some(&trailing),
        ),
        (
            "cut short",
            Some("application/json"),
            good.as_bytes()[..good.len() - 1].to_vec(),
            400,
            Some(&cut_short),
        ),
        (
            "invalid UTF-8 in an unknown member",
            Some("application/json"),
            invalid_utf8,
            400,
            None,
        ),
        (
            "nested too deeply",
            Some("application/json"),
            format!(
                "{},\"context\":{{\"max_tokens\":{}{}}}}}",
                &good[..good.len() - 1],
                "[".repeat(200),
                "]".repeat(200)
            )
            .into(),
            400,
            None,
        ),
    ];
    for (what, content_type, body, status, detail) in cases {
        let mut answers = Vec::new();
        for path in ["/access/v1/evaluation", "/access/v1/evaluations"] {
            let mut req = s
                .srv
                .client
                .post(format!("{}{path}", s.srv.address))
                .bearer_auth(&s.lookup)
                .body(body.clone());
            if let Some(ct) = content_type {
                req = req.header("content-type", ct);
            }
            let r = req.send().await.unwrap();
            let got = r.status().as_u16();
            let ct = r
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let text = r.text().await.unwrap();
            assert_eq!(got, status, "{what} {path}: {text}");
            assert_eq!(
                ct.as_deref(),
                Some("application/problem+json"),
                "{what} {path}"
            );
            let problem: Value = serde_json::from_str(&text).unwrap();
            assert_eq!(problem["status"], json!(status), "{what} {path}: {text}");
            if let Some(detail) = detail {
                assert_eq!(problem["detail"], json!(detail), "{what} {path}: {text}");
            }
            answers.push(text);
        }
        assert_eq!(answers[0], answers[1], "{what}: single and batch differ");
    }
    // JSON types both accept: any `…/json`, any `…+json`, with parameters
    for ct in [
        "application/json",
        "application/json; charset=utf-8",
        "Application/JSON",
        "application/scim+json",
        "text/json",
    ] {
        let r = s
            .srv
            .client
            .post(format!("{}/access/v1/evaluation", s.srv.address))
            .bearer_auth(&s.lookup)
            .header("content-type", ct)
            .body(good.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{ct}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["decision"], json!(true), "{ct}: {body}");
    }
    // without Content-Length (chunked): a body in several chunks is read whole, one over the
    // limit is refused as it comes in
    let head = |path: &str| {
        format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\n\
             Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n",
            s.srv.address.trim_start_matches("http://"),
            s.lookup
        )
    };
    let chunks = |body: &str, size: usize| -> Vec<Vec<u8>> {
        body.as_bytes().chunks(size).map(<[u8]>::to_vec).collect()
    };
    let (status, text) = crate::errors::raw_http(
        &s.srv.address,
        head("/access/v1/evaluation"),
        chunks(&good, 16),
    )
    .await;
    assert_eq!(status, 200, "{text}");
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["decision"], json!(true), "{text}");
    let big = padded(2 * limit);
    let mut answers = Vec::new();
    for path in ["/access/v1/evaluation", "/access/v1/evaluations"] {
        let (status, text) =
            crate::errors::raw_http(&s.srv.address, head(path), chunks(&big, 64 * 1024)).await;
        assert_eq!(status, 413, "{path}: {text}");
        let problem: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(problem["detail"], json!(too_large), "{path}: {text}");
        answers.push(text);
    }
    assert_eq!(answers[0], answers[1]);
    // and a good request still works
    assert!(decision(
        &s.evaluate(&json!(serde_json::from_str::<Value>(&good).unwrap()))
            .await
    ));
}
