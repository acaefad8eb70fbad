//! User life cycle, uniqueness, filters and paging.

use serde_json::json;

use crate::both;
use crate::helpers::{TestApp, PATCH_OP, USER};

both!(
    search_endpoints,
    attribute_selection,
    user_life_cycle,
    user_name_is_unique_case_insensitively,
    external_id_is_unique,
    filters_and_paging,
    delete_removes_memberships,
    concurrent_creates_each_get_their_own_answer
);

async fn user_life_cycle(app: TestApp) {
    let created = app
        .post(
            "/scim/v2/Users",
            &json!({
                "schemas": [USER, "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
                "userName": "alice@example.com",
                "externalId": "00u1",
                "name": {"givenName": "Alice", "familyName": "Liddell"},
                "emails": [{"value": "alice@example.com", "type": "work", "primary": true}],
                "phoneNumbers": [{"value": "+1 555 0100", "type": "work"}],
                "title": "Engineer", "locale": "en-US", "timezone": "Europe/London",
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": "R&D", "manager": {"value": "boss"}},
                "x-okta-custom": "kept",
                "password": "never-stored",
                "active": true
            }),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let id = created.body["id"].as_str().unwrap().to_string();
    let location = format!("{}/scim/v2/Users/{id}", app.address);
    assert_eq!(created.header("location"), Some(location.as_str()));
    assert_eq!(
        created.header("content-type"),
        Some("application/scim+json")
    );
    assert_eq!(created.header("etag"), Some("W/\"1\""));
    let meta = &created.body["meta"];
    assert_eq!(meta["resourceType"], "User");
    assert_eq!(meta["location"], location);
    assert_eq!(meta["version"], "W/\"1\"");
    assert!(meta["created"].as_str().unwrap().ends_with('Z'));
    assert_eq!(created.body["x-okta-custom"], "kept");
    assert!(created.body.get("password").is_none());
    assert_eq!(
        created.body["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"]["department"],
        "R&D"
    );

    let got = app.get(&format!("/scim/v2/Users/{id}")).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.body, created.body);

    // If-None-Match with the current version: 304
    let r = app
        .request_with(
            reqwest::Method::GET,
            &format!("/scim/v2/Users/{id}"),
            None,
            Some(&app.token),
            &[("if-none-match", "W/\"1\"")],
        )
        .await;
    assert_eq!(r.status, 304);

    // PUT replaces: attributes left out are cleared
    let put = app
        .put(&format!("/scim/v2/Users/{id}"), &json!({"schemas": [USER], "userName": "alice@example.com", "externalId": "00u1", "displayName": "Alice L", "active": true}))
        .await;
    assert_eq!(put.status, 200, "{}", put.text);
    assert_eq!(put.body["displayName"], "Alice L");
    assert!(put.body.get("title").is_none());
    assert_eq!(put.body["meta"]["version"], "W/\"2\"");
    assert_eq!(put.body["meta"]["created"], created.body["meta"]["created"]);

    // Okta deactivation: path-less replace
    let patched = app
        .patch(&format!("/scim/v2/Users/{id}"), &json!({"schemas": [PATCH_OP], "Operations": [{"op": "replace", "value": {"active": false}}]}))
        .await;
    assert_eq!(patched.status, 200, "{}", patched.text);
    assert_eq!(patched.body["active"], false);
    assert_eq!(patched.body["displayName"], "Alice L");

    // simple attribute replace through a path, Entra-style op case and string boolean
    let patched = app
        .patch(
            &format!("/scim/v2/Users/{id}"),
            &json!({"schemas": [PATCH_OP], "Operations": [
                {"op": "Replace", "path": "displayName", "value": "Alice Liddell"},
                {"op": "Replace", "path": "active", "value": "True"}
            ]}),
        )
        .await;
    assert_eq!(patched.status, 200, "{}", patched.text);
    assert_eq!(patched.body["displayName"], "Alice Liddell");
    assert_eq!(patched.body["active"], true);

    // stale If-Match: 412 and nothing changes
    let stale = app
        .request_with(
            reqwest::Method::PATCH,
            &format!("/scim/v2/Users/{id}"),
            Some(&json!({"schemas": [PATCH_OP], "Operations": [{"op": "replace", "path": "title", "value": "x"}]})),
            Some(&app.token),
            &[("if-match", "W/\"1\"")],
        )
        .await;
    stale.assert_scim_error(412, Some("invalidVers"));

    let deleted = app.delete(&format!("/scim/v2/Users/{id}")).await;
    assert_eq!(deleted.status, 204);
    app.get(&format!("/scim/v2/Users/{id}"))
        .await
        .assert_scim_error(404, None);
    app.delete(&format!("/scim/v2/Users/{id}"))
        .await
        .assert_scim_error(404, None);
}

async fn user_name_is_unique_case_insensitively(app: TestApp) {
    app.create_user("alice@example.com").await;
    let dup = app
        .post(
            "/scim/v2/Users",
            &json!({"schemas": [USER], "userName": "Alice@Example.com"}),
        )
        .await;
    dup.assert_scim_error(409, Some("uniqueness"));
    // a rename onto an existing userName is a conflict too, and changes nothing
    let bob = app.create_user("bob@example.com").await;
    let r = app
        .put(
            &format!("/scim/v2/Users/{bob}"),
            &json!({"schemas": [USER], "userName": "ALICE@example.com"}),
        )
        .await;
    r.assert_scim_error(409, Some("uniqueness"));
    assert_eq!(
        app.get(&format!("/scim/v2/Users/{bob}")).await.body["userName"],
        "bob@example.com"
    );
}

async fn external_id_is_unique(app: TestApp) {
    let body = |name: &str| json!({"schemas": [USER], "userName": name, "externalId": "ext-1"});
    assert_eq!(
        app.post("/scim/v2/Users", &body("a@x.com")).await.status,
        201
    );
    app.post("/scim/v2/Users", &body("b@x.com"))
        .await
        .assert_scim_error(409, Some("uniqueness"));
    // externalId is unique per resource type: a group may reuse it
    let g = app
        .post(
            "/scim/v2/Groups",
            &json!({"schemas": [crate::helpers::GROUP], "displayName": "g", "externalId": "ext-1"}),
        )
        .await;
    assert_eq!(g.status, 201, "{}", g.text);
}

async fn filters_and_paging(app: TestApp) {
    for i in 0..7 {
        let r = app
            .post(
                "/scim/v2/Users",
                &json!({"schemas": [USER], "userName": format!("user{i}@example.com"), "externalId": format!("e{i}"),
                        "displayName": format!("User {i}"), "emails": [{"value": format!("User{i}@Mail.example.com")}]}),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
    }
    let q = |f: &str| format!("/scim/v2/Users?filter={}", urlencode(f));
    // Okta looks a user up by an upper-cased copy of the name it created
    let r = app.get(&q(r#"userName eq "USER3@EXAMPLE.COM""#)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["totalResults"], 1);
    assert_eq!(r.body["Resources"][0]["externalId"], "e3");
    let id = r.body["Resources"][0]["id"].as_str().unwrap().to_string();
    assert_eq!(
        app.get(&q(&format!(r#"id eq "{id}""#))).await.body["totalResults"],
        1
    );
    assert_eq!(
        app.get(&q(r#"externalId eq "e4""#)).await.body["Resources"][0]["userName"],
        "user4@example.com"
    );
    assert_eq!(
        app.get(&q(r#"externalId eq "E4""#)).await.body["totalResults"],
        0,
        "externalId is case-exact"
    );
    assert_eq!(
        app.get(&q(r#"emails.value eq "user5@mail.example.com""#))
            .await
            .body["totalResults"],
        1
    );
    assert_eq!(
        app.get(&q(r#"displayName eq "user 6""#)).await.body["totalResults"],
        1
    );
    assert_eq!(
        app.get(&q(
            r#"userName eq "user1@example.com" and externalId eq "e1""#
        ))
        .await
        .body["totalResults"],
        1
    );
    assert_eq!(
        app.get(&q(
            r#"userName eq "user1@example.com" and externalId eq "e2""#
        ))
        .await
        .body["totalResults"],
        0
    );
    // Entra's connection test filters for a random id: 200 with an empty list
    let r = app
        .get(&q(r#"id eq "9f0c6a4e-0000-4000-8000-000000000000""#))
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["totalResults"], 0);
    assert_eq!(r.body["Resources"], json!([]));

    // paging: startIndex is 1-based; itemsPerPage is what came back
    let r = app.get("/scim/v2/Users?startIndex=3&count=2").await;
    assert_eq!(r.body["totalResults"], 7);
    assert_eq!(r.body["startIndex"], 3);
    assert_eq!(r.body["itemsPerPage"], 2);
    assert_eq!(r.body["Resources"][0]["userName"], "user2@example.com");
    // past the end
    let r = app.get("/scim/v2/Users?startIndex=50").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["totalResults"], 7);
    assert_eq!(r.body["itemsPerPage"], 0);
    // count=0: totals only
    let r = app.get("/scim/v2/Users?count=0").await;
    assert_eq!(r.body["totalResults"], 7);
    assert_eq!(r.body["Resources"], json!([]));
    // count above the cap (50 in tests) is capped, not an error; startIndex < 1 is 1
    let r = app.get("/scim/v2/Users?count=100000&startIndex=0").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["itemsPerPage"], 7);
    assert_eq!(r.body["startIndex"], 1);
    app.get("/scim/v2/Users?count=abc")
        .await
        .assert_scim_error(400, Some("invalidValue"));
}

async fn delete_removes_memberships(app: TestApp) {
    let alice = app.create_user("alice@example.com").await;
    let bob = app.create_user("bob@example.com").await;
    let g = app.create_group("engineering", &[&alice, &bob]).await;
    let before = app.get(&format!("/scim/v2/Groups/{g}")).await;
    assert_eq!(before.body["members"].as_array().unwrap().len(), 2);
    // deactivation keeps the memberships
    let r = app.patch(&format!("/scim/v2/Users/{alice}"), &json!({"schemas": [PATCH_OP], "Operations": [{"op": "replace", "value": {"active": false}}]})).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["groups"][0]["value"], g.as_str());
    assert_eq!(
        app.get(&format!("/scim/v2/Groups/{g}")).await.body["members"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    // deletion removes them, and the group's version moves
    assert_eq!(
        app.delete(&format!("/scim/v2/Users/{alice}")).await.status,
        204
    );
    let after = app.get(&format!("/scim/v2/Groups/{g}")).await;
    assert_eq!(
        after.body["members"],
        json!([{"value": bob, "type": "User", "display": "bob@example.com", "$ref": format!("{}/scim/v2/Users/{bob}", app.address)}])
    );
    assert_ne!(
        after.body["meta"]["version"],
        before.body["meta"]["version"]
    );
}

pub fn urlencode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

async fn attribute_selection(app: TestApp) {
    let r = app
        .post(
            "/scim/v2/Users?attributes=userName",
            &json!({"schemas": [USER], "userName": "a@x.com", "title": "t",
                    "name": {"givenName": "A", "familyName": "B"}, "emails": [{"value": "a@x.com", "type": "work"}]}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let id = r.body["id"].as_str().unwrap().to_string();
    assert_eq!(
        r.body,
        json!({"schemas": [USER], "id": id, "userName": "a@x.com"})
    );
    let r = app
        .get(&format!(
            "/scim/v2/Users/{id}?attributes=name.givenName,emails.value"
        ))
        .await;
    assert_eq!(
        r.body,
        json!({"schemas": [USER], "id": id, "name": {"givenName": "A"}, "emails": [{"value": "a@x.com"}]})
    );
    let r = app
        .get("/scim/v2/Users?excludedAttributes=emails,meta,id")
        .await;
    let u = &r.body["Resources"][0];
    assert!(u.get("emails").is_none() && u.get("meta").is_none());
    assert_eq!(u["id"], id.as_str(), "id is always returned");
    assert_eq!(u["title"], "t");
    // a bad attributes parameter is refused before anything is written
    let r = app
        .post(
            "/scim/v2/Users?attributes=emails[type%20eq%20%22work%22]",
            &json!({"schemas": [USER], "userName": "b@x.com"}),
        )
        .await;
    r.assert_scim_error(400, Some("invalidValue"));
    assert_eq!(
        app.get("/scim/v2/Users?count=0").await.body["totalResults"],
        1
    );
    // groups: attributes without members does not return them
    let g = app.create_group("eng", &[&id]).await;
    let r = app
        .get(&format!("/scim/v2/Groups/{g}?attributes=displayName"))
        .await;
    assert!(r.body.get("members").is_none(), "{}", r.text);
    assert_eq!(r.body["displayName"], "eng");
}

async fn search_endpoints(app: TestApp) {
    let a = app.create_user("alice@example.com").await;
    app.create_user("bob@example.com").await;
    app.create_group("eng", &[&a]).await;
    let search = "urn:ietf:params:scim:api:messages:2.0:SearchRequest";
    let r = app
        .post(
            "/scim/v2/Users/.search",
            &json!({"schemas": [search], "filter": "userName eq \"ALICE@example.com\"",
                    "attributes": ["userName"], "startIndex": 1, "count": 10}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["totalResults"], 1);
    assert_eq!(
        r.body["Resources"][0],
        json!({"schemas": [USER], "id": a, "userName": "alice@example.com"})
    );
    let r = app
        .post(
            "/scim/v2/Users/.search",
            &json!({"schemas": [search], "count": 0}),
        )
        .await;
    assert_eq!(r.body["totalResults"], 2);
    let r = app
        .post("/scim/v2/Groups/.search", &json!({"schemas": [search], "filter": format!("members[value eq \"{a}\"]"), "excludedAttributes": "members"}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["totalResults"], 1);
    assert!(r.body["Resources"][0].get("members").is_none());
    // malformed requests
    app.post("/scim/v2/Users/.search", &json!({"filter": "userName pr"}))
        .await
        .assert_scim_error(400, Some("invalidSyntax"));
    app.post(
        "/scim/v2/Users/.search",
        &json!({"schemas": [search], "filter": 5}),
    )
    .await
    .assert_scim_error(400, Some("invalidValue"));
    app.post(
        "/scim/v2/Users/.search",
        &json!({"schemas": [search], "sortBy": "userName", "sortOrder": "up"}),
    )
    .await
    .assert_scim_error(400, Some("invalidValue"));
    app.post(
        "/scim/v2/Users/.search",
        &json!({"schemas": [search], "filter": "userName eq"}),
    )
    .await
    .assert_scim_error(400, Some("invalidFilter"));
    app.get("/scim/v2/Users/.search")
        .await
        .assert_scim_error(405, None);
}

/// Many creates at once (on SQLite they are committed together): every create gets the answer
/// it would have had alone, duplicates included, and each created user has its audit entry.
async fn concurrent_creates_each_get_their_own_answer(app: TestApp) {
    let mut set = tokio::task::JoinSet::new();
    for i in 0..48 {
        // every fourth request asks for the same userName (in varying case)
        let name = if i % 4 == 0 {
            "Dup@Example.com".to_string()
        } else {
            format!("user{i:02}@example.com")
        };
        let body = json!({
            "schemas": [USER],
            "userName": if i % 8 == 0 { name.to_lowercase() } else { name },
            "emails": [{"value": format!("mail{i}@example.com"), "primary": true}],
        });
        let client = app.client.clone();
        let url = format!("{}/scim/v2/Users", app.address);
        let token = app.token.clone();
        set.spawn(async move {
            crate::helpers::send(
                &client,
                url,
                reqwest::Method::POST,
                Some(("application/scim+json", &body)),
                Some(&token),
                &[],
            )
            .await
        });
    }
    let mut created = Vec::new();
    let mut conflicts = 0;
    while let Some(r) = set.join_next().await {
        let r = r.expect("task");
        match r.status.as_u16() {
            201 => created.push(r.body["id"].as_str().expect("id").to_string()),
            409 => {
                r.assert_scim_error(409, Some("uniqueness"));
                conflicts += 1;
            }
            other => panic!("unexpected {other}: {}", r.text),
        }
    }
    // 36 distinct names and one of the 12 duplicates
    assert_eq!(created.len(), 37, "created {created:?}");
    assert_eq!(conflicts, 11);
    let list = app.get("/scim/v2/Users?count=0").await;
    assert_eq!(list.body["totalResults"], 37, "{}", list.text);
    // each create is readable, with its e-mail searchable
    let r = app
        .get("/scim/v2/Users?filter=emails.value eq \"mail5@example.com\"")
        .await;
    assert_eq!(r.body["totalResults"], 1, "{}", r.text);
    for id in &created {
        let r = app.get(&format!("/scim/v2/Users/{id}")).await;
        assert_eq!(r.status, 200, "{}", r.text);
    }
    // one audit entry per created user, none for the refused duplicates
    let entries = app
        .store
        .list_audit(&rolecall::store::AuditQuery {
            since: None,
            until: None,
            actor: None,
            action: Some("user.create".into()),
            target: None,
            before: None,
            limit: 1000,
        })
        .await
        .expect("audit");
    let mut targets: Vec<String> = entries.into_iter().map(|e| e.target_id).collect();
    targets.sort();
    created.sort();
    assert_eq!(targets, created);
}
