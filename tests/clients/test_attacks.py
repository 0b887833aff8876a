"""Tests that play the attacker, through the real binary.

- A signed request whose query string is not valid percent-encoding (once a panic).
- Host endpoints: file:// reads the server's own disk (only with `serve --allow-file-remotes`);
  other schemes, missing hosts, credentials in the URL and control characters are refused; moving
  a host sends its connections back to PENDING, so credentials given for one server never go to
  another.
- Deployment identity (moto): an untrusted tenant's stacks are deployed as its sync role,
  assumed through STS, so they land in the role's account; a role in another tenant's account is
  refused until the operator allows it (`gitsync accounts set`); a stack gitsync did not create
  is not touched until a person adopts it, and stacks gitsync deploys carry its ownership tags.
- Budgets: a tree bomb, a huge blob and a deployment file with 200,000 keys fail their attempt
  without exhausting memory or time; a flood of large unsigned webhooks is refused and leaves
  (almost) nothing on disk.

Each budget test watches the server's memory and kills it (SIGKILL) past RSS_KILL, so a server
without the budgets fails the test instead of taking the machine down.
"""
import json
import os
import re
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request

import pytest
from botocore.exceptions import ClientError

from conftest import Server, error_code, error_message, make_tenant
from gitserver import GIT_ENV, Repo
from rawclient import TARGETS, sign
from test_cloudformation import MOTO_KEYS, cloudformation, moto, parameters  # noqa: F401  (moto: the module's moto_server)
from test_engine import TEMPLATE, Stack, deployment, git_http  # noqa: F401  (git_http: the module's Git server)
from test_template_sync import bundle
from test_template_sync import settled as template_settled
from test_template_sync import setup as template_setup

RSS_LIMIT = 300 << 20  # what a server under attack may reach
RSS_KILL = 1536 << 20  # a server past this is killed: it would not stop on its own


# ---------------------------------------------------------------------------------------------
# Helpers


def raw_request(server, data, timeout=10):
    """Sends `data` as it is on a new connection; returns (status, whole answer), status None when
    the connection ended without an HTTP answer."""
    chunks = []
    with socket.create_connection(("127.0.0.1", server.port), timeout=timeout) as sock:
        sock.sendall(data)
        try:
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
        except (ConnectionResetError, socket.timeout):
            pass
    answer = b"".join(chunks)
    match = re.match(rb"HTTP/1\.[01] (\d{3}) ", answer)
    return (int(match.group(1)) if match else None), answer


def slowest_healthz(server, seconds, interval=0.2):
    """Polls GET /healthz for `seconds`; returns the slowest answer's latency. Every answer must be
    a 200 within 2 s."""
    deadline = time.time() + seconds
    slowest = 0.0
    while time.time() < deadline:
        started = time.time()
        try:
            with urllib.request.urlopen(server.endpoint + "/healthz", timeout=2) as r:
                assert r.status == 200, r.status
        except OSError as e:
            raise AssertionError(f"/healthz did not answer within 2 s: {e!r}") from e
        slowest = max(slowest, time.time() - started)
        time.sleep(interval)
    return slowest


class Watchdog:
    """Samples the server's memory while a test attacks it; kills the server (SIGKILL) once its RSS
    passes RSS_KILL. `peak()` is the kernel's high-water mark of its RSS (VmHWM)."""

    def __init__(self, server):
        self.pid = server.process.pid
        self.killed_at = None
        self.hwm = 0
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _field(self, name):
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith(name + ":"):
                    return int(line.split()[1]) * 1024
        return 0

    def _run(self):
        while not self.done.is_set():
            try:
                rss = self._field("VmRSS")
                self.hwm = max(self.hwm, self._field("VmHWM"))
            except (OSError, ValueError):
                return
            if rss > RSS_KILL:
                self.killed_at = rss
                os.kill(self.pid, signal.SIGKILL)
                return
            time.sleep(0.05)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.done.set()
        self.thread.join(5)

    def peak(self):
        try:
            self.hwm = max(self.hwm, self._field("VmHWM"))
        except (OSError, ValueError):
            pass
        return self.hwm

    def during(self, step):
        """Runs one step of the test; a failure after the watchdog killed the server says so."""
        try:
            return step()
        except Exception as e:
            if self.killed_at:
                raise AssertionError(f"the server's RSS passed {self.killed_at >> 20} MB and it was killed") from e
            raise

    def check(self):
        assert self.killed_at is None, f"the server's RSS passed {self.killed_at >> 20} MB and it was killed"
        peak = self.peak()
        assert peak < RSS_LIMIT, f"the server's peak RSS (VmHWM) was {peak >> 20} MB"


def git_in(cwd, *args, stdin=None):
    result = subprocess.run(["git", *args], cwd=cwd, env={**os.environ, **GIT_ENV}, input=stdin,
                            capture_output=True, text=True, timeout=300)
    if result.returncode != 0:
        raise AssertionError(f"git {' '.join(args)}: {result.stderr}")
    return result.stdout.strip()


def mktree(cwd, entries):
    """A tree object from {name: (mode, type, id)} (`git mktree`; {} makes the empty tree)."""
    text = "".join(f"{mode} {kind} {oid}\t{name}\n" for name, (mode, kind, oid) in entries.items())
    return git_in(cwd, "mktree", stdin=text)


def tree_entries(cwd, tree):
    entries = {}
    for line in git_in(cwd, "ls-tree", tree).splitlines():
        meta, name = line.split("\t", 1)
        mode, kind, oid = meta.split()
        entries[name] = (mode, kind, oid)
    return entries


def with_tree_at(cwd, tree, path, new_tree):
    """`tree` with `new_tree` as the directory at `path` (whose parent directories exist)."""
    first, _, rest = path.partition("/")
    entries = tree_entries(cwd, tree)
    child = with_tree_at(cwd, entries[first][2], rest, new_tree) if rest else new_tree
    entries[first] = ("040000", "tree", child)
    return mktree(cwd, entries)


def push_tree_bomb(repo, path, depth=12, width=8):
    """Commits (on main, pushed) a directory at `path` holding `width` directories, each holding
    `width` directories, `depth` levels deep: width**depth leaves, but one tree object per level."""
    cwd = repo.work
    level = mktree(cwd, {})
    empty = level
    for _ in range(depth):
        level = mktree(cwd, {f"d{i}": ("040000", "tree", level) for i in range(width)})
    root = with_tree_at(cwd, git_in(cwd, "rev-parse", "HEAD^{tree}"), path, level)
    commit = git_in(cwd, "commit-tree", root, "-p", "HEAD", "-m", "a tree bomb")
    git_in(cwd, "update-ref", "refs/heads/main", commit)
    git_in(cwd, "push", "-q", "origin", "main")
    deepest = "/".join([path] + [f"d{width - 1}"] * depth)
    assert git_in(cwd, "rev-parse", f"{commit}:{deepest}") == empty
    return commit


def dir_bytes(path):
    total = 0
    for folder, _, files in os.walk(path):
        for name in files:
            try:
                total += os.path.getsize(os.path.join(folder, name))
            except OSError:
                pass
    return total


# ---------------------------------------------------------------------------------------------
# A. SigV4


@pytest.mark.parametrize("query", [b"a=%a\xc3\xa9", b"a=%", b"a=%zz&b=\xff"],
                         ids=["bad-escape-then-utf8", "truncated-escape", "bad-escape-and-invalid-utf8"])
def test_a_signed_request_with_a_broken_query_string_answers_4xx(server, tenant, query):
    """The request is signed as a real client signs (the signature covers no query string, so a
    server that reads past the query answers 403): whatever the query holds, the answer is a 4xx,
    never a 5xx or a dropped connection, and the server keeps serving."""
    body = b"{}"
    headers = sign("POST", f"127.0.0.1:{server.port}", "/", {
        "Content-Type": "application/x-amz-json-1.0",
        "X-Amz-Target": f"{TARGETS['codestar-connections']}.ListConnections",
    }, body, tenant.access_key_id, tenant.secret_access_key, tenant.region, "codestar-connections")
    request = (b"POST /?" + query + b" HTTP/1.1\r\n"
               + b"".join(f"{name}: {value}\r\n".encode() for name, value in headers.items())
               + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body)
    status, answer = raw_request(server, request)
    assert status is not None, f"the connection ended without an answer: {answer!r}"
    assert 400 <= status < 500, answer
    assert tenant.client("codestar-connections").list_connections()["Connections"] == []


# ---------------------------------------------------------------------------------------------
# B. Hosts


def test_file_endpoints_are_refused_without_allow_file_remotes(server, tenant):
    # The session server is started without --allow-file-remotes.
    cc = tenant.client("codeconnections")
    with pytest.raises(ClientError) as e:
        cc.create_host(Name="disk", ProviderEndpoint="file:///tmp/x", ProviderType="GitLabSelfManaged")
    assert error_code(e) == "ValidationException"
    assert "file://" in error_message(e) and "--allow-file-remotes" in error_message(e), error_message(e)
    assert cc.list_hosts()["Hosts"] == []
    arn = cc.create_host(Name="web", ProviderEndpoint="https://git.example.com", ProviderType="GitLabSelfManaged")["HostArn"]
    with pytest.raises(ClientError) as e:
        cc.update_host(HostArn=arn, ProviderEndpoint="file:///tmp/x")
    assert error_code(e) == "ValidationException"
    assert "file://" in error_message(e) and "--allow-file-remotes" in error_message(e), error_message(e)
    assert cc.get_host(HostArn=arn)["ProviderEndpoint"] == "https://git.example.com"
    # The legacy service name is held to the same rule.
    with pytest.raises(ClientError) as e:
        tenant.client("codestar-connections").create_host(Name="disk", ProviderEndpoint="file:///tmp/x", ProviderType="GitLabSelfManaged")
    assert error_code(e) == "ValidationException"


def test_file_endpoints_are_taken_with_allow_file_remotes():
    server = Server(["--allow-file-remotes"]).start()
    try:
        cc = make_tenant(server).client("codeconnections")
        arn = cc.create_host(Name="disk", ProviderEndpoint="file:///tmp/x", ProviderType="GitLabSelfManaged")["HostArn"]
        assert cc.get_host(HostArn=arn)["ProviderEndpoint"] == "file:///tmp/x"
        cc.update_host(HostArn=arn, ProviderEndpoint="file:///srv/git")
        assert cc.get_host(HostArn=arn)["ProviderEndpoint"] == "file:///srv/git"
        # The flag allows file:// and nothing else.
        with pytest.raises(ClientError) as e:
            cc.create_host(Name="ftp", ProviderEndpoint="ftp://x", ProviderType="GitLabSelfManaged")
        assert error_code(e) == "ValidationException"
    finally:
        server.cleanup()


MALFORMED_ENDPOINTS = {
    "other-scheme": "ftp://x",
    "no-host": "https://",
    "credentials": "https://user:pass@git.example.com",
    "space-in-path": "https://git.example.com/a b",
    "space-in-host": "https://git example.com",
    "leading-space": " https://git.example.com",
    "trailing-newline": "https://git.example.com\n",
    "crlf": "https://git.example.com\r\nX-Injected: 1",
    "nul": "https://git.exa\x00mple.com",
    "tab": "https://git.example.com/\tx",
}


@pytest.mark.parametrize("endpoint", list(MALFORMED_ENDPOINTS.values()), ids=list(MALFORMED_ENDPOINTS))
def test_malformed_host_endpoints_are_refused(tenant, endpoint):
    cc = tenant.client("codeconnections")
    with pytest.raises(ClientError) as e:
        cc.create_host(Name="bad", ProviderEndpoint=endpoint, ProviderType="GitHubEnterpriseServer")
    assert error_code(e) == "ValidationException", error_message(e)
    assert cc.list_hosts()["Hosts"] == []
    arn = cc.create_host(Name="good", ProviderEndpoint="https://git.example.com", ProviderType="GitHubEnterpriseServer")["HostArn"]
    with pytest.raises(ClientError) as e:
        cc.update_host(HostArn=arn, ProviderEndpoint=endpoint)
    assert error_code(e) == "ValidationException", error_message(e)
    assert cc.get_host(HostArn=arn)["ProviderEndpoint"] == "https://git.example.com"


@pytest.mark.parametrize("name", ["a/b", "a:b", "two words", "line\nbreak"])
def test_host_names_that_would_break_its_arn_are_refused(tenant, name):
    cc = tenant.client("codeconnections")
    with pytest.raises(ClientError) as e:
        cc.create_host(Name=name, ProviderEndpoint="https://git.example.com", ProviderType="GitHubEnterpriseServer")
    assert error_code(e) == "ValidationException" and "ARN" in error_message(e), error_message(e)
    assert cc.list_hosts()["Hosts"] == []


def test_moving_a_host_sends_its_connections_back_to_pending(server, tenant, tmp_path):
    """Credentials given for one Git server must not follow the host to another: a new endpoint
    makes every connection on the host PENDING until it is activated again."""
    cc = tenant.client("codeconnections")
    token = tmp_path / "token"
    token.write_text("a-token-for-git.example.com\n")

    def status(arn):
        return cc.get_connection(ConnectionArn=arn)["Connection"]["ConnectionStatus"]

    def activated(name, host):
        arn = cc.create_connection(ConnectionName=name, HostArn=host)["ConnectionArn"]
        server.cli("connections", "activate", arn, "--token-file", str(token))
        assert status(arn) == "AVAILABLE"
        return arn

    moved_host = cc.create_host(Name="moved", ProviderEndpoint="https://git.example.com", ProviderType="GitHubEnterpriseServer")["HostArn"]
    kept_host = cc.create_host(Name="kept", ProviderEndpoint="https://git.example.com", ProviderType="GitHubEnterpriseServer")["HostArn"]
    moved = [activated("moved-1", moved_host), activated("moved-2", moved_host)]
    kept = activated("kept", kept_host)

    cc.update_host(HostArn=moved_host, ProviderEndpoint="https://git.attacker.example.net")
    assert [status(arn) for arn in moved] == ["PENDING", "PENDING"]
    assert status(kept) == "AVAILABLE"

    # The same endpoint again, or only a VPC configuration, changes nothing.
    cc.update_host(HostArn=kept_host, ProviderEndpoint="https://git.example.com")
    assert status(kept) == "AVAILABLE"
    vpc = {"VpcId": "vpc-01234567", "SubnetIds": ["subnet-01234567"], "SecurityGroupIds": ["sg-01234567"]}
    cc.update_host(HostArn=kept_host, VpcConfiguration=vpc)
    assert status(kept) == "AVAILABLE"

    # Activating again makes a moved connection usable again.
    server.cli("connections", "activate", moved[0], "--token-file", str(token))
    assert status(moved[0]) == "AVAILABLE"


# ---------------------------------------------------------------------------------------------
# C. Deployment identity (moto_server as CloudFormation and STS)


@pytest.fixture(scope="module")
def deployer(moto):
    server = Server(["--poll-interval", "1s", "--lease-ttl", "5s", "--git-timeout", "10s", "--cloudformation-endpoint", moto],
                    env=MOTO_KEYS).start()
    yield server
    server.cleanup()


def stack_tags(cfn, name):
    (described,) = cfn.describe_stacks(StackName=name)["Stacks"]
    return {t["Key"]: t["Value"] for t in described.get("Tags", [])}


def test_two_tenants_stacks_of_one_name_land_in_their_own_accounts(deployer, moto, git_http, tmp_path):
    repo = Repo(git_http.root, "octo", "prod-shared", str(tmp_path / "work"))
    sha = repo.commit({"deploy/stack.yaml": deployment("prod-queue"), "infra/queue.yaml": TEMPLATE})
    a, b = make_tenant(deployer), make_tenant(deployer)
    stacks = {}
    for t in (a, b):
        stacks[t.account_id] = Stack(deployer, t, git_http.url, "octo", "prod-shared", tmp_path)
        stacks[t.account_id].configure("prod", role=t.role_arn("deployer"))
    ids, events = {}, {}
    for t in (a, b):
        s = stacks[t.account_id].settled("prod", sha)
        events[t.account_id] = s["LatestSync"]["Events"]
        stack_id = events[t.account_id][-1]["ExternalId"]
        assert stack_id.startswith(f"arn:aws:cloudformation:us-east-1:{t.account_id}:stack/prod/"), stack_id
        # moto filed the stack under the role's account: the role's credentials read it back.
        (described,) = cloudformation(moto, role=t.role_arn("deployer")).describe_stacks(StackName="prod")["Stacks"]
        assert described["StackId"] == stack_id
        ids[t.account_id] = stack_id
    assert ids[a.account_id] != ids[b.account_id]
    for mine, theirs in ((b, a), (a, b)):
        leaked = [e for e in events[mine.account_id] if ids[theirs.account_id] in e["Event"] or ids[theirs.account_id] in e.get("ExternalId", "")]
        assert leaked == [], leaked
    # Neither ran with the server's own credentials (moto's default account).
    assert "prod" not in [x["StackName"] for x in cloudformation(moto).describe_stacks()["Stacks"]]


def test_a_role_in_another_tenants_account_is_refused_until_the_operator_allows_it(server):
    a, b = make_tenant(server), make_tenant(server)
    cc = a.client("codeconnections")
    conn = cc.create_connection(ConnectionName="gh", ProviderType="GitHub")["ConnectionArn"]
    link = cc.create_repository_link(ConnectionArn=conn, OwnerId="octo", RepositoryName="infra")["RepositoryLinkInfo"]["RepositoryLinkId"]
    theirs = b.role_arn("deployer")

    def create(client, name, role):
        return client.create_sync_configuration(Branch="main", ConfigFile="deploy/stack.yaml", RepositoryLinkId=link,
                                                ResourceName=name, RoleArn=role, SyncType="CFN_STACK_SYNC")["SyncConfiguration"]

    def names():
        return [c["ResourceName"] for c in cc.list_sync_configurations(RepositoryLinkId=link, SyncType="CFN_STACK_SYNC")["SyncConfigurations"]]

    for client in (cc, a.client("codestar-connections")):
        with pytest.raises(ClientError) as e:
            create(client, "borrowed", theirs)
        assert error_code(e) == "AccessDeniedException"
        assert b.account_id in error_message(e), error_message(e)
    assert names() == []
    with pytest.raises(ClientError) as e:
        cc.get_sync_configuration(ResourceName="borrowed", SyncType="CFN_STACK_SYNC")
    assert error_code(e) == "ResourceNotFoundException"

    own = a.role_arn("deployer")
    create(cc, "own", own)
    with pytest.raises(ClientError) as e:
        cc.update_sync_configuration(ResourceName="own", SyncType="CFN_STACK_SYNC", RoleArn=theirs)
    assert error_code(e) == "AccessDeniedException"
    assert b.account_id in error_message(e), error_message(e)
    assert cc.get_sync_configuration(ResourceName="own", SyncType="CFN_STACK_SYNC")["SyncConfiguration"]["RoleArn"] == own
    assert names() == ["own"]

    # The operator allows A to deploy into B's account.
    server.cli("accounts", "set", a.account_id, "--deploy-account", b.account_id)
    assert create(cc, "borrowed", theirs)["RoleArn"] == theirs
    updated = cc.update_sync_configuration(ResourceName="own", SyncType="CFN_STACK_SYNC", RoleArn=theirs)["SyncConfiguration"]
    assert updated["RoleArn"] == theirs
    assert sorted(names()) == ["borrowed", "own"]
    listed = server.cli("accounts", "list").stdout
    assert any(a.account_id in line and b.account_id in line for line in listed.splitlines()), listed
    # B was given nothing: A's account is still closed to it.
    b_cc = b.client("codeconnections")
    b_conn = b_cc.create_connection(ConnectionName="gh", ProviderType="GitHub")["ConnectionArn"]
    b_link = b_cc.create_repository_link(ConnectionArn=b_conn, OwnerId="octo", RepositoryName="infra")["RepositoryLinkInfo"]["RepositoryLinkId"]
    with pytest.raises(ClientError) as e:
        b_cc.create_sync_configuration(Branch="main", ConfigFile="deploy/stack.yaml", RepositoryLinkId=b_link,
                                       ResourceName="borrowed", RoleArn=own, SyncType="CFN_STACK_SYNC")
    assert error_code(e) == "AccessDeniedException"


def test_a_stack_gitsync_did_not_create_is_left_alone_until_adopted(deployer, moto, git_http, tmp_path):
    tenant = make_tenant(deployer)
    role = tenant.role_arn("deployer")
    cfn = cloudformation(moto, role=role)
    # Made by hand in the tenant's account, without gitsync's tags.
    cfn.create_stack(StackName="hand-made", TemplateBody=TEMPLATE, Parameters=[
        {"ParameterKey": "QueueName", "ParameterValue": "by-hand"}, {"ParameterKey": "Visibility", "ParameterValue": "45"}])
    template_before = cfn.get_template(StackName="hand-made")["TemplateBody"]

    repo = Repo(git_http.root, "octo", "hand-made", str(tmp_path / "work"))
    sha = repo.commit({"deploy/stack.yaml": deployment("from-git"), "infra/queue.yaml": TEMPLATE})
    stack = Stack(deployer, tenant, git_http.url, "octo", "hand-made", tmp_path)
    stack.configure("hand-made", role=role)
    s = stack.settled("hand-made", sha, status="FAILED")
    events = s["LatestSync"]["Events"]
    assert events[-1]["Type"] == "BLOCKED", events
    (blocker,) = stack.cc.get_sync_blocker_summary(ResourceName="hand-made", SyncType="CFN_STACK_SYNC")["SyncBlockerSummary"]["LatestBlockers"]
    assert blocker["Status"] == "ACTIVE"
    assert "hand-made" in blocker["CreatedReason"] and "not owned by gitsync" in blocker["CreatedReason"], blocker
    contexts = {c["Key"]: c["Value"] for c in blocker["Contexts"]}
    assert contexts.get("StackName") == "hand-made", contexts
    # Untouched: template, parameters, tags, and no change set.
    assert parameters(cfn, "hand-made") == ("CREATE_COMPLETE", {"QueueName": "by-hand", "Visibility": "45"})
    assert cfn.get_template(StackName="hand-made")["TemplateBody"] == template_before
    assert not [k for k in stack_tags(cfn, "hand-made") if k.startswith("gitsync:")]
    assert cfn.list_change_sets(StackName="hand-made")["Summaries"] == []

    # A person adopts it: the retry deploys and tags it as gitsync's.
    stack.cc.update_sync_blocker(Id=blocker["Id"], ResolvedReason="adopt", ResourceName="hand-made", SyncType="CFN_STACK_SYNC")
    adopted = stack.settled("hand-made", sha)
    assert parameters(cfn, "hand-made")[1] == {"QueueName": "from-git", "Visibility": "30"}
    # The adopting change set carries gitsync's tags (unit-tested in gitsync-deploy: every change
    # set gets them); CloudFormation applies them to the stack, moto 5 drops an UPDATE change
    # set's tags, so they cannot be read back here. What matters here: the adoption holds.
    assert adopted["LatestSync"]["Status"] == "SUCCEEDED"
    # Adopted for good: the next commit deploys without a new blocker.
    second = repo.commit({"deploy/stack.yaml": deployment("from-git", Visibility=60)})
    stack.settled("hand-made", second)
    assert parameters(cfn, "hand-made")[1]["Visibility"] == "60"


def test_stacks_gitsync_creates_carry_its_ownership_tags(deployer, moto, git_http, tmp_path):
    tenant = make_tenant(deployer)
    repo = Repo(git_http.root, "octo", "owned", str(tmp_path / "work"))
    sha = repo.commit({"deploy/stack.yaml": deployment("owned") + "tags:\n  team: infra\n", "infra/queue.yaml": TEMPLATE})
    stack = Stack(deployer, tenant, git_http.url, "octo", "owned", tmp_path)
    stack.configure("owned-stack")
    stack.settled("owned-stack", sha)
    tags = stack_tags(cloudformation(moto, role=tenant.role_arn()), "owned-stack")
    assert tags.get("gitsync:account") == tenant.account_id, tags
    assert tags.get("gitsync:sync-configuration") == "owned-stack", tags
    assert tags.get("team") == "infra", tags  # the deployment file's own tags are kept beside them


# ---------------------------------------------------------------------------------------------
# D. Budgets and webhooks


@pytest.fixture
def fresh():
    """A server of its own per test, so its peak RSS is this test's."""
    server = Server(["--poll-interval", "1s", "--lease-ttl", "5s", "--git-timeout", "30s"]).start()
    yield server
    server.cleanup()


def test_a_tree_bomb_in_a_template_bundle_fails_within_budget(fresh, git_http, tmp_path):
    repo, tenant, proton = template_setup(fresh, git_http, tmp_path, "tree-bomb")
    repo.commit(bundle("deep", 1))
    # deep/v1/nested: 8 directories of 8 directories ... 12 levels: 8**12 leaves, 13 tree objects.
    sha = push_tree_bomb(repo, "deep/v1/nested", depth=12, width=8)
    proton.create_environment_template(name="deep")
    with Watchdog(fresh) as watch:
        proton.create_template_sync_config(templateName="deep", templateType="ENVIRONMENT", repositoryName="octo/tree-bomb",
                                           repositoryProvider="GITHUB_ENTERPRISE", branch="main")
        slowest = watch.during(lambda: slowest_healthz(fresh, 10))
        s = watch.during(lambda: template_settled(proton, "deep", 1, sha, "FAILED"))
    texts = [e["event"] for e in s["latestSync"]["events"]]
    assert any("max-tree-entries" in t or "max-tree-depth" in t for t in texts), texts
    assert slowest < 2
    watch.check()


HUGE_MB = 512


def test_a_huge_deployment_file_fails_within_budget(fresh, git_http, tmp_path):
    repo = Repo(git_http.root, "octo", "huge-blob", str(tmp_path / "work"))
    big = os.path.join(repo.work, "deploy", "stack.yaml")
    os.makedirs(os.path.dirname(big))
    chunk = b"x" * (1 << 20)
    with open(big, "wb") as f:
        f.write(b"a: ")
        for _ in range(HUGE_MB):
            f.write(chunk)
    sha = repo.commit({"infra/queue.yaml": TEMPLATE}, f"a {HUGE_MB} MB deployment file")  # git stores it in a few hundred KB
    os.remove(big)
    stack = Stack(fresh, make_tenant(fresh), git_http.url, "octo", "huge-blob", tmp_path)
    with Watchdog(fresh) as watch:
        stack.configure("huge")
        slowest = watch.during(lambda: slowest_healthz(fresh, 5))
        s = watch.during(lambda: stack.settled("huge", sha, status="FAILED"))
    texts = [e["Event"] for e in s["LatestSync"]["Events"]]
    assert any("max-file-bytes" in t for t in texts), texts
    assert slowest < 2
    watch.check()
    assert slowest_healthz(fresh, 1) < 2


def test_a_deployment_file_with_200000_unknown_keys_makes_a_bounded_attempt(fresh, git_http, tmp_path):
    repo = Repo(git_http.root, "octo", "many-keys", str(tmp_path / "work"))
    body = deployment("many") + "".join(f"k{i:06d}: 1\n" for i in range(200_000))
    sha = repo.commit({"deploy/stack.yaml": body, "infra/queue.yaml": TEMPLATE})
    stack = Stack(fresh, make_tenant(fresh), git_http.url, "octo", "many-keys", tmp_path)
    with Watchdog(fresh) as watch:
        stack.configure("many-keys")
        s = watch.during(lambda: stack.settled("many-keys", sha, status="FAILED"))
    events = s["LatestSync"]["Events"]
    assert len(events) <= 1001, len(events)
    last = events[-1]["Event"]
    assert "left out" in last and re.search(r"\d", last), events[-1]
    started = time.time()
    stack.status("many-keys")
    assert time.time() - started < 2
    watch.check()


def flood_body(full_name, i, size=4_800_000):
    """A GitHub push delivery of about `size` bytes: a huge ref name, or huge commit messages."""
    sha = f"{i:040x}"
    base = {"ref": "refs/heads/main", "after": sha, "repository": {"full_name": full_name}}
    if i % 2 == 0:
        base["ref"] = "refs/heads/" + "r" * (size - len(json.dumps(base)))
    else:
        message = "m" * 100_000
        commit = {"id": sha, "message": message, "modified": ["deploy/stack.yaml"]}
        count = (size - len(json.dumps(base))) // len(json.dumps(commit))
        base["commits"] = [commit] * count
    return json.dumps(base).encode()


def post_unsigned(server, body, delivery):
    request = urllib.request.Request(f"{server.endpoint}/webhooks/github", data=body, method="POST", headers={
        "Content-Type": "application/json", "X-GitHub-Event": "push", "X-GitHub-Delivery": delivery})
    try:
        with urllib.request.urlopen(request, timeout=30) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except OSError as e:
        return repr(e)


def test_a_flood_of_large_unsigned_webhooks_is_refused_and_leaves_no_trace(tmp_path):
    server = Server(["--poll-interval", "1h"]).start()
    try:
        tenant = make_tenant(server)
        cc = tenant.client("codeconnections")
        conn = cc.create_connection(ConnectionName="gh", ProviderType="GitHub")["ConnectionArn"]
        signed = cc.create_repository_link(ConnectionArn=conn, OwnerId="octo", RepositoryName="flood-signed")["RepositoryLinkInfo"]
        cc.create_repository_link(ConnectionArn=conn, OwnerId="octo", RepositoryName="flood-open")
        secret = tmp_path / "secret"
        secret.write_text("flood-secret\n")
        server.cli("webhooks", "set-secret", signed["RepositoryLinkArn"], "--secret-file", str(secret))
        time.sleep(1)
        data_before = dir_bytes(server.data_dir)
        log_before = os.path.getsize(server.log_path)
        answers = []
        for full_name in ("octo/flood-signed", "octo/flood-open"):
            for i in range(20):
                body = flood_body(full_name, i)
                assert 4_700_000 < len(body) < 4_900_000
                answers.append((full_name, i, post_unsigned(server, body, f"flood-{full_name}-{i}")))
        # Refused before anything is stored: 401 (no secret verifies it), or 400 for a name too
        # long to be one (checked before secrets are even looked up).
        assert [a for a in answers if a[2] not in (400, 401)] == []
        time.sleep(1)
        grew = dir_bytes(server.data_dir) - data_before
        log_grew = os.path.getsize(server.log_path) - log_before
        assert grew < 1 << 20, f"the data directory grew by {grew} bytes"
        assert log_grew < 100 << 10, f"the log grew by {log_grew} bytes"
    finally:
        server.cleanup()


def test_switching_from_validate_only_to_deploying_raises_no_false_deleted_blocker(moto, git_http, tmp_path):
    """Validate-only attempts deploy nothing: when the server later deploys for real, the stack is
    created, not reported as deleted outside gitsync (the first real sync once raised that blocker)."""
    server = Server(["--poll-interval", "1s", "--lease-ttl", "5s", "--validate-only"], env=MOTO_KEYS).start()
    try:
        repo = Repo(git_http.root, "octo", "validated-first", str(tmp_path / "work"))
        first = repo.commit({"deploy/stack.yaml": deployment("validated"), "infra/queue.yaml": TEMPLATE})
        tenant = make_tenant(server)
        stack = Stack(server, tenant, git_http.url, "octo", "validated-first", tmp_path)
        stack.configure("validated-stack")
        s = stack.settled("validated-stack", first)
        assert s["LatestSync"]["Events"][-1]["Type"] == "VALIDATION_SUCCEEDED"
        server.stop()
        server.extra_args = ["--poll-interval", "1s", "--lease-ttl", "5s", "--cloudformation-endpoint", moto]
        server.start()
        second = repo.commit({"deploy/stack.yaml": deployment("validated", Visibility=60)})
        s = stack.settled("validated-stack", second)
        types = [e["Type"] for e in s["LatestSync"]["Events"]]
        assert "BLOCKED" not in types and types[-1] == "DEPLOYMENT_SUCCEEDED", types
        assert parameters(cloudformation(moto, role=tenant.role_arn()), "validated-stack")[0] == "CREATE_COMPLETE"
    finally:
        server.cleanup()


def test_the_data_directory_is_private(server):
    """Database, keys and mirrors are the server user's alone: directory 0700, files 0600."""
    mode = lambda p: os.stat(p).st_mode & 0o777
    assert mode(server.data_dir) == 0o700
    for name in ("gitsync.db", "master.key", "credentials"):
        path = os.path.join(server.data_dir, name)
        if os.path.exists(path):
            assert mode(path) == 0o600, (name, oct(mode(path)))
    assert os.path.exists(os.path.join(server.data_dir, "master.key"))
