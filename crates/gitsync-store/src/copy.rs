//! Moving an installation from one database to another (`gitsync migrate-store`).

use crate::{Backend, Result, Store, StoreError};
use sqlx::any::AnyRow;
use sqlx::{AssertSqlSafe, Row};

/// Every table, in an order that needs no foreign keys (there are none). A migration that
/// adds a table adds it here: a store test compares this with the schema, since a table left
/// out would be left behind without a word.
pub const TABLES: &[&str] = &[
    "access_keys",
    "connections",
    "hosts",
    "repository_links",
    "sync_configurations",
    "tags",
    "proton_repositories",
    "template_sync_configs",
    "service_sync_configs",
    "sync_targets",
    "resource_sync_attempts",
    "resource_sync_events",
    "repository_sync_attempts",
    "repository_sync_events",
    "sync_blockers",
    "watched_branches",
    "webhook_secrets",
    "webhook_deliveries",
    "proton_templates",
    "proton_template_versions",
    "template_bundles",
    "proton_environments",
    "proton_services",
    "proton_service_instances",
    "proton_deployments",
    "proton_deployment_events",
    "proton_stack_bindings",
    "proton_service_pipelines",
    "proton_account_settings",
    "service_sync_branches",
    "account_policies",
    "notification_targets",
    "outbox",
    "pull_requests",
    "pull_request_previews",
    "dashboard_sessions",
];

/// Tables whose id column the database generates.
const IDENTITY: &[(&str, &str)] = &[
    ("resource_sync_attempts", "attempt_id"),
    ("repository_sync_attempts", "attempt_id"),
    ("webhook_deliveries", "delivery_id"),
    ("outbox", "delivery_id"),
];

enum Value {
    Int(Option<i64>),
    Text(Option<String>),
}

fn read(row: &AnyRow, column: &str, integer: bool) -> Result<Value> {
    if integer {
        let v = match row.try_get::<Option<i64>, _>(column) {
            Ok(v) => v,
            Err(_) => row.try_get::<Option<i32>, _>(column)?.map(i64::from),
        };
        Ok(Value::Int(v))
    } else {
        Ok(Value::Text(row.try_get::<Option<String>, _>(column)?))
    }
}

impl Store {
    /// The columns of a table in this database, with whether each holds integers.
    async fn columns(&self, table: &str) -> Result<Vec<(String, bool)>> {
        let rows = match self.backend {
            Backend::Sqlite => sqlx::query(AssertSqlSafe(format!("SELECT name, type FROM pragma_table_info('{table}')")))
                .fetch_all(&self.pool)
                .await?
                .iter()
                .map(|r| Ok((r.try_get::<String, _>(0)?, r.try_get::<String, _>(1)?)))
                .collect::<Result<Vec<_>>>()?,
            Backend::Postgres => sqlx::query(
                "SELECT column_name::text, data_type::text FROM information_schema.columns \
                 WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position",
            )
            .bind(table)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| Ok((r.try_get::<String, _>(0)?, r.try_get::<String, _>(1)?)))
            .collect::<Result<Vec<_>>>()?,
        };
        Ok(rows
            .into_iter()
            .map(|(name, ty)| (name, ty.to_ascii_lowercase().contains("int")))
            .collect())
    }

    /// The tables of this database's schema (not the migrations' own bookkeeping).
    pub async fn tables(&self) -> Result<Vec<String>> {
        let sql = match self.backend {
            Backend::Sqlite => {
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' \
                 AND name <> 'schema_migrations' ORDER BY name"
            }
            Backend::Postgres => {
                "SELECT table_name::text FROM information_schema.tables WHERE table_schema = current_schema() \
                 AND table_type = 'BASE TABLE' AND table_name <> 'schema_migrations' ORDER BY table_name"
            }
        };
        sqlx::query(sql)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| Ok(r.try_get::<String, _>(0)?))
            .collect()
    }

    async fn row_count(&self, table: &str) -> Result<i64> {
        Ok(
            sqlx::query(AssertSqlSafe(format!("SELECT COUNT(*) FROM {table}")))
                .fetch_one(&self.pool)
                .await?
                .try_get::<i64, _>(0)?,
        )
    }

    /// Copies every row of this store into `target`, which must be freshly migrated and empty.
    /// Sealed secrets are copied as they are: the target must use the same master key. Answers
    /// the number of rows copied per table.
    pub async fn copy_into(&self, target: &Store) -> Result<Vec<(&'static str, u64)>> {
        for table in TABLES {
            if target.row_count(table).await? > 0 {
                return Err(StoreError::Conflict(format!(
                    "the target database is not empty: table {table} has rows"
                )));
            }
        }
        let mut tx = target.write_tx().await?;
        let mut copied = Vec::new();
        for &table in TABLES {
            let columns = target.columns(table).await?;
            let names: Vec<&str> = columns.iter().map(|(n, _)| n.as_str()).collect();
            let placeholders: Vec<String> = (1..=names.len()).map(|i| format!("${i}")).collect();
            let overriding = if target.backend == Backend::Postgres
                && IDENTITY.iter().any(|(t, _)| *t == table)
            {
                " OVERRIDING SYSTEM VALUE"
            } else {
                ""
            };
            let insert = format!(
                "INSERT INTO {table} ({}){overriding} VALUES ({})",
                names.join(", "),
                placeholders.join(", ")
            );
            let select = format!("SELECT {} FROM {table}", names.join(", "));
            let rows = sqlx::query(AssertSqlSafe(select))
                .fetch_all(&self.pool)
                .await?;
            for row in &rows {
                let mut query = sqlx::query(AssertSqlSafe(insert.clone()));
                for (name, integer) in &columns {
                    query = match read(row, name, *integer)? {
                        Value::Int(v) => query.bind(v),
                        Value::Text(v) => query.bind(v),
                    };
                }
                query.execute(&mut *tx).await?;
            }
            copied.push((table, rows.len() as u64));
        }
        if target.backend == Backend::Postgres {
            // Generated ids continue after the copied ones.
            for (table, column) in IDENTITY {
                let sql = format!(
                    "SELECT setval(pg_get_serial_sequence('{table}', '{column}'), COALESCE((SELECT MAX({column}) FROM {table}), 0) + 1, false)"
                );
                sqlx::query(AssertSqlSafe(sql)).execute(&mut *tx).await?;
            }
        }
        self.commit(tx).await?;
        Ok(copied)
    }
}
