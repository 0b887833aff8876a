"""Proton template sync end to end: template versions registered from pushes to a real Git server."""
import time

import pytest
from botocore.exceptions import ClientError

from conftest import make_tenant
from gitserver import GitHttpServer, Repo
from test_engine import engine, wait_for  # noqa: F401  (the module's server fixture)

SCHEMA = 'schema:\n  format:\n    openapi: "3.0.0"\n  environment_input_type: "Input"\n  types:\n    Input:\n      type: object\n      properties:\n        size:\n          type: string\n'
MANIFEST = "infrastructure:\n  templates:\n    - file: cloudformation.yaml\n      rendering_engine: jinja\n      template_language: cloudformation\n"


def bundle(root, major, body="Resources: {}\n"):
    return {
        f"{root}/v{major}/schema/schema.yaml": SCHEMA,
        f"{root}/v{major}/infrastructure/manifest.yaml": MANIFEST,
        f"{root}/v{major}/infrastructure/cloudformation.yaml": body,
    }


@pytest.fixture(scope="module")
def git_http(tmp_path_factory):
    server = GitHttpServer(str(tmp_path_factory.mktemp("git-root"))).start()
    yield server
    server.stop()


def setup(engine, git_http, tmp_path, repo_name):
    repo = Repo(git_http.root, "octo", repo_name, str(tmp_path / "work"))
    tenant = make_tenant(engine)
    cc = tenant.client("codeconnections")
    host = cc.create_host(Name="ghe", ProviderEndpoint=git_http.url, ProviderType="GitHubEnterpriseServer")["HostArn"]
    conn = cc.create_connection(ConnectionName="ghe", HostArn=host)["ConnectionArn"]
    engine.cli("connections", "activate", conn)
    proton = tenant.client("proton")
    proton.create_repository(connectionArn=conn, name=f"octo/{repo_name}", provider="GITHUB_ENTERPRISE")
    return repo, tenant, proton


def versions(proton, name):
    return [(v["majorVersion"], v["minorVersion"], v["status"]) for v in proton.list_environment_template_versions(templateName=name)["templateVersions"]]


def status(proton, name, major):
    return proton.get_template_sync_status(templateName=name, templateType="ENVIRONMENT", templateVersion=str(major))


def settled(proton, name, major, sha, state="SUCCEEDED"):
    def check():
        s = status(proton, name, major)
        latest = s.get("latestSync")
        return s if latest and latest["targetRevision"]["sha"] == sha and latest["status"] == state else None
    return wait_for(check, what=f"{name}:{major} {state} at {sha[:8]}")


def test_majors_register_minors_independently(engine, git_http, tmp_path):
    repo, tenant, proton = setup(engine, git_http, tmp_path, "templates")
    first = repo.commit({**bundle("templates/vpc", 1), **bundle("templates/vpc", 2), "README.md": "hi"})
    proton.create_environment_template(name="vpc")
    proton.create_template_sync_config(templateName="vpc", templateType="ENVIRONMENT", repositoryName="octo/templates",
                                       repositoryProvider="GITHUB_ENTERPRISE", branch="main")
    s1 = settled(proton, "vpc", 1, first)
    settled(proton, "vpc", 2, first)
    assert sorted(versions(proton, "vpc")) == [("1", "0", "DRAFT"), ("2", "0", "DRAFT")]
    assert s1["latestSync"]["target"] == "vpc:1"
    assert s1["desiredState"]["directory"] == "templates/vpc/v1"
    assert s1["desiredState"]["repositoryName"] == "octo/templates" and s1["desiredState"]["repositoryProvider"] == "GITHUB_ENTERPRISE"
    assert [e["type"] for e in s1["latestSync"]["events"]] == ["SYNC_STARTED", "VERSION_REGISTERED"]
    assert s1["latestSync"]["events"][-1]["event"] == "Registered environment template vpc version 1.0 (DRAFT)"
    defs = proton.list_repository_sync_definitions(repositoryName="octo/templates", repositoryProvider="GITHUB_ENTERPRISE", syncType="TEMPLATE_SYNC")
    assert sorted((d["parent"], d["target"], d["directory"]) for d in defs["syncDefinitions"]) == [
        ("vpc", "vpc:1", "templates/vpc/v1"), ("vpc", "vpc:2", "templates/vpc/v2")]
    repo_status = proton.get_repository_sync_status(repositoryName="octo/templates", repositoryProvider="GITHUB_ENTERPRISE", branch="main", syncType="TEMPLATE_SYNC")
    assert repo_status["latestSync"]["status"] == "SUCCEEDED"

    # A change to v1 registers 1.1 and leaves v2 alone.
    second = repo.commit(bundle("templates/vpc", 1, body="Resources:\n  Q:\n    Type: AWS::SQS::Queue\n"))
    settled(proton, "vpc", 1, second)
    assert sorted(versions(proton, "vpc")) == [("1", "0", "DRAFT"), ("1", "1", "DRAFT"), ("2", "0", "DRAFT")]
    assert status(proton, "vpc", 2)["latestSync"]["targetRevision"]["sha"] == first
    # An unrelated commit registers nothing.
    third = repo.commit({"README.md": "changed"})
    wait_for(lambda: proton.get_repository_sync_status(repositoryName="octo/templates", repositoryProvider="GITHUB_ENTERPRISE",
                                                        branch="main", syncType="TEMPLATE_SYNC")["latestSync"]["events"][-1].get("externalId") == third,
             what="repository sync of the README commit")
    time.sleep(1)
    assert len(versions(proton, "vpc")) == 3

    # gitsync shows what a version was registered from.
    out = engine.cli("template-files", "--template-type", "ENVIRONMENT", "--name", "vpc", "--version", "1.1",
                     "--account-id", tenant.account_id).stdout
    assert f"registered from commit {second}" in out and "infrastructure/cloudformation.yaml" in out
    body = engine.cli("template-files", "--template-type", "ENVIRONMENT", "--name", "vpc", "--version", "1.1",
                      "--path", "infrastructure/cloudformation.yaml", "--account-id", tenant.account_id).stdout
    assert "AWS::SQS::Queue" in body
    # The AWS CLI reads the template sync status too.
    import json
    import os
    import subprocess
    aws = os.environ.get("GITSYNC_AWS_CLI", "aws")
    result = subprocess.run([aws, "proton", "get-template-sync-status", "--template-name", "vpc", "--template-type", "ENVIRONMENT",
                             "--template-version", "1", "--endpoint-url", engine.endpoint, "--output", "json"],
                            capture_output=True, text=True, env=tenant.env(), timeout=120)
    assert result.returncode == 0, result.stderr
    cli_status = json.loads(result.stdout)
    assert cli_status["latestSync"]["targetRevision"]["sha"] == second and cli_status["latestSync"]["status"] == "SUCCEEDED"

    # Publishing does not disturb sync.
    proton.update_environment_template_version(templateName="vpc", majorVersion="1", minorVersion="1", status="PUBLISHED")
    assert proton.get_environment_template(name="vpc")["environmentTemplate"]["recommendedVersion"] == "1.1"
    fourth = repo.commit(bundle("templates/vpc", 1, body="Resources:\n  R:\n    Type: AWS::SQS::Queue\n"))
    settled(proton, "vpc", 1, fourth)
    assert ("1", "2", "DRAFT") in versions(proton, "vpc")
    assert proton.get_environment_template(name="vpc")["environmentTemplate"]["recommendedVersion"] == "1.1"


def test_broken_bundle_fails_and_a_fix_recovers(engine, git_http, tmp_path):
    repo, tenant, proton = setup(engine, git_http, tmp_path, "broken")
    files = bundle("net", 1)
    del files["net/v1/infrastructure/cloudformation.yaml"]
    bad = repo.commit(files)
    proton.create_environment_template(name="net")
    proton.create_template_sync_config(templateName="net", templateType="ENVIRONMENT", repositoryName="octo/broken",
                                       repositoryProvider="GITHUB_ENTERPRISE", branch="main")
    s = settled(proton, "net", 1, bad, "FAILED")
    assert s["latestSync"]["events"][-1]["type"] == "VALIDATION_FAILED"
    assert s["latestSync"]["events"][-1]["event"] == "net/v1/infrastructure/manifest.yaml: names cloudformation.yaml, which is not in infrastructure/"
    assert versions(proton, "net") == []
    fixed = repo.commit(bundle("net", 1))
    settled(proton, "net", 1, fixed)
    assert versions(proton, "net") == [("1", "0", "DRAFT")]


def test_a_missing_template_is_named(engine, git_http, tmp_path):
    repo, tenant, proton = setup(engine, git_http, tmp_path, "orphan")
    sha = repo.commit(bundle("ghost", 1))
    proton.create_template_sync_config(templateName="ghost", templateType="ENVIRONMENT", repositoryName="octo/orphan",
                                       repositoryProvider="GITHUB_ENTERPRISE", branch="main")
    s = settled(proton, "ghost", 1, sha, "FAILED")
    assert "create it with CreateEnvironmentTemplate" in s["latestSync"]["events"][-1]["event"]


def test_deleting_the_last_synced_version_registers_again(engine, git_http, tmp_path):
    repo, tenant, proton = setup(engine, git_http, tmp_path, "again")
    first = repo.commit({**bundle("app", 1), **bundle("app", 2)})
    proton.create_environment_template(name="app")
    proton.create_template_sync_config(templateName="app", templateType="ENVIRONMENT", repositoryName="octo/again",
                                       repositoryProvider="GITHUB_ENTERPRISE", branch="main")
    settled(proton, "app", 1, first)
    settled(proton, "app", 2, first)
    proton.delete_environment_template_version(templateName="app", majorVersion="1", minorVersion="0")
    second = repo.commit({"README.md": "unrelated"})
    settled(proton, "app", 1, second)
    assert sorted(versions(proton, "app")) == [("1", "0", "DRAFT"), ("2", "0", "DRAFT")]
    # Major 2 still has the version it registered: nothing new there.
    assert status(proton, "app", 2)["latestSync"]["targetRevision"]["sha"] == first


def service_bundle(root, major, compat="vpc:1"):
    schema = 'schema:\n  format:\n    openapi: "3.0.0"\n  service_input_type: "Svc"\n  types:\n    Svc:\n      type: object\n'
    return {
        f"{root}/v{major}/schema/schema.yaml": schema,
        f"{root}/v{major}/instance_infrastructure/manifest.yaml": MANIFEST,
        f"{root}/v{major}/instance_infrastructure/cloudformation.yaml": "Resources: {}\n",
        f"{root}/v{major}/.template-registration.yaml": f"compatible_environments:\n  - {compat}\nsupported_component_sources:\n  - DIRECTLY_DEFINED\n",
    }


def test_service_templates_with_two_majors(engine, git_http, tmp_path):
    repo, tenant, proton = setup(engine, git_http, tmp_path, "services")
    first = repo.commit({**service_bundle("svc/api", 1), **service_bundle("svc/api", 2, compat="vpc:2")})
    proton.create_service_template(name="api")
    proton.create_template_sync_config(templateName="api", templateType="SERVICE", repositoryName="octo/services",
                                       repositoryProvider="GITHUB_ENTERPRISE", branch="main", subdirectory="svc")
    for major in (1, 2):
        wait_for(lambda: (proton.get_template_sync_status(templateName="api", templateType="SERVICE", templateVersion=str(major))
                          .get("latestSync", {}).get("status") == "SUCCEEDED"), what=f"api:{major}")
    v2 = proton.get_service_template_version(templateName="api", majorVersion="2", minorVersion="0")["serviceTemplateVersion"]
    assert v2["compatibleEnvironmentTemplates"] == [{"templateName": "vpc", "majorVersion": "2"}]
    assert v2["supportedComponentSources"] == ["DIRECTLY_DEFINED"]
    # A registration without compatible environments fails, naming the file.
    bad = repo.commit({"svc/api/v1/.template-registration.yaml": "supported_component_sources: []\n"})
    def failed():
        s = proton.get_template_sync_status(templateName="api", templateType="SERVICE", templateVersion="1")["latestSync"]
        return s if s["targetRevision"]["sha"] == bad and s["status"] == "FAILED" else None
    s = wait_for(failed, what="api:1 FAILED")
    assert "svc/api/v1/.template-registration.yaml: compatible_environments must list" in s["events"][-1]["event"]
    assert [v["minorVersion"] for v in proton.list_service_template_versions(templateName="api", majorVersion="1")["templateVersions"]] == ["0"]
