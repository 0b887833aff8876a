//! A bare mirror of one remote, read in process with gix.

use crate::{GitError, GitSettings, Result};
use sha2::{Digest, Sha256};
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::rc::Rc;

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
        Ok(Snapshot {
            repo,
            tree,
            dirs: RefCell::new(HashMap::new()),
        })
    }
}

/// A directory's entries: name → (id, is directory, is file).
type Listing = Rc<HashMap<String, (gix::ObjectId, bool, bool)>>;

/// One commit of a mirror, for reading paths. Directories are decoded once and remembered, so
/// a thousand lookups under one large directory decode it once.
pub struct Snapshot {
    repo: gix::Repository,
    tree: gix::ObjectId,
    dirs: RefCell<HashMap<gix::ObjectId, Listing>>,
}

/// Paths in the repository are relative to its root; a leading `./` or `/` is allowed.
fn clean(path: &str) -> &str {
    path.trim_start_matches("./").trim_start_matches('/')
}

impl Snapshot {
    fn listing(&self, tree: gix::ObjectId) -> Result<Listing> {
        if let Some(l) = self.dirs.borrow().get(&tree) {
            return Ok(l.clone());
        }
        let decoded = self.repo.find_tree(tree).map_err(local)?;
        let mut entries = HashMap::new();
        for entry in decoded.iter() {
            let entry = entry.map_err(local)?;
            let mode = entry.mode();
            entries.insert(
                entry.filename().to_string(),
                (entry.oid().to_owned(), mode.is_tree(), mode.is_blob()),
            );
        }
        let listing = Rc::new(entries);
        self.dirs.borrow_mut().insert(tree, listing.clone());
        Ok(listing)
    }

    /// (id, is directory, is file) of what is at `path`.
    fn entry(&self, path: &str) -> Result<Option<(gix::ObjectId, bool, bool)>> {
        let path = clean(path);
        if path.is_empty()
            || path
                .split('/')
                .any(|c| c.is_empty() || c == ".." || c == ".")
        {
            return Ok(None);
        }
        let mut current = self.tree;
        let mut parts = path.split('/').peekable();
        while let Some(part) = parts.next() {
            let Some(&(id, is_dir, is_file)) = self.listing(current)?.get(part) else {
                return Ok(None);
            };
            if parts.peek().is_none() {
                return Ok(Some((id, is_dir, is_file)));
            }
            if !is_dir {
                return Ok(None);
            }
            current = id;
        }
        Ok(None)
    }

    /// The id of the blob or tree at `path`, `None` when there is nothing there. Two commits
    /// whose ids for a path agree have identical content there.
    pub fn entry_id(&self, path: &str) -> Result<Option<String>> {
        Ok(self.entry(path)?.map(|(id, _, _)| id.to_string()))
    }

    /// The contents of the file at `path`, `None` when it is missing or a directory.
    pub fn read_file(&self, path: &str) -> Result<Option<Vec<u8>>> {
        match self.entry(path)? {
            Some((id, _, true)) => Ok(Some(self.repo.find_object(id).map_err(local)?.data.clone())),
            _ => Ok(None),
        }
    }

    /// Every file under the directory at `path`, by path relative to it; `None` when it is not a
    /// directory. Stops with an error past `max_files` files, so a huge tree cannot exhaust memory.
    pub fn files_under(
        &self,
        path: &str,
        max_files: usize,
    ) -> Result<Option<BTreeMap<String, Vec<u8>>>> {
        let Some(root) = self.list_dir(path)? else {
            return Ok(None);
        };
        let mut out = BTreeMap::new();
        let mut pending: Vec<(String, Vec<DirEntry>)> = vec![(String::new(), root)];
        while let Some((prefix, entries)) = pending.pop() {
            for entry in entries {
                let relative = if prefix.is_empty() {
                    entry.name.clone()
                } else {
                    format!("{prefix}/{}", entry.name)
                };
                let full = format!("{}/{relative}", clean(path).trim_end_matches('/'));
                if entry.is_dir {
                    if let Some(children) = self.list_dir(&full)? {
                        pending.push((relative, children));
                    }
                } else if let Some(bytes) = self.read_file(&full)? {
                    if out.len() >= max_files {
                        return Err(GitError::Local(format!(
                            "{path} holds more than {max_files} files"
                        )));
                    }
                    out.insert(relative, bytes);
                }
            }
        }
        Ok(Some(out))
    }

    /// The entries of the directory at `path` ("" for the root), `None` when it is not one.
    pub fn list_dir(&self, path: &str) -> Result<Option<Vec<DirEntry>>> {
        let tree = if clean(path).is_empty() {
            self.tree
        } else {
            match self.entry(path)? {
                Some((id, true, _)) => id,
                _ => return Ok(None),
            }
        };
        let mut out: Vec<DirEntry> = self
            .listing(tree)?
            .iter()
            .map(|(name, (id, is_dir, _))| DirEntry {
                name: name.clone(),
                id: id.to_string(),
                is_dir: *is_dir,
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(Some(out))
    }
}
