"""The AWS CLI and the AWS SDK for JavaScript against the real binary."""
import json
import os
import subprocess

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
AWS = os.environ.get("GITSYNC_AWS_CLI", "aws")


def aws(tenant, *args, check=True):
    result = subprocess.run(
        [AWS, *args, "--endpoint-url", tenant.server.endpoint, "--output", "json"],
        capture_output=True, text=True, env=tenant.env(), timeout=120,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"aws {' '.join(args)} exited {result.returncode}: {result.stderr}")
    return result


def aws_json(tenant, *args):
    out = aws(tenant, *args).stdout
    return json.loads(out) if out.strip() else {}


@pytest.mark.parametrize("service", ["codeconnections", "codestar-connections"])
def test_cli_connection_cycle(tenant, service):
    arn = aws_json(tenant, service, "create-connection", "--connection-name", "cli", "--provider-type", "GitHub")["ConnectionArn"]
    assert aws_json(tenant, service, "get-connection", "--connection-arn", arn)["Connection"]["ConnectionStatus"] == "PENDING"
    assert [c["ConnectionArn"] for c in aws_json(tenant, service, "list-connections")["Connections"]] == [arn]
    aws(tenant, service, "delete-connection", "--connection-arn", arn)
    missing = aws(tenant, service, "get-connection", "--connection-arn", arn, check=False)
    assert missing.returncode == 255
    assert "An error occurred (ResourceNotFoundException) when calling the GetConnection operation" in missing.stderr


def test_cli_link_and_sync_configuration_cycle(tenant):
    arn = aws_json(tenant, "codeconnections", "create-connection", "--connection-name", "cli", "--provider-type", "GitLab")["ConnectionArn"]
    link = aws_json(tenant, "codeconnections", "create-repository-link", "--connection-arn", arn, "--owner-id", "grp", "--repository-name", "infra")["RepositoryLinkInfo"]
    config = aws_json(
        tenant, "codeconnections", "create-sync-configuration", "--branch", "main", "--config-file", "deploy.yaml",
        "--repository-link-id", link["RepositoryLinkId"], "--resource-name", "cli-stack",
        "--role-arn", tenant.role_arn("r"), "--sync-type", "CFN_STACK_SYNC",
    )["SyncConfiguration"]
    assert config["ProviderType"] == "GitLab"
    got = aws_json(tenant, "codeconnections", "get-sync-configuration", "--resource-name", "cli-stack", "--sync-type", "CFN_STACK_SYNC")
    assert got["SyncConfiguration"] == config
    listed = aws_json(tenant, "codeconnections", "list-sync-configurations", "--repository-link-id", link["RepositoryLinkId"], "--sync-type", "CFN_STACK_SYNC")
    assert listed["SyncConfigurations"] == [config]
    status = aws(tenant, "codeconnections", "get-resource-sync-status", "--resource-name", "cli-stack", "--sync-type", "CFN_STACK_SYNC", check=False)
    assert status.returncode == 255 and "ResourceNotFoundException" in status.stderr
    aws(tenant, "codeconnections", "delete-sync-configuration", "--resource-name", "cli-stack", "--sync-type", "CFN_STACK_SYNC")
    aws(tenant, "codeconnections", "delete-repository-link", "--repository-link-id", link["RepositoryLinkId"])
    assert aws_json(tenant, "codeconnections", "list-repository-links")["RepositoryLinks"] == []


def test_cli_proton_repository_cycle(tenant):
    arn = tenant.client("codeconnections").create_connection(ConnectionName="gh", ProviderType="GitHub")["ConnectionArn"]
    repo = aws_json(tenant, "proton", "create-repository", "--connection-arn", arn, "--name", "octo/cli", "--provider", "GITHUB")["repository"]
    assert repo["arn"].endswith(":repository/github:octo/cli")
    assert aws_json(tenant, "proton", "get-repository", "--name", "octo/cli", "--provider", "GITHUB")["repository"] == repo
    assert [r["name"] for r in aws_json(tenant, "proton", "list-repositories")["repositories"]] == ["octo/cli"]
    aws(tenant, "proton", "create-template-sync-config", "--template-name", "vpc", "--template-type", "ENVIRONMENT",
        "--repository-name", "octo/cli", "--repository-provider", "GITHUB", "--branch", "main")
    status = aws_json(tenant, "proton", "get-template-sync-status", "--template-name", "vpc", "--template-type", "ENVIRONMENT", "--template-version", "1")
    assert status == {}
    aws(tenant, "proton", "delete-template-sync-config", "--template-name", "vpc", "--template-type", "ENVIRONMENT")
    aws(tenant, "proton", "delete-repository", "--name", "octo/cli", "--provider", "GITHUB")
    gone = aws(tenant, "proton", "get-repository", "--name", "octo/cli", "--provider", "GITHUB", check=False)
    assert gone.returncode == 255 and "ResourceNotFoundException" in gone.stderr


def test_cli_uses_the_generated_credentials_file(server):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["AWS_SHARED_CREDENTIALS_FILE"] = os.path.join(server.data_dir, "credentials")
    env["AWS_CONFIG_FILE"] = os.path.join(server.data_dir, "no-config")
    result = subprocess.run(
        [AWS, "codeconnections", "list-hosts", "--endpoint-url", server.endpoint, "--region", "us-east-1", "--output", "json"],
        capture_output=True, text=True, env=env, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"Hosts": []}


def test_javascript_sdk(tenant):
    cc = tenant.client("codeconnections")
    keep = cc.create_connection(ConnectionName="keep", ProviderType="GitHub")["ConnectionArn"]
    proton = tenant.client("proton")
    proton.create_repository(connectionArn=keep, name="octo/templates", provider="GITHUB")
    proton.create_template_sync_config(templateName="seeded-template", templateType="ENVIRONMENT", repositoryName="octo/templates", repositoryProvider="GITHUB", branch="main")
    seeded = tenant.seed_history()
    env = tenant.env()
    env["GITSYNC_JS_MODULES"] = os.environ.get("GITSYNC_JS_MODULES", os.path.join(HERE, "..", "js", "node_modules"))
    result = subprocess.run(["node", os.path.join(HERE, "..", "js", "scenario.mjs")], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["connection"]["ConnectionName"] == "js" and out["connection"]["OwnerAccountId"] == tenant.account_id
    assert sorted(out["listed"]) == sorted([keep, out["connectionArn"]])
    assert out["link"]["RepositoryName"] == "js-infra"
    assert out["stackStartedAtIsDate"] and out["stackStartedAt"] == "2023-11-14T22:13:20.123Z"
    assert out["stackLatestStatus"] == "FAILED"
    assert out["stackEvents"] == [["SYNC_STARTED", True], ["VALIDATION_FAILED", True]]
    assert out["missingConnection"]["name"] == "ResourceNotFoundException" and out["missingConnection"]["status"] == 400
    assert out["missingConnection"]["fault"] == "client"
    assert out["invalidInput"]["name"] == "ValidationException"
    assert out["afterDelete"] == [keep]
    assert out["repository"]["arn"].endswith(":repository/github:octo/js")
    assert out["repositories"] == ["octo/js", "octo/templates"]
    assert out["templateStartedAt"] == "2023-11-14T22:13:20.123Z"
    assert out["templateDesiredSha"] == seeded["new"]
    assert out["missingRepository"]["name"] == "ResourceNotFoundException"
    assert out["unsupported"]["name"] == "ValidationException"
