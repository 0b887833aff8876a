//! Webhook deliveries (`POST /webhooks/{github|gitlab|bitbucket|generic}`) and
//! `gitsync webhooks set-secret`.

use crate::cli::WebhooksCommand;
use crate::connections::tenant_of;
use anyhow::{Context, Result, bail};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use gitsync_engine::Engine;
use gitsync_engine::webhook::{Provider, parse_push, verify};
use gitsync_model::{ProtonProvider, Tenant};
use gitsync_store::Store;
use std::sync::Arc;

#[derive(Clone)]
pub struct Webhooks {
    pub store: Store,
    pub engine: Arc<Engine>,
    /// Deliveries refused since the last log line about them: counted, never stored.
    pub unverified: Arc<UnverifiedCounter>,
}

/// Counts deliveries no secret verifies. An unsigned flood costs a counter, not storage or log
/// volume: the count is logged at most once a minute.
#[derive(Default)]
pub struct UnverifiedCounter {
    since_log: std::sync::atomic::AtomicU64,
    total: std::sync::atomic::AtomicU64,
    last_log: std::sync::Mutex<Option<std::time::Instant>>,
}

impl UnverifiedCounter {
    fn refused(&self) -> u64 {
        use std::sync::atomic::Ordering::Relaxed;
        self.since_log.fetch_add(1, Relaxed);
        let total = self.total.fetch_add(1, Relaxed) + 1;
        let mut last = self.last_log.lock().unwrap_or_else(|p| p.into_inner());
        let due = last.is_none_or(|at| at.elapsed() >= std::time::Duration::from_secs(60));
        if due {
            *last = Some(std::time::Instant::now());
            let count = self.since_log.swap(0, Relaxed);
            tracing::warn!(
                refused = count,
                total,
                "webhook deliveries refused: no secret verifies them (logged at most once a minute)"
            );
        }
        total
    }
}

/// A sender's text for a message or a log line: at most 100 characters.
fn shown(text: &str) -> String {
    let mut out: String = text.chars().take(100).collect();
    if out.len() < text.len() {
        out.push('…');
    }
    out
}

fn answer(status: StatusCode, message: String) -> Response {
    (
        status,
        [("content-type", "application/json")],
        serde_json::json!({ "message": message }).to_string(),
    )
        .into_response()
}

/// Verifies a delivery against every tenant's secret for its repository, records it, then
/// triggers an immediate check of the pushed branch for each tenant it verified for.
pub async fn deliver(
    State(hooks): State<Webhooks>,
    Path(provider): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let response = deliver_once(&hooks, &provider, &headers, &body).await;
    gitsync_telemetry::Event::WebhookDelivery {
        provider: Provider::from_path(&provider).map_or("unknown", Provider::as_str),
        verdict: match response.status() {
            StatusCode::ACCEPTED => "accepted",
            StatusCode::UNAUTHORIZED => "unverified",
            StatusCode::SERVICE_UNAVAILABLE => "unavailable",
            _ => "malformed",
        },
    }
    .emit();
    response
}

async fn deliver_once(
    hooks: &Webhooks,
    provider: &str,
    headers: &HeaderMap,
    body: &Bytes,
) -> Response {
    let Some(provider) = Provider::from_path(provider) else {
        return answer(
            StatusCode::NOT_FOUND,
            format!(
                "no webhook endpoint for '{provider}'; use github, gitlab, bitbucket or generic"
            ),
        );
    };
    let push = match parse_push(provider, body) {
        Ok(push) => push,
        Err(reason) => {
            return answer(
                StatusCode::BAD_REQUEST,
                format!("not a push or pull request delivery: {}", shown(&reason)),
            );
        }
    };
    let full_name = format!("{}/{}", push.owner, push.repository);
    if full_name.len() > 512 || push.branch.len() > 256 {
        return answer(
            StatusCode::BAD_REQUEST,
            "not a push or pull request delivery: repository or branch name too long".into(),
        );
    }
    let secrets = match hooks
        .store
        .webhook_secrets(&push.owner, &push.repository)
        .await
    {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot read webhook secrets");
            return answer(
                StatusCode::SERVICE_UNAVAILABLE,
                "cannot read webhook secrets; try again".into(),
            );
        }
    };
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let verified: Vec<_> = secrets
        .into_iter()
        .filter(|(_, secret)| verify(provider, &header, body, secret))
        .map(|(t, _)| t)
        .collect();
    // Verified first: nothing an unauthenticated sender says is stored.
    if verified.is_empty() {
        hooks.unverified.refused();
        return answer(
            StatusCode::UNAUTHORIZED,
            format!(
                "delivery for {} is not signed with a secret set for that repository",
                shown(&full_name)
            ),
        );
    }
    // Recorded before anything is acknowledged.
    let delivery = match hooks
        .store
        .record_webhook_delivery(
            provider.as_str(),
            &full_name,
            &push.branch,
            push.sha.as_deref(),
            &verified,
            "accepted",
        )
        .await
    {
        Ok(id) => id,
        Err(e) => {
            tracing::error!(error = %e, "cannot record a webhook delivery");
            return answer(
                StatusCode::SERVICE_UNAVAILABLE,
                "cannot record the delivery; try again".into(),
            );
        }
    };
    let mut triggered = 0;
    for tenant in &verified {
        match hooks
            .store
            .trigger_branch(tenant, &push.owner, &push.repository, &push.branch)
            .await
        {
            Ok(n) => triggered += n,
            Err(e) => tracing::warn!(error = %e, "cannot trigger a branch check"),
        }
    }
    hooks.engine.wake();
    tracing::info!(delivery, repository = %full_name, branch = %push.branch, pull_request = ?push.pull_request, triggered, "webhook delivery accepted");
    (
        StatusCode::ACCEPTED,
        [("content-type", "application/json")],
        serde_json::json!({ "delivery": delivery, "branchesTriggered": triggered }).to_string(),
    )
        .into_response()
}

/// A secret from a file, without its trailing newline; an empty one is refused.
pub fn read_secret_file(path: &std::path::Path) -> Result<String> {
    let secret =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let secret = secret.trim_end_matches(['\n', '\r']);
    if secret.is_empty() {
        bail!("{} is empty", path.display());
    }
    Ok(secret.to_string())
}

pub async fn run_command(command: WebhooksCommand) -> Result<()> {
    match command {
        WebhooksCommand::SetSecret {
            repository_arn,
            secret_file,
            state,
        } => {
            let tenant = tenant_of(&repository_arn)?;
            let secret = read_secret_file(&secret_file)?;
            let state = state.open().await?;
            let (owner, repository) = secret_repository(&state, &tenant, &repository_arn).await?;
            state
                .store
                .set_webhook_secret(&tenant, &owner, &repository, secret.as_bytes())
                .await?;
            println!("webhook secret set for {owner}/{repository}");
        }
    }
    Ok(())
}

/// The `owner`, `repository` whose deliveries a secret verifies, from a repository link ARN or a
/// Proton repository ARN (`…:repository/github:owner/repo`); the resource must exist.
async fn secret_repository(
    state: &crate::state::State,
    tenant: &Tenant,
    arn: &str,
) -> Result<(String, String)> {
    if let Some((_, link_id)) = arn.rsplit_once(":repository-link/") {
        let link = state.store.get_repository_link(tenant, link_id).await?;
        return Ok((link.owner_id, link.repository_name));
    }
    let (provider, name) = arn
        .split_once(":repository/")
        .and_then(|(_, rest)| rest.split_once(':'))
        .with_context(|| {
            format!("'{arn}' is neither a repository link ARN nor a Proton repository ARN")
        })?;
    let provider = ProtonProvider::parse(&provider.to_ascii_uppercase())
        .with_context(|| format!("'{arn}' names an unknown repository provider '{provider}'"))?;
    let repository = state
        .store
        .get_proton_repository(tenant, provider, name)
        .await?;
    let (owner, repository) = repository
        .name
        .split_once('/')
        .with_context(|| format!("repository name '{}' is not owner/name", repository.name))?;
    Ok((owner.to_string(), repository.to_string()))
}
