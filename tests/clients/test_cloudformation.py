"""CloudFormation stacks deployed for real: gitsync drives moto_server (a CloudFormation-compatible
server from PyPI's moto[server]) through change sets, with real pushes to a real Git server.

Tenants made by make_tenant are untrusted: their deployments run as their sync configuration's
role (in their own account), assumed through moto's STS, and moto files the stacks under that
account, so tests read them with the role's credentials (`cloudformation(moto, role=...)`).

What moto cannot show (rollbacks of a failed resource, drift) is not tested here; see docs/testing.md.
"""
import os
import subprocess
import time

import boto3
import pytest

from conftest import SEED, Server, make_tenant, moto  # noqa: F401  (moto: the module's moto server)
from gitserver import GitHttpServer, Repo
from test_engine import TEMPLATE, Stack, deployment, wait_for

MOTO_KEYS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


@pytest.fixture(scope="module")
def deployer(moto):
    server = Server(["--poll-interval", "1s", "--lease-ttl", "5s", "--git-timeout", "10s", "--cloudformation-endpoint", moto],
                    env=MOTO_KEYS).start()
    yield server
    server.cleanup()


@pytest.fixture(scope="module")
def git_http(tmp_path_factory):
    server = GitHttpServer(str(tmp_path_factory.mktemp("git-root"))).start()
    yield server
    server.stop()


def cloudformation(moto, region="us-east-1", role=None):
    """A CloudFormation client on moto: moto's default account, or the account of `role` (its
    credentials from moto's STS, as gitsync gets them)."""
    if role is None:
        return boto3.client("cloudformation", endpoint_url=moto, region_name=region, aws_access_key_id="testing",
                            aws_secret_access_key="testing")
    sts = boto3.client("sts", endpoint_url=moto, region_name=region, aws_access_key_id="testing", aws_secret_access_key="testing")
    creds = sts.assume_role(RoleArn=role, RoleSessionName="gitsync-test")["Credentials"]
    return boto3.client("cloudformation", endpoint_url=moto, region_name=region, aws_access_key_id=creds["AccessKeyId"],
                        aws_secret_access_key=creds["SecretAccessKey"], aws_session_token=creds["SessionToken"])


def parameters(cfn, stack):
    (described,) = cfn.describe_stacks(StackName=stack)["Stacks"]
    return described["StackStatus"], {p["ParameterKey"]: p["ParameterValue"] for p in described.get("Parameters", [])}


def test_push_creates_then_updates_and_unchanged_files_make_no_change_set(deployer, moto, git_http, tmp_path):
    repo = Repo(git_http.root, "octo", "stacks", str(tmp_path / "work"))
    first = repo.commit({"deploy/stack.yaml": deployment("orders"), "infra/queue.yaml": TEMPLATE})
    tenant = make_tenant(deployer)
    stack = Stack(deployer, tenant, git_http.url, "octo", "stacks", tmp_path)
    stack.configure("orders-stack", TriggerResourceUpdateOn="ANY_CHANGE")
    s = stack.settled("orders-stack", first)
    types = [e["Type"] for e in s["LatestSync"]["Events"]]
    assert types[0] == "SYNC_STARTED" and types[1] == "DEPLOYMENT_STARTED" and types[-1] == "DEPLOYMENT_SUCCEEDED", types
    assert "CREATE stack orders-stack" in s["LatestSync"]["Events"][1]["Event"]
    assert s["LatestSync"]["Events"][1]["ExternalId"].startswith("arn:aws:cloudformation:us-east-1:")
    assert s["LatestSync"]["Events"][-1]["Event"] == "Stack CREATE_COMPLETE"
    # The stack's events are copied (moto reports the stack's own events, not its resources').
    progress = [e["Event"] for e in s["LatestSync"]["Events"] if e["Type"] == "DEPLOYMENT_PROGRESS"]
    assert progress[-1] == "AWS::CloudFormation::Stack orders-stack CREATE_COMPLETE", progress
    cfn = cloudformation(moto, role=tenant.role_arn())
    assert parameters(cfn, "orders-stack") == ("CREATE_COMPLETE", {"QueueName": "orders", "Visibility": "30"})

    # A parameter change updates the stack.
    second = repo.commit({"deploy/stack.yaml": deployment("orders", Visibility=60)})
    s = stack.settled("orders-stack", second)
    assert "UPDATE stack orders-stack" in s["LatestSync"]["Events"][1]["Event"]
    assert s["LatestSync"]["Events"][-1]["Event"] == "Stack UPDATE_COMPLETE"
    assert parameters(cfn, "orders-stack") == ("UPDATE_COMPLETE", {"QueueName": "orders", "Visibility": "60"})
    # Only the events the update caused are copied, not the creation's seconds before.
    progress = [e["Event"] for e in s["LatestSync"]["Events"] if e["Type"] == "DEPLOYMENT_PROGRESS"]
    assert progress and not any("CREATE_" in e for e in progress), progress

    # An unchanged deployment file (ANY_CHANGE syncs the README commit) makes no change set.
    third = repo.commit({"README.md": "docs"})
    s = stack.settled("orders-stack", third)
    last = s["LatestSync"]["Events"][-1]
    assert last["Type"] == "NO_CHANGES" and last["Event"] == f"The stack already matches commit {third}"
    # No change set was made for it: the stack's template, parameters and tags already matched.
    names = [c["ChangeSetName"] for c in cfn.list_change_sets(StackName="orders-stack")["Summaries"]]
    assert not any(third[:12] in n for n in names), names
    assert "ExternalId" not in last
    assert parameters(cfn, "orders-stack")[0] == "UPDATE_COMPLETE"


def test_a_deployment_failing_three_times_at_one_commit_blocks_until_resolved(deployer, moto, git_http, tmp_path):
    """The repeated-failures blocker counts deployments that ran and failed at one desired commit:
    the first failure and two `gitsync sync` retries of the same commit raise it; then sync now
    is refused naming UpdateSyncBlocker, and a fix waits for a person."""
    repo = Repo(git_http.root, "octo", "rejected-thrice", str(tmp_path / "work"))
    bad_template = TEMPLATE.replace("VisibilityTimeout: !Ref Visibility", "VisibilityTimeout: !GetAtt Missing.Arn")
    sha = repo.commit({"deploy/stack.yaml": deployment("thrice"), "infra/queue.yaml": bad_template})
    tenant = make_tenant(deployer)
    stack = Stack(deployer, tenant, git_http.url, "octo", "rejected-thrice", tmp_path)
    stack.configure("thrice-stack")
    sync_now = lambda: deployer.cli("sync", "--resource-name", "thrice-stack", "--account-id", tenant.account_id, check=False)
    started = []
    for attempt in range(3):
        def failed_again():
            s = stack.status("thrice-stack")
            latest = s["LatestSync"]
            fresh = latest["StartedAt"] not in started and latest["TargetRevision"]["Sha"] == sha
            return latest if fresh and latest["Status"] == "FAILED" else None
        latest = wait_for(failed_again, what=f"failed deployment {attempt + 1}")
        started.append(latest["StartedAt"])
        types = [e["Type"] for e in latest["Events"]]
        assert "DEPLOYMENT_FAILED" in types, types
        if attempt < 2:
            assert "BLOCKED" not in types, types
            result = sync_now()
            assert result.returncode == 0 and "retry its latest commit" in result.stdout, result.stderr
    assert latest["Events"][-1]["Type"] == "BLOCKED" and "3 deployments of stack thrice-stack" in latest["Events"][-1]["Event"]
    (blocker,) = stack.cc.get_sync_blocker_summary(ResourceName="thrice-stack", SyncType="CFN_STACK_SYNC")["SyncBlockerSummary"]["LatestBlockers"]
    assert {"Key": "FailedAttempts", "Value": "3"} in blocker["Contexts"] and {"Key": "Commit", "Value": sha} in blocker["Contexts"]
    refused = sync_now()
    assert refused.returncode != 0 and "update-sync-blocker" in refused.stderr, refused.stderr
    assert f"--id {blocker['Id']}" in refused.stderr, refused.stderr
    # `gitsync status` leads with the blocker: it is why nothing syncs.
    out = deployer.cli("status", "--resource-name", "thrice-stack", "--account-id", tenant.account_id).stdout.splitlines()
    assert out[1].startswith(f"Blocker {blocker['Id']} ACTIVE: 3 deployments of stack thrice-stack"), out
    # A fix moves the desired state but waits for a person; resolving the blocker deploys it.
    fixed = repo.commit({"infra/queue.yaml": TEMPLATE})
    wait_for(lambda: stack.status("thrice-stack")["DesiredState"]["Sha"] == fixed, what="desired state moves while blocked")
    time.sleep(2)
    assert stack.status("thrice-stack")["LatestSync"]["TargetRevision"]["Sha"] == sha
    stack.cc.update_sync_blocker(Id=blocker["Id"], SyncType="CFN_STACK_SYNC", ResourceName="thrice-stack",
                                 ResolvedReason="template fixed")
    s = stack.settled("thrice-stack", fixed)
    events = s["LatestSync"]["Events"]
    assert events[-1]["Type"] == "DEPLOYMENT_SUCCEEDED", events
    # The refused change sets left the stack in REVIEW_IN_PROGRESS (no resources): it is deleted
    # and created afresh, and the attempt says so.
    assert any(e["Type"] == "DEPLOYMENT_PROGRESS" and "left in REVIEW_IN_PROGRESS" in e["Event"] for e in events), events


def test_sync_now_checks_a_branch_at_once(moto, git_http, tmp_path):
    """With polling once an hour, `gitsync sync --repository-link-id … --branch main` makes the
    new commit sync within seconds."""
    server = Server(["--poll-interval", "1h", "--lease-ttl", "5s", "--validate-only"]).start()
    try:
        repo = Repo(git_http.root, "octo", "sync-now", str(tmp_path / "work"))
        first = repo.commit({"deploy/stack.yaml": deployment("now"), "infra/queue.yaml": TEMPLATE})
        tenant = make_tenant(server)
        stack = Stack(server, tenant, git_http.url, "octo", "sync-now", tmp_path)
        stack.configure("now-stack")
        stack.settled("now-stack", first)
        second = repo.commit({"deploy/stack.yaml": deployment("now", Visibility=60)})
        result = server.cli("sync", "--repository-link-id", stack.link_id, "--branch", "main", "--account-id", tenant.account_id)
        assert "will be checked now" in result.stdout
        stack.settled("now-stack", second)
        missing = server.cli("sync", "--resource-name", "nope", "--account-id", tenant.account_id, check=False)
        assert missing.returncode != 0
    finally:
        server.cleanup()


def test_a_template_moto_rejects_fails_with_the_reason(deployer, moto, git_http, tmp_path):
    repo = Repo(git_http.root, "octo", "rejected", str(tmp_path / "work"))
    bad_template = TEMPLATE.replace("VisibilityTimeout: !Ref Visibility", "VisibilityTimeout: !GetAtt Missing.Arn")
    sha = repo.commit({"deploy/stack.yaml": deployment("rejected"), "infra/queue.yaml": bad_template})
    stack = Stack(deployer, make_tenant(deployer), git_http.url, "octo", "rejected", tmp_path)
    stack.configure("rejected-stack")
    def ended():
        latest = stack.status("rejected-stack")["LatestSync"]
        return latest if latest["TargetRevision"]["Sha"] == sha and latest["Status"] in ("SUCCEEDED", "FAILED") else None
    latest = wait_for(ended, what="the rejected stack's attempt")
    assert latest["Status"] == "FAILED", latest["Events"]
    last = latest["Events"][-1]
    assert last["Type"] == "DEPLOYMENT_FAILED", latest["Events"]
    assert last["Event"] == ("ExecuteChangeSet: ValidationError: Template error: instance of Fn::GetAtt references "
                             "undefined resource Missing"), last
    # Deterministic: not retried at the same commit.
    time.sleep(2)
    assert stack.status("rejected-stack")["LatestSync"]["StartedAt"] == latest["StartedAt"]


def test_stacks_live_in_the_tenants_region(deployer, moto, git_http, tmp_path):
    repo = Repo(git_http.root, "octo", "regional", str(tmp_path / "work"))
    sha = repo.commit({"deploy/stack.yaml": deployment("regional"), "infra/queue.yaml": TEMPLATE})
    tenant = make_tenant(deployer, region="eu-west-1")
    stack = Stack(deployer, tenant, git_http.url, "octo", "regional", tmp_path)
    stack.configure("regional-stack")
    stack.settled("regional-stack", sha)
    assert parameters(cloudformation(moto, "eu-west-1", role=tenant.role_arn()), "regional-stack")[0] == "CREATE_COMPLETE"
    assert "regional-stack" not in [x["StackName"] for x in cloudformation(moto, role=tenant.role_arn()).describe_stacks()["Stacks"]]


def test_a_stack_deleted_behind_gitsyncs_back_raises_a_blocker(deployer, moto, git_http, tmp_path):
    repo = Repo(git_http.root, "octo", "doomed", str(tmp_path / "work"))
    first = repo.commit({"deploy/stack.yaml": deployment("doomed"), "infra/queue.yaml": TEMPLATE})
    tenant = make_tenant(deployer)
    stack = Stack(deployer, tenant, git_http.url, "octo", "doomed", tmp_path)
    stack.configure("doomed-stack")
    stack.settled("doomed-stack", first)
    cfn = cloudformation(moto, role=tenant.role_arn())
    cfn.delete_stack(StackName="doomed-stack")

    second = repo.commit({"deploy/stack.yaml": deployment("doomed", Visibility=90)})
    s = stack.settled("doomed-stack", second, status="FAILED")
    events = s["LatestSync"]["Events"]
    assert events[-1]["Type"] == "BLOCKED", events
    assert events[-1]["Event"].startswith(f"Sync blocked: Stack doomed-stack was deleted outside gitsync (last deployed from commit {first})")
    summary = stack.cc.get_sync_blocker_summary(ResourceName="doomed-stack", SyncType="CFN_STACK_SYNC")["SyncBlockerSummary"]
    (blocker,) = summary["LatestBlockers"]
    assert blocker["Status"] == "ACTIVE" and blocker["Type"] == "AUTOMATED" and blocker["Id"] == events[-1]["ExternalId"]
    contexts = {c["Key"]: c["Value"] for c in blocker["Contexts"]}
    assert contexts == {"StackName": "doomed-stack", "StackStatus": "DOES_NOT_EXIST", "LastDeployedCommit": first, "Commit": second}
    # The legacy API sees the same blocker.
    legacy = tenant.client("codestar-connections").get_sync_blocker_summary(ResourceName="doomed-stack", SyncType="CFN_STACK_SYNC")
    assert legacy["SyncBlockerSummary"]["LatestBlockers"][0]["Id"] == blocker["Id"]
    # The Rust SDK reads it over Smithy RPC v2 CBOR.
    rust = os.path.join(os.path.dirname(SEED), "sync_blocker_summary")
    result = subprocess.run([rust, "doomed-stack"], capture_output=True, text=True, env=tenant.env(), timeout=120)
    assert result.returncode == 0, result.stderr
    import json
    rs = json.loads(result.stdout)
    assert rs["resourceName"] == "doomed-stack"
    assert rs["latestBlockers"][0]["id"] == blocker["Id"] and rs["latestBlockers"][0]["status"] == "ACTIVE"
    assert ["LastDeployedCommit", first] in rs["latestBlockers"][0]["contexts"]
    # While blocked nothing is attempted, even for a new commit.
    third = repo.commit({"deploy/stack.yaml": deployment("doomed", Visibility=120)})
    wait_for(lambda: stack.status("doomed-stack")["DesiredState"]["Sha"] == third, what="desired state moves")
    time.sleep(1.5)
    assert stack.status("doomed-stack")["LatestSync"]["TargetRevision"]["Sha"] == second

    # Resolving retries the latest commit, and creates the stack again.
    resolved = stack.cc.update_sync_blocker(Id=blocker["Id"], ResolvedReason="recreate it", ResourceName="doomed-stack",
                                            SyncType="CFN_STACK_SYNC")
    assert resolved["SyncBlocker"]["Status"] == "RESOLVED"
    s = stack.settled("doomed-stack", third)
    assert "CREATE stack doomed-stack" in s["LatestSync"]["Events"][1]["Event"]
    assert parameters(cfn, "doomed-stack") == ("CREATE_COMPLETE", {"QueueName": "doomed", "Visibility": "120"})
    # The stack is guarded again: the next commit updates it.
    fourth = repo.commit({"deploy/stack.yaml": deployment("doomed", Visibility=150)})
    stack.settled("doomed-stack", fourth)
    assert parameters(cfn, "doomed-stack")[1]["Visibility"] == "150"


def test_a_stack_changed_outside_gitsync_raises_a_blocker(deployer, moto, git_http, tmp_path):
    repo = Repo(git_http.root, "octo", "drifted", str(tmp_path / "work"))
    first = repo.commit({"deploy/stack.yaml": deployment("drifted"), "infra/queue.yaml": TEMPLATE})
    tenant = make_tenant(deployer)
    stack = Stack(deployer, tenant, git_http.url, "octo", "drifted", tmp_path)
    stack.configure("drifted-stack")
    stack.settled("drifted-stack", first)
    cfn = cloudformation(moto, role=tenant.role_arn())
    # Someone changes a parameter by hand.
    cfn.update_stack(StackName="drifted-stack", TemplateBody=TEMPLATE,
                     Parameters=[{"ParameterKey": "QueueName", "ParameterValue": "drifted"},
                                 {"ParameterKey": "Visibility", "ParameterValue": "999"}])
    assert parameters(cfn, "drifted-stack")[1]["Visibility"] == "999"

    second = repo.commit({"deploy/stack.yaml": deployment("drifted", Visibility=60)})
    s = stack.settled("drifted-stack", second, status="FAILED")
    assert s["LatestSync"]["Events"][-1]["Type"] == "BLOCKED", s["LatestSync"]["Events"]
    (blocker,) = stack.cc.get_sync_blocker_summary(ResourceName="drifted-stack", SyncType="CFN_STACK_SYNC")["SyncBlockerSummary"]["LatestBlockers"]
    assert blocker["CreatedReason"].startswith(f"Stack drifted-stack was changed outside gitsync since commit {first} (parameter Visibility differ)")
    contexts = {c["Key"]: c["Value"] for c in blocker["Contexts"]}
    assert contexts["ChangedOutsideGitsync"] == "parameter Visibility" and contexts["LastDeployedCommit"] == first
    assert parameters(cfn, "drifted-stack")[1]["Visibility"] == "999"  # the manual change is kept

    # Resolving deploys the latest commit over the manual change.
    stack.cc.update_sync_blocker(Id=blocker["Id"], ResolvedReason="Git wins", ResourceName="drifted-stack", SyncType="CFN_STACK_SYNC")
    stack.settled("drifted-stack", second)
    assert parameters(cfn, "drifted-stack")[1]["Visibility"] == "60"


def test_an_update_that_rolls_back_fails_with_the_failed_resource(git_http, tmp_path):
    """moto cannot fail a resource and roll back; an HTTP-level CloudFormation double can."""
    from cfn_double import RollbackDouble
    reason = "Resource handler returned message: \"Invalid value for VisibilityTimeout\" (HandlerErrorCode: InvalidRequest)"
    double = RollbackDouble("rolled-stack", {"QueueName": "rolled", "Visibility": "30"}, reason)
    server = Server(["--poll-interval", "1s", "--cloudformation-endpoint", double.url], env=MOTO_KEYS).start()
    try:
        repo = Repo(git_http.root, "octo", "rolled", str(tmp_path / "work"))
        flags = "include-nested-stacks: true\nimport-existing-resources: true\n"
        sha = repo.commit({"deploy/stack.yaml": deployment("rolled", Visibility=99999) + flags, "infra/queue.yaml": TEMPLATE})
        tenant = make_tenant(server)
        # Trusted: it deploys with the server's own credentials (the double answers no STS), and
        # the double's stack carries gitsync's ownership tags for this tenant.
        server.cli("accounts", "set", tenant.account_id, "--trusted")
        double.tags = {"gitsync:account": tenant.account_id, "gitsync:sync-configuration": "rolled-stack"}
        stack = Stack(server, tenant, git_http.url, "octo", "rolled", tmp_path)
        double.settle_after = 3  # about 6 s in UPDATE_IN_PROGRESS
        stack.configure("rolled-stack")
        # While CloudFormation works, the attempt already shows the change set it started.
        running = wait_for(lambda: (lambda l: l if l["Status"] == "IN_PROGRESS" and any(
            e["Type"] == "DEPLOYMENT_STARTED" for e in l["Events"]) else None)(stack.status("rolled-stack")["LatestSync"]),
            what="DEPLOYMENT_STARTED recorded while the deployment runs")
        assert ":changeSet/" in next(e["ExternalId"] for e in running["Events"] if e["Type"] == "DEPLOYMENT_STARTED")
        s = stack.settled("rolled-stack", sha, status="FAILED")
        events = [(e["Type"], e["Event"]) for e in s["LatestSync"]["Events"]]
        assert events[-1] == ("DEPLOYMENT_FAILED", f"Stack UPDATE_ROLLBACK_COMPLETE: AWS::SQS::Queue Queue: {reason}"), events
        assert ("DEPLOYMENT_PROGRESS", f"AWS::SQS::Queue Queue UPDATE_FAILED: {reason}") in events
        # Oldest first, all of this deployment's and none of the stack's creation just before it.
        assert [t for t, _ in events if t == "DEPLOYMENT_PROGRESS"] == ["DEPLOYMENT_PROGRESS"] * 6, events
        assert not any("CREATE_" in e for _, e in events), events
        assert events[2][1].startswith("AWS::CloudFormation::Stack rolled-stack UPDATE_IN_PROGRESS")
        # What gitsync asked CloudFormation for.
        create = next(r for r in double.requests if r.get("Action") == "CreateChangeSet")
        assert create["ChangeSetType"] == "UPDATE" and create["StackName"] == "rolled-stack"
        assert {create[f"Capabilities.member.{i}"] for i in (1, 2, 3)} == {"CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"}
        sent = {create[f"Parameters.member.{i}.ParameterKey"]: create[f"Parameters.member.{i}.ParameterValue"] for i in (1, 2)}
        assert sent == {"QueueName": "rolled", "Visibility": "99999"}
        # The deployment file's flags are passed on, not only accepted.
        assert create["IncludeNestedStacks"] == "true" and create["ImportExistingResources"] == "true", create
        # One DescribeStacks serves both the existence check and the comparison with the plan.
        assert double.actions()[:4] == ["DescribeStacks", "GetTemplate", "CreateChangeSet", "DescribeChangeSet"]
        assert "ExecuteChangeSet" in double.actions() and double.actions()[-1] == "DescribeStackEvents"
        # `gitsync status` tells the same story: the change set, the failed resource and why.
        out = server.cli("status", "--resource-name", "rolled-stack", "--account-id", stack.tenant.account_id).stdout
        assert "DEPLOYMENT_STARTED" in out and ":changeSet/rolled-stack/" in out
        assert f"AWS::SQS::Queue Queue UPDATE_FAILED: {reason}" in out
        # A failed deployment is deterministic: no retry at the same commit.
        attempts = double.actions().count("ExecuteChangeSet")
        time.sleep(2)
        assert double.actions().count("ExecuteChangeSet") == attempts == 1
    finally:
        server.cleanup()
        double.stop()


@pytest.mark.parametrize("killed", ["while the change set runs", "before the change set was executed"])
def test_a_worker_that_takes_over_a_deployment_follows_its_change_set_instead_of_deploying_again(git_http, tmp_path, killed):
    """The first server is killed after it created its change set, either while CloudFormation
    runs it or before it was executed; the server that takes the attempt over follows that change
    set to its end (executing it in the second case; here the update rolls back) and reports it,
    instead of deploying the commit a second time."""
    import os
    import signal
    from cfn_double import RollbackDouble
    reason = "Resource handler returned message: \"Invalid value for VisibilityTimeout\" (HandlerErrorCode: InvalidRequest)"
    double = RollbackDouble("resumed-stack", {"QueueName": "resumed", "Visibility": "30"}, reason)
    double.settle_after = 6  # about 12 s in UPDATE_IN_PROGRESS
    executed_first = killed == "while the change set runs"
    if not executed_first:
        double.computing_polls = 10  # the first server waits for the change set to be computed
    args = ["--poll-interval", "1s", "--lease-ttl", "2s", "--cloudformation-endpoint", double.url]
    first = Server([*args, "--replica-id", "first"], env=MOTO_KEYS).start()
    second = None
    try:
        name = "resumed-running" if executed_first else "resumed-created"
        repo = Repo(git_http.root, "octo", name, str(tmp_path / "work"))
        sha = repo.commit({"deploy/stack.yaml": deployment("resumed", Visibility=99999), "infra/queue.yaml": TEMPLATE})
        tenant = make_tenant(first)
        first.cli("accounts", "set", tenant.account_id, "--trusted")
        double.tags = {"gitsync:account": tenant.account_id, "gitsync:sync-configuration": "resumed-stack"}
        stack = Stack(first, tenant, git_http.url, "octo", name, tmp_path)
        stack.configure("resumed-stack")
        if executed_first:
            wait_for(lambda: double.executed, what="the change set executed")
        else:
            wait_for(lambda: "DescribeChangeSet" in double.actions(), what="the change set created")
        first.process.send_signal(signal.SIGKILL)
        first.process.wait()
        second = Server([*args, "--replica-id", "second"], database_url=first.database_url, env=MOTO_KEYS)
        second.data_dir = first.data_dir
        second.log_path = os.path.join(first.data_dir, "server2.log")
        second.start()
        stack.tenant.server = second
        stack.cc = stack.tenant.client("codeconnections")
        s = stack.settled("resumed-stack", sha, status="FAILED")
        events = [(e["Type"], e["Event"]) for e in s["LatestSync"]["Events"]]
        assert events[0] == ("TAKEN_OVER", "The previous worker stopped; resumed by second"), events
        following = [e for t, e in events if t == "DEPLOYMENT_PROGRESS" and e.startswith("Following change set")]
        done = " and executed" if executed_first else "; executing it"
        assert following == [f"Following change set {double.change_set_name}, which the previous worker created for "
                             f"commit {sha}{done}"], events
        assert events[-1] == ("DEPLOYMENT_FAILED", f"Stack UPDATE_ROLLBACK_COMPLETE: AWS::SQS::Queue Queue: {reason}"), events
        assert ("DEPLOYMENT_PROGRESS", f"AWS::SQS::Queue Queue UPDATE_FAILED: {reason}") in events
        # One deployment of the commit in all.
        time.sleep(2)
        assert double.actions().count("CreateChangeSet") == 1 and double.actions().count("ExecuteChangeSet") == 1, double.actions()
    finally:
        if second:
            second.stop()
        first.cleanup()
        double.stop()


def test_a_parameter_value_the_template_rejects_fails_before_cloudformation_is_called(git_http, tmp_path):
    """`Visibility` is a Number in the template: a deployment file giving `soon` fails at once,
    naming the parameter, and CloudFormation is never asked."""
    from cfn_double import RollbackDouble
    double = RollbackDouble("typed-stack", {"QueueName": "typed", "Visibility": "30"}, "")
    server = Server(["--poll-interval", "1s", "--cloudformation-endpoint", double.url], env=MOTO_KEYS).start()
    try:
        repo = Repo(git_http.root, "octo", "typed", str(tmp_path / "work"))
        sha = repo.commit({"deploy/stack.yaml": deployment("typed", Visibility="soon"), "infra/queue.yaml": TEMPLATE})
        tenant = make_tenant(server)
        server.cli("accounts", "set", tenant.account_id, "--trusted")
        stack = Stack(server, tenant, git_http.url, "octo", "typed", tmp_path)
        stack.configure("typed-stack")
        s = stack.settled("typed-stack", sha, status="FAILED")
        failed = [e["Event"] for e in s["LatestSync"]["Events"] if e["Type"] == "VALIDATION_FAILED"]
        assert failed == ["parameters: 'Visibility' must be a number (Number parameter; got 'soon')"], s["LatestSync"]["Events"]
        assert double.actions() == []
    finally:
        server.cleanup()
        double.stop()


def test_the_start_up_log_names_the_credentials_and_a_server_without_any_says_so(deployer, moto, git_http, tmp_path):
    """The deployer with keys in its environment names them at start-up. A server given an
    endpoint but no credentials at all warns at start-up and fails each deployment naming the
    missing credentials (not as a dispatch failure of the first CloudFormation call)."""
    log = open(deployer.log_path).read()
    assert "stack deployer" in log and "credentials=environment (AWS_ACCESS_KEY_ID), access key" in log, log[-2000:]
    nothing = tmp_path / "none"
    nothing.mkdir()
    env = {"HOME": str(nothing), "AWS_CONFIG_FILE": str(nothing / "config"), "AWS_SHARED_CREDENTIALS_FILE": str(nothing / "credentials"),
           "AWS_EC2_METADATA_DISABLED": "true"}
    server = Server(["--poll-interval", "1s", "--cloudformation-endpoint", moto], env=env).start()
    try:
        log = open(server.log_path).read()
        assert "stack deployer has no credentials; every deployment fails until it has" in log, log[-2000:]
        repo = Repo(git_http.root, "octo", "no-credentials", str(tmp_path / "work"))
        sha = repo.commit({"deploy/stack.yaml": deployment("nocreds"), "infra/queue.yaml": TEMPLATE})
        tenant = make_tenant(server)
        stack = Stack(server, tenant, git_http.url, "octo", "no-credentials", tmp_path)
        stack.configure("nocreds-stack")
        s = stack.settled("nocreds-stack", sha, status="FAILED")
        last = s["LatestSync"]["Events"][-1]
        assert last["Type"] == "DEPLOYMENT_FAILED" and last["Event"].startswith("no AWS credentials found"), s["LatestSync"]["Events"]
        assert "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY" in last["Event"]
    finally:
        server.cleanup()


def test_the_sync_role_is_assumed_through_sts(moto, git_http, tmp_path):
    """With --assume-sync-role every deployment runs as the configuration's RoleArn, even a trusted
    tenant's (which would otherwise use the server's own credentials). moto serves STS on the same
    endpoint and files what assumed-role credentials do under the role's account."""
    server = Server(["--poll-interval", "1s", "--cloudformation-endpoint", moto, "--assume-sync-role"], env=MOTO_KEYS).start()
    try:
        repo = Repo(git_http.root, "octo", "assumed", str(tmp_path / "work"))
        sha = repo.commit({"deploy/stack.yaml": deployment("assumed"), "infra/queue.yaml": TEMPLATE})
        tenant = make_tenant(server)
        server.cli("accounts", "set", tenant.account_id, "--trusted")
        stack = Stack(server, tenant, git_http.url, "octo", "assumed", tmp_path)
        stack.configure("assumed-stack", role=tenant.role_arn("deployer"))
        s = stack.settled("assumed-stack", sha)
        stack_id = s["LatestSync"]["Events"][-1]["ExternalId"]
        assert stack_id.startswith(f"arn:aws:cloudformation:us-east-1:{tenant.account_id}:stack/assumed-stack/"), stack_id
        # The caller's own account has no such stack.
        assert "assumed-stack" not in [x["StackName"] for x in cloudformation(moto).describe_stacks()["Stacks"]]
    finally:
        server.cleanup()


def test_a_stack_no_update_can_leave_raises_a_blocker(git_http, tmp_path):
    from cfn_double import RollbackDouble
    double = RollbackDouble("stuck-stack", {"QueueName": "stuck", "Visibility": "30"}, "", status="ROLLBACK_COMPLETE")
    server = Server(["--poll-interval", "1s", "--cloudformation-endpoint", double.url], env=MOTO_KEYS).start()
    try:
        repo = Repo(git_http.root, "octo", "stuck", str(tmp_path / "work"))
        sha = repo.commit({"deploy/stack.yaml": deployment("stuck"), "infra/queue.yaml": TEMPLATE})
        tenant = make_tenant(server)
        server.cli("accounts", "set", tenant.account_id, "--trusted")  # the double answers no STS
        double.tags = {"gitsync:account": tenant.account_id, "gitsync:sync-configuration": "stuck-stack"}
        stack = Stack(server, tenant, git_http.url, "octo", "stuck", tmp_path)
        stack.configure("stuck-stack")
        s = stack.settled("stuck-stack", sha, status="FAILED")
        assert s["LatestSync"]["Events"][-1]["Type"] == "BLOCKED"
        (blocker,) = stack.cc.get_sync_blocker_summary(ResourceName="stuck-stack", SyncType="CFN_STACK_SYNC")["SyncBlockerSummary"]["LatestBlockers"]
        assert blocker["CreatedReason"].startswith("Stack stuck-stack is ROLLBACK_COMPLETE: no update can leave that state")
        contexts = {c["Key"]: c["Value"] for c in blocker["Contexts"]}
        assert contexts["StackStatus"] == "ROLLBACK_COMPLETE" and contexts["StackId"] == double.stack_id
        assert "CreateChangeSet" not in double.actions()
    finally:
        server.cleanup()
        double.stop()
