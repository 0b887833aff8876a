//! `GET /metrics`: the counts of the telemetry catalogue, and the gauges read from the
//! database at scrape time (docs/metrics.md).

use axum::response::{IntoResponse, Response};
use gitsync_model::SyncType;
use gitsync_store::{
    COMMIT_STATUS_DELIVERER, EVENTBRIDGE_DELIVERER, NOTIFICATION_DELIVERER, PR_COMMENT_DELIVERER,
    Store,
};
use gitsync_telemetry::{ACTIVE_BLOCKERS, NOTIFICATIONS_PENDING, Reading};

/// The deliverers this server has: the only values of the `deliverer` label.
const DELIVERERS: &[&str] = &[
    NOTIFICATION_DELIVERER,
    EVENTBRIDGE_DELIVERER,
    COMMIT_STATUS_DELIVERER,
    PR_COMMENT_DELIVERER,
];

pub async fn scrape(store: Store) -> Response {
    let mut gauges: Vec<Reading> = Vec::new();
    match store.operator_gauges().await {
        Ok((pending, blockers)) => {
            let of = |rows: &[(String, i64)], key: &str| {
                rows.iter().find(|(k, _)| k == key).map_or(0, |(_, n)| *n) as f64
            };
            for deliverer in DELIVERERS {
                gauges.push((
                    &NOTIFICATIONS_PENDING,
                    vec![deliverer.to_string()],
                    of(&pending, deliverer),
                ));
            }
            for sync_type in SyncType::ALL {
                gauges.push((
                    &ACTIVE_BLOCKERS,
                    vec![sync_type.as_str().to_string()],
                    of(&blockers, sync_type.as_str()),
                ));
            }
        }
        // The counts still answer; the gauges are left out rather than reported as zero.
        Err(e) => tracing::warn!(error = %e, "cannot read the gauges for /metrics"),
    }
    (
        [(
            http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        gitsync_telemetry::render(&gauges),
    )
        .into_response()
}
