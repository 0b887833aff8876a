"""Authentication, protocol errors and response headers, with a hand-written SigV4 client."""
import datetime
import os
import time

from conftest import Server, Tenant
from rawclient import json_call

LIST = ("codeconnections", "ListConnections", {})


def connection_names(tenant):
    return [c["ConnectionName"] for c in tenant.client("codeconnections").list_connections()["Connections"]]


def test_a_correctly_signed_raw_request_works(tenant):
    status, headers, body = json_call(tenant, "codeconnections", "CreateConnection", {"ConnectionName": "raw", "ProviderType": "GitHub"})
    assert status == 200, body
    assert body["ConnectionArn"].startswith("arn:aws:codeconnections:")
    assert headers["x-amzn-requestid"]
    assert connection_names(tenant) == ["raw"]


def create(tenant, **kwargs):
    return json_call(tenant, "codeconnections", "CreateConnection", {"ConnectionName": "evil", "ProviderType": "GitHub"}, **kwargs)


def assert_refused(result, code, message_part=None):
    status, headers, body = result
    assert status == 403, body
    assert body["__type"] == code
    assert headers["x-amzn-errortype"] == code
    assert headers["x-amzn-requestid"]
    if message_part:
        assert message_part in (body.get("Message") or body.get("message")), body


def test_unsigned_requests_get_nothing(tenant):
    assert_refused(create(tenant, sign_as="unsigned"), "MissingAuthenticationTokenException", "Missing Authentication Token")
    assert connection_names(tenant) == []


def test_unknown_keys_are_refused(tenant):
    assert_refused(create(tenant, sign_as="AKIAXXXXXXXXXXXXXXXX"), "UnrecognizedClientException")
    assert connection_names(tenant) == []


def test_bad_signatures_are_refused(tenant):
    assert_refused(create(tenant, secret="not-the-secret"), "InvalidSignatureException", "signature we calculated does not match")
    # A body changed after signing.
    assert_refused(create(tenant, tamper=lambda b: b.replace(b"evil", b"evim")), "InvalidSignatureException")
    assert connection_names(tenant) == []


def test_expired_signatures_say_so_for_clock_correction(tenant):
    stale = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=20)
    assert_refused(create(tenant, when=stale), "InvalidSignatureException", "Signature expired:")
    future = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(minutes=20)
    assert_refused(create(tenant, when=future), "InvalidSignatureException", "Signature not yet current:")
    assert connection_names(tenant) == []


def test_wrong_service_scope_is_refused_naming_the_expected_one(tenant):
    assert_refused(create(tenant, sign_service="proton"), "InvalidSignatureException", "'codeconnections'")
    assert connection_names(tenant) == []


# How long a deleted key may still sign on a replica that opened it (`docs/security.md`): replicas
# keep opened keys for 1 s; the bound is 5 s.
REVOCATION_BOUND_SECONDS = 5


def test_a_deleted_key_stops_signing_on_every_replica_within_the_bound(server, tenant):
    # A second replica on the same database and master key; both have the key open.
    second = Server(["--replica-id", "second", "--poll-interval", "1h",
                     "--master-key-file", os.path.join(server.data_dir, "master.key")],
                    database_url=server.database_url).start()
    try:
        replicas = [tenant, Tenant(second, tenant.account_id, tenant.access_key_id, tenant.secret_access_key)]
        for t in replicas:
            assert connection_names(t) == []
        # Deleted by another process, as `gitsync keys delete` always is.
        server.cli("keys", "delete", tenant.access_key_id)
        deleted = time.monotonic()
        for t in replicas:
            while True:
                status, _, body = json_call(t, *LIST)
                if status == 403:
                    assert body["__type"] == "UnrecognizedClientException", body
                    break
                # Until then the replica still accepts it, as documented: never past the bound.
                assert status == 200, body
                assert time.monotonic() - deleted < REVOCATION_BOUND_SECONDS, "a deleted key still signs"
                time.sleep(0.05)
        # Refused for good, and gone from the list.
        for t in replicas:
            assert_refused(json_call(t, *LIST), "UnrecognizedClientException")
        assert tenant.access_key_id not in server.cli("keys", "list").stdout
    finally:
        second.cleanup()


def test_undecodable_bodies_are_serialization_errors(tenant):
    status, headers, body = create(tenant, body=b"{not json")
    assert status == 400 and body["__type"] == "SerializationException"
    status, _, body = json_call(tenant, "proton", "GetRepository", None, body=b"[1, 2]")
    assert status == 400 and body["__type"] == "SerializationException"
    status, _, body = json_call(tenant, "proton", "GetRepository", {"name": 7, "provider": "GITHUB"})
    assert status == 400 and body["__type"] == "SerializationException"
    assert "'name'" in body["message"]


def test_unknown_operations_and_services(tenant):
    status, headers, body = json_call(tenant, "codeconnections", "FlyToTheMoon", {})
    assert status == 400 and body["__type"] == "UnknownOperationException"
    assert headers["x-amzn-errortype"] == "UnknownOperationException"
    status, _, body = json_call(tenant, "codeconnections", "ListConnections", {}, target="NoSuchService_2020.ListConnections")
    assert status == 400 and body["__type"] == "UnknownOperationException"


def test_bare_target_prefixes_of_the_js_and_rust_sdks_are_accepted(tenant):
    status, _, body = json_call(tenant, "codestar-connections", "ListConnections", {}, target="CodeStar_connections_20191201.ListConnections")
    assert status == 200 and body == {"Connections": []}
    status, _, body = json_call(tenant, "codeconnections", "ListConnections", {}, target="CodeConnections_20231201.ListConnections")
    assert status == 200


def test_empty_body_means_no_input(tenant):
    status, _, body = json_call(tenant, "codeconnections", "ListHosts", None, body=b"")
    assert status == 200 and body == {"Hosts": []}
