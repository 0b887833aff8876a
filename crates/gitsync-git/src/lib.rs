//! Git access for gitsync, behind a small API of its own.
//!
//! * Listing branch heads over smart HTTP(S) is one protocol v2 `ls-refs` request on a pooled
//!   connection, in process (`smart_http`): the check an idle remote costs every poll.
//! * Everything else on remotes (depth-1 fetches; listings over ssh, `file://` or from servers
//!   that do not speak v2) goes through the `git` program, with a timeout on every call: it speaks
//!   every transport and authentication scheme users have, and it repacks.
//! * Reading what was fetched (the tree-entry id at a path, a file at a commit, a directory
//!   listing) goes through `gix`, in process, so deciding relevance for a thousand targets costs a
//!   thousand lookups, not a thousand processes.
//!
//! Each remote URL has one bare mirror in the cache directory, shared by every target that syncs
//! from it. Mirrors are a cache, never state: deleting one costs a fetch.

mod mirror;
mod remote;
mod smart_http;

pub use mirror::{DirEntry, Mirror, Snapshot};
pub use remote::{Credential, Remote, repack};

use std::path::PathBuf;
use std::time::Duration;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum GitError {
    /// The remote could not be reached or refused us (network, authentication, missing repository).
    #[error("{0}")]
    Remote(String),
    /// A network call took longer than allowed.
    #[error("git {operation} timed out after {seconds} s")]
    Timeout {
        operation: &'static str,
        seconds: u64,
    },
    /// The branch does not exist on the remote.
    #[error("branch {0} does not exist on the remote")]
    NoSuchBranch(String),
    /// Something is wrong with the local mirror (disk, corrupt objects, a missing commit).
    #[error("local mirror: {0}")]
    Local(String),
    /// The repository holds more than gitsync reads: a file or a tree over a budget. It stays so
    /// until the repository changes.
    #[error("{0}")]
    OverBudget(String),
}

impl GitError {
    /// Whether trying again later may help (not for a missing branch or a budget exceeded).
    pub fn is_transient(&self) -> bool {
        !matches!(self, GitError::NoSuchBranch(_) | GitError::OverBudget(_))
    }
}

/// Budgets on what reading one repository may cost; see `docs/security.md`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadBudgets {
    /// Largest file (or directory listing) read, checked from the object header before inflating.
    pub max_file_bytes: u64,
    /// Most entries one walk of a directory tree may visit.
    pub max_tree_entries: usize,
    /// Deepest nesting a walk may enter.
    pub max_tree_depth: usize,
}

impl Default for ReadBudgets {
    fn default() -> Self {
        ReadBudgets {
            max_file_bytes: 4 << 20,
            max_tree_entries: 10_000,
            max_tree_depth: 16,
        }
    }
}

pub type Result<T, E = GitError> = std::result::Result<T, E>;

/// Where mirrors live and how long network calls may take.
#[derive(Debug, Clone)]
pub struct GitSettings {
    pub cache_dir: PathBuf,
    pub network_timeout: Duration,
    /// The `git` program to run.
    pub git_program: PathBuf,
    /// Whether `file://` remotes may be read (`gitsync serve --allow-file-remotes`).
    pub allow_file: bool,
    pub budgets: ReadBudgets,
    /// The in-process smart HTTP client for ref listings, shared by every clone.
    smart_http: smart_http::SmartHttp,
}

impl GitSettings {
    pub fn new(cache_dir: impl Into<PathBuf>) -> Self {
        GitSettings {
            cache_dir: cache_dir.into(),
            network_timeout: Duration::from_secs(60),
            git_program: PathBuf::from("git"),
            allow_file: false,
            budgets: ReadBudgets::default(),
            smart_http: smart_http::SmartHttp::default(),
        }
    }
}

/// A 40-hex-digit commit id.
pub fn is_commit_id(value: &str) -> bool {
    value.len() == 40
        && value
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}
