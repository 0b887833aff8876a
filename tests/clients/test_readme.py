"""The README's quick start and PostgreSQL section, run as written.

The commands are taken from README.md itself, not copied here, so a README that stops working
fails this test. Only the placeholders change: the Git server (`https://git.example.com`, the
owner `my-org`) becomes the test's smart-HTTP server, the listen port a free one, the server gets
moto's endpoint and keys so the stack is really deployed, `/etc/gitsync`, `/var/lib/gitsync` and
the database `db` become the test's own. `aws` is the pinned AWS CLI v1 (GITSYNC_AWS_CLI) and
`gitsync` the binary under test (GITSYNC_BIN).
"""
import os
import re
import shutil
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import boto3
import pytest

from conftest import GITSYNC, POSTGRES, free_port, new_postgres_database, psql
from gitserver import GitHttpServer, Repo
from test_cloudformation import MOTO_KEYS, moto  # noqa: F401  (moto_server fixture)

README = (Path(__file__).parents[2] / "README.md").read_text()
AWS_CLI = os.environ.get("GITSYNC_AWS_CLI", "aws")


def section(title):
    """The text of README section `## title`, up to the next section."""
    start = README.index(f"\n## {title}\n")
    end = README.find("\n## ", start + 1)
    return README[start:end if end >= 0 else None]


def blocks(text, lang):
    return re.findall(rf"```{lang}\n(.*?)```", text, re.S)


@pytest.fixture
def shell_path(tmp_path):
    """A PATH on which `gitsync` and `aws` are the ones under test."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    os.symlink(GITSYNC, bin_dir / "gitsync")
    os.symlink(shutil.which(AWS_CLI) or AWS_CLI, bin_dir / "aws")
    return f"{bin_dir}:{os.environ['PATH']}"


def clean_env(path, home, **extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "GITSYNC_"))}
    env.update(PATH=path, HOME=str(home), XDG_DATA_HOME=str(home / "share"), **extra)
    return env


def wait_healthy(port, process, log):
    deadline = time.time() + 30
    while time.time() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the server exited: {Path(log).read_text()}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise AssertionError("the server did not become healthy")


def run(script, cwd, env):
    result = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", script], cwd=cwd, env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, f"{script}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
    return result.stdout


def stop(process):
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_the_quick_start_deploys_a_stack_as_written(moto, tmp_path, shell_path):  # noqa: F811
    (tmp_path / "git-root").mkdir()
    git = GitHttpServer(str(tmp_path / "git-root")).start()
    text = section("Quick start")
    serve, commands, status = blocks(text, "sh")
    (sync_now,) = re.findall(r"`(gitsync sync [^`]+)`", text)
    files = dict(re.findall(r"`([\w./-]+)`:\n\n```yaml\n(.*?)```", text, re.S))
    assert set(files) == {"deploy/my-stack.yaml", "templates/queue.yaml"}, files

    port = free_port()
    cwd = tmp_path / "user"
    cwd.mkdir()
    (cwd / "my-token.txt").write_text("a-token\n")

    def placeholders(s):
        return (s.replace("https://git.example.com", git.url).replace("my-org", "octo")
                 .replace("127.0.0.1:7450", f"127.0.0.1:{port}"))

    # The user's repository holds the two files the README shows.
    repo = Repo(git.root, "octo", "infra", str(tmp_path / "work"))
    sha = repo.commit(files)

    started = time.time()
    # The server, as the README starts it (cargo run is the binary), deploying to moto.
    line = serve.strip().replace("cargo run -p gitsync --", "gitsync")
    log = tmp_path / "server.log"
    server = subprocess.Popen(
        ["bash", "-c", f"exec {line} --listen 127.0.0.1:{port} --cloudformation-endpoint {moto}"], cwd=cwd,
        env=clean_env(shell_path, tmp_path, **MOTO_KEYS), stdout=open(log, "wb"), stderr=subprocess.STDOUT)
    try:
        wait_healthy(port, server, log)
        env = clean_env(shell_path, tmp_path)
        # The user's commands, then sync now; the shell's variables are kept for the next block.
        out = run(placeholders(commands) + "\n" + placeholders(sync_now) + '\necho "LINK=$LINK"\n', cwd, env)
        assert "will be checked now" in out, out
        link = re.search(r"^LINK=(\S+)$", out, re.M).group(1)
        prelude = "\n".join(placeholders(commands).splitlines()[:2])  # the export and the `gs` function
        assert prelude.startswith("export AWS_SHARED_CREDENTIALS_FILE") and "gs()" in prelude, prelude

        def deployed():
            out = run(f"{prelude}\nLINK={link}\n{placeholders(status)}", cwd, env)
            return out if "DEPLOYMENT_SUCCEEDED" in out and "Latest sync: SUCCEEDED" in out else None

        deadline = time.time() + 60
        while not (out := _try(deployed)) and time.time() < deadline:
            time.sleep(1)
        assert out, run(f"{prelude}\nLINK={link}\n{placeholders(status)}", cwd, env)
        print(f"README quick start: first real deployment {time.time() - started:.1f} s after the server started")
        assert f"Latest sync: SUCCEEDED at commit {sha}" in out
        # The AWS CLI's answers: the definition, and the attempt's deployment events.
        assert '"Target": "my-stack"' in out and '"Type": "DEPLOYMENT_SUCCEEDED"' in out, out

        # The stack is really in moto, with the README's parameters and tags.
        cfn = boto3.client("cloudformation", endpoint_url=moto, region_name="us-east-1", **{
            "aws_access_key_id": "testing", "aws_secret_access_key": "testing"})
        (stack,) = cfn.describe_stacks(StackName="my-stack")["Stacks"]
        assert stack["StackStatus"] == "CREATE_COMPLETE"
        assert {p["ParameterKey"]: p["ParameterValue"] for p in stack["Parameters"]} == {"QueueName": "orders", "Visibility": "60"}
        assert {"Key": "team", "Value": "payments"} in stack["Tags"]
        assert "credentials=environment (AWS_ACCESS_KEY_ID)" in log.read_text()
    finally:
        stop(server)
        git.stop()


def _try(check):
    try:
        return check()
    except AssertionError:
        return None


@pytest.mark.skipif(not POSTGRES, reason="needs GITSYNC_TEST_DATABASE_URL")
def test_the_postgresql_section_runs_replicas_as_written(tmp_path, shell_path):
    (commands,) = blocks(section("Several replicas on PostgreSQL"), "sh")
    url, name = new_postgres_database()
    port = free_port()
    etc, var = tmp_path / "etc-gitsync", tmp_path / "var-lib-gitsync"

    def placeholders(s):
        return (s.replace("postgres://gitsync@db/gitsync", url).replace("/etc/gitsync", str(etc))
                 .replace("/var/lib/gitsync", str(var)).replace("0.0.0.0:7450", f"127.0.0.1:{port}"))

    script = placeholders(commands)
    init, serve = [c for c in re.split(r"\n(?=gitsync )", "\n".join(
        line for line in script.splitlines() if not line.startswith("#"))) if c.strip()]
    env = clean_env(shell_path, tmp_path)
    try:
        out = run(init, tmp_path, env)
        assert "created; back it up with the database" in out and (etc / "master.key").exists()
        log = tmp_path / "replica.log"
        replica = subprocess.Popen(["bash", "-c", "exec " + serve.replace("\\\n", " ")], cwd=tmp_path, env=env,
                                   stdout=open(log, "wb"), stderr=subprocess.STDOUT)
        try:
            wait_healthy(port, replica, log)
            # The other commands work while it runs, with the same --database-url and key.
            out = run(f"gitsync keys create --account-id 111111111111 --database-url {url} "
                      f"--master-key-file {etc}/master.key --data-dir {var}", tmp_path, env)
            assert "aws_access_key_id" in out
            # The key made once is the key every replica uses: init again keeps it.
            out = run(init, tmp_path, env)
            assert "already there, kept" in out
        finally:
            stop(replica)
    finally:
        psql(POSTGRES, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
