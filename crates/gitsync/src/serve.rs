//! `gitsync serve`: the HTTP listener for the AWS APIs and the health check.

use crate::cli::ServeArgs;
use crate::keys::credentials_section;
use crate::state::write_private;
use anyhow::{Context, Result};
use axum::Router;
use axum::response::Response;
use axum::routing::get;
use gitsync_api::Api;
use gitsync_deploy::StackDeployer;
use std::sync::Arc;

pub async fn run(args: ServeArgs) -> Result<()> {
    let mut limits = gitsync_model::Limits::default();
    for assignment in &args.limits {
        limits.set(assignment).map_err(anyhow::Error::msg)?;
    }
    let mut state = args.state.open_for_serve(limits).await?;
    state.store = state.store.with_status_cache(args.status_cache_ttl);
    let credentials = state.data_dir.join("credentials");
    if !credentials.exists() {
        // First start of this data directory: make a key so AWS tools work at once.
        let key = state.store.create_access_key(&args.account_id).await?;
        // The first account is the operator's own team: it deploys as before, with the server's
        // credentials (security.md). Other tenants get the default policy.
        let mut policy = state.store.account_policy(&args.account_id).await?;
        policy.trusted = true;
        state.store.set_account_policy(&policy).await?;
        write_private(
            &credentials,
            credentials_section("default", &key).as_bytes(),
        )?;
        tracing::info!(
            path = %credentials.display(),
            access_key_id = %key.access_key_id,
            account_id = %key.account_id,
            "created an access key; use it with AWS_SHARED_CREDENTIALS_FILE"
        );
    }
    let git = {
        let mut g = gitsync_git::GitSettings::new(state.data_dir.join("git"));
        g.network_timeout = args.git_timeout;
        g.allow_file = args.allow_file_remotes;
        g.budgets = gitsync_git::ReadBudgets {
            max_file_bytes: args.max_file_bytes,
            max_tree_entries: args.max_tree_entries,
            max_tree_depth: args.max_tree_depth,
        };
        g
    };
    let provider_bases = |option: &str, pairs: &[String]| {
        gitsync_model::githost::ProviderBases::parse(pairs.iter().map(String::as_str))
            .map_err(|e| anyhow::anyhow!("--{option}: {e}"))
    };
    let api_bases = provider_bases("api-base", &args.api_base)?;
    let git_bases = provider_bases("git-base", &args.git_base)?;
    let settings = gitsync_engine::EngineSettings {
        git_bases,
        history_retention: args.history_retention,
        poll_interval: args.poll_interval,
        lease_ttl: args.lease_ttl,
        replica_id: args.replica_id.clone().unwrap_or_else(default_replica_id),
        attempt_delay: args.test_attempt_delay,
        shutdown_grace: args.shutdown_grace,
        assume_sync_role: args.assume_sync_role,
        // Templates from repositories are checked and rendered in a child of this binary.
        render_isolation: match std::env::current_exe() {
            Ok(program) => gitsync_engine::sandbox::Isolation::ChildProcess(program),
            Err(e) => anyhow::bail!("cannot find this program to run its template sandbox: {e}"),
        },
        ..Default::default()
    };
    let deployer: Arc<dyn StackDeployer> = if !args.validate_only
        && (args.cloudformation_endpoint.is_some()
            || gitsync_cloudformation::credentials_configured())
    {
        let cloudformation =
            gitsync_cloudformation::CloudFormation::new(gitsync_cloudformation::Settings {
                endpoint: args.cloudformation_endpoint.clone(),
                ..Default::default()
            })
            .await;
        // Say which credentials deploy (and, for tenants that are not trusted, that they are
        // only used to assume each configuration's role), or that there are none.
        match cloudformation.server_credentials().await {
            Ok(credentials) => tracing::info!(
                mode = cloudformation.mode(),
                credentials = %credentials,
                "stack deployer"
            ),
            Err(missing) => tracing::warn!(
                mode = cloudformation.mode(),
                "stack deployer has no credentials; every deployment fails until it has: {missing}"
            ),
        }
        Arc::new(cloudformation)
    } else {
        let deployer = gitsync_deploy::ValidateOnly;
        tracing::info!(
            mode = deployer.mode(),
            "stack deployer: stacks are validated, not deployed (no --cloudformation-endpoint and no AWS credentials in the environment, or --validate-only)"
        );
        Arc::new(deployer)
    };
    // Status-change notifications go out from the outbox; without root certificates only
    // http:// endpoints could be reached, so say so and leave them queued.
    let mut deliverers: Vec<Arc<dyn gitsync_deploy::Deliverer>> = Vec::new();
    match gitsync_notify::HttpNotifications::new(state.store.clone(), args.event_source.clone()) {
        Ok(notifications) => deliverers.push(Arc::new(notifications)),
        Err(e) => tracing::error!(
            error = %e,
            "notifications cannot be delivered; they stay queued until the server restarts with root certificates"
        ),
    }
    // And to tenants' EventBridge buses.
    deliverers.push(Arc::new(
        gitsync_eventbridge::EventBridgeNotifications::new(
            state.store.clone(),
            args.eventbridge_endpoint.clone(),
            args.event_source.clone(),
        )
        .await,
    ));
    // Commit statuses and pull request previews go out from the outbox too, to each
    // connection's Git host, whose API also lists the pull requests to preview.
    let mut pull_requests: Option<Arc<dyn gitsync_deploy::PullRequests>> = None;
    match gitsync_notify::GitHosts::new(state.store.clone(), api_bases) {
        Ok(hosts) => {
            deliverers.push(Arc::new(gitsync_notify::CommitStatuses(hosts.clone())));
            deliverers.push(Arc::new(gitsync_notify::PullRequestComments(hosts.clone())));
            pull_requests = Some(hosts);
        }
        Err(e) => tracing::error!(
            error = %e,
            "commit statuses and pull request previews cannot be posted; they stay queued until the server restarts with root certificates"
        ),
    }
    let engine = gitsync_engine::Engine::new(
        state.store.clone(),
        git,
        deployer,
        deliverers,
        pull_requests,
        settings,
    );
    let (stop_engine, engine_stopped) = tokio::sync::oneshot::channel::<()>();
    let engine_task = tokio::spawn(engine.clone().run(async move {
        let _ = engine_stopped.await;
    }));
    let mut api = Api::new(state.store.clone());
    api.allow_file_remotes = args.allow_file_remotes;
    let api = Arc::new(api);
    let hooks = crate::webhooks::Webhooks {
        store: state.store.clone(),
        engine: engine.clone(),
        unverified: Default::default(),
    };
    // Delivery records are kept for --webhook-retention, then pruned (hourly).
    let pruning = {
        let store = state.store.clone();
        let retention = args.webhook_retention;
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(3600));
            loop {
                tick.tick().await;
                let before =
                    gitsync_model::Timestamp::now().plus_millis(-(retention.as_millis() as i64));
                match store.prune_webhook_deliveries(before).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(deleted = n, "pruned old webhook delivery records"),
                    Err(e) => tracing::warn!(error = %e, "cannot prune webhook delivery records"),
                }
            }
        })
    };
    let metrics_store = state.store.clone();
    let app = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route(
            "/metrics",
            get(move || crate::metrics::scrape(metrics_store.clone())),
        )
        .route(
            "/webhooks/{provider}",
            axum::routing::post(crate::webhooks::deliver)
                .with_state(hooks)
                .layer(axum::extract::DefaultBodyLimit::max(5 * 1024 * 1024)),
        )
        .merge(crate::dashboard::router(
            state.store.clone(),
            engine.clone(),
        ))
        .merge(api.router())
        .layer(axum::middleware::map_response(ensure_request_id));
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    tracing::info!(address = %listener.local_addr()?, data_dir = %state.data_dir.display(), "gitsync is serving the AWS APIs");
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await?;
    pruning.abort();
    let _ = stop_engine.send(());
    let _ = engine_task.await;
    state.store.close().await;
    tracing::info!("gitsync stopped");
    Ok(())
}

fn default_replica_id() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default();
    let host = if host.is_empty() {
        "gitsync".to_string()
    } else {
        host
    };
    format!("{host}-{}", std::process::id())
}

/// Every answer carries `x-amzn-RequestId`; API answers set their own, this covers the rest.
async fn ensure_request_id(mut response: Response) -> Response {
    if !response.headers().contains_key("x-amzn-requestid")
        && let Ok(value) = uuid_header()
    {
        response.headers_mut().insert("x-amzn-RequestId", value);
    }
    response
}

fn uuid_header() -> Result<http::HeaderValue, http::header::InvalidHeaderValue> {
    http::HeaderValue::from_str(&uuid::Uuid::new_v4().to_string())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
    tracing::info!("shutting down");
}
