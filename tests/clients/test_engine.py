"""The sync engine end to end: real pushes to a real Git server, statuses read through boto3."""
import json
import os
import signal
import subprocess
import time
import urllib.request

import pytest
from botocore.exceptions import ClientError

from conftest import GITSYNC, Server, make_tenant
from gitserver import GitHttpServer, Repo

TEMPLATE = """Parameters:
  QueueName:
    Type: String
  Visibility:
    Type: Number
    Default: 30
Resources:
  Queue:
    Type: AWS::SQS::Queue
    Properties:
      QueueName: !Ref QueueName
      VisibilityTimeout: !Ref Visibility
"""


def deployment(queue="orders", template="infra/queue.yaml", **params):
    lines = [f"template-file-path: {template}", "parameters:", f"  QueueName: {queue}"]
    lines += [f"  {k}: {v}" for k, v in params.items()]
    return "\n".join(lines) + "\n"


def wait_for(check, timeout=60, what="condition"):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        try:
            last = check()
            if last:
                return last
        except ClientError as e:
            last = e
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}; last: {last!r}")


@pytest.fixture(scope="module")
def git_http(tmp_path_factory):
    server = GitHttpServer(str(tmp_path_factory.mktemp("git-root"))).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def engine():
    server = Server(["--poll-interval", "1s", "--lease-ttl", "3s", "--git-timeout", "10s"]).start()
    yield server
    server.cleanup()


class Stack:
    """A tenant with a host, an activated connection, a link and sync configurations."""

    def __init__(self, server, tenant, endpoint, owner, repo, tmp_path):
        self.server, self.tenant = server, tenant
        self.cc = tenant.client("codeconnections")
        host = self.cc.create_host(Name="local", ProviderEndpoint=endpoint, ProviderType="GitHubEnterpriseServer")["HostArn"]
        self.connection = self.cc.create_connection(ConnectionName="local", HostArn=host)["ConnectionArn"]
        token = tmp_path / "token"
        token.write_text("not-checked-by-the-test-server\n")
        server.cli("connections", "activate", self.connection, "--token-file", str(token))
        self.link = self.cc.create_repository_link(ConnectionArn=self.connection, OwnerId=owner, RepositoryName=repo)["RepositoryLinkInfo"]
        self.link_id = self.link["RepositoryLinkId"]

    def configure(self, name, config_file="deploy/stack.yaml", role=None, **extra):
        """A CFN stack sync of `name`; its role is in the tenant's own account unless `role` says otherwise."""
        self.cc.create_sync_configuration(
            Branch="main", ConfigFile=config_file, RepositoryLinkId=self.link_id, ResourceName=name,
            RoleArn=role or self.tenant.role_arn(), SyncType="CFN_STACK_SYNC", **extra
        )

    def status(self, name):
        return self.cc.get_resource_sync_status(ResourceName=name, SyncType="CFN_STACK_SYNC")

    def repo_status(self):
        return self.cc.get_repository_sync_status(Branch="main", RepositoryLinkId=self.link_id, SyncType="CFN_STACK_SYNC")["LatestSync"]

    def settled(self, name, sha, status="SUCCEEDED"):
        """Waits until the latest attempt for `name` targets `sha` and has ended in `status`."""
        def check():
            s = self.status(name)
            latest = s["LatestSync"]
            return s if latest["TargetRevision"]["Sha"] == sha and latest["Status"] == status else None
        return wait_for(check, what=f"{name} {status} at {sha[:8]}")


def test_first_sync_second_commit_and_irrelevant_commit(engine, git_http, tmp_path):
    repo = Repo(git_http.root, "octo", "infra", str(tmp_path / "work"))
    first = repo.commit({"deploy/stack.yaml": deployment(), "infra/queue.yaml": TEMPLATE, "README.md": "hi"}, "first")
    stack = Stack(engine, make_tenant(engine), git_http.url, "octo", "infra", tmp_path)
    stack.configure("orders")
    s = stack.settled("orders", first)
    assert s["DesiredState"]["Sha"] == first and s["DesiredState"]["Directory"] == "deploy/stack.yaml"
    assert s["DesiredState"]["ProviderType"] == "GitHubEnterpriseServer" and s["DesiredState"]["OwnerId"] == "octo"
    latest = s["LatestSync"]
    assert latest["InitialRevision"]["Sha"] == first  # the first attempt starts from its own commit
    assert [e["Type"] for e in latest["Events"]] == ["SYNC_STARTED", "VALIDATION_SUCCEEDED"]
    assert "nothing was deployed" in latest["Events"][-1]["Event"]
    assert s["LatestSuccessfulSync"] == latest
    repo_sync = stack.repo_status()
    assert repo_sync["Status"] == "SUCCEEDED"
    assert [e["Type"] for e in repo_sync["Events"]] == ["CLONE_STARTED", "CONFIG_UPDATED", "STARTING_SYNC"]
    assert repo_sync["Events"][-1] == {**repo_sync["Events"][-1], "Event": f"Starting syncs for commit {first}", "ExternalId": first}

    # A template change is relevant: a new attempt from the first commit to the second.
    second = repo.commit({"infra/queue.yaml": TEMPLATE.replace("Default: 30", "Default: 45")}, "template")
    s = stack.settled("orders", second)
    assert s["LatestSync"]["InitialRevision"]["Sha"] == first
    assert s["LatestSync"]["StartedAt"] > latest["StartedAt"]

    # A commit that touches neither file starts no resource sync.
    third = repo.commit({"README.md": "changed"}, "docs")
    wait_for(lambda: stack.repo_status()["Events"][-1].get("ExternalId") == third, what="repository sync of the docs commit")
    assert stack.repo_status()["Events"][-1]["Type"] == "NO_CHANGES"
    assert stack.repo_status()["Events"][-1]["Event"] == f"No sync target is affected by commit {third}"
    after = stack.status("orders")
    assert after["LatestSync"]["TargetRevision"]["Sha"] == second
    assert after["DesiredState"]["Sha"] == second
    assert after["LatestSync"]["StartedAt"] == s["LatestSync"]["StartedAt"]

    # ANY_CHANGE syncs on every commit of the branch.
    stack.configure("everything", TriggerResourceUpdateOn="ANY_CHANGE")
    fourth = repo.commit({"README.md": "again"}, "docs again")
    stack.settled("everything", fourth)
    assert stack.status("orders")["LatestSync"]["TargetRevision"]["Sha"] == second

    # gitsync status tells the same story.
    out = engine.cli("status", "--resource-name", "orders", "--account-id", stack.tenant.account_id).stdout
    assert f"Latest sync: SUCCEEDED at commit {second} (from {first})" in out
    assert "nothing was deployed" in out


def test_invalid_deployment_file_fails_then_a_fix_succeeds(engine, git_http, tmp_path):
    repo = Repo(git_http.root, "octo", "broken", str(tmp_path / "work"))
    bad = repo.commit({"deploy/stack.yaml": deployment(Foo="bar"), "infra/queue.yaml": TEMPLATE})
    stack = Stack(engine, make_tenant(engine), git_http.url, "octo", "broken", tmp_path)
    stack.configure("broken-stack")
    s = stack.settled("broken-stack", bad, "FAILED")
    events = s["LatestSync"]["Events"]
    assert events[-1]["Type"] == "VALIDATION_FAILED"
    assert events[-1]["Event"] == "parameters: unknown parameter 'Foo' (template declares: QueueName, Visibility)"
    assert "LatestSuccessfulSync" not in s
    # Not retried at the same commit: it waits for a new one.
    time.sleep(2.5)
    assert stack.status("broken-stack")["LatestSync"]["StartedAt"] == s["LatestSync"]["StartedAt"]
    missing = repo.commit({"deploy/stack.yaml": deployment(template="infra/nope.yaml")})
    s = stack.settled("broken-stack", missing, "FAILED")
    assert "template-file-path: infra/nope.yaml does not exist" in s["LatestSync"]["Events"][-1]["Event"]
    fixed = repo.commit({"deploy/stack.yaml": deployment()})
    s = stack.settled("broken-stack", fixed)
    assert s["LatestSuccessfulSync"]["TargetRevision"]["Sha"] == fixed


def test_quick_pushes_batch_to_the_newest_commit(git_http, tmp_path):
    # The first attempt takes 8 s; three pushes 1.5 s apart are each seen by a 1 s poll meanwhile.
    server = Server(["--poll-interval", "1s", "--lease-ttl", "10s", "--test-attempt-delay", "8s"]).start()
    try:
        repo = Repo(git_http.root, "octo", "busy", str(tmp_path / "work"))
        first = repo.commit({"deploy/stack.yaml": deployment(), "infra/queue.yaml": TEMPLATE})
        stack = Stack(server, make_tenant(server), git_http.url, "octo", "busy", tmp_path)
        stack.configure("busy")
        wait_for(lambda: stack.status("busy")["LatestSync"]["Status"] == "IN_PROGRESS", what="first attempt running")
        pushed = []
        for i in range(3):
            pushed.append(repo.commit({"deploy/stack.yaml": deployment(queue=f"orders-{i}")}))
            time.sleep(1.5)
        newest = pushed[-1]
        s = stack.settled("busy", newest, "SUCCEEDED")
        assert s["DesiredState"]["Sha"] == newest
        latest = s["LatestSync"]
        assert latest["InitialRevision"]["Sha"] == first
        superseded = [e for e in latest["Events"] if e["Type"] == "SUPERSEDED"]
        assert superseded, latest["Events"]
        assert all(e["ExternalId"] == newest and e["Event"].endswith(f"replaced by newer commit {newest}") for e in superseded)
        assert {e["Event"].split()[1] for e in superseded} == set(pushed[:-1])
        # Exactly one attempt ran after the first: the newest commit's.
        out = server.cli("status", "--resource-name", "busy", "--account-id", stack.tenant.account_id).stdout
        assert f"Latest sync: SUCCEEDED at commit {newest} (from {first})" in out
    finally:
        server.cleanup()


def test_webhooks_trigger_syncs_and_bad_signatures_change_nothing(git_http, tmp_path):
    # Polling once an hour: only the start-up check and webhooks start repository syncs.
    server = Server(["--poll-interval", "1h"]).start()
    try:
        repo = Repo(git_http.root, "octo", "hooked", str(tmp_path / "work"))
        first = repo.commit({"deploy/stack.yaml": deployment(), "infra/queue.yaml": TEMPLATE})
        stack = Stack(server, make_tenant(server), git_http.url, "octo", "hooked", tmp_path)
        secret = tmp_path / "secret"
        secret.write_text("hook-secret\n")
        server.cli("webhooks", "set-secret", stack.link["RepositoryLinkArn"], "--secret-file", str(secret))
        stack.configure("hooked")

        def deliver(sha, signature_secret, provider="github"):
            body = json.dumps({"ref": "refs/heads/main", "after": sha, "repository": {"full_name": "octo/hooked"}}).encode()
            import hashlib
            import hmac
            sig = "sha256=" + hmac.new(signature_secret, body, hashlib.sha256).hexdigest()
            request = urllib.request.Request(
                f"{server.endpoint}/webhooks/{provider}", data=body, method="POST",
                headers={"Content-Type": "application/json", "X-Hub-Signature-256": sig, "X-GitHub-Event": "push"},
            )
            try:
                with urllib.request.urlopen(request, timeout=10) as r:
                    return r.status, json.loads(r.read())
            except urllib.error.HTTPError as e:
                return e.code, json.loads(e.read())

        # The first delivery makes the new configuration's branch due right away.
        status, body = deliver(first, b"hook-secret")
        assert status == 202 and body["branchesTriggered"] >= 1
        stack.settled("hooked", first)
        second = repo.commit({"deploy/stack.yaml": deployment(queue="faster")})
        status, body = deliver(second, b"wrong-secret")
        assert status == 401 and "not signed with a secret" in body["message"]
        time.sleep(2)
        assert stack.status("hooked")["DesiredState"]["Sha"] == first  # nothing moved
        started = time.time()
        status, body = deliver(second, b"hook-secret")
        assert status == 202 and body["branchesTriggered"] == 1
        stack.settled("hooked", second)
        assert time.time() - started < 10
        status, body = deliver(second, b"hook-secret", provider="nowhere")
        assert status == 404
    finally:
        server.cleanup()


def test_pending_connection_fails_the_repository_sync_naming_the_fix(engine, git_http, tmp_path):
    repo = Repo(git_http.root, "octo", "pending", str(tmp_path / "work"))
    repo.commit({"deploy/stack.yaml": deployment(), "infra/queue.yaml": TEMPLATE})
    tenant = make_tenant(engine)
    cc = tenant.client("codeconnections")
    host = cc.create_host(Name="local", ProviderEndpoint=git_http.url, ProviderType="GitHubEnterpriseServer")["HostArn"]
    conn = cc.create_connection(ConnectionName="local", HostArn=host)["ConnectionArn"]
    link = cc.create_repository_link(ConnectionArn=conn, OwnerId="octo", RepositoryName="pending")["RepositoryLinkInfo"]
    cc.create_sync_configuration(Branch="main", ConfigFile="deploy/stack.yaml", RepositoryLinkId=link["RepositoryLinkId"], ResourceName="pending", RoleArn=tenant.role_arn(), SyncType="CFN_STACK_SYNC")
    latest = wait_for(lambda: cc.get_repository_sync_status(Branch="main", RepositoryLinkId=link["RepositoryLinkId"], SyncType="CFN_STACK_SYNC")["LatestSync"], what="failed repository sync")
    assert latest["Status"] == "FAILED"
    assert latest["Events"][-1]["Type"] == "CLONE_FAILED"
    assert f"gitsync connections activate {conn}" in latest["Events"][-1]["Event"]
    engine.cli("connections", "activate", conn)
    wait_for(lambda: cc.get_resource_sync_status(ResourceName="pending", SyncType="CFN_STACK_SYNC")["LatestSync"]["Status"] == "SUCCEEDED", what="sync after activation")


def test_a_restart_in_the_middle_of_an_attempt_loses_nothing(git_http, tmp_path):
    slow = Server(["--poll-interval", "1s", "--lease-ttl", "2s", "--test-attempt-delay", "30s", "--replica-id", "first"]).start()
    data_dir = slow.data_dir
    try:
        repo = Repo(git_http.root, "octo", "restart", str(tmp_path / "work"))
        sha = repo.commit({"deploy/stack.yaml": deployment(), "infra/queue.yaml": TEMPLATE})
        stack = Stack(slow, make_tenant(slow), git_http.url, "octo", "restart", tmp_path)
        stack.configure("restart")
        wait_for(lambda: stack.status("restart")["LatestSync"]["Status"] == "IN_PROGRESS", what="attempt running")
        slow.process.send_signal(signal.SIGKILL)
        slow.process.wait()
        again = Server(["--poll-interval", "1s", "--lease-ttl", "2s", "--replica-id", "second"], database_url=slow.database_url)
        again.data_dir = data_dir
        again.log_path = os.path.join(data_dir, "server2.log")
        again.start()
        try:
            stack.cc = stack.tenant.client("codeconnections")
            stack.tenant.server = again
            stack.cc = stack.tenant.client("codeconnections")
            s = stack.settled("restart", sha)
            events = s["LatestSync"]["Events"]
            assert events[0]["Type"] == "TAKEN_OVER"
            assert events[0]["Event"] == "The previous worker stopped; resumed by second"
            out = again.cli("status", "--resource-name", "restart", "--account-id", stack.tenant.account_id).stdout
            assert "SUCCEEDED" in out
        finally:
            again.stop()
    finally:
        slow.cleanup()


def test_sigterm_releases_work_in_flight_so_the_next_server_takes_it_at_once(git_http, tmp_path):
    """A lease lasts 60 s, but a server told to stop releases what it cannot finish within its
    grace period: the next server takes the target over within seconds, not after the lease."""
    slow = Server(["--poll-interval", "1s", "--lease-ttl", "60s", "--test-attempt-delay", "60s",
                   "--shutdown-grace", "1s", "--replica-id", "first"]).start()
    data_dir = slow.data_dir
    try:
        repo = Repo(git_http.root, "octo", "sigterm", str(tmp_path / "work"))
        sha = repo.commit({"deploy/stack.yaml": deployment(), "infra/queue.yaml": TEMPLATE})
        stack = Stack(slow, make_tenant(slow), git_http.url, "octo", "sigterm", tmp_path)
        stack.configure("sigterm")
        wait_for(lambda: stack.status("sigterm")["LatestSync"]["Status"] == "IN_PROGRESS", what="attempt running")
        stopped_at = time.time()
        slow.process.send_signal(signal.SIGTERM)
        assert slow.process.wait(timeout=15) == 0
        assert time.time() - stopped_at < 10
        log = open(slow.log_path).read()
        assert "stopping: claiming no new work, waiting for the syncs in flight" in log
        assert "stopped a resource sync; released it for another replica" in log
        again = Server(["--poll-interval", "1s", "--lease-ttl", "60s", "--replica-id", "second"], database_url=slow.database_url)
        again.data_dir = data_dir
        again.log_path = os.path.join(data_dir, "server2.log")
        again.start()
        try:
            stack.tenant.server = again
            stack.cc = stack.tenant.client("codeconnections")
            s = stack.settled("sigterm", sha)
            assert time.time() - stopped_at < 30  # the lease would have held it for 60 s
            events = s["LatestSync"]["Events"]
            assert events[0]["Type"] == "TAKEN_OVER" and events[0]["Event"] == "The previous worker stopped; resumed by second"
        finally:
            again.stop()
    finally:
        slow.cleanup()


def test_a_worker_that_loses_its_lease_stops_its_attempt(git_http, tmp_path):
    """Another worker's claim (here: the lease's epoch moved behind the server's back) makes the
    running attempt stop at its next renewal instead of finishing over its successor."""
    import sqlite3
    server = Server(["--poll-interval", "1h", "--lease-ttl", "3s", "--test-attempt-delay", "6s"], database_url="sqlite").start()
    try:
        repo = Repo(git_http.root, "octo", "fenced", str(tmp_path / "work"))
        sha = repo.commit({"deploy/stack.yaml": deployment(), "infra/queue.yaml": TEMPLATE})
        stack = Stack(server, make_tenant(server), git_http.url, "octo", "fenced", tmp_path)
        stack.configure("fenced")
        wait_for(lambda: stack.status("fenced")["LatestSync"]["Status"] == "IN_PROGRESS", what="attempt running")
        db = sqlite3.connect(os.path.join(server.data_dir, "gitsync.db"), timeout=10)
        with db:
            db.execute("UPDATE sync_targets SET lease_epoch = lease_epoch + 1 WHERE target_key = 'fenced'")
        db.close()
        wait_for(lambda: "lost the lease on this target" in open(server.log_path).read(), what="the worker to notice")
        time.sleep(7)  # past the attempt's delay: a worker that went on would have finished it by now
        latest = stack.status("fenced")["LatestSync"]
        assert latest["Status"] == "IN_PROGRESS" and latest["TargetRevision"]["Sha"] == sha, latest
        assert "resource sync succeeded" not in open(server.log_path).read()
    finally:
        server.cleanup()


def test_sigterm_lets_an_attempt_finish_within_the_grace_period(git_http, tmp_path):
    server = Server(["--poll-interval", "1s", "--test-attempt-delay", "4s", "--shutdown-grace", "30s"]).start()
    try:
        repo = Repo(git_http.root, "octo", "graceful", str(tmp_path / "work"))
        sha = repo.commit({"deploy/stack.yaml": deployment(), "infra/queue.yaml": TEMPLATE})
        stack = Stack(server, make_tenant(server), git_http.url, "octo", "graceful", tmp_path)
        stack.configure("graceful")
        wait_for(lambda: stack.status("graceful")["LatestSync"]["Status"] == "IN_PROGRESS", what="attempt running")
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(timeout=20) == 0
        # The server is down; the command line reads the database: the attempt finished.
        out = server.cli("status", "--resource-name", "graceful", "--account-id", stack.tenant.account_id).stdout
        assert f"Latest sync: SUCCEEDED at commit {sha}" in out, out
        assert "TAKEN_OVER" not in out and "ABANDONED" not in out, out
    finally:
        server.cleanup()


def test_an_idle_engine_writes_nothing(git_http, tmp_path):
    """With everything synced and nothing due, the engine only reads: the SQLite database and its
    write-ahead log stay unchanged. (A guard against writes while idle; the per-second watched-branch
    refresh this round removed changed no rows, so this test passed before it too.)"""
    server = Server(["--poll-interval", "1h"], database_url="sqlite").start()
    try:
        repo = Repo(git_http.root, "octo", "idle", str(tmp_path / "work"))
        sha = repo.commit({"deploy/stack.yaml": deployment(), "infra/queue.yaml": TEMPLATE})
        stack = Stack(server, make_tenant(server), git_http.url, "octo", "idle", tmp_path)
        stack.configure("idle")
        stack.settled("idle", sha)
        time.sleep(1)  # let the last writes of the attempt land
        files = [os.path.join(server.data_dir, f) for f in ("gitsync.db", "gitsync.db-wal")]

        def state():
            return [(os.path.getsize(f), os.stat(f).st_mtime_ns) if os.path.exists(f) else None for f in files]

        before = state()
        time.sleep(4)  # 16 turns of the engine's loop
        assert state() == before
    finally:
        server.cleanup()


def test_a_remote_that_is_down_backs_off_then_recovers(engine, tmp_path):
    root = tmp_path / "flaky-root"
    root.mkdir()
    flaky = GitHttpServer(str(root)).start()
    port = flaky.port
    repo = Repo(str(root), "octo", "flaky", str(tmp_path / "work"))
    first = repo.commit({"deploy/stack.yaml": deployment(), "infra/queue.yaml": TEMPLATE})
    stack = Stack(engine, make_tenant(engine), flaky.url, "octo", "flaky", tmp_path)
    stack.configure("flaky")
    stack.settled("flaky", first)
    flaky.stop()
    second = repo.commit({"deploy/stack.yaml": deployment(queue="later")})
    failed = wait_for(lambda: (lambda r: r if r["Status"] == "FAILED" else None)(stack.repo_status()), what="failed repository sync")
    assert failed["Events"][-1]["Type"] == "CLONE_FAILED"
    assert f"127.0.0.1:{port}" in failed["Events"][-1]["Event"]
    # One failed attempt is recorded per outage, not one per poll.
    time.sleep(3)
    assert stack.repo_status()["StartedAt"] == failed["StartedAt"]
    flaky = GitHttpServer(str(root), port=port).start()
    try:
        stack.settled("flaky", second)
        assert stack.repo_status()["Status"] == "SUCCEEDED"
    finally:
        flaky.stop()


def test_monorepo_commit_touching_three_of_two_hundred(git_http, tmp_path):
    server = Server([
        "--poll-interval", "1s",
        "--limit", "cfn_sync_configurations=1000",
        "--limit", "sync_configurations_per_link=1000",
        "--limit", "sync_configurations_per_branch=1000",
    ]).start()
    try:
        repo = Repo(git_http.root, "octo", "mono", str(tmp_path / "work"))
        files = {"infra/queue.yaml": TEMPLATE}
        for i in range(200):
            files[f"stacks/s{i:03}/deploy.yaml"] = deployment(queue=f"q{i}")
        first = repo.commit(files, "two hundred stacks")
        stack = Stack(server, make_tenant(server), git_http.url, "octo", "mono", tmp_path)
        for i in range(200):
            stack.configure(f"s{i:03}", config_file=f"stacks/s{i:03}/deploy.yaml")
        for i in range(200):
            stack.settled(f"s{i:03}", first)
        fetches_before = git_http.stats[("/octo/mono.git", "fetch")]
        adverts_before = git_http.stats[("/octo/mono.git", "advertisement")]
        listings_before = git_http.stats[("/octo/mono.git", "ls-refs")]
        touched = [7, 100, 199]
        second = repo.commit({f"stacks/s{i:03}/deploy.yaml": deployment(queue=f"q{i}-v2") for i in touched}, "three stacks")
        for i in touched:
            stack.settled(f"s{i:03}", second)
        wait_for(lambda: stack.repo_status()["Events"][-1].get("ExternalId") == second, what="repository sync")
        time.sleep(2)
        moved = [i for i in range(200) if stack.status(f"s{i:03}")["LatestSync"]["TargetRevision"]["Sha"] == second]
        assert moved == touched
        assert git_http.stats[("/octo/mono.git", "fetch")] - fetches_before == 1
        # Every poll listed the branch (one v2 ls-refs POST, in process); only the one `git fetch`
        # asked for an advertisement first, as `git` always does.
        assert git_http.stats[("/octo/mono.git", "ls-refs")] - listings_before >= 3
        assert git_http.stats[("/octo/mono.git", "advertisement")] - adverts_before == 1
    finally:
        server.cleanup()


def test_file_remotes_sync_too(tmp_path):
    # file:// endpoints read the server's own disk: only a server started with --allow-file-remotes
    # takes them (test_attacks.py checks that one started without it refuses them).
    server = Server(["--allow-file-remotes", "--poll-interval", "1s", "--lease-ttl", "3s", "--git-timeout", "10s"]).start()
    try:
        root = tmp_path / "file-root"
        root.mkdir()
        repo = Repo(str(root), "octo", "local", str(tmp_path / "work"))
        sha = repo.commit({"deploy/stack.yaml": deployment(), "infra/queue.yaml": TEMPLATE})
        tenant = make_tenant(server)
        cc = tenant.client("codeconnections")
        host = cc.create_host(Name="files", ProviderEndpoint=f"file://{root}", ProviderType="GitLabSelfManaged")["HostArn"]
        conn = cc.create_connection(ConnectionName="files", HostArn=host)["ConnectionArn"]
        server.cli("connections", "activate", conn)  # file:// needs no credentials
        link = cc.create_repository_link(ConnectionArn=conn, OwnerId="octo", RepositoryName="local")["RepositoryLinkInfo"]
        cc.create_sync_configuration(Branch="main", ConfigFile="deploy/stack.yaml", RepositoryLinkId=link["RepositoryLinkId"], ResourceName="local",
                                     RoleArn=tenant.role_arn(), SyncType="CFN_STACK_SYNC")
        status = wait_for(lambda: (lambda s: s if s["LatestSync"]["Status"] == "SUCCEEDED" else None)(cc.get_resource_sync_status(ResourceName="local", SyncType="CFN_STACK_SYNC")), what="file:// sync")
        assert status["LatestSync"]["TargetRevision"]["Sha"] == sha
        assert status["LatestSync"]["TargetRevision"]["ProviderType"] == "GitLabSelfManaged"
    finally:
        server.cleanup()


def test_a_configuration_added_to_a_synced_branch_syncs_without_a_new_commit(engine, git_http, tmp_path):
    repo = Repo(git_http.root, "octo", "late", str(tmp_path / "work"))
    sha = repo.commit({"deploy/a.yaml": deployment("a"), "deploy/b.yaml": deployment("b"), "infra/queue.yaml": TEMPLATE})
    stack = Stack(engine, make_tenant(engine), git_http.url, "octo", "late", tmp_path)
    stack.configure("first-stack", config_file="deploy/a.yaml")
    stack.settled("first-stack", sha)
    time.sleep(1.5)  # the branch is synced at sha and polled unchanged
    stack.configure("late-stack", config_file="deploy/b.yaml")
    stack.settled("late-stack", sha)
    # The stack already in sync was not synced again.
    assert stack.status("first-stack")["LatestSync"]["StartedAt"] == stack.status("first-stack")["LatestSuccessfulSync"]["StartedAt"]
    out = engine.cli("status", "--resource-name", "first-stack", "--account-id", stack.tenant.account_id).stdout
    assert out.count("SYNC_STARTED") == 1


def test_bad_commits_never_block_and_the_fix_syncs(engine, git_http, tmp_path):
    """Users fix forward: three different invalid commits fail, raise no blocker, and the fourth
    commit, the fix, is attempted at once (the repeated-failures blocker counts deployments that
    ran and failed at one commit: see test_cloudformation.py)."""
    repo = Repo(git_http.root, "octo", "blocked", str(tmp_path / "work"))
    bad = repo.commit({"deploy/stack.yaml": deployment(Foo="1"), "infra/queue.yaml": TEMPLATE})
    stack = Stack(engine, make_tenant(engine), git_http.url, "octo", "blocked", tmp_path)
    stack.configure("blocked")
    stack.settled("blocked", bad, "FAILED")
    for i in range(2, 4):
        bad = repo.commit({"deploy/stack.yaml": deployment(Foo=str(i))})
        stack.settled("blocked", bad, "FAILED")
    events = stack.status("blocked")["LatestSync"]["Events"]
    assert "BLOCKED" not in [e["Type"] for e in events], events
    summary = stack.cc.get_sync_blocker_summary(ResourceName="blocked", SyncType="CFN_STACK_SYNC")["SyncBlockerSummary"]
    assert summary.get("LatestBlockers", []) == []
    fixed = repo.commit({"deploy/stack.yaml": deployment()})
    stack.settled("blocked", fixed)
