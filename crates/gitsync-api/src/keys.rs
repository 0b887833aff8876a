//! Opened access keys, kept in memory so that a signed request costs no database read, no
//! unsealing and (within a day and scope) no key derivation.
//!
//! Revocation: keys are deleted by `gitsync keys delete`, another process, on any replica. A key
//! read from the database is trusted for [`KEY_TTL`] and then read again, so every replica
//! refuses a deleted key at most [`KEY_TTL`] after the delete commits (plus the time of a request
//! already being verified). Unknown keys are never remembered: a flood of made-up key ids costs
//! one indexed read each, as it did before, and cannot fill the cache.

use crate::sigv4::{self, CredentialScope, SigningKey};
use gitsync_store::{Store, StoreError};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

/// How long an opened key is used before it is read again: the bound on how long a deleted key
/// can still sign (documented in `docs/security.md`).
pub const KEY_TTL: Duration = Duration::from_secs(1);

/// At most this many keys are held; past it, expired entries go, then all of them.
const MAX_KEYS: usize = 10_000;

/// The signing keys kept per access key: clients sign for one date, region and service at a
/// time, a few at most (Proton and CodeConnections, around midnight two dates).
const SCOPES_PER_KEY: usize = 4;

struct Opened {
    account_id: String,
    secret: String,
    read_at: Instant,
    /// (date, region, service) → signing key, newest last.
    scopes: Mutex<Vec<([String; 3], SigningKey)>>,
}

impl Opened {
    /// The signing key of `scope`, derived on first use; looking it up allocates nothing.
    fn signing_key(&self, scope: &CredentialScope) -> SigningKey {
        let mut scopes = self.scopes.lock().unwrap_or_else(|e| e.into_inner());
        let same = |[date, region, service]: &[String; 3]| {
            *date == scope.date && *region == scope.region && *service == scope.service
        };
        if let Some((_, key)) = scopes.iter().find(|(name, _)| same(name)) {
            return *key;
        }
        let key = sigv4::signing_key(&self.secret, scope);
        if scopes.len() == SCOPES_PER_KEY {
            scopes.remove(0);
        }
        let name = [
            scope.date.clone(),
            scope.region.clone(),
            scope.service.clone(),
        ];
        scopes.push((name, key));
        key
    }
}

/// The access keys this replica has opened recently.
#[derive(Default)]
pub struct KeyCache {
    keys: RwLock<HashMap<String, Arc<Opened>>>,
}

/// What a request's credential resolves to.
pub struct Credential {
    pub account_id: String,
    pub signing_key: SigningKey,
}

impl KeyCache {
    /// The account and signing key of `scope`'s access key, or `None` when there is no such key.
    pub async fn credential(
        &self,
        store: &Store,
        scope: &CredentialScope,
    ) -> Result<Option<Credential>, StoreError> {
        let cached = self
            .keys
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&scope.access_key_id)
            .filter(|k| k.read_at.elapsed() < KEY_TTL)
            .cloned();
        let opened = match cached {
            Some(opened) => opened,
            None => match store.access_key(&scope.access_key_id).await? {
                Some(key) => self.keep(key),
                None => {
                    self.forget(&scope.access_key_id);
                    return Ok(None);
                }
            },
        };
        Ok(Some(Credential {
            account_id: opened.account_id.clone(),
            signing_key: opened.signing_key(scope),
        }))
    }

    fn keep(&self, key: gitsync_store::AccessKey) -> Arc<Opened> {
        let opened = Arc::new(Opened {
            account_id: key.account_id,
            secret: key.secret_access_key,
            read_at: Instant::now(),
            scopes: Mutex::new(Vec::new()),
        });
        let mut keys = self.keys.write().unwrap_or_else(|e| e.into_inner());
        if keys.len() >= MAX_KEYS && !keys.contains_key(&key.access_key_id) {
            keys.retain(|_, k| k.read_at.elapsed() < KEY_TTL);
            if keys.len() >= MAX_KEYS {
                keys.clear();
            }
        }
        keys.insert(key.access_key_id, opened.clone());
        opened
    }

    fn forget(&self, access_key_id: &str) {
        self.keys
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(access_key_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gitsync_model::Limits;
    use gitsync_store::MasterKey;

    fn scope(key: &str, service: &str) -> CredentialScope {
        CredentialScope {
            access_key_id: key.into(),
            date: "20261204".into(),
            region: "us-east-1".into(),
            service: service.into(),
        }
    }

    #[tokio::test]
    async fn a_deleted_key_is_refused_once_its_entry_expires() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/t.db", dir.path().display());
        let store = Store::open(&url, MasterKey::generate(), Limits::default())
            .await
            .unwrap();
        let key = store.create_access_key("123456789012").await.unwrap();
        let cache = KeyCache::default();
        let proton = scope(&key.access_key_id, "proton");
        let found = cache.credential(&store, &proton).await.unwrap().unwrap();
        assert_eq!(found.account_id, "123456789012");
        // The key the cache derives is the one a client signs with.
        assert_eq!(
            found.signing_key,
            sigv4::signing_key(&key.secret_access_key, &proton)
        );
        let other = scope(&key.access_key_id, "codeconnections");
        assert_eq!(
            cache
                .credential(&store, &other)
                .await
                .unwrap()
                .unwrap()
                .signing_key,
            sigv4::signing_key(&key.secret_access_key, &other)
        );
        assert!(store.delete_access_key(&key.access_key_id).await.unwrap());
        // Once the opened key's lifetime is over, the database says no.
        tokio::time::sleep(KEY_TTL).await;
        assert!(cache.credential(&store, &proton).await.unwrap().is_none());
        assert!(
            cache
                .credential(&store, &scope("AKIANOSUCHKEY0000000", "proton"))
                .await
                .unwrap()
                .is_none()
        );
        assert!(cache.keys.read().unwrap().is_empty());
    }
}
