//! Against real repositories made with the `git` program over `file://`.

use gitsync_git::{GitError, GitSettings, Mirror, Remote, repack};
use std::path::Path;
use std::process::Command;

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.com")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.com")
        .env("GIT_AUTHOR_DATE", "2026-01-01T00:00:00Z")
        .env("GIT_COMMITTER_DATE", "2026-01-01T00:00:00Z")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// A bare "server" repository and a work tree that pushes to it.
/// Settings for these tests, whose remotes are `file://` repositories.
fn local_settings(cache: &Path) -> GitSettings {
    let mut settings = GitSettings::new(cache);
    settings.allow_file = true;
    settings
}

fn server() -> (tempfile::TempDir, String, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let bare = dir.path().join("srv.git");
    let work = dir.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    git(
        dir.path(),
        &["init", "--bare", "-q", "-b", "main", bare.to_str().unwrap()],
    );
    git(&work, &["init", "-q", "-b", "main"]);
    git(&work, &["remote", "add", "origin", bare.to_str().unwrap()]);
    (dir, format!("file://{}", bare.display()), work)
}

fn commit(work: &Path, files: &[(&str, &str)], message: &str) -> String {
    for (path, contents) in files {
        let p = work.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, contents).unwrap();
    }
    git(work, &["add", "-A"]);
    git(work, &["commit", "-q", "--allow-empty", "-m", message]);
    git(work, &["push", "-q", "origin", "HEAD:main"]);
    git(work, &["rev-parse", "HEAD"])
}

#[tokio::test]
async fn lists_fetches_and_reads() {
    let (_dir, url, work) = server();
    let cache = tempfile::tempdir().unwrap();
    let settings = local_settings(cache.path());
    let remote = Remote::new(&url, None);
    let first = commit(
        &work,
        &[
            ("infra/deploy.yaml", "template-file-path: infra/t.yaml\n"),
            ("README", "hi"),
        ],
        "one",
    );

    let heads = remote
        .list_branches(&settings, &["main".into(), "nope".into()])
        .await
        .unwrap();
    assert_eq!(heads.get("main"), Some(&first));
    assert!(!heads.contains_key("nope"));
    // Listing does not create a mirror.
    assert!(!cache.path().join("mirrors").exists());

    let (mirror, fetched) = remote.fetch(&settings, &["main".into()]).await.unwrap();
    assert_eq!(fetched["main"], first);
    assert!(mirror.has_commit(&first));
    let snap = mirror.at(&first).unwrap();
    assert_eq!(
        snap.read_file("infra/deploy.yaml").unwrap().unwrap(),
        b"template-file-path: infra/t.yaml\n"
    );
    assert_eq!(
        snap.read_file("./infra/deploy.yaml").unwrap(),
        snap.read_file("infra/deploy.yaml").unwrap()
    );
    assert_eq!(snap.read_file("infra").unwrap(), None);
    assert_eq!(snap.read_file("missing.yaml").unwrap(), None);
    assert_eq!(snap.read_file("../etc/passwd").unwrap(), None);
    let infra_id = snap.entry_id("infra").unwrap().unwrap();
    assert_eq!(
        infra_id,
        git(&work, &["rev-parse", &format!("{first}:infra")])
    );
    let root: Vec<String> = snap
        .list_dir("")
        .unwrap()
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(root, ["README", "infra"]);

    // A commit that leaves infra/ alone keeps its id; one that changes it changes the id.
    let second = commit(&work, &[("README", "changed")], "two");
    let (_, fetched) = remote.fetch(&settings, &["main".into()]).await.unwrap();
    assert_eq!(fetched["main"], second);
    assert_eq!(
        mirror
            .at(&second)
            .unwrap()
            .entry_id("infra")
            .unwrap()
            .unwrap(),
        infra_id
    );
    let third = commit(
        &work,
        &[("infra/deploy.yaml", "template-file-path: infra/u.yaml\n")],
        "three",
    );
    remote.fetch(&settings, &["main".into()]).await.unwrap();
    assert_ne!(
        mirror
            .at(&third)
            .unwrap()
            .entry_id("infra")
            .unwrap()
            .unwrap(),
        infra_id
    );

    // Several fetches leave several packs; a repack leaves one, and reads still work.
    repack(&settings, &mirror).await.unwrap();
    let packs = std::fs::read_dir(mirror.path().join("objects/pack"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "pack")
        })
        .count();
    assert_eq!(packs, 1);
    assert_eq!(
        mirror
            .at(&third)
            .unwrap()
            .read_file("infra/deploy.yaml")
            .unwrap()
            .unwrap(),
        b"template-file-path: infra/u.yaml\n"
    );
    // The same URL always maps to the same mirror.
    assert_eq!(
        Mirror::for_url(&settings, &url).unwrap().path(),
        mirror.path()
    );
}

#[tokio::test]
async fn failures_are_reported_not_hidden() {
    let cache = tempfile::tempdir().unwrap();
    let settings = local_settings(cache.path());
    let missing = Remote::new("file:///nonexistent/repo.git", None);
    match missing.list_branches(&settings, &["main".into()]).await {
        Err(GitError::Remote(m)) => assert!(
            m.contains("nonexistent") || m.contains("does not appear"),
            "{m}"
        ),
        other => panic!("{other:?}"),
    }
    let (_dir, url, work) = server();
    commit(&work, &[("a", "b")], "one");
    match Remote::new(&url, None)
        .fetch(&settings, &["nope".into()])
        .await
    {
        Err(GitError::NoSuchBranch(b)) => assert_eq!(b, "nope"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        Remote::new(&url, None)
            .list_branches(&settings, &["-evil".into()])
            .await,
        Err(GitError::Remote(_))
    ));
}

#[tokio::test]
async fn every_network_call_has_a_timeout() {
    // A listener that accepts and never answers stands for a hung server.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let cache = tempfile::tempdir().unwrap();
    let mut settings = GitSettings::new(cache.path());
    settings.network_timeout = std::time::Duration::from_millis(700);
    let started = std::time::Instant::now();
    let result = Remote::new(format!("http://127.0.0.1:{port}/r.git"), None)
        .list_branches(&settings, &["main".into()])
        .await;
    assert!(
        matches!(
            result,
            Err(GitError::Timeout {
                operation: "ls-remote",
                ..
            })
        ),
        "{result:?}"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    drop(listener);
}
