"""Proton's template registry through boto3 (and a read through the AWS CLI)."""
import json
import os
import subprocess

import pytest
from botocore.exceptions import ClientError

from conftest import error_code, error_message, register_version


@pytest.mark.parametrize("kind", ["environment", "service"])
def test_template_lifecycle(tenant, kind):
    proton = tenant.client("proton")
    create = getattr(proton, f"create_{kind}_template")
    get = getattr(proton, f"get_{kind}_template")
    key = f"{kind}Template"
    provisioning = "provisioning" if kind == "environment" else "pipelineProvisioning"
    created = create(name="web", displayName="Web", description="first", **{provisioning: "CUSTOMER_MANAGED"}, tags=[{"key": "team", "value": "a"}])[key]
    assert created["arn"] == f"arn:aws:proton:us-east-1:{tenant.account_id}:{kind}-template/web"
    assert created[provisioning] == "CUSTOMER_MANAGED" and created["displayName"] == "Web"
    assert "recommendedVersion" not in created
    assert get(name="web")[key] == created
    with pytest.raises(ClientError) as e:
        create(name="web")
    assert error_code(e) == "ConflictException"
    updated = getattr(proton, f"update_{kind}_template")(name="web", description="second")[key]
    assert updated["description"] == "second" and updated["displayName"] == "Web"
    listed = getattr(proton, f"list_{kind}_templates")()["templates"]
    assert [t["name"] for t in listed] == ["web"]
    assert proton.list_tags_for_resource(resourceArn=created["arn"])["tags"] == [{"key": "team", "value": "a"}]
    assert getattr(proton, f"delete_{kind}_template")(name="web")[key]["name"] == "web"
    with pytest.raises(ClientError) as e:
        get(name="web")
    assert error_code(e) == "ResourceNotFoundException"
    assert "web does not exist" in error_message(e)


@pytest.mark.parametrize("kind", ["environment", "service"])
def test_versions_publish_recommend_and_block_deletion(tenant, kind):
    proton = tenant.client("proton")
    getattr(proton, f"create_{kind}_template")(name="net")
    key, vkey = f"{kind}Template", f"{kind}TemplateVersion"
    for major in (1, 1, 2):
        register_version(tenant, kind.upper(), "net", major)
    versions = getattr(proton, f"list_{kind}_template_versions")(templateName="net")["templateVersions"]
    assert [(v["majorVersion"], v["minorVersion"], v["status"]) for v in versions] == [("1", "0", "DRAFT"), ("1", "1", "DRAFT"), ("2", "0", "DRAFT")]
    only_one = getattr(proton, f"list_{kind}_template_versions")(templateName="net", majorVersion="1")["templateVersions"]
    assert len(only_one) == 2
    got = getattr(proton, f"get_{kind}_template_version")(templateName="net", majorVersion="1", minorVersion="1")[vkey]
    assert got["arn"].endswith(f":{kind}-template/net:1.1") and "schema" in got
    if kind == "service":
        assert got["compatibleEnvironmentTemplates"] == [{"templateName": "env", "majorVersion": "1"}]
    update = getattr(proton, f"update_{kind}_template_version")
    published = update(templateName="net", majorVersion="1", minorVersion="1", status="PUBLISHED")[vkey]
    assert published["status"] == "PUBLISHED" and published["recommendedMinorVersion"] == "1"
    assert getattr(proton, f"get_{kind}_template")(name="net")[key]["recommendedVersion"] == "1.1"
    update(templateName="net", majorVersion="2", minorVersion="0", status="PUBLISHED")
    assert getattr(proton, f"get_{kind}_template")(name="net")[key]["recommendedVersion"] == "2.0"
    with pytest.raises(ClientError) as e:
        update(templateName="net", majorVersion="2", minorVersion="0", status="REGISTRATION_FAILED")
    assert error_code(e) == "ValidationException"
    with pytest.raises(ClientError) as e:
        getattr(proton, f"get_{kind}_template_version")(templateName="net", majorVersion="9", minorVersion="0")
    assert error_code(e) == "ResourceNotFoundException"
    with pytest.raises(ClientError) as e:
        getattr(proton, f"delete_{kind}_template")(name="net")
    assert error_code(e) == "ConflictException"
    assert "still has 3 version(s)" in error_message(e)
    for major, minor in (("1", "0"), ("1", "1"), ("2", "0")):
        getattr(proton, f"delete_{kind}_template_version")(templateName="net", majorVersion=major, minorVersion=minor)
    assert "recommendedVersion" not in getattr(proton, f"get_{kind}_template")(name="net")[key]
    getattr(proton, f"delete_{kind}_template")(name="net")


def test_bad_inputs_get_modeled_errors(tenant):
    proton = tenant.client("proton")
    with pytest.raises(ClientError) as e:
        proton.create_environment_template(name="bad name")
    assert error_code(e) == "ValidationException" and "'name'" in error_message(e)
    with pytest.raises(ClientError) as e:
        proton.get_environment_template_version(templateName="t", majorVersion="01", minorVersion="0")
    assert error_code(e) == "ValidationException" and "'majorVersion'" in error_message(e)
    with pytest.raises(ClientError) as e:
        proton.create_service_template(name="s", pipelineProvisioning="SELF")
    assert error_code(e) == "ValidationException" and "enum value set: [CUSTOMER_MANAGED]" in error_message(e)
    with pytest.raises(ClientError) as e:
        proton.list_environment_template_versions(templateName="nope")
    assert error_code(e) == "ResourceNotFoundException"
    with pytest.raises(ClientError) as e:
        proton.list_service_templates(nextToken="Zm9yZ2Vk")
    assert error_code(e) == "ValidationException"


def test_templates_page_and_are_tenant_scoped(tenant, other_tenant):
    proton = tenant.client("proton")
    for i in range(5):
        proton.create_environment_template(name=f"t{i}")
    names = [t["name"] for p in proton.get_paginator("list_environment_templates").paginate(PaginationConfig={"PageSize": 2}) for t in p["templates"]]
    assert names == [f"t{i}" for i in range(5)]
    other = other_tenant.client("proton")
    assert other.list_environment_templates()["templates"] == []
    with pytest.raises(ClientError) as e:
        other.get_environment_template(name="t0")
    assert error_code(e) == "ResourceNotFoundException"
    assert proton.list_service_templates()["templates"] == []
