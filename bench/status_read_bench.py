#!/usr/bin/env python3
"""Status-read throughput benchmark (numbers go in BENCHMARKS.md).

Targets (issue 18): GetResourceSyncStatus over HTTP, SigV4 included, replayed by `wrk -t1 -c32`,
at >= 0.5x the throughput of a bare axum handler answering a body of the same size in the same
run with p99 <= 5 ms on SQLite; >= 0.25x and p99 <= 10 ms on PostgreSQL.

For each gitsync binary given (the one under test, and optionally a baseline build such as the
previous commit's), starts it on a fresh database, creates a link, writes a realistic history for
one stack through the store (the `seed_sync_history` fixture: two attempts with events, a
blocker), checks the answer with boto3, then replays one signed request with wrk (the request
signed by `status_read_wrk script`, with the official aws-sigv4 signer). The bare handler
(`status_read_wrk bare`) runs in the same run, on the same machine.

Run:
    cargo build --release -p gitsync -p gitsync-api -p gitsync-store --examples --bins
    python3 bench/status_read_bench.py [--baseline-binary OLD/gitsync] [--postgres URL]
(python with boto3, for example ~/.cache/gitsync/venv-clients/bin/python; wrk from Debian)
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from engine_bench import client, free_port, start_gitsync  # noqa: E402

RELEASE = os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.join(HERE, "..", "target")), "release")


def wrk(url, script, seconds, connections):
    """wrk's throughput (req/s), p50 and p99 (ms) and non-2xx count for one run."""
    out = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", script, url],
                         check=True, capture_output=True, text=True).stdout

    def ms(label):
        value, unit = re.search(rf"^\s+{label}\s+([\d.]+)(us|ms|s)\s*$", out, re.M).groups()
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "requests_per_second": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "p50_ms": ms("50%"),
        "p99_ms": ms("99%"),
        "errors": int(errors.group(1)) if errors else 0,
    }


def new_postgres_database(server_url):
    name = f"bench_status_{uuid.uuid4().hex[:8]}"
    subprocess.run(["psql", server_url, "-qc", f"CREATE DATABASE {name}"], check=True)
    return server_url.rsplit("/", 1)[0] + "/" + name


def gitsync_run(binary, database_server, args):
    """Starts `binary` on a fresh database with a seeded stack and measures it under wrk."""
    work = tempfile.mkdtemp(prefix="gitsync-status-bench-")
    port = free_port()
    database = new_postgres_database(database_server) if database_server else f"sqlite://{work}/gitsync.db"
    extra = ["--database-url", database] if database_server else []
    proc = start_gitsync(binary, work, port, "--poll-interval", "1h", *extra)
    try:
        cc = client(work, port)
        conn = cc.create_connection(ConnectionName="bench", ProviderType="GitHub")["ConnectionArn"]
        link = cc.create_repository_link(ConnectionArn=conn, OwnerId="octo", RepositoryName="infra")["RepositoryLinkInfo"]
        text = open(os.path.join(work, "credentials")).read()
        key = text.split("aws_access_key_id = ")[1].split()[0]
        secret = text.split("aws_secret_access_key = ")[1].split()[0]
        subprocess.run([os.path.join(RELEASE, "examples", "seed_sync_history"), database,
                        os.path.join(work, "master.key"), "000000000000", "us-east-1", link["RepositoryLinkId"]],
                       check=True, capture_output=True)
        status = cc.get_resource_sync_status(ResourceName="seeded-stack", SyncType="CFN_STACK_SYNC")
        assert len(status["LatestSync"]["Events"]) >= 2 and status["LatestSuccessfulSync"]["Events"]
        url = f"http://127.0.0.1:{port}"
        script = os.path.join(work, "status.lua")
        with open(script, "w") as f:
            subprocess.run([os.path.join(RELEASE, "examples", "status_read_wrk"), "script", url, key, secret,
                            "us-east-1", "seeded-stack"], check=True, stdout=f)
        result = wrk(url, script, args.seconds, args.connections)
        # The bare handler answers with a body of the real answer's size.
        result["body_bytes"] = status_body_bytes(cc)
        return result, script
    finally:
        proc.terminate()
        proc.wait()


def status_body_bytes(cc):
    """The size of the status answer's body as the wire carries it."""
    sizes = []
    cc.meta.events.register("after-call.codeconnections.GetResourceSyncStatus",
                            lambda http_response, **_: sizes.append(len(http_response.content)))
    cc.get_resource_sync_status(ResourceName="seeded-stack", SyncType="CFN_STACK_SYNC")
    return sizes[0]


def bare_run(body_bytes, script, args):
    proc = subprocess.Popen([os.path.join(RELEASE, "examples", "status_read_wrk"), "bare", str(body_bytes)],
                            stdout=subprocess.PIPE, text=True)
    try:
        url = proc.stdout.readline().strip()
        return wrk(url, script, args.seconds, args.connections)
    finally:
        proc.terminate()
        proc.wait()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--binary", default=os.path.join(RELEASE, "gitsync"))
    parser.add_argument("--baseline-binary", help="an older gitsync to measure in the same run")
    parser.add_argument("--postgres", metavar="URL", help="run on PostgreSQL (a server URL such as "
                        "postgres://postgres@127.0.0.1:5432/test; each run gets a new database)")
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    runs = {}
    if args.baseline_binary:
        runs["baseline gitsync"], _ = gitsync_run(args.baseline_binary, args.postgres, args)
    runs["gitsync"], script = gitsync_run(args.binary, args.postgres, args)
    runs["bare axum"] = bare_run(runs["gitsync"]["body_bytes"], script, args)
    bare = runs["bare axum"]["requests_per_second"]
    for name, r in runs.items():
        r["ratio_to_bare"] = round(r["requests_per_second"] / bare, 3)
    print(json.dumps({"cores": os.cpu_count(), "database": "postgres" if args.postgres else "sqlite",
                      "wrk": f"-t1 -c{args.connections} -d{args.seconds}s", "runs": runs}, indent=2))


if __name__ == "__main__":
    main()
