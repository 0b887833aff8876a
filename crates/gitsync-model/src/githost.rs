//! Git hosts' REST APIs, as gitsync uses them to tell people where they work: what a
//! connection keeps to call its host's API, where that API is, and the commit statuses gitsync
//! posts there (docs/git-hosts.md). The store writes commit statuses to its outbox in the
//! transaction of the attempt they report; the `commit-status` deliverer posts them.

use crate::ProviderType;
use serde::{Deserialize, Serialize};

/// What `gitsync connections activate` keeps (sealed) for a connection: how to reach its
/// repositories with Git, and its host's REST API. Its `Debug` output names which secrets are
/// set, never their values.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectionSecrets {
    /// For Git over HTTPS, and the REST API unless `api_token` is given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// A private key for Git over ssh.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh_key: Option<String>,
    /// A token for the REST API alone (`--api-token-file`): for connections whose Git access
    /// needs none (ssh keys, `file://` hosts) or whose Git token may not call the API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_token: Option<String>,
    /// The REST API's base URL (`--api-url`), for hosts whose `ProviderEndpoint` does not lead
    /// to it (ssh or `file://` endpoints).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_url: Option<String>,
}

impl std::fmt::Debug for ConnectionSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let set = |secret: &Option<String>| secret.as_ref().map(|_| "<redacted>");
        f.debug_struct("ConnectionSecrets")
            .field("token", &set(&self.token))
            .field("ssh_key", &set(&self.ssh_key))
            .field("api_token", &set(&self.api_token))
            .field("api_url", &self.api_url)
            .finish()
    }
}

impl ConnectionSecrets {
    /// Reads what was stored; `None` for bytes that are not this shape.
    pub fn parse(stored: &[u8]) -> Option<ConnectionSecrets> {
        serde_json::from_slice(stored).ok()
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("plain strings serialize")
    }

    /// The token for the host's REST API: the API token, else the Git token.
    pub fn api_token(&self) -> Option<&str> {
        self.api_token.as_deref().or(self.token.as_deref())
    }
}

/// The REST API's base URL for repositories of `provider` reached through a host at
/// `host_endpoint` (self-managed providers), unless the connection names one (`api_url`).
/// Answers why there is none: a provider gitsync posts nothing to, or a host whose endpoint is
/// not HTTP.
pub fn api_base(
    provider: ProviderType,
    host_endpoint: Option<&str>,
    api_url: Option<&str>,
) -> Result<String, String> {
    if let Some(url) = api_url {
        return Ok(url.trim_end_matches('/').to_string());
    }
    let from_host = |suffix: &str| match host_endpoint {
        Some(endpoint) if endpoint.starts_with("https://") || endpoint.starts_with("http://") => {
            Ok(format!("{}{suffix}", endpoint.trim_end_matches('/')))
        }
        Some(endpoint) => Err(format!(
            "the host's ProviderEndpoint {endpoint} does not lead to its REST API; give the API's URL with --api-url"
        )),
        None => Err(format!(
            "provider {provider} needs a host with a ProviderEndpoint"
        )),
    };
    match provider {
        ProviderType::GitHub => Ok("https://api.github.com".into()),
        ProviderType::GitHubEnterpriseServer => from_host("/api/v3"),
        ProviderType::GitLab => Ok("https://gitlab.com/api/v4".into()),
        ProviderType::GitLabSelfManaged => from_host("/api/v4"),
        ProviderType::Bitbucket => Ok("https://api.bitbucket.org/2.0".into()),
        ProviderType::AzureDevOps => Err(
            "gitsync posts commit statuses and pull request comments to GitHub, GitHub Enterprise Server, GitLab and Bitbucket, not to AzureDevOps"
                .into(),
        ),
    }
}

/// Whether a connection can call its host's API: a token for it and a base URL. Answers what
/// to do when it cannot.
pub fn check_api_access(
    connection_arn: &str,
    provider: ProviderType,
    host_endpoint: Option<&str>,
    secrets: Option<&ConnectionSecrets>,
) -> Result<(), String> {
    let api_url = secrets.and_then(|s| s.api_url.as_deref());
    api_base(provider, host_endpoint, api_url).map_err(|why| {
        format!("connection {connection_arn} cannot call its Git host's API: {why}")
    })?;
    if secrets.and_then(ConnectionSecrets::api_token).is_none() {
        return Err(format!(
            "connection {connection_arn} has no token for its Git host's API: give it one with \
             `gitsync connections activate {connection_arn} --api-token-file FILE`"
        ));
    }
    Ok(())
}

/// Base URLs that replace a provider's own, per provider type: `gitsync serve --api-base` (its
/// REST API) and `--git-base` (where its repositories are cloned from), for proxies, mirrors and
/// tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProviderBases(std::collections::HashMap<ProviderType, String>);

impl ProviderBases {
    /// Reads `TYPE=URL` pairs (`GitHub=https://proxy.example.com/github`).
    pub fn parse<'a>(pairs: impl IntoIterator<Item = &'a str>) -> Result<ProviderBases, String> {
        let mut bases = std::collections::HashMap::new();
        for pair in pairs {
            let (provider, url) = pair
                .split_once('=')
                .ok_or_else(|| format!("'{pair}' is not TYPE=URL"))?;
            let provider = ProviderType::parse(provider).ok_or_else(|| {
                let known: Vec<_> = ProviderType::ALL.iter().map(|p| p.as_str()).collect();
                format!(
                    "'{provider}' is not a provider type; use one of {}",
                    known.join(", ")
                )
            })?;
            if !(url.starts_with("https://") || url.starts_with("http://")) {
                return Err(format!("'{url}' must start with https:// or http://"));
            }
            bases.insert(provider, url.trim_end_matches('/').to_string());
        }
        Ok(ProviderBases(bases))
    }

    pub fn get(&self, provider: ProviderType) -> Option<&str> {
        self.0.get(&provider).map(String::as_str)
    }
}

/// The state of a commit status, as gitsync means it; each provider spells it its own way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CommitState {
    /// An attempt at the commit is running.
    Pending,
    /// The attempt succeeded.
    Success,
    /// The attempt failed (validation or deployment).
    Failure,
    /// The attempt did not finish (the worker running it stopped).
    Error,
}

/// A commit status to post: one outbox row of the `commit-status` deliverer. Where it goes is
/// the repository as the attempt saw it; how to reach it (provider, host, token) is read from
/// the link's connection when it is posted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitStatus {
    pub link_id: String,
    pub owner_id: String,
    pub repository_name: String,
    pub sha: String,
    pub state: CommitState,
    /// `gitsync/<resource name>`: one status per stack on a commit.
    pub context: String,
    pub description: String,
}

/// The most characters of a status's description: GitHub refuses more than 140.
pub const DESCRIPTION_CHARS: usize = 140;

impl CommitStatus {
    /// The context gitsync posts a resource's statuses under.
    pub fn context_of(resource_name: &str) -> String {
        format!("gitsync/{resource_name}")
    }

    /// `text` made into a description: one line, at most [`DESCRIPTION_CHARS`] characters
    /// (shortened with `…`).
    pub fn describe(text: &str) -> String {
        let line = text.split_whitespace().collect::<Vec<_>>().join(" ");
        if line.chars().count() <= DESCRIPTION_CHARS {
            return line;
        }
        let mut short: String = line.chars().take(DESCRIPTION_CHARS - 1).collect();
        short.push('…');
        short
    }
}

/// A pull request open on a Git host, as its API lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenPullRequest {
    /// GitHub's and Bitbucket's number, GitLab's `iid`.
    pub number: u64,
    pub head_sha: String,
    /// The ref of the repository that holds the head: `refs/pull/<n>/head` (GitHub),
    /// `refs/merge-requests/<iid>/head` (GitLab), or the source branch (Bitbucket).
    pub head_ref: String,
    pub base_branch: String,
    /// The head lives in another repository (a fork).
    pub from_fork: bool,
    /// The pull request's page, for messages.
    pub url: Option<String>,
}

/// A pull request comment to post, or to update in place: one outbox row of the `pr-comment`
/// deliverer. The comment is found again by its marker, a hidden line only gitsync writes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PullRequestComment {
    pub link_id: String,
    pub owner_id: String,
    pub repository_name: String,
    /// GitHub's and Bitbucket's pull request number, GitLab's merge request `iid`.
    pub number: u64,
    /// The hidden line that marks gitsync's comment for one stack ([`preview_marker`]).
    pub marker: String,
    /// The whole comment, marker first (Markdown).
    pub body: String,
}

/// The hidden line that marks the preview comment of one stack on a pull request.
pub fn preview_marker(resource_name: &str) -> String {
    format!("<!-- gitsync-preview:{resource_name} -->")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_names_secrets_but_never_shows_them() {
        let secrets = ConnectionSecrets {
            token: Some("ghp_secret-token".into()),
            ssh_key: Some("-----BEGIN KEY-----".into()),
            api_token: None,
            api_url: Some("https://api.example.com".into()),
        };
        let shown = format!("{secrets:?}");
        assert!(
            !shown.contains("ghp_secret-token") && !shown.contains("BEGIN KEY"),
            "{shown}"
        );
        assert!(shown.contains("token: Some(\"<redacted>\")"), "{shown}");
        assert!(shown.contains("api_token: None"), "{shown}");
    }

    #[test]
    fn api_bases_follow_the_provider_and_its_host() {
        let base = |p, host: Option<&str>, url: Option<&str>| api_base(p, host, url);
        assert_eq!(
            base(ProviderType::GitHub, None, None).unwrap(),
            "https://api.github.com"
        );
        assert_eq!(
            base(
                ProviderType::GitHubEnterpriseServer,
                Some("https://git.example.com/"),
                None
            )
            .unwrap(),
            "https://git.example.com/api/v3"
        );
        assert_eq!(
            base(ProviderType::GitLab, None, None).unwrap(),
            "https://gitlab.com/api/v4"
        );
        assert_eq!(
            base(
                ProviderType::GitLabSelfManaged,
                Some("http://10.0.0.5:8080"),
                None
            )
            .unwrap(),
            "http://10.0.0.5:8080/api/v4"
        );
        assert_eq!(
            base(ProviderType::Bitbucket, None, None).unwrap(),
            "https://api.bitbucket.org/2.0"
        );
        // An ssh or file host leads nowhere unless the connection names its API.
        let why = base(
            ProviderType::GitLabSelfManaged,
            Some("ssh://git@gitlab.internal"),
            None,
        )
        .unwrap_err();
        assert!(why.contains("--api-url"), "{why}");
        assert_eq!(
            base(
                ProviderType::GitLabSelfManaged,
                Some("ssh://git@gitlab.internal"),
                Some("https://gitlab.internal/api/v4/")
            )
            .unwrap(),
            "https://gitlab.internal/api/v4"
        );
        assert!(base(ProviderType::AzureDevOps, None, None).is_err());
    }

    #[test]
    fn api_access_needs_a_token_and_names_the_command_that_gives_one() {
        let arn = "arn:aws:codeconnections:us-east-1:111122223333:connection/c1";
        let why = check_api_access(arn, ProviderType::GitHub, None, None).unwrap_err();
        assert!(
            why.contains(&format!(
                "gitsync connections activate {arn} --api-token-file FILE"
            )),
            "{why}"
        );
        let ssh_only = ConnectionSecrets {
            ssh_key: Some("-----BEGIN OPENSSH PRIVATE KEY-----".into()),
            ..Default::default()
        };
        assert!(check_api_access(arn, ProviderType::GitHub, None, Some(&ssh_only)).is_err());
        let git_token = ConnectionSecrets {
            token: Some("t".into()),
            ..Default::default()
        };
        assert_eq!(git_token.api_token(), Some("t"));
        assert!(check_api_access(arn, ProviderType::GitHub, None, Some(&git_token)).is_ok());
        let both = ConnectionSecrets {
            api_token: Some("api".into()),
            ..git_token
        };
        assert_eq!(both.api_token(), Some("api"));
        assert_eq!(ConnectionSecrets::parse(&both.to_bytes()), Some(both));
    }

    #[test]
    fn bases_are_given_per_provider_type() {
        let bases = ProviderBases::parse([
            "GitHub=http://127.0.0.1:9/gh/",
            "Bitbucket=https://b.example/2.0",
        ])
        .unwrap();
        assert_eq!(
            bases.get(ProviderType::GitHub),
            Some("http://127.0.0.1:9/gh")
        );
        assert_eq!(bases.get(ProviderType::GitLab), None);
        assert!(ProviderBases::parse(["GitHub"]).is_err());
        assert!(
            ProviderBases::parse(["Gitea=https://x"])
                .unwrap_err()
                .contains("GitHub")
        );
        assert!(ProviderBases::parse(["GitHub=ftp://x"]).is_err());
    }

    #[test]
    fn descriptions_are_one_short_line() {
        assert_eq!(
            CommitStatus::describe("Stack\nUPDATE_COMPLETE  "),
            "Stack UPDATE_COMPLETE"
        );
        let long = "x".repeat(500);
        let short = CommitStatus::describe(&long);
        assert_eq!(short.chars().count(), DESCRIPTION_CHARS);
        assert!(short.ends_with('…'));
        assert_eq!(CommitStatus::context_of("orders"), "gitsync/orders");
    }
}
