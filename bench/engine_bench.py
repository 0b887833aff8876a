#!/usr/bin/env python3
"""Engine benchmarks against the real binary (numbers go in BENCHMARKS.md).

1. Webhook latency, 1,000 targets on one repository: a commit touching 10 deployment files, then
   a signed GitHub webhook; measured from the moment the webhook is sent to (a) each touched
   target's attempt going IN_PROGRESS (its StartedAt) and (b) its SUCCEEDED event, both
   timestamps recorded by the server; plus relevance time (CONFIG_UPDATED → STARTING_SYNC).
2. Idle cost: 1,000 unchanged remotes polled every `--poll` seconds; CPU of gitsync and the git
   processes it runs (utime+stime+cutime+cstime from /proc) and its peak RSS, scaled to a 60 s
   poll interval; and how many ls-refs and fetch requests the Git server saw.

Run (after `cargo build --release -p gitsync`):
    python3 bench/engine_bench.py --bin target/release/gitsync
    python3 bench/engine_bench.py --bin NEW/gitsync --idle-only --baseline-bin OLD/gitsync --remotes 500 --poll 10 --window 30
"""
import argparse
import hashlib
import hmac
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "clients"))

import boto3  # noqa: E402
from botocore.config import Config  # noqa: E402
from gitserver import GitHttpServer, Repo  # noqa: E402

TEMPLATE = "Parameters:\n  QueueName:\n    Type: String\nResources:\n  Q:\n    Type: AWS::SQS::Queue\n    Properties:\n      QueueName: !Ref QueueName\n"
LIMITS = ["--limit", "cfn_sync_configurations=5000", "--limit", "sync_configurations_per_link=5000",
          "--limit", "sync_configurations_per_branch=5000", "--limit", "repository_links=5000", "--limit", "connections=5000"]


def deployment(i, version=0):
    return f"template-file-path: infra/queue.yaml\nparameters:\n  QueueName: q{i}-v{version}\n"


def start_gitsync(binary, data_dir, port, *args):
    log = open(os.path.join(data_dir, "server.log"), "ab")
    p = subprocess.Popen([binary, "serve", "--listen", f"127.0.0.1:{port}", "--data-dir", data_dir, *args], stdout=log, stderr=log)
    for _ in range(300):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1)
            return p
        except OSError:
            time.sleep(0.05)
    raise SystemExit("gitsync did not start")


def client(data_dir, port, service="codeconnections"):
    text = open(os.path.join(data_dir, "credentials")).read()
    key = text.split("aws_access_key_id = ")[1].split()[0]
    secret = text.split("aws_secret_access_key = ")[1].split()[0]
    return boto3.client(service, endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1", aws_access_key_id=key,
                        aws_secret_access_key=secret, config=Config(retries={"max_attempts": 1}, max_pool_connections=4))


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def link_repo(cc, git_url, owner, name, cli, data_dir):
    host = cc.create_host(Name="bench", ProviderEndpoint=git_url, ProviderType="GitHubEnterpriseServer")["HostArn"] if not hasattr(link_repo, "host") else link_repo.host
    link_repo.host = host
    if not hasattr(link_repo, "conn"):
        link_repo.conn = cc.create_connection(ConnectionName="bench", HostArn=host)["ConnectionArn"]
        subprocess.run([cli, "connections", "activate", link_repo.conn, "--data-dir", data_dir], check=True, capture_output=True)
    return cc.create_repository_link(ConnectionArn=link_repo.conn, OwnerId=owner, RepositoryName=name)["RepositoryLinkInfo"]


def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def webhook_latency(binary, rounds, targets, touched):
    work = tempfile.mkdtemp(prefix="gitsync-bench-")
    git = GitHttpServer(os.path.join(work, "git")).start()
    os.makedirs(git.root, exist_ok=True)
    repo = Repo(git.root, "bench", "mono", os.path.join(work, "work"))
    files = {"infra/queue.yaml": TEMPLATE, **{f"stacks/s{i:04}/deploy.yaml": deployment(i) for i in range(targets)}}
    first = repo.commit(files, "initial")
    data_dir = os.path.join(work, "data")
    os.makedirs(data_dir)
    port = free_port()
    proc = start_gitsync(binary, data_dir, port, "--poll-interval", "1h", *LIMITS)
    cc = client(data_dir, port)
    for attr in ("host", "conn"):
        if hasattr(link_repo, attr):
            delattr(link_repo, attr)
    link = link_repo(cc, git.url, "bench", "mono", binary, data_dir)
    secret_file = os.path.join(work, "secret")
    open(secret_file, "w").write("bench-secret")
    subprocess.run([binary, "webhooks", "set-secret", link["RepositoryLinkArn"], "--secret-file", secret_file, "--data-dir", data_dir], check=True, capture_output=True)
    t = time.time()
    for i in range(targets):
        cc.create_sync_configuration(Branch="main", ConfigFile=f"stacks/s{i:04}/deploy.yaml", RepositoryLinkId=link["RepositoryLinkId"],
                                     ResourceName=f"s{i:04}", RoleArn="arn:aws:iam::000000000000:role/r", SyncType="CFN_STACK_SYNC")
    print(f"created {targets} sync configurations in {time.time() - t:.1f} s", file=sys.stderr)

    def deliver(sha):
        body = json.dumps({"ref": "refs/heads/main", "after": sha, "repository": {"full_name": "bench/mono"}}).encode()
        sig = "sha256=" + hmac.new(b"bench-secret", body, hashlib.sha256).hexdigest()
        req = urllib.request.Request(f"http://127.0.0.1:{port}/webhooks/github", data=body, method="POST",
                                     headers={"X-Hub-Signature-256": sig, "Content-Type": "application/json"})
        urllib.request.urlopen(req, timeout=10).read()

    def wait_all(names, sha, timeout=300):
        deadline = time.time() + timeout
        pending = set(names)
        results = {}
        while pending and time.time() < deadline:
            for name in list(pending):
                try:
                    s = cc.get_resource_sync_status(ResourceName=name, SyncType="CFN_STACK_SYNC")["LatestSync"]
                except cc.exceptions.ResourceNotFoundException:
                    continue
                if s["TargetRevision"]["Sha"] == sha and s["Status"] in ("SUCCEEDED", "FAILED"):
                    results[name] = s
                    pending.discard(name)
            if pending:
                time.sleep(0.05)
        if pending:
            raise SystemExit(f"{len(pending)} targets did not finish")
        return results

    t = time.time()
    deliver(first)
    wait_all([f"s{i:04}" for i in range(targets)], first, timeout=900)
    initial = time.time() - t
    print(f"initial sync of {targets} targets: {initial:.1f} s", file=sys.stderr)

    to_progress, to_success, relevance = [], [], []
    for r in range(rounds):
        chosen = [(r * touched + k * 97) % targets for k in range(touched)]
        sha = repo.commit({f"stacks/s{i:04}/deploy.yaml": deployment(i, r + 1) for i in chosen}, f"round {r}")
        sent = time.time()
        deliver(sha)
        results = wait_all([f"s{i:04}" for i in chosen], sha)
        for s in results.values():
            assert s["Status"] == "SUCCEEDED", s
            to_progress.append(s["StartedAt"].timestamp() - sent)
            to_success.append(s["Events"][-1]["Time"].timestamp() - sent)
        events = cc.get_repository_sync_status(Branch="main", RepositoryLinkId=link["RepositoryLinkId"], SyncType="CFN_STACK_SYNC")["LatestSync"]["Events"]
        times = {e["Type"]: e["Time"].timestamp() for e in events}
        relevance.append(times["STARTING_SYNC"] - times["CONFIG_UPDATED"])
        moved = 0
        for i in range(targets):
            if cc.get_resource_sync_status(ResourceName=f"s{i:04}", SyncType="CFN_STACK_SYNC")["LatestSync"]["TargetRevision"]["Sha"] == sha:
                moved += 1
        assert moved == touched, f"round {r}: {moved} targets moved, expected {touched}"
    proc.terminate()
    proc.wait()
    git.stop()
    return {
        "targets": targets, "touched_per_commit": touched, "rounds": rounds, "initial_sync_s": round(initial, 2),
        "webhook_to_in_progress_ms": {"p50": round(statistics.median(to_progress) * 1000, 1), "p99": round(percentile(to_progress, 99) * 1000, 1), "max": round(max(to_progress) * 1000, 1)},
        "webhook_to_succeeded_ms": {"p50": round(statistics.median(to_success) * 1000, 1), "p99": round(percentile(to_success, 99) * 1000, 1), "max": round(max(to_success) * 1000, 1)},
        "relevance_ms": {"p50": round(statistics.median(relevance) * 1000, 1), "max": round(max(relevance) * 1000, 1)},
    }


def cpu_seconds(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return sum(int(fields[i]) for i in (11, 12, 13, 14)) / ticks


def rss_kib(pid, field="VmHWM"):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def idle_cost(binary, remotes, poll, window):
    work = tempfile.mkdtemp(prefix="gitsync-bench-idle-")
    git = GitHttpServer(os.path.join(work, "git")).start()
    os.makedirs(git.root, exist_ok=True)
    data_dir = os.path.join(work, "data")
    os.makedirs(data_dir)
    port = free_port()
    proc = start_gitsync(binary, data_dir, port, "--poll-interval", f"{poll}s", *LIMITS)
    cc = client(data_dir, port)
    for attr in ("host", "conn"):
        if hasattr(link_repo, attr):
            delattr(link_repo, attr)
    for i in range(remotes):
        repo = Repo(git.root, "idle", f"r{i:04}", os.path.join(work, "work", str(i)))
        repo.commit({"deploy.yaml": deployment(i), "infra/queue.yaml": TEMPLATE})
        link = link_repo(cc, git.url, "idle", f"r{i:04}", binary, data_dir)
        cc.create_sync_configuration(Branch="main", ConfigFile="deploy.yaml", RepositoryLinkId=link["RepositoryLinkId"],
                                     ResourceName=f"r{i:04}", RoleArn="arn:aws:iam::000000000000:role/r", SyncType="CFN_STACK_SYNC")
    # Let every remote be fetched and synced once, then measure only unchanged polls.
    deadline = time.time() + 900
    while time.time() < deadline:
        fetched = sum(v for (repo, kind), v in git.stats.items() if kind == "fetch")
        if fetched >= remotes:
            break
        time.sleep(1)
    time.sleep(poll * 2)
    before = dict(git.stats)
    cpu0, t0 = cpu_seconds(proc.pid), time.time()
    time.sleep(window)
    cpu1, t1 = cpu_seconds(proc.pid), time.time()
    after = dict(git.stats)
    lists = sum(after.get(k, 0) - before.get(k, 0) for k in after if k[1] == "ls-refs")
    fetches = sum(after.get(k, 0) - before.get(k, 0) for k in after if k[1] == "fetch")
    core_share = (cpu1 - cpu0) / (t1 - t0)
    # CPU per listing, times the listings a 60 s interval needs (remotes / 60 per second).
    per_listing = (cpu1 - cpu0) / max(lists, 1)
    result = {
        "remotes": remotes, "poll_interval_s": poll, "window_s": window,
        "ref_listings": lists, "listings_expected": int(remotes * window / poll), "fetches": fetches,
        "cpu_core_fraction_measured": round(core_share, 4),
        "cpu_ms_per_listing": round(per_listing * 1000, 2),
        "cpu_core_fraction_at_60s_interval": round(per_listing * remotes / 60, 4),
        "rss_peak_mib": round(rss_kib(proc.pid) / 1024, 1), "rss_now_mib": round(rss_kib(proc.pid, "VmRSS") / 1024, 1),
    }
    proc.terminate()
    proc.wait()
    git.stop()
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bin", default=os.path.join(HERE, "..", "target", "release", "gitsync"))
    parser.add_argument("--targets", type=int, default=1000)
    parser.add_argument("--touched", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--remotes", type=int, default=1000)
    parser.add_argument("--poll", type=int, default=10, help="poll interval of the idle test, seconds")
    parser.add_argument("--window", type=int, default=60, help="measurement window of the idle test, seconds")
    parser.add_argument("--skip-idle", action="store_true")
    parser.add_argument("--idle-only", action="store_true")
    parser.add_argument("--baseline-bin", help="an older gitsync whose idle cost is measured in the same run")
    args = parser.parse_args()
    out = {"cores": os.cpu_count()}
    if not args.idle_only:
        out["webhook"] = webhook_latency(args.bin, args.rounds, args.targets, args.touched)
        print(json.dumps(out, indent=1), flush=True)
    if not args.skip_idle:
        if args.baseline_bin:
            out["idle_baseline"] = idle_cost(args.baseline_bin, args.remotes, args.poll, args.window)
            print(json.dumps(out, indent=1), flush=True)
        out["idle"] = idle_cost(args.bin, args.remotes, args.poll, args.window)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
