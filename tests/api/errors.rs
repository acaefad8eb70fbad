//! Every error status the server produces, each with its body: SCIM errors under `/scim/v2`,
//! JSON problem bodies elsewhere, never a 500 for a client's mistake or a database outage.
//! Failed writes must leave the database as it was.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use rolecall::auth::Scope;
use rolecall::config::Settings;
use rolecall::startup::{self, Application};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::both;
use crate::helpers::{self, new_token, Backend, Resp, TestApp, GROUP, PATCH_OP, USER};
use crate::users::urlencode;

both!(
    not_found,
    not_found_outside_scim_is_a_problem_body,
    group_external_id_is_unique,
    invalid_syntax,
    invalid_value_writes_nothing,
    invalid_filter,
    invalid_patch_path_and_mutability,
    payload_too_large,
    payload_too_large_without_content_length,
    unsupported_media_type,
    method_not_allowed,
    precondition_failed,
    database_closed_is_503,
);

/// A request with a raw body and an explicit (or no) content type, authenticated with the
/// app's token.
pub async fn raw(
    app: &TestApp,
    method: Method,
    path: &str,
    content_type: Option<&str>,
    body: impl Into<reqwest::Body>,
) -> Resp {
    let mut req = app
        .client
        .request(method, format!("{}{path}", app.address))
        .bearer_auth(&app.token)
        .body(body);
    if let Some(ct) = content_type {
        req = req.header("content-type", ct);
    }
    into_resp(req.send().await.expect("request")).await
}

pub async fn into_resp(res: reqwest::Response) -> Resp {
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

/// Asserts a JSON problem body (RFC 9457), the error form outside `/scim/v2`.
pub fn assert_problem(r: &Resp, status: u16) {
    assert_eq!(r.status.as_u16(), status, "body: {}", r.text);
    assert_eq!(
        r.header("content-type"),
        Some("application/problem+json"),
        "{}",
        r.text
    );
    assert_eq!(r.body["status"], json!(status), "{}", r.text);
    assert!(
        r.body["detail"].as_str().is_some_and(|d| !d.is_empty()),
        "{}",
        r.text
    );
    assert!(
        r.body["title"].as_str().is_some_and(|t| !t.is_empty()),
        "{}",
        r.text
    );
}

async fn total(app: &TestApp, endpoint: &str) -> i64 {
    let r = app.get(&format!("/scim/v2/{endpoint}?count=0")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.body["totalResults"].as_i64().expect("totalResults")
}

/// Every user and group, as returned by the list endpoints (the tests stay far below the
/// page cap of 50).
async fn snapshot(app: &TestApp) -> (Value, Value) {
    let users = app.get("/scim/v2/Users?count=50").await;
    let groups = app.get("/scim/v2/Groups?count=50").await;
    assert_eq!(users.status, 200, "{}", users.text);
    assert_eq!(groups.status, 200, "{}", groups.text);
    (users.body, groups.body)
}

fn random_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

async fn not_found(app: TestApp) {
    let user = random_id();
    let group = random_id();
    app.get(&format!("/scim/v2/Users/{user}"))
        .await
        .assert_scim_error(404, None);
    app.get(&format!("/scim/v2/Groups/{group}"))
        .await
        .assert_scim_error(404, None);
    // writes to a resource that does not exist are 404 too, not 400 or 500
    let put = json!({"schemas": [USER], "userName": "ghost@example.com"});
    app.put(&format!("/scim/v2/Users/{user}"), &put)
        .await
        .assert_scim_error(404, None);
    let patch = json!({"schemas": [PATCH_OP], "Operations": [{"op": "replace", "path": "displayName", "value": "x"}]});
    app.patch(&format!("/scim/v2/Users/{user}"), &patch)
        .await
        .assert_scim_error(404, None);
    app.patch(&format!("/scim/v2/Groups/{group}"), &patch)
        .await
        .assert_scim_error(404, None);
    app.delete(&format!("/scim/v2/Users/{user}"))
        .await
        .assert_scim_error(404, None);
    app.delete(&format!("/scim/v2/Groups/{group}"))
        .await
        .assert_scim_error(404, None);
    // the PUT did not create anything
    assert_eq!(total(&app, "Users").await, 0);
    // an unknown endpoint under /scim/v2 answers in SCIM form
    for path in ["/scim/v2/Nope", "/scim/v2/Users/a/b", "/scim/v2/Me"] {
        app.get(path).await.assert_scim_error(404, None);
    }
    app.post("/scim/v2/Nope", &json!({"schemas": [USER]}))
        .await
        .assert_scim_error(404, None);
}

async fn not_found_outside_scim_is_a_problem_body(app: TestApp) {
    for path in ["/nope", "/scim", "/scim/v1/Users", "/healthz/x"] {
        let r = app.get(path).await;
        assert_problem(&r, 404);
    }
}

async fn group_external_id_is_unique(app: TestApp) {
    let body =
        |name: &str| json!({"schemas": [GROUP], "displayName": name, "externalId": "grp-ext-1"});
    let first = app.post("/scim/v2/Groups", &body("one")).await;
    assert_eq!(first.status, 201, "{}", first.text);
    app.post("/scim/v2/Groups", &body("two"))
        .await
        .assert_scim_error(409, Some("uniqueness"));
    assert_eq!(total(&app, "Groups").await, 1);
    // a replace onto another group's externalId is a conflict too, and changes nothing
    let other = app
        .post(
            "/scim/v2/Groups",
            &json!({"schemas": [GROUP], "displayName": "three", "externalId": "grp-ext-3"}),
        )
        .await;
    assert_eq!(other.status, 201, "{}", other.text);
    let other_id = other.body["id"].as_str().unwrap();
    app.put(&format!("/scim/v2/Groups/{other_id}"), &body("three"))
        .await
        .assert_scim_error(409, Some("uniqueness"));
    let after = app.get(&format!("/scim/v2/Groups/{other_id}")).await;
    assert_eq!(after.body["externalId"], "grp-ext-3");
    assert_eq!(after.body["meta"]["version"], other.body["meta"]["version"]);
}

async fn invalid_syntax(app: TestApp) {
    let id = app.create_user("alice@example.com").await;
    let user_path = format!("/scim/v2/Users/{id}");
    let before = snapshot(&app).await;
    let scim = Some("application/scim+json");
    let malformed =
        r#"{"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "x""#;
    for (method, path) in [
        (Method::POST, "/scim/v2/Users"),
        (Method::PUT, user_path.as_str()),
        (Method::PATCH, user_path.as_str()),
        (Method::POST, "/scim/v2/Groups"),
    ] {
        let r = raw(&app, method.clone(), path, scim, malformed).await;
        r.assert_scim_error(400, Some("invalidSyntax"));
        // not JSON at all, and an empty body
        let r = raw(&app, method.clone(), path, scim, "userName=x").await;
        r.assert_scim_error(400, Some("invalidSyntax"));
        let r = raw(&app, method.clone(), path, scim, "").await;
        r.assert_scim_error(400, Some("invalidSyntax"));
        // valid JSON that is not an object
        for body in [
            json!([{"schemas": [USER], "userName": "x"}]),
            json!("x"),
            json!(1),
        ] {
            let r = raw(&app, method.clone(), path, scim, body.to_string()).await;
            r.assert_scim_error(400, Some("invalidSyntax"));
        }
    }
    // PATCH without the PatchOp schema, or with a wrong one
    for schemas in [json!(null), json!([]), json!([USER])] {
        let mut body =
            json!({"Operations": [{"op": "replace", "path": "displayName", "value": "x"}]});
        if !schemas.is_null() {
            body["schemas"] = schemas;
        }
        let r = app.patch(&user_path, &body).await;
        r.assert_scim_error(400, Some("invalidSyntax"));
        assert!(
            r.body["detail"].as_str().unwrap().contains(PATCH_OP),
            "{}",
            r.text
        );
    }
    // PATCH with an unknown op, without an op, without Operations, with no operations
    let r = app
        .patch(
            &user_path,
            &json!({"schemas": [PATCH_OP], "Operations": [{"op": "move", "path": "displayName", "value": "x"}]}),
        )
        .await;
    r.assert_scim_error(400, Some("invalidSyntax"));
    assert!(
        r.body["detail"].as_str().unwrap().contains("move"),
        "{}",
        r.text
    );
    for body in [
        json!({"schemas": [PATCH_OP], "Operations": [{"path": "displayName", "value": "x"}]}),
        json!({"schemas": [PATCH_OP]}),
        json!({"schemas": [PATCH_OP], "Operations": []}),
        json!({"schemas": [PATCH_OP], "Operations": [{"op": "replace", "path": "displayName"}]}),
    ] {
        app.patch(&user_path, &body)
            .await
            .assert_scim_error(400, Some("invalidSyntax"));
    }
    assert_eq!(
        snapshot(&app).await,
        before,
        "a rejected request changed data"
    );
}

async fn invalid_value_writes_nothing(app: TestApp) {
    let alice = app.create_user("alice@example.com").await;
    let group = app.create_group("engineering", &[&alice]).await;
    let before = snapshot(&app).await;

    let bad_users = [
        (json!({"schemas": [USER], "active": true}), "userName"),
        (json!({"schemas": [USER], "userName": ""}), "userName"),
        (json!({"schemas": [USER], "userName": 42}), "userName"),
        (
            json!({"schemas": [USER], "userName": ["a@x.com"]}),
            "userName",
        ),
        (
            json!({"schemas": [USER], "userName": "bob@example.com", "active": "maybe"}),
            "active",
        ),
        (
            json!({"schemas": [USER], "userName": "bob@example.com", "name": "Bob Smith"}),
            "name",
        ),
        (
            json!({"schemas": [USER], "userName": "bob@example.com", "emails": [{"value": 7}]}),
            "value",
        ),
        (json!({"userName": "bob@example.com"}), "schemas"),
        (
            json!({"schemas": [GROUP], "userName": "bob@example.com"}),
            "schemas",
        ),
        (
            json!({"schemas": USER, "userName": "bob@example.com"}),
            "schemas",
        ),
    ];
    for (body, mentions) in &bad_users {
        let r = app.post("/scim/v2/Users", body).await;
        r.assert_scim_error(400, Some("invalidValue"));
        assert!(
            r.body["detail"].as_str().unwrap().contains(mentions),
            "detail should mention {mentions}: {}",
            r.text
        );
        // the same document as a replace of an existing user
        let r = app.put(&format!("/scim/v2/Users/{alice}"), body).await;
        r.assert_scim_error(400, Some("invalidValue"));
    }
    // a PATCH that would leave an invalid document
    for op in [
        json!({"op": "replace", "path": "active", "value": "maybe"}),
        json!({"op": "replace", "path": "userName", "value": 42}),
        json!({"op": "remove", "path": "userName"}),
        json!({"op": "replace", "path": "name", "value": "Alice"}),
    ] {
        let r = app
            .patch(
                &format!("/scim/v2/Users/{alice}"),
                &json!({"schemas": [PATCH_OP], "Operations": [op]}),
            )
            .await;
        r.assert_scim_error(400, Some("invalidValue"));
    }
    // an operation list applies entirely or not at all
    let r = app
        .patch(
            &format!("/scim/v2/Users/{alice}"),
            &json!({"schemas": [PATCH_OP], "Operations": [
                {"op": "replace", "path": "displayName", "value": "changed"},
                {"op": "replace", "path": "active", "value": "maybe"}
            ]}),
        )
        .await;
    r.assert_scim_error(400, Some("invalidValue"));

    let ghost = random_id();
    let bad_groups = [
        (json!({"schemas": [GROUP]}), "displayName"),
        (
            json!({"schemas": [GROUP], "displayName": "  "}),
            "displayName",
        ),
        (json!({"schemas": [GROUP], "displayName": 5}), "displayName"),
        (json!({"displayName": "g"}), "schemas"),
        (
            json!({"schemas": [GROUP], "displayName": "g", "members": [{"value": ghost}]}),
            ghost.as_str(),
        ),
        (
            json!({"schemas": [GROUP], "displayName": "g", "members": [{"value": alice}, {"value": ghost}]}),
            ghost.as_str(),
        ),
        (
            json!({"schemas": [GROUP], "displayName": "g", "members": [{"value": alice, "type": "Group"}]}),
            alice.as_str(),
        ),
        (
            json!({"schemas": [GROUP], "displayName": "g", "members": "everyone"}),
            "members",
        ),
    ];
    for (body, mentions) in &bad_groups {
        let r = app.post("/scim/v2/Groups", body).await;
        r.assert_scim_error(400, Some("invalidValue"));
        assert!(
            r.body["detail"].as_str().unwrap().contains(mentions),
            "detail should mention {mentions}: {}",
            r.text
        );
        let r = app.put(&format!("/scim/v2/Groups/{group}"), body).await;
        r.assert_scim_error(400, Some("invalidValue"));
    }
    // adding an unknown member through PATCH adds nothing, not even the known ones
    let bob = app.create_user("bob@example.com").await;
    let before_patch = snapshot(&app).await;
    let r = app
        .patch(
            &format!("/scim/v2/Groups/{group}"),
            &json!({"schemas": [PATCH_OP], "Operations": [
                {"op": "add", "path": "members", "value": [{"value": bob}, {"value": ghost}]}
            ]}),
        )
        .await;
    r.assert_scim_error(400, Some("invalidValue"));
    assert_eq!(
        snapshot(&app).await,
        before_patch,
        "a rejected PATCH changed data"
    );
    // a group may not contain itself
    let r = app
        .patch(
            &format!("/scim/v2/Groups/{group}"),
            &json!({"schemas": [PATCH_OP], "Operations": [
                {"op": "add", "path": "members", "value": [{"value": group}]}
            ]}),
        )
        .await;
    r.assert_scim_error(400, Some("invalidValue"));

    // nothing above was written
    let after = snapshot(&app).await;
    assert_eq!(after.1, before.1, "groups changed");
    assert_eq!(after.0["totalResults"], 2);
    assert_eq!(
        after.0["Resources"][0], before.0["Resources"][0],
        "alice changed"
    );
}

async fn invalid_filter(app: TestApp) {
    app.create_user("alice@example.com").await;
    let app_ref = &app;
    let get = move |f: String| async move {
        let r = app_ref
            .get(&format!("/scim/v2/Users?filter={}", urlencode(&f)))
            .await;
        r.assert_scim_error(400, Some("invalidFilter"));
        r.body["detail"].as_str().unwrap().to_string()
    };
    // every detail says what is wrong: the operator, the attribute, the limit
    let d = get(r#"userName eq"#.into()).await;
    assert!(d.contains("eq"), "{d}");
    let d = get(r#"userName xx "a""#.into()).await;
    assert!(d.contains("xx"), "{d}");
    let d = get(r#"titel eq "x""#.into()).await;
    assert!(d.contains("titel"), "{d}");
    let d = get(r#"userName eq "a" and titel pr"#.into()).await;
    assert!(d.contains("titel"), "{d}");
    let d = get(
        r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:departement eq "x""#.into(),
    )
    .await;
    assert!(d.contains("departement"), "{d}");
    let d = get(format!("{}userName pr{}", "(".repeat(100), ")".repeat(100))).await;
    assert!(d.contains("deep") || d.contains("nest"), "{d}");
    let d = get(format!("{}userName pr", "not (".repeat(100))).await;
    assert!(!d.is_empty(), "{d}");
    let d = get(format!(
        "userName eq \"a\"{}",
        " or userName eq \"a\"".repeat(100)
    ))
    .await;
    assert!(!d.is_empty(), "{d}");
    for f in [
        r#"userName eq "unterminated"#,
        r#"(userName eq "a""#,
        r#"userName eq "a")"#,
        r#"userName eq "a" and"#,
        r#"eq "a""#,
        r#"userName pr "a""#,
        r#"emails[type eq "work""#,
    ] {
        get(f.into()).await;
    }
    // a filter longer than the limit is refused, not evaluated
    let long = format!("userName eq \"{}\"", "a".repeat(10_000));
    get(long).await;
    // groups too
    let r = app
        .get(&format!(
            "/scim/v2/Groups?filter={}",
            urlencode(r#"userName eq "x""#)
        ))
        .await;
    r.assert_scim_error(400, Some("invalidFilter"));
    let r = app
        .get(&format!(
            "/scim/v2/Groups?filter={}",
            urlencode("displayName eq")
        ))
        .await;
    r.assert_scim_error(400, Some("invalidFilter"));
}

async fn invalid_patch_path_and_mutability(app: TestApp) {
    let id = app.create_user("alice@example.com").await;
    let path = format!("/scim/v2/Users/{id}");
    let before = snapshot(&app).await;
    let op = |op: Value| json!({"schemas": [PATCH_OP], "Operations": [op]});
    for bad in [
        r#"emails[type eq"#,
        r#"emails[type eq "work""#,
        r#"emails[type eq "work"]]"#,
        r#"name..givenName"#,
        // an unknown schema in the core namespace (any other URN is an extension rolecall
        // keeps as sent, as Entra ID's custom ones: see idp_replay.rs)
        r#"urn:ietf:params:scim:schemas:core:2.0:Nope:attr"#,
    ] {
        let r = app
            .patch(
                &path,
                &op(json!({"op": "replace", "path": bad, "value": "x"})),
            )
            .await;
        r.assert_scim_error(400, Some("invalidPath"));
    }
    let r = app
        .patch(
            &path,
            &op(json!({"op": "replace", "path": 5, "value": "x"})),
        )
        .await;
    r.assert_scim_error(400, Some("invalidPath"));
    // read-only attributes (meta: see patch_of_meta_is_refused)
    for op_name in ["replace", "add"] {
        let r = app
            .patch(
                &path,
                &op(json!({"op": op_name, "path": "id", "value": "0000"})),
            )
            .await;
        r.assert_scim_error(400, Some("mutability"));
    }
    let r = app
        .patch(&path, &op(json!({"op": "remove", "path": "id"})))
        .await;
    r.assert_scim_error(400, Some("mutability"));
    // remove without a path: noTarget
    let r = app.patch(&path, &op(json!({"op": "remove"}))).await;
    r.assert_scim_error(400, Some("noTarget"));
    assert_eq!(snapshot(&app).await, before);
    assert_eq!(app.get(&path).await.status, 200);
}

fn big_user(bytes: usize) -> String {
    json!({"schemas": [USER], "userName": "big@example.com", "x-padding": "a".repeat(bytes)})
        .to_string()
}

async fn payload_too_large(app: TestApp) {
    let id = app.create_user("alice@example.com").await;
    let before = snapshot(&app).await;
    let scim = Some("application/scim+json");
    let body = big_user(1024 * 1024 + 100);
    let r = raw(&app, Method::POST, "/scim/v2/Users", scim, body.clone()).await;
    r.assert_scim_error(413, None);
    assert!(
        r.body["detail"].as_str().unwrap().contains("1048576"),
        "{}",
        r.text
    );
    let r = raw(
        &app,
        Method::PUT,
        &format!("/scim/v2/Users/{id}"),
        scim,
        body.clone(),
    )
    .await;
    r.assert_scim_error(413, None);
    let r = raw(&app, Method::POST, "/scim/v2/Groups", scim, body).await;
    r.assert_scim_error(413, None);
    assert_eq!(
        snapshot(&app).await,
        before,
        "an oversized request wrote data"
    );
    // a body just under the limit is read (its bulk here a password, which is discarded:
    // a stored document may take at most 256 KiB)
    let under = json!({"schemas": [USER], "userName": "big@example.com",
        "password": "a".repeat(1024 * 1024 - 200)})
    .to_string();
    let r = raw(&app, Method::POST, "/scim/v2/Users", scim, under).await;
    assert_eq!(r.status, 201, "{}", &r.text[..r.text.len().min(300)]);
    // ... and a document that would take more than 256 KiB is refused, as it is
    let before = snapshot(&app).await;
    let r = raw(
        &app,
        Method::POST,
        "/scim/v2/Users",
        scim,
        big_user(300 * 1024),
    )
    .await;
    r.assert_scim_error(400, Some("invalidValue"));
    assert!(
        r.body["detail"].as_str().unwrap().contains("262144"),
        "{}",
        r.text
    );
    assert_eq!(snapshot(&app).await, before);
}

/// A raw HTTP/1.1 exchange over TCP, for what reqwest will not send (a chunked body):
/// returns the status and the response body.
pub(crate) async fn raw_http(
    address: &str,
    head: String,
    body_chunks: Vec<Vec<u8>>,
) -> (u16, String) {
    let hostport = address.trim_start_matches("http://").to_string();
    let stream = TcpStream::connect(&hostport).await.expect("connect");
    let (mut rd, mut wr) = stream.into_split();
    // write concurrently: the server may answer (and stop reading) before the body is sent
    let writer = tokio::spawn(async move {
        wr.write_all(head.as_bytes()).await?;
        for chunk in body_chunks {
            wr.write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
                .await?;
            wr.write_all(&chunk).await?;
            wr.write_all(b"\r\n").await?;
        }
        wr.write_all(b"0\r\n\r\n").await?;
        wr.flush().await?;
        Ok::<_, std::io::Error>(wr)
    });
    let mut buf = Vec::new();
    let mut tmp = [0u8; 8192];
    let read = async {
        loop {
            let n = rd.read(&mut tmp).await.unwrap_or(0);
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&tmp[..n]);
            // stop once the whole response (with its Content-Length) is in
            let text = String::from_utf8_lossy(&buf);
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let len = head
                    .lines()
                    .find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.eq_ignore_ascii_case("content-length")
                            .then(|| v.trim().parse::<usize>().ok())?
                    })
                    .unwrap_or(usize::MAX);
                if body.len() >= len {
                    break;
                }
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .expect("no response within 10 s");
    writer.abort();
    let text = String::from_utf8_lossy(&buf).to_string();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

async fn payload_too_large_without_content_length(app: TestApp) {
    let before = snapshot(&app).await;
    let body = big_user(2 * 1024 * 1024).into_bytes();
    let chunks: Vec<Vec<u8>> = body.chunks(64 * 1024).map(<[u8]>::to_vec).collect();
    let head = format!(
        "POST /scim/v2/Users HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/scim+json\r\nTransfer-Encoding: chunked\r\n\r\n",
        app.address.trim_start_matches("http://"),
        app.token
    );
    let (status, body) = raw_http(&app.address, head, chunks).await;
    assert_eq!(status, 413, "{body}");
    let body: Value = serde_json::from_str(&body).expect("a JSON body");
    assert_eq!(body["status"], "413");
    assert_eq!(
        body["schemas"][0],
        "urn:ietf:params:scim:api:messages:2.0:Error"
    );
    assert_eq!(
        snapshot(&app).await,
        before,
        "an oversized request wrote data"
    );
}

async fn unsupported_media_type(app: TestApp) {
    let id = app.create_user("alice@example.com").await;
    let before = snapshot(&app).await;
    let user = json!({"schemas": [USER], "userName": "bob@example.com"}).to_string();
    let patch = json!({"schemas": [PATCH_OP], "Operations": [{"op": "replace", "path": "displayName", "value": "x"}]}).to_string();
    let user_path = format!("/scim/v2/Users/{id}");
    for ct in [
        Some("text/plain"),
        Some("application/xml"),
        Some("application/x-www-form-urlencoded"),
        Some("multipart/form-data; boundary=x"),
        None,
    ] {
        let r = raw(&app, Method::POST, "/scim/v2/Users", ct, user.clone()).await;
        r.assert_scim_error(415, None);
        let r = raw(&app, Method::PUT, &user_path, ct, user.clone()).await;
        r.assert_scim_error(415, None);
        let r = raw(&app, Method::PATCH, &user_path, ct, patch.clone()).await;
        r.assert_scim_error(415, None);
    }
    assert_eq!(snapshot(&app).await, before, "a refused request wrote data");
    // what Okta and Entra send is fine
    for (i, ct) in [
        "application/scim+json; charset=utf-8",
        "application/json",
        "application/json; charset=utf-8",
        "Application/SCIM+JSON",
    ]
    .into_iter()
    .enumerate()
    {
        let body = json!({"schemas": [USER], "userName": format!("ok{i}@example.com")});
        let r = raw(
            &app,
            Method::POST,
            "/scim/v2/Users",
            Some(ct),
            body.to_string(),
        )
        .await;
        assert_eq!(r.status, 201, "{ct}: {}", r.text);
    }
}

async fn method_not_allowed(app: TestApp) {
    let id = app.create_user("alice@example.com").await;
    let g = app.create_group("g", &[]).await;
    let before = snapshot(&app).await;
    let user = json!({"schemas": [USER], "userName": "bob@example.com"});
    let cases: Vec<(Method, String, Option<&Value>)> = vec![
        (Method::DELETE, "/scim/v2/Users".into(), None),
        (Method::PUT, "/scim/v2/Users".into(), Some(&user)),
        (Method::PATCH, "/scim/v2/Users".into(), Some(&user)),
        (Method::POST, format!("/scim/v2/Users/{id}"), Some(&user)),
        (Method::DELETE, "/scim/v2/Groups".into(), None),
        (Method::POST, format!("/scim/v2/Groups/{g}"), Some(&user)),
        (
            Method::PUT,
            "/scim/v2/ServiceProviderConfig".into(),
            Some(&user),
        ),
        (
            Method::POST,
            "/scim/v2/ServiceProviderConfig".into(),
            Some(&user),
        ),
        (Method::DELETE, "/scim/v2/Schemas".into(), None),
        (Method::POST, "/scim/v2/ResourceTypes".into(), Some(&user)),
        (Method::DELETE, "/scim/v2/ResourceTypes/User".into(), None),
    ];
    for (method, path, body) in cases {
        let r = app
            .request_with(method.clone(), &path, body, Some(&app.token), &[])
            .await;
        r.assert_scim_error(405, None);
    }
    assert_eq!(snapshot(&app).await, before, "a refused request wrote data");
    // outside /scim/v2: a JSON problem body
    for (method, path) in [
        (Method::POST, "/healthz"),
        (Method::DELETE, "/healthz"),
        (Method::POST, "/readyz"),
        (Method::PUT, "/metrics"),
    ] {
        let r = app.request_with(method, path, None, None, &[]).await;
        assert_problem(&r, 405);
    }
}

async fn precondition_failed(app: TestApp) {
    let id = app.create_user("alice@example.com").await;
    let path = format!("/scim/v2/Users/{id}");
    let g = app.create_group("g", &[&id]).await;
    let gpath = format!("/scim/v2/Groups/{g}");
    // move both to version 2
    let rename = |v: &str| json!({"schemas": [PATCH_OP], "Operations": [{"op": "replace", "path": "displayName", "value": v}]});
    assert_eq!(app.patch(&path, &rename("A")).await.status, 200);
    assert_eq!(app.patch(&gpath, &rename("G")).await.status, 200);
    let before = snapshot(&app).await;
    for (p, stale) in [
        (&path, "W/\"1\""),
        (&path, "\"1\""),
        (&path, "W/\"not-a-version\""),
        (&gpath, "W/\"1\""),
    ] {
        let r = app
            .request_with(
                Method::DELETE,
                p,
                None,
                Some(&app.token),
                &[("if-match", stale)],
            )
            .await;
        r.assert_scim_error(412, Some("invalidVers"));
        let put_body = if p == &path {
            json!({"schemas": [USER], "userName": "alice@example.com"})
        } else {
            json!({"schemas": [GROUP], "displayName": "x"})
        };
        let r = app
            .request_with(
                Method::PUT,
                p,
                Some(&put_body),
                Some(&app.token),
                &[("if-match", stale)],
            )
            .await;
        r.assert_scim_error(412, Some("invalidVers"));
        let r = app
            .request_with(
                Method::PATCH,
                p,
                Some(&rename("B")),
                Some(&app.token),
                &[("if-match", stale)],
            )
            .await;
        r.assert_scim_error(412, Some("invalidVers"));
    }
    assert_eq!(snapshot(&app).await, before, "a stale write changed data");
    // the current version (or *) goes through
    let r = app
        .request_with(
            Method::DELETE,
            &path,
            None,
            Some(&app.token),
            &[("if-match", "W/\"2\"")],
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    let r = app
        .request_with(
            Method::DELETE,
            &gpath,
            None,
            Some(&app.token),
            &[("if-match", "*")],
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
}

/// Runs `fut`, failing the test when it takes more than 10 s (the pool's acquire timeout is 5 s).
async fn within_10s<T>(fut: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(10), fut)
        .await
        .expect("no answer within 10 s: the server hangs on a dead database")
}

/// Asserts the answers of a server whose database is gone. The requests run concurrently:
/// against an unreachable database each may take the pool's acquire timeout, and meanwhile
/// the server must keep answering what needs no database.
async fn assert_database_unavailable(app_address: &str, token: &str) {
    let client = reqwest::Client::new();
    let scim = |method: Method, path: &str| {
        client
            .request(method, format!("{app_address}{path}"))
            .bearer_auth(token)
    };
    // reads, writes, and authentication itself (the token is looked up in the database).
    // Reads of one user by id or userName are not among them: a SQLite server, the only
    // writer of its database, answers those from memory (tests/api/user_reads.rs).
    let user = json!({"schemas": [USER], "userName": "down@example.com"}).to_string();
    let scim_requests: Vec<_> = [
        scim(Method::GET, "/scim/v2/Users"),
        scim(Method::GET, &format!("/scim/v2/Groups/{}", random_id())),
        scim(Method::POST, "/scim/v2/Users")
            .header("content-type", "application/scim+json")
            .body(user),
        scim(Method::GET, "/scim/v2/Groups"),
    ]
    .into_iter()
    .map(|req| tokio::spawn(async move { into_resp(req.send().await.expect("request")).await }))
    .collect();
    let readyz = client.get(format!("{app_address}/readyz")).send();
    let readyz = tokio::spawn(async move { into_resp(readyz.await.expect("request")).await });

    // liveness and metrics do not wait for the database
    for path in ["/healthz", "/metrics"] {
        let started = Instant::now();
        let r = within_10s(client.get(format!("{app_address}{path}")).send())
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{path} waited {:?} for the database",
            started.elapsed()
        );
    }
    for handle in scim_requests {
        let r = within_10s(handle).await.unwrap();
        r.assert_scim_error(503, None);
        assert_eq!(r.header("retry-after"), Some("1"), "{}", r.text);
    }
    let r = within_10s(readyz).await.unwrap();
    assert_problem(&r, 503);
    assert_eq!(r.header("retry-after"), Some("1"), "{}", r.text);
}

async fn database_closed_is_503(app: TestApp) {
    assert_eq!(app.get("/scim/v2/Users").await.status, 200);
    assert_eq!(app.get("/readyz").await.status, 200);
    // the server shares this Store (build_with_store(settings, store.clone())): closing it
    // closes the pools the server uses
    app.store.close().await;
    assert_database_unavailable(&app.address, &app.token).await;
}

/// A TCP proxy between the server and PostgreSQL that can be unplugged and plugged back in.
struct Proxy {
    port: u16,
    upstream: String,
    tasks: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::AbortHandle>>>,
}

impl Proxy {
    async fn start(upstream: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let p = Proxy {
            port,
            upstream: upstream.to_string(),
            tasks: Default::default(),
        };
        p.serve(listener);
        p
    }

    fn serve(&self, listener: TcpListener) {
        let upstream = self.upstream.clone();
        let tasks = self.tasks.clone();
        let accept = tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    continue;
                };
                let upstream = upstream.clone();
                let conn = tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(&upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                tasks.lock().unwrap().push(conn.abort_handle());
            }
        });
        self.tasks.lock().unwrap().push(accept.abort_handle());
    }

    /// Close the listening socket and every connection: the database is unreachable.
    fn unplug(&self) {
        for t in self.tasks.lock().unwrap().drain(..) {
            t.abort();
        }
    }

    /// Listen again on the same port.
    async fn plug(&self) {
        let mut tries = 0;
        let listener = loop {
            match TcpListener::bind(("127.0.0.1", self.port)).await {
                Ok(l) => break l,
                Err(e) if tries < 50 => {
                    tries += 1;
                    eprintln!("rebinding the proxy port: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("cannot rebind the proxy port {}: {e}", self.port),
            }
        };
        self.serve(listener);
    }
}

/// `scheme://user@host:port/db?x` → (`host:port`, `scheme://user@`, `/db?x`).
fn split_host(url: &str) -> (String, String, String) {
    let (scheme, rest) = url.split_once("://").unwrap();
    let (auth, rest) = match rest.split_once('@') {
        Some((a, r)) => (format!("{a}@"), r),
        None => (String::new(), rest),
    };
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let hostport = &rest[..end];
    let hostport = if hostport.contains(':') {
        hostport.to_string()
    } else {
        format!("{hostport}:5432")
    };
    (
        hostport,
        format!("{scheme}://{auth}"),
        rest[end..].to_string(),
    )
}

/// PostgreSQL going away under a running server (connections cut, new ones refused): 503
/// within the pool's acquire timeout, not a 500 or a hang; and the server recovers on its
/// own when PostgreSQL comes back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_outage_is_503_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let Some(url) = helpers::fresh_database(Backend::Postgres, &dir).await else {
        return;
    };
    let (upstream, head, tail) = split_host(&url);
    let proxy = Proxy::start(&upstream).await;
    let settings = Settings {
        listen: "127.0.0.1:0".into(),
        database_url: format!("{head}127.0.0.1:{}{tail}", proxy.port),
        workers: 1,
        max_page_size: 50,
        db_max_connections: 4,
        ..Settings::default()
    };
    let store = startup::connect(&settings).await.expect("connect");
    let app = Application::build_with_store(settings, store.clone())
        .await
        .expect("build");
    let address = format!("http://127.0.0.1:{}", app.port());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(app.run_until_stopped(async move {
        let _ = rx.await;
    }));
    let token = new_token(&store, "okta", Scope::Scim).await;
    let client = reqwest::Client::new();
    let get = |path: &str| {
        client
            .get(format!("{address}{path}"))
            .bearer_auth(&token)
            .send()
    };
    assert_eq!(get("/scim/v2/Users").await.unwrap().status(), 200);

    proxy.unplug();
    let started = Instant::now();
    assert_database_unavailable(&address, &token).await;
    eprintln!("outage checks took {:?}", started.elapsed());

    proxy.plug().await;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let r = within_10s(get("/scim/v2/Users")).await.unwrap();
        if r.status() == 200 {
            break;
        }
        assert_eq!(r.status(), 503, "while recovering");
        assert!(Instant::now() < deadline, "the server did not recover");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(get("/readyz").await.unwrap().status(), 200);
    drop(tx);
}

/// PostgreSQL refusing connections to the database (`ALLOW_CONNECTIONS false`, as during
/// maintenance) and cutting the existing ones is an outage too: 503, never 500.
#[tokio::test]

async fn postgres_refusing_connections_is_503() {
    use sqlx::Connection;
    let Some(app) = helpers::spawn_app(Backend::Postgres).await else {
        return;
    };
    assert_eq!(app.get("/scim/v2/Users").await.status, 200);
    let db = app
        .database_url
        .rsplit('/')
        .next()
        .unwrap()
        .split('?')
        .next()
        .unwrap()
        .to_string();
    let mut admin = sqlx::AnyConnection::connect(&helpers::pg_base_url())
        .await
        .unwrap();
    sqlx::query(&format!("ALTER DATABASE {db} ALLOW_CONNECTIONS false"))
        .execute(&mut admin)
        .await
        .unwrap();
    sqlx::query(&format!(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{db}'"
    ))
    .execute(&mut admin)
    .await
    .unwrap();
    let r = within_10s(app.get("/scim/v2/Users")).await;
    let readyz = within_10s(app.request_with(Method::GET, "/readyz", None, None, &[])).await;
    sqlx::query(&format!("ALTER DATABASE {db} ALLOW_CONNECTIONS true"))
        .execute(&mut admin)
        .await
        .unwrap();
    r.assert_scim_error(503, None);
    assert_problem(&readyz, 503);
}

/// RFC 9110 §15.5.6: a 405 response MUST carry an `Allow` header listing the methods the
/// resource supports.
#[tokio::test]

async fn method_not_allowed_lists_allowed_methods() {
    let Some(app) = helpers::spawn_app(Backend::Sqlite).await else {
        return;
    };
    let id = app.create_user("alice@example.com").await;
    let allow = |r: &Resp| -> Vec<String> {
        let mut v: Vec<String> = r
            .header("allow")
            .unwrap_or_else(|| panic!("no Allow header on a 405: {:?}", r.headers))
            .split(',')
            .map(|m| m.trim().to_ascii_uppercase())
            .collect();
        v.sort();
        v
    };
    let r = app.delete("/scim/v2/Users").await;
    r.assert_scim_error(405, None);
    assert_eq!(allow(&r), ["GET", "POST"]);
    let r = app
        .request_with(
            Method::POST,
            &format!("/scim/v2/Users/{id}"),
            Some(&json!({})),
            Some(&app.token),
            &[],
        )
        .await;
    r.assert_scim_error(405, None);
    assert_eq!(allow(&r), ["DELETE", "GET", "PATCH", "PUT"]);
    let r = app
        .request_with(
            Method::PUT,
            "/scim/v2/ServiceProviderConfig",
            Some(&json!({})),
            Some(&app.token),
            &[],
        )
        .await;
    assert_eq!(allow(&r), ["GET"]);
    let r = app
        .request_with(Method::POST, "/healthz", None, None, &[])
        .await;
    assert_problem(&r, 405);
    assert_eq!(allow(&r), ["GET"]);
}

/// `meta` is read-only (RFC 7643 §3.1): a PATCH aimed at it is refused like one aimed at `id`
/// (400 mutability), and in no case does it write a new version of an unchanged resource.
#[tokio::test]

async fn patch_of_meta_is_refused() {
    let Some(app) = helpers::spawn_app(Backend::Sqlite).await else {
        return;
    };
    let id = app.create_user("alice@example.com").await;
    let path = format!("/scim/v2/Users/{id}");
    let before = app.get(&path).await;
    for (target, value) in [
        ("meta", json!({"version": "W/\"9\""})),
        ("meta.created", json!("2020-01-01T00:00:00Z")),
        ("meta.lastModified", json!("2020-01-01T00:00:00Z")),
    ] {
        let r = app
            .patch(
                &path,
                &json!({"schemas": [PATCH_OP], "Operations": [{"op": "replace", "path": target, "value": value}]}),
            )
            .await;
        r.assert_scim_error(400, Some("mutability"));
    }
    let after = app.get(&path).await;
    assert_eq!(
        after.body, before.body,
        "a refused PATCH wrote a new version"
    );
}
