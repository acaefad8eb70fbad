//! The in-memory directory: who exists, who is active, and who is in which group (nested
//! groups included). Role lookups read it instead of the database.
//!
//! Ids are interned to `u32` indexes so 1,000,000 memberships cost a few megabytes: a user
//! keeps its direct groups, a group keeps its member users, member groups and parent groups.

use std::collections::HashMap;

use crate::scim::key::UserKey;

/// A user as the directory knows it. The fields a decision reads (`id`, whose emptiness
/// marks a placeholder, and `active`) come first: see [`UserEntry`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[repr(C)]
pub struct UserRecord {
    pub id: String,
    pub active: bool,
    /// `meta.version` of the stored user (0 for a placeholder).
    pub version: i64,
    pub user_name: String,
    pub external_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupRecord {
    pub id: String,
    pub display_name: String,
    pub external_id: Option<String>,
}

/// Where role lookups keep their view of one user (see `super::lookup`): made by the first
/// lookup after a change, next to the record it is made from.
pub(crate) type ViewSlot = std::sync::Mutex<Option<super::lookup::UserView>>;

/// A user (or a placeholder for a member not loaded yet), laid out for a decision at 100,000
/// users: the key a lookup by userName compares, the change stamp, the view and the record's
/// hot fields are in the entry's first three cache lines, so finding a user and deciding
/// reads those and nothing else of the user's.
#[derive(Debug)]
#[repr(C, align(64))]
struct UserEntry {
    /// The folded userName (empty for a placeholder), compared by [`UserKeys`].
    name: KeyBytes,
    /// The generation of the last change to what the user's view is made from: its record,
    /// its groups (direct and nested) and their names.
    changed: u64,
    view: ViewSlot,
    rec: UserRecord,
    /// The id (a placeholder's too), compared by [`UserKeys`].
    id: KeyBytes,
    groups: Vec<u32>,
}

impl UserEntry {
    /// A member not loaded yet, known by its id.
    fn placeholder(id: &str, changed: u64) -> Self {
        UserEntry {
            name: KeyBytes::new(b""),
            changed,
            view: ViewSlot::default(),
            rec: UserRecord {
                id: String::new(),
                active: false,
                version: 0,
                user_name: String::new(),
                external_id: None,
            },
            id: KeyBytes::new(id.as_bytes()),
            groups: Vec::new(),
        }
    }

    /// Its key of `kind`, as [`UserKeys`] compares it.
    fn key(&self, kind: KeyKind) -> Option<&[u8]> {
        match kind {
            KeyKind::Id => Some(self.id.as_slice()),
            KeyKind::Name => Some(self.name.as_slice()),
            KeyKind::External => self.rec.external_id.as_deref().map(str::as_bytes),
        }
    }
}

#[derive(Debug)]
struct GroupEntry {
    rec: GroupRecord,
    users: Vec<u32>,
    subgroups: Vec<u32>,
    parents: Vec<u32>,
    /// Set from its own record and member list (not only named as another group's member).
    loaded: bool,
}

/// A member of a group: a user or a group, by id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Member {
    User(String),
    Group(String),
}

impl Member {
    /// A member by its `member_type` as stored (`"Group"`, else a user).
    pub fn of_type(member_type: &str, id: String) -> Self {
        match member_type {
            "Group" => Member::Group(id),
            _ => Member::User(id),
        }
    }

    pub fn id(&self) -> &str {
        match self {
            Member::User(id) | Member::Group(id) => id,
        }
    }
}

/// Which of a user's keys a string is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyKind {
    Id = 0,
    /// A userName, folded.
    Name = 1,
    External = 2,
}

/// The users a string names, per [`KeyKind`] (`u32::MAX` for none).
#[derive(Debug, Clone, Copy)]
struct Named([u32; 3]);

impl Named {
    const NONE: u32 = u32::MAX;

    fn get(&self, kind: KeyKind) -> Option<u32> {
        let i = self.0[kind as usize];
        (i != Self::NONE).then_some(i)
    }
}

/// A key as a user's entry keeps it: up to 40 bytes (a UUID, most userNames) in the entry
/// itself, so that comparing it reads nothing else; longer ones on the heap.
type KeyBytes = super::inline::InlineSlice<u8, 40>;

/// One entry of [`UserKeys`]: a user, which of its keys, and 30 bits of the key's hash.
#[derive(Debug, Clone, Copy)]
struct KeyEntry {
    user: u32,
    /// The key's fingerprint (its hash with the low 2 bits clear) with its [`KeyKind`] in
    /// those 2 bits.
    tag: u32,
}

impl KeyEntry {
    const KIND_BITS: u32 = 0b11;

    fn kind(self) -> KeyKind {
        match self.tag & Self::KIND_BITS {
            0 => KeyKind::Id,
            1 => KeyKind::Name,
            _ => KeyKind::External,
        }
    }

    fn fingerprint(self) -> u32 {
        self.tag & !Self::KIND_BITS
    }

    /// Is this `key`, by the user's entry in `users`?
    fn is(self, users: &[UserEntry], key: &[u8]) -> bool {
        matches!(users.get(self.user as usize), Some(u) if u.key(self.kind()) == Some(key))
    }
}

/// The users' three keys (ids, folded userNames, externalIds) in one table, so that a lookup
/// by any key probes it once: it behaves as one map per [`KeyKind`] (a key of a kind names
/// the user that last took it). The table holds 8 bytes per key, not the keys: their bytes
/// are compared in the users' entries, which a lookup reads next anyway. At 100,000 users it
/// is 4.5 MB, where a map holding the keys took 32 MB and a cache miss of its own per lookup.
#[derive(Debug, Default)]
struct UserKeys {
    table: hashbrown::HashTable<KeyEntry>,
    /// SipHash with a random key, as `std`'s maps use: keys come from the IdP and lookups.
    state: std::collections::hash_map::RandomState,
    /// Entries per kind.
    counts: [usize; 3],
}

impl UserKeys {
    fn fingerprint(&self, key: &[u8]) -> u32 {
        use std::hash::BuildHasher;
        (self.state.hash_one(key) >> 32) as u32 & !KeyEntry::KIND_BITS
    }

    /// The table's hash of a fingerprint: its 30 bits spread over 64 (an odd multiplier is a
    /// bijection on the low bits, which pick the bucket; the high ones are hashbrown's tag).
    /// Made from the fingerprint alone, so the table grows without reading any key.
    fn spread(fingerprint: u32) -> u64 {
        u64::from(fingerprint >> 2).wrapping_mul(0x9e37_79b9_7f4a_7c15)
    }

    /// Every kind of user `key` names, in one probe.
    fn named(&self, users: &[UserEntry], key: &[u8]) -> Named {
        let fp = self.fingerprint(key);
        let mut named = Named([Named::NONE; 3]);
        for e in self.table.iter_hash(Self::spread(fp)) {
            if e.fingerprint() == fp && e.is(users, key) {
                named.0[e.kind() as usize] = e.user;
            }
        }
        named
    }

    fn get(&self, users: &[UserEntry], kind: KeyKind, key: &str) -> Option<u32> {
        self.named(users, key.as_bytes()).get(kind)
    }

    /// `key` of `kind` now names user `i`, whose entry holds it; returns the user it named.
    fn insert(&mut self, users: &[UserEntry], kind: KeyKind, key: &[u8], i: u32) -> Option<u32> {
        let tag = self.fingerprint(key) | kind as u32;
        let hash = Self::spread(tag);
        if let Some(e) = self
            .table
            .find_mut(hash, |e| e.tag == tag && e.is(users, key))
        {
            return Some(std::mem::replace(&mut e.user, i));
        }
        self.table
            .insert_unique(hash, KeyEntry { user: i, tag }, |e| {
                Self::spread(e.fingerprint())
            });
        self.counts[kind as usize] += 1;
        None
    }

    /// `key` of `kind` names no one now; returns the user it named. Called while the user's
    /// entry still holds the key.
    fn remove(&mut self, users: &[UserEntry], kind: KeyKind, key: &[u8]) -> Option<u32> {
        let tag = self.fingerprint(key) | kind as u32;
        let found = self
            .table
            .find_entry(Self::spread(tag), |e| e.tag == tag && e.is(users, key))
            .ok()?;
        let (e, _) = found.remove();
        self.counts[kind as usize] -= 1;
        Some(e.user)
    }

    fn count(&self, kind: KeyKind) -> usize {
        self.counts[kind as usize]
    }

    #[cfg(test)]
    fn iter<'u>(
        &'u self,
        users: &'u [UserEntry],
        kind: KeyKind,
    ) -> impl Iterator<Item = (&'u str, u32)> + 'u {
        self.table
            .iter()
            .filter(move |e| e.kind() == kind)
            .filter_map(|e| {
                let key = users.get(e.user as usize)?.key(e.kind())?;
                Some((std::str::from_utf8(key).ok()?, e.user))
            })
    }
}

#[derive(Debug, Default)]
pub struct Directory {
    /// Ids (of users and of placeholders for members not loaded yet), folded userNames and
    /// externalIds.
    keys: UserKeys,
    /// By index; a removed user's entry is a placeholder with no id.
    users: Vec<UserEntry>,
    group_idx: HashMap<String, u32>,
    groups: Vec<Option<GroupEntry>>,
    /// Bumped by every change; a user's view is good if made at or after the user's `changed`.
    generation: u64,
}

fn remove_item(v: &mut Vec<u32>, x: u32) {
    if let Some(pos) = v.iter().position(|&y| y == x) {
        v.swap_remove(pos);
    }
}

impl Directory {
    pub fn user_count(&self) -> usize {
        self.keys.count(KeyKind::Id)
    }

    pub fn group_count(&self) -> usize {
        self.group_idx.len()
    }

    fn intern_group(&mut self, id: &str) -> u32 {
        if let Some(&i) = self.group_idx.get(id) {
            return i;
        }
        let i = self.groups.len() as u32;
        self.groups.push(None);
        self.group_idx.insert(id.to_string(), i);
        i
    }

    /// The index of the user (or placeholder) with id `id`, made a placeholder if new.
    fn intern_user(&mut self, id: &str) -> u32 {
        if let Some(i) = self.keys.get(&self.users, KeyKind::Id, id) {
            return i;
        }
        let i = self.users.len() as u32;
        self.users.push(UserEntry::placeholder(id, self.generation));
        self.keys.insert(&self.users, KeyKind::Id, id.as_bytes(), i);
        i
    }

    /// Take the userName and externalId keys of the user at `i` out of the index (its entry
    /// still holds them).
    fn unindex_names(&mut self, i: u32) {
        let Some(old) = self.users.get(i as usize) else {
            return;
        };
        self.keys
            .remove(&self.users, KeyKind::Name, old.name.as_slice());
        if let Some(e) = &old.rec.external_id {
            self.keys
                .remove(&self.users, KeyKind::External, e.as_bytes());
        }
    }

    /// Insert or update a user; its memberships are kept.
    pub fn upsert_user(&mut self, rec: UserRecord) {
        self.generation += 1;
        let i = self.intern_user(&rec.id);
        self.unindex_names(i);
        let name = rec.user_name.to_lowercase();
        let generation = self.generation;
        let Some(entry) = self.users.get_mut(i as usize) else {
            return;
        };
        entry.name = KeyBytes::new(name.as_bytes());
        entry.rec = rec;
        entry.changed = generation;
        entry.view = ViewSlot::default();
        self.keys
            .insert(&self.users, KeyKind::Name, name.as_bytes(), i);
        if let Some(e) = self
            .users
            .get(i as usize)
            .and_then(|u| u.rec.external_id.as_deref())
        {
            self.keys
                .insert(&self.users, KeyKind::External, e.as_bytes(), i);
        }
    }

    /// Remove a user and its memberships.
    pub fn remove_user(&mut self, id: &str) {
        self.generation += 1;
        let Some(i) = self.keys.get(&self.users, KeyKind::Id, id) else {
            return;
        };
        self.unindex_names(i);
        self.keys.remove(&self.users, KeyKind::Id, id.as_bytes());
        let Some(entry) = self.users.get_mut(i as usize) else {
            return;
        };
        // vacant: no id, so no key names it and it is no one's placeholder
        let old = std::mem::replace(entry, UserEntry::placeholder("", self.generation));
        for g in old.groups {
            if let Some(Some(group)) = self.groups.get_mut(g as usize) {
                remove_item(&mut group.users, i);
            }
        }
    }

    /// Insert or update a group with its complete member list.
    pub fn set_group(&mut self, rec: GroupRecord, members: &[Member]) {
        self.generation += 1;
        let gi = self.intern_group(&rec.id);
        // everyone in the group before the change and after it
        self.touch_members(gi);
        // detach the old members
        if let Some(old) = self.groups[gi as usize].take() {
            for u in &old.users {
                if let Some(user) = self.users.get_mut(*u as usize) {
                    remove_item(&mut user.groups, gi);
                }
            }
            for sg in &old.subgroups {
                if let Some(Some(sub)) = self.groups.get_mut(*sg as usize) {
                    remove_item(&mut sub.parents, gi);
                }
            }
            self.groups[gi as usize] = Some(GroupEntry {
                rec: rec.clone(),
                users: Vec::new(),
                subgroups: Vec::new(),
                parents: old.parents,
                loaded: true,
            });
        } else {
            self.groups[gi as usize] = Some(GroupEntry {
                rec: rec.clone(),
                users: Vec::new(),
                subgroups: Vec::new(),
                parents: Vec::new(),
                loaded: true,
            });
        }
        let mut users = Vec::new();
        let mut subgroups = Vec::new();
        for m in members {
            match m {
                Member::User(id) => {
                    // a membership may arrive before its user; the user entry fills in later
                    let ui = self.intern_user(id);
                    if let Some(user) = self.users.get_mut(ui as usize) {
                        user.groups.push(gi);
                    }
                    users.push(ui);
                }
                Member::Group(id) => {
                    let si = self.intern_group(id);
                    self.add_parent(si, id, gi);
                    subgroups.push(si);
                }
            }
        }
        if let Some(Some(g)) = self.groups.get_mut(gi as usize) {
            g.users = users;
            g.subgroups = subgroups;
        }
        self.touch_members(gi);
    }

    /// Apply one group change as a delta: its record after the change and the members it
    /// added (`true`) and removed (`false`), in order. Adding a member twice or removing a
    /// non-member changes nothing, so a change already reflected here can be applied again.
    /// Returns false, changing nothing, when the group is not loaded here (the caller
    /// reloads it instead).
    pub fn change_group(&mut self, rec: GroupRecord, ops: &[(bool, Member)]) -> bool {
        let Some(&gi) = self.group_idx.get(&rec.id) else {
            return false;
        };
        match self.groups.get(gi as usize) {
            Some(Some(g)) if g.loaded => {}
            _ => return false,
        }
        self.generation += 1;
        // each op is an assignment, so the last one for a member decides
        let mut last: HashMap<&Member, bool> = HashMap::with_capacity(ops.len());
        for (add, m) in ops {
            last.insert(m, *add);
        }
        let nesting = last.keys().any(|m| matches!(m, Member::Group(_)));
        let renamed = self.groups[gi as usize]
            .as_ref()
            .is_some_and(|g| g.rec != rec);
        if nesting || renamed {
            // the users of this group and of the groups inside it see a different tree
            self.touch_members(gi);
        }
        // users removed, taken out of the group's list in one pass at the end
        let mut gone: std::collections::HashSet<u32> = std::collections::HashSet::new();
        for (m, add) in last {
            match (add, m) {
                (true, Member::User(id)) => {
                    let ui = self.intern_user(id);
                    // (a membership may arrive before its user: a placeholder takes it)
                    let joined = match self.users.get_mut(ui as usize) {
                        Some(user) => {
                            user.changed = self.generation;
                            let joined = !user.groups.contains(&gi);
                            if joined {
                                user.groups.push(gi);
                            }
                            joined
                        }
                        _ => false,
                    };
                    if joined {
                        if let Some(Some(g)) = self.groups.get_mut(gi as usize) {
                            g.users.push(ui);
                        }
                    }
                }
                (false, Member::User(id)) => {
                    let Some(ui) = self.keys.get(&self.users, KeyKind::Id, id) else {
                        continue;
                    };
                    if let Some(user) = self.users.get_mut(ui as usize) {
                        if user.groups.contains(&gi) {
                            remove_item(&mut user.groups, gi);
                            user.changed = self.generation;
                            gone.insert(ui);
                        }
                    }
                }
                (true, Member::Group(id)) => {
                    let si = self.intern_group(id);
                    let already = self.groups[gi as usize]
                        .as_ref()
                        .is_some_and(|g| g.subgroups.contains(&si));
                    if already {
                        continue;
                    }
                    self.add_parent(si, id, gi);
                    if let Some(Some(g)) = self.groups.get_mut(gi as usize) {
                        g.subgroups.push(si);
                    }
                }
                (false, Member::Group(id)) => {
                    let Some(&si) = self.group_idx.get(id.as_str()) else {
                        continue;
                    };
                    if let Some(Some(g)) = self.groups.get_mut(gi as usize) {
                        remove_item(&mut g.subgroups, si);
                    }
                    if let Some(Some(sub)) = self.groups.get_mut(si as usize) {
                        remove_item(&mut sub.parents, gi);
                    }
                }
            }
        }
        if let Some(Some(g)) = self.groups.get_mut(gi as usize) {
            if !gone.is_empty() {
                g.users.retain(|u| !gone.contains(u));
            }
            g.rec = rec;
        }
        if nesting || renamed {
            self.touch_members(gi);
        }
        true
    }

    /// Mark every user in group `gi`, directly or through nesting, as changed now.
    fn touch_members(&mut self, gi: u32) {
        let mut seen: Vec<u32> = Vec::new();
        let mut stack = vec![gi];
        while let Some(g) = stack.pop() {
            if seen.contains(&g) {
                continue;
            }
            seen.push(g);
            let Some(Some(group)) = self.groups.get(g as usize) else {
                continue;
            };
            stack.extend(group.subgroups.iter().copied());
            for &u in &group.users {
                if let Some(user) = self.users.get_mut(u as usize) {
                    user.changed = self.generation;
                }
            }
        }
    }

    /// Group `si` (id `id`) is now a member of group `gi`; a group not loaded yet gets a
    /// placeholder entry that its own record fills in later.
    fn add_parent(&mut self, si: u32, id: &str, gi: u32) {
        match self.groups.get_mut(si as usize) {
            Some(Some(sub)) => sub.parents.push(gi),
            _ => {
                self.groups[si as usize] = Some(GroupEntry {
                    rec: GroupRecord {
                        id: id.to_string(),
                        display_name: String::new(),
                        external_id: None,
                    },
                    users: Vec::new(),
                    subgroups: Vec::new(),
                    parents: vec![gi],
                    loaded: false,
                })
            }
        }
    }

    /// Remove a group: its members lose it, groups containing it lose it as a member.
    pub fn remove_group(&mut self, id: &str) {
        self.generation += 1;
        let Some(gi) = self.group_idx.remove(id) else {
            return;
        };
        self.touch_members(gi);
        if let Some(old) = self.groups[gi as usize].take() {
            for u in old.users {
                if let Some(user) = self.users.get_mut(u as usize) {
                    remove_item(&mut user.groups, gi);
                }
            }
            for sg in old.subgroups {
                if let Some(Some(sub)) = self.groups.get_mut(sg as usize) {
                    remove_item(&mut sub.parents, gi);
                }
            }
            for p in old.parents {
                if let Some(Some(parent)) = self.groups.get_mut(p as usize) {
                    remove_item(&mut parent.subgroups, gi);
                }
            }
        }
    }

    /// The index of the user `key` names (id, userName case-insensitively, or externalId).
    /// The first kind of key that names someone decides, as if each kind had its own map: a
    /// key that is some user's id finds that user (or none, for a placeholder), whatever else
    /// it is. One probe when `key` is folded already.
    pub(crate) fn find_user_index(&self, key: &str) -> Option<u32> {
        let named = self.keys.named(&self.users, key.as_bytes());
        let i = match named.get(KeyKind::Id) {
            Some(i) => i,
            None => {
                let by_name = match crate::roles::fold_cow(key) {
                    std::borrow::Cow::Borrowed(_) => named,
                    std::borrow::Cow::Owned(folded) => {
                        self.keys.named(&self.users, folded.as_bytes())
                    }
                };
                by_name
                    .get(KeyKind::Name)
                    .or_else(|| named.get(KeyKind::External))?
            }
        };
        self.user_at(i).map(|_| i)
    }

    /// The index of the user with exactly this key: an id, a userName (case-insensitively)
    /// or an externalId, as the SCIM filter `key eq "…"` means it.
    pub(crate) fn user_index_by(&self, key: UserKey<'_>) -> Option<u32> {
        let i = match key {
            UserKey::Id(id) => self.keys.get(&self.users, KeyKind::Id, id),
            UserKey::UserName(name) => self.keys.get(
                &self.users,
                KeyKind::Name,
                crate::roles::fold_cow(name).as_ref(),
            ),
            UserKey::ExternalId(e) => self.keys.get(&self.users, KeyKind::External, e),
        }?;
        self.user_at(i).map(|_| i)
    }

    /// The groups the user at `ui` is a direct member of, in no particular order.
    pub(crate) fn direct_groups_of_index(&self, ui: u32) -> impl Iterator<Item = &GroupRecord> {
        let direct = match self.users.get(ui as usize) {
            Some(user) => user.groups.as_slice(),
            _ => &[],
        };
        direct
            .iter()
            .filter_map(|g| self.groups.get(*g as usize)?.as_ref().map(|g| &g.rec))
    }

    pub(crate) fn user_at(&self, i: u32) -> Option<&UserRecord> {
        match self.users.get(i as usize) {
            Some(u) if !u.rec.id.is_empty() => Some(&u.rec),
            _ => None,
        }
    }

    /// The indexes of every user with a record.
    pub(crate) fn user_indexes(&self) -> impl Iterator<Item = u32> + '_ {
        (0..self.users.len() as u32).filter(|&i| self.user_at(i).is_some())
    }

    /// The view slot of the user at index `i`.
    pub(crate) fn view_slot(&self, i: u32) -> Option<&ViewSlot> {
        match self.users.get(i as usize) {
            Some(u) if !u.id.as_slice().is_empty() => Some(&u.view),
            _ => None,
        }
    }

    /// The group at index `i`.
    pub(crate) fn group_at(&self, i: u32) -> Option<&GroupRecord> {
        match self.groups.get(i as usize) {
            Some(Some(g)) => Some(&g.rec),
            _ => None,
        }
    }

    /// The change counter: any change to users, groups or memberships moves it.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The generation of the last change to the user at `i`, its groups (direct and nested)
    /// or their names; 0 for no such user.
    pub(crate) fn user_changed(&self, i: u32) -> u64 {
        match self.users.get(i as usize) {
            Some(u) => u.changed,
            _ => 0,
        }
    }

    /// All groups of a user, direct and through nesting (each once, cycles are safe).
    pub fn groups_of(&self, user_id: &str) -> Vec<&GroupRecord> {
        match self.keys.get(&self.users, KeyKind::Id, user_id) {
            Some(ui) => self.groups_of_index(ui),
            None => Vec::new(),
        }
    }

    /// [`Self::groups_of`] the user at index `ui`.
    pub(crate) fn groups_of_index(&self, ui: u32) -> Vec<&GroupRecord> {
        self.indexed_groups_of(ui)
            .into_iter()
            .map(|(_, g)| g)
            .collect()
    }

    /// [`Self::groups_of_index`] with each group's index.
    pub(crate) fn indexed_groups_of(&self, ui: u32) -> Vec<(u32, &GroupRecord)> {
        let Some(user) = self.users.get(ui as usize) else {
            return Vec::new();
        };
        let mut seen: Vec<u32> = Vec::with_capacity(user.groups.len() * 2);
        let mut stack: Vec<u32> = user.groups.clone();
        while let Some(g) = stack.pop() {
            if seen.contains(&g) {
                continue;
            }
            seen.push(g);
            if let Some(Some(group)) = self.groups.get(g as usize) {
                stack.extend(group.parents.iter().copied());
            }
        }
        let mut out: Vec<(u32, &GroupRecord)> = seen
            .iter()
            .filter_map(|&g| match self.groups.get(g as usize) {
                Some(Some(group))
                    if !group.rec.display_name.is_empty() || group.rec.external_id.is_some() =>
                {
                    Some((g, &group.rec))
                }
                _ => None,
            })
            .collect();
        out.sort_by(|a, b| a.1.display_name.cmp(&b.1.display_name));
        out
    }

    /// Every known group (for unmatched-rule checks and mapping diffs).
    pub fn all_groups(&self) -> impl Iterator<Item = &GroupRecord> {
        self.groups
            .iter()
            .filter_map(|g| g.as_ref().map(|g| &g.rec))
            .filter(|g| self.group_idx.contains_key(&g.id))
    }

    /// Every known user.
    pub fn all_users(&self) -> impl Iterator<Item = &UserRecord> {
        self.users
            .iter()
            .map(|u| &u.rec)
            .filter(|u| !u.id.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn find_user<'d>(d: &'d Directory, key: &str) -> Option<&'d UserRecord> {
        d.find_user_index(key).and_then(|i| d.user_at(i))
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
    fn group(id: &str, name: &str) -> GroupRecord {
        GroupRecord {
            id: id.into(),
            display_name: name.into(),
            external_id: None,
        }
    }
    fn names(d: &Directory, id: &str) -> Vec<String> {
        d.groups_of(id)
            .iter()
            .map(|g| g.display_name.clone())
            .collect()
    }

    #[test]
    fn nesting_renames_and_deletes() {
        let mut d = Directory::default();
        // memberships can arrive before users and subgroups
        d.set_group(
            group("g1", "engineering"),
            &[Member::User("u1".into()), Member::Group("g2".into())],
        );
        d.upsert_user(user("u1", "Alice@X.com", true));
        d.upsert_user(user("u2", "bob@x.com", true));
        d.set_group(group("g2", "platform"), &[Member::User("u2".into())]);
        d.set_group(group("g3", "all"), &[Member::Group("g1".into())]);
        assert_eq!(names(&d, "u1"), vec!["all", "engineering"]);
        assert_eq!(names(&d, "u2"), vec!["all", "engineering", "platform"]);
        assert_eq!(
            find_user(&d, "alice@x.com").map(|u| u.id.as_str()),
            Some("u1")
        );
        assert_eq!(find_user(&d, "ext-u2").map(|u| u.id.as_str()), Some("u2"));
        // cycle: g1 in g3 in g1
        d.set_group(
            group("g1", "engineering"),
            &[
                Member::User("u1".into()),
                Member::Group("g2".into()),
                Member::Group("g3".into()),
            ],
        );
        assert_eq!(names(&d, "u2"), vec!["all", "engineering", "platform"]);
        // rename and membership change
        d.set_group(group("g2", "platform-team"), &[]);
        assert_eq!(names(&d, "u2"), Vec::<String>::new());
        d.remove_group("g1");
        assert_eq!(names(&d, "u1"), Vec::<String>::new());
        d.upsert_user(user("u1", "alice2@x.com", false));
        assert!(find_user(&d, "alice@x.com").is_none());
        assert!(!find_user(&d, "alice2@x.com").unwrap().active);
        d.remove_user("u1");
        assert!(find_user(&d, "u1").is_none());
        assert_eq!(d.user_count(), 1);
    }

    /// What a decision reads of a user (the userName key, the change stamp, the view, the
    /// record's id and active flag) is in the entry's first three cache lines, and nothing
    /// tells a vacant entry from a live one but those.
    #[test]
    fn a_decision_reads_three_cache_lines_of_a_user() {
        use std::mem::{align_of, offset_of, size_of};
        assert_eq!(align_of::<UserEntry>(), 64);
        assert_eq!(size_of::<UserEntry>() % 64, 0);
        assert_eq!(offset_of!(UserEntry, name), 0);
        let rec = offset_of!(UserEntry, rec);
        for end in [
            offset_of!(UserEntry, changed) + size_of::<u64>(),
            offset_of!(UserEntry, view) + size_of::<ViewSlot>(),
            rec + offset_of!(UserRecord, id) + size_of::<String>(),
            rec + offset_of!(UserRecord, active) + 1,
        ] {
            assert!(end <= 3 * 64, "{end}");
        }
    }

    /// One map for the three kinds of user key answers as one map per kind did: the id
    /// first (a placeholder's id finds no one), then the folded userName, then the externalId,
    /// through renames, removals and keys that are one user's id and another's userName.
    #[test]
    fn user_keys_answer_as_three_maps() {
        // short keys, and keys over `KeyBytes::CAPACITY` bytes (kept on the heap)
        let long = "a-user-name-longer-than-forty-bytes@example.com";
        let long_upper = long.to_uppercase();
        let pool = [
            "a",
            "B",
            "b",
            "c",
            "É",
            "é",
            "x-1",
            "X-1",
            long,
            &long_upper,
        ];
        let mut next = crate::access::test_picker(0x5eed_u64);
        let mut d = Directory::default();
        // the maps as they were: ids (users and placeholders), folded userNames, externalIds
        let (mut ids, mut names, mut externals) = (
            HashMap::<String, u32>::new(),
            HashMap::new(),
            HashMap::new(),
        );
        let mut records: HashMap<String, UserRecord> = HashMap::new();
        let mut len = 0u32;
        let mut intern = |ids: &mut HashMap<String, u32>, id: &str| {
            *ids.entry(id.to_string()).or_insert_with(|| {
                len += 1;
                len - 1
            })
        };
        for step in 0..3000 {
            let id = pool[next(pool.len())];
            match next(4) {
                0 | 1 => {
                    let rec = UserRecord {
                        id: id.into(),
                        user_name: pool[next(pool.len())].into(),
                        external_id: (next(3) > 0).then(|| pool[next(pool.len())].into()),
                        active: true,
                        version: 1,
                    };
                    let i = intern(&mut ids, id);
                    if let Some(old) = records.remove(id) {
                        names.remove(&old.user_name.to_lowercase());
                        if let Some(e) = &old.external_id {
                            externals.remove(e);
                        }
                    }
                    names.insert(rec.user_name.to_lowercase(), i);
                    if let Some(e) = &rec.external_id {
                        externals.insert(e.clone(), i);
                    }
                    records.insert(id.into(), rec.clone());
                    d.upsert_user(rec);
                }
                2 => {
                    if ids.remove(id).is_some() {
                        if let Some(old) = records.remove(id) {
                            names.remove(&old.user_name.to_lowercase());
                            if let Some(e) = &old.external_id {
                                externals.remove(e);
                            }
                        }
                    }
                    d.remove_user(id);
                }
                _ => {
                    // a member not loaded yet: a placeholder
                    intern(&mut ids, id);
                    d.set_group(group("g", "g"), &[Member::User(id.into())]);
                }
            }
            assert_eq!(d.user_count(), ids.len(), "step {step}");
            for key in pool {
                let want = ids
                    .get(key)
                    .or_else(|| names.get(&key.to_lowercase()))
                    .or_else(|| externals.get(key))
                    .and_then(|&i| d.user_at(i).map(|_| i));
                assert_eq!(d.find_user_index(key), want, "step {step}: {key}");
                for (k, want) in [
                    (UserKey::Id(key), ids.get(key)),
                    (UserKey::UserName(key), names.get(&key.to_lowercase())),
                    (UserKey::ExternalId(key), externals.get(key)),
                ] {
                    let want = want.and_then(|&i| d.user_at(i).map(|_| i));
                    assert_eq!(d.user_index_by(k), want, "step {step}: {key}");
                }
            }
        }
    }

    /// Everything membership-shaped in a directory, by id, for comparing two directories.
    fn shape(d: &Directory) -> Vec<String> {
        let gid = |i: &u32| {
            d.groups[*i as usize]
                .as_ref()
                .map_or("?".into(), |g| g.rec.id.clone())
        };
        let uid = |i: &u32| {
            d.users
                .get(*i as usize)
                .map_or("?".into(), |u| u.rec.id.clone())
        };
        let mut out = Vec::new();
        let mut gids: Vec<(&String, &u32)> = d.group_idx.iter().collect();
        gids.sort();
        for (id, gi) in gids {
            let Some(g) = d.groups[*gi as usize].as_ref() else {
                continue;
            };
            let sorted = |v: Vec<String>| {
                let mut v = v;
                v.sort();
                v.join(",")
            };
            out.push(format!(
                "{id} {:?} loaded={} users=[{}] sub=[{}] parents=[{}]",
                g.rec,
                g.loaded,
                sorted(g.users.iter().map(uid).collect()),
                sorted(g.subgroups.iter().map(gid).collect()),
                sorted(g.parents.iter().map(gid).collect()),
            ));
        }
        let mut uids: Vec<(&str, u32)> = d.keys.iter(&d.users, KeyKind::Id).collect();
        uids.sort();
        for (id, ui) in uids {
            if let Some(u) = d.users.get(ui as usize) {
                let mut gs: Vec<String> = u.groups.iter().map(gid).collect();
                gs.sort();
                out.push(format!("{id} {:?} groups=[{}]", u.rec, gs.join(",")));
            }
        }
        out
    }

    /// Deltas give the directory that reloading the whole group gives, whatever the order of
    /// adds and removes, members added twice, removed when absent, or groups nested; and a
    /// delta applied again (start-up replays recent changes) changes nothing.
    #[test]
    fn deltas_give_what_a_reload_gives() {
        let mut next = crate::access::test_picker(0xde17a_u64);
        let mut by_delta = Directory::default();
        let mut by_reload = Directory::default();
        let mut truth: std::collections::BTreeMap<String, Vec<Member>> = Default::default();
        for u in 0..6 {
            by_delta.upsert_user(user(&format!("u{u}"), &format!("user{u}"), true));
            by_reload.upsert_user(user(&format!("u{u}"), &format!("user{u}"), true));
        }
        for g in 0..4 {
            let id = format!("g{g}");
            by_delta.set_group(group(&id, &id), &[]);
            by_reload.set_group(group(&id, &id), &[]);
            truth.insert(id, Vec::new());
        }
        for step in 0..600 {
            let g = format!("g{}", next(4));
            let rec = group(&g, ["a", "b", "c"][next(3)]);
            let mut ops = Vec::new();
            for _ in 0..next(6) {
                let m = match next(4) {
                    0 => Member::Group(format!("g{}", next(4))),
                    // u6 and u7 have no user record (yet): a membership may come first
                    _ => Member::User(format!("u{}", next(8))),
                };
                if m == Member::Group(g.clone()) {
                    continue;
                }
                let members = truth.get_mut(&g).unwrap();
                // what the database reports: only rows it really inserted or deleted
                let add = next(2) == 0;
                let present = members.contains(&m);
                if add && !present {
                    members.push(m.clone());
                    ops.push((true, m));
                } else if !add && present {
                    members.retain(|x| x != &m);
                    ops.push((false, m));
                }
            }
            assert!(by_delta.change_group(rec.clone(), &ops), "step {step}");
            by_reload.set_group(rec.clone(), &truth[&g]);
            assert_eq!(shape(&by_delta), shape(&by_reload), "step {step}: {ops:?}");
            if next(5) == 0 {
                // the same change again
                let before = shape(&by_delta);
                assert!(by_delta.change_group(rec, &ops));
                assert_eq!(shape(&by_delta), before, "step {step}: replayed {ops:?}");
            }
            if next(20) == 0 {
                let u = format!("u{}", 6 + next(2));
                by_delta.upsert_user(user(&u, &u, true));
                by_reload.upsert_user(user(&u, &u, true));
            }
        }
        // a group only known as another's member is not changed by a delta: it is reloaded
        let mut d = Directory::default();
        d.set_group(group("g1", "outer"), &[Member::Group("g2".into())]);
        assert!(!d.change_group(group("g2", "inner"), &[(true, Member::User("u1".into()))]));
        assert!(!d.change_group(group("g9", "unknown"), &[]));
    }
}
