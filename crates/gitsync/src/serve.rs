//! `gitsync serve`: the HTTP listener for the AWS APIs and the health check.

use crate::cli::ServeArgs;
use crate::keys::credentials_section;
use crate::state::write_private;
use anyhow::{Context, Result};
use axum::Router;
use axum::response::Response;
use axum::routing::get;
use gitsync_api::Api;
use std::sync::Arc;

pub async fn run(args: ServeArgs) -> Result<()> {
    let state = args.state.open().await?;
    let credentials = state.data_dir.join("credentials");
    if !credentials.exists() {
        // First start of this data directory: make a key so AWS tools work at once.
        let key = state.store.create_access_key(&args.account_id).await?;
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
    let api = Arc::new(Api::new(state.store.clone()));
    let app = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .merge(api.router())
        .layer(axum::middleware::map_response(ensure_request_id));
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    tracing::info!(address = %listener.local_addr()?, data_dir = %state.data_dir.display(), "gitsync is serving the AWS APIs");
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await?;
    state.store.close().await;
    tracing::info!("gitsync stopped");
    Ok(())
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
