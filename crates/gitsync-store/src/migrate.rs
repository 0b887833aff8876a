//! Schema migrations: numbered SQL files per backend, applied in order, each in one transaction.

use crate::{Backend, Result, Store};
use gitsync_model::Timestamp;
use sqlx::{AssertSqlSafe, Row};

const SQLITE: &[(i64, &str)] = &[
    (1, include_str!("../migrations/sqlite/0001_init.sql")),
    (2, include_str!("../migrations/sqlite/0002_engine.sql")),
    (3, include_str!("../migrations/sqlite/0003_templates.sql")),
    (4, include_str!("../migrations/sqlite/0004_services.sql")),
    (5, include_str!("../migrations/sqlite/0005_tenancy.sql")),
    (6, include_str!("../migrations/sqlite/0006_outbox.sql")),
    (
        7,
        include_str!("../migrations/sqlite/0007_target_parents.sql"),
    ),
    (
        8,
        include_str!("../migrations/sqlite/0008_proton_deployments.sql"),
    ),
    (
        9,
        include_str!("../migrations/sqlite/0009_outbox_order.sql"),
    ),
    (
        10,
        include_str!("../migrations/sqlite/0010_service_pipelines.sql"),
    ),
    (
        11,
        include_str!("../migrations/sqlite/0011_pull_requests.sql"),
    ),
    (
        12,
        include_str!("../migrations/sqlite/0012_eventbridge_targets.sql"),
    ),
    (
        13,
        include_str!("../migrations/sqlite/0013_dashboard_sessions.sql"),
    ),
    (
        14,
        include_str!("../migrations/sqlite/0014_watched_branch_links.sql"),
    ),
];
const POSTGRES: &[(i64, &str)] = &[
    (1, include_str!("../migrations/postgres/0001_init.sql")),
    (2, include_str!("../migrations/postgres/0002_engine.sql")),
    (3, include_str!("../migrations/postgres/0003_templates.sql")),
    (4, include_str!("../migrations/postgres/0004_services.sql")),
    (5, include_str!("../migrations/postgres/0005_tenancy.sql")),
    (6, include_str!("../migrations/postgres/0006_outbox.sql")),
    (
        7,
        include_str!("../migrations/postgres/0007_target_parents.sql"),
    ),
    (
        8,
        include_str!("../migrations/postgres/0008_proton_deployments.sql"),
    ),
    (
        9,
        include_str!("../migrations/postgres/0009_outbox_order.sql"),
    ),
    (
        10,
        include_str!("../migrations/postgres/0010_service_pipelines.sql"),
    ),
    (
        11,
        include_str!("../migrations/postgres/0011_pull_requests.sql"),
    ),
    (
        12,
        include_str!("../migrations/postgres/0012_eventbridge_targets.sql"),
    ),
    (
        13,
        include_str!("../migrations/postgres/0013_dashboard_sessions.sql"),
    ),
    (
        14,
        include_str!("../migrations/postgres/0014_watched_branch_links.sql"),
    ),
];

/// The PostgreSQL migrations' SQL, in order (tests name template databases after it, so a
/// changed migration never reuses a stale template).
pub fn postgres_migrations() -> impl Iterator<Item = &'static str> {
    POSTGRES.iter().map(|(_, sql)| *sql)
}

pub(crate) async fn run(store: &Store) -> Result<()> {
    let mut tx = store.write_tx().await?;
    if store.backend == Backend::Postgres {
        // Replicas may start together; one migrates while the others wait for this lock.
        sqlx::query("SELECT pg_advisory_xact_lock(7142026)")
            .execute(&mut *tx)
            .await?;
    }
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)",
    )
    .execute(&mut *tx)
    .await?;
    let current: i64 = sqlx::query("SELECT COALESCE(MAX(version), 0) AS v FROM schema_migrations")
        .fetch_one(&mut *tx)
        .await?
        .try_get("v")?;
    let migrations = match store.backend {
        Backend::Sqlite => SQLITE,
        Backend::Postgres => POSTGRES,
    };
    for (version, sql) in migrations.iter().filter(|(v, _)| *v > current) {
        for statement in split_statements(sql) {
            sqlx::query(AssertSqlSafe(statement))
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query("INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)")
            .bind(*version)
            .bind(Timestamp::now().millis())
            .execute(&mut *tx)
            .await?;
    }
    store.commit(tx).await?;
    Ok(())
}

/// Splits a migration file into statements: `;` at the end of a line ends one; `--` comments go.
fn split_statements(sql: &str) -> Vec<String> {
    let mut statements = Vec::new();
    let mut current = String::new();
    for line in sql.lines() {
        let line = line.split("--").next().unwrap_or("").trim_end();
        if line.trim().is_empty() {
            continue;
        }
        current.push_str(line);
        current.push('\n');
        if line.ends_with(';') {
            statements.push(std::mem::take(&mut current));
        }
    }
    if !current.trim().is_empty() {
        statements.push(current);
    }
    statements
}
