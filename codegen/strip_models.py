#!/usr/bin/env python3
"""Copy the botocore service models gitsync answers for, without documentation text.

The stripped models are the wire contract: `gen_dtos.py` turns them into Rust DTOs, and
`gitsync-api` embeds them to validate every request (required, length, pattern, enum, range).
Run with a Python that has botocore installed:  python3 codegen/strip_models.py
"""
import gzip
import json
import os
import sys

import botocore

SERVICES = [
    ("proton", "2020-07-20"),
    ("codeconnections", "2023-12-01"),
    ("codestar-connections", "2019-12-01"),
]
DROP = {"documentation", "deprecatedMessage", "documentationUrl", "examples"}
OUT = os.path.join(os.path.dirname(__file__), "..", "crates", "gitsync-api", "models")


def strip(node):
    if isinstance(node, dict):
        return {k: strip(v) for k, v in node.items() if k not in DROP}
    if isinstance(node, list):
        return [strip(v) for v in node]
    return node


def main():
    base = os.path.join(os.path.dirname(botocore.__file__), "data")
    os.makedirs(OUT, exist_ok=True)
    for name, version in SERVICES:
        with gzip.open(os.path.join(base, name, version, "service-2.json.gz")) as f:
            model = json.load(f)
        stripped = {
            "botocore": botocore.__version__,
            "metadata": strip(model["metadata"]),
            "operations": strip(model["operations"]),
            "shapes": strip(model["shapes"]),
        }
        path = os.path.join(OUT, f"{name}.json")
        with open(path, "w") as f:
            json.dump(stripped, f, indent=1, sort_keys=True)
            f.write("\n")
        print(f"{path}: {len(model['operations'])} operations, {len(model['shapes'])} shapes", file=sys.stderr)


if __name__ == "__main__":
    main()
