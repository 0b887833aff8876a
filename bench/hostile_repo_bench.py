#!/usr/bin/env python3
"""How well the server keeps answering while it syncs hostile repositories (numbers go in BENCHMARKS.md).

For each binary (`--bin`, and `--baseline-bin` measured the same way in the same run, for example
the code before a fix) and each scenario, a fresh `gitsync serve` (SQLite, `--poll-interval 1s
--lease-ttl 5s --git-timeout 30s`) and a fresh Git server (`tests/clients/gitserver.py`) are
started, the scenario's repository is pushed, and its sync configuration is created. Then, for
`--seconds` while the sync runs, GET /healthz is sent one request at a time, one every 50 ms (a new
connection each, 2 s timeout; a timeout counts as 2,000 ms and is also counted on its own). The
design's target is p99 <= 100 ms.

Scenarios (the attacks of tests/clients/test_attacks.py, whose helpers are imported, not copied):

- idle       one ordinary template sync configuration, nothing hostile: the run's baseline
- tree-bomb  a template bundle holding a directory tree 12 deep and 8 wide (8**12 leaves, 13 tree objects)
- wide-tree  a tree 4 deep and 60 wide under the template's directory (once grew RSS to 920 MB)
- huge-blob  a 512 MB deployment file in a CFN_STACK_SYNC repository (a few hundred KB in Git)
- many-keys  a deployment file with 200,000 unknown keys

Also reported: the server's peak RSS (VmHWM; a watchdog SIGKILLs a server past 1.5 GB, reported as
"killed at 1.5 GB") and how the sync ended, read once after the window: its status and the event
naming the budget (or its last event), or "did not finish within the window".

Run from the repository root (with boto3 and pytest installed, e.g. ~/.cache/gitsync/venv-clients/bin/python):
    python3 bench/hostile_repo_bench.py --bin target/release/gitsync
    python3 bench/hostile_repo_bench.py --bin target/release/gitsync --baseline-bin /tmp/gitsync-old/gitsync --seconds 10
    python3 bench/hostile_repo_bench.py --bin target/release/gitsync --scenarios idle,huge-blob

About (seconds + 15 s) per scenario and binary; huge-blob adds the time git takes to commit 512 MB.
Every process started (gitsync, git, and what they start) is killed at the end, also on Ctrl-C.
"""
import argparse
import ctypes
import os
import pathlib
import shlex
import shutil
import signal
import statistics
import sys
import tempfile
import time
import traceback
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "clients"))

from botocore.config import Config  # noqa: E402
from botocore.exceptions import BotoCoreError, ClientError  # noqa: E402

import conftest  # noqa: E402
import test_template_sync  # noqa: E402
from conftest import Server, make_tenant  # noqa: E402
from engine_bench import percentile  # noqa: E402
from gitserver import GitHttpServer, Repo  # noqa: E402
import test_attacks  # noqa: E402
from test_attacks import HUGE_MB, Watchdog, push_tree_bomb  # noqa: E402
from test_engine import TEMPLATE, Stack, deployment  # noqa: E402
from test_template_sync import bundle  # noqa: E402
from test_template_sync import setup as template_setup  # noqa: E402

SERVER_ARGS = ["--poll-interval", "1s", "--lease-ttl", "5s", "--git-timeout", "30s"]
INTERVAL = 0.05  # between the starts of two /healthz requests
HEALTHZ_TIMEOUT = 2.0
SETUP_BOUND = 300  # seconds a scenario may take beyond its window (setup, status read, shutdown)
BUDGET_WORDS = ("max-", "budget", "left out")  # how the events that name a budget read

# The tests' AWS clients wait up to 60 s for an answer; a server that hangs must not hang the
# benchmark, so the clients made here (Tenant.client reads this at call time) give up sooner.
conftest.NO_RETRIES = Config(retries={"max_attempts": 1, "mode": "standard"}, connect_timeout=2, read_timeout=10)


class ScenarioTimedOut(BaseException):
    """Raised by SIGALRM when a scenario overruns its bound (a BaseException, so that the broad
    `except Exception` of the measuring loop does not swallow it)."""


def raiser(exc_type):
    def handler(*_):
        raise exc_type()
    return handler


# ---------------------------------------------------------------------------------------------
# Scenarios: each pushes its repository and returns (start, outcome): `start()` creates the sync
# configuration, `outcome()` reads the latest attempt once and returns (finished, text).


def template_sync(proton, repo_name, name, sha):
    def start():
        proton.create_template_sync_config(templateName=name, templateType="ENVIRONMENT", repositoryName=f"octo/{repo_name}",
                                           repositoryProvider="GITHUB_ENTERPRISE", branch="main")

    def outcome():
        return describe(test_template_sync.status(proton, name, 1).get("latestSync"), sha)
    return start, outcome


def stack_sync(stack, name, sha):
    def outcome():
        return describe(stack.status(name).get("LatestSync"), sha)
    return (lambda: stack.configure(name)), outcome


def idle(server, git, work):
    repo, _, proton = template_setup(server, git, work, "ordinary")
    sha = repo.commit(bundle("ok", 1))
    proton.create_environment_template(name="ok")
    return template_sync(proton, "ordinary", "ok", sha)


def tree_bomb(server, git, work):
    repo, _, proton = template_setup(server, git, work, "tree-bomb")
    repo.commit(bundle("deep", 1))
    sha = push_tree_bomb(repo, "deep/v1/nested", depth=12, width=8)
    proton.create_environment_template(name="deep")
    return template_sync(proton, "tree-bomb", "deep", sha)


def wide_tree(server, git, work):
    repo, _, proton = template_setup(server, git, work, "wide-tree")
    repo.commit(bundle("wide", 1))
    sha = push_tree_bomb(repo, "wide/v1/nested", depth=4, width=60)  # 60**4 leaves, 5 tree objects
    proton.create_environment_template(name="wide")
    return template_sync(proton, "wide-tree", "wide", sha)


def huge_blob(server, git, work):
    # As test_a_huge_deployment_file_fails_within_budget (which has no helper for it).
    repo = Repo(git.root, "octo", "huge-blob", str(work / "work"))
    big = os.path.join(repo.work, "deploy", "stack.yaml")
    os.makedirs(os.path.dirname(big))
    chunk = b"x" * (1 << 20)
    with open(big, "wb") as f:
        f.write(b"a: ")
        for _ in range(HUGE_MB):
            f.write(chunk)
    sha = repo.commit({"infra/queue.yaml": TEMPLATE}, f"a {HUGE_MB} MB deployment file")
    os.remove(big)
    stack = Stack(server, make_tenant(server), git.url, "octo", "huge-blob", work)
    return stack_sync(stack, "huge", sha)


def many_keys(server, git, work):
    repo = Repo(git.root, "octo", "many-keys", str(work / "work"))
    body = deployment("many") + "".join(f"k{i:06d}: 1\n" for i in range(200_000))
    sha = repo.commit({"deploy/stack.yaml": body, "infra/queue.yaml": TEMPLATE})
    stack = Stack(server, make_tenant(server), git.url, "octo", "many-keys", work)
    return stack_sync(stack, "many-keys", sha)


SCENARIOS = {"idle": idle, "tree-bomb": tree_bomb, "wide-tree": wide_tree, "huge-blob": huge_blob, "many-keys": many_keys}


def describe(latest, sha):
    """(finished, text) for an attempt as GetTemplateSyncStatus or GetResourceSyncStatus answer it
    (the same shape, in camelCase or PascalCase)."""
    if not latest:
        return False, "did not finish within the window (no attempt yet)"
    latest = camel(latest)
    events = latest.get("events", [])
    status = latest.get("status")
    last = events[-1]["event"] if events else "no events"
    if latest["targetRevision"]["sha"] != sha:
        return False, f"did not finish within the window (latest attempt is at {latest['targetRevision']['sha'][:8]}, {status})"
    if status not in ("SUCCEEDED", "FAILED"):
        return False, f"did not finish within the window ({status}; last event: {short(last)})"
    named = next((e["event"] for e in events if any(w in e["event"] for w in BUDGET_WORDS)), last)
    took = ""
    if events and latest.get("startedAt"):
        took = f" after {(events[-1]['time'] - latest['startedAt']).total_seconds():.1f} s"
    return True, f"{status}{took} ({len(events)} events): {short(named)}"


def camel(value):
    """`value` with every dictionary key in camelCase (TargetRevision -> targetRevision)."""
    if isinstance(value, dict):
        return {k[0].lower() + k[1:]: camel(v) for k, v in value.items()}
    if isinstance(value, list):
        return [camel(v) for v in value]
    return value


def short(text, limit=160):
    text = " ".join(str(text).split()).replace("|", "\\|")
    return text if len(text) <= limit else text[:limit - 1] + "…"


# ---------------------------------------------------------------------------------------------
# Measuring


def is_timeout(e):
    return isinstance(e, TimeoutError) or (isinstance(e, urllib.error.URLError) and isinstance(e.reason, TimeoutError))


def poll_healthz(server, seconds):
    """GET /healthz one at a time, one every INTERVAL, for `seconds` or until the server dies.
    Returns (latencies in s, timeouts, errors, seconds measured)."""
    url = server.endpoint + "/healthz"
    latencies, timeouts, errors = [], 0, 0
    began = time.monotonic()
    deadline = began + seconds
    next_at = began
    while time.monotonic() < deadline and server.process.poll() is None:
        started = time.monotonic()
        try:
            with urllib.request.urlopen(url, timeout=HEALTHZ_TIMEOUT) as r:
                r.read()
            latencies.append(time.monotonic() - started)
        except urllib.error.HTTPError:
            latencies.append(time.monotonic() - started)  # an answer, but not a 200
            errors += 1
        except Exception as e:  # noqa: BLE001  (refused, reset, timed out: all are counted)
            if is_timeout(e):
                latencies.append(HEALTHZ_TIMEOUT)
                timeouts += 1
            else:
                errors += 1
        next_at = max(next_at + INTERVAL, time.monotonic())
        time.sleep(max(0.0, next_at - time.monotonic()))
    return latencies, timeouts, errors, time.monotonic() - began


def run_scenario(binary, name, seconds, keep):
    """One scenario on a fresh server and Git server; returns a table row (a dict)."""
    conftest.GITSYNC = binary  # Server.start and Server.cli read it at call time
    work = pathlib.Path(tempfile.mkdtemp(prefix=f"gitsync-hostile-{name}-"))
    server = git = watch = None
    row = {"scenario": name}
    signal.signal(signal.SIGALRM, raiser(ScenarioTimedOut))
    signal.alarm(seconds + SETUP_BOUND)
    try:
        git = GitHttpServer(str(work / "git")).start()
        os.makedirs(git.root)
        server = Server(SERVER_ARGS, database_url="sqlite").start()
        start, outcome = SCENARIOS[name](server, git, work)
        with Watchdog(server) as watch:
            start()
            latencies, timeouts, errors, measured = poll_healthz(server, seconds)
            peak = watch.peak()
        row.update(samples=len(latencies), timeouts=timeouts, errors=errors, peak=peak)
        if latencies:
            row.update(p50=statistics.median(latencies), p99=percentile(latencies, 99), max=max(latencies))
        if watch.killed_at:
            row["outcome"] = f"killed at {test_attacks.RSS_KILL / (1 << 30):.1f} GB (RSS {watch.killed_at >> 20} MiB after {measured:.1f} s of the window)"
        elif server.process.poll() is not None:
            row["outcome"] = f"the server exited with {server.process.returncode} after {measured:.1f} s"
        else:
            try:
                row["outcome"] = outcome()[1]
            except ClientError as e:
                if e.response["Error"]["Code"] == "ResourceNotFoundException":
                    row["outcome"] = "did not finish within the window (no attempt yet)"
                else:
                    row["outcome"] = f"did not finish within the window (status read failed: {short(e)})"
            except BotoCoreError as e:  # for example no answer within the client's read timeout
                row["outcome"] = f"did not finish within the window (status read failed: {short(e)})"
    except ScenarioTimedOut:
        row.setdefault("outcome", f"scenario took longer than {seconds + SETUP_BOUND} s; abandoned")
    except Exception as e:  # noqa: BLE001  (one broken scenario must not lose the others)
        traceback.print_exc()
        row.setdefault("outcome", f"benchmark error: {short(repr(e))}")
    finally:
        signal.alarm(0)
        if server:
            server.stop()
            if not keep:
                server.cleanup()
        if git:
            git.stop()
        kill_leftovers()
        if keep:
            print(f"  kept {work} and {server.data_dir if server else '-'}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    return row


# ---------------------------------------------------------------------------------------------
# Processes: this process is a child subreaper, so whatever gitsync starts (git fetch, index-pack)
# comes back to it when gitsync dies, and is killed here.


def become_subreaper():
    PR_SET_CHILD_SUBREAPER = 36
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def children():
    """(pid, state) of this process's children."""
    me, found = os.getpid(), []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = open(f"/proc/{entry}/stat").read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == me:
            found.append((int(entry), fields[0]))
    return found


def kill_leftovers():
    for _ in range(20):
        found = children()
        if not found:
            return
        for pid, state in found:
            if state != "Z":
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        time.sleep(0.1)
        for pid, _ in found:
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass


# ---------------------------------------------------------------------------------------------
# Report


def ms(value):
    return "—" if value is None else f"{value * 1000:.0f} ms" if value >= 0.1 else f"{value * 1000:.1f} ms"


def table(rows):
    lines = ["| scenario | healthz p50 | p99 | max | timeouts | peak RSS | sync outcome |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        timeouts = f"{r['timeouts']} of {r['samples']}" if "samples" in r else "—"
        if r.get("errors"):
            timeouts += f" (+{r['errors']} errors)"
        peak = f"{r['peak'] / (1 << 20):.0f} MiB" if r.get("peak") else "—"
        lines.append(f"| {r['scenario']} | {ms(r.get('p50'))} | {ms(r.get('p99'))} | {ms(r.get('max'))} | {timeouts} | {peak} | {r['outcome']} |")
    return "\n".join(lines)


def command(binary, args, scenarios):
    script = os.path.relpath(os.path.abspath(__file__))
    return shlex.join([sys.executable, script, "--bin", binary, "--seconds", str(args.seconds), "--scenarios", ",".join(scenarios)])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bin", required=True, help="the gitsync binary to measure")
    parser.add_argument("--baseline-bin", help="another gitsync binary, measured the same way in the same run")
    parser.add_argument("--seconds", type=int, default=15, help="measurement window per scenario (default 15)")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS), help=f"comma list of {', '.join(SCENARIOS)} (default all)")
    parser.add_argument("--keep", action="store_true", help="keep data directories and repositories (server.log) for inspection")
    args = parser.parse_args()
    scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    unknown = [s for s in scenarios if s not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenarios: {', '.join(unknown)} (known: {', '.join(SCENARIOS)})")
    binaries = [os.path.abspath(args.bin)] + ([os.path.abspath(args.baseline_bin)] if args.baseline_bin else [])
    for b in binaries:
        if not os.access(b, os.X_OK):
            parser.error(f"not an executable: {b}")

    become_subreaper()
    # SIGTERM unwinds like Ctrl-C, so the finally blocks stop every process.
    signal.signal(signal.SIGTERM, raiser(KeyboardInterrupt))
    results = {}
    try:
        for binary in binaries:
            results[binary] = []
            for name in scenarios:
                print(f"{binary}: {name} ({args.seconds} s window)…", file=sys.stderr, flush=True)
                results[binary].append(run_scenario(binary, name, args.seconds, args.keep))
                print(f"  {results[binary][-1]}", file=sys.stderr, flush=True)
    except KeyboardInterrupt:
        print("interrupted; reporting what was measured", file=sys.stderr)
    finally:
        kill_leftovers()

    print(f"Run: `{shlex.join([sys.executable, *sys.argv])}`\n")
    print(f"GET /healthz every {INTERVAL * 1000:.0f} ms, one at a time, {HEALTHZ_TIMEOUT:.0f} s timeout (counted as "
          f"{HEALTHZ_TIMEOUT * 1000:.0f} ms); target p99 ≤ 100 ms. Peak RSS is VmHWM; the watchdog kills at {test_attacks.RSS_KILL >> 20} MiB.\n")
    for binary, rows in results.items():
        label = "baseline" if binary != binaries[0] else "measured"
        print(f"### {label}: `{binary}`\n")
        print(f"`{command(binary, args, scenarios)}`\n")
        print(table(rows) + "\n", flush=True)


if __name__ == "__main__":
    main()
