//! A bare mirror of one remote, read in process with gix.

use crate::{GitError, GitSettings, ReadBudgets, Result};
use sha2::{Digest, Sha256};
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::rc::Rc;

/// The local copy of one remote URL.
#[derive(Debug, Clone)]
pub struct Mirror {
    path: PathBuf,
    budgets: ReadBudgets,
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
            budgets: settings.budgets,
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

    /// The commit a ref points at, if the mirror has the ref.
    pub fn resolve(&self, reference: &str) -> Result<Option<String>> {
        let repo = self.open()?;
        match repo.find_reference(reference) {
            Ok(mut found) => Ok(Some(found.peel_to_id().map_err(local)?.to_string())),
            Err(_) => Ok(None),
        }
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
            budgets: self.budgets,
            dirs: RefCell::new(HashMap::new()),
        })
    }
}

/// What one walk of a tree has cost so far, against the budgets.
struct Walk<'a> {
    budgets: ReadBudgets,
    root: &'a str,
    entries: usize,
}

impl<'a> Walk<'a> {
    fn new(budgets: ReadBudgets, root: &'a str) -> Self {
        Walk {
            budgets,
            root,
            entries: 0,
        }
    }

    fn visit(&mut self, entries: usize, depth: usize) -> Result<()> {
        let root = self.root;
        if depth > self.budgets.max_tree_depth {
            return Err(GitError::OverBudget(format!(
                "{root} nests directories deeper than the max-tree-depth budget of {}",
                self.budgets.max_tree_depth
            )));
        }
        self.entries += entries;
        if self.entries > self.budgets.max_tree_entries {
            return Err(GitError::OverBudget(format!(
                "{root} holds more than the max-tree-entries budget of {} files and directories",
                self.budgets.max_tree_entries
            )));
        }
        Ok(())
    }
}

/// A directory's entries: name → (id, is directory, is file).
type Listing = Rc<HashMap<String, (gix::ObjectId, bool, bool)>>;

/// One commit of a mirror, for reading paths. Directories are decoded once and remembered, so
/// a thousand lookups under one large directory decode it once.
pub struct Snapshot {
    repo: gix::Repository,
    tree: gix::ObjectId,
    budgets: ReadBudgets,
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
        self.check_size(tree, "a directory")?;
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

    /// Refuses an object larger than the file budget, from its header: nothing is inflated.
    fn check_size(&self, id: gix::ObjectId, what: &str) -> Result<()> {
        let size = self.repo.find_header(id).map_err(local)?.size();
        let max = self.budgets.max_file_bytes;
        if size > max {
            return Err(GitError::OverBudget(format!(
                "{what} is {size} bytes, over the max-file-bytes budget of {max} bytes"
            )));
        }
        Ok(())
    }

    /// The contents of the file at `path`, `None` when it is missing or a directory. A file over
    /// the `max-file-bytes` budget is an error, found before it is inflated.
    pub fn read_file(&self, path: &str) -> Result<Option<Vec<u8>>> {
        match self.entry(path)? {
            Some((id, _, true)) => {
                self.check_size(id, clean(path))?;
                Ok(Some(self.repo.find_object(id).map_err(local)?.data.clone()))
            }
            _ => Ok(None),
        }
    }

    /// Every file under the directory at `path`, by path relative to it; `None` when it is not a
    /// directory. The walk is bounded: past `max_files` files, past the `max-tree-entries`
    /// budget of entries visited or below the `max-tree-depth` budget it stops with an error, so
    /// a small repository of nested directories cannot make it run for ever or exhaust memory.
    pub fn files_under(
        &self,
        path: &str,
        max_files: usize,
    ) -> Result<Option<BTreeMap<String, Vec<u8>>>> {
        let root = if clean(path).is_empty() {
            self.tree
        } else {
            match self.entry(path)? {
                Some((id, true, _)) => id,
                _ => return Ok(None),
            }
        };
        let mut walk = Walk::new(self.budgets, path);
        let mut out = BTreeMap::new();
        let mut pending: Vec<(String, gix::ObjectId, usize)> = vec![(String::new(), root, 0)];
        while let Some((prefix, tree, depth)) = pending.pop() {
            let listing = self.listing(tree)?;
            walk.visit(listing.len(), depth)?;
            let mut names: Vec<_> = listing.iter().collect();
            names.sort_by(|a, b| a.0.cmp(b.0));
            for (name, &(id, is_dir, is_file)) in names {
                let relative = if prefix.is_empty() {
                    name.clone()
                } else {
                    format!("{prefix}/{name}")
                };
                if is_dir {
                    pending.push((relative, id, depth + 1));
                } else if is_file {
                    if out.len() >= max_files {
                        return Err(GitError::OverBudget(format!(
                            "{path} holds more than {max_files} files"
                        )));
                    }
                    self.check_size(id, &format!("{}/{relative}", clean(path)))?;
                    out.insert(
                        relative,
                        self.repo.find_object(id).map_err(local)?.data.clone(),
                    );
                }
            }
        }
        Ok(Some(out))
    }

    /// The shallowest directory named `name` within `levels` levels of the root (breadth first,
    /// by name within a level), `None` when there is none. Bounded like [`Snapshot::files_under`].
    pub fn find_dir_named(&self, name: &str, levels: usize) -> Result<Option<String>> {
        let mut walk = Walk::new(self.budgets, "the repository");
        let mut level: Vec<(String, gix::ObjectId)> = vec![(String::new(), self.tree)];
        for depth in 0..levels {
            let mut next = Vec::new();
            for (dir, tree) in &level {
                let listing = self.listing(*tree)?;
                walk.visit(listing.len(), depth)?;
                let mut subdirs: Vec<_> = listing.iter().filter(|(_, e)| e.1).collect();
                subdirs.sort_by(|a, b| a.0.cmp(b.0));
                for (entry, &(id, _, _)) in subdirs {
                    let path = if dir.is_empty() {
                        entry.clone()
                    } else {
                        format!("{dir}/{entry}")
                    };
                    if entry == name {
                        return Ok(Some(path));
                    }
                    next.push((path, id));
                }
            }
            level = next;
        }
        Ok(None)
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
