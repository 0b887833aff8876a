//! GitLab and GitLab self-managed (REST API v4, `PRIVATE-TOKEN`): commit statuses
//! (`POST /projects/:id/statuses/:sha`, the project id being `owner/name` URL-encoded,
//! https://docs.gitlab.com/api/commits/#set-the-pipeline-status-of-a-commit), merge requests and
//! their notes.

use super::{Call, PAGE, Page, id_and_body, segment};
use gitsync_deploy::DeliveryError;
use gitsync_deploy::OpenPullRequest;
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

fn project(owner: &str, repo: &str) -> String {
    segment(&format!("{owner}/{repo}"))
}

/// A page of a project's open merge requests onto `base`
/// (https://docs.gitlab.com/api/merge_requests/#list-project-merge-requests).
pub(super) fn open_pulls(owner: &str, repo: &str, base: &str, page: u32) -> Call {
    Call::get(format!(
        "/projects/{}/merge_requests?state=opened&target_branch={}&per_page={PAGE}&page={page}",
        project(owner, repo),
        segment(base)
    ))
}

pub(super) fn parse_pulls(answer: &serde_json::Value) -> Page<OpenPullRequest> {
    let items = answer.as_array().cloned().unwrap_or_default();
    let more = items.len() >= PAGE;
    let pulls = items
        .iter()
        .filter_map(|m| {
            let iid = m["iid"].as_u64()?;
            Some(OpenPullRequest {
                number: iid,
                head_sha: m["sha"].as_str()?.to_string(),
                head_ref: format!("refs/merge-requests/{iid}/head"),
                base_branch: m["target_branch"].as_str()?.to_string(),
                from_fork: m["source_project_id"] != m["target_project_id"],
                url: m["web_url"].as_str().map(str::to_string),
            })
        })
        .collect();
    Page { items: pulls, more }
}

/// https://docs.gitlab.com/api/merge_requests/#get-single-mr
pub(super) fn pull(owner: &str, repo: &str, number: u64) -> Call {
    Call::get(format!(
        "/projects/{}/merge_requests/{number}",
        project(owner, repo)
    ))
}

pub(super) fn is_open(answer: &serde_json::Value) -> bool {
    answer["state"].as_str() == Some("opened")
}

/// https://docs.gitlab.com/api/notes/#list-all-merge-request-notes
pub(super) fn comments(owner: &str, repo: &str, number: u64, page: u32) -> Call {
    Call::get(format!(
        "/projects/{}/merge_requests/{number}/notes?per_page={PAGE}&page={page}",
        project(owner, repo)
    ))
}

pub(super) fn parse_comments(answer: &serde_json::Value) -> Page<(String, String)> {
    id_and_body(answer)
}

/// https://docs.gitlab.com/api/notes/#create-new-merge-request-note
pub(super) fn create_comment(owner: &str, repo: &str, number: u64, body: &str) -> Call {
    Call {
        method: http::Method::POST,
        path: format!(
            "/projects/{}/merge_requests/{number}/notes",
            project(owner, repo)
        ),
        body: Some(json!({ "body": body })),
    }
}

/// https://docs.gitlab.com/api/notes/#modify-existing-merge-request-note
pub(super) fn update_comment(owner: &str, repo: &str, number: u64, id: &str, body: &str) -> Call {
    Call {
        method: http::Method::PUT,
        path: format!(
            "/projects/{}/merge_requests/{number}/notes/{}",
            project(owner, repo),
            segment(id)
        ),
        body: Some(json!({ "body": body })),
    }
}
