"""The Proton operations gitsync serves, through boto3 against the binary."""
import time

import pytest
from botocore.exceptions import ClientError

from conftest import error_code, error_message, make_service


@pytest.fixture
def github(tenant):
    return tenant.client("codeconnections").create_connection(ConnectionName="gh", ProviderType="GitHub")["ConnectionArn"]


def test_repository_lifecycle(tenant, github):
    proton = tenant.client("proton")
    repo = proton.create_repository(connectionArn=github, name="octo/templates", provider="GITHUB", tags=[{"key": "env", "value": "prod"}])["repository"]
    assert repo == {
        "arn": f"arn:aws:proton:us-east-1:{tenant.account_id}:repository/github:octo/templates",
        "connectionArn": github,
        "name": "octo/templates",
        "provider": "GITHUB",
    }
    assert proton.get_repository(name="octo/templates", provider="GITHUB")["repository"] == repo
    assert proton.list_repositories()["repositories"] == [repo]
    assert proton.list_tags_for_resource(resourceArn=repo["arn"])["tags"] == [{"key": "env", "value": "prod"}]
    with pytest.raises(ClientError) as e:
        proton.create_repository(connectionArn=github, name="octo/templates", provider="GITHUB")
    assert error_code(e) == "ConflictException"
    assert proton.delete_repository(name="octo/templates", provider="GITHUB")["repository"] == repo
    with pytest.raises(ClientError) as e:
        proton.get_repository(name="octo/templates", provider="GITHUB")
    assert error_code(e) == "ResourceNotFoundException"
    assert "octo/templates" in error_message(e)


def test_repository_needs_a_connection_of_the_same_provider(tenant, github):
    proton = tenant.client("proton")
    with pytest.raises(ClientError) as e:
        proton.create_repository(connectionArn=github, name="octo/x", provider="BITBUCKET")
    assert error_code(e) == "ValidationException"
    assert "connectionArn" in error_message(e)
    with pytest.raises(ClientError) as e:
        proton.create_repository(connectionArn=github.replace("connection/", "connection/0"), name="octo/x", provider="GITHUB")
    assert error_code(e) == "ValidationException"
    with pytest.raises(ClientError) as e:
        proton.create_repository(connectionArn=github, name="no-slash", provider="GITHUB")
    assert error_code(e) == "ValidationException"
    assert "'name'" in error_message(e)
    assert proton.list_repositories()["repositories"] == []


def test_template_sync_config_lifecycle_and_status(tenant, github):
    proton = tenant.client("proton")
    proton.create_repository(connectionArn=github, name="octo/templates", provider="GITHUB")
    with pytest.raises(ClientError) as e:
        proton.get_template_sync_status(templateName="vpc", templateType="ENVIRONMENT", templateVersion="1")
    assert error_code(e) == "ResourceNotFoundException"
    created = proton.create_template_sync_config(
        templateName="vpc", templateType="ENVIRONMENT", repositoryName="octo/templates", repositoryProvider="GITHUB", branch="main", subdirectory="templates"
    )["templateSyncConfig"]
    assert created == {
        "branch": "main", "repositoryName": "octo/templates", "repositoryProvider": "GITHUB",
        "subdirectory": "templates", "templateName": "vpc", "templateType": "ENVIRONMENT",
    }
    assert proton.get_template_sync_config(templateName="vpc", templateType="ENVIRONMENT")["templateSyncConfig"] == created
    with pytest.raises(ClientError) as e:
        proton.create_template_sync_config(templateName="vpc", templateType="ENVIRONMENT", repositoryName="octo/templates", repositoryProvider="GITHUB", branch="main")
    assert error_code(e) == "ConflictException"
    updated = proton.update_template_sync_config(templateName="vpc", templateType="ENVIRONMENT", repositoryName="octo/templates", repositoryProvider="GITHUB", branch="release")["templateSyncConfig"]
    assert updated["branch"] == "release" and "subdirectory" not in updated
    status = proton.get_template_sync_status(templateName="vpc", templateType="ENVIRONMENT", templateVersion="1")
    assert {k: v for k, v in status.items() if k != "ResponseMetadata"} == {}
    with pytest.raises(ClientError) as e:
        proton.delete_repository(name="octo/templates", provider="GITHUB")
    assert error_code(e) == "ConflictException"
    assert proton.delete_template_sync_config(templateName="vpc", templateType="ENVIRONMENT")["templateSyncConfig"] == updated
    with pytest.raises(ClientError) as e:
        proton.get_template_sync_config(templateName="vpc", templateType="ENVIRONMENT")
    assert error_code(e) == "ResourceNotFoundException"


def test_template_sync_config_needs_its_repository(tenant):
    proton = tenant.client("proton")
    with pytest.raises(ClientError) as e:
        proton.create_template_sync_config(templateName="vpc", templateType="SERVICE", repositoryName="octo/none", repositoryProvider="GITHUB", branch="main")
    assert error_code(e) == "ResourceNotFoundException"
    assert "CreateRepository" in error_message(e)
    with pytest.raises(ClientError) as e:
        proton.get_template_sync_status(templateName="vpc", templateType="SERVICE", templateVersion="01")
    assert error_code(e) == "ValidationException"
    assert "'templateVersion'" in error_message(e)


def test_service_sync_config_lifecycle_status_and_blockers(tenant, github):
    proton = tenant.client("proton")
    proton.create_repository(connectionArn=github, name="octo/services", provider="GITHUB")
    with pytest.raises(ClientError) as e:
        proton.create_service_sync_config(serviceName="api", repositoryName="octo/services", repositoryProvider="GITHUB", branch="main", filePath="proton-ops.yaml")
    assert error_code(e) == "ResourceNotFoundException"
    assert error_message(e) == "Service api does not exist: create it with CreateService, then its service sync configuration"
    make_service(tenant, "api")
    created = proton.create_service_sync_config(serviceName="api", repositoryName="octo/services", repositoryProvider="GITHUB", branch="main", filePath="proton-ops.yaml")["serviceSyncConfig"]
    assert created == {"serviceName": "api", "repositoryName": "octo/services", "repositoryProvider": "GITHUB", "branch": "main", "filePath": "proton-ops.yaml"}
    assert proton.get_service_sync_config(serviceName="api")["serviceSyncConfig"] == created
    updated = proton.update_service_sync_config(serviceName="api", repositoryName="octo/services", repositoryProvider="GITHUB", branch="dev", filePath="ops/proton-ops.yaml")["serviceSyncConfig"]
    assert updated["branch"] == "dev" and updated["filePath"] == "ops/proton-ops.yaml"
    status = proton.get_service_instance_sync_status(serviceName="api", serviceInstanceName="prod")
    assert {k: v for k, v in status.items() if k != "ResponseMetadata"} == {}
    summary = proton.get_service_sync_blocker_summary(serviceName="api")["serviceSyncBlockerSummary"]
    assert summary == {"serviceName": "api", "latestBlockers": []}
    summary = proton.get_service_sync_blocker_summary(serviceName="api", serviceInstanceName="prod")["serviceSyncBlockerSummary"]
    assert summary == {"serviceName": "api", "serviceInstanceName": "prod", "latestBlockers": []}
    with pytest.raises(ClientError) as e:
        proton.update_service_sync_blocker(id="missing", resolvedReason="ok")
    assert error_code(e) == "ResourceNotFoundException"
    with pytest.raises(ClientError) as e:
        proton.get_service_instance_sync_status(serviceName="other", serviceInstanceName="prod")
    assert error_code(e) == "ResourceNotFoundException"
    assert proton.delete_service_sync_config(serviceName="api")["serviceSyncConfig"] == updated
    with pytest.raises(ClientError) as e:
        proton.get_service_sync_config(serviceName="api")
    assert error_code(e) == "ResourceNotFoundException"


def test_repository_status_and_definitions(tenant, github):
    proton = tenant.client("proton")
    proton.create_repository(connectionArn=github, name="octo/templates", provider="GITHUB")
    status = proton.get_repository_sync_status(repositoryName="octo/templates", repositoryProvider="GITHUB", branch="main", syncType="TEMPLATE_SYNC")
    assert "latestSync" not in status
    with pytest.raises(ClientError) as e:
        proton.get_repository_sync_status(repositoryName="octo/none", repositoryProvider="GITHUB", branch="main", syncType="TEMPLATE_SYNC")
    assert error_code(e) == "ResourceNotFoundException"
    defs = proton.list_repository_sync_definitions(repositoryName="octo/templates", repositoryProvider="GITHUB", syncType="TEMPLATE_SYNC")
    assert defs["syncDefinitions"] == []


def test_statuses_answer_from_recorded_history(tenant, github):
    proton = tenant.client("proton")
    proton.create_repository(connectionArn=github, name="octo/templates", provider="GITHUB")
    proton.create_template_sync_config(templateName="seeded-template", templateType="ENVIRONMENT", repositoryName="octo/templates", repositoryProvider="GITHUB", branch="main")
    make_service(tenant, "seeded-service")
    proton.create_service_sync_config(serviceName="seeded-service", repositoryName="octo/templates", repositoryProvider="GITHUB", branch="main", filePath="ops.yaml")
    # The configurations are watched at once, and the engine's own check of main fails (github.com
    # is out of reach): let it fail first (it then backs off), so the seeded history is the newest.
    def engine_checked():
        latest = proton.get_repository_sync_status(repositoryName="octo/templates", repositoryProvider="GITHUB",
                                                   branch="main", syncType="TEMPLATE_SYNC").get("latestSync")
        return latest and latest["status"] == "FAILED"
    deadline = time.time() + 60
    while not engine_checked():
        assert time.time() < deadline, "the engine never checked main"
        time.sleep(0.2)
    seeded = tenant.seed_history()
    status = proton.get_template_sync_status(templateName="seeded-template", templateType="ENVIRONMENT", templateVersion="1")
    assert status["latestSync"]["status"] == "FAILED"
    assert status["latestSuccessfulSync"]["status"] == "SUCCEEDED"
    assert status["latestSync"]["target"] == "seeded-template:1"
    assert status["desiredState"] == {
        "branch": "main", "directory": "seeded-template/v1", "repositoryName": "octo/templates",
        "repositoryProvider": "GITHUB", "sha": seeded["new"],
    }
    assert status["latestSuccessfulSync"]["startedAt"].timestamp() == pytest.approx(1700000000.123, abs=1e-6)
    instance = proton.get_service_instance_sync_status(serviceName="seeded-service", serviceInstanceName="seeded-instance")
    assert instance["latestSync"]["target"] == "seeded-instance"
    assert [e["type"] for e in instance["latestSync"]["events"]] == ["SYNC_STARTED", "VALIDATION_FAILED"]
    repo = proton.get_repository_sync_status(repositoryName="octo/templates", repositoryProvider="GITHUB", branch="main", syncType="TEMPLATE_SYNC")
    assert repo["latestSync"]["events"][0]["type"] == "CLONE_STARTED"
    defs = proton.list_repository_sync_definitions(repositoryName="octo/templates", repositoryProvider="GITHUB", syncType="TEMPLATE_SYNC")
    assert defs["syncDefinitions"] == [{"branch": "main", "directory": "seeded-template/v1", "parent": "seeded-template", "target": "seeded-template:1"}]
    summary = proton.get_service_sync_blocker_summary(serviceName="seeded-service", serviceInstanceName="seeded-instance")["serviceSyncBlockerSummary"]
    (blocker,) = summary["latestBlockers"]
    assert blocker["id"] == seeded["instance_blocker"] and blocker["status"] == "ACTIVE"
    resolved = proton.update_service_sync_blocker(id=blocker["id"], resolvedReason="reviewed")
    assert resolved["serviceName"] == "seeded-service" and resolved["serviceInstanceName"] == "seeded-instance"
    assert resolved["serviceSyncBlocker"]["status"] == "RESOLVED"
    with pytest.raises(ClientError) as e:
        proton.update_service_sync_blocker(id=blocker["id"], resolvedReason="again")
    assert error_code(e) == "ResourceNotFoundException"


def test_tags_on_proton_resources(tenant, github):
    proton = tenant.client("proton")
    arn = proton.create_repository(connectionArn=github, name="octo/t", provider="GITHUB")["repository"]["arn"]
    proton.tag_resource(resourceArn=arn, tags=[{"key": "a", "value": "1"}, {"key": "b", "value": "2"}])
    proton.untag_resource(resourceArn=arn, tagKeys=["a"])
    assert proton.list_tags_for_resource(resourceArn=arn)["tags"] == [{"key": "b", "value": "2"}]
    with pytest.raises(ClientError) as e:
        proton.tag_resource(resourceArn=github, tags=[{"key": "a", "value": "1"}])
    assert error_code(e) == "ResourceNotFoundException"
    with pytest.raises(ClientError) as e:
        proton.list_tags_for_resource(resourceArn=arn.replace("octo/t", "octo/none"))
    assert error_code(e) == "ResourceNotFoundException"
    with pytest.raises(ClientError) as e:
        proton.tag_resource(resourceArn=arn, tags=[{"key": f"k{i}", "value": "v"} for i in range(50)])
    assert error_code(e) == "ServiceQuotaExceededException"


def test_other_proton_operations_say_they_are_not_supported(tenant):
    proton = tenant.client("proton")
    with pytest.raises(ClientError) as e:
        proton.list_components()
    assert error_code(e) == "ValidationException"
    assert "does not support the Proton operation ListComponents yet" in error_message(e)
