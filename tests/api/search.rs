//! Filters on any attribute of the schema, sorting, cursor paging and `/.search` (#3).

use serde_json::{json, Value};

use crate::both;
use crate::helpers::{TestApp, USER};
use crate::users::urlencode;

both!(filters_on_unindexed_attributes);

const ENT: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

/// alice, bob and carol with a spread of attributes the store does not index.
async fn seed_people(app: &TestApp) {
    for body in [
        json!({"schemas": [USER, ENT], "userName": "alice@example.com", "active": true,
               "name": {"givenName": "Alice", "familyName": "Liddell"},
               "title": "Engineer", "nickName": "Al", "userType": "Employee",
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
