//! Bitbucket Cloud (REST API 2.0): build statuses
//! (`POST /repositories/{workspace}/{repo_slug}/commit/{commit}/statuses/build`,
//! https://developer.atlassian.com/cloud/bitbucket/rest/api-group-commit-statuses/), pull
//! requests and their comments.

use super::{Call, Page, segment};
use base64::Engine as _;
use gitsync_deploy::OpenPullRequest;
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

fn repository(owner: &str, repo: &str) -> String {
    format!("/repositories/{}/{}", segment(owner), segment(repo))
}

/// A page of a repository's open pull requests
/// (https://developer.atlassian.com/cloud/bitbucket/rest/api-group-pullrequests/#api-repositories-workspace-repo-slug-pullrequests-get);
/// those onto `base` only (Bitbucket's query language), and matched again here.
pub(super) fn open_pulls(owner: &str, repo: &str, base: &str, page: u32) -> Call {
    let onto = format!("destination.branch.name=\"{}\"", base.replace('"', ""));
    Call::get(format!(
        "{}/pullrequests?state=OPEN&q={}&pagelen=50&page={page}",
        repository(owner, repo),
        segment(&onto)
    ))
}

pub(super) fn parse_pulls(answer: &serde_json::Value) -> Page<OpenPullRequest> {
    let pulls = answer["values"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter_map(|p| {
            let branch = p["source"]["branch"]["name"].as_str()?;
            Some(OpenPullRequest {
                number: p["id"].as_u64()?,
                // Bitbucket names the head by a short hash; the fetched branch gives it whole.
                head_sha: p["source"]["commit"]["hash"].as_str()?.to_string(),
                head_ref: format!("refs/heads/{branch}"),
                base_branch: p["destination"]["branch"]["name"].as_str()?.to_string(),
                from_fork: p["source"]["repository"]["full_name"]
                    != p["destination"]["repository"]["full_name"],
                url: p["links"]["html"]["href"].as_str().map(str::to_string),
            })
        })
        .collect();
    Page {
        items: pulls,
        more: answer["next"].is_string(),
    }
}

/// https://developer.atlassian.com/cloud/bitbucket/rest/api-group-pullrequests/#api-repositories-workspace-repo-slug-pullrequests-pull-request-id-get
pub(super) fn pull(owner: &str, repo: &str, number: u64) -> Call {
    Call::get(format!("{}/pullrequests/{number}", repository(owner, repo)))
}

pub(super) fn is_open(answer: &serde_json::Value) -> bool {
    answer["state"].as_str() == Some("OPEN")
}

/// https://developer.atlassian.com/cloud/bitbucket/rest/api-group-pullrequests/#api-repositories-workspace-repo-slug-pullrequests-pull-request-id-comments-get
pub(super) fn comments(owner: &str, repo: &str, number: u64, page: u32) -> Call {
    Call::get(format!(
        "{}/pullrequests/{number}/comments?pagelen=100&page={page}",
        repository(owner, repo)
    ))
}

pub(super) fn parse_comments(answer: &serde_json::Value) -> Page<(String, String)> {
    let comments = answer["values"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter_map(|c| {
            Some((
                c["id"].as_u64()?.to_string(),
                c["content"]["raw"].as_str()?.to_string(),
            ))
        })
        .collect();
    Page {
        items: comments,
        more: answer["next"].is_string(),
    }
}

/// https://developer.atlassian.com/cloud/bitbucket/rest/api-group-pullrequests/#api-repositories-workspace-repo-slug-pullrequests-pull-request-id-comments-post
pub(super) fn create_comment(owner: &str, repo: &str, number: u64, body: &str) -> Call {
    Call {
        method: http::Method::POST,
        path: format!("{}/pullrequests/{number}/comments", repository(owner, repo)),
        body: Some(json!({ "content": { "raw": body } })),
    }
}

/// https://developer.atlassian.com/cloud/bitbucket/rest/api-group-pullrequests/#api-repositories-workspace-repo-slug-pullrequests-pull-request-id-comments-comment-id-put
pub(super) fn update_comment(owner: &str, repo: &str, number: u64, id: &str, body: &str) -> Call {
    Call {
        method: http::Method::PUT,
        path: format!(
            "{}/pullrequests/{number}/comments/{}",
            repository(owner, repo),
            segment(id)
        ),
        body: Some(json!({ "content": { "raw": body } })),
    }
}
