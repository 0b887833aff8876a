//! Decoding helpers shared by the store modules.

use crate::{Result, StoreError};
use gitsync_model::Revision;
use sqlx::Row;
use sqlx::any::AnyRow;

pub(crate) fn text(row: &AnyRow, column: &str) -> Result<String> {
    Ok(row.try_get::<String, _>(column)?)
}

pub(crate) fn opt_text(row: &AnyRow, column: &str) -> Result<Option<String>> {
    Ok(row.try_get::<Option<String>, _>(column)?)
}

pub(crate) fn int(row: &AnyRow, column: &str) -> Result<i64> {
    Ok(row.try_get::<i64, _>(column)?)
}

pub(crate) fn opt_int(row: &AnyRow, column: &str) -> Result<Option<i64>> {
    Ok(row.try_get::<Option<i64>, _>(column)?)
}

/// Parses a stored enum spelling, treating an unknown one as corruption rather than guessing.
pub(crate) fn parsed<T>(row: &AnyRow, column: &str, parse: fn(&str) -> Option<T>) -> Result<T> {
    let value = text(row, column)?;
    parse(&value).ok_or_else(|| StoreError::corrupt(format!("{column} = '{value}'")))
}

/// `ENABLED`/`DISABLED` toggles are kept as their wire spelling.
pub(crate) fn toggle(row: &AnyRow, column: &str) -> Result<Option<bool>> {
    Ok(opt_text(row, column)?.map(|v| v == "ENABLED"))
}

pub(crate) fn toggle_text(value: Option<bool>) -> Option<&'static str> {
    value.map(|v| if v { "ENABLED" } else { "DISABLED" })
}

/// Whether a database error is a uniqueness violation (a concurrent create of the same key).
pub(crate) fn is_unique_violation(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Database(db) => {
            db.is_unique_violation() || db.message().contains("UNIQUE constraint failed")
        }
        _ => false,
    }
}

/// A write's result, with a uniqueness violation (a concurrent create of the same key, or a
/// create of an existing one) reported as `AlreadyExists` with `message`.
pub(crate) fn unique<T>(
    result: std::result::Result<T, sqlx::Error>,
    message: impl FnOnce() -> String,
) -> Result<T> {
    match result {
        Err(e) if is_unique_violation(&e) => Err(StoreError::AlreadyExists(message())),
        other => Ok(other?),
    }
}

/// A stored revision (JSON).
pub(crate) fn revision_json(value: &str) -> Result<Revision> {
    serde_json::from_str(value).map_err(StoreError::corrupt)
}

/// The error a worker gets once its lease was taken over.
pub(crate) fn lease_lost(what: &str) -> StoreError {
    StoreError::LeaseLost(format!("lease on {what} was lost to another worker"))
}

/// A query over the `Any` driver, as `sqlx::query` makes it.
pub(crate) type AnyQuery<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>;

/// Binds the keys of the engine's leased rows, written once: every statement on a watched branch
/// or a sync target names its row with these consecutive parameters.
pub(crate) trait BindKey {
    /// account, region, sync type, repository key, branch.
    fn bind_branch(self, key: &crate::BranchKey) -> Self;
    /// account, region, sync type, target key.
    fn bind_target(self, claim: &crate::ClaimedTarget) -> Self;
}

impl BindKey for AnyQuery<'_> {
    fn bind_branch(self, key: &crate::BranchKey) -> Self {
        self.bind(key.tenant.account_id.clone())
            .bind(key.tenant.region.clone())
            .bind(key.sync_type.as_str())
            .bind(key.repository.as_key())
            .bind(key.branch.clone())
    }

    fn bind_target(self, claim: &crate::ClaimedTarget) -> Self {
        self.bind(claim.tenant.account_id.clone())
            .bind(claim.tenant.region.clone())
            .bind(claim.sync_type.as_str())
            .bind(claim.target.key())
    }
}
