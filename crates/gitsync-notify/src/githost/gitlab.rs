//! GitLab and GitLab self-managed (REST API v4, `PRIVATE-TOKEN`): commit statuses are
//! `POST /projects/:id/statuses/:sha`, the project id being `owner/name` URL-encoded
//! (https://docs.gitlab.com/api/commits/#set-the-pipeline-status-of-a-commit).

use super::{Call, segment};
use gitsync_deploy::DeliveryError;
use gitsync_model::ProviderType;
use gitsync_model::githost::{CommitState, CommitStatus};
use serde_json::json;

pub(super) fn headers(token: &str) -> Vec<(&'static str, String)> {
    vec![("private-token", token.to_string())]
}

pub(super) fn commit_status(status: &CommitStatus) -> Call {
    // An attempt that started is `running`; one whose worker stopped `failed`.
    let state = match status.state {
        CommitState::Pending => "running",
        CommitState::Success => "success",
        CommitState::Failure | CommitState::Error => "failed",
    };
    Call {
        method: http::Method::POST,
        path: format!(
            "/projects/{}/statuses/{}",
            segment(&format!("{}/{}", status.owner_id, status.repository_name)),
            segment(&status.sha)
        ),
        body: Some(json!({
            "state": state,
            "name": status.context,
            "description": status.description,
        })),
    }
}

/// GitLab refuses to set a status to the state it is in ("Cannot transition status via :run
/// from :running"): a delivery repeated after a lost answer has then already been made.
pub(super) fn already_set(provider: ProviderType, error: &DeliveryError) -> bool {
    matches!(
        provider,
        ProviderType::GitLab | ProviderType::GitLabSelfManaged
    ) && error.message.contains(" 400 ")
        && error.message.contains("Cannot transition status")
}
