"""Proton service sync end to end: service instances deployed from pushes to a real Git server.

The whole story runs against the real binary with boto3: templates registered by template sync,
environments, a service whose proton-ops file puts three instances on two branches, a change that
moves exactly one instance, an invalid spec, a manual UpdateServiceInstance that blocks only that
instance, resolving the blocker, and the next commit syncing again. The AWS CLI, the JavaScript SDK
and the Rust SDK read GetServiceInstanceSyncStatus of the real sync.
"""
import json
import os
import subprocess
import time

import pytest
from botocore.exceptions import ClientError

from conftest import SEED, error_code, error_message, make_tenant
from gitserver import GitHttpServer, Repo
from test_engine import engine, wait_for  # noqa: F401  (the module's server fixture)

HERE = os.path.dirname(__file__)
# This module's server has no CloudFormation: every deployment renders and validates, and says
# that nothing was deployed (test_proton_provisioning.py deploys for real).
VALIDATE_ONLY = "validate-only: rendered and validated, nothing was deployed"
PROVIDER = "GITHUB_ENTERPRISE"

ENV_SCHEMA = """schema:
  format:
    openapi: "3.0.0"
  environment_input_type: "EnvInput"
  types:
    EnvInput:
      type: object
      properties:
        vpc_cidr:
          type: string
          pattern: "^10\\\\."
          default: "10.0.0.0/16"
"""
SVC_SCHEMA = """schema:
  format:
    openapi: "3.0.0"
  service_input_type: "WebInput"
  types:
    WebInput:
      type: object
      properties:
        port:
          type: number
          default: 80
          minimum: 1
          maximum: 65535
        replicas:
          type: integer
          minimum: 1
        size:
          type: string
          enum: [small, large]
          default: small
      required: [replicas]
"""
MANIFEST = "infrastructure:\n  templates:\n    - file: cloudformation.yaml\n      rendering_engine: jinja\n      template_language: cloudformation\n"
TEMPLATES = {
    "templates/net/v1/schema/schema.yaml": ENV_SCHEMA,
    "templates/net/v1/infrastructure/manifest.yaml": MANIFEST,
    "templates/net/v1/infrastructure/cloudformation.yaml":
        "Resources:\n  Vpc:\n    Type: AWS::EC2::VPC\n    Properties:\n      CidrBlock: {{ environment.inputs.vpc_cidr }}\n"
        "Outputs:\n  VpcId:\n    Value: !Ref Vpc\n",
    "templates/web/v1/schema/schema.yaml": SVC_SCHEMA,
    "templates/web/v1/instance_infrastructure/manifest.yaml": MANIFEST,
    "templates/web/v1/instance_infrastructure/cloudformation.yaml":
        "Resources:\n  Queue:\n    Type: AWS::SQS::Queue\n    Properties:\n"
        "      QueueName: {{ service.name }}-{{ service_instance.name }}-{{ service_instance.inputs.replicas }}\n",
    "templates/web/v1/.template-registration.yaml": "compatible_environments:\n  - net:1\n",
}
OPS = """sync:
  services:
    api:
      dev:
        branch: dev
        spec: specs/dev.yaml
      qa:
        branch: dev
        spec: specs/dev.yaml
      prod:
        branch: main
        spec: specs/prod.yaml
"""


def dev_spec(dev_replicas=1, qa_replicas=1, qa_port=None):
    qa_port_line = f"\n      port: {qa_port}" if qa_port is not None else ""
    return (
        "proton: ServiceSpec\ninstances:\n"
        f"  - name: dev\n    environment: staging\n    spec:\n      replicas: {dev_replicas}\n"
        f"  - name: qa\n    environment: staging\n    spec:\n      replicas: {qa_replicas}{qa_port_line}\n"
    )


PROD_SPEC = "proton: ServiceSpec\ninstances:\n  - name: prod\n    environment: production\n    spec:\n      replicas: 3\n      size: large\n"


@pytest.fixture(scope="module")
def git_http(tmp_path_factory):
    server = GitHttpServer(str(tmp_path_factory.mktemp("git-root"))).start()
    yield server
    server.stop()


def setup_repository(engine, git_http, tmp_path, name):
    repo = Repo(git_http.root, "octo", name, str(tmp_path / "work"))
    tenant = make_tenant(engine)
    cc = tenant.client("codeconnections")
    host = cc.create_host(Name="ghe", ProviderEndpoint=git_http.url, ProviderType="GitHubEnterpriseServer")["HostArn"]
    conn = cc.create_connection(ConnectionName="ghe", HostArn=host)["ConnectionArn"]
    engine.cli("connections", "activate", conn)
    proton = tenant.client("proton")
    proton.create_repository(connectionArn=conn, name=f"octo/{name}", provider=PROVIDER)
    return repo, tenant, proton


def register_templates(repo, proton, repo_name):
    """Template sync registers net 1.0 and web 1.0 from Git; both are published."""
    first = repo.commit(TEMPLATES, message="templates")
    proton.create_environment_template(name="net")
    proton.create_service_template(name="web")
    for name, kind in (("net", "ENVIRONMENT"), ("web", "SERVICE")):
        proton.create_template_sync_config(templateName=name, templateType=kind, repositoryName=f"octo/{repo_name}",
                                           repositoryProvider=PROVIDER, branch="main")
    for name, kind in (("net", "ENVIRONMENT"), ("web", "SERVICE")):
        wait_for(lambda: proton.get_template_sync_status(templateName=name, templateType=kind, templateVersion="1")
                 .get("latestSync", {}).get("status") == "SUCCEEDED", what=f"template {name} registered")
    proton.update_environment_template_version(templateName="net", majorVersion="1", minorVersion="0", status="PUBLISHED")
    proton.update_service_template_version(templateName="web", majorVersion="1", minorVersion="0", status="PUBLISHED")
    return first


def instance_status(proton, instance):
    return proton.get_service_instance_sync_status(serviceName="api", serviceInstanceName=instance)


def synced(proton, instance, sha, state="SUCCEEDED"):
    def check():
        s = instance_status(proton, instance)
        latest = s.get("latestSync")
        return s if latest and latest["targetRevision"]["sha"] == sha and latest["status"] == state else None
    return wait_for(check, what=f"instance {instance} {state} at {sha[:8]}")


def latest_sha(proton, instance):
    return instance_status(proton, instance)["latestSync"]["targetRevision"]["sha"]


def environment_deployed(proton, name, status="SUCCEEDED"):
    """Waits until an environment's deployment ended (as `status`); answers the environment."""
    def check():
        env = proton.get_environment(name=name)["environment"]
        return env if env["deploymentStatus"] == status else None
    return wait_for(check, what=f"environment {name} {status}")


def instance_deployed(proton, service, name, status="SUCCEEDED"):
    def check():
        i = proton.get_service_instance(serviceName=service, name=name)["serviceInstance"]
        return i if i["deploymentStatus"] == status else None
    return wait_for(check, what=f"instance {service}/{name} {status}")


def repository_synced(proton, repo_name, branch, sha):
    def check():
        s = proton.get_repository_sync_status(repositoryName=f"octo/{repo_name}", repositoryProvider=PROVIDER,
                                              branch=branch, syncType="SERVICE_SYNC").get("latestSync")
        return s if s and s["status"] in ("SUCCEEDED", "FAILED") and any(e.get("externalId") == sha for e in s["events"]) else None
    return wait_for(check, what=f"repository sync of {branch} at {sha[:8]}")


def test_service_sync_story(engine, git_http, tmp_path):
    repo, tenant, proton = setup_repository(engine, git_http, tmp_path, "svc")
    register_templates(repo, proton, "svc")

    # Environments: the spec is checked against net 1.0's environment_input_type.
    with pytest.raises(ClientError) as e:
        proton.create_environment(protonServiceRoleArn=tenant.role_arn(), name="staging", templateName="net", templateMajorVersion="1",
                                  spec="proton: EnvironmentSpec\nspec:\n  vpc_cidr: 192.168.0.0/16\n")
    assert error_code(e) == "ValidationException"
    assert error_message(e) == "environment staging: input 'vpc_cidr' must match the pattern ^10\\."
    staging = proton.create_environment(protonServiceRoleArn=tenant.role_arn(), name="staging", templateName="net", templateMajorVersion="1",
                                        spec="proton: EnvironmentSpec\nspec:\n  vpc_cidr: 10.1.0.0/16\n")["environment"]
    # The deployment runs in the engine: in progress until it really ended.
    assert staging["templateMinorVersion"] == "0" and staging["deploymentStatus"] == "IN_PROGRESS"
    assert "deploymentStatusMessage" not in staging
    staging = environment_deployed(proton, "staging")
    assert staging["deploymentStatusMessage"] == VALIDATE_ONLY
    assert staging["lastSucceededDeploymentId"] == staging["lastAttemptedDeploymentId"]
    proton.create_environment(protonServiceRoleArn=tenant.role_arn(), name="production", templateName="net", templateMajorVersion="1", spec="proton: EnvironmentSpec\n")
    environment_deployed(proton, "production")

    # The service starts without instances; service sync creates them.
    proton.create_service(name="api", templateName="web", templateMajorVersion="1", spec="proton: ServiceSpec\ninstances: []\n")
    main = repo.commit({"proton-ops.yaml": OPS, "specs/dev.yaml": dev_spec(), "specs/prod.yaml": PROD_SPEC}, message="service sync")
    dev = repo.commit({}, message="dev branch", branch="dev")
    proton.create_service_sync_config(serviceName="api", repositoryName="octo/svc", repositoryProvider=PROVIDER,
                                      branch="main", filePath="proton-ops.yaml")
    prod_status = synced(proton, "prod", main)
    synced(proton, "dev", dev)
    synced(proton, "qa", dev)
    assert prod_status["latestSync"]["target"] == "prod"
    assert prod_status["desiredState"] == {"branch": "main", "directory": "specs/prod.yaml", "repositoryName": "octo/svc",
                                           "repositoryProvider": PROVIDER, "sha": main}
    # The attempt started the instance's deployment, copied its events and ended as it ended.
    events = prod_status["latestSync"]["events"]
    assert [e["type"] for e in events] == ["SYNC_STARTED", "DEPLOYMENT_STARTED", "VALIDATION_SUCCEEDED", "DEPLOYMENT_SUCCEEDED"]
    prod = proton.get_service_instance(serviceName="api", name="prod")["serviceInstance"]
    deployment_id = prod["lastAttemptedDeploymentId"]
    assert events[1]["externalId"] == deployment_id and "started from specs/prod.yaml" in events[1]["event"]
    assert "no CloudFormation endpoint is configured, nothing was deployed" in events[2]["event"]
    assert events[-1]["event"] == f"Deployment {deployment_id} of service instance prod of service api succeeded: {VALIDATE_ONLY}"
    assert prod["deploymentStatus"] == "SUCCEEDED" and prod["lastSucceededDeploymentId"] == deployment_id
    assert (prod["environmentName"], prod["templateName"], prod["templateMajorVersion"], prod["templateMinorVersion"]) == \
        ("production", "web", "1", "0")
    assert "replicas: 3" in prod["spec"] and "port: 80" in prod["spec"]  # the schema's default is filled in
    assert prod["deploymentStatusMessage"] == VALIDATE_ONLY
    defs = proton.list_repository_sync_definitions(repositoryName="octo/svc", repositoryProvider=PROVIDER, syncType="SERVICE_SYNC")
    assert sorted((d["parent"], d["target"], d["branch"], d["directory"]) for d in defs["syncDefinitions"]) == [
        ("api", "dev", "dev", "specs/dev.yaml"), ("api", "prod", "main", "specs/prod.yaml"), ("api", "qa", "dev", "specs/dev.yaml")]
    listed = proton.list_service_instances(serviceName="api")["serviceInstances"]
    assert sorted(i["name"] for i in listed) == ["dev", "prod", "qa"]
    ops_repo = repository_synced(proton, "svc", "main", main)
    assert ops_repo["status"] == "SUCCEEDED"
    assert repository_synced(proton, "svc", "dev", dev)["status"] == "SUCCEEDED"

    # A change to qa's entry in the shared dev spec moves qa only.
    dev_before = proton.get_service_instance(serviceName="api", name="dev")["serviceInstance"]
    change = repo.commit({"specs/dev.yaml": dev_spec(qa_replicas=2)}, message="qa: two replicas", branch="dev")
    synced(proton, "qa", change)
    repository_synced(proton, "svc", "dev", change)
    time.sleep(1)
    assert latest_sha(proton, "dev") == dev and latest_sha(proton, "prod") == main
    assert proton.get_service_instance(serviceName="api", name="dev")["serviceInstance"]["lastDeploymentAttemptedAt"] == \
        dev_before["lastDeploymentAttemptedAt"]
    assert "replicas: 2" in proton.get_service_instance(serviceName="api", name="qa")["serviceInstance"]["spec"]

    # An invalid spec fails with an event naming the instance, the input and the rule; the instance keeps its spec.
    bad = repo.commit({"specs/dev.yaml": dev_spec(qa_replicas=2, qa_port=70000)}, message="qa: bad port", branch="dev")
    failed = synced(proton, "qa", bad, state="FAILED")
    assert failed["latestSync"]["events"][-1] == {
        "type": "VALIDATION_FAILED", "event": "instance qa: input 'port' must be at most 65535 (got 70000)",
        "time": failed["latestSync"]["events"][-1]["time"]}
    assert failed["latestSuccessfulSync"]["targetRevision"]["sha"] == change
    assert "port: 70000" not in proton.get_service_instance(serviceName="api", name="qa")["serviceInstance"]["spec"]
    fixed = repo.commit({"specs/dev.yaml": dev_spec(qa_replicas=2, qa_port=8080)}, message="qa: port 8080", branch="dev")
    synced(proton, "qa", fixed)

    # A manual UpdateServiceInstance blocks that instance only.
    updated = proton.update_service_instance(
        serviceName="api", name="dev", deploymentType="CURRENT_VERSION",
        spec="proton: ServiceSpec\ninstances:\n  - name: dev\n    environment: staging\n    spec:\n      replicas: 5\n")["serviceInstance"]
    assert "replicas: 5" in updated["spec"]
    summary = proton.get_service_sync_blocker_summary(serviceName="api", serviceInstanceName="dev")["serviceSyncBlockerSummary"]
    (blocker,) = summary["latestBlockers"]
    assert blocker["status"] == "ACTIVE" and blocker["type"] == "AUTOMATED"
    assert "updated outside service sync (UpdateServiceInstance)" in blocker["createdReason"]
    contexts = {c["key"]: c["value"] for c in blocker["contexts"]}
    assert contexts["ServiceInstanceName"] == "dev" and contexts["Operation"] == "UpdateServiceInstance"
    assert proton.get_service_sync_blocker_summary(serviceName="api")["serviceSyncBlockerSummary"]["latestBlockers"] == []
    assert proton.get_service_sync_blocker_summary(serviceName="api", serviceInstanceName="qa")["serviceSyncBlockerSummary"]["latestBlockers"] == []

    both = repo.commit({"specs/dev.yaml": dev_spec(dev_replicas=4, qa_replicas=3, qa_port=8080)}, message="dev and qa", branch="dev")
    synced(proton, "qa", both)
    wait_for(lambda: instance_status(proton, "dev")["desiredState"]["sha"] == both, what="dev's desired state moves")
    time.sleep(1.5)
    assert latest_sha(proton, "dev") == dev  # no attempt while blocked
    assert "replicas: 5" in proton.get_service_instance(serviceName="api", name="dev")["serviceInstance"]["spec"]
    # Sync now is refused for the blocked instance, naming the blocker and how to resolve it;
    # an instance without a blocker retries its latest commit.
    sync_now = lambda instance: engine.cli("sync", "--service", "api", "--instance", instance, "--account-id", tenant.account_id, check=False)
    refused = sync_now("dev")
    assert refused.returncode != 0 and "api/dev is blocked" in refused.stderr, refused.stderr
    assert f"aws proton update-service-sync-blocker --id {blocker['id']}" in refused.stderr, refused.stderr
    qa_before = instance_status(proton, "qa")["latestSync"]["startedAt"]
    retried = sync_now("qa")
    assert retried.returncode == 0 and retried.stdout == "service instance api/qa will retry its latest commit now\n", retried.stderr
    wait_for(lambda: (lambda l: l["startedAt"] != qa_before and l["status"] == "SUCCEEDED")(instance_status(proton, "qa")["latestSync"]),
             what="qa's retried attempt")

    # Resolving retries the latest commit at once.
    resolved = proton.update_service_sync_blocker(id=blocker["id"], resolvedReason="Git is right again")
    assert resolved["serviceName"] == "api" and resolved["serviceInstanceName"] == "dev"
    assert resolved["serviceSyncBlocker"]["status"] == "RESOLVED"
    assert resolved["serviceSyncBlocker"]["resolvedReason"] == "Git is right again"
    synced(proton, "dev", both)
    assert "replicas: 4" in proton.get_service_instance(serviceName="api", name="dev")["serviceInstance"]["spec"]
    with pytest.raises(ClientError) as e:
        proton.update_service_sync_blocker(id=blocker["id"], resolvedReason="again")
    assert error_code(e) == "ResourceNotFoundException"

    # The next commit syncs dev again, with no new blocker.
    again = repo.commit({"specs/dev.yaml": dev_spec(dev_replicas=6, qa_replicas=3, qa_port=8080)}, message="dev: six", branch="dev")
    synced(proton, "dev", again)
    assert [b["status"] for b in proton.get_service_sync_blocker_summary(serviceName="api", serviceInstanceName="dev")
            ["serviceSyncBlockerSummary"]["latestBlockers"]] == ["RESOLVED"]

    # `gitsync status` shows the instance, its deployment and its blockers.
    out = engine.cli("status", "--service", "api", "--instance", "dev", "--account-id", tenant.account_id).stdout
    assert "Service api syncs from octo/svc (GITHUB_ENTERPRISE) branch main, proton-ops file proton-ops.yaml" in out
    assert f"Instance dev: environment staging, template web 1.0, last deployment" in out and f"from commit {again}" in out
    assert f"Blocker {blocker['id']} RESOLVED" in out and "resolved: Git is right again" in out

    # Other clients read the real status: the AWS CLI, the JavaScript SDK and the Rust SDK.
    env = tenant.env()
    aws = os.environ.get("GITSYNC_AWS_CLI", "aws")
    result = subprocess.run([aws, "proton", "get-service-instance-sync-status", "--service-name", "api",
                             "--service-instance-name", "dev", "--endpoint-url", engine.endpoint, "--output", "json"],
                            capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    cli = json.loads(result.stdout)
    assert cli["latestSync"]["targetRevision"]["sha"] == again and cli["latestSync"]["status"] == "SUCCEEDED"
    assert cli["desiredState"]["directory"] == "specs/dev.yaml"

    js_env = dict(env, GITSYNC_JS_MODULES=os.environ.get("GITSYNC_JS_MODULES", os.path.join(HERE, "..", "js", "node_modules")))
    result = subprocess.run(["node", os.path.join(HERE, "..", "js", "instance_status.mjs"), "api", "qa"],
                            capture_output=True, text=True, env=js_env, timeout=120)
    assert result.returncode == 0, result.stderr
    js = json.loads(result.stdout.strip().splitlines()[-1])
    assert js["desiredSha"] == both  # qa's entry did not change in the last commit
    assert js["latestSync"]["sha"] == both and js["latestSync"]["status"] == "SUCCEEDED" and js["latestSync"]["startedAtIsDate"]
    assert js["latestSync"]["events"][0][0] == "SYNC_STARTED"

    rust = os.path.join(os.path.dirname(SEED), "instance_sync_status")
    result = subprocess.run([rust, "api", "prod"], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    rs = json.loads(result.stdout)
    assert rs["desiredSha"] == main and rs["desiredDirectory"] == "specs/prod.yaml"
    assert rs["latestSync"]["status"] == "SUCCEEDED" and rs["latestSync"]["target"] == "prod" and rs["latestSync"]["sha"] == main
    assert rs["latestSuccessfulSync"]["events"][-1][0] == "DEPLOYMENT_SUCCEEDED"


def test_deleting_a_synced_service_blocks_it(engine, git_http, tmp_path):
    repo, tenant, proton = setup_repository(engine, git_http, tmp_path, "deleted")
    register_templates(repo, proton, "deleted")
    proton.create_environment(protonServiceRoleArn=tenant.role_arn(), name="staging", templateName="net", templateMajorVersion="1", spec="proton: EnvironmentSpec\n")
    proton.create_service(name="api", templateName="web", templateMajorVersion="1", spec="proton: ServiceSpec\n")
    ops = "sync:\n  services:\n    api:\n      one:\n        branch: main\n        spec: spec.yaml\n"
    spec = "proton: ServiceSpec\ninstances:\n  - name: one\n    environment: staging\n    spec: {replicas: 1}\n"
    first = repo.commit({"ops.yaml": ops, "spec.yaml": spec})
    proton.create_service_sync_config(serviceName="api", repositoryName="octo/deleted", repositoryProvider=PROVIDER,
                                      branch="main", filePath="ops.yaml")
    synced(proton, "one", first)
    # UpdateService with a spec that leaves `one` out deletes it (as in Proton) and blocks the service.
    proton.update_service(name="api", spec="proton: ServiceSpec\ninstances: []\n")
    assert proton.list_service_instances(serviceName="api")["serviceInstances"] == []
    (removed,) = proton.get_service_sync_blocker_summary(serviceName="api")["serviceSyncBlockerSummary"]["latestBlockers"]
    assert {c["key"]: c["value"] for c in removed["contexts"]}["Operation"] == "UpdateService"
    # Resolving retries the latest commit: Git brings `one` back.
    proton.update_service_sync_blocker(id=removed["id"], resolvedReason="bring it back")
    instance_deployed(proton, "api", "one")  # recreated (a service cannot be deleted while one of its instances deploys)
    with pytest.raises(ClientError) as e:
        proton.delete_environment(name="staging")
    assert error_code(e) == "ConflictException" and "api/one" in error_message(e)

    assert proton.delete_service(name="api")["service"]["status"] == "DELETE_IN_PROGRESS"
    blocker = proton.get_service_sync_blocker_summary(serviceName="api")["serviceSyncBlockerSummary"]["latestBlockers"][0]
    assert blocker["status"] == "ACTIVE" and "deleted outside service sync (DeleteService: one)" in blocker["createdReason"]
    assert {c["key"]: c["value"] for c in blocker["contexts"]}["DeletedInstances"] == "one"
    # While the service is blocked, no instance of it syncs, even when the service is back.
    proton.create_service(name="api", templateName="web", templateMajorVersion="1", spec="proton: ServiceSpec\n")
    second = repo.commit({"spec.yaml": spec.replace("replicas: 1", "replicas: 2")})
    wait_for(lambda: instance_status(proton, "one")["desiredState"]["sha"] == second, what="desired state moves")
    time.sleep(1.5)
    assert latest_sha(proton, "one") == first
    with pytest.raises(ClientError) as e:
        proton.get_service_instance(serviceName="api", name="one")
    assert error_code(e) == "ResourceNotFoundException"
    proton.update_service_sync_blocker(id=blocker["id"], resolvedReason="recreated on purpose")
    synced(proton, "one", second)
    assert "replicas: 2" in proton.get_service_instance(serviceName="api", name="one")["serviceInstance"]["spec"]


def test_api_created_instances_before_and_after_the_sync_config(engine, git_http, tmp_path):
    repo, tenant, proton = setup_repository(engine, git_http, tmp_path, "manual")
    register_templates(repo, proton, "manual")
    proton.create_environment(protonServiceRoleArn=tenant.role_arn(), name="staging", templateName="net", templateMajorVersion="1", spec="proton: EnvironmentSpec\n")
    spec = "proton: ServiceSpec\ninstances:\n  - name: early\n    environment: staging\n    spec: {replicas: 1}\n"
    proton.create_service(name="api", templateName="web", templateMajorVersion="1", spec=spec)
    # Made before the service had a sync configuration: no blocker.
    assert proton.get_service_instance(serviceName="api", name="early")["serviceInstance"]["environmentName"] == "staging"
    proton.create_service_sync_config(serviceName="api", repositoryName="octo/manual", repositoryProvider=PROVIDER,
                                      branch="main", filePath="ops.yaml")
    assert proton.get_service_sync_blocker_summary(serviceName="api", serviceInstanceName="early")["serviceSyncBlockerSummary"]["latestBlockers"] == []
    # Created through the API while it has one: blocked.
    late = "proton: ServiceSpec\ninstances:\n  - name: late\n    environment: staging\n    spec: {replicas: 1}\n"
    created = proton.create_service_instance(serviceName="api", name="late", spec=late)["serviceInstance"]
    assert created["templateMinorVersion"] == "0"
    (b,) = proton.get_service_sync_blocker_summary(serviceName="api", serviceInstanceName="late")["serviceSyncBlockerSummary"]["latestBlockers"]
    assert "created outside service sync (CreateServiceInstance)" in b["createdReason"]
    # Git has never synced `late`, so there is nothing to retry: resolving just lifts the hold.
    assert proton.update_service_sync_blocker(id=b["id"], resolvedReason="ok")["serviceSyncBlocker"]["status"] == "RESOLVED"
    # A retried create (same clientToken, as SDKs do after a lost response) answers the instance.
    retry = late.replace("late", "again")
    first = proton.create_service_instance(serviceName="api", name="again", spec=retry, clientToken="token-1")["serviceInstance"]
    second = proton.create_service_instance(serviceName="api", name="again", spec=retry, clientToken="token-1")["serviceInstance"]
    assert first["lastAttemptedDeploymentId"] == second["lastAttemptedDeploymentId"]
    with pytest.raises(ClientError) as e:
        proton.create_service_instance(serviceName="api", name="again", spec=retry, clientToken="token-2")
    assert error_code(e) == "ConflictException"
    instance_deployed(proton, "api", "again")  # UpdateService below deletes it: not while it deploys
    proton.update_service(name="api", spec="proton: ServiceSpec\ninstances:\n  - name: early\n    environment: staging\n"
                          "    spec: {replicas: 1}\n  - name: late\n    environment: staging\n    spec: {replicas: 1}\n")
    # Bad input is refused with the instance, the input and the rule, and nothing is written.
    for bad_spec, message in (
        ("proton: ServiceSpec\ninstances:\n  - name: x\n    environment: staging\n    spec: {replicas: 0}\n",
         "instance x: input 'replicas' must be at least 1 (got 0)"),
        ("proton: ServiceSpec\ninstances:\n  - name: x\n    environment: staging\n    spec: {replicas: 1, size: huge}\n",
         "instance x: input 'size' must be one of \"small\", \"large\" (got \"huge\")"),
        ("proton: ServiceSpec\ninstances:\n  - name: x\n    environment: staging\n",
         "instance x: input 'replicas' is required"),
        ("proton: ServiceSpec\ninstances:\n  - name: y\n    environment: staging\n",
         "spec: lists no instance named x"),
    ):
        with pytest.raises(ClientError) as e:
            proton.create_service_instance(serviceName="api", name="x", spec=bad_spec)
        assert error_code(e) == "ValidationException"
        assert error_message(e).startswith(message), error_message(e)
    with pytest.raises(ClientError) as e:
        proton.create_service_instance(serviceName="api", name="x",
                                       spec="proton: ServiceSpec\ninstances:\n  - name: x\n    environment: nowhere\n    spec: {replicas: 1}\n")
    assert error_code(e) == "ResourceNotFoundException" and "nowhere" in error_message(e)
    with pytest.raises(ClientError) as e:
        proton.create_service_instance(serviceName="api", name="late", spec=late)
    assert error_code(e) == "ConflictException"
    with pytest.raises(ClientError) as e:
        proton.create_service_instance(serviceName="nosuch", name="x", spec=late.replace("late", "x"))
    assert error_code(e) == "ResourceNotFoundException"
    assert sorted(i["name"] for i in proton.list_service_instances()["serviceInstances"]) == ["early", "late"]
    # Filters and sorting.
    only = proton.list_service_instances(filters=[{"key": "name", "value": "late"}])["serviceInstances"]
    assert [i["name"] for i in only] == ["late"]
    desc = proton.list_service_instances(sortBy="name", sortOrder="DESCENDING")["serviceInstances"]
    assert [i["name"] for i in desc] == ["late", "early"]
    page = proton.list_service_instances(maxResults=1)
    assert len(page["serviceInstances"]) == 1 and "nextToken" in page
    rest = proton.list_service_instances(maxResults=1, nextToken=page["nextToken"])
    assert [i["name"] for i in rest["serviceInstances"]] == ["late"] and "nextToken" not in rest
    # A token is for the query that issued it; a time filter takes finite epoch seconds.
    with pytest.raises(ClientError) as e:
        proton.list_service_instances(maxResults=1, nextToken=page["nextToken"], sortBy="name")
    assert error_code(e) == "ValidationException" and "with these filters" in error_message(e)
    assert "instances/" not in error_message(e)
    recent = proton.list_service_instances(filters=[{"key": "createdAtAfter", "value": "0"}])["serviceInstances"]
    assert len(recent) == 2
    for nonsense in ("NaN", "inf", "soon"):
        with pytest.raises(ClientError) as e:
            proton.list_service_instances(filters=[{"key": "createdAtBefore", "value": nonsense}])
        assert error_code(e) == "ValidationException" and "takes a time in epoch seconds" in error_message(e)
    # A DRAFT version cannot be deployed; the message says how to publish.
    proton.update_service_template_version(templateName="web", majorVersion="1", minorVersion="0", status="DRAFT")
    with pytest.raises(ClientError) as e:
        proton.create_service(name="other", templateName="web", templateMajorVersion="1", spec="proton: ServiceSpec\n")
    assert error_code(e) == "ValidationException" and "UpdateServiceTemplateVersion" in error_message(e)
    # Tags on services and instances.
    service_arn = proton.get_service(name="api")["service"]["arn"]
    assert service_arn.endswith(":service/api")
    proton.tag_resource(resourceArn=service_arn, tags=[{"key": "team", "value": "web"}])
    proton.tag_resource(resourceArn=created["arn"], tags=[{"key": "tier", "value": "late"}])
    assert proton.list_tags_for_resource(resourceArn=service_arn)["tags"] == [{"key": "team", "value": "web"}]
    assert created["arn"].endswith(":service/api/service-instance/late")
    assert proton.list_tags_for_resource(resourceArn=created["arn"])["tags"] == [{"key": "tier", "value": "late"}]
    # Other tenants see nothing.
    other = make_tenant(engine).client("proton")
    with pytest.raises(ClientError) as e:
        other.get_service(name="api")
    assert error_code(e) == "ResourceNotFoundException"
    assert other.list_environments()["environments"] == []


def test_a_broken_ops_file_fails_the_repository_sync(engine, git_http, tmp_path):
    repo, tenant, proton = setup_repository(engine, git_http, tmp_path, "broken-ops")
    register_templates(repo, proton, "broken-ops")
    proton.create_environment(protonServiceRoleArn=tenant.role_arn(), name="staging", templateName="net", templateMajorVersion="1", spec="proton: EnvironmentSpec\n")
    proton.create_service(name="api", templateName="web", templateMajorVersion="1", spec="proton: ServiceSpec\n")
    bad = repo.commit({"ops.yaml": "sync:\n  services:\n    api:\n      one:\n        spec: spec.yaml\n"})
    proton.create_service_sync_config(serviceName="api", repositoryName="octo/broken-ops", repositoryProvider=PROVIDER,
                                      branch="main", filePath="ops.yaml")
    failed = repository_synced(proton, "broken-ops", "main", bad)
    assert failed["status"] == "FAILED"
    problems = [e["event"] for e in failed["events"] if e["type"] == "VALIDATION_FAILED"]
    assert problems == ["ops.yaml: sync.services.api.one.branch is required"]
    # Naming another service only is a problem too; a fix syncs.
    other = repo.commit({"ops.yaml": "sync:\n  services:\n    web:\n      one: {branch: main, spec: spec.yaml}\n"})
    failed = repository_synced(proton, "broken-ops", "main", other)
    assert [e["event"] for e in failed["events"] if e["type"] == "VALIDATION_FAILED"] == ["ops.yaml: sync.services has no entry for service api"]
    spec = "proton: ServiceSpec\ninstances:\n  - name: one\n    environment: staging\n    spec: {replicas: 1}\n"
    good = repo.commit({"ops.yaml": "sync:\n  services:\n    api:\n      one: {branch: main, spec: spec.yaml}\n", "spec.yaml": spec})
    synced(proton, "one", good)
    assert repository_synced(proton, "broken-ops", "main", good)["status"] == "SUCCEEDED"


def deployment_commits(server, account_id, target):
    """The source commit of every deployment of a service instance (`service/instance`), read
    from the database (the deployments API is not served yet)."""
    sql = ("SELECT source_commit FROM proton_deployments WHERE account_id = '%s' "
           "AND target_kind = 'SERVICE_INSTANCE' AND target_name = '%s' ORDER BY created_at" % (account_id, target))
    if server.database_url.startswith("sqlite:"):
        import sqlite3
        with sqlite3.connect(server.database_url.removeprefix("sqlite://")) as db:
            return [row[0] for row in db.execute(sql)]
    out = subprocess.run(["psql", "-At", "-d", server.database_url, "-c", sql], check=True, capture_output=True, text=True)
    return out.stdout.split()


def test_kill_nine_while_commits_stream_deploys_each_commit_at_most_once(git_http, tmp_path):
    """Spec changes keep arriving while the server is SIGKILLed at random moments and restarted:
    every deployment of the instance comes from a distinct commit (a deployment and its attempt's
    record commit together, so a takeover never deploys a commit again), and at the end the
    instance runs the newest spec and nothing is stuck."""
    import random
    from conftest import Server
    rng = random.Random(11)
    server = Server(["--poll-interval", "1s", "--lease-ttl", "2s"]).start()
    try:
        repo, tenant, proton = setup_repository(server, git_http, tmp_path, "crashsvc")
        register_templates(repo, proton, "crashsvc")
        proton.create_environment(protonServiceRoleArn=tenant.role_arn(), name="staging", templateName="net", templateMajorVersion="1", spec="proton: EnvironmentSpec\n")
        proton.create_service(name="api", templateName="web", templateMajorVersion="1", spec="proton: ServiceSpec\ninstances: []\n")
        ops = "sync:\n  services:\n    api:\n      dev:\n        branch: main\n        spec: specs/dev.yaml\n"

        def spec(replicas):
            return f"proton: ServiceSpec\ninstances:\n  - name: dev\n    environment: staging\n    spec:\n      replicas: {replicas}\n"

        commits = [repo.commit({"proton-ops.yaml": ops, "specs/dev.yaml": spec(1)}, message="service sync")]
        proton.create_service_sync_config(serviceName="api", repositoryName="octo/crashsvc", repositoryProvider=PROVIDER,
                                          branch="main", filePath="proton-ops.yaml")
        for round in range(8):
            time.sleep(rng.uniform(0.2, 2.5))
            commits.append(repo.commit({"specs/dev.yaml": spec(round + 2)}, message=f"replicas {round + 2}"))
            time.sleep(rng.uniform(0.0, 1.5))
            server.kill_and_restart()
            proton = tenant.client("proton")
        synced(proton, "dev", commits[-1])
        sources = deployment_commits(server, tenant.account_id, "api/dev")
        assert len(sources) == len(set(sources)), sources
        assert set(sources) <= set(commits) and sources[-1] == commits[-1], (sources, commits)
        assert "replicas: 9" in proton.get_service_instance(serviceName="api", name="dev")["serviceInstance"]["spec"]
        latest = instance_status(proton, "dev")["latestSync"]
        assert latest["status"] == "SUCCEEDED" and latest["targetRevision"]["sha"] == commits[-1]
    finally:
        server.cleanup()
