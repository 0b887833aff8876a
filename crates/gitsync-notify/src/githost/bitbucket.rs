//! Bitbucket Cloud (REST API 2.0): build statuses are
//! `POST /repositories/{workspace}/{repo_slug}/commit/{commit}/statuses/build`
//! (https://developer.atlassian.com/cloud/bitbucket/rest/api-group-commit-statuses/).

use super::{Call, segment};
use base64::Engine as _;
use gitsync_model::githost::{CommitState, CommitStatus};
use serde_json::json;

/// `user:app-password` is sent as basic auth; anything else (repository, project or workspace
/// access tokens) as a bearer token.
pub(super) fn headers(token: &str) -> Vec<(&'static str, String)> {
    let authorization = if token.contains(':') {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(token)
        )
    } else {
        format!("Bearer {token}")
    };
    vec![
        ("authorization", authorization),
        ("accept", "application/json".into()),
    ]
}

pub(super) fn commit_status(status: &CommitStatus) -> Call {
    let state = match status.state {
        CommitState::Pending => "INPROGRESS",
        CommitState::Success => "SUCCESSFUL",
        CommitState::Failure | CommitState::Error => "FAILED",
    };
    let (workspace, repository, sha) = (
        segment(&status.owner_id),
        segment(&status.repository_name),
        segment(&status.sha),
    );
    Call {
        method: http::Method::POST,
        path: format!("/repositories/{workspace}/{repository}/commit/{sha}/statuses/build"),
        body: Some(json!({
            "key": status.context,
            "state": state,
            "name": status.context,
            "description": status.description,
            // Bitbucket links every status somewhere: the commit itself, until gitsync has a
            // page of its own for an attempt.
            "url": format!("https://bitbucket.org/{workspace}/{repository}/commits/{sha}"),
        })),
    }
}
