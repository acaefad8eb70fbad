//! Filters on any attribute of the schema, sorting, cursor paging and `/.search` (#3).

use serde_json::{json, Value};

use crate::both;
use crate::helpers::{TestApp, USER};
use crate::users::urlencode;

both!(
    filters_on_unindexed_attributes,
    sorting,
    cursor_paging,
    cursor_paging_survives_changes,
    search_across_resource_types
);

const ENT: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

/// alice, bob and carol with a spread of attributes the store does not index.
async fn seed_people(app: &TestApp) {
    for body in [
        json!({"schemas": [USER, ENT], "userName": "alice@example.com", "active": true,
               "name": {"givenName": "Alice", "familyName": "Liddell"},
               "title": "Engineer", "nickName": "al", "userType": "Employee",
               ENT: {"department": "R&D", "manager": {"value": "boss-1"}},
               "phoneNumbers": [{"value": "+1 555 0100", "type": "work"}, {"value": "+44 20 7946 0000", "type": "home"}],
               "addresses": [{"locality": "London", "type": "work"}],
               "emails": [{"value": "alice@example.com", "type": "work", "primary": true}]}),
        json!({"schemas": [USER, ENT], "userName": "bob@example.com", "active": false,
               "name": {"familyName": "Builder"},
               "title": "Engineering Manager", "userType": "Contractor",
               ENT: {"department": "Sales"},
               "phoneNumbers": [{"value": "+1 555 0199", "type": "home"}, {"value": "+44 20 7946 0001", "type": "work"}],
               "addresses": [{"locality": "Paris"}],
               "emails": [{"value": "bob@corp.example.org", "type": "work"}, {"value": "bob@example.com", "type": "home"}]}),
        json!({"schemas": [USER, ENT], "userName": "carol@example.com", "active": true,
               ENT: {"department": "r&d", "manager": "BOSS-1"},
               "phoneNumbers": [{"value": "+1 800 555 0000", "type": "work"}],
               "emails": [{"value": "carol@example.com", "type": "home"}]}),
    ] {
        let r = app.post("/scim/v2/Users", &body).await;
        assert_eq!(r.status, 201, "{}", r.text);
    }
}

/// The userNames a filter selects, sorted, after checking totalResults agrees.
async fn names(app: &TestApp, filter: &str) -> Vec<String> {
    let r = app
        .get(&format!("/scim/v2/Users?filter={}", urlencode(filter)))
        .await;
    assert_eq!(r.status, 200, "{filter}: {}", r.text);
    let mut v: Vec<String> = r.body["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| {
            u["userName"]
                .as_str()
                .unwrap()
                .trim_end_matches("@example.com")
                .to_string()
        })
        .collect();
    assert_eq!(r.body["totalResults"], json!(v.len()), "{filter}");
    v.sort();
    v
}

async fn filters_on_unindexed_attributes(app: TestApp) {
    seed_people(&app).await;
    let alice = app
        .get(&format!(
            "/scim/v2/Users?filter={}",
            urlencode(r#"userName eq "alice@example.com""#)
        ))
        .await
        .body["Resources"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    app.create_group("Engineering", &[&alice]).await;
    let cases: &[(&str, &[&str])] = &[
        // simple single-valued attributes; caseExact false: case-insensitive
        (r#"title eq "engineer""#, &["alice"]),
        (r#"title co "ENGINEER""#, &["alice", "bob"]),
        (r#"title sw "eng""#, &["alice", "bob"]),
        (r#"title ew "MANAGER""#, &["bob"]),
        (r#"title pr"#, &["alice", "bob"]),
        (r#"not (title pr)"#, &["carol"]),
        (r#"title ne "Engineer""#, &["bob", "carol"]),
        (r#"title eq null"#, &["carol"]),
        (r#"title lt "engineerz""#, &["alice", "bob"]),
        (r#"title gt "engineer""#, &["bob"]),
        (r#"nickName eq "al" and userType eq "EMPLOYEE""#, &["alice"]),
        // sub-attributes of a complex attribute
        (r#"name.familyName eq "liddell""#, &["alice"]),
        (r#"name.givenName pr"#, &["alice"]),
        (
            r#"name[givenName sw "Al" and familyName ew "dell"]"#,
            &["alice"],
        ),
        // the enterprise extension by full URN
        (
            &format!(r#"{ENT}:department eq "R&D""#),
            &["alice", "carol"],
        ),
        (
            &format!(r#"{ENT}:manager.value eq "boss-1""#),
            &["alice", "carol"],
        ),
        (&format!(r#"{ENT}:manager pr"#), &["alice", "carol"]),
        (
            &format!(r#"not ({ENT}:department eq "sales")"#),
            &["alice", "carol"],
        ),
        // multi-valued complex attributes and value filters
        (
            r#"phoneNumbers[type eq "work" and value sw "+1"]"#,
            &["alice", "carol"],
        ),
        (r#"phoneNumbers.value sw "+44""#, &["alice", "bob"]),
        (r#"phoneNumbers.type eq "HOME""#, &["alice", "bob"]),
        (r#"addresses.locality eq "london""#, &["alice"]),
        (r#"addresses pr"#, &["alice", "bob"]),
        (
            r#"emails[type eq "work" and value co "@example.com"]"#,
            &["alice"],
        ),
        (r#"emails[primary eq true]"#, &["alice"]),
        (r#"emails[not (type eq "work")]"#, &["bob", "carol"]),
        (r#"emails.type eq "home""#, &["bob", "carol"]),
        (r#"groups.display eq "engineering""#, &["alice"]),
        (
            &format!(r#"groups[value eq "{alice}"] or groups.value pr"#),
            &["alice"],
        ),
        // indexed and unindexed attributes mixed with or / and / not
        (
            r#"userType eq "Employee" or userName eq "bob@example.com""#,
            &["alice", "bob"],
        ),
        (
            r#"not (userType eq "Employee") and active eq true"#,
            &["carol"],
        ),
        (
            r#"(title pr or emails.value co "carol") and not (active eq false)"#,
            &["alice", "carol"],
        ),
        (
            r#"emails.value eq "BOB@example.com" and title co "manager""#,
            &["bob"],
        ),
    ];
    for (filter, want) in cases {
        assert_eq!(names(&app, filter).await, *want, "{filter}");
    }
    // .search takes the same filters
    let r = app
        .post(
            "/scim/v2/Users/.search",
            &json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
                    "filter": format!("{ENT}:department eq \"SALES\"")}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["Resources"][0]["userName"], "bob@example.com");
    // attributes the schema does not have, and comparisons that make no sense, are 400
    for (filter, needle) in [
        (r#"titel eq "x""#, "titel"),
        (r#"name.nickname eq "x""#, "nickname"),
        (r#"password eq "x""#, "password"),
        (r#"name eq "x""#, "name"),
        (r#"emails[primary eq "yes"]"#, "primary"),
        (
            &format!(r#"{ENT}:departement eq "x""#) as &str,
            "departement",
        ),
        (r#"userName eq "a" or nope pr"#, "nope"),
    ] {
        let r = app
            .get(&format!("/scim/v2/Users?filter={}", urlencode(filter)))
            .await;
        r.assert_scim_error(400, Some("invalidFilter"));
        let detail: &Value = &r.body["detail"];
        assert!(
            detail.as_str().unwrap().contains(needle),
            "{filter}: {detail}"
        );
    }
}

/// The userNames of a list response, in order, without the domain.
fn order(r: &crate::helpers::Resp) -> Vec<String> {
    assert_eq!(r.status, 200, "{}", r.text);
    r.body["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| {
            u["userName"]
                .as_str()
                .or(u["displayName"].as_str())
                .unwrap()
                .split('@')
                .next()
                .unwrap()
                .to_string()
        })
        .collect()
}

async fn sorting(app: TestApp) {
    seed_people(&app).await;
    let r = app
        .post(
            "/scim/v2/Users",
            &json!({"schemas": [USER], "userName": "dave@example.com", "nickName": "Bo", "title": "apprentice",
                    "emails": [{"value": "zed@example.com", "type": "work"}, {"value": "aaa@example.com", "primary": true}]}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let sorted = |q: &str| {
        let app = &app;
        let q = q.to_string();
        async move { order(&app.get(&format!("/scim/v2/Users?{q}")).await) }
    };
    // no value sorts last ascending and first descending; ties go to insertion order
    assert_eq!(
        sorted("sortBy=title").await,
        ["dave", "alice", "bob", "carol"]
    );
    assert_eq!(
        sorted("sortBy=title&sortOrder=DESCENDING").await,
        ["carol", "bob", "alice", "dave"]
    );
    assert_eq!(
        sorted("sortBy=name.familyName").await,
        ["bob", "alice", "carol", "dave"]
    );
    assert_eq!(
        sorted("sortBy=userName&sortOrder=descending").await,
        ["dave", "carol", "bob", "alice"]
    );
    // caseExact false: "al" < "Bo" although "B" < "a" in code points
    assert_eq!(
        sorted("sortBy=nickName").await,
        ["alice", "dave", "bob", "carol"]
    );
    // multi-valued: the primary value, else the first
    assert_eq!(
        sorted("sortBy=emails").await,
        ["dave", "alice", "bob", "carol"]
    );
    assert_eq!(
        sorted("sortBy=emails.value&sortOrder=descending").await,
        ["carol", "bob", "alice", "dave"]
    );
    assert_eq!(
        sorted(&format!(
            "sortBy={}",
            urlencode(&format!("{ENT}:department"))
        ))
        .await,
        ["alice", "carol", "bob", "dave"]
    );
    assert_eq!(
        sorted("sortBy=active").await,
        ["bob", "alice", "carol", "dave"]
    );
    assert_eq!(
        sorted("sortBy=meta.created&sortOrder=descending")
            .await
            .len(),
        4
    );
    // with a filter and index paging
    assert_eq!(
        sorted(&format!(
            "filter={}&sortBy=userName&sortOrder=descending&startIndex=2&count=1",
            urlencode("active eq true")
        ))
        .await,
        ["carol"]
    );
    // .search takes sortBy / sortOrder too
    let r = app
        .post(
            "/scim/v2/Users/.search",
            &json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
                    "sortBy": "title", "sortOrder": "descending", "count": 2}),
        )
        .await;
    assert_eq!(order(&r), ["carol", "bob"]);
    assert_eq!(r.body["totalResults"], 4);
    // groups
    for name in ["beta", "Alpha", "gamma"] {
        app.create_group(name, &[]).await;
    }
    let r = app
        .get("/scim/v2/Groups?sortBy=displayName&sortOrder=descending")
        .await;
    assert_eq!(order(&r), ["gamma", "beta", "Alpha"]);
    // what cannot be sorted on
    for q in [
        "sortBy=nope",
        "sortBy=name",
        "sortBy=addresses",
        "sortBy=password",
        "sortBy=userName&sortOrder=up",
        "sortBy=emails%5Btype%20eq%20%22work%22%5D",
    ] {
        app.get(&format!("/scim/v2/Users?{q}"))
            .await
            .assert_scim_error(400, Some("invalidValue"));
    }
    app.get("/scim/v2/Groups?sortBy=userName")
        .await
        .assert_scim_error(400, Some("invalidValue"));
}

/// Walk every page of `path` (which carries its own filter and sort) with cursor paging,
/// calling `between` after each page; the names seen, in order.
async fn walk<F, Fut>(app: &TestApp, path: &str, count: usize, mut between: F) -> Vec<String>
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let sep = if path.contains('?') { '&' } else { '?' };
    let mut cursor = String::new();
    let mut seen = Vec::new();
    for page in 0.. {
        let r = app
            .get(&format!("{path}{sep}cursor={cursor}&count={count}"))
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert!(r.body.get("startIndex").is_none(), "{}", r.text);
        let names = order(&r);
        assert!(names.len() <= count);
        assert_eq!(r.body["itemsPerPage"], json!(names.len()));
        seen.extend(names);
        match r.body.get("nextCursor") {
            Some(c) => cursor = c.as_str().unwrap().to_string(),
            None => break,
        }
        assert!(page < 100, "the walk does not end");
        between(page).await;
    }
    seen
}

async fn cursor_paging(app: TestApp) {
    let mut ids = Vec::new();
    for i in 0..11 {
        let title = match i % 3 {
            0 => json!(null),
            n => json!(format!("T{n}")),
        };
        let r = app
            .post(
                "/scim/v2/Users",
                &json!({"schemas": [USER], "userName": format!("u{i:02}@x"), "title": title, "active": i % 4 != 0}),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
        ids.push(r.body["id"].as_str().unwrap().to_string());
    }
    // users in several groups come back as several rows from the store: a page still
    // holds `count` users and the walk neither repeats nor loses one
    let all_ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    app.create_group("everyone", &all_ids).await;
    app.create_group(
        "odd",
        &all_ids
            .iter()
            .copied()
            .skip(1)
            .step_by(2)
            .collect::<Vec<_>>(),
    )
    .await;
    // the whole walk equals one big page, in every order, page sizes dividing or not
    for q in [
        "/scim/v2/Users".to_string(),
        "/scim/v2/Users?sortBy=title".into(),
        "/scim/v2/Users?sortBy=title&sortOrder=descending".into(),
        "/scim/v2/Users?sortBy=userName&sortOrder=descending".into(),
        format!(
            "/scim/v2/Users?sortBy=title&filter={}",
            urlencode("active eq true")
        ),
    ] {
        let sep = if q.contains('?') { '&' } else { '?' };
        let all = order(&app.get(&format!("{q}{sep}count=50")).await);
        for count in [1, 2, 3, 4, 11, 50] {
            assert_eq!(
                walk(&app, &q, count, |_| async {}).await,
                all,
                "{q} count={count}"
            );
        }
    }
    // first page: totalResults, nextCursor, no startIndex
    let r = app.get("/scim/v2/Users?cursor&count=4").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["totalResults"], 11);
    assert_eq!(r.body["itemsPerPage"], 4);
    assert!(r.body.get("startIndex").is_none());
    let next = r.body["nextCursor"].as_str().unwrap().to_string();
    assert!(
        next.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b)),
        "{next}"
    );
    let r = app
        .get(&format!("/scim/v2/Users?cursor={next}&count=4"))
        .await;
    assert_eq!(r.body["totalResults"], 11);
    assert_eq!(order(&r), ["u04", "u05", "u06", "u07"]);
    // .search with a cursor in the body
    let search = |body: Value| {
        let app = &app;
        async move { app.post("/scim/v2/Users/.search", &body).await }
    };
    let sr = "urn:ietf:params:scim:api:messages:2.0:SearchRequest";
    let r = search(json!({"schemas": [sr], "cursor": "", "count": 10, "sortBy": "userName"})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let c = r.body["nextCursor"].as_str().unwrap().to_string();
    let r = search(json!({"schemas": [sr], "cursor": c, "count": 10, "sortBy": "userName"})).await;
    assert_eq!(order(&r), ["u10"]);
    assert!(r.body.get("nextCursor").is_none());
    // a cursor only continues its own query
    let r = search(json!({"schemas": [sr], "cursor": c, "count": 10, "sortBy": "title"})).await;
    r.assert_scim_error(400, Some("invalidCursor"));
    for q in [
        format!(
            "/scim/v2/Users?cursor={next}&count=4&filter={}",
            urlencode("userName pr")
        ),
        format!("/scim/v2/Groups?cursor={next}&count=4"),
        "/scim/v2/Users?cursor=not-a-cursor".into(),
        "/scim/v2/Users?cursor=eyJrIjpudWxsfQ".into(),
    ] {
        app.get(&q)
            .await
            .assert_scim_error(400, Some("invalidCursor"));
    }
    app.get("/scim/v2/Users?cursor=&startIndex=1")
        .await
        .assert_scim_error(400, Some("invalidValue"));
    app.get("/scim/v2/Users?cursor=&count=0")
        .await
        .assert_scim_error(400, Some("invalidCount"));
}

/// Keyset paging: deleting and creating users between pages never makes the walk repeat
/// a user or skip one that existed throughout.
async fn cursor_paging_survives_changes(app: TestApp) {
    let mut ids = std::collections::HashMap::new();
    for i in 0..12 {
        let name = format!("u{i:02}@x");
        ids.insert(format!("u{i:02}"), app.create_user(&name).await);
    }
    for (q, victims, newcomers) in [
        ("/scim/v2/Users", ["u01", "u07"], ["n1", "a0"]),
        (
            "/scim/v2/Users?sortBy=userName&sortOrder=descending",
            ["u10", "u02"],
            ["u055", "u99"],
        ),
        (
            "/scim/v2/Users?sortBy=userName",
            ["u00", "u09"],
            ["u035", "u005"],
        ),
    ] {
        let before: Vec<String> = order(
            &app.get(&format!(
                "{q}{}count=50",
                if q.contains('?') { '&' } else { '?' }
            ))
            .await,
        );
        let app_ref = &app;
        let ids_ref = &ids;
        let seen = walk(&app, q, 4, |page| async move {
            if page == 0 {
                let victim = &victims;
                for v in victim.iter() {
                    if let Some(id) = ids_ref.get(*v) {
                        let r = app_ref.delete(&format!("/scim/v2/Users/{id}")).await;
                        assert_eq!(r.status, 204);
                    }
                }
                for n in newcomers {
                    app_ref.create_user(&format!("{n}@x")).await;
                }
            }
        })
        .await;
        let mut unique = seen.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), seen.len(), "{q}: a user came twice: {seen:?}");
        for name in &before {
            if !victims.contains(&name.as_str()) {
                assert!(seen.contains(name), "{q}: {name} was skipped: {seen:?}");
            }
        }
        // reset for the next walk: remove the newcomers, forget the victims
        for n in newcomers {
            let r = app
                .get(&format!(
                    "/scim/v2/Users?filter={}",
                    urlencode(&format!("userName eq \"{n}@x\""))
                ))
                .await;
            let id = r.body["Resources"][0]["id"].as_str().unwrap().to_string();
            assert_eq!(
                app.delete(&format!("/scim/v2/Users/{id}")).await.status,
                204
            );
        }
        for v in victims {
            ids.remove(v);
        }
    }
}

async fn search_across_resource_types(app: TestApp) {
    let sr = "urn:ietf:params:scim:api:messages:2.0:SearchRequest";
    let a = app.create_user("a@x").await;
    app.create_user("b@x").await;
    let r = app
        .post(
            "/scim/v2/Users",
            &json!({"schemas": [USER], "userName": "c@x", "displayName": "Eng Lead"}),
        )
        .await;
    assert_eq!(r.status, 201);
    app.create_group("engineering", &[&a]).await;
    app.create_group("admins", &[]).await;
    let search = |body: Value| {
        let app = &app;
        async move {
            let r = app.post("/scim/v2/.search", &body).await;
            assert_eq!(r.status, 200, "{}", r.text);
            r
        }
    };
    let r = search(json!({"schemas": [sr]})).await;
    assert_eq!(r.body["totalResults"], 5);
    assert_eq!(order(&r), ["a", "b", "c", "engineering", "admins"]);
    let types: Vec<&str> = r.body["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["meta"]["resourceType"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["User", "User", "User", "Group", "Group"]);
    // an attribute both types have
    let r = search(json!({"schemas": [sr], "filter": "displayName sw \"eng\""})).await;
    assert_eq!(order(&r), ["c", "engineering"]);
    // attributes only one type has: absent on the other
    let r = search(json!({"schemas": [sr], "filter": "userName eq \"a@x\""})).await;
    assert_eq!(order(&r), ["a"]);
    let r = search(json!({"schemas": [sr], "filter": "userName ne \"a@x\""})).await;
    assert_eq!(order(&r), ["b", "c", "engineering", "admins"]);
    let r = search(json!({"schemas": [sr], "filter": format!("members[value eq \"{a}\"] or groups.display eq \"engineering\"")})).await;
    assert_eq!(order(&r), ["a", "engineering"]);
    // index paging over the concatenation
    let r = search(json!({"schemas": [sr], "startIndex": 3, "count": 2})).await;
    assert_eq!(order(&r), ["c", "engineering"]);
    assert_eq!(r.body["totalResults"], 5);
    assert_eq!(r.body["startIndex"], 3);
    let r = search(json!({"schemas": [sr], "startIndex": 5, "count": 5})).await;
    assert_eq!(order(&r), ["admins"]);
    assert_eq!(r.body["totalResults"], 5);
    let r = search(json!({"schemas": [sr], "count": 0})).await;
    assert_eq!(r.body["totalResults"], 5);
    assert_eq!(r.body["itemsPerPage"], 0);
    // each type in the requested order
    let r = search(json!({"schemas": [sr], "sortBy": "displayName", "sortOrder": "descending", "attributes": ["displayName"]})).await;
    assert_eq!(
        r.body["Resources"][0]["displayName"],
        json!(null).as_str().map_or(json!(null), |_| json!(null))
    );
    let names: Vec<Value> = r.body["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["displayName"].clone())
        .collect();
    assert_eq!(
        names,
        [
            json!(null),
            json!(null),
            json!("Eng Lead"),
            json!("engineering"),
            json!("admins")
        ]
    );
    // names neither type has, and cursor paging, are refused
    let r = app
        .post(
            "/scim/v2/.search",
            &json!({"schemas": [sr], "filter": "nope eq \"x\""}),
        )
        .await;
    r.assert_scim_error(400, Some("invalidFilter"));
    let r = app
        .post(
            "/scim/v2/.search",
            &json!({"schemas": [sr], "sortBy": "nope"}),
        )
        .await;
    r.assert_scim_error(400, Some("invalidValue"));
    let r = app
        .post("/scim/v2/.search", &json!({"schemas": [sr], "cursor": ""}))
        .await;
    r.assert_scim_error(400, Some("invalidValue"));
    app.get("/scim/v2/.search")
        .await
        .assert_scim_error(405, None);
}
