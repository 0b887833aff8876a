//! Ref listings over smart HTTP against servers that misbehave on purpose (raw HTTP on loopback);
//! the well-behaved case, `git http-backend`, is every wire test's Git server.

use gitsync_git::{Credential, GitError, GitSettings, Remote};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// One request as the test server saw it.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    head: String,
}

type Handler = Arc<dyn Fn(&Seen) -> Vec<u8> + Send + Sync>;

/// A keep-alive HTTP/1.1 server answering every request with `handler`; records what it saw and
/// how many requests it held at once at most.
struct TestServer {
    url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    most_at_once: Arc<AtomicUsize>,
}

async fn serve(handler: Handler, hold: Duration) -> TestServer {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let most_at_once = Arc::new(AtomicUsize::new(0));
    let now = Arc::new(AtomicUsize::new(0));
    let (s, m) = (seen.clone(), most_at_once.clone());
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let (handler, seen, most, now) = (handler.clone(), s.clone(), m.clone(), now.clone());
            tokio::spawn(async move {
                let mut buf = Vec::new();
                loop {
                    let end = loop {
                        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            break i + 4;
                        }
                        let mut chunk = [0u8; 4096];
                        match stream.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    };
                    let head = String::from_utf8_lossy(&buf[..end]).to_string();
                    let length: usize = head
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse().unwrap())
                        })
                        .unwrap_or(0);
                    while buf.len() < end + length {
                        let mut chunk = [0u8; 4096];
                        match stream.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    buf.drain(..end + length);
                    let mut words = head.split_whitespace();
                    let request = Seen {
                        method: words.next().unwrap_or_default().into(),
                        path: words.next().unwrap_or_default().into(),
                        head: head.clone(),
                    };
                    seen.lock().unwrap().push(request.clone());
                    let at_once = now.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(at_once, Ordering::SeqCst);
                    tokio::time::sleep(hold).await;
                    now.fetch_sub(1, Ordering::SeqCst);
                    if stream.write_all(&handler(&request)).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    TestServer {
        url,
        seen,
        most_at_once,
    }
}

fn response(status: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 {status}\r\nContent-Length: {}\r\n", body.len());
    for (k, v) in headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str("\r\n");
    let mut out = out.into_bytes();
    out.extend_from_slice(body);
    out
}

fn pkt(line: &str) -> String {
    format!("{:04x}{line}", line.len() + 4)
}

fn listing(lines: &[String]) -> Vec<u8> {
    let mut body: String = lines.iter().map(|l| pkt(l)).collect();
    body.push_str("0000");
    response(
        "200 OK",
        &[("Content-Type", "application/x-git-upload-pack-result")],
        body.as_bytes(),
    )
}

fn settings(cache: &std::path::Path) -> GitSettings {
    let mut settings = GitSettings::new(cache);
    settings.network_timeout = Duration::from_secs(5);
    settings
}

const MAIN: &str = "0123456789abcdef0123456789abcdef01234567";

#[tokio::test]
async fn a_listing_is_one_v2_request_with_the_token() {
    let server = serve(
        Arc::new(|_| listing(&[format!("{MAIN} refs/heads/main\n")])),
        Duration::ZERO,
    )
    .await;
    let cache = tempfile::tempdir().unwrap();
    let remote = Remote::new(
        format!("{}/o/r.git", server.url),
        Some(Credential::Token("t0ken".into())),
    );
    let heads = remote
        .list_branches(&settings(cache.path()), &["main".into(), "gone".into()])
        .await
        .unwrap();
    assert_eq!(heads.get("main").map(String::as_str), Some(MAIN));
    assert_eq!(heads.len(), 1);
    let seen = server.seen.lock().unwrap().clone();
    // No advertisement first: one POST, in protocol v2, with the token as basic auth.
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(
        (seen[0].method.as_str(), seen[0].path.as_str()),
        ("POST", "/o/r.git/git-upload-pack")
    );
    let head = seen[0].head.to_ascii_lowercase();
    assert!(head.contains("git-protocol: version=2"), "{head}");
    // base64("x-access-token:t0ken")
    assert!(
        seen[0]
            .head
            .lines()
            .filter_map(|l| l.split_once(':'))
            .any(|(name, value)| name.eq_ignore_ascii_case("authorization")
                && value.trim() == "Basic eC1hY2Nlc3MtdG9rZW46dDBrZW4="),
        "{head}"
    );
}

#[tokio::test]
async fn a_redirect_is_refused_and_the_token_goes_nowhere_else() {
    let elsewhere = serve(Arc::new(|_| listing(&[])), Duration::ZERO).await;
    let location = format!("{}/o/r.git/git-upload-pack", elsewhere.url);
    let server = serve(
        Arc::new(move |_| response("302 Found", &[("Location", &location)], b"")),
        Duration::ZERO,
    )
    .await;
    let cache = tempfile::tempdir().unwrap();
    let remote = Remote::new(
        format!("{}/o/r.git", server.url),
        Some(Credential::Token("secret".into())),
    );
    match remote
        .list_branches(&settings(cache.path()), &["main".into()])
        .await
    {
        Err(GitError::Remote(m)) => {
            assert!(
                m.contains("redirects to") && m.contains(&elsewhere.url),
                "{m}"
            );
            assert!(!m.contains("secret"), "{m}");
        }
        other => panic!("{other:?}"),
    }
    assert!(
        elsewhere.seen.lock().unwrap().is_empty(),
        "the redirect was followed"
    );
}

#[tokio::test]
async fn a_huge_answer_is_cut_at_the_budget() {
    // Valid pkt-lines, far more of them than a listing of one branch can need.
    let line = format!("{MAIN} refs/heads/main\n");
    let lines = vec![line; 40_000];
    let answer = listing(&lines);
    assert!(answer.len() > 2 << 20);
    let server = serve(Arc::new(move |_| answer.clone()), Duration::ZERO).await;
    let cache = tempfile::tempdir().unwrap();
    match Remote::new(format!("{}/r.git", server.url), None)
        .list_branches(&settings(cache.path()), &["main".into()])
        .await
    {
        Err(GitError::Remote(m)) => assert!(m.contains("1048576 bytes"), "{m}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_server_without_v2_gets_git_instead() {
    // Answers everything with a v0-looking advertisement: not an ls-refs answer.
    let server = serve(
        Arc::new(|_| {
            response(
                "200 OK",
                &[(
                    "Content-Type",
                    "application/x-git-upload-pack-advertisement",
                )],
                b"001e# service=git-upload-pack\n0000",
            )
        }),
        Duration::ZERO,
    )
    .await;
    let cache = tempfile::tempdir().unwrap();
    let result = Remote::new(format!("{}/r.git", server.url), None)
        .list_branches(&settings(cache.path()), &["main".into()])
        .await;
    let seen = server.seen.lock().unwrap().clone();
    // The in-process POST, then git's own conversation, which starts with the advertisement.
    assert_eq!(seen[0].method, "POST");
    assert!(
        seen.iter()
            .any(|s| s.method == "GET" && s.path.starts_with("/r.git/info/refs")),
        "git was not asked: {seen:?} {result:?}"
    );
}

#[tokio::test]
async fn listings_to_one_host_are_bounded() {
    let server = serve(
        Arc::new(|_| listing(&[format!("{MAIN} refs/heads/main\n")])),
        Duration::from_millis(100),
    )
    .await;
    let cache = tempfile::tempdir().unwrap();
    let settings = settings(cache.path());
    let mut checks = tokio::task::JoinSet::new();
    for i in 0..48 {
        let (settings, url) = (settings.clone(), format!("{}/r{i}.git", server.url));
        checks.spawn(async move {
            Remote::new(url, None)
                .list_branches(&settings, &["main".into()])
                .await
        });
    }
    while let Some(done) = checks.join_next().await {
        assert_eq!(
            done.unwrap().unwrap().get("main").map(String::as_str),
            Some(MAIN)
        );
    }
    let most = server.most_at_once.load(Ordering::SeqCst);
    assert!(most > 1, "listings ran one at a time");
    assert!(most <= 16, "{most} listings at once to one host");
}
