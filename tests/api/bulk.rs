//! `POST /scim/v2/Bulk` (RFC 7644 §3.7): bulkId references (backward, forward, circular),
//! per-operation results, failOnErrors, the limits, and envelopes refused whole.

use reqwest::Method;
use rolecall::auth::Scope;
use serde_json::{json, Value};

use crate::both;
use crate::helpers::{metric, new_token, send, Resp, TestApp, GROUP, PATCH_OP, USER};

const BULK_REQUEST: &str = "urn:ietf:params:scim:api:messages:2.0:BulkRequest";
const BULK_RESPONSE: &str = "urn:ietf:params:scim:api:messages:2.0:BulkResponse";
const ERROR: &str = "urn:ietf:params:scim:api:messages:2.0:Error";
const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

both!(
    users_and_a_group_by_bulk_id,
    forward_references,
    circular_and_unresolvable_references,
    fail_on_errors_stops_processing,
    patch_and_delete,
    version_mismatch_fails_that_operation_only,
    too_many_operations_is_413,
    payload_over_the_limit_is_413,
    invalid_envelopes_write_nothing,
    service_provider_config_advertises_bulk,
);

async fn bulk(app: &TestApp, ops: Value) -> Resp {
    bulk_body(app, &json!({"schemas": [BULK_REQUEST], "Operations": ops})).await
}

async fn bulk_body(app: &TestApp, body: &Value) -> Resp {
    app.post("/scim/v2/Bulk", body).await
}

/// The Operations of a successful bulk response, after checking the envelope.
fn operations(r: &Resp) -> Vec<Value> {
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.header("content-type"), Some("application/scim+json"));
    assert_eq!(r.body["schemas"], json!([BULK_RESPONSE]), "{}", r.text);
    r.body["Operations"].as_array().expect("Operations").clone()
}

fn post_user(bulk_id: &str, user_name: &str) -> Value {
    json!({"method": "POST", "path": "/Users", "bulkId": bulk_id,
           "data": {"schemas": [USER], "userName": user_name, "active": true}})
}

fn post_group(bulk_id: &str, name: &str, members: &[&str]) -> Value {
    let members: Vec<Value> = members.iter().map(|m| json!({"value": m})).collect();
    json!({"method": "POST", "path": "/Groups", "bulkId": bulk_id,
           "data": {"schemas": [GROUP], "displayName": name, "members": members}})
}

/// The id at the end of an operation's `location`, after checking its shape.
fn id_of(app: &TestApp, op: &Value, endpoint: &str) -> String {
    let location = op["location"].as_str().expect("location");
    let prefix = format!("{}/scim/v2/{endpoint}/", app.address);
    location
        .strip_prefix(&prefix)
        .unwrap_or_else(|| panic!("location {location} is not under {prefix}"))
        .to_string()
}

fn assert_op_error(op: &Value, status: u16, scim_type: Option<&str>) {
    assert_eq!(op["status"], status.to_string(), "{op}");
    assert_eq!(op["response"]["schemas"], json!([ERROR]), "{op}");
    assert_eq!(op["response"]["status"], status.to_string(), "{op}");
    match scim_type {
        Some(t) => assert_eq!(op["response"]["scimType"], t, "{op}"),
        None => assert!(op["response"].get("scimType").is_none(), "{op}"),
    }
    assert!(
        op["response"]["detail"]
            .as_str()
            .is_some_and(|d| !d.is_empty()),
        "{op}"
    );
}

async fn total(app: &TestApp, endpoint: &str) -> i64 {
    let r = app.get(&format!("/scim/v2/{endpoint}?count=0")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.body["totalResults"].as_i64().expect("totalResults")
}

fn member_ids(group: &Value) -> Vec<String> {
    let mut ids: Vec<String> = group["members"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|m| m["value"].as_str().unwrap().to_string())
                .collect()
        })
        .unwrap_or_default();
    ids.sort();
    ids
}

fn sorted(mut ids: Vec<String>) -> Vec<String> {
    ids.sort();
    ids
}

/// `rolecall_scim_operations_total{resource, kind}` from `/metrics`.
async fn scim_ops(app: &TestApp, resource: &str, kind: &str) -> f64 {
    metric(
        app,
        "rolecall_scim_operations_total",
        &[("resource", resource), ("kind", kind)],
    )
    .await
}

async fn users_and_a_group_by_bulk_id(app: TestApp) {
    let r = bulk(
        &app,
        json!([
            post_user("alice", "alice@example.com"),
            post_user("bob", "bob@example.com"),
            post_group("eng", "engineering", &["bulkId:alice", "bulkId:bob"]),
        ]),
    )
    .await;
    let ops = operations(&r);
    assert_eq!(ops.len(), 3, "{}", r.text);
    for (op, bulk_id) in ops.iter().zip(["alice", "bob", "eng"]) {
        assert_eq!(op["method"], "POST", "{op}");
        assert_eq!(op["bulkId"], bulk_id, "{op}");
        assert_eq!(op["status"], "201", "{op}");
        assert_eq!(op["version"], "W/\"1\"", "{op}");
        assert!(op.get("response").is_none(), "{op}");
    }
    let alice = id_of(&app, &ops[0], "Users");
    let bob = id_of(&app, &ops[1], "Users");
    let eng = id_of(&app, &ops[2], "Groups");

    let g = app.get(&format!("/scim/v2/Groups/{eng}")).await;
    assert_eq!(g.status, 200, "{}", g.text);
    assert_eq!(g.body["displayName"], "engineering");
    assert_eq!(
        member_ids(&g.body),
        sorted(vec![alice.clone(), bob.clone()])
    );
    assert_eq!(g.header("etag"), ops[2]["version"].as_str());
    let u = app.get(&format!("/scim/v2/Users/{alice}")).await;
    assert_eq!(u.body["userName"], "alice@example.com");
    assert_eq!(u.body["groups"][0]["value"], eng.as_str());

    // the same audit entries as single requests, with the caller and the bulk request's id
    let admin = new_token(&app.store, "root", Scope::Admin).await;
    let audit = app
        .request_with(
            Method::GET,
            "/admin/v1/audit?limit=100",
            None,
            Some(&admin),
            &[],
        )
        .await;
    assert_eq!(audit.status, 200, "{}", audit.text);
    let request_id = r.header("x-request-id").expect("X-Request-Id");
    let mut made: Vec<(String, String)> = audit.body["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["request_id"] == request_id)
        .map(|e| {
            assert_eq!(e["actor"], "okta", "{e}");
            assert_eq!(e["actor_kind"], "scim", "{e}");
            (
                e["action"].as_str().unwrap().to_string(),
                e["target_id"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    made.sort();
    let mut want = vec![
        ("group.create".to_string(), eng.clone()),
        ("user.create".to_string(), alice),
        ("user.create".to_string(), bob),
    ];
    want.sort();
    assert_eq!(made, want);
    // and the same metrics
    assert_eq!(scim_ops(&app, "User", "create").await, 2.0);
    assert_eq!(scim_ops(&app, "Group", "create").await, 1.0);
}

async fn forward_references(app: TestApp) {
    // the group and a PATCH of it come before the users they reference
    let r = bulk(
        &app,
        json!([
            {"method": "PATCH", "path": "/Groups/bulkId:eng", "data": {"schemas": [PATCH_OP],
              "Operations": [{"op": "add", "path": "members", "value": [{"value": "bulkId:carol"}]}]}},
            post_group("eng", "engineering", &["bulkId:alice"]),
            post_user("alice", "alice@example.com"),
            post_user("carol", "carol@example.com"),
            // the enterprise manager may reference a user too
            {"method": "POST", "path": "/Users", "bulkId": "dave", "data": {
                "schemas": [USER, "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
                "userName": "dave@example.com",
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"manager": {"value": "bulkId:alice"}}}},
        ]),
    )
    .await;
    let ops = operations(&r);
    assert_eq!(ops.len(), 5, "{}", r.text);
    // the response lists the operations in request order
    let methods: Vec<&str> = ops.iter().map(|o| o["method"].as_str().unwrap()).collect();
    assert_eq!(methods, ["PATCH", "POST", "POST", "POST", "POST"]);
    assert_eq!(ops[0]["status"], "200", "{}", r.text);
    for op in &ops[1..] {
        assert_eq!(op["status"], "201", "{op}");
    }
    let eng = id_of(&app, &ops[1], "Groups");
    assert_eq!(
        id_of(&app, &ops[0], "Groups"),
        eng,
        "the PATCH targeted the new group"
    );
    assert_eq!(ops[0]["version"], "W/\"2\"");
    let alice = id_of(&app, &ops[2], "Users");
    let carol = id_of(&app, &ops[3], "Users");
    let dave = id_of(&app, &ops[4], "Users");
    let g = app.get(&format!("/scim/v2/Groups/{eng}")).await;
    assert_eq!(member_ids(&g.body), sorted(vec![alice.clone(), carol]));
    let d = app.get(&format!("/scim/v2/Users/{dave}")).await;
    assert_eq!(
        d.body["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"]["manager"]["value"],
        alice.as_str()
    );
}

async fn circular_and_unresolvable_references(app: TestApp) {
    let manager = |bulk_id: &str, user_name: &str, boss: &str| {
        json!({"method": "POST", "path": "/Users", "bulkId": bulk_id, "data": {
            "schemas": [USER, ENTERPRISE], "userName": user_name,
            ENTERPRISE: {"department": "Ops", "manager": {"value": format!("bulkId:{boss}")}}}})
    };
    let r = bulk(
        &app,
        json!([
            // RFC 7644 §3.7.1's example: two groups that are members of each other
            post_group("qwerty", "Group A", &["bulkId:ytrewq"]),
            post_group("ytrewq", "Group B", &["bulkId:qwerty", "bulkId:u"]),
            // a group that is its own member: created, but its completion is refused as a
            // PUT making a group its own member is
            post_group("self", "Group S", &["bulkId:self"]),
            // two users, each the other's manager
            manager("m1", "m1@example.com", "m2"),
            manager("m2", "m2@example.com", "m1"),
            // depends on a group of the cycle: runs after the cycle is complete
            post_group("after", "Group C", &["bulkId:qwerty"]),
            // references a bulkId that no operation defines
            post_group("lost", "Group D", &["bulkId:nobody"]),
            {"method": "DELETE", "path": "/Users/bulkId:nobody"},
            // a cycle member's plain reference, unaffected by the failures around it
            post_user("u", "u@example.com"),
        ]),
    )
    .await;
    let ops = operations(&r);
    assert_eq!(ops.len(), 9, "{}", r.text);
    for op in ops[0..2].iter().chain(&ops[3..6]).chain(&ops[8..9]) {
        assert_eq!(op["status"], "201", "{op}");
    }
    assert_op_error(&ops[2], 400, Some("invalidValue"));
    let a = id_of(&app, &ops[0], "Groups");
    let b = id_of(&app, &ops[1], "Groups");
    let s = id_of(&app, &ops[2], "Groups");
    let m1 = id_of(&app, &ops[3], "Users");
    let m2 = id_of(&app, &ops[4], "Users");
    let c = id_of(&app, &ops[5], "Groups");
    let u = id_of(&app, &ops[8], "Users");
    // each cycle member has its whole data, and reports the version after its completion
    let ga = app.get(&format!("/scim/v2/Groups/{a}")).await;
    assert_eq!(member_ids(&ga.body), vec![b.clone()], "{}", ga.text);
    assert_eq!(ops[0]["version"], ga.body["meta"]["version"], "{}", ga.text);
    let gb = app.get(&format!("/scim/v2/Groups/{b}")).await;
    let mut want = vec![a.clone(), u.clone()];
    want.sort();
    assert_eq!(member_ids(&gb.body), want, "{}", gb.text);
    let gs = app.get(&format!("/scim/v2/Groups/{s}")).await;
    assert!(member_ids(&gs.body).is_empty(), "{}", gs.text);
    let gc = app.get(&format!("/scim/v2/Groups/{c}")).await;
    assert_eq!(member_ids(&gc.body), vec![a.clone()], "{}", gc.text);
    for (id, boss) in [(&m1, &m2), (&m2, &m1)] {
        let r = app.get(&format!("/scim/v2/Users/{id}")).await;
        assert_eq!(
            r.body[ENTERPRISE]["manager"]["value"],
            json!(boss),
            "{}",
            r.text
        );
        assert_eq!(r.body[ENTERPRISE]["department"], "Ops", "{}", r.text);
    }
    assert_op_error(&ops[6], 400, Some("invalidValue"));
    assert!(ops[6]["response"]["detail"]
        .as_str()
        .unwrap()
        .contains("nobody"));
    assert_op_error(&ops[7], 400, Some("invalidValue"));
    assert!(ops[7].get("location").is_none(), "{}", ops[7]);
    assert_eq!(total(&app, "Groups").await, 4);
    assert_eq!(total(&app, "Users").await, 3);

    // a cycle whose other POST fails: the failure runs first (it is the dependency), so
    // the member that refers to it fails too and nothing of either is created
    let r = bulk(
        &app,
        json!([
            post_group("x", "Group X", &["bulkId:y"]),
            // userName missing: this POST fails
            {"method": "POST", "path": "/Users", "bulkId": "y",
             "data": {"schemas": [USER, ENTERPRISE], ENTERPRISE: {"manager": {"value": "bulkId:x"}}}},
        ]),
    )
    .await;
    let ops = operations(&r);
    assert_eq!(ops.len(), 2, "{}", r.text);
    for op in &ops {
        assert_op_error(op, 400, Some("invalidValue"));
        assert!(op.get("location").is_none(), "{op}");
    }
    assert!(ops[0]["response"]["detail"]
        .as_str()
        .unwrap()
        .contains("failed"));
    assert_eq!(total(&app, "Groups").await, 4);
    assert_eq!(total(&app, "Users").await, 3);
}

async fn fail_on_errors_stops_processing(app: TestApp) {
    let body = |fail_on_errors: i64| {
        json!({"schemas": [BULK_REQUEST], "failOnErrors": fail_on_errors, "Operations": [
            post_user("a", "a@example.com"),
            post_user("dup", "A@example.com"),
            post_user("b", "b@example.com"),
            post_user("dup2", "B@EXAMPLE.COM"),
            post_user("c", "c@example.com"),
        ]})
    };
    // failOnErrors 1: stop at the first error; the rest is neither performed nor reported
    let r = bulk_body(&app, &body(1)).await;
    let ops = operations(&r);
    assert_eq!(ops.len(), 2, "{}", r.text);
    assert_eq!(ops[0]["status"], "201");
    assert_op_error(&ops[1], 409, Some("uniqueness"));
    assert_eq!(ops[1]["bulkId"], "dup");
    assert!(
        ops[1].get("location").is_none(),
        "a failed POST has no location"
    );
    assert_eq!(total(&app, "Users").await, 1);
    let r = app
        .get("/scim/v2/Users?filter=userName%20eq%20%22b%40example.com%22")
        .await;
    assert_eq!(r.body["totalResults"], 0, "{}", r.text);

    // failOnErrors 3: failures do not stop the others until the third
    let r = bulk_body(&app, &body(3)).await;
    let ops = operations(&r);
    let statuses: Vec<&str> = ops.iter().map(|o| o["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["409", "409", "201", "409"], "{}", r.text);
    assert_eq!(total(&app, "Users").await, 2);

    // without failOnErrors every operation is tried
    let mut all = body(1);
    all.as_object_mut().unwrap().remove("failOnErrors");
    let r = bulk_body(&app, &all).await;
    let ops = operations(&r);
    let statuses: Vec<&str> = ops.iter().map(|o| o["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["409", "409", "409", "409", "201"], "{}", r.text);
    assert_eq!(total(&app, "Users").await, 3);
}

async fn patch_and_delete(app: TestApp) {
    let alice = app.create_user("alice@example.com").await;
    let bob = app.create_user("bob@example.com").await;
    let carol = app.create_user("carol@example.com").await;
    let eng = app.create_group("engineering", &[&alice, &bob]).await;
    let legal = app.create_group("legal", &[&alice]).await;
    let r = bulk(
        &app,
        json!([
            // Okta deactivation
            {"method": "PATCH", "path": format!("/Users/{alice}"), "data": {"schemas": [PATCH_OP],
              "Operations": [{"op": "replace", "value": {"active": false}}]}},
            // Okta membership change
            {"method": "PATCH", "path": format!("/Groups/{eng}"), "data": {"schemas": [PATCH_OP],
              "Operations": [{"op": "remove", "path": format!("members[value eq \"{bob}\"]")},
                             {"op": "add", "path": "members", "value": [{"value": carol}]}]}},
            {"method": "PUT", "path": format!("/Users/{carol}"),
             "data": {"schemas": [USER], "userName": "carol@example.com", "displayName": "Carol"}},
            {"method": "DELETE", "path": format!("/Users/{bob}")},
            {"method": "DELETE", "path": format!("/Groups/{legal}")},
            // a PATCH the engine refuses, and a DELETE of something that does not exist
            {"method": "PATCH", "path": format!("/Users/{carol}"), "data": {"schemas": [PATCH_OP],
              "Operations": [{"op": "replace", "path": "id", "value": "x"}]}},
            {"method": "DELETE", "path": "/Users/no-such-user"},
        ]),
    )
    .await;
    let ops = operations(&r);
    assert_eq!(ops.len(), 7, "{}", r.text);
    let base = format!("{}/scim/v2", app.address);
    assert_eq!(ops[0]["status"], "200");
    assert_eq!(ops[0]["location"], format!("{base}/Users/{alice}"));
    assert_eq!(ops[0]["version"], "W/\"2\"");
    assert_eq!(ops[1]["status"], "200");
    assert_eq!(ops[1]["location"], format!("{base}/Groups/{eng}"));
    assert_eq!(ops[2]["status"], "200");
    assert_eq!(ops[3]["status"], "204");
    assert_eq!(ops[3]["location"], format!("{base}/Users/{bob}"));
    assert!(ops[3].get("version").is_none());
    assert_eq!(ops[4]["status"], "204");
    assert_eq!(ops[5]["status"], "400", "{}", ops[5]);
    assert_eq!(ops[5]["response"]["status"], "400");
    assert_op_error(&ops[6], 404, None);
    assert_eq!(ops[6]["location"], format!("{base}/Users/no-such-user"));

    let a = app.get(&format!("/scim/v2/Users/{alice}")).await;
    assert_eq!(a.body["active"], false);
    let g = app.get(&format!("/scim/v2/Groups/{eng}")).await;
    assert_eq!(
        member_ids(&g.body),
        sorted(vec![alice.clone(), carol.clone()])
    );
    let c = app.get(&format!("/scim/v2/Users/{carol}")).await;
    assert_eq!(c.body["displayName"], "Carol");
    assert_eq!(c.body["meta"]["version"], "W/\"2\"");
    assert_eq!(c.body["meta"]["version"], ops[2]["version"]);
    assert_eq!(app.get(&format!("/scim/v2/Users/{bob}")).await.status, 404);
    assert_eq!(
        app.get(&format!("/scim/v2/Groups/{legal}")).await.status,
        404
    );
    assert_eq!(scim_ops(&app, "User", "deactivate").await, 1.0);
    assert_eq!(scim_ops(&app, "User", "delete").await, 1.0);
    assert_eq!(scim_ops(&app, "Group", "delete").await, 1.0);
}

async fn version_mismatch_fails_that_operation_only(app: TestApp) {
    let alice = app.create_user("alice@example.com").await;
    let bob = app.create_user("bob@example.com").await;
    let eng = app.create_group("engineering", &[]).await;
    // alice is now at version 2
    let r = app
        .patch(
            &format!("/scim/v2/Users/{alice}"),
            &json!({"schemas": [PATCH_OP], "Operations": [{"op": "replace", "path": "displayName", "value": "A"}]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = bulk(
        &app,
        json!([
            {"method": "PUT", "path": format!("/Users/{alice}"), "version": "W/\"1\"",
             "data": {"schemas": [USER], "userName": "stale@example.com"}},
            {"method": "PATCH", "path": format!("/Users/{alice}"), "version": "W/\"2\"",
             "data": {"schemas": [PATCH_OP], "Operations": [{"op": "replace", "path": "displayName", "value": "Alice"}]}},
            {"method": "DELETE", "path": format!("/Users/{bob}"), "version": "not-a-tag"},
            {"method": "DELETE", "path": format!("/Groups/{eng}"), "version": "W/\"7\""},
            {"method": "PATCH", "path": format!("/Groups/{eng}"), "version": "*",
             "data": {"schemas": [PATCH_OP], "Operations": [{"op": "replace", "path": "displayName", "value": "Eng"}]}},
        ]),
    )
    .await;
    let ops = operations(&r);
    assert_eq!(ops.len(), 5, "{}", r.text);
    assert_op_error(&ops[0], 412, Some("invalidVers"));
    assert_eq!(
        ops[0]["location"],
        format!("{}/scim/v2/Users/{alice}", app.address)
    );
    assert_eq!(ops[1]["status"], "200");
    assert_eq!(ops[1]["version"], "W/\"3\"");
    assert_op_error(&ops[2], 412, Some("invalidVers"));
    assert_op_error(&ops[3], 412, Some("invalidVers"));
    assert_eq!(ops[4]["status"], "200");

    let a = app.get(&format!("/scim/v2/Users/{alice}")).await;
    assert_eq!(
        a.body["userName"], "alice@example.com",
        "the stale PUT wrote nothing"
    );
    assert_eq!(a.body["displayName"], "Alice");
    assert_eq!(app.get(&format!("/scim/v2/Users/{bob}")).await.status, 200);
    let g = app.get(&format!("/scim/v2/Groups/{eng}")).await;
    assert_eq!(g.body["displayName"], "Eng");
}

async fn too_many_operations_is_413(app: TestApp) {
    let ops: Vec<Value> = (0..1001)
        .map(|i| post_user(&format!("u{i}"), &format!("u{i}@example.com")))
        .collect();
    let r = bulk(&app, json!(ops)).await;
    r.assert_scim_error(413, None);
    let detail = r.body["detail"].as_str().unwrap();
    assert!(
        detail.contains("maxOperations") && detail.contains("1000"),
        "{detail}"
    );
    assert_eq!(total(&app, "Users").await, 0);
    // exactly the maximum is fine
    let r = bulk(&app, json!(ops[..1000])).await;
    assert_eq!(operations(&r).len(), 1000);
    assert_eq!(total(&app, "Users").await, 1000);
}

async fn payload_over_the_limit_is_413(app: TestApp) {
    let big = "x".repeat(1024 * 1024);
    let r = bulk(
        &app,
        json!([{"method": "POST", "path": "/Users", "bulkId": "big",
                "data": {"schemas": [USER], "userName": "big@example.com", "nickName": big}}]),
    )
    .await;
    r.assert_scim_error(413, None);
    let detail = r.body["detail"].as_str().unwrap();
    assert!(
        detail.contains("maxPayloadSize") && detail.contains("1048576"),
        "{detail}"
    );
    assert_eq!(total(&app, "Users").await, 0);
}

async fn invalid_envelopes_write_nothing(app: TestApp) {
    let ok = post_user("ok", "ok@example.com");
    let bad_bodies = [
        json!({"Operations": [ok]}),
        json!({"schemas": [PATCH_OP], "Operations": [ok]}),
        json!({"schemas": [BULK_REQUEST]}),
        json!({"schemas": [BULK_REQUEST], "Operations": {"method": "POST"}}),
        json!({"schemas": [BULK_REQUEST], "Operations": [ok], "failOnErrors": 0}),
        json!({"schemas": [BULK_REQUEST], "Operations": [ok, {"method": "GET", "path": "/Users"}]}),
        json!({"schemas": [BULK_REQUEST], "Operations": [ok, {"method": "POST", "path": "/Roles", "bulkId": "r", "data": {}}]}),
        json!({"schemas": [BULK_REQUEST], "Operations": [ok, {"method": "POST", "path": "/Users", "data": {"userName": "x"}}]}),
        json!({"schemas": [BULK_REQUEST], "Operations": [ok, {"method": "PUT", "path": "/Users/1"}]}),
        json!({"schemas": [BULK_REQUEST], "Operations": [ok, {"method": "PATCH", "path": "/Users", "data": {}}]}),
        json!({"schemas": [BULK_REQUEST], "Operations": [ok, {"method": "DELETE", "path": "/Users/1/x"}]}),
        json!({"schemas": [BULK_REQUEST], "Operations": [ok, post_user("ok", "other@example.com")]}),
    ];
    for body in &bad_bodies {
        let r = bulk_body(&app, body).await;
        r.assert_scim_error(400, Some("invalidSyntax"));
    }
    // not JSON, and not a JSON content type
    let r = send(
        &app.client,
        format!("{}/scim/v2/Bulk", app.address),
        Method::POST,
        Some((
            "text/plain",
            &json!({"schemas": [BULK_REQUEST], "Operations": [ok]}),
        )),
        Some(&app.token),
        &[],
    )
    .await;
    r.assert_scim_error(415, None);
    let r = app
        .client
        .post(format!("{}/scim/v2/Bulk", app.address))
        .bearer_auth(&app.token)
        .header("content-type", "application/scim+json")
        .body("{\"schemas\": [")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    // only POST; and the scim scope is required
    let r = app.get("/scim/v2/Bulk").await;
    r.assert_scim_error(405, None);
    assert_eq!(r.header("allow"), Some("POST"));
    let r = app
        .request_with(
            Method::POST,
            "/scim/v2/Bulk",
            Some(&json!({"schemas": [BULK_REQUEST], "Operations": [ok]})),
            None,
            &[],
        )
        .await;
    r.assert_scim_error(401, None);
    assert_eq!(total(&app, "Users").await, 0);
    // an empty Operations list is a valid request that does nothing
    let r = bulk(&app, json!([])).await;
    assert!(operations(&r).is_empty());
}

async fn service_provider_config_advertises_bulk(app: TestApp) {
    let r = app.get("/scim/v2/ServiceProviderConfig").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.body["bulk"],
        json!({"supported": true, "maxOperations": 1000, "maxPayloadSize": 1_048_576})
    );
}
