//! Persistence for gitsync.
//!
//! One [`Store`] over `sqlx`'s `Any` driver serves both backends: SQLite (a file in the data
//! directory, the embedded default) and PostgreSQL (several replicas). The SQL is written once, in
//! the subset both understand (`$n` parameters work on SQLite too); where the backends differ
//! (schema, write-transaction start) [`Backend`] says which. Every state change is one
//! transaction, and every query of tenant data is scoped by (account, region).
//!
//! Secrets (API secret keys, Git credentials, webhook secrets) are sealed with a key that lives
//! outside the database ([`Sealer`]).

mod accounts;
mod attempts;
mod branches;
mod connections;
mod copy;
mod dashboard;
mod deployments;
mod error;
mod history;
mod keys;
mod migrate;
mod outbox;
mod pipelines;
mod proton;
mod pulls;
mod rows;
mod secrets;
mod services;
mod sources;
mod status;
mod status_cache;
mod tags;
mod targets;
mod templates;
mod webhooks;

pub use attempts::{Applied, Closing, Effect, NewBlocker};
pub use branches::{BranchCheckResult, BranchKey, ClaimedBranch};
pub use copy::TABLES as COPIED_TABLES;
pub use dashboard::{
    BranchSync, DashboardSession, LatestAttempt, RepositoryHistoryEntry, RepositorySummary,
    TargetFilter, TargetState, TargetSummary,
};
pub use deployments::{
    Binding, ClaimedDeployment, DeployedResource, DeploymentEnd, DeploymentFilter,
};
pub use error::StoreError;
pub use history::{HistoryEntry, HistoryFilter};
pub use keys::{AccessKey, AccessKeySummary};
pub use migrate::postgres_migrations;
pub use outbox::{
    COMMIT_STATUS_DELIVERER, ClaimedDelivery, DeliverySummary, DueDelivery, EVENTBRIDGE_DELIVERER,
    NOTIFICATION_DELIVERER, NotificationTarget, commit_status_destination,
};
pub use pipelines::{AccountSettings, PipelineDeployment};
pub use pulls::{
    ClaimedPullRequest, PR_COMMENT_DELIVERER, PreviewRecord, PreviewsDone, StackPreview,
};
pub use secrets::{MasterKey, Sealer};
pub use services::{DeployedInstance, InstanceContext, InstanceWrite, NewEnvironment, NewService};
pub use sources::LinkSource;
pub use status::{NewResourceAttempt, RepositoryKey};
pub use tags::TaggedResource;
pub use targets::{ClaimedTarget, Release, TargetAdvance, TargetResult, TargetWatch};
pub use templates::{NewTemplateVersion, TemplateSpec, VersionRef};

use gitsync_model::Limits;
use gitsync_model::Timestamp;
use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::{Any, AnyPool, AssertSqlSafe, Row, Transaction};
use std::time::Duration;

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Which database engine a store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// The backend a database URL names (`sqlite://PATH` or `postgres://…`).
    pub fn of_url(url: &str) -> Result<Backend> {
        if url.starts_with("sqlite:") {
            Ok(Backend::Sqlite)
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Ok(Backend::Postgres)
        } else {
            Err(StoreError::Config(format!(
                "unsupported database URL '{url}': use sqlite://PATH or postgres://…"
            )))
        }
    }
}

/// A page of a listing: the items, and the sort key to continue after when there are more.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<String>,
}

impl<T> Page<T> {
    /// Cuts a listing sorted by `key`, fetched with one item more than `limit`, into a page: the
    /// extra item only says that there is more, and the last item's key is where to go on.
    pub(crate) fn cut(items: Vec<T>, limit: usize, key: fn(&T) -> String) -> Page<T> {
        let more = items.len() > limit;
        let items: Vec<T> = items.into_iter().take(limit).collect();
        let next = if more { items.last().map(key) } else { None };
        Page { items, next }
    }

    /// [`Page::cut`] of database rows, decoding only those on the page.
    pub(crate) fn from_rows(
        rows: Vec<sqlx::any::AnyRow>,
        limit: usize,
        decode: fn(&sqlx::any::AnyRow) -> Result<T>,
        key: fn(&T) -> String,
    ) -> Result<Page<T>> {
        let more = rows.len() > limit;
        let items = rows
            .iter()
            .take(limit)
            .map(decode)
            .collect::<Result<Vec<_>>>()?;
        let next = if more { items.last().map(key) } else { None };
        Ok(Page { items, next })
    }
}

/// The gitsync database.
#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    sealer: Sealer,
    limits: Limits,
    status_cache: std::sync::Arc<status_cache::StatusCache>,
}

impl Store {
    /// Opens (creating if needed) the database at `url` (`sqlite://path` or `postgres://…`) and
    /// brings its schema up to date.
    pub async fn open(url: &str, master_key: MasterKey, limits: Limits) -> Result<Store> {
        install_default_drivers();
        let backend = Backend::of_url(url)?;
        let url = match backend {
            // Create the file on first start; `mode=rwc` is SQLite's "read, write, create".
            Backend::Sqlite if !url.contains("mode=") => {
                let sep = if url.contains('?') { '&' } else { '?' };
                format!("{url}{sep}mode=rwc")
            }
            _ => url.to_string(),
        };
        let mut options = AnyPoolOptions::new().acquire_timeout(Duration::from_secs(30));
        if backend == Backend::Sqlite {
            options = options.max_connections(8).after_connect(|conn, _| {
                Box::pin(async move {
                    // WAL lets readers run beside the one writer; the busy timeout makes writers
                    // from other processes (the CLI while the server runs) wait instead of failing.
                    for pragma in [
                        "PRAGMA journal_mode = WAL",
                        "PRAGMA busy_timeout = 10000",
                        "PRAGMA synchronous = NORMAL",
                    ] {
                        sqlx::query(pragma).execute(&mut *conn).await?;
                    }
                    Ok(())
                })
            });
        }
        let pool = options.connect(&url).await?;
        let store = Store {
            pool,
            backend,
            sealer: Sealer::new(master_key),
            limits,
            status_cache: std::sync::Arc::new(status_cache::StatusCache::new(Duration::ZERO)),
        };
        migrate::run(&store).await?;
        Ok(store)
    }

    /// Keeps sync statuses in memory for up to `ttl` (zero: not at all), so that status reads
    /// answer without a database round trip while nothing changes. This process's own writes
    /// are seen at once; other processes' within `ttl` (see `status_cache`).
    pub fn with_status_cache(mut self, ttl: Duration) -> Store {
        self.status_cache = std::sync::Arc::new(status_cache::StatusCache::new(ttl));
        self
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    pub fn sealer(&self) -> &Sealer {
        &self.sealer
    }

    /// A transaction that will write. SQLite takes its write lock up front (`BEGIN IMMEDIATE`) so
    /// that two writers queue on the busy timeout instead of one failing on lock upgrade.
    async fn write_tx(&self) -> Result<Transaction<'static, Any>> {
        Ok(match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.pool.begin().await?,
        })
    }

    /// Commits a write transaction, and tells the status cache that what it read before may
    /// have changed. Every write transaction ends here.
    async fn commit(&self, tx: Transaction<'static, Any>) -> Result<()> {
        tx.commit().await?;
        self.status_cache.invalidate();
        Ok(())
    }

    /// The database's clock, in epoch milliseconds. Leases are stamped with it, so replicas whose
    /// own clocks disagree still agree on when a lease runs out.
    pub async fn now(&self) -> Result<Timestamp> {
        Ok(Timestamp(
            sqlx::query(AssertSqlSafe(format!("SELECT {}", self.clock())))
                .fetch_one(&self.pool)
                .await?
                .try_get::<i64, _>(0)?,
        ))
    }

    /// The database's clock in epoch milliseconds, as an SQL expression: a write that schedules
    /// from "now" reads the clock in the same statement instead of a round trip before it.
    pub(crate) fn clock(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite => "CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)",
            Backend::Postgres => "CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)",
        }
    }

    /// Closes every pooled connection.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}
