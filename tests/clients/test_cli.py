"""The gitsync command line: defaults, environment twins, keys, and what must never leak."""
import os
import re
import subprocess
import tempfile
import time
import urllib.request

import boto3

from conftest import GITSYNC, NO_RETRIES, free_port, make_tenant, parse_credentials


def wait_healthy(endpoint, process, log):
    for _ in range(300):
        if process.poll() is not None:
            raise AssertionError(f"gitsync exited: {open(log).read()}")
        try:
            with urllib.request.urlopen(endpoint + "/healthz", timeout=1) as r:
                return r.status
        except OSError:
            time.sleep(0.05)
    raise AssertionError("never became healthy")


def test_plain_serve_uses_home_defaults_and_env_twins():
    home = tempfile.mkdtemp(prefix="gitsync-home-")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GITSYNC_") and k != "XDG_DATA_HOME"}
    env.update(HOME=home, GITSYNC_LISTEN=f"127.0.0.1:{port}", GITSYNC_ACCOUNT_ID="999999999999")
    log = os.path.join(home, "log")
    process = subprocess.Popen([GITSYNC, "serve"], env=env, stdout=open(log, "w"), stderr=subprocess.STDOUT)
    try:
        assert wait_healthy(f"http://127.0.0.1:{port}", process, log) == 200
        data_dir = os.path.join(home, ".local", "share", "gitsync")
        assert sorted(f for f in os.listdir(data_dir) if not f.startswith("gitsync.db")) == ["credentials", "master.key"]
        assert oct(os.stat(os.path.join(data_dir, "credentials")).st_mode & 0o777) == "0o600"
        assert oct(os.stat(os.path.join(data_dir, "master.key")).st_mode & 0o777) == "0o600"
        key, secret = parse_credentials(open(os.path.join(data_dir, "credentials")).read())
        assert re.fullmatch(r"AKIA[A-Z0-9]{16}", key)
        cc = boto3.client("codeconnections", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1",
                          aws_access_key_id=key, aws_secret_access_key=secret, config=NO_RETRIES)
        arn = cc.create_connection(ConnectionName="c", ProviderType="GitHub")["ConnectionArn"]
        assert ":999999999999:" in arn
    finally:
        process.terminate()
        process.wait(timeout=10)
    # A clean shutdown, and no secret in the log.
    text = open(log).read()
    assert "gitsync stopped" in text
    assert secret not in text


def test_secrets_never_reach_the_database_file_or_the_log(server):
    tenant = make_tenant(server)
    tenant.client("codeconnections").list_connections()
    if not server.database_url.startswith("sqlite:"):
        dump = subprocess.run(["pg_dump", "-d", server.database_url], capture_output=True, text=True, check=True).stdout
        assert tenant.access_key_id in dump and tenant.secret_access_key not in dump
    for name in os.listdir(server.data_dir):
        path = os.path.join(server.data_dir, name)
        if name in ("credentials", "master.key") or not os.path.isfile(path):
            continue
        assert tenant.secret_access_key.encode() not in open(path, "rb").read(), name


def test_keys_commands(server):
    out = server.cli("keys", "create", "--account-id", "121212121212", "--profile", "ops").stdout
    assert "[ops]" in out
    key, _ = parse_credentials(out)
    listed = server.cli("keys", "list").stdout
    assert re.search(rf"{key}\s+121212121212\s+\d{{4}}-\d\d-\d\dT", listed)
    assert server.cli("keys", "delete", key).stdout.strip() == f"deleted {key}"
    again = server.cli("keys", "delete", key, check=False)
    assert again.returncode != 0 and f"no access key {key}" in again.stderr
    bad = server.cli("keys", "create", "--account-id", "12ab", check=False)
    assert bad.returncode != 0 and "must be exactly 12 digits" in bad.stderr


def test_bad_settings_are_reported_clearly(tmp_path):
    result = subprocess.run([GITSYNC, "serve", "--data-dir", str(tmp_path), "--limit", "wings=2"], capture_output=True, text=True)
    assert result.returncode != 0 and "unknown limit 'wings'" in result.stderr
    result = subprocess.run([GITSYNC, "keys", "list", "--database-url", "mysql://x"], capture_output=True, text=True)
    assert result.returncode != 0 and "unsupported database URL" in result.stderr
    (tmp_path / "master.key").write_text("short")
    result = subprocess.run([GITSYNC, "serve", "--data-dir", str(tmp_path)], capture_output=True, text=True, timeout=30)
    assert result.returncode != 0 and "64 hexadecimal characters" in result.stderr


def test_help_describes_every_command():
    out = subprocess.run([GITSYNC, "--help"], capture_output=True, text=True).stdout
    for word in ("serve", "keys", "--endpoint-url"):
        assert word in out
    serve = subprocess.run([GITSYNC, "serve", "--help"], capture_output=True, text=True).stdout
    for flag in ("--listen", "GITSYNC_LISTEN", "--data-dir", "--database-url", "--master-key-file", "--limit", "--account-id"):
        assert flag in serve


def run(*args, env=None, shell=False):
    return subprocess.run(args[0] if shell else [GITSYNC, *args], capture_output=True, text=True, timeout=60,
                          env=env, shell=shell)


def test_commands_refuse_a_data_directory_without_a_database(tmp_path):
    """A typo in --data-dir once made a fresh database and master key, then answered "does not
    exist" (or exit 0 for status). Every command but serve and init now refuses, naming the path."""
    missing = tmp_path / "typo"
    for args in (["keys", "list"], ["status", "--resource-name", "x"], ["accounts", "list"],
                 ["keys", "create", "--account-id", "111111111111"]):
        result = run(*args, "--data-dir", str(missing))
        assert result.returncode != 0, args
        assert "no gitsync database" in result.stderr and str(missing) in result.stderr and "--data-dir" in result.stderr, result.stderr
    assert not missing.exists()


def test_a_missing_master_key_is_refused_and_init_creates_one(tmp_path):
    data = tmp_path / "data"
    key = tmp_path / "keys" / "master.key"
    # Only init creates a named key; listing with a key that is not there says how to make one.
    result = run("init", "--data-dir", str(data), "--master-key-file", str(tmp_path / "elsewhere.key"), "--database-url", f"sqlite://{data}/other.db")
    assert result.returncode == 0, result.stderr
    result = run("keys", "list", "--data-dir", str(data), "--master-key-file", str(key), "--database-url", f"sqlite://{data}/other.db")
    assert result.returncode != 0 and "gitsync init" in result.stderr, result.stderr
    assert not key.exists()
    result = run("init", "--data-dir", str(data), "--master-key-file", str(key))
    assert result.returncode == 0 and "created" in result.stdout, result.stderr
    assert oct(os.stat(key).st_mode & 0o777) == "0o600"
    again = run("init", "--data-dir", str(data), "--master-key-file", str(key))
    assert again.returncode == 0 and "kept" in again.stdout, again.stderr
    assert run("keys", "create", "--account-id", "111111111111", "--data-dir", str(data), "--master-key-file", str(key)).returncode == 0
    # A server given another key cannot open the secrets sealed with the first: it refuses to start.
    other = tmp_path / "other.key"
    assert run("init", "--data-dir", str(tmp_path / "scratch"), "--master-key-file", str(other)).returncode == 0
    port = free_port()
    process = subprocess.run([GITSYNC, "serve", "--listen", f"127.0.0.1:{port}", "--data-dir", str(data), "--master-key-file", str(other)],
                             capture_output=True, text=True, timeout=60)
    assert process.returncode != 0 and "does not open this database's secrets" in process.stderr, process.stderr


def test_output_into_a_closed_pipe_ends_quietly(server):
    args = " ".join(server.state_args())
    result = run(f"{GITSYNC} keys list {args} | head -c 1 >/dev/null; {GITSYNC} accounts list {args} | true", shell=True)
    assert "panicked" not in result.stderr and "Broken pipe" not in result.stderr, result.stderr


def test_limit_belongs_to_serve(server):
    result = run("keys", "list", "--limit", "hosts=1", *server.state_args())
    assert result.returncode != 0 and "--limit" in result.stderr
