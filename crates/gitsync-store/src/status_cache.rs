//! Sync statuses kept in memory, so that the status reads clients poll (`GetResourceSyncStatus`,
//! `GetServiceInstanceSyncStatus`) answer without a database round trip while nothing changes.
//!
//! What keeps an answer true:
//! - Every write transaction this process commits moves a generation (`Store::commit`); an entry
//!   read before the move is never served after it. The generation is read *before* the query
//!   and moved *after* the commit, so a read that raced a write is stored under the old
//!   generation and dropped. Writes to sync state are all transactions; the few autocommitted
//!   statements (a branch check's claim and finish) do not touch it.
//! - Writes by other processes on the same database (replicas, the `gitsync` CLI) are not seen
//!   here: an entry is served for at most the time to live (`--status-cache-ttl`, 1 s by
//!   default), which bounds how late another replica's change shows. Zero turns the cache off.
//! - Entries are per tenant and target; a status that does not exist is never kept, so made-up
//!   names cannot fill the cache, and it holds at most [`MAX_ENTRIES`] (then starts over).

use gitsync_model::ResourceSyncState;
use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Most statuses kept at once; a full cache is emptied rather than tracked for eviction.
pub(crate) const MAX_ENTRIES: usize = 10_000;

/// (account, region, sync type, target key).
pub(crate) type Key = (String, String, &'static str, String);

struct Entry {
    state: ResourceSyncState,
    read: Ticket,
}

/// When a read began: the generation then, and the time its age counts from.
#[derive(Clone, Copy)]
pub(crate) struct Ticket {
    generation: u64,
    at: Instant,
}

pub(crate) struct StatusCache {
    ttl: Duration,
    generation: AtomicU64,
    entries: Mutex<HashMap<Key, Entry>>,
}

impl StatusCache {
    pub(crate) fn new(ttl: Duration) -> StatusCache {
        StatusCache {
            ttl,
            generation: AtomicU64::new(0),
            entries: Mutex::new(HashMap::new()),
        }
    }

    pub(crate) fn enabled(&self) -> bool {
        !self.ttl.is_zero()
    }

    /// Called after every committed write transaction.
    pub(crate) fn invalidate(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Taken before a read's query, to store its answer under.
    pub(crate) fn ticket(&self) -> Ticket {
        Ticket {
            generation: self.generation(),
            at: Instant::now(),
        }
    }

    pub(crate) fn get(&self, key: &Key) -> Option<ResourceSyncState> {
        if !self.enabled() {
            return None;
        }
        let now = self.generation();
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let entry = entries.get(key)?;
        (entry.read.generation == now && entry.read.at.elapsed() < self.ttl)
            .then(|| entry.state.clone())
    }

    pub(crate) fn put(&self, key: Key, state: &ResourceSyncState, read: Ticket) {
        if !self.enabled() || read.generation != self.generation() {
            return;
        }
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= MAX_ENTRIES && !entries.contains_key(&key) {
            entries.clear();
        }
        entries.insert(
            key,
            Entry {
                state: state.clone(),
                read,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gitsync_model::{ResourceSyncAttempt, ResourceSyncStatus, Revision, Timestamp};

    fn state() -> ResourceSyncState {
        let revision = Revision {
            branch: "main".into(),
            directory: "deploy.yaml".into(),
            owner_id: "o".into(),
            repository_name: "r".into(),
            provider_type: "GitHub".into(),
            sha: "a".into(),
        };
        ResourceSyncState {
            desired_state: None,
            latest_sync: ResourceSyncAttempt {
                started_at: Timestamp(0),
                status: ResourceSyncStatus::Succeeded,
                events: vec![],
                initial_revision: revision.clone(),
                target_revision: revision,
                target: "web".into(),
            },
            latest_successful_sync: None,
        }
    }

    fn key(account: &str) -> Key {
        (
            account.into(),
            "us-east-1".into(),
            "CFN_STACK_SYNC",
            "web".into(),
        )
    }

    #[test]
    fn an_answer_is_served_until_a_write_or_its_age_ends_it() {
        let cache = StatusCache::new(Duration::from_millis(50));
        let read = cache.ticket();
        cache.put(key("1"), &state(), read);
        assert_eq!(cache.get(&key("1")), Some(state()));
        assert_eq!(cache.get(&key("2")), None, "another tenant's key");
        cache.invalidate();
        assert_eq!(cache.get(&key("1")), None, "a write ended it");
        cache.put(key("1"), &state(), cache.ticket());
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(cache.get(&key("1")), None, "too old");
    }

    #[test]
    fn a_read_that_raced_a_write_is_not_kept() {
        let cache = StatusCache::new(Duration::from_secs(60));
        let read = cache.ticket();
        cache.invalidate();
        cache.put(key("1"), &state(), read);
        assert_eq!(cache.get(&key("1")), None);
    }

    #[test]
    fn off_keeps_nothing_and_full_starts_over() {
        let off = StatusCache::new(Duration::ZERO);
        off.put(key("1"), &state(), off.ticket());
        assert_eq!(off.get(&key("1")), None);
        let cache = StatusCache::new(Duration::from_secs(60));
        for i in 0..MAX_ENTRIES {
            cache.put(key(&i.to_string()), &state(), cache.ticket());
        }
        assert!(cache.get(&key("0")).is_some());
        cache.put(key("new"), &state(), cache.ticket());
        assert_eq!(cache.get(&key("0")), None, "emptied when full");
        assert!(cache.get(&key("new")).is_some());
    }
}
