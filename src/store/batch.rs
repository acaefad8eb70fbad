//! Group commit of user creation on SQLite.
//!
//! SQLite has one writer. Alone, a create holds it for five statements (BEGIN, the user, its
//! e-mails, the audit entry, COMMIT), each a round trip to the connection's worker thread, and
//! commits its own index pages to the WAL. Under load (an IdP's initial import) creates queue
//! for the writer anyway, so the queue is drained in batches: one transaction and one
//! multi-row INSERT per table for the whole batch. If any statement of a batch fails (a
//! userName already taken, say), the batch is rolled back and each of its creates runs alone,
//! so every create gets exactly the answer it would have had on its own, and nothing of a
//! failed create is ever written.
//!
//! PostgreSQL writes concurrently and keeps one transaction per create.

use sqlx::{Any, Transaction};
use tokio::sync::{mpsc, oneshot};

use super::audit::Actor;
use super::users::{doc_text, UserRow};
use super::{now, Result, Store, StoreError, CHUNK};
use crate::scim::resource::Normalized;

/// The most creates written in one transaction.
const MAX_BATCH: usize = 64;

pub(super) struct CreateJob {
    pub n: Normalized,
    pub actor: Actor,
    pub reply: oneshot::Sender<Result<UserRow>>,
}

pub(super) type Batcher = mpsc::Sender<CreateJob>;

/// Start the writer task for `store` (a handle without a batcher of its own).
pub(super) fn spawn(store: Store) -> Batcher {
    let (tx, rx) = mpsc::channel(1024);
    tokio::spawn(run(store, rx));
    tx
}

async fn run(store: Store, mut rx: mpsc::Receiver<CreateJob>) {
    while let Some(first) = rx.recv().await {
        let mut jobs = vec![first];
        while jobs.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        if jobs.len() > 1 {
            let rows = prepare(&jobs);
            if let Ok(rows) = rows {
                if store.insert_together(&jobs, &rows).await.is_ok() {
                    for (job, row) in jobs.into_iter().zip(rows) {
                        // the caller may have gone away (its connection closed): nothing to do
                        let _ = job.reply.send(Ok(row.user));
                    }
                    continue;
                }
            }
        }
        for job in jobs {
            let result = store.create_user_alone(&job.n, &job.actor).await;
            let _ = job.reply.send(result);
        }
    }
}

/// What one create writes, worked out before the transaction starts.
struct Prepared {
    user: UserRow,
    doc: String,
    summary: String,
}

fn prepare(jobs: &[CreateJob]) -> Result<Vec<Prepared>> {
    let ts = now();
    jobs.iter()
        .map(|job| {
            let n = &job.n;
            Ok(Prepared {
                user: UserRow {
                    id: uuid::Uuid::new_v4().to_string(),
                    active: n.active,
                    doc: n.doc.clone(),
                    version: 1,
                    created: ts.clone(),
                    last_modified: ts.clone(),
                    groups: Vec::new(),
                },
                doc: doc_text(&n.doc)?,
                summary: super::users::create_summary(n).to_string(),
            })
        })
        .collect()
}

/// `($1, $2, …), ($k+1, …)`: `rows` groups of `width` placeholders.
fn value_groups(rows: usize, width: usize) -> String {
    (0..rows)
        .map(|r| format!("({})", super::placeholders(r * width + 1, width)))
        .collect::<Vec<_>>()
        .join(", ")
}

impl Store {
    /// Write a batch of creates in one transaction; on any error nothing is written.
    async fn insert_together(&self, jobs: &[CreateJob], rows: &[Prepared]) -> Result<()> {
        let mut tx = self.write.begin().await?;
        insert_users(&mut tx, jobs, rows).await?;
        insert_emails(&mut tx, jobs, rows).await?;
        insert_audit(&mut tx, jobs, rows).await?;
        tx.commit().await?;
        self.committed();
        Ok(())
    }
}

async fn insert_users(
    tx: &mut Transaction<'_, Any>,
    jobs: &[CreateJob],
    rows: &[Prepared],
) -> Result<()> {
    let sql = format!(
        "INSERT INTO scim_users (id, user_name, user_name_lower, external_id, display_name, \
         display_name_lower, active, doc, version, created, last_modified) VALUES {}",
        // version is always 1 and created = last_modified; bound like the rest for simplicity
        value_groups(jobs.len(), 11)
    );
    let mut q = sqlx::query(&sql);
    for (job, row) in jobs.iter().zip(rows) {
        let n = &job.n;
        q = q
            .bind(row.user.id.clone())
            .bind(n.user_name.clone())
            .bind(n.user_name.to_lowercase())
            .bind(n.external_id.clone())
            .bind(n.display_name.clone())
            .bind(n.display_name.as_deref().map(str::to_lowercase))
            .bind(n.active)
            .bind(row.doc.clone())
            .bind(1i64)
            .bind(row.user.created.clone())
            .bind(row.user.last_modified.clone());
    }
    q.execute(&mut **tx).await?;
    Ok(())
}

async fn insert_emails(
    tx: &mut Transaction<'_, Any>,
    jobs: &[CreateJob],
    rows: &[Prepared],
) -> Result<()> {
    let pairs: Vec<(&str, &str)> = jobs
        .iter()
        .zip(rows)
        .flat_map(|(job, row)| {
            job.n
                .emails
                .iter()
                .map(|e| (row.user.id.as_str(), e.as_str()))
        })
        .collect();
    for chunk in pairs.chunks(CHUNK / 2) {
        let sql = format!(
            "INSERT INTO scim_emails (user_id, value_lower) VALUES {}",
            value_groups(chunk.len(), 2)
        );
        let mut q = sqlx::query(&sql);
        for (id, email) in chunk {
            q = q.bind(id.to_string()).bind(email.to_string());
        }
        q.execute(&mut **tx).await?;
    }
    Ok(())
}

async fn insert_audit(
    tx: &mut Transaction<'_, Any>,
    jobs: &[CreateJob],
    rows: &[Prepared],
) -> Result<()> {
    let sql = format!(
        "INSERT INTO audit_log (at, actor, actor_kind, action, target_type, target_id, summary, \
         request_id, client) VALUES {}",
        value_groups(jobs.len(), 9)
    );
    let mut q = sqlx::query(&sql);
    for (job, row) in jobs.iter().zip(rows) {
        let a = &job.actor;
        q = q
            .bind(row.user.created.clone())
            .bind(a.name.clone())
            .bind(a.kind.clone())
            .bind("user.create")
            .bind("user")
            .bind(row.user.id.clone())
            .bind(row.summary.clone())
            .bind(a.request_id.clone())
            .bind(a.client.clone());
    }
    q.execute(&mut **tx).await?;
    Ok(())
}

/// Hand a create to the writer task and wait for its answer; `Err(n)` back when the task is
/// gone (the caller then writes the create itself).
pub(super) async fn submit(
    batcher: &Batcher,
    n: Normalized,
    actor: &Actor,
) -> std::result::Result<Result<UserRow>, Normalized> {
    let (reply, answer) = oneshot::channel();
    let job = CreateJob {
        n,
        actor: actor.clone(),
        reply,
    };
    if let Err(mpsc::error::SendError(job)) = batcher.send(job).await {
        return Err(job.n);
    }
    Ok(answer
        .await
        .unwrap_or(Err(StoreError::Unavailable(sqlx::Error::WorkerCrashed))))
}
