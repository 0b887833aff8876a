//! GitHub and GitHub Enterprise Server (REST API, `application/vnd.github+json`): commit
//! statuses (`POST /repos/{owner}/{repo}/statuses/{sha}`,
//! https://docs.github.com/en/rest/commits/statuses#create-a-commit-status), pull requests, and
//! their (issue) comments.

use super::{Call, PAGE, Page, id_and_body, segment};
use gitsync_deploy::OpenPullRequest;
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

/// A page of a repository's open pull requests onto `base`
/// (https://docs.github.com/en/rest/pulls/pulls#list-pull-requests).
pub(super) fn open_pulls(owner: &str, repo: &str, base: &str, page: u32) -> Call {
    Call::get(format!(
        "/repos/{}/{}/pulls?state=open&base={}&per_page={PAGE}&page={page}",
        segment(owner),
        segment(repo),
        segment(base)
    ))
}

pub(super) fn parse_pulls(answer: &serde_json::Value) -> Page<OpenPullRequest> {
    let items = answer.as_array().cloned().unwrap_or_default();
    let more = items.len() >= PAGE;
    let pulls = items
        .iter()
        .filter_map(|p| {
            let number = p["number"].as_u64()?;
            Some(OpenPullRequest {
                number,
                head_sha: p["head"]["sha"].as_str()?.to_string(),
                head_ref: format!("refs/pull/{number}/head"),
                base_branch: p["base"]["ref"].as_str()?.to_string(),
                // A fork's head repository differs (or is gone: a deleted fork).
                from_fork: p["head"]["repo"]["full_name"] != p["base"]["repo"]["full_name"],
                url: p["html_url"].as_str().map(str::to_string),
            })
        })
        .collect();
    Page { items: pulls, more }
}

/// One pull request (https://docs.github.com/en/rest/pulls/pulls#get-a-pull-request).
pub(super) fn pull(owner: &str, repo: &str, number: u64) -> Call {
    Call::get(format!(
        "/repos/{}/{}/pulls/{number}",
        segment(owner),
        segment(repo)
    ))
}

pub(super) fn is_open(answer: &serde_json::Value) -> bool {
    answer["state"].as_str() == Some("open")
}

/// A page of a pull request's comments
/// (https://docs.github.com/en/rest/issues/comments#list-issue-comments).
pub(super) fn comments(owner: &str, repo: &str, number: u64, page: u32) -> Call {
    Call::get(format!(
        "/repos/{}/{}/issues/{number}/comments?per_page={PAGE}&page={page}",
        segment(owner),
        segment(repo)
    ))
}

pub(super) fn parse_comments(answer: &serde_json::Value) -> Page<(String, String)> {
    id_and_body(answer)
}

/// https://docs.github.com/en/rest/issues/comments#create-an-issue-comment
pub(super) fn create_comment(owner: &str, repo: &str, number: u64, body: &str) -> Call {
    Call {
        method: http::Method::POST,
        path: format!(
            "/repos/{}/{}/issues/{number}/comments",
            segment(owner),
            segment(repo)
        ),
        body: Some(json!({ "body": body })),
    }
}

/// https://docs.github.com/en/rest/issues/comments#update-an-issue-comment
pub(super) fn update_comment(owner: &str, repo: &str, _number: u64, id: &str, body: &str) -> Call {
    Call {
        method: http::Method::PATCH,
        path: format!(
            "/repos/{}/{}/issues/comments/{}",
            segment(owner),
            segment(repo),
            segment(id)
        ),
        body: Some(json!({ "body": body })),
    }
}
