//! `gitsync history`: every resource sync attempt kept, newest first, a page at a time.

use crate::cli::{HistoryArgs, parse_duration};
use anyhow::{Context, Result, anyhow};
use gitsync_model::{ResourceSyncStatus, SyncType, Timestamp};
use gitsync_store::HistoryFilter;

/// A time given as RFC 3339 in UTC, or as an age (`7d`: seven days ago).
fn time(text: &str, now: Timestamp) -> Result<Timestamp> {
    if let Some(t) = Timestamp::parse_utc(text) {
        return Ok(t);
    }
    let age = parse_duration(text).map_err(|_| {
        anyhow!("'{text}' is neither a UTC time (2026-12-01T00:00:00Z) nor an age (30m, 12h, 7d)")
    })?;
    Ok(now.plus_millis(-(age.as_millis() as i64)))
}

pub async fn run(args: HistoryArgs) -> Result<()> {
    let now = Timestamp::now();
    let filter = HistoryFilter {
        sync_type: args
            .sync_type
            .as_deref()
            .map(|t| {
                SyncType::parse(t).with_context(|| {
                    format!("--sync-type {t}: use CFN_STACK_SYNC, TEMPLATE_SYNC or SERVICE_SYNC")
                })
            })
            .transpose()?,
        target: args.target.clone(),
        key: None,
        status: args
            .status
            .as_deref()
            .map(|s| {
                ResourceSyncStatus::parse(s).with_context(|| {
                    format!("--status {s}: use SUCCEEDED, FAILED, IN_PROGRESS or INITIATED")
                })
            })
            .transpose()?,
        since: args.since.as_deref().map(|t| time(t, now)).transpose()?,
        until: args.until.as_deref().map(|t| time(t, now)).transpose()?,
    };
    let state = args.state.open().await?;
    let tenant = args.tenant.tenant();
    let (entries, next) = state
        .store
        .resource_history(&tenant, &filter, args.next_token, args.limit)
        .await?;
    if entries.is_empty() {
        println!("No attempts match.");
    }
    for entry in &entries {
        let a = &entry.attempt;
        let took = entry
            .finished_at
            .map(|f| format!(", {} s", (f.millis() - a.started_at.millis()) / 1000))
            .unwrap_or_default();
        println!(
            "{}  {:<11} {:<14} {}  commit {} (from {}){took}",
            a.started_at.utc_string(),
            a.status.as_str(),
            entry.sync_type.as_str(),
            a.target,
            a.target_revision.sha,
            a.initial_revision.sha,
        );
        if args.events {
            for e in &a.events {
                crate::status::print_event("    ", e);
            }
        } else if let Some(last) = a.events.last() {
            println!("    {}: {}", last.event_type, last.event);
        }
    }
    if let Some(next) = next {
        println!("More: --next-token {next}");
    }
    Ok(())
}
