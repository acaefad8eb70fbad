//! Following the change feed (the audit log): reload what each new entry names.
//!
//! PostgreSQL hands out sequence numbers at insert time, so an entry can commit after a
//! later one. A jump in sequence numbers is remembered as a gap and asked for again on every
//! poll for a while; sequence numbers of rolled-back transactions never appear and expire.
//!
//! Membership changes of a group's PATCH or PUT that itemize what they did (see
//! `store::MemberDelta`: up to 1,000 rows inserted or deleted) are applied as deltas instead
//! of reloading the group, which for a 100,000-member group is the difference between
//! microseconds and tens of milliseconds. Each itemized row is an assignment (member or not),
//! so applying entries in sequence order gives the database's state from any starting point
//! the entries were made after, including a directory loaded while they were being written
//! (start-up re-applies recent entries). Two changes to the same membership row are ordered
//! by that row's lock, so their sequence numbers are in the same order. An entry that fills a
//! gap arrives out of order: its group is reloaded instead, as is any group named by an entry
//! without a delta (create, delete, a full member replacement, large changes).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use super::directory::GroupRecord;
use super::{Access, AccessError};
use crate::store::GroupDelta;

const BATCH: i64 = 1000;
const GAP_TTL: Duration = Duration::from_secs(10);
const MAX_GAPS: usize = 1000;

pub struct FeedState {
    last: i64,
    gaps: BTreeMap<i64, Instant>,
}

impl FeedState {
    pub fn new(last: i64, gaps: &[i64]) -> Self {
        let now = Instant::now();
        Self {
            last,
            gaps: gaps.iter().take(MAX_GAPS).map(|g| (*g, now)).collect(),
        }
    }
}

pub(super) async fn apply_pending(
    access: &Access,
    feed: &mut FeedState,
) -> Result<(), AccessError> {
    loop {
        let asked: Vec<i64> = feed.gaps.keys().copied().collect();
        let changes = access.store.changes_since(feed.last, &asked, BATCH).await?;
        let now = Instant::now();
        // The position moves in copies, kept only once the whole batch is applied: a batch
        // that fails half-way (a reload hitting a lock timeout, a dropped connection) is
        // read and applied again from the start by the next catch-up, rather than skipped
        // for good (found by an audit: a token revoked in such a batch stayed accepted).
        // Every step below is safe to repeat: reloads read the current state, and group
        // deltas are assignments applied in sequence order.
        let mut last = feed.last;
        let mut gaps = feed.gaps.clone();
        gaps.retain(|_, seen| now.duration_since(*seen) < GAP_TTL);
        if changes.is_empty() {
            feed.gaps = gaps;
            return Ok(());
        }
        let mut users = BTreeSet::new();
        // group changes in sequence order; None: reload the group
        let mut groups: Vec<(&str, Option<&GroupDelta>)> = Vec::new();
        let (mut mapping, mut tokens, mut keys) = (false, false, false);
        for c in &changes {
            let in_order = c.seq > last;
            if c.seq > last {
                for missing in (last + 1)..c.seq {
                    if gaps.len() < MAX_GAPS {
                        gaps.insert(missing, now);
                    }
                }
                last = c.seq;
            } else {
                gaps.remove(&c.seq);
            }
            match c.target_type.as_str() {
                "user" => {
                    users.insert(c.target_id.clone());
                }
                "group" => {
                    let delta = c.group_delta.as_ref().filter(|_| in_order);
                    groups.push((c.target_id.as_str(), delta));
                }
                "mapping" => mapping = true,
                "token" => tokens = true,
                "key" => keys = true,
                _ => {}
            }
        }
        if !users.is_empty() {
            let ids: Vec<String> = users.iter().cloned().collect();
            let found = access.store.load_user_records(&ids).await?;
            let present: BTreeSet<&str> = found.iter().map(|u| u.id.as_str()).collect();
            let gone: Vec<&String> = ids
                .iter()
                .filter(|id| !present.contains(id.as_str()))
                .collect();
            let mut dir = access.directory_mut();
            for id in gone {
                dir.remove_user(id);
            }
            for u in found {
                dir.upsert_user(u);
            }
        }
        let mut reload: BTreeSet<&str> = groups
            .iter()
            .filter(|(_, d)| d.is_none())
            .map(|(id, _)| *id)
            .collect();
        for (id, delta) in &groups {
            let Some(d) = delta else { continue };
            if reload.contains(id) {
                continue;
            }
            let rec = GroupRecord {
                id: id.to_string(),
                display_name: d.display_name.clone(),
                external_id: d.external_id.clone(),
            };
            if !access.directory_mut().change_group(rec, &d.members.ops) {
                reload.insert(id);
            }
        }
        for id in &reload {
            let rec = access.store.load_group_record(id).await?;
            let mut dir = access.directory_mut();
            match rec {
                Some((g, members)) => dir.set_group(g, &members),
                None => dir.remove_group(id),
            }
        }
        if mapping {
            access.reload_mapping().await?;
        }
        if tokens {
            access.reload_tokens().await?;
        }
        if keys {
            access.reload_keys().await?;
        }
        feed.last = last;
        feed.gaps = gaps;
        if (changes.len() as i64) < BATCH {
            return Ok(());
        }
    }
}
