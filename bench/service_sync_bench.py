#!/usr/bin/env python3
"""Service sync benchmark against the real binary (numbers go in BENCHMARKS.md).

One Proton service with `--instances` instances, each with its own spec file on `main`, all named
by one proton-ops file. After the first sync of every instance, each of `--rounds` rounds commits
a change to `--touched` instances' spec files; the branch is checked by polling (`--poll-interval
1s`: Proton repositories take no webhooks). Measured from the server's own timestamps:

* relevance: CONFIG_UPDATED → STARTING_SYNC of the repository sync (reading the ops file and every
  instance's entry at the new head, and moving the desired states);
* repository sync start → each touched instance's DEPLOYMENT_SUCCEEDED (spec read, schema check,
  deployment recorded);
and checked: exactly the touched instances moved.

Run (after `cargo build --release -p gitsync`):
    python3 bench/service_sync_bench.py --bin target/release/gitsync
"""
import argparse
import os
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "tests", "clients"))

from engine_bench import client, free_port, percentile, start_gitsync  # noqa: E402
from gitserver import GitHttpServer, Repo  # noqa: E402
from test_service_sync import TEMPLATES  # noqa: E402

import subprocess  # noqa: E402


def spec(i, replicas):
    return f"proton: ServiceSpec\ninstances:\n  - name: i{i:04}\n    environment: staging\n    spec:\n      replicas: {replicas}\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bin", default=os.path.join(HERE, "..", "target", "release", "gitsync"))
    parser.add_argument("--instances", type=int, default=500)
    parser.add_argument("--touched", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()

    work = tempfile.mkdtemp(prefix="gitsync-svc-bench-")
    git = GitHttpServer(os.path.join(work, "git")).start()
    os.makedirs(git.root, exist_ok=True)
    repo = Repo(git.root, "bench", "svc", os.path.join(work, "work"))
    data_dir = os.path.join(work, "data")
    os.makedirs(data_dir)
    port = free_port()
    proc = start_gitsync(args.bin, data_dir, port, "--poll-interval", "1s")
    try:
        cc, proton = client(data_dir, port), client(data_dir, port, "proton")
        host = cc.create_host(Name="bench", ProviderEndpoint=git.url, ProviderType="GitHubEnterpriseServer")["HostArn"]
        conn = cc.create_connection(ConnectionName="bench", HostArn=host)["ConnectionArn"]
        subprocess.run([args.bin, "connections", "activate", conn, "--data-dir", data_dir], check=True, capture_output=True)
        proton.create_repository(connectionArn=conn, name="bench/svc", provider="GITHUB_ENTERPRISE")
        repo.commit(TEMPLATES, "templates")
        proton.create_environment_template(name="net")
        proton.create_service_template(name="web")
        for name, kind in (("net", "ENVIRONMENT"), ("web", "SERVICE")):
            proton.create_template_sync_config(templateName=name, templateType=kind, repositoryName="bench/svc",
                                               repositoryProvider="GITHUB_ENTERPRISE", branch="main")
        deadline = time.time() + 60
        while time.time() < deadline:
            done = [proton.get_template_sync_status(templateName=n, templateType=k, templateVersion="1").get("latestSync", {}).get("status")
                    for n, k in (("net", "ENVIRONMENT"), ("web", "SERVICE"))]
            if done == ["SUCCEEDED", "SUCCEEDED"]:
                break
            time.sleep(0.2)
        proton.update_environment_template_version(templateName="net", majorVersion="1", minorVersion="0", status="PUBLISHED")
        proton.update_service_template_version(templateName="web", majorVersion="1", minorVersion="0", status="PUBLISHED")
        proton.create_environment(name="staging", templateName="net", templateMajorVersion="1", spec="proton: EnvironmentSpec\n")
        proton.create_service(name="api", templateName="web", templateMajorVersion="1", spec="proton: ServiceSpec\n")

        n = args.instances
        ops = "sync:\n  services:\n    api:\n" + "".join(
            f"      i{i:04}:\n        branch: main\n        spec: specs/i{i:04}.yaml\n" for i in range(n))
        first = repo.commit({"proton-ops.yaml": ops, **{f"specs/i{i:04}.yaml": spec(i, 1) for i in range(n)}}, "instances")
        t0 = time.time()
        proton.create_service_sync_config(serviceName="api", repositoryName="bench/svc", repositoryProvider="GITHUB_ENTERPRISE",
                                          branch="main", filePath="proton-ops.yaml")

        def latest(i):
            return proton.get_service_instance_sync_status(serviceName="api", serviceInstanceName=f"i{i:04}").get("latestSync")

        def wait(indices, sha, timeout=600):
            deadline = time.time() + timeout
            pending, out = set(indices), {}
            while pending and time.time() < deadline:
                for i in list(pending):
                    s = latest(i)
                    if s and s["targetRevision"]["sha"] == sha and s["status"] == "SUCCEEDED":
                        out[i] = s
                        pending.discard(i)
                time.sleep(0.1)
            if pending:
                raise SystemExit(f"{len(pending)} instances did not sync to {sha}")
            return out

        wait(range(n), first)
        print(f"first sync of {n} instances: {time.time() - t0:.1f} s", file=sys.stderr)
        first_sync = time.time() - t0

        relevance, deployed = [], []
        for r in range(args.rounds):
            touched = [(r * args.touched + k) % n for k in range(args.touched)]
            sha = repo.commit({f"specs/i{i:04}.yaml": spec(i, r + 2) for i in touched}, f"round {r}")
            results = wait(touched, sha)
            status = proton.get_repository_sync_status(repositoryName="bench/svc", repositoryProvider="GITHUB_ENTERPRISE",
                                                       branch="main", syncType="SERVICE_SYNC")["latestSync"]
            events = {e["type"]: e["time"].timestamp() for e in status["events"]}
            assert any(e.get("externalId") == sha for e in status["events"]), "the repository sync is not this commit's"
            relevance.append((events["STARTING_SYNC"] - events["CONFIG_UPDATED"]) * 1000)
            for i, s in results.items():
                done = [e for e in s["events"] if e["type"] == "DEPLOYMENT_SUCCEEDED"][0]["time"].timestamp()
                deployed.append((done - status["startedAt"].timestamp()) * 1000)
            # Exactly the touched instances moved: the others' latest attempt is still older.
            moved = [i for i in range(0, n, max(1, n // 50)) if latest(i)["targetRevision"]["sha"] == sha]
            assert set(moved) <= set(touched), f"untouched instances moved: {set(moved) - set(touched)}"
        print(f"instances={n} touched/round={args.touched} rounds={args.rounds}")
        print(f"first sync of all instances: {first_sync:.1f} s")
        print(f"relevance (CONFIG_UPDATED→STARTING_SYNC): p50 {statistics.median(relevance):.0f} ms, max {max(relevance):.0f} ms")
        print(f"repository sync start → DEPLOYMENT_SUCCEEDED: p50 {percentile(deployed, 50):.0f} ms, "
              f"p99 {percentile(deployed, 99):.0f} ms, max {max(deployed):.0f} ms ({len(deployed)} samples)")
    finally:
        proc.terminate()
        proc.wait()
        git.stop()


if __name__ == "__main__":
    main()
