//! Opaque, tamper-proof pagination tokens.
//!
//! A token carries where a listing stopped, bound to the tenant and the listing that issued it
//! and signed with a server key: a client can neither forge one nor replay another tenant's (and
//! every query is tenant-scoped anyway). The encoding is standard base64, which fits every
//! token pattern in the models (Proton's is `^[A-Za-z0-9+=/]+$`).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use gitsync_model::Tenant;
use hmac::{Hmac, Mac};
use sha2::Sha256;

#[derive(Clone)]
pub struct Paginator {
    key: [u8; 32],
}

const MAC_LEN: usize = 16;

impl Paginator {
    pub fn new(key: [u8; 32]) -> Self {
        Paginator { key }
    }

    fn mac(&self, payload: &[u8]) -> [u8; MAC_LEN] {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key)
            .expect("HMAC accepts keys of any length");
        mac.update(payload);
        let full: [u8; 32] = mac.finalize().into_bytes().into();
        let mut out = [0u8; MAC_LEN];
        out.copy_from_slice(&full[..MAC_LEN]);
        out
    }

    fn payload(tenant: &Tenant, listing: &str, after: &str) -> Vec<u8> {
        // Fields are joined with NUL, which none of them can contain.
        format!(
            "v1\0{}\0{}\0{listing}\0{after}",
            tenant.account_id, tenant.region
        )
        .into_bytes()
    }

    pub fn issue(&self, tenant: &Tenant, listing: &str, after: &str) -> String {
        let payload = Self::payload(tenant, listing, after);
        let mut bytes = self.mac(&payload).to_vec();
        bytes.extend_from_slice(after.as_bytes());
        STANDARD.encode(bytes)
    }

    /// Where a listing continues from a request's `member` token: nowhere without one, the
    /// position it carries when this server issued it for this tenant and listing, and a
    /// validation error of `service` (naming the member) otherwise.
    pub fn resume(
        &self,
        tenant: &Tenant,
        listing: &str,
        token: Option<&str>,
        service: crate::service::Service,
        member: &str,
    ) -> Result<Option<String>, crate::error::ApiError> {
        match token {
            None | Some("") => Ok(None),
            Some(t) => self.redeem(tenant, listing, t).map(Some).ok_or_else(|| {
                crate::error::ApiError::invalid(
                    service,
                    format!(
                        "{member}: the token is not one this server issued to this account for this listing with these filters"
                    ),
                )
            }),
        }
    }

    /// Where to continue, if `token` was issued by this server for this tenant and listing.
    pub fn redeem(&self, tenant: &Tenant, listing: &str, token: &str) -> Option<String> {
        let bytes = STANDARD.decode(token).ok()?;
        if bytes.len() < MAC_LEN {
            return None;
        }
        let (mac, after) = bytes.split_at(MAC_LEN);
        let after = std::str::from_utf8(after).ok()?;
        let expected = self.mac(&Self::payload(tenant, listing, after));
        use subtle::ConstantTimeEq;
        bool::from(expected.ct_eq(mac)).then(|| after.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_bind_tenant_listing_and_content() {
        let p = Paginator::new([7; 32]);
        let a = Tenant::new("111111111111", "us-east-1");
        let b = Tenant::new("222222222222", "us-east-1");
        let token = p.issue(&a, "ListConnections", "abc-123");
        assert!(
            token
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || b"+/=".contains(&c))
        );
        assert_eq!(
            p.redeem(&a, "ListConnections", &token).as_deref(),
            Some("abc-123")
        );
        assert_eq!(p.redeem(&b, "ListConnections", &token), None);
        assert_eq!(
            p.redeem(
                &Tenant::new("111111111111", "eu-west-1"),
                "ListConnections",
                &token
            ),
            None
        );
        assert_eq!(p.redeem(&a, "ListHosts", &token), None);
        assert_eq!(
            Paginator::new([8; 32]).redeem(&a, "ListConnections", &token),
            None
        );
        let mut forged = STANDARD.decode(&token).unwrap();
        *forged.last_mut().unwrap() = b'4';
        assert_eq!(
            p.redeem(&a, "ListConnections", &STANDARD.encode(forged)),
            None
        );
        assert_eq!(p.redeem(&a, "ListConnections", "not base64!"), None);
    }
}
