//! GitHub and GitHub Enterprise Server (REST API, `application/vnd.github+json`): commit
//! statuses are `POST /repos/{owner}/{repo}/statuses/{sha}`
//! (https://docs.github.com/en/rest/commits/statuses#create-a-commit-status).

use super::{Call, segment};
use gitsync_model::githost::{CommitState, CommitStatus};
use serde_json::json;

/// The API version gitsync's calls are written for.
const API_VERSION: &str = "2022-11-28";

pub(super) fn headers(token: &str) -> Vec<(&'static str, String)> {
    vec![
        ("authorization", format!("Bearer {token}")),
        ("accept", "application/vnd.github+json".into()),
        ("x-github-api-version", API_VERSION.into()),
    ]
}

pub(super) fn commit_status(status: &CommitStatus) -> Call {
    let state = match status.state {
        CommitState::Pending => "pending",
        CommitState::Success => "success",
        CommitState::Failure => "failure",
        CommitState::Error => "error",
    };
    Call {
        method: http::Method::POST,
        path: format!(
            "/repos/{}/{}/statuses/{}",
            segment(&status.owner_id),
            segment(&status.repository_name),
            segment(&status.sha)
        ),
        body: Some(json!({
            "state": state,
            "description": status.description,
            "context": status.context,
        })),
    }
}
