"""Smithy RPC v2 CBOR, through botocore forced onto CBOR by a model override."""
import gzip
import json
import os

import botocore
import botocore.session
import pytest
from botocore.exceptions import ClientError

from conftest import NO_RETRIES, error_code


@pytest.fixture(scope="module")
def cbor_data_path(tmp_path_factory):
    root = tmp_path_factory.mktemp("cbor-models")
    source = os.path.join(os.path.dirname(botocore.__file__), "data", "codeconnections", "2023-12-01", "service-2.json.gz")
    model = json.load(gzip.open(source))
    model["metadata"]["protocols"] = ["smithy-rpc-v2-cbor"]
    model["metadata"]["protocol"] = "smithy-rpc-v2-cbor"
    target = root / "codeconnections" / "2023-12-01"
    target.mkdir(parents=True)
    (target / "service-2.json").write_text(json.dumps(model))
    return str(root)


def cbor_client(tenant, data_path):
    session = botocore.session.Session()
    session.set_config_variable("data_path", data_path)
    client = session.create_client(
        "codeconnections",
        endpoint_url=tenant.server.endpoint,
        region_name=tenant.region,
        aws_access_key_id=tenant.access_key_id,
        aws_secret_access_key=tenant.secret_access_key,
        config=NO_RETRIES,
    )
    assert client.meta.service_model.resolved_protocol == "smithy-rpc-v2-cbor"
    return client


def test_cbor_round_trips_and_shares_the_store_with_json(tenant, cbor_data_path):
    cc = cbor_client(tenant, cbor_data_path)
    created = cc.create_connection(ConnectionName="cbor", ProviderType="GitLab", Tags=[{"Key": "k", "Value": "v"}])
    arn = created["ConnectionArn"]
    assert created["ResponseMetadata"]["HTTPHeaders"]["smithy-protocol"] == "rpc-v2-cbor"
    assert cc.get_connection(ConnectionArn=arn)["Connection"]["ProviderType"] == "GitLab"
    assert tenant.client("codeconnections").get_connection(ConnectionArn=arn)["Connection"]["ConnectionName"] == "cbor"
    page = cc.list_connections(MaxResults=1)
    assert len(page["Connections"]) == 1


def test_cbor_errors_and_timestamps(tenant, cbor_data_path):
    cc = cbor_client(tenant, cbor_data_path)
    with pytest.raises(ClientError) as e:
        cc.get_resource_sync_status(ResourceName="nothing", SyncType="CFN_STACK_SYNC")
    assert error_code(e) == "ResourceNotFoundException"
    with pytest.raises(ClientError) as e:
        cc.create_connection(ConnectionName="x" * 40, ProviderType="GitHub")
    assert error_code(e) == "ValidationException"
    json_cc = tenant.client("codeconnections")
    arn = json_cc.create_connection(ConnectionName="gh", ProviderType="GitHub")["ConnectionArn"]
    link = json_cc.create_repository_link(ConnectionArn=arn, OwnerId="octo", RepositoryName="infra")["RepositoryLinkInfo"]
    json_cc.create_sync_configuration(Branch="main", ConfigFile="deploy/stack.yaml", RepositoryLinkId=link["RepositoryLinkId"], ResourceName="seeded-stack", RoleArn=tenant.role_arn("r"), SyncType="CFN_STACK_SYNC")
    tenant.seed_history(link["RepositoryLinkId"])
    status = cc.get_resource_sync_status(ResourceName="seeded-stack", SyncType="CFN_STACK_SYNC")
    # Tag-1 timestamps decode to datetimes, exactly as JSON's numbers do.
    assert status["LatestSuccessfulSync"]["StartedAt"].timestamp() == pytest.approx(1700000000.123, abs=1e-6)
    assert status == {**json_cc.get_resource_sync_status(ResourceName="seeded-stack", SyncType="CFN_STACK_SYNC"), "ResponseMetadata": status["ResponseMetadata"]}
