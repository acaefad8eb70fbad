//! The in-memory role view gateways query: the directory (users, groups, nesting), the
//! compiled mapping, API tokens and signing keys. Lookups never touch the database.
//!
//! Freshness: every change is an audit-log entry (written in the change's transaction), and
//! the audit log is the change feed. A follower task polls it (every 200 ms by default) and
//! reloads what each entry names, so changes made by other servers or by the CLI show within
//! a second. Changes made through this process bump a counter in the [`Store`]; a reader that
//! sees the counter moved catches up first, so such a change is visible to the very next
//! request. A reader that must also see what other servers committed (PostgreSQL
//! single-user SCIM reads) waits for a read barrier: a catch-up that started after it
//! arrived ([`Access::barrier`]).

pub mod directory;
mod feed;
mod inline;
pub mod keys;
mod lookup;
pub mod mappings;
mod user_docs;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use crate::roles::document::MappingDocument;
use crate::roles::resolve::CompiledMapping;
use crate::store::{Store, StoreError};
use directory::Directory;
pub use feed::FeedState;
pub use keys::KeySet;
pub use lookup::{LookupError, UserOut};
pub use user_docs::{CachedUser, Freshness, UserRead};

/// The mapping in force and the version it has in the database (0 = never applied).
pub struct Mapping {
    pub version: i64,
    pub compiled: CompiledMapping,
    /// Unique to this value in this process (a reloaded mapping of the same version gets a new
    /// one): lookup views are stamped with it.
    serial: u64,
    /// The pieces of the roles answer that depend on the mapping only, serialized once.
    fragments: lookup::Fragments,
}

impl Mapping {
    pub fn new(version: i64, compiled: CompiledMapping) -> Self {
        static SERIAL: AtomicU64 = AtomicU64::new(1);
        Self {
            version,
            fragments: lookup::Fragments::new(&compiled),
            compiled,
            serial: SERIAL.fetch_add(1, Ordering::Relaxed),
        }
    }
}

/// Counts since start-up, see [`Access::feed_stats`].
#[derive(Debug, Clone, Copy, Default)]
pub struct FeedStats {
    pub catch_ups: u64,
    pub barriers: u64,
}

pub struct Access {
    store: Store,
    directory: RwLock<Directory>,
    mapping: RwLock<Arc<Mapping>>,
    tokens: RwLock<HashMap<String, crate::auth::Credential>>,
    keys: RwLock<Arc<KeySet>>,
    /// Held only by `catch_up_locked`, which signals `catch_up_ended` when it lets go (a
    /// barrier waiting for the lock waits for that signal).
    feed: tokio::sync::Mutex<FeedState>,
    /// `store.local_writes()` as of the last catch-up.
    applied_local: AtomicU64,
    /// `store.local_token_writes()` as of the last catch-up.
    applied_tokens: AtomicU64,
    /// Catch-ups started (each one's number), and the number of the last that finished: a
    /// [`Access::barrier`] waits for one that started after it was called.
    catch_ups_started: AtomicU64,
    catch_ups_finished: AtomicU64,
    /// The number of the latest catch-up that failed (0: none).
    catch_ups_failed: AtomicU64,
    /// Bumped when a catch-up ends, well or not: wakes the barriers waiting for one.
    catch_up_ended: tokio::sync::watch::Sender<u64>,
    /// Calls of [`Access::barrier`].
    barriers: AtomicU64,
    /// [`Access::paced_barrier`]: when (after `created`) the next one may start, in ns.
    next_paced: AtomicU64,
    created: std::time::Instant,
    /// Set when SCIM reads of single users may be answered from memory (see `user_docs`).
    user_docs: OnceLock<user_docs::UserDocs>,
}

fn read<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|e| e.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|e| e.into_inner())
}

#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the stored mapping document is invalid: {0}")]
    InvalidMapping(String),
    #[error("signing key: {0}")]
    Key(String),
}

impl Access {
    /// Load everything from the database. Feed entries written while loading are
    /// re-applied afterwards (reloads are idempotent).
    pub async fn load(store: Store) -> Result<Arc<Self>, AccessError> {
        let start_seq = store.last_change().await?;
        // sequence numbers just below the start that are not committed yet may still commit
        // (PostgreSQL hands them out at insert time): ask for them again for a while
        let window = 1000;
        let recent: std::collections::HashSet<i64> = store
            .changes_since(start_seq - window, &[], window)
            .await?
            .into_iter()
            .map(|c| c.seq)
            .collect();
        let initial_gaps: Vec<i64> = ((start_seq - window + 1).max(1)..=start_seq)
            .filter(|s| !recent.contains(s))
            .collect();
        let local = store.local_writes();
        let local_tokens = store.local_token_writes();
        let mut dir = Directory::default();
        let mut pending: Vec<(String, directory::GroupRecord, Vec<directory::Member>)> = Vec::new();
        let mut members: HashMap<String, Vec<directory::Member>> = HashMap::new();
        store
            .load_directory(
                |u| dir.upsert_user(u),
                |g| pending.push((g.id.clone(), g, Vec::new())),
                |gid, m| members.entry(gid).or_default().push(m),
            )
            .await?;
        for (id, g, _) in pending {
            let m = members.remove(&id).unwrap_or_default();
            dir.set_group(g, &m);
        }
        let mapping = Self::read_mapping(&store).await?;
        let tokens = Self::read_tokens(&store).await?;
        let keys = KeySet::load(&store).await?;
        Ok(Arc::new(Self {
            store,
            directory: RwLock::new(dir),
            mapping: RwLock::new(Arc::new(mapping)),
            tokens: RwLock::new(tokens),
            keys: RwLock::new(Arc::new(keys)),
            feed: tokio::sync::Mutex::new(FeedState::new(start_seq, &initial_gaps)),
            applied_local: AtomicU64::new(local),
            applied_tokens: AtomicU64::new(local_tokens),
            catch_ups_started: AtomicU64::new(0),
            catch_ups_finished: AtomicU64::new(0),
            catch_ups_failed: AtomicU64::new(0),
            catch_up_ended: tokio::sync::watch::Sender::new(0),
            barriers: AtomicU64::new(0),
            next_paced: AtomicU64::new(0),
            created: std::time::Instant::now(),
            user_docs: OnceLock::new(),
        }))
    }

    async fn read_mapping(store: &Store) -> Result<Mapping, AccessError> {
        let Some((version, doc)) = store.get_mapping().await? else {
            let compiled = CompiledMapping::new(MappingDocument::default())
                .map_err(|p| AccessError::InvalidMapping(format!("{p:?}")))?;
            return Ok(Mapping::new(0, compiled));
        };
        let doc = crate::roles::document::parse_json(doc).map_err(|problems| {
            AccessError::InvalidMapping(
                problems
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; "),
            )
        })?;
        let compiled = CompiledMapping::new(doc).map_err(|p| {
            AccessError::InvalidMapping(
                p.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; "),
            )
        })?;
        Ok(Mapping::new(version, compiled))
    }

    async fn read_tokens(
        store: &Store,
    ) -> Result<HashMap<String, crate::auth::Credential>, AccessError> {
        Ok(store
            .list_tokens()
            .await?
            .into_iter()
            .map(|t| (t.id.clone(), crate::auth::Credential::from(&t)))
            .collect())
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Catch up with this process's own writes before answering (cheap when nothing moved).
    pub async fn fresh(&self) -> Result<(), AccessError> {
        if self.store.local_writes() != self.applied_local.load(Ordering::Acquire) {
            self.catch_up().await?;
        }
        Ok(())
    }

    /// Catch up only if this process changed a token since the last catch-up (for
    /// authentication, which needs nothing else from the view).
    pub async fn fresh_tokens(&self) -> Result<(), AccessError> {
        if self.store.local_token_writes() != self.applied_tokens.load(Ordering::Acquire) {
            self.catch_up().await?;
        }
        Ok(())
    }

    /// Apply every feed entry not yet applied.
    pub async fn catch_up(&self) -> Result<(), AccessError> {
        let feed = self.feed.lock().await;
        self.catch_up_locked(feed).await
    }

    async fn catch_up_locked(
        &self,
        mut feed: tokio::sync::MutexGuard<'_, FeedState>,
    ) -> Result<(), AccessError> {
        let number = self.catch_ups_started.fetch_add(1, Ordering::SeqCst) + 1;
        let local = self.store.local_writes();
        let local_tokens = self.store.local_token_writes();
        let applied = feed::apply_pending(self, &mut feed).await;
        if applied.is_ok() {
            self.applied_local.store(local, Ordering::Release);
            self.applied_tokens.store(local_tokens, Ordering::Release);
            self.catch_ups_finished.fetch_max(number, Ordering::SeqCst);
        } else {
            self.catch_ups_failed.fetch_max(number, Ordering::SeqCst);
        }
        drop(feed);
        self.catch_up_ended.send_modify(|n| *n += 1);
        applied
    }

    /// Return once the directory holds every change committed to the database before this
    /// call, whichever server made it: once a catch-up that started after the call has
    /// finished (its feed query sees every transaction committed before it began).
    ///
    /// Concurrent callers share catch-ups, as a group commit shares a disk flush: a caller
    /// that finds no catch-up running starts one; the others wait for it to end (all woken
    /// at once), and those that arrived after it started start the next one, for all of
    /// them. Under load one feed query (usually answering "nothing new") serves every read
    /// that arrived while the previous one ran.
    pub async fn barrier(&self) -> Result<(), AccessError> {
        self.barriers.fetch_add(1, Ordering::Relaxed);
        let mut ended = self.catch_up_ended.subscribe();
        let needed = self.catch_ups_started.load(Ordering::SeqCst) + 1;
        loop {
            ended.borrow_and_update();
            if self.catch_ups_finished.load(Ordering::SeqCst) >= needed {
                return Ok(());
            }
            // a catch-up that started after the call failed: the database is not answering,
            // and this read says so now rather than queue for the next attempt
            if self.catch_ups_failed.load(Ordering::SeqCst) >= needed {
                return Err(AccessError::Store(StoreError::Unavailable(
                    sqlx::Error::Protocol("the change feed could not be read".into()),
                )));
            }
            match self.feed.try_lock() {
                // started now, so after the call: its end is what we wait for
                Ok(feed) => return self.catch_up_locked(feed).await,
                Err(_) => {
                    // one is running; when it ends, it may be one that started after the
                    // call, or the next may be ours to start
                    if ended.changed().await.is_err() {
                        // cannot happen (`self` holds the sender); wait for a catch-up of
                        // our own rather than answer without one
                        return self.catch_up().await;
                    }
                }
            }
        }
    }

    /// A read barrier for what anyone can ask for (a token id this server does not know,
    /// which might be one created a moment ago elsewhere): such barriers start at most about
    /// once per `every`. A caller waits for the next slot, then for a barrier, so a flood of
    /// made-up ids costs the database a feed query or two per `every` (an audit measured
    /// 4,500-7,000 a second without this), and a token just created by another process is
    /// accepted after at most `every` more.
    pub async fn paced_barrier(&self, every: Duration) -> Result<(), AccessError> {
        let nanos = |d: Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        let now = nanos(self.created.elapsed());
        let next = self.next_paced.load(Ordering::Acquire);
        if next > now {
            tokio::time::sleep(Duration::from_nanos(next - now)).await;
        }
        let now = nanos(self.created.elapsed());
        self.next_paced
            .fetch_max(now.saturating_add(nanos(every)), Ordering::AcqRel);
        self.barrier().await
    }

    /// How many catch-ups and read barriers there have been (for `/metrics`).
    pub fn feed_stats(&self) -> FeedStats {
        FeedStats {
            catch_ups: self.catch_ups_started.load(Ordering::Relaxed),
            barriers: self.barriers.load(Ordering::Relaxed),
        }
    }

    /// Follow the change feed until the process ends.
    pub fn spawn_follower(self: &Arc<Self>, every: Duration) -> tokio::task::JoinHandle<()> {
        let me = Arc::clone(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if let Err(e) = me.catch_up().await {
                    tracing::warn!(error = %e, "change feed: catch-up failed; retrying");
                }
            }
        })
    }

    pub fn mapping(&self) -> Arc<Mapping> {
        Arc::clone(&read(&self.mapping))
    }

    pub fn keys(&self) -> Arc<KeySet> {
        Arc::clone(&read(&self.keys))
    }

    /// `f` of the token row for an id, from memory (without copying the row).
    pub fn with_token<R>(
        &self,
        id: &str,
        f: impl FnOnce(&crate::auth::Credential) -> R,
    ) -> Option<R> {
        read(&self.tokens).get(id).map(f)
    }

    pub(crate) fn directory(&self) -> RwLockReadGuard<'_, Directory> {
        read(&self.directory)
    }

    pub(crate) fn directory_mut(&self) -> RwLockWriteGuard<'_, Directory> {
        write(&self.directory)
    }

    pub(crate) async fn reload_mapping(&self) -> Result<(), AccessError> {
        let m = Self::read_mapping(&self.store).await?;
        *write(&self.mapping) = Arc::new(m);
        Ok(())
    }

    pub(crate) async fn reload_tokens(&self) -> Result<(), AccessError> {
        let t = Self::read_tokens(&self.store).await?;
        *write(&self.tokens) = t;
        Ok(())
    }

    pub(crate) async fn reload_keys(&self) -> Result<(), AccessError> {
        let k = KeySet::load(&self.store).await?;
        *write(&self.keys) = Arc::new(k);
        Ok(())
    }
}

/// A deterministic pseudo-random picker for randomized tests: each call `next(n)` gives a
/// number in `0..n` (splitmix64 from `seed`).
#[cfg(test)]
pub(crate) fn test_picker(mut seed: u64) -> impl FnMut(usize) -> usize {
    move |n: usize| {
        seed = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = seed;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        ((z ^ (z >> 31)) % n as u64) as usize
    }
}

#[cfg(test)]
mod barrier_tests {
    use super::*;
    use crate::scim::key::UserKey;
    use crate::store::{Actor, StoreOptions};
    use serde_json::json;

    async fn store_on(url: &str) -> Store {
        let store = Store::connect(url, &StoreOptions::default()).await.unwrap();
        store.migrate().await.unwrap();
        store
    }

    fn knows(access: &Access, user_name: &str) -> bool {
        access
            .directory()
            .user_index_by(UserKey::UserName(user_name))
            .is_some()
    }

    /// With the database gone, barriers answer with an error at once (the read is a 503)
    /// instead of queueing behind catch-up after failing catch-up.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn barriers_fail_promptly_when_the_feed_cannot_be_read() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/f.db", dir.path().display());
        let store = store_on(&url).await;
        let access = Access::load(store.clone()).await.unwrap();
        access.barrier().await.unwrap();
        store.close().await;
        let started = std::time::Instant::now();
        let all = futures_util::future::join_all((0..32).map(|_| access.barrier())).await;
        assert!(all.iter().all(Result::is_err), "{all:?}");
        assert!(
            started.elapsed() < std::time::Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
    }

    /// A catch-up that fails half-way (here: the token table unreadable while the batch
    /// names a new token) applies that batch again next time; it used to move past it,
    /// and what the batch named (a token revoked, a user deactivated) was never applied.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_catch_up_is_applied_again() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/r.db", dir.path().display());
        let mine = store_on(&url).await;
        let other = store_on(&url).await;
        let access = Access::load(mine.clone()).await.unwrap();
        let (row, _secret) = crate::auth::generate("late", crate::auth::Scope::Scim).unwrap();
        let id = row.id.clone();
        other.create_token(&row, &Actor::cli()).await.unwrap();
        let mut raw = <sqlx::AnyConnection as sqlx::Connection>::connect(&url)
            .await
            .unwrap();
        sqlx::query("ALTER TABLE api_tokens RENAME TO api_tokens_away")
            .execute(&mut raw)
            .await
            .unwrap();
        assert!(access.catch_up().await.is_err());
        assert!(access.with_token(&id, |_| ()).is_none());
        sqlx::query("ALTER TABLE api_tokens_away RENAME TO api_tokens")
            .execute(&mut raw)
            .await
            .unwrap();
        access.catch_up().await.unwrap();
        assert!(
            access.with_token(&id, |_| ()).is_some(),
            "the batch that failed was skipped"
        );
    }

    /// Another writer's change (a second store on the same database, as another server
    /// would be): `fresh` does not see it, a barrier does, and concurrent barriers share
    /// catch-ups.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_barrier_sees_what_others_committed_before_it() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/b.db", dir.path().display());
        let mine = store_on(&url).await;
        let other = store_on(&url).await;
        let access = Access::load(mine).await.unwrap();
        let user =
            |name: &str| json!({"schemas": [crate::scim::schema::USER_SCHEMA], "userName": name});

        crate::provision::create_user(&other, user("alice"), &Actor::cli())
            .await
            .unwrap();
        access.fresh().await.unwrap();
        assert!(
            !knows(&access, "alice"),
            "fresh applies this process's writes only"
        );
        access.barrier().await.unwrap();
        assert!(knows(&access, "alice"));

        // every one of many concurrent barriers returns with the change applied, and they
        // need far fewer catch-ups than there are barriers
        crate::provision::create_user(&other, user("bob"), &Actor::cli())
            .await
            .unwrap();
        let before = access.catch_ups_started.load(Ordering::SeqCst);
        // a catch-up "running" (the feed lock held) while they arrive
        let running = access.feed.lock().await;
        let barriers: Vec<_> = (0..64)
            .map(|_| {
                let access = Arc::clone(&access);
                tokio::spawn(async move {
                    access.barrier().await.unwrap();
                    knows(&access, "bob")
                })
            })
            .collect();
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        // ... which ends (as `catch_up_locked` ends one) before any of them started
        drop(running);
        access.catch_up_ended.send_modify(|n| *n += 1);
        for seen in futures_util::future::join_all(barriers).await {
            assert!(seen.unwrap());
        }
        let catch_ups = access.catch_ups_started.load(Ordering::SeqCst) - before;
        assert!(
            (1..=2).contains(&catch_ups),
            "{catch_ups} catch-ups for 64 barriers"
        );
    }
}
