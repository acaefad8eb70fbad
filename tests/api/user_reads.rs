//! Single-user reads (`GET /Users/{id}`, `filter=id|userName|externalId eq "…"`) are answered
//! from memory on both back-ends (SQLite: the server is the file's only writer; PostgreSQL:
//! after a read barrier on the change feed). Every answer is the current state, through every
//! kind of change, on the server that made the change and, on PostgreSQL, on another server
//! of the same database read right after the write. And one server per SQLite file.

use reqwest::Method;
use rolecall::config::Settings;
use rolecall::startup::Application;
use serde_json::{json, Value};

use crate::both;
use crate::helpers::{metric, send, spawn_app_with, Backend, TestApp, PATCH_OP, USER};

both!(
    single_user_reads_follow_every_change,
    one_server_per_sqlite_database
);

/// `rolecall_scim_user_reads_total{source}` from `/metrics`.
async fn user_reads(app: &TestApp, source: &str) -> f64 {
    metric(app, "rolecall_scim_user_reads_total", &[("source", source)]).await
}

fn filter_path(filter: &str) -> String {
    format!("/scim/v2/Users?filter={}", urlencode(filter))
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The one user a key filter finds (asserting there is exactly one).
async fn the_one(app: &TestApp, filter: &str) -> Value {
    let r = app.get(&filter_path(filter)).await;
    assert_eq!(r.status, 200, "{filter}: {}", r.text);
    assert_eq!(r.body["totalResults"], 1, "{filter}: {}", r.text);
    assert_eq!(r.body["itemsPerPage"], 1, "{filter}: {}", r.text);
    r.body["Resources"][0].clone()
}

async fn none_for(readers: &[&TestApp], filter: &str) {
    for app in readers {
        let r = app.get(&filter_path(filter)).await;
        assert_eq!(r.status, 200, "{filter}: {}", r.text);
        assert_eq!(r.body["totalResults"], 0, "{filter}: {}", r.text);
        assert_eq!(r.body["Resources"], json!([]), "{filter}: {}", r.text);
    }
}

/// On every server, every way of naming the user gives the same document, equal to
/// `GET /Users/{id}` on the first.
async fn all_reads_agree(
    readers: &[&TestApp],
    id: &str,
    user_name: &str,
    external_id: &str,
) -> Value {
    let by_get = readers[0].get(&format!("/scim/v2/Users/{id}")).await;
    assert_eq!(by_get.status, 200, "{}", by_get.text);
    // the ETag is the version in the document
    let version = by_get.body["meta"]["version"].as_str().unwrap().to_string();
    assert_eq!(by_get.header("etag"), Some(version.as_str()));
    for app in readers {
        let own = app.get(&format!("/scim/v2/Users/{id}")).await;
        assert_eq!(own.status, 200, "{}", own.text);
        // the same document on every server, but for the base URL in its references
        let same: Value =
            serde_json::from_str(&own.text.replace(&app.address, &readers[0].address)).unwrap();
        assert_eq!(same, by_get.body, "GET by id on {}", app.address);
        for filter in [
            format!("userName eq \"{user_name}\""),
            format!("userName eq \"{}\"", user_name.to_uppercase()),
            format!("id eq \"{id}\""),
            format!("externalId eq \"{external_id}\""),
        ] {
            assert_eq!(
                the_one(app, &filter).await,
                own.body,
                "{filter} on {}",
                app.address
            );
        }
    }
    by_get.body
}

async fn single_user_reads_follow_every_change(app: TestApp) {
    // on PostgreSQL a second server reads what the first writes, right after each write
    let peer = match app.backend {
        Backend::Postgres => Some(app.peer().await),
        Backend::Sqlite => None,
    };
    let readers: Vec<&TestApp> = std::iter::once(&app).chain(peer.as_ref()).collect();
    let readers = readers.as_slice();
    let created = app
        .post(
            "/scim/v2/Users",
            &json!({"schemas": [USER], "userName": "Alice@Example.com", "externalId": "00u-a",
                    "title": "Engineer", "name": {"givenName": "Alice"}}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let id = created.body["id"].as_str().unwrap().to_string();
    let doc = all_reads_agree(readers, &id, "alice@example.com", "00u-a").await;
    assert_eq!(doc, created.body, "a read right after the create");
    assert_eq!(doc["title"], "Engineer");

    // an attribute change
    let patched = app
        .patch(
            &format!("/scim/v2/Users/{id}"),
            &json!({"schemas": [PATCH_OP], "Operations": [
                {"op": "replace", "path": "title", "value": "Staff Engineer"}]}),
        )
        .await;
    assert_eq!(patched.status, 200, "{}", patched.text);
    let doc = all_reads_agree(readers, &id, "alice@example.com", "00u-a").await;
    assert_eq!(doc, patched.body);
    assert_eq!(doc["title"], "Staff Engineer");

    // memberships show in the user's `groups` (they do not move the user's version)
    let version = doc["meta"]["version"].clone();
    let g = app.create_group("engineering", &[&id]).await;
    let doc = all_reads_agree(readers, &id, "alice@example.com", "00u-a").await;
    assert_eq!(doc["meta"]["version"], version);
    assert_eq!(doc["groups"][0]["value"], g.as_str(), "{doc}");
    assert_eq!(doc["groups"][0]["display"], "engineering", "{doc}");
    let g2 = app.create_group("legal", &[&id]).await;
    let doc = all_reads_agree(readers, &id, "alice@example.com", "00u-a").await;
    let mut shown: Vec<&str> = doc["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["display"].as_str().unwrap())
        .collect();
    shown.sort_unstable();
    assert_eq!(shown, ["engineering", "legal"], "{doc}");

    // a group rename shows in the user's groups
    let r = app
        .patch(
            &format!("/scim/v2/Groups/{g}"),
            &json!({"schemas": [PATCH_OP], "Operations": [
                {"op": "replace", "value": {"id": g, "displayName": "Engineering (all)"}}]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let doc = all_reads_agree(readers, &id, "alice@example.com", "00u-a").await;
    assert!(
        doc["groups"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["value"] == g.as_str() && x["display"] == "Engineering (all)"),
        "{doc}"
    );

    // removed from one group, the other deleted
    let r = app
        .patch(
            &format!("/scim/v2/Groups/{g}"),
            &json!({"schemas": [PATCH_OP], "Operations": [
                {"op": "remove", "path": format!("members[value eq \"{id}\"]")}]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        app.delete(&format!("/scim/v2/Groups/{g2}")).await.status,
        204
    );
    let doc = all_reads_agree(readers, &id, "alice@example.com", "00u-a").await;
    assert!(doc.get("groups").is_none(), "{doc}");

    // renamed (userName and externalId): the old keys find nobody, the new ones find her
    let replaced = app
        .put(
            &format!("/scim/v2/Users/{id}"),
            &json!({"schemas": [USER], "userName": "alice.l@example.com", "externalId": "00u-b",
                    "title": "Principal", "active": true}),
        )
        .await;
    assert_eq!(replaced.status, 200, "{}", replaced.text);
    none_for(readers, "userName eq \"alice@example.com\"").await;
    none_for(readers, "externalId eq \"00u-a\"").await;
    let doc = all_reads_agree(readers, &id, "alice.l@example.com", "00u-b").await;
    assert_eq!(doc, replaced.body);

    // deactivated: still found (an IdP reconciles instead of re-creating), inactive
    let r = app
        .patch(
            &format!("/scim/v2/Users/{id}"),
            &json!({"schemas": [PATCH_OP], "Operations": [{"op": "replace", "value": {"active": false}}]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let doc = all_reads_agree(readers, &id, "alice.l@example.com", "00u-b").await;
    assert_eq!(doc["active"], false);

    // conditional GET and paging of a key filter
    let etag = doc["meta"]["version"].as_str().unwrap().to_string();
    let r = app
        .request_with(
            Method::GET,
            &format!("/scim/v2/Users/{id}"),
            None,
            Some(&app.token),
            &[("if-none-match", etag.as_str())],
        )
        .await;
    assert_eq!(r.status, 304, "{}", r.text);
    let r = app
        .get(&format!(
            "{}&count=0",
            filter_path("userName eq \"alice.l@example.com\"")
        ))
        .await;
    assert_eq!(r.body["totalResults"], 1, "{}", r.text);
    assert_eq!(r.body["itemsPerPage"], 0, "{}", r.text);
    let r = app
        .get(&format!(
            "{}&startIndex=2",
            filter_path("userName eq \"alice.l@example.com\"")
        ))
        .await;
    assert_eq!(r.body["totalResults"], 1, "{}", r.text);
    assert_eq!(r.body["itemsPerPage"], 0, "{}", r.text);
    assert_eq!(r.body["startIndex"], 2, "{}", r.text);
    // attribute selection applies as on any read
    let r = app
        .get(&format!(
            "{}&attributes=userName",
            filter_path(&format!("id eq \"{id}\""))
        ))
        .await;
    let found = &r.body["Resources"][0];
    assert_eq!(found["userName"], "alice.l@example.com", "{}", r.text);
    assert!(found.get("title").is_none(), "{}", r.text);

    // a random id (Entra's "test connection") and unknown names: empty lists, 404 by id
    none_for(readers, "id eq \"6a1f0f0e-0000-4000-8000-000000000000\"").await;
    none_for(readers, "userName eq \"nobody@example.com\"").await;
    assert_eq!(
        app.get("/scim/v2/Users/6a1f0f0e-0000-4000-8000-000000000000")
            .await
            .status,
        404
    );

    // deleted: gone by every key
    assert_eq!(
        app.delete(&format!("/scim/v2/Users/{id}")).await.status,
        204
    );
    none_for(readers, "userName eq \"alice.l@example.com\"").await;
    none_for(readers, "externalId eq \"00u-b\"").await;
    none_for(readers, &format!("id eq \"{id}\"")).await;
    for app in readers {
        app.get(&format!("/scim/v2/Users/{id}"))
            .await
            .assert_scim_error(404, None);
    }

    // where the answers came from: mostly memory, on every server (a server's first read
    // of a user's new version, when another server wrote it, goes to the database)
    for app in readers {
        let memory = user_reads(app, "memory").await;
        let database = user_reads(app, "database").await;
        assert!(
            memory > database && memory > 20.0,
            "{:?} {}: memory {memory}, database {database}: most single-user reads should be \
             from memory",
            app.backend,
            app.address
        );
    }
}

/// `--scim-cache-bytes` bounds the documents kept: a user whose document alone is larger
/// than the budget is read from the database every time (and answered the same), while
/// small ones are still read from memory.
async fn documents_over_the_byte_budget_are_read_from_the_database(backend: Backend) {
    let Some(app) = spawn_app_with(backend, |s| s.scim_cache_bytes = 64 * 1024).await else {
        return;
    };
    let create = |name: &str, nick: String| {
        json!({
            "schemas": [USER],
            "userName": name,
            "nickName": nick,
            "active": true
        })
    };
    let small = app
        .post("/scim/v2/Users", &create("small@example.com", "s".into()))
        .await;
    assert_eq!(small.status, 201, "{}", small.text);
    // a 40 KB nickName: with its rendering, more than the whole 64 KB budget
    let nick = "n".repeat(40 * 1024);
    let big = app
        .post("/scim/v2/Users", &create("big@example.com", nick.clone()))
        .await;
    assert_eq!(big.status, 201, "{}", big.text);
    let (memory, database) = (
        user_reads(&app, "memory").await,
        user_reads(&app, "database").await,
    );
    for _ in 0..3 {
        let r = app
            .get(&format!(
                "/scim/v2/Users/{}",
                small.body["id"].as_str().unwrap()
            ))
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.body["userName"], "small@example.com");
        let r = app
            .get(&format!(
                "/scim/v2/Users/{}",
                big.body["id"].as_str().unwrap()
            ))
            .await;
        assert_eq!(r.status, 200);
        assert_eq!(r.body["nickName"], nick.as_str());
        assert_eq!(r.body, big.body);
    }
    assert_eq!(user_reads(&app, "memory").await - memory, 3.0);
    assert_eq!(user_reads(&app, "database").await - database, 3.0);
}

#[tokio::test]
async fn documents_over_the_byte_budget_are_read_from_the_database_sqlite() {
    documents_over_the_byte_budget_are_read_from_the_database(Backend::Sqlite).await;
}

#[tokio::test]
async fn documents_over_the_byte_budget_are_read_from_the_database_postgres() {
    documents_over_the_byte_budget_are_read_from_the_database(Backend::Postgres).await;
}

/// A second server on the same database: refused on SQLite (it would write behind the
/// first one's back), welcome on PostgreSQL.
async fn one_server_per_sqlite_database(app: TestApp) {
    let settings = Settings {
        listen: "127.0.0.1:0".into(),
        database_url: app.database_url.clone(),
        workers: 1,
        ..Settings::default()
    };
    let second = Application::build(settings.clone()).await;
    match app.backend {
        Backend::Sqlite => {
            let msg = format!("{:#}", second.err().expect("a second server is refused"));
            assert!(msg.contains("another rolecall server"), "{msg}");
            assert!(msg.contains(&std::process::id().to_string()), "{msg}");
            // the first one is unaffected
            assert_eq!(app.get("/scim/v2/Users").await.status, 200);
        }
        Backend::Postgres => {
            let second = second.expect("a second server on PostgreSQL");
            let address = format!("http://127.0.0.1:{}", second.port());
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            let running = tokio::spawn(second.run_until_stopped(async move {
                let _ = stopped.await;
            }));
            let r = send(
                &app.client,
                format!("{address}/healthz"),
                Method::GET,
                None,
                None,
                &[],
            )
            .await;
            assert_eq!(r.status, 200);
            let _ = stop.send(());
            running.await.unwrap().unwrap();
        }
    }
}
