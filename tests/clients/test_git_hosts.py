"""Commit statuses (`PublishDeploymentStatus`) posted to Git hosts, through the real binary: real
pushes to the test Git host (githost.py), which serves the repositories and checks every REST call
against the provider's published API description; stacks deployed to moto_server's CloudFormation;
configured with boto3.
"""
import time

import pytest
from botocore.exceptions import ClientError

from conftest import Server, error_code, error_message, make_tenant, moto  # noqa: F401  (moto: the module's moto server)
from githost import GitHost
from gitserver import Repo
from test_engine import TEMPLATE, deployment, wait_for

MOTO_KEYS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
# A deployment file gitsync refuses, with a reason longer than a status's description may be.
LONG_NAME = "Unknown" + "Parameter" * 20


def refused(queue):
    return deployment(queue, **{LONG_NAME: "x"})

# Where the test host mounts each provider's API (githost.MOUNTS).
API_ROOT = {"GitHub": "/github", "GitLab": "/gitlab/api/v4", "Bitbucket": "/bitbucket/2.0"}
# How the host files each provider's statuses.
HOST_KIND = {"GitHubEnterpriseServer": "ghes", "GitHub": "github", "GitLabSelfManaged": "gitlab",
             "GitLab": "gitlab", "Bitbucket": "bitbucket"}
# What each provider calls gitsync's pending, success and failure.
STATES = {"ghes": ("pending", "success", "failure"), "github": ("pending", "success", "failure"),
          "gitlab": ("running", "success", "failed"), "bitbucket": ("INPROGRESS", "SUCCESSFUL", "FAILED")}


@pytest.fixture(scope="module")
def host(tmp_path_factory):
    server = GitHost(str(tmp_path_factory.mktemp("git-host"))).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def deployer(moto, host):
    public = ",".join(f"{p}={host.url}{root}" for p, root in API_ROOT.items())
    clones = ",".join(f"{p}={host.url}" for p in API_ROOT)
    server = Server(["--poll-interval", "1s", "--lease-ttl", "5s", "--git-timeout", "10s",
                     "--cloudformation-endpoint", moto, "--api-base", public, "--git-base", clones],
                    env=MOTO_KEYS).start()
    yield server
    server.cleanup()


@pytest.fixture(autouse=True)
def contracts_kept(host):
    """Every call any test made was one the provider's API description allows."""
    yield
    assert host.violations == [], host.violations


class Hosted:
    """A tenant's connection to the test host as one provider, its repository link, and a stack."""

    def __init__(self, server, host, provider, repo, tmp_path, token=True, api_token=False):
        self.server, self.host, self.provider = server, host, provider
        tmp_path.mkdir(parents=True, exist_ok=True)
        self.kind = HOST_KIND[provider]
        self.tenant = make_tenant(server)
        self.cc = self.tenant.client("codeconnections")
        if provider in ("GitHubEnterpriseServer", "GitLabSelfManaged"):
            arn = self.cc.create_host(Name="test-host", ProviderEndpoint=host.url, ProviderType=provider)["HostArn"]
            self.connection = self.cc.create_connection(ConnectionName="c", HostArn=arn)["ConnectionArn"]
        else:
            self.connection = self.cc.create_connection(ConnectionName="c", ProviderType=provider)["ConnectionArn"]
        args = []
        if token:
            (tmp_path / "token").write_text(host.token + "\n")
            args += ["--token-file", str(tmp_path / "token")]
        if api_token:
            (tmp_path / "api-token").write_text(host.token + "\n")
            args += ["--api-token-file", str(tmp_path / "api-token")]
        server.cli("connections", "activate", self.connection, *args)
        self.owner, self.name = repo.split("/")
        self.repo = Repo(host.root, self.owner, self.name, str(tmp_path / "work"))
        self.link = self.cc.create_repository_link(ConnectionArn=self.connection, OwnerId=self.owner,
                                                   RepositoryName=self.name)["RepositoryLinkInfo"]["RepositoryLinkId"]

    def configure(self, stack, **extra):
        return self.cc.create_sync_configuration(
            Branch="main", ConfigFile="deploy/stack.yaml", RepositoryLinkId=self.link, ResourceName=stack,
            RoleArn=self.tenant.role_arn(), SyncType="CFN_STACK_SYNC", **extra)["SyncConfiguration"]

    def settled(self, stack, sha, status):
        def check():
            latest = self.cc.get_resource_sync_status(ResourceName=stack, SyncType="CFN_STACK_SYNC")["LatestSync"]
            return latest if latest["TargetRevision"]["Sha"] == sha and latest["Status"] == status else None
        return wait_for(check, what=f"{stack} {status} at {sha[:8]}")

    def statuses(self, sha, count, timeout=60):
        """The statuses the host holds for `sha`, once there are `count` of them."""
        return wait_for(lambda: (lambda s: s if len(s) >= count else None)(
            self.host.statuses_of(self.kind, f"{self.owner}/{self.name}", sha)), timeout=timeout,
            what=f"{count} commit statuses on {sha[:8]}")

    def calls(self):
        repo = f"{self.owner}/{self.name}"
        return [c for c in self.host.calls if repo in c.path or repo.replace("/", "%2F") in c.path]


def test_statuses_are_pending_then_success_or_failure_with_the_reason(deployer, host, tmp_path):
    hosted = Hosted(deployer, host, "GitHubEnterpriseServer", "octo/statuses", tmp_path)
    good = hosted.repo.commit({"deploy/stack.yaml": deployment("good-queue"), "infra/queue.yaml": TEMPLATE})
    config = hosted.configure("status-stack", PublishDeploymentStatus="ENABLED")
    assert config["PublishDeploymentStatus"] == "ENABLED"
    latest = hosted.settled("status-stack", good, "SUCCEEDED")
    assert latest["Events"][-1]["Event"] == "Stack CREATE_COMPLETE"
    pending, success, failure = STATES["ghes"]
    assert hosted.statuses(good, 2) == [
        {"state": pending, "context": "gitsync/status-stack", "description": "Syncing status-stack"},
        {"state": success, "context": "gitsync/status-stack", "description": "Stack CREATE_COMPLETE"},
    ]
    # Every call was GitHub's create-commit-status, on GHES's API path, with the connection's token.
    calls = hosted.calls()
    assert {c.operation for c in calls} == {"repos/create-commit-status"}, calls
    assert all(c.path == f"/repos/octo/statuses/statuses/{good}" for c in calls), calls

    # A commit gitsync refuses: failure, with the reason, shortened to GitHub's 140 characters.
    bad = hosted.repo.commit({"deploy/stack.yaml": refused("good-queue")})
    failed = hosted.settled("status-stack", bad, "FAILED")
    reason = failed["Events"][-1]["Event"]
    statuses = hosted.statuses(bad, 2)
    assert [s["state"] for s in statuses] == [pending, failure], statuses
    assert reason.startswith(f"parameters: unknown parameter '{LONG_NAME}'") and len(reason) > 140, reason
    assert len(statuses[1]["description"]) == 140 and statuses[1]["description"].endswith("…"), statuses
    assert reason.startswith(statuses[1]["description"][:-1]), (statuses, reason)

    # `gitsync status` says how the statuses went (each is marked posted once the host answered).
    summary = "Commit statuses (PublishDeploymentStatus ENABLED): 4 posted, 0 waiting, 0 given up"
    wait_for(lambda: summary in deployer.cli("status", "--resource-name", "status-stack", "--account-id",
                                             hosted.tenant.account_id).stdout, what=summary)


def test_no_statuses_when_the_switch_is_off(deployer, host, tmp_path):
    hosted = Hosted(deployer, host, "GitHubEnterpriseServer", "octo/quiet", tmp_path)
    sha = hosted.repo.commit({"deploy/stack.yaml": deployment("quiet-queue"), "infra/queue.yaml": TEMPLATE})
    hosted.configure("quiet-stack")
    hosted.settled("quiet-stack", sha, "SUCCEEDED")
    # Turned on later, it posts from the next attempt on.
    hosted.cc.update_sync_configuration(ResourceName="quiet-stack", SyncType="CFN_STACK_SYNC",
                                        PublishDeploymentStatus="ENABLED")
    later = hosted.repo.commit({"deploy/stack.yaml": deployment("quiet-queue", Visibility=45)})
    hosted.settled("quiet-stack", later, "SUCCEEDED")
    assert [s["state"] for s in hosted.statuses(later, 2)] == ["pending", "success"]
    assert hosted.host.statuses_of("ghes", "octo/quiet", sha) == []
    assert all(later in c.path for c in hosted.calls()), hosted.calls()


def test_a_host_that_errs_or_rate_limits_does_not_fail_the_sync(deployer, host, tmp_path):
    hosted = Hosted(deployer, host, "GitHubEnterpriseServer", "octo/flaky", tmp_path)
    before = len(host.calls)
    # The first call meets a server error, the second GitHub's rate limit (403, budget spent,
    # reset in 2 s); the statuses arrive after them, in order.
    host.fail_next(1, 500, body={"message": "Server Error"})
    host.fail_next(1, 403, headers={"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(int(time.time()) + 2)},
                   body={"message": "API rate limit exceeded"})
    sha = hosted.repo.commit({"deploy/stack.yaml": deployment("flaky-queue"), "infra/queue.yaml": TEMPLATE})
    hosted.configure("flaky-stack", PublishDeploymentStatus="ENABLED")
    latest = hosted.settled("flaky-stack", sha, "SUCCEEDED")
    assert not any("status" in e["Event"].lower() for e in latest["Events"]), latest["Events"]
    assert [s["state"] for s in hosted.statuses(sha, 2, timeout=90)] == ["pending", "success"]
    answered = [c.answered for c in host.calls[before:] if "octo/flaky" in c.path]
    assert answered[:2] == [500, 403] and answered[2:] == [201, 201], answered


def test_gitlab_self_managed_statuses_name_the_stack(deployer, host, tmp_path):
    hosted = Hosted(deployer, host, "GitLabSelfManaged", "group/infra", tmp_path)
    sha = hosted.repo.commit({"deploy/stack.yaml": deployment("gitlab-queue"), "infra/queue.yaml": TEMPLATE})
    hosted.configure("gitlab-stack", PublishDeploymentStatus="ENABLED")
    hosted.settled("gitlab-stack", sha, "SUCCEEDED")
    statuses = hosted.statuses(sha, 2)
    assert [(s["state"], s["context"]) for s in statuses] == [("running", "gitsync/gitlab-stack"),
                                                              ("success", "gitsync/gitlab-stack")]
    calls = hosted.calls()
    assert {c.operation for c in calls} == {"set-commit-status"}, calls
    # The project is its path, URL-encoded, below the host's /api/v4.
    assert all(c.path == f"/projects/group%2Finfra/statuses/{sha}" for c in calls), calls


@pytest.mark.parametrize("provider", ["GitHub", "GitLab", "Bitbucket"])
def test_public_providers_through_their_api_base(deployer, host, tmp_path, provider):
    """GitHub, GitLab and Bitbucket cloud, reached at `--api-base` and cloned from `--git-base`."""
    hosted = Hosted(deployer, host, provider, f"team/{provider.lower()}-stacks", tmp_path)
    stack = f"{provider.lower()}-stack"
    good = hosted.repo.commit({"deploy/stack.yaml": deployment(f"{provider.lower()}-queue"), "infra/queue.yaml": TEMPLATE})
    hosted.configure(stack, PublishDeploymentStatus="ENABLED")
    hosted.settled(stack, good, "SUCCEEDED")
    pending, success, failure = STATES[hosted.kind]
    assert [(s["state"], s["context"]) for s in hosted.statuses(good, 2)] == [
        (pending, f"gitsync/{stack}"), (success, f"gitsync/{stack}")]
    bad = hosted.repo.commit({"deploy/stack.yaml": refused(f"{provider.lower()}-queue")})
    hosted.settled(stack, bad, "FAILED")
    assert [s["state"] for s in hosted.statuses(bad, 2)] == [pending, failure]
    if provider == "Bitbucket":
        # Bitbucket links every status: to the commit.
        assert hosted.statuses(bad, 2)[1]["url"] == f"https://bitbucket.org/team/bitbucket-stacks/commits/{bad}"


def test_the_switch_is_refused_for_a_connection_that_cannot_call_its_hosts_api(deployer, host, tmp_path):
    # Activated without any token (as for file:// remotes): no token for the API either.
    hosted = Hosted(deployer, host, "GitHubEnterpriseServer", "octo/tokenless", tmp_path / "a", token=False)
    sha = hosted.repo.commit({"deploy/stack.yaml": deployment("tokenless-queue"), "infra/queue.yaml": TEMPLATE})
    with pytest.raises(ClientError) as refused:
        hosted.configure("tokenless-stack", PublishDeploymentStatus="ENABLED")
    assert error_code(refused) == "InvalidInputException"
    command = f"gitsync connections activate {hosted.connection} --api-token-file FILE"
    assert error_message(refused).startswith("PublishDeploymentStatus is ENABLED but ") and command in error_message(refused)
    # Without the switch it is accepted; turning it on later is refused the same way.
    hosted.configure("tokenless-stack")
    with pytest.raises(ClientError) as refused:
        hosted.cc.update_sync_configuration(ResourceName="tokenless-stack", SyncType="CFN_STACK_SYNC",
                                            PublishDeploymentStatus="ENABLED")
    assert command in error_message(refused)
    hosted.settled("tokenless-stack", sha, "SUCCEEDED")
    # An API token of its own makes it possible (Git needs none from this host).
    (tmp_path / "api-token").write_text(host.token)
    deployer.cli("connections", "activate", hosted.connection, "--api-token-file", str(tmp_path / "api-token"))
    hosted.cc.update_sync_configuration(ResourceName="tokenless-stack", SyncType="CFN_STACK_SYNC",
                                        PublishDeploymentStatus="ENABLED")
    later = hosted.repo.commit({"deploy/stack.yaml": deployment("tokenless-queue", Visibility=40)})
    hosted.settled("tokenless-stack", later, "SUCCEEDED")
    assert [s["state"] for s in hosted.statuses(later, 2)] == ["pending", "success"]
    assert hosted.host.statuses_of("ghes", "octo/tokenless", sha) == []

    # The legacy CodeStar Connections API refuses it the same way.
    legacy = Hosted(deployer, host, "GitHubEnterpriseServer", "octo/legacy", tmp_path / "b", token=False)
    with pytest.raises(ClientError) as refused:
        legacy.tenant.client("codestar-connections").create_sync_configuration(
            Branch="main", ConfigFile="deploy/stack.yaml", RepositoryLinkId=legacy.link, ResourceName="legacy-stack",
            RoleArn=legacy.tenant.role_arn(), SyncType="CFN_STACK_SYNC", PublishDeploymentStatus="ENABLED")
    assert "--api-token-file" in error_message(refused)


def test_a_wrong_token_is_retried_and_shown_and_never_fails_the_sync(deployer, host, tmp_path):
    """A token the host refuses (401) is a person's to fix: the status waits (and `gitsync status`
    says why) and goes out once the connection has a token that works."""
    hosted = Hosted(deployer, host, "GitHubEnterpriseServer", "octo/wrong-token", tmp_path, token=False)
    (tmp_path / "wrong").write_text("not-the-token")
    deployer.cli("connections", "activate", hosted.connection, "--api-token-file", str(tmp_path / "wrong"))
    sha = hosted.repo.commit({"deploy/stack.yaml": deployment("wrong-queue"), "infra/queue.yaml": TEMPLATE})
    hosted.configure("wrong-stack", PublishDeploymentStatus="ENABLED")
    hosted.settled("wrong-stack", sha, "SUCCEEDED")

    def shown():
        out = deployer.cli("status", "--resource-name", "wrong-stack", "--account-id", hosted.tenant.account_id).stdout
        return out if "last failure:" in out else None
    out = wait_for(shown, what="the refused status in gitsync status")
    assert "0 posted, 2 waiting, 0 given up" in out, out
    assert f"POST {host.url}/api/v3/repos/octo/wrong-token/statuses/{sha} answered 401 Unauthorized" in out, out
    assert "not-the-token" not in out
    (tmp_path / "right").write_text(host.token)
    deployer.cli("connections", "activate", hosted.connection, "--api-token-file", str(tmp_path / "right"))
    assert [s["state"] for s in hosted.statuses(sha, 2, timeout=90)] == ["pending", "success"]


def test_a_hostile_hosts_answer_is_read_only_so_far(deployer, host, tmp_path):
    """A host that answers an error with megabytes: gitsync reads at most 1 MiB of an answer and
    keeps 300 characters of it, and the status goes out once the host behaves."""
    hosted = Hosted(deployer, host, "GitHubEnterpriseServer", "octo/hostile", tmp_path)
    host.fail_next(1, 502, body={"message": "x" * 3_000_000})
    sha = hosted.repo.commit({"deploy/stack.yaml": deployment("hostile-queue"), "infra/queue.yaml": TEMPLATE})
    hosted.configure("hostile-stack", PublishDeploymentStatus="ENABLED")
    hosted.settled("hostile-stack", sha, "SUCCEEDED")

    def shown():
        out = deployer.cli("status", "--resource-name", "hostile-stack", "--account-id", hosted.tenant.account_id).stdout
        return [line for line in out.splitlines() if "last failure:" in line]
    (line,) = wait_for(shown, timeout=30, what="the failed call in gitsync status")
    assert "answered 502 Bad Gateway" in line and len(line) < 700, len(line)
    assert [s["state"] for s in hosted.statuses(sha, 2)] == ["pending", "success"]
