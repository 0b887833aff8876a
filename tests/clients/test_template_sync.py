"""Proton template sync end to end: template versions registered from pushes to a real Git server."""
import hashlib
import hmac
import json
import time
import urllib.request

import pytest
from botocore.exceptions import ClientError

from conftest import Server, make_tenant
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


def ended_at(proton, name, major, sha, state):
    """The status when the latest attempt targets `sha` and ended in `state`, else None."""
    s = status(proton, name, major)
    latest = s.get("latestSync")
    return s if latest and latest["targetRevision"]["sha"] == sha and latest["status"] == state else None


def settled(proton, name, major, sha, state="SUCCEEDED"):
    return wait_for(lambda: ended_at(proton, name, major, sha, state), what=f"{name}:{major} {state} at {sha[:8]}")


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
    # A repository sync just started has no events yet: wait for the one that names the commit.
    wait_for(lambda: any(e.get("externalId") == third for e in proton.get_repository_sync_status(
                 repositoryName="octo/templates", repositoryProvider="GITHUB_ENTERPRISE", branch="main",
                 syncType="TEMPLATE_SYNC")["latestSync"]["events"]),
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
    assert s["latestSync"]["events"][-1]["event"] == (
        "Environment template ghost does not exist: create it with CreateEnvironmentTemplate; "
        "the sync is retried with backoff, and at once when the template is created")
    # The operator sees the failure in the log, with the sync type, the template and the reason.
    warned = [line for line in open(engine.log_path).read().splitlines()
              if "WARN" in line and "resource sync failed" in line and "target=ENVIRONMENT template ghost major version 1" in line]
    assert warned and "TEMPLATE_SYNC" in warned[-1] and "does not exist: create it with CreateEnvironmentTemplate" in warned[-1], warned
    # An API call fixes it, not a commit: creating the template syncs the same commit at once
    # (well before the 30 s backoff).
    proton.create_environment_template(name="ghost")
    s = wait_for(lambda: ended_at(proton, "ghost", 1, sha, "SUCCEEDED"), timeout=15, what="the retry after CreateEnvironmentTemplate")
    assert s["latestSync"]["events"][-1]["type"] == "VERSION_REGISTERED"
    assert versions(proton, "ghost") == [("1", "0", "DRAFT")]


def test_sync_now_for_proton_repositories_and_templates(git_http, tmp_path):
    """With polling once an hour, `gitsync sync --repository PROVIDER:NAME --branch B` reads a
    new commit at once, and `gitsync sync --template … --major M` retries a major's latest commit."""
    server = Server(["--poll-interval", "1h", "--lease-ttl", "3s"]).start()
    try:
        repo, tenant, proton = setup(server, git_http, tmp_path, "sync-now")
        first = repo.commit(bundle("tpl", 1))
        proton.create_environment_template(name="tpl")
        proton.create_template_sync_config(templateName="tpl", templateType="ENVIRONMENT", repositoryName="octo/sync-now",
                                           repositoryProvider="GITHUB_ENTERPRISE", branch="main")
        settled(proton, "tpl", 1, first)
        second = repo.commit(bundle("tpl", 1, body="Resources:\n  Q:\n    Type: AWS::SQS::Queue\n"))
        run = lambda *args, check=True: server.cli("sync", *args, "--account-id", tenant.account_id, check=check)
        out = run("--repository", "GITHUB_ENTERPRISE:octo/sync-now", "--branch", "main").stdout
        assert out == "branch main of GITHUB_ENTERPRISE:octo/sync-now will be checked now\n"
        settled(proton, "tpl", 1, second)
        assert versions(proton, "tpl") == [("1", "0", "DRAFT"), ("1", "1", "DRAFT")]

        # Retrying a major's latest commit runs a new attempt at that commit; its version is
        # registered already, so it registers nothing.
        before = status(proton, "tpl", 1)["latestSync"]["startedAt"]
        out = run("--template", "tpl", "--template-type", "ENVIRONMENT", "--major", "1").stdout
        assert out == "template tpl major version 1 will retry its latest commit now\n"
        retried = wait_for(lambda: (lambda l: l if l["startedAt"] != before and l["status"] == "SUCCEEDED" and l["targetRevision"]["sha"] == second else None)(
            status(proton, "tpl", 1)["latestSync"]), what="the retried attempt")
        assert retried["events"][-1]["type"] == "NO_CHANGES", retried["events"]
        assert retried["events"][-1]["event"] == f"Environment template tpl version 1.1 is registered from commit {second} already; nothing registered"
        assert versions(proton, "tpl") == [("1", "0", "DRAFT"), ("1", "1", "DRAFT")]

        # `gitsync status` shows a template major's sync too.
        out = server.cli("status", "--template", "tpl", "--template-type", "ENVIRONMENT", "--major", "1",
                         "--account-id", tenant.account_id).stdout.splitlines()
        assert out[0] == "Template tpl (ENVIRONMENT) syncs from octo/sync-now (GITHUB_ENTERPRISE) branch main, major version 1 from v1/"
        assert f"Latest sync: SUCCEEDED at commit {second} (from {second})" in out[2], out
        assert any("NO_CHANGES" in line and "nothing registered" in line for line in out), out

        # A webhook for the Proton repository checks its branch too: the secret is set by the
        # Proton repository's ARN, and a signed push registers the next minor at once.
        arn = proton.get_repository(name="octo/sync-now", provider="GITHUB_ENTERPRISE")["repository"]["arn"]
        secret = tmp_path / "secret"
        secret.write_text("proton-hook\n")
        out = server.cli("webhooks", "set-secret", arn, "--secret-file", str(secret)).stdout
        assert out == "webhook secret set for octo/sync-now\n"
        third = repo.commit(bundle("tpl", 1, body="Resources:\n  R:\n    Type: AWS::SQS::Queue\n"))
        body = json.dumps({"ref": "refs/heads/main", "after": third, "repository": {"full_name": "octo/sync-now"}}).encode()
        signature = "sha256=" + hmac.new(b"proton-hook", body, hashlib.sha256).hexdigest()
        request = urllib.request.Request(f"{server.endpoint}/webhooks/github", data=body, method="POST", headers={
            "Content-Type": "application/json", "X-Hub-Signature-256": signature, "X-GitHub-Event": "push"})
        with urllib.request.urlopen(request, timeout=10) as answer:
            assert answer.status == 202 and json.loads(answer.read())["branchesTriggered"] == 1
        settled(proton, "tpl", 1, third)
        assert versions(proton, "tpl")[-1] == ("1", "2", "DRAFT")
        unknown = arn.replace("octo/sync-now", "octo/none")
        result = server.cli("webhooks", "set-secret", unknown, "--secret-file", str(secret), check=False)
        assert result.returncode != 0 and "octo/none" in result.stderr, result.stderr

        # Mistakes are named, and change nothing.
        for args, message in [
            (("--repository", "GITLAB:octo/sync-now", "--branch", "main"), "give PROVIDER:NAME"),
            (("--repository", "GITHUB_ENTERPRISE:octo/sync-now", "--branch", "nope"), "no sync configuration watches branch nope"),
            (("--repository", "GITHUB_ENTERPRISE:octo/none", "--branch", "main"), "octo/none"),
            (("--template", "tpl", "--template-type", "CLOUD", "--major", "1"), "give ENVIRONMENT or SERVICE"),
            (("--template", "tpl", "--template-type", "ENVIRONMENT", "--major", "7"), "has no commit to sync yet"),
            (("--template", "nope", "--template-type", "ENVIRONMENT", "--major", "1"), "nope"),
            (("--repository", "GITHUB_ENTERPRISE:octo/sync-now"), "--branch"),
        ]:
            result = run(*args, check=False)
            assert result.returncode != 0 and message in result.stderr, (args, result.stderr)
    finally:
        server.cleanup()


def test_kill_nine_while_commits_stream_registers_each_commit_at_most_once(git_http, tmp_path):
    """Commits keep arriving while the server is SIGKILLed at random moments and restarted: every
    registered version comes from a distinct commit (a version and its attempt's record commit
    together, so a takeover never registers a commit again), and at the end nothing is stuck."""
    import random
    rng = random.Random(7)
    server = Server(["--poll-interval", "1s", "--lease-ttl", "2s"]).start()
    try:
        repo, tenant, proton = setup(server, git_http, tmp_path, "crashes")
        sha = repo.commit(bundle("crash", 1))
        proton.create_environment_template(name="crash")
        proton.create_template_sync_config(templateName="crash", templateType="ENVIRONMENT", repositoryName="octo/crashes",
                                           repositoryProvider="GITHUB_ENTERPRISE", branch="main")
        commits = [sha]
        for round in range(8):
            time.sleep(rng.uniform(0.2, 2.5))
            sha = repo.commit(bundle("crash", 1, body=f"Resources:\n  Q{round}:\n    Type: AWS::SQS::Queue\n"))
            commits.append(sha)
            time.sleep(rng.uniform(0.0, 1.5))
            server.kill_and_restart()
            proton = tenant.client("proton")
        settled(proton, "crash", 1, commits[-1])
        summaries = proton.list_environment_template_versions(templateName="crash")["templateVersions"]
        sources = []
        for v in summaries:
            full = proton.get_environment_template_version(templateName="crash", majorVersion=v["majorVersion"],
                                                            minorVersion=v["minorVersion"])["environmentTemplateVersion"]
            sources.append(full["description"].removeprefix("Synced from commit "))
        assert len(sources) == len(set(sources)), sources
        assert set(sources) <= set(commits) and commits[-1] in sources, (sources, commits)
        latest = status(proton, "crash", 1)["latestSync"]
        assert latest["status"] == "SUCCEEDED" and latest["targetRevision"]["sha"] == commits[-1]
    finally:
        server.cleanup()


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


def fixture_bundle(template, root):
    """The files of tests/fixtures/proton/<template>/v1, placed under `root`/v1."""
    import os
    base = os.path.join(os.path.dirname(__file__), "..", "fixtures", "proton", template, "v1")
    files = {}
    for dirpath, _, names in os.walk(base):
        for name in names:
            path = os.path.join(dirpath, name)
            files[f"{root}/v1/{os.path.relpath(path, base)}"] = open(path).read()
    return files


def test_jinja_templates_in_the_style_of_protons_samples_register(engine, git_http, tmp_path):
    """Proton's infrastructure files are Jinja: `{% if %}` and `{% for %}` lines make them YAML
    only once rendered. Template sync renders each with stand-ins and registers them; a template
    that uses an input its schema does not define fails, naming the file and line."""
    repo, tenant, proton = setup(engine, git_http, tmp_path, "samples")
    files = {**fixture_bundle("vpc-env", "templates/vpc-env"), **fixture_bundle("fargate-svc", "templates/fargate-svc"),
             **fixture_bundle("lambda-svc", "templates/lambda-svc")}
    sha = repo.commit(files)
    proton.create_environment_template(name="vpc-env")
    proton.create_service_template(name="fargate-svc")
    proton.create_service_template(name="lambda-svc")
    for name, kind in (("vpc-env", "ENVIRONMENT"), ("fargate-svc", "SERVICE"), ("lambda-svc", "SERVICE")):
        proton.create_template_sync_config(templateName=name, templateType=kind, repositoryName="octo/samples",
                                           repositoryProvider="GITHUB_ENTERPRISE", branch="main", subdirectory="templates")
    for name, kind in (("vpc-env", "ENVIRONMENT"), ("fargate-svc", "SERVICE"), ("lambda-svc", "SERVICE")):
        s = wait_for(lambda: (lambda l: l if l and l["status"] in ("SUCCEEDED", "FAILED") else None)(
            proton.get_template_sync_status(templateName=name, templateType=kind, templateVersion="1").get("latestSync")),
            what=f"{name} registered")
        assert s["status"] == "SUCCEEDED", s["events"]
    fargate = proton.get_service_template_version(templateName="fargate-svc", majorVersion="1", minorVersion="0")["serviceTemplateVersion"]
    # `.compatible-envs`, the older registration file of Proton's samples, names the environments.
    assert fargate["compatibleEnvironmentTemplates"] == [{"templateName": "vpc-env", "majorVersion": "1"}]
    # A typo in an input's name fails at registration, naming the file and line.
    broken = files["templates/vpc-env/v1/infrastructure/cloudformation.yaml"].replace(
        "environment.inputs.vpc_cidr", "environment.inputs.vpc_cdir")
    bad = repo.commit({"templates/vpc-env/v1/infrastructure/cloudformation.yaml": broken})
    failed = settled(proton, "vpc-env", 1, bad, state="FAILED")
    messages = [e["event"] for e in failed["latestSync"]["events"] if e["type"] == "VALIDATION_FAILED"]
    assert messages == ["templates/vpc-env/v1/infrastructure/cloudformation.yaml:7: undefined value: "
                        "`environment.inputs.vpc_cdir` is undefined"], failed["latestSync"]["events"]
    assert sha != bad
