//! Server-side AWS Signature Version 4 verification.
//!
//! AWS's signing crates only sign, so gitsync verifies by rebuilding the canonical request from
//! what arrived and comparing signatures in constant time. Rules that matter for real clients:
//! `host` and every `x-amz-*` header must be signed (an unsigned one could be altered in flight);
//! the scope date must be the date of `X-Amz-Date`; the payload hash is computed from the body
//! (and must equal `x-amz-content-sha256` when that header is sent); the canonical URI is the
//! normalized path encoded once more (the non-S3 "double encoding" rule).

use hmac::{Hmac, Mac};
use http::HeaderMap;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

/// How far a request's clock may be from ours, in seconds (AWS allows 15 minutes).
pub const MAX_SKEW_SECONDS: i64 = 15 * 60;

/// The parts of an HTTP request that a signature covers.
pub struct SignedRequest<'a> {
    pub method: &'a str,
    /// The path exactly as it arrived (still percent-encoded).
    pub path: &'a str,
    /// The raw query string, without `?`.
    pub query: &'a str,
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
}

/// `Credential=AKID/20261122/us-east-1/proton/aws4_request`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialScope {
    pub access_key_id: String,
    pub date: String,
    pub region: String,
    pub service: String,
}

/// A parsed `Authorization` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorization {
    pub credential: CredentialScope,
    pub signed_headers: Vec<String>,
    pub signature: String,
}

/// Why a request was refused. Each maps to the 403 error AWS gives for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthError {
    /// No `Authorization` header.
    Missing,
    /// An `Authorization` header that is not a well-formed SigV4 one.
    Incomplete(String),
    /// The access key is not known.
    UnknownKey,
    /// The signature, scope or time does not check out.
    Invalid(String),
}

impl AuthError {
    pub fn code(&self) -> &'static str {
        match self {
            AuthError::Missing => "MissingAuthenticationTokenException",
            AuthError::Incomplete(_) => "IncompleteSignatureException",
            AuthError::UnknownKey => "UnrecognizedClientException",
            AuthError::Invalid(_) => "InvalidSignatureException",
        }
    }

    pub fn message(&self) -> String {
        match self {
            AuthError::Missing => "Missing Authentication Token".into(),
            AuthError::Incomplete(m) | AuthError::Invalid(m) => m.clone(),
            AuthError::UnknownKey => {
                "The security token included in the request is invalid.".into()
            }
        }
    }
}

const MISMATCH: &str = "The request signature we calculated does not match the signature you provided. \
Check your AWS Secret Access Key and signing method. Consult the service documentation for details.";

/// Parses `AWS4-HMAC-SHA256 Credential=…, SignedHeaders=…, Signature=…`.
pub fn parse_authorization(headers: &HeaderMap) -> Result<Authorization, AuthError> {
    let value = headers
        .get(http::header::AUTHORIZATION)
        .ok_or(AuthError::Missing)?;
    let value = value
        .to_str()
        .map_err(|_| AuthError::Incomplete("Authorization header is not ASCII".into()))?;
    let rest = value.strip_prefix("AWS4-HMAC-SHA256 ").ok_or_else(|| {
        AuthError::Incomplete("Authorization header must use the AWS4-HMAC-SHA256 algorithm".into())
    })?;
    let (mut credential, mut signed_headers, mut signature) = (None, None, None);
    for part in rest.split(',') {
        let part = part.trim();
        if let Some(v) = part.strip_prefix("Credential=") {
            credential = Some(v);
        } else if let Some(v) = part.strip_prefix("SignedHeaders=") {
            signed_headers = Some(v);
        } else if let Some(v) = part.strip_prefix("Signature=") {
            signature = Some(v);
        }
    }
    let incomplete = |what: &str| {
        AuthError::Incomplete(format!("Authorization header requires '{what}' parameter."))
    };
    let credential = credential.ok_or_else(|| incomplete("Credential"))?;
    let signed_headers = signed_headers.ok_or_else(|| incomplete("SignedHeaders"))?;
    let signature = signature.ok_or_else(|| incomplete("Signature"))?;
    let parts: Vec<&str> = credential.split('/').collect();
    if parts.len() != 5 || parts[4] != "aws4_request" || parts.iter().any(|p| p.is_empty()) {
        return Err(AuthError::Incomplete(format!(
            "Credential '{credential}' must have the form <access key>/<yyyymmdd>/<region>/<service>/aws4_request"
        )));
    }
    if signature.len() != 64 || !signature.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(AuthError::Incomplete(
            "Signature must be 64 hexadecimal characters".into(),
        ));
    }
    Ok(Authorization {
        credential: CredentialScope {
            access_key_id: parts[0].into(),
            date: parts[1].into(),
            region: parts[2].into(),
            service: parts[3].into(),
        },
        signed_headers: signed_headers
            .split(';')
            .map(|h| h.to_ascii_lowercase())
            .collect(),
        signature: signature.to_ascii_lowercase(),
    })
}

/// Checks scope, time and signature of a request whose `Authorization` was parsed into `auth`,
/// given the secret of its access key. `now` is epoch seconds.
pub fn verify(
    request: &SignedRequest<'_>,
    auth: &Authorization,
    secret: &str,
    expected_service: &str,
    now: i64,
    normalize_path: bool,
) -> Result<(), AuthError> {
    let key = signing_key(secret, &auth.credential);
    verify_with(request, auth, &key, expected_service, now, normalize_path)
}

/// [`verify`], given the signing key of the access key's secret for `auth`'s credential scope.
pub fn verify_with(
    request: &SignedRequest<'_>,
    auth: &Authorization,
    key: &SigningKey,
    expected_service: &str,
    now: i64,
    normalize_path: bool,
) -> Result<(), AuthError> {
    let scope = &auth.credential;
    if scope.service != expected_service {
        return Err(AuthError::Invalid(format!(
            "Credential should be scoped to correct service: '{expected_service}'. "
        )));
    }
    for required in ["host"] {
        if !auth.signed_headers.iter().any(|h| h == required) {
            return Err(AuthError::Invalid(format!(
                "'{required}' must be a signed header"
            )));
        }
    }
    for name in request.headers.keys() {
        let name = name.as_str();
        if name.starts_with("x-amz-")
            && name != "x-amz-client-context"
            && !auth.signed_headers.iter().any(|h| h == name)
        {
            return Err(AuthError::Invalid(format!(
                "Header '{name}' is present but not signed; every x-amz-* header must be signed"
            )));
        }
    }
    let amz_date = header_str(request.headers, "x-amz-date").ok_or_else(|| {
        AuthError::Incomplete("Authorization requires an X-Amz-Date header".into())
    })?;
    let request_time = parse_amz_date(amz_date).ok_or_else(|| {
        AuthError::Incomplete(format!(
            "X-Amz-Date '{amz_date}' is not of the form YYYYMMDD'T'HHMMSS'Z'"
        ))
    })?;
    if !amz_date.starts_with(&scope.date) || scope.date.len() != 8 {
        return Err(AuthError::Invalid(format!(
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '{}' != '{}', from '{amz_date}'.",
            scope.date,
            &amz_date[..8.min(amz_date.len())]
        )));
    }
    if (request_time - now).abs() > MAX_SKEW_SECONDS {
        let (earliest, latest) = (
            format_amz_date(now - MAX_SKEW_SECONDS),
            format_amz_date(now + MAX_SKEW_SECONDS),
        );
        let message = if request_time < now {
            format!(
                "Signature expired: {amz_date} is now earlier than {earliest} ({} - 15 min.)",
                format_amz_date(now)
            )
        } else {
            format!(
                "Signature not yet current: {amz_date} is still later than {latest} ({} + 15 min.)",
                format_amz_date(now)
            )
        };
        return Err(AuthError::Invalid(message));
    }
    let body_hash = hex::encode(Sha256::digest(request.body));
    if let Some(claimed) = header_str(request.headers, "x-amz-content-sha256")
        && !claimed.eq_ignore_ascii_case(&body_hash)
    {
        return Err(AuthError::Invalid(
            "The provided 'x-amz-content-sha256' header does not match what was computed.".into(),
        ));
    }
    let canonical = canonical_request(request, &auth.signed_headers, &body_hash, normalize_path)
        .map_err(AuthError::Invalid)?;
    let expected = signature_with(key, amz_date, scope, &canonical);
    if expected.as_bytes().ct_eq(auth.signature.as_bytes()).into() {
        Ok(())
    } else {
        Err(AuthError::Invalid(MISMATCH.into()))
    }
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The canonical request: method, URI, query, headers, signed header list, payload hash.
pub fn canonical_request(
    request: &SignedRequest<'_>,
    signed_headers: &[String],
    payload_hash: &str,
    normalize_path: bool,
) -> Result<String, String> {
    let mut out = String::with_capacity(256);
    out.push_str(request.method);
    out.push('\n');
    out.push_str(&canonical_uri(request.path, normalize_path));
    out.push('\n');
    out.push_str(&canonical_query(request.query));
    out.push('\n');
    for name in signed_headers {
        let values: Vec<String> = request
            .headers
            .get_all(name.as_str())
            .iter()
            .map(|v| canonical_header_value(v.as_bytes()))
            .collect();
        if values.is_empty() {
            return Err(format!(
                "Signed header '{name}' is not present in the request"
            ));
        }
        out.push_str(name);
        out.push(':');
        out.push_str(&values.join(","));
        out.push('\n');
    }
    out.push('\n');
    out.push_str(&signed_headers.join(";"));
    out.push('\n');
    out.push_str(payload_hash);
    Ok(out)
}

/// Trims a header value and folds runs of white space into one space.
fn canonical_header_value(value: &[u8]) -> String {
    let text = String::from_utf8_lossy(value);
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn canonical_uri(path: &str, normalize: bool) -> String {
    let path = if path.is_empty() { "/" } else { path };
    let normalized = if normalize {
        normalize_path(path)
    } else {
        path.to_string()
    };
    // Each character outside the unreserved set is encoded again, `%` included: the path
    // arrived encoded once, and SigV4 (outside S3) signs it encoded twice.
    uri_encode(&normalized, false)
}

/// Removes `.` and `..` segments and empty segments, as RFC 3986 and SigV4 normalize paths.
fn normalize_path(path: &str) -> String {
    let mut segments: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    let mut out = String::from("/");
    out.push_str(&segments.join("/"));
    // A trailing `.` or `..` leaves a directory, as RFC 3986's remove_dot_segments says.
    let directory = path.ends_with('/') || path.ends_with("/.") || path.ends_with("/..");
    if directory && !segments.is_empty() {
        out.push('/');
    }
    out
}

fn canonical_query(query: &str) -> String {
    if query.is_empty() {
        return String::new();
    }
    let mut pairs: Vec<(String, String)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (
                uri_encode(&percent_decode(k), true),
                uri_encode(&percent_decode(v), true),
            )
        })
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// Decodes `%XX` escapes on bytes (never slicing the string, which may hold any character after a
/// `%`); an escape that is not two hex digits stays as it is.
fn percent_decode(value: &str) -> String {
    fn hex(b: u8) -> Option<u8> {
        (b as char).to_digit(16).map(|d| d as u8)
    }
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let (Some(hi), Some(lo)) = (
                bytes.get(i + 1).copied().and_then(hex),
                bytes.get(i + 2).copied().and_then(hex),
            )
        {
            out.push(hi << 4 | lo);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// SigV4's URI encoding: everything but `A-Za-z0-9-_.~` as `%XX`; `/` kept unless `encode_slash`.
fn uri_encode(value: &str, encode_slash: bool) -> String {
    let mut out = String::with_capacity(value.len());
    for &b in value.as_bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b'/' if !encode_slash => out.push('/'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut mac =
        <HmacSha256 as Mac>::new_from_slice(key).expect("HMAC accepts keys of any length");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// The key a signature is made with: the secret, hashed in with the scope's date, region and
/// service. It depends on nothing else, so a verifier may keep it for the day.
pub type SigningKey = [u8; 32];

/// Derives the signing key of `secret` for `scope` (four HMACs).
pub fn signing_key(secret: &str, scope: &CredentialScope) -> SigningKey {
    let k_date = hmac(format!("AWS4{secret}").as_bytes(), scope.date.as_bytes());
    let k_region = hmac(&k_date, scope.region.as_bytes());
    let k_service = hmac(&k_region, scope.service.as_bytes());
    hmac(&k_service, b"aws4_request")
}

/// The hex signature of a canonical request.
pub fn signature(
    secret: &str,
    amz_date: &str,
    scope: &CredentialScope,
    canonical_request: &str,
) -> String {
    signature_with(
        &signing_key(secret, scope),
        amz_date,
        scope,
        canonical_request,
    )
}

/// The hex signature of a canonical request, with the scope's signing key.
pub fn signature_with(
    key: &SigningKey,
    amz_date: &str,
    scope: &CredentialScope,
    canonical_request: &str,
) -> String {
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{}/{}/{}/aws4_request\n{}",
        scope.date,
        scope.region,
        scope.service,
        hex::encode(Sha256::digest(canonical_request.as_bytes()))
    );
    hex::encode(hmac(key, string_to_sign.as_bytes()))
}

/// `20261122T004749Z` → epoch seconds.
pub fn parse_amz_date(value: &str) -> Option<i64> {
    let b = value.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let s = value.get(r)?;
        s.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| s.parse().ok())
            .flatten()
    };
    let (y, mo, d) = (num(0..4)?, num(4..6)?, num(6..8)?);
    let (h, mi, s) = (num(9..11)?, num(11..13)?, num(13..15)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 60 {
        return None;
    }
    Some(days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + s)
}

pub fn format_amz_date(epoch: i64) -> String {
    let days = epoch.div_euclid(86_400);
    let secs = epoch.rem_euclid(86_400);
    let (y, m, d) = gitsync_model::time::civil_from_days(days);
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

// Howard Hinnant's civil-date algorithms: exact for the proleptic Gregorian calendar.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests;
