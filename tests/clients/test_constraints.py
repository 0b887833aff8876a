"""Every modeled constraint of every served operation, broken one at a time: AWS's front end answers
each with ValidationException (status 400) and a message naming the member in lower camel case and
the rule, whatever service it is and whether or not the operation models the error. The models
are botocore's own (shipped with boto3), not gitsync's copies."""
import re

import botocore.session
import pytest

from rawclient import json_call

SERVICES = ["proton", "codeconnections", "codestar-connections"]


def lower_camel(name):
    return name[:1].lower() + name[1:]


def violations(shape):
    """(member, value, expected message fragment) for each top-level constraint of an input shape."""
    out = []
    for name, member in shape.members.items():
        at = f"at '{lower_camel(name)}' failed to satisfy constraint: Member must"
        meta = member.metadata
        if member.type_name == "string":
            if meta.get("min", 0) >= 1:
                out.append((name, "", f"{at} have length greater than or equal to {meta['min']}"))
            if "max" in meta and meta["max"] < 5000:
                out.append((name, "x" * (meta["max"] + 1), f"{at} have length less than or equal to {meta['max']}"))
            if member.enum:
                out.append((name, "NOT_A_MEMBER_OF_THE_SET", f"{at} satisfy enum value set"))
            pattern = meta.get("pattern")
            if pattern and not member.enum:
                lo, hi = meta.get("min", 1), meta.get("max", 64)
                for candidate in ["!" * lo, "\n" * lo, " " * lo, "é" * lo, "-" * lo]:
                    if lo <= len(candidate) <= hi and not re.search(pattern, candidate):
                        out.append((name, candidate, f"{at} satisfy regular expression pattern"))
                        break
        elif member.type_name in ("integer", "long"):
            if "min" in meta:
                out.append((name, meta["min"] - 1, f"{at} have value greater than or equal to {meta['min']}"))
            if "max" in meta:
                out.append((name, meta["max"] + 1, f"{at} have value less than or equal to {meta['max']}"))
    for name in shape.required_members:
        out.append((name, None, f"Value null at '{lower_camel(name)}' failed to satisfy constraint: Member must not be null"))
    return out


def cases():
    session = botocore.session.get_session()
    for service in SERVICES:
        model = session.get_service_model(service)
        for operation in model.operation_names:
            shape = model.operation_model(operation).input_shape
            if shape is None:
                continue
            for member, value, expected in violations(shape):
                yield service, operation, member, value, expected


ALL = list(cases())


@pytest.fixture
def served(tenant):
    """Which operations gitsync serves: the others answer UnknownOperationException."""
    cache = {}

    def check(service, operation):
        if (service, operation) not in cache:
            status, _, body = json_call(tenant, service, operation, {})
            cache[(service, operation)] = body.get("__type") != "UnknownOperationException"
        return cache[(service, operation)]
    return check


def test_the_botocore_models_have_constraints_to_break():
    assert len(ALL) > 300, len(ALL)


@pytest.mark.parametrize("service", SERVICES)
def test_every_constraint_violation_answers_validation_exception(tenant, served, service):
    checked, failures = 0, []
    for svc, operation, member, value, expected in ALL:
        if svc != service or not served(svc, operation):
            continue
        payload = {} if value is None else {member: value}
        status, headers, body = json_call(tenant, svc, operation, payload)
        message = body.get("message") or body.get("Message") or ""
        if status != 400 or body.get("__type") != "ValidationException" or expected not in message:
            failures.append((operation, member, repr(value)[:40], status, body.get("__type"), message[:200]))
        checked += 1
    assert checked > 50, f"only {checked} constraints of {service} were checked"
    assert failures == [], "\n".join(map(str, failures[:30])) + f"\n({len(failures)} of {checked})"
