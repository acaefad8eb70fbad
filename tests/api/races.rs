//! Writes that cross each other (found by a concurrency audit on PostgreSQL): a member added
//! to a group while it is being deleted, and two writes that deadlock. Each race is staged
//! with a transaction of the test's own that holds the locks the other write would, so the
//! interleaving is the same on every run. On SQLite, whose writers take turns, the same steps
//! run one after the other and must end the same way.

use std::time::Duration;

use serde_json::json;
use sqlx::{Any, AnyConnection, Connection, Transaction};

use crate::both;
use crate::helpers::{Backend, TestApp, PATCH_OP};

both!(
    a_member_added_while_being_deleted_leaves_no_row,
    a_write_aborted_by_a_deadlock_runs_again,
);

async fn raw(app: &TestApp) -> AnyConnection {
    AnyConnection::connect(&app.database_url)
        .await
        .expect("a connection of the test's own")
}

/// In `tx`, what a PATCH adding `member` to `group` does before it commits: lock the group's
/// row, share-lock the member's row (PostgreSQL), write the membership row.
async fn stage_add(
    app: &TestApp,
    tx: &mut Transaction<'_, Any>,
    group: &str,
    member: &str,
    kind: &str,
) {
    sqlx::query("UPDATE scim_groups SET version = version + 1 WHERE id = $1")
        .bind(group.to_string())
        .execute(&mut **tx)
        .await
        .unwrap();
    let table = if kind == "User" {
        "scim_users"
    } else {
        "scim_groups"
    };
    let share = if app.backend == Backend::Postgres {
        " FOR SHARE"
    } else {
        ""
    };
    let found = sqlx::query(&format!("SELECT id FROM {table} WHERE id = $1{share}"))
        .bind(member.to_string())
        .fetch_optional(&mut **tx)
        .await
        .unwrap();
    assert!(found.is_some());
    sqlx::query(
        "INSERT INTO scim_members (group_id, member_id, member_type, display) \
         VALUES ($1, $2, $3, 'staged')",
    )
    .bind(group.to_string())
    .bind(member.to_string())
    .bind(kind.to_string())
    .execute(&mut **tx)
    .await
    .unwrap();
}

/// `DELETE path` sent from a task of its own; its status and body text.
fn spawn_delete(app: &TestApp, path: &str) -> tokio::task::JoinHandle<(u16, String)> {
    let (client, url, token) = (
        app.client.clone(),
        format!("{}{path}", app.address),
        app.token.clone(),
    );
    tokio::spawn(async move {
        let r = client.delete(url).bearer_auth(token).send().await.unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    })
}

async fn member_ids(app: &TestApp, group: &str) -> Vec<String> {
    let r = app.get(&format!("/scim/v2/Groups/{group}")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.body["members"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|m| m["value"].as_str().unwrap().to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// A user (and a group) deleted while a change adding it to a group is in flight: the add
/// commits first and the delete then removes the new membership too (on PostgreSQL it used
/// to survive the user: a member nobody can read, and a group PUT echoing its own list got
/// 400). An add that comes after the delete finds the member gone.
async fn a_member_added_while_being_deleted_leaves_no_row(app: TestApp) {
    for kind in ["User", "Group"] {
        let group = app.create_group(&format!("parent-{kind}"), &[]).await;
        let member = if kind == "User" {
            app.create_user(&format!("doomed-{kind}@example.com")).await
        } else {
            app.create_group("doomed-child", &[]).await
        };
        let path = format!("/scim/v2/{kind}s/{member}");

        let mut conn = raw(&app).await;
        let mut tx = conn.begin().await.unwrap();
        stage_add(&app, &mut tx, &group, &member, kind).await;
        // the delete starts while the add holds its locks, and must wait for it
        let deleting = spawn_delete(&app, &path);
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(
            !deleting.is_finished(),
            "the delete did not wait for the add"
        );
        tx.commit().await.unwrap();
        let (status, text) = deleting.await.unwrap();
        assert_eq!(status, 204, "{text}");

        assert_eq!(app.get(&path).await.status, 404);
        assert!(
            member_ids(&app, &group).await.is_empty(),
            "{kind}: the deleted member is still listed"
        );
        // the group's list can be sent back as it is read (no unknown member in it)
        let r = app
            .put(
                &format!("/scim/v2/Groups/{group}"),
                &json!({"schemas": [crate::helpers::GROUP], "displayName": format!("parent-{kind}"), "members": []}),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        // an add after the delete: the member is unknown
        let r = app
            .patch(
                &format!("/scim/v2/Groups/{group}"),
                &json!({"schemas": [PATCH_OP], "Operations": [
                    {"op": "add", "path": "members", "value": [{"value": member}]}]}),
            )
            .await;
        r.assert_scim_error(400, Some("invalidValue"));
    }
}

/// A delete of a user crossing a change to a group it belongs to: the delete locks the user,
/// then wants the group; the test's transaction holds the group, then wants the user. On
/// PostgreSQL that is a deadlock, which the database breaks by aborting one side; when that
/// is the server's write, the server runs it again (it used to answer 500). The delete
/// succeeds either way, and nothing is left half done.
async fn a_write_aborted_by_a_deadlock_runs_again(app: TestApp) {
    let user = app.create_user("crossing@example.com").await;
    let group = app.create_group("crossed", &[user.as_str()]).await;

    let mut conn = raw(&app).await;
    let mut tx = conn.begin().await.unwrap();
    sqlx::query("UPDATE scim_groups SET version = version + 1 WHERE id = $1")
        .bind(group.clone())
        .execute(&mut *tx)
        .await
        .unwrap();
    let deleting = spawn_delete(&app, &format!("/scim/v2/Users/{user}"));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!deleting.is_finished(), "the delete did not wait");
    if app.backend == Backend::Postgres {
        // wants the user the delete has locked: one of the two is aborted (after the
        // database's deadlock_timeout); if it is this one, its transaction is gone
        let ours = sqlx::query("SELECT id FROM scim_users WHERE id = $1 FOR SHARE")
            .bind(user.clone())
            .fetch_optional(&mut *tx)
            .await;
        match ours {
            Ok(_) => tx.commit().await.unwrap(),
            Err(e) => {
                assert!(e.to_string().contains("deadlock"), "{e}");
                drop(tx);
            }
        }
    } else {
        tx.commit().await.unwrap();
    }
    let (status, text) = deleting.await.unwrap();
    assert_eq!(status, 204, "{text}");
    assert_eq!(app.get(&format!("/scim/v2/Users/{user}")).await.status, 404);
    assert!(member_ids(&app, &group).await.is_empty());
    // exactly one audit entry for the delete
    let entries: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM audit_log WHERE action = 'user.delete' AND target_id = $1",
    )
    .bind(user.clone())
    .fetch_one(&mut raw(&app).await)
    .await
    .unwrap();
    assert_eq!(entries, 1);
}

/// PostgreSQL giving up on a lock (here `lock_timeout`, 300 ms) while a created group is read
/// back after its commit: the answer is made from what was written (201), not an error after
/// which the IdP would create the group a second time (found by an audit). PostgreSQL only:
/// SQLite has no lock timeout of this kind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_created_group_is_answered_when_reading_it_back_fails() {
    let Some(app) = crate::helpers::spawn_app(Backend::Postgres).await else {
        return;
    };
    let mut conn = raw(&app).await;
    let db: String = sqlx::query_scalar("SELECT current_database()::text")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    sqlx::query(&format!("ALTER DATABASE {db} SET lock_timeout = '300ms'"))
        .execute(&mut conn)
        .await
        .unwrap();
    // a server whose connections (opened from now on) give up on a lock after 300 ms
    let server = app.peer().await;
    // a group without members writes no membership row: only reading it back needs the
    // membership table, which this lock keeps from it
    let mut tx = conn.begin().await.unwrap();
    sqlx::query("LOCK TABLE scim_members IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *tx)
        .await
        .unwrap();
    let created = server
        .post(
            "/scim/v2/Groups",
            &json!({"schemas": [crate::helpers::GROUP], "displayName": "read-back"}),
        )
        .await;
    tx.rollback().await.unwrap();
    assert_eq!(created.status, 201, "{}", created.text);
    assert_eq!(created.body["displayName"], "read-back");
    let id = created.body["id"].as_str().unwrap().to_string();
    // exactly one such group, and it reads back the same
    let r = app
        .get("/scim/v2/Groups?filter=displayName%20eq%20%22read-back%22")
        .await;
    assert_eq!(r.body["totalResults"], 1, "{}", r.text);
    assert_eq!(app.get(&format!("/scim/v2/Groups/{id}")).await.status, 200);
}
