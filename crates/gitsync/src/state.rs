//! Opening gitsync's state from the command-line options: data directory, database, master key.

use crate::cli::StateArgs;
use anyhow::{Context, Result, bail};
use gitsync_model::Limits;
use gitsync_store::{MasterKey, Store};
use std::io::Write;
use std::path::{Path, PathBuf};

pub struct State {
    pub data_dir: PathBuf,
    pub store: Store,
}

impl StateArgs {
    pub fn data_dir(&self) -> PathBuf {
        if let Some(dir) = &self.data_dir {
            return dir.clone();
        }
        let base = std::env::var_os("XDG_DATA_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
            .unwrap_or_else(|| PathBuf::from("."));
        base.join("gitsync")
    }

    fn key_file(&self) -> PathBuf {
        self.master_key_file
            .clone()
            .unwrap_or_else(|| self.data_dir().join("master.key"))
    }

    fn database_url(&self) -> String {
        match &self.database_url {
            Some(url) => url.clone(),
            None => format!("sqlite://{}", self.data_dir().join("gitsync.db").display()),
        }
    }

    /// The master key, which must exist: only `serve` (in its default location) and `init`
    /// create one, so a mistyped path never makes a new key that opens nothing.
    fn master_key(&self) -> Result<MasterKey> {
        load_master_key(&self.key_file())
    }

    /// Opens a database by URL with this installation's master key.
    pub async fn open_url(&self, url: &str, limits: Limits) -> Result<Store> {
        gitsync_store::Backend::of_url(url)?;
        Store::open(url, self.master_key()?, limits)
            .await
            .with_context(|| format!("cannot open database {}", redact_url(url)))
    }

    /// Opens an existing installation for a command other than `serve`: its data directory,
    /// master key and database must exist (a typo must not create a fresh, empty one).
    pub async fn open(&self) -> Result<State> {
        let data_dir = self.data_dir();
        if self.database_url.is_none() && !data_dir.join("gitsync.db").exists() {
            bail!(
                "there is no gitsync database in {} (no gitsync.db): give the server's --data-dir, or --database-url for PostgreSQL",
                data_dir.display()
            );
        }
        let store = self
            .open_url(&self.database_url(), Limits::default())
            .await?;
        Ok(State { data_dir, store })
    }

    /// Opens the installation `serve` runs on, creating on first start what the embedded
    /// defaults need: the private data directory, the master key in it, the SQLite database. A
    /// named `--master-key-file` must exist (`gitsync init` makes it), and the key must open the
    /// database's secrets.
    pub async fn open_for_serve(&self, limits: Limits) -> Result<State> {
        let data_dir = self.data_dir();
        prepare_private_dir(&data_dir)?;
        let key = if self.master_key_file.is_none() {
            load_or_create_master_key(&self.key_file())?
        } else {
            self.master_key()?
        };
        let url = self.database_url();
        let store = Store::open(&url, key, limits)
            .await
            .with_context(|| format!("cannot open database {}", redact_url(&url)))?;
        store.check_master_key().await.with_context(|| {
            format!(
                "the master key {} does not open this database's secrets: start every replica with the key the database was made with",
                self.key_file().display()
            )
        })?;
        Ok(State { data_dir, store })
    }

    /// `gitsync init`: the master key (created if missing) and the database's schema.
    pub async fn init(&self) -> Result<()> {
        let data_dir = self.data_dir();
        prepare_private_dir(&data_dir)?;
        let key_file = self.key_file();
        let existed = key_file.exists();
        let key = load_or_create_master_key(&key_file)?;
        let url = self.database_url();
        let store = Store::open(&url, key, Limits::default())
            .await
            .with_context(|| format!("cannot open database {}", redact_url(&url)))?;
        store.check_master_key().await.with_context(|| {
            format!(
                "the master key {} does not open this database's secrets",
                key_file.display()
            )
        })?;
        println!(
            "master key {} ({})",
            key_file.display(),
            if existed {
                "already there, kept"
            } else {
                "created; back it up with the database"
            }
        );
        println!("database {} is ready", redact_url(&url));
        Ok(())
    }
}

/// Creates the data directory if needed and makes it, and everything gitsync keeps directly in it
/// (database, keys, credentials, the Git mirrors' folder), private to the user running gitsync:
/// directories `0700`, files `0600`. Existing installations are tightened on their next start.
/// Files created later (SQLite's WAL, mirrors written by git) inherit the process's umask `077`.
pub fn prepare_private_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create data directory {}", dir.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let private = |path: &Path, mode: u32| {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
                .with_context(|| format!("cannot make {} private", path.display()))
        };
        private(dir, 0o700)?;
        for entry in std::fs::read_dir(dir)
            .with_context(|| format!("cannot read data directory {}", dir.display()))?
        {
            let entry = entry?;
            let file_type = entry.file_type()?;
            if file_type.is_dir() {
                private(&entry.path(), 0o700)?;
            } else if file_type.is_file() {
                private(&entry.path(), 0o600)?;
            }
        }
    }
    Ok(())
}

/// Files and directories this process creates are its user's alone (umask `077`): SQLite's
/// database and journal files, the mirrors git writes, keys and credentials.
pub fn restrict_umask() {
    #[cfg(unix)]
    // SAFETY: umask only sets the process's file-creation mask; it cannot fail.
    unsafe {
        libc::umask(0o077);
    }
}

/// Hides a password in a database URL for messages.
fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// Reads a master key file.
fn load_master_key(path: &Path) -> Result<MasterKey> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let bytes = hex_decode(text.trim()).with_context(|| {
                format!("{} must hold 64 hexadecimal characters", path.display())
            })?;
            Ok(MasterKey::from_bytes(bytes))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
            "master key {} does not exist: create it with `gitsync init --master-key-file {}` (or give the server's --data-dir)",
            path.display(),
            path.display()
        ),
        Err(e) => Err(e).with_context(|| format!("cannot read master key {}", path.display())),
    }
}

/// Reads a master key file, creating a new key there when there is none.
fn load_or_create_master_key(path: &Path) -> Result<MasterKey> {
    if path.exists() {
        return load_master_key(path);
    }
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    let key = MasterKey::generate();
    let hex: String = key.as_bytes().iter().map(|b| format!("{b:02x}")).collect();
    write_private(path, format!("{hex}\n").as_bytes())?;
    tracing::info!(path = %path.display(), "created a new master key; keep it with the database, secrets cannot be read without it");
    Ok(key)
}

fn hex_decode(text: &str) -> Result<[u8; 32]> {
    if text.len() != 64 {
        bail!("expected 64 characters, found {}", text.len());
    }
    let mut out = [0u8; 32];
    for (i, chunk) in text.as_bytes().chunks(2).enumerate() {
        let pair = std::str::from_utf8(chunk)?;
        out[i] =
            u8::from_str_radix(pair, 16).with_context(|| format!("'{pair}' is not hexadecimal"))?;
    }
    Ok(out)
}

/// Writes a file only its owner can read (keys and credentials).
pub fn write_private(path: &Path, contents: &[u8]) -> Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    file.write_all(contents)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_passwords_are_redacted() {
        assert_eq!(
            redact_url("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(redact_url("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact_url("sqlite:///tmp/x.db"), "sqlite:///tmp/x.db");
    }

    #[cfg(unix)]
    #[test]
    fn data_directories_are_made_private_including_existing_files() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("gitsync-private-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("git/mirror")).unwrap();
        std::fs::write(dir.join("gitsync.db"), "x").unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(
            dir.join("gitsync.db"),
            std::fs::Permissions::from_mode(0o644),
        )
        .unwrap();
        std::fs::set_permissions(dir.join("git"), std::fs::Permissions::from_mode(0o755)).unwrap();
        prepare_private_dir(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join("gitsync.db")), 0o600);
        assert_eq!(mode(&dir.join("git")), 0o700);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn master_keys_are_created_once_and_read_back() {
        let dir = std::env::temp_dir().join(format!("gitsync-key-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("master.key");
        let _ = std::fs::remove_file(&path);
        let first = load_or_create_master_key(&path).unwrap();
        let again = load_or_create_master_key(&path).unwrap();
        assert_eq!(first.as_bytes(), again.as_bytes());
        assert_eq!(load_master_key(&path).unwrap().as_bytes(), first.as_bytes());
        let absent = load_master_key(&dir.join("absent.key"))
            .unwrap_err()
            .to_string();
        assert!(absent.contains("gitsync init"), "{absent}");
        assert!(!dir.join("absent.key").exists());
        std::fs::write(&path, "zz").unwrap();
        assert!(load_or_create_master_key(&path).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
