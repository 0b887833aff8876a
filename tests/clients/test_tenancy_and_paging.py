"""Pagination with opaque tokens, and isolation between accounts and regions."""
import base64

import pytest
from botocore.exceptions import ClientError

from conftest import error_code, make_tenant


def test_list_connections_pages_through_everything(tenant):
    cc = tenant.client("codeconnections")
    arns = {cc.create_connection(ConnectionName=f"c{i}", ProviderType="GitHub")["ConnectionArn"] for i in range(7)}
    seen, token, pages = [], None, 0
    while True:
        kwargs = {"MaxResults": 3, **({"NextToken": token} if token else {})}
        page = cc.list_connections(**kwargs)
        pages += 1
        seen += [c["ConnectionArn"] for c in page["Connections"]]
        token = page.get("NextToken")
        if not token:
            break
    assert pages == 3
    assert sorted(seen) == sorted(arns) and len(seen) == 7


def test_tokens_cannot_be_forged_or_replayed_by_another_tenant(tenant, other_tenant):
    cc = tenant.client("codeconnections")
    for i in range(3):
        cc.create_connection(ConnectionName=f"c{i}", ProviderType="GitHub")
    token = cc.list_connections(MaxResults=1)["NextToken"]
    other = other_tenant.client("codeconnections")
    other.create_connection(ConnectionName="mine", ProviderType="GitHub")
    with pytest.raises(ClientError) as e:
        other.list_connections(MaxResults=1, NextToken=token)
    assert error_code(e) == "InvalidInputException"
    forged = base64.b64encode(b"\0" * 16 + b"zzzz").decode()
    with pytest.raises(ClientError) as e:
        cc.list_connections(NextToken=forged)
    assert error_code(e) == "InvalidInputException"
    # A token for one listing is not valid for another.
    with pytest.raises(ClientError) as e:
        cc.list_hosts(NextToken=token)
    assert error_code(e) == "InvalidInputException"


def test_proton_repositories_page(tenant):
    cc = tenant.client("codeconnections")
    proton = tenant.client("proton")
    conn = cc.create_connection(ConnectionName="gh", ProviderType="GitHub")["ConnectionArn"]
    for i in range(5):
        proton.create_repository(connectionArn=conn, name=f"octo/repo{i}", provider="GITHUB")
    first = proton.list_repositories(maxResults=2)
    assert len(first["repositories"]) == 2 and first["nextToken"]
    rest = [r["name"] for p in proton.get_paginator("list_repositories").paginate(PaginationConfig={"PageSize": 2}) for r in p["repositories"]]
    assert rest == [f"octo/repo{i}" for i in range(5)]


def test_one_account_cannot_see_or_touch_anothers_resources(tenant, other_tenant):
    mine = tenant.client("codeconnections")
    theirs = other_tenant.client("codeconnections")
    arn = mine.create_connection(ConnectionName="private", ProviderType="GitHub")["ConnectionArn"]
    link = mine.create_repository_link(ConnectionArn=arn, OwnerId="o", RepositoryName="r")["RepositoryLinkInfo"]
    mine.create_sync_configuration(
        Branch="main", ConfigFile="d.yaml", RepositoryLinkId=link["RepositoryLinkId"], ResourceName="secret-stack",
        RoleArn=tenant.role_arn("r"), SyncType="CFN_STACK_SYNC",
    )
    assert theirs.list_connections()["Connections"] == []
    assert theirs.list_repository_links()["RepositoryLinks"] == []
    for call in (
        lambda: theirs.get_connection(ConnectionArn=arn),
        lambda: theirs.delete_connection(ConnectionArn=arn),
        lambda: theirs.get_repository_link(RepositoryLinkId=link["RepositoryLinkId"]),
        lambda: theirs.delete_repository_link(RepositoryLinkId=link["RepositoryLinkId"]),
        lambda: theirs.get_sync_configuration(ResourceName="secret-stack", SyncType="CFN_STACK_SYNC"),
        lambda: theirs.delete_sync_configuration(ResourceName="secret-stack", SyncType="CFN_STACK_SYNC"),
        lambda: theirs.update_sync_configuration(ResourceName="secret-stack", SyncType="CFN_STACK_SYNC", Branch="x"),
        lambda: theirs.list_tags_for_resource(ResourceArn=arn),
        lambda: theirs.tag_resource(ResourceArn=arn, Tags=[{"Key": "k", "Value": "v"}]),
        lambda: theirs.list_sync_configurations(RepositoryLinkId=link["RepositoryLinkId"], SyncType="CFN_STACK_SYNC"),
    ):
        with pytest.raises(ClientError) as e:
            call()
        assert error_code(e) == "ResourceNotFoundException"
    # The other account cannot build on this account's connection either.
    with pytest.raises(ClientError) as e:
        theirs.create_repository_link(ConnectionArn=arn, OwnerId="o", RepositoryName="r2")
    assert error_code(e) == "InvalidInputException"
    with pytest.raises(ClientError) as e:
        other_tenant.client("proton").create_repository(connectionArn=arn, name="o/r", provider="GITHUB")
    assert error_code(e) == "ValidationException"
    # And everything is still there for its owner.
    assert mine.get_connection(ConnectionArn=arn)["Connection"]["ConnectionName"] == "private"
    assert mine.get_sync_configuration(ResourceName="secret-stack", SyncType="CFN_STACK_SYNC")["SyncConfiguration"]["Branch"] == "main"
    assert mine.list_tags_for_resource(ResourceArn=arn)["Tags"] == []


def test_regions_are_separate_scopes(tenant):
    east = tenant.client("codeconnections", region="us-east-1")
    west = tenant.client("codeconnections", region="eu-west-1")
    arn = east.create_connection(ConnectionName="east", ProviderType="GitHub")["ConnectionArn"]
    assert ":us-east-1:" in arn
    assert west.list_connections()["Connections"] == []
    with pytest.raises(ClientError) as e:
        west.get_connection(ConnectionArn=arn)
    assert error_code(e) == "ResourceNotFoundException"
    west_arn = west.create_connection(ConnectionName="west", ProviderType="GitHub")["ConnectionArn"]
    assert ":eu-west-1:" in west_arn
    assert [c["ConnectionName"] for c in east.list_connections()["Connections"]] == ["east"]


def test_quotas_are_enforced_and_configurable():
    from conftest import Server

    server = Server(["--limit", "repository_links=2", "--limit", "sync_configurations_per_branch=1"]).start()
    try:
        t = make_tenant(server)
        cc = t.client("codeconnections")
        arn = cc.create_connection(ConnectionName="gh", ProviderType="GitHub")["ConnectionArn"]
        links = [cc.create_repository_link(ConnectionArn=arn, OwnerId="o", RepositoryName=f"r{i}")["RepositoryLinkInfo"] for i in range(2)]
        with pytest.raises(ClientError) as e:
            cc.create_repository_link(ConnectionArn=arn, OwnerId="o", RepositoryName="r3")
        assert error_code(e) == "LimitExceededException"
        assert "limit is 2" in e.value.response["Error"]["Message"]
        link_id = links[0]["RepositoryLinkId"]
        role = t.role_arn("r")
        cc.create_sync_configuration(Branch="main", ConfigFile="a.yaml", RepositoryLinkId=link_id, ResourceName="a", RoleArn=role, SyncType="CFN_STACK_SYNC")
        with pytest.raises(ClientError) as e:
            cc.create_sync_configuration(Branch="main", ConfigFile="b.yaml", RepositoryLinkId=link_id, ResourceName="b", RoleArn=role, SyncType="CFN_STACK_SYNC")
        assert error_code(e) == "LimitExceededException"
        cc.create_sync_configuration(Branch="dev", ConfigFile="b.yaml", RepositoryLinkId=link_id, ResourceName="b", RoleArn=role, SyncType="CFN_STACK_SYNC")
        assert cc.get_sync_configuration(ResourceName="b", SyncType="CFN_STACK_SYNC")["SyncConfiguration"]["Branch"] == "dev"
    finally:
        server.cleanup()
