"""A minimal SigV4 client for requests that real SDKs refuse to send (bad signatures, stale
dates, broken bodies). Written from the SigV4 specification, independently of gitsync's verifier."""
import datetime
import hashlib
import hmac
import http.client
import json
from urllib.parse import urlparse

TARGETS = {
    "proton": "AwsProton20200720",
    "codeconnections": "com.amazonaws.codeconnections.CodeConnections_20231201",
    "codestar-connections": "com.amazonaws.codestar.connections.CodeStar_connections_20191201",
}


def _hmac(key, msg):
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def sign(method, host, path, headers, body, key, secret, region, service, when=None):
    when = when or datetime.datetime.now(datetime.timezone.utc)
    amz_date = when.strftime("%Y%m%dT%H%M%SZ")
    headers = {**headers, "host": host, "x-amz-date": amz_date}
    names = sorted(h.lower() for h in headers)
    canonical_headers = "".join(f"{n}:{' '.join(str(headers[next(k for k in headers if k.lower() == n)]).split())}\n" for n in names)
    payload = hashlib.sha256(body).hexdigest()
    canonical = "\n".join([method, path, "", canonical_headers, ";".join(names), payload])
    scope = f"{amz_date[:8]}/{region}/{service}/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    k = _hmac(_hmac(_hmac(_hmac(("AWS4" + secret).encode(), amz_date[:8]), region), service), "aws4_request")
    signature = hmac.new(k, to_sign.encode(), hashlib.sha256).hexdigest()
    headers["Authorization"] = f"AWS4-HMAC-SHA256 Credential={key}/{scope}, SignedHeaders={';'.join(names)}, Signature={signature}"
    return headers


def call(endpoint, headers, body, path="/"):
    url = urlparse(endpoint)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
    conn.request("POST", path, body=body, headers=headers)
    response = conn.getresponse()
    data = response.read()
    conn.close()
    return response.status, dict(response.getheaders()), data


def json_call(tenant, service, operation, payload, *, sign_as=None, when=None, body=None, target=None, secret=None, sign_service=None, tamper=None):
    """Signs and sends one awsJson1_0 request; returns (status, headers, parsed body)."""
    url = urlparse(tenant.server.endpoint)
    host = f"{url.hostname}:{url.port}"
    body = body if body is not None else json.dumps(payload).encode()
    headers = {
        "Content-Type": "application/x-amz-json-1.0",
        "X-Amz-Target": target or f"{TARGETS[service]}.{operation}",
    }
    if sign_as != "unsigned":
        headers = sign(
            "POST", host, "/", headers, body, sign_as or tenant.access_key_id, secret or tenant.secret_access_key,
            tenant.region, sign_service or service, when,
        )
    if tamper:
        body = tamper(body)
    status, response_headers, data = call(tenant.server.endpoint, headers, body)
    parsed = json.loads(data) if data else None
    return status, {k.lower(): v for k, v in response_headers.items()}, parsed
