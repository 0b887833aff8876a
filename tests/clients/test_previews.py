"""Pull request previews (`PullRequestComment`) through the real binary: pull requests on the test
Git host (githost.py, every call checked against the provider's API description), heads pushed to
`refs/pull/<n>/head`, `refs/merge-requests/<iid>/head` or a source branch, change sets computed by
moto_server's CloudFormation and deleted, one comment per stack kept up to date.
"""
import hashlib
import hmac
import json
import os
import time
import urllib.request

import boto3
import pytest
from botocore.exceptions import ClientError

from conftest import Server, error_code, error_message, moto  # noqa: F401  (moto: the module's moto server)
from githost import GitHost
from gitserver import git
from test_engine import TEMPLATE, deployment, wait_for
from test_git_hosts import API_ROOT, MOTO_KEYS, Hosted

TOPIC = """  Topic:
    Type: AWS::SNS::Topic
"""
BUCKET = """  Bucket:
    Type: AWS::S3::Bucket
"""
# Where each provider keeps a pull request's head.
HEAD_REF = {"ghes": "refs/pull/{n}/head", "github": "refs/pull/{n}/head", "gitlab": "refs/merge-requests/{n}/head",
            "bitbucket": "refs/heads/feature-{n}"}


@pytest.fixture(scope="module")
def host(tmp_path_factory):
    server = GitHost(str(tmp_path_factory.mktemp("git-host"))).start()
    yield server
    server.stop()


def start_server(host, *extra, env=None):
    public = ",".join(f"{p}={host.url}{root}" for p, root in API_ROOT.items())
    clones = ",".join(f"{p}={host.url}" for p in API_ROOT)
    return Server(["--poll-interval", "1s", "--lease-ttl", "5s", "--git-timeout", "10s",
                   "--api-base", public, "--git-base", clones, *extra], env=env).start()


@pytest.fixture(scope="module")
def deployer(moto, host):
    server = start_server(host, "--cloudformation-endpoint", moto, env=MOTO_KEYS)
    yield server
    server.cleanup()


@pytest.fixture(autouse=True)
def contracts_kept(host):
    yield
    assert host.violations == [], host.violations


def cloudformation(moto, tenant):
    sts = boto3.client("sts", endpoint_url=moto, region_name="us-east-1", aws_access_key_id="testing",
                       aws_secret_access_key="testing")
    creds = sts.assume_role(RoleArn=tenant.role_arn(), RoleSessionName="test")["Credentials"]
    return boto3.client("cloudformation", endpoint_url=moto, region_name="us-east-1",
                        aws_access_key_id=creds["AccessKeyId"], aws_secret_access_key=creds["SecretAccessKey"],
                        aws_session_token=creds["SessionToken"])


def push_pull_request(hosted, number, files, base="main", fork=False):
    """Commits `files` on pull request `number`'s branch (from `base` the first time), pushes its
    head where the provider keeps it, and tells the host the pull request is open at it."""
    work, branch = hosted.repo.work, f"pr-{number}"
    existing = git(work, "branch", "--list", branch)
    git(work, "checkout", "-q", *(["-B", branch, base] if not existing else [branch]))
    for path, contents in files.items():
        full = os.path.join(work, path)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "w") as f:
            f.write(contents)
    git(work, "add", "-A")
    git(work, "commit", "-q", "--allow-empty", "-m", f"pull request {number}")
    ref = HEAD_REF[hosted.kind].format(n=number)
    git(work, "push", "-q", "-f", "origin", f"HEAD:{ref}")
    sha = git(work, "rev-parse", "HEAD")
    git(work, "checkout", "-q", "main")
    hosted.host.open_pull(hosted.kind, f"{hosted.owner}/{hosted.name}", number, base, sha, f"feature-{number}", fork=fork)
    return sha


def comments(hosted, number):
    return hosted.host.comments_of(hosted.kind, f"{hosted.owner}/{hosted.name}", number)


def comment_on(hosted, number, sha, timeout=60):
    """gitsync's one comment on the pull request, once it previews `sha`."""
    def check():
        found = comments(hosted, number)
        return found if found and sha[:12] in found[0]["body"] else None
    found = wait_for(check, timeout=timeout, what=f"a preview of {sha[:8]} on #{number}")
    assert len(found) == 1, found
    return found[0]


def status_of(server, hosted, stack):
    return server.cli("status", "--resource-name", stack, "--account-id", hosted.tenant.account_id).stdout


def test_a_pull_request_gets_one_comment_updated_in_place_and_nothing_is_executed(deployer, moto, host, tmp_path):
    hosted = Hosted(deployer, host, "GitHubEnterpriseServer", "octo/previews", tmp_path)
    main = hosted.repo.commit({"deploy/stack.yaml": deployment("preview-queue"), "infra/queue.yaml": TEMPLATE})
    hosted.configure("preview-stack", PullRequestComment="ENABLED")
    synced = hosted.settled("preview-stack", main, "SUCCEEDED")
    cfn = cloudformation(moto, hosted.tenant)
    resources = lambda: sorted(r["LogicalResourceId"] for r in cfn.list_stack_resources(StackName="preview-stack")["StackResourceSummaries"])  # noqa: E731
    assert resources() == ["Queue"]

    # A pull request that adds a topic, announced by a signed webhook.
    link_arn = hosted.cc.get_repository_link(RepositoryLinkId=hosted.link)["RepositoryLinkInfo"]["RepositoryLinkArn"]
    (tmp_path / "hook-secret").write_text("hook-secret")
    deployer.cli("webhooks", "set-secret", link_arn, "--secret-file", str(tmp_path / "hook-secret"))
    first = push_pull_request(hosted, 1, {"infra/queue.yaml": TEMPLATE + TOPIC})
    body = json.dumps({"action": "opened", "number": 1, "pull_request": {"number": 1, "base": {"ref": "main"}},
                       "repository": {"full_name": "octo/previews"}}).encode()
    signature = "sha256=" + hmac.new(b"hook-secret", body, hashlib.sha256).hexdigest()
    request = urllib.request.Request(f"{deployer.endpoint}/webhooks/github", data=body, method="POST", headers={
        "Content-Type": "application/json", "X-GitHub-Event": "pull_request", "X-Hub-Signature-256": signature})
    with urllib.request.urlopen(request) as answer:
        assert answer.status == 202
    comment = comment_on(hosted, 1, first)
    assert comment["body"].startswith("<!-- gitsync-preview:preview-stack -->\n### gitsync preview of stack `preview-stack`")
    assert "| Add | Topic | AWS::SNS::Topic |" in comment["body"], comment["body"]
    assert "never executed" in comment["body"]

    # Nothing was executed, no change set is left, and the stack's sync did not move.
    assert resources() == ["Queue"]
    # (moto keeps the executed change set of the sync's own deployment; AWS deletes it.)
    left = [c["ChangeSetName"] for c in cfn.list_change_sets(StackName="preview-stack")["Summaries"]]
    assert not any(name.startswith("gitsync-preview-") for name in left), left
    assert cfn.describe_stacks(StackName="preview-stack")["Stacks"][0]["StackStatus"] == "CREATE_COMPLETE"
    latest = hosted.cc.get_resource_sync_status(ResourceName="preview-stack", SyncType="CFN_STACK_SYNC")["LatestSync"]
    assert latest["StartedAt"] == synced["StartedAt"] and latest["Status"] == "SUCCEEDED"

    # A second push updates the same comment.
    second = push_pull_request(hosted, 1, {"infra/queue.yaml": TEMPLATE + TOPIC + BUCKET})
    comment = comment_on(hosted, 1, second)
    assert comment["updates"] >= 1 and "| Add | Bucket | AWS::S3::Bucket |" in comment["body"], comment

    # A pull request that changes nothing the stack watches gets no comment.
    readme = push_pull_request(hosted, 2, {"README.md": "docs"})
    wait_for(lambda: f"#2 at {readme[:12]}" in status_of(deployer, hosted, "preview-stack"), what="#2 looked at")
    out = status_of(deployer, hosted, "preview-stack")
    assert "Pull request previews (PullRequestComment ENABLED):" in out, out
    assert f"#2 at {readme[:12]} (open" in out and "nothing to preview" in out, out
    assert f"#1 at {second[:12]} (open" in out and "2 resource change(s)" in out, out
    assert comments(hosted, 2) == []

    # A closed pull request gets nothing more, even when its branch moves.
    host.close_pull("ghes", "octo/previews", 1)
    wait_for(lambda: f"#1 at {second[:12]} (closed" in status_of(deployer, hosted, "preview-stack"), what="#1 closed")
    push_pull_request(hosted, 1, {"infra/queue.yaml": TEMPLATE})
    host.close_pull("ghes", "octo/previews", 1)
    time.sleep(3)
    assert second[:12] in comments(hosted, 1)[0]["body"]
    assert resources() == ["Queue"]


def test_previewing_a_stack_that_does_not_exist_yet_leaves_no_stack_behind(deployer, moto, host, tmp_path):
    hosted = Hosted(deployer, host, "GitHubEnterpriseServer", "octo/new-stack", tmp_path)
    main = hosted.repo.commit({"README.md": "nothing yet"})
    hosted.configure("brand-new", PullRequestComment="ENABLED")
    hosted.settled("brand-new", main, "FAILED")  # no deployment file on main yet
    sha = push_pull_request(hosted, 5, {"deploy/stack.yaml": deployment("new-queue"), "infra/queue.yaml": TEMPLATE})
    comment = comment_on(hosted, 5, sha)
    assert "| Add | Queue | AWS::SQS::Queue |" in comment["body"], comment["body"]
    cfn = cloudformation(moto, hosted.tenant)
    # The CREATE change set's REVIEW_IN_PROGRESS stack was deleted with it.
    live = [s for s in cfn.list_stacks()["StackSummaries"] if s["StackName"] == "brand-new" and s["StackStatus"] != "DELETE_COMPLETE"]
    assert live == [], live


def test_merge_requests_on_gitlab_self_managed_and_pull_requests_on_bitbucket(deployer, host, tmp_path):
    for provider, repo in (("GitLabSelfManaged", "group/mr-previews"), ("Bitbucket", "team/bb-previews")):
        hosted = Hosted(deployer, host, provider, repo, tmp_path / provider)
        stack = f"{hosted.kind}-preview"
        main = hosted.repo.commit({"deploy/stack.yaml": deployment(f"{hosted.kind}-pq"), "infra/queue.yaml": TEMPLATE})
        hosted.configure(stack, PullRequestComment="ENABLED")
        hosted.settled(stack, main, "SUCCEEDED")
        sha = push_pull_request(hosted, 3, {"infra/queue.yaml": TEMPLATE + TOPIC})
        comment = comment_on(hosted, 3, sha)
        assert comment["body"].startswith(f"<!-- gitsync-preview:{stack} -->"), comment
        assert "| Add | Topic | AWS::SNS::Topic |" in comment["body"], comment["body"]


def test_pull_requests_from_forks_are_previewed_only_when_the_owner_allows_it(deployer, host, tmp_path):
    hosted = Hosted(deployer, host, "GitHubEnterpriseServer", "octo/forked", tmp_path)
    main = hosted.repo.commit({"deploy/stack.yaml": deployment("fork-queue"), "infra/queue.yaml": TEMPLATE})
    hosted.configure("fork-stack", PullRequestComment="ENABLED")
    hosted.settled("fork-stack", main, "SUCCEEDED")
    first = push_pull_request(hosted, 9, {"infra/queue.yaml": TEMPLATE + TOPIC}, fork=True)
    wait_for(lambda: f"#9 at {first[:12]}" in status_of(deployer, hosted, "fork-stack"), what="#9 looked at")
    assert "comes from a fork" in status_of(deployer, hosted, "fork-stack")
    assert comments(hosted, 9) == []
    out = deployer.cli("previews", "forks", "--resource-name", "fork-stack", "--allow",
                       "--account-id", hosted.tenant.account_id).stdout
    assert "fork-stack previews pull requests from forks" in out
    second = push_pull_request(hosted, 9, {"infra/queue.yaml": TEMPLATE + TOPIC + BUCKET}, fork=True)
    assert "| Add | Bucket |" in comment_on(hosted, 9, second)["body"]


def test_the_switch_is_refused_for_a_connection_that_cannot_call_its_hosts_api(deployer, host, tmp_path):
    hosted = Hosted(deployer, host, "GitHubEnterpriseServer", "octo/no-comments", tmp_path, token=False)
    with pytest.raises(ClientError) as refused:
        hosted.configure("no-comments", PullRequestComment="ENABLED")
    assert error_code(refused) == "InvalidInputException"
    assert error_message(refused).startswith("PullRequestComment is ENABLED but connection ")
    assert "--api-token-file FILE" in error_message(refused)


def test_without_cloudformation_the_comment_shows_the_validation(host, tmp_path):
    server = start_server(host)
    try:
        hosted = Hosted(server, host, "GitHubEnterpriseServer", "octo/validated", tmp_path)
        main = hosted.repo.commit({"deploy/stack.yaml": deployment("v-queue"), "infra/queue.yaml": TEMPLATE})
        hosted.configure("validated-stack", PullRequestComment="ENABLED")
        hosted.settled("validated-stack", main, "SUCCEEDED")
        good = push_pull_request(hosted, 4, {"deploy/stack.yaml": deployment("v-queue", Visibility=90)})
        body = comment_on(hosted, 4, good)["body"]
        assert "is valid" in body and "no CloudFormation endpoint is configured" in body, body
        bad = push_pull_request(hosted, 4, {"deploy/stack.yaml": deployment("v-queue", Nope=1)})
        body = comment_on(hosted, 4, bad)["body"]
        assert "cannot be deployed as it is" in body and "unknown parameter 'Nope'" in body, body
    finally:
        server.cleanup()
