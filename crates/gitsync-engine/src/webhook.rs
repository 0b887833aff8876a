//! Webhook deliveries from Git providers: which repository and branch moved, and whether the
//! delivery carries a valid signature or token for a tenant's secret.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// The providers gitsync takes webhooks from, by the path segment they post to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    GitHub,
    GitLab,
    Bitbucket,
    /// Any other server: GitHub-style `X-Hub-Signature-256` over a body with `repository` and `ref`.
    Generic,
}

impl Provider {
    pub fn from_path(segment: &str) -> Option<Provider> {
        match segment {
            "github" => Some(Provider::GitHub),
            "gitlab" => Some(Provider::GitLab),
            "bitbucket" => Some(Provider::Bitbucket),
            "generic" => Some(Provider::Generic),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Provider::GitHub => "github",
            Provider::GitLab => "gitlab",
            Provider::Bitbucket => "bitbucket",
            Provider::Generic => "generic",
        }
    }
}

/// What a delivery says: a push to a branch, or a pull request onto one (opened, updated,
/// closed). Either way the branch is checked at once; a pull request's check reads the open pull
/// requests from the host's API rather than trusting the delivery's copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Push {
    pub owner: String,
    pub repository: String,
    /// The pushed branch, or the pull request's base branch.
    pub branch: String,
    /// The pushed commit (none for a pull request).
    pub sha: Option<String>,
    /// The pull request's number (GitLab: its `iid`) for a pull request delivery.
    pub pull_request: Option<u64>,
}

/// A pull request delivery: GitHub's `pull_request` event, GitLab's merge request hook,
/// Bitbucket's `pullrequest:*` events. `None` for anything else.
fn parse_pull_request(provider: Provider, doc: &serde_json::Value) -> Option<Result<Push, String>> {
    let (full_name, base, number) = match provider {
        Provider::GitHub | Provider::Generic => {
            let pull = doc.get("pull_request")?;
            (
                doc["repository"]["full_name"].as_str(),
                pull["base"]["ref"].as_str(),
                pull["number"].as_u64(),
            )
        }
        Provider::GitLab => {
            if doc["object_kind"].as_str() != Some("merge_request") {
                return None;
            }
            let attributes = &doc["object_attributes"];
            (
                doc["project"]["path_with_namespace"].as_str(),
                attributes["target_branch"].as_str(),
                attributes["iid"].as_u64(),
            )
        }
        Provider::Bitbucket => {
            let pull = doc.get("pullrequest")?;
            (
                doc["repository"]["full_name"].as_str(),
                pull["destination"]["branch"]["name"].as_str(),
                pull["id"].as_u64(),
            )
        }
    };
    Some((|| {
        let full_name = full_name.ok_or("the delivery names no repository")?;
        let (owner, repository) = full_name
            .rsplit_once('/')
            .ok_or_else(|| format!("repository '{full_name}' is not owner/name"))?;
        let base = base.ok_or("the pull request names no base branch")?;
        let number = number.ok_or("the pull request has no number")?;
        Ok(Push {
            owner: owner.into(),
            repository: repository.into(),
            branch: base.into(),
            sha: None,
            pull_request: Some(number),
        })
    })())
}

/// Reads a push or a pull request from a delivery body; `Err` says why it is not one gitsync
/// acts on.
pub fn parse_push(provider: Provider, body: &[u8]) -> Result<Push, String> {
    let doc: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("the body is not JSON: {e}"))?;
    if let Some(pull) = parse_pull_request(provider, &doc) {
        return pull;
    }
    let (full_name, reference, sha) = match provider {
        Provider::GitHub | Provider::Generic => (
            doc["repository"]["full_name"].as_str(),
            doc["ref"].as_str().map(str::to_string),
            doc["after"].as_str(),
        ),
        Provider::GitLab => (
            doc["project"]["path_with_namespace"].as_str(),
            doc["ref"].as_str().map(str::to_string),
            doc["checkout_sha"].as_str().or(doc["after"].as_str()),
        ),
        Provider::Bitbucket => {
            let change = &doc["push"]["changes"][0]["new"];
            let branch = (change["type"].as_str() == Some("branch"))
                .then(|| change["name"].as_str())
                .flatten();
            (
                doc["repository"]["full_name"].as_str(),
                branch.map(|b| format!("refs/heads/{b}")),
                change["target"]["hash"].as_str(),
            )
        }
    };
    let full_name = full_name.ok_or("the delivery names no repository")?;
    let (owner, repository) = full_name
        .rsplit_once('/')
        .ok_or_else(|| format!("repository '{full_name}' is not owner/name"))?;
    let reference = reference.ok_or("the delivery names no ref")?;
    let branch = reference
        .strip_prefix("refs/heads/")
        .ok_or_else(|| format!("{reference} is not a branch"))?;
    Ok(Push {
        owner: owner.into(),
        repository: repository.into(),
        branch: branch.into(),
        sha: sha.map(str::to_string),
        pull_request: None,
    })
}

/// Whether a delivery's signature (GitHub, Bitbucket, generic: HMAC-SHA256 of the body) or
/// token (GitLab) matches `secret`. Comparisons are constant-time.
pub fn verify(
    provider: Provider,
    headers: &dyn Fn(&str) -> Option<String>,
    body: &[u8],
    secret: &[u8],
) -> bool {
    match provider {
        Provider::GitLab => {
            headers("x-gitlab-token").is_some_and(|t| bool::from(t.as_bytes().ct_eq(secret)))
        }
        Provider::GitHub | Provider::Generic | Provider::Bitbucket => {
            let header = if provider == Provider::Bitbucket {
                "x-hub-signature"
            } else {
                "x-hub-signature-256"
            };
            let Some(given) = headers(header) else {
                return false;
            };
            let Some(hex_sig) = given.strip_prefix("sha256=") else {
                return false;
            };
            let Ok(given) = hex::decode(hex_sig) else {
                return false;
            };
            let Ok(mut mac) = <Hmac<Sha256> as Mac>::new_from_slice(secret) else {
                return false;
            };
            mac.update(body);
            mac.verify_slice(&given).is_ok()
        }
    }
}

/// The `sha256=<hex>` signature GitHub sends, for tests and for documentation.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(secret).expect("HMAC accepts keys of any length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_pushes_of_each_provider() {
        let gh =
            br#"{"ref":"refs/heads/main","after":"abc","repository":{"full_name":"octo/infra"}}"#;
        assert_eq!(
            parse_push(Provider::GitHub, gh).unwrap(),
            Push {
                owner: "octo".into(),
                repository: "infra".into(),
                branch: "main".into(),
                sha: Some("abc".into()),
                pull_request: None,
            }
        );
        let gl = br#"{"ref":"refs/heads/dev","checkout_sha":"def","project":{"path_with_namespace":"grp/sub/app"}}"#;
        let push = parse_push(Provider::GitLab, gl).unwrap();
        assert_eq!(
            (
                push.owner.as_str(),
                push.repository.as_str(),
                push.branch.as_str()
            ),
            ("grp/sub", "app", "dev")
        );
        let bb = br#"{"repository":{"full_name":"team/repo"},"push":{"changes":[{"new":{"type":"branch","name":"main","target":{"hash":"123"}}}]}}"#;
        assert_eq!(parse_push(Provider::Bitbucket, bb).unwrap().branch, "main");
        assert!(
            parse_push(
                Provider::GitHub,
                br#"{"ref":"refs/tags/v1","repository":{"full_name":"a/b"}}"#
            )
            .unwrap_err()
            .contains("not a branch")
        );
        assert!(parse_push(Provider::GitHub, b"nope").is_err());
    }

    #[test]
    fn reads_pull_requests_of_each_provider_as_their_base_branch() {
        let gh = br#"{"action":"synchronize","number":7,"pull_request":{"number":7,"base":{"ref":"main"},"head":{"sha":"abc"}},"repository":{"full_name":"octo/infra"}}"#;
        let push = parse_push(Provider::GitHub, gh).unwrap();
        assert_eq!(
            (push.branch.as_str(), push.sha, push.pull_request),
            ("main", None, Some(7))
        );
        let gl = br#"{"object_kind":"merge_request","project":{"path_with_namespace":"grp/app"},"object_attributes":{"iid":3,"target_branch":"release"}}"#;
        let push = parse_push(Provider::GitLab, gl).unwrap();
        assert_eq!(
            (push.owner.as_str(), push.branch.as_str(), push.pull_request),
            ("grp", "release", Some(3))
        );
        let bb = br#"{"repository":{"full_name":"team/repo"},"pullrequest":{"id":9,"destination":{"branch":{"name":"main"}}}}"#;
        assert_eq!(
            parse_push(Provider::Bitbucket, bb).unwrap().pull_request,
            Some(9)
        );
        let no_base = br#"{"pull_request":{"number":7},"repository":{"full_name":"octo/infra"}}"#;
        assert!(
            parse_push(Provider::GitHub, no_base)
                .unwrap_err()
                .contains("base branch")
        );
    }

    #[test]
    fn signatures_and_tokens_are_checked() {
        let body = b"{}";
        let good = sign(b"s3cret", body);
        let headers = |name: &str| (name == "x-hub-signature-256").then(|| good.clone());
        assert!(verify(Provider::GitHub, &headers, body, b"s3cret"));
        assert!(!verify(Provider::GitHub, &headers, body, b"other"));
        assert!(!verify(Provider::GitHub, &headers, b"{ }", b"s3cret"));
        assert!(!verify(Provider::GitHub, &|_| None, body, b"s3cret"));
        let token = |name: &str| (name == "x-gitlab-token").then(|| "tok".to_string());
        assert!(verify(Provider::GitLab, &token, body, b"tok"));
        assert!(!verify(Provider::GitLab, &token, body, b"tok2"));
        let bb = |name: &str| (name == "x-hub-signature").then(|| good.clone());
        assert!(verify(Provider::Bitbucket, &bb, body, b"s3cret"));
    }
}
