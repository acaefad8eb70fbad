//! SCIM reads of one user, answered from memory whenever the directory can be proved current.
//!
//! An IdP looks a user up by `userName`, `externalId` or `id` before nearly every write, and
//! reads users back by id; each of those was a database round trip. First the directory is
//! brought up to date as of the request:
//!
//! - a server that is the only one writing to its database (SQLite: one `rolecall serve` per
//!   database file, enforced at start-up) applies its own writes ([`Access::fresh`]): no
//!   database read at all;
//! - a server that shares its database with others (PostgreSQL replicas) waits for a read
//!   barrier ([`Access::barrier`]): a catch-up with the change feed that started after the
//!   request arrived, so that every write committed before it, by any server, is applied.
//!   Concurrent reads share one feed query, which is why this is cheaper under load than a
//!   query per read, and it costs a feed query (an index probe past the last entry applied)
//!   where a read cost the user's row.
//!
//! The directory alone then says whether such a user exists, and which one. Its document
//! comes from a bounded cache of user rows recently written or read here. A cached row is
//! used only while it is provably current:
//!
//! - its `meta.version` equals the version the directory holds for the user (every change to
//!   a user's document moves the version, and reaches the directory through the change
//!   feed), and
//! - its direct groups (ids and display names, which a user's document shows but which
//!   change without moving the user's version) are exactly the directory's.
//!
//! Anything else (no cached row, or a stale one) is a miss, and the read goes to the
//! database as before (and refills the cache).
//!
//! A cached user also keeps its default rendering (the JSON of the whole resource for the
//! base URL last asked for), made by the HTTP layer on first use: the rendering is a function
//! of the row and the base URL, so it is exactly as current as the row.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use super::directory::GroupRecord;
use super::{Access, AccessError};
use crate::scim::key::UserKey;
use crate::store::{GroupRef, UserRow};

/// A user row kept for reads, with its default rendering once one was asked for.
#[derive(Debug)]
pub struct CachedUser {
    pub row: UserRow,
    /// (base URL, JSON text) of the last rendering.
    text: Mutex<Option<(String, Arc<str>)>>,
    /// What it counts against the cache's byte budget: see [`row_cost`].
    cost: usize,
}

impl CachedUser {
    fn new(row: UserRow) -> Self {
        Self {
            cost: row_cost(&row),
            row,
            text: Mutex::new(None),
        }
    }

    /// The rendering of the row for `base`: kept from an earlier call with the same base, or
    /// made now by `render` (and kept).
    pub fn text_for(&self, base: &str, render: impl FnOnce(&UserRow) -> String) -> Arc<str> {
        let mut text = self.text.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((b, t)) = text.as_ref() {
            if b == base {
                return Arc::clone(t);
            }
        }
        let t: Arc<str> = Arc::from(render(&self.row));
        *text = Some((base.to_string(), Arc::clone(&t)));
        t
    }
}

/// How a server makes sure its directory has every write committed before a read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    /// This server is the only writer: applying its own writes is enough.
    OwnWrites,
    /// Other servers write to the database too: a read barrier on the change feed.
    Barrier,
}

/// About the memory a JSON value takes as a `Value` tree: a node per value, the strings'
/// bytes, and a map entry's key and bookkeeping.
fn value_bytes(v: &serde_json::Value) -> usize {
    use serde_json::Value;
    std::mem::size_of::<Value>()
        + match v {
            Value::String(s) => s.capacity(),
            Value::Array(a) => a.iter().map(value_bytes).sum(),
            Value::Object(o) => members_bytes(o),
            _ => 0,
        }
}

/// [`value_bytes`] of an object's members.
fn members_bytes(o: &serde_json::Map<String, serde_json::Value>) -> usize {
    o.iter()
        .map(|(k, v)| MAP_ENTRY + k.capacity() + value_bytes(v))
        .sum()
}

/// A JSON object's bookkeeping per member, besides its key's bytes and its value.
const MAP_ENTRY: usize = 3 * std::mem::size_of::<usize>() + 16;

/// What a cached row counts against the byte budget: the row (its document as a tree, its
/// groups and strings) and as much again for its rendering, which is made on first use and is
/// about as large as the document it renders (a tree takes more than its JSON text, and the
/// rendering adds locations per group).
fn row_cost(row: &UserRow) -> usize {
    let groups: usize = row
        .groups
        .iter()
        .map(|g| std::mem::size_of::<GroupRef>() + g.id.capacity() + g.display.capacity())
        .sum();
    let doc = members_bytes(&row.doc);
    std::mem::size_of::<CachedUser>()
        + row.id.capacity()
        + row.created.capacity()
        + row.last_modified.capacity()
        + 2 * (doc + groups)
}

/// User rows by id, at most `capacity` of them and about `budget` bytes (see [`row_cost`]),
/// the oldest inserted evicted first.
pub(crate) struct UserDocs {
    capacity: usize,
    budget: usize,
    /// How the directory is brought up to date before a read: true for
    /// [`Freshness::OwnWrites`]; set false for good by [`Access::fall_back_to_barriers`].
    own_writes: std::sync::atomic::AtomicBool,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    rows: HashMap<Arc<str>, Arc<CachedUser>>,
    /// Ids in insertion order (each id once; replacing a row keeps its place).
    order: VecDeque<Arc<str>>,
    /// The rows' costs, summed.
    bytes: usize,
}

impl Inner {
    fn remove(&mut self, id: &str) {
        if let Some(gone) = self.rows.remove(id) {
            self.bytes -= gone.cost;
            self.order.retain(|o| **o != *id);
        }
    }

    /// Drop the oldest rows until `room` more bytes and one more row fit.
    fn make_room(&mut self, room: usize, capacity: usize, budget: usize) {
        while !self.rows.is_empty() && (self.rows.len() >= capacity || self.bytes + room > budget) {
            let Some(old) = self.order.pop_front() else {
                break;
            };
            if let Some(gone) = self.rows.remove(&old) {
                self.bytes -= gone.cost;
            }
        }
    }
}

impl UserDocs {
    pub(crate) fn new(capacity: usize, budget: usize, freshness: Freshness) -> Self {
        Self {
            capacity: capacity.max(1),
            budget,
            own_writes: std::sync::atomic::AtomicBool::new(freshness == Freshness::OwnWrites),
            inner: Mutex::new(Inner::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn get(&self, id: &str) -> Option<Arc<CachedUser>> {
        self.lock().rows.get(id).cloned()
    }

    fn put(&self, row: &UserRow) {
        let mut inner = self.lock();
        let replaces = match inner.rows.get(row.id.as_str()) {
            // never replace a row with an older version of itself (a slow read racing a
            // write), nor with the same row (which would drop its rendering)
            Some(old)
                if !(old.row.version < row.version
                    || (old.row.version == row.version && old.row.groups != row.groups)) =>
            {
                return
            }
            found => found.is_some(),
        };
        let new = Arc::new(CachedUser::new(row.clone()));
        if new.cost > self.budget {
            // larger than the whole cache: not kept (nor its older version); its reads go to
            // the database
            if replaces {
                inner.remove(row.id.as_str());
            }
            return;
        }
        let cost = new.cost;
        if let Some(slot) = inner.rows.get_mut(row.id.as_str()) {
            // the newer row takes the older one's place
            let old = std::mem::replace(slot, new).cost;
            inner.bytes = inner.bytes - old + cost;
            inner.make_room(0, usize::MAX, self.budget);
            return;
        }
        inner.make_room(cost, self.capacity, self.budget);
        let id: Arc<str> = Arc::from(row.id.as_str());
        inner.bytes += cost;
        inner.order.push_back(Arc::clone(&id));
        inner.rows.insert(id, new);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().rows.len()
    }
}

/// A read of one user answered from memory.
#[derive(Debug)]
pub enum UserRead {
    /// The user, exactly as the database has it now.
    Found(Arc<CachedUser>),
    /// No user has that key.
    Absent,
}

/// Do `cached` (from the database, in its order) and `current` (the directory's) name the
/// same groups with the same display names?
fn same_groups<'a>(cached: &[GroupRef], current: impl Iterator<Item = &'a GroupRecord>) -> bool {
    // a scan per group for the usual handful, a map for users in many groups
    let index: Option<HashMap<&str, &str>> = (cached.len() > 16).then(|| {
        cached
            .iter()
            .map(|c| (c.id.as_str(), c.display.as_str()))
            .collect()
    });
    let mut n = 0;
    for g in current {
        n += 1;
        let found = match &index {
            Some(map) => map.get(g.id.as_str()) == Some(&g.display_name.as_str()),
            None => cached
                .iter()
                .any(|c| c.id == g.id && c.display == g.display_name),
        };
        if n > cached.len() || !found {
            return false;
        }
    }
    // a user is in a group at most once, so equal counts and inclusion mean equal sets
    n == cached.len()
}

impl Access {
    /// Answer SCIM reads of single users from memory from now on, keeping up to `capacity`
    /// user rows (0: never), made current as `freshness` says before each read.
    pub fn serve_user_reads(&self, capacity: usize, budget: usize, freshness: Freshness) {
        if capacity > 0 && budget > 0 {
            let _ = self
                .user_docs
                .set(UserDocs::new(capacity, budget, freshness));
        }
    }

    /// From now on, single-user reads wait for a read barrier even if they did not before:
    /// this server can no longer be sure it is the only one writing (see `store::pg_lock`).
    pub fn fall_back_to_barriers(&self) {
        if let Some(docs) = self.user_docs.get() {
            docs.own_writes
                .store(false, std::sync::atomic::Ordering::Release);
        }
    }

    /// Whether single-user reads are answered after this server's own writes only.
    pub fn reads_own_writes_only(&self) -> bool {
        self.user_docs
            .get()
            .is_some_and(|d| d.own_writes.load(std::sync::atomic::Ordering::Acquire))
    }

    /// The user `key` names, from memory: `Ok(None)` when memory cannot answer (reads from
    /// memory are off, or the user's row is not cached or not current), and the caller asks
    /// the database.
    pub async fn user_from_memory(
        &self,
        key: UserKey<'_>,
    ) -> Result<Option<UserRead>, AccessError> {
        let Some(docs) = self.user_docs.get() else {
            return Ok(None);
        };
        if docs.own_writes.load(std::sync::atomic::Ordering::Acquire) {
            self.fresh().await?;
        } else {
            self.barrier().await?;
        }
        let dir = self.directory();
        let Some(i) = dir.user_index_by(key) else {
            return Ok(Some(UserRead::Absent));
        };
        let Some(rec) = dir.user_at(i) else {
            return Ok(Some(UserRead::Absent));
        };
        let Some(row) = docs.get(&rec.id) else {
            return Ok(None);
        };
        if row.row.version != rec.version
            || !same_groups(&row.row.groups, dir.direct_groups_of_index(i))
        {
            return Ok(None);
        }
        Ok(Some(UserRead::Found(row)))
    }

    /// Keep a user row just written or read from the database for later reads (a no-op
    /// unless reads from memory are on).
    pub fn remember_user(&self, row: &UserRow) {
        if let Some(docs) = self.user_docs.get() {
            docs.put(row);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Map;

    fn row(id: &str, version: i64) -> UserRow {
        UserRow {
            id: id.into(),
            active: true,
            doc: Map::new(),
            version,
            created: String::new(),
            last_modified: String::new(),
            groups: Vec::new(),
        }
    }

    #[test]
    fn the_oldest_rows_make_room() {
        let docs = UserDocs::new(2, usize::MAX, Freshness::OwnWrites);
        docs.put(&row("a", 1));
        docs.put(&row("b", 1));
        docs.put(&row("a", 2)); // replaced in place: still the oldest
        docs.put(&row("c", 1));
        assert_eq!(docs.len(), 2);
        assert!(docs.get("a").is_none());
        assert_eq!(docs.get("b").unwrap().row.version, 1);
        assert_eq!(docs.get("c").unwrap().row.version, 1);
    }

    #[test]
    fn an_older_version_never_replaces_a_newer_one() {
        let docs = UserDocs::new(4, usize::MAX, Freshness::OwnWrites);
        docs.put(&row("a", 3));
        docs.put(&row("a", 2));
        assert_eq!(docs.get("a").unwrap().row.version, 3);
        docs.put(&row("a", 4));
        assert_eq!(docs.get("a").unwrap().row.version, 4);
    }

    #[test]
    fn a_rendering_is_kept_per_base_url_and_dropped_with_its_row() {
        let docs = UserDocs::new(4, usize::MAX, Freshness::OwnWrites);
        docs.put(&row("a", 1));
        let cached = docs.get("a").unwrap();
        let mut calls = 0;
        let mut render = |base: &str| {
            cached.text_for(base, |r| {
                calls += 1;
                format!("{base}/{}@{}", r.id, r.version)
            })
        };
        assert_eq!(&*render("http://x"), "http://x/a@1");
        assert_eq!(&*render("http://x"), "http://x/a@1");
        assert_eq!(&*render("http://y"), "http://y/a@1");
        assert_eq!(calls, 2);
        // the same row again keeps the rendering; a newer one replaces both
        docs.put(&row("a", 1));
        assert!(Arc::ptr_eq(&docs.get("a").unwrap(), &cached));
        docs.put(&row("a", 2));
        let newer = docs.get("a").unwrap();
        assert_eq!(
            &*newer.text_for("http://y", |r| format!("v{}", r.version)),
            "v2"
        );
    }

    /// A row in `n` groups: its cost grows with them.
    fn in_groups(id: &str, version: i64, n: usize) -> UserRow {
        let mut r = row(id, version);
        r.doc.insert(
            "userName".into(),
            serde_json::json!(format!("{id}@example.com")),
        );
        r.groups = (0..n)
            .map(|i| {
                gref(
                    &format!("00000000-0000-0000-0000-{i:012}"),
                    &format!("group {i}"),
                )
            })
            .collect();
        r
    }

    /// The byte budget bounds the cache as the count does: the oldest rows go first, a
    /// newer version that grew makes room in its old place, and a row larger than the whole
    /// budget is not kept (its reads go to the database).
    #[test]
    fn the_byte_budget_bounds_the_cache() {
        let small = row_cost(&in_groups("a", 1, 10));
        let large = row_cost(&in_groups("a", 1, 1000));
        assert!(large > 50 * small, "{small} {large}");
        let docs = UserDocs::new(1000, 4 * small + small / 2, Freshness::OwnWrites);
        let total = |d: &UserDocs| d.lock().bytes;
        for id in ["a", "b", "c", "d", "e"] {
            docs.put(&in_groups(id, 1, 10));
        }
        // four fit, "a" made room for "e"
        assert_eq!(docs.len(), 4);
        assert!(docs.get("a").is_none());
        assert_eq!(total(&docs), 4 * small);
        // "e" grows: the oldest rows make room, as many as it takes
        let grown = row_cost(&in_groups("e", 2, 30));
        assert!(grown > 2 * small);
        docs.put(&in_groups("e", 2, 30));
        assert_eq!(docs.get("e").unwrap().row.version, 2);
        assert!(total(&docs) <= 4 * small + small / 2);
        assert!(docs.get("b").is_none());
        assert_eq!(
            docs.get("c").is_some(),
            2 * small + grown <= 4 * small + small / 2
        );
        let kept: usize = ["c", "d", "e"]
            .iter()
            .filter_map(|id| docs.get(id))
            .map(|c| c.cost)
            .sum();
        assert_eq!(kept, total(&docs));
        // larger than the budget: not kept, and its older version goes too
        docs.put(&in_groups("d", 3, 1000));
        assert!(docs.get("d").is_none());
        docs.put(&in_groups("z", 1, 1000));
        assert!(docs.get("z").is_none());
        let kept: usize = ["c", "e"]
            .iter()
            .filter_map(|id| docs.get(id))
            .map(|c| c.cost)
            .sum();
        assert_eq!(kept, total(&docs));
        let in_order = docs.lock().order.len();
        assert_eq!(in_order, docs.len());
    }

    fn gref(id: &str, display: &str) -> GroupRef {
        GroupRef {
            id: id.into(),
            display: display.into(),
        }
    }

    fn grec(id: &str, display: &str) -> GroupRecord {
        GroupRecord {
            id: id.into(),
            display_name: display.into(),
            external_id: None,
        }
    }

    #[test]
    fn groups_must_match_as_sets_with_their_names() {
        let cached = [gref("g1", "eng"), gref("g2", "legal")];
        let same = [grec("g2", "legal"), grec("g1", "eng")];
        assert!(same_groups(&cached, same.iter()));
        let renamed = [grec("g2", "Legal"), grec("g1", "eng")];
        assert!(!same_groups(&cached, renamed.iter()));
        let fewer = [grec("g1", "eng")];
        assert!(!same_groups(&cached, fewer.iter()));
        let more = [grec("g1", "eng"), grec("g2", "legal"), grec("g3", "ops")];
        assert!(!same_groups(&cached, more.iter()));
        let other = [grec("g1", "eng"), grec("g3", "legal")];
        assert!(!same_groups(&cached, other.iter()));
        assert!(same_groups(&[], std::iter::empty()));
        // many groups take the map
        let many: Vec<GroupRef> = (0..40)
            .map(|i| gref(&format!("g{i}"), &format!("n{i}")))
            .collect();
        let all: Vec<GroupRecord> = (0..40)
            .rev()
            .map(|i| grec(&format!("g{i}"), &format!("n{i}")))
            .collect();
        assert!(same_groups(&many, all.iter()));
        let mut one_renamed = all.clone();
        one_renamed[7].display_name = "x".into();
        assert!(!same_groups(&many, one_renamed.iter()));
        assert!(!same_groups(&many, all[1..].iter()));
    }
}
