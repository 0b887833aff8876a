//! The whole history of resource syncs: every attempt of every target, newest first, filtered
//! and paged (`gitsync history`); and its retention, which prunes old attempts but always keeps
//! each target's latest and latest successful ones (what the status operations show) and any
//! attempt still running.

use crate::rows::{int, parsed};
use crate::{Result, Store};
use gitsync_model::{ResourceSyncAttempt, ResourceSyncStatus, SyncType, Tenant, Timestamp};
use sqlx::{AssertSqlSafe, Row};

/// Which attempts to list.
#[derive(Debug, Clone, Default)]
pub struct HistoryFilter {
    pub sync_type: Option<SyncType>,
    /// The target as the attempt names it: the stack, `template:major`, the instance.
    pub target: Option<String>,
    /// Exactly one target: its sync type's key (`SyncTarget::key`).
    pub key: Option<String>,
    pub status: Option<ResourceSyncStatus>,
    /// Started at or after.
    pub since: Option<Timestamp>,
    /// Started before.
    pub until: Option<Timestamp>,
}

/// One attempt of the history.
#[derive(Debug, Clone)]
pub struct HistoryEntry {
    /// Stable across pages: the next page starts below the last entry's id.
    pub id: i64,
    pub sync_type: SyncType,
    pub finished_at: Option<Timestamp>,
    pub attempt: ResourceSyncAttempt,
}

/// Kept whatever their age: each target's latest attempt, its latest successful one, and any
/// attempt not finished. (`a` is the attempt in question.)
const KEPT: &str = "(a.finished_at IS NULL \
     OR a.attempt_id = (SELECT MAX(b.attempt_id) FROM resource_sync_attempts b WHERE b.account_id = a.account_id \
        AND b.region = a.region AND b.sync_type = a.sync_type AND b.target_key = a.target_key) \
     OR a.attempt_id = (SELECT MAX(c.attempt_id) FROM resource_sync_attempts c WHERE c.account_id = a.account_id \
        AND c.region = a.region AND c.sync_type = a.sync_type AND c.target_key = a.target_key AND c.status = 'SUCCEEDED'))";

/// Kept whatever their age: each branch's latest repository sync, and any not finished.
const KEPT_REPOSITORY: &str = "(a.finished_at IS NULL \
     OR a.attempt_id = (SELECT MAX(b.attempt_id) FROM repository_sync_attempts b WHERE b.account_id = a.account_id \
        AND b.region = a.region AND b.sync_type = a.sync_type AND b.repository_key = a.repository_key AND b.branch = a.branch))";

impl Store {
    /// A tenant's resource sync attempts, newest first: at most `limit`, below `before` (an
    /// entry id from the previous page). Answers the page and the id to continue below.
    pub async fn resource_history(
        &self,
        tenant: &Tenant,
        filter: &HistoryFilter,
        before: Option<i64>,
        limit: usize,
    ) -> Result<(Vec<HistoryEntry>, Option<i64>)> {
        let limit = limit.clamp(1, 1000);
        // Only the filters given become conditions (typed parameters, in order).
        enum Arg {
            Text(String),
            Int(i64),
        }
        let mut conditions = String::new();
        let mut args: Vec<Arg> = Vec::new();
        let mut add = |condition: &str, arg: Arg| {
            args.push(arg);
            conditions.push_str(&format!(" AND {condition} ${}", args.len() + 2));
        };
        if let Some(t) = filter.sync_type {
            add("sync_type =", Arg::Text(t.as_str().into()));
        }
        if let Some(t) = &filter.target {
            add("target =", Arg::Text(t.clone()));
        }
        if let Some(k) = &filter.key {
            add("target_key =", Arg::Text(k.clone()));
        }
        if let Some(s) = filter.status {
            add("status =", Arg::Text(s.as_str().into()));
        }
        if let Some(t) = filter.since {
            add("started_at >=", Arg::Int(t.millis()));
        }
        if let Some(t) = filter.until {
            add("started_at <", Arg::Int(t.millis()));
        }
        if let Some(id) = before {
            add("attempt_id <", Arg::Int(id));
        }
        let sql = format!(
            "SELECT * FROM resource_sync_attempts WHERE account_id = $1 AND region = $2{conditions} \
             ORDER BY attempt_id DESC LIMIT {}",
            limit + 1
        );
        let mut query = sqlx::query(AssertSqlSafe(sql))
            .bind(&tenant.account_id)
            .bind(&tenant.region);
        for arg in args {
            query = match arg {
                Arg::Text(t) => query.bind(t),
                Arg::Int(i) => query.bind(i),
            };
        }
        let rows = query.fetch_all(&self.pool).await?;
        let more = rows.len() > limit;
        let mut entries = Vec::with_capacity(limit);
        for row in rows.iter().take(limit) {
            entries.push(HistoryEntry {
                id: int(row, "attempt_id")?,
                sync_type: parsed(row, "sync_type", SyncType::parse)?,
                finished_at: row.try_get::<Option<i64>, _>("finished_at")?.map(Timestamp),
                attempt: self.resource_attempt(row).await?,
            });
        }
        let next = if more {
            entries.last().map(|e| e.id)
        } else {
            None
        };
        Ok((entries, next))
    }

    /// Deletes resource and repository sync attempts (with their events) that started before
    /// `before`, except the ones always kept. Answers how many attempts went.
    pub async fn prune_history(&self, before: Timestamp) -> Result<u64> {
        let mut pruned = 0;
        for (attempts, events, kept) in [
            ("resource_sync_attempts", "resource_sync_events", KEPT),
            (
                "repository_sync_attempts",
                "repository_sync_events",
                KEPT_REPOSITORY,
            ),
        ] {
            // The attempts go first, and their events by the ids they answer, so an attempt that
            // became "kept" meanwhile keeps its events too.
            let mut tx = self.write_tx().await?;
            let gone = sqlx::query(AssertSqlSafe(format!(
                "DELETE FROM {attempts} WHERE attempt_id IN \
                 (SELECT a.attempt_id FROM {attempts} a WHERE a.started_at < $1 AND NOT {kept}) RETURNING attempt_id"
            )))
            .bind(before.millis())
            .fetch_all(&mut *tx)
            .await?;
            let ids: Vec<i64> = gone
                .iter()
                .map(|r| int(r, "attempt_id"))
                .collect::<Result<_>>()?;
            for chunk in ids.chunks(500) {
                let list = chunk
                    .iter()
                    .map(i64::to_string)
                    .collect::<Vec<_>>()
                    .join(",");
                sqlx::query(AssertSqlSafe(format!(
                    "DELETE FROM {events} WHERE attempt_id IN ({list})"
                )))
                .execute(&mut *tx)
                .await?;
            }
            self.commit(tx).await?;
            pruned += ids.len() as u64;
        }
        Ok(pruned)
    }

    /// How many of a tenant's resource sync attempts are kept, for `gitsync history`.
    pub async fn history_size(&self, tenant: &Tenant) -> Result<i64> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS n FROM resource_sync_attempts WHERE account_id = $1 AND region = $2",
        )
        .bind(&tenant.account_id)
        .bind(&tenant.region)
        .fetch_one(&self.pool)
        .await?;
        int(&row, "n")
    }
}
