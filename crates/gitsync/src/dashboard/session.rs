//! Who is signed in to the dashboard: sign-in with an access key, sessions held in the database
//! and named by a signed cookie, and the CSRF tokens every state-changing form carries.
//!
//! The cookie is `gitsync_session=<id>.<mac>`, `HttpOnly`, `SameSite=Strict`, `Path=/ui`. The
//! MAC (HMAC-SHA256 with a key derived from the master key, so every replica checks it) turns
//! away forged cookies before the database is asked; the session's row is what makes it valid,
//! so signing out, expiry (12 hours) and deleting the access key end it everywhere. A form's CSRF
//! token is the MAC of the session id for another purpose: only a page of this session has it.

use gitsync_model::Timestamp;
use gitsync_store::{DashboardSession, Store, StoreError};
use hmac::{Hmac, Mac};
use http::HeaderMap;
use sha2::Sha256;
use subtle::ConstantTimeEq;

pub const SESSION_COOKIE: &str = "gitsync_session";
/// Holds the token of a sign-in form (double submit): a page elsewhere cannot sign a browser in.
pub const SIGNIN_COOKIE: &str = "gitsync_signin";

/// A request's signed-in session.
#[derive(Debug, Clone)]
pub struct SignedIn {
    pub account_id: String,
    pub access_key_id: String,
    session_id: String,
    /// The token this session's forms carry.
    pub csrf: String,
}

/// Why a sign-in was refused (the page says so without telling which part was wrong).
pub enum SignInError {
    WrongKey,
    Store(StoreError),
}

pub struct Sessions {
    key: [u8; 32],
    store: Store,
}

impl Sessions {
    pub fn new(store: Store) -> Sessions {
        Sessions {
            key: store.sealer().derive_key("dashboard sessions"),
            store,
        }
    }

    fn mac(&self, purpose: &str, data: &str) -> String {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key).expect("any key length");
        mac.update(purpose.as_bytes());
        mac.update(b"\0");
        mac.update(data.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    /// The session id a cookie names, when its MAC is right.
    fn session_id<'a>(&self, cookie: &'a str) -> Option<&'a str> {
        let (id, mac) = cookie.split_once('.')?;
        let expected = self.mac("session", id);
        bool::from(expected.as_bytes().ct_eq(mac.as_bytes())).then_some(id)
    }

    /// The signed-in session of a request, if it has a valid one.
    pub async fn signed_in(&self, headers: &HeaderMap) -> Result<Option<SignedIn>, StoreError> {
        let Some(id) = cookie(headers, SESSION_COOKIE).and_then(|c| self.session_id(c)) else {
            return Ok(None);
        };
        Ok(self
            .store
            .dashboard_session(id, Timestamp::now())
            .await?
            .map(
                |DashboardSession {
                     account_id,
                     access_key_id,
                 }| SignedIn {
                    account_id,
                    access_key_id,
                    csrf: self.mac("csrf", id),
                    session_id: id.to_string(),
                },
            ))
    }

    /// Whether a form's token is this session's.
    pub fn csrf_ok(&self, session: &SignedIn, token: &str) -> bool {
        bool::from(session.csrf.as_bytes().ct_eq(token.as_bytes()))
    }

    /// Checks an access key pair and opens a session: answers the cookie to set.
    pub async fn sign_in(
        &self,
        access_key_id: &str,
        secret_access_key: &str,
        secure: bool,
    ) -> Result<String, SignInError> {
        let key = self
            .store
            .access_key(access_key_id.trim())
            .await
            .map_err(SignInError::Store)?
            .ok_or(SignInError::WrongKey)?;
        if !bool::from(
            key.secret_access_key
                .as_bytes()
                .ct_eq(secret_access_key.trim().as_bytes()),
        ) {
            return Err(SignInError::WrongKey);
        }
        let (id, expires) = self
            .store
            .open_dashboard_session(&key, Timestamp::now())
            .await
            .map_err(SignInError::Store)?;
        let max_age = (expires.millis() - Timestamp::now().millis()) / 1000;
        let value = format!("{id}.{}", self.mac("session", &id));
        Ok(set_cookie(SESSION_COOKIE, &value, "/ui", max_age, secure))
    }

    /// Ends the session on every replica; answers the cookie that clears it in the browser.
    pub async fn sign_out(&self, session: &SignedIn, secure: bool) -> Result<String, StoreError> {
        self.store
            .close_dashboard_session(&session.session_id)
            .await?;
        Ok(set_cookie(SESSION_COOKIE, "", "/ui", 0, secure))
    }
}

/// A cookie of the request.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// A `Set-Cookie` value: never readable by scripts, never sent from another site.
pub fn set_cookie(name: &str, value: &str, path: &str, max_age: i64, secure: bool) -> String {
    format!(
        "{name}={value}; Path={path}; Max-Age={max_age}; HttpOnly; SameSite=Strict{}",
        if secure { "; Secure" } else { "" }
    )
}

/// Whether the browser reached gitsync over HTTPS (directly or through a proxy that says so):
/// cookies are then marked `Secure`.
pub fn is_https(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https"))
}

/// A random token for a sign-in form.
pub fn new_form_token() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}

/// Whether a sign-in form's token matches its cookie.
pub fn signin_token_ok(headers: &HeaderMap, token: &str) -> bool {
    cookie(headers, SIGNIN_COOKIE)
        .is_some_and(|c| !c.is_empty() && bool::from(c.as_bytes().ct_eq(token.as_bytes())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_found_among_others() {
        let mut h = HeaderMap::new();
        h.append(
            http::header::COOKIE,
            "a=1; gitsync_session=x.y".parse().unwrap(),
        );
        h.append(http::header::COOKIE, "b=2".parse().unwrap());
        assert_eq!(cookie(&h, SESSION_COOKIE), Some("x.y"));
        assert_eq!(cookie(&h, "b"), Some("2"));
        assert_eq!(cookie(&h, "gitsync"), None);
    }

    #[test]
    fn set_cookie_is_http_only_and_strict() {
        let c = set_cookie(SESSION_COOKIE, "v", "/ui", 60, true);
        assert_eq!(
            c,
            "gitsync_session=v; Path=/ui; Max-Age=60; HttpOnly; SameSite=Strict; Secure"
        );
    }
}
