//! Discovery endpoints (RFC 7644 §4), `/metrics` and the `X-Request-Id` header.

use std::collections::HashSet;

use reqwest::Method;
use serde_json::{json, Value};

use crate::both;
use crate::helpers::{Backend, TestApp, GROUP, PATCH_OP, USER};

const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
const LIST: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";

both!(
    service_provider_config,
    resource_types,
    schemas,
    unknown_discovery_ids_are_404,
    metrics,
    metrics_labels_are_bounded,
    request_ids,
);

async fn service_provider_config(app: TestApp) {
    let r = app.get("/scim/v2/ServiceProviderConfig").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.header("content-type"), Some("application/scim+json"));
    let b = &r.body;
    assert_eq!(
        b["schemas"],
        json!(["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"])
    );
    assert_eq!(b["patch"]["supported"], true);
    assert_eq!(
        b["bulk"],
        json!({"supported": true, "maxOperations": 1000, "maxPayloadSize": 1_048_576})
    );
    assert_eq!(b["filter"]["supported"], true);
    assert_eq!(b["filter"]["maxResults"], 50, "the test server's page cap");
    assert_eq!(b["sort"]["supported"], true);
    // RFC 9865
    assert_eq!(
        b["pagination"],
        json!({"cursor": true, "index": true, "defaultPaginationMethod": "index",
               "defaultPageSize": 50, "maxPageSize": 50})
    );
    assert_eq!(b["changePassword"]["supported"], false);
    assert_eq!(b["etag"]["supported"], true);
    let schemes = b["authenticationSchemes"].as_array().unwrap();
    let bearer = schemes
        .iter()
        .find(|s| s["type"] == "oauthbearertoken")
        .unwrap_or_else(|| panic!("no oauthbearertoken scheme: {}", r.text));
    assert!(bearer["name"].as_str().is_some_and(|n| !n.is_empty()));
    assert!(bearer["description"]
        .as_str()
        .is_some_and(|n| !n.is_empty()));
    assert_eq!(b["meta"]["resourceType"], "ServiceProviderConfig");
    assert_eq!(
        b["meta"]["location"],
        format!("{}/scim/v2/ServiceProviderConfig", app.address)
    );
    // the location follows the Host the client used (no --public-url configured)
    let r = app
        .request_with(
            Method::GET,
            "/scim/v2/ServiceProviderConfig",
            None,
            Some(&app.token),
            &[("host", "scim.example.test:8443")],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.body["meta"]["location"],
        "http://scim.example.test:8443/scim/v2/ServiceProviderConfig"
    );
    // what it says is true: filter works, and count is capped at maxResults
    for i in 0..3 {
        app.create_user(&format!("u{i}@example.com")).await;
    }
    let r = app.get("/scim/v2/Users?count=100000").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["itemsPerPage"], 3);
}

async fn resource_types(app: TestApp) {
    let r = app.get("/scim/v2/ResourceTypes").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.header("content-type"), Some("application/scim+json"));
    assert_eq!(r.body["schemas"], json!([LIST]));
    assert_eq!(r.body["totalResults"], 2);
    assert_eq!(r.body["itemsPerPage"], 2);
    assert_eq!(r.body["startIndex"], 1);
    let all = r.body["Resources"].as_array().unwrap();
    let find = |name: &str| -> &Value {
        all.iter()
            .find(|t| t["id"] == name)
            .unwrap_or_else(|| panic!("no {name} in {}", r.text))
    };
    let user = find("User");
    assert_eq!(user["name"], "User");
    assert_eq!(user["endpoint"], "/Users");
    assert_eq!(user["schema"], USER);
    assert_eq!(
        user["schemaExtensions"],
        json!([{"schema": ENTERPRISE, "required": false}])
    );
    assert_eq!(
        user["schemas"],
        json!(["urn:ietf:params:scim:schemas:core:2.0:ResourceType"])
    );
    assert_eq!(user["meta"]["resourceType"], "ResourceType");
    assert_eq!(
        user["meta"]["location"],
        format!("{}/scim/v2/ResourceTypes/User", app.address)
    );
    let group = find("Group");
    assert_eq!(group["endpoint"], "/Groups");
    assert_eq!(group["schema"], GROUP);
    assert!(group["schemaExtensions"]
        .as_array()
        .is_none_or(|a| a.is_empty()));
    assert_eq!(
        group["meta"]["location"],
        format!("{}/scim/v2/ResourceTypes/Group", app.address)
    );

    let one = app.get("/scim/v2/ResourceTypes/User").await;
    assert_eq!(one.status, 200, "{}", one.text);
    assert_eq!(one.header("content-type"), Some("application/scim+json"));
    assert_eq!(&one.body, user);
    let one = app.get("/scim/v2/ResourceTypes/Group").await;
    assert_eq!(&one.body, group);
}

async fn schemas(app: TestApp) {
    let r = app.get("/scim/v2/Schemas").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["schemas"], json!([LIST]));
    assert_eq!(r.body["totalResults"], 3);
    let all = r.body["Resources"].as_array().unwrap();
    assert_eq!(all.len(), 3);
    let ids: HashSet<&str> = all.iter().map(|s| s["id"].as_str().unwrap()).collect();
    assert_eq!(ids, HashSet::from([USER, GROUP, ENTERPRISE]));
    for s in all {
        let id = s["id"].as_str().unwrap();
        assert_eq!(
            s["meta"]["location"],
            format!("{}/scim/v2/Schemas/{id}", app.address)
        );
        assert_eq!(s["meta"]["resourceType"], "Schema");
        assert!(!s["attributes"].as_array().unwrap().is_empty(), "{id}");
    }

    let user = app.get(&format!("/scim/v2/Schemas/{USER}")).await;
    assert_eq!(user.status, 200, "{}", user.text);
    assert_eq!(user.header("content-type"), Some("application/scim+json"));
    assert_eq!(user.body["id"], USER);
    assert_eq!(user.body["name"], "User");
    let attrs = user.body["attributes"].as_array().unwrap();
    let attr = |name: &str| -> &Value {
        attrs
            .iter()
            .find(|a| a["name"] == name)
            .unwrap_or_else(|| panic!("no {name} attribute"))
    };
    let user_name = attr("userName");
    assert_eq!(user_name["uniqueness"], "server");
    assert_eq!(user_name["required"], true);
    assert_eq!(user_name["caseExact"], false);
    assert_eq!(user_name["type"], "string");
    assert_eq!(attr("password")["returned"], "never");
    assert_eq!(attr("password")["mutability"], "writeOnly");
    let emails = attr("emails");
    assert_eq!(emails["multiValued"], true);
    assert!(emails["subAttributes"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["name"] == "value"));
    // the listing and the single schema agree
    let listed = all.iter().find(|s| s["id"] == USER).unwrap();
    assert_eq!(listed, &user.body);

    let group = app.get(&format!("/scim/v2/Schemas/{GROUP}")).await;
    assert_eq!(group.status, 200);
    assert!(group.body["attributes"]
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a["name"] == "members"));
    let ent = app.get(&format!("/scim/v2/Schemas/{ENTERPRISE}")).await;
    assert_eq!(ent.status, 200);
    assert!(ent.body["attributes"]
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a["name"] == "manager"));
}

async fn unknown_discovery_ids_are_404(app: TestApp) {
    for path in [
        "/scim/v2/Schemas/urn:ietf:params:scim:schemas:core:2.0:Nope",
        "/scim/v2/Schemas/nope",
        "/scim/v2/ResourceTypes/Nope",
        "/scim/v2/ResourceTypes/Users",
    ] {
        app.get(path).await.assert_scim_error(404, None);
    }
}

/// The metric lines (not the `# HELP`/`# TYPE` comments) of a scrape.
async fn scrape(app: &TestApp) -> Vec<String> {
    let r = app
        .request_with(Method::GET, "/metrics", None, None, &[])
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(
        r.header("content-type")
            .is_some_and(|c| c.starts_with("text/plain")),
        "{:?}",
        r.headers
    );
    r.text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The value of the one sample whose name is `name` and whose labels include all of `labels`.
fn sample(lines: &[String], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let found: Vec<f64> = lines
        .iter()
        .filter(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
        .filter(|l| {
            labels
                .iter()
                .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        })
        .map(|l| l.rsplit(' ').next().unwrap().parse().unwrap())
        .collect();
    assert!(
        found.len() <= 1,
        "{name} {labels:?} matches several samples: {found:?}"
    );
    found.first().copied()
}

async fn metrics(app: TestApp) {
    let id = app.create_user("alice@example.com").await;
    app.create_user("bob@example.com").await;
    for _ in 0..3 {
        assert_eq!(app.get("/scim/v2/Users").await.status, 200);
    }
    assert_eq!(app.get(&format!("/scim/v2/Users/{id}")).await.status, 200);
    let r = app
        .patch(
            &format!("/scim/v2/Users/{id}"),
            &json!({"schemas": [PATCH_OP], "Operations": [{"op": "replace", "value": {"active": false}}]}),
        )
        .await;
    assert_eq!(r.status, 200);
    app.create_group("g", &[&id]).await;
    app.post("/scim/v2/Users", &json!({"schemas": [USER]}))
        .await
        .assert_scim_error(400, Some("invalidValue"));

    let m = scrape(&app).await;
    let get = |name: &str, labels: &[(&str, &str)]| sample(&m, name, labels);
    let req = "rolecall_http_requests_total";
    assert_eq!(
        get(
            req,
            &[
                ("route", "/scim/v2/Users"),
                ("method", "GET"),
                ("status", "200")
            ]
        ),
        Some(3.0),
        "{m:#?}"
    );
    assert_eq!(
        get(
            req,
            &[
                ("route", "/scim/v2/Users"),
                ("method", "POST"),
                ("status", "201")
            ]
        ),
        Some(2.0)
    );
    assert_eq!(
        get(
            req,
            &[
                ("route", "/scim/v2/Users"),
                ("method", "POST"),
                ("status", "400")
            ]
        ),
        Some(1.0)
    );
    assert_eq!(
        get(
            req,
            &[
                ("route", "/scim/v2/Users/{id}"),
                ("method", "GET"),
                ("status", "200")
            ]
        ),
        Some(1.0),
        "{m:#?}"
    );
    let hist = "rolecall_http_request_duration_seconds";
    assert_eq!(
        get(
            &format!("{hist}_count"),
            &[("route", "/scim/v2/Users"), ("method", "GET")]
        ),
        Some(3.0)
    );
    assert_eq!(
        get(
            &format!("{hist}_bucket"),
            &[
                ("route", "/scim/v2/Users"),
                ("method", "GET"),
                ("le", "+Inf")
            ]
        ),
        Some(3.0)
    );
    let ops = "rolecall_scim_operations_total";
    assert_eq!(
        get(ops, &[("resource", "User"), ("kind", "create")]),
        Some(2.0),
        "{m:#?}"
    );
    assert_eq!(
        get(ops, &[("resource", "User"), ("kind", "deactivate")]),
        Some(1.0)
    );
    assert_eq!(
        get(ops, &[("resource", "Group"), ("kind", "create")]),
        Some(1.0)
    );
    let pool = "rolecall_db_pool_connections";
    assert!(
        get(pool, &[("pool", "write"), ("state", "idle")]).is_some(),
        "{m:#?}"
    );
    assert!(get(pool, &[("pool", "write"), ("state", "in_use")]).is_some());
    // SQLite has a separate reader pool; PostgreSQL one pool for both
    let read_pool = get(pool, &[("pool", "read"), ("state", "idle")]);
    match app.backend {
        Backend::Sqlite => assert!(read_pool.is_some(), "{m:#?}"),
        Backend::Postgres => assert!(read_pool.is_none(), "{m:#?}"),
    }
    // the scrape itself is counted by the next one
    let m2 = scrape(&app).await;
    assert!(
        sample(
            &m2,
            req,
            &[("route", "/metrics"), ("method", "GET"), ("status", "200")]
        )
        .is_some_and(|n| n >= 1.0),
        "{m2:#?}"
    );
}

/// Route labels are patterns, never raw paths: ids and unknown paths must not create series.
async fn metrics_labels_are_bounded(app: TestApp) {
    let id = app.create_user("alice@example.com").await;
    app.get(&format!("/scim/v2/Users/{id}")).await;
    let marker = uuid::Uuid::new_v4().simple().to_string();
    app.get(&format!("/scim/v2/Users/{marker}")).await;
    app.get(&format!("/scim/v2/Nope{marker}")).await;
    app.get(&format!("/nope{marker}")).await;
    app.get(&format!("/scim/v2/Nope{marker}/a/b/c")).await;
    // an extension method is a label value of its own only as "other"
    let odd = Method::from_bytes(format!("X{marker}").to_uppercase().as_bytes()).unwrap();
    app.request(odd, "/healthz", None).await;
    let m = scrape(&app).await;
    let text = m.join("\n");
    assert!(!text.contains(&id), "a user id became a label: {text}");
    assert!(
        !text.to_lowercase().contains(&marker),
        "a raw path or method became a label: {text}"
    );
    assert_eq!(
        sample(
            &m,
            "rolecall_http_requests_total",
            &[
                ("route", "/healthz"),
                ("method", "other"),
                ("status", "405")
            ]
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &m,
            "rolecall_http_requests_total",
            &[
                ("route", "/scim/v2/Users/{id}"),
                ("method", "GET"),
                ("status", "404")
            ]
        ),
        Some(1.0),
        "{text}"
    );
}

async fn request_ids(app: TestApp) {
    let id = app.create_user("alice@example.com").await;
    let mut seen = HashSet::new();
    let responses = vec![
        app.get("/scim/v2/Users").await,
        app.get(&format!("/scim/v2/Users/{id}")).await,
        app.get("/scim/v2/Users/nope").await,
        app.get("/scim/v2/Nope").await,
        app.post("/scim/v2/Users", &json!({})).await,
        app.request_with(Method::GET, "/scim/v2/Users", None, None, &[])
            .await,
        app.request_with(Method::GET, "/healthz", None, None, &[])
            .await,
        app.request_with(Method::GET, "/readyz", None, None, &[])
            .await,
        app.request_with(Method::GET, "/metrics", None, None, &[])
            .await,
        app.request_with(Method::GET, "/nope", None, None, &[])
            .await,
        app.request_with(Method::POST, "/healthz", None, None, &[])
            .await,
        app.delete("/scim/v2/Users").await,
    ];
    for r in &responses {
        let rid = r
            .header("x-request-id")
            .unwrap_or_else(|| panic!("no x-request-id on a {} ({})", r.status, r.text));
        assert!(!rid.is_empty());
        assert!(seen.insert(rid.to_string()), "request id {rid} reused");
    }
}
