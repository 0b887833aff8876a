//! Sync history (attempts, events, blockers) in wire shapes.
//!
//! CodeConnections and Proton spell these shapes with the same members (PascalCase on one wire,
//! camelCase on the other) but as distinct generated types, and they differ only in `Revision`.
//! This macro writes the conversions once for a DTO module; each API supplies `revision_out`.

macro_rules! history_conversions {
    ($dto:ident) => {
        fn repository_attempt_out(
            a: gitsync_model::RepositorySyncAttempt,
        ) -> crate::dto::$dto::RepositorySyncAttempt {
            crate::dto::$dto::RepositorySyncAttempt {
                events: a
                    .events
                    .into_iter()
                    .map(|e| crate::dto::$dto::RepositorySyncEvent {
                        event: e.event,
                        external_id: e.external_id,
                        time: e.time.into(),
                        r#type: e.event_type,
                    })
                    .collect(),
                started_at: a.started_at.into(),
                status: crate::dto::$dto::RepositorySyncStatus::parse(a.status.as_str())
                    .unwrap_or_default(),
            }
        }

        fn resource_attempt_out(
            a: gitsync_model::ResourceSyncAttempt,
        ) -> crate::dto::$dto::ResourceSyncAttempt {
            crate::dto::$dto::ResourceSyncAttempt {
                events: a
                    .events
                    .into_iter()
                    .map(|e| crate::dto::$dto::ResourceSyncEvent {
                        event: e.event,
                        external_id: e.external_id,
                        time: e.time.into(),
                        r#type: e.event_type,
                    })
                    .collect(),
                initial_revision: revision_out(a.initial_revision),
                started_at: a.started_at.into(),
                status: crate::dto::$dto::ResourceSyncStatus::parse(a.status.as_str())
                    .unwrap_or_default(),
                target: a.target,
                target_revision: revision_out(a.target_revision),
            }
        }

        fn blocker_out(b: gitsync_model::SyncBlocker) -> crate::dto::$dto::SyncBlocker {
            crate::dto::$dto::SyncBlocker {
                contexts: Some(
                    b.contexts
                        .into_iter()
                        .map(|(key, value)| crate::dto::$dto::SyncBlockerContext { key, value })
                        .collect(),
                ),
                created_at: b.created_at.into(),
                created_reason: b.created_reason,
                id: b.id,
                resolved_at: b.resolved_at.map(Into::into),
                resolved_reason: b.resolved_reason,
                status: crate::dto::$dto::BlockerStatus::parse(b.status.as_str())
                    .unwrap_or_default(),
                r#type: crate::dto::$dto::BlockerType::Automated,
            }
        }
    };
}

pub(crate) use history_conversions;
