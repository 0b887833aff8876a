"""`gitsync proton render` on templates written in the style of AWS Proton's public samples
(tests/fixtures/proton: a VPC environment, a Fargate service with a pipeline, a Lambda service).
Each rendering is compared with output checked by hand (tests/fixtures/proton/expected), and
must be CloudFormation YAML."""
import os
import subprocess

import pytest
import yaml

from conftest import GITSYNC

HERE = os.path.dirname(__file__)
FIXTURES = os.path.join(HERE, "..", "fixtures", "proton")
SPECS = os.path.join(FIXTURES, "specs")


def render(bundle, *args, check=True):
    result = subprocess.run([GITSYNC, "proton", "render", os.path.join(FIXTURES, bundle), *args],
                            capture_output=True, text=True, timeout=30)
    if check:
        assert result.returncode == 0, result.stderr
    return result


class CfnLoader(yaml.SafeLoader):
    """Reads CloudFormation YAML: short-form tags (!Ref, !GetAtt, …) become plain values."""


CfnLoader.add_multi_constructor("!", lambda loader, suffix, node: (
    loader.construct_scalar(node) if isinstance(node, yaml.ScalarNode) else
    loader.construct_sequence(node) if isinstance(node, yaml.SequenceNode) else loader.construct_mapping(node)))


def rendered(case):
    bundle, args = CASES[case]
    return yaml.load(render(bundle, *args).stdout, Loader=CfnLoader)


def spec(name):
    return os.path.join(SPECS, name)


def expected(name):
    return open(os.path.join(FIXTURES, "expected", name)).read()


CASES = {
    "vpc-env-staging.yaml": ("vpc-env/v1", ["--spec", spec("environment.yaml"), "--name", "staging"]),
    "fargate-dev.yaml": ("fargate-svc/v1", ["--spec", spec("fargate.yaml"), "--instance", "dev", "--name", "web",
                                           "--environment-outputs", spec("environment-outputs.json"),
                                           "--account-id", "111122223333"]),
    "fargate-pipeline.yaml": ("fargate-svc/v1", ["--spec", spec("fargate.yaml"), "--pipeline", "--name", "web",
                                                 "--environment-outputs", spec("environment-outputs.json"),
                                                 "--instance-outputs", spec("instance-outputs.json"),
                                                 "--repository-id", "octo/web"]),
    "lambda-api.yaml": ("lambda-svc/v1", ["--spec", spec("lambda.yaml"), "--name", "orders",
                                          "--environment-outputs", spec("environment-outputs.json")]),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_each_sample_renders_as_checked_by_hand(name):
    bundle, args = CASES[name]
    out = render(bundle, *args).stdout
    assert out == expected(name)
    doc = yaml.load(out, Loader=CfnLoader)
    assert "Resources" in doc


def test_rendered_values_come_from_the_spec_the_defaults_and_the_outputs():
    env = rendered("vpc-env-staging.yaml")
    assert env["Resources"]["VPC"]["Properties"]["CidrBlock"] == "10.20.0.0/16"  # from the spec
    assert "FlowLogGroup" in env["Resources"]  # {% if %} on an input the spec turned on
    assert sorted(k for k in env["Resources"] if k.startswith("PublicSubnet")) == ["PublicSubnet1", "PublicSubnet2"]
    dev = rendered("fargate-dev.yaml")
    task = dev["Resources"]["TaskDefinition"]["Properties"]
    assert (task["Cpu"], task["Memory"]) == ("512", "1024")  # task_size small
    assert task["ContainerDefinitions"][0]["Image"] == "public.ecr.aws/nginx/nginx:stable"  # the schema's default
    assert task["ContainerDefinitions"][0]["Environment"] == []  # no components: no outputs
    assert dev["Resources"]["Service"]["Properties"]["Cluster"] == "staging"  # environment.outputs
    assert dev["Outputs"]["Account"]["Value"] == "111122223333"
    pipeline = rendered("fargate-pipeline.yaml")
    assert pipeline["Outputs"]["Instances"]["Value"] == "dev,prod"
    assert "{{tag}}" in pipeline["Resources"]["Build"]["Properties"]["Source"]["BuildSpec"]  # {% raw %}


def test_what_is_missing_is_named_with_its_file_and_line():
    # Without the environment's outputs the instance cannot be rendered.
    out = render("fargate-svc/v1", "--spec", spec("fargate.yaml"), "--instance", "dev", check=False)
    assert out.returncode == 1
    assert "instance_infrastructure/cloudformation.yaml:33: undefined value: `environment.outputs.ClusterName` is undefined" in out.stderr
    # Optional outputs tested with `is defined` are left out.
    out = render("lambda-svc/v1", "--spec", spec("lambda.yaml"))
    assert "Tags" not in out.stdout
    # Several instances need --instance; the spec is checked against the schema.
    out = render("fargate-svc/v1", "--spec", spec("fargate.yaml"), check=False)
    assert out.returncode == 1 and "lists 2 instances (dev, prod): choose one with --instance" in out.stderr


def test_specs_are_checked_against_the_schema(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("proton: ServiceSpec\ninstances:\n  - name: api\n    environment: staging\n    spec:\n      memory: 64\n")
    out = render("lambda-svc/v1", "--spec", str(bad), check=False)
    assert out.returncode == 1
    assert "instance api: input 'memory' must be at least 128 (got 64)" in out.stderr
    assert "instance api: input 'code_bucket' is required" in out.stderr
    out = render("vpc-env/v1", "--spec", spec("fargate.yaml"), "--instance", "dev", check=False)
    assert out.returncode != 0 and "is an environment template" in out.stderr
