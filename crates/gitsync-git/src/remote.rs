//! Remote operations: ref listings over smart HTTP in process (`smart_http`), everything else
//! through the `git` program.

use crate::smart_http::Listing;
use crate::{GitError, GitSettings, Mirror, Result};
use std::collections::BTreeMap;
use std::fmt;
use std::process::Stdio;
use tokio::process::Command;

/// How to authenticate to a remote.
#[derive(Clone)]
pub enum Credential {
    /// An HTTP(S) token, sent as basic-auth password (what GitHub, GitLab and Bitbucket accept).
    Token(String),
    /// A private SSH key (OpenSSH format), for `ssh://` remotes.
    SshKey(String),
}

impl Credential {
    /// The `Authorization` header value of a token: basic auth with the token as password,
    /// which GitHub, GitLab and Bitbucket all accept. `None` for an ssh key.
    fn authorization(&self) -> Option<String> {
        use base64::Engine;
        match self {
            Credential::Token(token) => Some(format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("x-access-token:{token}"))
            )),
            Credential::SshKey(_) => None,
        }
    }
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Credential::Token(_) => "Token(..)",
            Credential::SshKey(_) => "SshKey(..)",
        })
    }
}

/// A repository on a Git server.
#[derive(Debug, Clone)]
pub struct Remote {
    pub url: String,
    pub credential: Option<Credential>,
}

impl Remote {
    pub fn new(url: impl Into<String>, credential: Option<Credential>) -> Self {
        Remote {
            url: url.into(),
            credential,
        }
    }

    /// Only these schemes are ever handed to `git`: no `ext::`, no local paths that look like
    /// options.
    fn check_url(&self, allow_file: bool) -> Result<()> {
        let ok = ["https://", "http://", "ssh://"]
            .iter()
            .any(|s| self.url.starts_with(s));
        if ok || (allow_file && self.url.starts_with("file://")) {
            Ok(())
        } else if self.url.starts_with("file://") {
            Err(GitError::Remote(format!(
                "remote {} reads the server's own disk: file:// remotes need gitsync serve --allow-file-remotes",
                self.url
            )))
        } else {
            Err(GitError::Remote(format!(
                "unsupported remote URL {}",
                self.url
            )))
        }
    }
}

/// Runs `git` isolated from the user's and the system's configuration, without prompts, with the
/// remote's credential (`None` for work on a local mirror), killed when it outlives the network
/// timeout.
async fn run_git(
    settings: &GitSettings,
    remote: Option<&Remote>,
    operation: &'static str,
    args: &[&str],
) -> Result<String> {
    let result = run_git_once(settings, remote, operation, args).await;
    if matches!(operation, "fetch" | "ls-remote") {
        gitsync_telemetry::Event::GitCall {
            fetch: operation == "fetch",
            ok: result.is_ok(),
        }
        .emit();
    }
    result
}

async fn run_git_once(
    settings: &GitSettings,
    remote: Option<&Remote>,
    operation: &'static str,
    args: &[&str],
) -> Result<String> {
    if let Some(remote) = remote {
        remote.check_url(settings.allow_file)?;
    }
    let home = settings.cache_dir.join("home");
    std::fs::create_dir_all(&home)
        .map_err(|e| GitError::Local(format!("cannot create {}: {e}", home.display())))?;
    let mut command = Command::new(&settings.git_program);
    command
        .args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", &home)
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_PROTOCOL_FROM_USER", "0")
        .env("LC_ALL", "C")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut config = vec![("protocol.allow".to_string(), "never".to_string())];
    for scheme in ["https", "http", "ssh"] {
        config.push((format!("protocol.{scheme}.allow"), "always".to_string()));
    }
    if settings.allow_file {
        config.push(("protocol.file.allow".into(), "always".into()));
    }
    let mut key_file = None;
    match remote.and_then(|r| r.credential.as_ref()) {
        Some(token @ Credential::Token(_)) => {
            // Passed through the environment, not the command line, so `ps` does not show it.
            config.push((
                "http.extraHeader".into(),
                format!(
                    "Authorization: {}",
                    token.authorization().unwrap_or_default()
                ),
            ));
        }
        Some(Credential::SshKey(key)) => {
            let file = tempfile_in(&home, key.as_bytes())?;
            command.env(
                "GIT_SSH_COMMAND",
                format!("ssh -i {} -o IdentitiesOnly=yes -o BatchMode=yes -o StrictHostKeyChecking=accept-new", file.display()),
            );
            key_file = Some(file);
        }
        None => {}
    }
    command.env("GIT_CONFIG_COUNT", config.len().to_string());
    for (i, (k, v)) in config.iter().enumerate() {
        command
            .env(format!("GIT_CONFIG_KEY_{i}"), k)
            .env(format!("GIT_CONFIG_VALUE_{i}"), v);
    }
    let seconds = settings.network_timeout.as_secs();
    let output = tokio::time::timeout(settings.network_timeout, command.output()).await;
    if let Some(file) = key_file {
        let _ = std::fs::remove_file(file);
    }
    let output = output
        .map_err(|_| GitError::Timeout { operation, seconds })?
        .map_err(|e| {
            GitError::Local(format!(
                "cannot run {}: {e}",
                settings.git_program.display()
            ))
        })?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        // git's first `fatal:`/`error:` line says what went wrong; later lines are advice.
        let reason = stderr
            .lines()
            .find_map(|l| {
                l.strip_prefix("fatal: ")
                    .or_else(|| l.strip_prefix("error: "))
            })
            .or_else(|| stderr.lines().rfind(|l| !l.trim().is_empty()))
            .unwrap_or("git failed without a message")
            .trim();
        return Err(GitError::Remote(reason.to_string()));
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

fn tempfile_in(dir: &std::path::Path, contents: &[u8]) -> Result<std::path::PathBuf> {
    use std::io::Write;
    let path = dir.join(format!("key-{}-{}", std::process::id(), rand_suffix()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(&path)
        .map_err(|e| GitError::Local(format!("cannot write key file: {e}")))?;
    file.write_all(contents)
        .map_err(|e| GitError::Local(format!("cannot write key file: {e}")))?;
    Ok(path)
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default()
}

/// Branch names that are safe to put on a `git` command line as part of a refspec.
fn check_branch(branch: &str) -> Result<()> {
    let bad = branch.is_empty()
        || branch.starts_with('-')
        || branch.contains("..")
        || branch
            .bytes()
            .any(|b| b.is_ascii_control() || b" ~^:?*[\\".contains(&b));
    if bad {
        Err(GitError::Remote(format!(
            "'{branch}' is not a valid branch name"
        )))
    } else {
        Ok(())
    }
}

impl Remote {
    /// The remote's mirror, made (an empty bare repository) on first use.
    async fn mirror(&self, settings: &GitSettings) -> Result<Mirror> {
        let mirror = Mirror::for_url(settings, &self.url)?;
        if !mirror.path().join("HEAD").exists() {
            std::fs::create_dir_all(mirror.path()).map_err(|e| GitError::Local(e.to_string()))?;
            let path = mirror.path().to_string_lossy().into_owned();
            run_git(
                settings,
                None,
                "init",
                &["init", "--bare", "--quiet", &path],
            )
            .await?;
        }
        Ok(mirror)
    }

    /// The heads of `branches` on the remote, without fetching anything. Missing branches are
    /// absent from the answer.
    pub async fn list_branches(
        &self,
        settings: &GitSettings,
        branches: &[String],
    ) -> Result<BTreeMap<String, String>> {
        let patterns: Vec<String> = branches
            .iter()
            .map(|b| check_branch(b).map(|_| format!("refs/heads/{b}")))
            .collect::<Result<_>>()?;
        // Smart HTTP(S) in process; `git` for ssh, file and servers that do not speak v2.
        let answered = match settings
            .smart_http
            .list_branches(
                &self.url,
                self.credential
                    .as_ref()
                    .and_then(Credential::authorization)
                    .as_deref(),
                branches,
                settings.network_timeout,
            )
            .await
        {
            Ok(Some(Listing::Heads(heads))) => Some(Ok(heads)),
            Ok(Some(Listing::NotV2) | None) => None,
            Err(e) => Some(Err(e)),
        };
        if let Some(result) = answered {
            gitsync_telemetry::Event::GitCall {
                fetch: false,
                ok: result.is_ok(),
            }
            .emit();
            return result;
        }
        let mut args = vec![
            "ls-remote",
            "--heads",
            "--end-of-options",
            self.url.as_str(),
        ];
        args.extend(patterns.iter().map(String::as_str));
        let out = run_git(settings, Some(self), "ls-remote", &args).await?;
        let mut heads = BTreeMap::new();
        for line in out.lines() {
            if let Some((sha, name)) = line.split_once('\t')
                && let Some(branch) = name.strip_prefix("refs/heads/")
                && branches.iter().any(|b| b == branch)
            {
                heads.insert(branch.to_string(), sha.to_string());
            }
        }
        Ok(heads)
    }

    /// Fetches the tips of `branches` (depth 1) into this remote's mirror, and answers the commit
    /// each branch now points at.
    pub async fn fetch(
        &self,
        settings: &GitSettings,
        branches: &[String],
    ) -> Result<(Mirror, BTreeMap<String, String>)> {
        let mirror = self.mirror(settings).await?;
        let refspecs: Vec<String> = branches
            .iter()
            .map(|b| check_branch(b).map(|_| format!("+refs/heads/{b}:refs/heads/{b}")))
            .collect::<Result<_>>()?;
        let git_dir = format!("--git-dir={}", mirror.path().display());
        let mut args = vec![
            git_dir.as_str(),
            "fetch",
            "--quiet",
            "--depth=1",
            "--no-tags",
            "--no-write-fetch-head",
            "--end-of-options",
            self.url.as_str(),
        ];
        args.extend(refspecs.iter().map(String::as_str));
        match run_git(settings, Some(self), "fetch", &args).await {
            Err(GitError::Remote(m)) if m.contains("couldn't find remote ref") => {
                return Err(GitError::NoSuchBranch(branches.join(", ")));
            }
            other => other?,
        };
        let heads = mirror.branch_heads(branches)?;
        Ok((mirror, heads))
    }

    /// Fetches one ref of the remote at depth 1 into its mirror: a pull request's head
    /// (`refs/pull/<n>/head`, `refs/merge-requests/<iid>/head`) or a branch (`refs/heads/<b>`),
    /// kept under `refs/gitsync/…` so it never moves a branch the mirror tracks. Answers the
    /// commit it points at.
    pub async fn fetch_ref(&self, settings: &GitSettings, remote_ref: &str) -> Result<String> {
        check_fetchable_ref(remote_ref)?;
        let mirror = self.mirror(settings).await?;
        let local = format!("refs/gitsync/{}", &remote_ref["refs/".len()..]);
        let refspec = format!("+{remote_ref}:{local}");
        let git_dir = format!("--git-dir={}", mirror.path().display());
        let args = [
            git_dir.as_str(),
            "fetch",
            "--quiet",
            "--depth=1",
            "--no-tags",
            "--no-write-fetch-head",
            "--end-of-options",
            self.url.as_str(),
            refspec.as_str(),
        ];
        match run_git(settings, Some(self), "fetch", &args).await {
            Err(GitError::Remote(m)) if m.contains("couldn't find remote ref") => {
                return Err(GitError::NoSuchBranch(remote_ref.to_string()));
            }
            other => other?,
        };
        mirror.resolve(&local)?.ok_or_else(|| {
            GitError::Local(format!("{remote_ref} was fetched but {local} is missing"))
        })
    }
}

/// The refs [`Remote::fetch_ref`] fetches: pull and merge request heads, and branches.
fn check_fetchable_ref(reference: &str) -> Result<()> {
    let number = |rest: &str, suffix: &str| {
        rest.strip_suffix(suffix).is_some_and(|n| {
            !n.is_empty() && n.len() <= 12 && n.bytes().all(|b| b.is_ascii_digit())
        })
    };
    if let Some(rest) = reference.strip_prefix("refs/pull/") {
        if number(rest, "/head") {
            return Ok(());
        }
    } else if let Some(rest) = reference.strip_prefix("refs/merge-requests/") {
        if number(rest, "/head") {
            return Ok(());
        }
    } else if let Some(branch) = reference.strip_prefix("refs/heads/") {
        return check_branch(branch);
    }
    Err(GitError::Remote(format!(
        "'{reference}' is not a pull request head or a branch"
    )))
}

/// Repacks a mirror: every fetch leaves a pack, and many packs slow reads down.
pub async fn repack(settings: &GitSettings, mirror: &Mirror) -> Result<()> {
    let git_dir = format!("--git-dir={}", mirror.path().display());
    run_git(
        settings,
        None,
        "repack",
        &[git_dir.as_str(), "repack", "-a", "-d", "-q"],
    )
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_pull_request_heads_and_branches_are_fetched_by_ref() {
        for good in [
            "refs/pull/12/head",
            "refs/merge-requests/3/head",
            "refs/heads/feature/x",
        ] {
            assert!(check_fetchable_ref(good).is_ok(), "{good}");
        }
        for bad in [
            "refs/pull/12/merge",
            "refs/pull//head",
            "refs/pull/1a/head",
            "refs/heads/-x",
            "refs/heads/a..b",
            "refs/tags/v1",
            "HEAD",
            "refs/pull/12/head:refs/heads/main",
        ] {
            assert!(check_fetchable_ref(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn branch_names_that_could_be_options_or_refspec_tricks_are_refused() {
        for bad in ["", "-x", "a..b", "a:b", "a b", "a\nb", "*"] {
            assert!(check_branch(bad).is_err(), "{bad:?}");
        }
        for good in ["main", "release/1.2", "feature_x-y"] {
            assert!(check_branch(good).is_ok(), "{good}");
        }
    }

    #[test]
    fn only_network_schemes_reach_git() {
        assert!(
            Remote::new("ext::sh -c touch% /tmp/pwned", None)
                .check_url(true)
                .is_err()
        );
        assert!(Remote::new("/etc", None).check_url(true).is_err());
        assert!(
            Remote::new("--upload-pack=x", None)
                .check_url(true)
                .is_err()
        );
        assert!(
            Remote::new("https://example.com/o/r.git", None)
                .check_url(false)
                .is_ok()
        );
        let local = Remote::new("file:///srv/git/o/r.git", None);
        let refused = local.check_url(false).unwrap_err().to_string();
        assert!(refused.contains("--allow-file-remotes"), "{refused}");
        assert!(local.check_url(true).is_ok());
    }
}
