//! Group life cycle and membership changes in the Okta and Entra ID dialects.

use serde_json::{json, Value};

use crate::both;
use crate::helpers::{new_token, send, TestApp, GROUP, PATCH_OP};
use crate::users::urlencode;
use reqwest::Method;
use rolecall::auth::Scope;

both!(
    group_life_cycle,
    membership_patches,
    member_display_follows_renames,
    unknown_members_write_nothing,
    group_filters,
    membership_deltas_reach_the_directory
);

fn member_ids(body: &Value) -> Vec<String> {
    let mut ids: Vec<String> = body["members"]
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

fn sorted(ids: &[&String]) -> Vec<String> {
    let mut v: Vec<String> = ids.iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}

async fn group_life_cycle(app: TestApp) {
    let alice = app.create_user("alice@example.com").await;
    let r = app
        .post("/scim/v2/Groups", &json!({"schemas": [GROUP], "displayName": "engineering", "externalId": "okta-g1", "members": [{"value": alice, "display": "ignored"}]}))
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let id = r.body["id"].as_str().unwrap().to_string();
    assert_eq!(
        r.header("location"),
        Some(format!("{}/scim/v2/Groups/{id}", app.address).as_str())
    );
    assert_eq!(r.body["meta"]["resourceType"], "Group");
    assert_eq!(r.body["members"][0]["type"], "User");
    assert_eq!(r.body["members"][0]["display"], "alice@example.com");

    // Okta Group Push rename: path-less replace of {id, displayName}; members untouched
    let r = app
        .patch(&format!("/scim/v2/Groups/{id}"), &json!({"schemas": [PATCH_OP], "Operations": [{"op": "replace", "value": {"id": id, "displayName": "Engineering"}}]}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["displayName"], "Engineering");
    assert_eq!(r.body["id"], id.as_str());
    assert_eq!(member_ids(&r.body), vec![alice.clone()]);

    // PUT replaces everything, members included
    let bob = app.create_user("bob@example.com").await;
    let r = app
        .put(
            &format!("/scim/v2/Groups/{id}"),
            &json!({"schemas": [GROUP], "displayName": "eng", "members": [{"value": bob}]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(member_ids(&r.body), vec![bob.clone()]);
    assert!(r.body.get("externalId").is_none());

    // excludedAttributes=members leaves them out
    let r = app
        .get(&format!("/scim/v2/Groups/{id}?excludedAttributes=members"))
        .await;
    assert_eq!(r.status, 200);
    assert!(r.body.get("members").is_none());

    assert_eq!(
        app.delete(&format!("/scim/v2/Groups/{id}")).await.status,
        204
    );
    app.get(&format!("/scim/v2/Groups/{id}"))
        .await
        .assert_scim_error(404, None);
    // the member still exists, without the group
    let r = app.get(&format!("/scim/v2/Users/{bob}")).await;
    assert_eq!(r.status, 200);
    assert!(r.body.get("groups").is_none());
}

async fn membership_patches(app: TestApp) {
    let a = app.create_user("a@x.com").await;
    let b = app.create_user("b@x.com").await;
    let c = app.create_user("c@x.com").await;
    let g = app.create_group("eng", &[&a, &b]).await;
    let path = format!("/scim/v2/Groups/{g}");

    // Okta: remove one with a value filter and add another, in one request
    let r = app
        .patch(
            &path,
            &json!({"schemas": [PATCH_OP], "Operations": [
                {"op": "remove", "path": format!("members[value eq \"{a}\"]")},
                {"op": "add", "path": "members", "value": [{"value": c}]}
            ]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(member_ids(&r.body), sorted(&[&b, &c]));

    // Entra: Remove with a value list removes only those members
    let r = app
        .patch(&path, &json!({"schemas": [PATCH_OP], "Operations": [{"op": "Remove", "path": "members", "value": [{"value": b}]}]}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(member_ids(&r.body), vec![c.clone()]);

    // adding an existing member is idempotent; removing a non-member is a no-op
    let r = app
        .patch(
            &path,
            &json!({"schemas": [PATCH_OP], "Operations": [
                {"op": "Add", "path": "members", "value": [{"value": c}, {"value": a}]},
                {"op": "remove", "path": "members[value eq \"not-a-member\"]"}
            ]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(member_ids(&r.body), sorted(&[&a, &c]));

    // full replace of members
    let r = app.patch(&path, &json!({"schemas": [PATCH_OP], "Operations": [{"op": "replace", "path": "members", "value": [{"value": b}]}]})).await;
    assert_eq!(member_ids(&r.body), vec![b.clone()]);

    // a group can be a member of a group
    let parent = app.create_group("all", &[]).await;
    let r = app
        .patch(&format!("/scim/v2/Groups/{parent}"), &json!({"schemas": [PATCH_OP], "Operations": [{"op": "add", "path": "members", "value": [{"value": g, "type": "Group"}]}]}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["members"][0]["type"], "Group");
    assert_eq!(r.body["members"][0]["display"], "eng");

    // remove all members
    let r = app
        .patch(
            &path,
            &json!({"schemas": [PATCH_OP], "Operations": [{"op": "remove", "path": "members"}]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["members"], json!([]));
    // users were never touched
    assert_eq!(
        app.get("/scim/v2/Users?count=0").await.body["totalResults"],
        3
    );
}

/// Membership rows keep a copy of their member's name: renames must reach it, and member
/// lists come back in id order on both back-ends.
async fn member_display_follows_renames(app: TestApp) {
    let users = [
        app.create_user("zed@x.com").await,
        app.create_user("amy@x.com").await,
        app.create_user("kim@x.com").await,
    ];
    let alice = &users[0];
    let g = app
        .create_group("eng", &[&users[0], &users[1], &users[2]])
        .await;
    let parent = app.create_group("all", &[]).await;
    let r = app
        .patch(&format!("/scim/v2/Groups/{parent}"), &json!({"schemas": [PATCH_OP], "Operations": [{"op": "add", "path": "members", "value": [{"value": g}]}]}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let displays = |body: &Value| -> Vec<(String, Option<String>)> {
        body["members"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                (
                    m["value"].as_str().unwrap().to_string(),
                    m["display"].as_str().map(str::to_string),
                )
            })
            .collect()
    };
    let group = format!("/scim/v2/Groups/{g}");
    let in_order = displays(&app.get(&group).await.body);
    let mut ids: Vec<String> = in_order.iter().map(|(id, _)| id.clone()).collect();
    let unsorted = ids.clone();
    ids.sort();
    assert_eq!(unsorted, ids, "members in id order");

    // a displayName wins over the userName; removing it brings the userName back
    let user = format!("/scim/v2/Users/{alice}");
    let r = app
        .patch(&user, &json!({"schemas": [PATCH_OP], "Operations": [{"op": "replace", "path": "displayName", "value": "Zed Z"}]}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let shown = |list: Vec<(String, Option<String>)>, id: &str| {
        list.into_iter().find(|(v, _)| v == id).and_then(|(_, d)| d)
    };
    let r = app.get(&group).await;
    assert_eq!(shown(displays(&r.body), alice).as_deref(), Some("Zed Z"));
    let r = app
        .put(
            &user,
            &json!({"schemas": [crate::helpers::USER], "userName": "zed2@x.com"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = app
        .get("/scim/v2/Groups?filter=displayName%20eq%20%22eng%22")
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        shown(displays(&r.body["Resources"][0]), alice).as_deref(),
        Some("zed2@x.com")
    );

    // a renamed group shows its new name as a member of another
    let r = app
        .patch(&group, &json!({"schemas": [PATCH_OP], "Operations": [{"op": "replace", "path": "displayName", "value": "engineering"}]}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = app.get(&format!("/scim/v2/Groups/{parent}")).await;
    assert_eq!(shown(displays(&r.body), &g).as_deref(), Some("engineering"));
}

async fn unknown_members_write_nothing(app: TestApp) {
    let a = app.create_user("a@x.com").await;
    let r = app
        .post("/scim/v2/Groups", &json!({"schemas": [GROUP], "displayName": "eng", "members": [{"value": a}, {"value": "no-such-user"}]}))
        .await;
    r.assert_scim_error(400, Some("invalidValue"));
    assert!(r.body["detail"].as_str().unwrap().contains("no-such-user"));
    assert_eq!(
        app.get("/scim/v2/Groups?count=0").await.body["totalResults"],
        0
    );

    let g = app.create_group("eng", &[&a]).await;
    let r = app
        .patch(
            &format!("/scim/v2/Groups/{g}"),
            &json!({"schemas": [PATCH_OP], "Operations": [
                {"op": "replace", "path": "displayName", "value": "renamed"},
                {"op": "add", "path": "members", "value": [{"value": "ghost"}]}
            ]}),
        )
        .await;
    r.assert_scim_error(400, Some("invalidValue"));
    // atomic: the rename in the same request did not happen either
    let r = app.get(&format!("/scim/v2/Groups/{g}")).await;
    assert_eq!(r.body["displayName"], "eng");
    assert_eq!(r.body["meta"]["version"], "W/\"1\"");
    assert_eq!(member_ids(&r.body), vec![a]);
}

async fn group_filters(app: TestApp) {
    let a = app.create_user("a@x.com").await;
    let g1 = app.create_group("Engineering", &[&a]).await;
    app.create_group("Legal", &[]).await;
    let q = |f: &str| format!("/scim/v2/Groups?filter={}", urlencode(f));
    let r = app.get(&q(r#"displayName eq "engineering""#)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["totalResults"], 1);
    assert_eq!(r.body["Resources"][0]["id"], g1.as_str());
    let r = app.get(&q(&format!(r#"members[value eq "{a}"]"#))).await;
    assert_eq!(r.body["totalResults"], 1);
    let r = app
        .get(&format!(
            "{}&excludedAttributes=members",
            q(r#"displayName eq "Engineering""#)
        ))
        .await;
    assert!(r.body["Resources"][0].get("members").is_none());
    assert_eq!(app.get("/scim/v2/Groups").await.body["totalResults"], 2);
}

/// A membership PATCH records in its audit entry the rows it really inserted and deleted, in
/// order (the change feed applies that instead of reloading the group); a full replacement
/// records none (the feed reloads). Either way the in-memory directory, read here through a
/// user's `groups`, is the database's.
async fn membership_deltas_reach_the_directory(app: TestApp) {
    let a = app.create_user("a@example.com").await;
    let b = app.create_user("b@example.com").await;
    let g = app.create_group("delta-team", &[&a]).await;
    let groups_of = |id: String| {
        let app = &app;
        async move {
            let r = app.get(&format!("/scim/v2/Users/{id}")).await;
            assert_eq!(r.status, 200, "{}", r.text);
            member_ids(&json!({"members": r.body["groups"].clone()}))
        }
    };
    let r = app
        .patch(
            &format!("/scim/v2/Groups/{g}"),
            &json!({"schemas": [PATCH_OP], "Operations": [
                {"op": "add", "path": "members", "value": [{"value": b}, {"value": a}]},
                {"op": "remove", "path": format!("members[value eq \"{a}\"]")}
            ]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(member_ids(&r.body), vec![b.clone()]);
    assert_eq!(groups_of(a.clone()).await, Vec::<String>::new());
    assert_eq!(groups_of(b.clone()).await, vec![g.clone()]);

    let r = app
        .put(
            &format!("/scim/v2/Groups/{g}"),
            &json!({"schemas": [GROUP], "displayName": "delta-team", "members": [{"value": a}]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(groups_of(a.clone()).await, vec![g.clone()]);
    assert_eq!(groups_of(b.clone()).await, Vec::<String>::new());
    // a PUT writes the difference: `a` stays as it is, `b` comes back
    let r = app
        .put(
            &format!("/scim/v2/Groups/{g}"),
            &json!({"schemas": [GROUP], "displayName": "delta-team",
                    "members": [{"value": b}, {"value": a}]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let mut both = vec![a.clone(), b.clone()];
    both.sort();
    let mut listed = member_ids(&r.body);
    listed.sort();
    assert_eq!(listed, both);
    assert_eq!(groups_of(a.clone()).await, vec![g.clone()]);
    assert_eq!(groups_of(b.clone()).await, vec![g.clone()]);

    let admin = new_token(&app.store, "root", Scope::Admin).await;
    let r = send(
        &app.client,
        format!("{}/admin/v1/audit?target={g}&limit=100", app.address),
        Method::GET,
        None,
        Some(&admin),
        &[],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let entries = r.body["entries"].as_array().expect("entries");
    let summary_of = |action: &str| {
        entries
            .iter()
            .find(|e| e["action"] == action)
            .map(|e| e["summary"].clone())
            .unwrap_or_else(|| panic!("no {action} in {}", r.text))
    };
    // `a` was already a member: its add inserted nothing; then it was removed
    assert_eq!(
        summary_of("group.patch")["delta"],
        json!([format!("+User:{b}"), format!("-User:{a}")]),
        "{}",
        r.text
    );
    // PUTs list the rows they changed, newest first: `b` added (`a` kept), then `b` removed
    // and `a` added
    let replaces: Vec<&Value> = entries
        .iter()
        .filter(|e| e["action"] == "group.replace")
        .map(|e| &e["summary"]["delta"])
        .collect();
    assert_eq!(
        replaces,
        [
            &json!([format!("+User:{b}")]),
            &json!([format!("-User:{b}"), format!("+User:{a}")])
        ],
        "{}",
        r.text
    );
}
