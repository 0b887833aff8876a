#!/usr/bin/env python3
"""Status-read throughput benchmark (numbers go in BENCHMARKS.md).

Target (../shared/design/architecture.md): GetResourceSyncStatus over HTTP, SigV4 included, at
>= 50 % of the throughput of a bare axum handler on the same machine, p99 <= 5 ms.

Starts the release binary on SQLite, creates a link, writes a realistic history for one stack
through the store (the `seed_sync_history` fixture: two attempts with events, a blocker), then
runs `status_read_load` (crates/gitsync-api/examples), which replays one signed request on
keep-alive connections against gitsync and against a bare axum handler answering a body of the
same size, both on this machine.

Run:
    cargo build --release -p gitsync -p gitsync-api -p gitsync-store --examples --bins
    python3 bench/status_read_bench.py
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from engine_bench import client, free_port, start_gitsync  # noqa: E402

RELEASE = os.path.join(HERE, "..", "target", "release")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="gitsync-status-bench-")
    port = free_port()
    proc = start_gitsync(os.path.join(RELEASE, "gitsync"), work, port, "--poll-interval", "1h")
    try:
        cc = client(work, port)
        conn = cc.create_connection(ConnectionName="bench", ProviderType="GitHub")["ConnectionArn"]
        link = cc.create_repository_link(ConnectionArn=conn, OwnerId="octo", RepositoryName="infra")["RepositoryLinkInfo"]
        text = open(os.path.join(work, "credentials")).read()
        key = text.split("aws_access_key_id = ")[1].split()[0]
        secret = text.split("aws_secret_access_key = ")[1].split()[0]
        subprocess.run([os.path.join(RELEASE, "examples", "seed_sync_history"), f"sqlite://{work}/gitsync.db",
                        os.path.join(work, "master.key"), "000000000000", "us-east-1", link["RepositoryLinkId"]],
                       check=True, capture_output=True)
        status = cc.get_resource_sync_status(ResourceName="seeded-stack", SyncType="CFN_STACK_SYNC")
        assert len(status["LatestSync"]["Events"]) >= 2
        out = subprocess.run([os.path.join(RELEASE, "examples", "status_read_load"), f"http://127.0.0.1:{port}", key, secret,
                              "us-east-1", "seeded-stack", str(args.seconds), str(args.connections)],
                             check=True, capture_output=True, text=True).stdout
        result = json.loads(out)
        print(json.dumps(result, indent=2))
    finally:
        proc.terminate()
        proc.wait()


if __name__ == "__main__":
    main()
