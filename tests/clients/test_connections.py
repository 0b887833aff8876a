"""CodeConnections and CodeStar Connections, every operation, through boto3 against the binary."""
import pytest
from botocore.exceptions import ClientError

from conftest import error_code, error_message


def new_link(cc, owner="octo", repo="infra"):
    arn = cc.create_connection(ConnectionName="gh", ProviderType="GitHub")["ConnectionArn"]
    link = cc.create_repository_link(ConnectionArn=arn, OwnerId=owner, RepositoryName=repo)["RepositoryLinkInfo"]
    return arn, link


def new_sync_config(tenant, cc, link_id, name="app-stack", branch="main", **extra):
    """A CFN sync configuration with a role in the tenant's own account (the one it may use)."""
    return cc.create_sync_configuration(
        Branch=branch,
        ConfigFile="deploy/stack.yaml",
        RepositoryLinkId=link_id,
        ResourceName=name,
        RoleArn=tenant.role_arn("gitsync-sync"),
        SyncType="CFN_STACK_SYNC",
        **extra,
    )["SyncConfiguration"]


def test_connection_lifecycle_with_tags(tenant):
    cc = tenant.client("codeconnections")
    created = cc.create_connection(ConnectionName="github-main", ProviderType="GitHub", Tags=[{"Key": "team", "Value": "infra"}])
    arn = created["ConnectionArn"]
    assert arn.startswith(f"arn:aws:codeconnections:us-east-1:{tenant.account_id}:connection/")
    assert created["Tags"] == [{"Key": "team", "Value": "infra"}]
    got = cc.get_connection(ConnectionArn=arn)["Connection"]
    assert got == {
        "ConnectionName": "github-main",
        "ConnectionArn": arn,
        "ProviderType": "GitHub",
        "OwnerAccountId": tenant.account_id,
        "ConnectionStatus": "PENDING",
    }
    assert cc.list_tags_for_resource(ResourceArn=arn)["Tags"] == [{"Key": "team", "Value": "infra"}]
    listed = cc.list_connections()["Connections"]
    assert [c["ConnectionArn"] for c in listed] == [arn]
    cc.delete_connection(ConnectionArn=arn)
    with pytest.raises(ClientError) as e:
        cc.get_connection(ConnectionArn=arn)
    assert error_code(e) == "ResourceNotFoundException"
    assert arn in error_message(e)
    assert cc.list_connections()["Connections"] == []


def test_list_connections_filters_by_provider_and_host(tenant):
    cc = tenant.client("codeconnections")
    host = cc.create_host(Name="ghe", ProviderEndpoint="https://git.example.com", ProviderType="GitHubEnterpriseServer")["HostArn"]
    on_host = cc.create_connection(ConnectionName="ghe", HostArn=host)["ConnectionArn"]
    gitlab = cc.create_connection(ConnectionName="gl", ProviderType="GitLab")["ConnectionArn"]
    assert [c["ConnectionArn"] for c in cc.list_connections(ProviderTypeFilter="GitLab")["Connections"]] == [gitlab]
    by_host = cc.list_connections(HostArnFilter=host)["Connections"]
    assert [c["ConnectionArn"] for c in by_host] == [on_host]
    assert by_host[0]["ProviderType"] == "GitHubEnterpriseServer"
    assert by_host[0]["HostArn"] == host


def test_host_lifecycle(tenant):
    cc = tenant.client("codeconnections")
    vpc = {"VpcId": "vpc-01234567", "SubnetIds": ["subnet-01234567"], "SecurityGroupIds": ["sg-01234567"]}
    arn = cc.create_host(
        Name="gitlab-onprem", ProviderEndpoint="https://gitlab.internal", ProviderType="GitLabSelfManaged", VpcConfiguration=vpc
    )["HostArn"]
    assert f":{tenant.account_id}:host/gitlab-onprem-" in arn
    host = cc.get_host(HostArn=arn)
    assert host["Name"] == "gitlab-onprem"
    assert host["Status"] == "AVAILABLE"
    assert host["ProviderEndpoint"] == "https://gitlab.internal"
    assert host["VpcConfiguration"] == vpc
    cc.update_host(HostArn=arn, ProviderEndpoint="https://gitlab2.internal")
    assert cc.get_host(HostArn=arn)["ProviderEndpoint"] == "https://gitlab2.internal"
    assert [h["HostArn"] for h in cc.list_hosts()["Hosts"]] == [arn]
    conn = cc.create_connection(ConnectionName="onprem", HostArn=arn)["ConnectionArn"]
    with pytest.raises(ClientError) as e:
        cc.delete_host(HostArn=arn)
    assert error_code(e) == "ResourceUnavailableException"
    cc.delete_connection(ConnectionArn=conn)
    cc.delete_host(HostArn=arn)
    with pytest.raises(ClientError) as e:
        cc.get_host(HostArn=arn)
    assert error_code(e) == "ResourceNotFoundException"


def test_cloud_providers_do_not_take_hosts_and_self_managed_ones_need_them(tenant):
    cc = tenant.client("codeconnections")
    with pytest.raises(ClientError) as e:
        cc.create_host(Name="gh", ProviderEndpoint="https://github.com", ProviderType="GitHub")
    assert error_code(e) == "InvalidInputException"
    with pytest.raises(ClientError) as e:
        cc.create_connection(ConnectionName="x", ProviderType="GitLabSelfManaged")
    assert error_code(e) == "InvalidInputException"
    assert "HostArn" in error_message(e)
    with pytest.raises(ClientError) as e:
        cc.create_connection(ConnectionName="x")
    assert error_code(e) == "InvalidInputException"


def test_repository_link_lifecycle(tenant):
    cc = tenant.client("codeconnections")
    arn, link = new_link(cc)
    assert link["ConnectionArn"] == arn
    assert link["OwnerId"] == "octo" and link["RepositoryName"] == "infra"
    assert link["ProviderType"] == "GitHub"
    assert link["RepositoryLinkArn"] == f"arn:aws:codeconnections:us-east-1:{tenant.account_id}:repository-link/{link['RepositoryLinkId']}"
    assert cc.get_repository_link(RepositoryLinkId=link["RepositoryLinkId"])["RepositoryLinkInfo"] == link
    assert cc.list_repository_links()["RepositoryLinks"] == [link]
    other = cc.create_connection(ConnectionName="gh2", ProviderType="GitHub")["ConnectionArn"]
    kms = "arn:aws:kms:us-east-1:123456789012:key/abcd-1234"
    updated = cc.update_repository_link(RepositoryLinkId=link["RepositoryLinkId"], ConnectionArn=other, EncryptionKeyArn=kms)["RepositoryLinkInfo"]
    assert updated["ConnectionArn"] == other and updated["EncryptionKeyArn"] == kms
    gitlab = cc.create_connection(ConnectionName="gl", ProviderType="GitLab")["ConnectionArn"]
    with pytest.raises(ClientError) as e:
        cc.update_repository_link(RepositoryLinkId=link["RepositoryLinkId"], ConnectionArn=gitlab)
    assert error_code(e) == "InvalidInputException"
    assert "provider cannot change" in error_message(e)
    cc.delete_repository_link(RepositoryLinkId=link["RepositoryLinkId"])
    with pytest.raises(ClientError) as e:
        cc.get_repository_link(RepositoryLinkId=link["RepositoryLinkId"])
    assert error_code(e) == "ResourceNotFoundException"


def test_duplicate_link_and_unknown_connection(tenant):
    cc = tenant.client("codeconnections")
    arn, _ = new_link(cc)
    with pytest.raises(ClientError) as e:
        cc.create_repository_link(ConnectionArn=arn, OwnerId="octo", RepositoryName="infra")
    assert error_code(e) == "ResourceAlreadyExistsException"
    missing = arn[:-4] + "ffff"
    with pytest.raises(ClientError) as e:
        cc.create_repository_link(ConnectionArn=missing, OwnerId="octo", RepositoryName="x")
    assert error_code(e) == "InvalidInputException"
    assert "ConnectionArn" in error_message(e)


def test_sync_configuration_lifecycle(tenant):
    cc = tenant.client("codeconnections")
    _, link = new_link(cc)
    # The switches that post to the Git host are refused while the connection has no token for
    # the host's API, rather than stored and left to fail.
    for switch in ("PublishDeploymentStatus", "PullRequestComment"):
        with pytest.raises(ClientError) as e:
            new_sync_config(tenant, cc, link["RepositoryLinkId"], **{switch: "ENABLED"})
        assert error_code(e) == "InvalidInputException"
        assert error_message(e).startswith(f"{switch} is ENABLED but connection ") and "--api-token-file FILE" in error_message(e)
    config = new_sync_config(tenant, cc, link["RepositoryLinkId"], TriggerResourceUpdateOn="FILE_CHANGE", PublishDeploymentStatus="DISABLED", PullRequestComment="DISABLED")
    assert config == {
        "Branch": "main",
        "ConfigFile": "deploy/stack.yaml",
        "OwnerId": "octo",
        "ProviderType": "GitHub",
        "RepositoryLinkId": link["RepositoryLinkId"],
        "RepositoryName": "infra",
        "ResourceName": "app-stack",
        "RoleArn": tenant.role_arn("gitsync-sync"),
        "SyncType": "CFN_STACK_SYNC",
        "TriggerResourceUpdateOn": "FILE_CHANGE",
        "PublishDeploymentStatus": "DISABLED",
        "PullRequestComment": "DISABLED",
    }
    assert cc.get_sync_configuration(ResourceName="app-stack", SyncType="CFN_STACK_SYNC")["SyncConfiguration"] == config
    with pytest.raises(ClientError) as e:
        cc.update_sync_configuration(ResourceName="app-stack", SyncType="CFN_STACK_SYNC", PublishDeploymentStatus="ENABLED")
    assert error_code(e) == "InvalidInputException" and "has no token for its Git host's API" in error_message(e)
    updated = cc.update_sync_configuration(ResourceName="app-stack", SyncType="CFN_STACK_SYNC", Branch="release", TriggerResourceUpdateOn="ANY_CHANGE")["SyncConfiguration"]
    assert updated["Branch"] == "release" and updated["TriggerResourceUpdateOn"] == "ANY_CHANGE"
    assert updated["ConfigFile"] == "deploy/stack.yaml"
    listed = cc.list_sync_configurations(RepositoryLinkId=link["RepositoryLinkId"], SyncType="CFN_STACK_SYNC")["SyncConfigurations"]
    assert listed == [updated]
    definitions = cc.list_repository_sync_definitions(RepositoryLinkId=link["RepositoryLinkId"], SyncType="CFN_STACK_SYNC")
    assert definitions["RepositorySyncDefinitions"] == [
        {"Branch": "release", "Directory": "deploy/stack.yaml", "Parent": "app-stack", "Target": "app-stack"}
    ]
    with pytest.raises(ClientError) as e:
        new_sync_config(tenant, cc, link["RepositoryLinkId"])
    assert error_code(e) == "ResourceAlreadyExistsException"
    cc.delete_sync_configuration(ResourceName="app-stack", SyncType="CFN_STACK_SYNC")
    with pytest.raises(ClientError) as e:
        cc.get_sync_configuration(ResourceName="app-stack", SyncType="CFN_STACK_SYNC")
    assert error_code(e) == "ResourceNotFoundException"
    with pytest.raises(ClientError) as e:
        cc.delete_sync_configuration(ResourceName="app-stack", SyncType="CFN_STACK_SYNC")
    assert error_code(e) == "ResourceNotFoundException"


def test_link_in_use_cannot_be_deleted(tenant):
    cc = tenant.client("codeconnections")
    _, link = new_link(cc)
    new_sync_config(tenant, cc, link["RepositoryLinkId"])
    with pytest.raises(ClientError) as e:
        cc.delete_repository_link(RepositoryLinkId=link["RepositoryLinkId"])
    assert error_code(e) == "SyncConfigurationStillExistsException"
    assert cc.get_repository_link(RepositoryLinkId=link["RepositoryLinkId"])["RepositoryLinkInfo"] == link
    cc.delete_sync_configuration(ResourceName="app-stack", SyncType="CFN_STACK_SYNC")
    cc.delete_repository_link(RepositoryLinkId=link["RepositoryLinkId"])


def test_sync_configuration_needs_an_existing_link(tenant):
    cc = tenant.client("codeconnections")
    with pytest.raises(ClientError) as e:
        new_sync_config(tenant, cc, "6053346f-8a33-4edb-9397-10394b695173")
    assert error_code(e) == "InvalidInputException"
    assert "RepositoryLinkId" in error_message(e)


def test_validation_names_member_and_rule(tenant):
    cc = tenant.client("codeconnections")
    _, link = new_link(cc)
    with pytest.raises(ClientError) as e:
        new_sync_config(tenant, cc, link["RepositoryLinkId"], name="bad name!")
    assert error_code(e) == "ValidationException"
    assert "'resourceName' failed to satisfy constraint: Member must satisfy regular expression pattern" in error_message(e)
    with pytest.raises(ClientError) as e:
        cc.create_sync_configuration(
            Branch="main", ConfigFile="d.yaml", RepositoryLinkId=link["RepositoryLinkId"], ResourceName="s", RoleArn="not-an-arn", SyncType="CFN_STACK_SYNC"
        )
    assert error_code(e) == "ValidationException"
    assert "'roleArn'" in error_message(e)
    with pytest.raises(ClientError) as e:
        cc.get_resource_sync_status(ResourceName="s", SyncType="TEMPLATE_SYNC")
    assert "Member must satisfy enum value set: [CFN_STACK_SYNC]" in error_message(e)
    with pytest.raises(ClientError) as e:
        cc.create_connection(ConnectionName="x" * 33, ProviderType="GitHub")
    assert "'connectionName' failed to satisfy constraint: Member must have length less than or equal to 32" in error_message(e)
    # Only the link's own connection exists: the refused requests wrote nothing.
    assert len(cc.list_connections()["Connections"]) == 1


def test_status_operations_before_any_sync(tenant):
    cc = tenant.client("codeconnections")
    _, link = new_link(cc)
    new_sync_config(tenant, cc, link["RepositoryLinkId"])
    with pytest.raises(ClientError) as e:
        cc.get_resource_sync_status(ResourceName="app-stack", SyncType="CFN_STACK_SYNC")
    assert error_code(e) == "ResourceNotFoundException"
    assert "app-stack" in error_message(e)
    with pytest.raises(ClientError) as e:
        cc.get_repository_sync_status(Branch="main", RepositoryLinkId=link["RepositoryLinkId"], SyncType="CFN_STACK_SYNC")
    assert error_code(e) == "ResourceNotFoundException"
    assert f"repository link:{link['RepositoryLinkId']}" in error_message(e)
    summary = cc.get_sync_blocker_summary(ResourceName="app-stack", SyncType="CFN_STACK_SYNC")["SyncBlockerSummary"]
    assert summary == {"ResourceName": "app-stack", "LatestBlockers": []}
    with pytest.raises(ClientError) as e:
        cc.get_sync_blocker_summary(ResourceName="no-such-stack", SyncType="CFN_STACK_SYNC")
    assert error_code(e) == "ResourceNotFoundException"
    with pytest.raises(ClientError) as e:
        cc.update_sync_blocker(Id="nope", ResolvedReason="fixed", ResourceName="app-stack", SyncType="CFN_STACK_SYNC")
    assert error_code(e) == "SyncBlockerDoesNotExistException"


def test_status_operations_answer_from_recorded_history(tenant):
    cc = tenant.client("codeconnections")
    _, link = new_link(cc)
    # The configuration watches another branch: the engine's own check of it (which fails, the
    # connection being PENDING) must not become the latest repository sync of the seeded `main`.
    new_sync_config(tenant, cc, link["RepositoryLinkId"], name="seeded-stack", branch="release")
    seeded = tenant.seed_history(link["RepositoryLinkId"])
    status = cc.get_resource_sync_status(ResourceName="seeded-stack", SyncType="CFN_STACK_SYNC")
    latest, good = status["LatestSync"], status["LatestSuccessfulSync"]
    assert latest["Status"] == "FAILED" and good["Status"] == "SUCCEEDED"
    assert latest["Target"] == "seeded-stack"
    assert latest["TargetRevision"]["Sha"] == seeded["new"] and latest["InitialRevision"]["Sha"] == seeded["old"]
    assert status["DesiredState"] == {
        "Branch": "main", "Directory": "deploy/stack.yaml", "OwnerId": "octo", "ProviderType": "GitHub",
        "RepositoryName": "infra", "Sha": seeded["new"],
    }
    assert [e["Type"] for e in latest["Events"]] == ["SYNC_STARTED", "VALIDATION_FAILED"]
    assert latest["Events"][0]["ExternalId"] == seeded["new"]
    # Timestamps arrive as numbers and parse to aware datetimes, millisecond-exact.
    assert good["StartedAt"].timestamp() == pytest.approx(1700000000.123, abs=1e-6)
    repo = cc.get_repository_sync_status(Branch="main", RepositoryLinkId=link["RepositoryLinkId"], SyncType="CFN_STACK_SYNC")["LatestSync"]
    assert repo["Status"] == "SUCCEEDED"
    assert [(e["Type"], e["Event"]) for e in repo["Events"]] == [
        ("CLONE_STARTED", "Clone started"), ("CONFIG_UPDATED", "Updated configuration"),
        ("STARTING_SYNC", f"Starting syncs for commit {seeded['new']}"),
    ]
    summary = cc.get_sync_blocker_summary(ResourceName="seeded-stack", SyncType="CFN_STACK_SYNC")["SyncBlockerSummary"]
    (blocker,) = summary["LatestBlockers"]
    assert blocker["Id"] == seeded["stack_blocker"] and blocker["Status"] == "ACTIVE" and blocker["Type"] == "AUTOMATED"
    assert {"Key": "StackStatus", "Value": "ROLLBACK_COMPLETE"} in blocker["Contexts"]
    resolved = cc.update_sync_blocker(Id=blocker["Id"], ResolvedReason="stack recreated", ResourceName="seeded-stack", SyncType="CFN_STACK_SYNC")
    assert resolved["ResourceName"] == "seeded-stack"
    assert resolved["SyncBlocker"]["Status"] == "RESOLVED" and resolved["SyncBlocker"]["ResolvedReason"] == "stack recreated"
    assert "ResolvedAt" in resolved["SyncBlocker"]
    with pytest.raises(ClientError) as e:
        cc.update_sync_blocker(Id=blocker["Id"], ResolvedReason="again", ResourceName="seeded-stack", SyncType="CFN_STACK_SYNC")
    assert error_code(e) == "SyncBlockerDoesNotExistException"


def test_tags_on_links_and_hosts(tenant):
    cc = tenant.client("codeconnections")
    _, link = new_link(cc)
    arn = link["RepositoryLinkArn"]
    cc.tag_resource(ResourceArn=arn, Tags=[{"Key": "a", "Value": "1"}, {"Key": "b", "Value": "2"}])
    cc.tag_resource(ResourceArn=arn, Tags=[{"Key": "a", "Value": "3"}])
    assert cc.list_tags_for_resource(ResourceArn=arn)["Tags"] == [{"Key": "a", "Value": "3"}, {"Key": "b", "Value": "2"}]
    cc.untag_resource(ResourceArn=arn, TagKeys=["a"])
    assert cc.list_tags_for_resource(ResourceArn=arn)["Tags"] == [{"Key": "b", "Value": "2"}]
    missing = arn.rsplit("/", 1)[0] + "/6053346f-8a33-4edb-9397-10394b695173"
    with pytest.raises(ClientError) as e:
        cc.tag_resource(ResourceArn=missing, Tags=[{"Key": "a", "Value": "1"}])
    assert error_code(e) == "ResourceNotFoundException"
    too_many = [{"Key": f"k{i}", "Value": "v"} for i in range(50)]
    with pytest.raises(ClientError) as e:
        cc.tag_resource(ResourceArn=arn, Tags=too_many)
    assert error_code(e) == "LimitExceededException"
    assert cc.list_tags_for_resource(ResourceArn=arn)["Tags"] == [{"Key": "b", "Value": "2"}]


def test_both_service_names_share_one_store(tenant):
    cc = tenant.client("codeconnections")
    legacy = tenant.client("codestar-connections")
    legacy_arn = legacy.create_connection(ConnectionName="old", ProviderType="Bitbucket")["ConnectionArn"]
    assert legacy_arn.startswith("arn:aws:codestar-connections:")
    assert cc.get_connection(ConnectionArn=legacy_arn)["Connection"]["ConnectionName"] == "old"
    # The same connection is reachable under either service spelling of its ARN.
    respelled = legacy_arn.replace("codestar-connections", "codeconnections", 1)
    assert cc.get_connection(ConnectionArn=respelled)["Connection"]["ConnectionArn"] == legacy_arn
    _, link = new_link(cc)
    new_sync_config(tenant, cc, link["RepositoryLinkId"], PullRequestComment="DISABLED")
    seen = legacy.get_sync_configuration(ResourceName="app-stack", SyncType="CFN_STACK_SYNC")["SyncConfiguration"]
    assert seen["RepositoryLinkId"] == link["RepositoryLinkId"]
    assert "PullRequestComment" not in seen  # not a member of the legacy model
    assert {c["ConnectionArn"] for c in legacy.list_connections()["Connections"]} == {
        c["ConnectionArn"] for c in cc.list_connections()["Connections"]
    }
