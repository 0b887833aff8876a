"""Status-change notifications end to end: the real binary, a real Git server, real HTTP
endpoints (Python's http.server) that check every delivery's signature. Changes are written to
the outbox with the change; the delivery worker sends them at least once, across a kill -9."""
import hashlib
import hmac
import json
import os
import signal
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from conftest import Server, free_port, make_tenant
from gitserver import GitHttpServer, Repo
from test_engine import TEMPLATE, Stack, deployment, engine, git_http, wait_for  # noqa: F401 (fixtures)


class Endpoint:
    """An HTTP endpoint that records what it receives; answers `fail_first` requests with
    `fail_status` (503: busy)."""

    def __init__(self, secret, port=None, fail_first=0, fail_status=503):
        self.secret = secret.encode()
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}/hooks/gitsync"
        self.received = []  # (headers, parsed body, signature ok)
        self.requests = 0
        self.fail_first = fail_first
        self.fail_status = fail_status
        self.lock = threading.Lock()
        self.httpd = None

    def start(self):
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with endpoint.lock:
                    endpoint.requests += 1
                    failing = endpoint.requests <= endpoint.fail_first
                    if not failing:
                        expected = "sha256=" + hmac.new(endpoint.secret, body, hashlib.sha256).hexdigest()
                        ok = hmac.compare_digest(expected, self.headers.get("X-Gitsync-Signature-256", ""))
                        endpoint.received.append(({k.lower(): v for k, v in self.headers.items()}, json.loads(body), ok))
                if failing:
                    self.send_response(endpoint.fail_status)
                    self.send_header("Content-Length", "4")
                    self.end_headers()
                    self.wfile.write(b"busy")
                else:
                    self.send_response(204)
                    self.end_headers()

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def stop(self):
        if self.httpd:
            self.httpd.shutdown()
            self.httpd.server_close()

    def events(self, target=None):
        with self.lock:
            return [(h, b, ok) for h, b, ok in self.received if target is None or b["detail"].get("syncTarget") == target]

    def statuses(self, target):
        return [(b["detail"]["status"], b["detail"]["previousSync"]) for _, b, _ in self.events(target)]


def add_target(server, tenant, endpoint, tmp_path, name="secret"):
    secret = tmp_path / name
    secret.write_text(endpoint.secret.decode() + "\n")
    out = server.cli("notifications", "add", "--url", endpoint.url, "--secret-file", str(secret),
                     "--account-id", tenant.account_id).stdout
    return out.split(":", 1)[0]


def listed(server, tenant):
    lines = server.cli("notifications", "list", "--account-id", tenant.account_id).stdout.splitlines()
    assert lines[0].split()[:4] == ["ID", "KIND", "PENDING", "FAILED"]
    rows = []
    for line in lines[1:]:
        id_, kind, pending, failed, address, *error = line.split(None, 5)
        rows.append({"id": id_, "pending": int(pending), "failed": int(failed), "address": address,
                     "error": " ".join(error)})
    return rows


def test_status_changes_reach_the_tenants_endpoint_signed_and_no_one_elses(engine, git_http, tmp_path):
    mine, theirs = Endpoint("s3cret").start(), Endpoint("other").start()
    try:
        tenant, other = make_tenant(engine), make_tenant(engine)
        target_id = add_target(engine, tenant, mine, tmp_path)
        add_target(engine, other, theirs, tmp_path, "other-secret")
        repo = Repo(git_http.root, "octo", "notified", str(tmp_path / "work"))
        good = repo.commit({"deploy/stack.yaml": deployment(), "infra/queue.yaml": TEMPLATE})
        stack = Stack(engine, tenant, git_http.url, "octo", "notified", tmp_path)
        stack.configure("notified")
        stack.settled("notified", good)
        wait_for(lambda: ("SUCCEEDED", "IN_PROGRESS") in mine.statuses("notified"), what="the success event")
        assert mine.statuses("notified") == [("IN_PROGRESS", None), ("SUCCEEDED", "IN_PROGRESS")]
        for headers, event, signed in mine.events("notified"):
            assert signed, headers
            assert event["version"] == "0" and event["source"] == "gitsync"
            assert event["detail-type"] == "Git Sync Resource Sync Status Change"
            assert headers["x-gitsync-event"] == "Git Sync Resource Sync Status Change"
            assert headers["x-gitsync-delivery"] == event["id"]
            assert headers["content-type"] == "application/json"
            assert event["account"] == tenant.account_id and event["region"] == "us-east-1"
            detail = event["detail"]
            assert detail == {**detail, "commit": good, "repositoryName": "notified", "ownerId": "octo",
                              "branch": "main", "syncType": "CFN_STACK_SYNC", "syncTarget": "notified",
                              "providerType": "GitHubEnterpriseServer"}
        # A commit that fails validation is a FAILED change.
        bad = repo.commit({"deploy/stack.yaml": "template-file-path: missing.yaml\n"}, "bad")
        stack.settled("notified", bad, status="FAILED")
        wait_for(lambda: ("FAILED", "IN_PROGRESS") in mine.statuses("notified"), what="the failure event")
        assert [e["detail"]["commit"] for _, e, _ in mine.events("notified")][-1] == bad
        rows = listed(engine, tenant)
        assert [(r["id"], r["pending"], r["failed"], r["address"]) for r in rows] == [(target_id, 0, 0, mine.url)]
        # The other tenant's endpoint heard nothing of it, and cannot remove this tenant's target.
        time.sleep(1)
        assert theirs.events() == []
        refused = engine.cli("notifications", "remove", target_id, "--account-id", other.account_id, check=False)
        assert refused.returncode != 0 and f"has no notification target {target_id}" in refused.stderr
        engine.cli("notifications", "remove", target_id, "--account-id", tenant.account_id)
        assert listed(engine, tenant) == []
    finally:
        mine.stop()
        theirs.stop()


def test_a_failing_endpoint_is_retried_with_the_same_event_and_its_error_is_shown(engine, git_http, tmp_path):
    flaky = Endpoint("s3cret", fail_first=2).start()
    try:
        tenant = make_tenant(engine)
        add_target(engine, tenant, flaky, tmp_path)
        repo = Repo(git_http.root, "octo", "flaky", str(tmp_path / "work"))
        sha = repo.commit({"deploy/stack.yaml": deployment(queue="flaky"), "infra/queue.yaml": TEMPLATE})
        stack = Stack(engine, tenant, git_http.url, "octo", "flaky", tmp_path)
        stack.configure("flaky")
        # The sync is not held back by its notifications.
        stack.settled("flaky", sha)
        wait_for(lambda: flaky.requests >= 1, what="a first delivery")
        row = wait_for(lambda: next((r for r in listed(engine, tenant) if r["error"]), None), what="the error listed")
        assert "503" in row["error"] and "busy" in row["error"] and row["pending"] >= 1
        wait_for(lambda: len(flaky.statuses("flaky")) == 2, timeout=90, what="both events after retries")
        # In order: the success waited for the start it ends, which was retried.
        assert flaky.statuses("flaky") == [("IN_PROGRESS", None), ("SUCCEEDED", "IN_PROGRESS")]
        # Every request but the two refused delivered one event (the branch's repository syncs
        # are told to the same endpoint); nothing was sent twice once delivered.
        wait_for(lambda: listed(engine, tenant)[0]["pending"] == 0, what="every event delivered")
        ids = [e["id"] for _, e, _ in flaky.events()]
        assert flaky.requests == len(ids) + 2 and len(set(ids)) == len(ids)
        log = open(engine.log_path).read()
        assert "delivery failed; retrying" in log
    finally:
        flaky.stop()


def test_an_event_the_endpoint_refuses_is_given_up_and_does_not_hold_the_next(engine, git_http, tmp_path):
    # 400: the receiver refuses this event itself. Retrying cannot help, and as a target receives
    # its events in order, retrying would hold the next one back for a day.
    picky = Endpoint("s3cret", fail_first=1, fail_status=400).start()
    try:
        tenant = make_tenant(engine)
        add_target(engine, tenant, picky, tmp_path)
        repo = Repo(git_http.root, "octo", "picky", str(tmp_path / "work"))
        sha = repo.commit({"deploy/stack.yaml": deployment(queue="picky"), "infra/queue.yaml": TEMPLATE})
        stack = Stack(engine, tenant, git_http.url, "octo", "picky", tmp_path)
        stack.configure("picky")
        stack.settled("picky", sha)
        wait_for(lambda: ("SUCCEEDED", "IN_PROGRESS") in picky.statuses("picky"), what="the later events delivered")
        wait_for(lambda: listed(engine, tenant)[0]["pending"] == 0, what="nothing held back")
        # The refused event was sent once and given up; every later one was delivered.
        assert picky.requests == len(picky.events()) + 1
        (row,) = listed(engine, tenant)
        assert (row["pending"], row["failed"]) == (0, 1) and "400" in row["error"], row
        assert "delivery failed; giving it up" in open(engine.log_path).read()
    finally:
        picky.stop()


def test_kill_nine_between_the_change_and_its_delivery_loses_nothing(git_http, tmp_path):
    port = free_port()
    first = Server(["--poll-interval", "1s", "--lease-ttl", "3s", "--replica-id", "first"]).start()
    data_dir = first.data_dir
    endpoint = Endpoint("s3cret", port=port)  # not listening yet: deliveries are refused
    again = None
    try:
        tenant = make_tenant(first)
        add_target(first, tenant, endpoint, tmp_path)
        repo = Repo(git_http.root, "octo", "kill9", str(tmp_path / "work"))
        sha = repo.commit({"deploy/stack.yaml": deployment(queue="kill9"), "infra/queue.yaml": TEMPLATE})
        stack = Stack(first, tenant, git_http.url, "octo", "kill9", tmp_path)
        stack.configure("kill9")
        stack.settled("kill9", sha)
        row = wait_for(lambda: next((r for r in listed(first, tenant) if r["error"]), None), what="a refused delivery")
        assert row["pending"] >= 2 and "127.0.0.1" in row["error"], row  # the stack's two, and repository syncs
        first.process.send_signal(signal.SIGKILL)
        first.process.wait()
        endpoint.start()
        again = Server(["--poll-interval", "1s", "--lease-ttl", "3s", "--replica-id", "second"], database_url=first.database_url)
        again.data_dir = data_dir
        again.log_path = os.path.join(data_dir, "server2.log")
        again.start()
        wait_for(lambda: len(endpoint.statuses("kill9")) == 2, timeout=90, what="both events after the restart")
        assert sorted(endpoint.statuses("kill9")) == [("IN_PROGRESS", None), ("SUCCEEDED", "IN_PROGRESS")]
        assert all(ok for _, _, ok in endpoint.events())
        assert listed(again, tenant)[0]["pending"] == 0
    finally:
        endpoint.stop()
        if again:
            again.stop()
        first.cleanup()


def test_endpoints_must_be_http_urls(engine, tmp_path):
    tenant = make_tenant(engine)
    secret = tmp_path / "secret"
    secret.write_text("s\n")
    for url in ["file:///etc/passwd", "ftp://example.com/x", "example.com/hook", "https://"]:
        out = engine.cli("notifications", "add", "--url", url, "--secret-file", str(secret),
                         "--account-id", tenant.account_id, check=False)
        assert out.returncode != 0 and url in out.stderr, (url, out.stderr)
    empty = tmp_path / "empty"
    empty.write_text("\n")
    out = engine.cli("notifications", "add", "--url", "https://example.com/h", "--secret-file", str(empty),
                     "--account-id", tenant.account_id, check=False)
    assert out.returncode != 0 and "is empty" in out.stderr
    assert listed(engine, tenant) == []
