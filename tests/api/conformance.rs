//! RFC 7643/7644 details found by a black-box audit: `If-Match` with a list of tags, at most
//! one `primary` value, value-filter PATCH paths checked against the schema, a whole
//! extension selected by its URN, and `filter` refused on the discovery endpoints.

use reqwest::Method;
use serde_json::{json, Value};

use crate::both;
use crate::helpers::{TestApp, GROUP, PATCH_OP, USER};

const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

both!(
    if_match_takes_a_list_of_tags,
    one_primary_value_at_most,
    value_filter_paths_are_checked,
    a_whole_extension_by_its_urn,
    discovery_refuses_filters,
    put_without_active_keeps_it,
    head_is_get_without_a_body,
    nul_characters_are_refused_not_500,
    a_patch_that_changes_nothing_keeps_the_version,
);

async fn with_if_match(
    app: &TestApp,
    method: Method,
    path: &str,
    body: Option<&Value>,
    tags: &str,
) -> crate::helpers::Resp {
    app.request_with(method, path, body, Some(&app.token), &[("if-match", tags)])
        .await
}

async fn if_match_takes_a_list_of_tags(app: TestApp) {
    let id = app.create_user("list@example.com").await;
    let path = format!("/scim/v2/Users/{id}");
    let title = |t: &str| json!({"schemas": [PATCH_OP], "Operations": [{"op": "replace", "path": "title", "value": t}]});
    // version 1 is current: any tag of the list may name it
    let r = with_if_match(
        &app,
        Method::PATCH,
        &path,
        Some(&title("a")),
        "W/\"7\", W/\"1\"",
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.header("etag"), Some("W/\"2\""));
    // none of the listed tags is current: 412, nothing changes
    let r = with_if_match(
        &app,
        Method::PATCH,
        &path,
        Some(&title("b")),
        "W/\"1\",W/\"9\"",
    )
    .await;
    r.assert_scim_error(412, Some("invalidVers"));
    let put = json!({"schemas": [USER], "userName": "list@example.com", "title": "c"});
    let r = with_if_match(
        &app,
        Method::PUT,
        &path,
        Some(&put),
        "W/\"1\", \"x\", W/\"3\"",
    )
    .await;
    r.assert_scim_error(412, Some("invalidVers"));
    let now = app.get(&path).await;
    assert_eq!(
        (now.body["title"].clone(), now.header("etag")),
        (json!("a"), Some("W/\"2\""))
    );
    // a PUT and a DELETE with the current version somewhere in the list
    let r = with_if_match(&app, Method::PUT, &path, Some(&put), "W/\"1\", W/\"2\"").await;
    assert_eq!(
        (r.status.as_u16(), r.body["title"].clone()),
        (200, json!("c")),
        "{}",
        r.text
    );
    let r = with_if_match(&app, Method::DELETE, &path, None, "W/\"1\", W/\"2\"").await;
    r.assert_scim_error(412, Some("invalidVers"));
    let r = with_if_match(&app, Method::DELETE, &path, None, "W/\"2\", W/\"3\"").await;
    assert_eq!(r.status, 204, "{}", r.text);
    // a list naming a resource that is gone: 404, as a single tag would be
    let r = with_if_match(&app, Method::DELETE, &path, None, "W/\"3\", W/\"4\"").await;
    r.assert_scim_error(404, None);
    // groups too; `*` in a list matches anything
    let gid = app.create_group("listed", &[]).await;
    let gpath = format!("/scim/v2/Groups/{gid}");
    let rename = json!({"schemas": [PATCH_OP], "Operations": [{"op": "replace", "path": "displayName", "value": "renamed"}]});
    let r = with_if_match(
        &app,
        Method::PATCH,
        &gpath,
        Some(&rename),
        "W/\"5\", W/\"6\"",
    )
    .await;
    r.assert_scim_error(412, Some("invalidVers"));
    let r = with_if_match(&app, Method::PATCH, &gpath, Some(&rename), "W/\"5\", *").await;
    assert_eq!(
        (r.status.as_u16(), r.body["displayName"].clone()),
        (200, json!("renamed")),
        "{}",
        r.text
    );
}

async fn one_primary_value_at_most(app: TestApp) {
    let two = json!([{"value": "a@x.com", "primary": true}, {"value": "b@x.com", "type": "work", "primary": true}]);
    let r = app
        .post(
            "/scim/v2/Users",
            &json!({"schemas": [USER], "userName": "two@example.com", "emails": two}),
        )
        .await;
    r.assert_scim_error(400, Some("invalidValue"));
    assert!(
        r.body["detail"].as_str().unwrap().contains("primary"),
        "{}",
        r.text
    );
    let list = app
        .get("/scim/v2/Users?filter=userName%20eq%20%22two@example.com%22")
        .await;
    assert_eq!(
        list.body["totalResults"], 0,
        "nothing written: {}",
        list.text
    );
    // a PUT likewise, and the user stays as it was
    let id = app.create_user("one@example.com").await;
    let r = app
        .put(
            &format!("/scim/v2/Users/{id}"),
            &json!({"schemas": [USER], "userName": "one@example.com", "emails": two}),
        )
        .await;
    r.assert_scim_error(400, Some("invalidValue"));
    let now = app.get(&format!("/scim/v2/Users/{id}")).await;
    assert_eq!(now.header("etag"), Some("W/\"1\""), "{}", now.text);
    // one primary is fine, and a PATCH adding a primary value clears the other (RFC 7644 §3.5.2)
    let r = app
        .put(
            &format!("/scim/v2/Users/{id}"),
            &json!({"schemas": [USER], "userName": "one@example.com",
                    "emails": [{"value": "a@x.com", "primary": true}, {"value": "b@x.com"}]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = app
        .patch(
            &format!("/scim/v2/Users/{id}"),
            &json!({"schemas": [PATCH_OP], "Operations": [
                {"op": "add", "path": "emails", "value": [{"value": "c@x.com", "primary": true}]}]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let primaries: Vec<&Value> = r.body["emails"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["primary"] == true)
        .collect();
    assert_eq!(
        primaries,
        vec![&json!({"value": "c@x.com", "primary": true})]
    );
}

async fn value_filter_paths_are_checked(app: TestApp) {
    let id = app.create_user("paths@example.com").await;
    let path = format!("/scim/v2/Users/{id}");
    let op = |o: Value| json!({"schemas": [PATCH_OP], "Operations": [o]});
    for (o, scim_type) in [
        // an unknown sub-attribute in the filter, or after it; a literal of the wrong type
        (
            json!({"op": "replace", "path": "emails[foo eq \"x\"].value", "value": "y"}),
            "invalidPath",
        ),
        (
            json!({"op": "add", "path": "emails[type eq \"work\"].bogus", "value": "y"}),
            "invalidPath",
        ),
        (
            json!({"op": "add", "path": "emails[primary eq \"x\"]", "value": {"value": "p@x.com"}}),
            "invalidPath",
        ),
        // a whole element written from something that is not an object
        (
            json!({"op": "add", "path": "emails[type eq \"other\"]", "value": "o@x.com"}),
            "invalidValue",
        ),
        (
            json!({"op": "replace", "path": "addresses[type eq \"work\"]", "value": 5}),
            "invalidValue",
        ),
    ] {
        let r = app.patch(&path, &op(o.clone())).await;
        r.assert_scim_error(400, Some(scim_type));
    }
    let now = app.get(&path).await;
    assert_eq!(
        now.header("etag"),
        Some("W/\"1\""),
        "nothing written: {}",
        now.text
    );
    // the array form with one element is taken as that element
    let r = app
        .patch(
            &path,
            &op(json!({"op": "add", "path": "emails[type eq \"other\"]", "value": [{"value": "o@x.com"}]})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.body["emails"],
        json!([{"type": "other", "value": "o@x.com"}])
    );
}

async fn a_whole_extension_by_its_urn(app: TestApp) {
    let r = app
        .post(
            "/scim/v2/Users",
            &json!({"schemas": [USER, ENTERPRISE], "userName": "ext@example.com", "title": "T",
                    ENTERPRISE: {"department": "R&D", "employeeNumber": "7"}}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let id = r.body["id"].as_str().unwrap().to_string();
    let only = app
        .get(&format!("/scim/v2/Users/{id}?attributes={ENTERPRISE}"))
        .await;
    assert_eq!(only.status, 200, "{}", only.text);
    assert_eq!(
        only.body[ENTERPRISE],
        json!({"department": "R&D", "employeeNumber": "7"})
    );
    assert!(
        only.body.get("title").is_none() && only.body.get("userName").is_none(),
        "{}",
        only.text
    );
    let without = app
        .get(&format!("/scim/v2/Users?excludedAttributes={ENTERPRISE}&filter=userName%20eq%20%22ext@example.com%22"))
        .await;
    assert_eq!(without.status, 200, "{}", without.text);
    let user = &without.body["Resources"][0];
    assert!(user.get(ENTERPRISE).is_none(), "{}", without.text);
    assert_eq!(user["title"], "T");
}

async fn discovery_refuses_filters(app: TestApp) {
    for path in [
        "/scim/v2/ServiceProviderConfig",
        "/scim/v2/ResourceTypes",
        "/scim/v2/Schemas",
    ] {
        let r = app.get(&format!("{path}?filter=id%20eq%20%22x%22")).await;
        r.assert_scim_error(403, None);
        let r = app.get(path).await;
        assert_eq!(r.status, 200, "{path}: {}", r.text);
    }
    // a group schema by id still answers
    let r = app.get(&format!("/scim/v2/Schemas/{GROUP}")).await;
    assert_eq!(r.status, 200, "{}", r.text);
}

async fn put_without_active_keeps_it(app: TestApp) {
    let id = app.create_user("sleeper@example.com").await;
    let path = format!("/scim/v2/Users/{id}");
    let off = json!({"schemas": [PATCH_OP], "Operations": [{"op": "replace", "value": {"active": false}}]});
    assert_eq!(app.patch(&path, &off).await.status, 200);
    // a profile PUT that leaves out `active` does not reactivate the user
    let profile = json!({"schemas": [USER], "userName": "sleeper@example.com", "title": "Dormant"});
    let r = app.put(&path, &profile).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        (r.body["active"].clone(), r.body["title"].clone()),
        (json!(false), json!("Dormant"))
    );
    assert_eq!(app.get(&path).await.body["active"], false);
    // nor do `active` removed or set to null, by PATCH or PUT (unassigned, RFC 7643 §2.5;
    // found by an audit: each of these reactivated the user and gave back every role)
    let patch = |o: Value| json!({"schemas": [PATCH_OP], "Operations": [o]});
    for (method, body) in [
        (
            Method::PATCH,
            patch(json!({"op": "remove", "path": "active"})),
        ),
        (
            Method::PATCH,
            patch(json!({"op": "replace", "path": "active", "value": null})),
        ),
        (
            Method::PATCH,
            patch(json!({"op": "replace", "value": {"active": null}})),
        ),
        (
            Method::PATCH,
            patch(json!({"op": "Add", "path": "ACTIVE", "value": null})),
        ),
        (
            Method::PUT,
            json!({"schemas": [USER], "userName": "sleeper@example.com", "title": "Dormant", "active": null}),
        ),
    ] {
        let r = app.request(method.clone(), &path, Some(&body)).await;
        assert_eq!(r.status, 200, "{method} {body}: {}", r.text);
        assert_eq!(r.body["active"], false, "{method} {body}: {}", r.text);
        assert_eq!(app.get(&path).await.body["active"], false);
    }
    // ... with If-Match too, which it checks as before
    let r = app
        .request_with(
            Method::PUT,
            &path,
            Some(&profile),
            Some(&app.token),
            &[("if-match", "W/\"1\"")],
        )
        .await;
    r.assert_scim_error(412, Some("invalidVers"));
    // naming it sets it
    let on = json!({"schemas": [USER], "userName": "sleeper@example.com", "active": true});
    let r = app.put(&path, &on).await;
    assert_eq!(
        (r.status.as_u16(), r.body["active"].clone()),
        (200, json!(true)),
        "{}",
        r.text
    );
    assert!(r.body.get("title").is_none(), "a PUT replaces: {}", r.text);
    // and a new user without `active` is active
    let r = app
        .post(
            "/scim/v2/Users",
            &json!({"schemas": [USER], "userName": "fresh@example.com"}),
        )
        .await;
    assert_eq!(r.body["active"], true, "{}", r.text);
}

/// HEAD is GET without the body (RFC 9110 §9.3.2), with the same status and headers.
async fn head_is_get_without_a_body(app: TestApp) {
    let id = app.create_user("head@example.com").await;
    let path = format!("/scim/v2/Users/{id}");
    let get = app.get(&path).await;
    let head = app.request(Method::HEAD, &path, None).await;
    assert_eq!(head.status, 200, "{}", head.text);
    assert!(
        head.text.is_empty(),
        "a HEAD answer has no body: {}",
        head.text
    );
    assert_eq!(head.header("etag"), get.header("etag"));
    assert_eq!(head.header("content-type"), get.header("content-type"));
    assert_eq!(
        head.header("content-length")
            .and_then(|l| l.parse::<usize>().ok()),
        Some(get.text.len())
    );
    // no token: 401 as for GET; the operational endpoints need none
    let r = app
        .request_with(Method::HEAD, "/scim/v2/Users", None, None, &[])
        .await;
    assert_eq!((r.status.as_u16(), r.text.as_str()), (401, ""));
    let r = app
        .request_with(Method::HEAD, "/healthz", None, None, &[])
        .await;
    assert_eq!(r.status, 200);
    // a path without GET: 405, as GET would be
    let r = app.request(Method::HEAD, "/scim/v2/Bulk", None).await;
    assert_eq!(r.status, 405);
}

/// U+0000 cannot be stored by PostgreSQL: a client's input, so a 400 on both back-ends,
/// never a 500.
async fn nul_characters_are_refused_not_500(app: TestApp) {
    let r = app
        .post(
            "/scim/v2/Users",
            &json!({"schemas": [USER], "userName": "nul\u{0}a"}),
        )
        .await;
    r.assert_scim_error(400, Some("invalidValue"));
    let id = app.create_user("clean@example.com").await;
    let r = app
        .patch(
            &format!("/scim/v2/Users/{id}"),
            &json!({"schemas": [PATCH_OP], "Operations": [{"op": "replace", "path": "title", "value": "a\u{0}b"}]}),
        )
        .await;
    r.assert_scim_error(400, Some("invalidValue"));
    let admin = crate::helpers::new_token(&app.store, "ops", rolecall::auth::Scope::Admin).await;
    for (method, path, body) in [
        (Method::GET, "/admin/v1/audit?actor=a%00b", None),
        (
            Method::POST,
            "/admin/v1/tokens",
            Some(json!({"name": "a\u{0}b", "scope": "admin"})),
        ),
        (Method::DELETE, "/admin/v1/tokens/a%00b", None),
    ] {
        let r = app
            .request_with(method.clone(), path, body.as_ref(), Some(&admin), &[])
            .await;
        assert!(
            r.status.is_success() || r.status == 400 || r.status == 404,
            "{method} {path}: {} {}",
            r.status,
            r.text
        );
    }
}

/// A PATCH that changes nothing (a password, which rolecall discards; a value set to what it
/// already is) writes nothing: the same `meta.version`, `ETag` and `lastModified` (found by an
/// IdP replay audit: every such PATCH made a new version, so caches and `If-Match` holders saw
/// a change that was not one). A real change still makes a new version.
async fn a_patch_that_changes_nothing_keeps_the_version(app: TestApp) {
    let id = app.create_user("same@example.com").await;
    let path = format!("/scim/v2/Users/{id}");
    let op = |o: Value| json!({"schemas": [PATCH_OP], "Operations": [o]});
    let set_title = op(json!({"op": "replace", "path": "title", "value": "Engineer"}));
    let first = app.patch(&path, &set_title).await;
    assert_eq!(first.status, 200, "{}", first.text);
    for noop in [
        set_title.clone(),
        op(json!({"op": "replace", "path": "password", "value": "hunter2"})),
        op(json!({"op": "replace", "value": {"active": true, "title": "Engineer"}})),
        op(json!({"op": "remove", "path": "nickName"})),
    ] {
        let r = app.patch(&path, &noop).await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(
            r.body["meta"]["version"], first.body["meta"]["version"],
            "{noop}"
        );
        assert_eq!(
            r.body["meta"]["lastModified"],
            first.body["meta"]["lastModified"]
        );
        assert_eq!(r.header("etag"), first.header("etag"));
        assert_eq!(r.body, first.body);
    }
    let changed = app
        .patch(
            &path,
            &op(json!({"op": "replace", "path": "title", "value": "Lead"})),
        )
        .await;
    assert_ne!(changed.header("etag"), first.header("etag"));

    // a group: a rename to its own name, with and without the members in the answer
    let g = app.create_group("ops", &[id.as_str()]).await;
    let gpath = format!("/scim/v2/Groups/{g}");
    let before = app.get(&gpath).await;
    let rename = op(json!({"op": "replace", "value": {"id": g, "displayName": "ops"}}));
    let r = app.patch(&gpath, &rename).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body, before.body);
    let r = app
        .patch(&format!("{gpath}?excludedAttributes=members"), &rename)
        .await;
    assert_eq!(r.body["meta"], before.body["meta"]);
    assert!(r.body.get("members").is_none(), "{}", r.text);

    // memberships that are already so (an IdP re-pushing a group): an add of a member, a
    // remove of a non-member, both; the membership rows are unchanged, so is the version
    let other = app.create_user("other@example.com").await;
    for noop in [
        op(json!({"op": "add", "path": "members", "value": [{"value": id}]})),
        op(json!({"op": "remove", "path": format!("members[value eq \"{other}\"]")})),
        json!({"schemas": [PATCH_OP], "Operations": [
            {"op": "add", "path": "members", "value": [{"value": id}]},
            {"op": "remove", "path": format!("members[value eq \"{other}\"]")},
        ]}),
    ] {
        let r = app.patch(&gpath, &noop).await;
        assert_eq!(r.status, 200, "{noop}: {}", r.text);
        assert_eq!(r.body, before.body, "{noop}");
        assert_eq!(r.header("etag"), before.header("etag"), "{noop}");
    }
    // a real membership change still makes a new version, and so does a no-op membership
    // change beside a real attribute change
    let added = app
        .patch(
            &gpath,
            &op(json!({"op": "add", "path": "members", "value": [{"value": other}]})),
        )
        .await;
    assert_eq!(added.status, 200, "{}", added.text);
    assert_ne!(added.header("etag"), before.header("etag"));
    let both = app
        .patch(
            &gpath,
            &json!({"schemas": [PATCH_OP], "Operations": [
                {"op": "add", "path": "members", "value": [{"value": other}]},
                {"op": "replace", "path": "displayName", "value": "ops-2"},
            ]}),
        )
        .await;
    assert_eq!(both.status, 200, "{}", both.text);
    assert_ne!(both.header("etag"), added.header("etag"));
    assert_eq!(both.body["displayName"], "ops-2");
    let members = both.body["members"].as_array().map_or(0, Vec::len);
    assert_eq!(members, 2, "{}", both.text);
}
