//! Branch heads over Git's smart HTTP, in process: one protocol v2 `ls-refs` request on a pooled
//! keep-alive connection instead of starting `git ls-remote` (which costs ~17 ms of CPU a check,
//! almost all of it starting the program). Fetches, ssh and `file://` stay with `git`.
//!
//! It keeps the protections of the `git` path: the request goes to the remote's own URL and
//! nowhere else (a redirect is refused, never followed, so the token cannot be led to another
//! host), the answer is read up to [`MAX_ANSWER_BYTES`] within the network timeout, and no more
//! than [`PER_HOST`] listings are in flight to one host at once. A server that does not speak
//! protocol v2 over a plain POST gets `git ls-remote` instead.

use crate::{GitError, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tokio::sync::Semaphore;

/// The most an `ls-refs` answer may hold: a few watched branches take a few hundred bytes.
pub(crate) const MAX_ANSWER_BYTES: usize = 1 << 20;

/// Listings in flight to one host at once: enough for hundreds of remotes on one forge to be
/// checked quickly, few enough that no server is hammered.
pub(crate) const PER_HOST: usize = 16;

/// The `User-Agent` of every request. Forges route on a `git/` prefix.
const USER_AGENT: &str = concat!("git/2 gitsync/", env!("CARGO_PKG_VERSION"));

/// What a smart HTTP server answered to `ls-refs`.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Listing {
    /// Branch → commit, for the requested branches the remote has.
    Heads(BTreeMap<String, String>),
    /// The server answered, but not in protocol v2: ask `git`, which speaks every version.
    NotV2,
}

/// The process's smart HTTP client, shared by every clone of the settings: one connection pool,
/// one set of per-host limits. Built on first use.
#[derive(Clone, Default)]
pub(crate) struct SmartHttp(Arc<OnceLock<Option<Inner>>>);

impl fmt::Debug for SmartHttp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SmartHttp")
    }
}

struct Inner {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    hosts: Mutex<HashMap<String, Arc<Semaphore>>>,
}

impl SmartHttp {
    /// The client, or `None` when the system's root certificates cannot be read (then `git`,
    /// with its own TLS setup, lists refs).
    fn inner(&self) -> Option<&Inner> {
        self.0
            .get_or_init(|| {
                let https = match hyper_rustls::HttpsConnectorBuilder::new().with_native_roots() {
                    Ok(builder) => builder.https_or_http().enable_http1().build(),
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot read the system's root certificates; ref listings use git");
                        return None;
                    }
                };
                Some(Inner {
                    client: Client::builder(TokioExecutor::new())
                        .pool_idle_timeout(Duration::from_secs(90))
                        .build(https),
                    hosts: Mutex::new(HashMap::new()),
                })
            })
            .as_ref()
    }

    /// The heads of `branches` (already checked names) on the smart HTTP remote `url`, with
    /// `authorization` (a header value) if any; `Ok(None)` when this client cannot ask (not an
    /// http(s) URL it can parse, no TLS roots).
    pub(crate) async fn list_branches(
        &self,
        url: &str,
        authorization: Option<&str>,
        branches: &[String],
        timeout: Duration,
    ) -> Result<Option<Listing>> {
        let Some(inner) = self.inner() else {
            return Ok(None);
        };
        let Some((endpoint, host)) = upload_pack_url(url) else {
            return Ok(None);
        };
        let mut request = http::Request::post(endpoint)
            .header(http::header::USER_AGENT, USER_AGENT)
            .header(
                http::header::CONTENT_TYPE,
                "application/x-git-upload-pack-request",
            )
            .header(http::header::ACCEPT, "application/x-git-upload-pack-result")
            .header("Git-Protocol", "version=2");
        if let Some(value) = authorization {
            request = request.header(http::header::AUTHORIZATION, value);
        }
        let request = request
            .body(Full::new(Bytes::from(ls_refs_request(branches))))
            .map_err(|e| GitError::Remote(format!("cannot build a request to {host}: {e}")))?;
        let slots = inner.host_slots(&host);
        let exchange = async {
            let _slot = slots.acquire().await.expect("never closed");
            let response = inner
                .client
                .request(request)
                .await
                .map_err(|e| GitError::Remote(format!("cannot reach {host}: {}", chain(&e))))?;
            let status = response.status();
            if status.is_redirection() {
                let to = response
                    .headers()
                    .get(http::header::LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .map(origin)
                    .unwrap_or_else(|| "elsewhere".into());
                return Err(GitError::Remote(format!(
                    "{host} redirects to {to}: gitsync does not follow a remote's redirects; use the repository's final URL"
                )));
            }
            match status.as_u16() {
                200 => {}
                401 | 403 => {
                    return Err(GitError::Remote(format!(
                        "{host} refused the credentials (HTTP {status})"
                    )));
                }
                404 => {
                    return Err(GitError::Remote(format!(
                        "repository not found on {host} (HTTP 404)"
                    )));
                }
                // Anything else (a server that does not take v2 requests by POST, a proxy's
                // error): `git` tries again in the protocol the server speaks, and reports.
                _ => return Ok(Listing::NotV2),
            }
            let body = http_body_util::Limited::new(response.into_body(), MAX_ANSWER_BYTES)
                .collect()
                .await
                .map_err(|e| {
                    GitError::Remote(format!(
                        "the ref listing from {host} could not be read within {MAX_ANSWER_BYTES} bytes: {e}"
                    ))
                })?
                .to_bytes();
            Ok(parse_ls_refs(&body, branches))
        };
        match tokio::time::timeout(timeout, exchange).await {
            Ok(listing) => listing.map(Some),
            Err(_) => Err(GitError::Timeout {
                operation: "ls-remote",
                seconds: timeout.as_secs(),
            }),
        }
    }
}

impl Inner {
    fn host_slots(&self, host: &str) -> Arc<Semaphore> {
        self.hosts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(host.to_string())
            .or_insert_with(|| Arc::new(Semaphore::new(PER_HOST)))
            .clone()
    }
}

/// `<url>/git-upload-pack` and the URL's `host[:port]`, for an `http(s)://` URL without a query,
/// fragment or credentials; `None` for anything else.
fn upload_pack_url(url: &str) -> Option<(http::Uri, String)> {
    let uri: http::Uri = url.parse().ok()?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.query().is_some() {
        return None;
    }
    let authority = uri.authority()?;
    if authority.as_str().contains('@') || url.contains('#') {
        return None;
    }
    let endpoint = format!("{}/git-upload-pack", url.trim_end_matches('/'))
        .parse()
        .ok()?;
    Some((endpoint, authority.as_str().to_string()))
}

/// `scheme://host[:port]` of a redirect's target, for the message.
fn origin(location: &str) -> String {
    match location.parse::<http::Uri>() {
        Ok(uri) if uri.authority().is_some() => format!(
            "{}://{}",
            uri.scheme_str().unwrap_or("http"),
            uri.authority()
                .map(|a| a.as_str().rsplit('@').next().unwrap_or_default())
                .unwrap_or_default()
        ),
        _ => "another path".into(),
    }
}

fn pkt_line(out: &mut Vec<u8>, line: &str) {
    out.extend_from_slice(format!("{:04x}", line.len() + 4).as_bytes());
    out.extend_from_slice(line.as_bytes());
}

/// The v2 `ls-refs` command, asking only for the watched branches.
fn ls_refs_request(branches: &[String]) -> Vec<u8> {
    let mut out = Vec::new();
    pkt_line(&mut out, "command=ls-refs\n");
    pkt_line(
        &mut out,
        concat!("agent=gitsync/", env!("CARGO_PKG_VERSION"), "\n"),
    );
    out.extend_from_slice(b"0001");
    for branch in branches {
        pkt_line(&mut out, &format!("ref-prefix refs/heads/{branch}\n"));
    }
    out.extend_from_slice(b"0000");
    out
}

/// Reads an `ls-refs` answer: pkt-lines of `<oid> <refname>[ <attribute>…]`, then a flush. Keeps
/// the requested branches (a prefix also matches longer names, which are dropped). Anything else
/// — a v0 advertisement, an `ERR` line, a truncated answer — is [`Listing::NotV2`].
fn parse_ls_refs(mut body: &[u8], branches: &[String]) -> Listing {
    let mut heads = BTreeMap::new();
    loop {
        let Some(len) = body
            .get(..4)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| usize::from_str_radix(h, 16).ok())
        else {
            return Listing::NotV2;
        };
        if len == 0 {
            return Listing::Heads(heads);
        }
        let Some(line) = body.get(4..len).filter(|_| len > 4) else {
            return Listing::NotV2;
        };
        body = &body[len..];
        let Ok(line) = std::str::from_utf8(line) else {
            return Listing::NotV2;
        };
        let mut fields = line.trim_end_matches('\n').split(' ');
        let (Some(oid), Some(name)) = (fields.next(), fields.next()) else {
            return Listing::NotV2;
        };
        if !matches!(oid.len(), 40 | 64) || !oid.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Listing::NotV2;
        }
        if let Some(branch) = name.strip_prefix("refs/heads/")
            && branches.iter().any(|b| b == branch)
        {
            heads.insert(branch.to_string(), oid.to_ascii_lowercase());
        }
    }
}

/// An error and its causes, `: `-separated (hyper's outer error says only "client error").
fn chain(e: &dyn std::error::Error) -> String {
    std::iter::successors(Some(e), |e| e.source())
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(lines: &[&str]) -> Vec<u8> {
        let mut out = Vec::new();
        for l in lines {
            pkt_line(&mut out, l);
        }
        out.extend_from_slice(b"0000");
        out
    }

    #[test]
    fn the_request_asks_for_the_watched_branches_only() {
        let request = ls_refs_request(&["main".into(), "release/1".into()]);
        let text = String::from_utf8(request).unwrap();
        assert!(text.starts_with("0014command=ls-refs\n"), "{text}");
        assert!(
            text.contains("0001001fref-prefix refs/heads/main\n"),
            "{text}"
        );
        assert!(
            text.ends_with("0024ref-prefix refs/heads/release/1\n0000"),
            "{text}"
        );
    }

    #[test]
    fn answers_are_read_strictly() {
        let a = "a".repeat(40);
        let b = "B".repeat(40);
        let branches = ["main".to_string(), "dev".to_string()];
        assert_eq!(
            parse_ls_refs(
                &answer(&[
                    &format!("{a} refs/heads/main\n"),
                    // A longer name under the same prefix is not the branch.
                    &format!("{a} refs/heads/main-old\n"),
                    &format!("{b} refs/heads/dev symref-target:refs/heads/x\n"),
                ]),
                &branches
            ),
            Listing::Heads(BTreeMap::from([
                ("dev".to_string(), "b".repeat(40)),
                ("main".to_string(), a.clone()),
            ]))
        );
        assert_eq!(
            parse_ls_refs(b"0000", &branches),
            Listing::Heads(BTreeMap::new())
        );
        for hostile in [
            // A v0 advertisement, an error line, no flush, a bad length, a bad id.
            b"001e# service=git-upload-pack\n0000".to_vec(),
            answer(&["ERR no such repository"]),
            answer(&[&format!("{a} refs/heads/main\n")])[..48].to_vec(),
            b"zzzz".to_vec(),
            b"0003".to_vec(),
            b"ffff".to_vec(),
            answer(&["not-an-id refs/heads/main\n"]),
            Vec::new(),
        ] {
            assert_eq!(
                parse_ls_refs(&hostile, &branches),
                Listing::NotV2,
                "{:?}",
                String::from_utf8_lossy(&hostile)
            );
        }
    }

    #[test]
    fn only_plain_http_urls_are_asked_in_process() {
        assert_eq!(
            upload_pack_url("https://git.example.com/o/r.git").map(|(u, h)| (u.to_string(), h)),
            Some((
                "https://git.example.com/o/r.git/git-upload-pack".into(),
                "git.example.com".into()
            ))
        );
        for other in [
            "ssh://git@example.com/o/r.git",
            "file:///srv/r.git",
            "https://u:p@example.com/r.git",
            "https://example.com/r.git?x=1",
            "not a url",
        ] {
            assert!(upload_pack_url(other).is_none(), "{other}");
        }
    }
}
