"""The whole sync history through the real binary: `gitsync history` lists every attempt, newest
first, filtered and paged, and `serve --history-retention` prunes old attempts but keeps each
target's latest and latest successful ones (what GetResourceSyncStatus shows)."""
import time

import pytest

from conftest import Server, make_tenant
from gitserver import GitHttpServer, Repo
from test_engine import TEMPLATE, Stack, deployment


@pytest.fixture(scope="module")
def git_http(tmp_path_factory):
    server = GitHttpServer(str(tmp_path_factory.mktemp("git-root"))).start()
    yield server
    server.stop()


def attempts(out):
    """The attempt lines of `gitsync history` (status, target, commit)."""
    rows = []
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 5 and parts[0].endswith("Z") and parts[4] == "commit":
            rows.append((parts[1], parts[3], parts[5]))
    return rows


def test_history_lists_filters_pages_and_keeps_what_retention_must(git_http, tmp_path):
    server = Server(["--poll-interval", "1s", "--lease-ttl", "3s", "--git-timeout", "10s"]).start()
    try:
        repo = Repo(git_http.root, "octo", "history", str(tmp_path / "work"))
        first = repo.commit({"deploy/stack.yaml": deployment("hist"), "infra/queue.yaml": TEMPLATE})
        tenant = make_tenant(server)
        stack = Stack(server, tenant, git_http.url, "octo", "history", tmp_path)
        stack.configure("hist-stack")
        stack.settled("hist-stack", first)
        second = repo.commit({"deploy/stack.yaml": deployment("hist", Visibility=40)})
        stack.settled("hist-stack", second)
        third = repo.commit({"deploy/stack.yaml": deployment("hist", Nope=1)})
        stack.settled("hist-stack", third, "FAILED")
        history = lambda *args: server.cli("history", "--account-id", tenant.account_id, *args, check=False)  # noqa: E731

        out = history().stdout
        assert attempts(out) == [("FAILED", "hist-stack", third), ("SUCCEEDED", "hist-stack", second),
                                 ("SUCCEEDED", "hist-stack", first)], out
        assert "VALIDATION_FAILED: parameters: unknown parameter 'Nope'" in out, out
        failed = history("--status", "FAILED", "--events").stdout
        assert attempts(failed) == [("FAILED", "hist-stack", third)], failed
        assert "SYNC_STARTED" in failed and "VALIDATION_FAILED" in failed
        # Pages: one at a time, continued by the token the previous page printed.
        page = history("--limit", "2").stdout
        assert [a[2] for a in attempts(page)] == [third, second]
        token = page.strip().splitlines()[-1].split("--next-token ")[1]
        rest = history("--limit", "2", "--next-token", token).stdout
        assert [a[2] for a in attempts(rest)] == [first] and "--next-token" not in rest
        # Filters by target, type and time.
        assert "No attempts match." in history("--target", "other-stack").stdout
        assert "No attempts match." in history("--sync-type", "TEMPLATE_SYNC").stdout
        assert len(attempts(history("--since", "1h").stdout)) == 3
        assert "No attempts match." in history("--until", "2020-01-01T00:00:00Z").stdout
        refused = history("--sync-type", "NOPE")
        assert refused.returncode != 0 and "use CFN_STACK_SYNC, TEMPLATE_SYNC or SERVICE_SYNC" in refused.stderr
        refused = history("--since", "yesterday")
        assert refused.returncode != 0 and "neither a UTC time" in refused.stderr
        # Another tenant sees none of it.
        assert "No attempts match." in server.cli("history", "--account-id", make_tenant(server).account_id).stdout

        # A retention shorter than the attempts' age prunes all but the latest (third) and the
        # latest successful (second) at the next start.
        time.sleep(1.5)
        server.stop()
        server.extra_args += ["--history-retention", "1s"]
        server.start()

        def pruned():
            rows = attempts(history().stdout)
            return rows if len(rows) == 2 else None
        deadline = time.time() + 30
        while time.time() < deadline and not pruned():
            time.sleep(0.3)
        assert [a[2] for a in attempts(history().stdout)] == [third, second]
        s = stack.status("hist-stack")
        assert s["LatestSync"]["TargetRevision"]["Sha"] == third
        assert s["LatestSuccessfulSync"]["TargetRevision"]["Sha"] == second
    finally:
        server.cleanup()
