//! A bare mirror of one remote, read in process with gix.

use crate::{GitError, GitSettings, Result};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The local copy of one remote URL.
#[derive(Debug, Clone)]
pub struct Mirror {
    path: PathBuf,
}

/// One entry of a directory in a commit's tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    pub name: String,
    pub id: String,
    pub is_dir: bool,
}

fn local(e: impl std::fmt::Display) -> GitError {
    GitError::Local(e.to_string())
}

impl Mirror {
    /// The mirror of `url`: a directory named by a hash of the URL (URLs may carry user names).
    pub fn for_url(settings: &GitSettings, url: &str) -> Result<Mirror> {
        let digest = hex::encode(Sha256::digest(url.as_bytes()));
        Ok(Mirror {
            path: settings.cache_dir.join("mirrors").join(&digest[..24]),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn open(&self) -> Result<gix::Repository> {
        gix::open(&self.path).map_err(|e| {
            GitError::Local(format!("cannot open mirror {}: {e}", self.path.display()))
        })
    }

    /// Whether the mirror holds a commit (so a fetch can be skipped).
    pub fn has_commit(&self, sha: &str) -> bool {
        let Ok(repo) = self.open() else { return false };
        let Ok(id) = gix::ObjectId::from_hex(sha.as_bytes()) else {
            return false;
        };
        repo.find_commit(id).is_ok()
    }

    /// The commits local branches point at.
    pub fn branch_heads(&self, branches: &[String]) -> Result<BTreeMap<String, String>> {
        let repo = self.open()?;
        let mut heads = BTreeMap::new();
        for branch in branches {
            if let Ok(mut reference) = repo.find_reference(format!("refs/heads/{branch}").as_str())
            {
                let id = reference.peel_to_id().map_err(local)?;
                heads.insert(branch.clone(), id.to_string());
            }
        }
        Ok(heads)
    }

    /// Opens the mirror for many reads at one commit.
    pub fn at(&self, sha: &str) -> Result<Snapshot> {
        let repo = self.open()?;
        let id = gix::ObjectId::from_hex(sha.as_bytes())
            .map_err(|e| GitError::Local(format!("'{sha}' is not a commit id: {e}")))?;
        let tree = repo
            .find_commit(id)
            .map_err(|e| GitError::Local(format!("commit {sha} is not in the mirror: {e}")))?
            .tree_id()
            .map_err(local)?
            .detach();
        Ok(Snapshot { repo, tree })
    }
}

/// One commit of a mirror, for reading paths.
pub struct Snapshot {
    repo: gix::Repository,
    tree: gix::ObjectId,
}

/// Paths in the repository are relative to its root; a leading `./` or `/` is allowed.
fn clean(path: &str) -> &str {
    path.trim_start_matches("./").trim_start_matches('/')
}

impl Snapshot {
    fn entry(&self, path: &str) -> Result<Option<gix::object::tree::Entry<'_>>> {
        let path = clean(path);
        if path.is_empty() || path.split('/').any(|c| c == ".." || c == ".") {
            return Ok(None);
        }
        let tree = self.repo.find_tree(self.tree).map_err(local)?;
        tree.lookup_entry_by_path(path).map_err(local)
    }

    /// The id of the blob or tree at `path`, `None` when there is nothing there. Two commits
    /// whose ids for a path agree have identical content there.
    pub fn entry_id(&self, path: &str) -> Result<Option<String>> {
        Ok(self.entry(path)?.map(|e| e.object_id().to_string()))
    }

    /// The contents of the file at `path`, `None` when it is missing or a directory.
    pub fn read_file(&self, path: &str) -> Result<Option<Vec<u8>>> {
        match self.entry(path)? {
            Some(entry) if entry.mode().is_blob() => {
                let object = entry.object().map_err(local)?;
                Ok(Some(object.data.clone()))
            }
            _ => Ok(None),
        }
    }

    /// The entries of the directory at `path` ("" for the root), `None` when it is not one.
    pub fn list_dir(&self, path: &str) -> Result<Option<Vec<DirEntry>>> {
        let tree = if clean(path).is_empty() {
            self.repo.find_tree(self.tree).map_err(local)?
        } else {
            match self.entry(path)? {
                Some(e) if e.mode().is_tree() => {
                    self.repo.find_tree(e.object_id()).map_err(local)?
                }
                _ => return Ok(None),
            }
        };
        let mut out = Vec::new();
        for entry in tree.iter() {
            let entry = entry.map_err(local)?;
            out.push(DirEntry {
                name: entry.filename().to_string(),
                id: entry.oid().to_string(),
                is_dir: entry.mode().is_tree(),
            });
        }
        Ok(Some(out))
    }
}
