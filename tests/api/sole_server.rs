//! `--sole-server` on PostgreSQL: a server that is the only one on its database reads single
//! users as a SQLite server does (after its own writes, without read barriers); the server
//! lock keeps sole servers and replicas apart, and a sole server that loses its lock falls
//! back to read barriers. PostgreSQL only: a SQLite server is always alone.

use std::time::{Duration, Instant};

use serde_json::json;
use sqlx::{AnyConnection, Connection};

use crate::helpers::{
    fresh_database, metric, new_token, try_start_server, Backend, Resp, TestApp, USER,
};
use rolecall::auth::Scope;

const BARRIERS: &str = "rolecall_feed_barriers_total";

/// A [`TestApp`] over a server started by [`try_start_server`].
async fn app_on(url: &str, sole: bool) -> anyhow::Result<TestApp> {
    let (address, store, stop) = try_start_server(url, sole).await?;
    let token = new_token(&store, &format!("t-{}", uuid::Uuid::new_v4()), Scope::Scim).await;
    Ok(TestApp::from_parts(
        address,
        token,
        store,
        url,
        Backend::Postgres,
        stop,
    ))
}

async fn create(app: &TestApp, name: &str) -> Resp {
    app.post(
        "/scim/v2/Users",
        &json!({"schemas": [USER], "userName": name}),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sole_server_reads_without_barriers_and_keeps_replicas_away() {
    let dir = tempfile::tempdir().unwrap();
    let Some(url) = fresh_database(Backend::Postgres, &dir).await else {
        return;
    };
    let sole = app_on(&url, true).await.expect("a sole server starts");

    // neither a replica nor a second sole server starts beside it
    let replica = app_on(&url, false).await;
    let err = replica
        .err()
        .expect("a replica started beside a sole server");
    assert!(err.to_string().contains("--sole-server"), "{err:#}");
    let second = app_on(&url, true).await;
    let err = second.err().expect("a second sole server started");
    assert!(
        err.to_string().contains("another rolecall server"),
        "{err:#}"
    );

    // its single-user reads see its own writes at once, with no read barrier
    let before = metric(&sole, BARRIERS, &[]).await;
    let r = create(&sole, "solo@example.com").await;
    assert_eq!(r.status, 201, "{}", r.text);
    let id = r.body["id"].as_str().unwrap().to_string();
    for _ in 0..5 {
        let r = sole.get(&format!("/scim/v2/Users/{id}")).await;
        assert_eq!(r.status, 200, "{}", r.text);
        let r = sole
            .get("/scim/v2/Users?filter=userName%20eq%20%22SOLO@example.com%22")
            .await;
        assert_eq!(r.body["totalResults"], 1, "{}", r.text);
    }
    let patched = sole
        .patch(
            &format!("/scim/v2/Users/{id}"),
            &json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [{"op": "replace", "value": {"active": false}}]}),
        )
        .await;
    assert_eq!(patched.status, 200, "{}", patched.text);
    let r = sole.get(&format!("/scim/v2/Users/{id}")).await;
    assert_eq!(r.body["active"], false, "{}", r.text);
    assert_eq!(
        metric(&sole, BARRIERS, &[]).await,
        before,
        "reads took barriers"
    );

    // its lock's connection ends (an administrator, a proxy, a failover): from then on it
    // cannot be sure it is alone, and its reads wait for read barriers
    let mut admin = AnyConnection::connect(&url).await.unwrap();
    let ended: i64 = sqlx::query_scalar(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_locks \
         WHERE locktype = 'advisory' AND mode = 'ExclusiveLock' AND granted \
         AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
    )
    .fetch_one(&mut admin)
    .await
    .unwrap();
    assert_eq!(ended, 1);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let before = metric(&sole, BARRIERS, &[]).await;
        let r = sole.get(&format!("/scim/v2/Users/{id}")).await;
        assert_eq!(r.status, 200, "{}", r.text);
        if metric(&sole, BARRIERS, &[]).await > before {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "reads still take no barrier after the lock was lost"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // ... and a replica may start now, whose writes the (former) sole server sees
    let replica = app_on(&url, false).await.expect("a replica starts");
    let r = create(&replica, "written-elsewhere@example.com").await;
    assert_eq!(r.status, 201, "{}", r.text);
    let other = r.body["id"].as_str().unwrap();
    let r = sole.get(&format!("/scim/v2/Users/{other}")).await;
    assert_eq!(r.status, 200, "{}", r.text);
}
