"""Status-change events on Amazon EventBridge, through the real binary and moto_server: a rule on
the tenant's bus matching `Git Sync Resource Sync Status Change`, with an SQS queue as its target,
receives the events of a sync with the documented detail, put as the tenant's role."""
import json
import time

import boto3
import pytest

from conftest import Server, make_tenant, moto  # noqa: F401  (moto: the module's moto server)
from gitserver import Repo
from test_engine import TEMPLATE, Stack, deployment, git_http  # noqa: F401  (git_http: fixture)

MOTO_KEYS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


@pytest.fixture(scope="module")
def notifier(moto):
    server = Server(["--poll-interval", "1s", "--lease-ttl", "3s", "--git-timeout", "10s", "--validate-only",
                     "--eventbridge-endpoint", moto], env=MOTO_KEYS).start()
    yield server
    server.cleanup()


def as_role(moto, role_arn, service):
    """A client in the role's account, with credentials from moto's STS (as gitsync gets them)."""
    sts = boto3.client("sts", endpoint_url=moto, region_name="us-east-1", **{k.lower(): v for k, v in MOTO_KEYS.items()})
    creds = sts.assume_role(RoleArn=role_arn, RoleSessionName="test")["Credentials"]
    return boto3.client(service, endpoint_url=moto, region_name="us-east-1", aws_access_key_id=creds["AccessKeyId"],
                        aws_secret_access_key=creds["SecretAccessKey"], aws_session_token=creds["SessionToken"])


def test_a_rule_on_the_tenants_bus_receives_its_sync_events(notifier, moto, git_http, tmp_path):
    tenant = make_tenant(notifier)
    events, sqs = as_role(moto, tenant.role_arn(), "events"), as_role(moto, tenant.role_arn(), "sqs")
    events.create_event_bus(Name="gitsync-events")
    queue = sqs.create_queue(QueueName="sync-changes")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name="sync-changes", EventBusName="gitsync-events", EventPattern=json.dumps(
        {"source": ["gitsync"], "detail-type": ["Git Sync Resource Sync Status Change"]}))
    events.put_targets(Rule="sync-changes", EventBusName="gitsync-events", Targets=[{"Id": "queue", "Arn": queue_arn}])

    # A tenant that does not deploy with the server's identity must name a role.
    refused = notifier.cli("notifications", "add", "--account-id", tenant.account_id, "--eventbridge-bus",
                           "gitsync-events", check=False)
    assert refused.returncode != 0 and "--role-arn" in refused.stderr
    added = notifier.cli("notifications", "add", "--account-id", tenant.account_id, "--eventbridge-bus",
                         "gitsync-events", "--role-arn", tenant.role_arn()).stdout
    assert "gitsync-events receives the status changes" in added

    repo = Repo(git_http.root, "octo", "evented", str(tmp_path / "work"))
    sha = repo.commit({"deploy/stack.yaml": deployment("evented"), "infra/queue.yaml": TEMPLATE})
    stack = Stack(notifier, tenant, git_http.url, "octo", "evented", tmp_path)
    stack.configure("evented-stack")
    stack.settled("evented-stack", sha)

    received = []
    deadline = time.time() + 60
    while time.time() < deadline and len(received) < 2:
        for m in sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", []):
            received.append(json.loads(m["Body"]))
            sqs.delete_message(QueueUrl=queue, ReceiptHandle=m["ReceiptHandle"])
    assert len(received) == 2, received
    # EventBridge does not promise order: `previousSync` tells the start from the end.
    by_status = {e["detail"]["status"]: e for e in received}
    assert set(by_status) == {"IN_PROGRESS", "SUCCEEDED"}, received
    done = by_status["SUCCEEDED"]
    assert done["source"] == "gitsync" and done["detail-type"] == "Git Sync Resource Sync Status Change"
    # (moto's SQS target leaves out the envelope's `account`; the queue, the rule and the bus are
    # all in the tenant's account, which only the tenant's role reaches.)
    assert done["region"] == "us-east-1" and done["version"] == "0", json.dumps(done)
    assert done["detail"] == {
        "providerType": "GitHubEnterpriseServer", "commit": sha, "repositoryName": "evented", "ownerId": "octo",
        "branch": "main", "syncType": "CFN_STACK_SYNC", "syncTarget": "evented-stack", "status": "SUCCEEDED",
        "previousSync": "IN_PROGRESS"}
    assert by_status["IN_PROGRESS"]["detail"]["previousSync"] is None
    listed = notifier.cli("notifications", "list", "--account-id", tenant.account_id).stdout
    line = next(l for l in listed.splitlines() if "gitsync-events" in l)
    assert line.split()[1:4] == ["eventbridge", "0", "0"], listed


def test_kill_nine_between_the_change_and_its_put_loses_nothing(moto, git_http, tmp_path):
    """The events are in the outbox with the change: a server killed before EventBridge took them
    (its endpoint unreachable) leaves them to the next server on the same database."""
    import os
    import signal
    from conftest import free_port
    unreachable = f"http://127.0.0.1:{free_port()}"
    first = Server(["--poll-interval", "1s", "--lease-ttl", "3s", "--git-timeout", "10s", "--validate-only",
                    "--eventbridge-endpoint", unreachable, "--replica-id", "first"], env=MOTO_KEYS).start()
    again = None
    try:
        tenant = make_tenant(first)
        events, sqs = as_role(moto, tenant.role_arn(), "events"), as_role(moto, tenant.role_arn(), "sqs")
        events.create_event_bus(Name="kill9-events")
        queue = sqs.create_queue(QueueName="kill9-changes")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        events.put_rule(Name="kill9", EventBusName="kill9-events", EventPattern=json.dumps(
            {"source": ["gitsync"], "detail-type": ["Git Sync Resource Sync Status Change", "Git Sync Repository Sync Status Change"]}))
        events.put_targets(Rule="kill9", EventBusName="kill9-events", Targets=[{"Id": "queue", "Arn": queue_arn}])
        first.cli("notifications", "add", "--account-id", tenant.account_id, "--eventbridge-bus", "kill9-events",
                  "--role-arn", tenant.role_arn())
        repo = Repo(git_http.root, "octo", "kill9-bus", str(tmp_path / "work"))
        sha = repo.commit({"deploy/stack.yaml": deployment("kill9bus"), "infra/queue.yaml": TEMPLATE})
        stack = Stack(first, tenant, git_http.url, "octo", "kill9-bus", tmp_path)
        stack.configure("kill9-stack")
        stack.settled("kill9-stack", sha)

        def pending():
            line = next(l for l in first.cli("notifications", "list", "--account-id", tenant.account_id).stdout.splitlines()
                        if "kill9-events" in l)
            return line.split()
        from test_engine import wait_for
        row = wait_for(lambda: (lambda r: r if int(r[2]) >= 2 and len(r) > 5 else None)(pending()), what="refused puts")
        assert row[3] == "0", row  # pending, none given up
        first.process.send_signal(signal.SIGKILL)
        first.process.wait()

        again = Server(["--poll-interval", "1s", "--lease-ttl", "3s", "--validate-only", "--eventbridge-endpoint", moto,
                        "--replica-id", "second"], env=MOTO_KEYS, database_url=first.database_url)
        again.data_dir = first.data_dir
        again.log_path = os.path.join(first.data_dir, "server2.log")
        again.start()
        received = []
        deadline = time.time() + 90
        while time.time() < deadline and len([e for e in received if "syncTarget" in e["detail"]]) < 2:
            for m in sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", []):
                received.append(json.loads(m["Body"]))
                sqs.delete_message(QueueUrl=queue, ReceiptHandle=m["ReceiptHandle"])
        resource = sorted((e["detail"]["status"], e["detail"]["previousSync"] or "") for e in received
                          if e["detail-type"] == "Git Sync Resource Sync Status Change")
        assert resource == [("IN_PROGRESS", ""), ("SUCCEEDED", "IN_PROGRESS")], received
        repository = [e["detail"] for e in received if e["detail-type"] == "Git Sync Repository Sync Status Change"]
        assert any(d["status"] == "SUCCEEDED" and d["commit"] == sha and d["repositoryLinkId"] == stack.link_id
                   for d in repository), repository
        def settled():
            out = again.cli("notifications", "list", "--account-id", tenant.account_id).stdout
            row = next(l for l in out.splitlines() if "kill9-events" in l).split()
            return row if row[2:4] == ["0", "0"] else None
        wait_for(settled, what="nothing pending or given up")
    finally:
        if again:
            again.stop()
        first.cleanup()
