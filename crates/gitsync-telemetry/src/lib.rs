//! What gitsync tells its operators, defined once: every observable thing is an [`Event`] of
//! this catalogue, and emitting one both logs it and moves its metrics. [`render`] answers
//! `GET /metrics` in the Prometheus text format (version 0.0.4), with the gauges the caller
//! reads at scrape time. docs/metrics.md describes each metric; a unit test holds the two
//! together.
//!
//! Metrics are per process (each replica exposes its own) and carry no tenant: label values come
//! only from closed sets (services, served operations, sync types, outcomes), never from what a
//! client or a repository says, so no one can grow the label space.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

/// How a metric aggregates.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram(&'static [f64]),
}

/// One metric: its name, what it means, how it aggregates and its labels.
#[derive(Debug, Clone, Copy)]
pub struct Metric {
    pub name: &'static str,
    pub help: &'static str,
    pub kind: Kind,
    pub labels: &'static [&'static str],
}

/// Request durations: 1 ms to 10 s.
const FAST: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Sync durations: 1 s to an hour.
const SLOW: &[f64] = &[
    1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0,
];

pub const API_REQUESTS: Metric = Metric {
    name: "gitsync_api_requests_total",
    help: "AWS API requests answered, by service, operation and HTTP status code.",
    kind: Kind::Counter,
    labels: &["service", "operation", "code"],
};
pub const API_REQUEST_DURATION: Metric = Metric {
    name: "gitsync_api_request_duration_seconds",
    help: "How long AWS API requests took to answer, by service.",
    kind: Kind::Histogram(FAST),
    labels: &["service"],
};
pub const RESOURCE_SYNC_ATTEMPTS: Metric = Metric {
    name: "gitsync_resource_sync_attempts_total",
    help: "Resource sync attempts ended, by sync type and status (SUCCEEDED, FAILED).",
    kind: Kind::Counter,
    labels: &["sync_type", "status"],
};
pub const RESOURCE_SYNC_DURATION: Metric = Metric {
    name: "gitsync_resource_sync_duration_seconds",
    help: "How long resource sync attempts ran, by sync type.",
    kind: Kind::Histogram(SLOW),
    labels: &["sync_type"],
};
pub const REPOSITORY_SYNCS: Metric = Metric {
    name: "gitsync_repository_syncs_total",
    help: "Repository syncs (branch checks that found a new commit, or failed) ended, by status.",
    kind: Kind::Counter,
    labels: &["status"],
};
pub const GIT_REF_LISTINGS: Metric = Metric {
    name: "gitsync_git_ref_listings_total",
    help: "Remote ref listings (smart HTTP ls-refs in process, or git ls-remote), by outcome (ok, error).",
    kind: Kind::Counter,
    labels: &["outcome"],
};
pub const GIT_FETCHES: Metric = Metric {
    name: "gitsync_git_fetches_total",
    help: "Fetches into repository mirrors (git fetch), by outcome (ok, error).",
    kind: Kind::Counter,
    labels: &["outcome"],
};
pub const WEBHOOK_DELIVERIES: Metric = Metric {
    name: "gitsync_webhook_deliveries_total",
    help: "Webhook deliveries received, by provider and verdict (accepted, unverified, malformed, unavailable).",
    kind: Kind::Counter,
    labels: &["provider", "verdict"],
};
pub const OUTBOX_DELIVERIES: Metric = Metric {
    name: "gitsync_outbox_deliveries_total",
    help: "Outbox deliveries tried (notifications, commit statuses, pull request comments), by deliverer and outcome (delivered, retrying, given_up).",
    kind: Kind::Counter,
    labels: &["deliverer", "outcome"],
};
pub const ACTIVE_BLOCKERS: Metric = Metric {
    name: "gitsync_active_blockers",
    help: "Sync blockers active now, over every tenant, by sync type.",
    kind: Kind::Gauge,
    labels: &["sync_type"],
};
pub const NOTIFICATIONS_PENDING: Metric = Metric {
    name: "gitsync_notifications_pending",
    help: "Outbox messages waiting for delivery now, over every tenant, by deliverer.",
    kind: Kind::Gauge,
    labels: &["deliverer"],
};

/// Every metric, in the order `/metrics` shows them.
pub const METRICS: &[Metric] = &[
    API_REQUESTS,
    API_REQUEST_DURATION,
    RESOURCE_SYNC_ATTEMPTS,
    RESOURCE_SYNC_DURATION,
    REPOSITORY_SYNCS,
    GIT_REF_LISTINGS,
    GIT_FETCHES,
    WEBHOOK_DELIVERIES,
    OUTBOX_DELIVERIES,
    ACTIVE_BLOCKERS,
    NOTIFICATIONS_PENDING,
];

/// Something that happened that operators see: logged, and counted.
#[derive(Debug, Clone)]
pub enum Event<'a> {
    /// An AWS API request was answered. `operation` is a served operation's name, or
    /// `unknown` (a client's made-up name never becomes a label).
    ApiRequest {
        request_id: &'a str,
        service: &'static str,
        operation: &'a str,
        status: u16,
        /// The error's code, empty on success.
        error: &'a str,
        elapsed: Duration,
    },
    /// A resource sync attempt ended.
    ResourceSyncEnded {
        sync_type: &'static str,
        account: &'a str,
        target: &'a str,
        commit: &'a str,
        /// `None` on success; the failure's reason otherwise.
        failure: Option<&'a str>,
        elapsed: Duration,
    },
    /// A repository sync ended: the branch's new commit was read (`Ok`), or it failed.
    RepositorySyncEnded {
        commit: Option<&'a str>,
        targets: usize,
        affected: usize,
        failure: Option<&'a str>,
    },
    /// `git ls-remote` or `git fetch` ran.
    GitCall { fetch: bool, ok: bool },
    /// A webhook delivery was answered.
    WebhookDelivery {
        provider: &'static str,
        verdict: &'static str,
    },
    /// An outbox delivery was tried.
    OutboxDelivery {
        deliverer: &'static str,
        outcome: &'static str,
    },
}

impl Event<'_> {
    /// Logs the event and moves its metrics.
    pub fn emit(&self) {
        let registry = registry();
        match self {
            Event::ApiRequest {
                request_id,
                service,
                operation,
                status,
                error,
                elapsed,
            } => {
                tracing::info!(
                    request_id = %request_id,
                    service = *service,
                    operation = %operation,
                    status = *status,
                    error = *error,
                    micros = elapsed.as_micros() as u64,
                    "api request"
                );
                registry.add(
                    &API_REQUESTS,
                    &[service, operation, &status.to_string()],
                    1.0,
                );
                registry.observe(&API_REQUEST_DURATION, &[service], elapsed.as_secs_f64());
            }
            Event::ResourceSyncEnded {
                sync_type,
                account,
                target,
                commit,
                failure,
                elapsed,
            } => {
                let status = match failure {
                    None => {
                        tracing::info!(
                            sync_type = *sync_type,
                            account = %account,
                            target = %target,
                            commit = %commit,
                            seconds = elapsed.as_secs(),
                            "resource sync succeeded"
                        );
                        "SUCCEEDED"
                    }
                    // A failure is what an operator looks for in the log: say what failed and
                    // why (cut short: the reason may quote a repository's content).
                    Some(reason) => {
                        tracing::warn!(
                            sync_type = *sync_type,
                            account = %account,
                            target = %target,
                            commit = %commit,
                            seconds = elapsed.as_secs(),
                            reason = %reason.chars().take(500).collect::<String>(),
                            "resource sync failed"
                        );
                        "FAILED"
                    }
                };
                registry.add(&RESOURCE_SYNC_ATTEMPTS, &[sync_type, status], 1.0);
                registry.observe(&RESOURCE_SYNC_DURATION, &[sync_type], elapsed.as_secs_f64());
            }
            Event::RepositorySyncEnded {
                commit,
                targets,
                affected,
                failure,
            } => {
                let status = match failure {
                    None => {
                        tracing::info!(
                            commit = commit.unwrap_or(""),
                            targets,
                            affected,
                            "repository sync finished"
                        );
                        "SUCCEEDED"
                    }
                    Some(reason) => {
                        tracing::warn!(reason = %reason, "repository sync failed");
                        "FAILED"
                    }
                };
                registry.add(&REPOSITORY_SYNCS, &[status], 1.0);
            }
            Event::GitCall { fetch, ok } => {
                let metric = if *fetch {
                    &GIT_FETCHES
                } else {
                    &GIT_REF_LISTINGS
                };
                registry.add(metric, &[if *ok { "ok" } else { "error" }], 1.0);
            }
            Event::WebhookDelivery { provider, verdict } => {
                registry.add(&WEBHOOK_DELIVERIES, &[provider, verdict], 1.0);
            }
            Event::OutboxDelivery { deliverer, outcome } => {
                registry.add(&OUTBOX_DELIVERIES, &[deliverer, outcome], 1.0);
            }
        }
    }
}

/// A gauge's value read at scrape time: the metric, its label values, the value.
pub type Reading = (&'static Metric, Vec<String>, f64);

/// One series: a counter's or gauge's value, or a histogram's buckets, sum and count.
#[derive(Debug, Clone, Default)]
struct Series {
    value: f64,
    buckets: Vec<u64>,
    count: u64,
}

#[derive(Default)]
struct Registry {
    series: Mutex<BTreeMap<(&'static str, Vec<String>), Series>>,
}

fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(Registry::default)
}

impl Registry {
    fn key(metric: &Metric, labels: &[&str]) -> (&'static str, Vec<String>) {
        debug_assert_eq!(labels.len(), metric.labels.len(), "{}", metric.name);
        (metric.name, labels.iter().map(|l| l.to_string()).collect())
    }

    fn add(&self, metric: &Metric, labels: &[&str], by: f64) {
        let mut series = self.series.lock().unwrap_or_else(|e| e.into_inner());
        series.entry(Self::key(metric, labels)).or_default().value += by;
    }

    fn observe(&self, metric: &Metric, labels: &[&str], value: f64) {
        let Kind::Histogram(bounds) = metric.kind else {
            return;
        };
        let mut series = self.series.lock().unwrap_or_else(|e| e.into_inner());
        let s = series.entry(Self::key(metric, labels)).or_default();
        if s.buckets.is_empty() {
            s.buckets = vec![0; bounds.len()];
        }
        for (bucket, bound) in s.buckets.iter_mut().zip(bounds.iter()) {
            if value <= *bound {
                *bucket += 1;
            }
        }
        s.value += value;
        s.count += 1;
    }
}

/// A label value, escaped as the text format asks.
fn escaped(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn label_set(names: &[&str], values: &[String], extra: Option<(&str, String)>) -> String {
    let mut pairs: Vec<String> = names
        .iter()
        .zip(values)
        .map(|(n, v)| format!("{n}=\"{}\"", escaped(v)))
        .collect();
    if let Some((n, v)) = extra {
        pairs.push(format!("{n}=\"{v}\""));
    }
    if pairs.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", pairs.join(","))
    }
}

/// Every metric in the Prometheus text format: the counts so far, and `gauges` as read now.
pub fn render(gauges: &[Reading]) -> String {
    let series = registry()
        .series
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let mut out = String::new();
    for metric in METRICS {
        let kind = match metric.kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram(_) => "histogram",
        };
        let _ = writeln!(out, "# HELP {} {}", metric.name, metric.help);
        let _ = writeln!(out, "# TYPE {} {kind}", metric.name);
        if metric.kind == Kind::Gauge {
            for (m, labels, value) in gauges {
                if m.name == metric.name {
                    let _ = writeln!(
                        out,
                        "{}{} {value}",
                        metric.name,
                        label_set(metric.labels, labels, None)
                    );
                }
            }
            continue;
        }
        for ((name, labels), s) in series.range((metric.name, Vec::new())..) {
            if *name != metric.name {
                break;
            }
            match metric.kind {
                Kind::Histogram(bounds) => {
                    for (bound, bucket) in bounds.iter().zip(&s.buckets) {
                        let _ = writeln!(
                            out,
                            "{}_bucket{} {bucket}",
                            metric.name,
                            label_set(metric.labels, labels, Some(("le", bound.to_string())))
                        );
                    }
                    let _ = writeln!(
                        out,
                        "{}_bucket{} {}",
                        metric.name,
                        label_set(metric.labels, labels, Some(("le", "+Inf".into()))),
                        s.count
                    );
                    let set = label_set(metric.labels, labels, None);
                    let _ = writeln!(out, "{}_sum{set} {}", metric.name, s.value);
                    let _ = writeln!(out, "{}_count{set} {}", metric.name, s.count);
                }
                _ => {
                    let _ = writeln!(
                        out,
                        "{}{} {}",
                        metric.name,
                        label_set(metric.labels, labels, None),
                        s.value
                    );
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_count_and_render_as_prometheus_text() {
        Event::ApiRequest {
            request_id: "r",
            service: "proton",
            operation: "GetTemplateSyncStatus",
            status: 200,
            error: "",
            elapsed: Duration::from_millis(3),
        }
        .emit();
        Event::GitCall {
            fetch: true,
            ok: false,
        }
        .emit();
        let text = render(&[(&ACTIVE_BLOCKERS, vec!["CFN_STACK_SYNC".into()], 2.0)]);
        assert!(text.contains("# TYPE gitsync_api_requests_total counter\n"));
        assert!(text.contains(
            "gitsync_api_requests_total{service=\"proton\",operation=\"GetTemplateSyncStatus\",code=\"200\"} "
        ));
        assert!(text.contains(
            "gitsync_api_request_duration_seconds_bucket{service=\"proton\",le=\"0.005\"} "
        ));
        assert!(text.contains(
            "gitsync_api_request_duration_seconds_bucket{service=\"proton\",le=\"+Inf\"} "
        ));
        assert!(text.contains("gitsync_git_fetches_total{outcome=\"error\"} "));
        assert!(text.contains("gitsync_active_blockers{sync_type=\"CFN_STACK_SYNC\"} 2\n"));
        // Every metric is described, even before it has a value.
        for metric in METRICS {
            assert!(
                text.contains(&format!("# HELP {} ", metric.name)),
                "{}",
                metric.name
            );
        }
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escaped("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }

    #[test]
    fn every_metric_is_documented() {
        let doc = include_str!("../../../docs/metrics.md");
        for metric in METRICS {
            assert!(
                doc.contains(&format!("`{}`", metric.name)),
                "docs/metrics.md does not describe {}",
                metric.name
            );
        }
    }
}
