"""Several `gitsync serve` replicas on one PostgreSQL database, with a real Git server."""
import hashlib
import hmac
import json
import os
import signal
import subprocess
import time
import urllib.request

import pytest

from conftest import POSTGRES, Server, make_tenant
from gitserver import GitHttpServer, Repo
from test_engine import TEMPLATE, Stack, deployment, wait_for

pytestmark = pytest.mark.skipif(not POSTGRES, reason="replicas share a PostgreSQL database: set GITSYNC_TEST_DATABASE_URL")


def psql_rows(url, sql):
    out = subprocess.run(["psql", "-At", "-F", "|", "-d", url, "-c", sql], capture_output=True, text=True, check=True).stdout
    return [line.split("|") for line in out.splitlines() if line]


def deliver(server, owner, repo, sha, secret):
    body = json.dumps({"ref": "refs/heads/main", "after": sha, "repository": {"full_name": f"{owner}/{repo}"}}).encode()
    sig = "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()
    req = urllib.request.Request(f"{server.endpoint}/webhooks/github", data=body, method="POST",
                                 headers={"X-Hub-Signature-256": sig, "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.status


@pytest.fixture
def git_http(tmp_path):
    server = GitHttpServer(str(tmp_path / "git-root")).start()
    os.makedirs(server.root, exist_ok=True)
    yield server
    server.stop()


def replica(first, name, *extra):
    """A replica on `first`'s database and master key."""
    # Polling every 2 s as well as webhooks, and a short git timeout: a Git request that the test
    # server leaves hanging is retried instead of holding the branch for the whole test.
    r = Server(["--poll-interval", "2s", "--git-timeout", "10s", "--lease-ttl", "2s", "--replica-id", name,
                "--master-key-file", os.path.join(first.data_dir, "master.key"), *extra], database_url=first.database_url)
    return r.start()


def test_replicas_share_work_and_take_over_from_a_killed_one(git_http, tmp_path):
    # The first replica makes the database and the master key; it is slow, so it is caught
    # in the middle of an attempt.
    slow = Server(["--poll-interval", "1h", "--lease-ttl", "2s", "--replica-id", "slow", "--test-attempt-delay", "60s"]).start()
    others = []
    try:
        repo = Repo(git_http.root, "octo", "shared", str(tmp_path / "work"))
        first = repo.commit({"deploy/a.yaml": deployment("a"), "deploy/b.yaml": deployment("b"), "infra/queue.yaml": TEMPLATE})
        tenant = make_tenant(slow)
        stack = Stack(slow, tenant, git_http.url, "octo", "shared", tmp_path)
        secret = tmp_path / "secret"
        secret.write_text("s3cret")
        slow.cli("webhooks", "set-secret", stack.link["RepositoryLinkArn"], "--secret-file", str(secret))
        stack.configure("alpha", config_file="deploy/a.yaml")
        assert deliver(slow, "octo", "shared", first, b"s3cret") == 202
        wait_for(lambda: stack.status("alpha")["LatestSync"]["Status"] == "IN_PROGRESS", what="slow replica's attempt")
        owner = psql_rows(slow.database_url, "SELECT lease_owner FROM sync_targets WHERE target_key = 'alpha'")
        assert owner == [["slow"]]

        # Two more replicas join; the slow one dies in the middle of its attempt.
        others = [replica(slow, "r2"), replica(slow, "r3")]
        slow.process.send_signal(signal.SIGKILL)
        slow.process.wait()
        tenant.server = others[0]
        stack.cc = tenant.client("codeconnections")
        s = stack.settled("alpha", first)
        taken = s["LatestSync"]["Events"][0]
        assert taken["Type"] == "TAKEN_OVER" and taken["Event"].split()[-1] in ("r2", "r3")

        # Webhooks reach different replicas; whichever records one, some replica acts on it.
        second = repo.commit({"deploy/a.yaml": deployment("a2")})
        stack.configure("beta", config_file="deploy/b.yaml")
        assert deliver(others[1], "octo", "shared", second, b"s3cret") == 202
        stack.settled("alpha", second)
        stack.settled("beta", second)  # its first sync, at the head when it was evaluated
        third = repo.commit({"deploy/b.yaml": deployment("b2")})
        assert deliver(others[0], "octo", "shared", third, b"s3cret") == 202
        stack.settled("beta", third)

        # No commit was applied twice, none was lost, and nothing is left in flight.
        applied = psql_rows(slow.database_url,
            "SELECT target_key, target_revision::json->>'sha', COUNT(*) FROM resource_sync_attempts WHERE status = 'SUCCEEDED' "
            "GROUP BY 1, 2 ORDER BY 1, 2")
        assert sorted((t, sha) for t, sha, n in applied) == sorted([("alpha", first), ("alpha", second), ("beta", second), ("beta", third)])
        assert all(n == "1" for _, _, n in applied)
        assert psql_rows(slow.database_url, "SELECT COUNT(*) FROM resource_sync_attempts WHERE finished_at IS NULL") == [["0"]]
        abandoned = psql_rows(slow.database_url, "SELECT status FROM resource_sync_attempts a JOIN resource_sync_events e ON e.attempt_id = a.attempt_id WHERE e.event_type = 'ABANDONED'")
        assert abandoned == [["FAILED"]]
        # Every replica answers the same status.
        statuses = [next(line for line in r.cli("status", "--resource-name", "beta", "--account-id", tenant.account_id).stdout.splitlines()
                         if line.startswith("Latest sync:")) for r in others]
        assert statuses[0] == statuses[1] and third in statuses[0]
    finally:
        for r in others:
            r.stop()
        slow.cleanup()
