//! End-to-end replays of the request sequences Okta and Microsoft Entra ID send over a
//! user's and a group's whole life, with the bodies their documentation shows, asserting
//! every status and body field the IdP reads back.

use serde_json::{json, Value};

use crate::both;
use crate::helpers::{Resp, TestApp, GROUP, PATCH_OP, USER};
use crate::users::urlencode;

both!(
    okta_user_life_cycle,
    okta_group_push,
    entra_user_life_cycle,
    entra_group_life_cycle,
    entra_custom_extension_and_email_matching,
);

const LIST: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

/// `GET {base}?filter=...` plus extra query parameters, as the IdPs send it (URL-encoded).
async fn lookup(app: &TestApp, base: &str, filter: &str, extra: &str) -> Resp {
    app.get(&format!("{base}?filter={}{extra}", urlencode(filter)))
        .await
}

/// A ListResponse the IdP can read: status 200, the ListResponse schema, `totalResults`,
/// and `Resources` present (even when empty); returns the resources.
fn list_of(r: &Resp, total: u64) -> Vec<Value> {
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.header("content-type"),
        Some("application/scim+json"),
        "{}",
        r.text
    );
    assert_eq!(r.body["schemas"], json!([LIST]), "{}", r.text);
    assert_eq!(r.body["totalResults"], total, "{}", r.text);
    let resources = r.body["Resources"]
        .as_array()
        .unwrap_or_else(|| panic!("Resources must be an array: {}", r.text))
        .clone();
    assert_eq!(resources.len() as u64, total, "{}", r.text);
    resources
}

/// The fields an IdP reads from every returned resource: id, schemas, meta.location.
fn assert_resource(app: &TestApp, body: &Value, kind: &str, id: &str) {
    assert_eq!(body["id"], id, "{body}");
    let core = if kind == "User" { USER } else { GROUP };
    assert!(
        body["schemas"]
            .as_array()
            .is_some_and(|s| s.iter().any(|x| x == core)),
        "{body}"
    );
    assert_eq!(body["meta"]["resourceType"], kind, "{body}");
    assert_eq!(
        body["meta"]["location"],
        format!("{}/scim/v2/{kind}s/{id}", app.address),
        "{body}"
    );
}

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

fn sorted(ids: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = ids.iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}

// Okta, "Okta and SCIM Version 2.0" (SCIM 2.0 protocol reference),
// https://developer.okta.com/docs/api/openapi/okta-scim/guides/scim-20 — "Create Users"
// (lookup `GET /Users?filter=userName eq "..."&startIndex=1&count=100`, then `POST /Users`
// with the app profile), "Retrieve Users", "Update a specific User (PUT)" (Okta sends the
// whole profile back, including `id`, `groups`, `password` and `meta`), "Update a specific
// User (PATCH)" (deactivation and reactivation as a path-less
// `{"op":"replace","value":{"active":...}}`), and "Delete Users" (Okta never sends DELETE
// for users: it deactivates them). The build guide's test suite (Runscope/"Okta SCIM 2.0
// SPEC test") looks a user up by an upper-cased copy of the userName it just created.
// When a deactivated user is assigned again, Okta runs the userName lookup again, finds the
// existing (inactive) user and reactivates it by PATCH rather than POSTing a duplicate.
async fn okta_user_life_cycle(app: TestApp) {
    let user_name = "test.user@okta.local";

    // 1. Does the user exist? No.
    let r = lookup(
        &app,
        "/scim/v2/Users",
        &format!("userName eq \"{user_name}\""),
        "&startIndex=1&count=100",
    )
    .await;
    list_of(&r, 0);
    assert_eq!(r.body["startIndex"], 1, "{}", r.text);

    // 2. Create it with the app profile.
    let created = app
        .post(
            "/scim/v2/Users",
            &json!({
                "schemas": [USER],
                "userName": user_name,
                "name": {"givenName": "Test", "familyName": "User"},
                "emails": [{"primary": true, "value": user_name, "type": "work"}],
                "displayName": "Test User",
                "locale": "en-US",
                "externalId": "00ujl29u0le5T6Aj10h7",
                "groups": [],
                "password": "1mz050nq",
                "active": true
            }),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let id = created.body["id"].as_str().expect("id").to_string();
    assert_resource(&app, &created.body, "User", &id);
    assert_eq!(created.body["userName"], user_name);
    assert_eq!(created.body["active"], true);
    assert_eq!(created.body["externalId"], "00ujl29u0le5T6Aj10h7");
    assert_eq!(created.body["name"]["givenName"], "Test");
    assert_eq!(created.body["emails"][0]["value"], user_name);
    assert!(created.body.get("password").is_none(), "{}", created.text);
    let location = format!("{}/scim/v2/Users/{id}", app.address);
    assert_eq!(created.header("location"), Some(location.as_str()));

    // 3. Retrieve it, by id and in the paged listing Okta imports from.
    let got = app.get(&format!("/scim/v2/Users/{id}")).await;
    assert_eq!(got.status, 200, "{}", got.text);
    assert_resource(&app, &got.body, "User", &id);
    assert_eq!(got.body["userName"], user_name);
    assert_eq!(got.body["active"], true);
    let r = app.get("/scim/v2/Users?startIndex=1&count=100").await;
    let all = list_of(&r, 1);
    assert_eq!(all[0]["id"], id.as_str());

    // 4. Profile update: PUT of the whole profile, echoing id, groups, password and meta.
    let put = app
        .put(
            &format!("/scim/v2/Users/{id}"),
            &json!({
                "schemas": [USER],
                "id": id,
                "userName": user_name,
                "name": {"givenName": "Another", "familyName": "User"},
                "emails": [{"primary": true, "value": user_name, "type": "work"}],
                "displayName": "Another User",
                "locale": "en-US",
                "externalId": "00ujl29u0le5T6Aj10h7",
                "groups": [],
                "password": "1mz050nq",
                "active": true,
                "meta": {
                    "resourceType": "User",
                    "created": created.body["meta"]["created"],
                    "lastModified": created.body["meta"]["lastModified"]
                }
            }),
        )
        .await;
    assert_eq!(put.status, 200, "{}", put.text);
    assert_resource(&app, &put.body, "User", &id);
    assert_eq!(put.body["userName"], user_name);
    assert_eq!(put.body["name"]["givenName"], "Another");
    assert_eq!(put.body["displayName"], "Another User");
    assert_eq!(put.body["active"], true);
    assert!(put.body.get("password").is_none(), "{}", put.text);

    // 5. Deactivation: path-less replace.
    let r = app
        .patch(
            &format!("/scim/v2/Users/{id}"),
            &json!({"schemas": [PATCH_OP], "Operations": [{"op": "replace", "value": {"active": false}}]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_resource(&app, &r.body, "User", &id);
    assert_eq!(r.body["active"], false);
    assert_eq!(r.body["userName"], user_name);
    assert_eq!(r.body["displayName"], "Another User");
    assert_eq!(r.body["name"]["givenName"], "Another");
    let got = app.get(&format!("/scim/v2/Users/{id}")).await;
    assert_eq!(got.body["active"], false, "{}", got.text);

    // 6. Lookup by an upper-cased copy of the userName finds the inactive user.
    let r = lookup(
        &app,
        "/scim/v2/Users",
        &format!("userName eq \"{}\"", user_name.to_uppercase()),
        "&startIndex=1&count=100",
    )
    .await;
    let found = list_of(&r, 1);
    assert_eq!(found[0]["id"], id.as_str());
    assert_eq!(found[0]["userName"], user_name);
    assert_eq!(found[0]["active"], false);

    // 7. Assigned again: a blind re-create collides (409 uniqueness)...
    let again = app
        .post(
            "/scim/v2/Users",
            &json!({"schemas": [USER], "userName": user_name, "externalId": "00ujl29u0le5T6Aj10h7",
                    "name": {"givenName": "Another", "familyName": "User"}, "active": true}),
        )
        .await;
    again.assert_scim_error(409, Some("uniqueness"));
    // ...so Okta reconciles: the lookup finds the existing user (also by externalId) and
    // Okta reactivates it with the same path-less replace instead of looping on 409.
    let r = lookup(
        &app,
        "/scim/v2/Users",
        &format!("userName eq \"{user_name}\""),
        "&startIndex=1&count=100",
    )
    .await;
    assert_eq!(list_of(&r, 1)[0]["id"], id.as_str());
    let r = lookup(
        &app,
        "/scim/v2/Users",
        "externalId eq \"00ujl29u0le5T6Aj10h7\"",
        "",
    )
    .await;
    assert_eq!(list_of(&r, 1)[0]["id"], id.as_str());
    let r = app
        .patch(
            &format!("/scim/v2/Users/{id}"),
            &json!({"schemas": [PATCH_OP], "Operations": [{"op": "replace", "value": {"active": true}}]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_resource(&app, &r.body, "User", &id);
    assert_eq!(r.body["active"], true);
    assert_eq!(r.body["userName"], user_name);
    let got = app.get(&format!("/scim/v2/Users/{id}")).await;
    assert_eq!(got.body["active"], true, "{}", got.text);
    // Still exactly one user: no duplicate came out of the 409.
    list_of(&app.get("/scim/v2/Users?startIndex=1&count=100").await, 1);
    // Okta never sends DELETE for users; deprovisioning is the deactivation above.
}

// Okta, "Okta and SCIM Version 2.0", https://developer.okta.com/docs/api/openapi/okta-scim/guides/scim-20
// — "SCIM Group operations" (Group Push): lookup `GET /Groups?filter=displayName eq "..."`,
// "Create Groups" (`POST /Groups`), "Retrieve specific Groups", "Update a specific Group name"
// (path-less `replace` whose value is `{id, displayName}`), "Update specific Group membership"
// (a `remove` with `members[value eq "..."]` and an `add` of `members` in one request),
// full replacement of the member list (`replace` of `members`), and "Delete a specific Group".
async fn okta_group_push(app: TestApp) {
    let alice = app.create_user("alice@okta.local").await;
    let bob = app.create_user("bob@okta.local").await;
    let carol = app.create_user("carol@okta.local").await;

    // 1. Lookup by displayName: nothing yet.
    let r = lookup(
        &app,
        "/scim/v2/Groups",
        "displayName eq \"Test SCIMv2\"",
        "&startIndex=1&count=100",
    )
    .await;
    list_of(&r, 0);

    // 2. Create the group with its members.
    let r = app
        .post(
            "/scim/v2/Groups",
            &json!({
                "schemas": [GROUP],
                "displayName": "Test SCIMv2",
                "members": [
                    {"value": alice, "display": "alice@okta.local"},
                    {"value": bob, "display": "bob@okta.local"}
                ]
            }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let gid = r.body["id"].as_str().expect("id").to_string();
    assert_resource(&app, &r.body, "Group", &gid);
    assert_eq!(r.body["displayName"], "Test SCIMv2");
    assert_eq!(member_ids(&r.body), sorted(&[&alice, &bob]));
    let location = format!("{}/scim/v2/Groups/{gid}", app.address);
    assert_eq!(r.header("location"), Some(location.as_str()));

    // The lookup now finds it, case-insensitively as well.
    let r = lookup(
        &app,
        "/scim/v2/Groups",
        "displayName eq \"test scimv2\"",
        "&startIndex=1&count=100",
    )
    .await;
    assert_eq!(list_of(&r, 1)[0]["id"], gid.as_str());

    let got = app.get(&format!("/scim/v2/Groups/{gid}")).await;
    assert_eq!(got.status, 200, "{}", got.text);
    assert_resource(&app, &got.body, "Group", &gid);
    assert_eq!(member_ids(&got.body), sorted(&[&alice, &bob]));

    // 3. Rename: path-less replace of {id, displayName}; members untouched.
    let r = app
        .patch(
            &format!("/scim/v2/Groups/{gid}"),
            &json!({"schemas": [PATCH_OP], "Operations": [{"op": "replace", "value": {"id": gid, "displayName": "Test SCIMv2 renamed"}}]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_resource(&app, &r.body, "Group", &gid);
    assert_eq!(r.body["displayName"], "Test SCIMv2 renamed");
    assert_eq!(member_ids(&r.body), sorted(&[&alice, &bob]));
    let got = app.get(&format!("/scim/v2/Groups/{gid}")).await;
    assert_eq!(member_ids(&got.body), sorted(&[&alice, &bob]));

    // 4. Membership change: remove one by value filter and add another, in one request.
    let r = app
        .patch(
            &format!("/scim/v2/Groups/{gid}"),
            &json!({"schemas": [PATCH_OP], "Operations": [
                {"op": "remove", "path": format!("members[value eq \"{alice}\"]")},
                {"op": "add", "path": "members", "value": [{"value": carol, "display": "carol@okta.local"}]}
            ]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_resource(&app, &r.body, "Group", &gid);
    assert_eq!(r.body["displayName"], "Test SCIMv2 renamed");
    assert_eq!(member_ids(&r.body), sorted(&[&bob, &carol]));
    let r = lookup(
        &app,
        "/scim/v2/Groups",
        &format!("members.value eq \"{alice}\""),
        "",
    )
    .await;
    list_of(&r, 0);

    // 5. Full replacement of the member list.
    let r = app
        .patch(
            &format!("/scim/v2/Groups/{gid}"),
            &json!({"schemas": [PATCH_OP], "Operations": [
                {"op": "replace", "path": "members", "value": [
                    {"value": alice, "display": "alice@okta.local"},
                    {"value": carol, "display": "carol@okta.local"}
                ]}
            ]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(member_ids(&r.body), sorted(&[&alice, &carol]));
    assert_eq!(r.body["displayName"], "Test SCIMv2 renamed");
    let got = app.get(&format!("/scim/v2/Groups/{gid}")).await;
    assert_eq!(member_ids(&got.body), sorted(&[&alice, &carol]));

    // Integrations that push groups by PUT send the whole group back, id included.
    let r = app
        .put(
            &format!("/scim/v2/Groups/{gid}"),
            &json!({"schemas": [GROUP], "id": gid, "displayName": "Test SCIMv2 renamed",
                    "members": [{"value": bob, "display": "bob@okta.local"}]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_resource(&app, &r.body, "Group", &gid);
    assert_eq!(member_ids(&r.body), vec![bob.clone()]);
    // The paged group listing Okta reads during import.
    let r = app.get("/scim/v2/Groups?startIndex=1&count=100").await;
    assert_eq!(list_of(&r, 1)[0]["id"], gid.as_str());

    // 6. Delete.
    let r = app.delete(&format!("/scim/v2/Groups/{gid}")).await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert!(r.text.is_empty(), "{}", r.text);
    app.get(&format!("/scim/v2/Groups/{gid}"))
        .await
        .assert_scim_error(404, None);
    // Members survive the group.
    assert_eq!(
        app.get(&format!("/scim/v2/Users/{alice}")).await.status,
        200
    );
}

// Microsoft, "Tutorial: Develop and plan provisioning for a SCIM endpoint in Microsoft Entra
// ID", https://learn.microsoft.com/en-us/entra/identity/app-provisioning/use-scim-to-provision-users-and-groups
// — "User operations": the test-connection query (a filter that matches nothing, with a
// random GUID as the value, answered 200 with an empty list), "Get User by query" on the
// matching attributes (`externalId`, `userName`), "Create User" (core + enterprise schemas),
// "Update User [Multi-valued properties]" / "[Single-valued properties]", "Disable User",
// "Delete User". And "Known issues and resolutions with SCIM 2.0 protocol compliance of the
// Microsoft Entra user provisioning service",
// https://learn.microsoft.com/en-us/entra/identity/app-provisioning/application-provisioning-config-problem-scim-compatibility
// — the default dialect (capitalised `Replace`/`Add`, booleans as strings `"False"`,
// `Add` on the single-valued `active`, `manager` as a bare id on its enterprise URN path)
// and the `aadOptscim062020` behaviour (several changes merged into one path-less
// `replace` whose value has dotted and schema-URN keys).
async fn entra_user_life_cycle(app: TestApp) {
    // 1. Test connection: a filter on a random GUID.
    let random = uuid::Uuid::new_v4().to_string();
    let r = lookup(&app, "/scim/v2/Users", &format!("id eq \"{random}\""), "").await;
    list_of(&r, 0);
    let r = lookup(
        &app,
        "/scim/v2/Users",
        &format!("userName eq \"{random}\""),
        "",
    )
    .await;
    list_of(&r, 0);

    // The manager exists first (Entra provisions managers as users too).
    let boss = app.create_user("boss@contoso.com").await;

    // 2. Matching lookups before the create.
    let ext = "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef";
    let user_name = "Test_User_ab6490ee-1e48-479e-a20b-2d77186b5dd1@contoso.com";
    let r = lookup(
        &app,
        "/scim/v2/Users",
        &format!("externalId eq \"{ext}\""),
        "",
    )
    .await;
    list_of(&r, 0);
    let r = lookup(
        &app,
        "/scim/v2/Users",
        &format!("userName eq \"{user_name}\""),
        "",
    )
    .await;
    list_of(&r, 0);

    // 3. Create with the enterprise extension and a manager.
    let created = app
        .post(
            "/scim/v2/Users",
            &json!({
                "schemas": [USER, ENTERPRISE],
                "externalId": ext,
                "userName": user_name,
                "active": true,
                "emails": [{"primary": true, "type": "work", "value": "Test_User_fd0ea19b-0777-472c-9f96-4f70d2226f2e@testuser.com"}],
                "meta": {"resourceType": "User"},
                "name": {"formatted": "givenName familyName", "familyName": "familyName", "givenName": "givenName"},
                "roles": [],
                "title": "Engineer",
                ENTERPRISE: {"department": "R&D", "employeeNumber": "100009", "manager": {"value": boss}}
            }),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let id = created.body["id"].as_str().expect("id").to_string();
    assert_resource(&app, &created.body, "User", &id);
    assert!(created.body["schemas"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s == ENTERPRISE));
    assert_eq!(created.body["userName"], user_name);
    assert_eq!(created.body["externalId"], ext);
    assert_eq!(created.body["active"], true);
    assert_eq!(created.body[ENTERPRISE]["department"], "R&D");
    assert_eq!(created.body[ENTERPRISE]["employeeNumber"], "100009");
    assert_eq!(created.body[ENTERPRISE]["manager"]["value"], boss.as_str());

    // The matching lookups now find it.
    let r = lookup(
        &app,
        "/scim/v2/Users",
        &format!("externalId eq \"{ext}\""),
        "",
    )
    .await;
    assert_eq!(list_of(&r, 1)[0]["id"], id.as_str());
    let r = lookup(
        &app,
        "/scim/v2/Users",
        &format!("userName eq \"{user_name}\""),
        "",
    )
    .await;
    assert_eq!(list_of(&r, 1)[0]["id"], id.as_str());

    // 4. Default dialect: capitalised ops, multi- and single-valued replaces.
    let new_user_name = "5b50642d-79fc-4410-9e90-4c077cdd1a59@testuser.com";
    let r = app
        .patch(
            &format!("/scim/v2/Users/{id}"),
            &json!({"schemas": [PATCH_OP], "Operations": [
                {"op": "Replace", "path": "emails[type eq \"work\"].value", "value": "updatedEmail@microsoft.com"},
                {"op": "Replace", "path": "name.familyName", "value": "updatedFamilyName"},
                {"op": "Replace", "path": "userName", "value": new_user_name},
                {"op": "Replace", "path": "title", "value": "Principal"}
            ]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_resource(&app, &r.body, "User", &id);
    assert_eq!(r.body["emails"][0]["value"], "updatedEmail@microsoft.com");
    assert_eq!(r.body["emails"][0]["type"], "work");
    assert_eq!(r.body["name"]["familyName"], "updatedFamilyName");
    assert_eq!(r.body["name"]["givenName"], "givenName");
    assert_eq!(r.body["userName"], new_user_name);
    assert_eq!(r.body["title"], "Principal");
    assert_eq!(r.body["externalId"], ext);

    // Entra also sends a changed work email as `Add` through the value filter (Microsoft Q&A
    // "Entra ID patch sending Add instead of Replace",
    // https://learn.microsoft.com/en-us/answers/questions/1684621/entra-id-patch-sending-add-instead-of-replace):
    // on an existing element it sets the value, it does not add a second work email.
    let r = app
        .patch(
            &format!("/scim/v2/Users/{id}"),
            &json!({"schemas": [PATCH_OP], "Operations": [
                {"op": "Add", "path": "emails[type eq \"work\"].value", "value": "again@microsoft.com"}
            ]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.body["emails"].as_array().map(Vec::len),
        Some(1),
        "{}",
        r.text
    );
    assert_eq!(r.body["emails"][0]["value"], "again@microsoft.com");
    assert_eq!(r.body["emails"][0]["type"], "work");

    // 5. Manager by its enterprise URN path, as a bare id string; department too.
    let boss2 = app.create_user("boss2@contoso.com").await;
    let r = app
        .patch(
            &format!("/scim/v2/Users/{id}"),
            &json!({"schemas": [PATCH_OP], "Operations": [
                {"op": "Add", "path": format!("{ENTERPRISE}:manager"), "value": boss2},
                {"op": "Replace", "path": format!("{ENTERPRISE}:department"), "value": "Human Resources US"}
            ]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body[ENTERPRISE]["manager"]["value"], boss2.as_str());
    assert_eq!(r.body[ENTERPRISE]["department"], "Human Resources US");
    assert_eq!(r.body[ENTERPRISE]["employeeNumber"], "100009");

    // The manager also arrives in complex form, `{"value": id}`, on the same path.
    let r = app
        .patch(
            &format!("/scim/v2/Users/{id}"),
            &json!({"schemas": [PATCH_OP], "Operations": [
                {"op": "Replace", "path": format!("{ENTERPRISE}:manager"), "value": {"value": boss}}
            ]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body[ENTERPRISE]["manager"]["value"], boss.as_str());
    let r = app
        .patch(
            &format!("/scim/v2/Users/{id}"),
            &json!({"schemas": [PATCH_OP], "Operations": [
                {"op": "Add", "path": format!("{ENTERPRISE}:manager"), "value": boss2}
            ]}),
        )
        .await;
    assert_eq!(
        r.body[ENTERPRISE]["manager"]["value"],
        boss2.as_str(),
        "{}",
        r.text
    );

    // 6. Disable: `Replace` with the string "False", then `Add` on active (single-valued:
    //    add replaces), then re-enable with "True".
    let r = app
        .patch(
            &format!("/scim/v2/Users/{id}"),
            &json!({"schemas": [PATCH_OP], "Operations": [{"op": "Replace", "path": "active", "value": "False"}]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["active"], false, "{}", r.text);
    let r = app
        .patch(
            &format!("/scim/v2/Users/{id}"),
            &json!({"schemas": [PATCH_OP], "Operations": [{"op": "Add", "path": "active", "value": "True"}]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["active"], true, "{}", r.text);
    let r = app
        .patch(
            &format!("/scim/v2/Users/{id}"),
            &json!({"schemas": [PATCH_OP], "Operations": [{"op": "Add", "path": "active", "value": "False"}]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["active"], false, "{}", r.text);
    // A disabled user is still found by Entra's matching lookup.
    let r = lookup(
        &app,
        "/scim/v2/Users",
        &format!("externalId eq \"{ext}\""),
        "",
    )
    .await;
    let found = list_of(&r, 1);
    assert_eq!(found[0]["active"], false);
    // Re-enabled in the compliant form.
    let r = app
        .patch(
            &format!("/scim/v2/Users/{id}"),
            &json!({"schemas": [PATCH_OP], "Operations": [{"op": "replace", "path": "active", "value": true}]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["active"], true);

    // 7. aadOptscim062020: one path-less replace with dotted and URN keys.
    let r = app
        .patch(
            &format!("/scim/v2/Users/{id}"),
            &json!({"schemas": [PATCH_OP], "Operations": [{"op": "replace", "value": {
                "displayName": "Pvl Pvl",
                "name.givenName": "Pvl",
                "name.familyName": "Lastname",
                "emails[type eq \"work\"].value": "pvl@contoso.com",
                "active": false,
                format!("{ENTERPRISE}:department"): "Finance",
                format!("{ENTERPRISE}:employeeNumber"): "200042"
            }}]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_resource(&app, &r.body, "User", &id);
    assert_eq!(r.body["displayName"], "Pvl Pvl");
    assert_eq!(r.body["name"]["givenName"], "Pvl");
    assert_eq!(r.body["name"]["familyName"], "Lastname");
    assert_eq!(r.body["emails"][0]["value"], "pvl@contoso.com");
    assert_eq!(r.body["emails"].as_array().map(Vec::len), Some(1));
    assert_eq!(r.body["active"], false);
    assert_eq!(r.body[ENTERPRISE]["department"], "Finance");
    assert_eq!(r.body[ENTERPRISE]["employeeNumber"], "200042");
    assert_eq!(r.body[ENTERPRISE]["manager"]["value"], boss2.as_str());
    // No attributes with dots or URNs in their names were created.
    let obj = r.body.as_object().unwrap();
    assert!(
        obj.keys()
            .all(|k| k == ENTERPRISE || (!k.contains('.') && !k.starts_with("urn:"))),
        "{}",
        r.text
    );
    let got = app.get(&format!("/scim/v2/Users/{id}")).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.body["name"]["givenName"], "Pvl");
    assert_eq!(got.body[ENTERPRISE]["department"], "Finance");

    // Manager cleared through its URN path; the rest of the extension stays.
    let r = app
        .patch(
            &format!("/scim/v2/Users/{id}"),
            &json!({"schemas": [PATCH_OP], "Operations": [{"op": "Remove", "path": format!("{ENTERPRISE}:manager")}]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.body[ENTERPRISE].get("manager").is_none(), "{}", r.text);
    assert_eq!(r.body[ENTERPRISE]["department"], "Finance");

    // 8. Delete: 204, then 404 on read and an empty matching lookup.
    let r = app.delete(&format!("/scim/v2/Users/{id}")).await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert!(r.text.is_empty(), "{}", r.text);
    app.get(&format!("/scim/v2/Users/{id}"))
        .await
        .assert_scim_error(404, None);
    let r = lookup(
        &app,
        "/scim/v2/Users",
        &format!("externalId eq \"{ext}\""),
        "",
    )
    .await;
    list_of(&r, 0);
}

// Microsoft, "Tutorial: Develop and plan provisioning for a SCIM endpoint in Microsoft Entra
// ID", https://learn.microsoft.com/en-us/entra/identity/app-provisioning/use-scim-to-provision-users-and-groups
// — "Group operations": "Create Group" (with `externalId`, the Microsoft ADSCIM group schema
// and `meta.resourceType`), "Get Group" / "Get Group by displayName" (with
// `excludedAttributes=members`), "Update Group [Non-member attributes]" (`Replace` of
// `displayName`), "Update Group [Add Members]" (`Add` of `members` with `$ref: null`),
// "Update Group [Remove Members]" (`{"op":"Remove","path":"members","value":[{"value":id}]}`,
// which must remove only the listed members), "Delete Group".
async fn entra_group_life_cycle(app: TestApp) {
    let u1 = app.create_user("u1@contoso.com").await;
    let u2 = app.create_user("u2@contoso.com").await;
    let u3 = app.create_user("u3@contoso.com").await;

    // 1. Lookup by displayName (Entra excludes members), then create.
    let r = lookup(
        &app,
        "/scim/v2/Groups",
        "displayName eq \"displayName\"",
        "&excludedAttributes=members",
    )
    .await;
    list_of(&r, 0);
    let ext = "8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159";
    let r = app
        .post(
            "/scim/v2/Groups",
            &json!({
                "schemas": [GROUP, "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/Group"],
                "externalId": ext,
                "displayName": "displayName",
                "meta": {"resourceType": "Group"}
            }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let gid = r.body["id"].as_str().expect("id").to_string();
    assert_resource(&app, &r.body, "Group", &gid);
    assert_eq!(r.body["externalId"], ext);
    assert_eq!(r.body["displayName"], "displayName");
    assert!(member_ids(&r.body).is_empty(), "{}", r.text);

    // 2. Reads Entra makes.
    let r = app
        .get(&format!("/scim/v2/Groups/{gid}?excludedAttributes=members"))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_resource(&app, &r.body, "Group", &gid);
    assert!(r.body.get("members").is_none(), "{}", r.text);
    let r = lookup(
        &app,
        "/scim/v2/Groups",
        "displayName eq \"displayName\"",
        "&excludedAttributes=members",
    )
    .await;
    let found = list_of(&r, 1);
    assert_eq!(found[0]["id"], gid.as_str());
    assert_eq!(found[0]["externalId"], ext);
    let r = lookup(
        &app,
        "/scim/v2/Groups",
        &format!("externalId eq \"{ext}\""),
        "",
    )
    .await;
    assert_eq!(list_of(&r, 1)[0]["id"], gid.as_str());

    // 3. Add members.
    let r = app
        .patch(
            &format!("/scim/v2/Groups/{gid}"),
            &json!({"schemas": [PATCH_OP], "Operations": [{"op": "Add", "path": "members", "value": [
                {"$ref": null, "value": u1},
                {"$ref": null, "value": u2},
                {"$ref": null, "value": u3}
            ]}]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_resource(&app, &r.body, "Group", &gid);
    assert_eq!(member_ids(&r.body), sorted(&[&u1, &u2, &u3]));
    // Adding an existing member again is harmless.
    let r = app
        .patch(
            &format!("/scim/v2/Groups/{gid}"),
            &json!({"schemas": [PATCH_OP], "Operations": [{"op": "Add", "path": "members", "value": [{"$ref": null, "value": u1}]}]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(member_ids(&r.body), sorted(&[&u1, &u2, &u3]));

    // 4. Remove members by value list: only those go.
    let r = app
        .patch(
            &format!("/scim/v2/Groups/{gid}"),
            &json!({"schemas": [PATCH_OP], "Operations": [{"op": "Remove", "path": "members", "value": [
                {"$ref": null, "value": u1},
                {"$ref": null, "value": u3}
            ]}]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(member_ids(&r.body), vec![u2.clone()]);
    let got = app.get(&format!("/scim/v2/Groups/{gid}")).await;
    assert_eq!(member_ids(&got.body), vec![u2.clone()]);

    // With aadOptscim062020 Entra removes by value filter instead; re-add and remove that way.
    let r = app
        .patch(
            &format!("/scim/v2/Groups/{gid}"),
            &json!({"schemas": [PATCH_OP], "Operations": [{"op": "add", "path": "members", "value": [{"value": u3}]}]}),
        )
        .await;
    assert_eq!(member_ids(&r.body), sorted(&[&u2, &u3]), "{}", r.text);
    let r = app
        .patch(
            &format!("/scim/v2/Groups/{gid}"),
            &json!({"schemas": [PATCH_OP], "Operations": [{"op": "remove", "path": format!("members[value eq \"{u3}\"]")}]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(member_ids(&r.body), vec![u2.clone()]);

    // 5. Non-member attribute update: displayName Replace; members untouched.
    let renamed = "1879db59-3bdf-4490-ad68-ab880a269474updatedDisplayName";
    let r = app
        .patch(
            &format!("/scim/v2/Groups/{gid}"),
            &json!({"schemas": [PATCH_OP], "Operations": [{"op": "Replace", "path": "displayName", "value": renamed}]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["displayName"], renamed);
    assert_eq!(r.body["externalId"], ext);
    assert_eq!(member_ids(&r.body), vec![u2.clone()]);
    let r = lookup(
        &app,
        "/scim/v2/Groups",
        &format!("displayName eq \"{renamed}\""),
        "&excludedAttributes=members",
    )
    .await;
    assert_eq!(list_of(&r, 1)[0]["id"], gid.as_str());

    // 6. Delete.
    let r = app.delete(&format!("/scim/v2/Groups/{gid}")).await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert!(r.text.is_empty(), "{}", r.text);
    app.get(&format!("/scim/v2/Groups/{gid}"))
        .await
        .assert_scim_error(404, None);
    let r = lookup(
        &app,
        "/scim/v2/Groups",
        &format!("externalId eq \"{ext}\""),
        "",
    )
    .await;
    list_of(&r, 0);
}

/// Microsoft's SCIM tutorial maps a directory attribute to a custom extension
/// (`urn:ietf:params:scim:schemas:extension:CustomExtensionName:2.0:User:tag`) and lets the
/// admin match users on `emails[type eq "work"].value` ("a GET to /Users with a filter must
/// allow for both `userName eq ...` and `emails[type eq "work"].value eq ...` queries").
/// Found by an audit: such a PATCH was a 400 that also threw away the deactivation sent with
/// it (Entra retries it forever), and the email match was a 400 `invalidFilter`.
async fn entra_custom_extension_and_email_matching(app: TestApp) {
    const CUSTOM: &str = "urn:ietf:params:scim:schemas:extension:CustomExtensionName:2.0:User";
    let created = app
        .post(
            "/scim/v2/Users",
            &json!({
                "schemas": [USER, ENTERPRISE, CUSTOM],
                "userName": "bjensen@contoso.com",
                "externalId": "bjensen",
                "active": true,
                "emails": [{"primary": true, "type": "work", "value": "Bjensen@contoso.com"},
                           {"type": "home", "value": "babs@example.com"}],
                "phoneNumbers": [{"type": "work", "value": "+1 555 0100"}],
                ENTERPRISE: {"department": "Tour Operations"},
                CUSTOM: {"tag": "701984"},
            }),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let id = created.body["id"].as_str().unwrap().to_string();
    assert_resource(&app, &created.body, "User", &id);
    // every extension the user holds is in `schemas`
    assert_eq!(created.body["schemas"], json!([USER, ENTERPRISE, CUSTOM]));
    assert_eq!(created.body[CUSTOM], json!({"tag": "701984"}));

    // the joining-property lookups (case-insensitive on the value, as emails.value is)
    for filter in [
        r#"emails[type eq "work"].value eq "bjensen@contoso.com""#,
        r#"userName eq "bjensen@contoso.com" or emails[type eq "work"].value eq "nobody@contoso.com""#,
        r#"phoneNumbers[type eq "work"].value eq "+1 555 0100""#,
    ] {
        let found = list_of(&lookup(&app, "/scim/v2/Users", filter, "").await, 1);
        assert_eq!(found[0]["id"], id.as_str(), "{filter}");
    }
    for filter in [
        r#"emails[type eq "home"].value eq "bjensen@contoso.com""#,
        r#"emails[type eq "work"].value eq "babs@example.com""#,
    ] {
        list_of(&lookup(&app, "/scim/v2/Users", filter, "").await, 0);
    }

    // default dialect: a deactivation and a custom attribute in one PATCH
    let path = format!("/scim/v2/Users/{id}");
    let r = app
        .patch(
            &path,
            &json!({"schemas": [PATCH_OP], "Operations": [
                {"op": "Replace", "path": "active", "value": "False"},
                {"op": "Replace", "path": format!("{CUSTOM}:tag"), "value": "701985"},
            ]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["active"], false);
    assert_eq!(r.body[CUSTOM], json!({"tag": "701985"}));
    // aadOptscim062020: path-less, with the attribute's URN key and a new extension
    let other = "urn:ietf:params:scim:schemas:extension:Microsoft:Entra:2.0:User";
    let r = app
        .patch(
            &path,
            &json!({"schemas": [PATCH_OP], "Operations": [{"op": "replace", "value": {
                "active": true,
                format!("{CUSTOM}:tag"): "701986",
                format!("{other}:extensionAttribute1"): "x",
            }}]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["active"], true);
    assert_eq!(r.body[CUSTOM]["tag"], "701986");
    assert_eq!(r.body["schemas"], json!([USER, ENTERPRISE, CUSTOM, other]));
    // removing an extension's last attribute removes it from the user and from `schemas`
    let r = app
        .patch(
            &path,
            &json!({"schemas": [PATCH_OP], "Operations": [
                {"op": "Remove", "path": format!("{other}:extensionAttribute1")},
            ]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["schemas"], json!([USER, ENTERPRISE, CUSTOM]));
    assert!(r.body.get(other).is_none(), "{}", r.text);
    let got = app.get(&path).await;
    assert_eq!(got.body, r.body);
}
