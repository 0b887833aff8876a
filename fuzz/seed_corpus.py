#!/usr/bin/env python3
"""Writes the hand-made seed inputs of each fuzz target into fuzz/corpus/<target>/seed-*.

The fuzzers grow the corpora from these; `cargo test -p gitsync-fuzz` replays whatever is there.
Run: python3 fuzz/seed_corpus.py
"""
import json
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def cbor(value):
    """A minimal CBOR encoder (maps, arrays, text, ints, bools, floats) for seed bodies."""
    def head(major, n):
        if n < 24:
            return bytes([major << 5 | n])
        if n < 256:
            return bytes([major << 5 | 24, n])
        if n < 65536:
            return bytes([major << 5 | 25]) + struct.pack(">H", n)
        return bytes([major << 5 | 26]) + struct.pack(">I", n)
    if isinstance(value, bool):
        return bytes([0xF5 if value else 0xF4])
    if isinstance(value, int):
        return head(0, value) if value >= 0 else head(1, -1 - value)
    if isinstance(value, float):
        return b"\xfb" + struct.pack(">d", value)
    if isinstance(value, str):
        data = value.encode()
        return head(3, len(data)) + data
    if isinstance(value, list):
        return head(4, len(value)) + b"".join(cbor(v) for v in value)
    if isinstance(value, dict):
        return head(5, len(value)) + b"".join(cbor(k) + cbor(v) for k, v in value.items())
    raise TypeError(value)


BODIES = [
    {"ConnectionName": "github", "ProviderType": "GitHub", "Tags": [{"Key": "team", "Value": "web"}]},
    {"Name": "ghe", "ProviderEndpoint": "https://git.example.com", "ProviderType": "GitHubEnterpriseServer"},
    {"Branch": "main", "ConfigFile": "deploy/stack.yaml", "RepositoryLinkId": "0b8d5c1c-1c2f-4a8e-9d5c-000000000000",
     "ResourceName": "my-stack", "RoleArn": "arn:aws:iam::111111111111:role/gitsync", "SyncType": "CFN_STACK_SYNC"},
    {"resourceName": "my-stack", "syncType": "CFN_STACK_SYNC"},
    {"templateName": "net", "templateType": "ENVIRONMENT", "repositoryName": "octo/templates",
     "repositoryProvider": "GITHUB", "branch": "main", "subdirectory": "templates"},
    {"serviceName": "api", "serviceInstanceName": "dev"},
    {"name": "api", "templateName": "web", "templateMajorVersion": "1", "spec": "proton: ServiceSpec\n", "maxResults": 10},
    {"MaxResults": 5, "NextToken": "abc+/="},
]

SIGV4 = [
    "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20261202/us-east-1/proton/aws4_request, "
    "SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature=" + "ab" * 32 + "\n20261202T180000Z\n",
    "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20261202/us-east-1/codeconnections/aws4_request, "
    "SignedHeaders=host;x-amz-date, Signature=" + "00" * 32 + "\n20261202T180000Z\nb=2&a=1&a=%20x&c",
    "AWS4-HMAC-SHA256 Credential=A/B/C/D/aws4_request, SignedHeaders=host, Signature=zz\nnot a date\n%%%=%",
]

TEMPLATE = """AWSTemplateFormatVersion: '2010-09-09'
Parameters:
  QueueName: {Type: String}
  Visibility: {Type: Number, Default: 30, AllowedValues: [30, 60]}
Resources:
  Queue:
    Type: AWS::SQS::Queue
    Properties:
      QueueName: !Ref QueueName
      VisibilityTimeout: !Ref Visibility
Outputs:
  Arn: {Value: !GetAtt Queue.Arn}
"""

DEPLOYMENTS = [
    "template-file-path: infra/queue.yaml\nparameters:\n  QueueName: q\n  Visibility: 60\ntags:\n  team: web\n",
    "template-file-path: ./t.json\nparameters: {A: [1, 2, 3]}\non-stack-failure: DELETE\ninclude-nested-stacks: true\n",
    "parameters: 3\nunknown: x\n",
]

SCHEMA = """schema:
  format: {openapi: "3.0.0"}
  environment_input_type: EnvInput
  service_input_type: SvcInput
  types:
    EnvInput:
      type: object
      properties:
        cidr: {type: string, pattern: "^10\\\\.", default: "10.0.0.0/16"}
    SvcInput:
      type: object
      required: [port]
      properties:
        port: {type: number, minimum: 1, maximum: 65535}
        name: {type: string, minLength: 1, maxLength: 20}
        tags: {type: array, items: {type: string}, uniqueItems: true, maxItems: 3}
        size: {type: string, enum: [small, large]}
        nested: {$ref: "#/types/EnvInput"}
"""

SPECS = [
    "proton: ServiceSpec\ninstances:\n  - name: dev\n    environment: staging\n    spec:\n      port: 8080\n      size: small\n",
    "proton: EnvironmentSpec\nspec:\n  cidr: 10.1.0.0/16\n",
]

OPS = "sync:\n  services:\n    api:\n      dev: {branch: dev, spec: specs/dev.yaml}\n      prod: {branch: main, spec: specs/prod.yaml}\n"

MANIFEST = "infrastructure:\n  templates:\n    - file: cloudformation.yaml\n      engine: jinja\n      rendering_engine: codebuild\n      template_language: cloudformation\n"

WEBHOOKS = [
    {"ref": "refs/heads/main", "after": "a" * 40, "repository": {"full_name": "octo/infra", "name": "infra", "owner": {"login": "octo"}},
     "commits": [{"id": "a" * 40, "modified": ["deploy/stack.yaml"]}]},
    {"object_kind": "push", "ref": "refs/heads/main", "checkout_sha": "b" * 40, "project": {"path_with_namespace": "group/sub/infra"}},
    {"push": {"changes": [{"new": {"type": "branch", "name": "main", "target": {"hash": "c" * 40}}}]},
     "repository": {"full_name": "team/infra"}},
    {"repository": "octo/infra", "branch": "main", "sha": "d" * 40},
]


def write(target, name, data):
    folder = os.path.join(HERE, "corpus", target)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, f"seed-{name}"), "wb") as f:
        f.write(data)


def main():
    for i, body in enumerate(BODIES):
        for selector in (i, i + 3, i * 7 + 1):
            write("wire_json", f"{i}-{selector}", bytes([selector % 256]) + json.dumps(body).encode())
            write("wire_cbor", f"{i}-{selector}", bytes([selector % 256]) + cbor(body))
    write("wire_cbor", "indefinite-map", b"\x01\xbf\x63abc\x01\xff")
    for i, text in enumerate(SIGV4):
        write("sigv4", str(i), text.encode())
    for i, deployment in enumerate(DEPLOYMENTS):
        write("deployment_file", str(i), deployment.encode() + b"\0" + TEMPLATE.encode())
    write("deployment_file", "json-template", DEPLOYMENTS[1].encode() + b"\0" + json.dumps(
        {"Parameters": {"A": {"Type": "CommaDelimitedList"}}, "Resources": {"T": {"Type": "AWS::SNS::Topic"}}}).encode())
    bundle = [("schema/schema.yaml", SCHEMA), ("infrastructure/manifest.yaml", MANIFEST),
              ("infrastructure/cloudformation.yaml", TEMPLATE),
              (".template-registration.yaml", "compatible_environments:\n  - net:1\n")]
    write("template_bundle", "complete", b"\0".join(f"{p}\n{c}".encode() for p, c in bundle))
    write("template_bundle", "schema-only", f"schema/schema.yaml\n{SCHEMA}".encode())
    for i, spec in enumerate(SPECS):
        write("proton_specs", str(i), SCHEMA.encode() + b"\0" + spec.encode() + b"\0" + OPS.encode())
    for i, body in enumerate(WEBHOOKS):
        write("webhook", str(i), json.dumps(body).encode())


if __name__ == "__main__":
    main()
