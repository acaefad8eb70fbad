//! The admin API (mappings with If-Match and preview, the audit log, API tokens) and the
//! `mappings` CLI verbs through the real binary, including `serve --mappings`.

use std::collections::BTreeSet;
use std::fs::File;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::Method;
use rolecall::auth::Scope;
use serde_json::{json, Value};
use sha2::Digest;

use crate::both;
use crate::helpers::{new_token, Resp, TestApp, PATCH_OP, USER};
use crate::roles::{
    add_member, apply_mapping, assert_problem, cli, poll, remove_member, scim_group, scim_user,
    set_active, small_mapping, small_mapping_normalized, stderr, stdout, write_file, Server, BIN,
    SMALL_TOML,
};

both!(
    mappings_get_and_put,
    preview_changes_nothing,
    renamed_groups_are_flagged,
    audit_log_records_every_change,
    audit_log_filters_and_paging,
    api_tokens,
    cli_mappings_verbs,
);

/// The empty document GET /admin/v1/mappings shows before anything is applied.
fn empty_document() -> Value {
    json!({"roles": {}, "workspaces": [], "rules": []})
}

async fn put_mapping(srv: &Server, admin: &str, doc: &Value, if_match: Option<&str>) -> Resp {
    let headers: Vec<(&str, &str)> = if_match.map(|t| ("if-match", t)).into_iter().collect();
    srv.call(
        Method::PUT,
        "/admin/v1/mappings",
        Some(doc),
        Some(admin),
        &headers,
    )
    .await
}

async fn get_mapping(srv: &Server, admin: &str) -> Resp {
    let r = srv.get("/admin/v1/mappings", admin).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.header("content-type"), Some("application/json"));
    r
}

/// Asserts the mapping in force: its version, ETag and document.
async fn assert_mapping(srv: &Server, admin: &str, version: i64, document: &Value) {
    let r = get_mapping(srv, admin).await;
    assert_eq!(r.body["version"], version, "{}", r.text);
    let tag = format!("W/\"{version}\"");
    assert_eq!(r.header("etag"), Some(tag.as_str()));
    assert_eq!(&r.body["document"], document, "{}", r.text);
}

/// `(path, message)` of each problem in a 422 body.
fn problems(r: &Resp) -> Vec<(String, String)> {
    assert_problem(r, 422);
    r.body["problems"]
        .as_array()
        .unwrap_or_else(|| panic!("no problems list: {}", r.text))
        .iter()
        .map(|p| {
            (
                p["path"].as_str().expect("path").to_string(),
                p["message"].as_str().expect("message").to_string(),
            )
        })
        .collect()
}

fn assert_has_problem(list: &[(String, String)], path: &str, message_part: &str) {
    assert!(
        list.iter()
            .any(|(p, m)| p == path && m.contains(message_part)),
        "no problem at {path} mentioning {message_part:?} in {list:#?}"
    );
}

/// A mapping document with four problems: an unknown role in a rule, an unknown workspace, a
/// duplicate rule and a bad model glob.
fn broken_mapping() -> Value {
    let mut doc = small_mapping();
    let rules = doc["rules"].as_array_mut().unwrap();
    rules.push(json!({"group": "legal", "role": "superuser", "workspace": "legal"}));
    rules.push(json!({"group": "engineering", "role": "member", "workspace": "marketing"}));
    rules.push(json!({"group": "Engineering", "role": "member", "workspace": "Engineering"}));
    doc["roles"]["member"]["models"] = json!(["claude-haiku-*", "claude sonnet"]);
    doc
}

fn rule(group: &str, role: &str, ws: Option<&str>, project: Option<&str>) -> Value {
    let mut r = json!({"group": group, "role": role});
    if let Some(w) = ws {
        r["workspace"] = json!(w);
    }
    if let Some(p) = project {
        r["project"] = json!(p);
    }
    r
}

// ---------------------------------------------------------------------------------------------
// Mappings

/// The summary of the newest `mapping.apply` audit entry.
async fn last_apply(srv: &Server, admin: &str) -> Value {
    let r = srv
        .get("/admin/v1/audit?action=mapping.apply&limit=1", admin)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.body["entries"][0]["summary"].clone()
}

async fn mappings_get_and_put(app: TestApp) {
    let srv = Server::of(&app);
    let admin = new_token(&app.store, "root", Scope::Admin).await;
    let lookup = new_token(&app.store, "gateway", Scope::Lookup).await;
    let scim = app.token.clone();

    // nothing applied yet
    let r = get_mapping(&srv, &admin).await;
    assert_eq!(r.header("etag"), Some("W/\"0\""));
    assert_eq!(r.body["version"], 0);
    assert_eq!(r.body["document"], empty_document());
    assert_eq!(r.body["unmatched_rules"], json!([]));

    let alice = scim_user(&srv, &scim, "alice@example.com", None).await;
    let bob = scim_user(&srv, &scim, "bob@example.com", None).await;
    scim_group(&srv, &scim, "engineering", &[&alice]).await;
    scim_group(&srv, &scim, "legal", &[&bob]).await;

    // If-Match is required
    let r = put_mapping(&srv, &admin, &small_mapping(), None).await;
    assert_problem(&r, 428);
    assert_mapping(&srv, &admin, 0, &empty_document()).await;
    // a stale or meaningless If-Match: 412, nothing changes
    for tag in ["W/\"7\"", "\"1\"", "W/\"abc\""] {
        let r = put_mapping(&srv, &admin, &small_mapping(), Some(tag)).await;
        assert_problem(&r, 412);
    }
    // a list with no current version is stale too
    let r = put_mapping(&srv, &admin, &small_mapping(), Some("W/\"5\", W/\"6\"")).await;
    assert_problem(&r, 412);
    assert_mapping(&srv, &admin, 0, &empty_document()).await;

    // an invalid document: 422 with every problem, path and message
    let r = put_mapping(&srv, &admin, &broken_mapping(), Some("W/\"0\"")).await;
    let list = problems(&r);
    assert_has_problem(&list, "rules[3].role", "unknown role \"superuser\"");
    assert_has_problem(
        &list,
        "rules[4].workspace",
        "unknown workspace \"marketing\"",
    );
    assert_has_problem(&list, "rules[5]", "duplicate rule");
    assert_has_problem(&list, "roles.member.models[1]", "claude sonnet");
    assert_eq!(list.len(), 4, "{list:#?}");
    // structural problems too: unknown keys, wrong types, a missing rank, a bad glob
    let r = put_mapping(
        &srv,
        &admin,
        &json!({
            "roles": {"member": {"permissions": ["chats.read"], "models": ["claude-[x]"]}},
            "rules": [{"group": "x", "role": "member", "colour": "blue"}],
            "extra": 1,
            "workspaces": "engineering"
        }),
        Some("W/\"0\""),
    )
    .await;
    let list = problems(&r);
    assert_has_problem(&list, "extra", "unknown key");
    assert_has_problem(&list, "rules[0].colour", "unknown key");
    assert_has_problem(&list, "roles.member.rank", "missing");
    assert_has_problem(&list, "roles.member.models[0]", "claude-[x]");
    assert_has_problem(&list, "workspaces", "expected an array");
    assert_mapping(&srv, &admin, 0, &empty_document()).await;

    // a valid document: the new version, and the diff
    let r = put_mapping(&srv, &admin, &small_mapping(), Some("W/\"0\"")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.header("etag"), Some("W/\"1\""));
    assert_eq!(r.body["version"], 1);
    let diff = &r.body["diff"];
    assert_eq!(diff["rules_added"], small_mapping()["rules"], "{diff}");
    assert_eq!(diff["rules_removed"], json!([]));
    assert_eq!(diff["roles_added"], json!(["admin", "member", "viewer"]));
    assert_eq!(diff["workspaces_added"], json!(["engineering", "legal"]));
    assert_eq!(
        diff["users"],
        json!([
            {"user_id": alice, "user_name": "alice@example.com", "scope": {"workspace": "engineering"}, "old": null, "new": "member"},
            {"user_id": bob, "user_name": "bob@example.com", "scope": {"workspace": "legal", "project": "contracts"}, "old": null, "new": "viewer"}
        ]),
        "{diff}"
    );
    assert_eq!(
        diff["unmatched_rules"],
        json!([rule("claude-admin", "admin", None, None)]),
        "no claude-admin group has been pushed"
    );
    assert_mapping(&srv, &admin, 1, &small_mapping_normalized()).await;
    let lookup_alice = srv
        .roles(&lookup, "alice@example.com", "?workspace=engineering")
        .await;
    assert_eq!(lookup_alice.body["effective"]["role"], "member");
    assert_eq!(lookup_alice.body["mapping_version"], 1);

    // the old ETag is now stale: 412, and nothing changes
    let mut doc2 = small_mapping();
    doc2["rules"][1]["role"] = json!("admin");
    let r = put_mapping(&srv, &admin, &doc2, Some("W/\"0\"")).await;
    assert_problem(&r, 412);
    assert_mapping(&srv, &admin, 1, &small_mapping_normalized()).await;
    assert_eq!(
        srv.roles(&lookup, "alice@example.com", "?workspace=engineering")
            .await
            .body["effective"]["role"],
        "member"
    );

    // with the current ETag: a role change, old -> new, for the users it touches
    let r = put_mapping(&srv, &admin, &doc2, Some("W/\"1\"")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["version"], 2);
    let diff = &r.body["diff"];
    assert_eq!(
        diff["rules_added"],
        json!([rule("engineering", "admin", Some("engineering"), None)])
    );
    assert_eq!(
        diff["rules_removed"],
        json!([rule("engineering", "member", Some("engineering"), None)])
    );
    assert_eq!(
        diff["users"],
        json!([{"user_id": alice, "user_name": "alice@example.com", "scope": {"workspace": "engineering"}, "old": "member", "new": "admin"}])
    );
    assert_eq!(
        srv.roles(&lookup, "alice@example.com", "?workspace=engineering")
            .await
            .body["effective"]["role"],
        "admin",
        "the very next lookup has the new mapping"
    );

    // the same document again (If-Match naming the current version in a list): a new
    // version, nothing changes for anyone
    let r = put_mapping(&srv, &admin, &doc2, Some("W/\"1\", W/\"2\"")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["version"], 3);
    assert_eq!(r.body["diff"]["users"], json!([]));
    assert_eq!(r.body["diff"]["rules_added"], json!([]));
    assert_eq!(last_apply(&srv, &admin).await["users_affected"], 0);

    // only the admin role's policy changes (no rule, no role name): its holders are affected,
    // with what changed; a description-only edit of another role affects nobody
    let mut doc3 = doc2.clone();
    doc3["roles"]["admin"]["models"] = json!(["claude-haiku-*"]);
    doc3["roles"]["admin"]["max_tokens"] = json!(512);
    doc3["roles"]["viewer"]["description"] = json!("Read chats, nothing else");
    let alice_admin = json!([{
        "user_id": alice, "user_name": "alice@example.com", "scope": {"workspace": "engineering"},
        "old": "admin", "new": "admin", "policy_changed": ["models", "max_tokens"]
    }]);
    let opus = json!({
        "subject": {"type": "user", "id": "alice@example.com"},
        "action": {"name": "messages.create"},
        "resource": {"type": "model", "id": "claude-opus-4", "properties": {"workspace": "engineering"}}
    });
    let r = srv.evaluate(&lookup, &opus).await;
    assert_eq!(r.body["decision"], true, "{}", r.text);
    let r = srv.post("/admin/v1/mappings/preview", &doc3, &admin).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["diff"]["roles_changed"], json!(["admin", "viewer"]));
    assert_eq!(r.body["diff"]["users"], alice_admin, "{}", r.text);
    let r = put_mapping(&srv, &admin, &doc3, Some("W/\"3\"")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["version"], 4);
    assert_eq!(r.body["diff"]["users"], alice_admin, "{}", r.text);
    let summary = last_apply(&srv, &admin).await;
    assert_eq!(summary["users_affected"], 1, "{summary}");
    assert_eq!(summary["roles_changed"], json!(["admin", "viewer"]));
    assert!(summary.get("default_role").is_none(), "{summary}");
    let r = srv.evaluate(&lookup, &opus).await;
    assert_eq!(
        r.body["decision"], false,
        "the change the diff reported: {}",
        r.text
    );

    // a default role: every active user gains it, and the audit entry says so
    let mut doc4 = doc3.clone();
    doc4["default_role"] = json!("viewer");
    let r = put_mapping(&srv, &admin, &doc4, Some("W/\"4\"")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["diff"]["default_role"], json!(["", "viewer"]));
    assert_eq!(r.body["diff"]["users"].as_array().unwrap().len(), 2);
    let summary = last_apply(&srv, &admin).await;
    assert_eq!(
        summary["default_role"],
        json!({"from": null, "to": "viewer"}),
        "{summary}"
    );
    assert_eq!(summary["users_affected"], 2);
    assert_eq!(summary["workspaces_added"], json!([]));

    // removing everything, whatever the version (`If-Match: *`): back to no access
    let r = put_mapping(&srv, &admin, &json!({}), Some("*")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.body["diff"]["users"].as_array().unwrap().len(),
        4,
        "alice and bob, organization-wide and where their rules were: {}",
        r.text
    );
    assert_eq!(
        srv.roles(&lookup, "alice@example.com", "").await.body["roles"],
        json!([])
    );
    let summary = last_apply(&srv, &admin).await;
    assert_eq!(
        summary["default_role"],
        json!({"from": "viewer", "to": null}),
        "{summary}"
    );
    assert_eq!(
        summary["workspaces_removed"],
        json!(["engineering", "legal"])
    );
    assert_eq!(summary["users_affected"], 2);
    // not JSON: 400 problem; PUT only with an admin token
    let r = srv
        .client
        .put(format!("{}/admin/v1/mappings", srv.address))
        .bearer_auth(&admin)
        .header("if-match", "W/\"6\"")
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = put_mapping(&srv, &lookup, &small_mapping(), Some("W/\"6\"")).await;
    assert_problem(&r, 403);
    assert_mapping(&srv, &admin, 6, &empty_document()).await;
}

async fn preview_changes_nothing(app: TestApp) {
    let srv = Server::of(&app);
    let admin = new_token(&app.store, "root", Scope::Admin).await;
    let lookup = new_token(&app.store, "gateway", Scope::Lookup).await;
    let scim = app.token.clone();
    apply_mapping(&srv, &admin, &small_mapping()).await;
    let alice = scim_user(&srv, &scim, "alice@example.com", None).await;
    let bob = scim_user(&srv, &scim, "bob@example.com", None).await;
    scim_group(&srv, &scim, "engineering", &[&alice]).await;
    scim_group(&srv, &scim, "legal", &[&bob]).await;
    let before_alice = srv.roles(&lookup, "alice@example.com", "").await;
    let before_bob = srv.roles(&lookup, "bob@example.com", "").await;
    let audit_before = srv.get("/admin/v1/audit?limit=1000", &admin).await;

    let mut doc = small_mapping();
    doc["rules"][1]["role"] = json!("admin");
    doc["rules"].as_array_mut().unwrap().push(rule(
        "legal",
        "viewer",
        Some("legal"),
        Some("litigation"),
    ));
    let r = srv.post("/admin/v1/mappings/preview", &doc, &admin).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["version"], 1, "the version in force");
    // GET's answer sent back with its document edited previews the same
    let mut wrapped = get_mapping(&srv, &admin).await.body;
    wrapped["document"] = doc.clone();
    let w = srv
        .post("/admin/v1/mappings/preview", &wrapped, &admin)
        .await;
    assert_eq!(
        (w.status.as_u16(), &w.body["diff"]),
        (200, &r.body["diff"]),
        "{}",
        w.text
    );
    let diff = &r.body["diff"];
    assert_eq!(
        diff["rules_added"],
        json!([
            rule("engineering", "admin", Some("engineering"), None),
            rule("legal", "viewer", Some("legal"), Some("litigation"))
        ]),
        "{diff}"
    );
    assert_eq!(
        diff["rules_removed"],
        json!([rule("engineering", "member", Some("engineering"), None)])
    );
    assert_eq!(
        diff["users"],
        json!([
            {"user_id": alice, "user_name": "alice@example.com", "scope": {"workspace": "engineering"}, "old": "member", "new": "admin"},
            {"user_id": bob, "user_name": "bob@example.com", "scope": {"workspace": "legal", "project": "litigation"}, "old": null, "new": "viewer"}
        ]),
        "{diff}"
    );

    // nothing changed: the version, the document, the lookups, the audit log
    assert_mapping(&srv, &admin, 1, &small_mapping_normalized()).await;
    assert_eq!(
        srv.roles(&lookup, "alice@example.com", "").await.body,
        before_alice.body
    );
    assert_eq!(
        srv.roles(&lookup, "bob@example.com", "").await.body,
        before_bob.body
    );
    let audit_after = srv.get("/admin/v1/audit?limit=1000", &admin).await;
    assert_eq!(
        audit_after.body, audit_before.body,
        "a preview is not a change"
    );

    // an invalid document: 422 with its problems, and still nothing changes
    let r = srv
        .post("/admin/v1/mappings/preview", &broken_mapping(), &admin)
        .await;
    assert_eq!(problems(&r).len(), 4, "{}", r.text);
    assert_mapping(&srv, &admin, 1, &small_mapping_normalized()).await;
    // the preview needs an admin token, and POST
    let r = srv.post("/admin/v1/mappings/preview", &doc, &lookup).await;
    assert_problem(&r, 403);
    let r = srv.get("/admin/v1/mappings/preview", &admin).await;
    assert_problem(&r, 405);

    // a preview that changes only member's models lists who holds member (alice), and still
    // changes nothing
    let mut doc = small_mapping();
    doc["roles"]["member"]["models"] = json!(["claude-haiku-*", "claude-sonnet-*"]);
    let r = srv.post("/admin/v1/mappings/preview", &doc, &admin).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let diff = &r.body["diff"];
    assert_eq!(diff["roles_changed"], json!(["member"]), "{diff}");
    assert_eq!(diff["rules_added"], json!([]));
    assert_eq!(
        diff["users"],
        json!([{
            "user_id": alice, "user_name": "alice@example.com", "scope": {"workspace": "engineering"},
            "old": "member", "new": "member", "policy_changed": ["models"]
        }]),
        "{diff}"
    );
    assert_mapping(&srv, &admin, 1, &small_mapping_normalized()).await;
    assert_eq!(
        srv.get("/admin/v1/audit?limit=1000", &admin).await.body,
        audit_before.body
    );

    // previewing what is in force: no changes
    let r = srv
        .post("/admin/v1/mappings/preview", &small_mapping(), &admin)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["diff"]["users"], json!([]));
    assert_eq!(r.body["diff"]["rules_added"], json!([]));
    assert_eq!(r.body["diff"]["rules_removed"], json!([]));
}

async fn renamed_groups_are_flagged(app: TestApp) {
    let srv = Server::of(&app);
    let admin = new_token(&app.store, "root", Scope::Admin).await;
    let lookup = new_token(&app.store, "gateway", Scope::Lookup).await;
    let scim = app.token.clone();
    let bob = scim_user(&srv, &scim, "bob@example.com", None).await;
    let carol = scim_user(&srv, &scim, "carol@example.com", None).await;
    let eve = scim_user(&srv, &scim, "eve@example.com", None).await;
    scim_group(&srv, &scim, "engineering", &[]).await;
    let legal = scim_group(&srv, &scim, "legal", &[&bob]).await;
    scim_group(&srv, &scim, "claude-admin", &[&carol]).await;
    // a group Entra-style, named by its externalId in a rule
    let r = srv
        .post(
            "/scim/v2/Groups",
            &json!({"schemas": [crate::helpers::GROUP], "displayName": "Paralegals", "externalId": "entra-0f3c", "members": [{"value": eve}]}),
            &scim,
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let paralegals = r.body["id"].as_str().unwrap().to_string();
    let mut doc = small_mapping();
    doc["rules"].as_array_mut().unwrap().push(json!({
        "group_external_id": "entra-0f3c", "role": "viewer", "workspace": "legal", "project": "litigation"
    }));
    apply_mapping(&srv, &admin, &doc).await;
    let r = get_mapping(&srv, &admin).await;
    assert_eq!(r.body["unmatched_rules"], json!([]), "{}", r.text);
    assert_eq!(
        srv.roles(
            &lookup,
            "bob@example.com",
            "?workspace=legal&project=contracts"
        )
        .await
        .body["effective"]["role"],
        "viewer"
    );

    // Okta renames the group: the rule naming it by displayName is flagged
    let r = srv
        .patch(
            &format!("/scim/v2/Groups/{legal}"),
            &json!({"schemas": [PATCH_OP], "Operations": [{"op": "replace", "value": {"id": legal, "displayName": "Legal Team"}}]}),
            &scim,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let legal_rule = rule("legal", "viewer", Some("legal"), Some("contracts"));
    let r = get_mapping(&srv, &admin).await;
    assert_eq!(r.body["unmatched_rules"], json!([legal_rule]), "{}", r.text);
    // the preview of the same document lists it too (and changes nothing)
    let r = srv.post("/admin/v1/mappings/preview", &doc, &admin).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["diff"]["unmatched_rules"], json!([legal_rule]));
    assert_eq!(r.body["diff"]["unmatched_rule_indexes"], json!([2]));
    assert_eq!(r.body["diff"]["users"], json!([]));
    // the documented choice: a displayName rule does not follow the rename (it is flagged)
    let r = srv.roles(&lookup, "bob@example.com", "").await;
    assert_eq!(r.body["groups"], json!(["Legal Team"]));
    assert_eq!(r.body["roles"], json!([]), "{}", r.text);

    // Entra renames its group: the externalId rule keeps matching and is not flagged
    let r = srv
        .patch(
            &format!("/scim/v2/Groups/{paralegals}"),
            &json!({"schemas": [PATCH_OP], "Operations": [{"op": "Replace", "path": "displayName", "value": "Paralegal Team"}]}),
            &scim,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = get_mapping(&srv, &admin).await;
    assert_eq!(r.body["unmatched_rules"], json!([legal_rule]), "{}", r.text);
    let r = srv
        .roles(
            &lookup,
            "eve@example.com",
            "?workspace=legal&project=litigation",
        )
        .await;
    assert_eq!(r.body["effective"]["role"], "viewer", "{}", r.text);

    // renamed back in another case: it matches again (case-insensitive) and the flag goes
    let r = srv
        .patch(
            &format!("/scim/v2/Groups/{legal}"),
            &json!({"schemas": [PATCH_OP], "Operations": [{"op": "replace", "path": "displayName", "value": "LEGAL"}]}),
            &scim,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        get_mapping(&srv, &admin).await.body["unmatched_rules"],
        json!([])
    );
    assert_eq!(
        srv.roles(
            &lookup,
            "bob@example.com",
            "?workspace=legal&project=contracts"
        )
        .await
        .body["effective"]["role"],
        "viewer"
    );
    // a deleted group flags its rules too
    let r = srv.delete(&format!("/scim/v2/Groups/{legal}"), &scim).await;
    assert_eq!(r.status, 204);
    assert_eq!(
        get_mapping(&srv, &admin).await.body["unmatched_rules"],
        json!([legal_rule])
    );
}

// ---------------------------------------------------------------------------------------------
// Audit log

async fn audit_all(srv: &Server, admin: &str) -> Vec<Value> {
    let r = srv.get("/admin/v1/audit?limit=1000", admin).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.body["entries"].as_array().expect("entries").clone()
}

fn request_id(r: &Resp) -> String {
    r.header("x-request-id")
        .expect("X-Request-Id on every response")
        .to_string()
}

/// One change made over HTTP, for the audit checks.
struct Made {
    request_id: String,
    actor: &'static str,
    actor_kind: &'static str,
    action: &'static str,
    target_type: &'static str,
    target_id: String,
}

async fn audit_log_records_every_change(app: TestApp) {
    let srv = Server::of(&app);
    let admin = new_token(&app.store, "root", Scope::Admin).await;
    let scim = app.token.clone();
    let before: BTreeSet<i64> = audit_all(&srv, &admin)
        .await
        .iter()
        .map(|e| e["seq"].as_i64().unwrap())
        .collect();
    let mut made: Vec<Made> = Vec::new();
    let mut note = |r: &Resp, actor, actor_kind, action, target_type, target_id: &str| {
        assert!(r.status.is_success(), "{action}: {}", r.text);
        made.push(Made {
            request_id: request_id(r),
            actor,
            actor_kind,
            action,
            target_type,
            target_id: target_id.to_string(),
        });
    };

    // SCIM: create, patch, replace, group create, membership change, deactivation, deletes
    let r = srv
        .post(
            "/scim/v2/Users",
            &json!({"schemas": [USER], "userName": "alice@example.com", "active": true}),
            &scim,
        )
        .await;
    let alice = r.body["id"].as_str().unwrap().to_string();
    note(&r, "okta", "scim", "user.create", "user", &alice);
    let r = srv
        .patch(
            &format!("/scim/v2/Users/{alice}"),
            &json!({"schemas": [PATCH_OP], "Operations": [{"op": "replace", "path": "title", "value": "Engineer"}]}),
            &scim,
        )
        .await;
    note(&r, "okta", "scim", "user.patch", "user", &alice);
    let r = srv
        .call(
            Method::PUT,
            &format!("/scim/v2/Users/{alice}"),
            Some(&json!({"schemas": [USER], "userName": "alice@example.com", "displayName": "Alice", "active": true})),
            Some(&scim),
            &[],
        )
        .await;
    note(&r, "okta", "scim", "user.replace", "user", &alice);
    let r = srv
        .post(
            "/scim/v2/Groups",
            &json!({"schemas": [crate::helpers::GROUP], "displayName": "engineering", "members": [{"value": alice}]}),
            &scim,
        )
        .await;
    let eng = r.body["id"].as_str().unwrap().to_string();
    note(&r, "okta", "scim", "group.create", "group", &eng);
    let r = remove_member(&srv, &scim, &eng, &alice).await;
    note(&r, "okta", "scim", "group.patch", "group", &eng);
    let r = set_active(&srv, &scim, &alice, false).await;
    note(&r, "okta", "scim", "user.deactivate", "user", &alice);
    let r = set_active(&srv, &scim, &alice, true).await;
    note(&r, "okta", "scim", "user.reactivate", "user", &alice);

    // admin: a mapping apply, a token created and revoked
    let current = srv.get("/admin/v1/mappings", &admin).await;
    let r = put_mapping(&srv, &admin, &small_mapping(), current.header("etag")).await;
    note(&r, "root", "admin", "mapping.apply", "mapping", "rolecall");
    let r = srv
        .post(
            "/admin/v1/tokens",
            &json!({"name": "ci", "scope": "lookup"}),
            &admin,
        )
        .await;
    let token_id = r.body["id"].as_str().unwrap().to_string();
    note(&r, "root", "admin", "token.create", "token", &token_id);
    let r = srv.delete("/admin/v1/tokens/ci", &admin).await;
    note(&r, "root", "admin", "token.revoke", "token", &token_id);

    // deletes last
    let r = srv.delete(&format!("/scim/v2/Users/{alice}"), &scim).await;
    note(&r, "okta", "scim", "user.delete", "user", &alice);
    let r = srv.delete(&format!("/scim/v2/Groups/{eng}"), &scim).await;
    note(&r, "okta", "scim", "group.delete", "group", &eng);

    // a key rotation from the command line
    let out = cli(&app.database_url, &["keys", "rotate"]).await;
    assert!(out.status.success(), "{}", stderr(&out));

    let all = audit_all(&srv, &admin).await;
    // newest first
    let seqs: Vec<i64> = all.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert!(
        seqs.windows(2).all(|w| w[0] > w[1]),
        "not newest first: {seqs:?}"
    );
    let ats: Vec<&str> = all.iter().map(|e| e["at"].as_str().unwrap()).collect();
    assert!(ats.windows(2).all(|w| w[0] >= w[1]), "{ats:?}");
    for at in &ats {
        assert!(chrono::DateTime::parse_from_rfc3339(at).is_ok(), "{at}");
    }

    // every change made over HTTP: exactly one entry, with its request id, actor and client
    let mut made_seqs = Vec::new();
    for m in &made {
        let entries: Vec<&Value> = all
            .iter()
            .filter(|e| e["request_id"] == m.request_id.as_str())
            .collect();
        assert_eq!(
            entries.len(),
            1,
            "{}: entries with request id {}: {entries:#?}",
            m.action,
            m.request_id
        );
        let e = entries[0];
        assert_eq!(e["action"], m.action, "{e}");
        assert_eq!(e["actor"], m.actor, "{e}");
        assert_eq!(e["actor_kind"], m.actor_kind, "{e}");
        assert_eq!(e["target_type"], m.target_type, "{e}");
        assert_eq!(e["target_id"], m.target_id.as_str(), "{e}");
        assert!(
            e["summary"].as_object().is_some_and(|s| !s.is_empty()) || m.action == "group.delete",
            "a summary of what changed: {e}"
        );
        assert!(
            e["client"]
                .as_str()
                .is_some_and(|c| c.starts_with("127.0.0.1")),
            "client address: {e}"
        );
        made_seqs.push(e["seq"].as_i64().unwrap());
    }
    assert!(
        made_seqs.windows(2).all(|w| w[0] < w[1]),
        "entries in the order the changes were made: {made_seqs:?}"
    );
    // summaries say what changed
    let by_action = |action: &str| -> Vec<&Value> {
        all.iter()
            .filter(|e| e["action"] == action && !before.contains(&e["seq"].as_i64().unwrap()))
            .collect()
    };
    assert_eq!(
        by_action("user.create")[0]["summary"]["userName"],
        "alice@example.com"
    );
    assert_eq!(by_action("user.deactivate")[0]["summary"]["active"], false);
    assert_eq!(
        by_action("group.patch")[0]["summary"]["members"]["removed"],
        1
    );
    assert_eq!(by_action("token.create")[0]["summary"]["name"], "ci");
    let apply = by_action("mapping.apply");
    assert_eq!(apply.len(), 1);
    assert_eq!(apply[0]["summary"]["from_version"], 0);

    // the key rotation: one entry, by the CLI, naming the new key
    let rotations = by_action("key.rotate");
    assert_eq!(rotations.len(), 1, "{rotations:#?}");
    let kid = rotations[0]["target_id"].as_str().unwrap();
    assert!(stdout(&out).contains(kid), "{}", stdout(&out));
    assert_eq!(rotations[0]["actor_kind"], "cli");
    assert!(rotations[0]["actor"].as_str().unwrap().starts_with("cli:"));
    assert!(rotations[0]["request_id"].is_null());
    // who ran it, as the kernel says (the name is only $USER)
    let client = rotations[0]["client"].as_str().unwrap();
    assert!(
        client
            .strip_prefix("local uid ")
            .is_some_and(|uid| uid.parse::<u32>().is_ok()),
        "{client}"
    );

    // nothing else was written by these requests: reads leave no trace
    let new_entries = all
        .iter()
        .filter(|e| !before.contains(&e["seq"].as_i64().unwrap()))
        .count();
    assert_eq!(new_entries, made.len() + 1, "{all:#?}");

    // append-only through the API
    for method in [Method::DELETE, Method::PUT, Method::POST, Method::PATCH] {
        let r = srv
            .call(
                method.clone(),
                "/admin/v1/audit",
                Some(&json!({})),
                Some(&admin),
                &[],
            )
            .await;
        assert_problem(&r, 405);
        assert_eq!(r.header("allow"), Some("GET"), "{method}");
    }
    let seq = all[0]["seq"].as_i64().unwrap();
    for method in [Method::DELETE, Method::PUT, Method::PATCH] {
        let r = srv
            .call(
                method,
                &format!("/admin/v1/audit/{seq}"),
                None,
                Some(&admin),
                &[],
            )
            .await;
        assert!(
            r.status == 404 || r.status == 405,
            "{}: {}",
            r.status,
            r.text
        );
    }
    assert_eq!(audit_all(&srv, &admin).await, all, "the log is unchanged");
}

async fn audit_log_filters_and_paging(app: TestApp) {
    let srv = Server::of(&app);
    let admin = new_token(&app.store, "root", Scope::Admin).await;
    let scim = app.token.clone();
    let mut users = Vec::new();
    for name in ["a", "b", "c", "d"] {
        let id = scim_user(&srv, &scim, &format!("{name}@example.com"), None).await;
        users.push(id);
        // spread the entries over a few milliseconds so that since/until have something to cut
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let g = scim_group(&srv, &scim, "g", &[&users[0]]).await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    add_member(&srv, &scim, &g, &users[1]).await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    set_active(&srv, &scim, &users[0], false).await;
    apply_mapping(&srv, &admin, &small_mapping()).await;
    let all = audit_all(&srv, &admin).await;
    assert!(all.len() >= 10, "{all:#?}");
    let seqs = |v: &[Value]| -> Vec<i64> { v.iter().map(|e| e["seq"].as_i64().unwrap()).collect() };
    let get = |query: String| {
        let srv = srv.clone();
        let admin = admin.clone();
        async move { srv.get(&format!("/admin/v1/audit{query}"), &admin).await }
    };
    let entries = |r: &Resp| -> Vec<Value> {
        assert_eq!(r.status, 200, "{}", r.text);
        r.body["entries"].as_array().expect("entries").clone()
    };

    // the default page holds all of them, with no further page
    let r = get(String::new()).await;
    assert_eq!(entries(&r), all);
    assert!(r.body["next_cursor"].is_null(), "{}", r.text);

    // filters
    let r = get("?action=user.create".into()).await;
    let got = entries(&r);
    assert_eq!(got.len(), 4);
    assert!(got.iter().all(|e| e["action"] == "user.create"));
    let r = get("?actor=okta".into()).await;
    let want: Vec<Value> = all
        .iter()
        .filter(|e| e["actor"] == "okta")
        .cloned()
        .collect();
    assert_eq!(entries(&r), want);
    assert_eq!(
        want.len(),
        7,
        "4 creates, a group, a membership change, a deactivation"
    );
    let r = get("?actor=root".into()).await;
    let got = entries(&r);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["action"], "mapping.apply");
    let r = get(format!("?target={}", users[0])).await;
    let actions: Vec<String> = entries(&r)
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(actions, ["user.deactivate", "user.create"]);
    let r = get(format!("?target={}&action=user.create", users[0])).await;
    assert_eq!(entries(&r).len(), 1);
    let r = get("?actor=nobody".into()).await;
    assert_eq!(entries(&r), Vec::<Value>::new());
    assert!(r.body["next_cursor"].is_null());

    // since (inclusive) and until (exclusive), against the times of the entries themselves
    let mid = all[all.len() / 2]["at"].as_str().unwrap().to_string();
    let since: Vec<Value> = all
        .iter()
        .filter(|e| e["at"].as_str().unwrap() >= mid.as_str())
        .cloned()
        .collect();
    let until: Vec<Value> = all
        .iter()
        .filter(|e| e["at"].as_str().unwrap() < mid.as_str())
        .cloned()
        .collect();
    assert!(!since.is_empty() && !until.is_empty(), "{mid}: {all:#?}");
    assert_eq!(
        seqs(&entries(&get(format!("?since={mid}")).await)),
        seqs(&since)
    );
    assert_eq!(
        seqs(&entries(&get(format!("?until={mid}")).await)),
        seqs(&until)
    );
    assert!(entries(&get(format!("?since={mid}&until={mid}")).await).is_empty());
    // the same instant in another offset means the same thing
    let shifted = chrono::DateTime::parse_from_rfc3339(&mid)
        .unwrap()
        .with_timezone(&chrono::FixedOffset::east_opt(2 * 3600).unwrap())
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, false);
    assert!(shifted.contains("+02:00"), "{shifted}");
    let encoded = shifted.replace('+', "%2B");
    assert_eq!(
        seqs(&entries(&get(format!("?since={encoded}")).await)),
        seqs(&since)
    );
    assert_eq!(
        seqs(&entries(&get(format!("?until={encoded}")).await)),
        seqs(&until)
    );
    // a bound between two stored milliseconds (entries are stamped to the millisecond):
    // `mid` + 0.9 ms is after the entries stamped `mid` and before the next millisecond
    let between = mid.replace('Z', "9Z");
    let after_mid: Vec<Value> = all
        .iter()
        .filter(|e| e["at"].as_str().unwrap() > mid.as_str())
        .cloned()
        .collect();
    let up_to_mid: Vec<Value> = all
        .iter()
        .filter(|e| e["at"].as_str().unwrap() <= mid.as_str())
        .cloned()
        .collect();
    assert_eq!(
        seqs(&entries(&get(format!("?since={between}")).await)),
        seqs(&after_mid),
        "since={between}"
    );
    assert_eq!(
        seqs(&entries(&get(format!("?until={between}")).await)),
        seqs(&up_to_mid),
        "until={between}"
    );
    // far in the past and in the future
    assert_eq!(
        entries(&get("?since=2000-01-01T00:00:00Z".into()).await),
        all
    );
    assert!(entries(&get("?since=2999-01-01T00:00:00Z".into()).await).is_empty());
    assert_eq!(
        entries(&get("?until=2999-01-01T00:00:00Z".into()).await),
        all
    );

    // cursor paging: limit=2, follow next_cursor to the end; no duplicates, no gaps
    let mut collected = Vec::new();
    let mut query = "?limit=2".to_string();
    let mut pages = 0;
    loop {
        let r = get(query.clone()).await;
        let page = entries(&r);
        assert!(page.len() <= 2, "{}", r.text);
        collected.extend(page);
        pages += 1;
        assert!(pages < 100, "paging does not end");
        match r.body["next_cursor"].as_str() {
            Some(c) => query = format!("?limit=2&cursor={c}"),
            None => {
                assert!(r.body["next_cursor"].is_null(), "{}", r.text);
                break;
            }
        }
    }
    assert_eq!(seqs(&collected), seqs(&all), "paged in full, in order");
    // paging with a filter
    let mut collected = Vec::new();
    let mut query = "?limit=3&actor=okta".to_string();
    loop {
        let r = get(query.clone()).await;
        collected.extend(entries(&r));
        match r.body["next_cursor"].as_str() {
            Some(c) => query = format!("?limit=3&actor=okta&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(collected, want);

    // bad parameters: 400 problem
    for query in [
        "?limit=abc",
        "?limit=1.5",
        "?cursor=abc",
        "?cursor=1;DROP",
        "?since=yesterday",
        "?since=2026-13-01T00:00:00Z",
        "?until=2026-01-01",
    ] {
        let r = get(query.to_string()).await;
        assert_problem(&r, 400);
    }
    // an admin token is needed
    let lookup = new_token(&app.store, "gateway", Scope::Lookup).await;
    assert_problem(&srv.get("/admin/v1/audit", &lookup).await, 403);
    assert_problem(&srv.get("/admin/v1/audit", &scim).await, 403);
}

// ---------------------------------------------------------------------------------------------
// API tokens

fn sha256_hex(s: &str) -> String {
    sha2::Sha256::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

async fn api_tokens(app: TestApp) {
    let srv = Server::of(&app);
    let admin = new_token(&app.store, "root", Scope::Admin).await;
    let create = |name: &str, scope: &str| {
        let srv = srv.clone();
        let admin = admin.clone();
        let body = json!({"name": name, "scope": scope});
        async move { srv.post("/admin/v1/tokens", &body, &admin).await }
    };

    let r = create("ci-admin", "admin").await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.body["name"], "ci-admin");
    assert_eq!(r.body["scope"], "admin");
    let ci_admin = r.body["token"]
        .as_str()
        .expect("the secret, once")
        .to_string();
    assert!(ci_admin.starts_with("rc_"), "{ci_admin}");
    let gw = create("gw2", "lookup").await.body["token"]
        .as_str()
        .unwrap()
        .to_string();
    let okta2 = create("okta2", "scim").await.body["token"]
        .as_str()
        .unwrap()
        .to_string();

    // each works for its scope only, at once
    assert_eq!(srv.get("/admin/v1/mappings", &ci_admin).await.status, 200);
    assert_problem(
        &srv.get("/v1/users/nobody@example.com/roles", &ci_admin)
            .await,
        403,
    );
    assert_problem(
        &srv.get("/v1/users/nobody@example.com/roles", &gw).await,
        404,
    );
    assert_problem(&srv.get("/admin/v1/tokens", &gw).await, 403);
    assert_eq!(srv.get("/scim/v2/Users", &okta2).await.status, 200);
    assert_eq!(srv.get("/scim/v2/Users", &gw).await.status, 403);

    // the list: names and scopes, never a secret or its hash
    let r = srv.get("/admin/v1/tokens", &admin).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let listed: Vec<(String, String)> = r.body["tokens"]
        .as_array()
        .expect("tokens")
        .iter()
        .map(|t| {
            assert!(t.get("token").is_none(), "{t}");
            assert!(t.get("secret_hash").is_none(), "{t}");
            (
                t["name"].as_str().unwrap().to_string(),
                t["scope"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    for (name, scope) in [
        ("ci-admin", "admin"),
        ("gw2", "lookup"),
        ("okta2", "scim"),
        ("root", "admin"),
        ("okta", "scim"),
    ] {
        assert!(
            listed.contains(&(name.to_string(), scope.to_string())),
            "{name} {scope} not in {listed:?}"
        );
    }
    for secret in [&ci_admin, &gw, &okta2, &admin, &app.token] {
        let part = secret.rsplit('_').next().unwrap();
        assert!(!r.text.contains(part), "a secret is listed: {}", r.text);
        assert!(
            !r.text.contains(&sha256_hex(part)),
            "a hash is listed: {}",
            r.text
        );
    }

    // refusals: duplicate name 409, bad scope 400, missing fields 400
    let r = create("ci-admin", "lookup").await;
    assert_problem(&r, 409);
    assert!(r.body.get("token").is_none());
    assert_eq!(srv.get("/admin/v1/mappings", &ci_admin).await.status, 200);
    for (what, body) in [
        ("unknown scope", json!({"name": "x", "scope": "root"})),
        ("upper-case scope", json!({"name": "x", "scope": "ADMIN"})),
        ("missing scope", json!({"name": "x"})),
        ("missing name", json!({"scope": "admin"})),
        ("empty name", json!({"name": " ", "scope": "admin"})),
        ("name not a string", json!({"name": 7, "scope": "admin"})),
        ("not an object", json!(["x", "admin"])),
    ] {
        let r = srv.post("/admin/v1/tokens", &body, &admin).await;
        assert_eq!(r.status, 400, "{what}: {}", r.text);
        assert_problem(&r, 400);
    }
    let r = srv.get("/admin/v1/tokens", &admin).await;
    assert!(
        !r.body["tokens"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["name"] == "x"),
        "nothing was created by the refusals: {}",
        r.text
    );

    // revoke: 204, and the token stops working at once; the others keep working
    let r = srv.delete("/admin/v1/tokens/ci-admin", &admin).await;
    assert_eq!(r.status, 204, "{}", r.text);
    let r = srv.get("/admin/v1/mappings", &ci_admin).await;
    assert_problem(&r, 401);
    assert_eq!(srv.get("/admin/v1/mappings", &admin).await.status, 200);
    let r = srv.delete("/admin/v1/tokens/gw2", &admin).await;
    assert_eq!(r.status, 204);
    assert_problem(
        &srv.get("/v1/users/nobody@example.com/roles", &gw).await,
        401,
    );
    // unknown (or already revoked) names: 404
    assert_problem(&srv.delete("/admin/v1/tokens/ci-admin", &admin).await, 404);
    assert_problem(&srv.delete("/admin/v1/tokens/no-such", &admin).await, 404);
    let r = srv.get("/admin/v1/tokens", &admin).await;
    let names: Vec<&str> = r.body["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert!(
        !names.contains(&"ci-admin") && !names.contains(&"gw2"),
        "{names:?}"
    );
    // a revoked name can be used again, with a new secret
    let r = create("ci-admin", "admin").await;
    assert_eq!(r.status, 201, "{}", r.text);
    let again = r.body["token"].as_str().unwrap().to_string();
    assert_ne!(again, ci_admin);
    assert_eq!(srv.get("/admin/v1/mappings", &again).await.status, 200);
    assert_problem(&srv.get("/admin/v1/mappings", &ci_admin).await, 401);
    // methods
    assert_problem(
        &srv.call(
            Method::PUT,
            "/admin/v1/tokens",
            Some(&json!({})),
            Some(&admin),
            &[],
        )
        .await,
        405,
    );
    assert_problem(&srv.get("/admin/v1/tokens/root", &admin).await, 405);
}

// ---------------------------------------------------------------------------------------------
// The mappings CLI verbs

/// A broken mapping file: an unknown key on line 5, a duplicate rule starting on line 15 and an
/// unknown role on line 22.
const BROKEN_TOML: &str = r#"[roles.member]
rank = 40
permissions = ["messages.create"]
models = ["claude-haiku-*"]
colour = "blue"

[[workspaces]]
name = "engineering"

[[rules]]
group = "engineering"
role = "member"
workspace = "engineering"

[[rules]]
group = "engineering"
role = "member"
workspace = "engineering"

[[rules]]
group = "legal"
role = "superuser"
"#;

fn shipped_mapping() -> String {
    format!("{}/mappings/rolecall.toml", env!("CARGO_MANIFEST_DIR"))
}

async fn cli_mappings_verbs(app: TestApp) {
    let url = app.database_url.clone();
    let srv = Server::of(&app);
    let admin = new_token(&app.store, "root", Scope::Admin).await;
    let lookup = new_token(&app.store, "gateway", Scope::Lookup).await;
    let alice = scim_user(&srv, &app.token, "alice@example.com", None).await;
    let bob = scim_user(&srv, &app.token, "bob@example.com", None).await;
    scim_group(&srv, &app.token, "engineering", &[&alice]).await;
    scim_group(&srv, &app.token, "legal", &[&bob]).await;
    let dir = tempfile::tempdir().unwrap();

    // validate: the shipped document is valid
    let out = cli(&url, &["mappings", "validate", &shipped_mapping()]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let small = write_file(dir.path(), "small.toml", SMALL_TOML);
    let out = cli(&url, &["mappings", "validate", &small]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    // rules that match no group of the directory are flagged (the file is still valid)
    let text = stdout(&out);
    assert!(
        text.contains("matches no group: group \"claude-admin\" -> admin in organization"),
        "{text}"
    );
    assert!(
        !text.contains("matches no group: group \"engineering\""),
        "{text}"
    );
    // every role that may call models there has a cap and an rpm: no such warning
    assert!(!text.contains("may call models"), "{text}");
    // a role that may call models without them is named (the file is still valid)
    let uncapped = write_file(
        dir.path(),
        "uncapped.toml",
        &SMALL_TOML.replace("max_tokens = 512\nrpm = 10\n", "rpm = 10\n"),
    );
    let out = cli(&url, &["mappings", "validate", &uncapped]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("! role member may call models with max_tokens 0 (no cap"),
        "{text}"
    );
    assert!(!text.contains("role admin may call"), "{text}");
    // no database to check against: said so, and no SQLite file is created
    let missing = dir.path().join("missing.db");
    let out = cli(
        &format!("sqlite://{}", missing.display()),
        &["mappings", "validate", &small],
    )
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("not checked against the directory"),
        "{}",
        stdout(&out)
    );
    assert!(!missing.exists());

    // a broken file: non-zero, every problem with its line
    let broken = write_file(dir.path(), "broken.toml", BROKEN_TOML);
    let out = cli(&url, &["mappings", "validate", &broken]).await;
    assert!(!out.status.success());
    let err = stderr(&out);
    let line_of = |needle: &str| -> String {
        err.lines()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no problem mentioning {needle:?}:\n{err}"))
            .to_string()
    };
    let unknown_key = line_of("colour");
    assert!(unknown_key.contains("line 5"), "{unknown_key}");
    let unknown_role = line_of("superuser");
    assert!(unknown_role.contains("line 22"), "{unknown_role}");
    let duplicate = line_of("duplicate rule");
    assert!(
        duplicate.contains("line 15") && duplicate.contains("line 10"),
        "the duplicate (line 15) names the first rule (line 10): {duplicate}"
    );
    assert!(err.contains("3 problem"), "{err}");
    // a missing file, a syntax error
    let out = cli(
        &url,
        &[
            "mappings",
            "validate",
            &format!("{}/nope.toml", dir.path().display()),
        ],
    )
    .await;
    assert!(!out.status.success());
    let syntax = write_file(
        dir.path(),
        "syntax.toml",
        "[roles.member]\nrank = 40\nrank = \n",
    );
    let out = cli(&url, &["mappings", "validate", &syntax]).await;
    assert!(!out.status.success());
    assert!(stderr(&out).contains("line 3"), "{}", stderr(&out));

    // diff: added rules and per-user changes; nothing changes
    let out = cli(&url, &["mappings", "diff", &small]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    for want in [
        "+ rule group \"engineering\" -> member in workspace engineering",
        "+ rule group \"legal\" -> viewer in workspace legal, project contracts",
        "+ rule group \"claude-admin\" -> admin in organization",
        "alice@example.com  workspace engineering: none -> member",
        "bob@example.com  workspace legal, project contracts: none -> viewer",
    ] {
        assert!(text.contains(want), "missing {want:?} in:\n{text}");
    }
    assert_mapping(&srv, &admin, 0, &empty_document()).await;
    assert_eq!(
        srv.roles(&lookup, "alice@example.com", "").await.body["roles"],
        json!([])
    );
    // diff of a broken file: non-zero, nothing changes
    let out = cli(&url, &["mappings", "diff", &broken]).await;
    assert!(!out.status.success());

    // apply: the running server has it within a second
    let out = cli(&url, &["mappings", "apply", &small]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("alice@example.com  workspace engineering: none -> member"),
        "{}",
        stdout(&out)
    );
    assert!(stdout(&out).contains("version 1"), "{}", stdout(&out));
    let (r, took) = poll(
        Duration::from_secs(1),
        || srv.get("/admin/v1/mappings", &admin),
        |r| r.body["version"] == 1,
    )
    .await;
    assert!(
        took.is_some(),
        "the apply did not reach the server: {}",
        r.text
    );
    assert_mapping(&srv, &admin, 1, &small_mapping_normalized()).await;
    assert_eq!(
        srv.roles(&lookup, "alice@example.com", "?workspace=engineering")
            .await
            .body["effective"]["role"],
        "member"
    );
    // the same file again: no changes
    let out = cli(&url, &["mappings", "diff", &small]).await;
    assert!(stdout(&out).contains("no changes"), "{}", stdout(&out));
    // a broken file is not applied
    let out = cli(&url, &["mappings", "apply", &broken]).await;
    assert!(!out.status.success());
    assert!(stderr(&out).contains("superuser"), "{}", stderr(&out));

    // export: TOML that validates and parses back to the same document
    let out = cli(&url, &["mappings", "export"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let exported = stdout(&out);
    let file = write_file(dir.path(), "exported.toml", &exported);
    let out = cli(&url, &["mappings", "validate", &file]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let parsed = rolecall::roles::parse_toml(&exported).expect("the export parses");
    assert_eq!(parsed, rolecall::roles::parse_toml(SMALL_TOML).unwrap());
    assert_eq!(
        serde_json::to_value(&parsed).unwrap(),
        get_mapping(&srv, &admin).await.body["document"]
    );

    // a file that changes only member's policy: diff and apply name its holder (alice) and what
    // changed
    let policy = SMALL_TOML
        .replace(
            "models = [\"claude-haiku-*\"]\n",
            "models = [\"claude-haiku-*\", \"claude-sonnet-*\"]\n",
        )
        .replace("max_tokens = 512\n", "max_tokens = 1024\n");
    assert_ne!(policy, SMALL_TOML);
    let policy = write_file(dir.path(), "policy.toml", &policy);
    let held = "1 role change(s) for 1 user(s):\n\
                alice@example.com  workspace engineering: member (policy changed: models, max_tokens)\n";
    for verb in ["diff", "apply"] {
        let out = cli(&url, &["mappings", verb, &policy]).await;
        assert!(out.status.success(), "{}", stderr(&out));
        let text = stdout(&out);
        assert!(
            text.contains("~ role member (definition changed)\n"),
            "{text}"
        );
        assert!(text.contains(held), "{verb}: missing {held:?} in:\n{text}");
        assert!(!text.contains("bob@example.com"), "{text}");
    }
    let (r, took) = poll(
        Duration::from_secs(1),
        || srv.get("/admin/v1/mappings", &admin),
        |r| r.body["version"] == 2,
    )
    .await;
    assert!(took.is_some(), "{}", r.text);

    // the shipped document applies, exports and round-trips too
    let out = cli(&url, &["mappings", "apply", &shipped_mapping()]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let out = cli(&url, &["mappings", "export"]).await;
    let shipped = std::fs::read_to_string(shipped_mapping()).unwrap();
    assert_eq!(
        rolecall::roles::parse_toml(&stdout(&out)).unwrap(),
        rolecall::roles::parse_toml(&shipped).unwrap()
    );
    let (r, took) = poll(
        Duration::from_secs(1),
        || srv.get("/admin/v1/mappings", &admin),
        |r| r.body["version"] == 3,
    )
    .await;
    assert!(took.is_some(), "{}", r.text);
    // the audit log has the three applies, by the CLI
    let r = srv
        .get("/admin/v1/audit?action=mapping.apply", &admin)
        .await;
    let entries = r.body["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 3, "{}", r.text);
    assert_eq!(entries[1]["summary"]["users_affected"], 1, "{}", r.text);
    assert!(entries.iter().all(|e| e["actor_kind"] == "cli"));
}

/// `rolecall serve` (the real binary) on a free port; killed when dropped.
struct Served {
    child: Child,
    address: String,
    log: std::path::PathBuf,
}

impl Served {
    fn spawn(dir: &std::path::Path, db: &str, extra: &[&str]) -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = dir.join("server.log");
        let file = File::create(&log).unwrap();
        let child = Command::new(BIN)
            .env_remove("ROLECALL_DATABASE_URL")
            .env_remove("DATABASE_URL")
            .env_remove("ROLECALL_MAPPINGS")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .args(["--database-url", db, "serve", "--listen"])
            .arg(format!("127.0.0.1:{port}"))
            .args(["--workers", "1"])
            .args(extra)
            .stdout(Stdio::from(file.try_clone().unwrap()))
            .stderr(Stdio::from(file))
            .spawn()
            .expect("start rolecall serve");
        Served {
            child,
            address: format!("http://127.0.0.1:{port}"),
            log,
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    async fn wait_healthy(&mut self) {
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = client.get(format!("{}/healthz", self.address)).send().await {
                if r.status() == 200 {
                    return;
                }
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("rolecall serve exited with {status}:\n{}", self.log_text());
            }
            assert!(Instant::now() < deadline, "the server did not come up");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits for the process to exit by itself (at most `limit`).
    async fn wait_exit(&mut self, limit: Duration) -> std::process::ExitStatus {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                started.elapsed() < limit,
                "rolecall serve is still running:\n{}",
                self.log_text()
            );
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

/// `rolecall serve --mappings FILE` applies FILE at start-up (SQLite, the real binary); a broken
/// FILE stops the start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_applies_mappings_at_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/rolecall.db", dir.path().display());
    let out = cli(
        &db,
        &["token", "create", "--name", "root", "--scope", "admin"],
    )
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let admin = stdout(&out).lines().last().unwrap().to_string();
    assert!(admin.starts_with("rc_"), "{admin}");

    // a broken file: the server does not start
    let broken = write_file(dir.path(), "broken.toml", BROKEN_TOML);
    let mut bad = Served::spawn(dir.path(), &db, &["--mappings", &broken]);
    let status = bad.wait_exit(Duration::from_secs(30)).await;
    assert!(!status.success());
    assert!(bad.log_text().contains("superuser"), "{}", bad.log_text());
    drop(bad);

    let file = write_file(dir.path(), "small.toml", SMALL_TOML);
    let mut served = Served::spawn(dir.path(), &db, &["--mappings", &file]);
    served.wait_healthy().await;
    let srv = Server {
        address: served.address.clone(),
        client: reqwest::Client::new(),
    };
    let r = srv.get("/admin/v1/mappings", &admin).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["version"], 1, "{}", r.text);
    assert_eq!(r.header("etag"), Some("W/\"1\""));
    assert_eq!(r.body["document"], small_mapping_normalized());
    let r = srv
        .get("/admin/v1/audit?action=mapping.apply", &admin)
        .await;
    assert_eq!(r.body["entries"].as_array().unwrap().len(), 1, "{}", r.text);
    assert_eq!(r.body["entries"][0]["actor_kind"], "cli");
}

mod concurrent_puts_with_one_if_match {
    use crate::helpers::{spawn_app, Backend};

    #[tokio::test]
    async fn sqlite() {
        if let Some(app) = spawn_app(Backend::Sqlite).await {
            super::concurrent_puts_with_one_if_match(app).await;
        }
    }

    #[tokio::test]

    async fn postgres() {
        if let Some(app) = spawn_app(Backend::Postgres).await {
            super::concurrent_puts_with_one_if_match(app).await;
        }
    }
}

/// Several admins PUT at once, all with the ETag they read: one wins, the others get 412
/// (If-Match is a compare-and-swap, not a hint).
async fn concurrent_puts_with_one_if_match(app: TestApp) {
    let srv = Server::of(&app);
    let admin = new_token(&app.store, "root", Scope::Admin).await;
    for round in 0..5 {
        let tag = get_mapping(&srv, &admin)
            .await
            .header("etag")
            .unwrap()
            .to_string();
        let mut tasks = Vec::new();
        for i in 0..8 {
            let srv = srv.clone();
            let admin = admin.clone();
            let tag = tag.clone();
            let mut doc = small_mapping();
            doc["roles"]["member"]["rpm"] = json!(100 * round + i + 1);
            tasks.push(tokio::spawn(async move {
                put_mapping(&srv, &admin, &doc, Some(&tag)).await
            }));
        }
        let mut ok = Vec::new();
        let mut statuses = Vec::new();
        for t in tasks {
            let r = t.await.unwrap();
            statuses.push(r.status.as_u16());
            if r.status == 200 {
                ok.push(r.body["version"].as_i64().unwrap());
            } else {
                assert_problem(&r, 412);
            }
        }
        assert_eq!(
            ok.len(),
            1,
            "round {round}: {statuses:?}; versions {ok:?}: more than one PUT won with {tag}"
        );
        let r = get_mapping(&srv, &admin).await;
        assert_eq!(r.body["version"], ok[0]);
        let applies = srv
            .get("/admin/v1/audit?action=mapping.apply&limit=1000", &admin)
            .await;
        assert_eq!(
            applies.body["entries"].as_array().unwrap().len() as i64,
            ok[0],
            "one audit entry per version"
        );
    }
}

/// The audit log's client address is where the request came from. A header the caller writes
/// itself (X-Forwarded-For, Forwarded) is not evidence of that unless it comes from a proxy
/// the operator trusts, and rolecall has no setting naming one.
async fn audit_client_is_the_peer_address(app: TestApp) {
    let srv = Server::of(&app);
    let admin = new_token(&app.store, "root", Scope::Admin).await;
    for (header, value) in [
        ("x-forwarded-for", "203.0.113.9"),
        ("forwarded", "for=203.0.113.10"),
    ] {
        let r = srv
            .call(
                Method::POST,
                "/scim/v2/Users",
                Some(&json!({"schemas": [USER], "userName": format!("{header}@example.com")})),
                Some(&app.token),
                &[(header, value)],
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
        let rid = request_id(&r);
        let all = audit_all(&srv, &admin).await;
        let e = all
            .iter()
            .find(|e| e["request_id"] == rid.as_str())
            .expect("the entry");
        assert!(
            e["client"]
                .as_str()
                .is_some_and(|c| c.starts_with("127.0.0.1")),
            "{header}: {value} was recorded as the client: {e}"
        );
    }
}

mod audit_client_is_the_peer_address {
    use crate::helpers::{spawn_app, Backend};

    #[tokio::test]

    async fn sqlite() {
        if let Some(app) = spawn_app(Backend::Sqlite).await {
            super::audit_client_is_the_peer_address(app).await;
        }
    }

    #[tokio::test]

    async fn postgres() {
        if let Some(app) = spawn_app(Backend::Postgres).await {
            super::audit_client_is_the_peer_address(app).await;
        }
    }
}
