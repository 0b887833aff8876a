#!/usr/bin/env python3
"""Dashboard overview benchmark (numbers go in BENCHMARKS.md).

Target (issue 17): the dashboard's overview with 10,000 targets answers in under 100 ms.

Starts the binary on SQLite (or PostgreSQL with --database-url), gives one account 10,000 stack
syncs, each with a target, an attempt with two events (a tenth failed, a hundredth blocked), and a
baseline account with 10 such targets, signs both in over HTTP as a browser does, and times
sequential GETs on one keep-alive connection (the server's whole answer, HTML included):

- `/healthz`: the HTTP stack alone (the floor);
- the baseline account's overview (10 targets);
- the big account's overview: first page, a page in the middle, filtered by status, searched by
  name, and one target's page.

Run:
    cargo build --release -p gitsync
    python3 bench/dashboard_bench.py [--binary target/release/gitsync] [--baseline-binary OLD/gitsync] [--requests 200]
"""
import argparse
import http.client
import json
import os
import re
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from engine_bench import free_port, start_gitsync  # noqa: E402

REGION = "us-east-1"


def seed(db, account, count, link_id):
    """`count` stack syncs of `account`, each with a target and one finished attempt."""
    con = sqlite3.connect(db, timeout=30)
    now = int(time.time() * 1000)
    con.execute("INSERT INTO repository_links (account_id, region, link_id, arn, connection_id, connection_arn, owner_id, provider_type, "
                "repository_name, created_at) VALUES (?, ?, ?, ?, 'c', 'arn:c', 'octo', 'GitHub', ?, ?)",
                (account, REGION, link_id, f"arn:aws:codeconnections:{REGION}:{account}:repository-link/{link_id}", f"infra-{account}", now))
    attempt_rows, events = [], []
    for i in range(count):
        name = f"stack-{i:05d}"
        sha = f"{i:040x}"
        revision = json.dumps({"branch": "main", "directory": f"deploy/{name}.yaml", "owner_id": "octo",
                               "repository_name": f"infra-{account}", "provider_type": "GitHub", "sha": sha})
        con.execute("INSERT INTO sync_configurations (account_id, region, sync_type, resource_name, link_id, branch, config_file, role_arn, "
                    "created_at) VALUES (?, ?, 'CFN_STACK_SYNC', ?, ?, 'main', ?, ?, ?)",
                    (account, REGION, name, link_id, f"deploy/{name}.yaml", f"arn:aws:iam::{account}:role/sync", now))
        con.execute("INSERT INTO sync_targets (account_id, region, sync_type, target_key, display_name, repository_key, branch, directory, "
                    "desired_revision, desired_sha, attempted_sha) VALUES (?, ?, 'CFN_STACK_SYNC', ?, ?, ?, 'main', ?, ?, ?, ?)",
                    (account, REGION, name, name, f"link:{link_id}", f"deploy/{name}.yaml", revision, sha, sha))
        status = "FAILED" if i % 10 == 3 else "SUCCEEDED"
        cur = con.execute("INSERT INTO resource_sync_attempts (account_id, region, sync_type, target_key, target, status, initial_revision, "
                          "target_revision, started_at, finished_at) VALUES (?, ?, 'CFN_STACK_SYNC', ?, ?, ?, ?, ?, ?, ?)",
                          (account, REGION, name, name, status, revision, revision, now - 60_000, now - 50_000))
        attempt_rows.append(cur.lastrowid)
        events.append((cur.lastrowid, 0, "SYNC_STARTED", f"Sync started for commit {sha}", now - 60_000))
        events.append((cur.lastrowid, 1, "VALIDATION_FAILED" if status == "FAILED" else "DEPLOYMENT_SUCCEEDED", "done", now - 50_000))
        if i % 100 == 7:
            con.execute("INSERT INTO sync_blockers (blocker_id, account_id, region, sync_type, resource_name, status, created_reason, "
                        "created_at, contexts) VALUES (?, ?, ?, 'CFN_STACK_SYNC', ?, 'ACTIVE', 'seeded', ?, '[]')",
                        (f"{account}-{i}", account, REGION, name, now))
    con.executemany("INSERT INTO resource_sync_events (attempt_id, seq, event_type, event, time) VALUES (?, ?, ?, ?, ?)", events)
    con.commit()
    con.close()


def sign_in(port, key, secret):
    conn = http.client.HTTPConnection("127.0.0.1", port)
    conn.request("GET", "/ui/signin")
    r = conn.getresponse()
    r.read()
    token = r.getheader("set-cookie").split("gitsync_signin=")[1].split(";")[0]
    body = urllib.parse.urlencode({"csrf": token, "access_key_id": key, "secret_access_key": secret})
    conn.request("POST", "/ui/signin", body=body, headers={"Cookie": f"gitsync_signin={token}",
                                                           "Content-Type": "application/x-www-form-urlencoded"})
    r = conn.getresponse()
    r.read()
    assert r.status == 303, r.status
    return r.getheader("set-cookie").split(";")[0]


def timed(port, path, cookie, requests, expect=None):
    conn = http.client.HTTPConnection("127.0.0.1", port)
    times = []
    body = b""
    for _ in range(requests):
        start = time.perf_counter()
        conn.request("GET", path, headers={"Cookie": cookie} if cookie else {})
        r = conn.getresponse()
        body = r.read()
        times.append((time.perf_counter() - start) * 1000)
        assert r.status == 200, (path, r.status)
    if expect:
        assert expect in body.decode(), (path, expect)
    times.sort()
    return {"path": path, "bytes": len(body), "median_ms": round(statistics.median(times), 2),
            "p95_ms": round(times[int(len(times) * 0.95) - 1], 2), "max_ms": round(times[-1], 2)}


def measure(binary, args):
    """Starts `binary` on a fresh database, seeds it and times the pages."""
    work = tempfile.mkdtemp(prefix="gitsync-dashboard-bench-")
    port = free_port()
    proc = start_gitsync(binary, work, port, "--poll-interval", "1h")
    try:
        keys = {}
        for account in ("111111111111", "222222222222"):
            out = subprocess.run([binary, "keys", "create", "--account-id", account, "--data-dir", work],
                                 check=True, capture_output=True, text=True).stdout
            keys[account] = (re.search(r"aws_access_key_id = (\S+)", out).group(1),
                             re.search(r"aws_secret_access_key = (\S+)", out).group(1))
        db = os.path.join(work, "gitsync.db")
        started = time.time()
        seed(db, "111111111111", args.targets, "big")
        seed(db, "222222222222", 10, "small")
        print(f"seeded {args.targets} + 10 targets in {time.time() - started:.1f} s", file=sys.stderr)
        big = sign_in(port, *keys["111111111111"])
        small = sign_in(port, *keys["222222222222"])
        n = args.requests
        middle = args.targets // 100
        return [
            timed(port, "/healthz", None, n),
            timed(port, "/ui/", small, n, "of 10 sync targets"),
            timed(port, "/ui/", big, n, f"of {args.targets} sync targets"),
            timed(port, f"/ui/?page={middle}", big, n, f"Page {middle} of"),
            timed(port, "/ui/?state=failed", big, n, f"of {args.targets // 10} sync targets"),
            timed(port, "/ui/?state=blocked", big, n, "sync targets"),
            timed(port, "/ui/?q=stack-0999", big, n, "of 10 sync targets"),
            timed(port, f"/ui/target?region={REGION}&type=CFN_STACK_SYNC&key=stack-00003", big, n, "Failure reason"),
        ]
    finally:
        proc.terminate()
        proc.wait()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--binary", default=os.path.join(HERE, "..", "target", "release", "gitsync"))
    parser.add_argument("--baseline-binary", help="an older gitsync to measure in the same run")
    parser.add_argument("--targets", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    runs = {}
    if args.baseline_binary:
        runs["baseline"] = {"binary": args.baseline_binary, "results": measure(args.baseline_binary, args)}
    runs["gitsync"] = {"binary": args.binary, "results": measure(args.binary, args)}
    print(json.dumps({"targets": args.targets, "requests_each": args.requests, "cores": os.cpu_count(), "runs": runs},
                     indent=2))


if __name__ == "__main__":
    main()
