//! Git hosts' REST APIs: one small client per provider (GitHub and GitHub Enterprise Server,
//! GitLab and GitLab self-managed, Bitbucket Cloud), authenticated with the connection's API
//! token, behind the outbox's deliverers. What gitsync calls, and the token scopes it needs, are
//! in docs/git-hosts.md; nothing else of a host's API is used.
//!
//! Failures never reach a sync: a call that fails is recorded on its outbox row and retried by
//! the engine, after the host's `Retry-After` or rate-limit reset when it names one; a call the
//! host refuses for what it says (unknown commit, invalid body) is given up at once.

mod bitbucket;
mod github;
mod gitlab;

use crate::http::{Answer, HttpClient, USER_AGENT};
use bytes::Bytes;
use gitsync_deploy::{BoxFuture, Deliverer, DeliveryError, OpenPullRequest, PullRequests};
use gitsync_model::githost::{CommitStatus, ProviderBases, PullRequestComment, api_base};
use gitsync_model::{ProviderType, Tenant, Timestamp};
use gitsync_store::{COMMIT_STATUS_DELIVERER, PR_COMMENT_DELIVERER, Store, StoreError};
use http_body_util::Full;
use std::sync::Arc;
use std::time::Duration;

/// How long one API call may take, connection included.
const TIMEOUT: Duration = Duration::from_secs(15);
/// The most of an answer read (statuses and comments answer with a few KiB).
const ANSWER_BYTES: usize = 1 << 20;
/// The most of a failed answer kept in the error.
const ERROR_CHARS: usize = 300;
/// A rate limit that names no time is waited out this long.
const RATE_LIMIT_WAIT: Duration = Duration::from_secs(60);

/// The Git hosts' APIs, as the connections of tenants reach them.
pub struct GitHosts {
    store: Store,
    client: HttpClient,
    /// REST API bases that replace the providers' own (`gitsync serve --api-base`).
    bases: ProviderBases,
}

/// One connection's way into its host's API.
struct HostApi<'a> {
    kind: ProviderType,
    provider: &'static Provider,
    /// The link's repository as it is now (messages name the one their attempt saw).
    owner: String,
    repository: String,
    base: String,
    token: String,
    client: &'a HttpClient,
}

impl GitHosts {
    /// Fails only when the system's trusted root certificates cannot be read.
    pub fn new(store: Store, bases: ProviderBases) -> Result<Arc<GitHosts>, String> {
        Ok(Arc::new(GitHosts {
            store,
            client: HttpClient::new(TIMEOUT)?,
            bases,
        }))
    }

    /// How to call the API of a repository link's host, read when the call is made (a
    /// re-activated connection's new token is used at once). Problems of configuration are
    /// permanent: trying again cannot help until a person acts, and the next status works then.
    async fn api_of(&self, tenant: &Tenant, link_id: &str) -> Result<HostApi<'_>, DeliveryError> {
        let source = match self.store.link_source(tenant, link_id).await {
            Ok(source) => source,
            Err(StoreError::NotFound(why)) => return Err(DeliveryError::permanent(why)),
            Err(e) => {
                return Err(DeliveryError::retry(format!(
                    "cannot read repository link {link_id}: {e}"
                )));
            }
        };
        let secrets = source.secrets.unwrap_or_default();
        let base = match self.bases.get(source.provider_type) {
            Some(base) => base.to_string(),
            None => api_base(
                source.provider_type,
                source.host_endpoint.as_deref(),
                secrets.api_url.as_deref(),
            )
            .map_err(|why| {
                DeliveryError::permanent(format!(
                    "connection {} cannot call its Git host's API: {why}",
                    source.connection_arn
                ))
            })?,
        };
        let provider = provider(source.provider_type).ok_or_else(|| {
            DeliveryError::permanent(format!(
                "gitsync calls nothing on {} hosts",
                source.provider_type
            ))
        })?;
        let token = secrets.api_token().ok_or_else(|| {
            DeliveryError::permanent(format!(
                "connection {arn} has no token for its Git host's API: give it one with \
                 `gitsync connections activate {arn} --api-token-file FILE`",
                arn = source.connection_arn
            ))
        })?;
        Ok(HostApi {
            kind: source.provider_type,
            provider,
            owner: source.owner_id,
            repository: source.repository_name,
            base,
            token: token.to_string(),
            client: &self.client,
        })
    }
}

/// One call of a host's API: what, where (below the API's base) and with what body.
struct Call {
    method: http::Method,
    path: String,
    body: Option<serde_json::Value>,
}

impl Call {
    fn get(path: String) -> Call {
        Call {
            method: http::Method::GET,
            path,
            body: None,
        }
    }
}

/// One page of a listing, and whether another may follow.
struct Page<T> {
    items: Vec<T>,
    more: bool,
}

/// Items asked for per page.
const PAGE: usize = 100;
/// Pages read of one listing at most (pull requests, comments).
const MAX_PAGES: u32 = 10;

/// A page of comments answered as an array of objects with `id` and `body` (GitHub's issue
/// comments, GitLab's notes).
fn id_and_body(answer: &serde_json::Value) -> Page<(String, String)> {
    let items = answer.as_array().cloned().unwrap_or_default();
    let more = items.len() >= PAGE;
    let comments = items
        .iter()
        .filter_map(|c| {
            Some((
                c["id"].as_u64()?.to_string(),
                c["body"].as_str()?.to_string(),
            ))
        })
        .collect();
    Page {
        items: comments,
        more,
    }
}

/// What gitsync calls on one family of providers: the calls each module builds, and how to
/// read their answers.
struct Provider {
    headers: fn(&str) -> Vec<(&'static str, String)>,
    commit_status: fn(&CommitStatus) -> Call,
    open_pulls: fn(&str, &str, &str, u32) -> Call,
    parse_pulls: fn(&serde_json::Value) -> Page<OpenPullRequest>,
    pull: fn(&str, &str, u64) -> Call,
    is_open: fn(&serde_json::Value) -> bool,
    comments: fn(&str, &str, u64, u32) -> Call,
    parse_comments: fn(&serde_json::Value) -> Page<(String, String)>,
    create_comment: fn(&str, &str, u64, &str) -> Call,
    update_comment: fn(&str, &str, u64, &str, &str) -> Call,
}

const GITHUB: Provider = Provider {
    headers: github::headers,
    commit_status: github::commit_status,
    open_pulls: github::open_pulls,
    parse_pulls: github::parse_pulls,
    pull: github::pull,
    is_open: github::is_open,
    comments: github::comments,
    parse_comments: github::parse_comments,
    create_comment: github::create_comment,
    update_comment: github::update_comment,
};

const GITLAB: Provider = Provider {
    headers: gitlab::headers,
    commit_status: gitlab::commit_status,
    open_pulls: gitlab::open_pulls,
    parse_pulls: gitlab::parse_pulls,
    pull: gitlab::pull,
    is_open: gitlab::is_open,
    comments: gitlab::comments,
    parse_comments: gitlab::parse_comments,
    create_comment: gitlab::create_comment,
    update_comment: gitlab::update_comment,
};

const BITBUCKET: Provider = Provider {
    headers: bitbucket::headers,
    commit_status: bitbucket::commit_status,
    open_pulls: bitbucket::open_pulls,
    parse_pulls: bitbucket::parse_pulls,
    pull: bitbucket::pull,
    is_open: bitbucket::is_open,
    comments: bitbucket::comments,
    parse_comments: bitbucket::parse_comments,
    create_comment: bitbucket::create_comment,
    update_comment: bitbucket::update_comment,
};

/// The calls of a provider type; `None` for those gitsync calls nothing on.
fn provider(kind: ProviderType) -> Option<&'static Provider> {
    match kind {
        ProviderType::GitHub | ProviderType::GitHubEnterpriseServer => Some(&GITHUB),
        ProviderType::GitLab | ProviderType::GitLabSelfManaged => Some(&GITLAB),
        ProviderType::Bitbucket => Some(&BITBUCKET),
        ProviderType::AzureDevOps => None,
    }
}

impl HostApi<'_> {
    /// Makes a call; any 2xx answer is `Ok`, anything else an error that says whether and when
    /// to try again.
    async fn call(&self, call: Call) -> Result<Answer, DeliveryError> {
        let what = format!("{} {}{}", call.method, self.base, call.path);
        let mut request = http::Request::builder()
            .method(call.method.clone())
            .uri(format!("{}{}", self.base, call.path))
            .header(http::header::USER_AGENT, USER_AGENT);
        for (name, value) in self.headers() {
            request = request.header(name, value);
        }
        let body = match &call.body {
            Some(body) => {
                request = request.header(http::header::CONTENT_TYPE, "application/json");
                Bytes::from(body.to_string())
            }
            None => Bytes::new(),
        };
        let request = request
            .body(Full::new(body))
            .map_err(|e| DeliveryError::permanent(format!("cannot address {what}: {e}")))?;
        let answer = self.client.send(request, ANSWER_BYTES, &what).await?;
        if answer.status.is_success() {
            return Ok(answer);
        }
        Err(self.failure(&what, &answer, Timestamp::now()))
    }

    /// The provider's authentication and media-type headers.
    fn headers(&self) -> Vec<(&'static str, String)> {
        (self.provider.headers)(&self.token)
    }

    /// A call whose answer is JSON.
    async fn json(&self, call: Call) -> Result<serde_json::Value, DeliveryError> {
        let what = format!("{} {}{}", call.method, self.base, call.path);
        let answer = self.call(call).await?;
        serde_json::from_slice(&answer.body)
            .map_err(|e| DeliveryError::retry(format!("{what} answered with no JSON: {e}")))
    }

    /// Every page of a listing, up to [`MAX_PAGES`].
    async fn all<T>(
        &self,
        call: impl Fn(u32) -> Call,
        parse: fn(&serde_json::Value) -> Page<T>,
    ) -> Result<Vec<T>, DeliveryError> {
        let mut items = Vec::new();
        for page in 1..=MAX_PAGES {
            let Page {
                items: more,
                more: next,
            } = parse(&self.json(call(page)).await?);
            items.extend(more);
            if !next {
                break;
            }
        }
        Ok(items)
    }

    /// What a failed answer means: rate limits are waited out (the host's reset time, or a
    /// minute), a refusal of the request itself is given up, anything else is retried (a token
    /// without access may be replaced; a host that is down comes back).
    fn failure(&self, what: &str, answer: &Answer, now: Timestamp) -> DeliveryError {
        let said = answer.said(ERROR_CHARS);
        let message = if said.is_empty() {
            format!("{what} answered {}", answer.status)
        } else {
            format!("{what} answered {}: {said}", answer.status)
        };
        if let Some(wait) = rate_limit_wait(answer, now) {
            return DeliveryError {
                message: format!("{message} (rate limited; waiting {} s)", wait.as_secs()),
                permanent: false,
                retry_after: Some(wait),
            };
        }
        DeliveryError {
            message,
            permanent: matches!(answer.status.as_u16(), 400 | 404 | 410 | 413 | 415 | 422),
            retry_after: answer.retry_after(),
        }
    }
}

/// How long a rate-limited answer asks to wait, or `None` when it is not one. GitHub answers 403
/// or 429 with `Retry-After`, or `x-ratelimit-remaining: 0` and `x-ratelimit-reset` (epoch
/// seconds); GitLab and Bitbucket answer 429, with `Retry-After` or `RateLimit-Reset`.
fn rate_limit_wait(answer: &Answer, now: Timestamp) -> Option<Duration> {
    let status = answer.status.as_u16();
    let exhausted = answer.header("x-ratelimit-remaining").map(str::trim) == Some("0");
    if status != 429 && !(status == 403 && (exhausted || answer.retry_after().is_some())) {
        return None;
    }
    if let Some(wait) = answer.retry_after() {
        return Some(wait);
    }
    let reset = answer
        .header("x-ratelimit-reset")
        .or_else(|| answer.header("ratelimit-reset"))
        .and_then(|v| v.trim().parse::<i64>().ok());
    Some(match reset {
        Some(at) => Duration::from_secs((at - now.millis() / 1000).clamp(1, 3600) as u64),
        None => RATE_LIMIT_WAIT,
    })
}

/// A path segment with everything but RFC 3986's unreserved characters percent-encoded
/// (GitLab's project ids are `owner/name` encoded as one segment).
fn segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Posts commit statuses (`PublishDeploymentStatus`): the outbox's `commit-status` rows.
pub struct CommitStatuses(pub Arc<GitHosts>);

impl Deliverer for CommitStatuses {
    fn name(&self) -> &'static str {
        COMMIT_STATUS_DELIVERER
    }

    fn deliver<'a>(
        &'a self,
        tenant: &'a Tenant,
        _destination: &'a str,
        message: &'a str,
    ) -> BoxFuture<'a, Result<(), DeliveryError>> {
        Box::pin(async move {
            let status: CommitStatus = serde_json::from_str(message).map_err(|e| {
                DeliveryError::permanent(format!("the stored commit status is unreadable: {e}"))
            })?;
            let api = self.0.api_of(tenant, &status.link_id).await?;
            let call = (api.provider.commit_status)(&status);
            match api.call(call).await {
                Ok(_) => Ok(()),
                Err(e) if gitlab::already_set(api.kind, &e) => Ok(()),
                Err(e) => Err(e),
            }
        })
    }
}

/// Whether a host refused to edit a comment as not the caller's (403, or 404 where hosts hide
/// what the caller may not see), rather than for a rate limit.
fn refuses_the_edit(error: &DeliveryError) -> bool {
    error.retry_after.is_none()
        && (error.message.contains(" answered 403 ") || error.message.contains(" answered 404 "))
}

/// Posts pull request previews (`PullRequestComment`): the outbox's `pr-comment` rows. A
/// preview updates gitsync's comment for its stack (found by its marker) or makes one; a pull
/// request that is no longer open gets nothing more.
pub struct PullRequestComments(pub Arc<GitHosts>);

impl Deliverer for PullRequestComments {
    fn name(&self) -> &'static str {
        PR_COMMENT_DELIVERER
    }

    fn deliver<'a>(
        &'a self,
        tenant: &'a Tenant,
        _destination: &'a str,
        message: &'a str,
    ) -> BoxFuture<'a, Result<(), DeliveryError>> {
        Box::pin(async move {
            let comment: PullRequestComment = serde_json::from_str(message).map_err(|e| {
                DeliveryError::permanent(format!("the stored comment is unreadable: {e}"))
            })?;
            let api = self.0.api_of(tenant, &comment.link_id).await?;
            let (owner, repo, number) = (
                comment.owner_id.as_str(),
                comment.repository_name.as_str(),
                comment.number,
            );
            let pull = api.json((api.provider.pull)(owner, repo, number)).await?;
            if !(api.provider.is_open)(&pull) {
                tracing::info!(tenant = %tenant, pull_request = number, "the pull request is closed; its preview is not posted");
                return Ok(());
            }
            let existing = api
                .all(
                    |page| (api.provider.comments)(owner, repo, number, page),
                    api.provider.parse_comments,
                )
                .await?
                .into_iter()
                .find(|(_, body)| body.starts_with(&comment.marker));
            let create = || (api.provider.create_comment)(owner, repo, number, &comment.body);
            let Some((id, _)) = existing else {
                return api.call(create()).await.map(|_| ());
            };
            let update = (api.provider.update_comment)(owner, repo, number, &id, &comment.body);
            match api.call(update).await {
                // Someone else wrote a comment with the marker (anyone may), which this token may
                // not edit: gitsync's preview goes in a comment of its own.
                Err(e) if refuses_the_edit(&e) => api.call(create()).await.map(|_| ()),
                other => other.map(|_| ()),
            }
        })
    }
}

impl PullRequests for GitHosts {
    fn open_pull_requests<'a>(
        &'a self,
        tenant: &'a Tenant,
        link_id: &'a str,
        base_branch: &'a str,
    ) -> BoxFuture<'a, Result<Vec<OpenPullRequest>, String>> {
        Box::pin(async move {
            let api = self.api_of(tenant, link_id).await.map_err(|e| e.message)?;
            let (owner, repo) = (api.owner.as_str(), api.repository.as_str());
            let pulls = api
                .all(
                    |page| (api.provider.open_pulls)(owner, repo, base_branch, page),
                    api.provider.parse_pulls,
                )
                .await
                .map_err(|e| e.message)?;
            Ok(pulls
                .into_iter()
                .filter(|p| p.base_branch == base_branch)
                .collect())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, headers: &[(&'static str, &str)]) -> Answer {
        let mut map = http::HeaderMap::new();
        for (name, value) in headers {
            map.insert(*name, value.parse().unwrap());
        }
        Answer {
            status: http::StatusCode::from_u16(status).unwrap(),
            headers: map,
            body: Bytes::from_static(b"{\"message\":\"no\"}"),
        }
    }

    #[test]
    fn rate_limits_wait_for_the_hosts_reset() {
        let now = Timestamp(1_700_000_000_000);
        // GitHub's primary limit: 403 with the budget spent, reset in 90 s.
        let spent = answer(
            403,
            &[
                ("x-ratelimit-remaining", "0"),
                ("x-ratelimit-reset", "1700000090"),
            ],
        );
        assert_eq!(rate_limit_wait(&spent, now), Some(Duration::from_secs(90)));
        // A secondary limit names Retry-After.
        let secondary = answer(403, &[("retry-after", "30")]);
        assert_eq!(
            rate_limit_wait(&secondary, now),
            Some(Duration::from_secs(30))
        );
        // GitLab's 429 with its reset; a bare 429 waits a minute.
        let gitlab = answer(429, &[("ratelimit-reset", "1700000010")]);
        assert_eq!(rate_limit_wait(&gitlab, now), Some(Duration::from_secs(10)));
        assert_eq!(
            rate_limit_wait(&answer(429, &[]), now),
            Some(RATE_LIMIT_WAIT)
        );
        // A 403 with budget left is no rate limit: the token may not do this.
        let forbidden = answer(403, &[("x-ratelimit-remaining", "4999")]);
        assert_eq!(rate_limit_wait(&forbidden, now), None);
        // A reset in the past, or absurdly far, is clamped.
        let past = answer(429, &[("ratelimit-reset", "1600000000")]);
        assert_eq!(rate_limit_wait(&past, now), Some(Duration::from_secs(1)));
    }

    #[test]
    fn failures_are_retried_unless_the_host_refuses_the_request() {
        let github = HostApi {
            kind: ProviderType::GitHub,
            provider: &GITHUB,
            owner: "o".into(),
            repository: "r".into(),
            base: "https://api.github.com".into(),
            token: "t".into(),
            client: &HttpClient::new(TIMEOUT).unwrap(),
        };
        let now = Timestamp(1_700_000_000_000);
        let refused = github.failure("POST x", &answer(422, &[]), now);
        assert!(refused.permanent, "{refused:?}");
        assert!(refused.message.contains("422"), "{refused:?}");
        for retried in [401, 403, 500, 502, 503] {
            let e = github.failure("POST x", &answer(retried, &[]), now);
            assert!(!e.permanent, "{retried}: {e:?}");
        }
        let limited = github.failure("POST x", &answer(429, &[("retry-after", "7")]), now);
        assert!(!limited.permanent);
        assert_eq!(limited.retry_after, Some(Duration::from_secs(7)));
        assert!(limited.message.contains("rate limited"), "{limited:?}");
    }

    #[test]
    fn segments_are_percent_encoded() {
        assert_eq!(segment("group/sub/project"), "group%2Fsub%2Fproject");
        assert_eq!(segment("a b?#"), "a%20b%3F%23");
        assert_eq!(segment("ok-._~1"), "ok-._~1");
    }
}
