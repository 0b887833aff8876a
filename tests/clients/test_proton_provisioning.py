"""Proton deployments provision for real: the real binary, boto3, a real Git server and moto.

Template sync registers Jinja templates in the style of Proton's samples; an environment deploys
a VPC stack whose CIDR comes from its spec; an instance (through the API, then through service
sync) deploys a stack that reads the environment's outputs; outputs answer Proton's operations and
the AWS CLI; a spec change updates the stack; a template CloudFormation rejects and one that does
not render end FAILED with the reason; and a template built to exhaust memory fails its
registration while the server goes on. moto runs with the fixes of moto_patched.py (outputs after
ExecuteChangeSet); tenants are untrusted, so stacks are deployed with the environment's role, and
moto files them under that role's account.
"""
import json
import os
import subprocess

import boto3
import pytest
from botocore.exceptions import ClientError

from conftest import Server, error_code, make_tenant, moto  # noqa: F401  (moto: the module's moto server)
from gitserver import GitHttpServer, Repo, git
from test_cloudformation import MOTO_KEYS, deployer  # noqa: F401  (deployer: a server deploying to moto)
from test_engine import wait_for
HERE = os.path.dirname(__file__)
PROVIDER = "GITHUB_ENTERPRISE"
MANIFEST = ("infrastructure:\n  templates:\n    - file: cloudformation.yaml\n      rendering_engine: jinja\n"
            "      template_language: cloudformation\n")
ENV_SCHEMA = """schema:
  format:
    openapi: "3.0.0"
  environment_input_type: "VpcInput"
  types:
    VpcInput:
      type: object
      properties:
        vpc_cidr:
          type: string
          default: "10.0.0.0/16"
        dns:
          type: boolean
          default: true
"""
# Jinja blocks on lines of their own, as in Proton's samples: not YAML before rendering.
ENV_TEMPLATE = """AWSTemplateFormatVersion: "2010-09-09"
Description: Network of environment {{ environment.name }}
Resources:
  Vpc:
    Type: AWS::EC2::VPC
    Properties:
      CidrBlock: {{ environment.inputs.vpc_cidr }}
{% if environment.inputs.dns %}
      EnableDnsSupport: true
{% endif %}
Outputs:
  VpcId:
    Value: !Ref Vpc
  VpcCidr:
    Value: {{ environment.inputs.vpc_cidr }}
"""
SVC_SCHEMA = """schema:
  format:
    openapi: "3.0.0"
  service_input_type: "QueueInput"
  types:
    QueueInput:
      type: object
      properties:
        delay:
          type: integer
          default: 0
          minimum: 0
          maximum: 900
"""
# The queue's name carries the environment's VPC id: the instance reads its environment's outputs.
SVC_TEMPLATE = """Resources:
  Queue:
    Type: AWS::SQS::Queue
    Properties:
      QueueName: {{ (service.name ~ '-' ~ service_instance.name ~ '-' ~ environment.outputs.VpcId)|truncate(80, True, '', 0) }}
      DelaySeconds: {{ service_instance.inputs.delay }}
Outputs:
  QueueUrl:
    Value: !Ref Queue
  Environment:
    Value: {{ service_instance.environment.account_id }}/{{ environment.name }}
"""
PIPELINE_TYPES = """    PipelineInput:
      type: object
      properties:
        retention_days:
          type: integer
          default: 7
"""
PIPED_SCHEMA = SVC_SCHEMA.replace('  service_input_type: "QueueInput"\n',
                                  '  service_input_type: "QueueInput"\n  pipeline_input_type: "PipelineInput"\n') + PIPELINE_TYPES
PIPELINE_TEMPLATE = """Resources:
  Artifacts:
    Type: AWS::SQS::Queue
    Properties:
      QueueName: {{ service.name }}-artifacts
      MessageRetentionPeriod: {{ pipeline.inputs.retention_days * 86400 }}
{% for instance in service_instances %}
  Deploy{{ loop.index }}:
    Type: AWS::SQS::Queue
    Properties:
      QueueName: {{ service.name }}-deploy-{{ instance.name }}
{% endfor %}
Outputs:
  Source:
    Value: {{ service.repository_id }}@{{ service.branch_name }}
  Instances:
    Value: "{% for instance in service_instances %}{{ instance.name }} in {{ instance.environment.name }} ({{ instance.environment.outputs.VpcId }}): {{ instance.outputs.QueueUrl }}{{ ';' if not loop.last }}{% endfor %}"
"""
TEMPLATES = {
    "templates/net/v1/schema/schema.yaml": ENV_SCHEMA,
    "templates/net/v1/infrastructure/manifest.yaml": MANIFEST,
    "templates/net/v1/infrastructure/cloudformation.yaml": ENV_TEMPLATE,
    "templates/queue/v1/schema/schema.yaml": SVC_SCHEMA,
    "templates/queue/v1/instance_infrastructure/manifest.yaml": MANIFEST,
    "templates/queue/v1/instance_infrastructure/cloudformation.yaml": SVC_TEMPLATE,
    "templates/queue/v1/.compatible-envs": "net:1\n",
    # CloudFormation rejects this one: it reads an attribute of a resource that does not exist.
    "templates/broken/v1/schema/schema.yaml": ENV_SCHEMA,
    "templates/broken/v1/infrastructure/manifest.yaml": MANIFEST,
    "templates/broken/v1/infrastructure/cloudformation.yaml":
        "Resources:\n  Vpc:\n    Type: AWS::EC2::VPC\n    Properties:\n      CidrBlock: !GetAtt Missing.Arn\n",
    # A service with a pipeline, in the style of Proton's samples: the pipeline's stack names
    # every instance, with its environment and outputs.
    "templates/piped/v1/schema/schema.yaml": PIPED_SCHEMA,
    "templates/piped/v1/instance_infrastructure/manifest.yaml": MANIFEST,
    "templates/piped/v1/instance_infrastructure/cloudformation.yaml": SVC_TEMPLATE,
    "templates/piped/v1/pipeline_infrastructure/manifest.yaml": MANIFEST,
    "templates/piped/v1/pipeline_infrastructure/cloudformation.yaml": PIPELINE_TEMPLATE,
    "templates/piped/v1/.compatible-envs": "net:1\n",
    # The same bundle, for a template created with pipelineProvisioning CUSTOMER_MANAGED: its
    # services get no pipeline from gitsync, whatever the bundle holds.
    "templates/selfpiped/v1/schema/schema.yaml": PIPED_SCHEMA,
    "templates/selfpiped/v1/instance_infrastructure/manifest.yaml": MANIFEST,
    "templates/selfpiped/v1/instance_infrastructure/cloudformation.yaml": SVC_TEMPLATE,
    "templates/selfpiped/v1/pipeline_infrastructure/manifest.yaml": MANIFEST,
    "templates/selfpiped/v1/pipeline_infrastructure/cloudformation.yaml": PIPELINE_TEMPLATE,
    "templates/selfpiped/v1/.compatible-envs": "net:1\n",
    # Renders at registration (outputs are placeholders then), not at deployment: the
    # environment has no output of that name.
    "templates/needs/v1/schema/schema.yaml": SVC_SCHEMA,
    "templates/needs/v1/instance_infrastructure/manifest.yaml": MANIFEST,
    "templates/needs/v1/instance_infrastructure/cloudformation.yaml":
        "Resources:\n  Queue:\n    Type: AWS::SQS::Queue\n    Properties:\n\n      QueueName: {{ environment.outputs.SubnetId }}\n",
    "templates/needs/v1/.compatible-envs": "net:1\n",
}


@pytest.fixture(scope="module")
def git_http(tmp_path_factory):
    server = GitHttpServer(str(tmp_path_factory.mktemp("git-root"))).start()
    yield server
    server.stop()


def as_role(moto, service, role):
    """A client of `service` on moto with the credentials of `role` (moto's STS), as gitsync gets them."""
    sts = boto3.client("sts", endpoint_url=moto, region_name="us-east-1", aws_access_key_id=MOTO_KEYS["AWS_ACCESS_KEY_ID"],
                       aws_secret_access_key=MOTO_KEYS["AWS_SECRET_ACCESS_KEY"])
    creds = sts.assume_role(RoleArn=role, RoleSessionName="gitsync-test")["Credentials"]
    return boto3.client(service, endpoint_url=moto, region_name="us-east-1", aws_access_key_id=creds["AccessKeyId"],
                        aws_secret_access_key=creds["SecretAccessKey"], aws_session_token=creds["SessionToken"])


def deployed(get, what, status="SUCCEEDED"):
    """Waits until a resource's deployment ended; fails at once on another ending."""
    def check():
        resource = get()
        if resource["deploymentStatus"] in ("IN_PROGRESS", "CANCELLING"):
            return None
        assert resource["deploymentStatus"] == status, resource
        return resource
    return wait_for(check, what=f"{what} {status}")


def setup(server, git_http, tmp_path, name, tenant=None):
    """A tenant whose Proton repository holds TEMPLATES; template sync registers and publishes them."""
    repo = Repo(git_http.root, "octo", name, str(tmp_path / "work"))
    tenant = tenant or make_tenant(server)
    cc = tenant.client("codeconnections")
    host = cc.create_host(Name="ghe", ProviderEndpoint=git_http.url, ProviderType="GitHubEnterpriseServer")["HostArn"]
    conn = cc.create_connection(ConnectionName="ghe", HostArn=host)["ConnectionArn"]
    server.cli("connections", "activate", conn)
    proton = tenant.client("proton")
    proton.create_repository(connectionArn=conn, name=f"octo/{name}", provider=PROVIDER)
    repo.commit(TEMPLATES, message="templates")
    kinds = {"net": "ENVIRONMENT", "broken": "ENVIRONMENT", "queue": "SERVICE", "needs": "SERVICE", "piped": "SERVICE",
             "selfpiped": "SERVICE"}
    for template, kind in kinds.items():
        if kind == "ENVIRONMENT":
            proton.create_environment_template(name=template)
        elif template == "selfpiped":
            proton.create_service_template(name=template, pipelineProvisioning="CUSTOMER_MANAGED")
        else:
            proton.create_service_template(name=template)
        proton.create_template_sync_config(templateName=template, templateType=kind, repositoryName=f"octo/{name}",
                                           repositoryProvider=PROVIDER, branch="main")
    for template, kind in kinds.items():
        wait_for(lambda: proton.get_template_sync_status(templateName=template, templateType=kind, templateVersion="1")
                 .get("latestSync", {}).get("status") == "SUCCEEDED", what=f"template {template} registered")
        publish = proton.update_environment_template_version if kind == "ENVIRONMENT" else proton.update_service_template_version
        publish(templateName=template, majorVersion="1", minorVersion="0", status="PUBLISHED")
    return repo, tenant, proton


def outputs(listed):
    return {o["key"]: o["valueString"] for o in listed["outputs"]}


def test_environments_and_instances_deploy_their_stacks(deployer, moto, git_http, tmp_path):
    repo, tenant, proton = setup(deployer, git_http, tmp_path, "provisioned")
    role = tenant.role_arn()
    cfn, ec2 = as_role(moto, "cloudformation", role), as_role(moto, "ec2", role)

    # The environment's stack: the CIDR from its spec, gitsync's ownership tags, its outputs.
    created = proton.create_environment(name="staging", templateName="net", templateMajorVersion="1", protonServiceRoleArn=role,
                                        spec="proton: EnvironmentSpec\nspec:\n  vpc_cidr: 10.7.0.0/16\n")["environment"]
    assert created["deploymentStatus"] == "IN_PROGRESS"
    staging = deployed(lambda: proton.get_environment(name="staging")["environment"], "environment staging")
    assert staging["deploymentStatusMessage"].startswith("Stack proton-env-staging deployed"), staging
    assert staging["lastSucceededDeploymentId"] == staging["lastAttemptedDeploymentId"] == created["lastAttemptedDeploymentId"]
    (stack,) = cfn.describe_stacks(StackName="proton-env-staging")["Stacks"]
    assert stack["StackStatus"] == "CREATE_COMPLETE"
    tags = {t["Key"]: t["Value"] for t in stack["Tags"]}
    assert tags["gitsync:account"] == tenant.account_id and tags["gitsync:sync-configuration"] == "proton:environment/staging"
    env_outputs = outputs(proton.list_environment_outputs(environmentName="staging"))
    vpc_id = env_outputs["VpcId"]
    assert vpc_id.startswith("vpc-") and env_outputs["VpcCidr"] == "10.7.0.0/16"
    (vpc,) = ec2.describe_vpcs(VpcIds=[vpc_id])["Vpcs"]
    assert vpc["CidrBlock"] == "10.7.0.0/16"
    # Its provisioned resources are the stack's, as CloudFormation listed them.
    assert proton.list_environment_provisioned_resources(environmentName="staging")["provisionedResources"] == [
        {"identifier": vpc_id, "name": "Vpc", "provisioningEngine": "CLOUDFORMATION"}]
    # The outputs of one deployment, and of one that is not the environment's.
    by_id = proton.list_environment_outputs(environmentName="staging", deploymentId=staging["lastSucceededDeploymentId"])
    assert outputs(by_id) == env_outputs
    with pytest.raises(ClientError) as e:
        proton.list_environment_outputs(environmentName="staging", deploymentId="00000000-0000-4000-8000-000000000000")
    assert error_code(e) == "ResourceNotFoundException"
    # The AWS CLI reads them too.
    aws = os.environ.get("GITSYNC_AWS_CLI", "aws")
    result = subprocess.run([aws, "proton", "list-environment-outputs", "--environment-name", "staging",
                             "--endpoint-url", deployer.endpoint, "--output", "json"],
                            capture_output=True, text=True, env=tenant.env(), timeout=120)
    assert result.returncode == 0, result.stderr
    assert {o["key"]: o["valueString"] for o in json.loads(result.stdout)["outputs"]} == env_outputs
    # And the JavaScript SDK.
    js_env = dict(tenant.env(), GITSYNC_JS_MODULES=os.environ.get("GITSYNC_JS_MODULES", os.path.join(HERE, "..", "js", "node_modules")))
    result = subprocess.run(["node", os.path.join(HERE, "..", "js", "environment_outputs.mjs"), "staging"],
                            capture_output=True, text=True, env=js_env, timeout=120)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == env_outputs

    # An instance made by CreateService reads the environment's outputs.
    spec = "proton: ServiceSpec\ninstances:\n  - name: dev\n    environment: staging\n    spec:\n      delay: 2\n"
    proton.create_service(name="api", templateName="queue", templateMajorVersion="1", spec=spec)
    get_dev = lambda: proton.get_service_instance(serviceName="api", name="dev")["serviceInstance"]
    dev = deployed(get_dev, "instance api/dev")
    inst_outputs = outputs(proton.list_service_instance_outputs(serviceName="api", serviceInstanceName="dev"))
    assert inst_outputs["QueueUrl"].endswith(f"/api-dev-{vpc_id}"), inst_outputs
    assert inst_outputs["Environment"] == f"{tenant.account_id}/staging"
    (queue,) = proton.list_service_instance_provisioned_resources(serviceName="api", serviceInstanceName="dev")["provisionedResources"]
    assert queue["name"] == "Queue" and queue["identifier"] == inst_outputs["QueueUrl"]
    stack_name = dev["deploymentStatusMessage"].split()[1]
    assert stack_name.startswith("proton-api-dev-"), dev
    (stack,) = cfn.describe_stacks(StackName=stack_name)["Stacks"]
    assert {t["Key"]: t["Value"] for t in stack["Tags"]}["gitsync:sync-configuration"] == "proton:service/api/service-instance/dev"

    # A spec change updates the stack in place.
    proton.update_service_instance(serviceName="api", name="dev", deploymentType="CURRENT_VERSION",
                                   spec=spec.replace("delay: 2", "delay: 7"))
    with pytest.raises(ClientError) as e:  # one deployment at a time, as in Proton
        proton.update_service_instance(serviceName="api", name="dev", deploymentType="CURRENT_VERSION", spec=spec)
    assert error_code(e) == "ConflictException" and "in progress" in str(e.value)
    updated = deployed(get_dev, "instance api/dev updated")
    assert updated["lastSucceededDeploymentId"] != dev["lastSucceededDeploymentId"]
    (stack,) = cfn.describe_stacks(StackName=stack_name)["Stacks"]
    assert stack["StackStatus"] == "UPDATE_COMPLETE"
    assert "DelaySeconds: 7" in cfn.get_template(StackName=stack_name)["TemplateBody"]

    # The history answers Proton's deployment operations: newest first, with what each applied
    # and what ran before it.
    history = proton.list_deployments(serviceName="api", serviceInstanceName="dev")["deployments"]
    assert [d["id"] for d in history] == [updated["lastAttemptedDeploymentId"], dev["lastAttemptedDeploymentId"]]
    assert {(d["deploymentStatus"], d["targetResourceType"], d["targetArn"]) for d in history} == \
        {("SUCCEEDED", "SERVICE_INSTANCE", dev["arn"])}
    latest = proton.get_deployment(id=history[0]["id"])["deployment"]
    assert latest["arn"].endswith(f":deployment/{history[0]['id']}") and "completedAt" in latest
    assert "delay: 7" in latest["targetState"]["serviceInstance"]["spec"]
    assert "delay: 2" in latest["initialState"]["serviceInstance"]["spec"]
    assert latest["deploymentStatusMessage"] == updated["deploymentStatusMessage"]
    first = proton.get_deployment(id=history[1]["id"])["deployment"]
    assert "initialState" not in first and first["targetResourceCreatedAt"] == first["createdAt"]
    everything = proton.list_deployments(environmentName="staging")["deployments"]
    assert len(everything) == 3 and everything[-1]["targetResourceType"] == "ENVIRONMENT"
    page = proton.list_deployments(environmentName="staging", maxResults=2)
    rest = proton.list_deployments(environmentName="staging", maxResults=2, nextToken=page["nextToken"])
    assert [d["id"] for d in page["deployments"] + rest["deployments"]] == [d["id"] for d in everything]
    assert "nextToken" not in rest
    with pytest.raises(ClientError) as e:  # a token is for the filters that issued it
        proton.list_deployments(serviceName="api", maxResults=2, nextToken=page["nextToken"])
    assert error_code(e) == "ValidationException"
    # The latest deployment is the instance's state: it stays; an earlier one can be deleted.
    with pytest.raises(ClientError) as e:
        proton.delete_deployment(id=history[0]["id"])
    assert error_code(e) == "ConflictException" and "latest deployment" in str(e.value)
    assert proton.delete_deployment(id=history[1]["id"])["deployment"]["id"] == history[1]["id"]
    with pytest.raises(ClientError) as e:
        proton.get_deployment(id=history[1]["id"])
    assert error_code(e) == "ResourceNotFoundException"

    # Another tenant sees none of it.
    other = make_tenant(deployer).client("proton")
    with pytest.raises(ClientError) as e:
        other.list_environment_outputs(environmentName="staging")
    assert error_code(e) == "ResourceNotFoundException"
    with pytest.raises(ClientError) as e:
        other.get_deployment(id=history[0]["id"])
    assert error_code(e) == "ResourceNotFoundException"
    assert other.list_deployments()["deployments"] == []

    # Deleting deletes the stacks: the instance's with its service, then the environment's.
    with pytest.raises(ClientError) as e:  # the environment still has an instance
        proton.delete_environment(name="staging")
    assert error_code(e) == "ConflictException"
    proton.delete_service(name="api")
    wait_for(lambda: gone(lambda: proton.get_service_instance(serviceName="api", name="dev")), what="instance api/dev deleted")
    assert gone(lambda: cfn.describe_stacks(StackName=stack_name)), "the instance's stack is deleted"
    deleting = proton.delete_environment(name="staging")["environment"]
    assert deleting["deploymentStatus"] == "DELETE_IN_PROGRESS"
    wait_for(lambda: gone(lambda: proton.get_environment(name="staging")), what="environment staging deleted")
    assert gone(lambda: cfn.describe_stacks(StackName="proton-env-staging"))
    assert ec2.describe_vpcs(Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])["Vpcs"] == []


def gone(read):
    """True when `read` says the thing does not exist (Proton's ResourceNotFoundException,
    CloudFormation's ValidationError for a stack)."""
    try:
        read()
    except ClientError as e:
        return e.response["Error"]["Code"] in ("ResourceNotFoundException", "ValidationError")
    return False


def test_deployments_that_cannot_succeed_fail_with_the_reason(deployer, moto, git_http, tmp_path):
    repo, tenant, proton = setup(deployer, git_http, tmp_path, "failing")
    role = tenant.role_arn()
    # CloudFormation rejects the template: FAILED with CloudFormation's reason, nothing recorded as output.
    proton.create_environment(name="bad", templateName="broken", templateMajorVersion="1", protonServiceRoleArn=role,
                              spec="proton: EnvironmentSpec\n")
    bad = deployed(lambda: proton.get_environment(name="bad")["environment"], "environment bad", status="FAILED")
    assert "Template error: instance of Fn::GetAtt references undefined resource Missing" in bad["deploymentStatusMessage"], bad
    assert "lastSucceededDeploymentId" not in bad
    assert outputs(proton.list_environment_outputs(environmentName="bad")) == {}
    # A template that reads an output the environment does not have fails naming the file and line.
    proton.create_environment(name="net", templateName="net", templateMajorVersion="1", protonServiceRoleArn=role,
                              spec="proton: EnvironmentSpec\n")
    deployed(lambda: proton.get_environment(name="net")["environment"], "environment net")
    proton.create_service(name="svc", templateName="needs", templateMajorVersion="1",
                          spec="proton: ServiceSpec\ninstances:\n  - name: one\n    environment: net\n")
    one = deployed(lambda: proton.get_service_instance(serviceName="svc", name="one")["serviceInstance"], "instance svc/one",
                   status="FAILED")
    message = one["deploymentStatusMessage"]
    assert "instance_infrastructure/cloudformation.yaml:6" in message and "undefined" in message, message
    # A template version without a pipeline: a service asking for one is refused, not half-made.
    for extra, spec in (({"repositoryConnectionArn": "arn:aws:codeconnections:us-east-1:111122223333:connection/x",
                          "repositoryId": "octo/app", "branchName": "main"}, "proton: ServiceSpec\n"),
                        ({}, "proton: ServiceSpec\npipeline:\n  unit_tests: true\n")):
        with pytest.raises(ClientError) as e:
            proton.create_service(name="piped", templateName="queue", templateMajorVersion="1", spec=spec, **extra)
        assert error_code(e) == "ValidationException" and "service template queue 1.0 has no pipeline" in str(e.value)
    with pytest.raises(ClientError) as e:
        proton.get_service(name="piped")
    assert error_code(e) == "ResourceNotFoundException"
    # Without a role an untrusted tenant's environment cannot deploy: the message says what to set.
    proton.create_environment(name="norole", templateName="net", templateMajorVersion="1", spec="proton: EnvironmentSpec\n")
    norole = deployed(lambda: proton.get_environment(name="norole")["environment"], "environment norole", status="FAILED")
    assert "has no protonServiceRoleArn" in norole["deploymentStatusMessage"]


def test_service_sync_deploys_an_instance_that_reads_its_environment(deployer, moto, git_http, tmp_path):
    repo, tenant, proton = setup(deployer, git_http, tmp_path, "synced")
    role = tenant.role_arn()
    proton.create_environment(name="prod", templateName="net", templateMajorVersion="1", protonServiceRoleArn=role,
                              spec="proton: EnvironmentSpec\nspec:\n  vpc_cidr: 10.9.0.0/16\n")
    deployed(lambda: proton.get_environment(name="prod")["environment"], "environment prod")
    vpc_id = outputs(proton.list_environment_outputs(environmentName="prod"))["VpcId"]
    proton.create_service(name="web", templateName="queue", templateMajorVersion="1", spec="proton: ServiceSpec\ninstances: []\n")
    ops = "sync:\n  services:\n    web:\n      live:\n        branch: main\n        spec: web.yaml\n"
    spec = "proton: ServiceSpec\ninstances:\n  - name: live\n    environment: prod\n    spec:\n      delay: 3\n"
    sha = repo.commit({"ops.yaml": ops, "web.yaml": spec})
    proton.create_service_sync_config(serviceName="web", repositoryName="octo/synced", repositoryProvider=PROVIDER,
                                      branch="main", filePath="ops.yaml")

    def ended():
        latest = proton.get_service_instance_sync_status(serviceName="web", serviceInstanceName="live").get("latestSync")
        return latest if latest and latest["targetRevision"]["sha"] == sha and latest["status"] in ("SUCCEEDED", "FAILED") else None
    latest = wait_for(ended, what="service sync of web/live")
    assert latest["status"] == "SUCCEEDED", latest["events"]
    types = [e["type"] for e in latest["events"]]
    # The attempt started the deployment, followed CloudFormation's events, and ended as the stack did.
    assert types[:2] == ["SYNC_STARTED", "DEPLOYMENT_STARTED"] and types[-1] == "DEPLOYMENT_SUCCEEDED", types
    assert any("change set" in e["event"].lower() for e in latest["events"]), latest["events"]
    live = proton.get_service_instance(serviceName="web", name="live")["serviceInstance"]
    assert live["deploymentStatus"] == "SUCCEEDED" and live["lastSucceededDeploymentId"] == latest["events"][1]["externalId"]
    assert outputs(proton.list_service_instance_outputs(serviceName="web", serviceInstanceName="live"))["QueueUrl"] \
        .endswith(f"/web-live-{vpc_id}")


def test_a_template_built_to_exhaust_memory_fails_its_registration_and_the_server_goes_on(deployer, git_http, tmp_path):
    """Sixty bytes of Jinja that join a thousand copies of a 100 MB string: MiniJinja's fuel counts
    steps, not bytes, so it does not stop that; the sandbox's memory limit does, and the version is
    refused naming the budget. (Run in the server's own process, it would abort the server.)"""
    repo, tenant, proton = setup(deployer, git_http, tmp_path, "hostile")
    bomb = "Resources: {{ (['x' * 100000000] * 1000)|join }}\n"
    sha = repo.commit({"templates/net/v2/schema/schema.yaml": ENV_SCHEMA,
                       "templates/net/v2/infrastructure/manifest.yaml": MANIFEST,
                       "templates/net/v2/infrastructure/cloudformation.yaml": bomb})

    def ended():
        latest = proton.get_template_sync_status(templateName="net", templateType="ENVIRONMENT", templateVersion="2").get("latestSync")
        return latest if latest and latest["targetRevision"]["sha"] == sha and latest["status"] in ("SUCCEEDED", "FAILED") else None
    latest = wait_for(ended, what="the hostile version's registration")
    assert latest["status"] == "FAILED"
    assert latest["events"][-1]["type"] == "LIMIT_EXCEEDED", latest["events"]
    assert "memory budget" in latest["events"][-1]["event"], latest["events"]
    # The server answers as before, and the good version still deploys.
    assert proton.get_environment_template(name="net")["environmentTemplate"]["name"] == "net"


def test_binding_adopts_the_stack_proton_created(deployer, moto, git_http, tmp_path):
    """Migration: the stack AWS Proton created for an environment (no gitsync tags) is bound
    before the environment is created in gitsync, so its first deployment updates that stack in
    place and tags it, instead of creating a second one. A stack tagged for another account is
    never taken, bound or not."""
    repo, tenant, proton = setup(deployer, git_http, tmp_path, "migrated")
    role = tenant.role_arn()
    cfn = as_role(moto, "cloudformation", role)
    legacy = "AWSProton-legacy-cloudformation-X1Y2"
    proton_made = ENV_TEMPLATE.replace("{{ environment.name }}", "legacy").replace("{{ environment.inputs.vpc_cidr }}", "10.5.0.0/16") \
        .replace("{% if environment.inputs.dns %}\n", "").replace("{% endif %}\n", "")
    cfn.create_stack(StackName=legacy, TemplateBody=proton_made, Tags=[{"Key": "proton:environment", "Value": "legacy"}])
    bind = ["proton", "bind-stack", "--stack-name", legacy, "--account-id", tenant.account_id]
    out = deployer.cli(*bind, "--environment", "legacy").stdout
    assert "does not exist yet; creating it will deploy to stack " + legacy in out, out
    proton.create_environment(name="legacy", templateName="net", templateMajorVersion="1", protonServiceRoleArn=role,
                              spec="proton: EnvironmentSpec\nspec:\n  vpc_cidr: 10.5.0.0/16\n  dns: false\n")
    env = deployed(lambda: proton.get_environment(name="legacy")["environment"], "environment legacy")
    assert env["deploymentStatusMessage"].startswith(f"Stack {legacy} deployed"), env
    (stack,) = cfn.describe_stacks(StackName=legacy)["Stacks"]
    tags = {t["Key"]: t["Value"] for t in stack["Tags"]}
    assert tags["gitsync:account"] == tenant.account_id and tags["gitsync:sync-configuration"] == "proton:environment/legacy", tags
    assert not gone(lambda: cfn.describe_stacks(StackName=legacy))
    assert gone(lambda: cfn.describe_stacks(StackName="proton-env-legacy")), "no second stack"
    # Binding is refused for what cannot be bound, with a clear message.
    refused = deployer.cli("proton", "bind-stack", "--stack-name", "9-not-a-stack", "--environment", "legacy",
                           "--account-id", tenant.account_id, check=False)
    assert refused.returncode != 0 and "is not a CloudFormation stack name" in refused.stderr, refused.stderr
    # A pipeline is bound like the others; a service not yet created takes the binding with it.
    pending = deployer.cli("proton", "bind-stack", "--stack-name", "AWSProton-api-pipeline-Q9", "--pipeline", "api",
                           "--account-id", tenant.account_id)
    assert "the pipeline of service api does not exist yet; creating it will deploy to stack AWSProton-api-pipeline-Q9" \
        in pending.stdout, pending.stdout

    # Unbound, an untagged stack in the way is left alone, and the message says how to take it over.
    cfn.create_stack(StackName="proton-env-squat", TemplateBody=proton_made)
    proton.create_environment(name="squat", templateName="net", templateMajorVersion="1", protonServiceRoleArn=role,
                              spec="proton: EnvironmentSpec\n")
    squat = deployed(lambda: proton.get_environment(name="squat")["environment"], "environment squat", status="FAILED")
    remedy = (f"run `gitsync proton bind-stack --environment squat --stack-name proton-env-squat "
              f"--account-id {tenant.account_id} --region us-east-1` and deploy again")
    assert "not owned by gitsync" in squat["deploymentStatusMessage"] and remedy in squat["deploymentStatusMessage"], squat
    deployer.cli(*remedy.split("`")[1].split()[1:])
    proton.update_environment(name="squat", deploymentType="CURRENT_VERSION", spec="proton: EnvironmentSpec\n")
    deployed(lambda: proton.get_environment(name="squat")["environment"], "environment squat redeployed")
    (stack,) = cfn.describe_stacks(StackName="proton-env-squat")["Stacks"]
    assert {t["Key"]: t["Value"] for t in stack["Tags"]}["gitsync:sync-configuration"] == "proton:environment/squat"

    # Another account's stack (its gitsync tags say so) is never adopted, even when bound.
    theirs = "someone-elses-network"
    cfn.create_stack(StackName=theirs, TemplateBody=proton_made,
                     Tags=[{"Key": "gitsync:account", "Value": "999999999999"},
                           {"Key": "gitsync:sync-configuration", "Value": "proton:environment/x"}])
    deployer.cli(*bind[:2], "--stack-name", theirs, "--environment", "grab", "--account-id", tenant.account_id)
    proton.create_environment(name="grab", templateName="net", templateMajorVersion="1", protonServiceRoleArn=role,
                              spec="proton: EnvironmentSpec\n")
    grab = deployed(lambda: proton.get_environment(name="grab")["environment"], "environment grab", status="FAILED")
    assert "belongs to account 999999999999" in grab["deploymentStatusMessage"], grab
    (stack,) = cfn.describe_stacks(StackName=theirs)["Stacks"]
    assert {t["Key"]: t["Value"] for t in stack["Tags"]}["gitsync:account"] == "999999999999"


def test_cancelling_a_deployment_cancels_its_stack_update(git_http, tmp_path):
    """moto cannot cancel an update; cfn_double.py holds one until CancelUpdateStack. The
    environment is bound to the double's stack (which carries gitsync's tags for this tenant)."""
    from cfn_double import RollbackDouble
    double = RollbackDouble("AWSProton-held-cloudformation-1", {}, "Resource update cancelled")
    double.settle_after = 10 ** 9  # the update runs until it is cancelled
    server = Server(["--poll-interval", "1s", "--cloudformation-endpoint", double.url], env=MOTO_KEYS).start()
    try:
        repo, tenant, proton = setup(server, git_http, tmp_path, "held")
        # Trusted: it deploys with the server's own credentials (the double answers no STS).
        server.cli("accounts", "set", tenant.account_id, "--trusted")
        double.tags = {"gitsync:account": tenant.account_id, "gitsync:sync-configuration": "proton:environment/held"}
        server.cli("proton", "bind-stack", "--environment", "held", "--stack-name", double.stack, "--account-id", tenant.account_id)
        proton.create_environment(name="held", templateName="net", templateMajorVersion="1", spec="proton: EnvironmentSpec\n")
        wait_for(lambda: "ExecuteChangeSet" in double.actions(), what="the stack update runs")
        cancelling = proton.cancel_environment_deployment(environmentName="held")["environment"]
        assert cancelling["deploymentStatus"] == "CANCELLING"
        env = deployed(lambda: proton.get_environment(name="held")["environment"], "environment held", status="CANCELLED")
        assert "CancelUpdateStack" in double.actions()
        assert env["deploymentStatusMessage"] == f"The update of stack {double.stack} was cancelled and rolled back", env
        assert "lastSucceededDeploymentId" not in env
        record = proton.get_deployment(id=env["lastAttemptedDeploymentId"])["deployment"]
        assert record["deploymentStatus"] == "CANCELLED" and "completedAt" in record
        # Nothing runs now: nothing to cancel.
        with pytest.raises(ClientError) as e:
            proton.cancel_environment_deployment(environmentName="held")
        assert error_code(e) == "ConflictException" and "no deployment in progress" in str(e.value)
        with pytest.raises(ClientError) as e:
            proton.cancel_environment_deployment(environmentName="nowhere")
        assert error_code(e) == "ResourceNotFoundException"
    finally:
        server.cleanup()
        double.stop()


def test_a_service_pipeline_deploys_with_the_account_role_and_lists_every_instance(deployer, moto, git_http, tmp_path):
    repo, tenant, proton = setup(deployer, git_http, tmp_path, "pipelines")
    role = tenant.role_arn()
    cfn = as_role(moto, "cloudformation", role)
    proton.create_environment(name="staging", templateName="net", templateMajorVersion="1", protonServiceRoleArn=role,
                              spec="proton: EnvironmentSpec\n")
    deployed(lambda: proton.get_environment(name="staging")["environment"], "environment staging")
    vpc_id = outputs(proton.list_environment_outputs(environmentName="staging"))["VpcId"]
    source = {"repositoryConnectionArn": f"arn:aws:codeconnections:us-east-1:{tenant.account_id}:connection/app",
              "repositoryId": "octo/app", "branchName": "main"}
    spec = ("proton: ServiceSpec\npipeline:\n  retention_days: 2\ninstances:\n"
            "  - name: dev\n    environment: staging\n  - name: prod\n    environment: staging\n    spec:\n      delay: 5\n")
    # The template has a pipeline, whose template reads the repository: it must be named.
    with pytest.raises(ClientError) as e:
        proton.create_service(name="app", templateName="piped", templateMajorVersion="1", spec=spec)
    assert error_code(e) == "ValidationException" and "repositoryConnectionArn is required" in str(e.value)
    # Pipeline inputs are checked against the schema's pipeline type before anything is written.
    with pytest.raises(ClientError) as e:
        proton.create_service(name="app", templateName="piped", templateMajorVersion="1",
                              spec=spec.replace("retention_days: 2", "retention_days: soon"), **source)
    assert error_code(e) == "ValidationException" and \
        "spec: pipeline: input 'retention_days' must be of type integer" in str(e.value), str(e.value)

    # The pipeline stack AWS Proton made is bound before the service exists: the pipeline takes
    # it over instead of making a second one.
    legacy = "AWSProton-app-pipeline-cloudformation-P1Q2"
    cfn.create_stack(StackName=legacy, TemplateBody="Resources:\n  Old:\n    Type: AWS::SQS::Queue\n")
    deployer.cli("proton", "bind-stack", "--stack-name", legacy, "--pipeline", "app", "--account-id", tenant.account_id)

    # No pipeline role yet: the instances deploy, the pipeline fails saying what to set.
    assert proton.get_account_settings()["accountSettings"] == {}
    created = proton.create_service(name="app", templateName="piped", templateMajorVersion="1", spec=spec, **source)
    assert created["service"]["pipeline"]["deploymentStatus"] == "IN_PROGRESS"
    get_pipeline = lambda: proton.get_service(name="app")["service"]["pipeline"]
    failed = deployed(get_pipeline, "pipeline of app", status="FAILED")
    assert "has no pipelineServiceRoleArn" in failed["deploymentStatusMessage"], failed
    for name in ("dev", "prod"):
        deployed(lambda: proton.get_service_instance(serviceName="app", name=name)["serviceInstance"], f"instance app/{name}")
    # A role in an account the operator did not allow is refused at deployment.
    proton.update_account_settings(pipelineServiceRoleArn="arn:aws:iam::999999999999:role/elsewhere")
    proton.update_service_pipeline(serviceName="app", deploymentType="CURRENT_VERSION", spec=spec)
    refused = deployed(get_pipeline, "pipeline of app", status="FAILED")
    assert "999999999999" in refused["deploymentStatusMessage"], refused

    # With the account's pipeline role it deploys: one stack naming every instance, with their
    # environment's outputs and their own.
    settings = proton.update_account_settings(pipelineServiceRoleArn=role)["accountSettings"]
    assert settings == {"pipelineServiceRoleArn": role}
    assert proton.get_account_settings()["accountSettings"] == settings
    with pytest.raises(ClientError) as e:  # self-managed provisioning is not served
        proton.update_account_settings(pipelineProvisioningRepository={"provider": "GITHUB", "name": "octo/p", "branch": "main"})
    assert error_code(e) == "ValidationException" and "self-managed" in str(e.value)
    proton.update_service_pipeline(serviceName="app", deploymentType="CURRENT_VERSION", spec=spec)
    pipeline = deployed(get_pipeline, "pipeline of app")
    stack_name = pipeline["deploymentStatusMessage"].split()[1]
    assert stack_name == legacy, pipeline
    assert pipeline["arn"].endswith(":service/app/pipeline") and "retention_days: 2" in pipeline["spec"]
    (stack,) = cfn.describe_stacks(StackName=stack_name)["Stacks"]
    assert {t["Key"]: t["Value"] for t in stack["Tags"]}["gitsync:sync-configuration"] == "proton:service/app/pipeline"
    queue_url = {name: outputs(proton.list_service_instance_outputs(serviceName="app", serviceInstanceName=name))["QueueUrl"]
                 for name in ("dev", "prod")}
    listed = outputs(proton.list_service_pipeline_outputs(serviceName="app"))
    assert listed == {"Source": "octo/app@main",
                      "Instances": f"dev in staging ({vpc_id}): {queue_url['dev']};prod in staging ({vpc_id}): {queue_url['prod']}"}
    body = cfn.get_template(StackName=stack_name)["TemplateBody"]
    assert "app-deploy-dev" in body and "app-deploy-prod" in body and "MessageRetentionPeriod: 172800" in body
    resources = proton.list_service_pipeline_provisioned_resources(serviceName="app")["provisionedResources"]
    assert sorted(r["name"] for r in resources) == ["Artifacts", "Deploy1", "Deploy2"]
    # The AWS CLI reads the pipeline's outputs too.
    aws = os.environ.get("GITSYNC_AWS_CLI", "aws")
    result = subprocess.run([aws, "proton", "list-service-pipeline-outputs", "--service-name", "app",
                             "--endpoint-url", deployer.endpoint, "--output", "json"],
                            capture_output=True, text=True, env=tenant.env(), timeout=120)
    assert result.returncode == 0, result.stderr
    assert {o["key"]: o["valueString"] for o in json.loads(result.stdout)["outputs"]} == listed

    # Its deployments are the service's, with what each applied.
    history = proton.list_deployments(serviceName="app")["deployments"]
    piped = [d for d in history if d["targetResourceType"] == "SERVICE_PIPELINE"]
    assert [d["deploymentStatus"] for d in piped] == ["SUCCEEDED", "FAILED", "FAILED"]
    assert {d["targetArn"] for d in piped} == {pipeline["arn"]} and len(history) == 5
    latest = proton.get_deployment(id=piped[0]["id"])["deployment"]
    assert "retention_days: 2" in latest["targetState"]["servicePipeline"]["spec"]
    # A new spec deploys with UpdateServicePipeline, not with UpdateService (as in Proton).
    changed = spec.replace("retention_days: 2", "retention_days: 3")
    proton.update_service(name="app", spec=changed)
    assert get_pipeline()["lastAttemptedDeploymentId"] == pipeline["lastAttemptedDeploymentId"]
    with pytest.raises(ClientError) as e:
        proton.update_service_pipeline(serviceName="app", deploymentType="NONE", spec=changed)
    assert error_code(e) == "ValidationException"
    proton.update_service_pipeline(serviceName="app", deploymentType="CURRENT_VERSION", spec=changed)
    with pytest.raises(ClientError) as e:  # one deployment at a time
        proton.update_service_pipeline(serviceName="app", deploymentType="CURRENT_VERSION", spec=changed)
    assert error_code(e) == "ConflictException"
    deployed(get_pipeline, "pipeline of app updated")
    assert "MessageRetentionPeriod: 259200" in cfn.get_template(StackName=stack_name)["TemplateBody"]

    # Another tenant sees none of it, and its settings are its own.
    other = make_tenant(deployer).client("proton")
    for read in (lambda: other.list_service_pipeline_outputs(serviceName="app"),
                 lambda: other.list_service_pipeline_provisioned_resources(serviceName="app"),
                 lambda: other.update_service_pipeline(serviceName="app", deploymentType="CURRENT_VERSION", spec=spec),
                 lambda: other.cancel_service_pipeline_deployment(serviceName="app")):
        with pytest.raises(ClientError) as e:
            read()
        assert error_code(e) == "ResourceNotFoundException"
    assert other.get_account_settings()["accountSettings"] == {}

    # A service whose template version has no pipeline: asking for one is refused, at creation,
    # in UpdateService and in a binding that would wait for ever.
    proton.create_service(name="plain", templateName="queue", templateMajorVersion="1", spec="proton: ServiceSpec\n")
    assert "pipeline" not in proton.get_service(name="plain")["service"]
    with pytest.raises(ClientError) as e:
        proton.update_service(name="plain", spec="proton: ServiceSpec\npipeline:\n  retention_days: 1\n")
    assert error_code(e) == "ValidationException" and "service plain has no pipeline" in str(e.value)
    refused = deployer.cli("proton", "bind-stack", "--stack-name", "AWSProton-plain-pipeline", "--pipeline", "plain",
                           "--account-id", tenant.account_id, check=False)
    assert refused.returncode != 0 and "the service's template version has no pipeline" in refused.stderr, refused.stderr
    # A template that provisions its pipelines itself (CUSTOMER_MANAGED) gives gitsync none to deploy.
    with pytest.raises(ClientError) as e:
        proton.create_service(name="self", templateName="selfpiped", templateMajorVersion="1", spec="proton: ServiceSpec\n",
                              **source)
    assert error_code(e) == "ValidationException" and "pipelineProvisioning is CUSTOMER_MANAGED" in str(e.value)
    proton.create_service(name="self", templateName="selfpiped", templateMajorVersion="1", spec="proton: ServiceSpec\n")
    assert "pipeline" not in proton.get_service(name="self")["service"]

    # Deleting the service deletes the pipeline's stack with the instances'.
    proton.delete_service(name="app")
    wait_for(lambda: gone(lambda: proton.list_service_pipeline_outputs(serviceName="app")), what="the pipeline deleted")
    assert gone(lambda: cfn.describe_stacks(StackName=stack_name)), "with its stack"


def test_proton_and_repository_status_changes_are_told(deployer, moto, git_http, tmp_path):
    """Template versions registered and published, repository syncs, an environment's deployment:
    each status change reaches the tenant's endpoint, signed, shaped as AWS sent them."""
    from test_notifications import Endpoint, add_target
    endpoint = Endpoint("proton-secret").start()
    try:
        tenant = make_tenant(deployer)
        add_target(deployer, tenant, endpoint, tmp_path)
        repo, tenant, proton = setup(deployer, git_http, tmp_path, "told", tenant)
        head = git(repo.work, "rev-parse", "HEAD")
        role = tenant.role_arn()
        proton.create_environment(name="told", templateName="net", templateMajorVersion="1", protonServiceRoleArn=role,
                                  spec="proton: EnvironmentSpec\nspec:\n  vpc_cidr: 10.8.0.0/16\n")
        deployed(lambda: proton.get_environment(name="told")["environment"], "environment told")

        def told(detail_type, resource=None):
            return [(b["detail"], b["resources"]) for _, b, _ in endpoint.events()
                    if b["detail-type"] == detail_type and (resource is None or b["resources"] == [resource])]
        env_arn = proton.get_environment(name="told")["environment"]["arn"]
        wait_for(lambda: len(told("AWS Proton Environment Status Change", env_arn)) == 2, what="the environment's two changes")
        assert [(d["status"], d["previousStatus"]) for d, _ in told("AWS Proton Environment Status Change", env_arn)] == [
            ("IN_PROGRESS", None), ("SUCCEEDED", "IN_PROGRESS")]
        version_arn = proton.get_environment_template_version(templateName="net", majorVersion="1", minorVersion="0")[
            "environmentTemplateVersion"]["arn"]
        assert [(d["status"], d["previousStatus"]) for d, _ in
                told("AWS Proton Environment Template Version Status Change", version_arn)] == [("DRAFT", None), ("PUBLISHED", "DRAFT")]
        assert told("AWS Proton Service Template Version Status Change")  # the service templates' too
        # Template sync read the repository: its repository syncs were told, with the documented detail.
        (repository,) = proton.list_repositories()["repositories"]
        syncs = told("Git Sync Repository Sync Status Change")
        assert syncs and all(d["syncType"] == "TEMPLATE_SYNC" for d, _ in syncs)
        statuses = [(d["status"], d["previousSync"]) for d, _ in syncs if d["branch"] == "main"]
        assert ("SUCCEEDED", "IN_PROGRESS") in statuses, statuses
        done = [d for d, _ in syncs if d["status"] == "SUCCEEDED"][0]
        assert done == {**done, "repositoryArn": repository["arn"], "connectionArn": repository["connectionArn"],
                        "ownerId": "octo", "repositoryName": "told", "providerType": PROVIDER, "commit": head,
                        "repositoryLinkId": None}
        assert all(ok for _, _, ok in endpoint.events())
    finally:
        endpoint.stop()
