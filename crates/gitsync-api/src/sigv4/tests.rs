use super::*;
use http::{HeaderName, HeaderValue};
use std::path::PathBuf;

/// The AWS SigV4 test suite ships inside the `aws-sigv4` package (a dev-dependency), so it is in
/// cargo's registry whenever these tests build.
fn test_suite_dir() -> PathBuf {
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cargo"));
    let registry = cargo_home.join("registry").join("src");
    for index in std::fs::read_dir(&registry).expect("cargo registry") {
        let index = index.expect("entry").path();
        for entry in std::fs::read_dir(&index).expect("registry index") {
            let path = entry.expect("entry").path();
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default();
            if name.starts_with("aws-sigv4-") && path.join("aws-signing-test-suite/v4").is_dir() {
                return path.join("aws-signing-test-suite/v4");
            }
        }
    }
    panic!(
        "aws-sigv4's signing test suite was not found under {}",
        registry.display()
    );
}

struct Vector {
    name: String,
    method: String,
    path: String,
    query: String,
    headers: HeaderMap,
    body: Vec<u8>,
    secret: String,
    region: String,
    service: String,
    now: i64,
    normalize: bool,
    canonical: String,
}

fn load(dir: &std::path::Path) -> Option<Vector> {
    let context: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("context.json")).ok()?).ok()?;
    let raw = std::fs::read_to_string(dir.join("header-signed-request.txt")).ok()?;
    let (head, body) = raw.split_once("\n\n").unwrap_or((&raw, ""));
    let mut lines = head.lines();
    let request_line = lines.next()?;
    let (method, rest) = request_line.split_once(' ')?;
    let target = rest.strip_suffix(" HTTP/1.1")?;
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let mut headers = HeaderMap::new();
    for line in lines {
        if line.starts_with(' ') || line.starts_with('\t') {
            // Obsolete line folding: hyper refuses such requests before a handler sees them.
            return None;
        }
        let (name, value) = line.split_once(':')?;
        headers.append(
            HeaderName::from_bytes(name.as_bytes()).ok()?,
            HeaderValue::from_str(value).ok()?,
        );
    }
    let time = context["timestamp"].as_str()?;
    let compact: String = time.chars().filter(|c| c.is_ascii_alphanumeric()).collect();
    Some(Vector {
        name: dir.file_name()?.to_string_lossy().into_owned(),
        method: method.to_string(),
        path: path.to_string(),
        query: query.to_string(),
        headers,
        body: body.as_bytes().to_vec(),
        secret: context["credentials"]["secret_access_key"]
            .as_str()?
            .to_string(),
        region: context["region"].as_str()?.to_string(),
        service: context["service"].as_str()?.to_string(),
        now: parse_amz_date(&compact)?,
        normalize: context["normalize"].as_bool().unwrap_or(true),
        canonical: std::fs::read_to_string(dir.join("header-canonical-request.txt")).ok()?,
    })
}

#[test]
fn aws_signing_test_suite_vectors_verify() {
    let mut checked = 0;
    let mut entries: Vec<_> = std::fs::read_dir(test_suite_dir())
        .expect("suite")
        .map(|e| e.expect("entry").path())
        .collect();
    entries.sort();
    for dir in entries {
        let Some(v) = load(&dir) else { continue };
        let request = SignedRequest {
            method: &v.method,
            path: &v.path,
            query: &v.query,
            headers: &v.headers,
            body: &v.body,
        };
        let auth = parse_authorization(&v.headers).unwrap_or_else(|e| panic!("{}: {e:?}", v.name));
        // The suite signs with an empty-body hash even for bodies it does not sign ("sign_body": false).
        let payload = v
            .canonical
            .rsplit('\n')
            .next()
            .unwrap_or_default()
            .to_string();
        let canonical = canonical_request(&request, &auth.signed_headers, &payload, v.normalize)
            .expect("canonical");
        assert_eq!(canonical, v.canonical, "{}: canonical request", v.name);
        let expected = signature(
            &v.secret,
            v.headers["x-amz-date"].to_str().unwrap(),
            &auth.credential,
            &canonical,
        );
        assert_eq!(expected, auth.signature, "{}: signature", v.name);
        if payload == hex::encode(Sha256::digest(&v.body)) {
            let result = verify(&request, &auth, &v.secret, &v.service, v.now, v.normalize);
            let unsigned = v.headers.keys().find(|h| {
                h.as_str().starts_with("x-amz-")
                    && !auth.signed_headers.iter().any(|s| s == h.as_str())
            });
            match unsigned {
                // gitsync requires every x-amz-* header to be signed (post-sts-header-after adds
                // a session token after signing, which a proxy could have done).
                Some(h) => assert!(
                    matches!(&result, Err(AuthError::Invalid(m)) if m.contains(h.as_str())),
                    "{}: {result:?}",
                    v.name
                ),
                None => assert_eq!(result, Ok(()), "{}", v.name),
            }
            assert_eq!(auth.credential.region, v.region);
        }
        checked += 1;
    }
    assert!(checked >= 30, "only {checked} vectors were checked");
}

mod round_trip {
    use super::*;
    use aws_credential_types::Credentials;
    use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
    use aws_sigv4::sign::v4;
    use aws_smithy_runtime_api::client::identity::Identity;
    use proptest::prelude::*;
    use std::time::{Duration, UNIX_EPOCH};

    const NOW: i64 = 1_795_000_000;
    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

    /// Signs a request the way AWS SDKs do, and returns the headers the server would receive.
    fn signed(path: &str, headers: &[(String, String)], body: &[u8], service: &str) -> HeaderMap {
        let identity: Identity = Credentials::new("AKIDEXAMPLE", SECRET, None, None, "test").into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region("us-east-1")
            .name(service)
            .time(UNIX_EPOCH + Duration::from_secs(NOW as u64))
            .settings(SigningSettings::default())
            .build()
            .expect("params")
            .into();
        let url = format!("http://127.0.0.1:4566{path}");
        let signable = SignableRequest::new(
            "POST",
            &url,
            headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            SignableBody::Bytes(body),
        )
        .expect("signable");
        let (instructions, _) = sign(signable, &params).expect("sign").into_parts();
        let mut map = HeaderMap::new();
        for (k, v) in headers {
            map.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        for (k, v) in instructions.headers() {
            map.insert(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        map
    }

    fn check(path: &str, headers: &HeaderMap, body: &[u8], service: &str) -> Result<(), AuthError> {
        let request = SignedRequest {
            method: "POST",
            path,
            query: "",
            headers,
            body,
        };
        let auth = parse_authorization(headers)?;
        verify(&request, &auth, SECRET, service, NOW, true)
    }

    fn header_strategy() -> impl Strategy<Value = Vec<(String, String)>> {
        proptest::collection::vec(("x-[a-z]{1,8}", "[ -~]{0,20}"), 0..4).prop_map(|mut v| {
            v.sort_by(|a, b| a.0.cmp(&b.0));
            v.dedup_by(|a, b| a.0 == b.0);
            let mut all = vec![
                ("host".to_string(), "127.0.0.1:4566".to_string()),
                (
                    "content-type".to_string(),
                    "application/x-amz-json-1.0".to_string(),
                ),
            ];
            all.extend(v.into_iter().filter(|(_, value)| !value.trim().is_empty()));
            all
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn signed_requests_verify_and_any_byte_change_fails(
            segments in proptest::collection::vec("[A-Za-z0-9_.~-]{1,10}", 0..4),
            headers in header_strategy(),
            body in proptest::collection::vec(any::<u8>(), 0..64),
            flip in any::<prop::sample::Index>(),
        ) {
            let path = format!("/{}", segments.join("/"));
            let map = signed(&path, &headers, &body, "proton");
            prop_assert_eq!(check(&path, &map, &body, "proton"), Ok(()));

            // A changed body byte must fail.
            if !body.is_empty() {
                let mut changed = body.clone();
                let i = flip.index(changed.len());
                changed[i] ^= 0x01;
                prop_assert!(check(&path, &map, &changed, "proton").is_err());
            }
            // A changed byte in any signed header value must fail.
            let signed_names: Vec<String> = parse_authorization(&map).unwrap().signed_headers;
            let name = &signed_names[flip.index(signed_names.len())];
            let mut altered = map.clone();
            let mut value = altered[name.as_str()].as_bytes().to_vec();
            let i = flip.index(value.len());
            value[i] = if value[i] == b'a' { b'b' } else { b'a' };
            if let Ok(v) = HeaderValue::from_bytes(&value) && v.as_bytes() != map[name.as_str()].as_bytes() {
                altered.insert(HeaderName::from_bytes(name.as_bytes()).unwrap(), v);
                prop_assert!(check(&path, &altered, &body, "proton").is_err(), "header {} changed", name);
            }
            // Another path must fail.
            let other_path = format!("{}x", path);
            prop_assert!(check(&other_path, &map, &body, "proton").is_err());
            // A signature for another service must fail, naming the expected scope.
            match check(&path, &map, &body, "codeconnections") {
                Err(AuthError::Invalid(m)) => prop_assert!(m.contains("'codeconnections'")),
                other => prop_assert!(false, "unexpected {:?}", other),
            }
        }
    }

    #[test]
    fn expired_and_future_signatures_are_refused() {
        let map = signed(
            "/",
            &[("host".into(), "127.0.0.1:4566".into())],
            b"{}",
            "proton",
        );
        let request = SignedRequest {
            method: "POST",
            path: "/",
            query: "",
            headers: &map,
            body: b"{}",
        };
        let auth = parse_authorization(&map).unwrap();
        match verify(&request, &auth, SECRET, "proton", NOW + 16 * 60, true) {
            Err(AuthError::Invalid(m)) => assert!(m.starts_with("Signature expired:"), "{m}"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            verify(&request, &auth, SECRET, "proton", NOW - 16 * 60, true),
            Err(AuthError::Invalid(_))
        ));
        assert_eq!(
            verify(&request, &auth, SECRET, "proton", NOW + 14 * 60, true),
            Ok(())
        );
        assert_eq!(
            verify(&request, &auth, "wrong-secret", "proton", NOW, true),
            Err(AuthError::Invalid(MISMATCH.into()))
        );
    }

    #[test]
    fn unsigned_amz_headers_and_bad_payload_hashes_are_refused() {
        let mut map = signed(
            "/",
            &[("host".into(), "127.0.0.1:4566".into())],
            b"{}",
            "proton",
        );
        map.insert(
            "x-amz-target",
            HeaderValue::from_static("AwsProton20200720.ListRepositories"),
        );
        assert!(
            matches!(check("/", &map, b"{}", "proton"), Err(AuthError::Invalid(m)) if m.contains("x-amz-target"))
        );
        let mut map = signed(
            "/",
            &[("host".into(), "127.0.0.1:4566".into())],
            b"{}",
            "proton",
        );
        map.insert("x-amz-content-sha256", HeaderValue::from_static("00"));
        assert!(check("/", &map, b"{}", "proton").is_err());
    }
}

#[test]
fn authorization_parsing_errors_are_specific() {
    let mut headers = HeaderMap::new();
    assert_eq!(parse_authorization(&headers), Err(AuthError::Missing));
    headers.insert("authorization", HeaderValue::from_static("Basic abc"));
    assert!(matches!(
        parse_authorization(&headers),
        Err(AuthError::Incomplete(_))
    ));
    headers.insert(
        "authorization",
        HeaderValue::from_static("AWS4-HMAC-SHA256 Credential=AKID/20261122/us-east-1/proton/aws4_request, SignedHeaders=host"),
    );
    assert!(
        matches!(parse_authorization(&headers), Err(AuthError::Incomplete(m)) if m.contains("Signature"))
    );
}

#[test]
fn amz_dates_round_trip() {
    for epoch in [0, 951_782_400, 1_795_000_000, 4_102_444_799] {
        assert_eq!(parse_amz_date(&format_amz_date(epoch)), Some(epoch));
    }
    assert_eq!(parse_amz_date("20150830T123600Z"), Some(1_440_938_160));
    assert_eq!(parse_amz_date("2015-08-30T12:36:00Z"), None);
    assert_eq!(parse_amz_date("20151330T123600Z"), None);
}

#[test]
fn percent_decoding_never_slices_inside_a_character() {
    // `%a` followed by a two-byte character once sliced the string inside it and panicked.
    assert_eq!(percent_decode("%aé"), "%aé");
    assert_eq!(percent_decode("%é"), "%é");
    assert_eq!(percent_decode("%"), "%");
    assert_eq!(percent_decode("a%4"), "a%4");
    assert_eq!(percent_decode("%41%42"), "AB");
    assert_eq!(percent_decode("x%2f"), "x/");
    assert_eq!(canonical_query("a=%aé&b=%41"), "a=%25a%C3%A9&b=A");
}
