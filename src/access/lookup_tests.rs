//! The answers made from compact views against the way they were made before views held
//! indexes (grants and group names resolved per user, the roles answer's head serialized from
//! them), byte for byte; and views never outliving a change.

use serde::ser::{SerializeStruct, Serializer};

use super::*;
use crate::access::directory::{GroupRecord, Member};
use crate::roles::document::parse_toml;

const MAPPING: &str = r#"
[roles.owner]
rank = 100
description = "Everything \"and\" more"
permissions = ["*"]
models = ["claude-*"]
max_tokens = 8192
rpm = 200

[roles.admin]
rank = 80
permissions = ["messages.create", "chats.read", "members.manage"]
models = ["claude-haiku-*", "claude-sonnet-*", "claude-opus-*"]
max_tokens = 8192
rpm = 200

[roles.member]
rank = 40
description = "Tab\tand ünïcødé"
permissions = ["messages.create", "chats.read"]
models = ["claude-haiku-*"]
max_tokens = 512
rpm = 10

[roles.alpha]
rank = 40
permissions = ["chats.read"]

[roles.viewer]
rank = 20
permissions = ["chats.read"]

[[workspaces]]
name = "Engineering"

[[workspaces]]
name = "legal"
projects = ["Contracts", "litigation"]

[[workspaces]]
name = "sales \"EU\""

[[rules]]
group = "claude-admin"
role = "admin"

[[rules]]
group = "Engineering"
role = "member"
workspace = "engineering"

[[rules]]
group = "engineering"
role = "viewer"
workspace = "engineering"

[[rules]]
group = "eng-leads"
role = "admin"
workspace = "engineering"

[[rules]]
group = "legal"
role = "viewer"
workspace = "legal"
project = "contracts"

[[rules]]
group = "legal"
role = "viewer"
workspace = "legal"
project = "litigation"

[[rules]]
group = "legal-counsel"
role = "member"
workspace = "legal"

[[rules]]
group_external_id = "0f1a-AAAA"
role = "admin"
workspace = "sales \"eu\""

[[rules]]
group = "tie-b"
role = "member"
workspace = "sales \"EU\""

[[rules]]
group = "tie-a"
role = "alpha"
workspace = "sales \"EU\""

[[rules]]
group = "platform"
role = "member"
workspace = "engineering"

[[rules]]
group = "all \"staff\""
role = "viewer"
"#;

fn mapping(version: i64, default_role: &str) -> Mapping {
    let text = format!("default_role = {default_role:?}\n{MAPPING}");
    let doc = parse_toml(&text).unwrap();
    Mapping::new(version, CompiledMapping::new(doc).unwrap())
}

fn user(id: &str, name: &str, active: bool) -> UserRecord {
    UserRecord {
        id: id.into(),
        user_name: name.into(),
        external_id: Some(format!("ext-{id}")),
        active,
        version: 1,
    }
}

fn group(id: &str, name: &str, external_id: Option<&str>) -> GroupRecord {
    GroupRecord {
        id: id.into(),
        display_name: name.into(),
        external_id: external_id.map(String::from),
    }
}

fn users(ids: &[&str]) -> Vec<Member> {
    ids.iter().map(|u| Member::User(u.to_string())).collect()
}

fn directory() -> Directory {
    let mut d = Directory::default();
    // a membership before its user, a nested group before its record
    d.set_group(
        group("g-eng", "Engineering", None),
        &[
            Member::User("u1".into()),
            Member::User("u3".into()),
            Member::Group("g-plat".into()),
        ],
    );
    d.upsert_user(user("u1", "Alice@Example.com", true));
    d.upsert_user(user("u2", "bob \"the\" builder", true));
    d.upsert_user(user("u3", "carol", false));
    d.upsert_user(user("u4", "dave", true));
    d.upsert_user(user("u5", "erin\\ünï", true));
    d.set_group(group("g-plat", "platform", None), &users(&["u5"]));
    d.set_group(group("g-plat2", "platform", Some("p2")), &users(&["u5"]));
    d.set_group(group("g-leads", "eng-leads", None), &users(&["u5"]));
    d.set_group(
        group("g-all", "all \"staff\"", None),
        &[Member::Group("g-eng".into()), Member::User("u2".into())],
    );
    d.set_group(group("g-adm", "claude-admin", None), &users(&["u1"]));
    d.set_group(group("g-legal", "legal", None), &users(&["u2"]));
    d.set_group(group("g-counsel", "Legal-Counsel", None), &users(&["u2"]));
    d.set_group(
        group("g-sales", "Sales \\ ünïcødé", Some("0f1a-AAAA")),
        &users(&["u2", "u5"]),
    );
    d.set_group(group("g-ta", "tie-a", None), &users(&["u2"]));
    d.set_group(group("g-tb", "tie-b", None), &users(&["u2"]));
    // a group with neither name nor external id counts for nothing
    d.set_group(group("g-blank", "", None), &users(&["u4"]));
    // a member that never gets a user record
    d.set_group(group("g-ghost", "ghosts", None), &users(&["u9"]));
    d
}

const KEYS: &[&str] = &[
    "u1",
    "alice@example.com",
    "ext-u2",
    "bob \"the\" builder",
    "u3",
    "dave",
    "ERIN\\ÜNÏ",
    "u9",
    "nobody",
];

const QUERIES: &[(Option<&str>, Option<&str>)] = &[
    (None, None),
    (Some("engineering"), None),
    (Some("ENGINEERING"), None),
    (Some("legal"), None),
    (Some("legal"), Some("contracts")),
    (Some("Legal"), Some("LITIGATION")),
    (Some("sales \"eu\""), None),
    (Some("nope"), None),
    (Some("legal"), Some("nope")),
    (Some(" "), None),
    (None, Some("contracts")),
];

/// The roles answer as it was made before views held indexes.
fn old_roles(
    dir: &Directory,
    mapping: &Mapping,
    user_key: &str,
    workspace: Option<&str>,
    project: Option<&str>,
) -> Result<Vec<u8>, LookupError> {
    #[derive(serde::Serialize)]
    struct Head<'a> {
        user: &'a UserOut,
        groups: &'a [&'a str],
        roles: &'a [Grant],
    }
    struct Effective<'a> {
        scope: Scope,
        role: String,
        granted_at: Scope,
        via: Vec<String>,
        mapping: &'a Mapping,
    }
    impl serde::Serialize for Effective<'_> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            let mut st = s.serialize_struct("Effective", 5)?;
            st.serialize_field("scope", &self.scope)?;
            st.serialize_field("role", &self.role)?;
            st.serialize_field("granted_at", &self.granted_at)?;
            st.serialize_field("via", &self.via)?;
            st.serialize_field("policy", &self.mapping.compiled.role(&self.role))?;
            st.end()
        }
    }
    let i = dir
        .find_user_index(user_key)
        .ok_or(LookupError::UnknownUser)?;
    let user = dir.user_at(i).ok_or(LookupError::UnknownUser)?;
    let groups = dir.groups_of_index(i);
    let infos: Vec<GroupInfo<'_>> = groups
        .iter()
        .map(|g| GroupInfo {
            display_name: &g.display_name,
            external_id: g.external_id.as_deref(),
        })
        .collect();
    let grants = mapping.compiled.grants(user.active, &infos);
    let user = UserOut {
        id: user.id.clone(),
        user_name: user.user_name.clone(),
        active: user.active,
    };
    let names: Vec<&str> = groups.iter().map(|g| g.display_name.as_str()).collect();
    let mut head = serde_json::to_vec(&Head {
        user: &user,
        groups: &names,
        roles: &grants,
    })
    .unwrap();
    head.pop();
    let effective = match workspace {
        None if project.is_some() => {
            return Err(LookupError::UnknownScope(
                "a project needs its workspace".into(),
            ));
        }
        None => None,
        Some(w) if w.trim().is_empty() => {
            return Err(LookupError::UnknownScope(
                "\"workspace\" must not be empty".into(),
            ));
        }
        Some(w) => {
            let compiled = &mapping.compiled;
            let target = compiled
                .scope(Some(w), project)
                .map_err(LookupError::UnknownScope)?;
            let effective = compiled.effective(&grants, &target).and_then(|g| {
                compiled.role(&g.role)?;
                Some(Effective {
                    scope: target.clone(),
                    role: g.role.clone(),
                    granted_at: g.scope.clone(),
                    via: g.via.clone(),
                    mapping,
                })
            });
            Some(effective)
        }
    };
    let mut out = head;
    if let Some(effective) = &effective {
        out.extend_from_slice(b",\"effective\":");
        serde_json::to_writer(&mut out, effective).unwrap();
    }
    out.extend_from_slice(b",\"mapping_version\":");
    out.extend_from_slice(mapping.version.to_string().as_bytes());
    out.push(b'}');
    Ok(out)
}

/// The decision as it was made before views held indexes.
fn old_decide(dir: &Directory, mapping: &Mapping, user_key: &str, ask: &Ask<'_>) -> Decision {
    let Some(i) = dir.find_user_index(user_key) else {
        return Decision::deny(
            None,
            format!("unknown user \"{user_key}\": {}", LookupError::UnknownUser),
        );
    };
    let user = dir.user_at(i).unwrap();
    if !user.active {
        return Decision::deny(None, format!("user {} is deactivated", user.user_name));
    }
    let groups = dir.groups_of_index(i);
    let infos: Vec<GroupInfo<'_>> = groups
        .iter()
        .map(|g| GroupInfo {
            display_name: &g.display_name,
            external_id: g.external_id.as_deref(),
        })
        .collect();
    let grants = mapping.compiled.grants(user.active, &infos);
    match mapping.compiled.scope(ask.workspace, ask.project) {
        Ok(target) => {
            mapping
                .compiled
                .evaluate_at(&grants, &target, ask.action, ask.model, ask.max_tokens)
        }
        Err(e) => Decision::deny(None, e),
    }
}

/// Every key and query: the new answer is the old one, byte for byte.
fn check_all(dir: &Directory, mapping: &Mapping) -> usize {
    let mut ok = 0;
    for key in KEYS {
        for (workspace, project) in QUERIES {
            let new = roles_in(dir, mapping, key, *workspace, *project);
            let old = old_roles(dir, mapping, key, *workspace, *project);
            let show = |r: &Result<Vec<u8>, LookupError>| match r {
                Ok(b) => String::from_utf8_lossy(b).into_owned(),
                Err(e) => format!("error: {e:?}"),
            };
            assert_eq!(show(&new), show(&old), "{key} {workspace:?} {project:?}");
            ok += usize::from(new.is_ok());
            for model in [None, Some("claude-haiku-4"), Some("claude-opus-4")] {
                for action in ["messages.create", "members.manage"] {
                    let ask = Ask {
                        action,
                        workspace: *workspace,
                        project: *project,
                        model,
                        max_tokens: Some(4096),
                    };
                    assert_eq!(
                        decide_in(dir, mapping, key, &ask),
                        old_decide(dir, mapping, key, &ask),
                        "{key} {action} {workspace:?} {project:?} {model:?}"
                    );
                }
            }
        }
    }
    ok
}

#[test]
fn answers_are_byte_for_byte_what_they_were() {
    let dir = directory();
    for default_role in ["", "viewer", "member"] {
        let m = mapping(7, default_role);
        // twice: the first pass makes the views, the second reads them
        let ok = check_all(&dir, &m);
        assert_eq!(check_all(&dir, &m), ok);
        assert!(ok > 20, "{ok} answers");
    }
    // a sample, to see the comparison is about something
    let m = mapping(7, "");
    let body = roles_in(&dir, &m, "alice@example.com", Some("Engineering"), None).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["effective"]["role"], "admin");
    assert_eq!(
        v["groups"],
        serde_json::json!(["Engineering", "all \"staff\"", "claude-admin"])
    );
    assert_eq!(v["mapping_version"], 7);
}

#[test]
fn a_view_never_outlives_a_change() {
    let mut dir = directory();
    let m1 = mapping(3, "");
    let ask = |dir: &Directory, m: &Mapping| {
        roles_in(dir, m, "u1", Some("engineering"), None).map(|b| String::from_utf8(b).unwrap())
    };
    let before = ask(&dir, &m1).unwrap();
    assert!(before.contains("\"role\":\"admin\""), "{before}");
    // a membership change: u1 leaves claude-admin
    dir.set_group(group("g-adm", "claude-admin", None), &[]);
    let after = ask(&dir, &m1).unwrap();
    assert_ne!(after, before);
    assert_eq!(
        after.as_bytes(),
        old_roles(&dir, &m1, "u1", Some("engineering"), None).unwrap()
    );
    // a rename of a group two levels up
    dir.set_group(
        group("g-all", "everyone", None),
        &[Member::Group("g-eng".into()), Member::User("u2".into())],
    );
    let renamed = ask(&dir, &m1).unwrap();
    assert!(renamed.contains("\"everyone\""), "{renamed}");
    // another mapping of the same version number
    let m2 = mapping(3, "owner");
    let other = ask(&dir, &m2).unwrap();
    assert!(other.contains("\"role\":\"owner\""), "{other}");
    // and back: the view made for m2 is not taken for m1
    assert_eq!(ask(&dir, &m1).unwrap(), renamed);
    // a deactivation
    dir.upsert_user(user("u1", "Alice@Example.com", false));
    let inactive = ask(&dir, &m1).unwrap();
    assert!(inactive.contains("\"active\":false}"), "{inactive}");
    assert!(inactive.contains("\"roles\":[]"), "{inactive}");
    assert!(
        !decide_in(
            &dir,
            &m1,
            "u1",
            &Ask {
                action: "messages.create",
                workspace: Some("engineering"),
                project: None,
                model: None,
                max_tokens: None,
            }
        )
        .allowed
    );
    // a removal
    dir.remove_user("u1");
    assert_eq!(ask(&dir, &m1), Err(LookupError::UnknownUser));
    check_all(&dir, &m1);
    check_all(&dir, &m2);
}

#[test]
fn token_claims_are_the_grants() {
    let dir = directory();
    let m = mapping(1, "viewer");
    for key in KEYS {
        let new = claims_in(&dir, &m, key);
        let old = dir
            .find_user_index(key)
            .and_then(|i| dir.user_at(i))
            .map(|u| {
                let groups = dir.groups_of(&u.id);
                let infos: Vec<GroupInfo<'_>> = groups
                    .iter()
                    .map(|g| GroupInfo {
                        display_name: &g.display_name,
                        external_id: g.external_id.as_deref(),
                    })
                    .collect();
                (u.id.clone(), m.compiled.grants(u.active, &infos))
            });
        assert_eq!(new.map(|(u, g)| (u.id, g)).ok(), old, "{key}");
    }
}

#[test]
fn a_view_is_a_few_integers() {
    let dir = directory();
    let m = mapping(1, "viewer");
    let i = dir.find_user_index("u2").unwrap();
    roles_in(&dir, &m, "u2", None, None).unwrap();
    let slot = dir.view_slot(i).unwrap().lock().unwrap();
    let view = slot.as_ref().unwrap();
    // 6 groups; grants at the org, legal and sales (those at legal's two projects are
    // outranked by legal's own, so they are nobody's effective role and are left out)
    assert_eq!(view.groups().len(), 6);
    assert_eq!(view.grants().count(), 3);
    let (grants, groups) = (view.grants.as_slice(), &view.groups);
    assert!(
        grants.len() + groups.len() <= 1 + 3 * 6 + 5 * 3,
        "{grants:?} {groups:?}"
    );
    // three grants by one or two groups each: in the view itself, not on the heap
    assert!(grants.len() <= Ints::CAPACITY, "{grants:?}");
    assert!(matches!(view.grants, Ints::Inline { .. }));
    assert!(std::mem::size_of::<UserView>() <= 96);
}

/// Random changes to a small directory (users coming and going, groups renamed, nested in
/// cycles, emptied and removed, mappings replaced): after each one, every answer made from the
/// views kept so far is the answer made from scratch.
#[test]
fn views_follow_random_changes() {
    const NAMES: &[&str] = &[
        "engineering",
        "Engineering",
        "legal",
        "legal-counsel",
        "tie-a",
        "tie-b",
        "claude-admin",
        "all \"staff\"",
        "platform",
        "eng-leads",
        "other",
        "",
    ];
    let mut next = crate::access::test_picker(0x5eed_u64);
    let mappings = [mapping(1, ""), mapping(2, "viewer"), mapping(2, "viewer")];
    let mut m = &mappings[0];
    let mut dir = Directory::default();
    let keys: Vec<String> = (0..8).map(|u| format!("u{u}")).collect();
    let queries = [
        (None, None),
        (Some("engineering"), None),
        (Some("legal"), Some("contracts")),
        (Some("sales \"EU\""), None),
    ];
    let mut answered = 0;
    for step in 0..600 {
        match next(12) {
            0..=2 => {
                let u = next(8);
                dir.upsert_user(user(&format!("u{u}"), &format!("User{u}"), next(4) > 0));
            }
            3 => dir.remove_user(&format!("u{}", next(8))),
            4..=7 => {
                let g = next(8);
                let mut members: Vec<Member> = Vec::new();
                for _ in 0..next(5) {
                    members.push(Member::User(format!("u{}", next(8))));
                }
                for _ in 0..next(3) {
                    members.push(Member::Group(format!("g{}", next(8))));
                }
                let external = (next(4) == 0).then_some("0f1a-AAAA");
                dir.set_group(
                    group(&format!("g{g}"), NAMES[next(NAMES.len())], external),
                    &members,
                );
            }
            8 => dir.remove_group(&format!("g{}", next(8))),
            9 | 10 => {
                // a membership delta (and maybe a rename) as the change feed applies it
                let g = next(8);
                let mut ops: Vec<(bool, Member)> = Vec::new();
                for _ in 0..next(4) {
                    let m = match next(4) {
                        0 => Member::Group(format!("g{}", next(8))),
                        _ => Member::User(format!("u{}", next(8))),
                    };
                    ops.push((next(2) == 0, m));
                }
                let external = (next(4) == 0).then_some("0f1a-AAAA");
                let _ = dir.change_group(
                    group(&format!("g{g}"), NAMES[next(NAMES.len())], external),
                    &ops,
                );
            }
            _ => m = &mappings[next(mappings.len())],
        }
        for key in &keys {
            for (workspace, project) in queries {
                let new = roles_in(&dir, m, key, workspace, project);
                let old = old_roles(&dir, m, key, workspace, project);
                assert_eq!(
                    new.as_deref().map(String::from_utf8_lossy),
                    old.as_deref().map(String::from_utf8_lossy),
                    "step {step}: {key} {workspace:?} {project:?}"
                );
                answered += usize::from(new.is_ok());
            }
        }
    }
    assert!(answered > 1000, "{answered} answers");
}

#[test]
fn changes_to_others_leave_a_view_alone() {
    let mut dir = directory();
    let m = mapping(1, "");
    let made_at = |dir: &Directory, key: &str| {
        roles_in(dir, &m, key, None, None).unwrap();
        let i = dir.find_user_index(key).unwrap();
        let slot = dir.view_slot(i).unwrap().lock().unwrap();
        slot.as_ref().unwrap().generation
    };
    let first = made_at(&dir, "u2");
    // another user, a group u2 is not in (even nested), a new group
    dir.upsert_user(user("u4", "dave", false));
    dir.set_group(group("g-adm", "claude-admins", None), &users(&["u1", "u4"]));
    dir.set_group(group("g-new", "new", None), &users(&["u5"]));
    dir.remove_group("g-ghost");
    assert_eq!(made_at(&dir, "u2"), first, "kept");
    // u5 is in engineering through platform; u2 is in a group engineering is in
    let erin = made_at(&dir, "u5");
    dir.set_group(group("g-eng", "Engineering", None), &users(&["u1"]));
    assert_eq!(made_at(&dir, "u2"), first, "kept");
    assert!(made_at(&dir, "u5") > erin, "made again");
    // a rename of u2's group
    dir.set_group(
        group("g-all", "everyone", None),
        &[Member::Group("g-eng".into()), Member::User("u2".into())],
    );
    assert!(made_at(&dir, "u2") > first, "made again");
}
