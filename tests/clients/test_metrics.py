"""`GET /metrics` through the real binary, parsed with the Prometheus text-format parser of
PyPI's prometheus-client: the counters move as API requests, syncs, git calls and webhooks happen,
and no client can add a label value."""
import hashlib
import hmac
import json
import urllib.error
import urllib.request

import pytest
from botocore.exceptions import ClientError
from prometheus_client.parser import text_string_to_metric_families

from conftest import make_tenant
from gitserver import Repo
from test_engine import TEMPLATE, Stack, deployment, engine, git_http  # noqa: F401  (fixtures)

EXPECTED = {
    "gitsync_api_requests": "counter",
    "gitsync_api_request_duration_seconds": "histogram",
    "gitsync_resource_sync_attempts": "counter",
    "gitsync_resource_sync_duration_seconds": "histogram",
    "gitsync_repository_syncs": "counter",
    "gitsync_git_ref_listings": "counter",
    "gitsync_git_fetches": "counter",
    "gitsync_webhook_deliveries": "counter",
    "gitsync_outbox_deliveries": "counter",
    "gitsync_active_blockers": "gauge",
    "gitsync_notifications_pending": "gauge",
}


def scrape(server):
    with urllib.request.urlopen(server.endpoint + "/metrics") as answer:
        assert answer.status == 200
        assert answer.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = answer.read().decode()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    return families


def value(families, family, sample_name=None, **labels):
    """The sum of the samples of `family` (named `sample_name`, default the family's own) whose
    labels include `labels`."""
    f = families[family]
    name = sample_name or (family + "_total" if f.type == "counter" else family)
    return sum(s.value for s in f.samples if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()))


def test_metrics_are_prometheus_text_and_move_with_what_happens(engine, git_http, tmp_path):
    families = scrape(engine)
    assert {name: f.type for name, f in families.items()} == EXPECTED
    # The gauges are there from the start, at zero.
    assert value(families, "gitsync_active_blockers", sync_type="CFN_STACK_SYNC") == 0
    assert value(families, "gitsync_notifications_pending", deliverer="notification") == 0
    before = families

    # A good commit and a bad one, synced (validate-only).
    repo = Repo(git_http.root, "octo", "metered", str(tmp_path / "work"))
    good = repo.commit({"deploy/stack.yaml": deployment("metered"), "infra/queue.yaml": TEMPLATE})
    tenant = make_tenant(engine)
    stack = Stack(engine, tenant, git_http.url, "octo", "metered", tmp_path)
    stack.configure("metered-stack")
    stack.settled("metered-stack", good)
    bad = repo.commit({"deploy/stack.yaml": deployment("metered", Nope=1)})
    stack.settled("metered-stack", bad, "FAILED")

    # A request for an operation no service has, under a name a client made up.
    proton = tenant.client("proton")
    with pytest.raises(ClientError) as refused:
        proton.get_template_sync_status(templateName="nope", templateType="ENVIRONMENT", templateVersion="1")
    refused_code = str(refused.value.response["ResponseMetadata"]["HTTPStatusCode"])
    request = urllib.request.Request(engine.endpoint + "/", data=b"{}", method="POST", headers={
        "Content-Type": "application/x-amz-json-1.0", "X-Amz-Target": "AwsProton20200720.MadeUpOperation1234"})
    with pytest.raises(urllib.error.HTTPError):
        urllib.request.urlopen(request)

    # Webhooks: one unsigned, one for an unknown provider.
    body = json.dumps({"ref": "refs/heads/main", "after": good, "repository": {"full_name": "octo/metered"}}).encode()
    for path, signature in (("github", "sha256=" + hmac.new(b"wrong", body, hashlib.sha256).hexdigest()), ("gitea", "")):
        hook = urllib.request.Request(f"{engine.endpoint}/webhooks/{path}", data=body, method="POST",
                                      headers={"Content-Type": "application/json", "X-Hub-Signature-256": signature})
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(hook)

    after = scrape(engine)
    moved = lambda family, **labels: value(after, family, **labels) - value(before, family, **labels)  # noqa: E731
    assert moved("gitsync_resource_sync_attempts", sync_type="CFN_STACK_SYNC", status="SUCCEEDED") >= 1
    assert moved("gitsync_resource_sync_attempts", sync_type="CFN_STACK_SYNC", status="FAILED") >= 1
    assert value(after, "gitsync_resource_sync_duration_seconds", "gitsync_resource_sync_duration_seconds_count",
                 sync_type="CFN_STACK_SYNC") >= 2
    assert moved("gitsync_repository_syncs", status="SUCCEEDED") >= 2
    assert moved("gitsync_git_ref_listings", outcome="ok") >= 2
    assert moved("gitsync_git_fetches", outcome="ok") >= 2
    assert moved("gitsync_api_requests", service="codeconnections", operation="CreateSyncConfiguration", code="200") == 1
    assert moved("gitsync_api_requests", service="codeconnections", operation="GetResourceSyncStatus", code="200") >= 2
    assert moved("gitsync_api_requests", service="proton", operation="GetTemplateSyncStatus", code=refused_code) == 1
    assert value(after, "gitsync_api_request_duration_seconds", "gitsync_api_request_duration_seconds_count",
                 service="codeconnections") >= 3
    assert moved("gitsync_webhook_deliveries", provider="github", verdict="unverified") == 1
    assert moved("gitsync_webhook_deliveries", provider="unknown", verdict="malformed") == 1
    # A made-up operation is `unknown`: its name is no label anywhere.
    assert moved("gitsync_api_requests", service="proton", operation="unknown") == 1
    operations = {s.labels.get("operation") for s in after["gitsync_api_requests"].samples}
    assert "MadeUpOperation1234" not in operations


def test_active_blockers_are_counted_until_resolved(engine):
    """The seeded history holds an active stack blocker and an active instance blocker: the gauge
    counts them, read from the database at scrape time, until one is resolved."""
    before = scrape(engine)
    tenant = make_tenant(engine)
    seeded = tenant.seed_history()
    after = scrape(engine)
    for sync_type in ("CFN_STACK_SYNC", "SERVICE_SYNC"):
        grew = value(after, "gitsync_active_blockers", sync_type=sync_type) - value(before, "gitsync_active_blockers", sync_type=sync_type)
        assert grew == 1, (sync_type, grew, seeded)
    cc = tenant.client("codeconnections")
    cc.update_sync_blocker(Id=seeded["stack_blocker"], ResourceName="seeded-stack", SyncType="CFN_STACK_SYNC",
                           ResolvedReason="looked")
    resolved = scrape(engine)
    assert value(resolved, "gitsync_active_blockers", sync_type="CFN_STACK_SYNC") == value(before, "gitsync_active_blockers", sync_type="CFN_STACK_SYNC")
