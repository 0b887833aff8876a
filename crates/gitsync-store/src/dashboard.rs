//! What the dashboard reads that no other layer does: every sync target of an account at a
//! glance (all regions, filtered and paged in SQL so ten thousand targets answer at once), the
//! account's repositories with their repository syncs, and dashboard sessions.

use crate::rows::{int, opt_int, opt_text, parsed, text};
use crate::status::RepositoryKey;
use crate::{Result, Store, StoreError};
use gitsync_model::{
    RepositorySyncAttempt, RepositorySyncStatus, ResourceSyncStatus, Revision, SyncEvent,
    SyncTarget, SyncType, Timestamp,
};
use sha2::Digest;
use sqlx::AssertSqlSafe;

/// What a target's row shows about its latest attempt, for filtering.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetState {
    Succeeded,
    Failed,
    /// `INITIATED` or `IN_PROGRESS`.
    Running,
    /// No attempt yet.
    NeverSynced,
    /// At least one ACTIVE blocker.
    Blocked,
}

impl TargetState {
    pub const ALL: [TargetState; 5] = [
        TargetState::Succeeded,
        TargetState::Failed,
        TargetState::Running,
        TargetState::NeverSynced,
        TargetState::Blocked,
    ];

    /// The spelling of the dashboard's filter.
    pub fn as_str(self) -> &'static str {
        match self {
            TargetState::Succeeded => "succeeded",
            TargetState::Failed => "failed",
            TargetState::Running => "running",
            TargetState::NeverSynced => "never-synced",
            TargetState::Blocked => "blocked",
        }
    }

    pub fn parse(s: &str) -> Option<TargetState> {
        TargetState::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// The SQL condition on a row `k` of [`KEYS`] (with the placeholders of [`SAME_TARGET`],
    /// [`LATEST_STATUS`] and [`BLOCKERS`]).
    fn condition(self) -> &'static str {
        match self {
            TargetState::Succeeded => "LATEST_STATUS = 'SUCCEEDED'",
            TargetState::Failed => "LATEST_STATUS = 'FAILED'",
            TargetState::Running => "LATEST_STATUS IN ('INITIATED', 'IN_PROGRESS')",
            TargetState::NeverSynced => {
                "NOT EXISTS (SELECT 1 FROM resource_sync_attempts x WHERE SAME_TARGET)"
            }
            TargetState::Blocked => "BLOCKERS > 0",
        }
    }
}

/// Which of an account's targets to show.
#[derive(Debug, Clone, Default)]
pub struct TargetFilter {
    pub region: Option<String>,
    pub sync_type: Option<SyncType>,
    pub state: Option<TargetState>,
    /// Part of the target's name or key, any case.
    pub search: Option<String>,
    /// Exactly this target key (with `sync_type`): one target's row.
    pub key: Option<String>,
}

/// A target's latest attempt, as the overview shows it.
#[derive(Debug, Clone)]
pub struct LatestAttempt {
    pub status: ResourceSyncStatus,
    pub sha: String,
    pub started_at: Timestamp,
    pub finished_at: Option<Timestamp>,
}

/// One row of the overview.
#[derive(Debug, Clone)]
pub struct TargetSummary {
    pub region: String,
    pub target: SyncTarget,
    /// `owner/repository` (or the Proton repository's name).
    pub repository: String,
    pub repository_key: RepositoryKey,
    pub branch: String,
    /// The deployment file or the directory the target syncs from.
    pub path: String,
    pub latest: Option<LatestAttempt>,
    pub active_blockers: i64,
    /// A commit waits for an attempt (a new one, or a retry asked for): no blocker holds it.
    pub waiting: Option<String>,
}

/// A repository of the account and its branches' latest repository syncs.
#[derive(Debug, Clone)]
pub struct RepositorySummary {
    pub region: String,
    pub key: RepositoryKey,
    /// `owner/repository`.
    pub name: String,
    pub provider: String,
    /// The link's id, or the Proton repository's ARN.
    pub id: String,
    pub branches: Vec<BranchSync>,
}

/// A watched branch and its newest repository sync.
#[derive(Debug, Clone)]
pub struct BranchSync {
    pub sync_type: SyncType,
    pub branch: String,
    pub latest: Option<(RepositorySyncStatus, Timestamp)>,
}

/// One repository sync of the history.
#[derive(Debug, Clone)]
pub struct RepositoryHistoryEntry {
    pub id: i64,
    pub sync_type: SyncType,
    pub branch: String,
    pub attempt: RepositorySyncAttempt,
}

/// A signed-in dashboard session: who it is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DashboardSession {
    pub account_id: String,
    pub access_key_id: String,
}

// The overview is read in two steps so ten thousand targets cost little: the keys of the targets
// that match the filter (counted, then sorted and cut to one page), then the details of that
// page's rows alone. Every lookup below is an index seek on (account, region, sync type, name).

/// The account's (`$1`) targets that still sync, by key: every stack sync configuration (synced
/// or not yet), and the service instances and template versions whose configuration exists. A
/// target row outlives its configuration (its history stays browsable), so it alone is not enough.
const KEYS: &str = "\
SELECT c.region, c.sync_type, c.resource_name AS target_key, c.resource_name AS display_name, NULL AS parent_key \
  FROM sync_configurations c WHERE c.account_id = $1 \
UNION ALL \
SELECT t.region, t.sync_type, t.target_key, t.display_name, t.parent_key FROM sync_targets t \
 WHERE t.account_id = $1 AND t.sync_type = 'SERVICE_SYNC' AND EXISTS (SELECT 1 FROM service_sync_configs c \
   WHERE c.account_id = $1 AND c.region = t.region AND c.service_name = t.parent_key) \
UNION ALL \
SELECT t.region, t.sync_type, t.target_key, t.display_name, t.parent_key FROM sync_targets t \
 WHERE t.account_id = $1 AND t.sync_type = 'TEMPLATE_SYNC' AND EXISTS (SELECT 1 FROM template_sync_configs c \
   WHERE c.account_id = $1 AND c.region = t.region AND c.template_type || '/' || c.template_name = t.parent_key)";

/// An attempt `x` of the target `k`.
const SAME_TARGET: &str = "x.account_id = $1 AND x.region = k.region AND x.sync_type = k.sync_type AND x.target_key = k.target_key";

/// The status of target `k`'s latest attempt.
const LATEST_STATUS: &str = "(SELECT x.status FROM resource_sync_attempts x WHERE SAME_TARGET ORDER BY x.attempt_id DESC LIMIT 1)";

/// How many ACTIVE blockers hold target `k`: a service instance is held by its own blockers and
/// by its service's. One equality lookup per term, so the index on blockers serves each.
const BLOCKERS: &str = "CASE WHEN k.sync_type = 'SERVICE_SYNC' THEN \
 (SELECT COUNT(*) FROM sync_blockers b WHERE b.account_id = $1 AND b.region = k.region AND b.sync_type = k.sync_type \
   AND b.status = 'ACTIVE' AND b.resource_name = k.display_name AND b.parent_resource_name = k.parent_key) \
 + (SELECT COUNT(*) FROM sync_blockers b WHERE b.account_id = $1 AND b.region = k.region AND b.sync_type = k.sync_type \
   AND b.status = 'ACTIVE' AND b.resource_name = k.parent_key AND b.parent_resource_name IS NULL) \
ELSE (SELECT COUNT(*) FROM sync_blockers b WHERE b.account_id = $1 AND b.region = k.region AND b.sync_type = k.sync_type \
   AND b.status = 'ACTIVE' AND b.resource_name = k.target_key AND b.parent_resource_name IS NULL) END";

/// The details of one page `PAGE` of [`KEYS`]: where each target syncs from (its target row, or
/// the stack's configuration before its first sync), its latest attempt, its blockers and its link.
const DETAILS: &str = "\
SELECT d.*, l.owner_id, l.repository_name FROM ( \
  SELECT k.region, k.sync_type, k.target_key, COALESCE(t.repository_key, 'link:' || c.link_id) AS repository_key, \
         COALESCE(t.branch, c.branch) AS branch, COALESCE(t.directory, c.config_file) AS directory, \
         t.desired_sha, t.attempted_sha, a.status, a.target_revision, a.started_at, a.finished_at, BLOCKERS AS blockers \
    FROM (PAGE) k \
    LEFT JOIN sync_targets t ON t.account_id = $1 AND t.region = k.region AND t.sync_type = k.sync_type \
         AND t.target_key = k.target_key \
    LEFT JOIN sync_configurations c ON c.account_id = $1 AND c.region = k.region AND c.sync_type = k.sync_type \
         AND c.resource_name = k.target_key \
    LEFT JOIN resource_sync_attempts a ON a.attempt_id = (SELECT MAX(x.attempt_id) FROM resource_sync_attempts x \
         WHERE SAME_TARGET)) d \
  LEFT JOIN repository_links l ON d.repository_key LIKE 'link:%' AND l.account_id = $1 AND l.region = d.region \
       AND l.link_id = SUBSTR(d.repository_key, 6) \
 ORDER BY d.region, d.sync_type, d.target_key";

/// Dashboard sessions last this long, whatever happens meanwhile.
pub const DASHBOARD_SESSION_MILLIS: i64 = 12 * 3600 * 1000;

/// The stored form of a session id: its hash, so a copy of the database opens no session.
fn session_hash(session_id: &str) -> String {
    hex_of(&sha2::Sha256::digest(session_id.as_bytes()))
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `LIKE` pattern matching `text` anywhere, its own `%`, `_` and `\` taken literally.
fn contains_pattern(text: &str) -> String {
    let mut out = String::from("%");
    for c in text.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

impl Store {
    /// A page of an account's sync targets of every region and sync type, ordered by region,
    /// type and name, with how many match the filter in all.
    pub async fn dashboard_targets(
        &self,
        account_id: &str,
        filter: &TargetFilter,
        offset: usize,
        limit: usize,
    ) -> Result<(Vec<TargetSummary>, i64)> {
        let limit = limit.clamp(1, 500);
        let mut conditions = String::new();
        let mut args: Vec<String> = Vec::new();
        let mut add = |condition: &str, arg: String| {
            args.push(arg);
            conditions.push_str(&format!(" AND {condition} ${}", args.len() + 1));
        };
        if let Some(region) = &filter.region {
            add("k.region =", region.clone());
        }
        if let Some(t) = filter.sync_type {
            add("k.sync_type =", t.as_str().to_string());
        }
        if let Some(key) = &filter.key {
            add("k.target_key =", key.clone());
        }
        // Last: its ESCAPE clause follows the parameter.
        if let Some(search) = &filter.search {
            add("LOWER(k.target_key) LIKE", contains_pattern(search.trim()));
            conditions.push_str(" ESCAPE '\\'");
        }
        if let Some(state) = filter.state {
            conditions.push_str(" AND ");
            conditions.push_str(state.condition());
        }
        // Placeholders last: they may come in with a state's condition.
        let conditions = conditions
            .replace("LATEST_STATUS", LATEST_STATUS)
            .replace("BLOCKERS", BLOCKERS)
            .replace("SAME_TARGET", SAME_TARGET);
        let bind = |sql: String| {
            let mut q = sqlx::query(AssertSqlSafe(sql)).bind(account_id.to_string());
            for a in &args {
                q = q.bind(a.clone());
            }
            q
        };
        let total = bind(format!(
            "SELECT COUNT(*) AS n FROM ({KEYS}) k WHERE 1 = 1{conditions}"
        ))
        .fetch_one(&self.pool)
        .await?;
        let page = format!(
            "SELECT k.* FROM ({KEYS}) k WHERE 1 = 1{conditions} \
             ORDER BY k.region, k.sync_type, k.target_key LIMIT {limit} OFFSET {offset}"
        );
        let details = DETAILS
            .replace("BLOCKERS", BLOCKERS)
            .replace("SAME_TARGET", SAME_TARGET)
            .replace("PAGE", &page);
        let rows = bind(details).fetch_all(&self.pool).await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            let sync_type = parsed(row, "sync_type", SyncType::parse)?;
            let key = text(row, "target_key")?;
            let target = SyncTarget::from_key(sync_type, &key).ok_or_else(|| {
                StoreError::corrupt(format!("target_key '{key}' of a {}", sync_type.as_str()))
            })?;
            let repository_key = RepositoryKey::parse(&text(row, "repository_key")?);
            let repository = match (
                opt_text(row, "owner_id")?,
                opt_text(row, "repository_name")?,
            ) {
                (Some(owner), Some(name)) => format!("{owner}/{name}"),
                _ => match &repository_key {
                    RepositoryKey::Proton { name, .. } => name.clone(),
                    RepositoryKey::Link(id) => format!("(link {id})"),
                },
            };
            let latest = match opt_text(row, "status")? {
                Some(status) => Some(LatestAttempt {
                    status: ResourceSyncStatus::parse(&status)
                        .ok_or_else(|| StoreError::corrupt(format!("status = '{status}'")))?,
                    sha: serde_json::from_str::<Revision>(&text(row, "target_revision")?)
                        .map_err(StoreError::corrupt)?
                        .sha,
                    started_at: Timestamp(int(row, "started_at")?),
                    finished_at: opt_int(row, "finished_at")?.map(Timestamp),
                }),
                None => None,
            };
            let active_blockers = int(row, "blockers")?;
            let desired = opt_text(row, "desired_sha")?;
            let attempted = opt_text(row, "attempted_sha")?;
            let waiting = desired.filter(|d| active_blockers == 0 && attempted.as_ref() != Some(d));
            out.push(TargetSummary {
                waiting,
                region: text(row, "region")?,
                target,
                repository,
                repository_key,
                branch: text(row, "branch")?,
                path: text(row, "directory")?,
                latest,
                active_blockers,
            });
        }
        Ok((out, int(&total, "n")?))
    }

    /// The regions an account has anything to sync in, for the region filter.
    pub async fn dashboard_regions(&self, account_id: &str) -> Result<Vec<String>> {
        let rows = sqlx::query(
            "SELECT region FROM sync_targets WHERE account_id = $1 \
             UNION SELECT region FROM sync_configurations WHERE account_id = $1 \
             UNION SELECT region FROM repository_links WHERE account_id = $1 \
             UNION SELECT region FROM proton_repositories WHERE account_id = $1 ORDER BY region",
        )
        .bind(account_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| text(r, "region")).collect()
    }

    /// An account's repositories (links and Proton repositories, every region or one) with the
    /// newest repository sync of each branch that has had one.
    pub async fn dashboard_repositories(
        &self,
        account_id: &str,
        region: Option<&str>,
    ) -> Result<Vec<RepositorySummary>> {
        let region = region.unwrap_or("");
        let mut out = Vec::new();
        for row in sqlx::query(
            "SELECT region, link_id, owner_id, repository_name, provider_type FROM repository_links \
             WHERE account_id = $1 AND ($2 = '' OR region = $2) ORDER BY region, owner_id, repository_name",
        )
        .bind(account_id)
        .bind(region)
        .fetch_all(&self.pool)
        .await?
        {
            let id = text(&row, "link_id")?;
            out.push(RepositorySummary {
                region: text(&row, "region")?,
                key: RepositoryKey::Link(id.clone()),
                name: format!(
                    "{}/{}",
                    text(&row, "owner_id")?,
                    text(&row, "repository_name")?
                ),
                provider: text(&row, "provider_type")?,
                id,
                branches: Vec::new(),
            });
        }
        for row in sqlx::query(
            "SELECT region, provider, name, arn FROM proton_repositories \
             WHERE account_id = $1 AND ($2 = '' OR region = $2) ORDER BY region, name",
        )
        .bind(account_id)
        .bind(region)
        .fetch_all(&self.pool)
        .await?
        {
            let provider = text(&row, "provider")?;
            let name = text(&row, "name")?;
            out.push(RepositorySummary {
                region: text(&row, "region")?,
                key: RepositoryKey::parse(&format!("proton:{provider}:{name}")),
                name,
                provider,
                id: text(&row, "arn")?,
                branches: Vec::new(),
            });
        }
        // Each branch's newest repository sync, one query for the account.
        let latest = sqlx::query(
            "SELECT a.region, a.sync_type, a.repository_key, a.branch, a.status, a.started_at FROM repository_sync_attempts a \
             WHERE a.account_id = $1 AND ($2 = '' OR a.region = $2) AND a.attempt_id = (SELECT MAX(b.attempt_id) \
             FROM repository_sync_attempts b WHERE b.account_id = a.account_id AND b.region = a.region \
             AND b.sync_type = a.sync_type AND b.repository_key = a.repository_key AND b.branch = a.branch) \
             ORDER BY a.branch",
        )
        .bind(account_id)
        .bind(region)
        .fetch_all(&self.pool)
        .await?;
        for row in &latest {
            let (region, key) = (text(row, "region")?, text(row, "repository_key")?);
            if let Some(repo) = out
                .iter_mut()
                .find(|r| r.region == region && r.key.as_key() == key)
            {
                repo.branches.push(BranchSync {
                    sync_type: parsed(row, "sync_type", SyncType::parse)?,
                    branch: text(row, "branch")?,
                    latest: Some((
                        parsed(row, "status", RepositorySyncStatus::parse)?,
                        Timestamp(int(row, "started_at")?),
                    )),
                });
            }
        }
        Ok(out)
    }

    /// A repository's syncs (every branch and sync type), newest first, with their events: at
    /// most `limit`, below `before` (an id from the previous page).
    pub async fn repository_history(
        &self,
        tenant: &gitsync_model::Tenant,
        repository: &RepositoryKey,
        before: Option<i64>,
        limit: usize,
    ) -> Result<(Vec<RepositoryHistoryEntry>, Option<i64>)> {
        let limit = limit.clamp(1, 200);
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT * FROM repository_sync_attempts WHERE account_id = $1 AND region = $2 AND repository_key = $3 \
             AND attempt_id < $4 ORDER BY attempt_id DESC LIMIT {}",
            limit + 1
        )))
        .bind(&tenant.account_id)
        .bind(&tenant.region)
        .bind(repository.as_key())
        .bind(before.unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::new();
        for row in rows.iter().take(limit) {
            let id = int(row, "attempt_id")?;
            let events = sqlx::query(
                "SELECT event_type, event, time, external_id FROM repository_sync_events WHERE attempt_id = $1 ORDER BY seq",
            )
            .bind(id)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|e| {
                Ok(SyncEvent {
                    event_type: text(e, "event_type")?,
                    event: text(e, "event")?,
                    time: Timestamp(int(e, "time")?),
                    external_id: opt_text(e, "external_id")?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
            out.push(RepositoryHistoryEntry {
                id,
                sync_type: parsed(row, "sync_type", SyncType::parse)?,
                branch: text(row, "branch")?,
                attempt: RepositorySyncAttempt {
                    started_at: Timestamp(int(row, "started_at")?),
                    status: parsed(row, "status", RepositorySyncStatus::parse)?,
                    events,
                },
            });
        }
        let next = (rows.len() > limit)
            .then(|| out.last().map(|e| e.id))
            .flatten();
        Ok((out, next))
    }

    // ----- sessions -----

    /// Opens a session for an access key; answers its id (the only copy: the database keeps a
    /// hash). Sessions that have expired are deleted on the way.
    pub async fn open_dashboard_session(
        &self,
        key: &crate::AccessKey,
        now: Timestamp,
    ) -> Result<(String, Timestamp)> {
        let id = hex_of(&rand::random::<[u8; 32]>());
        let expires = now.plus_millis(DASHBOARD_SESSION_MILLIS);
        let mut tx = self.write_tx().await?;
        sqlx::query("DELETE FROM dashboard_sessions WHERE expires_at <= $1")
            .bind(now.millis())
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO dashboard_sessions (session_id, access_key_id, account_id, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(session_hash(&id))
        .bind(&key.access_key_id)
        .bind(&key.account_id)
        .bind(now.millis())
        .bind(expires.millis())
        .execute(&mut *tx)
        .await?;
        self.commit(tx).await?;
        Ok((id, expires))
    }

    /// The session by that id, while it has not expired, was not closed and its access key
    /// still exists (the key's account: a key never changes account).
    pub async fn dashboard_session(
        &self,
        session_id: &str,
        now: Timestamp,
    ) -> Result<Option<DashboardSession>> {
        let row = sqlx::query(
            "SELECT k.account_id, k.access_key_id FROM dashboard_sessions s \
             JOIN access_keys k ON k.access_key_id = s.access_key_id AND k.account_id = s.account_id \
             WHERE s.session_id = $1 AND s.expires_at > $2",
        )
        .bind(session_hash(session_id))
        .bind(now.millis())
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok(DashboardSession {
                account_id: text(&r, "account_id")?,
                access_key_id: text(&r, "access_key_id")?,
            })
        })
        .transpose()
    }

    /// Signs a session out, on every replica at once.
    pub async fn close_dashboard_session(&self, session_id: &str) -> Result<()> {
        let mut tx = self.write_tx().await?;
        sqlx::query("DELETE FROM dashboard_sessions WHERE session_id = $1")
            .bind(session_hash(session_id))
            .execute(&mut *tx)
            .await?;
        self.commit(tx).await?;
        Ok(())
    }
}
